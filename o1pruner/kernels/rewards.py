"""O1-Pruner's reference statistics and length-harmonizing reward (method.md,
steps 1 and 2). The numbers come from the C core; this module owns the
documentation and the defaults."""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .._loader import _core

__all__ = [
    "ReferenceStats",
    "reference_stats",
    "length_harmonizing_reward",
    "harmonize_weights",
]

ArrayLike = Union[np.ndarray, Sequence[float]]


class ReferenceStats(NamedTuple):
    """Per-problem statistics of the reference model's samples.

    Attributes
    ----------
    ids : ndarray of int64, shape (G,)
        Problem ids, sorted ascending (``arange(G)`` when offsets were given).
    mean_length : ndarray of float64, shape (G,)
        Lbar_ref(x): mean token length of the problem's samples.
    accuracy : ndarray of float64, shape (G,)
        Abar_ref(x): mean correctness of the problem's samples.
    count : ndarray of int64, shape (G,)
        Samples per problem (K).
    inverse : ndarray of int64, shape (S,)
        For each sample, the row of its problem in the arrays above, so
        ``stats.mean_length[stats.inverse]`` broadcasts back to samples.
    """

    ids: np.ndarray
    mean_length: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    inverse: np.ndarray

    def per_sample(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return ``(ref_mean_length, ref_accuracy)`` broadcast to samples."""
        return self.mean_length[self.inverse], self.accuracy[self.inverse]


def reference_stats(
    lengths: ArrayLike,
    correct: ArrayLike,
    group: Optional[ArrayLike] = None,
    *,
    offsets: Optional[ArrayLike] = None,
) -> ReferenceStats:
    """Per-problem mean length and accuracy of pre-sampled solutions.

    Computes Lbar_ref(x) and Abar_ref(x) of method.md step 1 over all K
    samples of each problem.

    Parameters
    ----------
    lengths : array_like, shape (S,)
        Token length L(y) of every sample; positive and finite (ints or floats).
    correct : array_like, shape (S,)
        A(x, y) of every sample: bool, or numbers in [0, 1].
    group : array_like of int, shape (S,), optional
        Problem id of every sample. Ids need not be sorted or contiguous.
    offsets : array_like of int, shape (G+1,), optional, keyword-only
        Alternative to `group` for samples stored problem after problem:
        problem g owns samples ``offsets[g]:offsets[g+1]``. Must start at 0,
        end at S and increase strictly (a problem with no samples is an
        error). Pass exactly one of `group` and `offsets`.

    Returns
    -------
    ReferenceStats
        ``(ids, mean_length, accuracy, count, inverse)``.

    Raises
    ------
    ValueError
        Empty input, mismatched shapes, non-positive or NaN lengths,
        correctness outside [0, 1], invalid offsets.
    TypeError
        Non-numeric arrays, or both/neither of `group` and `offsets`.

    Notes
    -----
    Sums run in float64 in sample order, so for integer lengths the means are
    exactly the public code's ``sum(lengths) / K``.

    Examples
    --------
    >>> import o1pruner
    >>> s = o1pruner.reference_stats([100, 300, 50], [1, 0, 1], group=[7, 7, 3])
    >>> s.ids.tolist(), s.mean_length.tolist(), s.accuracy.tolist()
    ([3, 7], [50.0, 200.0], [1.0, 0.5])
    """
    ids, mean, acc, count, inverse = _core.reference_stats(lengths, correct, group, offsets)
    return ReferenceStats(ids, mean, acc, count, inverse)


def length_harmonizing_reward(
    lengths: ArrayLike,
    correct: ArrayLike,
    ref_mean_length: Union[ArrayLike, float],
    ref_accuracy: Union[ArrayLike, float],
    lam: float = 2.0,
) -> np.ndarray:
    """The length-harmonizing reward of every sample.

    ``R = Lbar_ref / L - 1 + lam * (A - Abar_ref)`` (method.md step 2),
    computed as the public code does, ``(Lbar_ref - L) / L + lam * (A -
    Abar_ref)``, which is the same value up to float64 rounding.

    Parameters
    ----------
    lengths : array_like, shape (S,)
        Token length of each sample (> 0).
    correct : array_like, shape (S,)
        Correctness of each sample (bool or values in [0, 1]).
    ref_mean_length, ref_accuracy : array_like, shape (S,), or float
        The reference statistics of each sample's problem, e.g. from
        ``reference_stats(...).per_sample()``. A scalar applies to all samples.
    lam : float, default 2.0
        Weight of the accuracy term (the paper's lambda; 2 for Marco-o1, the
        public code used 5 for QwQ). Must be >= 0.

    Returns
    -------
    ndarray of float64, shape (S,)

    Raises
    ------
    ValueError
        Shape mismatch, empty input, non-positive or non-finite lengths,
        NaN statistics, negative or non-finite `lam`.
    TypeError
        Non-numeric input.

    Examples
    --------
    >>> import o1pruner
    >>> o1pruner.length_harmonizing_reward([50, 200], [1, 0], 100.0, 0.5, lam=2.0).tolist()
    [2.0, -1.5]
    """
    return _core.length_harmonizing_reward(
        lengths, correct, _fill(ref_mean_length, lengths), _fill(ref_accuracy, lengths), lam
    )


def _fill(x, like):
    """A plain real scalar becomes a constant array of the shape of `like`;
    anything else goes to the C core as is (which validates it, and reports
    a `like` that is not an array)."""
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
        try:
            shape = np.shape(like)
        except (ValueError, TypeError):  # ragged: the core names `lengths`
            return x
        return np.full(shape, x, dtype=np.float64)
    return x


def harmonize_weights(
    rewards: ArrayLike,
    clip: Optional[Tuple[float, float]] = (-2.0, 4.0),
    normalize: Optional[str] = "dataset",
    group: Optional[ArrayLike] = None,
) -> np.ndarray:
    """Turn rewards into training weights exactly as the public O1-Pruner code.

    Clip, then z-normalise (method.md step 2, points 3 and 4).

    Parameters
    ----------
    rewards : array_like, shape (S,)
        Length-harmonizing rewards of the training samples (finite).
    clip : (low, high) or None, default (-2.0, 4.0)
        The public code's rule: ``w <= low -> low``, ``w > high -> high``.
        None skips clipping.
    normalize : {"dataset", "group", None}, default "dataset"
        "dataset": ``(w - mean) / std`` over all samples (the public code);
        "group": the same within each problem (needs `group`; GRPO-style);
        None: no normalisation.
    group : array_like of int, shape (S,), optional
        Problem id of each sample, for ``normalize="group"`` only.

    Returns
    -------
    ndarray of float64, shape (S,)

    Notes
    -----
    The standard deviation has ddof 0 (``np.std``). A set whose values are all
    equal (zero spread) maps to zeros instead of dividing by zero: with no
    spread there is no preference between its samples. For "group" this is the
    common case of a problem whose samples got the same reward.

    Raises
    ------
    ValueError
        Empty or non-finite rewards, ``low >= high``, unknown `normalize`,
        `group` missing for (or given without) ``normalize="group"``.
    TypeError
        Non-numeric rewards, `clip` not a pair.

    Examples
    --------
    >>> import o1pruner
    >>> o1pruner.harmonize_weights([-3.0, 0.0, 5.0], normalize=None).tolist()
    [-2.0, 0.0, 4.0]
    """
    return _core.harmonize_weights(rewards, clip, normalize, group)
