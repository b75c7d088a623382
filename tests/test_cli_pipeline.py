"""`o1pruner presample | build | evaluate` over files: help texts (of every command), an end to
end run with a user generator and tokenizer given as FILE.py:NAME, resume,
and bad input reported as one clear line (exit code 2)."""

import json
import os
import subprocess
import sys

import pytest

import o1pruner
from o1pruner import io
from o1pruner.apps.cli import main

import pipeline_helpers as H

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_helpers.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("cmd,flags", [
    ("presample", ["--problems", "--k", "--out", "--generator", "--tokenizer", "--template", "--gen-arg", "--overwrite"]),
    ("build", ["--samples", "--lam", "--samples-per-problem", "--clip", "--normalize", "--seed", "--llamafactory", "--sft-shortest"]),
    ("evaluate", ["--samples", "--reference", "--generator", "--problems", "--ref-samples", "--json", "--confidence",
                  "--outputs", "--model"]),
    ("presample", ["--model", "--max-new-tokens", "--batch-size", "--seed", "--save-token-ids", "--no-resume"]),
    ("train", ["--data", "--model", "--out", "--objective", "--epochs", "--batch-size", "--lr", "--warmup-ratio",
               "--max-grad-norm", "--ratio", "--aggregate", "--lam", "--lam-lr", "--no-resume", "--checkpoint-every"]),
    ("demo", ["--quick", "--out", "--seed", "--lam", "--reference", "--set", "--no-plots", "--threads"]),
])
def test_help_documents_each_command(capsys, cmd, flags):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for f in flags:
        assert f in out, f"{cmd} --help does not mention {f}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "presample" in capsys.readouterr().out


def write_problems(path, n, **kw):
    io.write_jsonl(path, H.make_problems(n, **kw))


def test_presample_build_evaluate_end_to_end(tmp_path, capsys):
    probs = tmp_path / "problems.jsonl"
    write_problems(probs, 9, with_difficulty=True)
    out = tmp_path / "samples.jsonl"
    args = ["presample", "--problems", probs, "--k", 4, "--out", out, "--generator", f"{HELPERS}:fake_generate",
            "--tokenizer", f"{HELPERS}:WordTokenizer", "--grader", f"{HELPERS}:exact_grader", "--batch-size", 2,
            "--seed", 3, "--template", "Q: {problem}", "--quiet", "--gen-arg", "p_correct=0.6"]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert "36 samples of 9 problems" in stdout
    recs = io.read_jsonl(out)
    assert len(recs) == 36 and recs[0]["prompt"].startswith("Q: ")
    # rerunning resumes: nothing to do, same file
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and io.read_jsonl(out) == recs

    train, lf = tmp_path / "train.jsonl", tmp_path / "lf.json"
    code, stdout, err = run(capsys, "build", "--samples", out, "--out", train, "--llamafactory", lf, "--lam", 3,
                            "--samples-per-problem", 3, "--normalize", "group", "--template", "Q: {problem}")
    assert code == 0, err
    assert "27 training samples from 9 problems" in stdout and "| bucket" in stdout
    import o1pruner

    want = o1pruner.build_dataset(recs, lam=3, samples_per_problem=3, normalize="group")
    assert io.read_jsonl(train) == want.records
    assert io.read_llamafactory(lf)[0]["problem"] == "Q: " + want[0]["problem"]
    code, stdout, err = run(capsys, "build", "--samples", out, "--out", train, "--sft-shortest", 2)
    assert code == 0, err
    assert all(r["weight"] == 1.0 and r["correct"] for r in io.read_jsonl(train))

    res = tmp_path / "eval.json"
    code, stdout, err = run(capsys, "evaluate", "--problems", probs, "--generator", f"{HELPERS}:greedy_generate",
                            "--tokenizer", f"{HELPERS}:WordTokenizer", "--grader", f"{HELPERS}:exact_grader",
                            "--template", "Q: {problem}", "--name", "greedy", "--json", res, "--quiet")
    assert code == 0, err
    assert "greedy: accuracy 100.0%" in stdout
    d = io.read_json(res)["result"]
    assert d["n"] == 9 and d["bucket_by"] == "difficulty" and len(d["samples"]) == 9

    # stored outputs, compared with the sampled reference
    greedy = tmp_path / "greedy.jsonl"
    io.write_jsonl(greedy, [dict(problem_id=r["problem_id"], problem=r["problem"], ground_truth_answer=r["ground_truth_answer"],
                         solution="short \\boxed{%s}" % r["ground_truth_answer"], length=2, correct=True)
                            for r in recs if r["sample_index"] == 0])
    code, stdout, err = run(capsys, "evaluate", "--samples", greedy, "--reference", out, "--name", "pruned", "--json", res)
    assert code == 0, err
    assert "| model" in stdout and "pruned" in stdout
    comp = io.read_json(res)["comparison"]
    assert comp[1]["model"] == "pruned" and comp[1]["delta_length"] < 0


