"""Build and runtime configuration: threads and ``show_config()``."""

from __future__ import annotations

import os
import platform
import sys

from ._loader import _core

__all__ = ["show_config", "config", "set_num_threads", "get_num_threads"]


def set_num_threads(n: int) -> None:
    """Set the number of threads used by o1pruner's kernels and by BLAS.

    Parameters
    ----------
    n : int
        Threads, >= 1. Our parallel loops split work across ``n`` threads and
        run BLAS single-threaded inside them; BLAS calls made outside them use
        ``n`` BLAS threads. The default is the number of CPUs available
        (``OMP_NUM_THREADS`` if set).

    Notes
    -----
    In a process created by ``fork`` the count drops to 1; call this again in
    the child to use more. If the parent had already run a parallel kernel,
    GNU OpenMP cannot start a thread pool in the child: there o1pruner's own
    loops stay on one thread and the ``n`` threads go to BLAS (a child forked
    before any parallel work, or started with ``spawn``, gets both).
    """
    if isinstance(n, bool):
        raise TypeError("n: expected an int, got bool")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Return the number of threads o1pruner's kernels use."""
    return _core.get_num_threads()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def config() -> dict:
    """Return the build and runtime configuration as a dict.

    Keys include ``blas`` (library and version), ``blas_config`` and
    ``blas_corename`` (as reported by the loaded OpenBLAS), ``blas_threads``,
    ``cflags``, ``variant`` (release/debug/sanitize), ``simd`` (the level the
    target clones dispatch to on this CPU), ``simd_path`` (the path of the
    hand-dispatched kernels: the CPU's level unless the environment variable
    ``O1P_SIMD`` caps it, e.g. ``O1P_SIMD=baseline``), ``openmp`` (the OpenMP
    version macro or None) and ``num_threads``.
    """
    import numpy

    info = dict(_core.build_info())
    info.update(
        o1pruner_version=_version(),
        python=sys.version.split()[0],
        numpy=numpy.__version__,
        platform=platform.platform(),
        cpu=_cpu_model(),
        cpu_count=os.cpu_count(),
    )
    return info


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("o1pruner")
    except Exception:  # not installed (source tree)
        return "0+unknown"


def show_config() -> None:
    """Print the BLAS library and version, its core type, the compiler flags,
    the SIMD level in use and the thread counts."""
    info = config()
    order = [
        ("o1pruner", "o1pruner_version"),
        ("python", "python"),
        ("numpy", "numpy"),
        ("platform", "platform"),
        ("cpu", "cpu"),
        ("cpu count", "cpu_count"),
        ("build variant", "variant"),
        ("compiler", "compiler"),
        ("compiler flags", "cflags"),
        ("SIMD level in use", "simd"),
        ("SIMD path (O1P_SIMD)", "simd_path"),
        ("OpenMP", "openmp"),
        ("o1pruner threads", "num_threads"),
        ("BLAS library", "blas"),
        ("BLAS config", "blas_config"),
        ("BLAS core type", "blas_corename"),
        ("BLAS threads", "blas_threads"),
        ("BLAS integer bits", "blas_int_bits"),
    ]
    width = max(len(label) for label, _ in order)
    for label, key in order:
        value = info.get(key)
        if key == "openmp":
            value = f"yes (_OPENMP={value})" if value else "no (kernels run single-threaded)"
        print(f"{label:<{width}} : {value}")
