"""Files of the O1-Pruner pipeline: JSONL that reports its bad lines, atomic
whole-file writes and crash-safe append-only JSONL for long runs. The file
formats of other tools (the public O1-Pruner code, vLLM, LLaMA-Factory) are in
:mod:`o1pruner.data.formats`; ``o1pruner.io`` (the documented name) holds both."""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .._atomic import PathLike, atomic_write

__all__ = [
    "check_required",
    "json_clean",
    "JSONLError",
    "FieldError",
    "Records",
    "iter_jsonl",
    "read_jsonl",
    "write_jsonl",
    "write_json",
    "read_json",
    "atomic_write",
    "JSONLAppender",
    "PathLike",
]


class JSONLError(ValueError):
    """A bad record in a JSON/JSONL file.

    The message starts with ``path:line:`` (line numbers from 1; for a JSON
    array the "line" is the record's index from 1) and names the field.

    Attributes
    ----------
    path : str
    line : int or None
    field : str or None
    """

    def __init__(self, path: PathLike, line: Optional[int], message: str, field: Optional[str] = None):
        self.path = os.fspath(path)
        self.line = line
        self.field = field
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class Records(list):
    """A list of dict records read from a file, with what the reader dropped.

    Attributes
    ----------
    path : str
    skipped : list of (int, str)
        ``(line number, reason)`` of every line skipped because the caller
        passed ``skip_invalid=True``.
    torn_tail : bool
        True when the last line had no newline and did not parse (a write
        cut short by a crash) and was dropped.
    lines : list of int
        The line number (from 1) of each record, for messages that name
        ``file:line`` (filled by :func:`read_jsonl`).
    """

    def __init__(self, items=(), path: str = "", skipped=None, torn_tail: bool = False):
        super().__init__(items)
        self.path = path
        self.skipped: List[Tuple[int, str]] = list(skipped or [])
        self.torn_tail = torn_tail
        self.lines: List[int] = []


# ---- plain JSON / JSONL ----------------------------------------------------

def _json_default(o):
    """Make NumPy scalars and arrays JSON-serialisable."""
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"object of type {type(o).__name__} is not JSON serialisable")


def _dumps(obj: Any, where: str = "") -> str:
    """One compact JSON line; NaN/inf are refused (they are not JSON)."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError as e:
        raise ValueError(f"{where}{e} (NaN and infinity are not valid JSON)") from None
    except TypeError as e:
        raise TypeError(f"{where}{e}") from None


class FieldError(ValueError):
    """Raised by a record check: the bad field and what is wrong with it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def check_required(path, line, rec, required: Sequence[str]):
    if not isinstance(rec, dict):
        raise JSONLError(path, line, f"expected a JSON object, got {type(rec).__name__}")
    for f in required:
        if f not in rec or rec[f] is None:
            raise JSONLError(path, line, f"missing field {f!r}", field=f)


