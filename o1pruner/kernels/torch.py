"""The torch twins of o1pruner's kernels (the C ones: :mod:`o1pruner.kernels`;
the NumPy ones: :mod:`o1pruner.kernels.slow`), with the same names and
arguments. ``o1pruner.torch`` (the documented name) is this module.

Each function takes and returns torch tensors and is differentiable. The
log-prob functions are autograd functions over the C kernels (CPU tensors): the
forward and the backward run in the C core (float32 compute, float64 sums),
and tensors cross into NumPy without a copy when they are CPU, float32 and of
a layout the kernel reads directly (C-contiguous); other layouts and dtypes
are converted once by the kernel's argument checks, as for NumPy input.
Results come back as tensors sharing the kernels' output buffers.

- :func:`token_logprobs`: log p(target) and entropy from materialised logits.
- :func:`fused_linear_logprobs`: the same from hidden states and the LM-head
  weight, without materialising the logits (gradients for hidden, weight, bias).
- :func:`ppo_clip_loss`: O1-Pruner's off-policy PPO-clip loss (and the peers'
  token-level variants), gradient with respect to the policy's log-probs; in
  pure torch, so on any device (the Hugging Face trainer's loss).
- :func:`dpo_loss`: the DPO loss of the paper's DPO baseline, in pure torch
  (autograd gives the gradients), on any device.

Needs ``pip install 'o1pruner[torch]'``.
"""

from __future__ import annotations

import sys
import threading
from typing import Optional, Tuple, Union

import numpy as np

try:
    import torch
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("o1pruner.torch needs PyTorch, which is optional: pip install 'o1pruner[torch]'") from _exc

import o1pruner as _o1p

__all__ = ["token_logprobs", "fused_linear_logprobs", "ppo_clip_loss", "dpo_loss", "as_numpy", "release_workspace"]


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

