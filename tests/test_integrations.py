"""Reward functions for TRL's GRPOTrainer and verl, called exactly as those
stacks call them, against the NumPy formula; reference statistics columns
from pre-sampled records. A short GRPOTrainer run when TRL is installed."""

import functools

import numpy as np
import pytest

import o1pruner
from o1pruner.integrations import reference_table, with_reference_stats
from o1pruner.integrations.trl import length_harmonizing_reward
from o1pruner.integrations.verl import compute_score, compute_score_batch

from helpers import assert_close


def ends_with_grader(texts, golds):
    return [t.rstrip().endswith(str(g)) for t, g in zip(texts, golds)]


def formula(L, A, lbar, abar, lam):
    return lbar / L - 1 + lam * (A - abar)


def call_like_trl(func, inputs, completions, completion_ids, log=None):
    """What GRPOTrainer does per reward function: every dataset column except
    prompt/completion/completion_ids as a keyword list, one entry per
    completion, plus trainer objects; then checks one reward per completion."""
    keys = [k for k in inputs[0] if k not in ("prompt", "completion", "completion_ids")]
    kwargs = {k: [ex[k] for ex in inputs] for k in keys}
    kwargs["trainer_state"] = object()
    kwargs["log_extra"] = lambda column, values: None
    kwargs["log_metric"] = log if log is not None else (lambda name, value: None)
    out = func(prompts=[ex["prompt"] for ex in inputs], completions=completions, completion_ids=completion_ids, **kwargs)
    assert isinstance(out, list) and len(out) == len(inputs) and all(isinstance(x, float) for x in out)
    return out


def grpo_batch(rng, n_prompts=3, g=4):
    inputs, completions, ids = [], [], []
    for p in range(n_prompts):
        gold = str(int(rng.integers(0, 100)))
        row = {"prompt": f"problem {p}", "ground_truth_answer": gold,
               "ref_mean_length": float(rng.uniform(20, 80)), "ref_accuracy": float(rng.uniform(0, 1))}
        for _ in range(g):
            ok = rng.random() < 0.5
            inputs.append(row)
            completions.append(f"thinking... answer {gold if ok else gold + '1'}")
            ids.append(list(rng.integers(3, 50, int(rng.integers(1, 120)))) + [2])  # eos id 2 at the end
    return inputs, completions, ids


# ---- TRL ----------------------------------------------------------------------------

def test_trl_reward_matches_formula(rng):
    inputs, completions, ids = grpo_batch(rng)
    f = length_harmonizing_reward(lam=2.0, grader=ends_with_grader, eos_token_id=2, clip=None, length_bonus="all")
    logged = {}
    got = call_like_trl(f, inputs, completions, ids, log=lambda k, v: logged.setdefault(k, v))
    L = np.array([len(x) - 1 for x in ids], dtype=float)
    A = np.array(ends_with_grader(completions, [ex["ground_truth_answer"] for ex in inputs]), dtype=float)
    want = formula(L, A, np.array([ex["ref_mean_length"] for ex in inputs]),
                   np.array([ex["ref_accuracy"] for ex in inputs]), 2.0)
    assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert f.__name__ == "length_harmonizing_reward"
    assert logged["o1pruner/accuracy"] == pytest.approx(A.mean())
    assert logged["o1pruner/length"] == pytest.approx(L.mean())
    # without eos_token_id every id counts
    g2 = call_like_trl(length_harmonizing_reward(lam=2.0, grader=ends_with_grader, clip=None, length_bonus="all"),
                       inputs, completions, ids)
    assert_close(g2, want - np.array([ex["ref_mean_length"] for ex in inputs]) * (1 / L - 1 / (L + 1)),
                 rtol=1e-12, atol=1e-12)


