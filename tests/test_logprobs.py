"""token_logprobs and token_logprobs_backward against the float64 reference
(o1pruner.reference), finite differences, layouts and dtypes, extreme values,
bad input, leaks and thread-count independence."""

import numpy as np
import pytest

import o1pruner
from o1pruner.kernels import slow as ref

from helpers import assert_close, layouts, leak_check

U = 2.0**-24  # float32 unit roundoff


def random_case(rng, N, V, scale=3.0, offset=0.0, mask_frac=0.0, ignore_frac=0.0,
                ignore_index=-100):
    """Logits [N, V] float32 (some entries -inf if mask_frac > 0, never a whole
    row) and targets [N] (a fraction of them ignore_index)."""
    x = (offset + scale * rng.standard_normal((N, V))).astype(np.float32)
    if mask_frac > 0:
        m = rng.random((N, V)) < mask_frac
        m[np.arange(N), rng.integers(0, V, N)] = False  # keep one finite entry per row
        x[m] = -np.inf
    t = rng.integers(0, V, N)
    if mask_frac > 0:
        # targets on finite entries (a -inf target is tested separately)
        for i in range(N):
            t[i] = rng.choice(np.flatnonzero(np.isfinite(x[i])))
    if ignore_frac > 0:
        t[rng.random(N) < ignore_frac] = ignore_index
    return x, t


def check_forward(x, t, temperature=1.0, ignore_index=-100, what=""):
    """C forward against the float64 reference. Tolerances: a few float32
    roundings of the quantity itself; logp also of |z_t - max z| (the shifted
    logit is formed in float32)."""
    got = o1pruner.token_logprobs(x, t, temperature, ignore_index)
    want = ref.token_logprobs(x, t, temperature, ignore_index)
    for a in got:
        assert a.dtype == np.float32 and a.shape == (x.shape[0],)
    z = x.astype(np.float64) / temperature
    spread = np.where(np.isfinite(z), np.abs(z - z.max(axis=1, keepdims=True)), 0).max(axis=1)
    assert_close(got.lse, want[2], rtol=4 * U, atol=2e-6, what=f"{what} lse")
    finite_t = np.isfinite(want[0])
    assert_close(got.logp[finite_t], want[0][finite_t], rtol=8 * U,
                 atol=(2e-6 + 8 * U * spread)[finite_t], what=f"{what} logp")
    assert np.array_equal(np.isneginf(got.logp), np.isneginf(want[0])), f"{what}: -inf logp"
    assert_close(got.entropy, want[1], rtol=1e-5, atol=2e-6, what=f"{what} entropy")
    assert np.all(got.entropy >= 0)
    ign = t == ignore_index
    assert np.all(got.logp[ign] == 0) and np.all(got.entropy[ign] == 0) and np.all(got.lse[ign] == 0)
    return got


def check_backward(x, t, lse, g, h, temperature=1.0, ignore_index=-100, what=""):
    """C backward against the float64 reference backward. p is recomputed
    from the float32 lse and normalised by its sum: a relative error of a few
    1e-6 whatever the size of the logits."""
    got = o1pruner.token_logprobs_backward(x, t, lse, g, h, temperature, ignore_index)
    want = ref.token_logprobs_backward(x, t, g, h, temperature, ignore_index)
    assert got.dtype == np.float32 and got.shape == x.shape
    gmax = np.abs(g).astype(np.float64) + (0 if h is None else np.abs(h).astype(np.float64) * 10)
    atol = (gmax * 5e-6 / temperature)[:, None] + 1e-7
    assert_close(got, want, rtol=1e-5, atol=atol, what=f"{what} dlogits")
    assert np.all(got[np.isneginf(x)] == 0), f"{what}: gradient where p = 0"
    assert np.all(got[t == ignore_index] == 0)
    return got


# ---- forward and backward against the reference ----------------------------

@pytest.mark.parametrize("N,V", [(1, 1), (1, 7), (5, 1), (3, 31), (17, 100), (4, 2047), (4, 2048),
                                 (3, 2049), (9, 5000), (2, 32000)])
def test_matches_reference_shapes(rng, N, V):
    x, t = random_case(rng, N, V, ignore_frac=0.2)
    out = check_forward(x, t, what=f"{N}x{V}")
    g = rng.standard_normal(N).astype(np.float32)
    h = rng.standard_normal(N).astype(np.float32)
    check_backward(x, t, out.lse, g, None, what=f"{N}x{V} logp-only")
    check_backward(x, t, out.lse, g, h, what=f"{N}x{V} with entropy")


