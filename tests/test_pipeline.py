"""Pipeline: problems, token counting, prompt template, presample (with a
crash-resume test that kills a subprocess), build_dataset against a
transcription of the public construct_dataset.py, the SFT-shortest baseline,
evaluate and compare."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import o1pruner
from o1pruner import io
from o1pruner.pipeline import Table, bootstrap_interval, reference_accuracy, wilson_interval
from o1pruner.data.prompts import PromptTemplate, as_template

import pipeline_helpers as H

TESTS = os.path.dirname(os.path.abspath(__file__))
# the folder holding the o1pruner package that is being tested (installed or in place)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(o1pruner.__file__)))


# ---- problems -------------------------------------------------------------------

def test_as_problems_fields_and_aliases(tmp_path):
    got = o1pruner.as_problems([{"question": "q0", "answer": 5, "level": 3, "extra": 1}, {"problem": "q1", "ground_truth_answer": "x", "id": "b"}])
    assert got[0] == {"problem_id": 0, "problem": "q0", "ground_truth_answer": "5", "difficulty": 3, "extra": 1}
    assert got[1]["problem_id"] == "b"

    class P:
        problem = "obj"
        ground_truth_answer = "7"
        difficulty = 2

    assert o1pruner.as_problems([P()])[0] == {"problem_id": 0, "problem": "obj", "ground_truth_answer": "7", "difficulty": 2}


def test_as_problems_errors(tmp_path):
    with pytest.raises(ValueError, match="empty problem list"):
        o1pruner.as_problems([])
    with pytest.raises(ValueError, match=r"problems\[1\]: missing field 'ground_truth_answer'"):
        o1pruner.as_problems([{"problem": "a", "answer": "1"}, {"problem": "b"}])
    with pytest.raises(ValueError, match=r"problems\[0\]: missing field 'problem'"):
        o1pruner.as_problems([{"answer": "1"}])
    with pytest.raises(ValueError, match="duplicate problem_id 3"):
        o1pruner.as_problems([{"problem": "a", "answer": "1", "id": 3}, {"problem": "b", "answer": "1", "id": 3}])
    with pytest.raises(ValueError, match="must be a string"):
        o1pruner.as_problems([{"problem": 3, "answer": "1"}])
    with pytest.raises(TypeError, match="problems"):
        o1pruner.as_problems({"problem": "a"})
    p = tmp_path / "probs.jsonl"
    p.write_text('{"problem": "a", "answer": "1"}\n{"problem": "b"}\n')
    with pytest.raises(ValueError, match=r"probs\.jsonl:2: missing field 'ground_truth_answer'"):
        o1pruner.as_problems(p)
    p.write_text("")
    with pytest.raises(ValueError, match="empty problem list"):
        o1pruner.as_problems(p)


def test_as_problems_reads_shared_benchmarks(shared_data):
    probs = o1pruner.as_problems(shared_data / "benchmarks" / "gsm8k.json")
    assert len(probs) == 1319 and probs[0]["ground_truth_answer"] == "18"


# ---- tokens and templates --------------------------------------------------------

class EncodingLike:
    def __init__(self, ids):
        self.ids = ids


def test_count_tokens_interfaces():
    texts = ["a b c", "hello"]
    np.testing.assert_array_equal(o1pruner.count_tokens(H.WordTokenizer(), texts), [3, 1])
    np.testing.assert_array_equal(o1pruner.count_tokens(H.HFLikeTokenizer(), texts), [5, 5])

    class Enc:
        def encode(self, t):
            return EncodingLike(list(range(len(t))))

    class Arr:
        def encode(self, t):
            return np.arange(len(t) + 1)

    np.testing.assert_array_equal(o1pruner.count_tokens(Enc(), texts), [5, 5])
    np.testing.assert_array_equal(o1pruner.count_tokens(Arr(), texts), [6, 6])
    np.testing.assert_array_equal(o1pruner.count_tokens(lambda t: {"input_ids": [[1, 2, 3]]}, ["x"]), [3])


def test_count_tokens_errors():
    with pytest.raises(ValueError, match=r"tokenizer: returned no tokens for texts\[1\]"):
        o1pruner.count_tokens(H.WordTokenizer(), ["a", ""])
    with pytest.raises(ValueError, match=r"tokenizer: returned no token ids for texts\[0\]"):
        o1pruner.count_tokens(lambda t: None, ["a"])
    with pytest.raises(ValueError, match="tokenizer: returned no token ids"):
        o1pruner.count_tokens(lambda t: {"attention_mask": [1]}, ["a"])
    with pytest.raises(TypeError, match="tokenizer"):
        o1pruner.count_tokens(3, ["a"])


def test_prompt_template():
    t = PromptTemplate("Solve: {problem} Put it in \\boxed{}.", system="sys")
    assert t.render("{x} + 1") == "sys\n\nSolve: {x} + 1 Put it in \\boxed{}."
    assert t.messages("p") == [{"role": "system", "content": "sys"}, {"role": "user", "content": "Solve: p Put it in \\boxed{}."}]
    with pytest.raises(ValueError, match="user: the template must contain"):
        PromptTemplate("no placeholder")
    assert as_template(None).render("x") == "x"
    assert as_template("<{problem}>").render("x") == "<x>"
    assert as_template(lambda p: p.upper()).render("x") == "X"
    with pytest.raises(TypeError, match="template"):
        as_template(3)

    class ChatTok:
        chat_template = "..."

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            assert add_generation_prompt and not tokenize
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    assert t.render("p", ChatTok()) == "<system>sys<user>Solve: p Put it in \\boxed{}.<assistant>"
    assert PromptTemplate("{problem}", chat=False).render("p", ChatTok()) == "p"
    with pytest.raises(ValueError, match="chat=True"):
        PromptTemplate("{problem}", chat=True).render("p", H.WordTokenizer())


# ---- presample ------------------------------------------------------------------------

def test_presample_records(tmp_path):
    probs = H.make_problems(5, with_difficulty=True)
    out = tmp_path / "s.jsonl"
    recs = o1pruner.presample(H.fake_generate, probs, 3, tokenizer=H.WordTokenizer(), template="Q: {problem}", out=out,
                              grader=H.exact_grader, extract=H.last_boxed, batch_size=2, seed=1, progress=False, save_token_ids=True)
    assert len(recs) == 15
    assert [(r["problem_id"], r["sample_index"]) for r in recs[:4]] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    r = recs[4]
    assert r["prompt"] == "Q: " + probs[1]["problem"] and r["difficulty"] == probs[1]["difficulty"]
    assert r["length"] == len(r["solution"].split())
    assert r["correct"] == (r["answer"] == probs[1]["ground_truth_answer"])
    assert r["token_ids"]
    assert io.read_jsonl(out) == recs
    meta = io.read_json(str(out) + ".meta.json")
    assert meta["k"] == 3 and meta["batch_size"] == 2 and meta["template"]["user"] == "Q: {problem}"
    # the same seed gives the same samples; a different seed others
    again = o1pruner.presample(H.fake_generate, probs, 3, tokenizer=H.WordTokenizer(), template="Q: {problem}",
                               grader=H.exact_grader, extract=H.last_boxed, batch_size=2, seed=1, progress=False, save_token_ids=True)
    assert again == recs
    other = o1pruner.presample(H.fake_generate, probs, 3, tokenizer=H.WordTokenizer(), grader=H.exact_grader, batch_size=2, seed=2, progress=False)
    assert [r["solution"] for r in other] != [r["solution"] for r in recs]


def test_presample_lengths_from_token_ids_and_model_objects():
    probs = H.make_problems(3)
    recs = o1pruner.presample(H.FakeModel(), probs, 2, grader=H.exact_grader, progress=False)
    assert all(r["length"] == len(r["solution"].split()) for r in recs)  # token_ids: thinking words + 2
    with pytest.raises(ValueError, match="tokenizer: required"):
        o1pruner.presample(H.greedy_generate, probs, 2, grader=H.exact_grader, progress=False)


def test_presample_bad_input(tmp_path):
    probs = H.make_problems(3)
    kw = dict(tokenizer=H.WordTokenizer(), grader=H.exact_grader, progress=False)
    with pytest.raises(ValueError, match="k: must be >= 1"):
        o1pruner.presample(H.fake_generate, probs, 0, **kw)
    with pytest.raises(ValueError, match="empty problem list"):
        o1pruner.presample(H.fake_generate, [], 2, **kw)
    with pytest.raises(ValueError, match="batch_size"):
        o1pruner.presample(H.fake_generate, probs, 2, batch_size=0, **kw)
    with pytest.raises(ValueError, match="generate: returned 1 outputs for 6 prompts"):
        o1pruner.presample(lambda p: ["x"], probs, 2, **kw)
    with pytest.raises(ValueError, match="grader: returned shape"):
        o1pruner.presample(H.fake_generate, probs, 2, tokenizer=H.WordTokenizer(), grader=lambda t, g: [True], progress=False)
    with pytest.raises(TypeError, match="generate"):
        o1pruner.presample(42, probs, 2, **kw)


def test_presample_tokenizer_returning_nothing_keeps_written_batches(tmp_path):
    """A failure in batch 2 raises a named error; batch 1 stays on disk and a
    rerun with a working tokenizer resumes after it."""
    probs = H.make_problems(4)
    out = tmp_path / "s.jsonl"

    class FailsLater:
        calls = 0

        def encode(self, text):
            FailsLater.calls += 1
            return [] if FailsLater.calls > 4 else text.split()

    with pytest.raises(ValueError, match=r"tokenizer: returned no tokens for outputs of batch 1\[0\]"):
        o1pruner.presample(H.fake_generate, probs, 2, tokenizer=FailsLater(), out=out, grader=H.exact_grader, batch_size=2, progress=False)
    assert len(io.read_jsonl(out)) == 4
    calls = []

    def gen(prompts, seed=0):
        calls.append(len(prompts))
        return H.fake_generate(prompts, seed=seed)

    recs = o1pruner.presample(gen, probs, 2, tokenizer=H.WordTokenizer(), out=out, grader=H.exact_grader, batch_size=2, progress=False)
    assert calls == [4] and len(recs) == 8


def test_presample_resume_after_torn_and_partial_batch(tmp_path):
    """Cut the file in the middle of a batch (and of a line): the resumed
    run equals an uninterrupted one, without duplicates."""
    probs = H.make_problems(7)
    kw = dict(tokenizer=H.WordTokenizer(), grader=H.exact_grader, batch_size=2, k=3, seed=5, progress=False)
    full = tmp_path / "full.jsonl"
    want = o1pruner.presample(H.fake_generate, probs, out=full, **kw)
    text = open(full, encoding="utf-8").read().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    # 2 whole batches (12 lines) + 2 lines of batch 3 + half a line
    with open(cut, "w", encoding="utf-8") as f:
        f.writelines(text[:14])
        f.write(text[14][: len(text[14]) // 2])
    os.replace(str(full) + ".meta.json", str(cut) + ".meta.json")
    with pytest.warns(RuntimeWarning):
        got = o1pruner.presample(H.fake_generate, probs, out=cut, **kw)
    assert got == want
    assert io.read_jsonl(cut) == want


def test_presample_resume_checks_settings(tmp_path):
    probs = H.make_problems(3)
    out = tmp_path / "s.jsonl"
    kw = dict(tokenizer=H.WordTokenizer(), grader=H.exact_grader, progress=False)
    o1pruner.presample(H.fake_generate, probs, 2, out=out, **kw)
    with pytest.raises(ValueError, match="was written with k=2, this run has k=3"):
        o1pruner.presample(H.fake_generate, probs, 3, out=out, **kw)
    with pytest.raises(ValueError, match="problems_sha256"):
        o1pruner.presample(H.fake_generate, H.make_problems(4)[1:], 2, out=out, **kw)
    with pytest.raises(ValueError, match="template"):
        o1pruner.presample(H.fake_generate, probs, 2, out=out, template="Q {problem}", **kw)
    with pytest.raises(ValueError, match="pass resume=True"):
        o1pruner.presample(H.fake_generate, probs, 2, out=out, resume=False, **kw)
    recs = o1pruner.presample(H.fake_generate, probs, 3, out=out, overwrite=True, **kw)
    assert len(io.read_jsonl(out)) == len(recs) == 9
    os.remove(str(out) + ".meta.json")
    with pytest.raises(ValueError, match="cannot be checked"):
        o1pruner.presample(H.fake_generate, probs, 3, out=out, **kw)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    import o1pruner, pipeline_helpers as H

    def slow(prompts, seed=0):
        return H.fake_generate(prompts, seed=seed, delay=0.05)

    o1pruner.presample(slow, H.make_problems(40), 3, tokenizer=H.WordTokenizer(), out={out!r},
                       grader=H.exact_grader, batch_size=2, seed=11, progress=False)
    """
)


