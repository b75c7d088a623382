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
from o1pruner import reference as ref
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
