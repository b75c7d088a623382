"""Text to token ids: what a tokenizer returned, lengths L(y), and the
prompt/response encoding of the built-in model's training sequences."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .prompts import as_template
from .records import record_loc

__all__ = ["count_tokens", "ids_of", "SequenceFormat", "EncodedSamples", "encode_samples"]


def ids_of(x) -> Optional[List[int]]:
    """Token ids out of what a tokenizer returned: a list/array of ids, a
    mapping with ``input_ids``, or an object with ``.ids``/``.input_ids``."""
    if x is None:
        return None
    if isinstance(x, Mapping):
        x = x.get("input_ids")
    elif hasattr(x, "ids") and not isinstance(x, (list, tuple, np.ndarray)):
        x = x.ids
    elif hasattr(x, "input_ids") and not isinstance(x, (list, tuple, np.ndarray)):
        x = x.input_ids
    if x is None:
        return None
    if isinstance(x, (list, tuple)) and (not x or not isinstance(x[0], (list, tuple))):
        return list(x)  # ids, or token strings: either way one entry per token
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[0] == 1:  # return_tensors-style batch of one
        arr = arr[0]
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        return None
    return arr.tolist()


def count_tokens(tokenizer: Any, texts: Sequence[str], where: str = "texts") -> np.ndarray:
    """Token length of each text under `tokenizer`.

    Any tokenizer works whose ``encode(text)`` returns ids (a list, an array,
    or an object with ``.ids`` such as a ``tokenizers.Encoding``), or whose
    ``tokenizer(text)["input_ids"]`` does (a Hugging Face tokenizer; like the
    public O1-Pruner code, special tokens it adds by default are counted).

    Returns
    -------
    ndarray of int64, shape (len(texts),)

    Raises
    ------
    TypeError
        The tokenizer has neither interface.
    ValueError
        The tokenizer returned nothing (no ids) for a text, naming its index.
    """
    if hasattr(tokenizer, "encode") and callable(tokenizer.encode):
        enc = tokenizer.encode
    elif callable(tokenizer):
        enc = tokenizer
    else:
        raise TypeError(f"tokenizer: needs an encode(text) method or to be callable, got {type(tokenizer).__name__}")
    out = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        ids = ids_of(enc(t))
        if ids is None:
            raise ValueError(f"tokenizer: returned no token ids for {where}[{i}] (expected a list of ints, a mapping with 'input_ids' or an object with .ids)")
        if len(ids) == 0:
            raise ValueError(f"tokenizer: returned no tokens for {where}[{i}] (text of {len(t)} characters); a length must be >= 1")
        out[i] = len(ids)
    return out


class SequenceFormat:
    """How prompt and response texts become the token ids of a model: the
    one place that decides about BOS and EOS, shared by sampling
    (:class:`TinyLMGenerator`) and training (:class:`Trainer`), so the
    reference log-probs are those of the sampling distribution.

    Parameters
    ----------
    tokenizer : object
        ``encode(text) -> ids`` (e.g. :class:`o1pruner.tasks.CharTokenizer`
        or a Hugging Face tokenizer), with ``bos_token_id`` /
        ``eos_token_id`` when `add_bos` / `add_eos` are set.
    add_bos : bool, default True
        Prompt ids start with the tokenizer's BOS token.
    add_eos : bool, default True
        A response written as text gets the EOS token appended (a response
        given as sampled ``token_ids`` is used as is: it holds the stop token
        when generation stopped).
    """

    def __init__(self, tokenizer: Any, add_bos: bool = True, add_eos: bool = True):
        if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
            raise TypeError(f"tokenizer: needs an encode(text) method, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.add_bos = bool(add_bos)
        self.add_eos = bool(add_eos)
        self.bos = getattr(tokenizer, "bos_token_id", None) if add_bos else None
        self.eos = getattr(tokenizer, "eos_token_id", None)
        if add_bos and self.bos is None:
            raise ValueError("tokenizer: add_bos=True but the tokenizer has no bos_token_id")
        if add_eos and self.eos is None:
            raise ValueError("tokenizer: add_eos=True but the tokenizer has no eos_token_id")

    def _encode(self, text: str) -> List[int]:
        try:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            ids = self.tokenizer.encode(text)
        return [int(i) for i in (ids.ids if hasattr(ids, "ids") else ids)]

    def prompt_ids(self, prompt: str) -> List[int]:
        """Token ids of a rendered prompt (BOS first with `add_bos`)."""
        ids = self._encode(prompt)
        return ([int(self.bos)] if self.bos is not None else []) + ids

    def response_ids(self, text: str) -> List[int]:
        """Token ids of a response text (EOS last with `add_eos`)."""
        ids = self._encode(text)
        return ids + ([int(self.eos)] if self.add_eos else [])

    def to_dict(self) -> Dict[str, Any]:
        return {"tokenizer": type(self.tokenizer).__name__, "add_bos": self.add_bos, "add_eos": self.add_eos,
                "bos_token_id": self.bos, "eos_token_id": self.eos}


@dataclass
class EncodedSamples:
    """Training sequences: prompt + response ids, one row per record.

    Attributes
    ----------
    ids : list of ndarray of int64
        The whole sequence (prompt then response).
    prompt_lengths : ndarray of int64
        Prompt tokens of each sequence.
    response_lengths : ndarray of int64
        Response tokens kept (after truncation to `max_length`).
    truncated : ndarray of bool
        The response was cut to fit `max_length`.
    """

    ids: List[np.ndarray]
    prompt_lengths: np.ndarray
    response_lengths: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def digest(self) -> str:
        """SHA-256 of the token ids (checks that a resumed run trains on the same data)."""
        h = hashlib.sha256()
        for a, p in zip(self.ids, self.prompt_lengths):
            h.update(np.int64(p).tobytes())
            h.update(np.int64(len(a)).tobytes())
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return h.hexdigest()

    def batch(self, rows: Sequence[int], pad_to: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Right-padded ``(input_ids, attention_mask, targets)`` of some rows;
        targets are the next token on response positions, -100 elsewhere."""
        from ..models import next_token_targets

        T = max(len(self.ids[i]) for i in rows)
        if pad_to is not None:
            T = max(T, pad_to)
        ids = np.zeros((len(rows), T), dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=np.int64)
        for j, i in enumerate(rows):
            a = self.ids[i]
            ids[j, : len(a)] = a
            mask[j, : len(a)] = 1
        targets = next_token_targets(ids, mask, prompt_lengths=self.prompt_lengths[list(rows)])
        return ids, mask, targets


