"""Sampling arguments and results of :meth:`o1pruner.models.TinyLM.generate`:
prompts to token ids, stop and fill tokens, the :class:`Generation` result."""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from .batch import as_array

__all__ = ["Generation", "encode_prompts", "stop_token_ids", "fill_token_id"]


class Generation(NamedTuple):
    """Result of :meth:`TinyLM.generate`.

    Attributes
    ----------
    tokens : ndarray of int64, shape (B, max_new_tokens)
        Generated ids; entries past ``lengths[b]`` hold the fill value.
    lengths : ndarray of int64, shape (B,)
        Generated tokens per prompt, counting the stop token when one was emitted.
    stopped : ndarray of bool, shape (B,)
        True when the sequence ended with a stop token (False: hit max_new_tokens).
    texts : list of str or None
        Decoded completions (stop token excluded) when a tokenizer was given.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    stopped: np.ndarray
    texts: Optional[List[str]]

    def sequences(self) -> List[np.ndarray]:
        """The generated ids of each prompt, trimmed to its length."""
        return [self.tokens[b, : self.lengths[b]] for b in range(len(self.lengths))]

    @classmethod
    def concatenate(cls, parts: Sequence[tuple], tokenizer: Any = None) -> "Generation":
        """Join the (tokens, lengths, stopped) of consecutive prompt chunks;
        with a tokenizer, decode each completion without its stop token."""
        tokens = np.concatenate([p[0] for p in parts])
        lengths = np.concatenate([p[1] for p in parts])
        stopped = np.concatenate([p[2] for p in parts])
        texts = None
        if tokenizer is not None:
            texts = [tokenizer.decode(tokens[b, : lengths[b] - int(stopped[b])].tolist())
                     for b in range(len(lengths))]
        return cls(tokens, lengths, stopped, texts)


def encode_prompts(prompts: Sequence[Union[str, Sequence[int], np.ndarray]], tokenizer: Any,
                   batch_size: int) -> List[np.ndarray]:
    """The prompts as 1-D int64 arrays (strings encoded by `tokenizer`);
    TypeError / ValueError naming the prompt that is not usable, or a bad
    `batch_size`."""
    if isinstance(prompts, np.ndarray) and prompts.ndim == 2:  # equal-length prompts
        prompts = list(prompts)
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, (list, tuple)):
        raise TypeError(f"prompts: expected a list of prompts, got {type(prompts).__name__}"
                        + ("; wrap a single prompt in a list" if isinstance(prompts, str) else ""))
    if len(prompts) == 0:
        raise ValueError("prompts: must not be empty")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    encoded = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if tokenizer is None:
                raise TypeError(f"prompts: prompt {i} is a string; pass a tokenizer to encode it")
            p = tokenizer.encode(p)
        a = as_array(p, f"prompts: prompt {i}")
        if a.size == 0:
            raise ValueError(f"prompts: prompt {i} is empty (every prompt needs >= 1 token)")
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise TypeError(f"prompts: prompt {i} must be a 1-D sequence of int token ids, got dtype {a.dtype}")
        encoded.append(a.astype(np.int64))
    return encoded


def stop_token_ids(stop_token_id: Union[None, int, Sequence[int]], tokenizer: Any,
                   default_eos: Optional[int]) -> Optional[np.ndarray]:
    """The stop tokens as int64 (None: none). Default: the tokenizer's
    ``eos_token_id``, else `default_eos` (the config's)."""
    if stop_token_id is None:
        eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else default_eos
        stop = [] if eos is None else [eos]
    elif isinstance(stop_token_id, (int, np.integer)) and not isinstance(stop_token_id, bool):
        stop = [int(stop_token_id)]
    elif isinstance(stop_token_id, (str, bytes)) or not hasattr(stop_token_id, "__iter__"):
        raise TypeError(f"stop_token_id: expected an int, a sequence of ints or None, "
                        f"got {type(stop_token_id).__name__}")
    else:
        stop = list(stop_token_id)
        for t in stop:
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
                raise TypeError(f"stop_token_id: every entry must be an int token id, got {t!r}")
    return np.asarray(stop, dtype=np.int64) if len(stop) else None


def fill_token_id(pad_token_id: Optional[int], tokenizer: Any) -> int:
    """The fill value after each sequence's end: `pad_token_id`, else the
    tokenizer's ``pad_token_id``, else -1."""
    if pad_token_id is None:
        pad_token_id = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
        if pad_token_id is None:
            pad_token_id = -1
    return pad_token_id
