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
    "fused_linear_logprobs",
    "fused_linear_logprobs_backward",
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


# ---- fused LM head + token log-probs (the fused family) --------------------

def _lm_head_logits(hidden, weight, bias):
    """Materialised logits hidden @ weight.T + bias, float64 [N, V]."""
    logits = np.asarray(hidden, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        logits = logits + np.asarray(bias, np.float64)
    return logits


def fused_linear_logprobs(hidden, weight, targets, temperature=1.0, ignore_index=-100, bias=None):
    """(logp, entropy, lse) of z = (hidden @ weight.T + bias) / temperature.

    The unfused definition: materialise the N x V logits, then token_logprobs.
    """
    return token_logprobs(_lm_head_logits(hidden, weight, bias), targets, temperature, ignore_index)


def fused_linear_logprobs_backward(hidden, weight, targets, grad_logp, grad_entropy=None,
                                   temperature=1.0, ignore_index=-100, bias=None):
    """(grad_hidden, grad_weight, grad_bias) of sum_i grad_logp[i] logp[i] +
    grad_entropy[i] entropy[i], by the chain rule through the logits:
    with G = d/d logits (token_logprobs_backward), grad_hidden = G @ weight,
    grad_weight = G.T @ hidden, grad_bias = G summed over the tokens."""
    h = np.asarray(hidden, np.float64)
    w = np.asarray(weight, np.float64)
    g = token_logprobs_backward(_lm_head_logits(h, w, bias), targets, np.asarray(grad_logp, np.float64),
                                None if grad_entropy is None else np.asarray(grad_entropy, np.float64),
                                temperature, ignore_index)
    return g @ w, g.T @ h, g.sum(axis=0)
