"""o1pruner.io: JSONL with named errors, atomic writes, the crash-safe
appender, and round trips of the public O1-Pruner, vLLM and LLaMA-Factory
formats on small files the tests make."""

import json
import os

import numpy as np
import pytest

from o1pruner import io
from o1pruner.data.prompts import MARCO_SAMPLING_TEMPLATE, PromptTemplate


def write_raw(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ---- JSONL --------------------------------------------------------------------

def test_jsonl_round_trip_with_numpy_types(tmp_path):
    p = tmp_path / "a.jsonl"
    recs = [{"a": np.int64(3), "b": np.float32(0.5), "c": np.array([1, 2]), "d": np.bool_(True), "s": "é\n\\boxed{1}"}, {"a": 1}]
    io.write_jsonl(p, recs)
    got = io.read_jsonl(p)
    assert got == [{"a": 3, "b": 0.5, "c": [1, 2], "d": True, "s": "é\n\\boxed{1}"}, {"a": 1}]
    assert got.skipped == [] and got.torn_tail is False
    assert open(p, encoding="utf-8").read().count("\n") == 2


def test_jsonl_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match=r"records\[1\].*NaN"):
        io.write_jsonl(tmp_path / "a.jsonl", [{"x": 1.0}, {"x": float("nan")}])
    assert not (tmp_path / "a.jsonl").exists()


def test_corrupt_line_is_named(tmp_path):
    p = tmp_path / "c.jsonl"
    write_raw(p, '{"a": 1}\n\n{"a": 2,,}\n{"a": 3}\n')
    with pytest.raises(io.JSONLError, match=r"c\.jsonl:3: not valid JSON") as e:
        io.read_jsonl(p)
    assert e.value.line == 3 and e.value.path == str(p)


def test_missing_field_is_named(tmp_path):
    p = tmp_path / "m.jsonl"
    write_raw(p, '{"a": 1, "b": 2}\n{"a": 1}\n')
    with pytest.raises(io.JSONLError, match=r"m\.jsonl:2: missing field 'b'") as e:
        io.read_jsonl(p, required=["a", "b"])
    assert e.value.field == "b"
    # null counts as missing
    write_raw(p, '{"a": 1, "b": null}\n')
    with pytest.raises(io.JSONLError, match=r":1: missing field 'b'"):
        io.read_jsonl(p, required=["b"])


def test_non_object_line(tmp_path):
    p = tmp_path / "n.jsonl"
    write_raw(p, '{"a": 1}\n[1, 2]\n')
    with pytest.raises(io.JSONLError, match=r":2: expected a JSON object, got list"):
        io.read_jsonl(p)


def test_skip_invalid_counts(tmp_path):
    p = tmp_path / "s.jsonl"
    write_raw(p, '{"a": 1}\nnot json\n{"b": 1}\n{"a": 4}\n')
    with pytest.warns(RuntimeWarning, match="skipped 2 invalid line"):
        got = io.read_jsonl(p, required=["a"], skip_invalid=True)
    assert [r["a"] for r in got] == [1, 4]
    assert [line for line, _ in got.skipped] == [2, 3]
    assert "missing field 'a'" in got.skipped[1][1]


def test_torn_tail(tmp_path):
    p = tmp_path / "t.jsonl"
    write_raw(p, '{"a": 1}\n{"a": 2}\n{"a": 3, "b": "unfini')
    with pytest.raises(io.JSONLError, match=r":3: not valid JSON.*cut by a crash"):
        io.read_jsonl(p)
    with pytest.warns(RuntimeWarning, match="dropped an incomplete last line"):
        got = io.read_jsonl(p, torn_tail="drop")
    assert [r["a"] for r in got] == [1, 2] and got.torn_tail
    # a corrupt line in the middle is still an error with torn_tail="drop"
    write_raw(p, '{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(io.JSONLError, match=":2:"):
        io.read_jsonl(p, torn_tail="drop")
    # a complete last line without newline is fine
    write_raw(p, '{"a": 1}\n{"a": 2}')
    assert [r["a"] for r in io.read_jsonl(p)] == [1, 2]
    with pytest.raises(ValueError, match="torn_tail"):
        io.read_jsonl(p, torn_tail="maybe")


def test_iter_jsonl_streams_line_numbers(tmp_path):
    p = tmp_path / "x.jsonl"
    write_raw(p, '{"a": 1}\n\n{"a": 2}\n')
    assert [line for line, _ in io.iter_jsonl(p)] == [1, 3]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.read_jsonl(tmp_path / "nope.jsonl")


def test_read_json_error_names_line(tmp_path):
    p = tmp_path / "x.json"
    write_raw(p, '[\n{"a": 1},\n{"a" 2}\n]')
    with pytest.raises(io.JSONLError, match=r"x\.json:3: not valid JSON"):
        io.read_json(p)


# ---- atomic writes ------------------------------------------------------------

def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.json"
    io.write_json(p, {"v": 1})

    def boom(f):
        f.write('{"v": 2, "partial": ')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        io.atomic_write(p, boom)
    assert io.read_json(p) == {"v": 1}
    assert os.listdir(tmp_path) == ["f.json"]  # no temporary left behind
    io.atomic_write(p, b"[1]")
    assert io.read_json(p) == [1]



def test_atomic_write_gives_the_permissions_of_open(tmp_path):
    # a temporary file is private (0600); the written file gets 0666 less the
    # umask, like a file made by open() (results.json readable by the group)
    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "r.json", {"a": 1})
        open(tmp_path / "plain", "w").close()
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o644


