"""The Ray Data recipe on a local Ray instance (skipped without ray)."""

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("pandas")

import o1pruner  # noqa: E402
from o1pruner.integrations.ray import build_dataset_ray  # noqa: E402

from helpers import assert_close  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    import sys

    import ray.cloudpickle

    # the workers cannot import this test module: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def samples(rng, n_problems=40):
    recs = []
    for p in range(n_problems):
        K = int(rng.integers(1, 7))
        for j in range(K):
            ok = bool(rng.random() < 0.6)
            recs.append({"problem_id": p, "sample_index": j, "problem": f"q{p}", "ground_truth_answer": str(p),
                         "solution": f"... \\boxed{{{p if ok else -1}}}", "length": int(rng.integers(1, 300))})
    return recs


def grader(texts, golds):
    return [t.endswith("{%s}" % g) for t, g in zip(texts, golds)]


def key(r):
    return (r["problem_id"], r["sample_index"])


@pytest.mark.slow
def test_ray_recipe(local_ray, rng):
    import ray.data

    recs = samples(rng)
    # keep all: the same records and values as build_dataset
    want = sorted(o1pruner.build_dataset(recs, samples_per_problem=None, grader=grader).records, key=key)
    got = sorted(build_dataset_ray(ray.data.from_items(recs), samples_per_problem=None, grader=grader).take_all(), key=key)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        for f in ("length", "correct", "ref_mean_length", "ref_accuracy", "n_samples", "reward"):
            assert a[f] == b[f], (f, a[f], b[f])
        assert_close(a["weight"], b["weight"], rtol=1e-12, atol=1e-12)
    # m = 2 per problem: per-problem seeded selection, independent of the partitioning
    one = build_dataset_ray(ray.data.from_items(recs).repartition(1), grader=grader).take_all()
    many = build_dataset_ray(ray.data.from_items(recs).repartition(7), grader=grader).take_all()
    assert sorted(map(key, one)) == sorted(map(key, many))
    sizes = {}
    for r in recs:
        sizes[r["problem_id"]] = sizes.get(r["problem_id"], 0) + 1
    kept = {}
    for r in one:
        kept[r["problem_id"]] = kept.get(r["problem_id"], 0) + 1
    assert kept == {p: min(2, n) for p, n in sizes.items()}
    full = {key(r): r for r in want}
    w = np.array([r["weight"] for r in one])
    for r in one:
        assert r["reward"] == full[key(r)]["reward"] and r["ref_mean_length"] == full[key(r)]["ref_mean_length"]
    clipped = np.clip([r["reward"] for r in one], -2, 4)
    assert_close(w, (clipped - clipped.mean()) / clipped.std(), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="normalize"):
        build_dataset_ray(ray.data.from_items(recs), normalize="batch")
