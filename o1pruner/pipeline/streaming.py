"""O1-Pruner's dataset construction over files of any size, in bounded memory.

:func:`build_dataset_streaming` gives the same training set as
:func:`o1pruner.build_dataset` (same statistics, same seeded selection, same
rewards and weights) while holding only per-problem state in memory: the
samples are read twice from disk, and the per-sample numbers the second pass
needs (problem, rank within the problem, length, correctness) wait in a
compact temporary file (25 bytes per sample). Grading runs once, in chunks,
on the C grader (which releases the GIL and uses every core).

Memory: O(problems + chunk_size), whatever the number of samples.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import data as _io
from ..data.io import JSONLError, PathLike
from ..data.prompts import PUBLIC_TRAIN_TEMPLATE, as_template
from ..data.validators import check_sample
from ..kernels.rewards import harmonize_weights, length_harmonizing_reward
from .build import check_build_options, select_ranks
from .generate import lengths_and_correct

__all__ = ["build_dataset_streaming", "StreamResult", "iter_samples"]


# per-sample numbers kept between the passes
_ROW = np.dtype([("group", "<i8"), ("rank", "<i8"), ("length", "<f8"), ("correct", "u1")])


@dataclass
class StreamResult:
    """Summary of a streamed construction (the records are in the output file).

    Attributes
    ----------
    out : str
        The JSONL file written.
    n_samples, n_problems, n_kept : int
        Samples read, problems, training samples written.
    weight_mean, weight_std : float
        Mean and standard deviation (ddof 0) of the clipped rewards of the kept
        samples (what the "dataset" normalisation uses; the public code prints them).
    seconds : float
        Wall time.
    problems : list of dict
        Per problem: ``problem_id``, ``ref_mean_length``, ``ref_accuracy``,
        ``n_samples`` (the same as ``WeightedDataset.problems``).
    params : dict
    """

    out: str
    n_samples: int
    n_problems: int
    n_kept: int
    weight_mean: float
    weight_std: float
    seconds: float
    problems: List[Dict[str, Any]] = field(repr=False, default_factory=list)
    params: Dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.n_samples / self.seconds if self.seconds > 0 else float("nan")


# ---- reading samples one by one ---------------------------------------------------------

def _iter_json_array(path: str, bufsize: int = 1 << 20) -> Iterator[Tuple[int, Any]]:
    """Items of a JSON array file, decoded incrementally (the public code's
    sample file is one big array)."""
    dec = json.JSONDecoder()
    with open(path, "r", encoding="utf-8") as f:
        buf = f.read(bufsize)
        pos = 0
        ws = re.compile(r"[\s,]*")

        def more() -> bool:
            nonlocal buf, pos
            chunk = f.read(bufsize)
            if not chunk:
                return False
            buf = buf[pos:] + chunk
            pos = 0
            return True

        pos = ws.match(buf, pos).end()
        while pos >= len(buf) and more():
            pos = ws.match(buf, pos).end()
        if pos >= len(buf) or buf[pos] != "[":
            raise JSONLError(path, None, "expected a JSON array of samples")
        pos += 1
        i = 0
        while True:
            pos = ws.match(buf, pos).end()
            while pos >= len(buf):
                if not more():
                    raise JSONLError(path, None, "unterminated JSON array (file cut short?)")
                pos = ws.match(buf, pos).end()
            if buf[pos] == "]":
                return
            while True:
                try:
                    obj, end = dec.raw_decode(buf, pos)
                    break
                except json.JSONDecodeError as e:
                    if not more():
                        raise JSONLError(path, i + 1, f"not valid JSON ({e})") from None
            i += 1
            yield i, obj
            pos = end


def _resolve_format(path: str, format: str) -> str:
    if format != "auto":
        return format
    if path.endswith(".json"):
        return "o1pruner"
    first = next(_io.iter_jsonl(path, torn_tail="drop"), (None, None))[1]
    return "vllm" if isinstance(first, dict) and "outputs" in first else "jsonl"


def _iter_lazy(path: str, fmt: str, read) -> Iterator[Tuple[str, Callable[[], Dict[str, Any]]]]:
    """The samples of a file already validated by a first pass, as
    ``(where, parse)``: for our JSONL only the lines asked for are parsed
    (the second pass keeps m of K samples)."""
    if fmt != "jsonl":
        for where, rec in read():
            yield where, (lambda rec=rec: rec)
        return
    with open(path, "rb") as f:
        line = 0
        for raw in f:
            line += 1
            if raw.strip():
                yield f"{path}:{line}", (lambda raw=raw: json.loads(raw))


def iter_samples(path: PathLike, *, format: str = "auto", k: Optional[int] = None,
                 problems: Optional[Sequence[Any]] = None, template: Any = None,
                 tokenizer: Any = None) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Stream sample records from a file as ``(where, record)`` pairs.

    The files :func:`o1pruner.load_samples` reads, one record at a time:
    "jsonl" (our sample records), "vllm" (one line per prompt with its
    ``outputs``), "o1pruner" (the public JSON array, K consecutive samples
    per problem, with the public code's fields problem, solution, answer,
    ground_truth_answer; needs `k`). "auto" picks by extension and first record.
    ``where`` is ``path:line`` (``path:line:output`` for vLLM files).
    Records of the public format get ``problem_id`` and ``sample_index``.
    """
    path = os.fspath(path)
    fmt = _resolve_format(path, format)
    if fmt == "jsonl":
        for line, rec in _io.iter_jsonl(path, required=("problem", "solution", "ground_truth_answer"),
                                        check=check_sample):
            yield f"{path}:{line}", rec
    elif fmt == "vllm":
        for line, rec in _io.iter_jsonl(path, required=("prompt", "outputs")):
            try:
                outs = _io.vllm_to_samples([rec], problems=problems, template=template, tokenizer=tokenizer)
            except (ValueError, KeyError, TypeError) as e:
                raise JSONLError(path, line, str(e).replace("records[0]: ", "")) from None
            for j, s in enumerate(outs):
                if "problem_id" not in rec and problems is None:
                    s["problem_id"] = line  # vllm_to_samples numbers records within its call
                yield f"{path}:{line}:{j}", s
    elif fmt == "o1pruner":
        if k is None:
            raise ValueError("k: required to read the public O1-Pruner sample JSON (K consecutive samples per problem)")
        k = _io.check_k(k)
        items = _io.iter_jsonl(path) if path.endswith(".jsonl") else _iter_json_array(path)
        first_problem = None
        n = 0
        for n, item in items:
            i = n - 1
            _io.check_required(path, n, item, _io.PUBLIC_FIELDS)
            g, j = divmod(i, k)
            if j == 0:
                first_problem = item["problem"]
            elif item["problem"] != first_problem:
                raise JSONLError(path, n, f"field 'problem' differs from item {g * k + 1}'s: with k={k} items "
                                 f"{g * k + 1}..{g * k + k} should be samples of one problem (wrong k?)", field="problem")
            rec = dict(item)
            rec["problem_id"], rec["sample_index"] = g, j
            yield f"{path}:{n}", rec
        if n % k:
            raise JSONLError(path, None, f"holds {n} samples, not a multiple of k={k}")
    else:
        raise ValueError(f"format: must be 'auto', 'jsonl', 'o1pruner' or 'vllm', got {format!r}")


