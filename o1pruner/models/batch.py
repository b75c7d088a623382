"""The batch inputs of TinyLM: token-id arrays read with errors that name the
argument, and the language-modelling targets of a padded batch."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = ["ArrayLike", "as_array", "int_scalar", "int_array", "next_token_targets"]

ArrayLike = Union[np.ndarray, Sequence[Sequence[int]]]


def as_array(x: Any, name: str) -> np.ndarray:
    """np.asarray whose failures (ragged nested lists, unconvertible objects)
    raise a ValueError naming the argument."""
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: cannot be read as an array ({e})") from None


def int_scalar(x: Any, name: str) -> int:
    """An int in the int64 range (not bool), else a named error."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(x).__name__}")
    if not -2**63 <= int(x) < 2**63:
        raise ValueError(f"{name}: {x} is outside the int64 range")
    return int(x)


def int_array(x: Any, name: str) -> np.ndarray:
    """np.asarray for token-id arrays; non-integer dtypes raise a TypeError
    naming the argument (empty inputs pass, the core reports them)."""
    a = as_array(x, name)
    if a.dtype.kind not in "iu" and a.size > 0:
        raise TypeError(f"{name}: expected an integer array, got dtype {a.dtype}")
    return a


def next_token_targets(input_ids: ArrayLike, attention_mask: Optional[ArrayLike] = None,
                       prompt_lengths: Optional[Sequence[int]] = None,
                       ignore_index: int = -100) -> np.ndarray:
    """Targets for language modelling: position t predicts token t+1.

    Parameters
    ----------
    input_ids : array of int, shape (B, T)
        Right-padded token ids.
    attention_mask : array of 0/1, shape (B, T), optional
        1 on real tokens (default: all real).
    prompt_lengths : sequence of int, shape (B,), optional
        Tokens of each row that belong to the prompt: positions predicting a
        prompt token get ``ignore_index``, so only the completion is scored.
    ignore_index : int
        Value of positions without a target.

    Returns
    -------
    ndarray of int64, shape (B, T)
        ``targets[b, t] = input_ids[b, t+1]`` where t+1 is a real token (and
        not part of the prompt), else ``ignore_index``.
    """
    ids = as_array(input_ids, "input_ids")
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError("input_ids: expected a 2-D integer array")
    ignore_index = int_scalar(ignore_index, "ignore_index")
    B, T = ids.shape
    if attention_mask is None:
        lengths = np.full(B, T)
    else:
        mask = as_array(attention_mask, "attention_mask")
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask: shape {mask.shape} does not match input_ids shape {ids.shape}")
        lengths = (mask != 0).sum(1)
    targets = np.full((B, T), ignore_index, dtype=np.int64)
    if T > 1:
        targets[:, :-1] = ids[:, 1:]
    t = np.arange(T)[None, :]
    keep = t + 1 < lengths[:, None]
    if prompt_lengths is not None:
        p = np.asarray(prompt_lengths, dtype=np.int64)
        if p.shape != (B,):
            raise ValueError(f"prompt_lengths: expected shape ({B},), got {p.shape}")
        keep &= t + 1 >= p[:, None]
    targets[~keep] = ignore_index
    return targets
