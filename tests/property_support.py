"""Support for the property-based tests (tests/test_property_*.py).

Every public function backed by C is called on inputs drawn by hypothesis:
random shapes (0 and 1 included), dtypes (bool, ints, float16/32/64, object,
strings), layouts (Fortran, strided, negative strides, read-only, unaligned,
zero-stride broadcasts), values (NaN, +-inf, huge, denormal) and argument
types. `check_call` is the oracle: the call either returns (and then the
test compares the result with the float64 reference of o1pruner.reference)
or raises ValueError/TypeError naming an argument. Anything else (another
exception, a modified input, a crash) fails. `COUNTS` tallies the calls;
tests/conftest.py prints it at the end of the run.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# calls per test module: {"module": {"returned": n, "raised": n}}
COUNTS: dict = collections.defaultdict(lambda: collections.Counter())
# why calls were rejected (the message up to its first colon), printed with
# O1P_PROPERTY_VERBOSE=1 to tune the strategies
REASONS: collections.Counter = collections.Counter()


def summary_lines():
    """Lines for the terminal summary (and the JSON report when
    O1P_PROPERTY_REPORT names a file)."""
    if not COUNTS:
        return []
    total = sum(c["returned"] + c["raised"] for c in COUNTS.values())
    lines = [f"property-based cases run: {total} calls of C-backed functions"]
    for mod in sorted(COUNTS):
        c = COUNTS[mod]
        n = c["returned"] + c["raised"]
        extra = "".join(f", {v} of them {k}" for k, v in c.items() if k not in ("returned", "raised"))
        lines.append(f"  {mod}: {n} calls ({c['returned']} returned and matched the reference or "
                     f"invariants, {c['raised']} raised ValueError/TypeError{extra})")
    if os.environ.get("O1P_PROPERTY_VERBOSE"):
        lines += [f"    {n:6d}  {r}" for r, n in REASONS.most_common(40)]
    path = os.environ.get("O1P_PROPERTY_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({m: dict(c) for m, c in COUNTS.items()}, f, indent=1, sort_keys=True)
    return lines


# ---- values -------------------------------------------------------------------

FLOAT32_MAX = float(np.finfo(np.float32).max)
DENORMAL32 = float(np.finfo(np.float32).smallest_subnormal)


def float_elements(regime: str, lo: float = -10.0, hi: float = 10.0):
    """Elements of a float array: "normal" (moderate finite values), "extreme"
    (anything a float32 can hold: NaN, +-inf, huge, denormal, -0.0) or
    "edges" (moderate values mixed with the special ones)."""
    lo, hi = float(np.float32(lo)), float(np.float32(hi))
    normal = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=32)
    special = st.sampled_from([np.nan, np.inf, -np.inf, FLOAT32_MAX, -FLOAT32_MAX, 1e30, -1e30,
                               DENORMAL32, -DENORMAL32, 0.0, -0.0, 1e-30])
    if regime == "normal":
        return normal
    if regime == "extreme":
        return st.floats(width=32)
    return st.one_of(normal, normal, normal, special)


REGIMES = st.sampled_from(["normal"] * 6 + ["edges", "extreme"])


@st.composite
def float_arrays(draw, shape, regime=None, lo=-10.0, hi=10.0):
    regime = regime or draw(REGIMES)
    return draw(hnp.arrays(np.float64, shape, elements=float_elements(regime, lo, hi)))


# ---- dtypes and layouts -------------------------------------------------------

def _cast(a: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(all="ignore"):
        if np.dtype(dtype).kind in "iub" and a.dtype.kind == "f":
            a = np.nan_to_num(a, nan=0.0, posinf=1e6, neginf=-1e6).clip(-1e6, 1e6)
        if np.dtype(dtype).kind in "US":
            return a.astype(str).astype(dtype)
        return a.astype(dtype)


@st.composite
def with_dtype(draw, a: np.ndarray, usual, odd=("bool", "int8", "uint8", "int32", "int64", "uint64",
                                                 "float16", "float32", "float64", ">f8", "object", "U8",
                                                 "complex64")):
    """`a` cast to one of the `usual` dtypes (most draws) or any odd one."""
    dt = draw(st.sampled_from(list(usual)) if draw(st.integers(0, 19)) < 18 else st.sampled_from(list(odd)))
    return _cast(a, dt)


LAYOUTS = ("C",) * 6 + ("F", "strided", "negative", "readonly", "unaligned", "broadcast", "list")


def layout(a: np.ndarray, kind: str):
    """The same values in another memory layout (or as a nested list)."""
    if kind == "C" or a.ndim == 0:
        return np.ascontiguousarray(a)
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if kind == "negative":
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if kind == "readonly":
        r = a.copy()
        r.setflags(write=False)
        return r
    if kind == "unaligned":
        if a.dtype.hasobject:
            return a
        raw = np.zeros(a.nbytes + 1, np.uint8)
        u = raw[1:].view(a.dtype).reshape(a.shape)
        u[...] = a
        return u
    if kind == "broadcast":
        # a zero-stride view along axis 0 when every row is the same
        if a.shape[0] > 1 and a.dtype.kind in "biuf" and (a == a[:1]).all():
            return np.broadcast_to(a[:1], a.shape)
        return a
    if kind == "list":
        return a.tolist()
    raise ValueError(kind)


@st.composite
def laid_out(draw, a: np.ndarray):
    return layout(a, draw(st.sampled_from(LAYOUTS)))


# Things that are not arrays of the expected kind at all.
ODD_OBJECTS = [
    None, "abc", b"bytes", 1.5, 3, True, [], [[1.0, 2.0], [3.0]], object(), {"a": 1},
    np.array(["a", "b"]), np.array([1 + 2j]), np.array(["2020-01-01"], dtype="datetime64[D]"),
    np.zeros((1, 1, 1, 1)), np.float64(2.0), np.zeros(()), float("nan"), -1, 2**70,
    np.zeros(3, dtype=[("x", "f4")]), np.array([None, 1.0], dtype=object),
]

odd_objects = st.sampled_from(ODD_OBJECTS)


def mostly(usual, odd, p_odd=1):
    """A strategy: `usual` most of the time, `odd` about p_odd times in 20."""
    return st.integers(0, 19).flatmap(lambda k: odd if k >= 20 - p_odd else usual)


@st.composite
def maybe_odd(draw, value, p_odd=1):
    """`value`, or (with probability about p_odd/20) an odd object."""
    return draw(odd_objects) if draw(st.integers(0, 19)) >= 20 - p_odd else value


# ---- the oracle ----------------------------------------------------------------

class Rejected(Exception):
    """The call raised ValueError/TypeError: nothing to compare."""


def _snapshot(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple)):
        vals = [_snapshot(v) for v in x]
        return type(x)(*vals) if hasattr(x, "_fields") else type(x)(vals)
    return x


def _same(a, b):
    if isinstance(a, np.ndarray):
        if not (isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype):
            return False
        if a.dtype.kind in "biufc":
            return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        return a.tolist() == b.tolist() or a.dtype.hasobject
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


def check_call(module: str, fn, args=(), kwargs=None, names=(), inplace=()):
    """Call fn(*args, **kwargs): return its result, or raise Rejected when it
    raised ValueError/TypeError whose message names one of `names` (argument
    names; the function's own name is accepted too). Any other exception
    propagates (and fails the test). Array inputs must not be modified, except
    the keyword arguments listed in `inplace` (outputs accumulated into)."""
    kwargs = kwargs or {}
    before = ([_snapshot(a) for a in args], {k: _snapshot(v) for k, v in kwargs.items()})
    try:
        out = fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        COUNTS[module]["raised"] += 1
        msg = str(e)
        REASONS[f"{module}: {type(e).__name__}: {msg[:60]}"] += 1
        assert msg, f"{type(e).__name__} without a message"
        fname = getattr(fn, "__name__", "")
        assert any(n in msg for n in (*names, fname)), (
            f"{type(e).__name__} message names no argument of {fname} {names}: {msg!r}")
        _check_unchanged(args, kwargs, before, inplace)
        raise Rejected(msg) from None
    COUNTS[module]["returned"] += 1
    _check_unchanged(args, kwargs, before, inplace)
    return out


def _check_unchanged(args, kwargs, before, inplace):
    for i, (a, b) in enumerate(zip(args, before[0])):
        assert _same(b, a), f"positional argument {i} was modified"
    for k, v in kwargs.items():
        if k not in inplace:
            assert _same(before[1][k], v), f"argument {k} was modified"


def shape_of(x):
    """np.shape of an array-like, () for anything else."""
    try:
        return np.shape(x)
    except (ValueError, TypeError):
        return ()


def length_of(x):
    """len() of a 1-D array-like, 0 for anything else."""
    try:
        a = np.asarray(x)
    except (ValueError, TypeError):
        return 0
    return a.shape[0] if a.ndim == 1 else 0


def seen_as(x, dtype=np.float32):
    """What a kernel that converts `x` to `dtype` reads, as float64 (for the
    reference)."""
    with np.errstate(all="ignore"):
        return np.asarray(x).astype(dtype).astype(np.float64)


def assert_close_scaled(actual, desired, scale, rtol=1e-5, what=""):
    """|actual - desired| <= rtol * (|desired| + scale), equal infinities and
    NaNs in the same places; scale is the magnitude of the inputs (absolute
    errors of float32 work grow with it)."""
    a = np.asarray(actual, np.float64)
    d = np.asarray(desired, np.float64)
    assert a.shape == d.shape, f"{what}: shape {a.shape} != {d.shape}"
    if np.asarray(actual).dtype == np.float32:  # beyond float32's range rounds to +-inf
        with np.errstate(over="ignore"):
            d = np.where(np.abs(d) > FLOAT32_MAX, d.astype(np.float32).astype(np.float64), d)
    same = (a == d) | (np.isnan(a) & np.isnan(d))
    if np.asarray(actual).dtype == np.float32:  # the float32 rounding of the exact value
        with np.errstate(all="ignore"):
            same |= a == d.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = same | (np.abs(a - d) <= rtol * (np.abs(d) + scale))
    if not ok.all():
        i = np.unravel_index(np.argmin(ok), ok.shape) if ok.ndim else ()
        raise AssertionError(f"{what}: {int((~ok).sum())} of {ok.size} differ; first at {i}: "
                             f"actual {a[i]!r} desired {d[i]!r} (scale {np.max(scale, initial=0):.3g}, rtol {rtol})")
