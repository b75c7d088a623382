"""Problems as records: the field names a problem may use for its text, gold
answer, id and difficulty, and their normalised form."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import io as _io
from .io import JSONLError, PathLike

__all__ = ["as_problems", "problems_digest", "problem_key", "field_of", "FileLoc", "record_loc"]


# Field names accepted for a problem's text, gold answer, id and difficulty.
_TEXT_KEYS = ("problem", "question", "expr")


_GOLD_KEYS = ("ground_truth_answer", "answer", "gold")


_ID_KEYS = ("problem_id", "id")


_DIFF_KEYS = ("difficulty", "level")


def field_of(obj, keys):
    for k in keys:
        if isinstance(obj, Mapping):
            if k in obj and obj[k] is not None:
                return k, obj[k]
        elif getattr(obj, k, None) is not None:
            return k, getattr(obj, k)
    return None, None


def as_problems(problems: Union[PathLike, Sequence[Any]], where: str = "problems") -> List[Dict[str, Any]]:
    """Normalise a problem list to dicts ``{problem_id, problem,
    ground_truth_answer[, difficulty]}`` (other fields kept).

    Parameters
    ----------
    problems : path or sequence
        A ``.json`` array or ``.jsonl`` file, or a sequence of dicts or
        objects. Text is read from ``problem`` (or ``question``, ``expr``), the gold
        answer from ``ground_truth_answer`` (or ``answer``, ``gold``), the id
        from ``problem_id`` (or ``id``; default: the position in the list),
        the difficulty from ``difficulty`` (or ``level``) when present.

    Raises
    ------
    ValueError
        Empty list, a missing field (naming the item, or the file and line),
        duplicate ids, ids that are not int or str.
    """
    src = where
    if isinstance(problems, (str, os.PathLike)):
        path = os.fspath(problems)
        src = path
        if path.endswith(".jsonl"):
            items = []
            for line, rec in _io.iter_jsonl(path):
                items.append((line, rec))
        else:
            data = _io.read_json(path)
            if not isinstance(data, list):
                raise JSONLError(path, None, f"expected a JSON array of problems, got {type(data).__name__}")
            items = [(i + 1, rec) for i, rec in enumerate(data)]
        label = lambda line: f"{path}:{line}"  # noqa: E731
    else:
        if isinstance(problems, Mapping) or isinstance(problems, (str, bytes)):
            raise TypeError(f"{where}: expected a sequence of problems or a path, got {type(problems).__name__}")
        items = list(enumerate(problems))
        label = lambda i: f"{where}[{i}]"  # noqa: E731
    if not items:
        raise ValueError(f"{src}: empty problem list")
    out = []
    seen = set()
    for pos, (loc, obj) in enumerate(items):
        tk, text = field_of(obj, _TEXT_KEYS)
        if text is None:
            raise ValueError(f"{label(loc)}: missing field 'problem'")
        if not isinstance(text, str):
            raise ValueError(f"{label(loc)}: field {tk!r} must be a string, got {type(text).__name__}")
        gk, gold = field_of(obj, _GOLD_KEYS)
        if gold is None:
            raise ValueError(f"{label(loc)}: missing field 'ground_truth_answer'")
        ik, pid = field_of(obj, _ID_KEYS)
        if pid is None:
            pid = pos
        if isinstance(pid, np.integer):
            pid = int(pid)
        if isinstance(pid, bool) or not isinstance(pid, (int, str)):
            raise ValueError(f"{label(loc)}: field 'problem_id' must be an int or str, got {type(pid).__name__}")
        if pid in seen:
            raise ValueError(f"{label(loc)}: duplicate problem_id {pid!r}")
        seen.add(pid)
        rec = dict(obj) if isinstance(obj, Mapping) else {}
        for k in (tk, gk, ik):
            rec.pop(k, None)
        rec.update(problem_id=pid, problem=text, ground_truth_answer=str(gold))
        dk, diff = field_of(obj, _DIFF_KEYS)
        if diff is not None:
            rec.pop(dk, None)
            rec["difficulty"] = diff.item() if isinstance(diff, np.generic) else diff
        out.append(rec)
    return out


def problems_digest(problems: Sequence[Mapping[str, Any]]) -> str:
    h = hashlib.sha256()
    for p in problems:
        h.update(json.dumps([p["problem_id"], p["problem"], p["ground_truth_answer"]], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def problem_key(pid):
    return tuple(pid) if isinstance(pid, list) else pid


class FileLoc(str):
    """The name of a JSONL file for messages, with the line number (from 1)
    of each of its records: record i is reported as ``file:line``, the
    convention of every reader of the package (not ``file[i]``)."""

    lines: List[int]


def record_loc(where: str, i: int) -> str:
    """``file:line`` of record `i` of a file, else ``where[i]`` (records
    passed as a list)."""
    lines = getattr(where, "lines", None)
    if lines is not None and 0 <= i < len(lines):
        return f"{where}:{lines[i]}"
    return f"{where}[{i}]"
