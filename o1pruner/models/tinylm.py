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

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._loader import _core
from .batch import ArrayLike, as_array as _asarray, int_array as _int_array, next_token_targets
from .checkpoint import read_checkpoint, save_checkpoint
from .config import TinyLMConfig
from .generation import Generation, encode_prompts, fill_token_id, stop_token_ids

__all__ = ["TinyLMConfig", "TinyLM", "Generation", "next_token_targets"]


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
        encoded = encode_prompts(prompts, tokenizer, batch_size)
        stop_arr = stop_token_ids(stop_token_id, tokenizer, self.config.eos_token_id)
        pad_token_id = fill_token_id(pad_token_id, tokenizer)
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
        return Generation.concatenate(outs, tokenizer)

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
        save_checkpoint(path, self.config, self._views, self.optimizer_state() if optimizer else None, dtype)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], *, optimizer: bool = True) -> "TinyLM":
        """Load a model saved by :meth:`save` (or a float Qwen2 checkpoint of
        a supported shape: ``config.json`` + ``model.safetensors``)."""
        config, tensors, state = read_checkpoint(path, optimizer)
        model = cls(config, seed=None)
        model.load_state_dict(tensors)  # checks the dtype before converting to float32
        if state is not None:
            model.load_optimizer_state(state)
        return model

    def __repr__(self) -> str:
        c = self.config
        return (f"TinyLM(vocab={c.vocab_size}, d={c.hidden_size}, layers={c.num_hidden_layers}, "
                f"heads={c.num_attention_heads}, ff={c.intermediate_size}, "
                f"context={c.max_position_embeddings}, params={self.num_parameters:,})")
