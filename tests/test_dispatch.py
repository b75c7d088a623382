"""CPU dispatch: the build assumes no AVX2 or AVX-512 (target clones and the
hand-dispatched kernels of o1p.h pick a path at run time). Every path this
CPU can run gives the results of the path chosen by default: the PPO loss
bit for bit (no FMA contraction there, lanes fixed by the code), the token
log-probs within float32 rounding (FMA is contracted on the AVX2/AVX-512
paths only). O1P_SIMD caps the path for a whole process; the tests switch it
in process through _core._simd_path."""

import os
import subprocess
import sys

import numpy as np
import pytest

import o1pruner
from o1pruner import _core

from helpers import assert_close, child_python

LEVELS = ["baseline", "x86-64-v3", "x86-64-v4"]


def available_paths():
    """The paths this CPU runs (capping at a level above the CPU's gives the CPU's)."""
    default = _core._simd_path()
    try:
        names = {}
        for level in LEVELS:
            names[level] = _core._simd_path(level)
        return default, [lv for lv in LEVELS if names[lv].startswith(lv)]
    finally:
        _core._simd_path("x86-64-v4")  # back to the CPU's own level


@pytest.fixture
def paths():
    default, avail = available_paths()
    yield avail
    _core._simd_path("x86-64-v4")
    assert _core._simd_path() == default


def on_each_path(paths, fn):
    out = {}
    for level in paths:
        _core._simd_path(level)
        out[level] = fn()
    _core._simd_path("x86-64-v4")
    return out


def ppo_batch(rng, B=7, T=2500):
    ref = rng.normal(-1.5, 1.0, (B, T)).astype(np.float32)
    lp = (ref + rng.normal(0, 0.4, (B, T))).astype(np.float32)
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, B)[:, None]
    mask[1] = False
    adv = rng.normal(0, 1, B)
    adv[2] = 0.0
    return lp, ref, adv, mask


def test_baseline_is_always_available(paths):
    assert "baseline" in paths


@pytest.mark.parametrize("ratio, aggregate, kw", [
    ("sequence_mean", "mean", {}),
    ("sequence_mean", "sum", dict(dual_clip=2.0)),
    ("token", "grpo", {}),
    ("token", "token-mean", dict(dual_clip=1.5, logratio_clamp=0.5)),
    ("token", "seq-mean-token-sum", dict(eps_high=0.28)),
])
def test_ppo_paths_identical(rng, paths, ratio, aggregate, kw):
    lp, ref, adv, mask = ppo_batch(rng)
    res = on_each_path(paths, lambda: o1pruner.ppo_clip_loss(lp, ref, adv, mask, ratio=ratio, aggregate=aggregate, **kw))
    base = res["baseline"]
    for level, r in res.items():
        assert r.loss == base.loss and r.stats == base.stats, (level, r.loss, base.loss)
        assert np.array_equal(r.grad, base.grad), level


@pytest.mark.parametrize("with_entropy", [False, True])
def test_token_logprobs_paths_agree(rng, paths, with_entropy):
    N, V = 6, 5000
    x = (rng.standard_normal((N, V)) * 3).astype(np.float32)
    x[0, ::7] = -np.inf
    t = rng.integers(0, V, N)
    t[3] = -100
    g = rng.standard_normal(N).astype(np.float32)
    ge = rng.standard_normal(N).astype(np.float32) if with_entropy else None

    def run():
        out = o1pruner.token_logprobs(x, t, 0.7)
        return out, o1pruner.token_logprobs_backward(x, t, out.lse, g, ge, 0.7)

    res = on_each_path(paths, run)
    (fb, db) = res["baseline"]
    for level, (f, d) in res.items():
        assert_close(f.lse, fb.lse, rtol=4e-7, atol=1e-6, what=f"{level} lse")
        assert_close(f.logp, fb.logp, rtol=4e-7, atol=2e-6, what=f"{level} logp")
        assert_close(f.entropy, fb.entropy, rtol=2e-6, atol=2e-6, what=f"{level} entropy")
        assert_close(d, db, rtol=2e-6, atol=1e-6 * np.abs(db).max(), what=f"{level} dlogits")


def run_child(code, **env):
    # the child imports the same o1pruner as this process, outside the source
    # tree (which has no compiled _core after a non-editable install)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          **child_python(env=dict(os.environ, **env)))


def test_env_var_caps_the_path():
    r = run_child("import o1pruner; print(o1pruner.config()['simd_path'])", O1P_SIMD="baseline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "baseline (SSE2)"
    r = run_child("import o1pruner; print(o1pruner.config()['simd_path'])", O1P_SIMD="")
    assert r.stdout.strip() == _core._simd_path()


def test_unknown_env_value_warns_and_is_ignored():
    r = run_child("import warnings, o1pruner; print(o1pruner.config()['simd_path'])", O1P_SIMD="avx9000",
                  PYTHONWARNINGS="always")
    assert r.returncode == 0 and "O1P_SIMD='avx9000'" in r.stderr, r.stderr
    assert r.stdout.strip() == _core._simd_path()


def test_info_shows_the_path():
    r = run_child("import sys; from o1pruner.apps.cli import main; sys.exit(main(['info']))", O1P_SIMD="baseline")
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("SIMD path")]
    assert line and "baseline" in line[0], r.stdout


def test_bad_level_is_named():
    with pytest.raises(ValueError, match="level: must be"):
        _core._simd_path("avx9000")
