"""The package builds, loads its BLAS, reports its configuration and controls
its threads."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import o1pruner
from o1pruner._loader import _core

from helpers import assert_close


def test_show_config_prints_everything(capsys):
    o1pruner.show_config()
    out = capsys.readouterr().out
    for label in ("BLAS library", "BLAS config", "BLAS core type", "compiler flags",
                  "SIMD level in use", "o1pruner threads", "BLAS threads"):
        assert label in out
    cfg = o1pruner.config()
    assert "OpenBLAS" in cfg["blas_config"]
    assert "-O3" in cfg["cflags"] or cfg["variant"] != "release"
    assert "-ffast-math" not in cfg["cflags"]


def test_blas_is_really_called():
    # the extension's own sgemm goes through the linked OpenBLAS
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70, 33)).astype(np.float32)
    b = rng.standard_normal((50, 33)).astype(np.float32)
    got = _core.sgemm(a, b, trans_b=True)
    assert_close(got, a.astype(np.float64) @ b.T.astype(np.float64), rtol=1e-4, atol=1e-4)
    got = _core.sgemm(a.T.copy(), b.T.copy(), trans_a=True)
    assert_close(got, a.astype(np.float64) @ b.T.astype(np.float64), rtol=1e-4, atol=1e-4)
    with open("/proc/self/maps") as f:
        maps = f.read()
    assert "openblas" in maps.lower()
    with pytest.raises(ValueError, match="b"):
        _core.sgemm(a, b)
    with pytest.raises(TypeError, match="a"):
        _core.sgemm(a.astype(np.int32), b)


def test_threads_roundtrip():
    n0 = o1pruner.get_num_threads()
    assert n0 >= 1
    try:
        o1pruner.set_num_threads(1)
        assert o1pruner.get_num_threads() == 1
        assert o1pruner.config()["blas_threads"] == 1
        o1pruner.set_num_threads(2)
        assert o1pruner.get_num_threads() == 2
    finally:
        o1pruner.set_num_threads(n0)
    for bad, exc in ((0, ValueError), (-3, ValueError), ("2", TypeError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="n"):
            o1pruner.set_num_threads(bad)


def test_import_from_elsewhere(tmp_path):
    # the package imports and reports its config from an unrelated directory
    code = "import o1pruner, sys; o1pruner.show_config(); print(o1pruner.__file__)"
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(o1pruner.__file__).parents[1]))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "BLAS library" in r.stdout


def test_cli_info():
    from o1pruner.apps.cli import main
    assert main(["info"]) == 0
