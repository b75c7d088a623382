"""Fused LM head + token log-probs: fused_linear_logprobs and its backward
against the float64 reference (materialised logits), central finite
differences, accumulation into given outputs, bad input, threads, leaks."""

import doctest

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import o1pruner
import o1pruner.kernels.fused
from o1pruner.kernels import slow as ref

from helpers import assert_close, layouts, leak_check


def problem(rng, N, d, V, scale=1.0, ignore_every=0, bias=False, dtype=np.float32):
    """Random hidden/weight with logits of order `scale`, targets with every
    `ignore_every`-th row ignored."""
    h = (rng.standard_normal((N, d)) * np.sqrt(scale)).astype(dtype)
    w = (rng.standard_normal((V, d)) * np.sqrt(scale / max(d, 1))).astype(dtype)
    t = rng.integers(0, V, N)
    if ignore_every:
        t[::ignore_every] = -100
    b = (rng.standard_normal(V) * scale).astype(dtype) if bias else None
    return h, w, t, b


def check_forward(h, w, t, b=None, T=1.0, ignore_index=-100, tol=2e-5):
    got = o1pruner.fused_linear_logprobs(h, w, t, temperature=T, ignore_index=ignore_index, bias=b)
    want = ref.fused_linear_logprobs(h, w, t, T, ignore_index, b)
    for name, g, r in zip(("logp", "entropy", "lse"), (got.logp, got.entropy, got.stats.lse), want):
        assert g.dtype == np.float32 and g.shape == (len(t),)
        # fp32 logits carry an absolute error ~ eps * |z|: scale the tolerance by it
        zmax = 1.0 + amax(r[np.isfinite(r)])
        with np.errstate(invalid="ignore"):  # -inf == -inf (masked targets)
            assert_close(g, r, rtol=tol, atol=tol * zmax, what=name)
    np.testing.assert_array_equal(got.entropy, got.stats.entropy)
    return got


def amax(a):
    return float(np.abs(a).max()) if a.size else 0.0


def check_backward(h, w, t, stats, gl, ge, b=None, T=1.0, tol=2e-5):
    gh, gw, gb = o1pruner.fused_linear_logprobs_backward(h, w, t, stats, gl, ge, temperature=T, bias=b)
    rh, rw, rb = ref.fused_linear_logprobs_backward(h, w, t, gl, ge, T, -100, b)
    for name, g, r in (("grad_hidden", gh, rh), ("grad_weight", gw, rw)):
        assert g.dtype == np.float32 and g.shape == r.shape
        assert_close(g, r, rtol=tol, atol=tol * (1.0 + amax(r)), what=name)
    if b is None:
        assert gb is None
    else:
        assert_close(gb, rb, rtol=tol, atol=tol * (1.0 + amax(rb)), what="grad_bias")
    return gh, gw, gb


# ---- against the float64 reference ---------------------------------------------

SHAPES = [
    # (N, d, V): V not a multiple of the 512-wide tile, N below one chunk,
    # d = 1, a single row, several chunks of tokens
    (1, 1, 1),
    (3, 1, 5),
    (7, 5, 513),
    (40, 16, 1300),
    (130, 33, 2047),
    (600, 8, 700),
    (1100, 12, 300),
]


@pytest.mark.parametrize("N, d, V", SHAPES)
def test_forward_backward_match_reference(rng, N, d, V):
    h, w, t, b = problem(rng, N, d, V, scale=4.0, ignore_every=5, bias=True)
    for T, bias in ((1.0, None), (0.7, b), (1.9, b)):
        out = check_forward(h, w, t, bias, T)
        gl = rng.standard_normal(N).astype(np.float32)
        ge = rng.standard_normal(N).astype(np.float32)
        check_backward(h, w, t, out.stats, gl, ge, bias, T)
        check_backward(h, w, t, out.stats, gl, None, bias, T)


