"""Thread safety: the same calls from 4 Python threads at once give results
identical to serial calls (the kernels keep no global state and release the
GIL around compute); nothing deadlocks when those threads meet our OpenMP
regions and BLAS threads; the package works in a child after os.fork (with
the parent's OpenMP and BLAS pools already started)."""

import os
import signal
import threading

import numpy as np
import pytest

import o1pruner
from o1pruner._loader import _core
from o1pruner.models import TinyLM, TinyLMConfig

N_THREADS, REPEAT, TIMEOUT = 4, 12, 120


def _cases():
    """name -> call returning a tuple of arrays / scalars; inputs large enough
    that the GIL is released (O1P_GIL_THRESHOLD) and OpenMP splits the work."""
    rng = np.random.default_rng(7)
    N, V, d, B, T = 512, 300, 64, 64, 96
    logits = rng.normal(size=(N, V)).astype(np.float32)
    targets = rng.integers(0, V, N)
    hidden = rng.normal(size=(N, d)).astype(np.float32)
    weight = rng.normal(size=(V, d)).astype(np.float32)
    g = rng.normal(size=N).astype(np.float32)
    tok = rng.normal(size=(B, T)).astype(np.float32)
    mask = rng.random((B, T)) < 0.8
    adv = rng.normal(size=B)
    lengths = rng.integers(1, 500, 5000)
    correct = rng.random(5000) < 0.5
    group = np.repeat(np.arange(50), 100)
    texts = [f"so \\boxed{{\\frac{{{i}}}{{{i + 1}}}}}" for i in range(300)]
    golds = [f"{i}/{i + 1}" if i % 3 else "0.5" for i in range(300)]
    lse = o1pruner.token_logprobs(logits, targets).lse
    stats = o1pruner.fused_linear_logprobs(hidden, weight, targets).stats
    cfg = TinyLMConfig(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=64)
    ids = rng.integers(0, 40, (8, 48))
    models = {}

    def model():  # one TinyLM per thread: a model owns its activation buffers
        k = threading.get_ident()
        if k not in models:
            models[k] = TinyLM(cfg, seed=3)
        return models[k]

    return {
        "token_logprobs": lambda: tuple(o1pruner.token_logprobs(logits, targets, temperature=0.7)),
        "token_logprobs_backward": lambda: (o1pruner.token_logprobs_backward(logits, targets, lse, g),),
        "fused_linear_logprobs": lambda: tuple(o1pruner.fused_linear_logprobs(hidden, weight, targets)[:2]),
        "fused_linear_logprobs_backward": lambda: tuple(
            x for x in o1pruner.fused_linear_logprobs_backward(hidden, weight, targets, stats, g) if x is not None),
        "sequence_logprobs": lambda: (o1pruner.sequence_logprobs(tok, mask, reduce="mean"),),
        "ppo_clip_loss": lambda: (o1pruner.ppo_clip_loss(tok, tok * 0.9, adv, mask)[:2]),
        "dpo_loss": lambda: (o1pruner.dpo_loss(tok, tok[::-1], adv, adv[::-1], mask | True, mask | True)[:3]),
        "length_harmonizing_reward": lambda: (o1pruner.length_harmonizing_reward(lengths, correct, 200.0, 0.5,
                                                                                 lam=2.0),),
        "harmonize_weights": lambda: (o1pruner.harmonize_weights(rng.normal(size=5000) * 0 + lengths / 100.0,
                                                                 normalize="group", group=group),),
        "grade_many": lambda: (o1pruner.grade_many(o1pruner.extract_answers(texts), golds, details=True).verdict,),
        "sgemm": lambda: (_core.sgemm(hidden, weight, trans_b=True),),
        "TinyLM.logprobs": lambda: (model().logprobs(ids),),
        "TinyLM.generate": lambda: (model().generate(ids[:, :8], max_new_tokens=16, seed=5).tokens,),
    }


CASES = _cases()


def _equal(a, b):
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
                                    for x, y in zip(a, b))


def _run_threads(fn, n_threads, repeat):
    """Run fn() repeat times in each of n_threads threads, started together;
    returns the results, or fails when a thread is still running after TIMEOUT."""
    out, errors = [], []
    barrier = threading.Barrier(n_threads)

    def work():
        try:
            barrier.wait()
            for _ in range(repeat):
                out.append(fn())
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), f"deadlock: a thread still runs after {TIMEOUT}s"
    assert not errors, errors[0]
    return out


@pytest.mark.parametrize("omp_threads", [1, 2])
@pytest.mark.parametrize("name", sorted(CASES))
def test_four_threads_equal_serial(name, omp_threads):
    """4 Python threads x (1 or 2 OpenMP/BLAS threads each): results equal the
    serial ones bit for bit (the kernels are deterministic for a given thread
    count) and nothing deadlocks."""
    saved = o1pruner.get_num_threads()
    o1pruner.set_num_threads(omp_threads)
    try:
        fn = CASES[name]
        want = fn()
        got = _run_threads(fn, N_THREADS, REPEAT)
    finally:
        o1pruner.set_num_threads(saved)
    assert len(got) == N_THREADS * REPEAT
    for r in got:
        assert _equal(r, want), name


def test_all_entry_points_at_once():
    """Every case in its own thread at the same time, twice over (BLAS sgemm,
    OpenMP regions and the grader's thread pool interleaved). Bit-identical,
    except the raw BLAS call sgemm: OpenBLAS's thread count is process-wide,
    and a kernel running BLAS inside its own parallel region sets it to 1 for
    that time (o1p_blas_serial_begin), so a concurrent plain sgemm may run on
    1 thread, whose blocking rounds differently (~1e-5 relative)."""
    want = {k: fn() for k, fn in CASES.items()}
    results, errors = {}, []

    def same(k, r):
        if k == "sgemm":
            return np.allclose(r[0], want[k][0], rtol=1e-5, atol=1e-5 * np.abs(want[k][0]).max())
        return _equal(r, want[k])

    def work(k):
        try:
            for _ in range(3):
                r = CASES[k]()
                if not same(k, r):
                    errors.append(k)
        except BaseException as e:  # noqa: BLE001
            errors.append((k, e))

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in list(CASES) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_calls_after_fork():
    """A child forked after the parent started its OpenMP and BLAS thread
    pools computes the same results (a hang would be killed by the alarm)."""
    want = {k: fn() for k, fn in CASES.items()}  # the pools are running now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery, exit code is the verdict
        try:
            os.close(r)
            signal.alarm(60)
            bad = [k for k, fn in CASES.items() if not _equal(fn(), want[k])]
            os.write(w, (",".join(bad) or "ok").encode())
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    msg = os.read(r, 4096).decode()
    os.close(r)
    code = os.waitstatus_to_exitcode(status)
    assert code == 0, f"child exited with {code} (-14: SIGALRM, a hang after fork)"
    assert msg == "ok", f"results differ in the child: {msg}"
