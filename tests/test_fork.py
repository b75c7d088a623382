"""Fork safety (issue 13, point 3): a child forked from a process that has run
parallel kernels, or forked while another thread is inside a kernel, can set
its thread count and call every kernel without hanging, and the count it sets
reaches BLAS. Each scenario runs in a fresh interpreter under a timeout (a
hang fails the test instead of stalling the suite); inside, every child has
an alarm and the parent reports the children's exit codes."""

import os
import subprocess
import sys
import textwrap

import pytest

from helpers import child_python

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TIMEOUT = 240

PRELUDE = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import numpy as np
    from o1pruner._loader import _core
    from o1pruner.models import TinyLM, TinyLMConfig

    rng = np.random.default_rng(0)
    N, d, V = 4096, 64, 512
    h = rng.normal(size=(N, d)).astype(np.float32)
    W = rng.normal(size=(V, d)).astype(np.float32)
    t = rng.integers(0, V, N)
    logits = rng.normal(size=(2048, 300)).astype(np.float32)
    lt = rng.integers(0, 300, 2048)
    cfg = TinyLMConfig(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=64)
    ids = rng.integers(0, 40, (16, 48))

    def every_kernel():
        out = []
        out += list(_core.fused_linear_logprobs(h, W, t, 1.0, -100))
        logp, ent, lse = _core.fused_linear_logprobs(h, W, t, 1.0, -100)
        g = np.ones(N, np.float32)
        out += [x for x in _core.fused_linear_logprobs_backward(h, W, t, lse, ent, g, None, 1.0, -100)
                if x is not None]
        out += list(_core.token_logprobs(logits, lt, 1.0, -100))
        m = TinyLM(cfg, seed=3)
        out.append(m.logprobs(ids, targets=ids))
        out += m.generate([[1, 2, 3]] * 8, max_new_tokens=8, temperature=0.0).sequences()
        out += list(_core.grader_compare(["1/2"] * 300, ["0.5"] * 300))
        return out

    def run_child(body):
        # returns the child's exit code; the child has `alarm` seconds
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                signal.alarm(60)
                code = body()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    """
)


def _run(body):
    src = PRELUDE + textwrap.dedent(body)
    p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=TIMEOUT, **child_python())
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}"
    return p.stdout


def test_set_num_threads_in_child_after_parallel_work():
    """The documented remedy (set_num_threads again in the child) used to hang
    in GNU OpenMP when the parent had run a parallel kernel before fork."""
    out = _run(
        """
        _core.set_num_threads(2)
        want = every_kernel()            # the parent's OpenMP and BLAS pools are running now

        def body():
            _core.set_num_threads(2)
            if _core.get_num_threads() != 2 or _core.build_info()["blas_threads"] != 2:
                return 4
            got = every_kernel()
            return 0 if all(np.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(got, want)) else 5

        code = run_child(body)
        print("child", code)
        sys.exit(code)
        """
    )
    assert "child 0" in out


def test_child_without_set_num_threads_runs_every_kernel():
    _run(
        """
        _core.set_num_threads(2)
        want = every_kernel()

        def body():
            if _core.get_num_threads() != 1:
                return 4
            got = every_kernel()
            return 0 if all(np.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(got, want)) else 5

        sys.exit(run_child(body))
        """
    )


def test_fork_while_another_thread_is_inside_a_kernel():
    """Forks taken while a second thread runs fused kernels (BLAS serial
    section open, blas_lock taken and released around it): every child sets
    2 threads, sees them reach BLAS, and runs kernels; none hangs."""
    out = _run(
        """
        _core.set_num_threads(2)
        stop = threading.Event()

        def worker():
            while not stop.is_set():
                _core.fused_linear_logprobs(h, W, t, 1.0, -100)

        th = threading.Thread(target=worker)
        th.start()

        def body():
            _core.set_num_threads(2)
            if _core.build_info()["blas_threads"] != 2:
                return 4
            _core.fused_linear_logprobs(h, W, t, 1.0, -100)
            _core.token_logprobs(logits, lt, 1.0, -100)
            return 0

        codes = []
        try:
            for i in range(40):
                time.sleep(0.002 * (i % 7))
                codes.append(run_child(body))
        finally:
            stop.set()
            th.join()
        print("codes", codes)
        sys.exit(0 if all(c == 0 for c in codes) else 1)
        """
    )
    assert "codes" in out


def test_child_of_a_fresh_process_keeps_its_threads():
    """A child forked before any parallel region keeps OpenMP (nothing to
    lose): its kernels run with the thread count it sets."""
    _run(
        """
        def body():
            _core.set_num_threads(2)
            every_kernel()
            return 0 if _core.get_num_threads() == 2 else 4

        sys.exit(run_child(body))
        """
    )