class _GradWorkspace:
    """The N x V float32 gradient buffer of the logits' backward, reused
    across calls: a new array of that size (1.2 GB at N = 2048, V = 151936)
    costs a first touch of every page each call, more than the kernel itself.

    The buffer is handed to autograd as ``torch.from_numpy(buf)``, and that
    tensor holds a reference to the NumPy array until it is freed. So the
    buffer is free again exactly when its reference count is back to ours:
    checked, and claimed, under a lock. While anything still holds the last
    gradient (autograd storing it as a leaf's ``.grad``, a hook keeping it),
    the next call gets a new buffer, so no gradient is ever overwritten."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buf: Optional[np.ndarray] = None

    def take(self, shape) -> Tuple[np.ndarray, "torch.Tensor"]:
        with self._lock:
            buf = self._buf
            # references when free: self._buf, `buf`, getrefcount's argument
            if buf is None or buf.shape != tuple(shape) or sys.getrefcount(buf) > 3:
                buf = np.empty(shape, np.float32)
                self._buf = buf
            return buf, torch.from_numpy(buf)  # the tensor claims it

    def release(self) -> None:
        with self._lock:
            self._buf = None


_WORKSPACE = _GradWorkspace()


def release_workspace() -> None:
    """Drop the logits-gradient buffer that :func:`token_logprobs`'s backward
    keeps between calls (its memory returns once no gradient tensor still
    uses it)."""
    _WORKSPACE.release()


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
        z = as_numpy(logits, "logits")
        if logits.dtype == torch.float32:  # the gradient goes back as it is: reuse the buffer
            buf, grad = _WORKSPACE.take(z.shape)
        else:  # cast to the logits' dtype anyway: a fresh float32 array is only a temporary
            buf, grad = None, None
        d = _need("token_logprobs_backward")(z, targets.numpy(), lse.numpy(), gl, _grad(g_entropy),
                                            ctx.temperature, ctx.ignore_index, out=buf)
        return (grad if grad is not None else _tensor(d, logits)), None, None, None


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


# ---- PPO-clip loss (pure torch: any device) ---------------------------------------

_TOKEN_AGGREGATES = ("token-mean", "bnpo", "grpo", "seq-mean-token-mean", "seq-mean-token-sum", "dr_grpo")


def _clip_objective(lr, A, eps_low, eps_high, dual_clip, logratio_clamp):
    """The torch transliteration of ``o1pruner.kernels.slow._clip_objective``:
    loss of log-ratios `lr`, d loss / d lr (PyTorch's rules at the kinks, 0
    where a branch passes no gradient, also for an overflowed ratio), r, the
    clamped log-ratio, and the clipped / dual-clipped masks."""
    if logratio_clamp is not None:
        lrc = lr.clamp(-logratio_clamp, logratio_clamp)
        g_lr = (lr >= -logratio_clamp) & (lr <= logratio_clamp)
    else:
        lrc, g_lr = lr, torch.ones_like(lr, dtype=torch.bool)
    r = torch.exp(lrc)
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    p1 = -A * r
    p2 = -A * r.clamp(lo, hi)
    loss = torch.maximum(p1, p2)
    one, half, zero = (torch.tensor(v, dtype=r.dtype, device=r.device) for v in (1.0, 0.5, 0.0))
    share1 = torch.where(p1 > p2, one, torch.where(p1 == p2, half, zero))
    w = share1 + (1.0 - share1) * ((r >= lo) & (r <= hi)).to(r.dtype)
    A_full = A.expand_as(loss)
    dual_clipped = torch.zeros_like(loss, dtype=torch.bool)
    if dual_clip is not None:
        p3 = -A_full * dual_clip
        neg = A_full < 0
        share = torch.where(loss < p3, one, torch.where(loss == p3, half, zero))
        dual_clipped = neg & (loss > p3)
        loss = torch.where(neg, torch.minimum(loss, p3), loss)
        w = torch.where(neg, w * share, w)
    is_zero = A_full == 0
    loss = torch.where(is_zero, zero, loss)
    d = torch.where(is_zero, zero, w) * g_lr.to(w.dtype)
    dloss = torch.where(d != 0, -A_full * d * r, zero)
    return loss, dloss, r, lrc, p2 > p1, dual_clipped


def _check_ppo(logp, ref_logp, advantages, mask, eps_low, eps_high, ratio, aggregate, dual_clip, logratio_clamp):
    for name, t in (("logp", logp), ("ref_logp", ref_logp), ("advantages", advantages), ("mask", mask)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    for name, t in (("ref_logp", ref_logp), ("advantages", advantages)):
        if t.requires_grad and torch.is_grad_enabled():
            raise ValueError(f"{name}: requires grad, but this function gives no gradient to it (it is a constant "
                             "of the objective); pass it detached")
    if not logp.is_floating_point():
        raise TypeError(f"logp: expected a floating tensor, got {logp.dtype}")
    if logp.dim() != 2 or logp.shape[0] == 0 or logp.shape[1] == 0:
        raise ValueError(f"logp: expected shape (B, T) with B, T >= 1, got {tuple(logp.shape)}")
    B = logp.shape[0]
    if tuple(mask.shape) != tuple(logp.shape):
        raise ValueError(f"mask: shape {tuple(mask.shape)} does not match logp {tuple(logp.shape)}")
    if tuple(advantages.shape) != (B,):
        raise ValueError(f"advantages: shape {tuple(advantages.shape)} does not match logp's B = {B}")
    if ratio not in ("sequence_mean", "token"):
        raise ValueError(f"ratio: must be 'sequence_mean' or 'token', got {ratio!r}")
    if tuple(ref_logp.shape) != tuple(logp.shape) and not (ratio == "sequence_mean" and tuple(ref_logp.shape) == (B,)):
        raise ValueError(f"ref_logp: shape {tuple(ref_logp.shape)} does not match logp {tuple(logp.shape)}"
                         + (" (or (B,) with ratio='sequence_mean')" if ratio == "sequence_mean" else ""))
    allowed = ("mean", "sum") if ratio == "sequence_mean" else _TOKEN_AGGREGATES
    if aggregate is not None and aggregate not in allowed:
        raise ValueError(f"aggregate: with ratio={ratio!r} must be one of {allowed} or None, got {aggregate!r}")
    for name, v, lo, hi in (("eps_low", eps_low, 0.0, 1.0), ("eps_high", eps_high, 0.0, 1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo < v < hi):
            raise ValueError(f"{name}: must be in (0, 1), got {v!r}")
    if dual_clip is not None and (isinstance(dual_clip, bool) or not isinstance(dual_clip, (int, float)) or not dual_clip > 1):
        raise ValueError(f"dual_clip: must be > 1 or None, got {dual_clip!r}")
    if logratio_clamp is not None and (isinstance(logratio_clamp, bool) or not isinstance(logratio_clamp, (int, float))
                                       or not logratio_clamp > 0):
        raise ValueError(f"logratio_clamp: must be > 0 or None, got {logratio_clamp!r}")
    if not bool(torch.isfinite(advantages).all()):
        raise ValueError("advantages: must be finite")
    m = mask.bool()
    for name, t in (("logp", logp), ("ref_logp", ref_logp)):
        bad = ~torch.isfinite(t) & (m if t.shape == m.shape else m.any(1))
        if bool(bad.any()):
            raise ValueError(f"{name}: non-finite value at a valid position (mask such tokens out)")


def _wide(device) -> "torch.dtype":
    """float64 for the sums and the sequence-level ratio, as the C kernel;
    float32 on Apple's MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _ppo_forward(logp, ref_logp, advantages, mask, eps_low, eps_high, ratio, aggregate, dual_clip, logratio_clamp,
                 global_batch_size, batch_num_tokens, max_response_length):
    """(loss float64 0-d, d loss / d logp in logp's dtype, stats tuple): the
    arithmetic of ``o1pruner.kernels.slow.ppo_clip_loss`` in torch, with the C
    kernel's precision (per-token work in float32, sums and the
    sequence-level ratio in float64)."""
    m = mask.bool()
    b, T = logp.shape
    n = m.sum(1)
    B = b if global_batch_size is None else int(global_batch_size)
    Tn = T if max_response_length is None else int(max_response_length)
    f64 = _wide(logp.device)
    A = advantages.to(f64)
    opts = (eps_low, eps_high, dual_clip, logratio_clamp)
    zero = torch.zeros((), dtype=f64, device=logp.device)
    if ratio == "sequence_mean":
        aggregate = aggregate or "mean"
        nn = n.clamp(min=1).to(f64)
        mean_lp = torch.where(m, logp.to(f64), zero).sum(1) / nn
        mean_ref = ref_logp.to(f64) if ref_logp.dim() == 1 else torch.where(m, ref_logp.to(f64), zero).sum(1) / nn
        l, dl, r, lrc, clipped, dclipped = _clip_objective(mean_lp - mean_ref, A, *opts)
        s = 1.0 / B if aggregate == "mean" else 1.0
        ok = n > 0
        loss = s * torch.where(ok, l, zero).sum()
        grad = torch.where(m, torch.where(ok, s * dl / nn, zero)[:, None], zero)
        sel = ok
    else:
        aggregate = aggregate or "token-mean"
        f32 = torch.float32
        lr = torch.where(m, logp.to(f32) - ref_logp.to(f32), torch.zeros((), dtype=f32, device=logp.device))
        l, dl, r, lrc, clipped, dclipped = _clip_objective(lr, A.to(f32)[:, None], *opts)
        N = int(n.sum()) if batch_num_tokens is None else int(batch_num_tokens)
        nb = n.clamp(min=1).to(f64)
        if aggregate == "token-mean":
            wgt = torch.full((b,), 1.0 / N if N > 0 else 0.0, dtype=f64, device=logp.device)
        elif aggregate == "bnpo":
            wgt = torch.full((b,), 1.0 / max(N, 1), dtype=f64, device=logp.device)
        elif aggregate in ("grpo", "seq-mean-token-mean"):
            wgt = 1.0 / (B * nb)
        elif aggregate == "seq-mean-token-sum":
            wgt = torch.full((b,), 1.0 / B, dtype=f64, device=logp.device)
        else:  # dr_grpo
            wgt = torch.full((b,), 1.0 / (B * Tn), dtype=f64, device=logp.device)
        wgt = wgt[:, None]
        loss = torch.where(m, wgt * l.to(f64), zero).sum()
        grad = torch.where(m, (wgt * dl.to(f64)).to(f32).to(f64), zero)
        sel = m
    count = int(sel.sum())
    if count:
        rs = r[sel]
        stats = (float(clipped[sel].double().mean()), float(dclipped[sel].double().mean()),
                 float(-lrc[sel].double().mean()), float(rs.double().mean()), float(rs.min()), float(rs.max()), count)
    else:
        stats = (0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0)
    return loss, grad.to(logp.dtype), stats