@pytest.mark.parametrize("N, d, V, T", [(9, 4, 700, 1.0), (300, 24, 1500, 0.8), (40, 1, 33, 1.7)])
def test_matches_unfused_c_path(rng, N, d, V, T):
    # the same numbers as token_logprobs on the materialised float32 logits,
    # and the same gradients through the chain rule G @ W, G.T @ H, G.sum(0)
    h, w, t, b = problem(rng, N, d, V, scale=4.0, ignore_every=4, bias=True)
    b[::5] = -np.inf
    t[(t % 5 == 0) & (t >= 0)] += 1
    t[t >= V] = 1
    logits = h @ w.T + b
    fused = o1pruner.fused_linear_logprobs(h, w, t, temperature=T, bias=b)
    plain = o1pruner.token_logprobs(logits, t, temperature=T)
    for name, a, c in (("logp", fused.logp, plain.logp), ("entropy", fused.entropy, plain.entropy),
                       ("lse", fused.stats.lse, plain.lse)):
        assert_close(a, c, rtol=1e-5, atol=1e-5 * (1 + amax(c)), what=name)
    gl = rng.standard_normal(N).astype(np.float32)
    ge = rng.standard_normal(N).astype(np.float32)
    G = o1pruner.token_logprobs_backward(logits, t, plain.lse, gl, ge, temperature=T).astype(np.float64)
    gh, gw, gb = o1pruner.fused_linear_logprobs_backward(h, w, t, fused.stats, gl, ge, temperature=T, bias=b)
    for name, a, c in (("grad_hidden", gh, G @ w), ("grad_weight", gw, G.T @ h), ("grad_bias", gb, G.sum(0))):
        assert_close(a, c, rtol=1e-5, atol=1e-5 * (1 + amax(c)), what=name)


def test_ignored_rows_are_zero_and_get_no_gradient(rng):
    h, w, t, b = problem(rng, 50, 6, 90, ignore_every=3, bias=True)
    out = o1pruner.fused_linear_logprobs(h, w, t, bias=b)
    ign = t == -100
    assert np.all(out.logp[ign] == 0) and np.all(out.entropy[ign] == 0) and np.all(out.stats.lse[ign] == 0)
    assert np.all(out.logp[~ign] < 0) and np.all(out.entropy[~ign] > 0)
    gh, gw, gb = o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, np.ones(50), np.ones(50), bias=b)
    assert np.all(gh[ign] == 0) and np.any(gh[~ign] != 0)
    # a custom ignore_index; every row ignored
    t2 = np.where(ign, 7, 0)
    out2 = o1pruner.fused_linear_logprobs(h, w, t2, ignore_index=7)
    assert np.all(out2.logp[ign] == 0) and np.all(out2.logp[~ign] < 0)
    allign = np.full(50, -100)
    out3 = o1pruner.fused_linear_logprobs(h, w, allign)
    assert not out3.logp.any() and not out3.entropy.any()
    gh, gw, _ = o1pruner.fused_linear_logprobs_backward(h, w, allign, out3.stats, np.ones(50))
    assert not gh.any() and not gw.any()


def test_empty_and_zero_width(rng):
    out = o1pruner.fused_linear_logprobs(np.zeros((0, 4), np.float32), np.ones((3, 4), np.float32), [])
    assert out.logp.shape == (0,)
    gh, gw, _ = o1pruner.fused_linear_logprobs_backward(
        np.zeros((0, 4), np.float32), np.ones((3, 4), np.float32), [], out.stats, []
    )
    assert gh.shape == (0, 4) and gw.shape == (3, 4) and not gw.any()
    # d = 0: the logits are the bias alone
    b = rng.standard_normal(6).astype(np.float32)
    h0, w0, t = np.zeros((5, 0), np.float32), np.zeros((6, 0), np.float32), rng.integers(0, 6, 5)
    out = check_forward(h0, w0, t, b)
    gh, gw, gb = check_backward(h0, w0, t, out.stats, np.ones(5, np.float32), np.ones(5, np.float32), b)
    assert gh.shape == (5, 0) and gw.shape == (6, 0)


