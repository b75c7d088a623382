"""o1pruner.torch: autograd functions over the C kernels, checked against
pure-torch formulas (float64 autograd) and against central finite differences
of the kernels' own forward (a gradcheck with float32-appropriate steps and
tolerances: the kernels compute in float32)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import o1pruner  # noqa: E402
import o1pruner.kernels.torch as ot  # noqa: E402

from helpers import assert_close  # noqa: E402

needs_logprob = pytest.mark.skipif(not hasattr(o1pruner, "token_logprobs"), reason="token_logprobs kernel not in this build")
needs_fused = pytest.mark.skipif(not hasattr(o1pruner, "fused_linear_logprobs"), reason="fused kernel not in this build")


def fd_check(fn, x, n_points=12, eps=1e-2, rtol=2e-3, atol=2e-4, seed=0):
    """Central differences of the scalar fn at a few entries of x against
    x.grad (set by the caller from fn's backward)."""
    rng = np.random.default_rng(seed)
    flat = x.detach().reshape(-1)
    grad = x.grad.reshape(-1)
    for i in rng.choice(flat.numel(), size=min(n_points, flat.numel()), replace=False):
        up, dn = flat.clone(), flat.clone()
        up[i] += eps
        dn[i] -= eps
        with torch.no_grad():
            fd = (fn(up.reshape(x.shape)).double() - fn(dn.reshape(x.shape)).double()) / (2 * eps)
        assert abs(fd.item() - grad[i].item()) <= atol + rtol * abs(fd.item()), (int(i), fd.item(), grad[i].item())


# ---- the NumPy bridge --------------------------------------------------------------

def test_as_numpy_is_a_view():
    t = torch.randn(4, 5)
    a = ot.as_numpy(t, "t")
    assert a.__array_interface__["data"][0] == t.data_ptr() and a.dtype == np.float32
    v = t.t()  # a transposed view: still no copy, strides carried over
    b = ot.as_numpy(v, "v")
    assert b.__array_interface__["data"][0] == t.data_ptr() and not b.flags.c_contiguous
    assert ot.as_numpy(torch.ones(2, dtype=torch.bfloat16), "x").dtype == np.float32
    with pytest.raises(ValueError, match="x: o1pruner.torch runs the C kernels on CPU"):
        ot.as_numpy(torch.ones(2, device="meta"), "x")
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        ot.as_numpy(np.ones(2), "x")
    with pytest.raises(ValueError, match="x: requires grad"):
        ot.as_numpy(torch.ones(2, requires_grad=True), "x", grad_ok=False)


# ---- PPO-clip loss ------------------------------------------------------------------

def torch_ppo(logp, ref, adv, mask, eps=0.2, ratio="sequence_mean", aggregate=None):
    m = mask.to(logp.dtype)
    if ratio == "sequence_mean":
        n = m.sum(1)
        mean = (logp * m).sum(1) / n
        ref_mean = ref if ref.dim() == 1 else (ref * m).sum(1) / n
        r = torch.exp(mean - ref_mean)
        return torch.max(-adv * r, -adv * torch.clamp(r, 1 - eps, 1 + eps)).mean()
    r = torch.exp(logp - ref)
    a = adv[:, None]
    lt = torch.max(-a * r, -a * torch.clamp(r, 1 - eps, 1 + eps)) * m
    n = m.sum(1)
    if aggregate in (None, "token-mean", "bnpo"):
        return lt.sum() / m.sum()
    if aggregate in ("grpo", "seq-mean-token-mean"):
        return (lt.sum(1) / n).mean()
    if aggregate == "seq-mean-token-sum":
        return lt.sum(1).mean()
    if aggregate == "dr_grpo":
        return lt.sum() / (logp.shape[0] * logp.shape[1])
    raise AssertionError(aggregate)


def ppo_inputs(seed=0, B=5, T=9):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(B, T, generator=g) * 3).float()
    # ratios spread over [0.6, 1.5]: both sides of the clip range, no exact kinks
    ref = (logp + (torch.rand(B, T, generator=g) * 0.9 - 0.5)).float()
    adv = torch.randn(B, generator=g).float()
    mask = torch.rand(B, T, generator=g) < 0.8
    mask[:, 0] = True
    return logp, ref, adv, mask


