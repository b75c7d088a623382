"""Files of the O1-Pruner pipeline: JSONL that reports its bad lines, atomic
whole-file writes, crash-safe append-only JSONL for long runs, and the file
formats of the tools researchers already use (the public O1-Pruner code,
vLLM, LLaMA-Factory)."""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._atomic import atomic_write
from ._atomic import fsync_dir as _fsync_dir  # noqa: F401  (used by o1pruner.training)

__all__ = [
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
    "read_o1pruner_samples",
    "write_o1pruner_samples",
    "read_vllm_jsonl",
    "write_vllm_jsonl",
    "vllm_to_samples",
    "samples_to_vllm",
    "read_llamafactory",
    "write_llamafactory",
    "llamafactory_dataset_info",
    "PUBLIC_SYSTEM_PROMPT",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The system prompt of the public O1-Pruner code's training set (its
#: ``construct_dataset.py``) and of its Marco-o1 sampling prompt.
PUBLIC_SYSTEM_PROMPT = (
    "You are a helpful assistant. You should think step-by-step and put your final answer within \\boxed{}."
)


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


def _check_required(path, line, rec, required: Sequence[str]):
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
                _check_required(path, lineno, rec, required)
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

_PUBLIC_FIELDS = ("problem", "solution", "answer", "ground_truth_answer")


def read_o1pruner_samples(path: PathLike, k: int, *, require_answer: bool = True) -> List[Dict[str, Any]]:
    """Read the public O1-Pruner code's generated-sample JSON.

    That file (written by its ``inference.py``) is a JSON array in which each
    problem's K samples are consecutive; each item is the dataset item
    (``problem``, ``ground_truth_answer``, ...) plus the generated
    ``solution`` and the extracted ``answer``.

    Parameters
    ----------
    path : str or path-like
        A ``.json`` array (or a ``.jsonl`` file with one item per line).
    k : int
        Samples per problem (the public code's ``--K``).
    require_answer : bool, default True
        Require the ``answer`` field (the public code grades it). False
        accepts files that only have the solutions.

    Returns
    -------
    list of dict
        The items, each with ``problem_id`` (problem index, from 0) and
        ``sample_index`` (0..k-1) added; other fields are kept as they are.

    Raises
    ------
    JSONLError
        Not a JSON array, an item missing a field (naming the item index
        from 1 as its "line"), a length not a multiple of `k`, or a group of
        K items whose ``problem`` differs (the file is not K-consecutive).
    ValueError
        ``k < 1``.
    """
    k = _check_k(k)
    path = os.fspath(path)
    if path.endswith(".jsonl"):
        data = list(read_jsonl(path))
    else:
        data = read_json(path)
    if not isinstance(data, list):
        raise JSONLError(path, None, f"expected a JSON array of samples, got {type(data).__name__}")
    if not data:
        raise JSONLError(path, None, "no samples (empty array)")
    if len(data) % k:
        raise JSONLError(
            path, None, f"holds {len(data)} samples, not a multiple of k={k}: K consecutive samples per problem are expected"
        )
    need = _PUBLIC_FIELDS if require_answer else ("problem", "solution", "ground_truth_answer")
    out = []
    for i, item in enumerate(data):
        _check_required(path, i + 1, item, need)
        g, j = divmod(i, k)
        if j and item["problem"] != data[g * k]["problem"]:
            raise JSONLError(
                path, i + 1,
                f"field 'problem' differs from item {g * k + 1}'s: with k={k} items {g * k + 1}..{g * k + k} "
                f"should be samples of one problem (wrong k?)",
                field="problem",
            )
        rec = dict(item)
        rec["problem_id"] = g
        rec["sample_index"] = j
        out.append(rec)
    return out


def write_o1pruner_samples(path: PathLike, samples: Sequence[Mapping[str, Any]], indent: Optional[int] = None) -> int:
    """Write samples as the public O1-Pruner generated-sample JSON (atomic).

    Samples are grouped by ``problem_id`` (in order of first appearance;
    without ids, the list must already be K-consecutive) and every problem
    must have the same number of samples K. Each item gets ``problem``,
    ``ground_truth_answer``, ``solution`` and ``answer`` (an answer of None
    is written as the public code's ``"None"``); other fields are kept.
    ``problem_id`` and ``sample_index`` are dropped (their order encodes them).

    Returns
    -------
    int
        K, the number of samples per problem, to pass to
        :func:`read_o1pruner_samples` (and the public scripts' ``--K``).
    """
    groups = _group_by_problem(samples, where="samples")
    ks = {len(v) for v in groups.values()}
    if len(ks) != 1:
        raise ValueError(f"samples: every problem needs the same number of samples for this format, got counts {sorted(ks)}")
    items = []
    for recs in groups.values():
        for r in recs:
            item = {k: v for k, v in r.items() if k not in ("problem_id", "sample_index")}
            for f in ("problem", "ground_truth_answer", "solution"):
                if f not in item:
                    raise ValueError(f"samples: a record of problem {r.get('problem_id')!r} is missing field {f!r}")
            if item.get("answer") is None:
                item["answer"] = "None"
            items.append(item)
    write_json(path, items, indent=indent)
    return ks.pop()


def _group_by_problem(samples: Sequence[Mapping[str, Any]], where: str) -> Dict[Any, List[Mapping[str, Any]]]:
    """Group records by problem_id keeping first-appearance order; records
    without an id are grouped by consecutive equal ``problem`` text."""
    if not len(samples):
        raise ValueError(f"{where}: empty")
    groups: Dict[Any, List[Mapping[str, Any]]] = {}
    auto = 0
    prev_problem = object()
    for i, r in enumerate(samples):
        if not isinstance(r, Mapping):
            raise TypeError(f"{where}[{i}]: expected a dict, got {type(r).__name__}")
        if "problem_id" in r and r["problem_id"] is not None:
            key = r["problem_id"]
            if isinstance(key, list):
                key = tuple(key)
        else:
            if "problem" not in r:
                raise ValueError(f"{where}[{i}]: missing field 'problem_id' (or 'problem' to group by)")
            if r["problem"] != prev_problem:
                auto += 1
                prev_problem = r["problem"]
            key = ("__auto__", auto)
        groups.setdefault(key, []).append(r)
    return groups


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    return int(k)


# ---- vLLM-style JSONL -------------------------------------------------------

def read_vllm_jsonl(path: PathLike, *, skip_invalid: bool = False, torn_tail: str = "error") -> Records:
    """Read vLLM-style generation outputs: one JSON object per prompt,
    ``{"prompt": str, "outputs": [{"text": str, "token_ids": [int, ...]}, ...]}``
    (what ``json.dumps`` of a ``vllm.RequestOutput``'s prompt and outputs
    gives; other fields such as ``prompt_token_ids``, ``finish_reason`` or
    your own ``problem``/``ground_truth_answer`` are kept).

    ``token_ids`` is optional per output; when present it must be a list of
    ints. Errors name the file, line and field (e.g. ``outputs[2].text``).
    """
    return read_jsonl(path, required=("prompt", "outputs"), skip_invalid=skip_invalid, torn_tail=torn_tail, check=_check_vllm)


def _check_vllm(rec: Dict[str, Any]) -> None:
    if not isinstance(rec["prompt"], str):
        raise FieldError("prompt", f"field 'prompt' must be a string, got {type(rec['prompt']).__name__}")
    outs = rec["outputs"]
    if not isinstance(outs, list) or not outs:
        raise FieldError("outputs", "field 'outputs' must be a non-empty list")
    for j, o in enumerate(outs):
        if not isinstance(o, dict) or not isinstance(o.get("text"), str):
            raise FieldError(f"outputs[{j}].text", f"missing field 'outputs[{j}].text' (a string)")
        ids = o.get("token_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in ids)):
            raise FieldError(f"outputs[{j}].token_ids", f"field 'outputs[{j}].token_ids' must be a list of ints")


def write_vllm_jsonl(path: PathLike, records: Sequence[Mapping[str, Any]]) -> None:
    """Write vLLM-style records (``prompt`` + ``outputs``) as JSONL, atomically."""
    for i, r in enumerate(records):
        if "prompt" not in r or "outputs" not in r:
            raise ValueError(f"records[{i}]: needs fields 'prompt' and 'outputs'")
    write_jsonl(path, records)


def samples_to_vllm(samples: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Group sample records (one per generated solution) into vLLM-style
    records (one per problem, its samples as ``outputs``). The problem's
    fields (``problem_id``, ``problem``, ``ground_truth_answer``,
    ``difficulty``) ride along so :func:`vllm_to_samples` can undo it."""
    out = []
    for key, recs in _group_by_problem(samples, where="samples").items():
        first = recs[0]
        if "prompt" not in first:
            raise ValueError(f"samples: problem {key!r} has no 'prompt' field")
        rec: Dict[str, Any] = {"prompt": first["prompt"]}
        for f in ("problem_id", "problem", "ground_truth_answer", "difficulty"):
            if f in first:
                rec[f] = first[f]
        outs = []
        for r in recs:
            o: Dict[str, Any] = {"text": r["solution"]}
            if r.get("token_ids") is not None:
                o["token_ids"] = list(r["token_ids"])
            outs.append(o)
        rec["outputs"] = outs
        out.append(rec)
    return out


def vllm_to_samples(
    records: Union[PathLike, Sequence[Mapping[str, Any]]],
    problems: Optional[Sequence[Mapping[str, Any]]] = None,
    template=None,
    tokenizer=None,
) -> List[Dict[str, Any]]:
    """Turn vLLM-style records into sample records (one per output).

    Each record is matched to its problem by its own ``problem`` and
    ``ground_truth_answer`` fields when it has them; otherwise by its
    ``prompt``, which must equal ``template`` rendered on one of `problems`
    (the same template and tokenizer used for sampling).

    Returns sample dicts with ``problem_id``, ``sample_index``, ``problem``,
    ``ground_truth_answer``, ``prompt``, ``solution`` and, when the output had
    token ids, ``token_ids`` and ``length`` (their count).
    """
    from .prompts import as_template

    path = None
    if isinstance(records, (str, os.PathLike)):
        path = os.fspath(records)
        records = read_vllm_jsonl(path)
    by_prompt = None
    if problems is not None:
        from .pipeline import as_problems

        probs = as_problems(problems)
        tpl = as_template(template)
        by_prompt = {tpl.render(p["problem"], tokenizer): p for p in probs}
    out = []
    for i, rec in enumerate(records):
        where = f"{path}: record {i + 1}" if path else f"records[{i}]"
        if "problem" in rec and "ground_truth_answer" in rec:
            prob = {"problem_id": rec.get("problem_id", i), "problem": rec["problem"], "ground_truth_answer": rec["ground_truth_answer"]}
            if "difficulty" in rec:
                prob["difficulty"] = rec["difficulty"]
        elif by_prompt is not None:
            prob = by_prompt.get(rec["prompt"])
            if prob is None:
                raise ValueError(f"{where}: its prompt matches no problem rendered with the template (different template or tokenizer?)")
        else:
            raise ValueError(f"{where}: missing fields 'problem' and 'ground_truth_answer'; pass problems= (and template=) to match by prompt")
        for j, o in enumerate(rec["outputs"]):
            s: Dict[str, Any] = {
                "problem_id": prob["problem_id"],
                "sample_index": j,
                "problem": prob["problem"],
                "ground_truth_answer": prob["ground_truth_answer"],
                "prompt": rec["prompt"],
                "solution": o["text"],
            }
            if "difficulty" in prob:
                s["difficulty"] = prob["difficulty"]
            if o.get("token_ids") is not None:
                s["token_ids"] = list(o["token_ids"])
                s["length"] = len(o["token_ids"])
            out.append(s)
    return out


# ---- LLaMA-Factory weighted training set ------------------------------------

def write_llamafactory(
    path: PathLike,
    records: Sequence[Mapping[str, Any]],
    template=None,
    weight_field: str = "weight",
) -> None:
    """Write a weighted training set in the LLaMA-Factory "sharegpt" format
    used by the public O1-Pruner code (its ``wsft`` stage):
    ``{"messages": [system, user, assistant], "weight": w}`` per record.

    Parameters
    ----------
    path : str or path-like
        ``.json`` writes one JSON array (as the public code's ``raw.json``),
        ``.jsonl`` one record per line. Written atomically.
    records : sequence of dict
        Needs ``problem``, ``solution`` and the weight field (e.g. the output
        of :func:`o1pruner.build_dataset`).
    template : PromptTemplate, str or None
        The prompt's system and user turns. None gives the public code's
        training messages exactly: system :data:`PUBLIC_SYSTEM_PROMPT`, user
        the bare problem. Pass the template you sampled with so that training
        sees the sampling prompt (method.md, pitfalls).
    weight_field : str, default "weight"

    See Also
    --------
    llamafactory_dataset_info : the ``dataset_info.json`` entry for this file.
    """
    from .prompts import PUBLIC_TRAIN_TEMPLATE, as_template

    tpl = PUBLIC_TRAIN_TEMPLATE if template is None else as_template(template)
    items = []
    warned = False
    for i, r in enumerate(records):
        for f in ("problem", "solution", weight_field):
            if f not in r or r[f] is None:
                raise ValueError(f"records[{i}]: missing field {f!r}")
        if not warned and isinstance(r.get("prompt"), str) and isinstance(r["problem"], str):
            warned = _warn_template_mismatch(tpl, r, i, template is None)
        w = float(r[weight_field])
        if not math.isfinite(w):
            raise ValueError(f"records[{i}]: field {weight_field!r} is not finite ({w})")
        msgs = tpl.messages(r["problem"]) + [{"role": "assistant", "content": r["solution"]}]
        items.append({"messages": msgs, "weight": w})
    p = os.fspath(path)
    if p.endswith(".jsonl"):
        write_jsonl(p, items)
    else:
        write_json(p, items)


def _warn_template_mismatch(tpl, rec: Mapping[str, Any], i: int, public: bool) -> bool:
    """Warn (once) when the training messages would not carry the prompt a
    sample was drawn with (its stored ``prompt``): the system turn or the
    user turn of `tpl` is not in it. A chat-formatted prompt contains both
    turns verbatim, so it passes. Returns True when it warned."""
    prompt = rec["prompt"]
    rendered = tpl.render(rec["problem"])
    if rendered == prompt:
        return False
    parts = [rendered] if tpl.fn is not None else [tpl.user_text(rec["problem"])] + ([tpl.system] if tpl.system else [])
    if all(p in prompt for p in parts):
        return False
    which = "the public code's template (system prompt + bare problem)" if public else "the template given"
    warnings.warn(
        f"records[{i}]: the sample was drawn with the prompt {prompt[:60]!r}, but the LLaMA-Factory messages use "
        f"{which}, which renders {rendered[:60]!r}: training would see another prompt than "
        "sampling did (method.md, pitfalls); pass the template you sampled with (template=, or --template/--system)",
        RuntimeWarning, stacklevel=3)
    return True


def read_llamafactory(path: PathLike) -> List[Dict[str, Any]]:
    """Read a LLaMA-Factory weighted set (JSON array or JSONL) back into
    ``{"system", "problem", "solution", "weight", "messages"}`` dicts.

    The user turn is returned as ``problem`` verbatim (with whatever template
    text it carries). Errors name the record and field.
    """
    p = os.fspath(path)
    if p.endswith(".jsonl"):
        items = list(read_jsonl(p, required=("messages", "weight")))
    else:
        items = read_json(p)
        if not isinstance(items, list):
            raise JSONLError(p, None, f"expected a JSON array, got {type(items).__name__}")
    out = []
    for i, it in enumerate(items):
        _check_required(p, i + 1, it, ("messages", "weight"))
        msgs = it["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
            raise JSONLError(p, i + 1, "field 'messages' must be a list of {role, content}", field="messages")
        roles = [m["role"] for m in msgs]
        if "user" not in roles or roles[-1] != "assistant":
            raise JSONLError(p, i + 1, f"field 'messages' needs a user turn and a final assistant turn, got roles {roles}", field="messages")
        system = next((m["content"] for m in msgs if m["role"] == "system"), None)
        user = [m["content"] for m in msgs if m["role"] == "user"][-1]
        w = it["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise JSONLError(p, i + 1, f"field 'weight' must be a number, got {type(w).__name__}", field="weight")
        out.append({"system": system, "problem": user, "solution": msgs[-1]["content"], "weight": float(w), "messages": msgs})
    return out


def llamafactory_dataset_info(name: str, file_name: str) -> Dict[str, Any]:
    """The ``dataset_info.json`` entry LLaMA-Factory needs to load a file
    written by :func:`write_llamafactory` (sharegpt formatting with a weight
    column, as in the public O1-Pruner repository)."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "weight": "weight"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    }
