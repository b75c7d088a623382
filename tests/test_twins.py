"""One generic test of the kernels' twins (style.md point 18; bottleneck's
``bn.slow``): each function of ``o1pruner.kernels.slow`` (NumPy, float64) is
called with the same arguments as its namesake in ``o1pruner`` (the C core)
and, where one exists, in ``o1pruner.kernels.torch``; the outputs must agree,
and the torch twins' autograd gradients must equal the slow backward.

The family tests (test_rewards.py, test_logprobs.py, test_objectives.py,
test_fused.py) go further per kernel: bad input, layouts, extreme values,
finite differences. This test is what says the three forms are one function.
"""

import numpy as np
import pytest

import o1pruner
from o1pruner.kernels import slow

from helpers import assert_close

try:
    import torch

    import o1pruner.kernels.torch as tw
except ImportError:  # the torch extra is optional
    torch = tw = None


def _ppo(ratio, aggregate=None, **kw):
    def make(rng):
        B, T = 5, 9
        logp = (-rng.random((B, T)) * 3).astype(np.float32)
        ref = (logp + rng.random((B, T)) * 0.9 - 0.5).astype(np.float32)
        adv = rng.standard_normal(B)
        adv[1] = 0.0
        mask = rng.random((B, T)) < 0.8
        mask[:, 0] = True
        mask[3] = False  # a padding row
        return (logp, ref, adv, mask), dict(ratio=ratio, aggregate=aggregate, **kw)
    return make


def _dpo(**kw):
    def make(rng):
        B, Tc, Tr = 6, 7, 11
        c = (-rng.random((B, Tc)) * 2).astype(np.float32)
        r = (-rng.random((B, Tr)) * 2).astype(np.float32)
        mc = np.arange(Tc)[None, :] < rng.integers(1, Tc + 1, B)[:, None]
        mr = rng.random((B, Tr)) < 0.7
        mr[:, 0] = True
        mc[4] = mr[4] = False  # a padding pair
        c[~mc] = np.nan        # never read
        ref_c = rng.normal(-4, 2, B)
        ref_r = rng.normal(-6, 2, B)
        return (c, r, ref_c, ref_r, mc, mr), dict(**kw)
    return make


def _logits(rng, N=12, V=17):
    t = rng.integers(0, V, N)
    t[3] = -100
    return (rng.standard_normal((N, V)) * 2).astype(np.float32), t


def _fused(rng, bias):
    N, d, V = 10, 8, 13
    t = rng.integers(0, V, N)
    t[2] = -100
    h = rng.standard_normal((N, d)).astype(np.float32)
    w = (rng.standard_normal((V, d)) * 0.5).astype(np.float32)
    b = (rng.standard_normal(V) * 0.1).astype(np.float32) if bias else None
    return (h, w, t), dict(temperature=0.8, bias=b)


def _groups(rng, n=20):
    return rng.integers(0, 5, n)


#: name -> input makers (rng -> (args, kwargs)); every name of slow.__all__
#: with a C namesake of the same signature has an entry (checked below)
CASES = {
    "reference_stats": [
        lambda r: ((r.integers(1, 200, 20).astype(float), r.random(20) < 0.5, _groups(r)), {}),
    ],
    "length_harmonizing_reward": [
        lambda r: ((r.integers(1, 200, 20).astype(float), r.random(20) < 0.5, r.uniform(10, 90, 20), r.random(20), 2.0), {}),
    ],
    "harmonize_weights": [
        lambda r: ((r.standard_normal(20) * 3,), dict(clip=(-2.0, 4.0), normalize="dataset")),
        lambda r: ((r.standard_normal(20) * 3,), dict(clip=None, normalize="group", group=_groups(r))),
        lambda r: ((r.standard_normal(20) * 3,), dict(clip=(-1.0, 1.0), normalize=None)),
    ],
    "token_logprobs": [
        lambda r: (_logits(r), {}),
        lambda r: (_logits(r), dict(temperature=0.7)),
    ],
    "sequence_logprobs": [
        lambda r, red=red: ((r.standard_normal((4, 6)), r.random((4, 6)) < 0.7), dict(reduce=red)) for red in ("sum", "mean")
    ],
    "sequence_logprobs_backward": [
        lambda r, red=red: ((r.standard_normal(4), r.random((4, 6)) < 0.7), dict(reduce=red)) for red in ("sum", "mean")
    ],
    "ppo_clip_loss": [
        _ppo("sequence_mean"), _ppo("sequence_mean", "sum"), _ppo("sequence_mean", dual_clip=1.5),
        _ppo("sequence_mean", global_batch_size=8),
        _ppo("token"), _ppo("token", "grpo"), _ppo("token", "bnpo"), _ppo("token", "seq-mean-token-sum"),
        _ppo("token", "dr_grpo"), _ppo("token", dual_clip=2.0, logratio_clamp=0.3, eps_high=0.28),
        _ppo("token", "token-mean", global_batch_size=8, batch_num_tokens=60),
        _ppo("token", "dr_grpo", global_batch_size=8, max_response_length=12),
    ],
    "dpo_loss": [
        _dpo(), _dpo(beta=0.5), _dpo(beta=2.0, length_normalize=True),
        _dpo(beta=0.3, weights=np.array([1.0, 0.5, 0.0, 2.0, 1.0, 3.0])), _dpo(global_batch_size=9),
    ],
    "fused_linear_logprobs": [lambda r: _fused(r, False), lambda r: _fused(r, True)],
}