@pytest.mark.parametrize("ratio,aggregate", [
    ("sequence_mean", None), ("token", None), ("token", "grpo"), ("token", "seq-mean-token-sum"), ("token", "dr_grpo"),
])
def test_ppo_matches_torch_formula(ratio, aggregate):
    logp, ref, adv, mask = ppo_inputs()
    x = logp.clone().requires_grad_(True)
    loss, stats = ot.ppo_clip_loss(x, ref, adv, mask, ratio=ratio, aggregate=aggregate, return_stats=True)
    loss.backward()
    x64 = logp.double().requires_grad_(True)
    want = torch_ppo(x64, ref.double(), adv.double(), mask, ratio=ratio, aggregate=aggregate)
    want.backward()
    assert loss.dtype == torch.float32 and stats.count > 0
    assert_close(loss.item(), want.item(), rtol=1e-5, atol=1e-6, what="loss")
    assert_close(x.grad.numpy(), x64.grad.numpy(), rtol=1e-4, atol=1e-6, what="grad")
    assert np.all(x.grad.numpy()[~mask.numpy()] == 0)
    # gradcheck of the kernel's own forward
    fd_check(lambda v: ot.ppo_clip_loss(v, ref, adv, mask, ratio=ratio, aggregate=aggregate), x, eps=1e-3)


def test_ppo_sequence_means_reference_and_float64():
    logp, ref, adv, mask = ppo_inputs(1)
    m = mask.double()
    ref_mean = (ref.double() * m).sum(1) / m.sum(1)
    x = logp.double().requires_grad_(True)
    loss = ot.ppo_clip_loss(x, ref_mean, adv.double(), mask)
    loss.backward()
    assert loss.dtype == torch.float64 and x.grad.dtype == torch.float64
    x2 = logp.double().requires_grad_(True)
    torch_ppo(x2, ref.double(), adv.double(), mask).backward()
    assert_close(x.grad.numpy(), x2.grad.numpy(), rtol=1e-4, atol=1e-7)
    # upstream gradient scales it; no graph -> plain value with stats
    y = logp.clone().requires_grad_(True)
    (3.0 * ot.ppo_clip_loss(y, ref_mean, adv, mask)).backward()
    assert_close(y.grad.numpy(), 3 * x.grad.numpy(), rtol=1e-4, atol=1e-6)
    val, st = ot.ppo_clip_loss(logp, ref_mean, adv, mask, return_stats=True)
    assert_close(val.item(), loss.item(), rtol=1e-6, atol=1e-7) and st.count == 5


def test_ppo_bad_input():
    logp, ref, adv, mask = ppo_inputs()
    x = logp.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="ref_logp: requires grad"):
        ot.ppo_clip_loss(x, ref.clone().requires_grad_(True), adv, mask)
    with pytest.raises(ValueError, match="advantages: requires grad"):
        ot.ppo_clip_loss(x, ref, adv.clone().requires_grad_(True), mask)
    with pytest.raises(ValueError, match="advantages"):
        ot.ppo_clip_loss(x, ref, adv[:-1], mask)
    with pytest.raises(ValueError, match="eps_low"):
        ot.ppo_clip_loss(x, ref, adv, mask, eps_low=1.5)
    with pytest.raises(TypeError, match="logp"):
        ot.ppo_clip_loss(logp.numpy(), ref, adv, mask)


def test_trainer_loss_equals_the_kernel():
    """The pure-torch loss of o1pruner.hf (the Trainer's) equals the C kernel,
    value and gradient, on CPU."""
    pytest.importorskip("transformers")
    import o1pruner.integrations.hf as hf
    logp, ref, adv, mask = ppo_inputs(3)
    m = mask.float()
    x = logp.clone().requires_grad_(True)
    mean = (x * m).sum(1) / m.sum(1)
    ref_mean = (ref * m).sum(1) / m.sum(1)
    loss, _ = hf.o1pruner_loss(mean, ref_mean, adv)
    loss.backward()
    y = logp.clone().requires_grad_(True)
    kern = ot.ppo_clip_loss(y, ref_mean, adv, mask)
    kern.backward()
    assert_close(loss.item(), kern.item(), rtol=1e-5, atol=1e-6)
    assert_close(x.grad.numpy(), y.grad.numpy(), rtol=1e-4, atol=1e-7)


# ---- token log-probs ----------------------------------------------------------------