class _PPOClipLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logp, grad, loss):
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (grad,) = ctx.saved_tensors
        return grad * g.to(grad.dtype), None, None


def ppo_clip_loss(logp, ref_logp, advantages, mask, eps_low: float = 0.2, eps_high: float = 0.2,
                  ratio: str = "sequence_mean", aggregate: Optional[str] = None,
                  dual_clip: Optional[float] = None, logratio_clamp: Optional[float] = None,
                  return_stats: bool = False, *, global_batch_size: Optional[int] = None,
                  batch_num_tokens: Optional[int] = None,
                  max_response_length: Optional[int] = None) -> Union["torch.Tensor", Tuple["torch.Tensor", "_o1p.PPOStats"]]:
    """Differentiable O1-Pruner PPO-clip loss in torch (any device), gradient
    w.r.t. `logp`: the torch twin of :func:`o1pruner.ppo_clip_loss` (same
    arguments, formulas, precision and gradient conventions at the kinks;
    ``o1pruner.kernels.slow.ppo_clip_loss`` is the NumPy twin).

    The defaults are the public O1-Pruner loss (method.md step 3); every
    option is that of :func:`o1pruner.ppo_clip_loss`, whose docstring gives
    the formulas of each mode, including the whole batch's normalisers
    (`global_batch_size`, `batch_num_tokens`, `max_response_length`) for a
    micro-batch.

    Parameters
    ----------
    logp : Tensor, shape (B, T)
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
        Also return the :class:`o1pruner.PPOStats` of the call (one host
        synchronisation).

    Returns
    -------
    loss : 0-d Tensor in the dtype of `logp`
        (and the stats when `return_stats`)
    """
    _check_ppo(logp, ref_logp, advantages, mask, eps_low, eps_high, ratio, aggregate, dual_clip, logratio_clamp)
    for name, v, lo in (("global_batch_size", global_batch_size, 1), ("batch_num_tokens", batch_num_tokens, 0),
                        ("max_response_length", max_response_length, 1)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo):
            raise ValueError(f"{name}: must be an int >= {lo} or None, got {v!r}")
    with torch.no_grad():
        loss64, grad, stats = _ppo_forward(logp.detach(), ref_logp.detach(), advantages.detach(), mask, eps_low,
                                           eps_high, ratio, aggregate, dual_clip, logratio_clamp, global_batch_size,
                                           batch_num_tokens, max_response_length)
    loss = loss64.to(logp.dtype)
    if logp.requires_grad and torch.is_grad_enabled():
        loss = _PPOClipLoss.apply(logp, grad, loss)
    st = _o1p.PPOStats(*stats)
    return (loss, st) if return_stats else loss


