"""TinyLM (o1pruner.models): the C forward/backward against the float64
reference (itself checked by finite differences), AdamW against PyTorch,
sampling (determinism, stop tokens, greedy = argmax, KV cache = recompute),
padding invariance, safetensors checkpoints, Hugging Face Qwen2 parity when
transformers is installed, bad input, leaks."""

import json
import os

import numpy as np
import pytest

import o1pruner
from o1pruner.kernels import slow as ref
from o1pruner.models import TinyLM, TinyLMConfig, next_token_targets
from o1pruner.models._safetensors import read_safetensors, write_safetensors

from helpers import assert_close, leak_check

TINY = dict(vocab_size=11, hidden_size=8, intermediate_size=12, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=16)


def make_model(seed=1, scale=0.5, **kw):
    """A tiny model with O(1) random weights (the default init is too small to
    exercise the nonlinearities)."""
    cfg = TinyLMConfig(**{**TINY, **kw})
    m = TinyLM(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    for name, v in m.named_parameters():
        if name.endswith("norm.weight"):
            v[...] = 1.0 + rng.normal(0, 0.2, v.shape)
        else:
            v[...] = rng.normal(0, scale, v.shape)
    return m


def random_batch(rng, cfg, B=3, T=7, pad=True):
    ids = rng.integers(0, cfg.vocab_size, (B, T))
    lengths = rng.integers(1, T + 1, B) if pad else np.full(B, T)
    lengths[0] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    targets = rng.integers(0, cfg.vocab_size, (B, T))
    targets[rng.random((B, T)) < 0.2] = -100
    return ids, mask, targets


def params64(m):
    return {k: v.astype(np.float64) for k, v in m.named_parameters()}


# ---- the float64 reference against finite differences ------------------------

def test_reference_gradients_match_finite_differences(rng):
    m = make_model()
    cfg = m.config
    ids, mask, targets = random_batch(rng, cfg)
    g = rng.normal(size=ids.shape)
    P = params64(m)

    def loss(P):
        lp, _, _ = ref.tinylm_forward(P, cfg, ids, mask, targets, temperature=0.7)
        return float((g * lp).sum())

    _, _, cache = ref.tinylm_forward(P, cfg, ids, mask, targets, temperature=0.7)
    G = ref.tinylm_backward(cfg, cache, g)
    h = 1e-6
    for name, w in P.items():  # every parameter tensor, a sample of its entries
        flat = w.reshape(-1)
        idx = np.arange(flat.size) if flat.size <= 12 else rng.choice(flat.size, 12, replace=False)
        num = np.empty(idx.size)
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + h
            up = loss(P)
            flat[i] = old - h
            down = loss(P)
            flat[i] = old
            num[j] = (up - down) / (2 * h)
        assert_close(G[name].reshape(-1)[idx], num, rtol=1e-6, atol=1e-7, what=name)


# ---- C against the reference -------------------------------------------------

def test_hidden_states_match_reference(rng):
    m = make_model()
    for _ in range(3):
        ids, mask, _ = random_batch(rng, m.config, B=4, T=9)
        h = m.hidden_states(ids, mask)
        _, want, _ = ref.tinylm_forward(params64(m), m.config, ids, mask)
        assert h.dtype == np.float32 and h.shape == (4, 9, m.config.hidden_size)
        assert_close(h, want, rtol=1e-5, atol=1e-5, what="hidden")


def test_logprobs_and_entropy_match_reference(rng):
    m = make_model()
    E = m.named_parameters()[0][1].astype(np.float64)
    for temperature in (1.0, 0.6):
        ids, mask, targets = random_batch(rng, m.config, B=5, T=11)
        lp, ent = m.forward(ids, mask, targets, temperature=temperature, return_entropy=True)
        want, hidden, _ = ref.tinylm_forward(params64(m), m.config, ids, mask, targets, temperature=temperature)
        assert lp.dtype == np.float32 and lp.shape == ids.shape
        assert_close(lp, want, rtol=1e-5, atol=2e-5, what=f"logp T={temperature}")
        real = mask.astype(bool) & (targets != -100)
        _, want_ent, _ = ref.token_logprobs(hidden.reshape(-1, hidden.shape[-1]) @ E.T,
                                            np.where(real, targets, -100).reshape(-1), temperature)
        assert_close(ent, want_ent.reshape(ids.shape), rtol=1e-5, atol=2e-5, what="entropy")
        assert np.all(lp[~real] == 0) and np.all(ent[~real] == 0)


def test_gradients_match_reference(rng):
    m = make_model()
    for temperature in (1.0, 1.7):
        ids, mask, targets = random_batch(rng, m.config, B=4, T=10)
        g = rng.normal(size=ids.shape).astype(np.float32)
        m.zero_grad()
        m.forward(ids, mask, targets, temperature=temperature)
        m.backward(g)
        _, _, cache = ref.tinylm_forward(params64(m), m.config, ids, mask, targets, temperature=temperature)
        G = ref.tinylm_backward(m.config, cache, g)
        for name, got in m.named_gradients():
            scale = np.abs(G[name]).max()
            assert_close(got, G[name], rtol=1e-4, atol=1e-5 * scale + 1e-7, what=name)


def test_backward_accumulates_and_default_targets(rng):
    m = make_model()
    ids, mask, _ = random_batch(rng, m.config)
    g = rng.normal(size=ids.shape).astype(np.float32)
    lp = m.forward(ids, mask)  # default: next real token
    assert_close(lp, m.forward(ids, mask, next_token_targets(ids, mask)), rtol=0, atol=0)
    m.zero_grad()
    m.backward(g)
    once = m.flat_gradients.copy()
    m.backward(g)
    assert_close(m.flat_gradients, 2 * once, rtol=1e-6, atol=1e-7)
    assert np.any(once != 0)


def test_next_token_targets():
    ids = np.array([[5, 6, 7, 8], [1, 2, 0, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    t = next_token_targets(ids, mask)
    np.testing.assert_array_equal(t, [[6, 7, 8, -100], [2, -100, -100, -100]])
    t = next_token_targets(ids, mask, prompt_lengths=[2, 1], ignore_index=-1)
    np.testing.assert_array_equal(t, [[-1, 7, 8, -1], [2, -1, -1, -1]])


def test_padding_does_not_change_real_logprobs(rng):
    m = make_model()
    ids, mask, targets = random_batch(rng, m.config, B=3, T=6)
    base = m.forward(ids, mask, targets)
    # more padding columns and a fully padded row; ids and targets at padded
    # positions are never read (even out-of-range values)
    T2 = 10
    ids2 = np.full((4, T2), -7)
    tg2 = np.full((4, T2), 12345)
    mask2 = np.zeros((4, T2), dtype=bool)
    ids2[:3, :6] = np.where(mask == 1, ids, -7)
    tg2[:3, :6] = np.where(mask == 1, targets, 12345)
    mask2[:3, :6] = mask == 1
    lp2 = m.forward(ids2, mask2, tg2)
    assert_close(lp2[:3, :6], base, rtol=1e-6, atol=1e-6)
    assert np.all(lp2[:, 6:] == 0) and np.all(lp2[3] == 0)
    # each row alone gives the same as in the batch
    for b in range(3):
        n = int(mask[b].sum())
        alone = m.forward(ids[b:b + 1, :n], None, targets[b:b + 1, :n])
        assert_close(alone[0], base[b, :n], rtol=1e-6, atol=1e-6, what=f"row {b}")


def test_input_layouts_and_dtypes(rng):
    m = make_model()
    ids, mask, targets = random_batch(rng, m.config, B=3, T=8)
    want = m.forward(ids, mask, targets)
    variants = [
        (ids.tolist(), mask.tolist(), targets.tolist()),
        (ids.astype(np.int32), mask.astype(bool), targets.astype(np.int16)),
        (np.asfortranarray(ids), mask.astype(np.float32), np.asfortranarray(targets)),
        (ids.astype(np.uint8), mask.astype(np.uint8), targets.astype(np.int64)),
    ]
    for i, (a, b, c) in enumerate(variants):
        assert_close(m.forward(a, b, c), want, rtol=0, atol=0, what=f"variant {i}")


def test_inputs_not_modified(rng):
    m = make_model()
    ids, mask, targets = random_batch(rng, m.config)
    g = rng.normal(size=ids.shape).astype(np.float32)
    copies = [a.copy() for a in (ids, mask, targets, g)]
    m.forward(ids, mask, targets)
    m.backward(g)
    for a, c in zip((ids, mask, targets, g), copies):
        np.testing.assert_array_equal(a, c)


MEDIUM = dict(vocab_size=37, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=160)


def test_threads_deterministic_and_agree(rng):
    """Large enough to split the batch over threads: repeated runs with the
    same thread count are identical, 1 and 2 threads agree to rounding."""
    m = make_model(scale=0.15, **MEDIUM)
    ids, _, targets = random_batch(rng, m.config, B=12, T=150)
    mask = (np.arange(150)[None, :] < rng.integers(60, 151, 12)[:, None]).astype(int)
    g = rng.normal(size=ids.shape).astype(np.float32)
    old = o1pruner.get_num_threads()
    results = {}
    try:
        for nt in (1, 2, 2):
            o1pruner.set_num_threads(nt)
            m.zero_grad()
            lp = m.forward(ids, mask, targets)
            m.backward(g)
            gen = m.generate([list(r[:40]) for r in ids] * 4, max_new_tokens=8, temperature=1.0, seed=3)
            results.setdefault(nt, []).append((lp, m.flat_gradients.copy(), gen.tokens))
    finally:
        o1pruner.set_num_threads(old)
    (a, b) = results[2]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # an arena without room for the private gradient buffers: allocated inside
    from o1pruner._loader import _core
    cfg = m.config._c_tuple()
    arena = np.empty(_core.model_arena_size(cfg, int(mask.sum()), 1), np.float32)
    grads = np.zeros_like(m.flat_parameters)
    try:
        o1pruner.set_num_threads(2)
        lp2, _, _ = _core.model_forward(cfg, m.flat_parameters, arena, ids, mask, targets)
        _core.model_backward(cfg, m.flat_parameters, grads, arena, ids, mask, targets, g)
    finally:
        o1pruner.set_num_threads(old)
    np.testing.assert_array_equal(lp2, a[0])
    np.testing.assert_array_equal(grads, a[1])
    one = results[1][0]
    assert_close(one[0], a[0], rtol=1e-5, atol=1e-5, what="logp 1 vs 2 threads")
    scale = np.abs(one[1]).max()
    assert_close(one[1], a[1], rtol=1e-4, atol=1e-5 * scale, what="grads 1 vs 2 threads")


# ---- training -----------------------------------------------------------------

def test_overfitting_a_few_sequences_drives_the_loss_down(rng):
    cfg = TinyLMConfig(vocab_size=13, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=32)
    m = TinyLM(cfg, seed=0)
    ids = rng.integers(0, 13, (4, 12))
    mask = np.ones_like(ids)
    mask[2, 8:] = 0
    first = m.train_step(ids, mask, lr=3e-3)
    for _ in range(80):
        last = m.train_step(ids, mask, lr=3e-3)
    assert first["loss"] > 2.0 and last["loss"] < 0.2 * first["loss"], (first, last)
    assert first["tokens"] == 4 * 11 - 4 and m.step_count == 81
    # micro-batching gives the same step
    a, b = TinyLM(cfg, seed=1), TinyLM(cfg, seed=1)
    sa = a.train_step(ids, mask, lr=1e-3)
    sb = b.train_step(ids, mask, lr=1e-3, micro_batch_size=1)
    assert sa["loss"] == pytest.approx(sb["loss"], rel=1e-6)
    scale = np.abs(a.flat_gradients).max()
    assert_close(a.flat_gradients, b.flat_gradients, rtol=1e-4, atol=1e-5 * scale)


def test_adamw_matches_torch(rng):
    torch = pytest.importorskip("torch")
    m = make_model()
    P = m.num_parameters
    tp = torch.nn.Parameter(torch.from_numpy(m.flat_parameters.copy()))
    opt = torch.optim.AdamW([tp], lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
    for step in range(4):
        g = (rng.normal(size=P) * (10.0 if step == 1 else 0.1)).astype(np.float32)
        m.flat_gradients[...] = g
        norm = m.step(lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, max_grad_norm=5.0)
        tp.grad = torch.from_numpy(g.copy())
        tnorm = float(torch.nn.utils.clip_grad_norm_([tp], 5.0))
        opt.step()
        assert norm == pytest.approx(tnorm, rel=1e-5)
        assert_close(m.flat_parameters, tp.detach().numpy(), rtol=2e-6, atol=2e-7, what=f"step {step}")
    np.testing.assert_array_equal(m.flat_gradients, g)  # grads are not modified


def test_grad_norm_and_nonfinite_step():
    m = make_model()
    m.flat_gradients[...] = 0.5
    assert m.grad_norm() == pytest.approx(0.5 * np.sqrt(m.num_parameters), rel=1e-12)
    before = m.flat_parameters.copy()
    m.flat_gradients[7] = np.nan
    with pytest.raises(ValueError, match="grads"):
        m.step(lr=1e-3)
    np.testing.assert_array_equal(m.flat_parameters, before)


def test_backward_refuses_stale_activations(rng):
    m = make_model()
    ids, mask, targets = random_batch(rng, m.config)
    with pytest.raises(RuntimeError, match="forward"):
        m.backward(np.zeros(ids.shape))
    m.forward(ids, mask, targets)
    m.step(lr=1e-3)
    with pytest.raises(RuntimeError, match="changed"):
        m.backward(np.zeros(ids.shape))


# ---- sampling -------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _uniform(seed, seq, step):
    r = _splitmix64((_splitmix64((_splitmix64(seed) + seq) & _M64) + step) & _M64)
    return (r >> 11) * 2.0**-53


def _sample(logits, temperature, top_p, u):
    """The documented sampler in NumPy: greedy at temperature 0, else the
    smallest most-likely set reaching top_p, walked in order of probability."""
    z = logits.astype(np.float64)
    if temperature == 0:
        return int(np.argmax(z))
    p = np.exp((z - z.max()) / temperature)
    if top_p < 1:
        order = sorted(range(len(p)), key=lambda j: (-p[j], j))
        cum = np.cumsum(p[order])
        k = int(np.searchsorted(cum, top_p * p.sum())) + 1
        order = order[:k]
        return int(order[np.searchsorted(np.cumsum(p[order]), u * p[order].sum(), side="right")])
    return int(np.searchsorted(np.cumsum(p), u * p.sum(), side="right"))


@pytest.mark.parametrize("temperature, top_p", [(0.0, 1.0), (1.0, 1.0), (0.8, 0.7)])
def test_generation_equals_recomputing_the_full_forward(rng, temperature, top_p):
    """Each generated token is the documented draw from the distribution that
    a full forward over prompt + generated tokens gives (KV cache = recompute;
    greedy = argmax of the logits step by step)."""
    m = make_model(max_position_embeddings=40)
    prompts = [list(rng.integers(0, 11, n)) for n in (3, 1, 6, 2)]
    seed = 1234
    out = m.generate(prompts, max_new_tokens=9, temperature=temperature, top_p=top_p, seed=seed,
                     stop_token_id=[])
    assert out.tokens.shape == (4, 9) and np.all(out.lengths == 9) and not out.stopped.any()
    for b, p in enumerate(prompts):
        seq = list(p)
        for s in range(9):
            logits = m.logits(np.array([seq]))[0, -1]
            tok = _sample(logits, temperature, top_p, _uniform(seed, b, s))
            assert out.tokens[b, s] == tok, (b, s)
            seq.append(tok)


def test_generation_deterministic_under_seed(rng):
    m = make_model(max_position_embeddings=40, scale=0.3)
    prompts = [list(rng.integers(0, 11, n)) for n in (2, 5, 1, 3, 4)]
    kw = dict(max_new_tokens=20, temperature=1.5, stop_token_id=[])
    a = m.generate(prompts, seed=7, **kw)
    b = m.generate(prompts, seed=7, **kw)
    c = m.generate(prompts, seed=8, **kw)
    d = m.generate(prompts, seed=7, batch_size=2, **kw)  # the stream of a prompt is its own
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.tokens, d.tokens)
    assert np.mean(a.tokens != c.tokens) > 0.3
    arr = np.array([p[:1] for p in prompts])  # an int array (B, T0) is a batch of prompts
    np.testing.assert_array_equal(m.generate(arr, seed=7, **kw).tokens,
                                  m.generate([list(r) for r in arr], seed=7, **kw).tokens)
    e = m.generate(prompts[1:2], seed=7, **kw)  # alone it is prompt 0 of its batch
    np.testing.assert_array_equal(e.tokens[0], m.generate(prompts[1:2] + prompts[:1], seed=7, **kw).tokens[0])


def test_generation_stops_at_the_stop_token(rng):
    m = make_model(max_position_embeddings=40, scale=0.3)
    prompts = [list(rng.integers(0, 11, n)) for n in (2, 5, 1)]
    free = m.generate(prompts, max_new_tokens=12, temperature=1.2, seed=3, stop_token_id=[])
    stop = int(free.tokens[1, 4])
    out = m.generate(prompts, max_new_tokens=12, temperature=1.2, seed=3, stop_token_id=stop, pad_token_id=-9)
    for b in range(3):
        hits = np.flatnonzero(free.tokens[b] == stop)
        n = hits[0] + 1 if hits.size else 12
        assert out.lengths[b] == n and bool(out.stopped[b]) == bool(hits.size)
        np.testing.assert_array_equal(out.tokens[b, :n], free.tokens[b, :n])
        assert np.all(out.tokens[b, n:] == -9)
        np.testing.assert_array_equal(out.sequences()[b], free.tokens[b, :n])
    assert out.lengths[1] <= 5 and out.stopped[1]
    # several stop tokens
    two = m.generate(prompts, max_new_tokens=12, temperature=1.2, seed=3,
                     stop_token_id=[stop, int(free.tokens[0, 0])])
    assert two.lengths[0] == 1 and two.stopped[0]


class _CharTok:
    """The tokenizer interface TinyLM accepts: encode, decode, ids."""

    vocab_size, pad_token_id, eos_token_id = 11, 0, 10

    def encode(self, text):
        return [1 + "abcdefghi".index(ch) for ch in text]

    def decode(self, ids):
        return "".join("abcdefghi"[i - 1] if 1 <= i <= 9 else "" for i in ids)


def test_generation_with_tokenizer(rng):
    m = make_model(max_position_embeddings=40, scale=0.3)
    tok = _CharTok()
    out = m.generate(["abc", "h"], tokenizer=tok, max_new_tokens=15, temperature=1.0, seed=0)
    ids = m.generate([tok.encode("abc"), tok.encode("h")], max_new_tokens=15, temperature=1.0, seed=0,
                     stop_token_id=10, pad_token_id=0)
    np.testing.assert_array_equal(out.tokens, ids.tokens)
    for b in range(2):
        body = out.tokens[b, : out.lengths[b] - int(out.stopped[b])]
        assert out.texts[b] == tok.decode(body.tolist())
        assert 10 not in body.tolist()


# ---- checkpoints ------------------------------------------------------------------

def test_save_load_round_trip(tmp_path, rng):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    m = make_model()
    ids, mask, targets = random_batch(rng, m.config)
    for _ in range(2):
        m.train_step(ids, mask, targets, lr=1e-3, weight_decay=0.01)
    m.save(tmp_path / "ckpt")
    files = sorted(os.listdir(tmp_path / "ckpt"))
    assert files == ["config.json", "model.safetensors", "optimizer.safetensors"]
    back = TinyLM.load(tmp_path / "ckpt")
    assert back.config == m.config and back.step_count == 2
    np.testing.assert_array_equal(back.flat_parameters, m.flat_parameters)
    np.testing.assert_array_equal(back.logprobs(ids, mask, targets), m.logprobs(ids, mask, targets))
    # the safetensors package reads the file, tensors by Hugging Face name
    tensors = safetensors_numpy.load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert set(tensors) == {n for n, _ in m.named_parameters()}
    for name, v in m.named_parameters():
        np.testing.assert_array_equal(tensors[name], v)
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["num_key_value_heads"] == cfg["num_attention_heads"]
    # training resumes exactly (optimizer moments and step count restored)
    s1 = m.train_step(ids, mask, targets, lr=1e-3, weight_decay=0.01)
    s2 = back.train_step(ids, mask, targets, lr=1e-3, weight_decay=0.01)
    assert s1 == s2
    np.testing.assert_array_equal(back.flat_parameters, m.flat_parameters)
    # saving again over the folder replaces the files; no temporary is left
    m.save(tmp_path / "ckpt", optimizer=False)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["config.json", "model.safetensors"]
    assert TinyLM.load(tmp_path / "ckpt").step_count == 0


def test_save_in_half_precision(tmp_path, rng):
    m = make_model()
    ids, mask, targets = random_batch(rng, m.config)
    for dtype in ("float16", "bfloat16"):
        m.save(tmp_path / dtype, optimizer=False, dtype=dtype)
        size = os.path.getsize(tmp_path / dtype / "model.safetensors")
        assert size < 2 * m.num_parameters + 4096
        back = TinyLM.load(tmp_path / dtype)
        if dtype == "float16":
            want = m.flat_parameters.astype(np.float16).astype(np.float32)
        else:  # round to nearest even on the top 16 bits
            want = m.flat_parameters.astype(np.float64)
            e = np.floor(np.log2(np.abs(want)))
            q = 2.0 ** (e - 7)
            want = (np.round(want / q) * q).astype(np.float32)  # np.round: ties to even
        np.testing.assert_array_equal(back.flat_parameters, want)
        lp = back.logprobs(ids, mask, targets)
        assert_close(lp, m.logprobs(ids, mask, targets), rtol=0.05, atol=0.05, what=dtype)
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    with safe_open(str(tmp_path / "bfloat16" / "model.safetensors"), framework="pt") as f:
        t = f.get_tensor("model.norm.weight")
        assert t.dtype == torch.bfloat16
        np.testing.assert_array_equal(t.float().numpy(), back._views["model.norm.weight"])
    with pytest.raises(ValueError, match="dtype"):
        m.save(tmp_path / "x", dtype="int8")


def test_safetensors_io_round_trip(tmp_path, rng):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {
        "a": rng.normal(size=(3, 4)).astype(np.float32),
        "b.c": rng.normal(size=5),
        "i": np.arange(7, dtype=np.int64),
        "h": rng.normal(size=(2, 2)).astype(np.float16),
        "big_endian": rng.normal(size=3).astype(">f4"),
        "empty": np.zeros((0, 3), np.float32),
    }
    path = str(tmp_path / "t.safetensors")
    write_safetensors(path, arrays, {"k": "v"})
    ours, meta = read_safetensors(path)
    theirs = safetensors_numpy.load_file(path)
    assert meta == {"k": "v"}
    for k, v in arrays.items():
        np.testing.assert_array_equal(ours[k], v)
        np.testing.assert_array_equal(theirs[k], v)
    # and we read what the package writes
    path2 = str(tmp_path / "u.safetensors")
    safetensors_numpy.save_file({k: v for k, v in arrays.items() if k != "big_endian"}, path2)
    back, _ = read_safetensors(path2)
    np.testing.assert_array_equal(back["a"], arrays["a"])
    with open(path, "r+b") as f:  # a corrupt header is reported, not crashed on
        f.write(b"\xff" * 8)
    with pytest.raises(ValueError, match="header"):
        read_safetensors(path)


def test_matches_huggingface_qwen2(tmp_path, rng):
    """Same log-probs as transformers' Qwen2ForCausalLM loading our checkpoint
    (skipped when transformers is not installed)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    m = make_model(scale=0.3, rope_theta=500.0, rms_norm_eps=1e-5, max_position_embeddings=24)
    m.save(tmp_path / "hf", optimizer=False)
    hf = transformers.Qwen2ForCausalLM.from_pretrained(str(tmp_path / "hf"), torch_dtype=torch.float32,
                                                       attn_implementation="eager")
    hf.eval()
    ids, mask, targets = random_batch(rng, m.config, B=4, T=20)
    targets = next_token_targets(ids, mask)
    with torch.no_grad():
        logits = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
        lsm = torch.log_softmax(logits.double(), -1).numpy()
    want = np.where(targets >= 0, np.take_along_axis(lsm, np.maximum(targets, 0)[..., None], -1)[..., 0], 0.0)
    got = m.logprobs(ids, mask, targets)
    assert_close(got, want, rtol=1e-4, atol=1e-4, what="vs Qwen2ForCausalLM")
    # greedy generation agrees as well
    prompts = [list(ids[b, :3]) for b in range(4)]
    ours = m.generate(prompts, max_new_tokens=6, temperature=0, stop_token_id=[])
    with torch.no_grad():
        theirs = hf.generate(torch.tensor(prompts), max_new_tokens=6, do_sample=False,
                             attention_mask=torch.ones(4, 3, dtype=torch.long), pad_token_id=0)
    np.testing.assert_array_equal(ours.tokens, theirs[:, 3:].numpy())


# ---- bad input ---------------------------------------------------------------------

def _bad_calls():
    ids = np.array([[1, 2, 3], [4, 5, 0]])
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    tg = np.array([[2, 3, -100], [5, -100, -100]])
    cases = [
        (lambda m: m.forward([[1, 11, 2]]), ValueError, "input_ids"),
        (lambda m: m.forward([[1, -1, 2]]), ValueError, "input_ids"),
        (lambda m: m.forward(np.zeros((1, 17), int)), ValueError, "input_ids.*max_position_embeddings"),
        (lambda m: m.forward(np.zeros((0, 3), int)), ValueError, "input_ids"),
        (lambda m: m.forward(np.zeros((2, 0), int)), ValueError, "input_ids"),
        (lambda m: m.forward(ids.astype(float)), TypeError, "input_ids"),
        (lambda m: m.forward(ids, mask[:, :2], tg), ValueError, "attention_mask"),
        (lambda m: m.forward(ids, [[1, 0, 1], [1, 1, 0]], tg), ValueError, "attention_mask.*right-padded"),
        (lambda m: m.forward(ids, mask * 2, tg), ValueError, "attention_mask"),
        (lambda m: m.forward(ids, mask, tg[:1]), ValueError, "targets"),
        (lambda m: m.forward(ids, mask, tg + 20), ValueError, "targets"),
        (lambda m: m.forward(ids, mask, tg.astype(float)), TypeError, "targets"),
        (lambda m: m.forward(ids, mask, tg, ignore_index=3), ValueError, "ignore_index"),
        (lambda m: m.forward(ids, mask, tg, temperature=0.0), ValueError, "temperature"),
        (lambda m: (m.forward(ids, mask, tg), m.backward(np.zeros((2, 2)))), ValueError, "grad_logp"),
        (lambda m: (m.forward(ids, mask, tg), m.backward(np.full((2, 3), np.nan))), ValueError, "grad_logp"),
        (lambda m: m.generate([]), ValueError, "prompts"),
        (lambda m: m.generate([[1], []], max_new_tokens=2), ValueError, "prompts"),
        (lambda m: m.generate([[1, 99]], max_new_tokens=2), ValueError, "prompts"),
        (lambda m: m.generate([[1, -1]], max_new_tokens=2), ValueError, "prompts"),  # was read out of bounds
        (lambda m: m.generate(["abc"]), TypeError, "prompts.*tokenizer"),
        (lambda m: m.generate("abc"), TypeError, "prompts"),
        (lambda m: m.generate([[1.5]]), TypeError, "prompts"),
        (lambda m: m.generate([[1] * 10], max_new_tokens=7), ValueError, "max_new_tokens"),
        (lambda m: m.generate([[1]], max_new_tokens=0), ValueError, "max_new_tokens"),
        (lambda m: m.generate([[1]], max_new_tokens=2, top_p=0.0), ValueError, "top_p"),
        (lambda m: m.generate([[1]], max_new_tokens=2, temperature=-1.0), ValueError, "temperature"),
        (lambda m: m.generate([[1]], max_new_tokens=2, seed=-1), ValueError, "seed"),
        (lambda m: m.step(lr=-1.0), ValueError, "lr"),
        (lambda m: m.step(betas=(1.0, 0.9)), ValueError, "beta1"),
        (lambda m: m.step(eps=0.0), ValueError, "eps"),
        (lambda m: m.train_step(ids, mask, np.full((2, 3), -100)), ValueError, "targets"),
        (lambda m: m.train_step(ids, mask, tg[:, :2]), ValueError, "targets"),
        (lambda m: m.load_state_dict({"model.norm.weight": np.zeros(3)}, strict=False), ValueError, "state"),
        (lambda m: m.load_state_dict({}), ValueError, "state"),
    ]
    return cases


@pytest.mark.parametrize("i", range(len(_bad_calls())))
def test_bad_input_raises_named_errors(i):
    fn, exc, match = _bad_calls()[i]
    m = make_model()
    with pytest.raises(exc, match=match):
        fn(m)


def test_config_validation():
    with pytest.raises(ValueError, match="hidden_size"):
        TinyLMConfig(hidden_size=10, num_attention_heads=4)
    with pytest.raises(ValueError, match="hidden_size"):
        TinyLMConfig(hidden_size=12, num_attention_heads=4)  # odd head size
    with pytest.raises(TypeError, match="vocab_size"):
        TinyLMConfig(vocab_size=3.0)
    with pytest.raises(ValueError, match="rms_norm_eps"):
        TinyLMConfig(rms_norm_eps=0.0)
    with pytest.raises(ValueError, match="eos_token_id"):
        TinyLMConfig(vocab_size=5, eos_token_id=5)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        TinyLMConfig.from_dict({**TINY, "num_key_value_heads": 1})
    with pytest.raises(TypeError, match="config"):
        TinyLM({"vocab_size": 3})
    c = TinyLMConfig(**TINY, eos_token_id=3)
    assert TinyLMConfig.from_dict(c.to_dict()) == c


def test_core_buffers_are_checked():
    from o1pruner._loader import _core
    m = make_model()
    cfg = m.config._c_tuple()
    ids = np.array([[1, 2, 3]])
    arena = np.zeros(_core.model_arena_size(cfg, 3), np.float32)
    with pytest.raises(TypeError, match="params"):
        _core.model_forward(cfg, m.flat_parameters.astype(np.float64), arena, ids)
    with pytest.raises(ValueError, match="params"):
        _core.model_forward(cfg, m.flat_parameters[:-1], arena, ids)
    with pytest.raises(ValueError, match="arena"):
        _core.model_forward(cfg, m.flat_parameters, arena[:-1], ids)
    with pytest.raises(ValueError, match="arena.*params"):
        _core.model_forward(cfg, m.flat_parameters, m.flat_parameters, ids)
    with pytest.raises(ValueError, match="config"):
        _core.model_forward((11, 8, 12, 2, 3, 16, 1e-6, 1e4), m.flat_parameters, arena, ids)
    p = m.flat_parameters
    with pytest.raises(ValueError, match="shares memory"):
        _core.model_adamw_step(p, p, np.zeros_like(p), np.zeros_like(p), 1, 1e-3, 0.9, 0.99, 1e-8, 0.0)


# ---- leaks -------------------------------------------------------------------------

def test_no_leaks(rng):
    m = make_model()
    ids, mask, targets = random_batch(rng, m.config)
    g = np.ones(ids.shape, np.float32)

    def work():
        m.forward(ids, mask, targets)
        m.backward(g)
        m.step(lr=1e-6)
        m.generate([[1, 2], [3]], max_new_tokens=4, temperature=1.0, top_p=0.9)
        for fn, exc, _ in _bad_calls()[:20]:
            try:
                fn(m)
            except (exc, RuntimeError):
                pass

    leak_check(work, n=200, warmup=20)


def test_generate_workspace_any_size(rng):
    """A missing or too small workspace is replaced inside; results agree."""
    from o1pruner._loader import _core
    m = make_model(max_position_embeddings=40, scale=0.3)
    cfg = m.config._c_tuple()
    ids, off = np.array([1, 2, 3, 4, 5, 6]), np.array([0, 2, 6])
    args = (cfg, m.flat_parameters, ids, off, 7, 1.0, 0.9, None, 5)
    want = _core.model_generate(*args)
    need = _core.model_generate_work_size(cfg, 2, 6, 4, 7)
    for work in (None, np.zeros(3, np.float32), np.full(need, np.nan, np.float32)):
        got = _core.model_generate(*args, 0, -1, work)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="workspace"):
        _core.model_generate(*args, 0, -1, np.zeros(need))
