"""Built-in arithmetic task: generator, splits, long/concise solutions, the
character tokenizer, grading through the package grader, bad input."""

import numpy as np
import pytest

from o1pruner.kernels.grading import grade_responses
from o1pruner.tasks import (
    CHECK_PROBS,
    LEVELS,
    PROMPT_TEMPLATE,
    ArithmeticTask,
    CharTokenizer,
    Level,
    Problem,
    format_prompt,
    parse_solution,
)
from o1pruner.tasks.arithmetic import ANSWER_PREFIX, MAX_VALUE


@pytest.fixture(scope="module")
def task():
    return ArithmeticTask()


def evaluate(expr):
    # independent of Problem.answer: Python's own arithmetic on the text
    assert set(expr) <= set("0123456789+-")
    return eval(expr)  # noqa: S307 - digits and +/- only, checked above


# ---- problems ---------------------------------------------------------------

def test_determinism(task):
    a = task.problems(50, seed=7)
    b = task.problems(50, seed=7)
    c = task.problems(50, seed=8)
    assert a == b
    assert [p.expr for p in a] != [p.expr for p in c]
    sa = task.sft_examples(a, seed=3)
    assert sa == task.sft_examples(b, seed=3)
    assert sa != task.sft_examples(a, seed=4)


def test_levels_shape_and_values(task):
    n = 400
    probs = task.problems(n * task.n_levels, seed=1)
    counts = np.bincount([p.level for p in probs], minlength=task.n_levels + 1)[1:]
    assert np.all(counts == n)
    for p in probs:
        lv = LEVELS[p.level - 1]
        assert len(p.operands) == lv.n_operands and len(p.ops) == lv.n_operands - 1
        first_top = lv.first_max_digits or lv.max_digits
        assert lv.min_digits <= len(str(p.operands[0])) <= first_top
        for x in p.operands[1:]:
            assert lv.min_digits <= len(str(x)) <= lv.max_digits and x >= 1
        assert all(0 <= t <= MAX_VALUE for t in p.totals) and max(p.operands) <= MAX_VALUE
        assert p.answer == evaluate(p.expr)
        assert p.prompt == PROMPT_TEMPLATE.format(expr=p.expr) == format_prompt(p) == format_prompt(p.expr)
        # the chain writes the running totals
        chain_vals = [int(s.lstrip("+-").split("+")[0].split("-")[0]) for s in p.chain().split("=")[1:]]
        assert tuple(chain_vals) == p.totals
    # difficulty grows: more operands and longer chains at higher levels
    mean_len = [np.mean([len(p.chain()) for p in probs if p.level == lv]) for lv in range(1, 6)]
    assert np.all(np.diff(mean_len) > 0)


def test_levels_argument(task):
    probs = task.problems(30, seed=0, levels=[2, 5])
    assert [p.level for p in probs] == [2, 5] * 15


def test_unique_within_call(task):
    probs = task.problems(500, seed=0, levels=[1])
    assert len({p.expr for p in probs}) == 500
    dup = task.problems(3000, seed=0, levels=[1], unique=False)
    assert len({p.expr for p in dup}) < 3000  # level 1 is small enough to repeat


def test_splits_disjoint(task):
    train = set()
    held = set()
    for seed in range(3):
        train |= {p.expr for p in task.problems(600, split="train", seed=seed)}
        held |= {p.expr for p in task.problems(300, split="heldout", seed=seed)}
    assert train and held and not (train & held)
    assert all(task.split_of(e) == "train" for e in train)
    assert all(task.split_of(e) == "heldout" for e in held)
    # the split is a property of the expression, not of the task object
    other = ArithmeticTask(check_probs=(0.5, 0.5))
    assert all(other.split_of(e) == "heldout" for e in held)
    # about heldout_fraction of random expressions are held out
    rng = np.random.default_rng(0)
    frac = np.mean([task.split_of(task._random_problem(5, rng)) == "heldout" for _ in range(4000)])
    assert abs(frac - task.heldout_fraction) < 0.03


# ---- solutions --------------------------------------------------------------

def check_solution_text(p, sol):
    lines = sol.text.split("\n")
    assert lines[0] == f"{p.expr}={sol.guess}?"
    assert lines[-1] == f"{ANSWER_PREFIX}\\boxed{{{sol.answer}}}"
    assert len(lines) == sol.n_checks + 2
    current = sol.guess
    for line in lines[1:-1]:
        verdict = "ok" if current == p.answer else "no"
        assert line == f"check {p.chain()} {verdict}"
        current = p.answer
    assert sol.answer == current
    info = parse_solution(sol.text)
    assert info["well_formed"] and info["guess"] == sol.guess and info["n_checks"] == sol.n_checks
    assert info["boxed"] == str(sol.answer)


