"""Sizes whose products exceed 2^31 (the 32-bit BLAS int, int32 counters) and
2^63 (int64 / npy_intp) are rejected cleanly by every entry point taking
arrays: a ValueError/TypeError naming an argument, or a MemoryError when the
input conversion itself cannot be allocated; never a crash, a hang or a wrong
result. The inputs are zero-stride np.lib.stride_tricks.as_strided views, so
they need no memory. The cases run in a child process whose address space is
capped (RLIMIT_AS), so a conversion copy that would need gigabytes fails fast
with MemoryError instead of swapping the machine."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import o1pruner

CHILD = textwrap.dedent(r'''
    import json, resource, sys, time
    from types import SimpleNamespace
    import numpy as np
    from numpy.lib.stride_tricks import as_strided
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = 3 << 30 if hard == resource.RLIM_INFINITY else min(3 << 30, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    import o1pruner as o
    from o1pruner._loader import _core

    def big(shape, dtype=np.float32, val=0):
        """A read-only view of one element repeated over `shape` (no memory)."""
        return as_strided(np.full(1, val, dtype), shape=shape, strides=(0,) * len(shape), writeable=False)

    N31 = 2**31 + 1                 # elements: one more than a 32-bit int holds
    S32 = (2**16, 2**16)            # 2^32 elements in 2-D
    H, E = 2**40, 2**40             # hidden (N, 1) x weight (V, 1): N*V = 2^80 logits
    cfg = (11, 8, 12, 2, 2, 16, 1e-6, 1e4)
    P = _core.model_num_params(cfg)
    params = np.zeros(P, np.float32)
    cases = {
        # rewards: per-sample arrays of 2^31+1 entries
        "reference_stats": lambda: o.reference_stats(big((N31,), np.int64, 5), big((N31,), np.bool_, 1)),
        "length_harmonizing_reward": lambda: o.length_harmonizing_reward(
            big((N31,), np.int64, 5), big((N31,), np.bool_, 1), 5.0, 0.5, lam=1.0),
        "harmonize_weights": lambda: o.harmonize_weights(big((N31,), np.float64, 1.0)),
        # objectives: (B, T) with B*T = 2^32
        "sequence_logprobs": lambda: o.sequence_logprobs(big(S32), big(S32, np.bool_, 1)),
        "sequence_logprobs_backward": lambda: o.sequence_logprobs_backward(big((2**16,)), big(S32, np.bool_, 1)),
        "ppo_clip_loss": lambda: o.ppo_clip_loss(big(S32), big(S32), big((2**16,)), big(S32, np.bool_, 1)),
        "dpo_loss": lambda: o.dpo_loss(big(S32), big(S32), big((2**16,), np.float64), big((2**16,), np.float64),
                                       big(S32, np.bool_, 1), big(S32, np.bool_, 1)),
        # token log-probs: (N, V) with N*V = 2^32
        "token_logprobs": lambda: o.token_logprobs(big(S32), big((2**16,), np.int64, 0)),
        "token_logprobs_backward": lambda: o.token_logprobs_backward(
            big(S32), big((2**16,), np.int64, 0), big((2**16,)), big((2**16,))),
        # fused: N*V = 2^80 logits (never materialised), hidden of 2^40 rows
        "fused_linear_logprobs": lambda: o.fused_linear_logprobs(big((H, 1)), big((E, 1)),
                                                                 big((H,), np.int64, 0)),
        "fused_linear_logprobs d>2^31": lambda: o.fused_linear_logprobs(big((1, N31)), big((2, N31)),
                                                                        np.zeros(1, np.int64)),
        "fused_linear_logprobs_backward": lambda: o.fused_linear_logprobs_backward(
            big((H, 1)), big((E, 1)), big((H,), np.int64, 0), SimpleNamespace(lse=big((H,)), entropy=big((H,))),
            big((H,))),
        # sgemm: m*n = 2^66 output, k > 2^31
        "sgemm m*n": lambda: _core.sgemm(big((2**33, 1)), big((1, 2**33))),
        "sgemm k": lambda: _core.sgemm(big((1, N31)), big((N31, 1))),
        # the model: B*T beyond 2^31 and 2^62 (NumPy caps one array at 2^63 bytes;
    # products beyond 2^63 exist only across arguments: the fused cases above)
        "model_forward": lambda: _core.model_forward(cfg, params, np.zeros(16, np.float32),
                                                     big((2**28, 16), np.int64, 1)),
        "model_forward B*T=2^62": lambda: _core.model_forward(cfg, params, np.zeros(16, np.float32),
                                                              big((2**31, 2**31), np.int8, 1)),
        "model_backward": lambda: _core.model_backward(cfg, params, np.zeros(P, np.float32), np.zeros(16, np.float32),
                                                       big((2**28, 16), np.int64, 1), None,
                                                       big((2**28, 16), np.int64, 1), big((2**28, 16))),
        "model_generate": lambda: _core.model_generate(cfg, params, big((N31,), np.int64, 1),
                                                       np.array([0, N31]), 1, 0.0, 1.0, None, 0),
        "model_generate offsets": lambda: _core.model_generate(cfg, params, np.ones(4, np.int64),
                                                               np.array([0, 2**62, 4]), 1, 0.0, 1.0, None, 0),
        "model_grad_norm": lambda: _core.model_grad_norm(big((N31,))),
        "model_adamw_step": lambda: _core.model_adamw_step(big((N31,)), big((N31,)), big((N31,)), big((N31,)),
                                                           1, 1e-3, 0.9, 0.999, 1e-8, 0.0),
        # sizes given as ints
        "model_arena_size": lambda: _core.model_arena_size(cfg, 2**62, 4096),
        "model_arena_size 2^63": lambda: _core.model_arena_size(cfg, 2**63),
        "model_generate_work_size": lambda: _core.model_generate_work_size(cfg, 2**40, 2**40, 16, 16),
        "model_num_params": lambda: _core.model_num_params((2**24, 2**24, 2**24, 2**24, 2, 2**24, 1e-6, 1e4)),
        # the grader: batches whose lengths disagree at 2^31+1 (list views, no memory)
        "grade_many": lambda: o.grade_many(big((N31,), np.bool_, 1), ["1"]),
    }
    out = {}
    for name, fn in cases.items():
        t = time.perf_counter()
        try:
            r = fn()
            kind, msg = "returned", repr(r)[:200]
        except (ValueError, TypeError, MemoryError, OverflowError) as e:
            kind, msg = type(e).__name__, str(e)[:300]
        out[name] = dict(kind=kind, msg=msg, seconds=round(time.perf_counter() - t, 3))
    print(json.dumps(out))
''')

# words that may name the offending argument in each case's message
NAMES = ("lengths", "correct", "rewards", "token_logp", "mask", "grad", "logp", "ref_logp", "advantages",
         "chosen_logp", "rejected_logp", "chosen_mask", "rejected_mask",
         "logits", "targets", "lse", "grad_logp", "hidden", "weight", "a", "b", "sgemm", "input_ids",
         "prompts", "prompt_ids", "prompt_offsets", "params", "grads", "n_tokens", "threads", "config",
         "n_prompts", "n_prompt_tokens", "predictions", "golds", "arena", "max_new_tokens", "stats")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if o1pruner.config()["variant"] == "sanitize":
        pytest.skip("the address-space cap of the child is incompatible with AddressSanitizer's shadow memory")
    # the child imports the same o1pruner as this process (installed or built in
    # place), and runs outside the source tree: `-c` puts the cwd first on sys.path
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(o1pruner.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [pkg_parent, os.environ.get("PYTHONPATH")])))
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600, env=env,
                       cwd=str(tmp_path_factory.mktemp("overflow")))
    assert p.returncode == 0, f"child crashed (rc {p.returncode}):\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_every_overflow_is_rejected_cleanly(results):
    bad = {}
    for name, r in results.items():
        if r["kind"] == "returned":
            bad[name] = r
        elif r["kind"] in ("ValueError", "TypeError") and r["msg"].split(":")[0].split()[0] not in NAMES:
            bad[name] = r
        elif r["kind"] == "OverflowError":  # a bare OverflowError is not a named ValueError
            bad[name] = r
    assert not bad, json.dumps(bad, indent=1)
    assert len(results) >= 25
    kinds = {}
    for r in results.values():
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    print("overflow cases:", kinds)


def test_products_beyond_2_63_are_checked_not_allocated(results):
    """Where the product only exists inside the C code (no copy to make), the
    size check answers with a named ValueError, at once."""
    for name in ("fused_linear_logprobs d>2^31", "model_arena_size 2^63", "model_arena_size", "model_num_params",
                 "model_generate_work_size", "model_generate offsets", "sgemm m*n", "sgemm k"):
        r = results[name]
        assert r["kind"] in ("ValueError", "TypeError", "MemoryError"), (name, r)
        assert r["seconds"] < 30, (name, r)
