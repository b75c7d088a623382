"""The bounded sympy fallback: only UNKNOWN items, hard per-item timeout that
is not signal-based (works from threads), stuck workers replaced, counts."""

import threading
import time

import pytest

from o1pruner.kernels.grading import Verdict, compare, grade_many, grade_responses
from o1pruner.kernels import _sympy_fallback as sf
from o1pruner.kernels.grading import SympyFallback

pytest.importorskip("sympy")

# C cannot decide these (cancellation makes double precision unsure); sympy can.
EQUAL_BY_SYMPY = (r"\frac{1}{\sqrt{10^{8}+1}-10^{4}}", r"\sqrt{10^{8}+1}+10^{4}")
UNEQUAL_BY_SYMPY = (r"\sqrt{10^{8}+1}", "10^4")
SLOW = ("9^{9^{9}}", "1")  # sympy computes a 370-million-digit integer


def test_cases_are_unknown_in_c():
    assert compare(*EQUAL_BY_SYMPY) == Verdict.UNKNOWN
    assert compare(*UNEQUAL_BY_SYMPY) == Verdict.UNKNOWN


def test_fallback_decides_only_unknown():
    preds = [EQUAL_BY_SYMPY[0], UNEQUAL_BY_SYMPY[0], "1", "2"]
    golds = [EQUAL_BY_SYMPY[1], UNEQUAL_BY_SYMPY[1], "1", "3"]
    plain = grade_many(preds, golds)
    assert plain.tolist() == [False, False, True, False]
    res = grade_many(preds, golds, fallback="sympy", timeout=20, details=True)
    assert res.correct.tolist() == [True, False, True, False]
    assert res.verdict.tolist() == [Verdict.UNKNOWN, Verdict.UNKNOWN, Verdict.EQUAL, Verdict.NOT_EQUAL]
    assert (res.n_unknown, res.n_fallback_equal, res.n_timeout) == (2, 1, 0)


def test_timeout_kills_and_replaces_worker_from_a_thread():
    out = {}

    def work():
        with SympyFallback(timeout=1.0, workers=1) as fb:
            t0 = time.monotonic()
            out["first"] = fb.check([SLOW, ("x/2", r"\frac{x}{2}")])
            out["elapsed"] = time.monotonic() - t0
            out["again"] = fb.check([("x+1", "1+x"), ("x", "y")])
            out["counts"] = (fb.n_checked, fb.n_timeout)

    t = threading.Thread(target=work)
    t.start()
    t.join(120)
    assert not t.is_alive()
    assert out["first"] == [SympyFallback.TIMEOUT, SympyFallback.EQUAL]
    assert out["again"] == [SympyFallback.EQUAL, SympyFallback.NOT_EQUAL]
    assert out["counts"] == (4, 1)
    assert out["elapsed"] < 60


def test_timed_out_item_is_not_correct_and_counted():
    res = grade_responses(
        [rf"\boxed{{{SLOW[0]} + \sqrt{{10^{{8}}+1}}}}", r"\boxed{1}"],
        [r"\sqrt{10^{8}+1}", "1"],
        fallback="sympy",
        timeout=1.0,
        details=True,
    )
    assert res.correct.tolist() == [False, True]
    assert res.n_timeout + res.n_fallback_error == 1


def test_unparseable_and_too_long_are_errors():
    with SympyFallback(timeout=10) as fb:
        r = fb.check([(r"\sum", "1"), ("1" * (sf.MAX_ITEM_CHARS + 1), "1")])
    assert r == [SympyFallback.ERROR, SympyFallback.ERROR]


def test_closed_pool_and_bad_arguments():
    fb = SympyFallback(timeout=1)
    fb.close()
    with pytest.raises(RuntimeError, match="closed"):
        fb.check([("1", "1")])
    with pytest.raises(ValueError, match="timeout"):
        SympyFallback(timeout=0)
    with pytest.raises(ValueError, match="fallback"):
        grade_many(["1"], ["1"], fallback="maple")
    with pytest.raises(ValueError, match="timeout"):
        grade_many(["1"], ["1"], fallback="sympy", timeout=-1)


def test_without_sympy_unknown_stays_false(monkeypatch):
    monkeypatch.setattr(sf, "sympy_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="sympy"):
        out = grade_many([EQUAL_BY_SYMPY[0]], [EQUAL_BY_SYMPY[1]], fallback="sympy")
    assert out.tolist() == [False]


def test_worker_that_cannot_start_does_not_hang(monkeypatch):
    monkeypatch.setattr(sf, "_WORKER", "/nonexistent/worker.py")
    with SympyFallback(timeout=1, workers=1, start_timeout=5) as fb:
        t0 = time.monotonic()
        r = fb.check([("1", "1"), ("2", "2")])
    assert r == [SympyFallback.ERROR, SympyFallback.ERROR]
    assert time.monotonic() - t0 < 60
