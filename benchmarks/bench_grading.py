"""Answer grading: per-answer time of o1pruner.grade_many (C, all threads)
against Math-Verify (sympy-based, pip install math-verify) on the same pairs,
correct and incorrect pairs separately, and the agreement between the two.

Pairs come from ../shared/data/benchmarks (or O1P_SHARED_DATA): every
ground-truth answer of MATH test, MATH train-hard, GSM8K and GaoKao against a
reformatted copy (should be equal) and a perturbed copy (should not), plus the
model answers of MATH test. Without the data a small built-in set is used;
without Math-Verify that peer is skipped.

    python benchmarks/bench_grading.py [--smoke]
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import common

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("O1P_SHARED_DATA", HERE.parent.parent / "shared" / "data"))


def reformat(gold: str) -> str:
    s = gold.strip()
    inner = s[1:-1] if len(s) > 2 and s[0] == "$" and s[-1] == "$" else s
    if re.fullmatch(r"-?\d{4,}", inner):
        inner = ("-" if inner.startswith("-") else "") + "{:,}".format(int(inner.lstrip("-")))
    inner = inner.replace("\\frac", "\\dfrac")
    inner = re.sub(r"([+=])", r" \1 ", inner)
    return "\\boxed{ " + inner + " }"


def perturb(gold: str) -> str:
    m = re.search(r"\d+", gold)
    if m:
        i = m.end() - 1
        d = int(gold[i])
        return gold[:i] + str(d + 1 if d < 9 else d - 1) + gold[i + 1:]
    return gold.strip() + "+1"


BUILTIN = ["\\frac{1}{2}", "3\\sqrt{2}", "(1,2)", "1000", "x^2+1", "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
           "[0,1)", "-\\frac{\\pi}{6}", "2,3", "\\text{(B)}", "137\\frac12", "0.25"]


def load_pairs(smoke: bool):
    """Returns (preds, golds, expected, source) lists."""
    preds, golds, expected, source = [], [], [], []
    names = ["math_test", "math_train_hard", "gsm8k", "gaokao"]
    found = False
    for name in names:
        path = DATA / "benchmarks" / f"{name}.json"
        if not path.is_file():
            continue
        found = True
        rows = json.loads(path.read_text())
        gs = [r["ground_truth_answer"] for r in rows if isinstance(r.get("ground_truth_answer"), str)
              and r["ground_truth_answer"].strip()]
        if smoke:
            gs = gs[:12]
        for g in gs:
            preds += [reformat(g), perturb(g)]
            golds += [g, g]
            expected += [True, False]
            source += [name, name]
        if name == "math_test":
            model = [(r["pre_generated_answer"], r["ground_truth_answer"]) for r in rows
                     if r.get("pre_generated_answer") not in (None, "None")]
            if smoke:
                model = model[:12]
            for p, g in model:
                preds.append(p)
                golds.append(g)
                expected.append(None)  # decided by the graders
                source.append("math_test_model")
    if not found:
        for g in BUILTIN:
            preds += [reformat(g), perturb(g)]
            golds += [g, g]
            expected += [True, False]
            source += ["builtin", "builtin"]
    return preds, golds, expected, source


def math_verify_fn():
    try:
        from math_verify import parse, verify
    except ImportError:
        return None

    def mv(pred: str, gold: str) -> bool:
        try:
            return bool(verify(parse("\\boxed{" + gold + "}"), parse("\\boxed{" + pred + "}")))
        except Exception:  # noqa: BLE001 - a crash is a "not equal" for the benchmark
            return False

    return mv


def main():
    ap = common.parser(__doc__.splitlines()[0])
    args = ap.parse_args()
    threads = common.setup_threads(args.threads)
    import o1pruner
    from o1pruner.grading import Verdict, grade_many

    preds, golds, expected, source = load_pairs(args.smoke)
    n = len(preds)
    res = grade_many(preds, golds, details=True)
    ours = res.correct
    # correctness first: constructed pairs must come out as constructed
    exp = np.array([e if e is not None else bool(o) for e, o in zip(expected, ours)])
    built = np.array([e is not None for e in expected])
    wrong = int(((ours != exp) & built & (res.verdict != Verdict.UNKNOWN)).sum())
    if wrong:
        print(f"error: {wrong} constructed pairs decided wrongly", file=sys.stderr)
        return 1
    # "correct" pairs: should be equal (by construction, or judged equal for model answers)
    correct_mask = exp
    groups = {"correct": np.flatnonzero(correct_mask), "incorrect": np.flatnonzero(~correct_mask)}

    repeat = 1 if args.smoke else args.repeat
    rows, payload = [], {"pairs": n, "threads": threads, "unknown_in_c": int(res.n_unknown), "groups": {}}
    mv = math_verify_fn()
    mv_out = None
    if mv is not None:
        mv_out = np.zeros(n, dtype=bool)
        mv_time = np.zeros(n)
        for i in range(n):
            t0 = time.perf_counter()
            mv_out[i] = mv(preds[i], golds[i])
            mv_time[i] = time.perf_counter() - t0
    for gname, idx in groups.items():
        if idx.size == 0:
            continue
        p = [preds[i] for i in idx]
        g = [golds[i] for i in idx]
        # batched, on 1 thread and on all threads (on a loaded machine two
        # threads can lose to one: report both, take the better for the ratio)
        per_thread = {}
        for nt in sorted({1, threads}):
            o1pruner.set_num_threads(nt)
            per_thread[nt] = common.median_time(lambda: grade_many(p, g), repeat=repeat) / idx.size
        o1pruner.set_num_threads(threads)
        ours_per = min(per_thread.values())
        # single-pair calls (Python overhead included), median over pairs
        single = []
        for i in idx[: min(idx.size, 300)]:
            t0 = time.perf_counter()
            grade_many([preds[i]], [golds[i]])
            single.append(time.perf_counter() - t0)
        entry = {"n": int(idx.size), "ours_per_answer_s": ours_per, "ours_single_call_median_s": statistics.median(single),
                 "ours_per_answer_s_by_threads": {str(k): v for k, v in per_thread.items()}}
        row = [gname, idx.size, " / ".join(f"{per_thread[k] * 1e6:.2f}" for k in sorted(per_thread)),
               f"{statistics.median(single) * 1e6:.1f}"]
        if mv_out is not None:
            mv_med = float(np.median(mv_time[idx]))
            mv_mean = float(np.mean(mv_time[idx]))
            agree = float(np.mean(mv_out[idx] == ours[idx]))
            entry.update(mathverify_median_s=mv_med, mathverify_mean_s=mv_mean, speedup_median=mv_med / ours_per,
                         speedup_mean=mv_mean / ours_per, agreement=agree)
            row += [f"{mv_med * 1e6:.0f}", f"{mv_med / ours_per:.0f}x", f"{mv_mean / ours_per:.0f}x", f"{100 * agree:.1f}%"]
        else:
            row += ["-", "-", "-", "-"]
        payload["groups"][gname] = entry
        rows.append(row)
    if mv_out is not None:
        payload["agreement_all"] = float(np.mean(mv_out == ours))
        by_source = {}
        for s in sorted(set(source)):
            m = np.array([x == s for x in source])
            by_source[s] = {"n": int(m.sum()), "agreement": float(np.mean(mv_out[m] == ours[m]))}
        payload["agreement_by_source"] = by_source
        dis = [(preds[i], golds[i], bool(ours[i]), bool(mv_out[i])) for i in range(n) if mv_out[i] != ours[i]]
        payload["disagreements"] = dis[:200]
    else:
        print("math-verify not installed: its column is skipped (pip install math-verify)")
    header = ["pairs", "n", "ours us/answer, batch (" + " / ".join(f"{k} thr" for k in sorted({1, threads})) + ")",
              "ours us (1 call)", "Math-Verify us (median)",
              "speedup (median)", "speedup (mean)", "agreement"]
    print(common.table(rows, header))
    if mv_out is not None:
        print(f"agreement with Math-Verify over all {n} pairs: {100 * payload['agreement_all']:.1f}%")
        for s, v in payload["agreement_by_source"].items():
            print(f"  {s:18s} {v['n']:5d} pairs  {100 * v['agreement']:.1f}%")
    path = common.write_result("grading", payload, args.out, smoke=args.smoke)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
