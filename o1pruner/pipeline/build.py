"""Building the weighted training set (method.md step 2) exactly as the public
O1-Pruner code does, on the C kernels: reference statistics per problem,
length-harmonizing rewards, normalised weights, the seeded selection of
samples per problem; and the baselines' sets: SFT-shortest and DPO pairs."""

from __future__ import annotations

import math
import os
import random
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import data as _io
from ..data.dataset import RESPONSE_FIELDS, PairDataset, WeightedDataset
from ..data.io import PathLike
from ..data.prompts import as_template
from ..kernels.rewards import harmonize_weights, length_harmonizing_reward, reference_stats
from .generate import lengths_and_correct
from .presample import load_samples

__all__ = ["build_dataset", "sft_shortest_dataset", "dpo_pairs", "check_build_options", "select_ranks"]


# ---- the weighted dataset -------------------------------------------------------------




def _prepare(samples, k, tokenizer, grader, grade_from, format):
    where = os.fspath(samples) if isinstance(samples, (str, os.PathLike)) else "samples"
    recs = load_samples(samples, format=format, k=k, tokenizer=tokenizer)
    if not recs:
        raise ValueError(f"{where}: empty")
    if k is not None and not isinstance(samples, (str, os.PathLike)) and not any("problem_id" in r for r in recs):
        k = _io.check_k(k)
        if len(recs) % k:
            raise ValueError(f"samples: {len(recs)} samples is not a multiple of k={k}")
        for i, r in enumerate(recs):
            r["problem_id"], r["sample_index"] = divmod(i, k)
    groups = _io.group_by_problem(recs, where=where)
    order = list(groups)
    for g, key in enumerate(order):
        for j, r in enumerate(groups[key]):
            if r.get("problem_id") is None:
                r["problem_id"] = g
            r.setdefault("sample_index", j)
    flat = [r for key in order for r in groups[key]]
    offsets = np.cumsum([0] + [len(groups[key]) for key in order])
    lengths, correct = lengths_and_correct(flat, tokenizer, grader, grade_from, where if isinstance(samples, (str, os.PathLike)) else "samples")
    return flat, order, offsets, lengths, correct


