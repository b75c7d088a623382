"""Build script for o1pruner's C core, the extension module ``o1pruner._core``.

Everything configurable is an environment variable, so CI can build a
sanitizer or debug variant without editing files:

    O1P_DEBUG=1       -O0 -g3, C asserts on (also implied by O1P_SANITIZE)
    O1P_SANITIZE=1    AddressSanitizer + UndefinedBehaviorSanitizer; run Python
                      with LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
    O1P_NO_OPENMP=1   build without OpenMP: kernels run on one thread, results
                      are the same
    O1P_NATIVE=1      add -march=native (local builds only, not portable)
    O1P_BLAS=...      "scipy-openblas32" (default: the pinned PyPI wheel, so a
                      plain ``pip install .`` needs no system package), or
                      "pkg-config" / "pkg-config:NAME" for a system OpenBLAS
                      found by pkg-config (default NAME: openblas)
"""

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from glob import glob

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


DEBUG = _flag("O1P_DEBUG")
SANITIZE = _flag("O1P_SANITIZE")
NO_OPENMP = _flag("O1P_NO_OPENMP")
NATIVE = _flag("O1P_NATIVE")
BLAS = os.environ.get("O1P_BLAS", "scipy-openblas32").strip()


def blas_config():
    """Return (include_dirs, library_dirs, libraries, extra_link_args, macros, description)."""
    if BLAS == "scipy-openblas32":
        import scipy_openblas32 as sob

        return (
            [sob.get_include_dir()],
            [sob.get_lib_dir()],
            [sob.get_library()],
            [],
            # symbols are prefixed scipy_ (scipy_cblas_sgemm); blasint is 32-bit
            [("O1P_BLAS_PREFIX_SCIPY", "1")],
            "scipy-openblas32 " + getattr(sob, "__version__", "?"),
        )
    if BLAS.startswith("pkg-config"):
        name = BLAS.split(":", 1)[1] if ":" in BLAS else "openblas"

        def pc(*args):
            out = subprocess.check_output(["pkg-config", *args, name], text=True)
            return shlex.split(out)

        try:
            cflags, libs = pc("--cflags"), pc("--libs")
            version = subprocess.check_output(["pkg-config", "--modversion", name], text=True).strip()
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(f"O1P_BLAS={BLAS}: pkg-config could not find '{name}': {exc}")
        incs = [f[2:] for f in cflags if f.startswith("-I")]
        libdirs = [f[2:] for f in libs if f.startswith("-L")]
        libnames = [f[2:] for f in libs if f.startswith("-l")]
        other = [f for f in libs if not f.startswith(("-L", "-l"))]
        # a system library is found at run time through its own rpath/ld.so.conf
        other += [f"-Wl,-rpath,{d}" for d in libdirs]
        return incs, libdirs, libnames, other, [], f"{name} {version} (pkg-config)"
    sys.exit(f"O1P_BLAS must be 'scipy-openblas32' or 'pkg-config[:NAME]', got {BLAS!r}")


def compiler_supports(flags, code="int main(void){return 0;}\n"):
    """True when the C compiler accepts ``flags`` for a tiny program."""
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            r = subprocess.run(cc + flags + [src, "-o", os.path.join(tmp, "t")],
                               capture_output=True)
        except OSError:
            return False
        return r.returncode == 0


inc, libdirs, libs, blas_link, blas_macros, blas_desc = blas_config()

cflags = ["-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
          "-fno-trapping-math", "-fno-math-errno", "-fvisibility=hidden"]
ldflags = list(blas_link)
if DEBUG or SANITIZE:
    cflags += ["-O0", "-g3", "-fno-omit-frame-pointer", "-UNDEBUG"]
else:
    cflags += ["-O3", "-DNDEBUG"]
if SANITIZE:
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    cflags += san
    ldflags += san
if NATIVE:
    cflags += ["-march=native"]

openmp = False
if not NO_OPENMP and compiler_supports(["-fopenmp"], "#include <omp.h>\nint main(void){return omp_get_max_threads()<0;}\n"):
    cflags.append("-fopenmp")
    ldflags.append("-fopenmp")
    openmp = True

build_flags = " ".join(cflags)
macros = blas_macros + [
    ("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
    ("O1P_BUILD_CFLAGS", '"%s"' % build_flags.replace('"', "")),
    ("O1P_BUILD_BLAS", '"%s"' % blas_desc),
    ("O1P_BUILD_VARIANT", '"%s"' % ("sanitize" if SANITIZE else "debug" if DEBUG else "release")),
]

sources = sorted(glob("csrc/kernels/*.c")) + sorted(glob("csrc/py/*.c"))

ext = Extension(
    "o1pruner._core",
    sources=sources,
    include_dirs=["csrc", "csrc/kernels", "csrc/py", numpy.get_include()] + inc,
    library_dirs=libdirs,
    libraries=libs + ["m"],
    define_macros=macros,
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    depends=sorted(glob("csrc/*.h") + glob("csrc/kernels/*.h") + glob("csrc/py/*.h")),
)


def build_fingerprint():
    """What the objects depend on besides the sources: the toggles and the
    flags they give. setuptools reuses objects and the linked module of an
    earlier build whose sources are not newer, whatever flags built them
    (an ``O1P_NO_OPENMP=1 pip install .`` after a default install kept
    OpenMP); a different fingerprint forces a full rebuild."""
    return {
        "toggles": {k: os.environ.get(k, "") for k in ("O1P_DEBUG", "O1P_SANITIZE", "O1P_NO_OPENMP", "O1P_NATIVE", "O1P_BLAS")},
        "cflags": cflags,
        "ldflags": ldflags,
        "blas": blas_desc,
        "python": sys.version,
    }


FINGERPRINT_FILE = "o1p_build_fingerprint.json"


def fingerprint_changed(build_temp, fingerprint):
    """True when `build_temp` holds no record of the flags that built it, or
    one that differs from `fingerprint`."""
    import json

    path = os.path.join(build_temp, FINGERPRINT_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f) != fingerprint
    except (OSError, ValueError):
        return True


class BuildExt(build_ext):
    """Drop CPython's default -O2/-g so that our optimisation flags decide,
    and rebuild everything when the build toggles changed since the last
    build in this build folder."""

    def apply_fingerprint(self):
        """Force a full rebuild when the recorded fingerprint differs (or is
        missing); returns the fingerprint to record after the build."""
        fp = build_fingerprint()
        if fingerprint_changed(self.build_temp, fp):
            self.force = True
        return fp

    def run(self):
        import json

        fp = self.apply_fingerprint()
        super().run()
        if not self.dry_run:
            os.makedirs(self.build_temp, exist_ok=True)
            with open(os.path.join(self.build_temp, FINGERPRINT_FILE), "w", encoding="utf-8") as f:
                json.dump(fp, f)

    def build_extensions(self):
        strip = {"-O2", "-O1", "-Os", "-g"} if not (DEBUG or SANITIZE) else {"-O2", "-O3"}
        for attr in ("compiler_so", "compiler"):
            cmd = getattr(self.compiler, attr, None)
            if cmd:
                setattr(self.compiler, attr, [c for c in cmd if c not in strip])
        super().build_extensions()


if __name__ == "__main__":  # pip (setuptools.build_meta) and `python setup.py` both run it as __main__
    setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
