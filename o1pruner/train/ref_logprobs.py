"""The frozen reference's log-probs of every training sequence, computed once
before the first step (and cached in the run folder, keyed by the data and
the reference's weights): per sequence the mean and the sum (float64), and
the token log-probs (float32, concatenated; ``offsets`` delimit sequences:
the cache's format). A step with a per-token ratio reads them laid out as
its batch, ``by_position`` (float32 ``[n, T_max]``, sequence i's log-prob of
the token at position t+1 at column t), made once from the concatenated
ones: a step takes its rows of it, no per-batch scatter."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .._atomic import atomic_write
from ..data.tokenize import EncodedSamples

__all__ = ["compute_reference", "load_or_compute_reference", "reference_tokens", "by_position"]

_CACHED = ("mean", "sum", "tokens", "offsets")


def compute_reference(model: Any, data: EncodedSamples, chunk: int) -> Dict[str, np.ndarray]:
    """Reference log-probs of every sequence of `data` under `model`, `chunk`
    sequences of similar lengths at a time: ``mean`` and ``sum`` per sequence
    (float64), ``tokens`` (float32, concatenated) and ``offsets``."""
    n = len(data)
    means = np.empty(n, dtype=np.float64)
    sums = np.empty(n, dtype=np.float64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(data.response_lengths)
    toks = np.empty(int(offsets[-1]), dtype=np.float32)
    order = np.argsort([len(a) for a in data.ids], kind="stable")  # similar lengths together
    for s in range(0, n, chunk):
        rows = order[s: s + chunk].tolist()
        ids, mask, tg = data.batch(rows)
        lp = model.logprobs(ids, mask, tg)
        valid = tg != -100
        for j, i in enumerate(rows):
            v = lp[j][valid[j]]
            toks[offsets[i]: offsets[i + 1]] = v
            sums[i] = float(np.sum(v, dtype=np.float64))
            means[i] = sums[i] / len(v)
    if not np.all(np.isfinite(toks)):
        raise ValueError("reference: non-finite log-probs (a token of probability 0 under the reference?)")
    return {"mean": means, "sum": sums, "tokens": toks, "offsets": offsets}


def load_or_compute_reference(path: Optional[str], model: Any, data: EncodedSamples, chunk: int,
                              computed: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, np.ndarray]:
    """:func:`compute_reference`, read from / written to the cache `path`
    (an ``.npz``, written atomically) when given and it matches the data and
    the model's weights; `computed` is used instead of computing again."""
    digest = data.digest() + ":" + hashlib.sha256(model.flat_parameters.tobytes()).hexdigest()
    if path is not None and os.path.exists(path):
        with np.load(path) as z:
            if str(z["digest"]) == digest and "tokens" in z:
                return {k: z[k] for k in _CACHED}
    ref = computed if computed is not None else compute_reference(model, data, chunk)
    if path is not None:
        def write(f):  # the cache holds the concatenated form only
            np.savez(f, digest=np.array(digest), **{k: ref[k] for k in _CACHED})

        atomic_write(path, write, mode="wb")
    return ref


def reference_tokens(ref: Dict[str, np.ndarray], data: EncodedSamples, rows: Sequence[int], T: int) -> np.ndarray:
    """The reference token log-probs of sequences `rows` laid out as their
    ``[len(rows), T]`` batch (``data.batch(rows, pad_to=T)``; 0 where no
    token is scored): rows of ``ref["by_position"]``, made on first use."""
    pos = ref.get("by_position")
    if pos is None:
        pos = ref["by_position"] = by_position(ref, data)
    out = pos[np.asarray(rows, dtype=np.int64), :T]
    if out.shape[1] < T:  # padded past the longest sequence
        out = np.pad(out, ((0, 0), (0, T - out.shape[1])))
    return out


def by_position(ref: Dict[str, np.ndarray], data: EncodedSamples) -> np.ndarray:
    """The concatenated token log-probs as a float32 ``[n, T_max]`` matrix in
    the layout of ``data.batch``: sequence i's response targets sit at
    columns ``prompt_lengths[i] - 1`` onwards (one vectorised copy)."""
    offsets = np.asarray(ref["offsets"], dtype=np.int64)
    counts = np.diff(offsets)
    n = len(data)
    if counts.shape != (n,) or not np.array_equal(counts, data.response_lengths):
        raise ValueError("reference: its token log-probs do not match the training sequences")
    start = np.maximum(np.asarray(data.prompt_lengths, dtype=np.int64) - 1, 0)
    out = np.zeros((n, max((len(a) for a in data.ids), default=0)), dtype=np.float32)
    row = np.repeat(np.arange(n), counts)
    col = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1] - start, counts)
    out[row, col] = ref["tokens"]
    return out
