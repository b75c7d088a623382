"""A Hugging Face model as the ``generate`` callable of the pipeline."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .logprobs import device_of
from .tokenize import context_length, pad_token_id, text_ids

from .deps import torch, transformers  # noqa: F401  (the [hf] extra, or an ImportError naming it)

__all__ = ["HFGenerator"]


class HFGenerator:
    """A generator for :func:`o1pruner.presample` and :func:`o1pruner.evaluate`
    backed by ``model.generate`` of a Hugging Face causal LM.

    Called with already rendered prompts (those functions render them with
    the one template), it returns one ``{"text", "token_ids", "finished"}``
    per prompt: ``token_ids`` are the generated ids without the eos token
    (so their count is L(y) as the public code counts it), ``finished``
    tells whether generation stopped on eos. Greedy by default (the paper's
    evaluation); ``do_sample=True, temperature=0.5, top_p=0.8`` is the
    paper's pre-sampling. For large runs use vLLM (o1pruner.io reads its
    output); this is for small models and checks.

    Parameters
    ----------
    model, tokenizer : Hugging Face causal LM and its tokenizer
        A tokenizer without a pad token is fine (its eos id pads).
    max_new_tokens : int, default 256
    do_sample : bool, default False
    temperature, top_p : float
        Sampling parameters (used when `do_sample`).
    batch_size : int, default 16
        Prompts per ``model.generate`` call (batches are left-padded).

    Examples
    --------
    >>> samples = o1pruner.presample(HFGenerator(model, tok, do_sample=True, temperature=0.5, top_p=0.8),
    ...                              problems, k=8, tokenizer=tok)            # doctest: +SKIP
    """

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 256, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, batch_size: int = 16):
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {max_new_tokens}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if do_sample and not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature: must be positive and finite when sampling, got {temperature}")
        if not (0 < top_p <= 1):
            raise ValueError(f"top_p: must be in (0, 1], got {top_p}")
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.do_sample = int(max_new_tokens), bool(do_sample)
        self.temperature, self.top_p, self.batch_size = float(temperature), float(top_p), int(batch_size)

    def __call__(self, prompts: Sequence[str], seed: Optional[int] = None) -> List[Dict[str, Any]]:
        tok, model = self.tokenizer, self.model
        pad_id = pad_token_id(tok)
        eos = getattr(tok, "eos_token_id", None)
        device = device_of(model)
        if seed is not None:
            torch.manual_seed(int(seed))
        out: List[Dict[str, Any]] = []
        kw: Dict[str, Any] = dict(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                                  pad_token_id=pad_id, eos_token_id=eos)
        if self.do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p)
        was_training = model.training
        model.eval()
        try:
            for s in range(0, len(prompts), self.batch_size):
                enc = [text_ids(tok, t) for t in prompts[s:s + self.batch_size]]
                T = max(len(e) for e in enc)
                # left padding: every prompt ends where generation starts
                ids = torch.full((len(enc), T), pad_id, dtype=torch.long)
                att = torch.zeros((len(enc), T), dtype=torch.long)
                for i, e in enumerate(enc):
                    ids[i, T - len(e):] = torch.as_tensor(e, dtype=torch.long)
                    att[i, T - len(e):] = 1
                with torch.inference_mode():
                    gen = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **kw)
                for toks in gen[:, T:].cpu().tolist():
                    finished = eos is not None and eos in toks
                    if finished:
                        toks = toks[:toks.index(eos)]
                    elif pad_id != eos:
                        while toks and toks[-1] == pad_id:  # rows padded after an early stop
                            toks.pop()
                    out.append({"text": tok.decode(toks, skip_special_tokens=True), "token_ids": toks,
                                "finished": bool(finished)})
        finally:
            model.train(was_training)
        return out