def iter_jsonl(
    path: PathLike,
    required: Sequence[str] = (),
    *,
    skip_invalid: bool = False,
    torn_tail: str = "error",
    report: Optional[Records] = None,
    check: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Stream ``(line_number, record)`` from a JSONL file, in bounded memory.

    Parameters
    ----------
    path : str or path-like
    required : sequence of str
        Fields every record must have (present and not null).
    skip_invalid : bool, default False
        False: a line that is not a JSON object or lacks a required field
        raises :class:`JSONLError` naming the file, line and field. True: such
        lines are skipped and counted in ``report.skipped``.
    torn_tail : {"error", "drop"}, default "error"
        What to do with a last line that has no trailing newline and does not
        parse, i.e. a write interrupted by a crash. "drop" drops it, sets
        ``report.torn_tail`` and warns; "error" treats it like any corrupt line.
    report : Records, optional
        Receives what was skipped or dropped.
    check : callable, optional
        ``check(record)`` raising :class:`FieldError` for a record that is
        well-formed JSON but invalid for the format; handled like a missing
        field.

    Yields
    ------
    (int, dict)
        Line number (from 1) and record. Blank lines are ignored.

    Raises
    ------
    JSONLError
        A corrupt line, a non-object line or a missing field (unless skipped).
    FileNotFoundError
    """
    if torn_tail not in ("error", "drop"):
        raise ValueError(f"torn_tail: must be 'error' or 'drop', got {torn_tail!r}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        lineno = 0
        for raw in f:
            lineno += 1
            if not raw.strip():
                continue
            complete = raw.endswith(b"\n")
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                if not complete and torn_tail == "drop":
                    warnings.warn(f"{path}:{lineno}: dropped an incomplete last line (interrupted write)", RuntimeWarning, stacklevel=2)
                    if report is not None:
                        report.torn_tail = True
                    return
                reason = f"not valid JSON ({e})"
                if not complete:
                    reason += "; the last line has no newline: the file may have been cut by a crash"
                if skip_invalid:
                    if report is not None:
                        report.skipped.append((lineno, reason))
                    continue
                raise JSONLError(path, lineno, reason) from None
            try:
                check_required(path, lineno, rec, required)
                if check is not None:
                    try:
                        check(rec)
                    except FieldError as fe:
                        raise JSONLError(path, lineno, str(fe), field=fe.field) from None
            except JSONLError as e:
                if skip_invalid:
                    if report is not None:
                        report.skipped.append((lineno, str(e).split(": ", 1)[1]))
                    continue
                raise
            yield lineno, rec


def read_jsonl(
    path: PathLike,
    required: Sequence[str] = (),
    *,
    skip_invalid: bool = False,
    torn_tail: str = "error",
    check: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Records:
    """Read a whole JSONL file into a :class:`Records` list of dicts.

    Same parameters and errors as :func:`iter_jsonl`; the returned list
    carries ``skipped`` and ``torn_tail``. A warning tells how many lines were
    skipped.

    Examples
    --------
    >>> import o1pruner.io as io, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl")
    >>> io.write_jsonl(p, [{"a": 1}, {"a": 2}])
    >>> [r["a"] for r in io.read_jsonl(p, required=["a"])]
    [1, 2]
    """
    out = Records(path=os.fspath(path))
    for lineno, rec in iter_jsonl(path, required, skip_invalid=skip_invalid, torn_tail=torn_tail, report=out, check=check):
        out.append(rec)
        out.lines.append(lineno)
    if out.skipped:
        first = out.skipped[0]
        warnings.warn(
            f"{out.path}: skipped {len(out.skipped)} invalid line(s); first at line {first[0]}: {first[1]}",
            RuntimeWarning,
            stacklevel=2,
        )
    return out


def read_json(path: PathLike) -> Any:
    """Read a JSON file; a syntax error names the file, line and column."""
    path = os.fspath(path)
    with open(path, "r", encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise JSONLError(path, e.lineno, f"not valid JSON ({e.msg}, column {e.colno})") from None


def write_jsonl(path: PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Write records as JSONL, atomically (see :func:`atomic_write`).

    NumPy scalars and arrays are converted; NaN/inf raise ValueError naming
    the record index (they are not JSON).
    """

    def body(f):
        for i, rec in enumerate(records):
            f.write(_dumps(rec, where=f"records[{i}]: "))
            f.write("\n")

    atomic_write(path, body)


def write_json(path: PathLike, obj: Any, indent: Optional[int] = None) -> None:
    """Write one JSON document atomically."""
    atomic_write(path, json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=indent, default=_json_default))


class JSONLAppender:
    """Append-only JSONL writer for long runs: each batch is flushed and
    fsynced before :meth:`write_batch` returns, so a crash loses at most the
    batch being written, and at worst leaves a torn last line that
    ``iter_jsonl(..., torn_tail="drop")`` drops.

    Opening an existing file whose last line was torn truncates that line
    first (with a warning), so new lines never glue onto it.

    Use as a context manager::

        with JSONLAppender("samples.jsonl") as out:
            out.write_batch(records)
    """

    def __init__(self, path: PathLike):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)) or ".", exist_ok=True)
        self._repair_tail()
        self._f = open(self.path, "ab")
        self.lines_written = 0

    def _repair_tail(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            # find the last newline; everything after it is a torn line
            pos, chunk = size, 1 << 16
            cut = 0
            while pos > 0:
                start = max(0, pos - chunk)
                f.seek(start)
                buf = f.read(pos - start)
                i = buf.rfind(b"\n")
                if i >= 0:
                    cut = start + i + 1
                    break
                pos = start
            f.seek(cut)
            tail = f.read()
            try:
                json.loads(tail)
                # a complete record that only lacks its newline: keep it
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            except (json.JSONDecodeError, UnicodeDecodeError):
                warnings.warn(
                    f"{self.path}: truncated an incomplete last line ({len(tail)} bytes) left by an interrupted write",
                    RuntimeWarning,
                    stacklevel=3,
                )
                f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())

    def write_batch(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append records (one JSON line each), then flush and fsync.
        Returns the number of lines written. All lines of the batch are
        serialised before anything is written, so a record that cannot be
        serialised writes nothing."""
        lines = [(_dumps(r, where=f"{self.path}: record {i} of the batch: ") + "\n").encode("utf-8") for i, r in enumerate(records)]
        if lines:
            self._f.write(b"".join(lines))
            self._f.flush()
            os.fsync(self._f.fileno())
        self.lines_written += len(lines)
        return len(lines)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> "JSONLAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- the public O1-Pruner generated-sample JSON ------------------------------


# ---- vLLM-style JSONL -------------------------------------------------------


# ---- LLaMA-Factory weighted training set ------------------------------------




def json_clean(x: Any) -> Any:
    """NaN and infinity (not JSON) become None; tuples become lists."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if isinstance(x, np.generic):
        return json_clean(x.item())
    return x
