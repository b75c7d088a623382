"""PyTorch autograd functions over o1pruner's C kernels, for CPU tensors.

Each function takes and returns torch tensors and is differentiable: the
forward and the backward run in the C core (float32 compute, float64 sums),
and tensors cross into NumPy without a copy when they are CPU, float32 and of
a layout the kernel reads directly (C-contiguous); other layouts and dtypes
are converted once by the kernel's argument checks, as for NumPy input.
Results come back as tensors sharing the kernels' output buffers.

- :func:`token_logprobs`: log p(target) and entropy from materialised logits.
- :func:`fused_linear_logprobs`: the same from hidden states and the LM-head
  weight, without materialising the logits (gradients for hidden, weight, bias).
- :func:`ppo_clip_loss`: O1-Pruner's off-policy PPO-clip loss (and the peers'
  token-level variants), gradient with respect to the policy's log-probs.

Needs ``pip install 'o1pruner[torch]'``. These run on CPU only; on a GPU use
the pure-torch loss of :mod:`o1pruner.hf` (same formula).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

try:
    import torch
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("o1pruner.torch needs PyTorch, which is optional: pip install 'o1pruner[torch]'") from _exc

import o1pruner as _o1p

__all__ = ["token_logprobs", "fused_linear_logprobs", "ppo_clip_loss", "as_numpy"]


def as_numpy(t, name: str, *, grad_ok: bool = True) -> np.ndarray:
    """A NumPy view of a CPU tensor (no copy; bfloat16, which NumPy lacks,
    becomes float32). Raises naming `name` for other devices, or when the
    tensor requires a gradient the function will not give (`grad_ok` False)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name}: o1pruner.torch runs the C kernels on CPU tensors, got device {t.device}; "
                         "move it with .cpu() or use the pure-torch loss in o1pruner.hf on accelerators")
    if not grad_ok and t.requires_grad:
        raise ValueError(f"{name}: requires grad, but this function gives no gradient to it (it is a constant "
                         "of the objective); pass it detached")
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    return t.numpy()


def _need(name: str):
    fn = getattr(_o1p, name, None)
    if fn is None:  # pragma: no cover - only for a build without that kernel family
        raise RuntimeError(f"o1pruner.{name} is not available in this build of o1pruner")
    return fn


def _tensor(a: np.ndarray, like: "torch.Tensor") -> "torch.Tensor":
    """Wrap a kernel's output (no copy), cast to the input's dtype when it
    differs (float32 compute; float64 inputs get float64 gradients)."""
    t = torch.from_numpy(a)
    return t if t.dtype == like.dtype else t.to(like.dtype)


def _grad(g) -> Optional[np.ndarray]:
    return None if g is None else np.ascontiguousarray(g.detach().cpu().float().numpy())


# ---- token log-probs from logits -------------------------------------------------

class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, temperature, ignore_index):
        z = as_numpy(logits, "logits")
        t = as_numpy(targets, "targets", grad_ok=False)
        out = _need("token_logprobs")(z, t, temperature, ignore_index)
        ctx.save_for_backward(logits, targets, torch.from_numpy(out.lse))
        ctx.temperature, ctx.ignore_index = temperature, ignore_index
        ctx.set_materialize_grads(False)
        return _tensor(out.logp, logits), _tensor(out.entropy, logits)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_logp, g_entropy):
        if g_logp is None and g_entropy is None:
            return None, None, None, None
        logits, targets, lse = ctx.saved_tensors
        gl = _grad(g_logp) if g_logp is not None else np.zeros(targets.shape[0], dtype=np.float32)
        d = _need("token_logprobs_backward")(as_numpy(logits, "logits"), targets.numpy(), lse.numpy(), gl,
                                            _grad(g_entropy), ctx.temperature, ctx.ignore_index)
        return _tensor(d, logits), None, None, None


def token_logprobs(logits, targets, temperature: float = 1.0,
                   ignore_index: int = -100) -> Tuple["torch.Tensor", "torch.Tensor"]:
    """Differentiable token log-probs and entropies of logits (C kernels).

    See :func:`o1pruner.token_logprobs` for the arguments and the numerics.

    Parameters
    ----------
    logits : Tensor, shape (N, V), CPU, float16/bfloat16/float32/float64
    targets : LongTensor, shape (N,)
        Token ids in [0, V), or `ignore_index` (no output, no gradient).
    temperature : float, default 1.0
    ignore_index : int, default -100

    Returns
    -------
    (logp, entropy) : Tensors of shape (N,) in the dtype of `logits`
        Both differentiable with respect to `logits`.

    Raises
    ------
    ValueError, TypeError
        As :func:`o1pruner.token_logprobs`; tensors not on CPU.
    """
    return _TokenLogprobs.apply(logits, targets, float(temperature), int(ignore_index))


# ---- fused LM head + log-probs --------------------------------------------------

