"""Objectives family: sequence_logprobs (+ backward) and ppo_clip_loss, against
the float64 references, an independent transcription of the public O1-Pruner
loss, PyTorch implementations of the peers' formulas (TRL GRPOTrainer, verl
core_algos) with autograd, finite differences, PyTorch's kink conventions,
padding rows, layouts, bad input, leaks and thread counts."""

import concurrent.futures

import numpy as np
import pytest

import o1pruner
from o1pruner.kernels import slow as ref

from helpers import assert_close, layouts, leak_check

try:
    import torch
except ImportError:  # the peers' formulas need torch; everything else does not
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

TOKEN_AGGS = ["grpo", "bnpo", "dr_grpo", "token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]
MODES = [("sequence_mean", "mean"), ("sequence_mean", "sum")] + [("token", a) for a in TOKEN_AGGS]


# ---- data --------------------------------------------------------------------

def random_mask(rng, B, T, empty_rows=0, scattered=False):
    """Right-padded responses of random length (or scattered valid tokens);
    the first `empty_rows` rows fully masked."""
    if scattered:
        mask = rng.random((B, T)) < 0.7
        mask[np.arange(B), rng.integers(0, T, B)] = True
    else:
        lengths = rng.integers(1, T + 1, size=B)
        mask = np.arange(T)[None, :] < lengths[:, None]
    mask[:empty_rows] = False
    return mask


def kink_points(eps_low, eps_high, dual_clip, logratio_clamp=None):
    pts = [np.log(1 - eps_low), np.log(1 + eps_high)]
    if dual_clip is not None:
        pts.append(np.log(dual_clip))
    if logratio_clamp is not None:
        pts += [-logratio_clamp, logratio_clamp]
    return np.array(pts)


def random_batch(rng, B, T, eps_low=0.2, eps_high=0.2, dual_clip=None, spread=0.3, empty_rows=0,
                 scattered=False, seq_spread=0.15, logratio_clamp=None):
    """float32 logp, ref_logp, float64 advantages and a mask, with every token
    log-ratio and every sequence-mean log-ratio at least 1e-3 away from the
    kinks of the objective, so that finite differences and float32-vs-float64
    comparisons never straddle one."""
    mask = random_mask(rng, B, T, empty_rows, scattered)
    refl = rng.normal(-1.5, 1.0, size=(B, T)).astype(np.float32)
    x = rng.normal(0, spread, size=(B, T)) + rng.normal(0, seq_spread, size=(B, 1))
    kinks = kink_points(eps_low, eps_high, dual_clip, logratio_clamp)
    for _ in range(100):
        near = np.min(np.abs(x[..., None] - kinks), axis=-1) < 2e-3
        if not near.any():
            break
        x[near] += 0.013
    logp = (refl + x).astype(np.float32)
    # the sequence-mean log-ratios, computed as the kernel does
    for _ in range(100):
        d = ref.sequence_logprobs(logp, mask, "mean") - ref.sequence_logprobs(refl, mask, "mean")
        near = (np.min(np.abs(d[:, None] - kinks), axis=-1) < 2e-3) & mask.any(axis=1)
        if not near.any():
            break
        logp[near] = (logp[near].astype(np.float64) + 0.0137).astype(np.float32)
    adv = rng.normal(0, 1.0, size=B)
    return logp, refl, adv, mask


def run(logp, refl, adv, mask, ratio="sequence_mean", aggregate=None, **kw):
    return o1pruner.ppo_clip_loss(logp, refl, adv, mask, ratio=ratio, aggregate=aggregate, **kw)


# ---- sequence_logprobs -----------------------------------------------------------

@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_sequence_logprobs_matches_reference(rng, reduce):
    for B, T in [(1, 1), (1, 1000), (7, 33), (64, 17), (3, 4099)]:
        x = rng.normal(-2, 1, size=(B, T)).astype(np.float32)
        mask = random_mask(rng, B, T, empty_rows=min(1, B - 1), scattered=T % 2 == 1)
        got = o1pruner.sequence_logprobs(x, mask, reduce)
        assert got.dtype == np.float64 and got.shape == (B,)
        assert_close(got, ref.sequence_logprobs(x, mask, reduce), rtol=1e-13, atol=1e-13, what=f"{B}x{T}")
        g = rng.normal(size=B)
        gb = o1pruner.sequence_logprobs_backward(g, mask, reduce)
        assert gb.dtype == np.float32 and gb.shape == (B, T)
        assert_close(gb, ref.sequence_logprobs_backward(g, mask, reduce), rtol=1e-7, atol=0, what="backward")


def test_sequence_logprobs_fully_masked_rows_and_values():
    x = np.array([[-1.0, -2.0, -4.0], [5.0, np.nan, np.inf]], dtype=np.float32)
    mask = np.array([[1, 1, 0], [0, 0, 0]])
    assert o1pruner.sequence_logprobs(x, mask).tolist() == [-3.0, 0.0]
    assert o1pruner.sequence_logprobs(x, mask, "mean").tolist() == [-1.5, 0.0]
    gb = o1pruner.sequence_logprobs_backward([2.0, 7.0], mask, "mean")
    assert gb.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    # -inf is a valid log-prob: the sequence is impossible
    y = np.array([[-1.0, -np.inf]], dtype=np.float32)
    assert o1pruner.sequence_logprobs(y, [[1, 1]]).tolist() == [-np.inf]
    assert o1pruner.sequence_logprobs(y, [[1, 0]]).tolist() == [-1.0]


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_sequence_logprobs_backward_finite_differences(rng, reduce):
    # the map is linear: central differences with an exactly representable step
    B, T = 4, 9
    x = (rng.integers(-64, 0, size=(B, T)) / 16).astype(np.float32)
    mask = random_mask(rng, B, T, empty_rows=1, scattered=True)
    g = rng.normal(size=B)
    analytic = o1pruner.sequence_logprobs_backward(g, mask, reduce)
    h = 2.0 ** -6
    for b in range(B):
        for t in range(T):
            xp, xm = x.copy(), x.copy()
            xp[b, t] += h
            xm[b, t] -= h
            fp = g @ o1pruner.sequence_logprobs(xp, mask, reduce)
            fm = g @ o1pruner.sequence_logprobs(xm, mask, reduce)
            assert abs((fp - fm) / (2 * h) - analytic[b, t]) <= 1e-6 * (1 + abs(analytic[b, t]))


# ---- the public O1-Pruner loss ------------------------------------------------------

def public_code_loss(logp, ref_logp, weight, mask, cliprange=0.2):
    """A straight NumPy transcription of the public O1-Pruner trainer's
    compute_loss (wsft/trainer.py): length-normalised sequence log-probs,
    sequence ratio, PPO-clip, batch mean. float64."""
    mask = mask.astype(np.float64)
    valid_length = mask.sum(-1)
    all_logps = (logp.astype(np.float64) * mask).sum(-1) / valid_length
    all_ref_logps = (ref_logp.astype(np.float64) * mask).sum(-1) / valid_length
    ratio = np.exp(all_logps - all_ref_logps)
    pg_loss1 = -weight * ratio
    pg_loss2 = -weight * np.clip(ratio, 1.0 - cliprange, 1.0 + cliprange)
    return np.mean(np.maximum(pg_loss1, pg_loss2))


def test_default_is_the_public_o1pruner_loss(rng):
    for B, T in [(1, 1), (4, 50), (32, 300)]:
        logp, refl, adv, mask = random_batch(rng, B, T)
        res = o1pruner.ppo_clip_loss(logp, refl, adv, mask)
        want = public_code_loss(logp, refl, adv, mask)
        assert abs(res.loss - want) <= 1e-12 * (1 + abs(want)), (res.loss, want)
        # its gradient by central differences of the transcription (float64)
        lp64 = logp.astype(np.float64)
        h = 1e-6
        for b, t in [(i, j) for i in range(B) for j in range(T) if mask[i, j]][:40]:
            xp, xm = lp64.copy(), lp64.copy()
            xp[b, t] += h
            xm[b, t] -= h
            fd = (public_code_loss(xp, refl, adv, mask) - public_code_loss(xm, refl, adv, mask)) / (2 * h)
            assert abs(res.grad[b, t] - fd) <= 1e-6 * abs(fd) + 1e-9, (b, t, res.grad[b, t], fd)


@needs_torch
def test_public_loss_gradient_matches_torch_autograd(rng):
    logp, refl, adv, mask = random_batch(rng, 16, 200, seq_spread=0.4)
    lp = torch.tensor(logp, dtype=torch.float64, requires_grad=True)
    m = torch.tensor(mask, dtype=torch.float64)
    n = m.sum(-1)
    ratio = torch.exp((lp * m).sum(-1) / n - (torch.tensor(refl, dtype=torch.float64) * m).sum(-1) / n)
    w = torch.tensor(adv)
    loss = torch.mean(torch.max(-w * ratio, -w * torch.clamp(ratio, 0.8, 1.2)))
    loss.backward()
    res = o1pruner.ppo_clip_loss(logp, refl, adv, mask)
    assert abs(res.loss - loss.item()) <= 1e-12
    assert_close(res.grad, lp.grad.numpy(), rtol=1e-6, atol=1e-12, what="grad")
    assert res.stats.clip_fraction > 0  # the batch exercises both branches


# ---- the peers' formulas in PyTorch -----------------------------------------------------

def torch_trl(logp, refl, adv, mask, loss_type, eps_low=0.2, eps_high=0.2, dtype=None):
    """TRL GRPOTrainer's clipped surrogate with beta = 0 (its formula, written
    for this test): per-token ratio, -min(r A, clip(r) A), then the loss_type's
    normalisation (max_completion_length = T)."""
    dtype = dtype or torch.float64
    lp = torch.tensor(logp, dtype=dtype, requires_grad=True)
    cm = torch.tensor(mask, dtype=dtype)
    a = torch.tensor(adv, dtype=dtype)[:, None]
    coef_1 = torch.exp(lp - torch.tensor(refl, dtype=dtype))
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(coef_1 * a, coef_2 * a)
    if loss_type == "grpo":
        loss = ((per_token * cm).sum(-1) / cm.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * cm).sum() / cm.sum().clamp(min=1.0)
    else:  # dr_grpo
        loss = (per_token * cm).sum() / (per_token.size(0) * per_token.size(1))
    loss.backward()
    clipped = ((coef_1 < 1 - eps_low) & (a < 0)) | ((coef_1 > 1 + eps_high) & (a > 0))
    clip_frac = (clipped * cm).sum() / cm.sum()
    return loss.item(), lp.grad.numpy(), clip_frac.item()


def torch_verl(logp, refl, adv, mask, agg, eps_low=0.2, eps_high=0.2, clip_ratio_c=3.0, dtype=None):
    """verl's vanilla PPO policy loss (its formula, written for this test):
    log-ratio clamped to [-20, 20], ratio clip, dual clip for A < 0, agg_loss."""
    dtype = dtype or torch.float64
    lp = torch.tensor(logp, dtype=dtype, requires_grad=True)
    m = torch.tensor(mask, dtype=dtype)
    a = torch.tensor(adv, dtype=dtype)[:, None].expand(lp.shape)
    neg_kl = torch.clamp(lp - torch.tensor(refl, dtype=dtype), min=-20.0, max=20.0)
    ratio = torch.exp(neg_kl)
    masked_mean = lambda v: (v * m).sum() / m.sum()
    ppo_kl = masked_mean(-neg_kl)
    l1 = -a * ratio
    l2 = -a * torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    lmax = torch.maximum(l1, l2)
    clipfrac = masked_mean(torch.gt(l2, l1).to(dtype))
    l3 = -a * clip_ratio_c
    lmin = torch.min(l3, lmax)
    clipfrac_lower = masked_mean(torch.gt(lmax, l3).to(dtype) * (a < 0).to(dtype))
    pg = torch.where(a < 0, lmin, lmax)
    if agg == "token-mean":
        loss = masked_mean(pg)
    elif agg == "seq-mean-token-sum":
        loss = torch.mean(torch.sum(pg * m, dim=-1))
    else:  # seq-mean-token-mean
        loss = torch.mean(torch.sum(pg * m, dim=-1) / torch.sum(m, dim=-1))
    loss.backward()
    return loss.item(), lp.grad.numpy(), clipfrac.item(), ppo_kl.item(), clipfrac_lower.item()


@needs_torch
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo"])
@pytest.mark.parametrize("eps", [(0.2, 0.2), (0.2, 0.28)])
def test_token_modes_reproduce_trl(rng, loss_type, eps):
    logp, refl, adv, mask = random_batch(rng, 12, 300, eps_low=eps[0], eps_high=eps[1], empty_rows=1)
    res = run(logp, refl, adv, mask, "token", loss_type, eps_low=eps[0], eps_high=eps[1])
    for dtype, tol in ((torch.float64, 2e-7), (torch.float32, 1e-5)):
        loss, grad, clip_frac = torch_trl(logp, refl, adv, mask, loss_type, *eps, dtype=dtype)
        assert abs(res.loss - loss) <= tol * (1 + abs(loss)), (dtype, res.loss, loss)
        assert_close(res.grad, grad, rtol=tol * 5, atol=tol * 5 * np.abs(grad).max(), what=str(dtype))
        assert abs(res.stats.clip_fraction - clip_frac) < 1e-6  # a float32 mean in torch
    assert 0 < res.stats.clip_fraction < 1


@needs_torch
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_token_modes_reproduce_verl(rng, agg):
    # large log-ratios so that the log-ratio clamp and the dual clip both act
    logp, refl, adv, mask = random_batch(rng, 12, 300, dual_clip=3.0, spread=1.5)
    logp[0, :5] = refl[0, :5] + 25.0  # beyond the clamp at 20
    logp[1, :5] = refl[1, :5] - 25.0
    adv[0], adv[1] = -0.7, 0.9
    res = run(logp, refl, adv, mask, "token", agg, dual_clip=3.0, logratio_clamp=20.0)
    for dtype, tol in ((torch.float64, 2e-7), (torch.float32, 1e-5)):
        loss, grad, clipfrac, ppo_kl, clipfrac_lower = torch_verl(logp, refl, adv, mask, agg, dtype=dtype)
        assert abs(res.loss - loss) <= tol * (1 + abs(loss)), (dtype, res.loss, loss)
        assert_close(res.grad, grad, rtol=tol * 5, atol=tol * 5 * np.abs(grad).max(), what=str(dtype))
        assert abs(res.stats.clip_fraction - clipfrac) < 1e-6  # float32 means in torch
        assert abs(res.stats.dual_clip_fraction - clipfrac_lower) < 1e-6
        assert abs(res.stats.approx_kl - ppo_kl) <= tol * (1 + abs(ppo_kl))
    assert res.stats.dual_clip_fraction > 0 and res.stats.ratio_max == pytest.approx(np.exp(20.0), rel=1e-6)


# ---- against the float64 references, finite differences ---------------------------------

CONFIGS = [
    dict(),
    dict(eps_low=0.1, eps_high=0.3),
    dict(dual_clip=3.0),
    dict(logratio_clamp=0.5),
    dict(eps_low=0.2, eps_high=0.28, dual_clip=1.5, logratio_clamp=1.0),
]


@pytest.mark.parametrize("ratio, aggregate", MODES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_matches_reference(rng, ratio, aggregate, cfg):
    for B, T, empty in [(1, 1, 0), (1, 257, 0), (5, 40, 1), (33, 65, 3)]:
        logp, refl, adv, mask = random_batch(rng, B, T, cfg.get("eps_low", 0.2), cfg.get("eps_high", 0.2),
                                             cfg.get("dual_clip"), spread=0.6, empty_rows=empty,
                                             scattered=B % 2 == 1, logratio_clamp=cfg.get("logratio_clamp"))
        adv[-1] = 0.0 if B > 2 else adv[-1]
        res = run(logp, refl, adv, mask, ratio, aggregate, **cfg)
        loss, grad, stats = ref.ppo_clip_loss(logp, refl, adv, mask, ratio=ratio, aggregate=aggregate, **cfg)
        # bound on |loss| terms: float32 token losses carry ~3e-7 relative error each
        x = np.where(mask, logp.astype(np.float64) - refl, 0.0)
        terms = np.abs(adv).max() * np.exp(np.abs(x).max()) * {"seq-mean-token-sum": T, "sum": B}.get(aggregate, 1)
        tol = 1e-12 if ratio == "sequence_mean" else 1e-6
        assert abs(res.loss - loss) <= tol * (1 + terms), (B, T, res.loss, loss)
        assert res.grad.dtype == np.float32 and res.grad.shape == (B, T)
        assert_close(res.grad, grad, rtol=2e-6, atol=1e-6 * np.abs(grad).max(), what=f"{B}x{T}")
        for k in ("clip_fraction", "dual_clip_fraction", "count"):
            assert getattr(res.stats, k) == pytest.approx(stats[k], abs=1e-12), k
        for k in ("approx_kl", "ratio_mean", "ratio_min", "ratio_max"):
            assert getattr(res.stats, k) == pytest.approx(stats[k], rel=1e-6, abs=1e-7), k


@pytest.mark.parametrize("ratio, aggregate", MODES)
@pytest.mark.parametrize("cfg", CONFIGS[1:], ids=["eps", "dual", "clamp", "all"])
def test_reference_gradient_central_differences(rng, ratio, aggregate, cfg):
    """The float64 reference's gradient is the derivative of its loss (central
    differences away from the kinks); the kernel matches the reference above."""
    B, T = 4, 6
    logp, refl, adv, mask = random_batch(rng, B, T, cfg.get("eps_low", 0.2), cfg.get("eps_high", 0.2),
                                         cfg.get("dual_clip"), spread=0.6, empty_rows=1, scattered=True,
                                         logratio_clamp=cfg.get("logratio_clamp"))
    lp = logp.astype(np.float64)
    f = lambda x: ref.ppo_clip_loss(x, refl, adv, mask, ratio=ratio, aggregate=aggregate, **cfg)[0]
    _, grad, _ = ref.ppo_clip_loss(lp, refl, adv, mask, ratio=ratio, aggregate=aggregate, **cfg)
    h = 1e-6
    for b in range(B):
        for t in range(T):
            xp, xm = lp.copy(), lp.copy()
            xp[b, t] += h
            xm[b, t] -= h
            fd = (f(xp) - f(xm)) / (2 * h)
            assert abs(fd - grad[b, t]) <= 1e-7 + 1e-6 * abs(fd), (b, t, fd, grad[b, t])
    res = run(logp, refl, adv, mask, ratio, aggregate, **cfg)
    assert_close(res.grad, grad, rtol=2e-6, atol=1e-7, what="kernel vs reference")


def test_kernel_central_differences_float32(rng):
    # the kernel itself, loss vs gradient, with a step float32 can resolve
    logp, refl, adv, mask = random_batch(rng, 3, 5, spread=0.6)
    for ratio, aggregate in [("sequence_mean", "mean"), ("token", "grpo"), ("token", "token-mean")]:
        res = run(logp, refl, adv, mask, ratio, aggregate)
        h = 2.0 ** -10
        for b, t in zip(*np.nonzero(mask)):
            xp, xm = logp.copy(), logp.copy()
            xp[b, t] += h
            xm[b, t] -= h
            fd = (run(xp, refl, adv, mask, ratio, aggregate).loss - run(xm, refl, adv, mask, ratio, aggregate).loss) / (2 * h)
            assert abs(fd - res.grad[b, t]) <= 2e-3 * abs(fd) + 1e-5, (ratio, b, t, fd, res.grad[b, t])


# ---- kinks: PyTorch's conventions --------------------------------------------------------

@needs_torch
def test_torch_conventions_at_kinks():
    """What the kernel assumes of PyTorch (checked against the installed torch,
    2.13 here): max/min ties split the gradient in halves, clamp passes it on
    its inclusive range."""
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = torch.tensor([1.0, 1.0, 4.0], requires_grad=True)
    torch.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 1.0, 0.0] and b.grad.tolist() == [0.5, 0.0, 1.0]
    for fn in (torch.minimum, torch.min):
        a.grad = b.grad = None
        fn(a, b).sum().backward()
        assert a.grad.tolist() == [0.5, 0.0, 1.0] and b.grad.tolist() == [0.5, 1.0, 0.0]
    x = torch.tensor([0.8, 1.2, 0.79, 1.21, 1.0], requires_grad=True)
    torch.clamp(x, 0.8, 1.2).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]


