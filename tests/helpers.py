"""Test helpers: comparisons that print the max difference, leak loops,
layout variants of an input array."""

from __future__ import annotations

import gc
import os
import sys

import numpy as np


def assert_close(actual, desired, rtol=1e-6, atol=1e-6, what=""):
    """np.testing-style closeness whose failure message shows the max
    absolute and relative difference and where it is."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    same_inf = (actual == desired) | (np.isnan(actual) & np.isnan(desired))
    diff = np.where(same_inf, 0.0, np.abs(actual - desired))
    tol = atol + rtol * np.abs(desired)
    bad = ~(diff <= tol)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, diff, -1)), diff.shape)
        rel = diff / np.maximum(np.abs(desired), 1e-300)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {diff.size} elements differ; max abs diff "
            f"{np.nanmax(diff):.3e}, max rel diff {np.nanmax(np.where(same_inf, 0, rel)):.3e}; "
            f"worst at {i}: actual {actual[i]!r} desired {desired[i]!r} (rtol={rtol}, atol={atol})"
        )


def layouts(a: np.ndarray):
    """Yield (name, array) variants with the same values: C order, Fortran
    order, a strided view, a negatively strided view, read-only, float64 and
    unaligned copies. Useful to check that inputs of any layout are accepted."""
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    big = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), dtype=a.dtype) if a.ndim else None
    if big is not None:
        big[..., ::2] = a
        yield "strided", big[..., ::2]
        rev = np.ascontiguousarray(a[..., ::-1])
        yield "negative-stride", rev[..., ::-1]
    ro = a.copy()
    ro.setflags(write=False)
    yield "read-only", ro
    if a.dtype.kind == "f":
        yield "float64", a.astype(np.float64)
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    un = raw[1:].view(a.dtype).reshape(a.shape)
    un[...] = a
    yield "unaligned", un


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def leak_check(fn, n=2000, warmup=200, max_growth_bytes=4 << 20):
    """Call fn() n times after warmup; fail if RSS grows by more than
    max_growth_bytes or the total reference count drifts. Skipped in a
    sanitizer build, whose allocator quarantine grows RSS by design (ASan's
    LeakSanitizer covers leaks there)."""
    import pytest

    import o1pruner

    if o1pruner.config()["variant"] == "sanitize":
        pytest.skip("RSS leak loop is meaningless under AddressSanitizer")
    for _ in range(warmup):
        fn()
    gc.collect()
    rss0 = rss_bytes()
    refs0 = sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None
    for _ in range(n):
        fn()
    gc.collect()
    growth = rss_bytes() - rss0
    assert growth <= max_growth_bytes, f"RSS grew by {growth / 2**20:.1f} MiB over {n} calls"
    if refs0 is not None:
        drift = sys.gettotalrefcount() - refs0
        assert abs(drift) < n // 10, f"reference count drifted by {drift} over {n} calls"


def import_dev(name: str):
    """Import ``dev.<name>`` (the repository's dev scripts, not installed).

    The repository root is on ``sys.path`` only for this import, after
    ``o1pruner`` is imported: the package under test (an installed build, or
    an in-place one) stays the one the tests use, and the source tree's copy,
    which has no compiled ``_core`` after a non-editable install, never
    shadows it.
    """
    import importlib

    import o1pruner  # noqa: F401  (first: fixes which o1pruner the dev module sees)

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    try:
        return importlib.import_module(f"dev.{name}")
    finally:
        sys.path.remove(root)


def child_python(env=None, cwd=None):
    """``dict(env=..., cwd=...)`` for a child ``python -c`` / ``-m`` that
    imports the same o1pruner as this process (installed, or built in place)
    and runs outside the source tree (``-c`` and ``-m`` put the cwd first on
    sys.path; the source tree has no compiled ``_core`` after a non-editable
    install)."""
    import tempfile

    import o1pruner

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(o1pruner.__file__)))
    base = dict(os.environ if env is None else env)
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_parent, base.get("PYTHONPATH")]))
    return {"env": base, "cwd": str(cwd) if cwd is not None else tempfile.gettempdir()}
