"""Lambda and the training weights: the weights recomputed from the records'
length, correctness and reference statistics for a given lambda, and the dual
ascent on lambda (method.md "Going beyond"): after each step
``lam <- clip(lam + lam_lr * (Abar_ref - Ahat_theta), 0, lam_max)``, with
``Ahat_theta`` the policy's accuracy estimated off-policy from the reference
samples with self-normalised importance weights."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..kernels.rewards import harmonize_weights, length_harmonizing_reward

__all__ = ["recompute_weights", "accuracy_estimate", "dual_step"]


def recompute_weights(fields: Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], lam: float, group: np.ndarray,
                      clip: Optional[Tuple[float, float]], normalize: Optional[str]) -> np.ndarray:
    """Reward ``(Lbar - L)/L + lam (A - Abar)`` of each sample from
    ``fields = (L, A, Lbar, Abar)``, clipped and normalised (per `group`
    with ``normalize="group"``)."""
    L, A, Lbar, Abar = fields
    r = length_harmonizing_reward(L, A, Lbar, Abar, lam=float(lam))
    grp = group if normalize == "group" else None
    return harmonize_weights(r, clip=clip, normalize=normalize, group=grp)


def accuracy_estimate(A: np.ndarray, log_ratio: np.ndarray, group: np.ndarray, estimator: str) -> float:
    """Ahat_theta from the samples' correctness `A` and log-ratios
    ``log pi_theta / pi_ref``: "global" self-normalises over all samples,
    "problem" within each problem, then averages over problems. With
    ``log_ratio = 0`` it is the reference's own accuracy on these samples."""
    lr = np.asarray(log_ratio, dtype=np.float64)
    if estimator == "global":
        w = np.exp(lr - lr.max())  # self-normalised: the common factor cancels
        return float(np.dot(w, A) / w.sum())
    G = int(group.max()) + 1
    gmax = np.full(G, -np.inf)
    np.maximum.at(gmax, group, lr)
    w = np.exp(lr - gmax[group])
    num = np.bincount(group, weights=w * A, minlength=G)
    den = np.bincount(group, weights=w, minlength=G)
    return float(np.mean(num / den))


def dual_step(lam: float, ahat: float, target: float, lam_lr: float, lam_max: Optional[float]) -> float:
    """One dual-ascent step on lambda: up when the estimated accuracy falls
    short of the reference's, never below 0 (nor above `lam_max`)."""
    new = max(0.0, lam + lam_lr * (target - ahat))
    if lam_max is not None:
        new = min(new, lam_max)
    return new
