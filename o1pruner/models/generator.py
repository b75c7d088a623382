"""The built-in model as a generator of the pipeline (pre-sampling, evaluation)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from ..data.tokenize import SequenceFormat

__all__ = ["TinyLMGenerator"]


class TinyLMGenerator:
    """A :class:`~o1pruner.models.TinyLM` as the ``generate`` callable of
    :func:`o1pruner.presample` and :func:`o1pruner.evaluate`.

    ``gen(prompts, temperature=1.0, top_p=1.0, seed=0)`` (or
    ``gen.generate(...)``, through which :func:`o1pruner.evaluate` decodes
    greedily by default) returns one dict per
    prompt with ``text`` (stop token excluded) and ``token_ids`` (the
    generated ids, stop token included when generation stopped: the exact
    tokens to train on). Prompts are encoded by the same
    :class:`SequenceFormat` as the trainer uses.

    Parameters
    ----------
    model : TinyLM
    tokenizer : object
        Encodes prompts and decodes outputs (``encode``, ``decode``,
        ``eos_token_id``).
    add_bos : bool, default True
        Prompts start with BOS (must match how the model was trained).
    max_new_tokens : int, default 256
    batch_size : int, default 256
        Prompts decoded together (bounds the KV cache memory).
    """

    def __init__(self, model: Any, tokenizer: Any, *, add_bos: bool = True, max_new_tokens: int = 256,
                 batch_size: int = 256):
        if not callable(getattr(model, "generate", None)):
            raise TypeError(f"model: expected a TinyLM, got {type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.format = SequenceFormat(tokenizer, add_bos=add_bos, add_eos=False)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be an int >= 1, got {max_new_tokens!r}")
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)

    def generate(self, prompts: Sequence[str], *, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int = 0) -> List[Dict[str, Any]]:
        """Sample (``temperature > 0``) or decode greedily (``temperature=0``)
        one solution per prompt; see the class docstring."""
        ids = [self.format.prompt_ids(p) for p in prompts]
        g = self.model.generate(ids, max_new_tokens=self.max_new_tokens, temperature=temperature, top_p=top_p,
                                seed=int(seed) & 0x7FFFFFFF, batch_size=self.batch_size,
                                stop_token_id=self.format.eos, pad_token_id=0)
        out = []
        for b in range(len(prompts)):
            n = int(g.lengths[b])
            toks = g.tokens[b, :n].tolist()
            text_ids = toks[:-1] if g.stopped[b] else toks
            out.append({"text": self.tokenizer.decode(text_ids), "token_ids": toks})
        return out

    __call__ = generate
