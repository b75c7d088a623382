"""TinyLMConfig: the architecture of :class:`o1pruner.models.TinyLM`, named as
Hugging Face's ``Qwen2Config`` and read from / written to its ``config.json``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

__all__ = ["TinyLMConfig"]


@dataclass
class TinyLMConfig:
    """Hyper-parameters of :class:`TinyLM`, named as in ``transformers.Qwen2Config``.

    Parameters
    ----------
    vocab_size : int
        Number of token ids (V).
    hidden_size : int
        Model width d; a multiple of ``num_attention_heads`` with an even head size.
    intermediate_size : int
        Width of the SwiGLU MLP.
    num_hidden_layers : int
        Decoder layers.
    num_attention_heads : int
        Attention heads (as many key/value heads: no grouped-query attention).
    max_position_embeddings : int
        Context length: the longest sequence (prompt plus generated tokens).
    rms_norm_eps : float
        Epsilon of every RMSNorm.
    rope_theta : float
        Base of the rotary embedding frequencies.
    initializer_range : float
        Standard deviation of the normal initialisation of weight matrices and
        the embedding (biases start at 0, norm weights at 1), as Hugging Face.
    bos_token_id, eos_token_id, pad_token_id : int or None
        Special token ids of the tokenizer the model is trained with; recorded
        in ``config.json``. ``eos_token_id`` is the default stop token of
        :meth:`TinyLM.generate` when no tokenizer is given.
    tie_word_embeddings : bool
        Always True: the LM head is the embedding matrix.
    """

    vocab_size: int = 64
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 512
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    initializer_range: float = 0.02
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "max_position_embeddings"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
            if v < 1:
                raise ValueError(f"{name}: must be >= 1, got {v}")
            setattr(self, name, int(v))
        if self.hidden_size % self.num_attention_heads or (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(
                f"hidden_size: {self.hidden_size} must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}) with an even head size (rotary pairs)")
        for name in ("rms_norm_eps", "rope_theta", "initializer_range"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name}: expected a float, got {type(v).__name__}")
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive finite number, got {v}")
            setattr(self, name, float(v))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    raise TypeError(f"{name}: expected an int or None, got {type(v).__name__}")
                if not 0 <= v < self.vocab_size:
                    raise ValueError(f"{name}: {v} is outside [0, vocab_size={self.vocab_size})")
                setattr(self, name, int(v))
        if self.tie_word_embeddings is not True:
            raise ValueError("tie_word_embeddings: TinyLM always ties the LM head to the embedding")

    @property
    def head_dim(self) -> int:
        """Width of one attention head, hidden_size / num_attention_heads."""
        return self.hidden_size // self.num_attention_heads

    @property
    def num_key_value_heads(self) -> int:
        """Equal to num_attention_heads (no grouped-query attention)."""
        return self.num_attention_heads

    def _c_tuple(self) -> tuple:
        return (self.vocab_size, self.hidden_size, self.intermediate_size, self.num_hidden_layers,
                self.num_attention_heads, self.max_position_embeddings, self.rms_norm_eps,
                self.rope_theta)

    def to_dict(self) -> Dict[str, Any]:
        """A ``config.json`` dict readable by ``transformers.Qwen2Config``."""
        d = dataclasses.asdict(self)
        d.update(
            architectures=["Qwen2ForCausalLM"],
            model_type="qwen2",
            num_key_value_heads=self.num_attention_heads,
            head_dim=self.head_dim,
            hidden_act="silu",
            attention_dropout=0.0,
            attention_bias=True,
            use_sliding_window=False,
            sliding_window=None,
            max_window_layers=self.num_hidden_layers,
            rope_scaling=None,
            use_cache=True,
            torch_dtype="float32",
        )
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TinyLMConfig":
        """Build from a dict such as a Qwen2 ``config.json``; unsupported
        variants (grouped-query attention, untied head, sliding window, other
        activations or rope scalings) raise ValueError."""
        d = dict(d)
        if "rope_theta" not in d and isinstance(d.get("rope_parameters"), dict):
            d["rope_theta"] = d["rope_parameters"].get("rope_theta", 10000.0)
        heads = d.get("num_attention_heads")
        checks = [
            ("num_key_value_heads", d.get("num_key_value_heads", heads) == heads,
             "grouped-query attention is not supported (num_key_value_heads must equal num_attention_heads)"),
            ("tie_word_embeddings", d.get("tie_word_embeddings", True) is True, "the LM head must be tied"),
            ("hidden_act", d.get("hidden_act", "silu") == "silu", "only silu is supported"),
            ("use_sliding_window", not d.get("use_sliding_window", False), "sliding-window attention is not supported"),
            ("rope_scaling", not d.get("rope_scaling"), "rope scaling is not supported"),
        ]
        if heads and d.get("hidden_size") and d.get("head_dim") not in (None, d["hidden_size"] // heads):
            checks.append(("head_dim", False, "head_dim must equal hidden_size / num_attention_heads"))
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"config: {name}={d.get(name)!r}: {why}")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in fields}
        eos = kwargs.get("eos_token_id")
        if isinstance(eos, (list, tuple)):  # HF allows a list; keep the first
            kwargs["eos_token_id"] = eos[0] if eos else None
        return cls(**kwargs)
