"""The EF21 family of methods and their maths, written on the kernels.

:mod:`.theory` (compressor constants, smoothness means, step sizes), :mod:`.data`
(LIBSVM files, client splits, the synthetic generator), :mod:`.problems` (the problems
with batched client oracles; :mod:`.oracle` is the fused C oracle), :mod:`.algorithms`
(the methods and :func:`~ef21fast.methods.algorithms.run`), :mod:`.trace` (a run's
record and its files), :mod:`.plots`, :mod:`.reproduce` (the paper's comparison). The
maths, with its sources, is in ``docs/maths.rst``.

Nothing here is imported by ``import ef21fast``; these modules need the
``experiments`` extra (scipy, scikit-learn, matplotlib, tqdm) only where they use it.
"""