# ---- DPO -------------------------------------------------------------------------------

def _check_dpo(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, chosen_mask, rejected_mask, beta,
               weights, length_normalize):
    named = (("chosen_logp", chosen_logp), ("rejected_logp", rejected_logp), ("ref_chosen_logp", ref_chosen_logp),
             ("ref_rejected_logp", ref_rejected_logp), ("chosen_mask", chosen_mask), ("rejected_mask", rejected_mask))
    for name, t in named + ((("weights", weights),) if weights is not None else ()):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    for name, t in (("ref_chosen_logp", ref_chosen_logp), ("ref_rejected_logp", ref_rejected_logp),
                    ("weights", weights)):
        if t is not None and t.requires_grad and torch.is_grad_enabled():
            raise ValueError(f"{name}: requires grad, but this function gives no gradient to it (it is a constant "
                             "of the objective); pass it detached")
    for name, t in (("chosen_logp", chosen_logp), ("rejected_logp", rejected_logp)):
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating tensor, got {t.dtype}")
        if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(f"{name}: expected shape (B, T) with B, T >= 1, got {tuple(t.shape)}")
    B = chosen_logp.shape[0]
    if rejected_logp.shape[0] != B:
        raise ValueError(f"rejected_logp: {rejected_logp.shape[0]} rows, chosen_logp has B = {B}")
    for name, m, t in (("chosen_mask", chosen_mask, chosen_logp), ("rejected_mask", rejected_mask, rejected_logp)):
        if tuple(m.shape) != tuple(t.shape):
            raise ValueError(f"{name}: shape {tuple(m.shape)} does not match its log-probs {tuple(t.shape)}")
    for name, t in (("ref_chosen_logp", ref_chosen_logp), ("ref_rejected_logp", ref_rejected_logp),
                    ("weights", weights)):
        if t is None:
            continue
        if tuple(t.shape) != (B,):
            raise ValueError(f"{name}: shape {tuple(t.shape)} does not match chosen_logp's B = {B}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: must be finite")
    if weights is not None and bool((weights < 0).any()):
        raise ValueError("weights: must be >= 0")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (0 < beta < float("inf")):
        raise ValueError(f"beta: must be a finite number > 0, got {beta!r}")
    if not isinstance(length_normalize, bool):
        raise TypeError(f"length_normalize: expected a bool, got {type(length_normalize).__name__}")
    mc, mr = chosen_mask.bool(), rejected_mask.bool()
    if bool((mc.any(1) != mr.any(1)).any()):
        raise ValueError("chosen_mask: a pair has exactly one empty row (mask both rows of a padding pair)")
    for name, t, m in (("chosen_logp", chosen_logp, mc), ("rejected_logp", rejected_logp, mr)):
        if bool((~torch.isfinite(t.detach()) & m).any()):
            raise ValueError(f"{name}: non-finite value at a valid position (mask such tokens out)")