def test_matches_reference_random_shapes(rng):
    for _ in range(25):
        N = int(rng.integers(1, 40))
        V = int(rng.integers(1, 5000))
        T = float(rng.choice([1.0, 0.5, 2.0, 0.9]))
        x, t = random_case(rng, N, V, scale=float(rng.uniform(0.1, 20)),
                           offset=float(rng.uniform(-100, 100)),
                           mask_frac=float(rng.choice([0.0, 0.3])), ignore_frac=0.2)
        what = f"N={N} V={V} T={T}"
        out = check_forward(x, t, T, what=what)
        g = rng.standard_normal(N).astype(np.float32)
        h = rng.standard_normal(N).astype(np.float32)
        check_backward(x, t, out.lse, g, h if rng.random() < 0.5 else None, T, what=what)


def test_v1_is_certain(rng):
    x = rng.standard_normal((6, 1)).astype(np.float32)
    out = o1pruner.token_logprobs(x, np.zeros(6, np.int64))
    assert np.all(out.logp == 0) and np.all(out.entropy == 0)
    assert_close(out.lse, x[:, 0], rtol=0, atol=0)
    g = o1pruner.token_logprobs_backward(x, np.zeros(6, np.int64), out.lse, np.ones(6), np.ones(6))
    assert np.all(g == 0)


def test_uniform_rows_have_entropy_log_v():
    for V in (2, 10, 151936):
        x = np.full((2, V), 3.5, np.float32)
        out = o1pruner.token_logprobs(x, [0, V - 1])
        assert_close(out.entropy, np.full(2, np.log(V)), rtol=2e-6, atol=0, what=f"V={V}")
        assert_close(out.logp, np.full(2, -np.log(V)), rtol=2e-6, atol=0, what=f"V={V}")


def test_large_vocabulary(rng):
    x, t = random_case(rng, 3, 151936, scale=4.0, mask_frac=0.1)
    out = check_forward(x, t, what="V=151936")
    g = rng.standard_normal(3).astype(np.float32)
    h = rng.standard_normal(3).astype(np.float32)
    check_backward(x, t, out.lse, g, h, what="V=151936")
    x, t = random_case(rng, 2, 262144 + 5, scale=2.0)
    out = check_forward(x, t, temperature=0.6, what="V=262149")
    check_backward(x, t, out.lse, g[:2], None, temperature=0.6, what="V=262149")


def test_large_output_rows_independent(rng):
    """A large call (68 MB of logits, two threads) gives the same bits per row
    as small calls on row subsets, and the reference on a few rows."""
    N, V = 112, 151936
    x, t = random_case(rng, N, V, scale=2.0, mask_frac=0.01, ignore_frac=0.1)
    g = rng.standard_normal(N).astype(np.float32)
    h = rng.standard_normal(N).astype(np.float32)
    out = o1pruner.token_logprobs(x, t)
    for hh in (None, h):
        d = o1pruner.token_logprobs_backward(x, t, out.lse, g, hh)
        for rows in (slice(0, 3), slice(50, 53), slice(N - 3, N)):
            small = o1pruner.token_logprobs_backward(x[rows], t[rows], out.lse[rows], g[rows],
                                                     None if hh is None else hh[rows])
            np.testing.assert_array_equal(d[rows], small)
        sel = [0, 57, N - 1]
        check_backward(x[sel], t[sel], out.lse[sel], g[sel], None if hh is None else hh[sel],
                       what="large call rows")


@pytest.mark.parametrize("temperature", [0.3, 0.7, 1.0, 1.3, 4.0, 1e-3, 250.0])
def test_temperature(rng, temperature):
    x, t = random_case(rng, 12, 700, ignore_frac=0.1, mask_frac=0.05)
    out = check_forward(x, t, temperature, what=f"T={temperature}")
    g = rng.standard_normal(12).astype(np.float32)
    h = rng.standard_normal(12).astype(np.float32)
    check_backward(x, t, out.lse, g, h, temperature, what=f"T={temperature}")


