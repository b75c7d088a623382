"""Leak loops over every C entry point: calls alternate between one that
returns and one that raises; RSS, Python's allocated blocks and the inputs'
reference counts stay flat. The suite runs 2,000 calls per entry point;
benchmarks/leak_check.py runs 10^5 (the README's figures)."""

import pytest

import o1pruner

from leak_cases import build_cases, run_loop

CASES = build_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_leak(name):
    if o1pruner.config()["variant"] == "sanitize":
        pytest.skip("RSS is meaningless under AddressSanitizer (its quarantine grows by design)")
    ok, bad, inputs = CASES[name]
    r = run_loop(ok, bad, inputs, n=2000)
    # 2,000 calls: a leak of one 16-byte object per call would show as
    # 1,000+ blocks; RSS noise of the allocator stays below 1 MiB
    assert r["refcount_drift"] == 0, r
    assert abs(r["blocks_growth"]) < 200, r
    assert r["rss_growth"] < 1 << 20, r