def dpo_loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, chosen_mask, rejected_mask,
             beta: float = 0.1, *, weights=None, length_normalize: bool = False,
             global_batch_size: Optional[int] = None,
             return_stats: bool = False) -> Union["torch.Tensor", Tuple["torch.Tensor", "_o1p.DPOStats"]]:
    """Differentiable DPO loss in torch (any device), gradients w.r.t.
    `chosen_logp` and `rejected_logp` by autograd: the torch twin of
    :func:`o1pruner.dpo_loss` (same arguments, formulas and precision: the
    sums, the margin and the loss in float64, float32 on MPS;
    ``o1pruner.kernels.slow.dpo_loss`` is the NumPy twin).

    Parameters
    ----------
    chosen_logp, rejected_logp : Tensor, shapes (B, Tc), (B, Tr)
    ref_chosen_logp, ref_rejected_logp : Tensor, shape (B,)
        Constants: must not require grad.
    chosen_mask, rejected_mask : Tensor of bool or 0/1
    beta, weights, length_normalize, global_batch_size :
        See :func:`o1pruner.dpo_loss`.
    return_stats : bool, default False
        Also return the :class:`o1pruner.DPOStats` (one host synchronisation).

    Returns
    -------
    loss : 0-d Tensor in the dtype of `chosen_logp`
        (and the stats when `return_stats`)
    """
    _check_dpo(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, chosen_mask, rejected_mask, beta,
               weights, length_normalize)
    if global_batch_size is not None and (isinstance(global_batch_size, bool)
                                          or not isinstance(global_batch_size, (int, np.integer))
                                          or global_batch_size < 1):
        raise ValueError(f"global_batch_size: must be an int >= 1 or None, got {global_batch_size!r}")
    f64 = _wide(chosen_logp.device)
    zero = torch.zeros((), dtype=f64, device=chosen_logp.device)
    mc, mr = chosen_mask.bool(), rejected_mask.bool()

    def seq(lp, m):  # masked entries are selected away (NaN there does not leak in)
        s = torch.where(m, lp.to(f64), zero).sum(1)
        return s / m.sum(1).clamp(min=1).to(f64) if length_normalize else s

    b = chosen_logp.shape[0]
    B = b if global_batch_size is None else int(global_batch_size)
    reward_c = beta * (seq(chosen_logp, mc) - ref_chosen_logp.to(f64))
    reward_r = beta * (seq(rejected_logp, mr) - ref_rejected_logp.to(f64))
    z = reward_c - reward_r
    ok = mc.any(1)
    w = torch.ones(b, dtype=f64, device=z.device) if weights is None else weights.to(f64)
    keep = ok & (w != 0)
    per = torch.where(keep, w * -torch.nn.functional.logsigmoid(torch.where(keep, z, zero)), zero)
    loss = (per.sum() / B).to(chosen_logp.dtype)
    if not return_stats:
        return loss
    with torch.no_grad():
        count = int(ok.sum())
        stats = (float(z[ok].mean()), float((z[ok] > 0).double().mean()), float(reward_c[ok].mean()),
                 float(reward_r[ok].mean()), count) if count else (0.0, 0.0, 0.0, 0.0, 0)
    return loss, _o1p.DPOStats(*stats)
