"""Property-based tests of the objectives family (sequence_logprobs, its
backward, ppo_clip_loss): any input either gives the float64 reference's
result or a named ValueError/TypeError."""

import numpy as np
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import o1pruner
from o1pruner.kernels import slow as ref

from property_support import (COUNTS, Rejected, assert_close_scaled, check_call, float_arrays, laid_out,
                              maybe_odd, mostly, seen_as, shape_of, with_dtype)

MOD = "objectives"
REDUCE = mostly(st.sampled_from(["sum", "mean"]), st.sampled_from(["avg", None, 1, "MEAN"]), p_odd=2)


@st.composite
def masks(draw, shape):
    m = draw(hnp.arrays(bool, shape))
    if draw(st.integers(0, 3)) == 0 and len(shape) == 2 and shape[1]:
        m[:, -1] = False  # right padding, and sometimes a fully masked row
    dt = draw(st.sampled_from(["bool"] * 5 + ["int64", "float32", "uint8", "float16"]))
    m = m.astype(dt)
    if draw(st.integers(0, 19)) == 19 and m.size:
        m = m.astype(np.float64)
        m.flat[0] = draw(st.sampled_from([2.0, 0.5, np.nan, -1.0]))
    return draw(maybe_odd(draw(laid_out(m))))


@st.composite
def logps(draw, shape):
    x = draw(float_arrays(shape, lo=-12, hi=0))
    if draw(st.integers(0, 19)) == 19 and x.size:
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return draw(maybe_odd(draw(laid_out(draw(with_dtype(x, ("float32", "float32", "float64", "float16")))))))


def batch_shape(draw):
    return draw(mostly(st.integers(1, 5), st.just(0))), draw(mostly(st.integers(1, 6), st.just(0)))


@given(data=st.data())
def test_sequence_logprobs(data):
    draw = data.draw
    B, T = batch_shape(draw)
    x = draw(logps((B, T)))
    m = draw(masks((B, T) if draw(st.integers(0, 9)) else (B, T + 1)))
    reduce = draw(REDUCE)
    try:
        got = check_call(MOD, o1pruner.sequence_logprobs, (x, m), dict(reduce=reduce),
                         names=("token_logp", "mask", "reduce"))
    except Rejected:
        return
    X, M = seen_as(x), seen_as(m, np.float64)
    assert ((M == 0) | (M == 1)).all()
    want = ref.sequence_logprobs(X, M, reduce)
    scale = np.where(M == 1, np.abs(np.nan_to_num(X, posinf=0, neginf=0)), 0).sum(axis=1)
    assert got.dtype == np.float64
    assert_close_scaled(got, want, scale, rtol=1e-12, what="sequence_logprobs")


@given(data=st.data())
def test_sequence_logprobs_backward(data):
    draw = data.draw
    B, T = batch_shape(draw)
    g = draw(maybe_odd(draw(laid_out(draw(with_dtype(draw(float_arrays(B if draw(st.integers(0, 9)) else B + 1)),
                                                      ("float64", "float32", "int32")))))))
    m = draw(masks((B, T)))
    reduce = draw(REDUCE)
    try:
        got = check_call(MOD, o1pruner.sequence_logprobs_backward, (g, m), dict(reduce=reduce),
                         names=("grad", "mask", "reduce"))
    except Rejected:
        return
    want = ref.sequence_logprobs_backward(seen_as(g, np.float64), seen_as(m, np.float64), reduce)
    assert got.dtype == np.float32
    assert_close_scaled(got, want, 0.0, rtol=1e-6, what="sequence_logprobs_backward")


