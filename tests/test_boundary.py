"""The C boundary, round 2 (issue 13): checked size arithmetic, outputs left
unchanged by a failing call, outputs that alias inputs, scalar and choice
parsing, exceptions that must not be swallowed, and TinyLM.load checking
config.json against the weights before allocating. Each test failed before
its fix (see the issue's point in the docstring)."""

import json
import os
import sys

import numpy as np
import pytest

from o1pruner._loader import _core
from o1pruner.models import TinyLM, TinyLMConfig
from o1pruner.models._safetensors import read_safetensors, write_safetensors

# ---- point 2: sizes that overflow int64 -------------------------------------

# accepted by the config check (2^24 bounds each size, the parameter count fits)
HUGE = (64, 2, 2**24, 40000, 1, 2**24, 1e-6, 10000.0)


def test_arena_size_overflow_is_a_named_error():
    """model_arena_size used to return a negative number, which then let a
    64-byte arena pass model_forward's "large enough" check."""
    with pytest.raises(ValueError, match="n_tokens: .*overflows int64"):
        _core.model_arena_size(HUGE, 2**23, 1)
    wide = (2**24, 2**24, 1, 4, 1, 1, 1e-6, 10000.0)  # 2^52 parameters: (threads - 1) x P overflows
    assert _core.model_arena_size(wide, 1, 2) > 0
    with pytest.raises(ValueError, match="n_tokens: .*overflows int64"):
        _core.model_arena_size(wide, 1, 4096)


def test_generate_work_size_overflow_is_a_named_error():
    """mp + mn wrapped: model_generate_work_size(cfg, 1, 1, 2**62, 2**62) was 228."""
    small = (64, 8, 16, 2, 2, 2**24, 1e-6, 10000.0)
    with pytest.raises(ValueError, match="n_prompts"):
        _core.model_generate_work_size(small, 1, 1, 2**62, 2**62)
    with pytest.raises(ValueError, match="n_prompts"):
        _core.model_generate_work_size(HUGE, 2**31 - 1, 2**31 - 1, 2**23, 2**23)


def test_sizes_that_fit_are_unchanged():
    cfg = (40, 32, 48, 2, 4, 64, 1e-6, 10000.0)
    n = _core.model_arena_size(cfg, 100, 1)
    assert n > 0 and _core.model_arena_size(cfg, 100, 3) == n + 2 * _core.model_num_params(cfg)
    assert _core.model_generate_work_size(cfg, 2, 10, 5, 8) > 0


# ---- point 7 (and the same pattern in the fused backward) --------------------

def _tiny():
    cfg = TinyLMConfig(vocab_size=12, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                       num_attention_heads=2, max_position_embeddings=16)
    return TinyLM(cfg, seed=1)


def test_model_backward_that_raises_leaves_grads_unchanged():
    """A stale arena (forward at temperature 3, backward at 1) raised after
    the LM-head gradient had been added into grads (44 of 204 entries)."""
    m = _tiny()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 12, (2, 6))
    tg = rng.integers(0, 12, (2, 6))
    m.forward(ids, None, tg, temperature=3.0)
    grads = m.flat_gradients
    grads[...] = rng.normal(size=grads.shape).astype(np.float32)
    before = grads.copy()
    with pytest.raises(ValueError, match="arena"):
        _core.model_backward(m._cfg, m._params, grads, m._arena, ids, None, tg,
                             np.ones((2, 6), np.float32), -100, 1.0)
    np.testing.assert_array_equal(grads, before)
    # and the matching call still accumulates
    _core.model_backward(m._cfg, m._params, grads, m._arena, ids, None, tg,
                         np.ones((2, 6), np.float32), -100, 3.0)
    assert not np.array_equal(grads, before)


def test_fused_backward_that_raises_leaves_outputs_unchanged():
    rng = np.random.default_rng(1)
    N, d, V = 64, 8, 16
    h = rng.normal(size=(N, d)).astype(np.float32)
    W = rng.normal(size=(V, d)).astype(np.float32)
    b = rng.normal(size=V).astype(np.float32)
    t = rng.integers(0, V, N)
    _, ent, lse = _core.fused_linear_logprobs(h, W, t, 3.0, -100, b)  # stats at temperature 3
    gh = rng.normal(size=(N, d)).astype(np.float32)
    gw = rng.normal(size=(V, d)).astype(np.float32)
    gb = rng.normal(size=V).astype(np.float32)
    keep = gh.copy(), gw.copy(), gb.copy()
    with pytest.raises(ValueError, match="lse"):
        _core.fused_linear_logprobs_backward(h, W, t, lse, ent, np.ones(N, np.float32), None, 1.0, -100, b,
                                             gh, gw, gb)
    for got, want in zip((gh, gw, gb), keep):
        np.testing.assert_array_equal(got, want)


