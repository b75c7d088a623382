"""Rewards family: reference_stats, length_harmonizing_reward,
harmonize_weights and aes, against the float64 references and against a
straight transcription of the public O1-Pruner code."""

import random

import numpy as np
import pytest

import o1pruner
from o1pruner.kernels import slow as ref

from helpers import assert_close, layouts, leak_check


def random_samples(rng, G=20, kmax=8):
    counts = rng.integers(1, kmax + 1, size=G)
    ids = rng.permutation(rng.choice(10_000, size=G, replace=False))
    group = np.repeat(ids, counts)
    perm = rng.permutation(group.size)
    group = group[perm]
    lengths = rng.integers(5, 4000, size=group.size)
    correct = rng.random(group.size) < 0.6
    return lengths, correct, group


# ---- reference_stats --------------------------------------------------------

def test_reference_stats_matches_reference(rng):
    for _ in range(20):
        lengths, correct, group = random_samples(rng)
        got = o1pruner.reference_stats(lengths, correct, group)
        want = ref.reference_stats(lengths, correct, group)
        np.testing.assert_array_equal(got.ids, want[0])
        assert_close(got.mean_length, want[1], rtol=1e-15, atol=0, what="mean_length")
        assert_close(got.accuracy, want[2], rtol=1e-15, atol=0, what="accuracy")
        np.testing.assert_array_equal(got.count, want[3])
        np.testing.assert_array_equal(got.inverse, want[4])
        assert got.ids.dtype == np.int64 and got.count.dtype == np.int64
        ml, acc = got.per_sample()
        assert_close(ml, want[1][want[4]], rtol=0, atol=0, what="per_sample")


def test_reference_stats_offsets_equals_ids(rng):
    counts = np.array([3, 1, 4, 2])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    lengths = rng.integers(1, 100, size=offsets[-1])
    correct = rng.random(offsets[-1]) < 0.5
    a = o1pruner.reference_stats(lengths, correct, offsets=offsets)
    b = o1pruner.reference_stats(lengths, correct, np.repeat(np.arange(4), counts))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_reference_stats_exact_public_mean():
    # the public code: avg_length = sum(lengths) / len(lengths), in Python floats
    lengths = [1234, 987, 3001, 17, 555, 2222, 4096, 31]
    s = o1pruner.reference_stats(lengths, [1, 0, 1, 1, 0, 0, 1, 1], offsets=[0, 8])
    assert s.mean_length[0] == sum(lengths) / len(lengths)
    assert s.accuracy[0] == 5 / 8


