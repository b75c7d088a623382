"""Property-based tests of the token log-prob kernels (token_logprobs and its
backward) and of the fused LM head (fused_linear_logprobs and its backward):
any input either gives the float64 reference's result or a named
ValueError/TypeError."""

import numpy as np
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import o1pruner
from o1pruner.kernels import slow as ref

from property_support import (COUNTS, FLOAT32_MAX, Rejected, assert_close_scaled, check_call, float_arrays, laid_out,
                              length_of, maybe_odd, mostly, seen_as, shape_of, with_dtype)

MOD = "logprobs"
FLOAT_DTYPES = ("float32", "float32", "float64", "float16")

temperatures = mostly(
    st.sampled_from([1.0, 1.0, 0.7, 2.0]) | st.floats(1e-3, 1e3),
    st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e-40, 1e39, 1e-300, 1, True, "1", None, np.float32(0.5)]),
    p_odd=3)


def ignore_indices(V):
    return mostly(st.just(-100), st.sampled_from([-1, 0, V, V - 1, 2**62, -2**63, 2**64, True, 1.0, "x",
                                                  np.int64(-100), np.uint64(2**63)]), p_odd=4)


@st.composite
def logits_targets(draw):
    N, V = draw(st.integers(0, 6)), draw(st.integers(0, 7))
    x = draw(float_arrays((N, V)))
    if V and draw(st.integers(0, 4)) == 0:  # mask some tokens out with -inf
        x[draw(hnp.arrays(bool, (N, V)))] = -np.inf
    ig = draw(ignore_indices(V))
    t = draw(hnp.arrays(np.int64, N, elements=st.integers(-1, max(V, 0))))
    if N and draw(st.booleans()) and isinstance(ig, (int, np.integer)) and not isinstance(ig, bool) \
            and -2**63 <= int(ig) < 2**63:
        t[draw(hnp.arrays(bool, N))] = int(ig)
    if draw(st.integers(0, 5)) == 0 and V:
        t = np.clip(t, 0, V - 1)  # all valid
    x = draw(maybe_odd(draw(laid_out(draw(with_dtype(x, FLOAT_DTYPES))))))
    t = draw(maybe_odd(draw(laid_out(draw(with_dtype(t, ("int64", "int32", "uint8", "int16")))))))
    return x, t, ig


def z_of(x, temperature):
    """The scaled logits as the kernel sees them (float32 input, float64 here)."""
    with np.errstate(all="ignore"):
        return seen_as(x) / float(temperature)


def z_scale(z):
    fin = z[np.isfinite(z)]
    return 1.0 + (np.abs(fin).max() if fin.size else 0.0) + np.log(max(z.shape[-1], 1))


@given(data=st.data())
def test_token_logprobs(data):
    draw = data.draw
    x, t, ig = draw(logits_targets())
    temp = draw(temperatures)
    try:
        out = check_call(MOD, o1pruner.token_logprobs, (x, t), dict(temperature=temp, ignore_index=ig),
                         names=("logits", "targets", "temperature", "ignore_index"))
    except Rejected:
        return
    z = z_of(x, temp)
    T = np.asarray(t).astype(np.int64)
    with np.errstate(all="ignore"):
        logp, ent, lse = ref.token_logprobs(z, T, 1.0, int(ig))
    S = z_scale(z)
    for name, got, want in (("logp", out.logp, logp), ("entropy", out.entropy, ent), ("lse", out.lse, lse)):
        assert got.dtype == np.float32 and got.shape == (len(T),)
        assert_close_scaled(got, want, S, rtol=2e-6, what=name)
    assert (out.entropy >= 0).all() and (out.logp <= 0).all()


