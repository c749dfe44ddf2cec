"""The value sources of the selection: one set of names and values shared with C.

One selection pipeline serves ``topk``, ``ef21_step`` and ``ef_step``. A *mode* says
how the value of element ``j`` of a row is formed from the row's two arrays and its
scalar; the C backend's ``EF21_MODE_*`` enum has the same names and values.

=================  =====  ==========================  ===========================
name               value  value of element j          at a selected j, also
=================  =====  ==========================  ===========================
MODE_TOPK          0      ``x[j]``                    nothing (topk)
MODE_EF21          1      ``g[j] - s[j]``             ``s[j] = s[j] + value``
MODE_EF21_SCALED   2      ``(c * g[j]) - s[j]``       ``s[j] = s[j] + value``
MODE_EF            3      ``s[j] + (lr * g[j])``      ``s[j] = 0``
=================  =====  ==========================  ===========================

In the Numba kernels the first array is called ``a`` (x or g), the second ``b`` (the
state s, or the error e of EF14) and the scalar ``c`` (the scale or lr).

``MODE_EF`` has a second state in the Numba kernels, a flag named ``written`` beside
the mode: the first pass over a row stores ``s[j] + (lr * g[j])`` into ``s`` (the
error update that EF14 keeps whatever is selected), after which the value of element
j is ``s[j]`` itself. It is a flag, not a fifth mode: the value it stands for is the
same, only where it is read from has changed.
"""

MODE_TOPK = 0
MODE_EF21 = 1
MODE_EF21_SCALED = 2
MODE_EF = 3

#: Every mode, in the order of their values.
MODES = (MODE_TOPK, MODE_EF21, MODE_EF21_SCALED, MODE_EF)