def test_build_public_json(tmp_path, capsys):
    items = []
    for g in range(3):
        for j in range(4):
            items.append({"problem": f"p{g}", "ground_truth_answer": "1", "solution": "a " * (j + 1) + "\\boxed{1}",
                          "answer": "1" if j % 2 else "2"})
    src = tmp_path / "Marco_K-4.json"
    src.write_text(json.dumps(items))
    out = tmp_path / "train.jsonl"
    code, stdout, err = run(capsys, "build", "--samples", src, "--k", 4, "--out", out, "--tokenizer", f"{HELPERS}:WordTokenizer",
                            "--grader", f"{HELPERS}:answer_grader", "--grade-from", "answer")
    assert code == 0, err
    assert len(io.read_jsonl(out)) == 6
    code, _, err = run(capsys, "build", "--samples", src, "--out", out)
    assert code == 2 and "k: required" in err


def test_cli_bad_input(tmp_path, capsys):
    probs = tmp_path / "problems.jsonl"
    write_problems(probs, 3)
    gen = ["--generator", f"{HELPERS}:fake_generate", "--grader", f"{HELPERS}:exact_grader", "--quiet"]
    code, _, err = run(capsys, "presample", "--problems", probs, "--k", 0, "--out", tmp_path / "o.jsonl", *gen)
    assert code == 2 and "o1pruner presample: error: k: must be >= 1" in err
    (tmp_path / "empty.jsonl").write_text("")
    code, _, err = run(capsys, "presample", "--problems", tmp_path / "empty.jsonl", "--k", 2, "--out", tmp_path / "o.jsonl", *gen)
    assert code == 2 and "empty problem list" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "ground_truth_answer": "1"}\n{"problem": "b", \n')
    code, _, err = run(capsys, "presample", "--problems", bad, "--k", 2, "--out", tmp_path / "o.jsonl", *gen)
    assert code == 2 and "bad.jsonl:2: not valid JSON" in err
    code, _, err = run(capsys, "presample", "--problems", probs, "--k", 2, "--out", tmp_path / "o.jsonl", "--generator", "nomodule_xyz:f")
    assert code == 2 and "--generator: cannot import 'nomodule_xyz'" in err
    code, _, err = run(capsys, "presample", "--problems", probs, "--k", 2, "--out", tmp_path / "o.jsonl", "--generator", f"{HELPERS}:nope")
    assert code == 2 and "has no attribute 'nope'" in err
    code, _, err = run(capsys, "presample", "--problems", probs, "--k", 2, "--out", tmp_path / "o.jsonl", "--tokenizer",
                       f"{HELPERS}:EmptyTokenizer", *gen)
    assert code == 2 and "tokenizer: returned no tokens" in err
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"problem_id": 0, "problem": "p", "ground_truth_answer": "1", "solution": "x", "length": 3, "correct": True})
                       + "\n" + json.dumps({"problem_id": 0, "problem": "p", "ground_truth_answer": "1", "solution": "x", "correct": True}) + "\n")
    code, _, err = run(capsys, "build", "--samples", samples, "--out", tmp_path / "t.jsonl")
    assert code == 2 and "missing field 'length'" in err and not (tmp_path / "t.jsonl").exists()
    code, _, err = run(capsys, "evaluate")
    assert code == 2 and "pass --samples FILE, or --generator" in err
    code, _, err = run(capsys, "presample", "--problems", probs, "--k", 2, "--out", tmp_path / "o.jsonl", *gen, "--gen-arg", "novalue")
    assert code == 2 and "--gen-arg: expected KEY=VALUE" in err


def test_console_entry_point_runs(tmp_path):
    # run from elsewhere, importing the package under test (not the source tree)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(o1pruner.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg_root)
    r = subprocess.run([sys.executable, "-m", "o1pruner.apps.cli", "build", "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--samples-per-problem" in r.stdout
