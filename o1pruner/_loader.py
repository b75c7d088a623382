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

__all__ = ["_core"]