def test_reference_stats_layouts_and_dtypes(rng):
    lengths, correct, group = random_samples(rng, G=5)
    want = o1pruner.reference_stats(lengths, correct, group)
    for name, arr in layouts(lengths.astype(np.float32)):
        got = o1pruner.reference_stats(arr, correct, group)
        assert_close(got.mean_length, want.mean_length, rtol=1e-7, atol=0, what=name)
    for dt in (np.int8, np.uint16, np.int32, np.uint64):
        got = o1pruner.reference_stats(group.astype(np.int64) * 0 + 3, correct, group.astype(dt) % 100)
        assert np.all(got.mean_length == 3.0)
    got = o1pruner.reference_stats(list(lengths), list(correct), list(group))
    assert_close(got.mean_length, want.mean_length, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(lengths=[], correct=[], group=[]), ValueError, "lengths"),
        (dict(lengths=[1, 2], correct=[1], group=[0, 0]), ValueError, "correct"),
        (dict(lengths=[1, 0], correct=[1, 1], group=[0, 0]), ValueError, "lengths"),
        (dict(lengths=[1, -3], correct=[1, 1], group=[0, 0]), ValueError, "lengths"),
        (dict(lengths=[1, np.nan], correct=[1, 1], group=[0, 0]), ValueError, "lengths"),
        (dict(lengths=[1, np.inf], correct=[1, 1], group=[0, 0]), ValueError, "lengths"),
        (dict(lengths=[1, 2], correct=[1, 2], group=[0, 0]), ValueError, "correct"),
        (dict(lengths=[1, 2], correct=[1, np.nan], group=[0, 0]), ValueError, "correct"),
        (dict(lengths=[1, 2], correct=[1, 1], group=[0]), ValueError, "group"),
        (dict(lengths=[1, 2], correct=[1, 1], group=[0.0, 1.0]), TypeError, "group"),
        (dict(lengths=[1, 2], correct=[1, 1], group=[True, False]), TypeError, "group"),
        (dict(lengths=[1, 2], correct=[1, 1]), TypeError, "group"),
        (dict(lengths=[1, 2], correct=[1, 1], group=[0, 0], offsets=[0, 2]), TypeError, "group"),
        (dict(lengths=[1, 2], correct=[1, 1], offsets=[0, 0, 2]), ValueError, "offsets"),
        (dict(lengths=[1, 2], correct=[1, 1], offsets=[0, 1]), ValueError, "offsets"),
        (dict(lengths=[1, 2], correct=[1, 1], offsets=[1, 2]), ValueError, "offsets"),
        (dict(lengths=[1, 2], correct=[1, 1], offsets=[0]), ValueError, "offsets"),
        (dict(lengths=["a", "b"], correct=[1, 1], group=[0, 0]), TypeError, "lengths"),
        (dict(lengths=np.array([1, 2], dtype=object), correct=[1, 1], group=[0, 0]), TypeError, "lengths"),
        (dict(lengths=[[1, 2]], correct=[[1, 1]], group=[0, 0]), ValueError, "lengths"),
        (dict(lengths=[1 + 1j, 2], correct=[1, 1], group=[0, 0]), TypeError, "lengths"),
        (dict(lengths=None, correct=[1, 1], group=[0, 0]), TypeError, "lengths"),
        (dict(lengths=[1, 2], correct=[1, 1], group=np.array([2**63 + 5, 1], dtype=np.uint64)), ValueError, "group"),
    ],
)
def test_reference_stats_bad_input(kwargs, exc, match):
    kw = dict(kwargs)
    lengths, correct = kw.pop("lengths"), kw.pop("correct")
    group = kw.pop("group", None)
    with pytest.raises(exc, match=match):
        o1pruner.reference_stats(lengths, correct, group, **kw)


# ---- length_harmonizing_reward ---------------------------------------------