@pytest.mark.parametrize("offset,scale", [(1e4, 3.0), (-1e4, 3.0), (0.0, 1e4), (3e4, 0.5)])
def test_extreme_logits(rng, offset, scale):
    x, t = random_case(rng, 8, 3000, scale=scale, offset=offset, mask_frac=0.02)
    out = check_forward(x, t, what=f"offset {offset} scale {scale}")
    g = rng.standard_normal(8).astype(np.float32)
    h = rng.standard_normal(8).astype(np.float32)
    check_backward(x, t, out.lse, g, h, what=f"offset {offset} scale {scale}")
    check_backward(x, t, out.lse, g, None, what=f"offset {offset} scale {scale} logp-only")
    assert np.all(np.isfinite(out.entropy)) and np.all(np.isfinite(out.lse))


def test_huge_finite_logits():
    # |z| near FLT_MAX: differences overflow float32 but p is still well defined
    x = np.array([[3e38, -3e38, 0.0, 3e38], [-3e38, -3e38, -3e38, -3e38]], np.float32)
    out = o1pruner.token_logprobs(x, [0, 2])
    assert_close(out.logp, [-np.log(2), -np.log(4)], rtol=1e-6, atol=0)
    assert_close(out.entropy, [np.log(2), np.log(4)], rtol=1e-6, atol=0)
    g = o1pruner.token_logprobs_backward(x, [0, 2], out.lse, [1.0, 1.0])
    assert_close(g, [[0.5, 0, 0, -0.5], [-0.25, -0.25, 0.75, -0.25]], rtol=1e-6, atol=1e-7)


def test_masked_vocabulary(rng):
    x, t = random_case(rng, 40, 900, mask_frac=0.7, ignore_frac=0.1)
    out = check_forward(x, t, what="70% masked")
    g = rng.standard_normal(40).astype(np.float32)
    h = rng.standard_normal(40).astype(np.float32)
    check_backward(x, t, out.lse, g, h, what="70% masked")
    # only one finite entry: certain, no NaN from 0 * -inf
    x = np.full((3, 5000), -np.inf, np.float32)
    x[0, 4999] = 2.0
    x[1, 0] = -7.0
    x[2, 2500] = 1e4
    tt = np.array([4999, 0, 2500])
    out = o1pruner.token_logprobs(x, tt)
    assert np.all(out.logp == 0) and np.all(out.entropy == 0)
    assert_close(out.lse, [2.0, -7.0, 1e4], rtol=0, atol=0)
    d = o1pruner.token_logprobs_backward(x, tt, out.lse, np.ones(3), np.ones(3))
    assert np.all(d == 0)


def test_nan_after_masked_blocks_is_found():
    # a NaN inside leading all -inf blocks must not be skipped with them
    x = np.full((1, 10000), -np.inf, np.float32)
    x[0, 100] = np.nan
    x[0, 9000] = 1.0
    with pytest.raises(ValueError, match="logits: row 0 contains NaN"):
        o1pruner.token_logprobs(x, [9000])


def test_target_at_minus_inf_gives_minus_inf_logp():
    x = np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]], np.float32)
    out = o1pruner.token_logprobs(x, [1, 2])
    assert np.all(np.isneginf(out.logp))
    want = ref.token_logprobs(x, [1, 2])
    assert_close(out.entropy, want[1], rtol=1e-6, atol=1e-7)
    assert_close(out.lse, want[2], rtol=1e-6, atol=1e-7)
    # the gradient of logp there is still the finite onehot - p
    d = o1pruner.token_logprobs_backward(x, [1, 2], out.lse, [1.0, 2.0])
    assert_close(d, ref.token_logprobs_backward(x, [1, 2], [1.0, 2.0]), rtol=1e-6, atol=1e-7)
    assert d[0, 1] == 1.0 and d[1, 2] == 2.0


def test_ignore_index_values(rng):
    x, t = random_case(rng, 10, 50)
    t[[1, 4]] = 7
    for ignore in (7, -1, 2**62):
        out = check_forward(x, t, ignore_index=ignore, what=f"ignore {ignore}")
        g = rng.standard_normal(10).astype(np.float32)
        check_backward(x, t, out.lse, g, None, ignore_index=ignore, what=f"ignore {ignore}")
    # every row ignored: zeros, and the logits are not even looked at
    bad = np.full((3, 4), np.nan, np.float32)
    out = o1pruner.token_logprobs(bad, [-100] * 3)
    assert np.all(out.logp == 0) and np.all(out.lse == 0)
    assert np.all(o1pruner.token_logprobs_backward(bad, [-100] * 3, [np.nan] * 3, [np.nan] * 3) == 0)