def logits_inputs(N=7, V=33, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(N, V, generator=g) * 2).to(dtype)
    t = torch.randint(0, V, (N,), generator=g)
    t[2] = -100
    return z, t


@needs_logprob
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_matches_torch(temperature):
    z, t = logits_inputs()
    x = z.clone().requires_grad_(True)
    lp, ent = ot.token_logprobs(x, t, temperature)
    g = torch.Generator().manual_seed(5)
    wl, we = torch.randn(7, generator=g), torch.randn(7, generator=g)
    ((lp * wl).sum() + (ent * we).sum()).backward()
    x64 = z.double().requires_grad_(True)
    ls = torch.log_softmax(x64 / temperature, -1)
    keep = t != -100
    lp64 = torch.where(keep, ls.gather(1, t.clamp(min=0)[:, None]).squeeze(1), torch.zeros(()).double())
    ent64 = torch.where(keep, -(ls.exp() * ls).sum(1), torch.zeros(()).double())
    ((lp64 * wl.double()).sum() + (ent64 * we.double()).sum()).backward()
    assert_close(lp.detach().numpy(), lp64.detach().numpy(), rtol=1e-5, atol=1e-5, what="logp")
    assert_close(ent.detach().numpy(), ent64.detach().numpy(), rtol=1e-5, atol=1e-5, what="entropy")
    assert_close(x.grad.numpy(), x64.grad.numpy(), rtol=1e-4, atol=1e-6, what="dlogits")
    assert np.all(x.grad.numpy()[2] == 0)
    fd_check(lambda v: (ot.token_logprobs(v, t, temperature)[0] * wl).sum()
             + (ot.token_logprobs(v, t, temperature)[1] * we).sum(), x)


