"""Readable float64 NumPy twins of every C kernel.

Each function here computes what its namesake in the public API computes, in
the plainest NumPy a reader can check against method.md in a minute. Tests
compare the C core against these; nothing else should call them in a hot path.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "reference_stats",
    "length_harmonizing_reward",
    "harmonize_weights",
    "token_logprobs",
    "token_logprobs_backward",
    "sequence_logprobs",
    "sequence_logprobs_backward",
    "ppo_clip_loss",
]


# ---- rewards (method.md steps 1-2) ---------------------------------------

def reference_stats(lengths, correct, group):
    """(ids, mean_length, accuracy, count, inverse) per problem id."""
    lengths = np.asarray(lengths, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    ids, inverse, count = np.unique(np.asarray(group), return_inverse=True, return_counts=True)
    mean_length = np.bincount(inverse, weights=lengths) / count
    accuracy = np.bincount(inverse, weights=correct) / count
    return ids, mean_length, accuracy, count, inverse


def length_harmonizing_reward(lengths, correct, ref_mean_length, ref_accuracy, lam):
    """R = Lbar/L - 1 + lam (A - Abar)."""
    L = np.asarray(lengths, dtype=np.float64)
    A = np.asarray(correct, dtype=np.float64)
    return np.asarray(ref_mean_length, np.float64) / L - 1.0 + lam * (A - np.asarray(ref_accuracy, np.float64))


def harmonize_weights(rewards, clip=(-2.0, 4.0), normalize="dataset", group=None):
    """Clip (w <= lo -> lo, w > hi -> hi), then z-score with ddof 0."""
    w = np.array(rewards, dtype=np.float64)
    if clip is not None:
        lo, hi = clip
        w = np.where(w <= lo, lo, w)
        w = np.where(w > hi, hi, w)

    def z(x):
        sd = x.std()
        return np.zeros_like(x) if np.all(x == x[0]) else (x - x.mean()) / sd

    if normalize == "dataset":
        return z(w)
    if normalize == "group":
        out = np.empty_like(w)
        group = np.asarray(group)
        for g in np.unique(group):
            sel = group == g
            out[sel] = z(w[sel])
        return out
    return w


# ---- token log-probs (shared by the logprob and fused families) ------------

def token_logprobs(logits, targets, temperature=1.0, ignore_index=-100):
    """(logp, entropy, lse) per row of z = logits / temperature, float64.

    logp[i] = z[i, t_i] - lse[i], lse[i] = log sum_j exp z[i, j],
    entropy[i] = -sum_j p_ij log p_ij = lse[i] - sum_j p_ij z_ij.
    Rows whose target is ignore_index give 0 for all three. Entries of -inf
    (a masked vocabulary) have p = 0 and add nothing to the entropy.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    t = np.asarray(targets, dtype=np.int64)
    n = z.shape[0]
    logp, ent, lse = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        if t[i] == ignore_index:
            continue
        m = z[i].max()
        s = np.exp(z[i] - m).sum()
        lse[i] = m + np.log(s)
        p = np.exp(z[i] - lse[i])
        finite = p > 0
        ent[i] = lse[i] - (p[finite] * z[i][finite]).sum()
        logp[i] = z[i, t[i]] - lse[i]
    return logp, ent, lse