def test_layouts_and_dtypes(rng):
    h, w, t, b = problem(rng, 30, 7, 40, bias=True)
    want = o1pruner.fused_linear_logprobs(h, w, t, bias=b)
    for name, hh in layouts(h):
        got = o1pruner.fused_linear_logprobs(hh, w, t, bias=b)
        assert_close(got.logp, want.logp, rtol=1e-6, atol=1e-6, what=f"hidden {name}")
    for name, ww in layouts(w):
        got = o1pruner.fused_linear_logprobs(h, ww, t, bias=b)
        assert_close(got.logp, want.logp, rtol=1e-6, atol=1e-6, what=f"weight {name}")
    for dt in (np.int32, np.uint8, np.int16):
        got = o1pruner.fused_linear_logprobs(h, w, t.astype(dt), bias=b)
        np.testing.assert_array_equal(got.logp, want.logp)
    got = o1pruner.fused_linear_logprobs(h.astype(np.float16), w, list(t), bias=list(b))
    assert_close(got.logp, ref.fused_linear_logprobs(h.astype(np.float16), w, t, 1.0, -100, b)[0],
                 rtol=2e-5, atol=2e-5, what="float16 hidden")


# ---- extreme values --------------------------------------------------------------

def test_large_logits_and_peaked_rows(rng):
    # logits of order 1e3: the max shift keeps exp finite, the entropy tiny
    h, w, t, b = problem(rng, 20, 8, 300, scale=1000.0, bias=True)
    out = check_forward(h, w, t, b, T=0.5, tol=1e-5)
    assert np.all(np.isfinite(out.logp)) and np.all(out.entropy >= -1e-3)
    gl = np.ones(20, np.float32)
    # |z| ~ 2000: float32 logits carry ~2e-4 absolute error, which p (z - E z)
    # in the entropy gradient passes on; 3e-4 of the largest gradient
    check_backward(h, w, t, out.stats, gl, gl, b, T=0.5, tol=3e-4)
    # the argmax as target of peaked rows: logp near 0, never above
    z = h.astype(np.float64) @ w.T.astype(np.float64) + b
    best = z.argmax(axis=1)
    out = check_forward(h, w, best, b, tol=1e-5)
    assert np.all(out.logp <= 0) and np.median(out.logp) > -1e-3


def test_masked_vocabulary(rng):
    # bias -inf masks tokens: p = 0 there, a masked target has logp = -inf,
    # and no NaN reaches any gradient
    h, w, t, b = problem(rng, 25, 6, 1100, bias=True)
    b[::3] = -np.inf
    t[t % 3 == 0] += 1
    t[0] = 3  # masked target
    out = check_forward(h, w, t, b)
    assert out.logp[0] == -np.inf and np.isfinite(out.logp[1:]).all()
    gl = rng.standard_normal(25).astype(np.float32)
    ge = rng.standard_normal(25).astype(np.float32)
    gh, gw, gb = check_backward(h, w, t, out.stats, gl, ge, b)
    assert np.isfinite(gh).all() and np.isfinite(gw).all() and np.isfinite(gb).all()
    # a row with every token masked has no distribution
    with pytest.raises(ValueError, match="hidden"):
        o1pruner.fused_linear_logprobs(h, w, t, bias=np.full(1100, -np.inf, np.float32))


@pytest.mark.parametrize("where, value", [("hidden", np.nan), ("hidden", np.inf), ("weight", -np.inf),
                                          ("weight", np.nan), ("hidden", 1e30)])
def test_non_finite_logits_raise(rng, where, value):
    h, w, t, _ = problem(rng, 9, 4, 700)
    (h if where == "hidden" else w)[3 if where == "hidden" else 650, 1] = value
    if value == 1e30:
        w[:] = 1e30  # finite inputs whose product overflows
    with pytest.raises(ValueError, match="hidden"):
        o1pruner.fused_linear_logprobs(h, w, t)


