"""O1-Pruner's length-harmonizing reward inside other RL training stacks.

- :mod:`o1pruner.integrations.trl`: a reward function for TRL's
  ``GRPOTrainer`` (on-policy, the paper's reward as the RL reward).
- :mod:`o1pruner.integrations.verl`: a ``compute_score`` for verl's custom
  reward function hook.

Both need the per-problem reference statistics Lbar_ref(x) and Abar_ref(x)
of the initial model (method.md step 1) as dataset columns;
:func:`with_reference_stats` adds them to dataset rows from pre-sampled
records (:func:`o1pruner.presample`, or any samples file
:func:`o1pruner.load_samples` reads). Nothing here imports torch, TRL or verl.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..data.validators import finite_number
from ..kernels.rewards import harmonize_weights, length_harmonizing_reward

__all__ = ["reference_table", "with_reference_stats"]

#: Column names the reward functions read by default.
REF_LENGTH = "ref_mean_length"
REF_ACCURACY = "ref_accuracy"

#: The on-policy rewards' default clip: the public code's weight clip
#: (``w <= -2 -> -2``, ``w > 4 -> 4``, method.md step 2).
DEFAULT_CLIP = (-2.0, 4.0)
#: ``length_bonus`` values: "correct" (default) pays the bonus for being
#: shorter than Lbar_ref to fully correct responses only; "all" is the paper's R.
LENGTH_BONUS = ("correct", "all")


def reference_table(samples, *, key: str = "problem", **load_kwargs) -> Dict[Any, Dict[str, float]]:
    """Per-problem reference statistics from pre-sampled records.

    Parameters
    ----------
    samples : path or list of dict
        Pre-sampled records of the initial model, K per problem (what
        :func:`o1pruner.presample` writes; any source
        :func:`o1pruner.load_samples` reads). ``length`` and ``correct`` are
        computed when absent (pass ``tokenizer=`` / ``grader=`` in
        `load_kwargs`, as for :func:`o1pruner.build_dataset`).
    key : str, default "problem"
        Record field that identifies a problem in the table (``"problem"``
        text, or ``"problem_id"``).
    **load_kwargs
        Passed to :func:`o1pruner.build_dataset` (``k``, ``tokenizer``,
        ``grader``, ``format``, ...).

    Returns
    -------
    dict
        ``{key value: {"ref_mean_length", "ref_accuracy", "n_samples"}}``.
    """
    from ..pipeline import build_dataset

    ds = build_dataset(samples, samples_per_problem=None, normalize=None, clip=None, **load_kwargs)
    table: Dict[Any, Dict[str, float]] = {}
    for i, r in enumerate(ds.records):
        if r.get(key) is None:
            raise ValueError(f"samples[{i}]: missing field {key!r} (the key of the table)")
        k = r[key]
        table.setdefault(k, {REF_LENGTH: r[REF_LENGTH], REF_ACCURACY: r[REF_ACCURACY], "n_samples": r["n_samples"]})
    return table


def with_reference_stats(rows: Sequence[Mapping[str, Any]], samples, *, key: str = "problem",
                         **load_kwargs) -> List[Dict[str, Any]]:
    """Copies of dataset `rows` with ``ref_mean_length`` and ``ref_accuracy``
    columns, looked up by `key` in the statistics of `samples` (see
    :func:`reference_table`).

    Raises
    ------
    ValueError
        A row without `key`, or whose problem has no pre-sampled records.
    """
    table = reference_table(samples, key=key, **load_kwargs)
    out = []
    for i, row in enumerate(rows):
        if key not in row:
            raise ValueError(f"rows[{i}]: missing field {key!r}")
        st = table.get(row[key])
        if st is None:
            raise ValueError(f"rows[{i}]: no pre-sampled records for {key}={str(row[key])[:80]!r}; "
                             "every training problem needs its reference statistics")
        out.append({**row, REF_LENGTH: st[REF_LENGTH], REF_ACCURACY: st[REF_ACCURACY]})
    return out


# ---- shared by the reward functions --------------------------------------------

def resolve_grader(grader: Optional[Callable]) -> Callable:
    """``grader(responses, golds) -> bools``; default the package grader
    (last \\boxed{} first, then graded in C)."""
    if grader is not None:
        if not callable(grader):
            raise TypeError(f"grader: expected a callable (responses, golds) -> bools, got {type(grader).__name__}")
        return grader
    try:
        from ..kernels.grading import grade_responses
    except ImportError as exc:  # pragma: no cover - until the grader is built in
        raise RuntimeError("grader: o1pruner.grading is not available in this build; "
                           "pass grader=callable(responses, golds) -> bools") from exc
    return grade_responses


def grade_correct(grader: Callable, texts: Sequence[str], golds: Sequence[Any]) -> np.ndarray:
    got = np.asarray(grader(list(texts), [str(g) for g in golds]))
    if got.shape != (len(texts),):
        raise ValueError(f"grader: returned shape {got.shape} for {len(texts)} responses")
    if got.dtype.kind == "b":
        return got.astype(np.float64)
    if got.dtype.kind in "iuf" and np.all((got >= 0) & (got <= 1)):
        return got.astype(np.float64)
    raise ValueError(f"grader: must return booleans or numbers in [0, 1], got dtype {got.dtype}")


def ref_stat(value: Any, name: str, i: int) -> float:
    """A reference statistic of sample `i` (column or key `name`) as a finite float."""
    return finite_number(value, f"{name} (sample {i})")


def reward_options(lam: Any, clip: Any, length_bonus: Any) -> Tuple[float, Optional[Tuple[float, float]], str]:
    """Validated (lam, clip, length_bonus) of the on-policy rewards. `clip`
    may come from a config file as a list (verl's Hydra ``reward_kwargs``)."""
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        raise TypeError(f"lam: expected a number, got {type(lam).__name__}") from None
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"lam: must be finite and >= 0, got {lam}")
    if clip is not None:
        if isinstance(clip, (str, bytes)) or not hasattr(clip, "__len__") or len(clip) != 2:
            raise TypeError(f"clip: expected a (low, high) pair or None, got {clip!r}")
        clip = (float(clip[0]), float(clip[1]))
        harmonize_weights([0.0], clip=clip, normalize=None)  # the core validates the pair (finite, low < high)
    if length_bonus not in LENGTH_BONUS:
        raise ValueError(f"length_bonus: expected one of {LENGTH_BONUS}, got {length_bonus!r}")
    return lam, clip, length_bonus