# ---- gradients: finite differences ------------------------------------------

def objective_ref(x, t, g, h, temperature, ignore_index=-100):
    logp, ent, _ = ref.token_logprobs(x, t, temperature, ignore_index)
    logp = np.where(t == ignore_index, 0.0, logp)
    return float(np.dot(g, logp) + np.dot(h, ent))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_reference_backward_finite_differences(rng, temperature):
    """The float64 reference backward equals central differences of the
    float64 reference forward (so it can judge the C backward)."""
    N, V = 4, 9
    x = rng.standard_normal((N, V))
    x[0, 3] = x[2, [0, 5]] = -np.inf
    t = np.array([1, -100, 4, 8])
    g, h = rng.standard_normal(N), rng.standard_normal(N)
    grad = ref.token_logprobs_backward(x, t, g, h, temperature)
    eps = 1e-6
    fd = np.zeros_like(x)
    for i in range(N):
        for j in range(V):
            if not np.isfinite(x[i, j]):
                continue
            xp, xm = x.copy(), x.copy()
            xp[i, j] += eps
            xm[i, j] -= eps
            fd[i, j] = (objective_ref(xp, t, g, h, temperature) - objective_ref(xm, t, g, h, temperature)) / (2 * eps)
    assert_close(grad, fd, rtol=1e-6, atol=1e-8, what="reference vs FD")
    assert np.all(grad[~np.isfinite(x)] == 0)


def test_c_backward_finite_differences_float32(rng):
    """The C backward against central differences of the C forward itself,
    in float32 (step 1e-2: truncation ~1e-5, roundoff ~1e-5)."""
    N, V = 3, 6
    x = rng.standard_normal((N, V)).astype(np.float32)
    x[1, 2] = -np.inf
    t = np.array([2, 0, 5])
    g = rng.standard_normal(N).astype(np.float32)
    h = rng.standard_normal(N).astype(np.float32)
    T = 0.8

    def f(xx):
        out = o1pruner.token_logprobs(xx, t, T)
        return float(np.dot(g.astype(np.float64), out.logp) + np.dot(h.astype(np.float64), out.entropy))

    out = o1pruner.token_logprobs(x, t, T)
    grad = o1pruner.token_logprobs_backward(x, t, out.lse, g, h, T)
    eps = np.float32(1e-2)
    fd = np.zeros((N, V))
    for i in range(N):
        for j in range(V):
            if not np.isfinite(x[i, j]):
                continue
            xp, xm = x.copy(), x.copy()
            xp[i, j] += eps
            xm[i, j] -= eps
            fd[i, j] = (f(xp) - f(xm)) / (float(xp[i, j]) - float(xm[i, j]))
    assert_close(grad, fd, rtol=1e-3, atol=2e-4, what="C backward vs float32 FD")


# ---- layouts, dtypes, inputs not modified -----------------------------------

def test_layouts_and_dtypes_give_identical_results(rng):
    x, t = random_case(rng, 6, 300, mask_frac=0.1)
    base = o1pruner.token_logprobs(x, t, 0.9)
    g = rng.standard_normal(6).astype(np.float32)
    h = rng.standard_normal(6).astype(np.float32)
    dbase = o1pruner.token_logprobs_backward(x, t, base.lse, g, h, 0.9)
    for name, xl in layouts(x):
        out = o1pruner.token_logprobs(xl, t, 0.9)
        for a, b in zip(out, base):
            np.testing.assert_array_equal(a, b, err_msg=name)
        d = o1pruner.token_logprobs_backward(xl, t, base.lse, g, h, 0.9)
        np.testing.assert_array_equal(d, dbase, err_msg=name)
    for name, tl in layouts(t):
        out = o1pruner.token_logprobs(x, tl, 0.9)
        np.testing.assert_array_equal(out.logp, base.logp, err_msg=f"targets {name}")
    t_small = t % 100
    small = o1pruner.token_logprobs(x, t_small, 0.9)
    for dt in (np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint64):
        out = o1pruner.token_logprobs(x, t_small.astype(dt), 0.9)
        np.testing.assert_array_equal(out.logp, small.logp, err_msg=str(dt))
    for name, gl in layouts(g):
        d = o1pruner.token_logprobs_backward(x, t, base.lse.astype(np.float64), gl, h, 0.9)
        np.testing.assert_array_equal(d, dbase, err_msg=f"grad_logp {name}")
    # float16 logits: exactly the float32 results of the same values
    x16 = x.astype(np.float16)
    out16 = o1pruner.token_logprobs(x16, t)
    out32 = o1pruner.token_logprobs(x16.astype(np.float32), t)
    for a, b in zip(out16, out32):
        np.testing.assert_array_equal(a, b)
    # lists work too
    out = o1pruner.token_logprobs(x[:2].tolist(), t[:2].tolist(), 0.9)
    np.testing.assert_array_equal(out.logp, base.logp[:2])


