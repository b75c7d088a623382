"""Every C entry point as a pair of calls, one that returns and one that
raises a ValueError/TypeError, for the leak loops (tests/test_leaks.py, a
short count in the suite; benchmarks/leak_check.py, 10^5 calls each) and the
thread tests (tests/test_threads.py). `run_loop` alternates the two calls and
measures RSS, Python's allocated blocks and the reference counts of the
inputs before and after."""

from __future__ import annotations

import gc
import os
import sys

import numpy as np

import o1pruner
from o1pruner._loader import _core
from o1pruner.models import TinyLM, TinyLMConfig


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_cases(seed: int = 0):
    """{name: (ok_call, bad_call, inputs)}: small inputs (the loops count calls,
    not flops); `inputs` are the arrays whose reference counts must not move."""
    rng = np.random.default_rng(seed)
    B, T, V, d = 4, 9, 13, 8
    lengths = rng.integers(1, 50, 12)
    correct = rng.random(12) < 0.5
    group = np.repeat(np.arange(3), 4)
    rewards = rng.normal(size=12)
    tok = rng.normal(size=(B, T)).astype(np.float32)
    mask = (rng.random((B, T)) < 0.8)
    adv = rng.normal(size=B)
    logits = rng.normal(size=(B * T, V)).astype(np.float32)
    targets = rng.integers(0, V, B * T)
    hidden = rng.normal(size=(B * T, d)).astype(np.float32)
    weight = rng.normal(size=(V, d)).astype(np.float32)
    g = np.ones(B * T, np.float32)
    lp = o1pruner.token_logprobs(logits, targets).lse
    fs = o1pruner.fused_linear_logprobs(hidden, weight, targets).stats
    texts = ["so the answer is \\boxed{\\frac{1}{2}}", "#### 42", "x = 3.5", "\\boxed{(1, 2]}"] * 2
    golds = ["0.5", "42", "7/2", "(1,2]"] * 2
    bad_text = [1, 2]

    cfg = TinyLMConfig(vocab_size=11, hidden_size=8, intermediate_size=12, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=16)
    model = TinyLM(cfg, seed=seed)
    ids = rng.integers(0, 11, (2, 6))
    am = np.ones((2, 6), np.int64)
    am[1, 4:] = 0
    tg = rng.integers(0, 11, (2, 6))
    ccfg = cfg._c_tuple()
    params = model.flat_parameters.copy()
    grads = np.zeros_like(params)
    m1, m2 = np.zeros_like(params), np.zeros_like(params)
    arena = np.zeros(_core.model_arena_size(ccfg, 12, _core.get_num_threads()), np.float32)
    gl = np.ones((2, 6), np.float32)
    work = np.zeros(_core.model_generate_work_size(ccfg, 2, 5, 3, 4), np.float32)
    p_ids, p_off = np.array([1, 2, 3, 4, 5]), np.array([0, 3, 5])

    def fwd_ok():
        _core.model_forward(ccfg, params, arena, ids, am, tg)

    def bwd_ok():
        _core.model_forward(ccfg, params, arena, ids, am, tg)
        _core.model_backward(ccfg, params, grads, arena, ids, am, tg, gl)

    cases = {
        "reference_stats": (lambda: o1pruner.reference_stats(lengths, correct, group),
                            lambda: o1pruner.reference_stats(lengths, correct[:-1], group), (lengths, correct)),
        "length_harmonizing_reward": (
            lambda: o1pruner.length_harmonizing_reward(lengths, correct, 20.0, 0.5, lam=2.0),
            lambda: o1pruner.length_harmonizing_reward(lengths, correct, -1.0, 0.5, lam=2.0), (lengths, correct)),
        "harmonize_weights": (lambda: o1pruner.harmonize_weights(rewards, normalize="group", group=group),
                              lambda: o1pruner.harmonize_weights(rewards, normalize="nope"), (rewards, group)),
        "sequence_logprobs": (lambda: o1pruner.sequence_logprobs(tok, mask),
                              lambda: o1pruner.sequence_logprobs(tok, mask[:, :-1]), (tok, mask)),
        "sequence_logprobs_backward": (lambda: o1pruner.sequence_logprobs_backward(adv, mask),
                                       lambda: o1pruner.sequence_logprobs_backward(adv[:-1], mask), (adv, mask)),
        "ppo_clip_loss": (lambda: o1pruner.ppo_clip_loss(tok, tok * 0.9, adv, mask),
                          lambda: o1pruner.ppo_clip_loss(tok, tok, adv, mask, eps_low=-1.0), (tok, adv, mask)),
        "dpo_loss": (lambda: o1pruner.dpo_loss(tok, tok[:, 2:], adv, adv, mask | True, mask[:, 2:] | True),
                     lambda: o1pruner.dpo_loss(tok, tok, adv, adv, mask, mask, beta=0.0), (tok, adv, mask)),
        "token_logprobs": (lambda: o1pruner.token_logprobs(logits, targets),
                           lambda: o1pruner.token_logprobs(logits, targets + V), (logits, targets)),
        "token_logprobs_backward": (lambda: o1pruner.token_logprobs_backward(logits, targets, lp, g),
                                    lambda: o1pruner.token_logprobs_backward(logits, targets, lp, g[:-1]),
                                    (logits, targets, g)),
        "fused_linear_logprobs": (lambda: o1pruner.fused_linear_logprobs(hidden, weight, targets),
                                  lambda: o1pruner.fused_linear_logprobs(hidden, weight[:, :-1], targets),
                                  (hidden, weight, targets)),
        "fused_linear_logprobs_backward": (
            lambda: o1pruner.fused_linear_logprobs_backward(hidden, weight, targets, fs, g),
            lambda: o1pruner.fused_linear_logprobs_backward(hidden, weight, targets, fs, g[:-1]),
            (hidden, weight, targets, g)),
        "extract_answers": (lambda: o1pruner.extract_answers(texts), lambda: o1pruner.extract_answers(bad_text),
                            (texts,)),
        "normalize_answer": (lambda: o1pruner.normalize_answer(texts[0]), lambda: o1pruner.normalize_answer(None),
                             ()),
        "grade_many": (lambda: o1pruner.grade_many(texts, golds, details=True),
                       lambda: o1pruner.grade_many(texts, golds[:-1]), (texts, golds)),
        "compare_answers": (lambda: o1pruner.compare_answers("1/2", "0.5"),
                            lambda: o1pruner.compare_answers("1/2", "0.5", rtol=-1.0), ()),
        "sgemm": (lambda: _core.sgemm(hidden, weight, trans_b=True), lambda: _core.sgemm(hidden, weight),
                  (hidden, weight)),
        "model_forward": (fwd_ok, lambda: _core.model_forward(ccfg, params, arena, ids + 20, am, tg),
                          (params, arena, ids, am, tg)),
        "model_backward": (bwd_ok, lambda: _core.model_backward(ccfg, params, grads, arena, ids, am, tg, gl[:1]),
                           (params, grads, arena, ids, gl)),
        "model_grad_norm": (lambda: _core.model_grad_norm(grads), lambda: _core.model_grad_norm(grads[::2]),
                            (grads,)),
        "model_adamw_step": (lambda: _core.model_adamw_step(params, grads, m1, m2, 1, 0.0, 0.9, 0.999, 1e-8, 0.0),
                             lambda: _core.model_adamw_step(params, grads, m1, m2, 1, -1.0, 0.9, 0.999, 1e-8, 0.0),
                             (params, grads, m1, m2)),
        "model_generate": (lambda: _core.model_generate(ccfg, params, p_ids, p_off, 4, 1.0, 0.9, None, 7, 0, -1, work),
                           lambda: _core.model_generate(ccfg, params, p_ids + 20, p_off, 4, 1.0, 0.9, None, 7),
                           (params, p_ids, p_off, work)),
        "model_sizes": (lambda: (_core.model_arena_size(ccfg, 12), _core.model_layout(ccfg),
                                 _core.model_generate_work_size(ccfg, 2, 5, 3, 4)),
                        lambda: _core.model_arena_size(ccfg, -1), ()),
        "TinyLM.train_step": (lambda: model.train_step(ids, am, tg, lr=0.0),
                              lambda: model.train_step(ids, am, tg[:1]), (ids, am, tg)),
        "TinyLM.generate": (lambda: model.generate([[1, 2], [3]], max_new_tokens=3, seed=1),
                            lambda: model.generate([[1, 99]], max_new_tokens=3), ()),
        "set_num_threads": (lambda: _core.set_num_threads(_core.get_num_threads()),
                            lambda: _core.set_num_threads(0), ()),
    }
    return cases


def run_loop(ok, bad, inputs, n: int, warmup: int = 200) -> dict:
    """n calls, even ones `ok`, odd ones `bad` (which must raise
    ValueError/TypeError). Returns the growth of RSS (bytes), of Python's
    allocated blocks and of the inputs' reference counts."""
    def one(i):
        if i % 2 == 0:
            ok()
        else:
            try:
                bad()
            except (ValueError, TypeError):
                return
            raise AssertionError("the failing call did not raise")

    for i in range(warmup):
        one(i)
    gc.collect()
    refs0 = refcounts(inputs)
    blocks0 = sys.getallocatedblocks()
    rss0 = rss_bytes()
    for i in range(n):
        one(i)
    gc.collect()
    return dict(calls=n, rss_growth=rss_bytes() - rss0, blocks_growth=sys.getallocatedblocks() - blocks0,
                refcount_drift=max((abs(a - b) for a, b in zip(refcounts(inputs), refs0)), default=0))


def refcounts(objs):
    return [sys.getrefcount(x) for x in objs]