def token_logprobs_backward(logits, targets, grad_logp, grad_entropy=None, temperature=1.0,
                            ignore_index=-100):
    """d/d logits of sum_i grad_logp[i] logp[i] + grad_entropy[i] entropy[i].

    With p = softmax(z) and z = logits / temperature:
    d logp_i / d z_ij = 1[j = t_i] - p_ij and
    d H_i / d z_ij = -p_ij (z_ij - sum_k p_ik z_ik); both scaled by 1/temperature.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    t = np.asarray(targets, dtype=np.int64)
    g = np.zeros_like(z)
    for i in range(z.shape[0]):
        if t[i] == ignore_index:
            continue
        m = z[i].max()
        lse = m + np.log(np.exp(z[i] - m).sum())
        p = np.exp(z[i] - lse)
        finite = p > 0
        zf = np.where(finite, z[i], 0.0)
        ez = (p * zf).sum()
        row = -grad_logp[i] * p
        row[t[i]] += grad_logp[i]
        if grad_entropy is not None:
            row -= grad_entropy[i] * p * (zf - ez)
        g[i] = row / temperature
    return g


# ---- objectives: sequence log-probs and PPO-clip (method.md step 3) ---------

def sequence_logprobs(token_logp, mask, reduce="sum"):
    """Sum (or mean over valid tokens) of each row's valid token log-probs.
    A fully masked row gives 0."""
    x = np.asarray(token_logp, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    s = np.where(m, x, 0.0).sum(axis=1)
    if reduce == "mean":
        n = m.sum(axis=1)
        s = np.where(n > 0, s / np.maximum(n, 1), 0.0)
    return s


def sequence_logprobs_backward(grad, mask, reduce="sum"):
    """d/d token_logp of sum_b grad[b] * sequence_logprobs(...)[b]."""
    m = np.asarray(mask).astype(bool)
    g = np.asarray(grad, dtype=np.float64)
    if reduce == "mean":
        n = m.sum(axis=1)
        g = np.where(n > 0, g / np.maximum(n, 1), 0.0)
    return np.where(m, g[:, None], 0.0)


def _clip_objective(lr, A, eps_low, eps_high, dual_clip, logratio_clamp):
    """The PPO-clip loss of log-ratios `lr` (A broadcasts against it) and its
    derivative d loss / d lr, with PyTorch's rules at the kinks: max/min give
    the whole gradient to the larger/smaller side and half to each side of a
    tie; clamp passes it on its inclusive range. Returns (loss, dloss, r,
    clamped log-ratio, clipped, dual_clipped)."""
    if logratio_clamp is not None:
        lrc = np.clip(lr, -logratio_clamp, logratio_clamp)
        g_lr = (lr >= -logratio_clamp) & (lr <= logratio_clamp)
    else:
        lrc, g_lr = lr, np.ones(np.shape(lr), dtype=bool)
    r = np.exp(lrc)
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    p1 = -A * r                       # unclipped branch
    p2 = -A * np.clip(r, lo, hi)      # clipped branch
    loss = np.maximum(p1, p2)
    share1 = np.where(p1 > p2, 1.0, np.where(p1 == p2, 0.5, 0.0))
    w = share1 + (1.0 - share1) * ((r >= lo) & (r <= hi))   # d loss / d r = -A w
    dual_clipped = np.zeros(np.shape(loss), dtype=bool)
    if dual_clip is not None:         # verl: for A < 0, min(loss, -A c)
        p3 = -A * dual_clip
        neg = np.broadcast_to(A < 0, np.shape(loss))
        share = np.where(loss < p3, 1.0, np.where(loss == p3, 0.5, 0.0))
        dual_clipped = neg & (loss > p3)
        loss = np.where(neg, np.minimum(loss, p3), loss)
        w = np.where(neg, w * share, w)
    zero = np.broadcast_to(A == 0, np.shape(loss))
    loss = np.where(zero, 0.0, loss)
    d = np.where(zero, 0.0, w) * g_lr
    dloss = np.where(d != 0, -A * d * r, 0.0)    # chain rule through r = exp(lr)
    return loss, dloss, r, lrc, p2 > p1, dual_clipped


def ppo_clip_loss(logp, ref_logp, advantages, mask, eps_low=0.2, eps_high=0.2,
                  ratio="sequence_mean", aggregate=None, dual_clip=None, logratio_clamp=None):
    """(loss, d loss / d logp [B,T], stats dict), float64.

    ratio="sequence_mean": r_b = exp(mean_lp_b - mean_ref_b) over valid tokens,
    loss = (1/B or 1) * sum_b l_b over non-empty rows ("mean" / "sum").
    ratio="token": r_bt = exp(logp - ref_logp) per valid token, the token losses
    weighted by the aggregate: 1/N ("token-mean", "bnpo"), 1/(B n_b) ("grpo",
    "seq-mean-token-mean"), 1/B ("seq-mean-token-sum"), 1/(B T) ("dr_grpo").
    """
    lp = np.asarray(logp, dtype=np.float64)
    ref = np.asarray(ref_logp, dtype=np.float64)
    A = np.asarray(advantages, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    B, T = lp.shape
    n = m.sum(axis=1)
    opts = (eps_low, eps_high, dual_clip, logratio_clamp)
    with np.errstate(invalid="ignore", over="ignore"):
        if ratio == "sequence_mean":
            aggregate = aggregate or "mean"
            mean_lp = np.where(m, lp, 0.0).sum(axis=1) / np.maximum(n, 1)
            mean_ref = ref if ref.ndim == 1 else np.where(m, ref, 0.0).sum(axis=1) / np.maximum(n, 1)
            l, dl, r, lrc, clipped, dclipped = _clip_objective(mean_lp - mean_ref, A, *opts)
            s = 1.0 / B if aggregate == "mean" else 1.0
            ok = n > 0                    # fully masked rows contribute nothing
            loss = s * l[ok].sum()
            grad = np.where(m, np.where(ok, s * dl / np.maximum(n, 1), 0.0)[:, None], 0.0)
            sel = ok
        else:
            aggregate = aggregate or "token-mean"
            lr = np.where(m, lp - ref, 0.0)
            l, dl, r, lrc, clipped, dclipped = _clip_objective(lr, A[:, None], *opts)
            N = n.sum()
            weight = {
                "token-mean": np.full(B, 1.0 / N if N > 0 else 0.0),
                "bnpo": np.full(B, 1.0 / max(N, 1)),
                "grpo": 1.0 / (B * np.maximum(n, 1)),
                "seq-mean-token-mean": 1.0 / (B * np.maximum(n, 1)),
                "seq-mean-token-sum": np.full(B, 1.0 / B),
                "dr_grpo": np.full(B, 1.0 / (B * T)),
            }[aggregate][:, None]
            loss = np.where(m, weight * l, 0.0).sum()
            grad = np.where(m, weight * dl, 0.0)
            sel = m
    count = int(sel.sum())
    stats = dict(
        clip_fraction=clipped[sel].mean() if count else 0.0,
        dual_clip_fraction=dclipped[sel].mean() if count else 0.0,
        approx_kl=-lrc[sel].mean() if count else 0.0,
        ratio_mean=r[sel].mean() if count else 1.0,
        ratio_min=r[sel].min() if count else 1.0,
        ratio_max=r[sel].max() if count else 1.0,
        count=count,
    )
    return float(loss), grad, stats
