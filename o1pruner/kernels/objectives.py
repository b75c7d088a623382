"""O1-Pruner's training objective (method.md step 3): per-sequence log-probs
and the off-policy PPO-clip loss with its gradient, plus the token-level
variants of its peers (TRL's GRPOTrainer, verl); and the DPO loss of the
paper's DPO baseline. The numbers come from the C core; this module owns the
documentation and the defaults."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import numpy.typing as npt

from .._loader import _core

__all__ = [
    "split_aggregate",
    "micro_batch_scale",
    "PPOStats",
    "PPOClipResult",
    "sequence_logprobs",
    "sequence_logprobs_backward",
    "ppo_clip_loss",
    "DPOStats",
    "DPOResult",
    "dpo_loss",
]


def sequence_logprobs(token_logp: npt.ArrayLike, mask: npt.ArrayLike, reduce: str = "sum") -> np.ndarray:
    """Log-probability of each sequence from its token log-probs.

    Parameters
    ----------
    token_logp : array_like of float, shape (B, T)
        Token log-probs, e.g. from :func:`token_logprobs` reshaped to [B, T].
        Entries where `mask` is 0 are ignored (any value, NaN included).
    mask : array_like of bool or 0/1, shape (B, T)
        1 for the response tokens that count.
    reduce : {"sum", "mean"}, default "sum"
        "sum": log pi(y|x) = sum of valid token log-probs. "mean": that sum
        divided by the number of valid tokens, the length-normalised log-prob
        of the public O1-Pruner code.

    Returns
    -------
    ndarray of float64, shape (B,)
        Sums are accumulated in float64. A fully masked row gives 0 for both
        reductions (an empty sum; the mean is defined as 0, not 0/0).

    Raises
    ------
    ValueError
        Shapes differ, B or T is 0, mask values other than 0/1, unknown
        `reduce`, or a valid entry is NaN or +inf (-inf is allowed: a token of
        probability 0 makes the sequence log-prob -inf).
    TypeError
        Non-floating `token_logp`, non-numeric `mask`.

    Examples
    --------
    >>> import numpy as np, o1pruner
    >>> lp = np.array([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    >>> m = np.array([[1, 1, 0], [1, 0, 0]])
    >>> o1pruner.sequence_logprobs(lp, m).tolist()
    [-3.0, -0.5]
    >>> o1pruner.sequence_logprobs(lp, m, reduce="mean").tolist()
    [-1.5, -0.5]
    """
    return _core.sequence_logprobs(token_logp, mask, reduce)


def sequence_logprobs_backward(grad: npt.ArrayLike, mask: npt.ArrayLike, reduce: str = "sum") -> np.ndarray:
    """Gradient of :func:`sequence_logprobs` with respect to the token log-probs.

    Parameters
    ----------
    grad : array_like of float, shape (B,)
        d loss / d sequence_logprobs (finite).
    mask : array_like of bool or 0/1, shape (B, T)
        The mask given to the forward.
    reduce : {"sum", "mean"}, default "sum"
        The reduction of the forward.

    Returns
    -------
    ndarray of float32, shape (B, T)
        ``mask[b, t] * grad[b]`` ("sum") or ``mask[b, t] * grad[b] / n_b``
        ("mean", n_b valid tokens); 0 on masked tokens and on fully masked rows.

    Raises
    ------
    ValueError
        `grad` length differs from B, non-finite `grad`, empty mask, mask values
        other than 0/1, unknown `reduce`.
    TypeError
        Non-floating `grad`.

    Examples
    --------
    >>> import numpy as np, o1pruner
    >>> o1pruner.sequence_logprobs_backward([1.0, 2.0], [[1, 1, 0], [1, 0, 0]], "mean").tolist()
    [[0.5, 0.5, 0.0], [2.0, 0.0, 0.0]]
    """
    return _core.sequence_logprobs_backward(grad, mask, reduce)


class PPOStats(NamedTuple):
    """Diagnostics of one :func:`ppo_clip_loss` call.

    They are taken over the valid tokens (``ratio="token"``) or over the
    non-empty sequences (``ratio="sequence_mean"``); `count` says how many.
    With ``count == 0`` the fractions and `approx_kl` are 0 and the ratio
    statistics 1 (the ratio of an empty sequence, exp(0)).

    Attributes
    ----------
    clip_fraction : float
        Share where the clipped branch is strictly the larger loss, i.e. the
        ratio left [1 - eps_low, 1 + eps_high] in the direction the advantage
        favours (verl's ``pg_clipfrac``, TRL's ``clip_ratio/region_mean``).
    dual_clip_fraction : float
        Share where the dual-clip bound ``-A * dual_clip`` is strictly active
        (verl's ``pg_clipfrac_lower``); 0 without `dual_clip`.
    approx_kl : float
        Mean of ``-log r`` (after `logratio_clamp`): the k1 estimate of
        KL(pi_ref || pi_theta) on these samples (verl's ``ppo_kl``).
    ratio_mean, ratio_min, ratio_max : float
        Of the ratios r used by the loss.
    count : int
        Valid tokens, or non-empty sequences.
    """

    clip_fraction: float
    dual_clip_fraction: float
    approx_kl: float
    ratio_mean: float
    ratio_min: float
    ratio_max: float
    count: int


class PPOClipResult(NamedTuple):
    """Result of :func:`ppo_clip_loss`.

    Attributes
    ----------
    loss : float
        The objective to minimise.
    grad : ndarray of float32, shape (B, T)
        d loss / d logp; 0 on masked tokens.
    stats : PPOStats
        Diagnostics (clip fractions, approximate KL, ratio range).
    """

    loss: float
    grad: np.ndarray
    stats: PPOStats


def ppo_clip_loss(
    logp: npt.ArrayLike,
    ref_logp: npt.ArrayLike,
    advantages: npt.ArrayLike,
    mask: npt.ArrayLike,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    ratio: str = "sequence_mean",
    aggregate: Optional[str] = None,
    dual_clip: Optional[float] = None,
    logratio_clamp: Optional[float] = None,
    *,
    global_batch_size: Optional[int] = None,
    batch_num_tokens: Optional[int] = None,
    max_response_length: Optional[int] = None,
) -> PPOClipResult:
    """The off-policy PPO-clip loss of O1-Pruner and its gradient.

    With the defaults this is exactly the loss of the public O1-Pruner code
    (StarDewXXX/O1-Pruner, ``src/llamafactory/train/wsft/trainer.py``,
    ``compute_loss``; method.md step 3)::

        mean_lp_b  = sum_t mask*logp[b]     / n_b      (n_b = valid tokens)
        mean_ref_b = sum_t mask*ref_logp[b] / n_b
        r_b  = exp(mean_lp_b - mean_ref_b)
        loss = mean_b max(-A_b r_b, -A_b clamp(r_b, 1 - eps_low, 1 + eps_high))

    with ``A_b`` the harmonised weight of the sample (its advantage). The
    paper states the same objective with the whole-sequence ratio; the code
    uses the length-normalised one above, which we follow.

    ``ratio="token"`` gives the peers' per-token objective,
    ``l_bt = max(-A_b r_bt, -A_b clamp(r_bt, 1 - eps_low, 1 + eps_high))`` with
    ``r_bt = exp(logp - ref_logp)``, aggregated as each peer does:

    ========================  ==========================================  ==============================
    aggregate                 loss                                        reproduces
    ========================  ==========================================  ==============================
    "token-mean" (default)    sum_bt l / N   (N valid tokens)             verl ``agg_loss`` token-mean
    "bnpo"                    sum_bt l / max(N, 1)                        TRL GRPOTrainer loss_type bnpo
    "grpo"                    mean_b (sum_t l / max(n_b, 1))              TRL GRPOTrainer loss_type grpo
    "seq-mean-token-mean"     mean_b (sum_t l / n_b)                      verl ``agg_loss``
    "seq-mean-token-sum"      mean_b (sum_t l)                            verl ``agg_loss``
    "dr_grpo"                 sum_bt l / (B * T)                          TRL GRPOTrainer loss_type dr_grpo
    ========================  ==========================================  ==============================

    verl's policy loss (``core_algos.compute_policy_loss``) is
    ``ratio="token", logratio_clamp=20, dual_clip=3`` with its aggregate;
    TRL's (``GRPOTrainer._compute_loss`` without the KL term, beta = 0) is
    ``ratio="token"`` with "grpo", "bnpo" or "dr_grpo". ("token-mean" and
    "bnpo", "grpo" and "seq-mean-token-mean" are the same formula here.)

    Parameters
    ----------
    logp : array_like of float, shape (B, T)
        Token log-probs of the sampled responses under the policy being trained.
        Masked entries are ignored (any value, NaN included).
    ref_logp : array_like of float, shape (B, T) or (B,)
        Token log-probs under the frozen reference (the sampling model), or,
        for ``ratio="sequence_mean"`` only, the per-sequence mean log-probs
        ``sequence_logprobs(ref_token_logp, mask, "mean")`` computed once
        (kept in float64).
    advantages : array_like of float, shape (B,)
        One advantage per sequence (O1-Pruner: the harmonised weights). Finite.
    mask : array_like of bool or 0/1, shape (B, T)
        1 for response tokens.
    eps_low, eps_high : float, default 0.2
        The ratio is clipped to ``[1 - eps_low, 1 + eps_high]``; each in (0, 1).
        (Asymmetric bounds, DAPO's "clip-higher", are TRL's epsilon /
        epsilon_high and verl's clip_ratio_low / clip_ratio_high.)
    ratio : {"sequence_mean", "token"}, default "sequence_mean"
        Where the importance ratio lives (see above).
    aggregate : str or None, default None
        None picks "mean" for ``ratio="sequence_mean"`` and "token-mean" for
        ``ratio="token"``. With "sequence_mean": "mean" (the public code) or
        "sum" (sum over sequences, for your own normalisation). With "token":
        "grpo", "bnpo", "dr_grpo", "token-mean", "seq-mean-token-mean",
        "seq-mean-token-sum".
    dual_clip : float or None, default None
        Dual-clip PPO (Ye et al. 2020; verl's clip_ratio_c, 3 by default
        there): for ``A < 0`` the loss becomes ``min(loss, -A * dual_clip)``,
        bounding how hard a very unlikely negative sample pushes. Must be > 1.
    logratio_clamp : float or None, default None
        Clamp the log-ratio to ``[-c, c]`` before the exponential (verl uses
        20). Must be > 0. Without it a token log-ratio above ~88.7 overflows
        the float32 ratio to inf (as in PyTorch).
    global_batch_size, batch_num_tokens, max_response_length : int or None
        The normalisers of the whole batch when this call is one micro-batch
        of it (verl's ``agg_loss(..., global_batch_size, batch_num_tokens)``:
        the loss is invariant to how the batch is split). B in the aggregates
        becomes `global_batch_size`, N becomes `batch_num_tokens` and the T
        of "dr_grpo" becomes `max_response_length`; summing the losses and
        gradients of the micro-batches gives those of the whole batch. None:
        this call's own B, N and T (the default, one batch).

    Returns
    -------
    PPOClipResult
        ``(loss, grad, stats)``: the loss as a float, d loss / d logp as
        float32 [B, T] (0 on masked tokens), and :class:`PPOStats`.

    Raises
    ------
    ValueError
        Shapes that disagree (the message names both arguments), B or T of 0,
        non-finite advantages (with ``ratio="token"``: beyond the float32
        range, as the per-token work is float32), a valid `logp` / `ref_logp` entry that is NaN or
        +-inf (a -inf log-prob makes the ratio 0 or NaN: mask such tokens
        out), eps outside (0, 1), ``dual_clip <= 1``, ``logratio_clamp <= 0``,
        an unknown `ratio` / `aggregate` (the message lists the choices), an
        aggregate of the other ratio mode, a [B] `ref_logp` with
        ``ratio="token"``.
    TypeError
        Non-floating arrays, non-numeric options.

    Notes
    -----
    Numerics: per-token work in float32 (as PyTorch), every sum over a
    sequence or the batch in float64; with ``ratio="sequence_mean"`` the
    per-sequence means, ratio and loss are float64. Results do not depend on
    the thread count.

    Gradients follow PyTorch 2.13's autograd at the kinks (torch 2.14.1 changed
    ``clamp``'s gradient at exactly the bounds): ``max``/``min`` give the
    whole gradient to the larger/smaller side and half to each side of a tie,
    and ``clamp`` passes it on its inclusive range. Inside the clip range the
    two branches tie exactly, so the gradient is whole there and at the
    boundaries too. Where a branch passes no gradient it is exactly 0, also
    for an overflowed ratio (PyTorch would give 0 * inf = NaN there); a
    sequence with ``A == 0`` contributes 0 to the loss and the gradient.

    Fully masked sequences (padding rows) contribute 0 to the loss and the
    gradient and are left out of the statistics, in every mode; they still
    count in B where the aggregate divides by B. (The public code and verl's
    "seq-mean-token-mean" would give NaN, 0/0, for them; TRL's "grpo" gives 0
    as here.) Differences from the peers beyond that: TRL's "dr_grpo" divides
    by ``B * max_completion_length``: pad the batch to that length (T) to
    reproduce it. verl's token-mean adds 1e-8 to N, which changes nothing in
    float32 for N >= 1.

    Examples
    --------
    >>> import numpy as np, o1pruner
    >>> logp = np.array([[-1.0, -1.0, 0.0], [-2.0, -2.0, -2.0]])
    >>> mask = np.array([[1, 1, 0], [1, 1, 1]])
    >>> res = o1pruner.ppo_clip_loss(logp, logp, np.array([1.0, -0.5]), mask)
    >>> round(res.loss, 6)          # r = 1: mean(-A)
    -0.25
    >>> res.grad.tolist()           # -A_b / (B * n_b) on valid tokens
    [[-0.25, -0.25, 0.0], [0.0833333358168602, 0.0833333358168602, 0.0833333358168602]]
    >>> res.stats.count, res.stats.ratio_mean
    (2, 1.0)
    """
    if global_batch_size is None and batch_num_tokens is None and max_response_length is None:
        loss, grad, stats = _core.ppo_clip_loss(
            logp, ref_logp, advantages, mask, eps_low, eps_high, ratio, aggregate, dual_clip, logratio_clamp
        )
        return PPOClipResult(loss, grad, PPOStats(*stats))
    # one micro-batch of a larger batch: the kernel sums, the batch's counts normalise
    sub = split_aggregate(ratio, aggregate)
    loss, grad, stats = _core.ppo_clip_loss(
        logp, ref_logp, advantages, mask, eps_low, eps_high, ratio, sub, dual_clip, logratio_clamp
    )
    st = PPOStats(*stats)
    scale = micro_batch_scale(ratio, aggregate, grad.shape[0], grad.shape[1], st.count if ratio == "token" else None,
                              global_batch_size, batch_num_tokens, max_response_length)
    return PPOClipResult(loss * scale, grad * np.float32(scale), st)


def _count(v: Optional[int], name: str, lo: int) -> Optional[int]:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name}: must be an int >= {lo} or None, got {v!r}")
    return int(v)


def split_aggregate(ratio: str, aggregate: Optional[str]) -> Optional[str]:
    """The aggregate the kernel computes for one micro-batch so that a scale
    by the batch's normalisers gives `aggregate` (see :func:`micro_batch_scale`):
    a per-sequence sum, or `aggregate` itself where it is already a mean of
    per-sequence values."""
    if ratio == "sequence_mean":
        return "sum" if aggregate in (None, "mean", "sum") else aggregate
    if ratio != "token":
        return aggregate  # the kernel names the bad value
    agg = aggregate or "token-mean"
    if agg in ("token-mean", "bnpo", "dr_grpo"):
        return "seq-mean-token-sum"
    return agg


def micro_batch_scale(ratio: str, aggregate: Optional[str], b: int, T: int, n_tokens: Optional[int],
                      global_batch_size: Optional[int], batch_num_tokens: Optional[int],
                      max_response_length: Optional[int]) -> float:
    """Factor turning the :func:`split_aggregate` loss of a micro-batch of `b`
    sequences (width `T`, `n_tokens` valid tokens) into its share of the
    whole batch's `aggregate` loss."""
    G = _count(global_batch_size, "global_batch_size", 1)
    N = _count(batch_num_tokens, "batch_num_tokens", 0)
    L = _count(max_response_length, "max_response_length", 1)
    G = b if G is None else G
    if ratio == "sequence_mean":
        return 1.0 / G if (aggregate or "mean") == "mean" else 1.0
    agg = aggregate or "token-mean"
    N = (n_tokens or 0) if N is None else N
    if agg == "token-mean":
        return b / N if N > 0 else 0.0
    if agg == "bnpo":
        return b / max(N, 1)
    if agg in ("grpo", "seq-mean-token-mean", "seq-mean-token-sum"):
        return b / G
    return b / (G * (T if L is None else L))  # dr_grpo


class DPOStats(NamedTuple):
    """Diagnostics of one :func:`dpo_loss` call, over its non-padding pairs
    (`count` of them; unweighted). The implicit rewards are
    ``beta * (log pi(y|x) - log pi_ref(y|x))`` (TRL's ``rewards/*``). All 0
    when ``count == 0``.

    Attributes
    ----------
    reward_margin : float
        Mean of ``chosen reward - rejected reward`` (the margin z of the loss).
    reward_accuracy : float
        Share of pairs whose margin is > 0 (the policy prefers the chosen
        response more than the reference does).
    chosen_reward, rejected_reward : float
        Means of the implicit rewards of the chosen and rejected responses.
    count : int
        Non-padding pairs.
    """

    reward_margin: float
    reward_accuracy: float
    chosen_reward: float
    rejected_reward: float
    count: int


class DPOResult(NamedTuple):
    """Result of :func:`dpo_loss`.

    Attributes
    ----------
    loss : float
        The objective to minimise.
    chosen_grad : ndarray of float32, shape (B, Tc)
        d loss / d chosen_logp; 0 on masked tokens.
    rejected_grad : ndarray of float32, shape (B, Tr)
        d loss / d rejected_logp; 0 on masked tokens.
    stats : DPOStats
    """

    loss: float
    chosen_grad: np.ndarray
    rejected_grad: np.ndarray
    stats: DPOStats


def dpo_loss(
    chosen_logp: npt.ArrayLike,
    rejected_logp: npt.ArrayLike,
    ref_chosen_logp: npt.ArrayLike,
    ref_rejected_logp: npt.ArrayLike,
    chosen_mask: npt.ArrayLike,
    rejected_mask: npt.ArrayLike,
    beta: float = 0.1,
    *,
    weights: Optional[npt.ArrayLike] = None,
    length_normalize: bool = False,
    global_batch_size: Optional[int] = None,
) -> DPOResult:
    """The DPO loss (Rafailov et al. 2023) and its gradients: the paper's
    DPO baseline (method.md), preference pairs against the frozen reference::

        pi_c = sum_t chosen_mask * chosen_logp      (the policy's log pi(y_c|x))
        pi_r = sum_t rejected_mask * rejected_logp
        z_b  = beta * ((pi_c - ref_chosen_logp) - (pi_r - ref_rejected_logp))
        loss = sum_b w_b * -log sigmoid(z_b) / B

    (TRL's DPOTrainer ``loss_type="sigmoid"`` without label smoothing; with
    ``w = 1`` the mean over pairs). ``-log sigmoid`` is evaluated as
    ``softplus(-z)``, stable for any margin.

    The chosen and rejected token log-probs are separate arrays, each with
    its own width: a trainer that scores both in one forward pass over a
    ``[2B, T]`` batch laid out as chosen rows then rejected rows passes the
    two halves (views, no copy); one whose rejected responses (the longest
    samples) are much longer pads each side only to its own length.

    Parameters
    ----------
    chosen_logp, rejected_logp : array_like of float, shapes (B, Tc), (B, Tr)
        Token log-probs of each pair's chosen and rejected response under the
        policy being trained. Masked entries are ignored (any value, NaN
        included); valid ones must be finite.
    ref_chosen_logp, ref_rejected_logp : array_like of float, shape (B,)
        The frozen reference's sequence log-probs of the same responses
        (``sequence_logprobs(ref_token_logp, mask)``, computed once; with
        `length_normalize` the means, ``reduce="mean"``). Finite. Kept in
        float64.
    chosen_mask, rejected_mask : array_like of bool or 0/1, shapes (B, Tc), (B, Tr)
        1 for response tokens. A pair whose two rows are both fully masked
        is padding: it contributes 0 to the loss and the gradients, is left
        out of the statistics, and still counts in B. A pair with exactly one
        empty row is an error (a response has at least its end token).
    beta : float, default 0.1
        The KL weight (the inverse temperature of the margin); finite, > 0.
    weights : array_like of float, shape (B,), optional
        A weight per pair, finite and >= 0 (default 1). The loss is
        ``sum_b w_b l_b / B`` (not divided by the weights' sum, so it does
        not depend on how a batch is split).
    length_normalize : bool, default False
        Use the mean of the valid token log-probs instead of their sum (a
        length-normalised DPO, as SimPO / IPO's normalised variants; the
        references must then be means too).
    global_batch_size : int, optional
        The B of the whole batch when this call is one micro-batch of it:
        the loss and gradients are those of the micro-batch's share, so their
        sums over the micro-batches equal the whole batch's.

    Returns
    -------
    DPOResult
        ``(loss, chosen_grad, rejected_grad, stats)``: the loss as a float,
        d loss / d chosen_logp and d loss / d rejected_logp as float32 arrays
        of the inputs' shapes (0 on masked tokens), and :class:`DPOStats`.

    Raises
    ------
    ValueError
        Shapes that disagree (the message names both arguments), B or a
        width of 0, a valid log-prob that is NaN or +-inf, a non-finite
        reference (or implicit rewards beyond float64), a pair with exactly
        one empty row, mask values other than
        0/1, ``beta <= 0`` or non-finite, negative or non-finite weights.
    TypeError
        Non-floating log-probs, non-numeric options, a `length_normalize`
        that is not a bool.

    Notes
    -----
    Each sequence log-prob is a float64 sum of float32 token log-probs; the
    margin, the loss and its derivative ``-beta w_b sigmoid(-z_b) / B`` are
    float64, the gradients are stored as float32. Results do not depend on
    the thread count.

    Examples
    --------
    >>> import numpy as np, o1pruner
    >>> c = np.array([[-1.0, -1.0, 0.0]])          # chosen: 2 tokens
    >>> r = np.array([[-1.0, -2.0, -3.0]])         # rejected: 3 tokens
    >>> m_c, m_r = np.array([[1, 1, 0]]), np.ones((1, 3))
    >>> res = o1pruner.dpo_loss(c, r, [-2.0], [-6.0], m_c, m_r, beta=0.1)
    >>> round(res.loss, 6)                         # policy = reference: log 2
    0.693147
    >>> res.chosen_grad.tolist()                   # -beta * sigmoid(0)
    [[-0.05000000074505806, -0.05000000074505806, 0.0]]
    >>> res.stats.reward_accuracy, res.stats.count
    (0.0, 1)
    """
    loss, gc, gr, stats = _core.dpo_loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp,
                                         chosen_mask, rejected_mask, beta, weights, length_normalize)
    if global_batch_size is not None:
        G = _count(global_batch_size, "global_batch_size", 1)
        assert G is not None
        scale = gc.shape[0] / G
        loss, gc, gr = loss * scale, gc * np.float32(scale), gr * np.float32(scale)
    return DPOResult(loss, gc, gr, DPOStats(*stats))
