"""Load the C core. With the default build it links the OpenBLAS of the
``scipy-openblas32`` wheel, which must be loaded (by importing that package)
before ``o1pruner._core``: no LD_LIBRARY_PATH or rpath is needed then."""

try:  # the wheel's __init__ loads libscipy_openblas.so with RTLD_GLOBAL
    import scipy_openblas32 as _openblas  # noqa: F401
except ImportError:  # a build against a system OpenBLAS does not need it
    _openblas = None

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "o1pruner's C extension could not be loaded "
        f"({exc}). If it was built against the scipy-openblas32 wheel, install it "
        "('pip install scipy-openblas32'); if you are in the source tree, build it with "
        "'pip install -e .' or 'python setup.py build_ext --inplace'."
    ) from exc


def _check_simd_env() -> None:
    """O1P_SIMD caps the SIMD path of the hand-dispatched kernels (read once by
    the C core); a value it does not understand is ignored there: say so."""
    import os
    import warnings

    v = os.environ.get("O1P_SIMD", "")
    if v and v not in ("baseline", "sse2", "x86-64-v3", "avx2", "x86-64-v4", "avx512"):
        warnings.warn(f"O1P_SIMD={v!r} is not one of baseline, x86-64-v3 (avx2), x86-64-v4 (avx512): ignored, "
                      "the CPU's own level is used", RuntimeWarning, stacklevel=3)


_check_simd_env()

__all__ = ["_core"]