def on_policy_reward(lengths: np.ndarray, correct: np.ndarray, lbar: np.ndarray, abar: np.ndarray, *,
                      lam: float, clip: Optional[Tuple[float, float]], length_bonus: str) -> np.ndarray:
    """R = Lbar_ref / L - 1 + lam * (A - Abar_ref) (method.md step 2, the C
    kernel), as an on-policy reward.

    On-policy, the policy can produce what the reference never sampled: an
    empty or one-token wrong answer has L = 1, so its length term
    Lbar_ref - 1 dwarfs the accuracy term (Lbar_ref = 40, Abar_ref = 0.5,
    lam = 2: R = 38 against 1.29 for a correct 31-token answer). With
    ``length_bonus="correct"`` a response that is not fully correct earns no
    bonus for being shorter than Lbar_ref (its length counts as Lbar_ref;
    being longer still costs), so within a problem every correct response
    outscores every wrong one when lam >= 1. `clip` then bounds R (the public
    code's weight clip); clipping alone keeps the order (38 -> 4 > 1.29).
    """
    if length_bonus == "correct":
        lengths = np.where((correct < 1) & (lengths < lbar), lbar, lengths)
    r = length_harmonizing_reward(lengths, correct, lbar, abar, lam=lam)
    if clip is not None:
        r = harmonize_weights(r, clip=clip, normalize=None)
    return r
