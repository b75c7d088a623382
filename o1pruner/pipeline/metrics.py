"""Evaluation metrics of the paper: the accuracy-efficiency score (AES)."""

from __future__ import annotations

from typing import Union

import numpy as np

__all__ = ["aes"]

Number = Union[float, np.ndarray]


def aes(
    acc_base: Number,
    len_base: Number,
    acc: Number,
    length: Number,
    alpha: float = 1.0,
    beta: float = 3.0,
    gamma: float = 5.0,
    sign_convention: str = "stated",
) -> Number:
    """Accuracy-efficiency score of a model against a baseline (method.md step 4).

    ``dL = (len_base - length) / len_base`` and
    ``dA = (acc - acc_base) / acc_base``; then

    - ``AES = alpha*dL + beta*|dA|``  if ``dA >= 0``
    - ``AES = alpha*dL - gamma*|dA|`` if ``dA < 0``

    Parameters
    ----------
    acc_base, len_base : float or ndarray
        Baseline accuracy (> 0, any scale as long as `acc` uses the same one)
        and mean length (> 0).
    acc, length : float or ndarray
        Accuracy and mean length of the model being scored.
    alpha, beta, gamma : float, default 1, 3, 5
        Weights of the length change, an accuracy gain and an accuracy loss.
    sign_convention : {"stated", "paper_table"}, default "stated"
        "stated": the formula above. "paper_table": ``alpha*dL + beta*|dA|``
        whatever the sign of dA, which is how the paper's Table 2 prints its
        baseline rows (e.g. Marco's fast-solving prompt: printed 0.20, the
        stated formula gives -0.18).

    Returns
    -------
    float or ndarray
        Broadcast over the inputs.

    Notes
    -----
    The paper's "average" rows are the mean of the per-dataset AES values, not
    the AES of the averaged accuracy and length.

    Examples
    --------
    >>> round(aes(73.8, 1156, 77.5, 657), 2)  # Marco-o1 + O1-Pruner on MATH
    0.58
    """
    if sign_convention not in ("stated", "paper_table"):
        raise ValueError(f"sign_convention: must be 'stated' or 'paper_table', got {sign_convention!r}")
    vals = []
    for name, v in (("acc_base", acc_base), ("len_base", len_base), ("acc", acc), ("length", length)):
        arr = np.asarray(v)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{name}: expected a real number or array, got {arr.dtype}")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: must be finite")
        vals.append(arr)
    a0, l0, a1, l1 = vals
    if np.any(a0 <= 0):
        raise ValueError("acc_base: must be > 0 (dA divides by it)")
    if np.any(l0 <= 0):
        raise ValueError("len_base: must be > 0 (dL divides by it)")
    if np.any(l1 < 0) or np.any(a1 < 0):
        raise ValueError("acc and length: must be >= 0")
    for name, w in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not np.isfinite(w):
            raise ValueError(f"{name}: must be finite")
    dl = (l0 - l1) / l0
    da = (a1 - a0) / a0
    if sign_convention == "paper_table":
        out = alpha * dl + beta * np.abs(da)
    else:
        out = np.where(da >= 0, alpha * dl + beta * np.abs(da), alpha * dl - gamma * np.abs(da))
    return float(out) if np.ndim(out) == 0 else out
