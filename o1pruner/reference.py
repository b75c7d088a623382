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
