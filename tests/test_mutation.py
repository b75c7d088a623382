"""Concurrent mutation of inputs (issue 13, point 1): while a kernel runs
without the GIL, a second Python thread keeps rewriting one of its index,
length, offset or mask inputs. The rule ("owned or re-checked", arrays.h):
the result may be garbage or a ValueError, never memory corruption. Each
case runs for a bounded time in a fresh interpreter, so a crash (the old
"double free or corruption" abort, a SEGV) fails the test instead of taking
the test run down; under the ASan build a heap overflow aborts it too."""

import subprocess
import sys
import textwrap

import pytest

from helpers import child_python

DURATION = 2.5  # seconds of mutation per case

PRELUDE = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    from o1pruner._loader import _core

    rng = np.random.default_rng(0)
    errors = {"ValueError": 0}

    def hammer(call, mutate, restore=None):
        stop = threading.Event()

        def mutator():
            while not stop.is_set():
                mutate()

        th = threading.Thread(target=mutator)
        th.start()
        calls, t0 = 0, time.perf_counter()
        try:
            while time.perf_counter() - t0 < DURATION:
                if restore is not None:
                    restore()
                try:
                    call()
                except ValueError:
                    errors["ValueError"] += 1
                calls += 1
        finally:
            stop.set()
            th.join()
        print("calls", calls, "value_errors", errors["ValueError"])
    """
)

CASES = {
    # the reproduction: aborted with "double free or corruption"
    "fused_targets": """
        N, d, V = 200000, 8, 64
        h = rng.normal(size=(N, d)).astype(np.float32)
        W = rng.normal(size=(V, d)).astype(np.float32)
        targets = rng.integers(0, V, N)
        flip = [5, -100]

        def mutate():
            targets[1::2] = flip[0]
            flip.reverse()

        hammer(lambda: _core.fused_linear_logprobs(h, W, targets, 1.0, -100), mutate)
    """,
    "fused_backward_targets": """
        N, d, V = 50000, 8, 64
        h = rng.normal(size=(N, d)).astype(np.float32)
        W = rng.normal(size=(V, d)).astype(np.float32)
        targets = rng.integers(0, V, N)
        logp, ent, lse = _core.fused_linear_logprobs(h, W, targets, 1.0, -100)
        g = np.ones(N, np.float32)
        flip = [5, -100]

        def mutate():
            targets[1::2] = flip[0]
            flip.reverse()

        hammer(lambda: _core.fused_linear_logprobs_backward(h, W, targets, lse, ent, g, None, 1.0, -100),
               mutate)
    """,
    # the second reproduction: the embedding read ran off the end (SEGV)
    "model_input_ids": """
        from o1pruner.models import TinyLM, TinyLMConfig
        cfg = TinyLMConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=128)
        m = TinyLM(cfg, seed=0)
        ids = rng.integers(0, 64, (32, 128))
        targets = rng.integers(0, 64, (32, 128))
        good = ids.copy()

        def mutate():
            ids[:, ::3] = 10**12
            ids[:] = good

        hammer(lambda: m.forward(ids, None, targets), mutate)
    """,
    "model_mask_and_targets": """
        from o1pruner.models import TinyLM, TinyLMConfig
        cfg = TinyLMConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=128)
        m = TinyLM(cfg, seed=0)
        ids = rng.integers(0, 64, (32, 128))
        targets = rng.integers(0, 64, (32, 128))
        mask = np.ones((32, 128), np.float64)
        good = targets.copy()

        def mutate():
            targets[:, 1::2] = 10**12
            mask[:, 64:] = 0.0
            targets[:] = good
            mask[:] = 1.0

        def call():
            m.forward(ids, mask, targets)
            m.backward(np.ones((32, 128), np.float32))

        hammer(call, mutate)
    """,
    "model_generate_prompts": """
        from o1pruner.models import TinyLM, TinyLMConfig
        cfg = TinyLMConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=128)
        m = TinyLM(cfg, seed=0)
        B, L = 64, 40
        ids = rng.integers(0, 64, B * L)
        offsets = np.arange(0, B * L + 1, L, dtype=np.int64)
        good_ids, good_off = ids.copy(), offsets.copy()

        def mutate():
            ids[::7] = 10**12
            offsets[1:-1] = 10**9
            ids[:] = good_ids
            offsets[:] = good_off

        hammer(lambda: _core.model_generate(m._cfg, m._params, ids, offsets, 16, 1.0, 1.0, None, 0),
               mutate)
    """,
    "token_logprobs_targets": """
        N, V = 4000, 300
        logits = rng.normal(size=(N, V)).astype(np.float32)
        targets = rng.integers(0, V, N)
        flip = [5, -100, 10**12]

        def mutate():
            targets[1::2] = flip[0]
            flip.append(flip.pop(0))
            targets[1::2] = 5

        hammer(lambda: _core.token_logprobs(logits, targets, 1.0, -100), mutate)
    """,
    "reference_stats_group_ids": """
        S = 200000
        lengths = rng.integers(1, 500, S).astype(np.float64)
        correct = (rng.random(S) < 0.5).astype(np.float64)
        group = np.repeat(np.arange(2000), 100)
        good = group.copy()

        def mutate():
            group[::3] = rng.integers(-10**12, 10**12)
            group[:] = good

        hammer(lambda: _core.reference_stats(lengths, correct, group, None), mutate)
    """,
    "ppo_mask": """
        B, T = 512, 512
        logp = -rng.random((B, T)).astype(np.float32)
        adv = rng.normal(size=B)
        mask = rng.random((B, T)) < 0.8
        def mutate():
            mask[:, ::2] = ~mask[:, ::2]

        def call():
            _core.ppo_clip_loss(logp, logp * 0.9, adv, mask, ratio="token", aggregate="token-mean")
            _core.sequence_logprobs(logp, mask, "mean")

        hammer(call, mutate)
    """,
    # dpo_loss decides from the masks which pairs are padding and which rows
    # are empty: the kernel reads a private copy of each mask
    "dpo_mask": """
        B, T = 256, 512
        c = -rng.random((B, T)).astype(np.float32)
        r = -rng.random((B, T)).astype(np.float32)
        ref = -rng.random(B) * 100
        mc = rng.random((B, T)) < 0.8
        mr = rng.random((B, T)) < 0.8
        def mutate():
            mc[::2] = False
            mr[1::2] = False
            mc[:, ::3] = True
            mr[:, ::3] = True

        def call():
            _core.dpo_loss(c, r, ref, ref, mc, mr, 0.1, None, True)

        hammer(call, mutate)
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_concurrent_mutation_never_corrupts_memory(case):
    src = PRELUDE.replace("DURATION", repr(DURATION)) + textwrap.dedent(CASES[case])
    p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=300, **child_python())
    assert p.returncode == 0, (
        f"{case}: the process died (exit {p.returncode}) while a thread mutated an input\n"
        f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-4000:]}"
    )
    assert "calls" in p.stdout