@given(data=st.data())
def test_token_logprobs_backward(data):
    draw = data.draw
    x, t, ig = draw(logits_targets())
    temp = draw(temperatures)
    N = length_of(t)
    # lse: the forward's (when it works) or a wrong one
    lse_kind = draw(st.sampled_from(["forward", "forward", "forward", "zeros", "random"]))
    lse = np.zeros(N, np.float32)
    if lse_kind == "forward":
        try:
            lse = o1pruner.token_logprobs(x, t, temp, ig).lse
        except (ValueError, TypeError):
            pass
    elif lse_kind == "random":
        lse = draw(float_arrays(N)).astype(np.float32)
    gl = draw(with_dtype(draw(float_arrays(N)), ("float32", "float64", "int32")))
    ge = draw(st.none() | st.just(draw(with_dtype(draw(float_arrays(N)), ("float32", "float64")))))
    args = (x, t, draw(maybe_odd(draw(laid_out(lse)))), draw(maybe_odd(draw(laid_out(gl)))))
    kw = dict(grad_entropy=ge if ge is None else draw(maybe_odd(draw(laid_out(ge)))), temperature=temp,
              ignore_index=ig)
    try:
        g = check_call(MOD, o1pruner.token_logprobs_backward, args, kw,
                       names=("logits", "targets", "lse", "grad_logp", "grad_entropy", "temperature",
                              "ignore_index"))
    except Rejected:
        return
    z = z_of(x, temp)
    T = np.asarray(t).astype(np.int64)
    GL = seen_as(args[3])
    GE = None if kw["grad_entropy"] is None else seen_as(kw["grad_entropy"])
    with np.errstate(all="ignore"):
        want = ref.token_logprobs_backward(z, T, GL, GE, 1.0, int(ig)) / float(temp)
    S = z_scale(z)
    gmax = (np.abs(GL).max(initial=0) + (0 if GE is None else np.abs(GE).max(initial=0)) * S) / float(temp)
    assert g.dtype == np.float32 and g.shape == z.shape
    if gmax * S > FLOAT32_MAX:
        # the kernel forms p (A + B l) in float32: with gradients x logit spread
        # beyond float32's range, A + B l overflows although the product may not
        COUNTS[MOD]["returned (float32 overflow by design, not compared)"] += 1
        return
    assert_close_scaled(g, want, gmax * S, rtol=1e-5, what="dlogits")


@st.composite
def fused_inputs(draw):
    N, d, V = draw(st.integers(0, 5)), draw(st.integers(0, 4)), draw(st.integers(0, 6))
    h = draw(float_arrays((N, d), lo=-3, hi=3))
    w = draw(float_arrays((V, d), lo=-3, hi=3))
    bias = None
    if draw(st.booleans()):
        bias = draw(float_arrays(V, lo=-3, hi=3))
        if V and draw(st.integers(0, 3)) == 0:
            bias[draw(hnp.arrays(bool, V))] = -np.inf
        bias = draw(maybe_odd(draw(laid_out(draw(with_dtype(bias, FLOAT_DTYPES))))))
    ig = draw(ignore_indices(V))
    t = draw(hnp.arrays(np.int64, N, elements=st.integers(-1, max(V, 0))))
    if N and draw(st.booleans()) and isinstance(ig, int) and not isinstance(ig, bool) and -2**63 <= ig < 2**63:
        t[draw(hnp.arrays(bool, N))] = ig
    h = draw(maybe_odd(draw(laid_out(draw(with_dtype(h, FLOAT_DTYPES))))))
    w = draw(maybe_odd(draw(laid_out(draw(with_dtype(w, FLOAT_DTYPES))))))
    t = draw(maybe_odd(draw(laid_out(draw(with_dtype(t, ("int64", "int32")))))))
    return h, w, t, ig, bias


def fused_scale(H, W, B, temp):
    """Magnitude of the float32 logits' rounding error, over temperature."""
    d = H.shape[1] if H.ndim == 2 else 1
    fin = lambda a: np.abs(a[np.isfinite(a)]).max(initial=0) if a is not None else 0.0
    with np.errstate(all="ignore"):
        return (1.0 + d * fin(H) * fin(W) + fin(B)) / float(temp) + np.log(max(W.shape[0], 1))


FUSED_NAMES = ("hidden", "weight", "targets", "temperature", "ignore_index", "bias")


@given(data=st.data())
def test_fused_linear_logprobs(data):
    draw = data.draw
    h, w, t, ig, bias = draw(fused_inputs())
    temp = draw(temperatures)
    try:
        out = check_call(MOD, o1pruner.fused_linear_logprobs, (h, w, t),
                         dict(temperature=temp, ignore_index=ig, bias=bias), names=FUSED_NAMES)
    except Rejected:
        return
    H, W = seen_as(h), seen_as(w)
    B = None if bias is None else seen_as(bias)
    T = np.asarray(t).astype(np.int64)
    with np.errstate(all="ignore"):
        logp, ent, lse = ref.fused_linear_logprobs(H, W, T, float(np.float32(temp)), int(ig), B)
    S = fused_scale(H, W, B, temp)
    for name, got, want in (("logp", out.logp, logp), ("entropy", out.entropy, ent),
                            ("lse", out.stats.lse, lse)):
        assert got.dtype == np.float32 and got.shape == (len(T),)
        assert_close_scaled(got, want, S, rtol=1e-5, what=name)