def token_ratio_of(x, **kw):
    """The kernel's float32 ratio for a single token of log-ratio x."""
    res = run(np.array([[x]], np.float32), np.zeros((1, 1), np.float32), [1.0], [[1]], "token", **kw)
    return np.float32(res.stats.ratio_max)


def find_token_logratio(target, **kw):
    """A float32 log-ratio whose kernel ratio is exactly float32(target)."""
    x0, want = np.float32(np.log(target)), np.float32(target)
    up = down = x0
    for _ in range(300):
        for x in (up, down):
            if token_ratio_of(x, **kw) == want:
                return x
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
    pytest.skip(f"no float32 log-ratio maps exactly to {target}")


def find_sequence_logratio(target, **kw):
    """A float64 mean log-ratio d whose kernel (double) ratio is exactly target."""
    d = np.log(target)
    for k in range(300):
        for cand in (d + k * np.spacing(d), d - k * np.spacing(d)):
            res = run(np.zeros((1, 1), np.float32), np.array([-cand]), [1.0], [[1]], **kw)
            if res.stats.ratio_max == target:
                return cand
    pytest.skip(f"no float64 log-ratio maps exactly to {target}")


def torch_loss_from_ratio(r, A, eps_low, eps_high, dual_clip, dtype):
    """PyTorch's loss and d loss / d r with r itself the leaf (so that exp
    implementations cannot differ): the kink rules alone decide."""
    rt = torch.tensor(r, dtype=dtype, requires_grad=True)
    At = torch.tensor(A, dtype=dtype)
    loss = torch.maximum(-At * rt, -At * torch.clamp(rt, 1 - eps_low, 1 + eps_high))
    if dual_clip is not None and A < 0:
        loss = torch.min(-At * dual_clip, loss)
    loss.backward()
    return loss.item(), rt.grad.item()