AGGREGATES = ["mean", "sum", "grpo", "bnpo", "dr_grpo", "token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]


@given(data=st.data())
def test_ppo_clip_loss(data):
    draw = data.draw
    B, T = batch_shape(draw)
    ratio = draw(mostly(st.sampled_from(["sequence_mean", "token"]), st.sampled_from(["seq", None, 0]), p_odd=1))
    if ratio == "token":
        agg = draw(mostly(st.sampled_from([None] + AGGREGATES[2:]), st.sampled_from(AGGREGATES[:2] + ["x"])))
    else:
        agg = draw(mostly(st.sampled_from([None, "mean", "sum"]), st.sampled_from(AGGREGATES[2:] + [3])))
    lp = draw(logps((B, T)))
    if ratio == "sequence_mean" and draw(st.integers(0, 3)) == 0:
        refl = draw(maybe_odd(draw(laid_out(draw(float_arrays(B, lo=-12, hi=0))))))
    else:
        refl = draw(logps((B, T)))
    adv = draw(maybe_odd(draw(laid_out(draw(with_dtype(draw(float_arrays(B, lo=-3, hi=3)),
                                                        ("float64", "float32", "int64")))))))
    m = draw(masks((B, T)))
    eps = st.floats(0.01, 0.99) | st.just(0.2)
    kw = dict(eps_low=draw(mostly(eps, st.sampled_from([0.0, 1.0, -0.1, np.nan, "0.2", None]))),
              eps_high=draw(mostly(eps, st.sampled_from([0.0, 1.5, np.inf, True]))),
              ratio=ratio, aggregate=agg,
              dual_clip=draw(mostly(st.sampled_from([None] * 6 + [3.0, 1.5, 10]),
                                    st.sampled_from([1.0, 0.5, np.nan, "3"]))),
              logratio_clamp=draw(mostly(st.sampled_from([None] * 6 + [20.0, 0.5, 88]),
                                         st.sampled_from([0.0, -1.0, np.inf, "20"]))))
    try:
        res = check_call(MOD, o1pruner.ppo_clip_loss, (lp, refl, adv, m), kw,
                         names=("logp", "ref_logp", "advantages", "mask", "eps_low", "eps_high", "ratio",
                                "aggregate", "dual_clip", "logratio_clamp"))
    except Rejected:
        return
    LP, RF, A, M = seen_as(lp), seen_as(refl), seen_as(adv, np.float64), seen_as(m, np.float64)
    if RF.ndim == 1:
        RF = seen_as(refl, np.float64)  # per-sequence means stay float64
    with np.errstate(all="ignore"):
        loss, grad, stats = ref.ppo_clip_loss(LP, RF, A, M, float(kw["eps_low"]), float(kw["eps_high"]), ratio,
                                              agg, kw["dual_clip"], kw["logratio_clamp"])
    if ratio == "token":
        # per-token work is float32 (as PyTorch): -A * r beyond its range is
        # +-inf there by design, where the float64 reference stays finite
        with np.errstate(all="ignore"):
            bound = np.abs(A).max(initial=0) * max(stats["ratio_max"], 2.0, kw["dual_clip"] or 0)
        if not bound < np.finfo(np.float32).max / 8:
            COUNTS[MOD]["returned (float32 overflow by design, not compared)"] += 1
            return
    rmax = max(abs(stats["ratio_max"]), 1.0) if np.isfinite(stats["ratio_max"]) else 1.0
    scale = np.abs(A).max(initial=0) * (rmax + 1) * (1 + np.abs(np.nan_to_num(LP, posinf=0, neginf=0)).max(initial=0))
    assert_close_scaled(res.loss, loss, scale, rtol=1e-5, what="loss")
    assert res.grad.dtype == np.float32 and res.grad.shape == LP.shape
    assert_close_scaled(res.grad, grad, scale, rtol=1e-5, what="grad")
    assert res.stats.count == stats["count"]
    for k in ("clip_fraction", "dual_clip_fraction"):
        assert abs(getattr(res.stats, k) - stats[k]) <= 1.0 / max(stats["count"], 1) + 1e-12, k
    for k in ("approx_kl", "ratio_mean", "ratio_min", "ratio_max"):
        assert_close_scaled(getattr(res.stats, k), stats[k], 1 + 12, rtol=1e-5, what=k)


# ---- regressions found by the tests above -----------------------------------------

def test_token_ratio_rejects_advantages_beyond_float32():
    # a finite float64 advantage became inf in the float32 per-token work
    import pytest

    lp = np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match="^advantages"):
        o1pruner.ppo_clip_loss(lp, lp, np.array([1e300]), np.ones((1, 2), bool), ratio="token")
    # the sequence ratio works in float64 throughout
    assert o1pruner.ppo_clip_loss(lp, lp, np.array([1e300]), np.ones((1, 2), bool)).loss == -1e300
