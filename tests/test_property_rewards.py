"""Property-based tests of the rewards family (reference_stats,
length_harmonizing_reward, harmonize_weights): any input either gives the
float64 reference's result or a named ValueError/TypeError."""

import numpy as np
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import o1pruner
from o1pruner.kernels import slow as ref

from property_support import (Rejected, check_call, float_arrays, laid_out, maybe_odd, seen_as,
                              with_dtype, assert_close_scaled)

MOD = "rewards"
FLOATS = ("float64", "float32", "int64", "int32")


@st.composite
def lengths_correct(draw, S=None):
    S = draw(st.integers(0, 9)) if S is None else S
    if draw(st.booleans()):
        lengths = draw(hnp.arrays(np.int64, S, elements=st.integers(1, 5000))).astype(np.float64)
    else:
        lengths = draw(float_arrays(S, lo=1e-3, hi=1e4))
    if draw(st.integers(0, 9)) == 0:  # invalid lengths: 0 or negative
        lengths = lengths - draw(st.sampled_from([0.0, 5000.0]))
    correct = draw(hnp.arrays(np.float64, S, elements=st.sampled_from([0.0, 1.0, 0.5, 0.25])))
    if draw(st.integers(0, 9)) == 0:
        correct = draw(float_arrays(S))
    lengths = draw(with_dtype(lengths, FLOATS))
    correct = draw(with_dtype(correct, ("bool", "float64", "int8", "float32")))
    return lengths, correct


@given(data=st.data())
def test_reference_stats(data):
    draw = data.draw
    lengths, correct = draw(lengths_correct())
    S = len(lengths)
    use_offsets = draw(st.integers(0, 3)) == 0
    if use_offsets:
        counts = draw(st.lists(st.integers(0 if draw(st.integers(0, 9)) == 0 else 1, 4), min_size=0, max_size=4))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if draw(st.booleans()):  # make them consistent with S
            lengths, correct = draw(lengths_correct(int(offsets[-1])))
        kw = dict(offsets=draw(maybe_odd(draw(laid_out(draw(with_dtype(offsets, ("int64", "int32", "uint8"))))))))
        group = None
    else:
        group = draw(hnp.arrays(np.int64, S, elements=st.integers(-3, 3) | st.integers(-2**63, 2**63 - 1)))
        group = draw(with_dtype(group, ("int64", "int32", "uint64", "int16")))
        kw = {}
        group = draw(maybe_odd(draw(laid_out(group))))
    lengths = draw(maybe_odd(draw(laid_out(lengths))))
    correct = draw(maybe_odd(draw(laid_out(correct))))
    try:
        got = check_call(MOD, o1pruner.reference_stats, (lengths, correct, group), kw,
                         names=("lengths", "correct", "group", "offsets"))
    except Rejected:
        return
    L, A = seen_as(lengths, np.float64), seen_as(correct, np.float64)
    if use_offsets:
        off = np.asarray(kw["offsets"]).astype(np.int64)
        g = np.repeat(np.arange(len(off) - 1), np.diff(off))
    else:
        g = np.asarray(group).astype(np.int64)
    # accepted inputs are valid ones
    assert len(L) >= 1 and (L > 0).all() and np.isfinite(L).all() and ((A >= 0) & (A <= 1)).all()
    ids, mean, acc, count, inverse = ref.reference_stats(L, A, g)
    np.testing.assert_array_equal(got.ids, ids)
    np.testing.assert_array_equal(got.count, count)
    np.testing.assert_array_equal(got.inverse, inverse)
    assert_close_scaled(got.mean_length, mean, 0.0, rtol=1e-12, what="mean_length")
    assert_close_scaled(got.accuracy, acc, 0.0, rtol=1e-12, what="accuracy")


