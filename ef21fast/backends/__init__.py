"""The backends: which exist, which work here, which one runs, and their threads.

``ef21fast.backends.registry`` is the registry (lazy loading, the reasons a backend
is missing, the default choice, thread counts); ``ef21fast.backends.c`` is the cffi
glue of the C backend. The Numba backend is ``ef21fast.kernels`` (the top-level
``kernels/`` folder of the source tree) and the NumPy backend is
:mod:`ef21fast.reference`.
"""