def test_trl_reward_options(rng):
    inputs, completions, ids = grpo_batch(rng, 2, 3)
    paper = dict(clip=None, length_bonus="all")
    raw = np.array(call_like_trl(length_harmonizing_reward(lam=5.0, grader=ends_with_grader, **paper),
                                 inputs, completions, ids))
    clipped = call_like_trl(length_harmonizing_reward(lam=5.0, grader=ends_with_grader, clip=(-2, 4), length_bonus="all"),
                            inputs, completions, ids)
    assert_close(clipped, np.where(raw <= -2, -2, np.where(raw > 4, 4, raw)), rtol=0, atol=0)
    # conversational completions: lists of messages, the last is the assistant's
    conv = [[{"role": "assistant", "content": c}] for c in completions]
    assert call_like_trl(length_harmonizing_reward(lam=5.0, grader=ends_with_grader, **paper), inputs, conv, ids) \
        == raw.tolist()
    # renamed columns
    renamed = [{"prompt": ex["prompt"], "gold": ex["ground_truth_answer"], "L": ex["ref_mean_length"],
                "A": ex["ref_accuracy"]} for ex in inputs]
    f = length_harmonizing_reward(lam=5.0, grader=ends_with_grader, answer_column="gold", ref_length_column="L",
                                  ref_accuracy_column="A", name="o1p", **paper)
    assert call_like_trl(f, renamed, completions, ids) == raw.tolist() and f.__name__ == "o1p"
    # an empty completion (eos only) counts as one token
    e = length_harmonizing_reward(lam=0.0, grader=ends_with_grader, eos_token_id=[2, 7], **paper)
    out = call_like_trl(e, inputs[:1], [""], [[7]])
    assert out == [inputs[0]["ref_mean_length"] / 1 - 1]


def test_trl_reward_bad_input(rng):
    inputs, completions, ids = grpo_batch(rng, 1, 2)
    f = length_harmonizing_reward(grader=ends_with_grader)
    for col in ("ref_mean_length", "ref_accuracy", "ground_truth_answer"):
        rows = [{k: v for k, v in ex.items() if k != col} for ex in inputs]
        with pytest.raises(ValueError, match=f"{col}: dataset column missing"):
            call_like_trl(f, rows, completions, ids)
    with pytest.raises(ValueError, match="completion_ids: has 1 entries for 2"):
        call_like_trl(f, inputs, completions, ids[:1])
    with pytest.raises(ValueError, match="completion_ids: required"):
        f(prompts=["a"], completions=["b"], ground_truth_answer=["1"], ref_mean_length=[1.0], ref_accuracy=[0.5])
    with pytest.raises(ValueError, match="ref_mean_length: must be > 0"):
        call_like_trl(f, [dict(ex, ref_mean_length=0.0) for ex in inputs], completions, ids)
    with pytest.raises(ValueError, match=r"ref_accuracy \(sample \d+\): must be finite"):
        call_like_trl(f, [dict(ex, ref_accuracy=float("nan")) for ex in inputs], completions, ids)
    with pytest.raises(TypeError, match="completions: entry 0"):
        call_like_trl(f, inputs, [3, 4], ids)
    with pytest.raises(ValueError, match="grader: returned shape"):
        call_like_trl(length_harmonizing_reward(grader=lambda t, g: [True]), inputs, completions, ids)
    with pytest.raises(ValueError, match="lam"):
        length_harmonizing_reward(lam=-1)
    with pytest.raises(TypeError, match="grader"):
        length_harmonizing_reward(grader="yes")


def test_trl_reward_default_grader():
    pytest.importorskip("o1pruner.kernels.grading")
    f = length_harmonizing_reward(lam=2.0)
    rows = [{"prompt": "p", "ground_truth_answer": "1/2", "ref_mean_length": 10.0, "ref_accuracy": 0.5}] * 2
    out = call_like_trl(f, rows, ["so \\boxed{\\frac{1}{2}}", "so \\boxed{0.4}"], [[1] * 10, [1] * 10])
    assert out == [1.0, -1.0]


# ---- verl ---------------------------------------------------------------------------

def call_like_verl(fn, reward_kwargs, item):
    """verl's naive reward manager: keyword call per response, extra_info
    from the dataset plus num_turns, config reward_kwargs merged in."""
    extra = dict(item["extra_info"])
    extra["num_turns"] = None
    wrapped = functools.partial(fn, **reward_kwargs)
    score = wrapped(data_source=item["data_source"], solution_str=item["response"],
                    ground_truth=item["reward_model"]["ground_truth"], extra_info=extra)
    assert isinstance(score, dict) and "score" in score
    return score


