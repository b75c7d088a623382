"""notebooks/01_quickstart.ipynb and notebooks/02_your_own_samples.ipynb run
end to end with small settings (O1P_NOTEBOOK_FAST=1) and show what they
promise; their outputs stay stripped in git."""

import json
import os
import pathlib

import pytest

import o1pruner
from conftest import SHARED_DATA

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
OURS = ["01_quickstart.ipynb", "02_your_own_samples.ipynb"]


@pytest.mark.parametrize("name", OURS)
def test_notebook_is_stripped(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert any(c["cell_type"] == "markdown" for c in nb["cells"])


def execute(name, tmp_path, monkeypatch, **env):
    """Run a notebook in a kernel (cwd: notebooks/) importing the o1pruner
    under test; returns the executed notebook (the file is not touched)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root = str(pathlib.Path(o1pruner.__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", root + (os.pathsep + old if old else ""))
    monkeypatch.setenv("O1P_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("O1P_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def outputs(nb):
    """(all text shown, number of PNG images shown)."""
    text, images = [], 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for o in cell.outputs:
            assert o.output_type != "error", o
            if o.output_type == "stream":
                text.append(o.text)
            elif o.output_type in ("execute_result", "display_data"):
                text.append(o.data.get("text/plain", ""))
                images += "image/png" in o.data
    return "\n".join(text), images


def test_quickstart_runs(tmp_path, monkeypatch):
    nb = execute("01_quickstart.ipynb", tmp_path, monkeypatch)
    text, images = outputs(nb)
    assert "reference:" in text and "samples of 24 problems" in text
    assert "training samples from 24 problems" in text  # the weighted dataset
    for name in ("reference: accuracy", "SFT-shortest: accuracy", "O1-Pruner: accuracy"):
        assert name in text
    assert "aes" in text and "delta_length" in text  # the compare table
    # the weights, training curves, length histograms and per-difficulty plots, inline and on disk
    assert images == 4
    work = tmp_path / "work"
    for png in ("weights.png", "training_curves.png", "length_hist.png", "per_level.png"):
        assert (work / png).stat().st_size > 5000
    assert (work / "samples.jsonl").is_file() and (work / "O1-Pruner" / "train_log.jsonl").is_file()


def test_own_samples_runs_on_the_builtin_task(tmp_path, monkeypatch):
    nb = execute("02_your_own_samples.ipynb", tmp_path, monkeypatch, O1P_SHARED_DATA=str(tmp_path / "no-shared-data"))
    text, _ = outputs(nb)
    assert "Part 1 is skipped" in text and "PRM800K" not in text
    assert "80 samples in" in text and "40 training samples from 20 problems" in text
    assert "mean_weight" in text and "mean_length_incorrect" in text  # the difficulty reports
    work = tmp_path / "work"
    lf = json.loads((work / "train_llamafactory.json").read_text())
    assert len(lf) == 40 and lf[0]["messages"][-2]["content"].startswith("Q:")  # the sampling prompt


def test_own_samples_runs_on_shared_benchmarks(tmp_path, monkeypatch):
    if not (SHARED_DATA / "benchmarks" / "math_test.json").is_file():
        pytest.skip(f"shared benchmarks not found at {SHARED_DATA}")
    nb = execute("02_your_own_samples.ipynb", tmp_path, monkeypatch, O1P_SHARED_DATA=str(SHARED_DATA))
    text, _ = outputs(nb)
    assert "PRM800K generator: accuracy" in text and "n=120" in text
    assert "distinct rewards with K=1: [0.0]" in text
    recs = [json.loads(line) for line in (tmp_path / "work" / "math_test_samples.jsonl").read_text().splitlines()]
    assert len(recs) == 120 and all(r["length"] > 0 and isinstance(r["correct"], bool) for r in recs)
