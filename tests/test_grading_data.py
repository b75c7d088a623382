"""The grader on shared data (skipped when ../shared/data is absent):
Math-Verify's own test cases, every ground-truth answer of four benchmarks
against itself, a reformatted and a perturbed copy, and the model answers of
MATH test against a sympy-based PRM800K-style judge. Run with -s to see the
tables."""

import collections
import json
import pathlib
import re

import pytest

from o1pruner.kernels.grading import Verdict, compare, grade_many

from grading_harness import extract_side

HERE = pathlib.Path(__file__).resolve().parent
DIFFERENCES = json.loads((HERE / "data" / "grading_math_verify_differences.json").read_text())


def _triples(shared_data):
    path = shared_data / "graders" / "math_verify_triples.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def math_verify_agreement(rows):
    """Per test group: (agreeing, total); and the indices that disagree."""
    by_group = collections.OrderedDict()
    differ = []
    for i, r in enumerate(rows):
        kw = {"rtol": 10.0 ** (-r["precision"])} if "precision" in r else {}
        v = compare(extract_side(r["pred"]), extract_side(r["gold"]), **kw)
        ok = int(v == Verdict.EQUAL) == r["expected"]
        a, t = by_group.get(r["test"], (0, 0))
        by_group[r["test"]] = (a + ok, t + 1)
        if not ok:
            differ.append(i)
    return by_group, differ


def test_math_verify_triples(shared_data):
    rows = _triples(shared_data)
    by_group, differ = math_verify_agreement(rows)
    total = sum(a for a, _ in by_group.values())
    print(f"\nMath-Verify cases: {total}/{len(rows)} agree")
    for g, (a, t) in by_group.items():
        print(f"  {g:45s} {a:3d}/{t}")
    listed = sorted(int(k) for k in DIFFERENCES if not k.startswith("_"))
    unexpected = sorted(set(differ) - set(listed))
    fixed = sorted(set(listed) - set(differ))
    assert not unexpected, f"cases decided differently without a listed reason: {unexpected}"
    assert not fixed, f"listed differences that now agree (update the list): {fixed}"


# ---- benchmark ground truths ----------------------------------------------------

def reformat(gold):
    """The same answer written differently: \\dfrac, spaces, 1,000 separators, \\boxed."""
    s = gold.strip()
    inner = s[1:-1] if len(s) > 2 and s[0] == "$" and s[-1] == "$" else s
    if re.fullmatch(r"-?\d{4,}", inner):
        inner = ("-" if inner.startswith("-") else "") + "{:,}".format(int(inner.lstrip("-")))
    inner = inner.replace("\\frac", "\\dfrac")
    inner = re.sub(r"([+=])", r" \1 ", inner)
    return "\\boxed{ " + inner + " }"


def perturb(gold):
    """A different answer: the last digit of the first number changed (9 -> 8,
    else +1); a choice letter moved on; otherwise "+1" appended."""
    m = re.search(r"\d+", gold)
    if m:
        i = m.end() - 1
        d = int(gold[i])
        return gold[:i] + str(d + 1 if d < 9 else d - 1) + gold[i + 1:]
    mm = re.fullmatch(r"\$?(?:\\text\{)?\(?([A-Y])\)?\}?\$?", gold.strip())
    if mm:
        return chr(ord(mm.group(1)) + 1)
    return gold.strip() + "+1"


BENCHMARKS = {  # name: minimum share decided correctly in C
    "math_test": 0.94,
    "math_train_hard": 0.94,
    "gsm8k": 1.0,
    "gaokao": 0.94,
}


def benchmark_gold_checks(path):
    rows = json.loads(path.read_text())
    golds = [r["ground_truth_answer"] for r in rows]
    usable = [g for g in golds if isinstance(g, str) and g.strip()]
    preds, refs, want = [], [], []
    for g in usable:
        for p, w in ((g, True), (reformat(g), True), (perturb(g), False)):
            preds.append(p)
            refs.append(g)
            want.append(w)
    res = grade_many(preds, refs, details=True)
    n = len(usable)
    decided = res.verdict != Verdict.UNKNOWN
    right = decided & ((res.verdict == Verdict.EQUAL) == want)
    per_gold = right.reshape(n, 3).all(axis=1)
    wrong = [(preds[i], refs[i], Verdict(int(res.verdict[i])).name) for i in range(len(preds)) if decided[i] and not right[i]]
    unknown = [(preds[i], refs[i]) for i in range(len(preds)) if not decided[i]]
    return dict(rows=len(rows), golds=n, skipped=len(rows) - n, share=float(per_gold.mean()),
                wrong=wrong, unknown=unknown)


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_golds(shared_data, name):
    path = shared_data / "benchmarks" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    r = benchmark_gold_checks(path)
    print(f"\n{name}: {r['golds']} answers ({r['skipped']} empty skipped); all three checks decided "
          f"correctly in C for {100 * r['share']:.2f}%; unknown {len(r['unknown'])}; wrong {r['wrong']}")
    assert not r["wrong"], f"{name}: wrong decisions: {r['wrong'][:10]}"
    assert r["share"] >= BENCHMARKS[name], f"{name}: undecided: {r['unknown'][:20]}"


# ---- model answers of MATH test against a PRM800K-style sympy judge ---------------------

# Where we answer EQUAL and the PRM800K-style judge does not, on purpose.
JUDGE_DIFFERENCES = {
    "-2,1": "unordered list (PRM800K compares lists in order)",
    "x \\in [-2,7]": "x in [-2,7] is the interval [-2,7]",
    "3\\sqrt{13}": "'$3 \\cdot \\sqrt{13}$ units': the unit word is dropped",
    "11\\sqrt2": "Unicode square root",
    "\\left( 3, \\frac{\\pi}{2} \\right)": "Unicode pi",
    "864 \\mbox{ inches}^2": "units on the gold side are dropped",
    "2516_8": "base subscript left out by the prediction (same digits)",
    "600": "25 \\cdot 24 is 600 (PRM800K wants an integer written as an integer; strict_fractions=True agrees)",
    "\\frac{5}{13}": "the unreduced 65/169 (PRM800K refuses it; strict_fractions=True agrees)",
}
STRICT_AGREES = {"600", "\\frac{5}{13}"}


def test_math_test_model_answers_vs_prm800k_judge(shared_data):
    path = shared_data / "benchmarks" / "math_test.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    pytest.importorskip("sympy")
    from prm800k_judge import prm800k_grade

    rows = json.loads(path.read_text())
    preds = [r["pre_generated_answer"] for r in rows]
    golds = [r["ground_truth_answer"] for r in rows]
    judge = [prm800k_grade(p, g) for p, g in zip(preds, golds)]
    for strict in (False, True):
        res = grade_many(preds, golds, strict_fractions=strict, details=True)
        agree = sum(bool(a) == b for a, b in zip(res.correct, judge))
        print(f"\nMATH test model answers, strict_fractions={strict}: agree with the PRM800K-style judge on "
              f"{agree}/{len(rows)}; C left {res.n_unknown} UNKNOWN")
        for i, (p, g) in enumerate(zip(preds, golds)):
            if bool(res.correct[i]) != judge[i]:
                # every disagreement is one we chose: we say equal where the judge cannot
                assert res.correct[i] and not judge[i], (p, g)
                assert g in JUDGE_DIFFERENCES and not (strict and g in STRICT_AGREES), (p, g)
        assert agree >= 0.97 * len(rows)