@needs_torch
@pytest.mark.parametrize("A", [0.7, -0.7])
@pytest.mark.parametrize("where, eps_low, eps_high, dual_clip", [
    ("lo", 0.2, 0.2, None), ("hi", 0.2, 0.2, None), ("hi", 0.2, 0.28, None),
    ("dual", 0.2, 0.5, 1.25),  # r == c3 inside the clip range: the dual-clip min ties
])
def test_kinks_follow_torch(A, where, eps_low, eps_high, dual_clip):
    target = {"lo": 1 - eps_low, "hi": 1 + eps_high, "dual": dual_clip}[where]
    kw = dict(eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip)
    # token ratio: float32, the kernel's r is exactly float32(target)
    x = find_token_logratio(target, **kw)
    r = float(token_ratio_of(x, **kw))
    res = run(np.array([[x]], np.float32), np.zeros((1, 1), np.float32), [A], [[1]], "token", **kw)
    loss, dldr = torch_loss_from_ratio(r, A, eps_low, eps_high, dual_clip, torch.float32)
    assert res.loss == pytest.approx(loss, rel=1e-7)
    assert res.grad[0, 0] == pytest.approx(dldr * r, rel=1e-6)
    # sequence ratio: float64
    d = find_sequence_logratio(target, **kw)
    res = run(np.zeros((1, 1), np.float32), np.array([-d]), [A], [[1]], **kw)
    loss, dldr = torch_loss_from_ratio(target, A, eps_low, eps_high, dual_clip, torch.float64)
    assert res.loss == pytest.approx(loss, rel=1e-12)
    assert res.grad[0, 0] == pytest.approx(dldr * target, rel=1e-7)
    if where == "dual" and A < 0:
        assert dldr == pytest.approx(-A / 2)  # the tie: half