def test_float64_input_matches_reference(rng):
    x = 3 * rng.standard_normal((5, 400))
    t = rng.integers(0, 400, 5)
    out = o1pruner.token_logprobs(x, t)
    want = ref.token_logprobs(x.astype(np.float32), t)
    assert_close(out.logp, want[0], rtol=1e-6, atol=2e-6)


def test_inputs_not_modified(rng):
    x, t = random_case(rng, 7, 130, mask_frac=0.1, ignore_frac=0.2)
    g = rng.standard_normal(7).astype(np.float32)
    h = rng.standard_normal(7).astype(np.float32)
    for xx in (x, x.astype(np.float64), np.asfortranarray(x)):
        keep = [a.copy() for a in (xx, t, g, h)]
        out = o1pruner.token_logprobs(xx, t)
        lse_keep = out.lse.copy()
        o1pruner.token_logprobs_backward(xx, t, out.lse, g, h)
        for a, b in zip((xx, t, g, h), keep):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(out.lse, lse_keep)


def test_one_and_two_threads_identical(rng):
    x, t = random_case(rng, 64, 5000, mask_frac=0.05, ignore_frac=0.1)
    g = rng.standard_normal(64).astype(np.float32)
    h = rng.standard_normal(64).astype(np.float32)
    n0 = o1pruner.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            o1pruner.set_num_threads(n)
            out = o1pruner.token_logprobs(x, t, 0.8)
            d = o1pruner.token_logprobs_backward(x, t, out.lse, g, h, 0.8)
            res.append((out, d))
    finally:
        o1pruner.set_num_threads(n0)
    for a, b in zip(res[0][0], res[1][0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(res[0][1], res[1][1])


def test_public_api_and_namedtuple():
    out = o1pruner.token_logprobs(np.zeros((2, 3), np.float32), [0, 1])
    assert isinstance(out, o1pruner.TokenLogprobs)
    logp, entropy, lse = out
    assert out.logp is logp and out.entropy is entropy and out.lse is lse
    assert "token_logprobs" in o1pruner.__all__ and "token_logprobs_backward" in o1pruner.__all__
    # keyword names as documented
    d = o1pruner.token_logprobs_backward(logits=np.zeros((2, 3)), targets=[0, 1], lse=out.lse,
                                         grad_logp=[1, 1], grad_entropy=None, temperature=1.0,
                                         ignore_index=-100)
    assert d.shape == (2, 3)


# ---- bad input ----------------------------------------------------------------

X = np.zeros((3, 4), np.float32)
T3 = np.array([0, 1, 3])


def _row(value, col=1, row=1):
    x = X.copy()
    x[row, col] = value
    return x


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(logits=np.zeros(4, np.float32), targets=[0]), ValueError, "logits"),
        (dict(logits=np.zeros((2, 2, 2), np.float32), targets=[0, 0]), ValueError, "logits"),
        (dict(logits=np.zeros((3, 4), np.int32), targets=T3), TypeError, "logits"),
        (dict(logits=np.zeros((3, 4), bool), targets=T3), TypeError, "logits"),
        (dict(logits=np.zeros((3, 4), complex), targets=T3), TypeError, "logits"),
        (dict(logits=np.zeros((3, 4), object), targets=T3), TypeError, "logits"),
        (dict(logits=[["a", "b"]], targets=[0]), TypeError, "logits"),
        (dict(logits=None, targets=T3), TypeError, "logits"),
        (dict(logits=np.zeros((0, 4), np.float32), targets=[]), ValueError, "logits"),
        (dict(logits=np.zeros((3, 0), np.float32), targets=T3), ValueError, "logits"),
        (dict(logits=_row(np.nan), targets=T3), ValueError, "logits: row 1 contains NaN"),
        (dict(logits=_row(np.inf), targets=T3), ValueError, r"logits: row 1 contains \+inf"),
        (dict(logits=np.where(np.arange(3)[:, None] == 2, -np.inf, X).astype(np.float32), targets=T3),
         ValueError, "logits: row 2 is all -inf"),
        (dict(logits=_row(3e38), targets=T3, temperature=0.5), ValueError, "logits: row 1.*overflows"),
        (dict(logits=X, targets=np.array([0.0, 1.0, 2.0])), TypeError, "targets"),
        (dict(logits=X, targets=np.array([True, False, True])), TypeError, "targets"),
        (dict(logits=X, targets=[0, 1]), ValueError, "targets"),
        (dict(logits=X, targets=[[0, 1, 2]]), ValueError, "targets"),
        (dict(logits=X, targets=[0, 4, 1]), ValueError, "targets"),
        (dict(logits=X, targets=[0, -1, 1]), ValueError, "targets"),
        (dict(logits=X, targets=None), TypeError, "targets"),
        (dict(logits=X, targets=T3, temperature=0.0), ValueError, "temperature"),
        (dict(logits=X, targets=T3, temperature=-1.0), ValueError, "temperature"),
        (dict(logits=X, targets=T3, temperature=np.nan), ValueError, "temperature"),
        (dict(logits=X, targets=T3, temperature=np.inf), ValueError, "temperature"),
        (dict(logits=X, targets=T3, temperature=1e-40), ValueError, "temperature"),
        (dict(logits=X, targets=T3, temperature=1e39), ValueError, "temperature"),
        (dict(logits=X, targets=T3, temperature="1"), TypeError, "temperature"),
        (dict(logits=X, targets=T3, temperature=True), TypeError, "temperature"),
        (dict(logits=X, targets=T3, temperature=None), TypeError, "temperature"),
        (dict(logits=X, targets=T3, ignore_index=1.5), TypeError, "ignore_index"),
        (dict(logits=X, targets=T3, ignore_index="x"), TypeError, "ignore_index"),
        (dict(logits=X, targets=T3, ignore_index=True), TypeError, "ignore_index"),
        (dict(logits=X, targets=T3, ignore_index=2**70), ValueError, "ignore_index"),
    ],
)
def test_forward_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        o1pruner.token_logprobs(**kwargs)
    # the backward validates logits, targets, temperature and ignore_index alike
    kw = dict(kwargs)
    kw.setdefault("targets", T3)
    n = len(kw["targets"]) if isinstance(kw["targets"], (list, np.ndarray)) and np.ndim(kw["targets"]) == 1 else 3
    with pytest.raises(exc, match=match):
        o1pruner.token_logprobs_backward(lse=np.full(n, np.log(4)), grad_logp=np.ones(n), **kw)


