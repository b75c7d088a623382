"""Comparing evaluations: the paired comparison of a fine-tuned model with
its reference (accuracy, length, AES with confidence intervals), per
difficulty bucket, and the text table the CLI and the demo print."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.dataset import WeightedDataset
from ..kernels.rewards import reference_stats
from .evaluate import DEFAULT_ACCURACY_BINS, EvalResult, bin_of
from .metrics import aes
from .presample import load_samples

__all__ = ["Table", "compare", "compare_buckets", "difficulty_report"]


class Table:
    """A small table (list of row dicts) that prints as Markdown; returned
    by :func:`compare` when pandas is not installed."""

    def __init__(self, rows: List[Dict[str, Any]], columns: Optional[List[str]] = None):
        self.rows = rows
        self.columns = columns or (list(rows[0]) if rows else [])

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns).set_index(self.columns[0])

    def to_markdown(self) -> str:
        def fmt(v):
            if isinstance(v, float):
                return "" if math.isnan(v) else f"{v:.4g}"
            if isinstance(v, tuple):
                if all(isinstance(x, float) and math.isnan(x) for x in v):
                    return ""
                return "[" + ", ".join(fmt(x) for x in v) + "]"
            return str(v)

        cells = [[fmt(r.get(c)) for c in self.columns] for r in self.rows]
        width = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(self.columns)]
        line = lambda xs: "| " + " | ".join(x.ljust(w) for x, w in zip(xs, width)) + " |"  # noqa: E731
        return "\n".join([line(self.columns), "|" + "|".join("-" * (w + 2) for w in width) + "|"] + [line(r) for r in cells])

    def __str__(self) -> str:
        return self.to_markdown()

    __repr__ = __str__

    def __len__(self) -> int:
        return len(self.rows)


def _paired(ref: EvalResult, new: EvalResult):
    """Per-problem (mean length, mean correct) of both on their common
    problems, or None when they share none."""
    def per_problem(res):
        d: Dict[Any, List[float]] = {}
        for s in res.samples:
            e = d.setdefault(s["problem_id"], [0.0, 0.0, 0])
            e[0] += s["length"]
            e[1] += float(s["correct"])
            e[2] += 1
        return {k: (v[0] / v[2], v[1] / v[2]) for k, v in d.items()}

    a, b = per_problem(ref), per_problem(new)
    common = [k for k in a if k in b]
    if not common:
        return None
    A = np.array([a[k] for k in common])
    B = np.array([b[k] for k in common])
    return A[:, 0], A[:, 1], B[:, 0], B[:, 1]


def compare(
    ref: EvalResult,
    new: Union[EvalResult, Sequence[EvalResult], Mapping[str, EvalResult]],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    sign_convention: str = "stated",
    as_pandas: Optional[bool] = None,
):
    """Table-2-style comparison: accuracy, mean length, delta length, delta
    accuracy and AES of each model against the reference.

    ``delta_length = (L - L_ref) / L_ref`` (negative: shorter),
    ``delta_accuracy = Acc - Acc_ref`` (in points of a fraction: 0.01 is one
    point), and ``AES`` from :func:`o1pruner.aes` with the paper's stated
    formula (``dL + 3|dA|`` if ``dA >= 0`` else ``dL - 5|dA|``, dL and dA
    relative to the reference). When both results cover the same problems,
    paired bootstrap intervals (resampling problems) are given for the
    deltas and the AES.

    Parameters
    ----------
    ref : EvalResult
        The reference (baseline) model.
    new : EvalResult, list of EvalResult or {name: EvalResult}
    confidence, n_boot, seed
        Interval settings.
    sign_convention : {"stated", "paper_table"}
        See :func:`o1pruner.aes`.
    as_pandas : bool or None
        None: a pandas DataFrame when pandas is importable, else a
        :class:`Table` (prints as Markdown). True / False force either.

    Returns
    -------
    pandas.DataFrame or Table
        One row per model (the reference first), indexed by name.
    """
    if isinstance(new, EvalResult):
        items = [(new.name, new)]
    elif isinstance(new, Mapping):
        items = list(new.items())
    else:
        items = [(r.name, r) for r in new]
    if not items:
        raise ValueError("new: no result to compare")
    if ref.accuracy <= 0:
        raise ValueError("ref: accuracy is 0, so the relative accuracy change (and AES) is undefined")
    rows = [_row(ref.name, ref, ref, None, sign_convention, confidence, n_boot, seed)]
    for name, res in items:
        rows.append(_row(name, res, ref, _paired(ref, res), sign_convention, confidence, n_boot, seed))
    cols = list(rows[0])
    table = Table(rows, cols)
    if as_pandas is False:
        return table
    try:
        return table.to_pandas()
    except ImportError:
        if as_pandas:
            raise
        return table


def _row(name, res, ref, paired, sign_convention, confidence, n_boot, seed):
    row = {
        "model": name,
        "accuracy": res.accuracy,
        "accuracy_ci": tuple(res.accuracy_ci),
        "mean_length": res.mean_length,
        "length_ci": tuple(res.length_ci),
        "delta_length": (res.mean_length - ref.mean_length) / ref.mean_length,
        "delta_accuracy": res.accuracy - ref.accuracy,
        "aes": float(aes(ref.accuracy, ref.mean_length, res.accuracy, res.mean_length, sign_convention=sign_convention)),
        "n": res.n,
    }
    nan2 = (float("nan"), float("nan"))
    row["delta_length_ci"], row["delta_accuracy_ci"], row["aes_ci"] = nan2, nan2, nan2
    if paired is not None and res is not ref:
        Lr, Ar, Ln, An = paired
        m = len(Lr)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, m, size=(n_boot, m))
        lr, ar, ln, an = Lr[idx].mean(1), Ar[idx].mean(1), Ln[idx].mean(1), An[idx].mean(1)
        a = (1 - confidence) / 2
        q = lambda v: tuple(float(x) for x in np.quantile(v[np.isfinite(v)], [a, 1 - a])) if np.isfinite(v).any() else nan2  # noqa: E731
        row["delta_length_ci"] = q((ln - lr) / lr)
        row["delta_accuracy_ci"] = q(an - ar)
        ok = ar > 0
        if ok.any():
            row["aes_ci"] = q(np.asarray(aes(ar[ok], lr[ok], an[ok], ln[ok], sign_convention=sign_convention)))
    return row


def compare_buckets(ref: EvalResult, new: EvalResult) -> List[Dict[str, Any]]:
    """Per difficulty bucket: reference and new accuracy and mean length and
    the relative length change, the picture that shows whether a model cuts
    more on easy problems than on hard ones. Both results must use the same
    buckets."""
    rb = {b["bucket"]: b for b in ref.buckets}
    out = []
    for b in new.buckets:
        r = rb.get(b["bucket"])
        if r is None:
            raise ValueError(f"new: bucket {b['bucket']!r} is not among the reference's buckets {list(rb)}")
        out.append({
            "bucket": b["bucket"], "n": b["n"],
            "ref_accuracy": r["accuracy"], "accuracy": b["accuracy"],
            "ref_mean_length": r["mean_length"], "mean_length": b["mean_length"],
            "delta_length": (b["mean_length"] - r["mean_length"]) / r["mean_length"],
            "delta_accuracy": b["accuracy"] - r["accuracy"],
        })
    return out


def difficulty_report(
    samples: Any,
    *,
    bins=DEFAULT_ACCURACY_BINS,
    by: str = "ref_accuracy",
    **load_kwargs,
) -> List[Dict[str, Any]]:
    """How a model spends tokens by difficulty.

    Parameters
    ----------
    samples : path, list of dict or WeightedDataset
        Pre-sampled records, graded and measured (each with ``problem_id``,
        ``length``, ``correct``; e.g. :func:`o1pruner.presample`'s output),
        or a :class:`~o1pruner.WeightedDataset` (its per-problem statistics
        and training weights).
    bins : sequence of (low, high, label)
        Abar_ref buckets, ``low <= a < high``.
    by : {"ref_accuracy", "difficulty"}
        Group problems by Abar_ref bins or by their ``difficulty`` field.

    Returns
    -------
    list of dict
        Per bucket: ``problems``, mean ``ref_accuracy`` (Abar_ref), mean
        ``ref_mean_length`` (Lbar_ref); from samples also ``samples`` and the
        mean length of correct and of incorrect samples; from a dataset the
        mean training ``weight``. Length disharmony shows as a Lbar_ref that
        does not fall on easy problems.
    """

    if by not in ("ref_accuracy", "difficulty"):
        raise ValueError(f"by: must be 'ref_accuracy' or 'difficulty', got {by!r}")
    if isinstance(samples, WeightedDataset):
        probs = samples.problems
        if by == "difficulty" and not all("difficulty" in p for p in probs):
            raise ValueError("samples: by='difficulty' needs a 'difficulty' for every problem")
        acc = np.array([p["ref_accuracy"] for p in probs])
        mlen = np.array([p["ref_mean_length"] for p in probs])
        labels = [p["difficulty"] for p in probs] if by == "difficulty" else _bin_labels(acc, bins)
        a = samples.arrays()
        rows = []
        for key, pm in _bucket_masks(labels, bins, by):
            sm = pm[a["group"]]
            rows.append({"bucket": key, "problems": int(pm.sum()), "ref_accuracy": float(acc[pm].mean()),
                         "ref_mean_length": float(mlen[pm].mean()), "training_samples": int(sm.sum()),
                         "mean_weight": float(a["weight"][sm].mean()) if sm.any() else float("nan")})
        return rows
    recs = load_samples(samples, **load_kwargs)
    if not recs:
        raise ValueError("samples: empty")
    for i, r in enumerate(recs):
        for f in ("problem_id", "length", "correct") + (("difficulty",) if by == "difficulty" else ()):
            if r.get(f) is None:
                raise ValueError(f"samples[{i}]: missing field {f!r}")
    ids = list(dict.fromkeys(r["problem_id"] for r in recs))
    row = {pid: j for j, pid in enumerate(ids)}
    g = np.array([row[r["problem_id"]] for r in recs])
    L = np.array([r["length"] for r in recs], dtype=np.float64)
    C = np.array([float(r["correct"]) for r in recs])
    st = reference_stats(L, C, group=g)
    if by == "difficulty":
        diff = {}
        for r in recs:
            diff.setdefault(r["problem_id"], r["difficulty"])
        labels = [diff[pid] for pid in ids]
    else:
        labels = _bin_labels(st.accuracy, bins)
    out = []
    for key, pm in _bucket_masks(labels, bins, by):
        sm = pm[g]
        cor = sm & (C > 0.5)
        inc = sm & (C <= 0.5)
        out.append({
            "bucket": key,
            "problems": int(pm.sum()),
            "ref_accuracy": float(st.accuracy[pm].mean()),
            "ref_mean_length": float(st.mean_length[pm].mean()),
            "samples": int(sm.sum()),
            "mean_length_correct": float(L[cor].mean()) if cor.any() else float("nan"),
            "mean_length_incorrect": float(L[inc].mean()) if inc.any() else float("nan"),
        })
    return out


def _bin_labels(acc: np.ndarray, bins) -> List[str]:
    out = []
    for a in acc:
        lab = bin_of(a, bins)
        if lab is None:
            raise ValueError(f"bins: reference accuracy {a} falls in no bin of {bins}")
        out.append(lab)
    return out


def _bucket_masks(labels, bins, by):
    """(bucket, problem mask) in a stable order: bins order, or sorted levels."""
    keys = list(dict.fromkeys(labels))
    if by == "difficulty":
        try:
            keys = sorted(keys)
        except TypeError:
            pass
    else:
        keys = [name for _, _, name in bins if name in keys]
    lab_arr = np.array([str(x) for x in labels], dtype=object)
    return [(key, lab_arr == str(key)) for key in keys]