class WordTokenizer:
    """A tokenizer with the Hugging Face call interface: one token per word."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


def test_verl_compute_score_matches_formula(rng):
    items, want = [], []
    for i in range(12):
        gold = str(i)
        ok = bool(rng.random() < 0.5)
        n_words = int(rng.integers(1, 60))
        lbar, abar = float(rng.uniform(5, 50)), float(rng.uniform(0, 1))
        items.append({"data_source": "math", "response": " ".join(["w"] * n_words) + f" {gold if ok else 'x'}",
                      "reward_model": {"ground_truth": gold},
                      "extra_info": {"ref_mean_length": lbar, "ref_accuracy": abar, "index": i}})
        want.append(formula(n_words + 1, float(ok), lbar, abar, 3.0))
    kw = {"tokenizer": WordTokenizer(), "lam": 3.0, "grader": ends_with_grader, "clip": None, "length_bonus": "all"}
    scores = [call_like_verl(compute_score, kw, it) for it in items]
    assert_close([s["score"] for s in scores], want, rtol=1e-12, atol=1e-12)
    assert all(sorted(s) == ["acc", "length", "ref_accuracy", "ref_mean_length", "score"] for s in scores)
    # the batch manager's contract gives the same dicts
    batch = compute_score_batch([it["data_source"] for it in items], [it["response"] for it in items],
                                [it["reward_model"]["ground_truth"] for it in items],
                                [it["extra_info"] for it in items], **kw)
    assert batch == scores
    # a length in extra_info wins over the tokenizer
    s = compute_score("math", "a b c", "c", {"ref_mean_length": 10, "ref_accuracy": 0.0, "response_length": 5},
                      grader=ends_with_grader)
    assert s["length"] == 5 and s["score"] == pytest.approx(10 / 5 - 1 + 2.0)


def test_verl_bad_input():
    kw = {"grader": ends_with_grader, "tokenizer": WordTokenizer()}
    with pytest.raises(ValueError, match=r"extra_info\['ref_mean_length'\]: missing"):
        compute_score("m", "a", "a", {"ref_accuracy": 0.5}, **kw)
    with pytest.raises(ValueError, match=r"extra_info\['ref_accuracy'\]: missing"):
        compute_score("m", "a", "a", {"ref_mean_length": 5}, **kw)
    with pytest.raises(ValueError, match="extra_info: expected a dict"):
        compute_score("m", "a", "a", None, **kw)
    with pytest.raises(ValueError, match=r"extra_info\['ref_mean_length'\]: must be > 0"):
        compute_score("m", "a", "a", {"ref_mean_length": -1, "ref_accuracy": 0.5}, **kw)
    with pytest.raises(ValueError, match="tokenizer: needed"):
        compute_score("m", "a", "a", {"ref_mean_length": 5, "ref_accuracy": 0.5}, grader=ends_with_grader)
    with pytest.raises(TypeError, match="solution_str"):
        compute_score("m", 5, "a", {"ref_mean_length": 5, "ref_accuracy": 0.5}, **kw)
    with pytest.raises(ValueError, match="ground_truths: has 1 entries for 2"):
        compute_score_batch(["m", "m"], ["a", "b"], ["a"], [{}, {}], **kw)
    with pytest.raises(ValueError, match="lam"):
        compute_score("m", "a", "a", {"ref_mean_length": 5, "ref_accuracy": 0.5}, lam=float("inf"), **kw)
    # an empty response counts as one token
    assert compute_score("m", "", "a", {"ref_mean_length": 5, "ref_accuracy": 0.0}, **kw)["length"] == 1


def test_verl_tokenizer_by_object_counts_like_presample():
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    from o1pruner.integrations.hf import tiny_tokenizer

    tok = tiny_tokenizer(["12+13=25", "1+1=2"], vocab_size=280)
    text = "12+13=25 so \\boxed{25}"
    s = compute_score("m", text, "25", {"ref_mean_length": 10, "ref_accuracy": 0.5}, tokenizer=tok,
                      grader=ends_with_grader)
    assert s["length"] == o1pruner.count_tokens(tok, [text])[0]
    assert tokenizers is not None


# ---- verl loads the file by path; unknown options; the on-policy defaults ---------------

def load_like_verl(path, module_name=None, modules=None):
    """verl's ``load_extern_object(path, "compute_score")``: the file executed
    with ``spec_from_file_location`` + ``exec_module`` under a name of its own
    (current verl: ``custom_module_<hash>``, not in sys.modules; verl <= 0.7:
    ``custom_module``, put in sys.modules first), never imported as
    ``o1pruner.integrations.verl``."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(module_name or f"custom_module_{hash(os.path.abspath(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    if module_name is not None:
        modules[module_name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_verl_file_loads_the_way_verl_loads_it(monkeypatch):
    import sys

    import o1pruner.integrations.verl as imported

    info = {"ref_mean_length": 40, "ref_accuracy": 0.5, "response_length": 31}
    for name in (None, "custom_module"):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, "custom_module", None)  # restored (removed) when the context ends
            mod = load_like_verl(imported.__file__, name, sys.modules)
        assert mod.__name__ != imported.__name__ and mod.compute_score is not imported.compute_score
        got = mod.compute_score(data_source="gsm8k", solution_str="so 7", ground_truth="7", extra_info=dict(info),
                                grader=ends_with_grader)
        assert got == imported.compute_score("gsm8k", "so 7", "7", dict(info), grader=ends_with_grader)
        assert got["score"] == pytest.approx(40 / 31 - 1 + 2 * 0.5)
    # the pkg:// form (verl after 0.7.0) imports the module by name
    import importlib

    assert importlib.import_module("pkg://o1pruner.integrations.verl"[len("pkg://"):].replace("/", ".")) is imported


def test_verl_readme_recipe_path_loads_in_a_fresh_process(tmp_path):
    """The README's ``custom_reward_function.path=$(python -c ...)`` command,
    then the file executed as verl does, in a process that never imported
    o1pruner.integrations."""
    import json
    import pathlib
    import re
    import subprocess
    import sys

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r'custom_reward_function\.path=\$\(python -c "([^"]+)"\)', readme)
    assert m, "README: the verl recipe's custom_reward_function.path line is missing"
    path = subprocess.run([sys.executable, "-c", m.group(1)], capture_output=True, text=True, check=True,
                          cwd=tmp_path).stdout.strip()
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('custom_module_1', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "assert 'o1pruner.integrations.verl' not in sys.modules\n"
        "print(json.dumps(mod.compute_score(data_source='m', solution_str='so \\\\boxed{7}', ground_truth='7',\n"
        "    extra_info={'ref_mean_length': 40, 'ref_accuracy': 0.5, 'response_length': 31, 'num_turns': None},\n"
        "    lam=2.0)))\n")
    out = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["acc"] == 1.0 and got["score"] == pytest.approx(40 / 31 - 1 + 2 * 0.5)


def test_verl_rejects_unknown_options_and_accepts_what_verl_passes():
    info = {"ref_mean_length": 40, "ref_accuracy": 0.5, "response_length": 31}
    base = compute_score("m", "so 7", "7", dict(info), grader=ends_with_grader, lam=5.0)
    with pytest.raises(TypeError, match=r"compute_score: unknown keyword argument 'lamda' \(did you mean 'lam'\?\)"):
        compute_score("m", "so 7", "7", dict(info), grader=ends_with_grader, lamda=5.0)
    with pytest.raises(TypeError, match=r"compute_score_batch: unknown keyword argument 'clipp'.*'clip'.*1 more \(zz\)"):
        compute_score_batch(["m"], ["so 7"], ["7"], [dict(info)], grader=ends_with_grader, clipp=None, zz=1)
    # verl's reward loop with a reward model router passes these two
    kw = {"reward_router_address": "10.0.0.1:8000", "reward_model_tokenizer": object()}
    assert call_like_verl(compute_score, {"grader": ends_with_grader, "lam": 5.0, **kw},
                          {"data_source": "m", "response": "so 7", "reward_model": {"ground_truth": "7"},
                           "extra_info": info}) == base
    assert compute_score_batch(["m"], ["so 7"], ["7"], [dict(info)], grader=ends_with_grader, lam=5.0, **kw) == [base]
    for bad, err, msg in (({"clip": (4, -2)}, ValueError, "clip"), ({"clip": 3}, TypeError, "clip"),
                          ({"length_bonus": "none"}, ValueError, "length_bonus"), ({"lam": "x"}, TypeError, "lam")):
        with pytest.raises(err, match=msg):
            compute_score("m", "so 7", "7", dict(info), grader=ends_with_grader, **bad)
    # a clip from a Hydra config arrives as a list
    assert compute_score("m", "so 7", "7", dict(info), grader=ends_with_grader, clip=[-1, 1])["score"] == 1.0


def test_trl_rejects_unknown_options():
    with pytest.raises(TypeError, match="lamda"):
        length_harmonizing_reward(lamda=5.0)
    with pytest.raises(ValueError, match="length_bonus"):
        length_harmonizing_reward(length_bonus="wrong")
    with pytest.raises(TypeError, match="clip"):
        length_harmonizing_reward(clip=(1, 2, 3))
    with pytest.raises(ValueError, match="clip"):
        length_harmonizing_reward(clip=(4, -2))


# The numbers: Lbar_ref = 40, Abar_ref = 0.5, lam = 2; an empty or
# 1-token wrong answer against a correct 31-token one.
SHORT_WRONG = {"paper": (38.0, 40 / 31), "clip only": (4.0, 40 / 31), "default": (-1.0, 40 / 31)}
OPTIONS = {"paper": {"clip": None, "length_bonus": "all"}, "clip only": {"length_bonus": "all"}, "default": {}}


@pytest.mark.parametrize("case", sorted(SHORT_WRONG))
def test_short_wrong_answers_on_policy(case):
    wrong, right = SHORT_WRONG[case]
    kw = OPTIONS[case]
    f = length_harmonizing_reward(lam=2.0, grader=ends_with_grader, eos_token_id=0, **kw)
    rows = [{"prompt": "p", "ground_truth_answer": "7", "ref_mean_length": 40.0, "ref_accuracy": 0.5}] * 3
    trl = call_like_trl(f, rows, ["", "x", "so 7"], [[0], [5, 0], [5] * 31 + [0]])
    info = {"ref_mean_length": 40, "ref_accuracy": 0.5}
    verl = [compute_score("m", s, "7", dict(info, response_length=n), grader=ends_with_grader, **kw)["score"]
            for s, n in (("", 1), ("x", 1), ("so 7", 31))]
    for got in (trl, verl):
        assert_close(got, [wrong, wrong, right], rtol=1e-12, atol=1e-12)


def test_default_reward_matches_its_numpy_form(rng):
    """Default = the paper's R with a not-fully-correct response's length
    raised to Lbar_ref when shorter, then clipped to [-2, 4]; correct answers
    always outscore wrong ones of the same problem (lam >= 1)."""
    inputs, completions, ids = grpo_batch(rng, 6, 8)
    for lam in (1.0, 2.0, 5.0):
        got = np.array(call_like_trl(length_harmonizing_reward(lam=lam, grader=ends_with_grader, eos_token_id=2),
                                     inputs, completions, ids))
        L = np.array([len(x) - 1 for x in ids], dtype=float)
        A = np.array(ends_with_grader(completions, [ex["ground_truth_answer"] for ex in inputs]), dtype=float)
        lbar = np.array([ex["ref_mean_length"] for ex in inputs])
        abar = np.array([ex["ref_accuracy"] for ex in inputs])
        want = formula(np.where((A < 1) & (L < lbar), lbar, L), A, lbar, abar, lam)
        assert_close(got, np.where(want <= -2, -2, np.where(want > 4, 4, want)), rtol=1e-12, atol=1e-12)
        mixed = [slice(8 * p, 8 * p + 8) for p in range(6) if 0 < A[8 * p:8 * p + 8].sum() < 8]
        assert mixed
        for g in mixed:
            assert got[g][A[g] == 1].min() > got[g][A[g] == 0].max()


# ---- reference statistics columns ------------------------------------------------------

def presampled():
    recs = []
    for pid, (problem, gold, lens, oks) in enumerate([
        ("1+1", "2", [10, 20, 30, 40], [1, 1, 0, 1]),
        ("2+2", "4", [5, 5, 5, 5], [0, 0, 0, 1]),
    ]):
        for j, (L, c) in enumerate(zip(lens, oks)):
            recs.append({"problem_id": pid, "problem": problem, "ground_truth_answer": gold,
                         "solution": "s", "length": L, "correct": bool(c)})
    return recs


def test_reference_table_and_columns():
    tab = reference_table(presampled())
    assert tab["1+1"] == {"ref_mean_length": 25.0, "ref_accuracy": 0.75, "n_samples": 4}
    assert tab["2+2"]["ref_accuracy"] == 0.25
    assert reference_table(presampled(), key="problem_id")[1]["ref_mean_length"] == 5.0
    rows = with_reference_stats([{"problem": "2+2", "x": 1}, {"problem": "1+1"}], presampled())
    assert rows[0] == {"problem": "2+2", "x": 1, "ref_mean_length": 5.0, "ref_accuracy": 0.25}
    with pytest.raises(ValueError, match=r"rows\[0\]: no pre-sampled records"):
        with_reference_stats([{"problem": "3+3"}], presampled())
    with pytest.raises(ValueError, match=r"rows\[0\]: missing field 'problem'"):
        with_reference_stats([{"prompt": "1+1"}], presampled())
    # the columns feed the TRL reward directly
    f = length_harmonizing_reward(lam=2.0, grader=ends_with_grader)
    rows = [dict(r, prompt=r["problem"], ground_truth_answer="2") for r in with_reference_stats([{"problem": "1+1"}], presampled())]
    assert call_like_trl(f, rows, ["so 2"], [[0] * 50]) == [25 / 50 - 1 + 2 * 0.25]


# ---- a short GRPOTrainer run (TRL installed) -------------------------------------------

def test_grpo_trainer_runs_with_the_reward(tmp_path):
    pytest.importorskip("trl")
    datasets = pytest.importorskip("datasets")
    import o1pruner.integrations.hf as H
    from trl import GRPOConfig, GRPOTrainer

    tok = H.tiny_tokenizer([f"{a}+{b}={a + b}" for a in range(20) for b in range(20)], vocab_size=300)
    model = H.tiny_qwen2(tok, hidden_size=32, num_layers=1, intermediate_size=64)
    rows = [{"prompt": f"{a}+{b}=", "ground_truth_answer": str(a + b), "ref_mean_length": 6.0, "ref_accuracy": 0.2}
            for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]]
    reward = length_harmonizing_reward(lam=2.0, eos_token_id=tok.eos_token_id,
                                       grader=lambda t, g: [b in a for a, b in zip(t, g)])
    seen = []

    def spy(**kw):
        out = reward(**kw)
        seen.append((kw, out))
        return out

    spy.__name__ = "o1p"
    cfg = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2,
                     max_completion_length=8, max_steps=2, use_cpu=True, report_to="none", logging_steps=1,
                     learning_rate=1e-3, disable_tqdm=True, save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=model, reward_funcs=[spy], args=cfg, train_dataset=datasets.Dataset.from_list(rows),
                          processing_class=tok)
    trainer.train()
    assert len(seen) == 2
    kw, out = seen[0]
    assert {"prompts", "completions", "completion_ids", "ground_truth_answer", "ref_mean_length"} <= set(kw)
    steps = [l for l in trainer.state.log_history if "rewards/o1p/mean" in l]
    assert len(steps) == 2
    assert steps[0]["rewards/o1p/mean"] == pytest.approx(np.mean(out), rel=1e-5)
    assert "o1pruner/length_ratio" in steps[0]