#: names whose C form takes other arguments (the saved forward statistics);
#: their slow form is checked against the torch twins' autograd below
DIFFERENT_SIGNATURE = {"token_logprobs_backward", "fused_linear_logprobs_backward"}
#: the built-in model's twins: TinyLM's methods are the C form (test_model.py)
MODEL = {"tinylm_forward", "tinylm_backward"}


def _flat(x):
    if torch is not None and isinstance(x, torch.Tensor):
        return [x.detach().double().numpy()]
    if isinstance(x, dict):
        return [a for v in x.values() for a in _flat(v)]
    if isinstance(x, tuple):
        return [a for v in x for a in _flat(v)]
    return [np.asarray(x, dtype=np.float64)]


def _cases():
    return [(name, i) for name, makers in CASES.items() for i in range(len(makers))]


def test_every_twin_is_covered():
    names = set(slow.__all__)
    assert names == set(CASES) | DIFFERENT_SIGNATURE | MODEL
    assert all(hasattr(o1pruner, n) for n in CASES)


@pytest.mark.parametrize("name,i", _cases())
def test_c_equals_slow(name, i):
    args, kwargs = CASES[name][i](np.random.default_rng(i))
    want = _flat(getattr(slow, name)(*args, **kwargs))
    got = _flat(getattr(o1pruner, name)(*args, **kwargs))
    assert len(got) >= len(want) - 1
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, rtol=2e-5, atol=2e-6, what=f"{name} output {k}")


def _to_torch(a, grad):
    if a is None or isinstance(a, (int, float, str, tuple)):
        return a
    a = np.asarray(a)
    t = torch.from_numpy(a.copy())
    if a.dtype.kind == "f" and grad:
        t.requires_grad_(True)
    return t


#: which arguments a torch twin differentiates
GRAD_ARGS = {"token_logprobs": (0,), "fused_linear_logprobs": (0, 1), "ppo_clip_loss": (0,), "dpo_loss": (0, 1)}


@pytest.mark.skipif(torch is None, reason="needs the torch extra")
@pytest.mark.parametrize("name,i", [c for c in _cases() if c[0] in GRAD_ARGS])
def test_torch_equals_slow(name, i):
    assert set(GRAD_ARGS) == {n for n in tw.__all__ if n in slow.__all__}
    rng = np.random.default_rng(i)
    args, kwargs = CASES[name][i](rng)
    targs = [_to_torch(a, k in GRAD_ARGS[name]) for k, a in enumerate(args)]
    tkw = {k: _to_torch(v, False) for k, v in kwargs.items()}
    if "bias" in tkw and tkw["bias"] is not None:
        tkw["bias"].requires_grad_(True)
    out = getattr(tw, name)(*targs, **tkw)
    ref = getattr(slow, name)(*args, **kwargs)
    got, want = _flat(out), _flat(ref)
    for k, g in enumerate(got):
        assert_close(g, want[k], rtol=2e-5, atol=2e-6, what=f"torch {name} output {k}")
    # gradients: random cotangents through torch's autograd against the slow backward
    outs = out if isinstance(out, tuple) else (out,)
    cot = [torch.from_numpy(rng.standard_normal(tuple(o.shape))).to(o.dtype) for o in outs]
    torch.autograd.backward(list(outs), cot)
    c = [x.double().numpy() for x in cot]
    if name == "token_logprobs":
        want_g = [slow.token_logprobs_backward(*args, c[0], c[1], **kwargs)]
        got_g = [targs[0].grad]
    elif name == "fused_linear_logprobs":
        gh, gw, gb = slow.fused_linear_logprobs_backward(*args, c[0], c[1], **kwargs)
        want_g, got_g = [gh, gw], [targs[0].grad, targs[1].grad]
        if kwargs["bias"] is not None:
            want_g.append(gb)
            got_g.append(tkw["bias"].grad)
    elif name == "dpo_loss":  # d loss / d chosen_logp, d rejected_logp times the cotangent
        want_g, got_g = [ref[1] * c[0], ref[2] * c[0]], [targs[0].grad, targs[1].grad]
    else:  # ppo_clip_loss: d loss / d logp times the cotangent
        want_g, got_g = [ref[1] * c[0]], [targs[0].grad]
    for k, (g, w) in enumerate(zip(got_g, want_g)):
        assert_close(g.double().numpy(), w, rtol=2e-4, atol=2e-6, what=f"torch {name} gradient {k}")