def public_code_weights(lengths, correct, K, alpha, seed=42, used=2, lo=-2, hi=4):
    """A line-by-line transcription of the public construct_dataset.py loop
    (Python floats, random.shuffle, clip, np.mean/np.std normalisation)."""
    random.seed(seed)
    items = list(zip(lengths, correct))
    weights = []
    picked = []
    for p in range(len(items) // K):
        its = items[p * K:(p + 1) * K]
        random.shuffle(its)
        ls = [x[0] for x in its]
        cs = [x[1] for x in its]
        avg_length = sum(ls) / len(ls)
        avg_acc = sum([int(c) for c in cs]) / len(cs)
        for i in range(used):
            length_term = (avg_length - ls[i]) / ls[i]
            acc_term = alpha * (int(cs[i]) - avg_acc)
            w = length_term + acc_term
            if w <= lo:
                w = lo
            if w > hi:
                w = hi
            weights.append(w)
            picked.append((p, ls[i], cs[i], avg_length, avg_acc))
    m, s = np.mean(weights), np.std(weights)
    return [(w - m) / s for w in weights], picked


def test_reward_and_weights_reproduce_public_code(rng):
    K, G = 16, 50
    lengths = [int(x) for x in rng.integers(50, 8000, size=K * G)]
    correct = [bool(x) for x in rng.random(K * G) < 0.7]
    want, picked = public_code_weights(lengths, correct, K, alpha=2.0)
    stats = o1pruner.reference_stats(lengths, correct, offsets=np.arange(0, K * G + 1, K))
    p = np.array([x[0] for x in picked])
    L = np.array([x[1] for x in picked])
    A = np.array([x[2] for x in picked])
    r = o1pruner.length_harmonizing_reward(L, A, stats.mean_length[p], stats.accuracy[p], lam=2.0)
    # the per-sample reward before clipping equals the public code's bit for bit
    for i, (_, l, c, avg_l, avg_a) in enumerate(picked):
        assert stats.mean_length[p[i]] == avg_l and stats.accuracy[p[i]] == avg_a
        w = (avg_l - l) / l + 2.0 * (int(c) - avg_a)
        assert r[i] == w
    got = o1pruner.harmonize_weights(r, clip=(-2, 4), normalize="dataset")
    assert_close(got, want, rtol=1e-12, atol=1e-12, what="public weights")


def test_reward_matches_reference(rng):
    S = 1000
    L = rng.integers(1, 5000, size=S)
    A = rng.random(S) < 0.5
    Lbar = rng.uniform(1, 5000, size=S)
    Abar = rng.random(S)
    for lam in (0.0, 1.0, 2.0, 5.0):
        got = o1pruner.length_harmonizing_reward(L, A, Lbar, Abar, lam)
        want = ref.length_harmonizing_reward(L, A, Lbar, Abar, lam)
        assert_close(got, want, rtol=1e-13, atol=1e-13, what=f"lam={lam}")


def test_reward_scalar_reference():
    got = o1pruner.length_harmonizing_reward([50, 100, 200], [1, 1, 0], 100, 2 / 3, lam=0.0)
    assert got.tolist() == [1.0, 0.0, -0.5]


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (([1, 2], [1, 1], [1, 1], [0.5, 0.5], -1.0), ValueError, "lam"),
        (([1, 2], [1, 1], [1, 1], [0.5, 0.5], float("nan")), ValueError, "lam"),
        (([1, 2], [1, 1], [1, 1], [0.5, 0.5], "x"), TypeError, "lam"),
        (([1, 2], [1, 1], [1, 1], [0.5, 0.5], True), TypeError, "lam"),
        (([1, 2], [1, 1], [1], [0.5, 0.5], 1.0), ValueError, "ref_mean_length"),
        (([1, 2], [1, 1], [1, 0], [0.5, 0.5], 1.0), ValueError, "ref_mean_length"),
        (([1, 2], [1, 1], [1, 1], [0.5, np.nan], 1.0), ValueError, "ref_accuracy"),
        (([1, 2], [1, 1], [1, 1], ["a", "b"], 1.0), TypeError, "ref_accuracy"),
        (([0, 2], [1, 1], [1, 1], [0.5, 0.5], 1.0), ValueError, "lengths"),
    ],
)
def test_reward_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        o1pruner.length_harmonizing_reward(*args)


# ---- harmonize_weights -----------------------------------------------------

def test_harmonize_clip_rule_is_public_codes():
    w = np.array([-2.0, -2.5, -1.999, 4.0, 4.0001, 3.9])
    got = o1pruner.harmonize_weights(w, clip=(-2, 4), normalize=None)
    assert got.tolist() == [-2.0, -2.0, -1.999, 4.0, 4.0, 3.9]


def test_harmonize_matches_reference(rng):
    w = rng.normal(0, 3, size=500)
    group = rng.integers(0, 40, size=500)
    for normalize in ("dataset", "group", None):
        for clip in ((-2.0, 4.0), None, (-1, 1)):
            kw = dict(group=group) if normalize == "group" else {}
            got = o1pruner.harmonize_weights(w, clip=clip, normalize=normalize, **kw)
            want = ref.harmonize_weights(w, clip=clip, normalize=normalize, **kw)
            assert_close(got, want, rtol=1e-12, atol=1e-12, what=f"{normalize} {clip}")


def test_harmonize_zero_spread_gives_zeros():
    assert o1pruner.harmonize_weights([0.1, 0.1, 0.1]).tolist() == [0.0, 0.0, 0.0]
    assert o1pruner.harmonize_weights([5.0, 7.0], clip=(-2, 4)).tolist() == [0.0, 0.0]
    got = o1pruner.harmonize_weights([1.0, 1.0, 0.0, 2.0], normalize="group", group=[0, 0, 1, 1])
    assert got.tolist() == [0.0, 0.0, -1.0, 1.0]
    assert o1pruner.harmonize_weights([3.0]).tolist() == [0.0]


