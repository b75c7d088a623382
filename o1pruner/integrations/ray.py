"""O1-Pruner's dataset construction over a Ray cluster with Ray Data.

For sample sets too large for one machine's CPU time (grading millions of
long traces): grading and measuring run in parallel batches on every worker,
the reference statistics, the selection and the rewards per problem after a
group-by, the "dataset" normalisation from Ray's distributed mean and
standard deviation. Every number comes from the same C kernels as
:func:`o1pruner.build_dataset`.

One difference, by necessity: the public code draws the m kept samples of
all problems from one sequential random stream, which a distributed group-by
cannot reproduce. Here each problem gets its own stream seeded by
``(seed, problem_id)``, so the selection is deterministic and independent of
the partitioning, but not the public code's draw. With
``samples_per_problem=None`` (keep all) the result equals build_dataset's.
On one machine, :func:`o1pruner.streaming.build_dataset_streaming`
reproduces build_dataset exactly in bounded memory.

Recipe::

    import ray, ray.data
    from o1pruner.integrations.ray import build_dataset_ray

    ray.init()                                   # or ray.init(address="auto") on a cluster
    samples = ray.data.read_json("s3://bucket/presampled/*.jsonl")
    train = build_dataset_ray(samples, lam=2.0, samples_per_problem=2)
    train.write_json("s3://bucket/o1pruner_train/")   # JSONL shards of weighted records

Needs ``pip install 'o1pruner[ray]'``; nothing else in o1pruner imports Ray.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..kernels.rewards import harmonize_weights, length_harmonizing_reward, reference_stats
from ..pipeline.build import check_build_options
from ..pipeline.generate import lengths_and_correct

__all__ = ["build_dataset_ray"]

_OUT = ("ref_mean_length", "ref_accuracy", "n_samples", "reward", "weight")


def _require_ray():
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError("o1pruner.integrations.ray needs Ray Data: pip install 'o1pruner[ray]' "
                          "(ray[data], pandas, pyarrow)") from exc


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _rows(batch) -> List[Dict[str, Any]]:
    """pandas batch -> records, dropping the holes a table puts where a
    record lacked a field (NaN/None), so missing stays missing."""
    out = []
    for rec in batch.to_dict("records"):
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items() if not _is_missing(v)})
    return out


def _seed_of(seed: int, pid: Any) -> List[int]:
    h = hashlib.sha256(repr(pid).encode()).digest()
    return [int(seed) & 0xFFFFFFFF, int.from_bytes(h[:8], "little")]


def build_dataset_ray(
    ds,
    lam: float = 2.0,
    samples_per_problem: Optional[int] = 2,
    clip: Optional[Tuple[float, float]] = (-2.0, 4.0),
    normalize: Optional[str] = "dataset",
    seed: int = 42,
    *,
    grader: Optional[Callable] = None,
    grade_from: str = "solution",
    batch_size: int = 1024,
):
    """Build O1-Pruner's weighted training set from a Ray Dataset of samples.

    Parameters
    ----------
    ds : ray.data.Dataset
        Sample records (the fields of :func:`o1pruner.build_dataset`):
        ``problem_id``, ``problem``, ``ground_truth_answer``, ``solution``,
        ``length`` (or ``token_ids``), optionally ``correct`` (else graded)
        and ``sample_index`` (orders a problem's samples before selection;
        without it they are ordered by solution text, so that the result
        does not depend on the partitioning).
    lam, samples_per_problem, clip, normalize, grade_from :
        As in :func:`o1pruner.build_dataset`.
    seed : int, default 42
        Seeds each problem's own selection stream (see the module notes).
    grader : callable, optional
        ``grader(texts, golds) -> bools``, shipped to the workers (must be
        picklable); default :func:`o1pruner.grading.grade_responses`.
    batch_size : int, default 1024
        Samples per grading batch.

    Returns
    -------
    ray.data.Dataset
        The kept samples with ``correct``, ``length``, ``ref_mean_length``,
        ``ref_accuracy``, ``n_samples``, ``reward`` and ``weight`` added
        (lazy: nothing runs until it is consumed or written).
    """
    _require_ray()
    check_build_options(lam, samples_per_problem, "random", normalize, clip, grade_from)
    lam = float(lam)

    def measure(batch):
        recs = _rows(batch)
        lengths, correct = lengths_and_correct(recs, None, grader, grade_from, "samples")
        batch = batch.copy()
        batch["length"] = lengths
        batch["correct"] = correct
        return batch

    def per_problem(g):
        g = g.sort_values("sample_index" if "sample_index" in g.columns else "solution", kind="stable")
        g = g.reset_index(drop=True)
        n = len(g)
        L = g["length"].to_numpy(np.float64)
        A = g["correct"].to_numpy(np.float64)
        st = reference_stats(L, A, offsets=[0, n])
        lbar, abar = float(st.mean_length[0]), float(st.accuracy[0])
        if samples_per_problem is None or samples_per_problem >= n:
            keep = np.arange(n)
        else:
            rng = np.random.default_rng(_seed_of(seed, g["problem_id"].iloc[0]))
            keep = rng.permutation(n)[:samples_per_problem]
        r = length_harmonizing_reward(L[keep], A[keep], lbar, abar, lam=lam)
        out = g.iloc[keep].copy()
        out["correct"] = out["correct"].astype(bool)
        out["ref_mean_length"] = lbar
        out["ref_accuracy"] = abar
        out["n_samples"] = n
        out["reward"] = r
        if normalize == "group":
            out["weight"] = harmonize_weights(r, clip=clip, normalize="dataset")  # z-score within the problem
        else:
            out["weight"] = harmonize_weights(r, clip=clip, normalize=None)
        return out

    ds = ds.map_batches(measure, batch_format="pandas", batch_size=int(batch_size))
    ds = ds.groupby("problem_id").map_groups(per_problem, batch_format="pandas")
    if normalize != "dataset":
        return ds
    ds = ds.materialize()  # the statistics and the normalisation read it twice
    mean = float(ds.mean("weight"))
    std = float(ds.std("weight", ddof=0))

    def z(batch):
        batch = batch.copy()
        batch["weight"] = (batch["weight"] - mean) / std if std > 0 else 0.0  # zero spread: no preference
        return batch

    return ds.map_batches(z, batch_format="pandas")
