"""Property-based tests of the C transformer behind o1pruner.models.TinyLM
(forward / logprobs, backward, train_step, generate) and of the remaining
entry points of o1pruner._core (model_* buffer functions, sgemm,
set_num_threads): any input either gives the float64 reference's result
(o1pruner.reference.tinylm_*, NumPy's matmul) or raises a named
ValueError/TypeError."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import o1pruner
from o1pruner.kernels import slow as ref
from o1pruner._loader import _core
from o1pruner.models import TinyLM, TinyLMConfig

from property_support import (COUNTS, Rejected, assert_close_scaled, check_call, float_arrays,
                              laid_out, maybe_odd, mostly, odd_objects, seen_as, with_dtype)

MOD = "model"
TINY = dict(vocab_size=11, hidden_size=8, intermediate_size=12, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=16)
V, CTX = TINY["vocab_size"], TINY["max_position_embeddings"]
INT_DTYPES = ("int64", "int64", "int32", "uint8", "int16")
BATCH_NAMES = ("input_ids", "attention_mask", "targets", "ignore_index", "temperature")


def make_model():
    m = TinyLM(TinyLMConfig(**TINY), seed=3)
    rng = np.random.default_rng(3)
    for name, v in m.named_parameters():  # O(1) weights: exercise the nonlinearities
        v[...] = 1.0 + rng.normal(0, 0.2, v.shape) if name.endswith("norm.weight") else rng.normal(0, 0.5, v.shape)
    return m


MODEL = make_model()
PARAMS = {k: v.copy() for k, v in MODEL.named_parameters()}


def fresh_model():
    MODEL.load_state_dict(PARAMS)
    MODEL.zero_grad()
    MODEL.step_count = 0
    MODEL._exp_avg[...] = 0.0
    MODEL._exp_avg_sq[...] = 0.0
    return MODEL


temperatures = mostly(st.sampled_from([1.0, 1.0, 0.5, 3.0]),
                      st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e-300, "1", None, True]), p_odd=2)
ignore_indices = mostly(st.just(-100), st.sampled_from([-1, 0, V - 1, V, 2**63, "x", 1.5, np.int32(-7)]), p_odd=2)


@st.composite
def batches(draw):
    """(input_ids, attention_mask, targets, ignore_index, temperature) with
    mostly valid right-padded batches and, now and then, anything else."""
    B, T = draw(st.integers(0, 3)), draw(st.integers(0, CTX + 2))
    hi = V if draw(st.integers(0, 9)) else V + 1
    lo = 0 if draw(st.integers(0, 9)) else -1
    ids = draw(hnp.arrays(np.int64, (B, T), elements=st.integers(lo, hi - 1)))
    mask = None
    if draw(st.booleans()):
        lengths = draw(hnp.arrays(np.int64, B, elements=st.integers(0 if draw(st.integers(0, 4)) == 0 else 1,
                                                                    max(T, 1))))
        mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
        if draw(st.integers(0, 9)) == 0:  # not right-padded, or not 0/1
            mask = draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 2)))
        mask = draw(maybe_odd(draw(laid_out(draw(with_dtype(mask, ("int64", "bool", "float32", "uint8")))))))
    ig = draw(ignore_indices)
    targets = None
    if draw(st.integers(0, 3)):
        targets = draw(hnp.arrays(np.int64, (B, T), elements=st.integers(-1 if draw(st.integers(0, 9)) == 0 else 0,
                                                                         V - 1)))
        if isinstance(ig, int) and -2**63 <= ig < 2**63 and B * T:
            targets[draw(hnp.arrays(bool, (B, T)))] = ig
        targets = draw(maybe_odd(draw(laid_out(draw(with_dtype(targets, INT_DTYPES))))))
    ids = draw(maybe_odd(draw(laid_out(draw(with_dtype(ids, INT_DTYPES))))))
    # ragged and out-of-range inputs: pinned by test_formerly_unnamed_errors below
    ids, mask, targets = (np.zeros((0, 0)) if _ragged(x) else x for x in (ids, mask, targets))
    if targets is None and (isinstance(ig, str) or isinstance(ig, int) and not -2**63 <= ig < 2**63):
        ig = -100
    return ids, mask, targets, ig, draw(temperatures)


def _ragged(x):
    return isinstance(x, list) and x and isinstance(x[0], list) and len({len(r) if isinstance(r, list) else -1
                                                                           for r in x}) > 1


def reference_forward(ids, mask, targets, ig, temperature):
    ids = np.asarray(ids).astype(np.int64)
    mask = None if mask is None else np.asarray(mask).astype(bool)
    if targets is None:
        from o1pruner.models import next_token_targets
        targets = next_token_targets(ids, mask, ignore_index=ig)
    return ref.tinylm_forward(PARAMS, MODEL.config, ids, mask, np.asarray(targets).astype(np.int64), ig,
                              float(temperature))


@given(data=st.data())
def test_forward_and_backward(data):
    ids, mask, targets, ig, temp = data.draw(batches())
    m = fresh_model()
    try:
        logp = check_call(MOD, m.forward, (ids, mask, targets), dict(ignore_index=ig, temperature=temp),
                          names=BATCH_NAMES)
    except Rejected:
        return
    want, _, cache = reference_forward(ids, mask, targets, ig, temp)
    assert logp.dtype == np.float32
    assert_close_scaled(logp, want, 1.0 + np.abs(want).max(initial=0), rtol=1e-4, what="logp")
    # backward of sum(g * logp): gradients against the reference's
    g = data.draw(float_arrays(want.shape, regime="normal"))
    g_in = data.draw(maybe_odd(data.draw(laid_out(data.draw(with_dtype(g, ("float32", "float64", "float16")))))))
    try:
        check_call(MOD, m.backward, (g_in,), names=("grad_logp",))
    except Rejected:
        return
    grads = ref.tinylm_backward(m.config, cache, seen_as(g_in, np.float32))
    # one scale for all: float32 cancellation residues (e.g. the softmax of a
    # single key) are relative to the largest gradients, not to their own tensor's
    scale = 1.0 + max(np.abs(v).max(initial=0) for v in grads.values())
    for name, got in m.named_gradients():
        assert_close_scaled(got, grads[name], scale, rtol=2e-4, what=name)


@given(data=st.data())
def test_logprobs_in_chunks_equal_forward(data):
    ids, mask, targets, ig, temp = data.draw(batches())
    bs = data.draw(mostly(st.integers(1, 4), st.sampled_from([0, -1, 1.5, "2", None, True]), p_odd=2))
    if mask is not None and np.ndim(mask) != 2:
        mask = None  # pinned by test_formerly_unnamed_errors
    m = fresh_model()
    try:
        got = check_call(MOD, m.logprobs, (ids, mask, targets),
                         dict(ignore_index=ig, temperature=temp, batch_size=bs),
                         names=BATCH_NAMES + ("batch_size",))
    except Rejected:
        return
    want = m.forward(ids, mask, targets, ignore_index=ig, temperature=temp)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@given(data=st.data())
def test_train_step(data):
    ids, mask, targets, ig, _ = data.draw(batches())
    kw = dict(ignore_index=ig,
              lr=data.draw(mostly(st.sampled_from([1e-3, 0.1]), st.sampled_from([-1.0, np.nan, "x", np.inf]))),
              max_grad_norm=data.draw(mostly(st.sampled_from([1.0, None]), st.sampled_from([0.0, -1.0, np.nan]))),
              micro_batch_size=data.draw(mostly(st.sampled_from([None, 1, 2]), st.sampled_from([0, -2, 1.5]))))
    m = fresh_model()
    before = m.flat_parameters.copy()
    try:
        out = check_call(MOD, m.train_step, (ids, mask, targets), kw,
                         names=BATCH_NAMES + ("lr", "max_grad_norm", "micro_batch_size"))
    except Rejected:
        return
    # the loss is the mean NLL of the targets under the parameters before the step
    want, _, _ = ref.tinylm_forward(PARAMS, m.config, np.asarray(ids).astype(np.int64),
                                    None if mask is None else np.asarray(mask).astype(bool),
                                    np.asarray(targets).astype(np.int64) if targets is not None
                                    else __import__("o1pruner.models", fromlist=["x"]).next_token_targets(
                                        np.asarray(ids).astype(np.int64), mask, ignore_index=ig), ig)
    assert out["tokens"] >= 1 and np.isfinite(out["loss"]) and out["loss"] >= 0
    np.testing.assert_allclose(out["loss"], -want.sum() / out["tokens"], rtol=1e-4, atol=1e-5)
    assert np.isfinite(m.flat_parameters).all()
    assert not np.array_equal(before, m.flat_parameters) or out["grad_norm"] == 0


@st.composite
def prompt_lists(draw):
    n = draw(st.integers(0, 4))
    lo = 0 if draw(st.integers(0, 9)) else -1
    hi = V if draw(st.integers(0, 9)) else V + 1
    ps = [draw(st.lists(st.integers(lo, hi - 1), min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=12))
          for _ in range(n)]
    k = draw(st.integers(0, 9))
    odd = draw(odd_objects)
    if _ragged(odd):  # pinned by test_known_unnamed_errors
        odd = "abc"
    if k == 0 and ps:
        dt = draw(st.sampled_from(["int32", "uint8", "float64", "int64"]))
        ps = [np.array(p, dtype=np.int64).astype(dt) for p in ps]
    elif k == 1:
        ps = odd if draw(st.booleans()) else ps + [odd]
    return ps


@given(data=st.data())
def test_generate(data):
    draw = data.draw
    prompts = draw(prompt_lists())
    kw = dict(max_new_tokens=draw(mostly(st.integers(1, 6), st.sampled_from([0, -1, 100, 2.0, None]))),
              temperature=draw(mostly(st.sampled_from([0.0, 1.0, 0.7]), st.sampled_from([-1.0, np.nan, np.inf, "1"]))),
              top_p=draw(mostly(st.sampled_from([1.0, 0.9, 0.3]), st.sampled_from([0.0, 1.5, np.nan, -0.1]))),
              seed=draw(mostly(st.integers(0, 2**32), st.sampled_from([-1, 2**64, 1.5, "0"]))),
              stop_token_id=draw(mostly(st.sampled_from([None, 3, [1, 2], []]),
                                        st.sampled_from([V, -5, [V + 3]]))),
              batch_size=draw(mostly(st.sampled_from([64, 1, 2]), st.sampled_from([0, -1, 1.5]))))
    m = fresh_model()
    try:
        out = check_call(MOD, m.generate, (prompts,), kw,
                         names=("prompts", "max_new_tokens", "temperature", "top_p", "seed", "stop_token_id",
                                "stop_token_ids", "batch_size", "pad_token_id"))
    except Rejected:
        return
    B, M = len(prompts), kw["max_new_tokens"]
    assert out.tokens.shape == (B, M) and out.lengths.shape == (B,) and out.stopped.shape == (B,)
    stops = set() if kw["stop_token_id"] is None else {kw["stop_token_id"]} if isinstance(kw["stop_token_id"], int) \
        else set(kw["stop_token_id"])
    for b in range(B):
        n = int(out.lengths[b])
        assert 1 <= n <= M
        seq = out.tokens[b, :n]
        assert ((0 <= seq) & (seq < V)).all() and (out.tokens[b, n:] == -1).all()
        assert bool(out.stopped[b]) == (seq[-1] in stops)
        assert not set(seq[:-1].tolist()) & stops
    # the stream of prompt i depends only on (seed, i, step): batch_size does not matter
    again = m.generate(prompts, **{**kw, "batch_size": 1})
    np.testing.assert_array_equal(again.tokens, out.tokens)
    if kw["temperature"] == 0.0:  # greedy: the first token is the reference argmax when it is clear
        for b, p in enumerate(prompts):
            ids = np.asarray(p, np.int64)[None]
            _, hidden, _ = ref.tinylm_forward(PARAMS, m.config, ids)
            z = hidden[0, -1] @ PARAMS["model.embed_tokens.weight"].astype(np.float64).T
            top2 = np.sort(z)[-2:]
            if top2[1] - top2[0] > 1e-3:
                assert out.tokens[b, 0] == int(np.argmax(z))


FORMER_GAPS = [
    # ragged nested lists reach np.asarray in tinylm.py before any check: NumPy's
    # own ValueError, which names no argument
    (lambda m: m.forward([[1, 2], [3]]), "input_ids"),
    (lambda m: m.forward([[1, 2], [3, 4]], [[1, 1], [1]]), "attention_mask"),
    # an ignore_index beyond int64 with the default targets: OverflowError from np.full
    (lambda m: m.forward([[1, 2]], ignore_index=2**63), "ignore_index"),
    # a string ignore_index with the default targets: int()'s ValueError from np.full
    (lambda m: m.forward([[1, 2]], ignore_index="x"), "ignore_index"),
    # logprobs in chunks slices the mask before any check: IndexError
    (lambda m: m.logprobs(np.zeros((1, 0), np.int64), "abc", np.zeros((1, 0), np.int64), batch_size=1),
     "attention_mask"),
    (lambda m: m.logprobs([[1, 2]], [[1, 1], [1]], batch_size=1), "attention_mask"),
    # generate converts stop_token_id with list() and np.asarray(int64): unnamed
    # errors, and a float id is truncated silently
    (lambda m: m.generate([[0], [[1, 2], [3]]], max_new_tokens=1), "prompts"),
    (lambda m: m.generate([[0]], max_new_tokens=1, stop_token_id=1.5), "stop_token_id"),
    (lambda m: m.generate([[0]], max_new_tokens=1, stop_token_id="a"), "stop_token_id"),
    (lambda m: m.generate([[0]], max_new_tokens=1, stop_token_id=[None]), "stop_token_id"),
    (lambda m: m.generate([[0]], max_new_tokens=1, stop_token_id=[1.5]), "stop_token_id"),
]


@pytest.mark.parametrize("i", range(len(FORMER_GAPS)))
def test_formerly_unnamed_errors(i):
    fn, name = FORMER_GAPS[i]
    with pytest.raises((ValueError, TypeError), match=name):
        fn(fresh_model())


# ---- the raw _core entry points (what TinyLM and the benchmarks call) ---------------

configs = st.tuples(mostly(st.just(V), st.sampled_from([0, -1, 2**24 + 1, 2**40, 1.0, True])),
                    mostly(st.just(8), st.sampled_from([6, 0, 2**24, 2**23 + 2])),
                    mostly(st.just(12), st.sampled_from([0, 2**24])),
                    mostly(st.just(2), st.sampled_from([0, 2**24, 2**20])),
                    mostly(st.just(2), st.sampled_from([3, 0, 8])),
                    mostly(st.just(CTX), st.sampled_from([0, 2**24])),
                    mostly(st.just(1e-6), st.sampled_from([0.0, np.nan, -1.0, 1e-50, "x"])),
                    mostly(st.just(1e4), st.sampled_from([0.0, np.inf, 1e50, -1.0])))


@given(cfg=configs | odd_objects, n=mostly(st.integers(0, 100), st.sampled_from([-1, 2**31, 2**63, 2**70, 1.5, None])),
       threads=mostly(st.integers(1, 4), st.sampled_from([0, -1, 5000, 2**40, "2"])))
def test_core_sizes(cfg, n, threads):
    names = ("config", "n_tokens", "threads", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
             "num_attention_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta")
    try:
        npar = check_call(MOD, _core.model_num_params, (cfg,), names=names)
    except Rejected:
        return
    if npar < 10**7:  # (a 2^24-layer config is valid: its layout has 10^8 entries)
        assert npar == sum(int(np.prod(s)) for _, _, s in _core.model_layout(cfg))
    try:
        size = check_call(MOD, _core.model_arena_size, (cfg, n, threads), names=names)
    except Rejected:
        return
    assert isinstance(size, int) and size >= 0
    try:
        w = check_call(MOD, _core.model_generate_work_size, (cfg, threads, n, threads, n),
                       names=names + ("n_prompts", "n_prompt_tokens", "max_prompt", "max_new_tokens"))
    except Rejected:
        return
    assert isinstance(w, int) and w >= 0


BUFFER_ODD = st.sampled_from(["f64", "short", "long", "F", "readonly", "unaligned", "list", "odd", "same"])


def odd_buffer(a, kind, other=None):
    """A float32 buffer `a` spoiled in one way (or shared with `other`)."""
    if kind == "f64":
        return a.astype(np.float64)
    if kind == "short":
        return a[:-1].copy()
    if kind == "long":
        return np.concatenate([a, a[:1]])
    if kind == "F":
        return a[::2]
    if kind == "readonly":
        r = a.copy()
        r.setflags(write=False)
        return r
    if kind == "unaligned":
        raw = np.zeros(a.nbytes + 1, np.uint8)
        u = raw[1:].view(np.float32)
        u[...] = a
        return u
    if kind == "list":
        return a.tolist()
    if kind == "same":
        return other if other is not None else a
    return None


@given(data=st.data())
def test_core_buffers(data):
    draw = data.draw
    m = fresh_model()
    cfg = m.config._c_tuple()
    p, g = m.flat_parameters.copy(), np.ones_like(m.flat_parameters)
    arena = np.zeros(_core.model_arena_size(cfg, 6), np.float32)
    which = draw(st.sampled_from(["params", "arena", "grads", "none"]))
    kind = draw(BUFFER_ODD)
    bufs = dict(params=p, arena=arena, grads=g)
    if which != "none":
        bufs[which] = odd_buffer(bufs[which], kind, p if which != "params" else arena)
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    tg = np.array([[2, 3, -100], [5, 6, 7]])
    names = ("params", "arena", "grads", "input_ids", "targets", "grad_logp")
    try:
        logp, _, _ = check_call(MOD, _core.model_forward, (cfg,),
                                dict(params=bufs["params"], arena=bufs["arena"], input_ids=ids, targets=tg),
                                names=names, inplace=("arena",))
    except Rejected:
        return
    want, _, _ = ref.tinylm_forward(PARAMS, m.config, ids, None, tg)
    assert_close_scaled(logp, want, 10.0, rtol=1e-4, what="logp")
    try:
        _core.model_backward(cfg, bufs["params"], bufs["grads"], bufs["arena"], ids, None, tg,
                             np.ones(ids.shape, np.float32))
        COUNTS[MOD]["returned"] += 1
    except (ValueError, TypeError) as e:
        COUNTS[MOD]["raised"] += 1
        assert any(n in str(e) for n in names), str(e)


@given(data=st.data())
def test_core_adamw_and_grad_norm(data):
    draw = data.draw
    n = draw(st.integers(0, 20))
    p = draw(float_arrays(n)).astype(np.float32)
    g = draw(float_arrays(n)).astype(np.float32)
    m1, m2 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    which = draw(st.sampled_from(["grads", "exp_avg", "exp_avg_sq", "params", "none", "none"]))
    bufs = dict(params=p, grads=g, exp_avg=m1, exp_avg_sq=m2)
    if which != "none" and n:
        bufs[which] = odd_buffer(bufs[which], draw(BUFFER_ODD), p if which != "params" else g)
    hyper = [draw(mostly(st.integers(1, 100), st.sampled_from([0, -1, 2**63, 1.5]))),
             draw(mostly(st.just(1e-3), st.sampled_from([-1.0, np.nan, np.inf]))),
             draw(mostly(st.just(0.9), st.sampled_from([1.0, -0.1, np.nan]))),
             draw(mostly(st.just(0.999), st.sampled_from([1.0, 2.0]))),
             draw(mostly(st.just(1e-8), st.sampled_from([0.0, -1.0, np.inf]))),
             draw(mostly(st.just(0.01), st.sampled_from([-1.0, np.nan]))),
             draw(mostly(st.sampled_from([None, 1.0]), st.sampled_from([0.0, -1.0, np.nan, "1"])))]
    names = ("params", "grads", "exp_avg", "exp_avg_sq", "step", "lr", "beta1", "beta2", "eps", "weight_decay",
             "max_grad_norm")
    try:
        gn = check_call(MOD, _core.model_grad_norm, (bufs["grads"],), names=("grads",))
        g_seen = np.asarray(bufs["grads"], np.float64)
        want = np.sqrt(np.sum(np.square(g_seen)))
        if np.isfinite(g_seen).all():
            assert_close_scaled(np.float64(gn), want, 1e-30, rtol=1e-5, what="grad_norm")
    except Rejected:
        pass
    p0, g0, m10, m20 = (np.array(bufs[k], dtype=np.float64) if bufs[k] is not None and not isinstance(bufs[k], list)
                        else None for k in ("params", "grads", "exp_avg", "exp_avg_sq"))
    try:
        norm = check_call(MOD, _core.model_adamw_step, (), dict(zip(names, tuple(bufs.values()) + tuple(hyper))),
                          names=names, inplace=("params", "grads", "exp_avg", "exp_avg_sq"))
    except Rejected:
        return
    # torch.optim.AdamW's arithmetic after clip_grad_norm_, in float64
    step, lr, b1, b2, eps, wd, clip = hyper
    assert np.isfinite(norm)
    if np.abs(g0).max(initial=0) > 1e18:  # g*g overflows float32 (as in torch): the step is 0
        return
    # (the core's contract: max_grad_norm 0 or None means no clipping)
    gg = g0 * (min(1.0, clip / (norm + 1e-6)) if clip else 1.0)
    m1w = (1 - b1) * gg
    m2w = (1 - b2) * gg * gg
    denom = np.sqrt(m2w) / np.sqrt(1 - b2 ** step) + eps
    want = p0 * (1 - lr * wd) - lr / (1 - b1 ** step) * m1w / denom
    assert_close_scaled(bufs["exp_avg"], m1w, 1e-6, rtol=1e-4, what="exp_avg")
    pscale = 1e-3 + np.abs(p0[np.isfinite(p0)]).max(initial=0)
    assert_close_scaled(bufs["params"], want, pscale, rtol=1e-4, what="params")


@given(data=st.data())
def test_sgemm(data):
    draw = data.draw
    m, k, n = (draw(st.integers(0, 7)) for _ in range(3))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = draw(float_arrays((k, m) if ta else (m, k)))
    b = draw(float_arrays((n, k) if tb else (k, n)))
    if draw(st.integers(0, 9)) == 0:  # inner dimensions disagree
        b = np.zeros((b.shape[0] + 1, b.shape[1]))
    a_in = draw(maybe_odd(draw(laid_out(draw(with_dtype(a, ("float32", "float64", "float16")))))))
    b_in = draw(maybe_odd(draw(laid_out(draw(with_dtype(b, ("float32", "float64")))))))
    try:
        c = check_call(MOD, _core.sgemm, (a_in, b_in), dict(trans_a=ta, trans_b=tb), names=("a", "b"))
    except Rejected:
        return
    A, Bm = seen_as(a_in), seen_as(b_in)
    with np.errstate(all="ignore"):
        want = (A.T if ta else A) @ (Bm.T if tb else Bm)
        scale = (np.abs(A).max(initial=0) * np.abs(Bm).max(initial=0) * max(k, 1))
    if not (np.isfinite(A).all() and np.isfinite(Bm).all()) or not scale < 1e38:
        # (partial sums beyond float32's range overflow in float32 as in any sgemm)
        assert c.shape == want.shape  # NaN/inf placement depends on the BLAS kernel's order
        return
    assert_close_scaled(c, want, scale, rtol=1e-5, what="sgemm")


@given(n=mostly(st.integers(1, 8), st.sampled_from([0, -1, 4097, 2**40, 2**70, 1.5, "2", None, np.nan]), p_odd=8))
def test_set_num_threads(n):
    saved = o1pruner.get_num_threads()
    try:
        check_call(MOD, o1pruner.set_num_threads, (n,), names=("n",))
        assert o1pruner.get_num_threads() == int(n)
    except Rejected:
        assert o1pruner.get_num_threads() == saved
    finally:
        o1pruner.set_num_threads(saved)


def test_build_info_is_complete():
    info = _core.build_info()
    COUNTS[MOD]["returned"] += 1
    for key in ("blas", "variant", "simd", "num_threads", "blas_int_bits"):
        assert key in info
    with pytest.raises(TypeError):
        _core.build_info(1)