@given(data=st.data())
def test_length_harmonizing_reward(data):
    draw = data.draw
    lengths, correct = draw(lengths_correct())
    S = len(lengths)
    if draw(st.booleans()):
        rl = draw(st.floats(1e-3, 1e4) | st.integers(-2, 10) | st.sampled_from([np.inf, np.nan, 0.0]))
        ra = draw(st.floats(0, 1) | st.sampled_from([np.nan, -np.inf, 2.0]))
    else:
        S2 = S if draw(st.integers(0, 9)) else draw(st.integers(0, 9))
        rl = draw(with_dtype(draw(float_arrays(S2, lo=1e-3, hi=1e4)), FLOATS))
        ra = draw(with_dtype(draw(float_arrays(S2, lo=0, hi=1)), ("float64", "float32", "bool")))
        rl, ra = draw(laid_out(rl)), draw(laid_out(ra))
    lam = draw(st.floats(0, 10) | st.sampled_from([-1.0, np.nan, np.inf, 0, 2, True, "2", None]))
    args = [draw(maybe_odd(draw(laid_out(lengths)))), draw(maybe_odd(draw(laid_out(correct)))),
            draw(maybe_odd(rl)), draw(maybe_odd(ra))]
    try:
        got = check_call(MOD, o1pruner.length_harmonizing_reward, args, dict(lam=lam),
                         names=("lengths", "correct", "ref_mean_length", "ref_accuracy", "lam"))
    except Rejected:
        return
    L, A = seen_as(args[0], np.float64), seen_as(args[1], np.float64)
    RL = np.broadcast_to(seen_as(args[2], np.float64), L.shape)
    RA = np.broadcast_to(seen_as(args[3], np.float64), L.shape)
    assert (RL > 0).all() and np.isfinite(RL).all() and np.isfinite(RA).all() and lam >= 0
    with np.errstate(all="ignore"):
        want = ref.length_harmonizing_reward(L, A, RL, RA, float(lam))
    # the kernel computes (Lbar - L) / L (the public code's arrangement)
    # the kernel computes (Lbar - L) / L (the public code's arrangement): the
    # rounding error is relative to the terms, not to their sum
    scale = np.abs(RL / L) + 1 + float(lam) * (np.abs(A) + np.abs(RA))
    assert_close_scaled(got, want, scale, rtol=1e-12, what="reward")
    assert got.dtype == np.float64 and got.shape == L.shape


@given(data=st.data())
def test_harmonize_weights(data):
    draw = data.draw
    S = draw(st.integers(0, 9))
    w = draw(with_dtype(draw(float_arrays(S, lo=-6, hi=6)), ("float64", "float32", "int64")))
    clip = draw(st.sampled_from([(-2.0, 4.0), None, (0, 0), (1.0, -1.0), (np.nan, 1.0), [-1, 1], (1,), "ab",
                                 (-np.inf, np.inf), ("a", 1), (-2, 4), (np.float32(-1), np.int8(3))]))
    normalize = draw(st.sampled_from(["dataset", "group", None, "Dataset", 3]))
    group = None
    if normalize == "group" or draw(st.integers(0, 9)) == 0:
        group = draw(laid_out(draw(hnp.arrays(np.int64, S if draw(st.integers(0, 9)) else S + 1,
                                              elements=st.integers(0, 3)))))
    w = draw(maybe_odd(draw(laid_out(w))))
    try:
        got = check_call(MOD, o1pruner.harmonize_weights, (w,), dict(clip=clip, normalize=normalize, group=group),
                         names=("rewards", "clip", "normalize", "group"))
    except Rejected:
        return
    W = seen_as(w, np.float64)
    assert len(W) >= 1 and np.isfinite(W).all()
    want = ref.harmonize_weights(W, clip=None if clip is None else tuple(float(c) for c in clip),
                                 normalize=normalize, group=None if group is None else np.asarray(group))
    assert_close_scaled(got, want, 1e-12, rtol=1e-9, what="weights")


# ---- regressions found by the tests above -----------------------------------------

def test_ragged_lengths_with_scalar_statistics_name_lengths():
    # np.shape of a ragged list raised NumPy's own unnamed ValueError
    import pytest

    with pytest.raises(TypeError, match="^lengths"):
        o1pruner.length_harmonizing_reward([[1.0, 2.0], [3.0]], [1, 0], 1.0, 0.5)
