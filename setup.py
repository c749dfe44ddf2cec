"""Build glue: declares the cffi C module; everything else is in pyproject.toml.

The C backend is optional: if it does not compile, the package still installs (the
Numba and NumPy backends work) and the reason is written to
``ef21fast/c_build_error.txt`` so that ``ef21fast info`` can show it.
"""

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

ERROR_FILE = os.path.join("ef21fast", "c_build_error.txt")


class OptionalBuildExt(build_ext):
    """build_ext that records a failed C build instead of failing the install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, compile error, ...
            self._record(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._record(exc)

    def _record(self, exc):
        msg = f"the C backend did not build: {type(exc).__name__}: {exc}"
        print("WARNING: " + msg)
        target = os.path.join(self.build_lib, ERROR_FILE)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as fh:
            fh.write(msg + "\n")


setup(
    cffi_modules=["csrc/build_cffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
