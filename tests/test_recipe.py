"""examples/real_model/recipe.py end to end on CPU: a tiny randomly
initialised Qwen2 built from a config (and a tokenizer trained locally) on a
few GSM8K problems of ../shared/data. The model is random, so its accuracy is
~0: the test checks that every stage runs and writes its output, that a rerun
skips every stage and prints the same table, that an interrupted
pre-sampling resumes to the same samples, and that another setting into the
same folder is refused. Nothing is downloaded (HF_HUB_OFFLINE=1)."""

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import o1pruner.io as io  # noqa: E402

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "real_model" / "recipe.py"


@pytest.fixture
def recipe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location("o1p_real_model_recipe", RECIPE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def gsm8k(shared_data):
    path = shared_data / "benchmarks" / "gsm8k.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def lines(path):
    return pathlib.Path(path).read_text().splitlines()


def table_of(text):
    """The comparison table's lines (the last table printed)."""
    rows = text.splitlines()
    start = max(i for i, line in enumerate(rows) if line.startswith("| model "))
    return [line for line in rows[start:] if line.startswith("|")]


def test_recipe_end_to_end_resumes_and_refuses_other_settings(recipe, gsm8k, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--smoke", "--device", "cpu", "--model", "tiny-random", "--problems", str(gsm8k), "--out", str(out),
            "--n-train", "4", "--n-test", "3", "--k", "2", "--max-new-tokens", "12"]
    assert recipe.main(argv) == 0
    first = capsys.readouterr().out
    P = recipe.paths(str(out))

    # every stage wrote its output
    assert len(lines(P["train_problems"])) == 4 and len(lines(P["test_problems"])) == 3
    train_ids = {r["problem_id"] for r in io.read_jsonl(P["train_problems"])}
    assert train_ids.isdisjoint(r["problem_id"] for r in io.read_jsonl(P["test_problems"]))
    samples = list(io.read_jsonl(P["samples"]))
    assert len(samples) == 8 and all(s["length"] >= 1 and s["prompt"].startswith("<|im_start|>system")
                                     for s in samples)
    weighted = list(io.read_jsonl(P["train"]))
    assert len(weighted) == 8 and all("weight" in r for r in weighted)  # 2 kept per problem
    assert (pathlib.Path(P["final"]) / "config.json").exists()
    assert len(list(io.read_jsonl(pathlib.Path(P["run"]) / "records_with_reference.jsonl"))) == 8
    for name in ("eval_reference", "eval_pruned"):
        assert len(lines(P[name])) == 3
    res = json.loads(pathlib.Path(P["results"]).read_text())
    assert [r["model"] for r in res["rows"]] == ["reference", "o1pruner"] and res["settings"]["k"] == 2
    tab = table_of(first)
    assert tab[0].startswith("| model") and tab[2].startswith("| reference") and tab[3].startswith("| o1pruner")

    # a rerun does nothing again and prints the same table
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "recipe.json"}
    assert recipe.main(argv) == 0
    second = capsys.readouterr().out
    for stage in ("presample", "build", "train"):
        assert f"[recipe] {stage}: done before" in second
    assert "evaluate reference: done before" in second and "evaluate o1pruner: done before" in second
    assert table_of(second) == tab
    after = {p: p.stat().st_mtime_ns for p in before}
    assert {str(p) for p in before if after[p] != before[p]} <= {P["results"]}

    # pre-sampling cut after its first batch (2 problems x K = 2) resumes to the same samples
    whole = lines(P["samples"])
    pathlib.Path(P["samples"]).write_text("\n".join(whole[:4]) + "\n")
    pathlib.Path(P["presampled"]).unlink()
    assert recipe.main(argv + ["--stage", "presample"]) == 0
    assert "presample: resuming, 4 of 8 samples found" in capsys.readouterr().out
    assert lines(P["samples"]) == whole

    # another setting into the same folder is refused, naming it
    with pytest.raises(SystemExit, match="made with k=2, now 3"):
        recipe.main([x if x != "2" else "3" for x in argv])


def test_recipe_options_are_checked(recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        recipe.main(["--model", "m", "--problems", "p.json", "--out", str(tmp_path), "--k", "0"])
    assert "--k: must be >= 1" in capsys.readouterr().err
    a = recipe.parse(["--smoke", "--model", "m", "--problems", "p.json", "--out", "o", "--k", "3"])
    assert a.k == 3 and a.n_train == recipe.SMOKE["n_train"] and a.max_steps == 2  # explicit flags win
    a = recipe.parse(["--model", "m", "--problems", "p.json", "--out", "o"])
    # the paper's settings by default (method.md)
    assert (a.k, a.temperature, a.top_p, a.lam, a.samples_per_problem, a.batch, a.max_length, a.preset) == \
        (16, 0.5, 0.8, 2.0, 2, 32, 3072, "marco-o1-7b")