# ---- point 9: an output that aliases the targets ----------------------------

def test_grad_weight_aliasing_targets_is_rejected():
    """A float32 view of the targets' memory was accepted as grad_weight and
    the targets were overwritten."""
    rng = np.random.default_rng(2)
    N, d, V = 64, 8, 16  # V * d float32 = N int64
    h = rng.normal(size=(N, d)).astype(np.float32)
    W = rng.normal(size=(V, d)).astype(np.float32)
    t = rng.integers(0, V, N)
    _, ent, lse = _core.fused_linear_logprobs(h, W, t, 1.0, -100)
    before = t.copy()
    gw = t.view(np.float32).reshape(V, d)
    with pytest.raises(ValueError, match="grad_weight: shares memory"):
        _core.fused_linear_logprobs_backward(h, W, t, lse, ent, np.ones(N, np.float32), None, 1.0, -100,
                                             None, None, gw)
    np.testing.assert_array_equal(t, before)
    # a strided view into the same buffer as hidden is caught too
    big = np.zeros((2 * N, d), np.float32)
    big[::2] = h
    with pytest.raises(ValueError, match="grad_hidden: shares memory"):
        _core.fused_linear_logprobs_backward(big[::2], W, t, lse, ent, np.ones(N, np.float32), None, 1.0,
                                             -100, None, big[N:], None)


def test_model_backward_grads_aliasing_grad_logp_is_rejected():
    m = _tiny()
    ids = np.arange(12).reshape(2, 6) % 12
    m.forward(ids, None, ids)
    grads = m.flat_gradients
    with pytest.raises(ValueError, match="shares memory"):
        _core.model_backward(m._cfg, m._params, grads, m._arena, ids, None, ids, grads[:12].reshape(2, 6),
                             -100, 1.0)


# ---- point 6: a leak on the error path --------------------------------------

def test_adamw_nonfinite_gradient_does_not_leak():
    """The PyFloat passed to %R was never released: +1 block per call."""
    P = 8
    p, g, m, v = (np.zeros(P, np.float32) for _ in range(4))
    g[0] = np.inf
    for _ in range(100):  # warm up caches
        with pytest.raises(ValueError):
            _core.model_adamw_step(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0)
    before = sys.getallocatedblocks()
    for _ in range(20000):
        try:
            _core.model_adamw_step(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0)
        except ValueError:
            pass
    assert sys.getallocatedblocks() - before < 1000


# ---- points 11, 12, 14: scalars, choices, exceptions ------------------------

def test_set_num_threads_range_and_type():
    """2**70 said "TypeError: n: expected an int, got int"; True was accepted."""
    n = _core.get_num_threads()
    try:
        with pytest.raises(ValueError, match=r"n: number of threads must be in \[1, 4096\], got 1180591620717411303424"):
            _core.set_num_threads(2**70)
        with pytest.raises(ValueError, match=r"in \[1, 4096\]"):
            _core.set_num_threads(-(2**70))
        with pytest.raises(TypeError, match="n: expected an int, got bool"):
            _core.set_num_threads(True)
        with pytest.raises(TypeError, match="n: expected an int, got float"):
            _core.set_num_threads(2.0)
        _core.set_num_threads(np.int64(1))
        assert _core.get_num_threads() == 1
    finally:
        _core.set_num_threads(n)


@pytest.mark.parametrize("bad", ["mean\x00junk", "mean\x00", "\ud800", "me\ud800an"])
def test_choice_strings_are_compared_whole(bad):
    """'mean\\x00junk' was accepted as 'mean' (strcmp); a lone surrogate raised
    a bare UnicodeEncodeError not naming the argument."""
    x = np.zeros((1, 4), np.float32)
    m = np.ones((1, 4), bool)
    with pytest.raises(ValueError, match="reduce: must be one of"):
        _core.sequence_logprobs(x, m, bad)
    with pytest.raises(ValueError, match="aggregate: must be one of"):
        _core.ppo_clip_loss(x, x, np.zeros(1), m, 0.2, 0.2, "token", bad)


