"""The addition task: problems, splits, the answer rule, solutions, parsing,
and the forced-checks decoding of its report."""

import numpy as np
import pytest

from o1pruner.tasks.addition import (SPLITS, SUM_CHECK_PROBS, SUM_LEVELS, AdditionTask, SumLevel, SumProblem,
                                     answer_rule, check_order, parse_sum_solution)
from o1pruner.tasks.arithmetic import CharTokenizer


def test_levels_and_problems_are_seeded_and_graded():
    task = AdditionTask()
    a = task.problems(50, split="train", seed=3)
    b = task.problems(50, split="train", seed=3)
    assert [p.expr for p in a] == [p.expr for p in b]
    assert [p.expr for p in task.problems(50, split="train", seed=4)] != [p.expr for p in a]
    assert [p.level for p in a[:5]] == [1, 2, 3, 4, 5]
    for p in a:
        lv = SUM_LEVELS[p.level - 1]
        assert len(p.numbers) == lv.n_numbers
        assert sorted(len(str(x)) for x in p.numbers) == sorted(lv.digits)
        assert p.answer == sum(p.numbers) and p.prompt == f"Q:{p.expr}\n"
    assert len({p.expr for p in a}) == 50


def test_splits_are_disjoint_and_sized():
    task = AdditionTask()
    seen = {}
    for split, _ in SPLITS:
        ps = task.problems(200, split=split, seed=0)
        assert all(task.split_of(p) == split for p in ps)
        seen[split] = {p.expr for p in ps}
    assert not (seen["train"] & seen["validation"]) and not (seen["train"] & seen["test"])
    assert not (seen["validation"] & seen["test"])
    # every level has enough distinct test problems for 100 per level
    assert len(task.problems(500, split="test", seed=1)) == 500
    rng = np.random.default_rng(0)
    shares = np.array([0, 0, 0])
    names = [s for s, _ in SPLITS]
    for _ in range(4000):
        shares[names.index(task.split_of(task._random_problem(5, rng)))] += 1
    np.testing.assert_allclose(shares / shares.sum(), [s for _, s in SPLITS], atol=0.03)


def test_answer_rule():
    assert answer_rule([5]) == ([], 5)
    assert answer_rule([5, 5]) == (["ok"], 5)
    assert answer_rule([4, 5]) == (["no"], 5)
    # the first agreement decides, whatever follows
    assert answer_rule([4, 5, 5, 6]) == (["no", "ok", "no"], 5)
    assert answer_rule([5, 5, 6, 6]) == (["ok", "no", "ok"], 5)
    # no agreement: the last line
    assert answer_rule([1, 2, 3, 4]) == (["no", "no", "no"], 4)
    with pytest.raises(ValueError, match="results"):
        answer_rule([])


def test_check_orders_are_different_computations():
    assert check_order(4, 1) == (0, 1, 2, 3)
    assert check_order(4, 2) == (3, 2, 1, 0)
    assert check_order(4, 3) == (1, 0, 2, 3)
    assert check_order(2, 3) == (1, 0)
    for n in (3, 4):
        assert len({check_order(n, i) for i in (1, 2, 3)}) == 3


def test_long_solutions_follow_the_rule_and_parse_back():
    task = AdditionTask()
    rng = np.random.default_rng(0)
    probs = task.problems(300, split="train", seed=0)
    ks, wrong_guess, slipped = [], 0, 0
    for p in probs:
        s = task.long_solution(p, rng)
        q = parse_sum_solution(s.text)
        assert q["well_formed"] and q["consistent"], s.text
        assert q["n_checks"] == s.n_checks and q["results"] == list(s.results)
        assert q["boxed"] == str(s.answer) and s.correct == (s.answer == p.answer)
        ks.append(s.n_checks)
        wrong_guess += s.results[0] != p.answer
        slipped += any(r != p.answer for r in s.results[1:])
        # every check line adds the numbers in its own order
        for i, line in enumerate(s.text.split("\n")[1:1 + s.n_checks], 1):
            firsts = line[len("check "):].split("=")[0].split("+")
            order = check_order(len(p.numbers), i)
            assert [int(x) for x in firsts] == [p.numbers[j] for j in order[:2]]
    freq = np.bincount(ks, minlength=4) / len(ks)
    np.testing.assert_allclose(freq, SUM_CHECK_PROBS, atol=0.07)
    assert 0.2 < wrong_guess / len(probs) < 0.4 and slipped > 0


def test_render_with_given_results_and_concise():
    task = AdditionTask()
    p = SumProblem((37, 48, 26), 4)
    s = task.render(p, [101, 111, 111])
    assert s.text.split("\n") == ["37+48+26=101?", "check 37+48=85+26=111 no", "check 26+48=74+37=111 ok",
                                  "so the answer is \\boxed{111}"]
    assert s.correct and s.verdicts == ("no", "ok")
    c = task.concise_solution(p, np.random.default_rng(0))
    assert c.text == "37+48+26=111?\nso the answer is \\boxed{111}" and c.n_checks == 0