def test_model_checkpoints_use_the_shared_atomic_write(tmp_path, monkeypatch):
    from o1pruner import _atomic
    from o1pruner.models import _safetensors

    calls = []
    real = _atomic.atomic_write
    monkeypatch.setattr(_safetensors, "atomic_write", lambda *a, **k: (calls.append(a[0]), real(*a, **k)))
    _safetensors.atomic_write_bytes(str(tmp_path / "c.json"), b"{}")
    assert calls == [str(tmp_path / "c.json")] and (tmp_path / "c.json").read_bytes() == b"{}"

def test_write_jsonl_is_atomic(tmp_path):
    p = tmp_path / "a.jsonl"
    io.write_jsonl(p, [{"a": 1}])

    def gen():
        yield {"a": 2}
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        io.write_jsonl(p, gen())
    assert io.read_jsonl(p) == [{"a": 1}]


# ---- append-only writer ----------------------------------------------------------

def test_appender_batches(tmp_path):
    p = tmp_path / "run.jsonl"
    with io.JSONLAppender(p) as out:
        assert out.write_batch([{"i": 0}, {"i": 1}]) == 2
        out.write_batch([])
    with io.JSONLAppender(p) as out:
        out.write_batch([{"i": 2}])
        assert out.lines_written == 1
    assert [r["i"] for r in io.read_jsonl(p)] == [0, 1, 2]


def test_appender_repairs_torn_tail(tmp_path):
    p = tmp_path / "run.jsonl"
    write_raw(p, '{"i": 0}\n{"i": 1}\n{"i": 2, "x"')
    with pytest.warns(RuntimeWarning, match="truncated an incomplete last line"):
        out = io.JSONLAppender(p)
    out.write_batch([{"i": 3}])
    out.close()
    assert [r["i"] for r in io.read_jsonl(p)] == [0, 1, 3]
    # a complete last record without its newline is kept
    write_raw(p, '{"i": 0}\n{"i": 1}')
    with io.JSONLAppender(p) as out:
        out.write_batch([{"i": 2}])
    assert [r["i"] for r in io.read_jsonl(p)] == [0, 1, 2]
    # a torn file with a single (partial) line
    write_raw(p, '{"i": 0')
    with pytest.warns(RuntimeWarning):
        with io.JSONLAppender(p) as out:
            out.write_batch([{"i": 9}])
    assert io.read_jsonl(p) == [{"i": 9}]


def test_appender_bad_record_writes_nothing(tmp_path):
    p = tmp_path / "run.jsonl"
    with io.JSONLAppender(p) as out:
        out.write_batch([{"i": 0}])
        with pytest.raises(ValueError, match="record 1 of the batch"):
            out.write_batch([{"i": 1}, {"i": float("inf")}])
        with pytest.raises(TypeError, match="not JSON serialisable"):
            out.write_batch([{"i": object()}])
    assert io.read_jsonl(p) == [{"i": 0}]


# ---- public O1-Pruner sample JSON ------------------------------------------------

def public_items(n_problems=3, k=4):
    items = []
    for g in range(n_problems):
        for j in range(k):
            items.append({"problem": f"p{g}", "ground_truth_answer": str(g), "ground_truth_solution": "because",
                          "solution": f"sol {g}.{j} \\boxed{{{g + j % 2}}}", "answer": str(g + j % 2)})
    return items


def test_public_sample_json_round_trip(tmp_path):
    p = tmp_path / "Marco_math_K-4.json"
    with open(p, "w") as f:
        json.dump(public_items(), f)
    got = io.read_o1pruner_samples(p, k=4)
    assert len(got) == 12
    assert [(r["problem_id"], r["sample_index"]) for r in got[:5]] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert got[5]["ground_truth_solution"] == "because"
    q = tmp_path / "again.json"
    assert io.write_o1pruner_samples(q, got) == 4
    assert io.read_json(q) == public_items()  # byte-for-byte the same items
    assert io.read_o1pruner_samples(q, 4) == got


