"""Evaluation of a reasoning model (method.md step 4): greedy accuracy and
mean length with 95% confidence intervals, the same per difficulty bucket,
throughput, and the comparison of a pruned model with its reference (delta
length, delta accuracy, AES)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.dataset import WeightedDataset
from ..data.io import PathLike
from ..data.prompts import as_template
from ..data.records import as_problems
from ..kernels.rewards import reference_stats
from .generate import accepts_kwarg, as_generate, default_grader, generate_graded, lengths_and_correct
from .metrics import aes
from .presample import load_samples

__all__ = [
    "EvalResult",
    "evaluate",
    "evaluate_samples",
    "reference_accuracy",
    "wilson_interval",
    "bootstrap_interval",
    "t_quantile",
    "t_interval",
    "paired_t_interval",
    "DEFAULT_ACCURACY_BINS",
    "bin_of",
    "cluster_ci",
]


#: Buckets of reference accuracy Abar_ref used when problems carry no
#: difficulty level: hard [0, 1/3), medium [1/3, 2/3), easy [2/3, 1].
DEFAULT_ACCURACY_BINS = ((0.0, 1 / 3, "hard"), (1 / 3, 2 / 3, "medium"), (2 / 3, 1.0 + 1e-12, "easy"))


# ---- intervals ------------------------------------------------------------------

def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Better than the normal approximation near 0 and 1 and for small n.

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


def bootstrap_interval(
    stat: Callable[[np.ndarray], np.ndarray],
    n: int,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Tuple[float, float]:
    """Percentile bootstrap interval of a statistic over n units.

    `stat(idx)` receives an index array of shape (n_boot, n) (resampled
    units) and returns n_boot values. Seeded, so reruns agree.
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    vals = np.asarray(stat(idx), dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (float("nan"), float("nan"))
    a = (1 - confidence) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return (float(lo), float(hi))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction
    (modified Lentz; Numerical Recipes' betacf), used where it converges
    fast (x < (a + 1) / (a + b + 2)) and through the symmetry
    I_x(a, b) = 1 - I_{1-x}(b, a) elsewhere."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    # log of the front factor x^a (1-x)^b / (a B(a, b)), in logs against overflow
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution with `df` degrees of freedom
    (no SciPy): the CDF through the regularised incomplete beta function,
    inverted by bisection to ~1e-12.

    >>> round(t_quantile(0.975, 4), 4)
    2.7764
    """
    if not (0.0 < p < 1.0):
        raise ValueError(f"p: must be in (0, 1), got {p!r}")
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df: must be an int >= 1, got {df!r}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)

    def cdf(t: float) -> float:  # t >= 0
        return 1.0 - 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _finite_values(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name}: must be one-dimensional, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: must be finite (no NaN or inf), got {x.tolist()}")
    return x


def t_interval(values, confidence: float = 0.95, *, prediction: bool = False) -> Tuple[float, float]:
    """Student-t interval of the mean of independent runs (e.g. one value
    per seed): mean +- t_{(1+c)/2, n-1} s / sqrt(n), with s the sample
    standard deviation (ddof 1). With ``prediction=True``, the interval in
    which one more run is expected to land: mean +- t s sqrt(1 + 1/n).
    Fewer than two values give (NaN, NaN).

    >>> [round(x, 3) for x in t_interval([1.0, 2.0, 3.0])]
    [-0.484, 4.484]
    """
    if not (0 < confidence < 1):
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    x = _finite_values(values, "values")
    n = x.size
    if n < 2:
        return (float("nan"), float("nan"))
    mean = float(x.mean())
    s = float(x.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * s * math.sqrt((1.0 + 1.0 / n) if prediction else 1.0 / n)
    return (mean - half, mean + half)


def paired_t_interval(a, b, confidence: float = 0.95) -> Tuple[float, Tuple[float, float]]:
    """Mean and Student-t interval of the paired differences a[i] - b[i]
    (e.g. two methods' AES on the same seeds): the seed-to-seed variation
    they share cancels. Returns (mean difference, (low, high))."""
    x = _finite_values(a, "a")
    y = _finite_values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a, b: must pair up (same length), got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError("a, b: empty")
    d = x - y
    return float(d.mean()), t_interval(d, confidence)


# ---- results ----------------------------------------------------------------------

@dataclass
class EvalResult:
    """Accuracy and length of a model on a problem set.

    Attributes
    ----------
    name : str
    n : int
        Number of samples evaluated (one per problem for greedy decoding).
    accuracy : float
        Fraction correct, in [0, 1].
    accuracy_ci : (float, float)
        Its confidence interval (Wilson with one sample per problem, a
        bootstrap over problems otherwise).
    mean_length : float
        Mean length in tokens.
    length_ci : (float, float)
        Bootstrap percentile interval of the mean length (over problems).
    median_length : float
    tokens_per_s, seconds : float
        Generation throughput (generated tokens / generation time) and wall
        time; NaN when evaluating stored samples.
    bucket_by : str
        "difficulty", "ref_accuracy" or "all".
    buckets : list of dict
        Per bucket: ``bucket``, ``n``, ``accuracy``, ``accuracy_ci``,
        ``mean_length``, ``length_ci``.
    samples : list of dict
        Per sample: ``problem_id``, ``bucket``, ``correct``, ``length``,
        ``solution`` (and ``problem``, ``ground_truth_answer``,
        ``difficulty`` when known): records that :func:`evaluate_samples`
        reads back (e.g. written with :func:`o1pruner.io.write_jsonl`).
    confidence : float
    """

    name: str
    n: int
    accuracy: float
    accuracy_ci: Tuple[float, float]
    mean_length: float
    length_ci: Tuple[float, float]
    median_length: float
    tokens_per_s: float
    seconds: float
    bucket_by: str
    buckets: List[Dict[str, Any]]
    samples: List[Dict[str, Any]] = field(repr=False, default_factory=list)
    confidence: float = 0.95

    @property
    def lengths(self) -> np.ndarray:
        return np.array([s["length"] for s in self.samples], dtype=np.float64)

    @property
    def correct(self) -> np.ndarray:
        return np.array([s["correct"] for s in self.samples], dtype=bool)

    def to_dict(self, samples: bool = False) -> Dict[str, Any]:
        """JSON-able summary (per-sample rows only when `samples`)."""
        d = {
            "name": self.name,
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_ci": list(self.accuracy_ci),
            "mean_length": self.mean_length,
            "length_ci": list(self.length_ci),
            "median_length": self.median_length,
            "tokens_per_s": None if not math.isfinite(self.tokens_per_s) else self.tokens_per_s,
            "seconds": None if not math.isfinite(self.seconds) else self.seconds,
            "confidence": self.confidence,
            "bucket_by": self.bucket_by,
            "buckets": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in b.items()} for b in self.buckets],
        }
        if samples:
            d["samples"] = [{k: v for k, v in s.items() if k != "solution"} for s in self.samples]
        return d

    def __str__(self) -> str:
        pc = int(round(self.confidence * 100))
        lines = [
            f"{self.name}: accuracy {100 * self.accuracy:.1f}% [{100 * self.accuracy_ci[0]:.1f}, {100 * self.accuracy_ci[1]:.1f}] "
            f"mean length {self.mean_length:.1f} [{self.length_ci[0]:.1f}, {self.length_ci[1]:.1f}] ({pc}% CI, n={self.n})"
        ]
        if math.isfinite(self.tokens_per_s):
            lines.append(f"  {self.tokens_per_s:.0f} tokens/s, {self.seconds:.1f} s")
        for b in self.buckets:
            lines.append(f"  {b['bucket']!s:>24}: n={b['n']:<4d} accuracy {100 * b['accuracy']:.1f}%  mean length {b['mean_length']:.1f}")
        return "\n".join(lines)


def bin_of(a: float, bins: Sequence[Tuple[float, float, str]]) -> Optional[str]:
    """The name of the accuracy bin ``[lo, hi)`` of `bins` that holds `a`, or None."""
    return next((name for lo, hi, name in bins if lo <= a < hi), None)


def _bucket_labels(problems: List[Dict[str, Any]], ref_acc: Optional[Mapping[Any, float]], bins) -> Tuple[str, List[Any]]:
    if all("difficulty" in p for p in problems):
        return "difficulty", [p["difficulty"] for p in problems]
    if ref_acc is not None:
        labels = []
        for p in problems:
            a = ref_acc.get(p["problem_id"])
            if a is None:
                raise ValueError(f"ref_accuracy: no reference accuracy for problem_id {p['problem_id']!r}")
            lab = bin_of(a, bins)
            if lab is None:
                raise ValueError(f"ref_accuracy: {a} of problem_id {p['problem_id']!r} is in no bin of {bins}")
            labels.append(lab)
        return "ref_accuracy", labels
    return "all", ["all"] * len(problems)


def reference_accuracy(samples: Union[PathLike, Sequence[Mapping[str, Any]]], **load_kwargs) -> Dict[Any, float]:
    """Abar_ref per problem_id from pre-sampled records (graded: each needs
    ``problem_id`` and ``correct``), for difficulty buckets of problems
    without a difficulty level."""
    recs = load_samples(samples, **load_kwargs)
    if not recs:
        raise ValueError("samples: empty")
    for i, r in enumerate(recs):
        for f in ("problem_id", "correct"):
            if r.get(f) is None:
                raise ValueError(f"samples[{i}]: missing field {f!r}")
    ids = [r["problem_id"] for r in recs]
    uniq = {pid: j for j, pid in enumerate(dict.fromkeys(ids))}
    st = reference_stats(np.ones(len(recs)), [float(r["correct"]) for r in recs], group=[uniq[p] for p in ids])
    return {pid: float(st.accuracy[j]) for pid, j in uniq.items()}


def _summarise(name, lengths, correct, groups, labels_per_sample, bucket_by, confidence, n_boot, seed, tokens_per_s, seconds, samples):
    n = len(lengths)
    if n == 0:
        raise ValueError("evaluate: no samples to evaluate")
    uniq, inv = np.unique(groups, return_inverse=True)
    one_per_problem = len(uniq) == n

    def ci_acc(c, g_inv, n_units):
        if len(c) == 0:
            return (float("nan"), float("nan"))
        if n_units == len(c):
            return wilson_interval(float(c.sum()), len(c), confidence)
        return cluster_ci(c.astype(float), g_inv, n_units, confidence, n_boot, seed)

    def ci_len(L, g_inv, n_units):
        return cluster_ci(L, g_inv, n_units, confidence, n_boot, seed)

    acc = float(correct.mean())
    buckets = []
    labels_arr = np.array([str(x) for x in labels_per_sample], dtype=object)
    order = list(dict.fromkeys(labels_per_sample))
    try:
        order = sorted(order)
    except TypeError:
        pass
    for lab in order:
        sel = labels_arr == str(lab)
        u, gi = np.unique(inv[sel], return_inverse=True)
        buckets.append({
            "bucket": lab,
            "n": int(sel.sum()),
            "accuracy": float(correct[sel].mean()),
            "accuracy_ci": ci_acc(correct[sel], gi, len(u)),
            "mean_length": float(lengths[sel].mean()),
            "length_ci": ci_len(lengths[sel], gi, len(u)),
        })
    return EvalResult(
        name=name, n=n, accuracy=acc,
        accuracy_ci=ci_acc(correct, inv, len(uniq)) if not one_per_problem else wilson_interval(float(correct.sum()), n, confidence),
        mean_length=float(lengths.mean()), length_ci=ci_len(lengths, inv, len(uniq)),
        median_length=float(np.median(lengths)), tokens_per_s=tokens_per_s, seconds=seconds,
        bucket_by=bucket_by, buckets=buckets, samples=samples, confidence=confidence,
    )


def cluster_ci(values: np.ndarray, g_inv: np.ndarray, n_units: int, confidence, n_boot, seed) -> Tuple[float, float]:
    """Bootstrap interval of the mean of `values` resampling whole problems
    (units), so repeated samples of one problem are not counted as
    independent."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    sums = np.bincount(g_inv, weights=values, minlength=n_units)
    cnts = np.bincount(g_inv, minlength=n_units).astype(np.float64)
    return bootstrap_interval(lambda idx: sums[idx].sum(1) / cnts[idx].sum(1), n_units, confidence, n_boot, seed)


def evaluate_samples(
    samples: Union[PathLike, Sequence[Mapping[str, Any]]],
    *,
    name: str = "model",
    tokenizer: Any = None,
    grader: Optional[Callable] = None,
    ref_accuracy: Optional[Union[Mapping[Any, float], PathLike, Sequence[Mapping[str, Any]]]] = None,
    bins=DEFAULT_ACCURACY_BINS,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    tokens_per_s: float = float("nan"),
    seconds: float = float("nan"),
    **load_kwargs,
) -> EvalResult:
    """Evaluate stored generations (e.g. greedy outputs from vLLM): accuracy,
    length and per-bucket numbers with confidence intervals.

    Parameters
    ----------
    samples : path or list of dict
        Records with ``problem_id``, ``solution``, ``ground_truth_answer``;
        ``length`` / ``correct`` are computed with `tokenizer` / `grader`
        when absent. Any format :func:`o1pruner.load_samples` reads.
    name : str
    tokenizer, grader : optional
        As in :func:`o1pruner.presample`.
    ref_accuracy : mapping, path or records, optional
        Abar_ref per problem_id (or pre-sampled records to compute it from),
        for difficulty buckets when the samples carry no ``difficulty``.
    bins : sequence of (low, high, label)
        Abar_ref buckets, ``low <= a < high``.
    confidence : float, default 0.95
    n_boot : int, default 2000
        Bootstrap resamples for the length intervals.
    seed : int, default 0
        Seed of the bootstrap.
    """

    if not (0 < confidence < 1):
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    recs = load_samples(samples, **load_kwargs)
    if not recs:
        raise ValueError("samples: empty")
    for i, r in enumerate(recs):
        if r.get("problem_id") is None:
            r["problem_id"] = i
    lengths, correct = lengths_and_correct(recs, tokenizer, grader, "solution", "samples")
    ref_acc = None
    if ref_accuracy is not None:
        ref_acc = dict(ref_accuracy) if isinstance(ref_accuracy, Mapping) else reference_accuracy(ref_accuracy)
    # one label per problem, broadcast to its samples
    probs = {}
    for r in recs:
        probs.setdefault(r["problem_id"], {"problem_id": r["problem_id"], **({"difficulty": r["difficulty"]} if "difficulty" in r else {})})
    plist = list(probs.values())
    bucket_by, labels = _bucket_labels(plist, ref_acc, bins)
    lab_of = {p["problem_id"]: lab for p, lab in zip(plist, labels)}
    pid_index = {pid: j for j, pid in enumerate(probs)}
    groups = np.array([pid_index[r["problem_id"]] for r in recs], dtype=np.int64)
    per = [lab_of[r["problem_id"]] for r in recs]
    # complete records (problem and gold answer kept): a result's samples can
    # be written as JSONL and evaluated or compared again
    rows = [{"problem_id": r["problem_id"], **{k: r[k] for k in ("problem", "ground_truth_answer", "difficulty") if k in r},
             "bucket": per[i], "correct": bool(correct[i]), "length": float(lengths[i]), "solution": r.get("solution")}
            for i, r in enumerate(recs)]
    return _summarise(name, lengths, correct, groups, per, bucket_by, confidence, n_boot, seed, tokens_per_s, seconds, rows)


def evaluate(
    generate_or_model: Any,
    problems: Union[PathLike, Sequence[Any]],
    *,
    name: str = "model",
    tokenizer: Any = None,
    template: Any = None,
    grader: Optional[Callable] = None,
    batch_size: int = 64,
    generate_kwargs: Optional[Mapping[str, Any]] = None,
    ref_accuracy: Optional[Union[Mapping[Any, float], PathLike, Sequence[Mapping[str, Any]]]] = None,
    bins=DEFAULT_ACCURACY_BINS,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    progress: bool = False,
) -> EvalResult:
    """Greedy evaluation of a model on held-out problems (method.md step 4).

    Parameters
    ----------
    generate_or_model : callable or model
        ``generate(prompts, **generate_kwargs)`` (see
        :func:`o1pruner.presample` for what it may return), or a model with a
        ``generate`` method. For a model whose ``generate`` takes a
        ``temperature``, ``temperature=0`` (greedy) is passed unless
        `generate_kwargs` sets it; a plain callable must decode greedily
        itself.
    problems : path or sequence
        See :func:`o1pruner.as_problems`. A ``difficulty`` (or ``level``)
        field gives the buckets; otherwise `ref_accuracy` does.
    name : str
        Label of the result (used by :func:`compare`).
    tokenizer : optional
        Counts lengths; without it the generator's token ids are counted.
    template : optional
        The prompt template used for sampling and training.
    grader : callable, optional
        Default :func:`o1pruner.grading.grade_responses`.
    batch_size : int, default 64
        Prompts per call of the generator.
    ref_accuracy, bins, confidence, n_boot, seed
        See :func:`evaluate_samples`.
    progress : bool, default False

    Returns
    -------
    EvalResult
        With ``tokens_per_s`` (generated tokens per second of generation)
        and ``seconds`` (wall time of the whole evaluation).
    """
    t0 = time.perf_counter()
    probs = as_problems(problems)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: must be an int >= 1, got {batch_size!r}")
    tpl = as_template(template)
    gen = as_generate(generate_or_model)
    gkw = dict(generate_kwargs or {})
    if gen is not generate_or_model and "temperature" not in gkw and accepts_kwarg(gen, "temperature"):
        gkw["temperature"] = 0.0
    grade_fn = grader if grader is not None else default_grader()
    prompts = [tpl.render(p["problem"], tokenizer) for p in probs]
    recs = []
    gen_seconds = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(probs), desc=f"evaluate {name}", unit="problem")
    for lo in range(0, len(probs), batch_size):
        chunk = prompts[lo:lo + batch_size]
        owners = probs[lo:lo + batch_size]
        g = generate_graded(gen, chunk, [p["ground_truth_answer"] for p in owners],
                            [f"problem {p['problem_id']!r}" for p in owners], tokenizer=tokenizer,
                            grader=grade_fn, generate_kwargs=gkw, where="outputs")
        gen_seconds += g.seconds
        texts, lengths, correct = g.texts, g.lengths, g.correct
        for i, text in enumerate(texts):
            p = probs[lo + i]
            r = {"problem_id": p["problem_id"], "problem": p["problem"], "ground_truth_answer": p["ground_truth_answer"],
                 "solution": text, "length": int(lengths[i]), "correct": bool(correct[i])}
            if "difficulty" in p:
                r["difficulty"] = p["difficulty"]
            recs.append(r)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    total_tokens = float(sum(r["length"] for r in recs))
    tps = total_tokens / gen_seconds if gen_seconds > 0 else float("nan")
    res = evaluate_samples(recs, name=name, ref_accuracy=ref_accuracy, bins=bins, confidence=confidence,
                           n_boot=n_boot, seed=seed, tokens_per_s=tps, seconds=0.0)
    res.seconds = time.perf_counter() - t0
    return res


# ---- comparison -------------------------------------------------------------------------


