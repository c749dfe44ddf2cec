"""``ef21fast bench``: a quick kernel speed table against ``np.argpartition`` (and
``torch.topk`` when installed), with the machine line beside it
(:mod:`ef21fast.testing.timing`; the full suite is ``bench/``)."""

from __future__ import annotations

from ef21fast.backends.registry import BACKENDS, KERNELS
from ef21fast.testing.timing import machine_line, format_table, run_table

__all__ = ["add_parser"]


def _cmd(args) -> int:
    sizes = (10**3, 10**5) if args.quick else (10**3, 10**5, 10**7)
    kernels = tuple(args.kernel) if args.kernel else ("topk", "ef21_step")
    print(f"# kernel speed, {machine_line()}")
    print(f"# k = d/{args.k_fraction}, float32, medians; first calls compile the kernels")
    rows = run_table(sizes=sizes, kernels=kernels, backends=args.backend,
                     k_fraction=args.k_fraction)
    print(format_table(rows))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="quick kernel speed table vs np.argpartition")
    p.add_argument("--quick", action="store_true", help="only d = 1e3 and 1e5")
    p.add_argument("--kernel", action="append", choices=KERNELS,
                   help="kernel to time (repeatable; default topk and ef21_step)")
    p.add_argument("--backend", action="append", choices=BACKENDS,
                   help="backend to time (repeatable; default all compiled ones)")
    p.add_argument("--k-fraction", type=int, default=100, metavar="F",
                   help="k = d / F (default 100)")
    p.set_defaults(func=_cmd)