def _chunks(it: Iterator[Tuple[str, Dict[str, Any]]], size: int):
    buf: List[Tuple[str, Dict[str, Any]]] = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


_WHERE = re.compile(r"^samples\[(\d+)\]")


def _measure(chunk, tokenizer, grader, grade_from) -> Tuple[np.ndarray, np.ndarray]:
    """Lengths and correctness of a chunk (the pipeline's own rules), with
    errors pointing at the file line instead of the chunk position."""
    recs = [r for _, r in chunk]
    try:
        return lengths_and_correct(recs, tokenizer, grader, grade_from, "samples")
    except ValueError as e:
        m = _WHERE.match(str(e))
        if m:
            raise ValueError(chunk[int(m.group(1))][0] + str(e)[m.end():]) from None
        raise


# ---- the construction -----------------------------------------------------------------

class _Groups:
    """Problem key -> dense group index (first-appearance order), with the
    per-group sums of lengths and correctness and the sample counts."""

    def __init__(self):
        self.index: Dict[Any, int] = {}
        self.ids: List[Any] = []
        self.first: List[Dict[str, Any]] = []
        self.sum_len = np.zeros(1024)
        self.sum_cor = np.zeros(1024)
        self.count = np.zeros(1024, dtype=np.int64)
        self._auto = 0
        self._prev_problem: Any = object()

    def key(self, rec: Mapping[str, Any], where: str):
        """The grouping rule of o1pruner.io: problem_id, else consecutive
        equal problem texts."""
        pid = rec.get("problem_id")
        if pid is not None:
            return tuple(pid) if isinstance(pid, list) else pid
        if rec["problem"] != self._prev_problem:
            self._auto += 1
            self._prev_problem = rec["problem"]
        return ("__auto__", self._auto)

    def add(self, key, rec) -> Tuple[int, int]:
        g = self.index.get(key)
        if g is None:
            g = len(self.ids)
            self.index[key] = g
            self.ids.append(rec.get("problem_id", g) if rec.get("problem_id") is not None else g)
            self.first.append({"difficulty": rec["difficulty"]} if "difficulty" in rec else {})
            if g >= self.count.size:
                for name in ("sum_len", "sum_cor", "count"):
                    a = getattr(self, name)
                    setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
        rank = int(self.count[g])
        self.count[g] += 1
        return g, rank



