"""Checks of values where they enter the package (files, records, user
columns): one home for "a finite number", "a column of finite numbers" and a
sample record's fields. Errors name the argument, the record and the field."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .io import FieldError
from .records import record_loc

__all__ = ["finite_number", "finite_column", "bounded_number", "check_sample"]


def finite_number(x: Any, where: str) -> float:
    """``float(x)``, or a TypeError (not a number) / ValueError (NaN, inf)
    whose message starts with `where`."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected a number, got {type(x).__name__}") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: must be finite, got {v}")
    return v


def finite_column(recs: Sequence[Mapping[str, Any]], name: str, where: str, positive: bool = False) -> np.ndarray:
    """Field `name` of every record as float64; a missing, non-numeric (bools
    only for ``correct``), non-finite or (with `positive`) non-positive value
    is a ValueError naming ``where[i]`` and the field."""
    out = np.empty(len(recs), dtype=np.float64)
    for i, r in enumerate(recs):
        v = r.get(name)
        if v is None:
            raise ValueError(f"{record_loc(where, i)}: missing field {name!r}")
        if isinstance(v, bool) and name != "correct":
            raise ValueError(f"{record_loc(where, i)}: field {name!r} must be a number, got {v!r}")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{record_loc(where, i)}: field {name!r} must be a number, got {v!r}") from None
        if not math.isfinite(x):
            raise ValueError(f"{record_loc(where, i)}: field {name!r} is {x} (must be finite)")
        if positive and x <= 0:
            raise ValueError(f"{record_loc(where, i)}: field {name!r} must be > 0, got {v!r}")
        out[i] = x
    return out


def check_sample(rec: Mapping[str, Any]) -> None:
    """Per-line checks of a sample record (used while reading, so errors
    carry the line number)."""
    if "length" in rec and rec["length"] is not None:
        L = rec["length"]
        if isinstance(L, bool) or not isinstance(L, (int, float)):
            raise FieldError("length", f"field 'length' must be a number, got {type(L).__name__}")
        if not (L > 0) or not math.isfinite(L):
            raise FieldError("length", f"field 'length' must be > 0 and finite, got {L}")
    if "correct" in rec and rec["correct"] is not None:
        c = rec["correct"]
        if not isinstance(c, (bool, int, float)) or not (0 <= c <= 1):
            raise FieldError("correct", f"field 'correct' must be a boolean (or a number in [0, 1]), got {c!r}")
    if not isinstance(rec["solution"], str):
        raise FieldError("solution", f"field 'solution' must be a string, got {type(rec['solution']).__name__}")


def bounded_number(v: Any, name: str, lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False,
                   hi_open: bool = False, allow_none: bool = False) -> Optional[float]:
    """A setting `name` as a float in ``[lo, hi]`` (``(`` / ``)`` with
    `lo_open` / `hi_open`; None bounds are infinite), or None when allowed.
    Bools, non-numbers and non-finite values are a ValueError naming it."""
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ValueError(f"{name}: must be a finite number, got {v!r}")
    v = float(v)
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and (v >= hi if hi_open else v > hi))
    if bad:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"{name}: must be in {lb}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{rb}, got {v!r}")
    return v
