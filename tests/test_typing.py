"""The typed public API is checked (as msgspec checks its stubs): mypy
type-checks tests/typecheck/public_api.py, a file that uses the public API the
way the README does, against the package's annotations and o1pruner/_core.pyi;
and a wrong use must be reported, so the check cannot pass by not looking."""

import os

import pytest

api = pytest.importorskip("mypy.api")

HERE = os.path.dirname(os.path.abspath(__file__))


def _mypy(path, tmp_path):
    # only the checked file's own errors count; the package is read for its types
    out, err, status = api.run(["--follow-imports=silent", "--no-error-summary", "--show-error-codes",
                                "--cache-dir", str(tmp_path / "mypy_cache"), str(path)])
    return status, out + err


def test_public_api_example_type_checks(tmp_path):
    status, out = _mypy(os.path.join(HERE, "typecheck", "public_api.py"), tmp_path)
    assert status == 0, out


def test_a_wrong_use_is_reported(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import numpy as np\n"
        "import o1pruner\n"
        "from o1pruner.train import PPOConfig\n"
        "x: str = o1pruner.ppo_clip_loss(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1), np.ones((1, 1), bool)).loss\n"
        "PPOConfig(eps_low='a')\n"
        "o1pruner.build_dataset('s.jsonl', lam='2')\n"
    )
    status, out = _mypy(bad, tmp_path)
    assert status == 1
    assert out.count("error:") == 3, out