@given(data=st.data())
def test_fused_linear_logprobs_backward(data):
    draw = data.draw
    h, w, t, ig, bias = draw(fused_inputs())
    temp = draw(temperatures)
    N = length_of(t)
    try:
        stats = o1pruner.fused_linear_logprobs(h, w, t, temp, ig, bias).stats
    except (ValueError, TypeError):
        stats = o1pruner.FusedStats(np.zeros(N, np.float32), np.zeros(N, np.float32))
    if draw(st.integers(0, 5)) == 0:
        stats = draw(st.sampled_from([
            o1pruner.FusedStats(stats.lse + 3, stats.entropy), (1, 2),
            o1pruner.FusedStats(np.full(N, np.nan, np.float32), stats.entropy),
            o1pruner.FusedStats(stats.lse[:-1], stats.entropy)]))
    gl = draw(with_dtype(draw(float_arrays(N)), ("float32", "float64")))
    ge = draw(st.none() | st.just(draw(with_dtype(draw(float_arrays(N)), ("float32", "float64")))))
    kw = dict(grad_entropy=ge, temperature=temp, ignore_index=ig, bias=bias)
    # outputs to accumulate into, sometimes (with any starting values)
    shapes = dict(grad_hidden=shape_of(h), grad_weight=shape_of(w), grad_bias=shape_of(bias))
    start = {}
    for name, shape in shapes.items():
        if draw(st.integers(0, 3)) == 0 and len(shape) in (1, 2):
            arr = draw(float_arrays(shape, regime="normal")).astype(
                draw(st.sampled_from(["float32"] * 6 + ["float64"])))
            arr = draw(st.sampled_from([arr, arr, arr, np.asfortranarray(arr), arr[..., ::-1]]))
            kw[name] = arr
            start[name] = arr.astype(np.float64)
    try:
        gh, gw, gb = check_call(MOD, o1pruner.fused_linear_logprobs_backward, (h, w, t, stats, gl), kw,
                                names=FUSED_NAMES + ("stats", "lse", "entropy", "grad_logp", "grad_entropy",
                                                     "grad_hidden", "grad_weight", "grad_bias"),
                                inplace=("grad_hidden", "grad_weight", "grad_bias"))
    except Rejected:
        return
    H, W = seen_as(h), seen_as(w)
    B = None if bias is None else seen_as(bias)
    T = np.asarray(t).astype(np.int64)
    GL, GE = seen_as(gl), None if ge is None else seen_as(ge)
    # ignored rows are never read (0 * NaN would be NaN in the matmuls here),
    # and without a valid row neither are weight and bias
    valid = T != int(ig)
    H[~valid] = 0.0
    if not valid.any():
        W[...] = 0.0
        B = None if B is None else np.zeros_like(B)
    with np.errstate(all="ignore"):
        wh, ww, wb = ref.fused_linear_logprobs_backward(H, W, T, GL, GE, float(np.float32(temp)), int(ig), B)
    S = fused_scale(H, W, B, temp)
    gmax = (np.abs(GL).max(initial=0) + (0 if GE is None else np.abs(GE).max(initial=0)) * S) / float(temp)
    fin = lambda a: np.abs(a).max(initial=0)
    for name, got, want, other, n in (("grad_hidden", gh, wh, W, W.shape[0]),
                                      ("grad_weight", gw, ww, H, H.shape[0]),
                                      ("grad_bias", gb, wb, None, H.shape[0])):
        if name == "grad_bias" and B is None:
            assert got is None
            continue
        want = want + start.get(name, 0.0)
        if name in start:
            assert got is kw[name]
        scale = gmax * S * n * (1.0 if other is None else 1.0 + fin(other)) + fin(start.get(name, np.zeros(0)))
        assert_close_scaled(got, want, scale, rtol=1e-5, what=name)