def test_stats_of_other_inputs_are_detected(rng):
    h, w, t, _ = problem(rng, 12, 5, 60)
    out = o1pruner.fused_linear_logprobs(h, w, t)
    with pytest.raises(ValueError, match="lse"):
        o1pruner.fused_linear_logprobs_backward(h * 2, w, t, out.stats, np.ones(12))
    with pytest.raises(ValueError, match="lse"):
        o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, np.ones(12), temperature=0.5)
    bad = o1pruner.FusedStats(np.full(12, np.nan, np.float32), out.stats.entropy)
    with pytest.raises(ValueError, match="lse"):
        o1pruner.fused_linear_logprobs_backward(h, w, t, bad, np.ones(12))


# ---- finite differences -------------------------------------------------------------

def loss64(h, w, t, b, gl, ge, T):
    logp, ent, _ = ref.fused_linear_logprobs(h, w, t, T, -100, b)
    return float(gl @ logp + ge @ ent)


def central_diff(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("T", [1.0, 0.6])
def test_gradients_against_finite_differences(rng, T):
    N, d, V = 5, 3, 9
    h, w, t, b = problem(rng, N, d, V, scale=2.0, bias=True)
    t[2] = -100
    b[4] = -np.inf
    t[t == 4] = 5
    gl = rng.standard_normal(N).astype(np.float32)
    ge = rng.standard_normal(N).astype(np.float32)
    # float64 copies of the very float32 values the kernel sees
    h64, w64, b64 = h.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    gl64, ge64 = gl.astype(np.float64), ge.astype(np.float64)
    f = lambda: loss64(h64, w64, t, b64, gl64, ge64, T)
    fd_h, fd_w = central_diff(f, h64), central_diff(f, w64)
    finite = np.isfinite(b64)
    fd_b = np.zeros(V)
    sub = b64[finite].copy()

    def fb():
        bb = b64.copy()
        bb[finite] = sub
        return loss64(h64, w64, t, bb, gl64, ge64, T)

    fd_b[finite] = central_diff(fb, sub)
    # the float64 reference backward: tight
    rh, rw, rb = ref.fused_linear_logprobs_backward(h64, w64, t, gl64, ge64, T, -100, b64)
    assert_close(rh, fd_h, rtol=1e-6, atol=1e-7, what="reference grad_hidden")
    assert_close(rw, fd_w, rtol=1e-6, atol=1e-7, what="reference grad_weight")
    assert_close(rb, fd_b, rtol=1e-6, atol=1e-7, what="reference grad_bias")
    # the float32 kernel: within float32 rounding
    out = o1pruner.fused_linear_logprobs(h, w, t, temperature=T, bias=b)
    gh, gw, gb = o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl, ge, temperature=T, bias=b)
    assert_close(gh, fd_h, rtol=1e-4, atol=2e-5, what="grad_hidden")
    assert_close(gw, fd_w, rtol=1e-4, atol=2e-5, what="grad_weight")
    assert_close(gb, fd_b, rtol=1e-4, atol=2e-5, what="grad_bias")
    assert gb[4] == 0  # a masked token gets no gradient


# ---- accumulation into given outputs --------------------------------------------

def test_accumulates_into_given_outputs(rng):
    h, w, t, b = problem(rng, 60, 9, 130, ignore_every=4, bias=True)
    out = o1pruner.fused_linear_logprobs(h, w, t, bias=b)
    gl = rng.standard_normal(60).astype(np.float32)
    ge = rng.standard_normal(60).astype(np.float32)
    fresh = o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl, ge, bias=b)
    gh = rng.standard_normal(h.shape).astype(np.float32)
    gw = rng.standard_normal(w.shape).astype(np.float32)
    gb = rng.standard_normal(b.shape).astype(np.float32)
    before = gh.copy(), gw.copy(), gb.copy()
    res = o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl, ge, bias=b,
                                                  grad_hidden=gh, grad_weight=gw, grad_bias=gb)
    assert res[0] is gh and res[1] is gw and res[2] is gb
    for got, old, new, name in zip(res, before, fresh, ("grad_hidden", "grad_weight", "grad_bias")):
        assert_close(got, old.astype(np.float64) + new, rtol=1e-6, atol=1e-6, what=name)
    # two micro-batches summed in place == one batch
    gh2, gw2 = np.zeros_like(h), np.zeros_like(w)
    for sl in (slice(0, 25), slice(25, 60)):
        o = o1pruner.fused_linear_logprobs(h[sl], w, t[sl], bias=b)
        o1pruner.fused_linear_logprobs_backward(h[sl], w, t[sl], o.stats, gl[sl], ge[sl], bias=b,
                                                grad_hidden=gh2[sl], grad_weight=gw2, grad_bias=None)
    assert_close(gh2, fresh[0], rtol=1e-6, atol=1e-6, what="micro-batch grad_hidden")
    assert_close(gw2, fresh[1], rtol=1e-5, atol=1e-6, what="micro-batch grad_weight")


