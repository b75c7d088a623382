"""Fused LM head + token log-probs: the log-probability and entropy of every
target token straight from the hidden states and the head weight, forward and
backward, without ever materialising the N x V logits. The numbers come from
the C core (tiles of tokens x vocabulary through BLAS sgemm); this module owns
the documentation and the defaults."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np
import numpy.typing as npt

from .._loader import _core

__all__ = [
    "FusedStats",
    "FusedLogprobs",
    "fused_linear_logprobs",
    "fused_linear_logprobs_backward",
]


class FusedStats(NamedTuple):
    """Per-token statistics the backward needs (O(N) memory).

    Attributes
    ----------
    lse : ndarray of float32, shape (N,)
        log-sum-exp of the scaled logits z of each row (0 on ignored rows).
    entropy : ndarray of float32, shape (N,)
        Entropy of each row's distribution (0 on ignored rows). Together with
        `lse` it gives ``E_p[z] = lse - entropy``.
    """

    lse: np.ndarray
    entropy: np.ndarray


class FusedLogprobs(NamedTuple):
    """Result of :func:`fused_linear_logprobs`.

    Attributes
    ----------
    logp : ndarray of float32, shape (N,)
        log p(target) of each row; 0 on ignored rows.
    entropy : ndarray of float32, shape (N,)
        Entropy of each row's distribution; 0 on ignored rows.
    stats : FusedStats
        What :func:`fused_linear_logprobs_backward` needs (its own copy of the
        entropy, so editing `entropy` in place does not change it).
    """

    logp: np.ndarray
    entropy: np.ndarray
    stats: FusedStats


def fused_linear_logprobs(
    hidden: npt.ArrayLike,
    weight: npt.ArrayLike,
    targets: npt.ArrayLike,
    temperature: float = 1.0,
    ignore_index: int = -100,
    bias: Optional[npt.ArrayLike] = None,
) -> FusedLogprobs:
    """Token log-probs and entropies of an LM head, without the logits.

    With ``z = (hidden @ weight.T + bias) / temperature`` and
    ``p = softmax(z)`` over the vocabulary, returns for each row i
    ``logp[i] = z[i, t_i] - logsumexp(z[i])`` and the entropy
    ``H[i] = logsumexp(z[i]) - sum_j p_ij z_ij``: the same numbers as
    ``token_logprobs(hidden @ weight.T + bias, targets, temperature)`` within
    float32 rounding, but the N x V logits are never stored (memory: O(N) plus
    a few 1 MiB tiles per thread).

    Parameters
    ----------
    hidden : array_like of float, shape (N, d)
        Final hidden states, one row per token (after the last norm).
    weight : array_like of float, shape (V, d)
        LM-head weight (rows = vocabulary, as stored by PyTorch's ``nn.Linear``).
    targets : array_like of int, shape (N,)
        Token whose log-prob is wanted, in ``[0, V)``, or `ignore_index`.
    temperature : float, default 1.0
        Divides the logits (the sampling temperature); > 0.
    ignore_index : int, default -100
        Rows with this target are skipped: logp, entropy and their stats are
        0 there and they get no gradient (PyTorch's convention for prompt and
        padding tokens).
    bias : array_like of float, shape (V,), optional
        LM-head bias. May contain -inf to mask tokens (p = 0); not NaN or +inf.

    Returns
    -------
    FusedLogprobs
        ``(logp, entropy, stats)``, float32 arrays of shape (N,); pass `stats`
        to :func:`fused_linear_logprobs_backward`.

    Raises
    ------
    TypeError
        Non-floating `hidden`, `weight` or `bias`, non-integer `targets` or
        `ignore_index`, non-numeric `temperature`.
    ValueError
        Shapes that do not match (``hidden.shape[1] != weight.shape[1]``, one
        target per row, one bias per vocabulary row), targets outside
        ``[0, V)``, a hidden width beyond the 32-bit BLAS integer, a
        non-positive temperature, NaN/+inf in `bias`, or logits of a row that
        are inf/NaN (non-finite `hidden`/`weight`) or all -inf.

    Notes
    -----
    float32 compute (inputs of other float dtypes are converted); the sums over
    the vocabulary are accumulated in float64 across tiles. Threads split the
    tokens (or, for few tokens, the vocabulary); see ``set_num_threads``.

    Examples
    --------
    >>> import numpy as np, o1pruner
    >>> rng = np.random.default_rng(0)
    >>> h = rng.standard_normal((4, 8)).astype(np.float32)
    >>> W = rng.standard_normal((50, 8)).astype(np.float32)
    >>> out = o1pruner.fused_linear_logprobs(h, W, [3, 7, -100, 49])
    >>> out.logp.shape, float(out.logp[2]), bool((out.logp <= 0).all())
    ((4,), 0.0, True)
    """
    logp, entropy, lse = _core.fused_linear_logprobs(hidden, weight, targets, temperature, ignore_index, bias)
    return FusedLogprobs(logp, entropy, FusedStats(lse, entropy.copy()))


def fused_linear_logprobs_backward(
    hidden: npt.ArrayLike,
    weight: npt.ArrayLike,
    targets: npt.ArrayLike,
    stats: FusedStats,
    grad_logp: npt.ArrayLike,
    grad_entropy: Optional[npt.ArrayLike] = None,
    temperature: float = 1.0,
    ignore_index: int = -100,
    bias: Optional[npt.ArrayLike] = None,
    grad_hidden: Optional[np.ndarray] = None,
    grad_weight: Optional[np.ndarray] = None,
    grad_bias: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Gradients of the fused LM-head log-probs, recomputing the logits.

    Differentiates ``L = sum_i grad_logp[i] * logp[i] + grad_entropy[i] *
    entropy[i]`` with respect to `hidden`, `weight` and `bias`. Each tile of
    logits is recomputed and turned in place into the logit gradient
    ``g = (grad_logp (onehot - p) - grad_entropy p (z - E_p[z])) / temperature``,
    then ``grad_hidden += g @ weight``, ``grad_weight += g.T @ hidden`` and
    ``grad_bias += g.sum(0)``.

    Parameters
    ----------
    hidden, weight, targets, temperature, ignore_index, bias
        Exactly as given to :func:`fused_linear_logprobs`.
    stats : FusedStats
        ``stats`` of that forward (or any object with ``lse`` and ``entropy``
        arrays of shape (N,)).
    grad_logp : array_like of float, shape (N,)
        dL/dlogp of each row (ignored rows: unused).
    grad_entropy : array_like of float, shape (N,), optional
        dL/dentropy of each row; None means 0 (no entropy term).
    grad_hidden : ndarray of float32, shape (N, d), optional
        Accumulated into, in place, when given (e.g. to sum micro-batches
        without copies); a new zero array otherwise.
    grad_weight : ndarray of float32, shape (V, d), optional
        Accumulated into, in place, when given; a new zero array otherwise.
    grad_bias : ndarray of float32, shape (V,), optional
        Accumulated into, in place, when given; only allowed with a `bias`.

    Returns
    -------
    grad_hidden : ndarray of float32, shape (N, d)
    grad_weight : ndarray of float32, shape (V, d)
    grad_bias : ndarray of float32, shape (V,), or None
        None when `bias` is None. Arrays that were passed in are returned
        (the same objects), holding their old values plus these gradients.

    Raises
    ------
    TypeError
        As for the forward; an output array that is not a float32 ndarray.
    ValueError
        As for the forward; `stats`, `grad_logp` or `grad_entropy` of the wrong
        shape or not finite on valid rows; an output array of the wrong shape,
        not C-contiguous, not writeable, or sharing memory with an input;
        `grad_bias` without `bias`; and `stats` that do not belong to these
        inputs (detected: ``sum_j exp(z_ij - lse_i)`` must be 1 for every row).
        A call that raises leaves passed output arrays as they were.

    Examples
    --------
    >>> import numpy as np, o1pruner
    >>> rng = np.random.default_rng(0)
    >>> h = rng.standard_normal((4, 8)).astype(np.float32)
    >>> W = rng.standard_normal((50, 8)).astype(np.float32)
    >>> t = np.array([3, 7, -100, 49])
    >>> out = o1pruner.fused_linear_logprobs(h, W, t)
    >>> gh, gW, gb = o1pruner.fused_linear_logprobs_backward(h, W, t, out.stats, np.ones(4))
    >>> gh.shape, gW.shape, gb is None, bool((gh[2] == 0).all())
    ((4, 8), (50, 8), True, True)
    """
    try:
        lse, entropy = stats.lse, stats.entropy
    except AttributeError:
        raise TypeError(
            f"stats: expected the FusedStats of fused_linear_logprobs (with .lse and .entropy), "
            f"got {type(stats).__name__}"
        ) from None
    return _core.fused_linear_logprobs_backward(
        hidden, weight, targets, lse, entropy, grad_logp, grad_entropy, temperature, ignore_index,
        bias, grad_hidden, grad_weight, grad_bias,
    )