@needs_torch
def test_ratio_one_and_logratio_clamp_boundary_follow_torch():
    # logp == ref: r == 1 exactly, the two branches tie: the whole gradient
    logp = np.full((2, 3), -1.25, np.float32)
    adv = np.array([0.5, -2.0])
    mask = np.ones((2, 3))
    for agg in ("grpo", "bnpo", "dr_grpo"):
        res = run(logp, logp, adv, mask, "token", agg)
        loss, grad, _ = torch_trl(logp, logp, adv, mask, agg, dtype=torch.float32)
        assert res.loss == pytest.approx(loss, rel=1e-7)
        assert_close(res.grad, grad, rtol=1e-7, atol=0, what=agg)
    res = run(logp, logp, adv, mask)
    assert_close(res.grad, -adv[:, None] / 6 * mask, rtol=1e-7, atol=0)
    # log-ratio exactly at the clamp bound passes the gradient; beyond it does not
    for x, passes in ((20.0, True), (np.nextafter(np.float32(20), np.float32(21)), False)):
        lp = np.array([[x]], np.float32)
        res = run(lp, np.zeros((1, 1), np.float32), [-1.0], [[1]], "token", logratio_clamp=20.0)
        lt = torch.tensor([[x]], dtype=torch.float32, requires_grad=True)
        r = torch.exp(torch.clamp(lt, -20.0, 20.0))
        torch.maximum(r, torch.clamp(r, 0.8, 1.2)).sum().backward()
        assert (res.grad[0, 0] != 0) == passes
        assert res.grad[0, 0] == pytest.approx(lt.grad.item(), rel=1e-6)