# ---- threads ---------------------------------------------------------------------------

@pytest.mark.parametrize("N, d, V", [(300, 64, 8000), (100, 96, 20000)])
def test_one_and_two_threads_agree(rng, N, d, V):
    # large enough for two threads: tokens split (N=300) or vocabulary split (N=100)
    h, w, t, b = problem(rng, N, d, V, scale=3.0, ignore_every=7, bias=True)
    gl = rng.standard_normal(N).astype(np.float32)
    ge = rng.standard_normal(N).astype(np.float32)
    n0 = o1pruner.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            o1pruner.set_num_threads(nt)
            out = o1pruner.fused_linear_logprobs(h, w, t, temperature=0.8, bias=b)
            grads = o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl, ge, temperature=0.8, bias=b)
            res.append((out.logp, out.entropy, out.stats.lse) + grads)
    finally:
        o1pruner.set_num_threads(n0)
    names = ("logp", "entropy", "lse", "grad_hidden", "grad_weight", "grad_bias")
    for name, a, c in zip(names, res[0], res[1]):
        assert_close(c, a, rtol=1e-5, atol=1e-5 * (1 + np.abs(a).max()), what=name)
    # and both against the reference
    check_forward(h, w, t, b, T=0.8)


# ---- inputs are never modified -----------------------------------------------------

def test_inputs_not_modified(rng):
    h, w, t, b = problem(rng, 40, 6, 700, ignore_every=6, bias=True)
    gl = rng.standard_normal(40).astype(np.float32)
    ge = rng.standard_normal(40).astype(np.float32)
    args = [h, w, t, b, gl, ge]
    copies = [a.copy() for a in args]
    out = o1pruner.fused_linear_logprobs(h, w, t, temperature=0.9, bias=b)
    stats_copy = out.stats.lse.copy(), out.stats.entropy.copy()
    o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl, ge, temperature=0.9, bias=b)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(out.stats.lse, stats_copy[0])
    np.testing.assert_array_equal(out.stats.entropy, stats_copy[1])
    # the stats hold their own copy of the entropy
    out.entropy[:] = 5
    assert not np.array_equal(out.stats.entropy, out.entropy)


# ---- bad input ---------------------------------------------------------------------------

