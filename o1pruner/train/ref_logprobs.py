"""The frozen reference's log-probs of every training sequence, computed once
before the first step (and cached in the run folder, keyed by the data and
the reference's weights): per sequence the mean and the sum (float64), and
the token log-probs (float32, concatenated; ``offsets`` delimit sequences)."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .._atomic import atomic_write
from ..data.tokenize import EncodedSamples

__all__ = ["compute_reference", "load_or_compute_reference", "reference_tokens"]


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
                return {k: z[k] for k in ("mean", "sum", "tokens", "offsets")}
    ref = computed if computed is not None else compute_reference(model, data, chunk)
    if path is not None:
        def write(f):
            np.savez(f, digest=np.array(digest), **ref)

        atomic_write(path, write, mode="wb")
    return ref


def reference_tokens(ref: Dict[str, np.ndarray], rows: Sequence[int], T: int, targets: np.ndarray) -> np.ndarray:
    """The reference token log-probs of sequences `rows` laid out as a
    ``[len(rows), T]`` batch whose scored positions are ``targets != -100``."""
    out = np.zeros((len(rows), T), dtype=np.float32)
    valid = targets != -100
    for j, i in enumerate(rows):
        out[j][valid[j]] = ref["tokens"][ref["offsets"][i]: ref["offsets"][i + 1]]
    return out
