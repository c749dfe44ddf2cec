"""Build glue: declares the two cffi C modules; everything else is in pyproject.toml.

Both C modules are optional and independent: ``ef21fast._ckernels`` (the ``"c"``
backend) and ``ef21fast._coracle`` (the fused GLM oracle). If one does not compile, the
package still installs (the Numba and NumPy backends, the NumPy oracle work) and the
reason is written next to where the module would be, in
``ef21fast/<module>_build_error.txt`` (``_ckernels_build_error.txt``,
``_coracle_build_error.txt``), so that importing it says why it is missing. A module
that builds removes its stale record.
"""

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that records each failed C module instead of failing the install, and
    builds the modules side by side unless told otherwise (``-j N``)."""

    def finalize_options(self):
        super().finalize_options()
        # The two modules share no source and no object file: on a 2-core machine the
        # -O3 build took 70 s one after the other, 40 s side by side (each module's
        # units still compile one after another).
        if not self.parallel:
            self.parallel = max(1, min(len(self.extensions or ()), os.cpu_count() or 1))

    def run(self):
        # setuptools builds in build_lib with inplace off, then copies the modules into
        # the source tree when it was on: the records must follow them there
        self._in_place = bool(self.inplace or getattr(self, "editable_mode", False))
        self._done = set()  # modules built or recorded as failed
        self._failed = set()
        try:
            super().run()
        except Exception as exc:  # compiler missing, ...: the modules not yet built failed
            for ext in self.extensions:
                if ext.name not in self._done:
                    self._record(ext, exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # this module's compile or link error
            self._record(ext, exc)
            self._failed.add(ext.name)
        else:
            for path in self._record_paths(ext):
                if os.path.exists(path):
                    os.remove(path)
        self._done.add(ext.name)

    def copy_extensions_to_source(self):
        """In place builds: copy the modules that built, and remove the stale file of each
        module that did not (importing it then fails and reports the record)."""
        every = self.extensions
        self.extensions = [ext for ext in every if ext.name not in self._failed]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = every
        build_py = self.get_finalized_command("build_py")
        for ext in every:
            if ext.name in self._failed:
                package = ext.name.rsplit(".", 1)[0]
                stale = os.path.join(build_py.get_package_dir(package),
                                     os.path.basename(self.get_ext_filename(ext.name)))
                if os.path.exists(stale):
                    os.remove(stale)

    def _record_paths(self, ext):
        """<module>_build_error.txt beside the module, in build_lib and, when building in
        place, in the source package."""
        package, module = ext.name.rsplit(".", 1)
        dirs = [os.path.dirname(self.get_ext_fullpath(ext.name))]
        if getattr(self, "_in_place", False):
            build_py = self.get_finalized_command("build_py")
            dirs.append(build_py.get_package_dir(package))
        return [os.path.join(d, module + "_build_error.txt") for d in dirs]

    def _record(self, ext, exc):
        msg = f"{ext.name} did not build: {type(exc).__name__}: {exc}"
        print("WARNING: " + msg)
        for path in self._record_paths(ext):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w") as fh:
                fh.write(msg + "\n")


setup(
    cffi_modules=["csrc/build_cffi.py:ckernels", "csrc/build_cffi.py:coracle"],
    cmdclass={"build_ext": OptionalBuildExt},
)