def test_presample_survives_sigkill(tmp_path):
    """Kill a pre-sampling subprocess mid-run; the resumed run has every
    sample exactly once and equals an uninterrupted run."""
    out = str(tmp_path / "killed.jsonl")
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(root=ROOT, tests=TESTS, out=out))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(out) and os.path.getsize(out) > 0 and len(open(out, "rb").read().splitlines()) >= 12:
                break
            if proc.poll() is not None:
                pytest.fail(f"the subprocess ended early: {proc.communicate()[1].decode()[-2000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    n_before = len(open(out, "rb").read().splitlines())
    assert 12 <= n_before < 120, "the kill should land mid-run"

    def slow(prompts, seed=0):
        return H.fake_generate(prompts, seed=seed)

    kw = dict(tokenizer=H.WordTokenizer(), grader=H.exact_grader, batch_size=2, seed=11, progress=False)
    calls = []

    def counting(prompts, seed=0):
        calls.append(len(prompts))
        return slow(prompts, seed=seed)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = o1pruner.presample(counting, H.make_problems(40), 3, out=out, **kw)
    want = o1pruner.presample(slow, H.make_problems(40), 3, **kw)
    assert got == want
    assert io.read_jsonl(out) == want
    keys = [(r["problem_id"], r["sample_index"]) for r in io.read_jsonl(out)]
    assert len(keys) == len(set(keys)) == 120
    assert sum(calls) < 120  # finished batches were not redone


# ---- build_dataset against the public construct_dataset.py ---------------------------------

def public_construct_dataset(data, K, token_length, grade_answer, alpha, used_per_problem=2, lower=-2, upper=4, seed=42):
    """A transcription of the public O1-Pruner construct_dataset.py logic
    (generate_pruning_dataset + format_data), the module-level
    random.seed(42) made a local Random(42)."""
    rnd = random.Random(seed)
    selected, weights = [], []
    for pi in range(len(data) // K):
        items = data[pi * K:(pi + 1) * K]
        rnd.shuffle(items)
        problem = items[0]["problem"]
        real_answer = items[0]["ground_truth_answer"]
        answers = [it["answer"] for it in items]
        solutions = [it["solution"] for it in items]
        correctness = [grade_answer(a, real_answer) for a in answers]
        avg_length = sum(token_length(s) for s in solutions) / len(solutions)
        avg_acc = sum(int(c) for c in correctness) / len(correctness)
        for index in range(used_per_problem):
            length = token_length(solutions[index])
            weight = (avg_length - length) / length + alpha * (int(correctness[index]) - avg_acc)
            if weight <= lower:
                weight = lower
            if weight > upper:
                weight = upper
            selected.append({"problem": problem, "solution": solutions[index], "weight": float(weight)})
            weights.append(weight)
    mean_w, std_w = np.mean(weights), np.std(weights)
    for it in selected:
        it["weight"] = (it["weight"] - mean_w) / std_w
    system = "You are a helpful assistant. You should think step-by-step and put your final answer within \\boxed{}."
    formatted = [{"messages": [{"role": "system", "content": system}, {"role": "user", "content": it["problem"]},
                               {"role": "assistant", "content": it["solution"]}], "weight": it["weight"]} for it in selected]
    return selected, formatted, mean_w, std_w


def make_public_file(path, rng, n_problems, K):
    items = []
    for g in range(n_problems):
        gold = str(int(rng.integers(0, 50)))
        p_ok = rng.random()
        for j in range(K):
            words = int(rng.integers(1, 400))
            ans = gold if rng.random() < p_ok else str(int(gold) + 1)
            items.append({"problem": f"problem {g}: what is {gold}?", "ground_truth_answer": gold,
                          "solution": "w " * words + f"\\boxed{{{ans}}}", "answer": ans})
    with open(path, "w") as f:
        json.dump(items, f)
    return items


@pytest.mark.parametrize("K,lam", [(16, 2.0), (12, 5.0), (3, 0.0)])
def test_build_dataset_equals_public_code(tmp_path, K, lam):
    rng = np.random.default_rng(K)
    path = tmp_path / "Marco_math_train_K.json"
    items = make_public_file(path, rng, 40, K)
    tok = H.HFLikeTokenizer()
    want, want_lf, mean_w, std_w = public_construct_dataset(
        items, K, lambda s: len(tok(s)["input_ids"]), lambda a, b: a == b, lam)
    lf = tmp_path / "raw.json"
    ds = o1pruner.build_dataset(path, lam=lam, k=K, tokenizer=tok, grader=H.answer_grader, grade_from="answer", llamafactory=lf)
    assert len(ds) == len(want) == 80
    assert [(r["problem"], r["solution"]) for r in ds] == [(w["problem"], w["solution"]) for w in want]
    got_w = np.array([r["weight"] for r in ds])
    np.testing.assert_allclose(got_w, [w["weight"] for w in want], rtol=1e-12, atol=1e-12)
    assert ds.weight_mean == pytest.approx(mean_w, abs=1e-12) and ds.weight_std == pytest.approx(std_w, rel=1e-12)
    got_lf = io.read_json(lf)
    assert [g["messages"] for g in got_lf] == [w["messages"] for w in want_lf]
    np.testing.assert_allclose([g["weight"] for g in got_lf], [w["weight"] for w in want_lf], rtol=1e-12, atol=1e-12)


def test_build_dataset_record_fields_and_stats():
    samples = [{"problem_id": "a", "problem": "pa", "ground_truth_answer": "1", "solution": f"s{i}", "length": L, "correct": c}
               for i, (L, c) in enumerate([(100, True), (300, True), (200, False), (400, True)])]
    samples += [{"problem_id": "b", "problem": "pb", "ground_truth_answer": "2", "solution": "t", "length": 50, "correct": False}]
    ds = o1pruner.build_dataset(samples, samples_per_problem=None, clip=None, normalize=None)
    r = ds[1]
    assert (r["ref_mean_length"], r["ref_accuracy"], r["n_samples"]) == (250.0, 0.75, 4)
    assert r["reward"] == pytest.approx(250 / 300 - 1 + 2 * (1 - 0.75))
    assert ds.problems[1] == {"problem_id": "b", "ref_mean_length": 50.0, "ref_accuracy": 0.0, "n_samples": 1}
    a = ds.arrays()
    np.testing.assert_array_equal(a["group"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(a["weight"], a["reward"])
    df = ds.to_pandas()
    assert list(df["weight"]) == list(a["weight"])


def test_build_dataset_options(tmp_path):
    rng = np.random.default_rng(0)
    make_public_file(tmp_path / "p.json", rng, 10, 4)
    samples = io.read_o1pruner_samples(tmp_path / "p.json", 4)
    for s in samples:
        s["length"] = len(s["solution"].split())
        s["correct"] = s["answer"] == s["ground_truth_answer"]
    first = o1pruner.build_dataset(samples, selection="first")
    assert [(r["problem_id"], r["sample_index"]) for r in first][:4] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    rnd = o1pruner.build_dataset(samples, seed=1)
    assert [r["sample_index"] for r in rnd] != [r["sample_index"] for r in first]
    assert o1pruner.build_dataset(samples, seed=1)[0] == rnd[0]
    allk = o1pruner.build_dataset(samples, samples_per_problem=None)
    assert len(allk) == 40
    m9 = o1pruner.build_dataset(samples, samples_per_problem=9)
    assert len(m9) == 40  # fewer than m samples: all kept
    grp = o1pruner.build_dataset(samples, normalize="group", samples_per_problem=3)
    w = grp.arrays()
    for g in range(10):
        sel = w["group"] == g
        assert abs(w["weight"][sel].mean()) < 1e-12
    raw = o1pruner.build_dataset(samples, normalize=None, clip=None, lam=0.0)
    assert np.all(raw.arrays()["weight"] == raw.arrays()["reward"])
    assert o1pruner.build_dataset(samples, normalize=None, clip=(-0.1, 0.1)).arrays()["weight"].max() <= 0.1
    for bad, match in [(dict(lam=-1), "lam"), (dict(lam=float("nan")), "lam"), (dict(samples_per_problem=0), "samples_per_problem"),
                       (dict(selection="best"), "selection"), (dict(normalize="batch"), "normalize"), (dict(clip=(4, -2)), "clip|low")]:
        with pytest.raises(ValueError, match=match):
            o1pruner.build_dataset(samples, **bad)


def test_build_dataset_grades_solutions_by_default_grader_param(tmp_path):
    samples = [{"problem_id": 0, "problem": "p", "ground_truth_answer": "3", "solution": "a \\boxed{2} b \\boxed{3}", "length": 4},
               {"problem_id": 0, "problem": "p", "ground_truth_answer": "3", "solution": "\\boxed{3} then \\boxed{2}", "length": 4}]
    ds = o1pruner.build_dataset(samples, grader=H.exact_grader, selection="first", normalize=None)
    assert [r["correct"] for r in ds] == [True, False]  # the last \boxed decides


def test_build_dataset_outputs(tmp_path):
    probs = H.make_problems(6)
    recs = o1pruner.presample(H.fake_generate, probs, 4, tokenizer=H.WordTokenizer(), grader=H.exact_grader, progress=False)
    out, lf = tmp_path / "train.jsonl", tmp_path / "lf.jsonl"
    ds = o1pruner.build_dataset(recs, out=out, llamafactory=lf, template="Q: {problem}")
    assert io.read_jsonl(out) == ds.records
    back = io.read_llamafactory(lf)
    assert [b["weight"] for b in back] == [r["weight"] for r in ds]
    assert back[0]["problem"] == "Q: " + ds[0]["problem"] and back[0]["system"] is None
    assert "12 training samples from 6 problems" in repr(ds)


def test_build_dataset_bad_input(tmp_path):
    good = {"problem_id": 0, "problem": "p", "ground_truth_answer": "1", "solution": "s \\boxed{1}", "length": 5, "correct": True}
    with pytest.raises(ValueError, match="samples: empty"):
        o1pruner.build_dataset([])
    with pytest.raises(ValueError, match=r"samples\[1\]: missing field 'length' \(pass tokenizer="):
        o1pruner.build_dataset([good, {**good, "length": None}])
    with pytest.raises(ValueError, match=r"samples\[0\]: field 'length' must be > 0"):
        o1pruner.build_dataset([{**good, "length": 0}])
    with pytest.raises(ValueError, match=r"samples\[0\]: missing field 'solution'"):
        o1pruner.build_dataset([{k: v for k, v in good.items() if k != "solution"}])
    with pytest.raises(ValueError, match=r"samples\[0\]: field 'correct' must be a boolean"):
        o1pruner.build_dataset([{**good, "correct": "yes"}])
    with pytest.raises(ValueError, match=r"tokenizer: returned no tokens"):
        o1pruner.build_dataset([{**good, "length": None}], tokenizer=H.EmptyTokenizer())
    with pytest.raises(ValueError, match=r"samples\[0\]: missing field 'answer'"):
        o1pruner.build_dataset([{**good, "correct": None}], grade_from="answer", grader=H.answer_grader)
    # in a file, the error names the line and the field; nothing is written
    p = tmp_path / "s.jsonl"
    lines = [json.dumps(good), json.dumps({**good, "sample_index": 1}), json.dumps({**good, "length": 0})]
    p.write_text("\n".join(lines) + "\n")
    out = tmp_path / "train.jsonl"
    with pytest.raises(io.JSONLError, match=r"s\.jsonl:3: field 'length' must be > 0") as e:
        o1pruner.build_dataset(p, out=out)
    assert e.value.field == "length" and not out.exists()
    p.write_text(lines[0] + "\n{oops\n")
    with pytest.raises(io.JSONLError, match=r"s\.jsonl:2: not valid JSON"):
        o1pruner.build_dataset(p)
    p.write_text(lines[0] + "\n" + json.dumps({k: v for k, v in good.items() if k != "ground_truth_answer"}) + "\n")
    with pytest.raises(io.JSONLError, match=r"s\.jsonl:2: missing field 'ground_truth_answer'"):
        o1pruner.build_dataset(p)
    with pytest.raises(ValueError, match="k: required"):
        o1pruner.build_dataset(tmp_path / "x.json")


def test_build_dataset_from_vllm_file(tmp_path):
    probs = H.make_problems(4)
    recs = o1pruner.presample(H.fake_generate, probs, 3, grader=H.exact_grader, save_token_ids=True, progress=False)
    p = tmp_path / "vllm.jsonl"
    io.write_vllm_jsonl(p, io.samples_to_vllm(recs))
    a = o1pruner.build_dataset(p, grader=H.exact_grader)
    b = o1pruner.build_dataset(recs)
    assert [r["weight"] for r in a] == [r["weight"] for r in b]


def test_sft_shortest():
    samples = [{"problem_id": g, "problem": f"p{g}", "ground_truth_answer": "1", "solution": f"{g}-{i}", "length": L, "correct": c}
               for g, rows in enumerate([[(50, False), (80, True), (60, True), (70, True)], [(10, False), (20, False)], [(5, True)]])
               for i, (L, c) in enumerate(rows)]
    ds = o1pruner.sft_shortest_dataset(samples, n=2)
    assert [r["solution"] for r in ds] == ["0-2", "0-3", "2-0"]
    assert all(r["weight"] == 1.0 for r in ds)
    with pytest.raises(ValueError, match="no correct sample"):
        o1pruner.sft_shortest_dataset(samples[4:6])
    with pytest.raises(ValueError, match="n: must be"):
        o1pruner.sft_shortest_dataset(samples, n=0)


# ---- evaluate and compare ------------------------------------------------------------------

def test_wilson_and_bootstrap():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    x = np.random.default_rng(0).normal(100, 10, size=400)
    lo, hi = bootstrap_interval(lambda idx: x[idx].mean(1), len(x))
    se = x.std() / np.sqrt(len(x))
    assert lo < x.mean() < hi and abs((hi - lo) - 2 * 1.96 * se) < 0.3 * se


def test_evaluate_buckets_by_difficulty():
    probs = H.make_problems(30, with_difficulty=True)
    res = o1pruner.evaluate(H.greedy_generate, probs, tokenizer=H.WordTokenizer(), grader=H.exact_grader, batch_size=7, name="greedy")
    assert res.n == 30 and res.accuracy == 1.0 and res.mean_length == 6.0
    assert res.bucket_by == "difficulty" and [b["bucket"] for b in res.buckets] == [1, 2, 3]
    assert all(b["n"] == 10 for b in res.buckets)
    assert res.accuracy_ci == wilson_interval(30, 30) and res.length_ci == (6.0, 6.0)
    assert res.tokens_per_s > 0 and res.seconds > 0
    d = res.to_dict()
    json.dumps(d)
    assert d["accuracy"] == 1.0 and d["buckets"][0]["accuracy_ci"] == list(res.buckets[0]["accuracy_ci"])
    assert "greedy: accuracy 100.0%" in str(res)


def test_evaluate_model_gets_temperature_zero():
    m = H.FakeModel()
    res = o1pruner.evaluate(m, H.make_problems(5), grader=H.exact_grader)
    assert m.temperatures == [0.0] and res.accuracy == 1.0
    o1pruner.evaluate(m, H.make_problems(5), grader=H.exact_grader, generate_kwargs={"temperature": 0.7})
    assert m.temperatures[-1] == 0.7


def test_evaluate_buckets_by_reference_accuracy(tmp_path):
    probs = H.make_problems(12)
    ref = o1pruner.presample(H.fake_generate, probs, 6, tokenizer=H.WordTokenizer(), grader=H.exact_grader, progress=False, seed=3)
    acc = reference_accuracy(ref)
    res = o1pruner.evaluate(H.greedy_generate, probs, tokenizer=H.WordTokenizer(), grader=H.exact_grader, ref_accuracy=ref)
    assert res.bucket_by == "ref_accuracy"
    want = {"hard": 0, "medium": 0, "easy": 0}
    for a in acc.values():
        want["hard" if a < 1 / 3 else "medium" if a < 2 / 3 else "easy"] += 1
    assert {b["bucket"]: b["n"] for b in res.buckets} == {k: v for k, v in want.items() if v}
    with pytest.raises(ValueError, match="no reference accuracy for problem_id 11"):
        o1pruner.evaluate(H.greedy_generate, probs, tokenizer=H.WordTokenizer(), grader=H.exact_grader,
                          ref_accuracy={i: 0.5 for i in range(11)})


def test_evaluate_samples_multiple_per_problem():
    probs = H.make_problems(20)
    recs = o1pruner.presample(H.fake_generate, probs, 4, tokenizer=H.WordTokenizer(), grader=H.exact_grader, progress=False)
    res = o1pruner.evaluate_samples(recs, name="sampled")
    L = np.array([r["length"] for r in recs])
    C = np.array([r["correct"] for r in recs])
    assert res.n == 80 and res.mean_length == pytest.approx(L.mean()) and res.accuracy == pytest.approx(C.mean())
    assert res.accuracy_ci[0] < res.accuracy < res.accuracy_ci[1]
    assert res.bucket_by == "all"
    with pytest.raises(ValueError, match="confidence"):
        o1pruner.evaluate_samples(recs, confidence=1.5)


def test_evaluate_bad_input():
    with pytest.raises(ValueError, match="empty problem list"):
        o1pruner.evaluate(H.greedy_generate, [], tokenizer=H.WordTokenizer(), grader=H.exact_grader)
    with pytest.raises(ValueError, match="tokenizer: returned no tokens"):
        o1pruner.evaluate(H.greedy_generate, H.make_problems(2), tokenizer=H.EmptyTokenizer(), grader=H.exact_grader)
    with pytest.raises(ValueError, match="tokenizer: required"):
        o1pruner.evaluate(H.greedy_generate, H.make_problems(2), grader=H.exact_grader)
    with pytest.raises(ValueError, match="token_ids: generate returned no tokens for problem 1"):
        o1pruner.evaluate(lambda ps: [{"text": "x", "token_ids": [1] if i == 0 else []} for i, _ in enumerate(ps)],
                          H.make_problems(2), grader=H.exact_grader)


def _two_results():
    probs = H.make_problems(40, with_difficulty=True)
    tok = H.WordTokenizer()
    ref = o1pruner.evaluate(lambda p: H.greedy_generate(p, words=20), probs, tokenizer=tok, grader=H.exact_grader, name="reference")

    def shorter(prompts):
        # 8 words; wrong on 2 of the 40 problems
        out = H.greedy_generate(prompts, words=8)
        return [o.replace("}", "1}") if "What is 3 " in p or "What is 7 " in p else o for o, p in zip(out, prompts)]

    new = o1pruner.evaluate(shorter, probs, tokenizer=tok, grader=H.exact_grader, name="pruned")
    return ref, new


def test_compare_table():
    ref, new = _two_results()
    assert new.accuracy == 38 / 40
    df = o1pruner.compare(ref, new)
    import pandas as pd

    assert isinstance(df, pd.DataFrame) and list(df.index) == ["reference", "pruned"]
    row = df.loc["pruned"]
    assert row["delta_length"] == pytest.approx((9 - 21) / 21)
    assert row["delta_accuracy"] == pytest.approx(-0.05)
    assert row["aes"] == pytest.approx(o1pruner.aes(1.0, 21, 0.95, 9))
    assert row["aes"] == pytest.approx(12 / 21 - 5 * 0.05)
    lo, hi = row["delta_accuracy_ci"]
    assert lo <= -0.05 <= hi
    assert row["delta_length_ci"] == pytest.approx((-12 / 21, -12 / 21))
    assert df.loc["reference", "delta_length"] == 0.0
    t = o1pruner.compare(ref, {"a": new, "b": new}, as_pandas=False)
    assert isinstance(t, Table) and [r["model"] for r in t.rows] == ["reference", "a", "b"]
    s = str(t)
    assert s.splitlines()[0].startswith("| model") and "-0.5714" in s
    assert o1pruner.compare(ref, [new], sign_convention="paper_table").loc["pruned", "aes"] == pytest.approx(12 / 21 + 3 * 0.05)
    with pytest.raises(ValueError, match="new: no result"):
        o1pruner.compare(ref, [])


def test_compare_without_pandas(monkeypatch):
    ref, new = _two_results()
    monkeypatch.setitem(sys.modules, "pandas", None)
    t = o1pruner.compare(ref, new)
    assert isinstance(t, Table) and len(t) == 2
    with pytest.raises(ImportError):
        o1pruner.compare(ref, new, as_pandas=True)


def test_compare_buckets_and_difficulty_report():
    ref, new = _two_results()
    rows = o1pruner.compare_buckets(ref, new)
    assert [r["bucket"] for r in rows] == [1, 2, 3]
    assert all(r["delta_length"] == pytest.approx(-12 / 21) for r in rows)
    probs = H.make_problems(30, with_difficulty=True)
    recs = o1pruner.presample(H.fake_generate, probs, 5, tokenizer=H.WordTokenizer(), grader=H.exact_grader, progress=False)
    rep = o1pruner.difficulty_report(recs)
    assert sum(r["problems"] for r in rep) == 30 and sum(r["samples"] for r in rep) == 150
    rep2 = o1pruner.difficulty_report(recs, by="difficulty")
    assert [r["bucket"] for r in rep2] == [1, 2, 3]
    with pytest.raises(ValueError, match="by"):
        o1pruner.difficulty_report(recs, by="level")