LSE = o1pruner.token_logprobs(X, T3).lse
G = np.ones(3, np.float32)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(lse=LSE[:2]), ValueError, "lse"),
        (dict(lse=LSE[None]), ValueError, "lse"),
        (dict(lse=np.array([LSE[0], np.nan, LSE[2]])), ValueError, "lse: contains NaN at row 1"),
        (dict(lse=np.array([LSE[0], np.inf, LSE[2]])), ValueError, "lse"),
        (dict(lse=LSE.astype(np.int32)), TypeError, "lse"),
        (dict(lse=None), TypeError, "lse"),
        (dict(lse=LSE + np.float32([0, 0.5, 0])), ValueError, "lse: row 1.*does not match"),
        (dict(lse=LSE - np.float32([0, 0, 3])), ValueError, "lse: row 2.*does not match"),
        (dict(lse=LSE - np.float32([200, 0, 0])), ValueError, "lse: row 0.*does not match"),
        (dict(lse=LSE - np.float32([0, 200, 0]), grad_entropy=G), ValueError, "lse: row 1.*does not match"),
        (dict(lse=LSE + np.float32([0, 0, 200]), grad_entropy=G), ValueError, "lse: row 2.*does not match"),
        (dict(grad_logp=G[:2]), ValueError, "grad_logp"),
        (dict(grad_logp=np.array([1, np.nan, 1])), ValueError, "grad_logp"),
        (dict(grad_logp=np.array([1, -np.inf, 1])), ValueError, "grad_logp"),
        (dict(grad_logp=np.ones(3, complex)), TypeError, "grad_logp"),
        (dict(grad_logp=["a", "b", "c"]), TypeError, "grad_logp"),
        (dict(grad_logp=None), TypeError, "grad_logp"),
        (dict(grad_entropy=G[:1]), ValueError, "grad_entropy"),
        (dict(grad_entropy=np.array([1, 1, np.nan])), ValueError, "grad_entropy"),
        (dict(grad_entropy=np.array(["a", "b", "c"])), TypeError, "grad_entropy"),
        (dict(logits=_row(np.nan)), ValueError, "logits: row 1 contains NaN"),
        (dict(logits=_row(np.inf), grad_entropy=G), ValueError, r"logits: row 1 contains \+inf"),
    ],
)
def test_backward_bad_input(kwargs, exc, match):
    kw = dict(logits=X, targets=T3, lse=LSE, grad_logp=G)
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        o1pruner.token_logprobs_backward(**kw)