def test_zero_advantage_and_overflowing_ratio():
    # a log-ratio of 100 overflows the float32 ratio (e^100 > 3.4e38)
    lp = np.array([[100.0, 0.0]], np.float32)
    refl = np.zeros((1, 2), np.float32)
    mask = np.ones((1, 2))
    res = run(lp, refl, [0.0], mask, "token")
    assert res.loss == 0.0 and np.all(res.grad == 0)  # PyTorch: NaN (0 * inf)
    res = run(lp, refl, [1.0], mask, "token")  # A > 0: clipped at 1.2, no gradient
    assert np.isfinite(res.loss) and res.grad[0, 0] == 0.0 and np.isfinite(res.grad).all()
    res = run(lp, refl, [-1.0], mask, "token")  # A < 0: the unclipped branch is inf
    assert res.loss == np.inf and res.grad[0, 0] == np.inf
    res = run(lp, refl, [-1.0], mask, "token", logratio_clamp=20.0, dual_clip=3.0)
    assert res.loss == pytest.approx(0.5 * (3.0 + 1.0)) and res.grad[0, 0] == 0.0
    res = run(lp, refl, [0.0], mask)
    assert res.loss == 0.0 and np.all(res.grad == 0)


def test_token_sums_near_float_max_do_not_overflow():
    # float32 ratios near FLT_MAX (log-ratio 88, no clamp): the per-lane float
    # sums of a block overflow, the double sums do not; tokens 0 and 64 share
    # a lane, and the row is long enough for several blocks
    T = 3000
    lp = np.zeros((2, T), np.float32)
    lp[0, [0, 64, 2000]] = 88.0
    refl = np.zeros((2, T), np.float32)
    mask = np.ones((2, T), bool)
    mask[1, T // 2:] = False
    for agg in ("token-mean", "seq-mean-token-sum"):
        res = run(lp, refl, [-1.0, 0.5], mask, "token", agg)
        loss, grad, stats = ref.ppo_clip_loss(lp, refl, [-1.0, 0.5], mask, ratio="token", aggregate=agg)
        assert np.isfinite(res.loss) and res.loss == pytest.approx(loss, rel=1e-6), (agg, res.loss, loss)
        assert res.stats.ratio_mean == pytest.approx(stats["ratio_mean"], rel=1e-6)
        assert res.stats.ratio_max == pytest.approx(stats["ratio_max"], rel=1e-6)
        assert_close(res.grad, grad, rtol=2e-6, atol=1e-6 * np.abs(grad).max(), what=agg)
    # a non-finite input in such a block is still found
    lp[0, 5] = np.nan
    with pytest.raises(ValueError, match="logp"):
        run(lp, refl, [-1.0, 0.5], mask, "token")


# ---- fully masked rows ---------------------------------------------------------------------

@pytest.mark.parametrize("ratio, aggregate", MODES)
@pytest.mark.parametrize("cfg", [dict(), dict(dual_clip=2.0, logratio_clamp=1.0)], ids=["plain", "dual+clamp"])
def test_fully_masked_rows_contribute_nothing(rng, ratio, aggregate, cfg):
    logp, refl, adv, mask = random_batch(rng, 9, 31, empty_rows=3, dual_clip=cfg.get("dual_clip"),
                                         logratio_clamp=cfg.get("logratio_clamp"))
    logp[:3] = np.nan  # ignored where masked
    refl[:3] = -np.inf
    res = run(logp, refl, adv, mask, ratio, aggregate, **cfg)
    assert np.isfinite(res.loss) and np.isfinite(res.grad).all()
    assert np.all(res.grad[:3] == 0)
    sub = run(logp[3:], refl[3:], adv[3:], mask[3:], ratio, aggregate, **cfg)
    # aggregates that divide by B count the padding rows in B
    factor = 6 / 9 if aggregate in ("mean", "grpo", "seq-mean-token-mean", "seq-mean-token-sum", "dr_grpo") else 1.0
    assert res.loss == pytest.approx(sub.loss * factor, rel=1e-6)
    assert_close(res.grad[3:], sub.grad * factor, rtol=1e-6, atol=1e-9)
    assert res.stats.count == sub.stats.count
    for k in ("clip_fraction", "approx_kl", "ratio_mean", "ratio_min", "ratio_max"):
        assert getattr(res.stats, k) == pytest.approx(getattr(sub.stats, k), rel=1e-6)
    # all rows masked: everything 0, no NaN, ratio statistics 1
    empty = run(logp, refl, adv, np.zeros_like(mask), ratio, aggregate, **cfg)
    assert empty.loss == 0.0 and np.all(empty.grad == 0)
    assert empty.stats == o1pruner.PPOStats(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0)


def test_per_sequence_reference_equals_token_reference(rng):
    logp, refl, adv, mask = random_batch(rng, 17, 90, empty_rows=2)
    a = o1pruner.ppo_clip_loss(logp, refl, adv, mask, dual_clip=2.0)
    mean_ref = o1pruner.sequence_logprobs(refl, mask, "mean")
    b = o1pruner.ppo_clip_loss(logp, mean_ref, adv, mask, dual_clip=2.0)
    assert a.loss == b.loss and np.array_equal(a.grad, b.grad) and a.stats == b.stats


# ---- layouts, dtypes, inputs not modified, threads ------------------------------------------

def test_layouts_and_dtypes(rng):
    logp, refl, adv, mask = random_batch(rng, 6, 20, empty_rows=1)
    for ratio, agg in (("sequence_mean", None), ("token", "grpo")):
        want = run(logp, refl, adv, mask, ratio, agg)
        for name, arr in layouts(logp):
            got = run(arr, refl, adv, mask, ratio, agg)
            assert got.loss == want.loss and np.array_equal(got.grad, want.grad), name
        for name, arr in layouts(refl):
            got = run(logp, arr, adv, mask, ratio, agg)
            assert got.loss == want.loss and np.array_equal(got.grad, want.grad), name
        for name, arr in list(layouts(mask.astype(np.float32))) + list(layouts(mask)):
            got = run(logp, refl, adv, arr, ratio, agg)
            assert got.loss == want.loss and np.array_equal(got.grad, want.grad), name
        for m in (mask.astype(np.int8), mask.astype(np.uint64), mask.tolist()):
            got = run(logp, refl, adv, m, ratio, agg)
            assert got.loss == want.loss and np.array_equal(got.grad, want.grad)
        got = run(logp.astype(np.float16).astype(np.float32), refl, list(adv), mask, ratio, agg)
        assert np.isfinite(got.loss)
        got = run(logp.tolist(), refl.tolist(), adv.astype(np.float32), mask, ratio, agg)
        want32 = run(logp, refl, adv.astype(np.float32).astype(np.float64), mask, ratio, agg)
        assert got.loss == want32.loss
    g = rng.normal(size=6)
    for name, arr in layouts(logp):
        assert np.array_equal(o1pruner.sequence_logprobs(arr, mask), o1pruner.sequence_logprobs(logp, mask)), name
    for name, arr in layouts(mask.astype(np.float64)):
        assert np.array_equal(o1pruner.sequence_logprobs_backward(g, arr, "mean"),
                              o1pruner.sequence_logprobs_backward(g, mask, "mean")), name


def test_inputs_not_modified(rng):
    logp, refl, adv, mask = random_batch(rng, 5, 30, empty_rows=1)
    copies = [x.copy() for x in (logp, refl, adv, mask)]
    for ratio, agg in MODES:
        run(logp, refl, adv, mask, ratio, agg, dual_clip=2.0, logratio_clamp=3.0)
    o1pruner.sequence_logprobs(logp, mask, "mean")
    o1pruner.sequence_logprobs_backward(adv, mask, "mean")
    for x, c in zip((logp, refl, adv, mask), copies):
        assert np.array_equal(x, c)


def test_results_identical_for_one_and_two_threads(rng):
    n0 = o1pruner.get_num_threads()
    logp, refl, adv, mask = random_batch(rng, 40, 4096, empty_rows=2)  # above the threading threshold
    outs = {}
    try:
        for nt in (1, 2):
            o1pruner.set_num_threads(nt)
            outs[nt] = [run(logp, refl, adv, mask, r, a, dual_clip=3.0, logratio_clamp=20.0) for r, a in MODES]
            outs[nt].append(o1pruner.sequence_logprobs(logp, mask, "mean"))
            outs[nt].append(o1pruner.sequence_logprobs_backward(adv, mask, "mean"))
    finally:
        o1pruner.set_num_threads(n0)
    for a, b in zip(outs[1], outs[2]):
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b)
        else:
            assert a.loss == b.loss and np.array_equal(a.grad, b.grad) and a.stats == b.stats