def _record_prompt(r: Mapping[str, Any], tpl, i: int, where: str) -> str:
    if tpl is not None:
        text = r.get("problem")
        if not isinstance(text, str):
            raise ValueError(f"{record_loc(where, i)}: missing field 'problem' (needed to render the prompt with template=)")
        return tpl.render(text)
    p = r.get("prompt")
    if not isinstance(p, str):
        raise ValueError(f"{record_loc(where, i)}: missing field 'prompt' (pass template= to render it from 'problem')")
    return p


def encode_samples(
    records: Sequence[Mapping[str, Any]],
    fmt: SequenceFormat,
    *,
    template: Any = None,
    max_length: Optional[int] = None,
    use_token_ids: bool = True,
    where: str = "dataset",
) -> EncodedSamples:
    """Token sequences of sample records for training.

    Parameters
    ----------
    records : sequence of dict
        Each with the prompt (``prompt``, or ``problem`` rendered by
        `template`) and the response (``token_ids`` as sampled, or
        ``solution`` as text).
    fmt : SequenceFormat
    template : PromptTemplate, str or callable, optional
        Render prompts from ``problem`` instead of using the stored ``prompt``.
    max_length : int, optional
        Longest sequence (the model's context); longer responses are cut
        (the public code's cutoff) and counted in ``truncated``.
    use_token_ids : bool, default True
        Train on the stored ``token_ids`` when a record has them.
    where : str
        Name used in error messages.

    Raises
    ------
    ValueError
        A missing field, a response of zero tokens, a prompt that alone
        fills `max_length` (naming the record).
    """
    tpl = None if template is None else as_template(template)
    seqs, plen, rlen, trunc = [], [], [], []
    for i, r in enumerate(records):
        prompt = _record_prompt(r, tpl, i, where)
        p = fmt.prompt_ids(prompt)
        if len(p) == 0:
            raise ValueError(f"{record_loc(where, i)}: the prompt encodes to no tokens")
        ids = r.get("token_ids") if use_token_ids else None
        if ids is not None:
            resp = [int(x) for x in ids]
        else:
            sol = r.get("solution")
            if not isinstance(sol, str):
                raise ValueError(f"{record_loc(where, i)}: missing field 'solution' (or 'token_ids')")
            resp = fmt.response_ids(sol)
        if len(resp) == 0:
            raise ValueError(f"{record_loc(where, i)}: the response has zero tokens; every training sample needs a response")
        cut = False
        if max_length is not None and len(p) + len(resp) > max_length:
            if len(p) >= max_length:
                raise ValueError(f"{record_loc(where, i)}: the prompt has {len(p)} tokens, max_length is {max_length}: no room for a response")
            resp = resp[: max_length - len(p)]
            cut = True
        seqs.append(np.asarray(p + resp, dtype=np.int64))
        plen.append(len(p))
        rlen.append(len(resp))
        trunc.append(cut)
    if not seqs:
        raise ValueError(f"{where}: empty (no training sample)")
    return EncodedSamples(seqs, np.asarray(plen, np.int64), np.asarray(rlen, np.int64), np.asarray(trunc, bool))
