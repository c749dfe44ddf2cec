"""Tools that check ef21fast: cross-checks against the reference, the adversarial cases,
the differential fuzzer and the timing anchors of the benchmarks.

None of them imports pytest: code that uses ef21fast as drop-in kernels can cross-check
a backend on its own machine::

    from ef21fast.testing import cross_check
    assert cross_check("c") == []

Modules: :mod:`.bits` (bit-level comparison), :mod:`.cases` (the adversarial input
generator), :mod:`.compare` (:func:`~ef21fast.testing.compare.cross_check` and friends), :mod:`.fuzzing` (the
call builder and oracle of the fuzzers), :mod:`.timing` (the anchors and tables of
``ef21fast bench`` and ``bench/``).
"""

from ef21fast.testing.bits import bits, bits_equal, nan_with_payload
from ef21fast.testing.cases import Case, all_cases, cases
from ef21fast.testing.compare import (
    C_FORCED_PATHS,
    compare,
    cross_check,
    cross_check_forced,
    run_case,
    variants,
)

__all__ = ["C_FORCED_PATHS", "Case", "all_cases", "bits", "bits_equal", "cases", "compare",
           "cross_check", "cross_check_forced", "nan_with_payload", "run_case", "variants"]
