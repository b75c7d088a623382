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
    f = length_harmonizing_reward(lam=2.0, grader=ends_with_grader, eos_token_id=2)
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
    g2 = call_like_trl(length_harmonizing_reward(lam=2.0, grader=ends_with_grader), inputs, completions, ids)
    assert_close(g2, want - np.array([ex["ref_mean_length"] for ex in inputs]) * (1 / L - 1 / (L + 1)),
                 rtol=1e-12, atol=1e-12)


def test_trl_reward_options(rng):
    inputs, completions, ids = grpo_batch(rng, 2, 3)
    raw = np.array(call_like_trl(length_harmonizing_reward(lam=5.0, grader=ends_with_grader), inputs, completions, ids))
    clipped = call_like_trl(length_harmonizing_reward(lam=5.0, grader=ends_with_grader, clip=(-2, 4)),
                            inputs, completions, ids)
    assert_close(clipped, np.where(raw <= -2, -2, np.where(raw > 4, 4, raw)), rtol=0, atol=0)
    # conversational completions: lists of messages, the last is the assistant's
    conv = [[{"role": "assistant", "content": c}] for c in completions]
    assert call_like_trl(length_harmonizing_reward(lam=5.0, grader=ends_with_grader), inputs, conv, ids) == raw.tolist()
    # renamed columns
    renamed = [{"prompt": ex["prompt"], "gold": ex["ground_truth_answer"], "L": ex["ref_mean_length"],
                "A": ex["ref_accuracy"]} for ex in inputs]
    f = length_harmonizing_reward(lam=5.0, grader=ends_with_grader, answer_column="gold", ref_length_column="L",
                                  ref_accuracy_column="A", name="o1p")
    assert call_like_trl(f, renamed, completions, ids) == raw.tolist() and f.__name__ == "o1p"
    # an empty completion (eos only) counts as one token
    e = length_harmonizing_reward(lam=0.0, grader=ends_with_grader, eos_token_id=[2, 7])
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
    kw = {"tokenizer": WordTokenizer(), "lam": 3.0, "grader": ends_with_grader}
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