def test_long_and_concise_solutions(task):
    probs = task.problems(1000, seed=2)
    rng = np.random.default_rng(5)
    longs = [task.long_solution(p, rng) for p in probs]
    concise = [task.concise_solution(p, rng) for p in probs]
    golds = [str(p.answer) for p in probs]
    for p, s in zip(probs, longs):
        check_solution_text(p, s)
        assert s.guess_correct == (s.guess == p.answer)
        # the rule: a long solution is wrong exactly when a wrong guess is left unchecked
        assert s.correct == (s.guess_correct or s.n_checks >= 1)
        assert s.correct == (s.answer == p.answer)
    for p, s in zip(probs, concise):
        check_solution_text(p, s)
        assert s.correct
        assert s.n_checks == (0 if s.guess_correct else 1)
    # the package grader agrees with the recorded correctness
    np.testing.assert_array_equal(grade_responses([s.text for s in longs], golds), [s.correct for s in longs])
    np.testing.assert_array_equal(task.grade([s.text for s in longs], probs), [s.correct for s in longs])
    assert task.grade([s.text for s in concise], probs).all()
    # both kinds of solutions occur: slips corrected by a pass, and uncorrected ones
    assert any(not s.guess_correct and s.n_checks >= 1 for s in longs)
    assert any(not s.correct for s in longs)
    # concise is never longer than long for the same guess
    assert np.mean([len(s.text) for s in concise]) < np.mean([len(s.text) for s in longs])


def test_render_rejects_negative_checks(task):
    p = task.problems(1, seed=0)[0]
    with pytest.raises(ValueError, match="n_checks"):
        task.render(p, p.answer, -1)


def test_check_counts_independent_of_difficulty(task):
    # chi-square test of homogeneity of k over the levels (fixed seed, so the
    # test is deterministic); and the law matches CHECK_PROBS
    n = 3000
    probs = task.problems(n * task.n_levels, seed=11, unique=False)
    rng = np.random.default_rng(12)
    table = np.zeros((task.n_levels, len(CHECK_PROBS)))
    guess_wrong = np.zeros(task.n_levels)
    for p in probs:
        s = task.long_solution(p, rng)
        table[p.level - 1, s.n_checks] += 1
        guess_wrong[p.level - 1] += not s.guess_correct
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    assert chi2 < 32.9  # df = 4*3 = 12, 0.999 quantile
    freq = table.sum(0) / table.sum()
    np.testing.assert_allclose(freq, CHECK_PROBS, atol=0.01)
    # while the guess error rate grows with the level, as configured
    rate = guess_wrong / n
    np.testing.assert_allclose(rate, [lv.guess_error for lv in LEVELS], atol=0.045)  # ~5 sigma
    assert np.all(np.diff(rate) > 0)


def test_lengths_fit_context(task):
    tok = CharTokenizer()
    probs = task.problems(500, seed=3, levels=[task.n_levels])
    longest = max(len(tok.encode(p.prompt + task.render(p, p.answer + 1, 3).text)) for p in probs) + 2
    assert longest <= 256


def test_sft_examples_styles(task):
    probs = task.problems(40, seed=0)
    ex = task.sft_examples(probs, seed=0, style="concise")
    assert [e[0] for e in ex] == [p.prompt for p in probs]
    assert task.grade([e[1] for e in ex], probs).all()
    with pytest.raises(ValueError, match="style"):
        task.sft_examples(probs, style="short")


def test_grade_custom_grader(task):
    probs = task.problems(3, seed=0)
    seen = {}

    def grader(responses, golds):
        seen["golds"] = golds
        return [True, False, True]

    out = task.grade(["a", "b", "c"], probs, grader=grader)
    assert out.dtype == bool and out.tolist() == [True, False, True]
    assert seen["golds"] == [str(p.answer) for p in probs]
    with pytest.raises(ValueError, match="responses"):
        task.grade(["a"], probs)
    with pytest.raises(TypeError, match="responses"):
        task.grade("abc", probs)


def test_parse_solution_malformed():
    info = parse_solution("hello\n\\boxed{3}")
    assert not info["well_formed"] and info["guess"] is None and info["boxed"] is None
    info = parse_solution("1+2=3?\ncheck 1+2=3 ok")
    assert not info["well_formed"] and info["n_checks"] == 1 and info["boxed"] is None