def test_int_arguments_out_of_int64_name_themselves():
    with pytest.raises(ValueError, match="ignore_index: .*does not fit int64"):
        _core.fused_linear_logprobs(np.zeros((2, 2), np.float32), np.zeros((3, 2), np.float32), [0, 1], 1.0,
                                    2**70)
    with pytest.raises(ValueError, match="n_tokens: .*does not fit int64"):
        _core.model_arena_size((40, 32, 48, 2, 4, 64, 1e-6, 10000.0), 2**64)


class Boom(Exception):
    pass


class EvilInt(int):
    def __float__(self):
        raise Boom("from __float__")


def test_unexpected_exceptions_are_not_swallowed():
    """PyErr_Clear() turned any exception (KeyboardInterrupt, MemoryError
    included) into "expected a real number"."""
    logits = np.zeros((2, 3), np.float32)
    with pytest.raises(Boom):
        _core.token_logprobs(logits, [0, 1], EvilInt(1), -100)
    with pytest.raises(ValueError, match="temperature: .*too large for a float64"):
        _core.token_logprobs(logits, [0, 1], 2**2000, -100)
    # the same pattern in harmonize_weights' clip pair
    with pytest.raises(Boom):
        _core.harmonize_weights([1.0, 2.0, 3.0], (EvilInt(0), 1.0))
    with pytest.raises(TypeError, match="clip: low and high must be real numbers"):
        _core.harmonize_weights([1.0, 2.0, 3.0], ("a", 1.0))


# ---- point 1: what the kernels read is what was checked ----------------------

def test_index_inputs_are_private_copies():
    """A C-contiguous int64 input used to be handed to the kernel itself;
    the kernels now get a copy, so the caller's array is not what they read
    (and is never written)."""
    rng = np.random.default_rng(3)
    N, d, V = 300, 4, 8
    h = rng.normal(size=(N, d)).astype(np.float32)
    W = rng.normal(size=(V, d)).astype(np.float32)
    t = rng.integers(0, V, N)
    t.flags.writeable = False  # read-only inputs are fine (nothing writes them)
    a = _core.fused_linear_logprobs(h, W, t, 1.0, -100)
    b = _core.fused_linear_logprobs(h, W, t.copy(), 1.0, -100)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="prompts: value 99"):
        _core.model_generate(_tiny()._cfg, _tiny()._params, np.array([1, 99]), np.array([0, 2]), 2, 0.0,
                             1.0, None, 0)


@pytest.mark.parametrize("dtype", [np.uint64, np.uint32, np.int8, ">i8"])
def test_index_conversion_of_other_integer_dtypes(dtype):
    t = np.array([0, 1, 2], dtype=dtype)
    logp, _, _ = _core.token_logprobs(np.zeros((3, 4), np.float32), t, 1.0, -100)
    np.testing.assert_allclose(logp, np.log(0.25), rtol=1e-6)
    big = np.array([0, 2**63, 1], dtype=np.uint64)
    with pytest.raises(ValueError, match="targets: value 9223372036854775808 does not fit int64"):
        _core.token_logprobs(np.zeros((3, 4), np.float32), big, 1.0, -100)


# ---- point 15: TinyLM.load checks config.json against the weights first -----

def _saved(tmp_path):
    m = _tiny()
    m.save(tmp_path, optimizer=False)
    return m


def test_load_rejects_a_config_that_does_not_match_the_weights(tmp_path):
    """num_hidden_layers = 10**6 spent minutes allocating before failing."""
    _saved(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["num_hidden_layers"] = 10**6
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="num_hidden_layers = 1000000, but the weights hold layers 0..0"):
        TinyLM.load(tmp_path)
    cfg["num_hidden_layers"] = 1
    cfg["intermediate_size"] = 2**20
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="has shape .* but config.json implies"):
        TinyLM.load(tmp_path)


@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.int8])
def test_load_rejects_non_float_tensors(tmp_path, dtype):
    """BOOL / int tensors were converted to float32 before the dtype check."""
    m = _saved(tmp_path)
    path = os.path.join(tmp_path, "model.safetensors")
    tensors, meta = read_safetensors(path)
    name = "model.norm.weight"
    tensors[name] = np.ones(tensors[name].shape, dtype=dtype)
    write_safetensors(path, tensors, meta)
    with pytest.raises(TypeError, match=f"{name} has dtype"):
        TinyLM.load(tmp_path)
    # the float file still loads, and to the same parameters
    tensors[name] = m.state_dict()[name]
    write_safetensors(path, tensors, meta)
    np.testing.assert_array_equal(TinyLM.load(tmp_path).flat_parameters, m.flat_parameters)