def test_public_sample_json_errors(tmp_path):
    p = tmp_path / "s.json"
    items = public_items()
    with open(p, "w") as f:
        json.dump(items, f)
    with pytest.raises(io.JSONLError, match="not a multiple of k=5"):
        io.read_o1pruner_samples(p, 5)
    with pytest.raises(io.JSONLError, match=r"s\.json:5: field 'problem' differs.*wrong k"):
        io.read_o1pruner_samples(p, 6)
    with pytest.raises(ValueError, match="k: must be >= 1"):
        io.read_o1pruner_samples(p, 0)
    with pytest.raises(TypeError, match="k: expected an int"):
        io.read_o1pruner_samples(p, 2.0)
    del items[6]["answer"]
    with open(p, "w") as f:
        json.dump(items, f)
    with pytest.raises(io.JSONLError, match=r"s\.json:7: missing field 'answer'"):
        io.read_o1pruner_samples(p, 4)
    assert len(io.read_o1pruner_samples(p, 4, require_answer=False)) == 12
    with open(p, "w") as f:
        json.dump([], f)
    with pytest.raises(io.JSONLError, match="no samples"):
        io.read_o1pruner_samples(p, 4)
    with open(p, "w") as f:
        json.dump({"a": 1}, f)
    with pytest.raises(io.JSONLError, match="expected a JSON array"):
        io.read_o1pruner_samples(p, 4)


def test_write_public_needs_equal_k(tmp_path):
    samples = [{"problem_id": 0, "problem": "a", "ground_truth_answer": "1", "solution": "x"},
               {"problem_id": 0, "problem": "a", "ground_truth_answer": "1", "solution": "y"},
               {"problem_id": 1, "problem": "b", "ground_truth_answer": "2", "solution": "z"}]
    with pytest.raises(ValueError, match="same number of samples"):
        io.write_o1pruner_samples(tmp_path / "x.json", samples)
    with pytest.raises(ValueError, match="empty"):
        io.write_o1pruner_samples(tmp_path / "x.json", [])
    # answer None is written as the public code's "None"
    io.write_o1pruner_samples(tmp_path / "y.json", samples[:2])
    assert io.read_json(tmp_path / "y.json")[0]["answer"] == "None"


# ---- vLLM-style JSONL ----------------------------------------------------------------

def our_samples():
    out = []
    for g in range(3):
        for j in range(2):
            out.append({"problem_id": g, "sample_index": j, "problem": f"What is {g}?", "ground_truth_answer": str(g),
                        "prompt": f"Q: What is {g}?", "solution": f"it is \\boxed{{{g}}} ({j})", "token_ids": [1, 2, 3 + j],
                        "length": 3})
    return out


def test_vllm_round_trip(tmp_path):
    p = tmp_path / "vllm.jsonl"
    recs = io.samples_to_vllm(our_samples())
    assert len(recs) == 3 and len(recs[0]["outputs"]) == 2
    io.write_vllm_jsonl(p, recs)
    back = io.vllm_to_samples(p)
    assert back == our_samples()
    assert io.read_vllm_jsonl(p) == recs


def test_vllm_match_by_prompt(tmp_path):
    problems = [{"problem": "What is 0?", "ground_truth_answer": "0"}, {"problem": "What is 1?", "ground_truth_answer": "1"}]
    tpl = PromptTemplate("Q: {problem}")
    p = tmp_path / "v.jsonl"
    io.write_vllm_jsonl(p, [{"prompt": "Q: What is 1?", "outputs": [{"text": "\\boxed{1}"}, {"text": "\\boxed{2}", "token_ids": [5]}]}])
    got = io.vllm_to_samples(p, problems=problems, template=tpl)
    assert [(s["problem_id"], s["sample_index"], s["ground_truth_answer"]) for s in got] == [(1, 0, "1"), (1, 1, "1")]
    assert "length" not in got[0] and got[1]["length"] == 1
    with pytest.raises(ValueError, match="matches no problem"):
        io.vllm_to_samples(p, problems=problems, template="Other {problem}")
    with pytest.raises(ValueError, match="pass problems="):
        io.vllm_to_samples(p)