def test_backward_ignores_values_on_ignored_rows():
    t = np.array([0, -100, 3])
    lse = o1pruner.token_logprobs(X, t).lse
    lse[1] = np.nan
    g = np.array([1.0, np.inf, 1.0])
    d = o1pruner.token_logprobs_backward(X, t, lse, g, np.array([0.0, np.nan, 0.0]))
    assert np.all(d[1] == 0) and np.all(np.isfinite(d))


def test_lse_of_other_temperature_is_rejected(rng):
    x = rng.standard_normal((4, 50)).astype(np.float32)
    t = rng.integers(0, 50, 4)
    lse = o1pruner.token_logprobs(x, t, temperature=0.5).lse
    with pytest.raises(ValueError, match="lse: row 0"):
        o1pruner.token_logprobs_backward(x, t, lse, np.ones(4), temperature=1.0)


@pytest.mark.skipif(o1pruner.config()["variant"] == "sanitize",
                    reason="ASan aborts on a 4 EiB malloc unless allocator_may_return_null=1")
def test_huge_broadcast_input_fails_cleanly():
    # 2**60 elements: numpy cannot materialise the float32 copy; an error, no crash
    big = np.broadcast_to(np.float32(0), (2**30, 2**30))
    with pytest.raises((MemoryError, ValueError)):
        o1pruner.token_logprobs(big, np.zeros(2**30 // 2**20, np.int64))


# ---- leaks ---------------------------------------------------------------------

def test_no_leak(rng):
    x, t = random_case(rng, 8, 64, mask_frac=0.1, ignore_frac=0.2)
    g = rng.standard_normal(8).astype(np.float32)
    xd = x.astype(np.float64)
    bad_x = x.copy()
    bad_x[3, 5] = np.nan
    bad_t = t.copy()
    bad_t[0] = 64

    def calls():
        out = o1pruner.token_logprobs(xd, t, 0.7)
        o1pruner.token_logprobs_backward(xd, t, out.lse, g, g, 0.7)
        o1pruner.token_logprobs_backward(x, t, out.lse, g, None, 0.7)
        for bad in (lambda: o1pruner.token_logprobs(bad_x, t),
                    lambda: o1pruner.token_logprobs(x, bad_t),
                    lambda: o1pruner.token_logprobs(x, t, temperature=-1),
                    lambda: o1pruner.token_logprobs_backward(bad_x, t, out.lse, g),
                    lambda: o1pruner.token_logprobs_backward(x, t, out.lse + 1, g, g, 0.7),
                    lambda: o1pruner.token_logprobs_backward(x, t, out.lse[:3], g)):
            try:
                bad()
            except ValueError:
                pass

    leak_check(calls, n=2000)


# ---- backward into a caller's array (out=, accumulate) --------------------------------------

def test_backward_out_and_accumulate_match_new_array(rng):
    # huge logits: the lse rounding needs the renormalisation pass, which
    # accumulate does differently (adds (r - 1) times the row's terms)
    for offset, ge_on in ((0.0, False), (0.0, True), (3e4, False)):
        x, t = random_case(rng, 9, 3001, offset=offset, mask_frac=0.1, ignore_frac=0.2)
        lse = o1pruner.token_logprobs(x, t, 0.8).lse
        g = rng.standard_normal(9).astype(np.float32)
        ge = rng.standard_normal(9).astype(np.float32) if ge_on else None
        want = o1pruner.token_logprobs_backward(x, t, lse, g, ge, 0.8)
        out = np.full_like(x, np.nan)
        got = o1pruner.token_logprobs_backward(x, t, lse, g, ge, 0.8, out=out)
        assert got is out
        assert np.array_equal(out, want)  # the same kernel, written in place: bit for bit
        start = rng.standard_normal(x.shape).astype(np.float32)
        acc = start.copy()
        assert o1pruner.token_logprobs_backward(x, t, lse, g, ge, 0.8, out=acc, accumulate=True) is acc
        ignored = t == -100
        assert np.array_equal(acc[ignored], start[ignored])  # ignored rows left as they are
        assert_close(acc, start + want, rtol=1e-6, atol=4 * U * (np.abs(start) + np.abs(want)).max(),
                     what=f"accumulate offset={offset}")


def test_backward_out_checked_before_writing(rng):
    x, t = random_case(rng, 4, 50)
    lse = o1pruner.token_logprobs(x, t).lse
    g = np.ones(4, np.float32)
    bad = [
        (np.zeros((4, 50), np.float64), TypeError, "out: expected a float32 array"),
        (np.zeros((4, 51), np.float32), ValueError, r"out: expected shape \(4, 50\)"),
        (np.zeros((50, 4), np.float32).T, ValueError, "out: must be C-contiguous"),
        (np.zeros((4, 100), np.float32)[:, ::2], ValueError, "out: must be C-contiguous"),
        ([[0.0] * 50] * 4, TypeError, "out: expected a numpy.ndarray"),
    ]
    ro = np.zeros((4, 50), np.float32)
    ro.flags.writeable = False
    bad.append((ro, ValueError, "out: must be C-contiguous, aligned, native-endian and writeable"))
    for out, exc, match in bad:
        before = np.array(out, copy=True)
        with pytest.raises(exc, match=match):
            o1pruner.token_logprobs_backward(x, t, lse, g, out=out)
        assert np.array_equal(np.asarray(out), before)
    # aliasing an input: the logits themselves, or a buffer that also holds the targets
    x2 = x.copy()
    with pytest.raises(ValueError, match="out: shares memory with logits"):
        o1pruner.token_logprobs_backward(x2, t, lse, g, out=x2)
    assert np.array_equal(x2, x)
    big = np.zeros(4 * 50 + 4, np.float32)
    g_view = big[-4:]
    g_view[:] = 1.0
    out = big[:200].reshape(4, 50)
    out_view_overlapping = big[4:204].reshape(4, 50)
    with pytest.raises(ValueError, match="out: shares memory with grad_logp"):
        o1pruner.token_logprobs_backward(x, t, lse, g_view, out=out_view_overlapping)
    assert np.array_equal(big[-4:], np.ones(4, np.float32)) and not big[:200].any()
    # the other argument checks come first as well
    sentinel = np.full((4, 50), 7.0, np.float32)
    with pytest.raises(ValueError, match="accumulate: needs out"):
        o1pruner.token_logprobs_backward(x, t, lse, g, accumulate=True)
    with pytest.raises(ValueError, match="grad_logp"):
        o1pruner.token_logprobs_backward(x, t, lse, np.full(4, np.nan, np.float32), out=sentinel)
    with pytest.raises(ValueError, match="targets"):
        o1pruner.token_logprobs_backward(x, np.array([0, 1, 2, 50]), lse, g, out=sentinel, accumulate=True)
    assert np.all(sentinel == 7.0)
    del out


def test_expf_fast_error_bound():
    """The softmax-sum exp against float64 over a dense grid of [-87.3365, 0],
    a denser one near 0 (where a row's largest terms lie), and its edges."""
    from o1pruner import _core

    grid = np.concatenate([np.linspace(-87.3365, 0.0, 1 << 22, dtype=np.float32),
                           np.linspace(-0.75, 0.0, 1 << 20, dtype=np.float32),
                           -np.abs(np.random.default_rng(1).standard_normal(1 << 18).astype(np.float32))])
    y, bound = _core._expf_fast(grid)
    want = np.exp(grid.astype(np.float64))
    rel = np.abs(y - want) / want
    assert rel.max() <= bound <= 2.5e-7, (rel.max(), grid[rel.argmax()])
    assert _core._expf_fast(np.array([0.0], np.float32))[0][0] == 1.0  # the row max contributes exactly 1
    edge, _ = _core._expf_fast(np.array([-87.3366, -np.inf, -1e30, np.nan], np.float32))
    assert edge[0] == 0.0 and edge[1] == 0.0 and edge[2] == 0.0 and np.isnan(edge[3])