def test_concurrent_calls_from_python_threads(rng):
    # the GIL is released during compute: calls from several threads stay correct
    batches = [random_batch(rng, 16, 2048) for _ in range(4)]
    want = [run(*b, "token", "grpo") for b in batches]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda b: run(*b, "token", "grpo"), batches * 3))
    for i, g in enumerate(got):
        assert g.loss == want[i % 4].loss and np.array_equal(g.grad, want[i % 4].grad)


def test_result_types():
    res = o1pruner.ppo_clip_loss(np.zeros((2, 2)), np.zeros((2, 2)), [1.0, 1.0], np.ones((2, 2)))
    assert isinstance(res, o1pruner.PPOClipResult) and isinstance(res.stats, o1pruner.PPOStats)
    assert isinstance(res.loss, float) and isinstance(res.stats.count, int)
    loss, grad, stats = res
    assert grad.dtype == np.float32 and grad.flags.c_contiguous


# ---- bad input -----------------------------------------------------------------------------

B_, T_ = 3, 4
GOOD = dict(logp=np.zeros((B_, T_), np.float32), ref_logp=np.zeros((B_, T_), np.float32),
            advantages=np.ones(B_), mask=np.ones((B_, T_), bool))


def with_(**kw):
    d = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in GOOD.items()}
    for k, v in kw.items():
        if callable(v):
            v(d)
        else:
            d[k] = v
    return d