def test_parse_marks_malformed_and_inconsistent():
    assert not parse_sum_solution("garbage")["well_formed"]
    q = parse_sum_solution("3+4=7?\ncheck 3+4=7 no\nso the answer is \\boxed{7}")
    assert q["well_formed"] and not q["consistent"]
    q = parse_sum_solution("3+4=7?\ncheck 3+4=7 ok\nso the answer is \\boxed{7}")
    assert q["consistent"] and q["results"] == [7, 7]


def test_sft_examples_are_tokenizable_and_fit_the_context():
    task = AdditionTask()
    tok = CharTokenizer()
    rng = np.random.default_rng(1)
    probs = task.problems(200, split="train", seed=1, levels=[5])
    longest = max(len(tok.encode(p.prompt + task.long_solution(p, rng, n_checks=3).text)) for p in probs)
    assert longest < 200
    pairs = task.sft_examples(probs[:3], seed=0, style="concise")
    assert all(r.endswith("\\boxed{%d}" % p.answer) for (_, r), p in zip(pairs, probs[:3]))


def test_grade_uses_the_last_box():
    task = AdditionTask()
    p = [SumProblem((3, 4), 1)]
    assert task.grade(["so the answer is \\boxed{7}"], p).tolist() == [True]
    assert task.grade(["\\boxed{7} \\boxed{8}"], p).tolist() == [False]


@pytest.mark.parametrize("kw, match", [
    (dict(check_probs=[0.5, 0.6]), "check_probs"), (dict(check_probs=[[1.0]]), "check_probs"),
    (dict(guess_slip=1.0), "guess_slip"), (dict(step_slip=-0.1), "step_slip"), (dict(levels=[]), "levels"),
])
def test_bad_task_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        AdditionTask(**kw)


def test_bad_problem_arguments():
    task = AdditionTask()
    with pytest.raises(ValueError, match="split"):
        task.problems(3, split="heldout")
    with pytest.raises(ValueError, match="levels"):
        task.problems(3, levels=[6])
    with pytest.raises(ValueError, match="n"):
        task.problems(-1)
    with pytest.raises(ValueError, match="too few"):
        AdditionTask(levels=[SumLevel((1, 1))]).problems(100, split="test")
    with pytest.raises(TypeError, match="levels"):
        AdditionTask(levels=[(1, 1)])
    with pytest.raises(ValueError, match="digits"):
        SumLevel((4, 1))


def test_forced_generation_writes_exactly_k_checks():
    from o1pruner.models import TinyLM, TinyLMConfig
    from o1pruner.tasks.addition_report import forced_checks_report, forced_generate

    tok = CharTokenizer()
    cfg = TinyLMConfig(vocab_size=tok.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                       pad_token_id=0)
    model = TinyLM(cfg, seed=0)
    task = AdditionTask()
    probs = task.problems(5, split="validation", seed=0)
    for k in (0, 2):
        texts = forced_generate(model, probs, k, tokenizer=tok, max_line_tokens=6)
        for t in texts:
            lines = t.split("\n")
            assert len(lines) == k + 2
            assert all(line.startswith("check ") for line in lines[1:1 + k])
            assert lines[-1].startswith("so the answer is ")
    rep = forced_checks_report(model, task, checks=(0, 1), per_level=2, tokenizer=tok)
    assert set(rep["checks"]) == {0, 1}
    assert [r["level"] for r in rep["checks"][1]["levels"]] == [1, 2, 3, 4, 5]


def test_reward_table_by_level_and_checks():
    """dev.reward_table: the public code's reward per problem, averaged by
    (level, checks); computed by hand for one problem of two samples."""
    from helpers import import_dev

    rt = import_dev("reward_table")
    short = {"problem_id": "a", "difficulty": 1, "length": 10, "correct": True,
             "solution": "3+4=7?\nso the answer is \\boxed{7}"}
    long_wrong = {"problem_id": "a", "difficulty": 1, "length": 30, "correct": False,
                  "solution": "3+4=8?\ncheck 3+4=8 ok\nso the answer is \\boxed{8}"}
    tab = rt.reward_table([short, long_wrong], lam=2.0)
    # mean length 20, mean accuracy 0.5: short 20/10 - 1 + 2 * 0.5 = 2; long 20/30 - 1 - 1 = -1.33
    assert tab[(1, 0)] == pytest.approx((2.0, 1, 1.0))
    assert tab[(1, 1)][0] == pytest.approx(20 / 30 - 2) and tab[(1, 1)][2] == 0.0
    assert rt.reward_table([short, long_wrong], lam=20.0)[(1, 0)][0] == 4.0  # clipped at 4
