"""build_dataset_streaming: the same training set as build_dataset from files
of every supported format, any chunk size, bounded state; errors name the
file and line."""

import json
import os

import numpy as np
import pytest

import o1pruner
import o1pruner.io as io
from o1pruner.pipeline.streaming import _iter_json_array, build_dataset_streaming, iter_samples

from helpers import assert_close


def make_samples(rng, n_problems=120, interleave=True, with_ids=True):
    recs = []
    for p in range(n_problems):
        K = int(rng.integers(1, 9))
        for j in range(K):
            r = {"problem": f"what is {p}?", "ground_truth_answer": str(p),
                 "solution": "think " * int(rng.integers(1, 30)) + f"\\boxed{{{p if rng.random() < 0.6 else -1}}}",
                 "length": int(rng.integers(1, 400)), "correct": bool(rng.random() < 0.6)}
            if with_ids:
                r["problem_id"] = f"p{p}"
            recs.append(r)
    if interleave:
        recs = [recs[i] for i in rng.permutation(len(recs))]
    return recs


def by_key(records):
    return sorted(records, key=lambda r: (str(r["problem_id"]), r["sample_index"]))


def assert_same_records(got, want):
    got, want = by_key(got), by_key(want)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert set(a) == set(b), set(a) ^ set(b)
        for f in b:
            if f in ("reward", "weight"):
                assert_close(a[f], b[f], rtol=1e-12, atol=1e-12, what=f)
            else:
                assert a[f] == b[f], (f, a[f], b[f])


OPTIONS = [
    dict(),
    dict(samples_per_problem=None),
    dict(normalize="group"),
    dict(normalize=None, clip=None, lam=5.0),
    dict(selection="first", samples_per_problem=3, seed=1),
]


@pytest.mark.parametrize("kw", OPTIONS)
def test_same_as_build_dataset(tmp_path, rng, kw):
    src = tmp_path / "s.jsonl"
    io.write_jsonl(src, make_samples(rng))
    want = o1pruner.build_dataset(str(src), **kw)
    res = build_dataset_streaming(src, tmp_path / "o.jsonl", chunk_size=53, **kw)
    assert_same_records(list(io.read_jsonl(res.out)), want.records)
    assert res.n_kept == len(want) and res.n_problems == len(want.problems)
    assert res.n_samples == sum(p["n_samples"] for p in want.problems)
    assert_close(res.weight_mean, want.weight_mean, rtol=1e-12, atol=1e-12)
    assert_close(res.weight_std, want.weight_std, rtol=1e-12, atol=1e-12)
    assert res.problems == want.problems


def test_chunk_size_does_not_matter(tmp_path, rng):
    src = tmp_path / "s.jsonl"
    io.write_jsonl(src, make_samples(rng, 40))
    outs = []
    for cs in (1, 7, 10_000):
        res = build_dataset_streaming(src, tmp_path / f"o{cs}.jsonl", chunk_size=cs)
        outs.append(list(io.read_jsonl(res.out)))
    for other in outs[1:]:
        assert len(other) == len(outs[0])
        for a, b in zip(outs[0], other):  # same records; sums differ only in rounding
            assert {k: v for k, v in a.items() if k != "weight"} == {k: v for k, v in b.items() if k != "weight"}
            assert a["weight"] == pytest.approx(b["weight"], abs=1e-12)


def test_groups_without_ids_and_public_json(tmp_path, rng):
    recs = make_samples(rng, 30, interleave=False, with_ids=False)
    src = tmp_path / "s.jsonl"
    io.write_jsonl(src, recs)
    want = o1pruner.build_dataset(str(src))
    res = build_dataset_streaming(src, tmp_path / "o.jsonl")
    assert_same_records(list(io.read_jsonl(res.out)), want.records)
    # the public code's JSON array, K consecutive samples per problem
    K = 4
    pub = [dict(r, answer="x") for r in make_samples(rng, 25, interleave=False, with_ids=False)]
    pub = [r for p in range(25) for r in ([x for x in pub if x["problem"] == f"what is {p}?"] * K)[:K]]
    path = tmp_path / "public.json"
    io.write_json(path, pub, indent=1)
    want = o1pruner.build_dataset(str(path), k=K)
    res = build_dataset_streaming(path, tmp_path / "o2.jsonl", k=K)
    assert_same_records(list(io.read_jsonl(res.out)), want.records)
    with pytest.raises(ValueError, match="k: required"):
        build_dataset_streaming(path, tmp_path / "o3.jsonl")
    with pytest.raises(io.JSONLError, match="field 'problem' differs"):
        build_dataset_streaming(path, tmp_path / "o3.jsonl", k=K + 1)