@needs_logprob
def test_token_logprobs_only_logp_used_and_dtypes():
    z, t = logits_inputs(seed=1)
    x = z.double().requires_grad_(True)
    lp, _ = ot.token_logprobs(x, t)
    lp.sum().backward()  # entropy unused: its gradient is None inside the function
    assert x.grad.dtype == torch.float64
    y = z.double().requires_grad_(True)
    torch.log_softmax(y, -1).gather(1, t.clamp(min=0)[:, None]).squeeze(1)[t != -100].sum().backward()
    assert_close(x.grad.numpy(), y.grad.numpy(), rtol=1e-4, atol=1e-6)
    # non-contiguous input (a transposed copy viewed back)
    zt = z.t().contiguous().t()
    assert not zt.is_contiguous()
    assert_close(ot.token_logprobs(zt, t)[0].numpy(), ot.token_logprobs(z, t)[0].numpy(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="targets"):
        ot.token_logprobs(z, t[:-1])


@needs_logprob
def test_logprobs_into_ppo_end_to_end():
    """token_logprobs -> ppo_clip_loss, all in C, equals the torch formula."""
    B, T, V = 3, 6, 17
    g = torch.Generator().manual_seed(2)
    z = torch.randn(B * T, V, generator=g)
    tgt = torch.randint(0, V, (B * T,), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    adv = torch.tensor([1.0, -1.5, 0.4])
    with torch.no_grad():
        ref = torch.log_softmax(z + 0.3 * torch.randn(B * T, V, generator=g), -1).gather(1, tgt[:, None]).view(B, T)
    x = z.clone().requires_grad_(True)
    lp, _ = ot.token_logprobs(x, tgt)
    ot.ppo_clip_loss(lp.view(B, T), ref, adv, mask).backward()
    y = z.double().requires_grad_(True)
    lp64 = torch.log_softmax(y, -1).gather(1, tgt[:, None]).view(B, T)
    torch_ppo(lp64, ref.double(), adv.double(), mask).backward()
    assert_close(x.grad.numpy(), y.grad.numpy(), rtol=1e-4, atol=1e-6)


# ---- fused LM head ----------------------------------------------------------------------

@needs_fused
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_matches_torch(with_bias):
    N, d, V = 6, 8, 29
    g = torch.Generator().manual_seed(4)
    h = torch.randn(N, d, generator=g)
    W = torch.randn(V, d, generator=g) * 0.5
    b = torch.randn(V, generator=g) if with_bias else None
    t = torch.randint(0, V, (N,), generator=g)
    t[1] = -100
    wl, we = torch.randn(N, generator=g), torch.randn(N, generator=g)
    hx, Wx = h.clone().requires_grad_(True), W.clone().requires_grad_(True)
    bx = b.clone().requires_grad_(True) if with_bias else None
    lp, ent = ot.fused_linear_logprobs(hx, Wx, t, 0.8, bias=bx)
    ((lp * wl).sum() + (ent * we).sum()).backward()
    h64, W64 = h.double().requires_grad_(True), W.double().requires_grad_(True)
    b64 = b.double().requires_grad_(True) if with_bias else None
    z = h64 @ W64.T + (b64 if with_bias else 0)
    ls = torch.log_softmax(z / 0.8, -1)
    keep = t != -100
    lp64 = torch.where(keep, ls.gather(1, t.clamp(min=0)[:, None]).squeeze(1), torch.zeros(()).double())
    ent64 = torch.where(keep, -(ls.exp() * ls).sum(1), torch.zeros(()).double())
    ((lp64 * wl.double()).sum() + (ent64 * we.double()).sum()).backward()
    assert_close(lp.detach().numpy(), lp64.detach().numpy(), rtol=1e-5, atol=1e-5, what="logp")
    assert_close(hx.grad.numpy(), h64.grad.numpy(), rtol=1e-4, atol=1e-5, what="dhidden")
    assert_close(Wx.grad.numpy(), W64.grad.numpy(), rtol=1e-4, atol=1e-5, what="dweight")
    if with_bias:
        assert_close(bx.grad.numpy(), b64.grad.numpy(), rtol=1e-4, atol=1e-5, what="dbias")
    f = lambda v: (ot.fused_linear_logprobs(v, W, t, 0.8, bias=b)[0] * wl).sum()  # noqa: E731
    fd_check(f, _with_grad(h, f))


def _with_grad(x, fn):
    """A fresh leaf with the gradient of fn at x (for fd_check)."""
    y = x.detach().clone().requires_grad_(True)
    fn(y).backward()
    return y


@needs_fused
def test_fused_only_hidden_grad():
    N, d, V = 4, 5, 11
    h = torch.randn(N, d, requires_grad=True)
    W = torch.randn(V, d)
    t = torch.randint(0, V, (N,))
    lp, _ = ot.fused_linear_logprobs(h, W, t)
    lp.sum().backward()
    assert h.grad is not None and W.grad is None
    with pytest.raises(ValueError, match="hidden"):
        ot.fused_linear_logprobs(torch.randn(N, d + 1), W, t)


@needs_logprob
def test_logits_gradient_buffer_is_reused_only_when_free():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 300)).astype(np.float32)
    t = torch.from_numpy(rng.integers(0, 300, 6))
    w = torch.from_numpy(rng.standard_normal((6, 300)).astype(np.float32))

    def grad_of(scale):
        # logits produced by an op, as from an LM head: the gradient is consumed upstream
        leaf = torch.from_numpy(x).requires_grad_()
        logits = leaf * scale
        seen = {}
        logits.register_hook(lambda g: seen.update(ptr=g.data_ptr()))
        logp, ent = ot.token_logprobs(logits, t)
        (logp * w[:, 0]).sum().add((ent * 0.5).sum()).backward()
        return leaf.grad, seen["ptr"]

    ot.release_workspace()
    g1, p1 = grad_of(1.0)
    g2, p2 = grad_of(1.0)
    # the first gradient was consumed: the workspace's buffer again, no new N x V array
    assert p1 == p2 == ot._WORKSPACE._buf.ctypes.data
    assert torch.equal(g1, g2)
    # a gradient still held (a leaf's .grad is the returned tensor itself) is never overwritten
    leaf = torch.from_numpy(x.copy()).requires_grad_()
    logp, _ = ot.token_logprobs(leaf, t)
    logp.sum().backward()
    kept = leaf.grad.clone()
    g3, p3 = grad_of(2.0)
    assert torch.equal(leaf.grad, kept) and p3 != leaf.grad.data_ptr()
    want = o1pruner.token_logprobs_backward(x, t.numpy(), o1pruner.token_logprobs(x, t.numpy()).lse,
                                            np.ones(6, np.float32))
    assert_close(kept.numpy(), want, rtol=1e-6, atol=1e-7, what="held gradient")
    ot.release_workspace()