# ---- bad input ----------------------------------------------------------------

def test_bad_problem_arguments(task):
    with pytest.raises(ValueError, match="n"):
        task.problems(-1)
    with pytest.raises(ValueError, match="n"):
        task.problems(2.5)
    with pytest.raises(ValueError, match="split"):
        task.problems(3, split="test")
    with pytest.raises(ValueError, match="levels"):
        task.problems(3, levels=[0])
    with pytest.raises(ValueError, match="levels"):
        task.problems(3, levels=[])
    tiny = ArithmeticTask(levels=[Level(2, 1, 1, 0.0)])  # about 120 expressions
    with pytest.raises(ValueError, match="too few distinct"):
        tiny.problems(200)
    assert task.problems(0) == []


def test_bad_task_config():
    with pytest.raises(ValueError, match="check_probs"):
        ArithmeticTask(check_probs=(0.5, 0.6))
    with pytest.raises(ValueError, match="check_probs"):
        ArithmeticTask(check_probs=(1.5, -0.5))
    with pytest.raises(ValueError, match="heldout_fraction"):
        ArithmeticTask(heldout_fraction=1.0)
    with pytest.raises(ValueError, match="levels"):
        ArithmeticTask(levels=[])
    with pytest.raises(TypeError, match="levels"):
        ArithmeticTask(levels=[(2, 1, 2, 0.1)])
    with pytest.raises(ValueError, match="levels"):
        ArithmeticTask(levels=[Level(2, 3, 3, 0.1)])  # 3-digit operands > 99
    with pytest.raises(ValueError, match="max_value"):
        ArithmeticTask(max_value=5)
    with pytest.raises(ValueError, match="n_operands"):
        Level(1, 1, 2, 0.1)
    with pytest.raises(ValueError, match="digits"):
        Level(2, 2, 4, 0.1)
    with pytest.raises(ValueError, match="guess_error"):
        Level(2, 1, 2, 1.5)
    with pytest.raises(ValueError, match="first_max_digits"):
        Level(2, 2, 2, 0.1, first_max_digits=1)


def test_custom_levels():
    t = ArithmeticTask(levels=[Level(2, 3, 3, 0.0), Level(6, 1, 1, 1.0)], check_probs=(0, 1), max_value=999)
    probs = t.problems(20, seed=0)
    rng = np.random.default_rng(0)
    for p in probs:
        s = t.long_solution(p, rng)
        assert s.n_checks == 1 and s.correct
        assert s.guess_correct == (p.level == 1)
    assert isinstance(probs[0], Problem)


# ---- tokenizer ----------------------------------------------------------------

def test_tokenizer_round_trip(task):
    tok = CharTokenizer()
    rng = np.random.default_rng(0)
    for p in task.problems(200, seed=4):
        text = p.prompt + task.long_solution(p, rng).text
        ids = tok.encode(text)
        assert len(ids) == len(text)
        assert all(3 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
        assert tok(text) == {"input_ids": ids}
    every = "".join(s for s in tok.get_vocab() if len(s) == 1)
    assert tok.decode(tok.encode(every)) == every
    assert len(set(tok.encode(every))) == len(every) == tok.vocab_size - 3


def test_tokenizer_special_tokens():
    tok = CharTokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert len(tok) == tok.vocab_size
    ids = tok.encode("7+1", add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.decode(ids) == "7+1"
    assert tok.decode(ids, skip_special_tokens=False) == "<bos>7+1<eos>"
    assert tok.decode(np.array(ids)) == "7+1"
    assert tok(["ab", "c"]) == {"input_ids": [tok.encode("ab"), tok.encode("c")]}
    assert tok("ab", add_special_tokens=True)["input_ids"][0] == tok.bos_token_id
    assert tok.encode("") == [] and tok.decode([]) == ""
    vocab = tok.get_vocab()
    assert vocab["<eos>"] == 2 and len(vocab) == tok.vocab_size


def test_tokenizer_bad_input():
    tok = CharTokenizer()
    with pytest.raises(ValueError, match="'é'.*'€'|'€'.*'é'"):
        tok.encode("1+é=€")
    with pytest.raises(ValueError, match="text.*'\\\\t'"):
        tok.encode("a\tb")
    with pytest.raises(TypeError, match="text"):
        tok.encode(12)
    with pytest.raises(TypeError, match="text"):
        tok(3)
    with pytest.raises(ValueError, match="ids"):
        tok.decode([5, tok.vocab_size])
    with pytest.raises(ValueError, match="ids"):
        tok.decode([-1])
