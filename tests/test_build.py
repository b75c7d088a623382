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


# ---- a build toggle takes effect on a reinstall (issue 12) --------------------------------

SETUP_PY = pathlib.Path(__file__).resolve().parents[1] / "setup.py"


def _load_setup(monkeypatch, **env):
    """setup.py as a module (its setup() call runs only as __main__), with
    the build toggles of `env`."""
    import importlib.util

    for k in ("O1P_DEBUG", "O1P_SANITIZE", "O1P_NO_OPENMP", "O1P_NATIVE", "O1P_BLAS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spec = importlib.util.spec_from_file_location("o1pruner_setup_under_test", SETUP_PY)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.chdir(SETUP_PY.parent)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not SETUP_PY.exists(), reason="needs the source tree's setup.py")
def test_changed_build_toggle_forces_a_rebuild(monkeypatch, tmp_path):
    """`O1P_NO_OPENMP=1 pip install .` after a default install rebuilt
    nothing (setuptools reused build/'s objects, whose sources were not
    newer): the build records the flags it used and forces a full rebuild
    when they differ."""
    pytest.importorskip("setuptools")
    from setuptools import Distribution

    default = _load_setup(monkeypatch)
    no_omp = _load_setup(monkeypatch, O1P_NO_OPENMP="1")
    fp_default, fp_no_omp = default.build_fingerprint(), no_omp.build_fingerprint()
    assert fp_default != fp_no_omp
    assert "-fopenmp" not in fp_no_omp["cflags"] and fp_no_omp["toggles"]["O1P_NO_OPENMP"] == "1"

    def command(mod):
        dist = Distribution({"name": "o1pruner", "ext_modules": [mod.ext], "cmdclass": {"build_ext": mod.BuildExt}})
        cmd = mod.BuildExt(dist)
        cmd.initialize_options()
        cmd.build_temp, cmd.build_lib = str(tmp_path / "temp"), str(tmp_path / "lib")
        cmd.finalize_options()
        return cmd

    # nothing recorded (a build folder of an older version): rebuild
    cmd = command(default)
    assert not cmd.force
    cmd.apply_fingerprint()
    assert cmd.force
    # the default build recorded; the same toggles reuse the objects, another toggle rebuilds
    (tmp_path / "temp").mkdir()
    (tmp_path / "temp" / default.FINGERPRINT_FILE).write_text(__import__("json").dumps(fp_default))
    cmd = command(default)
    cmd.apply_fingerprint()
    assert not cmd.force
    cmd = command(no_omp)
    cmd.apply_fingerprint()
    assert cmd.force