def _base(rng):
    h, w, t, b = problem(rng, 6, 4, 10, bias=True)
    return dict(hidden=h, weight=w, targets=t, bias=b)


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(weight=np.ones((10, 5), np.float32)), ValueError, "weight"),
        (dict(weight=np.ones(10, np.float32)), ValueError, "weight"),
        (dict(hidden=np.ones((6, 4, 1), np.float32)), ValueError, "hidden"),
        (dict(hidden=np.ones((6, 4), np.int32)), TypeError, "hidden"),
        (dict(weight=np.ones((10, 4), np.int64)), TypeError, "weight"),
        (dict(weight=np.ones((10, 4), bool)), TypeError, "weight"),
        (dict(hidden=[["a"] * 4] * 6), TypeError, "hidden"),
        (dict(hidden=None), TypeError, "hidden"),
        (dict(bias=np.ones(10, np.int32)), TypeError, "bias"),
        (dict(bias=np.ones(9, np.float32)), ValueError, "bias"),
        (dict(bias=np.array([np.nan] + [0.0] * 9)), ValueError, "bias"),
        (dict(bias=np.array([np.inf] + [0.0] * 9)), ValueError, "bias"),
        (dict(targets=np.array([0, 1, 2, 3, 4, 10])), ValueError, "targets"),
        (dict(targets=np.array([0, 1, 2, 3, 4, -1])), ValueError, "targets"),
        (dict(targets=np.array([0, 1, 2, 3, 4])), ValueError, "targets"),
        (dict(targets=np.array([0.0, 1, 2, 3, 4, 5])), TypeError, "targets"),
        (dict(temperature=0.0), ValueError, "temperature"),
        (dict(temperature=-1.0), ValueError, "temperature"),
        (dict(temperature=np.nan), ValueError, "temperature"),
        (dict(temperature=np.inf), ValueError, "temperature"),
        (dict(temperature=1e-300), ValueError, "temperature"),
        (dict(temperature="hot"), TypeError, "temperature"),
        (dict(temperature=True), TypeError, "temperature"),
        (dict(ignore_index=1.5), TypeError, "ignore_index"),
        (dict(ignore_index=2**70), ValueError, "ignore_index"),
    ],
)
def test_bad_input_forward(rng, change, exc, match):
    kw = _base(rng)
    kw.update(change)
    with pytest.raises(exc, match=match):
        o1pruner.fused_linear_logprobs(**kw)


def test_sizes_beyond_blas_and_memory_raise_named_errors():
    # zero-stride views: no memory behind them
    z = np.zeros(1, np.float32)
    wide = as_strided(z, shape=(2, 2**31), strides=(0, 0))  # d beyond the 32-bit BLAS int
    with pytest.raises(ValueError, match="weight"):
        o1pruner.fused_linear_logprobs(np.zeros((2, 4), np.float32), wide, [0, 1])
    with pytest.raises(ValueError, match="hidden"):
        o1pruner.fused_linear_logprobs(wide, np.zeros((2, 4), np.float32), [0, 1])
    # V * d = 2^60 elements: a copy is impossible, the error still names it
    huge = as_strided(z, shape=(2**40, 2**20), strides=(0, 0))
    with pytest.raises((ValueError, MemoryError), match="weight"):
        o1pruner.fused_linear_logprobs(np.zeros((2, 2**20), np.float32), huge, [0, 1])


def test_bad_input_backward(rng):
    kw = _base(rng)
    out = o1pruner.fused_linear_logprobs(**kw)
    gl = np.ones(6, np.float32)
    call = lambda **c: o1pruner.fused_linear_logprobs_backward(
        **{**kw, "stats": out.stats, "grad_logp": gl, **c})
    call()  # the base call works
    N, d, V = 6, 4, 10
    cases = [
        (dict(stats=(1, 2)), TypeError, "stats"),
        (dict(stats=o1pruner.FusedStats(np.zeros(5, np.float32), out.stats.entropy)), ValueError, "lse"),
        (dict(stats=o1pruner.FusedStats(out.stats.lse, np.zeros(7))), ValueError, "entropy"),
        (dict(stats=o1pruner.FusedStats(out.stats.lse, np.full(6, np.inf))), ValueError, "entropy"),
        (dict(grad_logp=np.ones(5)), ValueError, "grad_logp"),
        (dict(grad_logp=np.full(6, np.nan)), ValueError, "grad_logp"),
        (dict(grad_logp=np.ones(6, int)), TypeError, "grad_logp"),
        (dict(grad_entropy=np.ones(7)), ValueError, "grad_entropy"),
        (dict(grad_entropy=np.full(6, np.inf)), ValueError, "grad_entropy"),
        (dict(grad_hidden=np.zeros((N, d))), TypeError, "grad_hidden"),
        (dict(grad_hidden=[[0.0] * d] * N), TypeError, "grad_hidden"),
        (dict(grad_hidden=np.zeros((N, d + 1), np.float32)), ValueError, "grad_hidden"),
        (dict(grad_hidden=np.zeros((d, N), np.float32).T), ValueError, "grad_hidden"),
        (dict(grad_weight=np.zeros((V, d), np.float16)), TypeError, "grad_weight"),
        (dict(grad_weight=np.zeros((V + 1, d), np.float32)), ValueError, "grad_weight"),
        (dict(grad_bias=np.zeros(V + 1, np.float32)), ValueError, "grad_bias"),
        (dict(bias=None, grad_bias=np.zeros(V, np.float32)), ValueError, "grad_bias"),
        (dict(grad_hidden=kw["hidden"]), ValueError, "grad_hidden"),
        (dict(weight=kw["weight"], grad_weight=kw["weight"]), ValueError, "grad_weight"),
    ]
    ro = np.zeros((N, d), np.float32)
    ro.setflags(write=False)
    cases.append((dict(grad_hidden=ro), ValueError, "grad_hidden"))
    shared = np.zeros(V * d + V, np.float32)
    cases.append((dict(grad_weight=shared[: V * d].reshape(V, d), grad_bias=shared[V * d - 1:V * d - 1 + V]),
                  ValueError, "grad_bias"))
    for change, exc, match in cases:
        with pytest.raises(exc, match=match):
            call(**change)
    # the forward's checks apply too
    with pytest.raises(ValueError, match="targets"):
        call(targets=np.array([0, 1, 2, 3, 4, 99]))