def test_vllm_errors_name_line_and_field(tmp_path):
    p = tmp_path / "v.jsonl"
    write_raw(p, '{"prompt": "a", "outputs": [{"text": "x"}]}\n{"prompt": "b", "outputs": [{"text": "x"}, {"tex": "y"}]}\n')
    with pytest.raises(io.JSONLError, match=r"v\.jsonl:2: missing field 'outputs\[1\]\.text'") as e:
        io.read_vllm_jsonl(p)
    assert e.value.field == "outputs[1].text"
    write_raw(p, '{"prompt": "a", "outputs": [{"text": "x", "token_ids": [1, "2"]}]}\n')
    with pytest.raises(io.JSONLError, match=r":1: field 'outputs\[0\]\.token_ids' must be a list of ints"):
        io.read_vllm_jsonl(p)
    write_raw(p, '{"prompt": "a", "outputs": []}\n')
    with pytest.raises(io.JSONLError, match=r":1: field 'outputs' must be a non-empty list"):
        io.read_vllm_jsonl(p)
    write_raw(p, '{"prompt": "a"}\n')
    with pytest.raises(io.JSONLError, match=r":1: missing field 'outputs'"):
        io.read_vllm_jsonl(p)
    write_raw(p, '{"prompt": "a", "outputs": [{"text": "x"}]}\n{"prompt": 3, "outputs": [{"text": "x"}]}\n{"prompt": "c", "outputs": [{"text": "z"}]}\n')
    with pytest.warns(RuntimeWarning, match="skipped 1"):
        got = io.read_vllm_jsonl(p, skip_invalid=True)
    assert [r["prompt"] for r in got] == ["a", "c"] and got.skipped[0][0] == 2


# ---- LLaMA-Factory -------------------------------------------------------------------

def weighted_records():
    return [{"problem": "What is 1?", "solution": "\\boxed{1}", "weight": 1.25},
            {"problem": "What is {x}?", "solution": "\\boxed{x}", "weight": np.float64(-0.5)}]


@pytest.mark.parametrize("ext", ["json", "jsonl"])
def test_llamafactory_round_trip(tmp_path, ext):
    p = tmp_path / f"lf.{ext}"
    io.write_llamafactory(p, weighted_records())
    items = io.read_json(p) if ext == "json" else list(io.read_jsonl(p))
    # the public code's format_data: system prompt, bare problem, solution, weight
    assert items[0] == {"messages": [
        {"role": "system", "content": "You are a helpful assistant. You should think step-by-step and put your final answer within \\boxed{}."},
        {"role": "user", "content": "What is 1?"},
        {"role": "assistant", "content": "\\boxed{1}"}], "weight": 1.25}
    back = io.read_llamafactory(p)
    assert [(b["problem"], b["solution"], b["weight"]) for b in back] == [("What is 1?", "\\boxed{1}", 1.25), ("What is {x}?", "\\boxed{x}", -0.5)]
    assert back[0]["system"] == io.PUBLIC_SYSTEM_PROMPT


def test_llamafactory_with_sampling_template(tmp_path):
    p = tmp_path / "lf.json"
    io.write_llamafactory(p, weighted_records(), template=MARCO_SAMPLING_TEMPLATE)
    back = io.read_llamafactory(p)
    assert back[1]["problem"] == "Solve the problem: What is {x}?"
    io.write_llamafactory(p, weighted_records(), template="Q: {problem}")
    back = io.read_llamafactory(p)
    assert back[0]["system"] is None and back[0]["problem"] == "Q: What is 1?"
    assert [m["role"] for m in back[0]["messages"]] == ["user", "assistant"]


def test_llamafactory_errors(tmp_path):
    p = tmp_path / "lf.json"
    with pytest.raises(ValueError, match=r"records\[0\]: missing field 'weight'"):
        io.write_llamafactory(p, [{"problem": "a", "solution": "b"}])
    with pytest.raises(ValueError, match=r"records\[0\]: field 'weight' is not finite"):
        io.write_llamafactory(p, [{"problem": "a", "solution": "b", "weight": float("nan")}])
    io.write_json(p, [{"messages": [{"role": "user", "content": "a"}], "weight": 1.0}])
    with pytest.raises(io.JSONLError, match=r"lf\.json:1: field 'messages' needs a user turn and a final assistant turn"):
        io.read_llamafactory(p)
    io.write_json(p, [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "weight": "x"}])
    with pytest.raises(io.JSONLError, match=r":1: field 'weight' must be a number"):
        io.read_llamafactory(p)
    io.write_json(p, [{"messages": []}])
    with pytest.raises(io.JSONLError, match=r":1: missing field 'weight'"):
        io.read_llamafactory(p)


def test_llamafactory_dataset_info():
    info = io.llamafactory_dataset_info("o1pruner-marco", "my_dataset/marco.json")
    entry = info["o1pruner-marco"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "weight": "weight"}
    assert entry["tags"]["system_tag"] == "system"