def test_json_array_reader_refills(tmp_path):
    items = [{"a": i, "s": "x" * (i % 13), "nested": [1, {"b": "]"}]} for i in range(50)]
    p = tmp_path / "a.json"
    p.write_text(json.dumps(items, indent=2))
    assert [x for _, x in _iter_json_array(str(p), bufsize=7)] == items
    p.write_text(json.dumps(items)[:-40])
    with pytest.raises(io.JSONLError):
        list(_iter_json_array(str(p), bufsize=16))
    p.write_text('{"not": "an array"}')
    with pytest.raises(io.JSONLError, match="expected a JSON array"):
        list(_iter_json_array(str(p)))


def test_vllm_file(tmp_path, rng):
    lines = []
    for p in range(20):
        outs = [{"text": "t " * int(rng.integers(1, 9)) + f"\\boxed{{{p}}}", "token_ids": list(range(int(rng.integers(1, 50))))}
                for _ in range(int(rng.integers(1, 6)))]
        lines.append({"prompt": f"Q{p}", "problem": f"Q{p}", "ground_truth_answer": str(p), "outputs": outs})
    src = tmp_path / "v.jsonl"
    io.write_jsonl(src, lines)
    grader = lambda t, g: [("{%s}" % b) in a for a, b in zip(t, g)]  # noqa: E731
    want = o1pruner.build_dataset(str(src), grader=grader)
    res = build_dataset_streaming(src, tmp_path / "o.jsonl", grader=grader, chunk_size=5)
    got = list(io.read_jsonl(res.out))
    key = lambda r: (r["problem"], r["sample_index"])  # noqa: E731
    for a, b in zip(sorted(got, key=key), sorted(want.records, key=key)):
        assert a["length"] == b["length"] and a["correct"] == b["correct"]
        assert a["weight"] == pytest.approx(b["weight"], abs=1e-12)
    assert len(got) == len(want)
    n0 = len(lines[0]["outputs"])
    assert [w for w, _ in iter_samples(src)][:n0] == [f"{src}:1:{j}" for j in range(n0)]


def test_grading_and_llamafactory_output(tmp_path, rng):
    recs = make_samples(rng, 50)
    for r in recs:
        del r["correct"]
    src = tmp_path / "s.jsonl"
    io.write_jsonl(src, recs)
    calls = []

    def grader(texts, golds):
        calls.append(len(texts))
        return [t.endswith("{%s}" % g) for t, g in zip(texts, golds)]

    want = o1pruner.build_dataset(str(src), grader=grader)
    calls.clear()
    res = build_dataset_streaming(src, tmp_path / "o.jsonl", grader=grader, chunk_size=64)
    assert sum(calls) == len(recs)  # every sample graded exactly once
    assert_same_records(list(io.read_jsonl(res.out)), want.records)
    lf = build_dataset_streaming(src, tmp_path / "lf.jsonl", grader=grader, out_format="llamafactory",
                                 template=o1pruner.PromptTemplate("Solve: {problem}"))
    got = io.read_llamafactory(lf.out)
    io.write_llamafactory(tmp_path / "ref.jsonl", want.records, template=o1pruner.PromptTemplate("Solve: {problem}"))
    ref_items = io.read_llamafactory(tmp_path / "ref.jsonl")
    canon = lambda items: sorted((json.dumps(r["messages"]), round(r["weight"], 9)) for r in items)  # noqa: E731
    assert canon(got) == canon(ref_items)


def test_errors_name_file_and_line(tmp_path, rng):
    recs = make_samples(rng, 10, interleave=False)
    del recs[7]["length"]
    src = tmp_path / "s.jsonl"
    io.write_jsonl(src, recs)
    with pytest.raises(ValueError, match=rf"{src}:8: missing field 'length'"):
        build_dataset_streaming(src, tmp_path / "o.jsonl", chunk_size=3)
    assert not (tmp_path / "o.jsonl").exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".o1p-stream-")]  # temp file removed
    recs = make_samples(rng, 10, interleave=False)
    recs[4]["length"] = -3
    io.write_jsonl(src, recs)
    with pytest.raises(io.JSONLError, match=rf"{src}:5: field 'length'"):
        build_dataset_streaming(src, tmp_path / "o.jsonl")
    recs[4]["length"] = 3
    io.write_jsonl(src, recs)
    with open(src, "a") as f:
        f.write("{not json\n")
    with pytest.raises(io.JSONLError, match="not valid JSON"):
        build_dataset_streaming(src, tmp_path / "o.jsonl")
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty"):
        build_dataset_streaming(tmp_path / "e.jsonl", tmp_path / "o.jsonl")


@pytest.mark.parametrize("kw,name", [
    (dict(lam=-1), "lam"), (dict(samples_per_problem=0), "samples_per_problem"), (dict(selection="best"), "selection"),
    (dict(normalize="batch"), "normalize"), (dict(out_format="csv"), "out_format"), (dict(chunk_size=0), "chunk_size"),
    (dict(clip=(3, 1)), "clip"),
])
def test_bad_options(tmp_path, rng, kw, name):
    src = tmp_path / "s.jsonl"
    io.write_jsonl(src, make_samples(rng, 3))
    with pytest.raises(ValueError, match=name):
        build_dataset_streaming(src, tmp_path / "o.jsonl", **kw)