# ---- leaks, docs ---------------------------------------------------------------------------

def test_no_leaks(rng):
    h, w, t, b = problem(rng, 20, 5, 40, ignore_every=3, bias=True)
    gl = np.ones(20, np.float32)
    out = o1pruner.fused_linear_logprobs(h, w, t, bias=b)
    gh, gw, gb = np.zeros_like(h), np.zeros_like(w), np.zeros_like(b)

    def calls():
        o = o1pruner.fused_linear_logprobs(h, w, t, temperature=0.7, bias=b)
        o1pruner.fused_linear_logprobs_backward(h, w, t, o.stats, gl, gl, temperature=0.7, bias=b)
        o1pruner.fused_linear_logprobs_backward(h, w, t, o.stats, gl, None, temperature=0.7, bias=b,
                                                grad_hidden=gh, grad_weight=gw, grad_bias=gb)
        for bad in (dict(targets=t + 100), dict(bias=b[:-1]), dict(hidden=h.astype(int))):
            try:
                o1pruner.fused_linear_logprobs(**{**dict(hidden=h, weight=w, targets=t, bias=b), **bad})
            except (ValueError, TypeError):
                pass
        for bad in (dict(grad_hidden=gh[:, :2]), dict(grad_logp=gl[:3]), dict(stats=out.stats._replace(lse=out.stats.lse * 0 + 50))):
            try:
                o1pruner.fused_linear_logprobs_backward(
                    **{**dict(hidden=h, weight=w, targets=t, stats=out.stats, grad_logp=gl, bias=b), **bad})
            except (ValueError, TypeError):
                pass

    leak_check(calls, n=400, warmup=50)


def test_docstring_examples():
    res = doctest.testmod(o1pruner.kernels.fused, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 2 and res.failed == 0


def test_backward_huge_entropy_gradient_stays_finite():
    # grad_entropy near float32's max: dh * (z - ez) overflowed to inf before
    # p * (z - ez) was formed first, and inf * W (= 0) gave NaN in grad_hidden
    h = np.zeros((2, 1), np.float32)
    w = np.zeros((2, 1), np.float32)
    bias = np.array([2.0, 0.0], np.float32)
    t = np.array([0, 0])
    stats = o1pruner.fused_linear_logprobs(h, w, t, bias=bias).stats
    ge = np.array([3.4028235e38, 0.0], np.float32)
    gh, gw, gb = o1pruner.fused_linear_logprobs_backward(h, w, t, stats, np.zeros(2, np.float32), grad_entropy=ge,
                                                         bias=bias)
    assert np.all(gh == 0.0) and np.all(gw == 0.0)
    assert np.all(np.isfinite(gb))