def setitem(name, idx, value):
    def f(d):
        d[name] = d[name].astype(np.float32 if name != "advantages" else np.float64)
        d[name][idx] = value
    return f


@pytest.mark.parametrize("kwargs, exc, match", [
    (with_(logp=np.zeros(4, np.float32)), ValueError, "logp"),
    (with_(logp=np.zeros((3, 4), np.int32)), TypeError, "logp"),
    (with_(logp=np.zeros((3, 4), object)), TypeError, "logp"),
    (with_(logp=None), TypeError, "logp"),
    (with_(logp=np.zeros((0, 4), np.float32), mask=np.ones((0, 4))), ValueError, "logp"),
    (with_(logp=np.zeros((3, 0), np.float32), mask=np.ones((3, 0))), ValueError, "logp"),
    (with_(logp=setitem("logp", (1, 2), np.nan)), ValueError, r"logp: NaN at valid position \(b=1, t=2\)"),
    (with_(logp=setitem("logp", (2, 0), -np.inf)), ValueError, r"logp: -inf .*ratio 0"),
    (with_(logp=setitem("logp", (0, 3), np.inf)), ValueError, r"logp: \+inf"),
    (with_(mask=np.ones((3, 5))), ValueError, "mask"),
    (with_(mask=np.full((3, 4), 2)), ValueError, "mask"),
    (with_(mask=np.full((3, 4), "a")), TypeError, "mask"),
    (with_(ref_logp=np.zeros((3, 5), np.float32)), ValueError, "ref_logp.*logp"),
    (with_(ref_logp=np.zeros((3, 4, 1), np.float32)), ValueError, "ref_logp"),
    (with_(ref_logp=np.zeros(2)), ValueError, "ref_logp"),
    (with_(ref_logp=np.array([0.0, np.nan, 0.0])), ValueError, "ref_logp"),
    (with_(ref_logp=np.array([0.0, -np.inf, 0.0])), ValueError, "ref_logp"),
    (with_(ref_logp=np.zeros(3), ratio="token"), ValueError, "ref_logp.*token"),
    (with_(ref_logp=setitem("ref_logp", (1, 1), -np.inf)), ValueError, r"ref_logp: -inf .*infinite"),
    (with_(ref_logp=setitem("ref_logp", (1, 1), np.nan), ratio="token"), ValueError, "ref_logp: NaN"),
    (with_(ref_logp=np.zeros((3, 4), np.int64)), TypeError, "ref_logp"),
    (with_(advantages=np.ones(4)), ValueError, "advantages.*logp"),
    (with_(advantages=np.ones((3, 1))), ValueError, "advantages"),
    (with_(advantages=setitem("advantages", 1, np.nan)), ValueError, "advantages"),
    (with_(advantages=setitem("advantages", 1, np.inf)), ValueError, "advantages"),
    (with_(advantages=["a", "b", "c"]), TypeError, "advantages"),
    (with_(advantages=np.zeros(3, complex)), TypeError, "advantages"),
    (with_(eps_low=0.0), ValueError, "eps_low"),
    (with_(eps_low=1.0), ValueError, "eps_low"),
    (with_(eps_low=float("nan")), ValueError, "eps_low"),
    (with_(eps_low="0.2"), TypeError, "eps_low"),
    (with_(eps_high=-0.1), ValueError, "eps_high"),
    (with_(eps_high=1.5), ValueError, "eps_high"),
    (with_(eps_high=True), TypeError, "eps_high"),
    (with_(dual_clip=1.0), ValueError, "dual_clip"),
    (with_(dual_clip=0.5), ValueError, "dual_clip"),
    (with_(dual_clip=float("inf")), ValueError, "dual_clip"),
    (with_(dual_clip="3"), TypeError, "dual_clip"),
    (with_(logratio_clamp=0.0), ValueError, "logratio_clamp"),
    (with_(logratio_clamp=-20.0), ValueError, "logratio_clamp"),
    (with_(logratio_clamp=float("nan")), ValueError, "logratio_clamp"),
    (with_(ratio="sequence"), ValueError, "ratio.*sequence_mean.*token"),
    (with_(ratio=None), ValueError, "ratio"),
    (with_(ratio=1), TypeError, "ratio"),
    (with_(aggregate="dapo"), ValueError, "aggregate.*grpo"),
    (with_(aggregate=1), TypeError, "aggregate"),
    (with_(aggregate="grpo"), ValueError, "aggregate.*ratio='token'"),
    (with_(aggregate="mean", ratio="token"), ValueError, "aggregate.*ratio='sequence_mean'"),
])
def test_ppo_clip_loss_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        o1pruner.ppo_clip_loss(**kwargs)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: o1pruner.sequence_logprobs(np.zeros(3, np.float32), np.ones(3)), ValueError, "token_logp"),
    (lambda: o1pruner.sequence_logprobs(np.zeros((2, 3)), np.ones((2, 4))), ValueError, "mask"),
    (lambda: o1pruner.sequence_logprobs(np.zeros((2, 3), int), np.ones((2, 3))), TypeError, "token_logp"),
    (lambda: o1pruner.sequence_logprobs(np.zeros((0, 3)), np.ones((0, 3))), ValueError, "token_logp"),
    (lambda: o1pruner.sequence_logprobs([[0.0, np.nan]], [[1, 1]]), ValueError, r"token_logp: NaN .*t=1"),
    (lambda: o1pruner.sequence_logprobs([[0.0, np.inf]], [[1, 1]]), ValueError, r"token_logp: \+inf"),
    (lambda: o1pruner.sequence_logprobs([[-np.inf, np.inf]], [[1, 1]]), ValueError, "token_logp"),
    (lambda: o1pruner.sequence_logprobs([[0.0]], [[1]], reduce="max"), ValueError, "reduce.*sum.*mean"),
    (lambda: o1pruner.sequence_logprobs([[0.0]], [[0.5]]), ValueError, "mask"),
    (lambda: o1pruner.sequence_logprobs_backward([1.0], np.ones((2, 3))), ValueError, "grad.*mask"),
    (lambda: o1pruner.sequence_logprobs_backward([np.nan, 1.0], np.ones((2, 3))), ValueError, "grad"),
    (lambda: o1pruner.sequence_logprobs_backward(["a", "b"], np.ones((2, 3))), TypeError, "grad"),
    (lambda: o1pruner.sequence_logprobs_backward([1.0, 1.0], np.ones(3)), ValueError, "mask"),
    (lambda: o1pruner.sequence_logprobs_backward([1.0], np.ones((1, 0))), ValueError, "mask"),
    (lambda: o1pruner.sequence_logprobs_backward([1.0], np.ones((1, 2)), "avg"), ValueError, "reduce"),
])
def test_sequence_logprobs_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- leaks ---------------------------------------------------------------------------------

def test_objectives_no_leak(rng):
    logp, refl, adv, mask = random_batch(rng, 8, 64, empty_rows=1)
    bad_logp = logp.copy()
    bad_logp[3, 0] = np.nan

    def calls():
        for ratio, agg in (("sequence_mean", None), ("token", "grpo"), ("token", "token-mean")):
            run(logp, refl, adv, mask, ratio, agg, dual_clip=3.0)
        o1pruner.ppo_clip_loss(logp, refl[:, 0].astype(np.float64), adv, mask)
        o1pruner.sequence_logprobs(logp, mask, "mean")
        o1pruner.sequence_logprobs_backward(adv, mask, "mean")
        for bad in (lambda: run(bad_logp, refl, adv, mask, "token", None),
                    lambda: run(logp, refl, adv[:-1], mask),
                    lambda: run(logp, refl[:, 0], adv, mask, "token", None),
                    lambda: run(logp, refl, adv, mask, "token", "mean"),
                    lambda: o1pruner.sequence_logprobs(bad_logp, mask)):
            try:
                bad()
            except ValueError:
                pass

    leak_check(calls, n=1500)
