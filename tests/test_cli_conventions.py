"""Conventions every command shares (issue 12): --version, one error format
(the flag, the file, the 1-based line; a missing file the same way in every
command), output folders are not invented, --threads >= 1, a closed pipe
ends quietly, `o1pruner problems`, a LLaMA-Factory template that is not the
sampling one warns."""

import json
import os
import subprocess
import sys

import pytest

from helpers import child_python  # noqa: E402
import o1pruner
from o1pruner import io
from o1pruner.apps.cli import main

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(o1pruner.__file__)))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def good_sample(**kw):
    return dict({"problem_id": 0, "problem": "1+1", "ground_truth_answer": "2", "solution": "so \\boxed{2}",
                 "length": 5, "correct": True, "prompt": "Q:1+1\n"}, **kw)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"o1pruner {o1pruner.__version__}"


def test_threads_zero_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--threads", "0"])
    assert e.value.code == 2 and "--threads: expected an int >= 1, got '0'" in capsys.readouterr().err


def test_missing_file_is_named_the_same_way_by_every_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["presample", "--problems", "nope.jsonl", "--k", 2, "--out", "s.jsonl", "--model", "reference"], "--problems"),
        (["build", "--samples", "nope.jsonl", "--out", "t.jsonl"], "--samples"),
        (["evaluate", "--samples", "nope.jsonl"], "--samples"),
        (["evaluate", "--problems", "nope.jsonl", "--model", "reference"], "--problems"),
        (["train", "--data", "nope.jsonl", "--out", "run"], "--data"),
    ]
    for argv, flag in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2 and err == f"o1pruner {argv[0]}: error: {flag}: file not found: nope.jsonl\n", err
    assert os.listdir(tmp_path) == []