def _read_rows(f, n: int) -> np.ndarray:
    rows = np.fromfile(f, dtype=_ROW, count=n)
    if rows.size != n:  # pragma: no cover - the temp file is ours
        raise RuntimeError("streaming: temporary file shorter than expected")
    return rows


def build_dataset_streaming(
    samples: PathLike,
    out: PathLike,
    lam: float = 2.0,
    samples_per_problem: Optional[int] = 2,
    clip: Optional[Tuple[float, float]] = (-2.0, 4.0),
    normalize: Optional[str] = "dataset",
    seed: int = 42,
    *,
    selection: str = "random",
    k: Optional[int] = None,
    tokenizer: Any = None,
    grader: Optional[Callable] = None,
    grade_from: str = "solution",
    format: str = "auto",
    problems: Optional[Sequence[Any]] = None,
    template: Any = None,
    out_format: str = "records",
    chunk_size: int = 2048,
    tmp_dir: Optional[PathLike] = None,
    progress: bool = False,
) -> StreamResult:
    """Build O1-Pruner's weighted training set from a samples file of any
    size, in bounded memory.

    The same construction as :func:`o1pruner.build_dataset` (all parameters
    with the same name mean the same), and the same records, written to
    `out` in file order (build_dataset lists them problem by problem in
    shuffle order; the set and every value are the same).

    Parameters
    ----------
    samples : path
        A samples file (see :func:`iter_samples` for the formats).
    out : path
        Output JSONL, written atomically. ``out_format="records"``: the
        sample records plus ``correct``, ``length``, ``ref_mean_length``,
        ``ref_accuracy``, ``n_samples``, ``reward``, ``weight`` (what
        ``WeightedDataset.to_jsonl`` writes); ``"llamafactory"``: the
        LLaMA-Factory weighted set (messages + weight, with `template`;
        default the public code's training messages).
    lam, samples_per_problem, clip, normalize, seed, selection, k, tokenizer,
    grader, grade_from : see :func:`o1pruner.build_dataset`
    format : str, default "auto"
    problems, template, tokenizer
        For vLLM files whose lines lack the problem (matched by prompt).
    chunk_size : int, default 2048
        Samples per chunk (graded together); memory grows with it.
    tmp_dir : path, optional
        Where the temporary per-sample file goes (default: next to `out`).
    progress : bool, default False
        tqdm progress bars over samples.

    Returns
    -------
    StreamResult

    Raises
    ------
    ValueError, JSONLError
        Like build_dataset; errors name the file and line.
    """
    t0 = time.perf_counter()
    check_build_options(lam, samples_per_problem, selection, normalize, clip, grade_from)
    if out_format not in ("records", "llamafactory"):
        raise ValueError(f"out_format: must be 'records' or 'llamafactory', got {out_format!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size: must be an int >= 1, got {chunk_size!r}")
    out = os.fspath(out)
    src = os.fspath(samples)
    fmt = _resolve_format(src, format)
    read = lambda: iter_samples(src, format=fmt, k=k, problems=problems, template=template,  # noqa: E731
                                tokenizer=tokenizer)
    bar = _bar(progress, "grade + measure")

    groups = _Groups()
    folder = os.fspath(tmp_dir) if tmp_dir is not None else (os.path.dirname(os.path.abspath(out)) or ".")
    fd, tmp = tempfile.mkstemp(prefix=".o1p-stream-", suffix=".bin", dir=folder)
    try:
        # pass 1: key, rank, length, correctness of every sample -> temp file;
        # per-problem sums in memory
        n = 0
        with os.fdopen(fd, "wb") as f:
            for chunk in _chunks(read(), chunk_size):
                rows = np.empty(len(chunk), dtype=_ROW)
                for j, (where, rec) in enumerate(chunk):
                    if not isinstance(rec.get("problem"), str) and rec.get("problem_id") is None:
                        raise ValueError(f"{where}: missing field 'problem_id' (or 'problem' to group by)")
                    rows["group"][j], rows["rank"][j] = groups.add(groups.key(rec, where), rec)
                lengths, correct = _measure(chunk, tokenizer, grader, grade_from)
                rows["length"], rows["correct"] = lengths, correct
                # float64 sums in sample order, as reference_stats does
                np.add.at(groups.sum_len, rows["group"], lengths)
                np.add.at(groups.sum_cor, rows["group"], correct.astype(np.float64))
                rows.tofile(f)
                n += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if bar is not None:
            bar.close()
        if n == 0:
            raise ValueError(f"{src}: empty")
        G = len(groups.ids)
        count = groups.count[:G]
        mean_len = groups.sum_len[:G] / count
        acc = groups.sum_cor[:G] / count
        sel = select_ranks(count, samples_per_problem, selection, seed)

        def kept(rows: np.ndarray) -> np.ndarray:
            if sel is None:
                return np.ones(rows.size, dtype=bool)
            return (sel[rows["group"]] == rows["rank"][:, None]).any(axis=1)

        def rewards(rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
            r = rows[mask]
            if r.size == 0:
                return np.empty(0)
            g = r["group"]
            return length_harmonizing_reward(r["length"], r["correct"].astype(np.float64), mean_len[g], acc[g],
                                             lam=float(lam))

        def clipped(r: np.ndarray) -> np.ndarray:
            return r if (clip is None or r.size == 0) else harmonize_weights(r, clip=clip, normalize=None)

        # normalisation statistics over the kept samples: two passes over the
        # temp file (mean, then centred squares), float64. Slot 0..G-1 are
        # the problems (used by normalize="group"), slot G the whole set.
        n_kept = 0
        s1 = np.zeros(G + 1)
        cnt = np.zeros(G + 1)
        s2 = np.zeros(G + 1)
        mean = np.zeros(G + 1)
        for second in (False, True):
            for rows in _temp_chunks(tmp, n, chunk_size):
                m = kept(rows)
                c = clipped(rewards(rows, m))
                at = rows["group"][m]
                if not second:
                    np.add.at(s1, at, c)
                    np.add.at(cnt, at, 1.0)
                    s1[G] += c.sum()
                    cnt[G] += c.size
                    n_kept += c.size
                else:
                    np.add.at(s2, at, (c - mean[at]) ** 2)
                    s2[G] += np.sum((c - mean[G]) ** 2)
            if not second:
                mean = np.divide(s1, cnt, out=np.zeros_like(s1), where=cnt > 0)
        std = np.sqrt(np.divide(s2, cnt, out=np.zeros_like(s2), where=cnt > 0))
        gm, gs = float(mean[G]), float(std[G])

        # pass 2: the records again, in step with the temp file
        tpl = PUBLIC_TRAIN_TEMPLATE if template is None else as_template(template)
        bar2 = _bar(progress, "write")

        def records():
            with open(tmp, "rb") as f:
                for chunk in _chunks(_iter_lazy(src, fmt, read), chunk_size):
                    rows = _read_rows(f, len(chunk))
                    m = kept(rows)
                    r = rewards(rows, m)
                    c = clipped(r)
                    if normalize is None:
                        w = c
                    else:
                        at = rows["group"][m] if normalize == "group" else np.full(c.size, G, dtype=np.int64)
                        sd = std[at]
                        # zero spread: no preference, weight 0 (as harmonize_weights)
                        w = np.where(sd > 0, (c - mean[at]) / np.where(sd > 0, sd, 1.0), 0.0)
                    for j, i in enumerate(np.flatnonzero(m).tolist()):
                        yield _out_record(chunk[i][1](), rows[i], groups, mean_len, acc, count, r[j], w[j],
                                          out_format, tpl)
                    if bar2 is not None:
                        bar2.update(len(chunk))

        _io.write_jsonl(out, records())
        if bar2 is not None:
            bar2.close()
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    probs = []
    for g in range(G):
        p = {"problem_id": groups.ids[g], "ref_mean_length": float(mean_len[g]), "ref_accuracy": float(acc[g]),
             "n_samples": int(count[g])}
        p.update(groups.first[g])
        probs.append(p)
    return StreamResult(out=out, n_samples=n, n_problems=G, n_kept=n_kept, weight_mean=gm, weight_std=gs,
                        seconds=time.perf_counter() - t0, problems=probs,
                        params={"lam": float(lam), "samples_per_problem": samples_per_problem,
                                "clip": None if clip is None else list(clip), "normalize": normalize, "seed": seed,
                                "selection": selection, "grade_from": grade_from, "out_format": out_format})


def _temp_chunks(path: str, n: int, size: int):
    with open(path, "rb") as f:
        for lo in range(0, n, size):
            yield _read_rows(f, min(size, n - lo))


def _out_record(rec, row, groups: _Groups, mean_len, acc, count, reward: float, weight: float, out_format, tpl):
    g = int(row["group"])
    if out_format == "llamafactory":
        msgs = tpl.messages(rec["problem"]) + [{"role": "assistant", "content": rec["solution"]}]
        return {"messages": msgs, "weight": float(weight)}
    r = dict(rec)
    if r.get("problem_id") is None:
        r["problem_id"] = groups.ids[g]
    r.setdefault("sample_index", int(row["rank"]))
    L = float(row["length"])
    r["correct"] = bool(row["correct"])
    r["length"] = int(L) if L.is_integer() else L
    r["ref_mean_length"] = float(mean_len[g])
    r["ref_accuracy"] = float(acc[g])
    r["n_samples"] = int(count[g])
    r["reward"] = float(reward)
    r["weight"] = float(weight)
    return r


def _bar(progress: bool, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=desc, unit="sample")
