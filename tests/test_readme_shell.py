"""The README's shell pipeline with the built-in model runs as written
(issue 12): the block after ``<!-- shell-pipeline -->`` is extracted and run
command by command in a fresh folder, with only its sizes made smaller (each
substitution must match, so a changed README fails here instead of being
skipped)."""

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

import o1pruner

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
PKG_ROOT = pathlib.Path(o1pruner.__file__).resolve().parents[1]

# only sizes (time), never flags that change what runs
SMALLER = [
    (r"--n 500\b", "--n 12"),
    (r"--n 250\b", "--n 10"),
    (r"--k 8\b", "--k 4"),
    (r"--set n_train=300 --set o1pruner\.epochs=2",
     "--set n_train=12 --set k=4 --set n_eval=10 --set o1pruner.epochs=1 --set sft.epochs=1 "
     "--set o1pruner.batch_size=8 --set sft.batch_size=8 --set dpo.batch_size=8"),
]


def shell_block():
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- shell-pipeline -->\s*```bash\n(.*?)```", text, re.S)
    assert m, "README.md has no <!-- shell-pipeline --> bash block"
    lines = m.group(1).replace("\\\n", " ").splitlines()
    return [ln.split("  #")[0].strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def test_readme_shell_block_has_the_pipeline():
    cmds = shell_block()
    assert [shlex.split(c)[1] for c in cmds] == ["problems", "problems", "presample", "build", "train", "evaluate",
                                                 "evaluate", "demo"]
    assert all(c.startswith("o1pruner ") for c in cmds)


@pytest.mark.skipif(not README.exists(), reason="needs the source tree's README.md")
def test_readme_shell_block_runs_as_written(tmp_path):
    script = "\n".join(shell_block())
    for pat, new in SMALLER:
        script, n = re.subn(pat, new, script)
        assert n >= 1, f"the README's shell block no longer has {pat!r}: update SMALLER"
    env = dict(os.environ, PYTHONPATH=str(PKG_ROOT))
    prologue = f'set -euo pipefail\no1pruner() {{ {shlex.quote(sys.executable)} -m o1pruner "$@"; }}\n'
    r = subprocess.run(["bash", "-c", prologue + script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "wrote 12 addition problems" in r.stdout and "48 samples of 12 problems" in r.stdout
    for f in ("problems.jsonl", "test.jsonl", "samples.jsonl", "train.jsonl", "run/model/model.safetensors",
              "greedy_ref.jsonl", "greedy_pruned.jsonl", "eval.json", "demo_quick/results.json"):
        assert (tmp_path / f).is_file(), f
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert [row["model"] for row in ev["comparison"]] == ["reference", "pruned"]
    assert ev["result"]["n"] == 10 and ev["reference"]["n"] == 10
    # the default --max-new-tokens fits the shipped model: nothing was cut at a wrong limit
    assert all(s["length"] < 256 for s in ev["result"]["samples"])