def check_build_options(lam, samples_per_problem, selection: str = "random", normalize: Optional[str] = "dataset",
                         clip: Any = None, grade_from: str = "solution") -> None:
    """Validate the options of :func:`build_dataset` (shared with
    :func:`o1pruner.build_dataset_streaming` and the Ray builder) before any
    sample is read or graded; each error names its option."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam: must be a finite number >= 0, got {lam!r}")
    if samples_per_problem is not None and (isinstance(samples_per_problem, bool)
                                            or not isinstance(samples_per_problem, (int, np.integer))
                                            or samples_per_problem < 1):
        raise ValueError(f"samples_per_problem: must be an int >= 1 or None, got {samples_per_problem!r}")
    if selection not in ("random", "first"):
        raise ValueError(f"selection: must be 'random' or 'first', got {selection!r}")
    if normalize not in ("dataset", "group", None):
        raise ValueError(f"normalize: must be 'dataset', 'group' or None, got {normalize!r}")
    if grade_from not in ("solution", "answer"):
        raise ValueError(f"grade_from: must be 'solution' or 'answer', got {grade_from!r}")
    if clip is not None:
        harmonize_weights([0.0], clip=clip, normalize=None)  # validates the (low, high) pair


def select_ranks(sizes: np.ndarray, m: Optional[int], selection: str, seed: int) -> Optional[np.ndarray]:
    """Ranks of the samples kept per problem, (G, m) padded with -1; None
    keeps all. The public code's draws: one ``random.Random(seed)``
    shuffling each problem's list in turn (the permutation depends only on
    its size), or the first m with ``selection="first"``."""
    if m is None:
        return None
    rng = random.Random(seed)
    sel = np.full((sizes.size, m), -1, dtype=np.int64)
    for g, n in enumerate(sizes.tolist()):
        idx = list(range(n))
        if selection == "random":
            rng.shuffle(idx)
        keep = idx[:m]
        sel[g, :len(keep)] = keep
    return sel


def build_dataset(
    samples: Union[PathLike, Sequence[Mapping[str, Any]]],
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
    out: Optional[PathLike] = None,
    llamafactory: Optional[PathLike] = None,
    template: Any = None,
) -> WeightedDataset:
    """Build O1-Pruner's weighted training set (method.md step 2), exactly
    as the public code's ``construct_dataset.py`` does by default.

    For every problem (in order of first appearance): Lbar_ref and Abar_ref
    over all its K samples; a seeded shuffle of its samples (one
    ``random.Random(seed)`` shared by all problems, shuffling each problem's
    list in turn, like the public code's ``random.seed(42)`` +
    ``random.shuffle``); the first `samples_per_problem` are kept;
    ``w = (Lbar_ref - L) / L + lam * (A - Abar_ref)``; clip; z-normalise over
    the kept samples. Computed by :func:`o1pruner.reference_stats`,
    :func:`o1pruner.length_harmonizing_reward` and
    :func:`o1pruner.harmonize_weights` (C core).

    Parameters
    ----------
    samples : path or list of dict
        Sample records (see :func:`load_samples` for the files accepted).
        Each needs ``problem``, ``ground_truth_answer``, ``solution``;
        ``length`` and ``correct`` are computed when absent (with
        `tokenizer` / `grader`). Grouped by ``problem_id`` (or, without ids,
        by `k` consecutive records, as in the public format).
    lam : float, default 2.0
        The accuracy weight lambda (paper: 2 for Marco-o1; the code used 5
        for QwQ).
    samples_per_problem : int or None, default 2
        m, the samples kept per problem (the public code's 2). A problem with
        fewer samples keeps all of them. None keeps all (no shuffle needed).
    clip : (low, high) or None, default (-2, 4)
        ``w <= low -> low``, ``w > high -> high``; None: no clipping.
    normalize : {"dataset", "group", None}, default "dataset"
        Z-normalisation over the whole training set (public code), within
        each problem, or none. Zero spread gives zeros (the public code
        would divide by zero).
    seed : int, default 42
        Seed of the shuffle (the public code's 42).
    selection : {"random", "first"}, default "random"
        "random": the seeded shuffle above; "first": the first m samples of
        each problem in file order.
    k : int, optional
        Samples per problem when records carry no ``problem_id`` (the public
        JSON format).
    tokenizer : optional
        Counts tokens of solutions that have no ``length``.
    grader : callable, optional
        Grades samples that have no ``correct``: ``grader(texts, golds)``.
        Default :mod:`o1pruner.grading` (``grade_responses`` on solutions,
        ``grade_many`` on answers).
    grade_from : {"solution", "answer"}, default "solution"
        Grade the whole solution with our extractor (last ``\\boxed{}``;
        method.md pitfalls), or the stored ``answer`` field as the public
        code does (its extractor took the first ``\\boxed{}``).
    format : str, default "auto"
        File format of a `samples` path (see :func:`load_samples`).
    out : path, optional
        Also write the records as JSONL.
    llamafactory : path, optional
        Also write the LLaMA-Factory weighted set (see
        :func:`o1pruner.io.write_llamafactory`), with `template` (default:
        the public code's training messages).

    Returns
    -------
    WeightedDataset

    Raises
    ------
    ValueError
        No samples, missing fields (naming the line or index), non-positive
        lengths, bad options.

    Examples
    --------
    >>> import o1pruner
    >>> samples = [
    ...     {"problem_id": 0, "problem": "1+1", "ground_truth_answer": "2", "solution": "s", "length": L, "correct": c}
    ...     for L, c in [(100, True), (300, True), (200, False), (400, True)]
    ... ]
    >>> ds = o1pruner.build_dataset(samples, samples_per_problem=None, normalize=None)
    >>> [round(r["weight"], 3) for r in ds]
    [2.0, 0.333, -1.25, 0.125]
    """
    check_build_options(lam, samples_per_problem, selection, normalize, clip, grade_from)
    flat, order, offsets, lengths, correct = _prepare(samples, k, tokenizer, grader, grade_from, format)

    stats = reference_stats(lengths, correct, offsets=offsets)
    sel = select_ranks(np.diff(offsets), samples_per_problem, selection, seed)
    keep: List[int] = []
    for g in range(len(order)):
        lo, hi = int(offsets[g]), int(offsets[g + 1])
        keep.extend(range(lo, hi) if sel is None else [lo + int(r) for r in sel[g] if r >= 0])
    keep_a = np.asarray(keep, dtype=np.int64)
    lbar, abar = stats.per_sample()
    reward = length_harmonizing_reward(lengths[keep_a], correct[keep_a], lbar[keep_a], abar[keep_a], lam=float(lam))
    clipped = harmonize_weights(reward, clip=clip, normalize=None)
    weight = harmonize_weights(reward, clip=clip, normalize=normalize, group=stats.inverse[keep_a] if normalize == "group" else None)

    records = []
    for j, i in enumerate(keep):
        r = dict(flat[i])
        g = int(stats.inverse[i])
        L = lengths[i]
        r["correct"] = bool(correct[i])
        r["length"] = int(L) if float(L).is_integer() else float(L)
        r["ref_mean_length"] = float(stats.mean_length[g])
        r["ref_accuracy"] = float(stats.accuracy[g])
        r["n_samples"] = int(stats.count[g])
        r["reward"] = float(reward[j])
        r["weight"] = float(weight[j])
        records.append(r)
    problems = []
    for g, key in enumerate(order):
        first = flat[int(offsets[g])]
        p = {"problem_id": first["problem_id"], "ref_mean_length": float(stats.mean_length[g]),
             "ref_accuracy": float(stats.accuracy[g]), "n_samples": int(stats.count[g])}
        if "difficulty" in first:
            p["difficulty"] = first["difficulty"]
        problems.append(p)
    ds = WeightedDataset(
        records=records,
        problems=problems,
        weight_mean=float(np.mean(clipped)),
        weight_std=float(np.std(clipped)),
        params={"lam": float(lam), "samples_per_problem": samples_per_problem, "clip": None if clip is None else list(clip),
                "normalize": normalize, "seed": seed, "selection": selection, "grade_from": grade_from},
    )
    if out is not None:
        ds.to_jsonl(out)
    if llamafactory is not None:
        ds.to_llamafactory(llamafactory, template=template)
    return ds


def sft_shortest_dataset(
    samples: Union[PathLike, Sequence[Mapping[str, Any]]],
    n: int = 2,
    *,
    k: Optional[int] = None,
    tokenizer: Any = None,
    grader: Optional[Callable] = None,
    grade_from: str = "solution",
    format: str = "auto",
) -> WeightedDataset:
    """The paper's SFT baseline: for each problem, its `n` shortest correct
    samples, each with weight 1 (plain supervised fine-tuning). Problems
    with no correct sample contribute nothing; ties in length keep file order.

    Returns a :class:`WeightedDataset` (``reward`` is NaN-free: set to 1).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: must be an int >= 1, got {n!r}")
    flat, order, offsets, lengths, correct = _prepare(samples, k, tokenizer, grader, grade_from, format)
    stats = reference_stats(lengths, correct, offsets=offsets)
    records = []
    for g in range(len(order)):
        idx = [i for i in range(int(offsets[g]), int(offsets[g + 1])) if correct[i]]
        idx.sort(key=lambda i: lengths[i])
        for i in idx[:n]:
            r = dict(flat[i])
            r.update(correct=True, length=int(lengths[i]) if float(lengths[i]).is_integer() else float(lengths[i]),
                     ref_mean_length=float(stats.mean_length[g]), ref_accuracy=float(stats.accuracy[g]),
                     n_samples=int(stats.count[g]), reward=1.0, weight=1.0)
            records.append(r)
    if not records:
        raise ValueError("samples: no correct sample in any problem, the SFT-shortest set is empty")
    problems = [{"problem_id": flat[int(offsets[g])]["problem_id"], "ref_mean_length": float(stats.mean_length[g]),
                 "ref_accuracy": float(stats.accuracy[g]), "n_samples": int(stats.count[g])} for g in range(len(order))]
    return WeightedDataset(records, problems, 1.0, 0.0, {"baseline": "sft_shortest", "n": n})



def _as_number(x: float) -> Union[int, float]:
    return int(x) if float(x).is_integer() else float(x)


def dpo_pairs(
    samples: Union[PathLike, Sequence[Mapping[str, Any]]],
    n: int = 1,
    *,
    k: Optional[int] = None,
    tokenizer: Any = None,
    grader: Optional[Callable] = None,
    grade_from: str = "solution",
    format: str = "auto",
    out: Optional[PathLike] = None,
) -> PairDataset:
    """The paper's DPO baseline's preference pairs (method.md "Baselines"):
    for each problem, chosen = its shortest correct sample, rejected = its
    longest sample (correct or not), trained with :func:`o1pruner.dpo_loss`
    (``TrainConfig(objective="dpo")``).

    With ``n > 1`` each of the `n` shortest correct samples is paired with
    the longest one (``n=2`` is the paper's "2 shortest correct vs longest").
    Ties in length go to the sample first in file order (the shortest
    correct) and to the last (the longest). Problems are skipped when they
    have no correct sample ("no_correct") or when no sample is strictly
    longer than the shortest correct one, e.g. every sample of the same
    length ("no_longer"; a chosen sample is never also the rejected one); a
    chosen sample not strictly shorter than the longest is left out. The
    counts are in :meth:`PairDataset.counts` and
    :meth:`PairDataset.summary`.

    Parameters
    ----------
    samples : path or list of dict
        Sample records, as for :func:`build_dataset` (``length`` and
        ``correct`` computed when absent, with `tokenizer` / `grader`).
    n : int, default 1
        Chosen samples per problem.
    k, tokenizer, grader, grade_from, format
        As for :func:`build_dataset`.
    out : path, optional
        Also write the pairs as JSONL (one pair a line, atomically);
        :meth:`PairDataset.from_jsonl` and the trainer read it back.

    Returns
    -------
    PairDataset

    Raises
    ------
    ValueError
        No samples, missing fields, bad `n`, or no problem giving a pair.

    Examples
    --------
    >>> import o1pruner
    >>> samples = [
    ...     {"problem_id": p, "problem": "1+1", "ground_truth_answer": "2", "solution": "s", "length": L, "correct": c}
    ...     for p, L, c in [(0, 100, True), (0, 300, False), (0, 200, True), (1, 50, False), (2, 80, True)]
    ... ]
    >>> pairs = o1pruner.dpo_pairs(samples)
    >>> [(r["chosen"]["length"], r["rejected"]["length"]) for r in pairs]
    [(100, 300)]
    >>> pairs.counts()["no_correct"], pairs.counts()["no_longer"]
    (1, 1)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: must be an int >= 1, got {n!r}")
    flat, order, offsets, lengths, correct = _prepare(samples, k, tokenizer, grader, grade_from, format)
    stats = reference_stats(lengths, correct, offsets=offsets)
    records: List[Dict[str, Any]] = []
    problems: List[Dict[str, Any]] = []
    for g in range(len(order)):
        lo, hi = int(offsets[g]), int(offsets[g + 1])
        idx = range(lo, hi)
        good = sorted((i for i in idx if correct[i]), key=lambda i: lengths[i])  # stable: file order on ties
        longest = max(reversed(idx), key=lambda i: lengths[i])  # the last of the longest
        chosen = [i for i in good[:n] if lengths[i] < lengths[longest]]
        problem = {"problem_id": flat[lo]["problem_id"], "ref_mean_length": float(stats.mean_length[g]),
                   "ref_accuracy": float(stats.accuracy[g]), "n_samples": int(stats.count[g]),
                   "pairs": len(chosen), "skipped": None if chosen else ("no_correct" if not good else "no_longer")}
        problems.append(problem)
        for i in chosen:
            sides = []
            for j in (i, longest):
                r = dict(flat[j])
                r["length"], r["correct"] = _as_number(lengths[j]), bool(correct[j])
                sides.append(r)
            c, rj = sides
            shared = {key: v for key, v in c.items() if key not in RESPONSE_FIELDS and key in rj and rj[key] == v}
            rec: Dict[str, Any] = dict(shared)
            rec.update(ref_mean_length=problem["ref_mean_length"], ref_accuracy=problem["ref_accuracy"],
                       n_samples=problem["n_samples"])
            rec["chosen"] = {key: v for key, v in c.items() if key not in shared}
            rec["rejected"] = {key: v for key, v in rj.items() if key not in shared}
            records.append(rec)
    if not records:
        raise ValueError("samples: no problem gives a pair (none has a correct sample shorter than its longest "
                         "sample); the DPO set is empty")
    ds = PairDataset(records, problems, {"baseline": "dpo", "n": int(n), "grade_from": grade_from})
    if out is not None:
        ds.to_jsonl(out)
    return ds