class _FusedLinearLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, bias, temperature, ignore_index):
        h, w = as_numpy(hidden, "hidden"), as_numpy(weight, "weight")
        t = as_numpy(targets, "targets", grad_ok=False)
        b = None if bias is None else as_numpy(bias, "bias")
        out = _need("fused_linear_logprobs")(h, w, t, temperature, ignore_index, b)
        ctx.save_for_backward(hidden, weight, targets, bias, torch.from_numpy(out.stats.lse),
                              torch.from_numpy(out.stats.entropy))
        ctx.temperature, ctx.ignore_index = temperature, ignore_index
        ctx.set_materialize_grads(False)
        return _tensor(out.logp, hidden), _tensor(out.entropy, hidden)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_logp, g_entropy):
        if g_logp is None and g_entropy is None:
            return None, None, None, None, None, None
        hidden, weight, targets, bias, lse, ent = ctx.saved_tensors
        from .fused import FusedStats

        gl = _grad(g_logp) if g_logp is not None else np.zeros(targets.shape[0], dtype=np.float32)
        gh, gw, gb = _need("fused_linear_logprobs_backward")(
            as_numpy(hidden, "hidden"), as_numpy(weight, "weight"), targets.numpy(),
            FusedStats(lse.numpy(), ent.numpy()), gl, _grad(g_entropy), ctx.temperature, ctx.ignore_index,
            None if bias is None else as_numpy(bias, "bias"))
        need = ctx.needs_input_grad
        return (_tensor(gh, hidden) if need[0] else None, _tensor(gw, weight) if need[1] else None, None,
                _tensor(gb, bias) if (bias is not None and need[3]) else None, None, None)


def fused_linear_logprobs(hidden, weight, targets, temperature: float = 1.0, ignore_index: int = -100,
                          bias=None) -> Tuple["torch.Tensor", "torch.Tensor"]:
    """Differentiable token log-probs and entropies of an LM head without the logits (C kernels).

    ``z = (hidden @ weight.T + bias) / temperature``; returns log softmax(z)[target]
    and the entropy of softmax(z) per row, never storing the N x V logits.
    See :func:`o1pruner.fused_linear_logprobs` for the numerics.

    Parameters
    ----------
    hidden : Tensor, shape (N, d), CPU
    weight : Tensor, shape (V, d), CPU (``lm_head.weight``)
    targets : LongTensor, shape (N,)
    temperature : float, default 1.0
    ignore_index : int, default -100
    bias : Tensor, shape (V,), optional

    Returns
    -------
    (logp, entropy) : Tensors of shape (N,) in the dtype of `hidden`
        Differentiable with respect to `hidden`, `weight` and `bias`.
    """
    return _FusedLinearLogprobs.apply(hidden, weight, targets, bias, float(temperature), int(ignore_index))


# ---- PPO-clip loss ------------------------------------------------------------------

class _PPOClipLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logp, ref_logp, advantages, mask, kwargs):
        res = _o1p.ppo_clip_loss(as_numpy(logp, "logp"), as_numpy(ref_logp, "ref_logp", grad_ok=False),
                                 as_numpy(advantages, "advantages", grad_ok=False),
                                 as_numpy(mask, "mask", grad_ok=False), **kwargs)
        ctx.save_for_backward(torch.from_numpy(res.grad))
        ctx.logp_dtype = logp.dtype
        ctx.stats = res.stats
        return torch.tensor(res.loss, dtype=logp.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (grad,) = ctx.saved_tensors
        grad = grad if grad.dtype == ctx.logp_dtype else grad.to(ctx.logp_dtype)
        return grad * g.to(grad.dtype), None, None, None, None


def ppo_clip_loss(logp, ref_logp, advantages, mask, eps_low: float = 0.2, eps_high: float = 0.2,
                  ratio: str = "sequence_mean", aggregate: Optional[str] = None,
                  dual_clip: Optional[float] = None, logratio_clamp: Optional[float] = None,
                  return_stats: bool = False) -> Union["torch.Tensor", Tuple["torch.Tensor", "_o1p.PPOStats"]]:
    """Differentiable O1-Pruner PPO-clip loss (C kernel), gradient w.r.t. `logp`.

    The defaults are the public O1-Pruner loss (method.md step 3); every
    option is that of :func:`o1pruner.ppo_clip_loss`, whose docstring gives
    the formulas of each mode.

    Parameters
    ----------
    logp : Tensor, shape (B, T), CPU
        Policy token log-probs (e.g. from :func:`token_logprobs`).
    ref_logp : Tensor, shape (B, T) or (B,)
        Frozen reference token log-probs, or per-sequence mean log-probs for
        ``ratio="sequence_mean"``. Constant: must not require grad.
    advantages : Tensor, shape (B,)
        The O1-Pruner weights. Constant: must not require grad.
    mask : Tensor of bool or 0/1, shape (B, T)
    eps_low, eps_high, ratio, aggregate, dual_clip, logratio_clamp :
        See :func:`o1pruner.ppo_clip_loss`.
    return_stats : bool, default False
        Also return the :class:`o1pruner.PPOStats` of the call.

    Returns
    -------
    loss : 0-d Tensor in the dtype of `logp`
        (and the stats when `return_stats`)
    """
    kwargs = dict(eps_low=eps_low, eps_high=eps_high, ratio=ratio, aggregate=aggregate, dual_clip=dual_clip,
                  logratio_clamp=logratio_clamp)
    if not isinstance(logp, torch.Tensor):
        raise TypeError(f"logp: expected a torch.Tensor, got {type(logp).__name__}")
    if not (logp.requires_grad and torch.is_grad_enabled()):
        res = _o1p.ppo_clip_loss(as_numpy(logp, "logp"), as_numpy(ref_logp, "ref_logp", grad_ok=False),
                                 as_numpy(advantages, "advantages", grad_ok=False),
                                 as_numpy(mask, "mask", grad_ok=False), **kwargs)
        loss = torch.tensor(res.loss, dtype=logp.dtype)
        return (loss, res.stats) if return_stats else loss
    loss = _PPOClipLoss.apply(logp, ref_logp, advantages, mask, kwargs)
    return (loss, loss.grad_fn.stats) if return_stats else loss