def test_bad_line_is_flag_file_and_one_based_line_everywhere(tmp_path, capsys):
    """The same third line is `file:3` for build, evaluate and train (train
    said `file[2]`, a 0-based record index)."""
    samples = tmp_path / "s.jsonl"
    io.write_jsonl(samples, [good_sample(), good_sample(length=7, correct=False),
                             {k: v for k, v in good_sample().items() if k != "solution"}])
    for argv in (["build", "--samples", samples, "--out", tmp_path / "t.jsonl"], ["evaluate", "--samples", samples]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and f"error: --samples: {samples}:3: missing field 'solution'" in err, err
    data = tmp_path / "d.jsonl"
    io.write_jsonl(data, [dict(good_sample(), weight=1.0), dict(good_sample(), weight=0.5),
                          {k: v for k, v in good_sample().items() if k != "weight"}])
    code, _, err = run(capsys, "train", "--data", data, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and f"error: --data: {data}:3: missing field 'weight'" in err, err


def test_output_folders_are_not_invented(tmp_path, capsys):
    samples = tmp_path / "s.jsonl"
    io.write_jsonl(samples, [good_sample(), good_sample(length=7, correct=False)])
    missing = tmp_path / "nonexistent_dir"
    for argv, flag in (
        (["build", "--samples", samples, "--out", missing / "t.jsonl"], "--out"),
        (["build", "--samples", samples, "--out", tmp_path / "t.jsonl", "--llamafactory", missing / "lf.json"],
         "--llamafactory"),
        (["evaluate", "--samples", samples, "--json", missing / "e.json"], "--json"),
        (["problems", "--n", 3, "--out", missing / "p.jsonl"], "--out"),
        (["train", "--data", samples, "--out", missing / "deeper" / "run"], "--out"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and f"error: {flag}: " in err and "does not exist" in err, err
    assert not missing.exists() and not (tmp_path / "t.jsonl").exists()


def test_closed_pipe_ends_quietly(tmp_path):
    """`o1pruner info | head -1`: the reader is gone; no BrokenPipeError
    traceback. A pipe whose read end is already closed makes it certain."""
    samples = tmp_path / "s.jsonl"
    io.write_jsonl(samples, [good_sample(), good_sample(length=7, correct=False)])
    kw = child_python(cwd=tmp_path)
    for argv in (["info"], ["evaluate", "--samples", str(samples)], ["build", "--samples", str(samples), "--out",
                                                                      str(tmp_path / "t.jsonl")]):
        r, w = os.pipe()
        os.close(r)
        try:
            p = subprocess.run([sys.executable, "-m", "o1pruner", *argv], stdout=w, stderr=subprocess.PIPE, text=True,
                               timeout=120, **kw)
        finally:
            os.close(w)
        assert "Traceback" not in p.stderr and "BrokenPipeError" not in p.stderr, p.stderr
        assert p.returncode == 141, (argv, p.returncode, p.stderr)


def test_problems_command(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    code, stdout, err = run(capsys, "problems", "--task", "arithmetic", "--n", 10, "--split", "train", "--seed", 1,
                            "--out", out)
    assert code == 0, err
    recs = io.read_jsonl(out)
    assert len(recs) == 10 and {r["difficulty"] for r in recs} == {1, 2, 3, 4, 5}
    assert all(set(r) == {"problem_id", "problem", "ground_truth_answer", "difficulty"} for r in recs)
    assert all(eval(r["problem"]) == int(r["ground_truth_answer"]) for r in recs)  # noqa: S307 (digits, + and -)
    # deterministic; the held-out split shares no expression with train; --level picks levels
    A = ("--task", "arithmetic")
    assert run(capsys, "problems", *A, "--n", 10, "--seed", 1, "--out", tmp_path / "q.jsonl")[0] == 0
    assert io.read_jsonl(tmp_path / "q.jsonl") == recs
    assert run(capsys, "problems", *A, "--n", 10, "--seed", 1, "--split", "heldout", "--out", tmp_path / "h.jsonl")[0] == 0
    assert not {r["problem"] for r in recs} & {r["problem"] for r in io.read_jsonl(tmp_path / "h.jsonl")}
    assert run(capsys, "problems", *A, "--n", 6, "--level", "1,2", "--out", tmp_path / "l.jsonl")[0] == 0
    assert {r["difficulty"] for r in io.read_jsonl(tmp_path / "l.jsonl")} == {1, 2}
    code, _, err = run(capsys, "problems", "--n", 6, "--level", "9", "--out", tmp_path / "l.jsonl")
    assert code == 2 and "--level: levels are 1..5, got 9" in err


def test_problems_command_addition_splits(tmp_path, capsys):
    """The default task is addition, with three disjoint splits; a split of
    the other task is an error naming --split."""
    sets = {}
    for split in ("train", "validation", "test"):
        out = tmp_path / f"{split}.jsonl"
        code, stdout, err = run(capsys, "problems", "--n", 25, "--split", split, "--seed", 3, "--out", out)
        assert code == 0, err
        recs = io.read_jsonl(out)
        assert {r["difficulty"] for r in recs} == {1, 2, 3, 4, 5}
        assert all(eval(r["problem"]) == int(r["ground_truth_answer"]) for r in recs)  # noqa: S307 (digits and +)
        sets[split] = {r["problem"] for r in recs}
    assert not sets["train"] & sets["validation"] and not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    code, _, err = run(capsys, "problems", "--n", 5, "--split", "heldout", "--out", tmp_path / "x.jsonl")
    assert code == 2 and "--split: the addition task's splits are train, validation, test" in err
    code, _, err = run(capsys, "problems", "--task", "arithmetic", "--n", 5, "--split", "test", "--out", tmp_path / "x.jsonl")
    assert code == 2 and "--split" in err
    # level 1 has about 160 distinct test expressions: asking for more is a named error, not a hang
    code, _, err = run(capsys, "problems", "--n", 1000, "--split", "test", "--level", "1", "--out", tmp_path / "x.jsonl")
    assert code == 2 and "--n:" in err and "too few distinct" in err


def test_default_max_new_tokens_fits_the_model(tmp_path, capsys):
    """The default --max-new-tokens of a built-in model is its context minus
    the longest prompt (a fixed 256 could not work with a 256-token context)."""
    from o1pruner.apps.cli import build_parser
    from o1pruner.apps.commands import generator_and_tokenizer
    from o1pruner.apps.demo import DemoSettings

    probs = tmp_path / "p.jsonl"
    assert run(capsys, "problems", "--n", 50, "--out", probs)[0] == 0
    args = build_parser().parse_args(["presample", "--problems", str(probs), "--k", "1", "--out", "x", "--model", "reference"])
    gen, _ = generator_and_tokenizer(args)
    longest = max(len(gen.format.prompt_ids("Q:" + r["problem"] + "\n")) for r in io.read_jsonl(probs))
    assert gen.max_new_tokens == gen.model.config.max_position_embeddings - longest
    assert gen.max_new_tokens >= DemoSettings().max_new_tokens  # at least what the demo uses


def test_llamafactory_template_mismatch_warns(tmp_path, capsys):
    samples = tmp_path / "s.jsonl"
    io.write_jsonl(samples, [good_sample(), good_sample(length=7, correct=False)])
    base = ["build", "--samples", samples, "--out", tmp_path / "t.jsonl", "--llamafactory", tmp_path / "lf.json"]
    # drawn with 'Q:{problem}\n', written with the public system prompt + the bare problem: warned
    code, _, err = run(capsys, *base)
    assert code == 0 and "o1pruner build: warning: records[0]: the sample was drawn with the prompt 'Q:1+1\\n'" in err
    # the sampling template: no warning, and the messages carry that prompt
    code, _, err = run(capsys, *base, "--template", "Q:{problem}\n")
    assert code == 0 and "warning" not in err, err
    msgs = json.loads((tmp_path / "lf.json").read_text())[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"] and msgs[0]["content"] == "Q:1+1\n"
