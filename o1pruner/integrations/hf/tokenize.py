"""Prompt/response token ids for a Hugging Face tokenizer: one prompt
template for sampling, reference scoring and training; truncation to the
model's context (counted, with a warning)."""

from __future__ import annotations

import warnings
from typing import Any, List, Mapping, Optional, Tuple

import numpy as np

from ...data.prompts import PromptTemplate, as_template

__all__ = ["render_prompt", "encode_pair", "pad_token_id", "text_ids", "context_length", "truncate", "warn_truncated"]


def render_prompt(problem: str, tokenizer=None, template: Any = None) -> str:
    """The text the model sees before its response: ``template`` (see
    :func:`o1pruner.prompts.as_template`; default the bare problem, through
    the tokenizer's chat template when it has one) rendered for `problem`.
    The same call is used to sample (:class:`HFGenerator`), to score the
    reference (:func:`response_logprobs`) and to train
    (:class:`O1PrunerTrainer`), as :func:`o1pruner.presample` and
    :func:`o1pruner.evaluate` do."""
    return as_template(template).render(problem, tokenizer)


def token_ids(tokenizer, text: str, add_special_tokens: bool) -> List[int]:
    out = tokenizer(text, add_special_tokens=add_special_tokens)
    ids = out["input_ids"] if isinstance(out, Mapping) or hasattr(out, "keys") else out
    return [int(t) for t in ids]


def pad_token_id(tokenizer) -> int:
    """Padding id for our own batches. Padded positions are masked out of the
    attention and the loss, so any id works; a tokenizer without a pad token
    gets its eos id (else 0), with one warning."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None:
        return int(pad)
    eos = getattr(tokenizer, "eos_token_id", None)
    fill = int(eos) if eos is not None else 0
    warnings.warn(
        f"tokenizer: it has no pad_token; o1pruner pads its batches with "
        f"{'eos_token_id' if eos is not None else 'id 0'} ({fill}). Padded positions are masked, "
        f"so results are unaffected; set tokenizer.pad_token to silence this.",
        UserWarning, stacklevel=3)
    return fill


def text_ids(tokenizer, text: str) -> List[int]:
    """Token ids of a rendered prompt. One rule for sampling, scoring and
    training: a tokenizer with a chat template gets no added special tokens
    (its template writes them), others get theirs (e.g. a BOS) unless the
    text already starts with it."""
    bos = getattr(tokenizer, "bos_token", None)
    chat = bool(getattr(tokenizer, "chat_template", None))
    return token_ids(tokenizer, text, add_special_tokens=not chat and not (bos and text.startswith(bos)))


def encode_pair(tokenizer, prompt: str, response: str, template: Any = None,
                append_eos: bool = True) -> Tuple[List[int], int]:
    """Token ids of the rendered prompt + the response, and the number of
    prompt tokens.

    The prompt (the problem text) is rendered by :func:`render_prompt` and
    tokenised with the tokenizer's special tokens unless it has a chat
    template (which writes them); the response is tokenised on its own without special tokens,
    so its token count is L(y) as the public code counts it, plus one eos
    token when `append_eos` (the token that ended the sampled response;
    training on it teaches the model where to stop).
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
    if not isinstance(response, str):
        raise TypeError(f"response: expected str, got {type(response).__name__}")
    p = text_ids(tokenizer, as_template(template).render(prompt, tokenizer))
    if not p:
        raise ValueError("prompt: renders to no tokens, so the response's first token has no context "
                         "(use a template that adds text or a BOS token)")
    r = token_ids(tokenizer, response, add_special_tokens=False)
    if append_eos:
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("append_eos: the tokenizer has no eos_token; pass append_eos=False")
        r.append(int(eos))
    return p + r, len(p)


def context_length(model, max_length: Optional[int]) -> Optional[int]:
    if max_length is not None:
        if int(max_length) < 2:
            raise ValueError(f"max_length: must be >= 2, got {max_length}")
        return int(max_length)
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def truncate(ids: List[int], n_prompt: int, max_length: Optional[int], where: str) -> Tuple[List[int], bool]:
    """Cut the response so that prompt + response fits max_length."""
    if max_length is None or len(ids) <= max_length:
        return ids, False
    if n_prompt >= max_length:
        raise ValueError(f"{where}: the prompt alone is {n_prompt} tokens, leaving no room for the "
                         f"response within max_length={max_length}")
    return ids[:max_length], True


def warn_truncated(truncated: np.ndarray, max_length: Optional[int], stacklevel: int = 3) -> None:
    n = int(truncated.sum())
    if n:
        first = np.flatnonzero(truncated)[:5].tolist()
        warnings.warn(
            f"responses: {n} of {truncated.size} responses were longer than the context "
            f"(max_length={max_length}) and were truncated; only their kept tokens are scored "
            f"(first indices: {first})", UserWarning, stacklevel=stacklevel)
