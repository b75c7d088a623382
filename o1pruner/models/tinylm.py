"""TinyLM: a small decoder-only transformer of the Hugging Face Qwen2 family
trained and sampled by o1pruner's C core.

The architecture is Qwen2's (tied embedding and LM head, RMSNorm, rotary
position embedding with rotate_half, causal multi-head attention with q/k/v
biases and no o_proj bias, SwiGLU MLP, final norm), with
``num_key_value_heads == num_attention_heads``. Parameters carry Hugging Face
names, and :meth:`TinyLM.save` writes ``config.json`` + ``model.safetensors``
that ``transformers.Qwen2ForCausalLM.from_pretrained`` loads as is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .._loader import _core
from ._safetensors import (atomic_write_bytes, read_safetensors, read_safetensors_header, to_bfloat16_bits,
                           write_safetensors)

__all__ = ["TinyLMConfig", "TinyLM", "Generation", "next_token_targets"]

ArrayLike = Union[np.ndarray, Sequence[Sequence[int]]]


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
    ids = _asarray(input_ids, "input_ids")
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError("input_ids: expected a 2-D integer array")
    ignore_index = _int_scalar(ignore_index, "ignore_index")
    B, T = ids.shape
    if attention_mask is None:
        lengths = np.full(B, T)
    else:
        mask = _asarray(attention_mask, "attention_mask")
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


class TinyLM:
    """A Qwen2-style decoder-only transformer with a C core: log-probs,
    training (forward/backward, AdamW), batched sampling, safetensors checkpoints.

    All parameters live in one flat float32 buffer; :meth:`named_parameters`
    gives NumPy views named as Hugging Face Qwen2 names them, and the gradient
    buffer has the same layout. Not thread-safe: use one instance per thread.

    Parameters
    ----------
    config : TinyLMConfig
        Architecture.
    seed : int or None
        Seed of the initialisation (normal(0, initializer_range) for matrices
        and the embedding, zeros for biases, ones for norm weights).

    Examples
    --------
    >>> from o1pruner.models import TinyLM, TinyLMConfig
    >>> model = TinyLM(TinyLMConfig(vocab_size=16, hidden_size=32, intermediate_size=64,
    ...                             num_hidden_layers=2, num_attention_heads=2), seed=0)
    >>> ids = [[1, 2, 3, 4], [5, 6, 0, 0]]
    >>> mask = [[1, 1, 1, 1], [1, 1, 0, 0]]
    >>> stats = model.train_step(ids, mask, lr=1e-2)
    >>> out = model.generate([[1, 2], [3]], max_new_tokens=5, temperature=0)
    >>> out.tokens.shape
    (2, 5)
    """

    def __init__(self, config: TinyLMConfig, seed: Optional[int] = 0):
        if not isinstance(config, TinyLMConfig):
            raise TypeError(f"config: expected a TinyLMConfig, got {type(config).__name__}")
        self.config = config
        self._cfg = config._c_tuple()
        self._layout = [(name, int(off), tuple(shape)) for name, off, shape in _core.model_layout(self._cfg)]
        n = int(_core.model_num_params(self._cfg))
        self._params = np.zeros(n, dtype=np.float32)
        self._grads = np.zeros(n, dtype=np.float32)
        self._exp_avg = np.zeros(n, dtype=np.float32)
        self._exp_avg_sq = np.zeros(n, dtype=np.float32)
        self.step_count = 0
        self._arena = np.zeros(0, dtype=np.float32)
        self._gen_work = np.zeros(0, dtype=np.float32)
        self._last: Optional[tuple] = None  # inputs of the forward whose activations the arena holds
        self._version = 0  # bumped whenever the parameters change through this class
        self._views = self._make_views(self._params)
        self._grad_views = self._make_views(self._grads)
        if seed is not None:
            self._init_weights(seed)

    # ---- parameters -------------------------------------------------------

    def _make_views(self, flat: np.ndarray) -> Dict[str, np.ndarray]:
        views = {}
        for name, off, shape in self._layout:
            size = int(np.prod(shape))
            views[name] = flat[off: off + size].reshape(shape)
        return views

    def _init_weights(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        std = self.config.initializer_range
        for name, view in self._views.items():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                view[...] = 1.0
            elif name.endswith(".bias"):
                view[...] = 0.0
            else:
                view[...] = rng.normal(0.0, std, size=view.shape)
        self._touch()

    def _touch(self) -> None:
        self._version += 1

    @property
    def num_parameters(self) -> int:
        """Number of float32 parameters."""
        return int(self._params.size)

    @property
    def flat_parameters(self) -> np.ndarray:
        """The flat float32 parameter buffer (a view: writes change the model)."""
        return self._params

    @property
    def flat_gradients(self) -> np.ndarray:
        """The flat float32 gradient buffer, same layout as :attr:`flat_parameters`."""
        return self._grads

    def named_parameters(self) -> List[Tuple[str, np.ndarray]]:
        """(Hugging Face name, view) of every parameter tensor, in buffer order."""
        return list(self._views.items())

    def parameters(self) -> List[np.ndarray]:
        """Views of every parameter tensor, in buffer order."""
        return list(self._views.values())

    def named_gradients(self) -> List[Tuple[str, np.ndarray]]:
        """(name, view) of every gradient tensor, matching :meth:`named_parameters`."""
        return list(self._grad_views.items())

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of the parameters by Hugging Face name (``lm_head`` is tied, not listed)."""
        return {k: v.copy() for k, v in self._views.items()}

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        """Copy parameters from a dict of arrays by Hugging Face name.

        ``lm_head.weight``, if present, must equal the embedding (tied).
        With ``strict`` every parameter must be given and no unknown name.
        """
        state = dict(state)
        head = state.pop("lm_head.weight", None)
        unknown = sorted(set(state) - set(self._views))
        missing = sorted(set(self._views) - set(state))
        if strict and (unknown or missing):
            raise ValueError(f"state: unknown names {unknown[:5]}, missing names {missing[:5]}")
        for name, value in state.items():
            if name not in self._views:
                continue
            arr = np.asarray(value)
            if arr.shape != self._views[name].shape:
                raise ValueError(f"state: {name} has shape {arr.shape}, expected {self._views[name].shape}")
            if arr.dtype.kind != "f":
                raise TypeError(f"state: {name} has dtype {arr.dtype}, expected floating point")
            self._views[name][...] = arr
        if head is not None:
            emb = self._views["model.embed_tokens.weight"]
            if np.shape(head) != emb.shape or not np.array_equal(np.asarray(head, np.float32), emb):
                raise ValueError("state: lm_head.weight differs from model.embed_tokens.weight (TinyLM ties them)")
        self._touch()

    def zero_grad(self) -> None:
        """Set every gradient to zero (backward accumulates, as in PyTorch)."""
        self._grads[...] = 0.0

    # ---- forward / backward -----------------------------------------------

    def _prepare_arena(self, input_ids, attention_mask) -> None:
        """Grow the activation arena for the real tokens of this batch."""
        shape = _asarray(input_ids, "input_ids").shape
        n_tokens = int(np.prod(shape)) if len(shape) == 2 else 0
        if attention_mask is not None:
            m = _asarray(attention_mask, "attention_mask")
            if m.shape == tuple(shape) and m.dtype.kind in "biuf":
                n_tokens = int(np.count_nonzero(m))
        need = int(_core.model_arena_size(self._cfg, min(n_tokens, 2**31 - 1), _core.get_num_threads()))
        if self._arena.size < need:
            self._arena = np.zeros(0, np.float32)  # free the old one first
            self._arena = np.empty(need, dtype=np.float32)

    def forward(self, input_ids: ArrayLike, attention_mask: Optional[ArrayLike] = None,
                targets: Optional[ArrayLike] = None, *, ignore_index: int = -100,
                temperature: float = 1.0, return_entropy: bool = False):
        """Per-token log-probs of `targets`, keeping activations for :meth:`backward`.

        Parameters
        ----------
        input_ids : array of int, shape (B, T)
            Token ids, right-padded; T <= max_position_embeddings. Values at
            padded positions are not read.
        attention_mask : array of 0/1 or bool, shape (B, T), optional
            1 on the real tokens, which must come first in each row (right
            padding). Default: all tokens real.
        targets : array of int, shape (B, T), optional
            ``targets[b, t]``: the token whose log-prob is wanted at position
            t (predicted from tokens 0..t), or ``ignore_index``. Default:
            :func:`next_token_targets` (the next real token).
        ignore_index : int
            Marks positions without a target (must not be a valid id).
        temperature : float
            Log-probs of softmax(logits / temperature).
        return_entropy : bool
            Also return the entropy of each position's distribution.

        Returns
        -------
        logp : ndarray of float32, shape (B, T)
            0 at padding and ignored positions.
        entropy : ndarray of float32, shape (B, T)
            Only with ``return_entropy``.

        Raises
        ------
        ValueError
            Token ids out of range, sequences longer than the context, an
            empty batch, a mask that is not right-padded, mismatched shapes.
        TypeError
            Non-integer ids or targets, a non-numeric mask.
        """
        if targets is None:
            targets = next_token_targets(_int_array(input_ids, "input_ids"), attention_mask, ignore_index=ignore_index)
        self._prepare_arena(input_ids, attention_mask)
        self._last = None
        logp, ent, _ = _core.model_forward(self._cfg, self._params, self._arena, input_ids, attention_mask,
                                           targets, ignore_index, temperature, return_entropy, False)
        self._last = (np.array(input_ids), None if attention_mask is None else np.array(attention_mask),
                      np.array(targets), ignore_index, temperature, self._version)
        return (logp, ent) if return_entropy else logp

    def backward(self, grad_logp: ArrayLike) -> None:
        """Accumulate d(sum grad_logp * logp)/d parameters into the gradients.

        Parameters
        ----------
        grad_logp : array of float, shape (B, T)
            d loss / d logp of the last :meth:`forward` (e.g. ``-mask / n``
            for the mean negative log-likelihood). Entries at padding and
            ignored positions are not used.

        Raises
        ------
        RuntimeError
            If no forward was run, or the parameters changed since.
        """
        if self._last is None:
            raise RuntimeError("backward: call forward() first (its activations are used)")
        ids, mask, targets, ignore_index, temperature, version = self._last
        if version != self._version:
            raise RuntimeError("backward: the parameters changed since the last forward(); run forward again")
        _core.model_backward(self._cfg, self._params, self._grads, self._arena, ids, mask, targets,
                             grad_logp, ignore_index, temperature)

    def forward_backward(self, input_ids: ArrayLike, attention_mask: Optional[ArrayLike],
                         targets: Optional[ArrayLike],
                         grad_logp: Union[ArrayLike, Callable[[np.ndarray], Any]], *,
                         ignore_index: int = -100, temperature: float = 1.0) -> np.ndarray:
        """:meth:`forward` then :meth:`backward` (gradients accumulate).

        `grad_logp` is an array (B, T) or a callable ``f(logp) -> grad_logp``
        for objectives that depend on the log-probs (e.g. a PPO-clip loss).
        Returns the log-probs.
        """
        logp = self.forward(input_ids, attention_mask, targets, ignore_index=ignore_index,
                            temperature=temperature)
        g = grad_logp(logp) if callable(grad_logp) else grad_logp
        self.backward(g)
        return logp

    def logprobs(self, input_ids: ArrayLike, attention_mask: Optional[ArrayLike] = None,
                 targets: Optional[ArrayLike] = None, *, ignore_index: int = -100,
                 temperature: float = 1.0, batch_size: Optional[int] = None) -> np.ndarray:
        """Per-token log-probs of `targets` (see :meth:`forward`), float32 (B, T).

        With ``batch_size`` the rows are processed in chunks to bound memory
        (the activations are then not kept for :meth:`backward`).
        """
        if batch_size is None:
            return self.forward(input_ids, attention_mask, targets, ignore_index=ignore_index,
                                temperature=temperature)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        ids = _int_array(input_ids, "input_ids")
        if targets is None:
            targets = next_token_targets(ids, attention_mask, ignore_index=ignore_index)
        targets = _asarray(targets, "targets")
        mask = None if attention_mask is None else _asarray(attention_mask, "attention_mask")
        if mask is not None and ids.ndim == 2 and mask.shape != ids.shape:
            raise ValueError(f"attention_mask: shape {mask.shape} does not match input_ids shape {ids.shape}")
        if ids.ndim != 2 or ids.shape[0] == 0:
            return self.forward(ids, mask, targets, ignore_index=ignore_index, temperature=temperature)
        parts = []
        for s in range(0, ids.shape[0], batch_size):
            sl = slice(s, s + batch_size)
            parts.append(self.forward(ids[sl], None if mask is None else mask[sl],
                                      targets[sl] if targets.ndim == 2 else targets,
                                      ignore_index=ignore_index, temperature=temperature))
        self._last = None
        return np.concatenate(parts, axis=0)

    def hidden_states(self, input_ids: ArrayLike, attention_mask: Optional[ArrayLike] = None) -> np.ndarray:
        """Final-norm hidden states (the LM head's input), float32 (B, T, d); 0 on padding."""
        self._prepare_arena(input_ids, attention_mask)
        self._last = None
        _, _, hidden = _core.model_forward(self._cfg, self._params, self._arena, input_ids, attention_mask,
                                           None, -100, 1.0, False, True)
        return hidden

    def logits(self, input_ids: ArrayLike, attention_mask: Optional[ArrayLike] = None) -> np.ndarray:
        """Full logits float32 (B, T, V) = hidden_states @ embedding^T (for
        inspection and tests; training and log-probs never build them)."""
        h = self.hidden_states(input_ids, attention_mask)
        return h @ self._views["model.embed_tokens.weight"].T

    # ---- optimisation -----------------------------------------------------

    def step(self, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
             weight_decay: float = 0.01, max_grad_norm: Optional[float] = None) -> float:
        """One AdamW step on the accumulated gradients (torch.optim.AdamW's
        arithmetic; weight decay applies to every parameter as there).

        Parameters
        ----------
        lr, betas, eps, weight_decay : float
            As torch.optim.AdamW (same defaults).
        max_grad_norm : float or None
            Clip the gradient to this global L2 norm first, as
            torch.nn.utils.clip_grad_norm_ (None: no clipping).

        Returns
        -------
        float
            The global gradient norm before clipping.

        Raises
        ------
        ValueError
            Invalid hyper-parameters, or a non-finite gradient norm (then
            nothing is updated).
        """
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError("betas: expected a pair (beta1, beta2)")
        norm = _core.model_adamw_step(self._params, self._grads, self._exp_avg, self._exp_avg_sq,
                                      self.step_count + 1, lr, betas[0], betas[1], eps, weight_decay,
                                      max_grad_norm)
        self.step_count += 1
        self._touch()
        return norm

    def optimizer_state(self) -> Dict[str, Any]:
        """The AdamW state: copies of the first and second moments (``exp_avg``,
        ``exp_avg_sq``, flat float32) and the step count (``step``)."""
        return {"exp_avg": self._exp_avg.copy(), "exp_avg_sq": self._exp_avg_sq.copy(), "step": int(self.step_count)}

    def load_optimizer_state(self, state: Dict[str, Any]) -> None:
        """Set the AdamW state from :meth:`optimizer_state` (of a model of the
        same architecture)."""
        for k in ("exp_avg", "exp_avg_sq"):
            a = np.asarray(state[k], dtype=np.float32)
            if a.shape != self._exp_avg.shape:
                raise ValueError(f"{k}: expected shape {self._exp_avg.shape}, got {a.shape}")
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step: must be an int >= 0, got {step!r}")
        self._exp_avg[...] = state["exp_avg"]
        self._exp_avg_sq[...] = state["exp_avg_sq"]
        self.step_count = int(step)

    def grad_norm(self) -> float:
        """Global L2 norm of the accumulated gradients."""
        return _core.model_grad_norm(self._grads)

    def train_step(self, input_ids: ArrayLike, attention_mask: Optional[ArrayLike] = None,
                   targets: Optional[ArrayLike] = None, *, lr: float = 1e-3,
                   betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                   weight_decay: float = 0.0, max_grad_norm: Optional[float] = 1.0,
                   micro_batch_size: Optional[int] = None, ignore_index: int = -100) -> Dict[str, float]:
        """One supervised fine-tuning step: zero the gradients, minimise the
        mean negative log-likelihood of the targets over the batch, AdamW.

        Parameters
        ----------
        input_ids, attention_mask, targets, ignore_index
            As in :meth:`forward` (default targets: the next real token).
        lr, betas, eps, weight_decay, max_grad_norm
            As in :meth:`step`.
        micro_batch_size : int, optional
            Accumulate gradients over chunks of this many rows (same result,
            less memory).

        Returns
        -------
        dict
            ``loss`` (mean NLL per target token), ``grad_norm`` (before
            clipping), ``tokens`` (number of target tokens).
        """
        ids = _int_array(input_ids, "input_ids")
        if targets is None:
            targets = next_token_targets(ids, attention_mask, ignore_index=ignore_index)
        targets = _asarray(targets, "targets")
        mask = None if attention_mask is None else _asarray(attention_mask, "attention_mask")
        if ids.ndim != 2 or ids.size == 0:
            raise ValueError(f"input_ids: expected a non-empty 2-D array (B, T), got shape {ids.shape}")
        if targets.shape != ids.shape:
            raise ValueError(f"targets: shape {targets.shape} does not match input_ids shape {ids.shape}")
        if mask is not None and mask.shape != ids.shape:
            raise ValueError(f"attention_mask: shape {mask.shape} does not match input_ids shape {ids.shape}")
        B, T = ids.shape
        real = np.ones((B, T), bool) if mask is None else (mask != 0)
        valid = (targets != ignore_index) & real
        n = int(valid.sum())
        if n == 0:
            raise ValueError("targets: no position has a target (all ignored or padding)")
        mb = B if micro_batch_size is None else int(micro_batch_size)
        if mb < 1:
            raise ValueError(f"micro_batch_size: expected an int >= 1, got {micro_batch_size!r}")
        self.zero_grad()
        total = 0.0
        for s in range(0, B, mb):
            sl = slice(s, s + mb)
            g = np.where(valid[sl], np.float32(-1.0 / n), np.float32(0.0)).astype(np.float32)
            logp = self.forward(ids[sl], None if mask is None else mask[sl], targets[sl],
                                ignore_index=ignore_index)
            self.backward(g)
            total += float(np.sum(logp[valid[sl]], dtype=np.float64))
        norm = self.step(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
        return {"loss": -total / n, "grad_norm": norm, "tokens": n}

    # ---- sampling ---------------------------------------------------------

    def generate(self, prompts: Sequence[Union[str, Sequence[int], np.ndarray]], tokenizer: Any = None, *,
                 max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 stop_token_id: Union[None, int, Sequence[int]] = None, batch_size: int = 64,
                 pad_token_id: Optional[int] = None) -> Generation:
        """Sample completions of a batch of prompts with a KV cache.

        Parameters
        ----------
        prompts : list of str or of token-id sequences, or int array (B, T0)
            Strings need a tokenizer; each prompt needs >= 1 token, and
            its length plus ``max_new_tokens`` must fit the context.
        tokenizer : object, optional
            Anything with ``encode(text) -> list[int]``, ``decode(ids) ->
            str`` and ``eos_token_id`` (a Hugging Face tokenizer qualifies).
            Gives the texts of the result and the default stop token.
        max_new_tokens : int
            Tokens generated at most per prompt.
        temperature : float
            Softmax temperature; 0 means greedy (argmax, ties to the lowest id).
        top_p : float
            Nucleus sampling: draw from the smallest set of most likely tokens
            whose probability reaches top_p (1: the full distribution).
        seed : int
            Seed of the counter-based generator; the stream of prompt i
            depends only on (seed, i, step), not on threads or batch_size.
        stop_token_id : int, sequence of int or None
            Generation of a prompt ends after emitting one of these. Default:
            the tokenizer's ``eos_token_id``, else the config's; pass ``[]``
            for no stop token.
        batch_size : int
            Prompts sampled together (bounds the KV cache memory).
        pad_token_id : int, optional
            Fill value of ``tokens`` after each sequence's end (default: the
            tokenizer's ``pad_token_id``, else -1).

        Returns
        -------
        Generation
            tokens (B, max_new_tokens), lengths, stopped, texts.

        Raises
        ------
        ValueError
            Empty prompt list or prompt, ids out of range, a prompt too long
            for the context, invalid sampling parameters.
        TypeError
            String prompts without a tokenizer, non-integer ids.
        """
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
            a = _asarray(p, f"prompts: prompt {i}")
            if a.size == 0:
                raise ValueError(f"prompts: prompt {i} is empty (every prompt needs >= 1 token)")
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise TypeError(f"prompts: prompt {i} must be a 1-D sequence of int token ids, got dtype {a.dtype}")
            encoded.append(a.astype(np.int64))
        if stop_token_id is None:
            eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else self.config.eos_token_id
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
        stop_arr = np.asarray(stop, dtype=np.int64) if len(stop) else None
        if pad_token_id is None:
            pad_token_id = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
            if pad_token_id is None:
                pad_token_id = -1
        outs = []
        for s in range(0, len(encoded), batch_size):
            chunk = encoded[s: s + batch_size]
            offsets = np.zeros(len(chunk) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum([len(c) for c in chunk])
            work = self._generate_workspace(len(chunk), int(offsets[-1]), max(len(c) for c in chunk),
                                            max_new_tokens)
            outs.append(_core.model_generate(self._cfg, self._params, np.concatenate(chunk), offsets,
                                             max_new_tokens, temperature, top_p, stop_arr, seed, s,
                                             pad_token_id, work))
        tokens = np.concatenate([o[0] for o in outs])
        lengths = np.concatenate([o[1] for o in outs])
        stopped = np.concatenate([o[2] for o in outs])
        texts = None
        if tokenizer is not None:
            texts = [tokenizer.decode(tokens[b, : lengths[b] - int(stopped[b])].tolist())
                     for b in range(len(lengths))]
        return Generation(tokens, lengths, stopped, texts)

    def _generate_workspace(self, n_prompts, n_tokens, max_prompt, max_new_tokens):
        """The reused float workspace of generate (KV cache and activations),
        grown on demand; None when the sizes are invalid (the core names them)."""
        try:
            need = int(_core.model_generate_work_size(self._cfg, n_prompts, n_tokens, max_prompt,
                                                      max_new_tokens))
        except (TypeError, ValueError):
            return None
        if self._gen_work.size < need:
            self._gen_work = np.zeros(0, np.float32)
            self._gen_work = np.empty(need, dtype=np.float32)
        return self._gen_work

    def release_memory(self) -> None:
        """Drop the reusable buffers (training activations, generation KV
        cache); they are reallocated on the next call."""
        self._arena = np.zeros(0, dtype=np.float32)
        self._gen_work = np.zeros(0, dtype=np.float32)
        self._last = None

    # ---- checkpoints ------------------------------------------------------

    def save(self, path: Union[str, os.PathLike], *, optimizer: bool = True, dtype: str = "float32") -> None:
        """Save to the folder `path` (created if needed).

        Writes ``config.json`` (Hugging Face Qwen2 format), ``model.safetensors``
        (parameters by Hugging Face name) and, with `optimizer`,
        ``optimizer.safetensors`` (AdamW moments and step count, float32) so
        training can resume. Every file is written atomically (temporary
        file, fsync, rename).

        Parameters
        ----------
        path : str or PathLike
            Folder of the checkpoint.
        optimizer : bool
            Also save the optimizer state (else an old one is removed).
        dtype : {"float32", "float16", "bfloat16"}
            Storage type of the parameters; the narrower types halve the file
            (values are rounded to nearest; :meth:`load` widens them back to
            float32, so the loaded model is the rounded one).
        """
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype: must be 'float32', 'float16' or 'bfloat16', got {dtype!r}")
        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        cfg = self.config.to_dict()
        cfg["torch_dtype"] = dtype
        atomic_write_bytes(os.path.join(path, "config.json"),
                           (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode())
        if dtype == "float32":
            tensors: Dict[str, Any] = dict(self._views)
        elif dtype == "float16":
            tensors = {k: v.astype(np.float16) for k, v in self._views.items()}
        else:
            tensors = {k: ("BF16", to_bfloat16_bits(v)) for k, v in self._views.items()}
        write_safetensors(os.path.join(path, "model.safetensors"), tensors,
                          {"format": "pt", "producer": "o1pruner.models.TinyLM"})
        opt_path = os.path.join(path, "optimizer.safetensors")
        if optimizer:
            write_safetensors(opt_path, {"exp_avg": self._exp_avg, "exp_avg_sq": self._exp_avg_sq},
                              {"format": "o1pruner-adamw", "step": str(self.step_count),
                               "layout": "flat parameter buffer of o1pruner.models.TinyLM"})
        elif os.path.exists(opt_path):
            os.unlink(opt_path)  # a stale optimizer state would not match these parameters

    @classmethod
    def load(cls, path: Union[str, os.PathLike], *, optimizer: bool = True) -> "TinyLM":
        """Load a model saved by :meth:`save` (or a float Qwen2 checkpoint of
        a supported shape: ``config.json`` + ``model.safetensors``)."""
        path = os.fspath(path)
        with open(os.path.join(path, "config.json")) as f:
            config = TinyLMConfig.from_dict(json.load(f))
        weights = os.path.join(path, "model.safetensors")
        # config.json is checked against the weights' header before anything
        # of the config's size is allocated (a wrong num_hidden_layers would
        # otherwise allocate, and initialise, a model the file cannot fill)
        _check_weights_header(config, weights)
        model = cls(config, seed=None)
        tensors, _ = read_safetensors(weights)
        model.load_state_dict(tensors)  # checks the dtype before converting to float32
        opt_path = os.path.join(path, "optimizer.safetensors")
        if optimizer and os.path.exists(opt_path):
            state, meta = read_safetensors(opt_path)
            for key, buf in (("exp_avg", model._exp_avg), ("exp_avg_sq", model._exp_avg_sq)):
                if key not in state or state[key].shape != buf.shape:
                    raise ValueError(f"{opt_path}: {key} missing or of the wrong size")
                buf[...] = state[key]
            model.step_count = int(meta.get("step", "0"))
        return model

    def __repr__(self) -> str:
        c = self.config
        return (f"TinyLM(vocab={c.vocab_size}, d={c.hidden_size}, layers={c.num_hidden_layers}, "
                f"heads={c.num_attention_heads}, ff={c.intermediate_size}, "
                f"context={c.max_position_embeddings}, params={self.num_parameters:,})")


_FLOAT_CODES = ("F32", "F16", "BF16", "F64")


def _check_weights_header(config: "TinyLMConfig", path: str) -> None:
    """ValueError / TypeError unless the safetensors header at `path` holds
    exactly the tensors of `config` (names, shapes; an optional tied
    ``lm_head.weight``), all floating point. Reads only the header."""
    header, _ = read_safetensors_header(path)
    layers = set()
    for name in header:
        parts = name.split(".")
        if len(parts) > 3 and parts[:2] == ["model", "layers"] and parts[2].isdigit():
            layers.add(int(parts[2]))
    L = int(config.num_hidden_layers)
    if len(layers) != L or layers != set(range(L)):
        held = f"layers {min(layers)}..{max(layers)} ({len(layers)} in all)" if layers else "no layers"
        raise ValueError(f"{path}: config.json says num_hidden_layers = {L}, but the weights hold {held}")
    # the layout is now bounded by what the file itself lists
    want = {name: tuple(shape) for name, _, shape in _core.model_layout(config._c_tuple())}
    emb = want["model.embed_tokens.weight"]
    if "lm_head.weight" in header:
        want["lm_head.weight"] = emb
    missing = sorted(set(want) - set(header))
    unknown = sorted(set(header) - set(want))
    if missing or unknown:
        raise ValueError(f"{path}: does not match config.json: unknown names {unknown[:5]}, "
                         f"missing names {missing[:5]}")
    for name, shape in want.items():
        code, got = header[name]
        if tuple(got) != shape:
            raise ValueError(f"{path}: {name} has shape {tuple(got)}, but config.json implies {shape}")
        if code not in _FLOAT_CODES:
            raise TypeError(f"{path}: {name} has dtype {code}, expected a floating-point tensor "
                            f"({', '.join(_FLOAT_CODES)})")


def _asarray(x: Any, name: str) -> np.ndarray:
    """np.asarray whose failures (ragged nested lists, unconvertible objects)
    raise a ValueError naming the argument."""
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: cannot be read as an array ({e})") from None


def _int_scalar(x: Any, name: str) -> int:
    """An int in the int64 range (not bool), else a named error."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(x).__name__}")
    if not -2**63 <= int(x) < 2**63:
        raise ValueError(f"{name}: {x} is outside the int64 range")
    return int(x)


def _int_array(x: Any, name: str) -> np.ndarray:
    """np.asarray for token-id arrays; non-integer dtypes raise a TypeError
    naming the argument (empty inputs pass, the core reports them)."""
    a = _asarray(x, name)
    if a.dtype.kind not in "iu" and a.size > 0:
        raise TypeError(f"{name}: expected an integer array, got dtype {a.dtype}")
    return a