def test_harmonize_input_not_modified(rng):
    w = rng.normal(size=50)
    keep = w.copy()
    o1pruner.harmonize_weights(w)
    np.testing.assert_array_equal(w, keep)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(rewards=[]), ValueError, "rewards"),
        (dict(rewards=[1.0, np.nan]), ValueError, "rewards"),
        (dict(rewards=[1.0, np.inf]), ValueError, "rewards"),
        (dict(rewards=[1.0, 2.0], clip=(4, -2)), ValueError, "clip"),
        (dict(rewards=[1.0, 2.0], clip=(1,)), ValueError, "clip"),
        (dict(rewards=[1.0, 2.0], clip=3), TypeError, "clip"),
        (dict(rewards=[1.0, 2.0], clip=("a", 1)), TypeError, "clip"),
        (dict(rewards=[1.0, 2.0], normalize="batch"), ValueError, "normalize"),
        (dict(rewards=[1.0, 2.0], normalize=3), TypeError, "normalize"),
        (dict(rewards=[1.0, 2.0], normalize="group"), ValueError, "group"),
        (dict(rewards=[1.0, 2.0], normalize="group", group=[0]), ValueError, "group"),
        (dict(rewards=[1.0, 2.0], normalize="dataset", group=[0, 1]), ValueError, "group"),
        (dict(rewards=["x"]), TypeError, "rewards"),
    ],
)
def test_harmonize_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        o1pruner.harmonize_weights(**kwargs)


# ---- aes ---------------------------------------------------------------------

def test_aes_reproduces_paper_table2():
    # Marco-o1-7B + O1-Pruner per dataset (method.md): AES .58, .43, .64; avg .55
    rows = [((73.8, 1156), (77.5, 657), 0.58), ((89.2, 530), (91.4, 343), 0.43),
            ((57.1, 1112), (61.6, 664), 0.64)]
    vals = []
    for (a0, l0), (a1, l1), printed in rows:
        v = o1pruner.aes(a0, l0, a1, l1)
        assert abs(v - printed) <= 0.005, (v, printed)
        vals.append(v)
    assert abs(np.mean(vals) - 0.55) <= 0.005
    # QwQ-32B-Preview averages: 88.2/1717 -> 89.3/1121, AES 0.38
    assert abs(o1pruner.aes(88.2, 1717, 89.3, 1121) - 0.38) <= 0.005


def test_aes_sign_conventions():
    # accuracy drops by 10% relative, length drops by 20%
    stated = o1pruner.aes(50.0, 1000, 45.0, 800)
    table = o1pruner.aes(50.0, 1000, 45.0, 800, sign_convention="paper_table")
    assert stated == pytest.approx(0.2 - 5 * 0.1)
    assert table == pytest.approx(0.2 + 3 * 0.1)
    arr = o1pruner.aes(np.array([50.0, 50.0]), 1000, np.array([45.0, 55.0]), 800)
    assert arr.shape == (2,) and arr[1] == pytest.approx(0.2 + 0.3)
    with pytest.raises(ValueError, match="sign_convention"):
        o1pruner.aes(1, 1, 1, 1, sign_convention="x")
    with pytest.raises(ValueError, match="acc_base"):
        o1pruner.aes(0, 1, 1, 1)
    with pytest.raises(ValueError, match="len_base"):
        o1pruner.aes(1, 0, 1, 1)
    with pytest.raises(TypeError, match="acc"):
        o1pruner.aes(1, 1, "a", 1)


# ---- leaks ---------------------------------------------------------------------

def test_rewards_no_leak(rng):
    lengths, correct, group = random_samples(rng)

    def calls():
        o1pruner.reference_stats(lengths, correct, group)
        o1pruner.length_harmonizing_reward(lengths, correct, lengths, correct, 2.0)
        o1pruner.harmonize_weights(lengths.astype(float), normalize="group", group=group)
        for bad in (lambda: o1pruner.reference_stats(lengths, correct, group[:-1]),
                    lambda: o1pruner.harmonize_weights([np.nan]),
                    lambda: o1pruner.reference_stats(lengths, correct, offsets=[0, 0, len(lengths)])):
            try:
                bad()
            except ValueError:
                pass

    leak_check(calls, n=3000)
