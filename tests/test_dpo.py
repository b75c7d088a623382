"""The DPO baseline (issue 16): dpo_loss (C) against its float64 NumPy twin,
finite differences, padding pairs, extreme margins, layouts, bad input,
inputs left alone, thread counts and leaks; the pair builder dpo_pairs and
its JSONL; the trainer's objective="dpo" (it learns the preference, resumes
exactly)."""

import numpy as np
import pytest

import o1pruner
import training_helpers as TH
from o1pruner.kernels import slow as ref
from o1pruner.train import Trainer

from helpers import assert_close, layouts, leak_check

TOK = TH.TOK


# ---- data --------------------------------------------------------------------------------

def pairs_batch(rng, B=7, Tc=6, Tr=10, padding=(), scattered=False):
    """Chosen and rejected token log-probs, masks (right-padded or scattered),
    reference sequence log-probs; pairs in `padding` have both rows empty."""
    c = (-rng.random((B, Tc)) * 3).astype(np.float32)
    r = (-rng.random((B, Tr)) * 3).astype(np.float32)
    if scattered:
        mc, mr = rng.random((B, Tc)) < 0.6, rng.random((B, Tr)) < 0.6
        mc[:, 0] = mr[:, -1] = True
    else:
        mc = np.arange(Tc)[None, :] < rng.integers(1, Tc + 1, B)[:, None]
        mr = np.arange(Tr)[None, :] < rng.integers(1, Tr + 1, B)[:, None]
    for b in padding:
        mc[b] = mr[b] = False
    c[~mc] = np.nan  # never read
    r[~mr] = np.nan
    ref_c = np.where(mc, np.nan_to_num(c), 0).sum(1) + rng.normal(0, 1, B)
    ref_r = np.where(mr, np.nan_to_num(r), 0).sum(1) + rng.normal(0, 1, B)
    return c, r, ref_c, ref_r, mc, mr


def _check_against_slow(args, **kw):
    got = o1pruner.dpo_loss(*args, **kw)
    loss, gc, gr, st = ref.dpo_loss(*args, **kw)
    assert got.loss == pytest.approx(loss, rel=1e-12, abs=1e-15)
    assert_close(got.chosen_grad, gc, rtol=1e-6, atol=1e-9, what="chosen_grad")
    assert_close(got.rejected_grad, gr, rtol=1e-6, atol=1e-9, what="rejected_grad")
    assert got.chosen_grad.dtype == np.float32 and got.chosen_grad.shape == args[0].shape
    assert got.rejected_grad.shape == args[1].shape
    for k, v in st.items():
        assert getattr(got.stats, k) == pytest.approx(v, rel=1e-12, abs=1e-15), k
    return got


# ---- the kernel ----------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [0.05, 0.1, 1.0, 7.5])
@pytest.mark.parametrize("length_normalize", [False, True])
@pytest.mark.parametrize("scattered", [False, True])
def test_matches_reference(rng, beta, length_normalize, scattered):
    args = pairs_batch(rng, padding=(2,), scattered=scattered)
    _check_against_slow(args, beta=beta, length_normalize=length_normalize)
    w = rng.random(7) * 2
    w[0] = 0.0
    _check_against_slow(args, beta=beta, length_normalize=length_normalize, weights=w)


def test_formula_by_hand():
    # one pair: pi_c = -2, pi_r = -6, references -3 and -4: z = beta * (1 - (-2)) = 3 beta
    c, r = np.array([[-1.0, -1.0, 9.0]], np.float32), np.array([[-3.0, -3.0]], np.float32)
    mc, mr = np.array([[1, 1, 0]]), np.ones((1, 2))
    res = o1pruner.dpo_loss(c, r, [-3.0], [-4.0], mc, mr, beta=0.5)
    z = 1.5
    assert res.loss == pytest.approx(np.log1p(np.exp(-z)), rel=1e-14)
    s = 1 / (1 + np.exp(z))  # sigmoid(-z)
    np.testing.assert_allclose(res.chosen_grad, [[-0.5 * s, -0.5 * s, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(res.rejected_grad, [[0.5 * s, 0.5 * s]], rtol=1e-6)
    assert res.stats == (pytest.approx(z), 1.0, pytest.approx(0.5), pytest.approx(-1.0), 1)


def test_reference_gradient_central_differences(rng):
    # the float64 twin (which the C kernel equals, above) against finite differences
    c, r, ref_c, ref_r, mc, mr = pairs_batch(rng, B=4, Tc=5, Tr=6, padding=(1,))
    c, r = np.nan_to_num(c).astype(np.float64), np.nan_to_num(r).astype(np.float64)
    w = np.array([1.0, 2.0, 0.5, 1.5])
    for ln in (False, True):
        kw = dict(beta=0.7, weights=w, length_normalize=ln)
        _, gc, gr, _ = ref.dpo_loss(c, r, ref_c, ref_r, mc, mr, **kw)
        h = 1e-6
        for x, g in ((c, gc), (r, gr)):
            fd = np.zeros_like(x)
            for idx in np.ndindex(x.shape):
                old = x[idx]
                x[idx] = old + h
                lp = ref.dpo_loss(c, r, ref_c, ref_r, mc, mr, **kw)[0]
                x[idx] = old - h
                lm = ref.dpo_loss(c, r, ref_c, ref_r, mc, mr, **kw)[0]
                x[idx] = old
                fd[idx] = (lp - lm) / (2 * h)
            assert_close(g, fd, rtol=1e-6, atol=1e-9, what=f"slow gradient (length_normalize={ln})")


def test_kernel_central_differences(rng):
    # the C kernel itself: float32 inputs, step 2^-8 (exact in float32), loss in float64
    c, r, ref_c, ref_r, mc, mr = pairs_batch(rng, B=3, Tc=4, Tr=5)
    c, r = np.nan_to_num(c), np.nan_to_num(r)
    res = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr, beta=0.3)
    h = np.float32(2.0 ** -8)
    for x, g in ((c, res.chosen_grad), (r, res.rejected_grad)):
        fd = np.zeros(x.shape)
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + h
            lp = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr, beta=0.3).loss
            x[idx] = old - h
            lm = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr, beta=0.3).loss
            x[idx] = old
            fd[idx] = (lp - lm) / (2 * float(h))
        assert_close(g, fd, rtol=2e-4, atol=1e-7, what="kernel gradient")


def test_padding_pairs_contribute_nothing_but_count_in_B(rng):
    c, r, ref_c, ref_r, mc, mr = pairs_batch(rng, padding=(0, 5))
    res = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr)
    assert res.stats.count == 5
    assert not res.chosen_grad[[0, 5]].any() and not res.rejected_grad[[0, 5]].any()
    keep = [1, 2, 3, 4, 6]
    sub = o1pruner.dpo_loss(c[keep], r[keep], ref_c[keep], ref_r[keep], mc[keep], mr[keep])
    assert res.loss == pytest.approx(sub.loss * 5 / 7, rel=1e-12)
    assert res.stats[:4] == pytest.approx(sub.stats[:4], rel=1e-12)
    # all pairs padding: loss 0, statistics 0
    mc[:], mr[:] = False, False
    res = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr)
    assert res.loss == 0.0 and res.stats == (0.0, 0.0, 0.0, 0.0, 0)
    assert not res.chosen_grad.any() and not res.rejected_grad.any()


@pytest.mark.parametrize("z", [-1e4, -800.0, -40.0, 40.0, 800.0, 1e4])
def test_extreme_margins_are_stable(z):
    # loss = softplus(-z): z for very negative margins, ~exp(-z) for positive ones, never inf/NaN
    c, r = np.array([[z]], np.float32), np.array([[0.0]], np.float32)
    res = o1pruner.dpo_loss(c, r, [0.0], [0.0], [[1]], [[1]], beta=1.0)
    want = np.logaddexp(0.0, -float(np.float32(z)))
    assert res.loss == pytest.approx(want, rel=1e-12)
    assert np.isfinite(res.chosen_grad).all()
    assert res.chosen_grad[0, 0] == pytest.approx(-np.exp(-np.logaddexp(0.0, float(np.float32(z)))), rel=1e-6, abs=1e-45)
    assert res.stats.reward_accuracy == (1.0 if z > 0 else 0.0)


def test_micro_batches_sum_to_the_batch(rng):
    c, r, ref_c, ref_r, mc, mr = pairs_batch(rng, B=8, padding=(3,))
    full = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr, beta=0.4)
    parts = [o1pruner.dpo_loss(c[s], r[s], ref_c[s], ref_r[s], mc[s], mr[s], beta=0.4, global_batch_size=8)
             for s in (slice(0, 3), slice(3, 8))]
    assert sum(p.loss for p in parts) == pytest.approx(full.loss, rel=1e-12)
    assert_close(np.concatenate([p.chosen_grad for p in parts]), full.chosen_grad, rtol=1e-6, atol=1e-10)
    assert_close(np.concatenate([p.rejected_grad for p in parts]), full.rejected_grad, rtol=1e-6, atol=1e-10)


def test_layouts_and_dtypes(rng):
    c, r, ref_c, ref_r, mc, mr = pairs_batch(rng)
    want = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr)
    for name, x in layouts(c):
        got = o1pruner.dpo_loss(x, r, ref_c, ref_r, mc, mr)
        assert got.loss == want.loss, name
        np.testing.assert_array_equal(got.chosen_grad, want.chosen_grad, err_msg=name)
    for name, m in layouts(mr.astype(np.float64)):
        got = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, m)
        assert got.loss == want.loss, name
    got = o1pruner.dpo_loss(c, r, ref_c.astype(np.float32), ref_r.astype(np.float32), mc.astype(np.int8), mr)
    want32 = ref.dpo_loss(c, r, ref_c.astype(np.float32), ref_r.astype(np.float32), mc, mr)
    assert got.loss == pytest.approx(want32[0], rel=1e-12)


def test_inputs_not_modified(rng):
    args = pairs_batch(rng, padding=(1,))
    w = rng.random(7)
    before = [a.copy() for a in args] + [w.copy()]
    o1pruner.dpo_loss(*args, weights=w, length_normalize=True)
    for a, b in zip(list(args) + [w], before):
        np.testing.assert_array_equal(a, b)


def test_results_identical_for_one_and_two_threads(rng):
    args = pairs_batch(rng, B=300, Tc=200, Tr=300)
    n = o1pruner.get_num_threads()
    try:
        o1pruner.set_num_threads(1)
        a = o1pruner.dpo_loss(*args)
        o1pruner.set_num_threads(2)
        b = o1pruner.dpo_loss(*args)
    finally:
        o1pruner.set_num_threads(n)
    assert a.loss == b.loss and a.stats == b.stats
    np.testing.assert_array_equal(a.chosen_grad, b.chosen_grad)
    np.testing.assert_array_equal(a.rejected_grad, b.rejected_grad)


def _bad_cases():
    rng = np.random.default_rng(0)
    c, r, ref_c, ref_r, mc, mr = pairs_batch(rng, B=3, Tc=4, Tr=5)
    base = dict(chosen_logp=c, rejected_logp=r, ref_chosen_logp=ref_c, ref_rejected_logp=ref_r, chosen_mask=mc,
                rejected_mask=mr)
    nan_c = c.copy()
    nan_c[0, 0] = np.nan
    inf_r = r.copy()
    inf_r[1, 0] = -np.inf
    pinf_r = r.copy()
    pinf_r[2, 0] = np.inf
    one_empty = mr.copy()
    one_empty[1] = False
    nan_ref = ref_c.copy()
    nan_ref[2] = np.nan
    huge = ref_c.copy()
    huge[:] = 1.7e308
    return [
        (dict(chosen_logp=np.nan_to_num(c).astype(np.int32)), TypeError, "chosen_logp"),
        (dict(rejected_logp=r[:, :, None]), ValueError, "rejected_logp"),
        (dict(rejected_logp=r[:2]), ValueError, "rejected_logp"),
        (dict(chosen_mask=mc[:, :3]), ValueError, "chosen_mask"),
        (dict(rejected_mask=mr * 2), ValueError, "rejected_mask"),
        (dict(chosen_logp=c[:0], chosen_mask=mc[:0]), ValueError, "chosen_logp"),
        (dict(rejected_logp=r[:, :0], rejected_mask=mr[:, :0]), ValueError, "rejected_logp"),
        (dict(ref_chosen_logp=ref_c[:2]), ValueError, "ref_chosen_logp"),
        (dict(ref_rejected_logp=ref_r[:, None]), ValueError, "ref_rejected_logp"),
        (dict(ref_chosen_logp=nan_ref), ValueError, "ref_chosen_logp"),
        (dict(ref_rejected_logp=np.array(["a", "b", "c"])), TypeError, "ref_rejected_logp"),
        (dict(chosen_logp=nan_c), ValueError, r"chosen_logp: NaN at valid position \(b=0, t=0\)"),
        (dict(rejected_logp=inf_r), ValueError, r"rejected_logp: -inf at valid position \(b=1, t=0\)"),
        (dict(rejected_logp=pinf_r), ValueError, r"rejected_logp: \+inf at valid position \(b=2, t=0\)"),
        (dict(rejected_mask=one_empty), ValueError, "rejected_mask: row 1 has no valid token"),
        (dict(ref_chosen_logp=-huge, beta=10.0), ValueError, "ref_chosen_logp: the implicit rewards of pair 0"),
        (dict(beta=0.0), ValueError, "beta"),
        (dict(beta=-1.0), ValueError, "beta"),
        (dict(beta=float("nan")), ValueError, "beta"),
        (dict(beta=float("inf")), ValueError, "beta"),
        (dict(beta="0.1"), TypeError, "beta"),
        (dict(beta=True), TypeError, "beta"),
        (dict(weights=np.array([1.0, -0.5, 1.0])), ValueError, "weights: must be >= 0"),
        (dict(weights=np.array([1.0, np.nan, 1.0])), ValueError, "weights"),
        (dict(weights=np.ones(2)), ValueError, "weights"),
        (dict(length_normalize="yes"), TypeError, "length_normalize"),
        (dict(length_normalize=1), TypeError, "length_normalize"),
        (dict(global_batch_size=0), ValueError, "global_batch_size"),
    ], base


@pytest.mark.parametrize("i", range(len(_bad_cases()[0])))
def test_bad_input(i):
    cases, base = _bad_cases()
    kw, exc, match = cases[i]
    before = {k: np.array(v, copy=True) for k, v in base.items()}
    with pytest.raises(exc, match=match):
        o1pruner.dpo_loss(**{**base, **kw})
    for k, v in base.items():
        np.testing.assert_array_equal(v, before[k])


def test_masked_nan_and_inf_are_ignored(rng):
    c, r, ref_c, ref_r, mc, mr = pairs_batch(rng, B=3, Tc=4, Tr=5)
    mc[:, -1] = False
    c2 = c.copy()
    c2[:, -1] = -np.inf
    a = o1pruner.dpo_loss(c, r, ref_c, ref_r, mc, mr)
    b = o1pruner.dpo_loss(c2, r, ref_c, ref_r, mc, mr)
    assert a.loss == b.loss and np.isfinite(a.loss)


def test_no_leak(rng):
    args = pairs_batch(rng)
    leak_check(lambda: o1pruner.dpo_loss(*args, weights=np.ones(7)), n=1000)

    def bad():
        try:
            o1pruner.dpo_loss(*args, beta=-1.0)
        except ValueError:
            pass
    leak_check(bad, n=1000)


# ---- the pairs -----------------------------------------------------------------------------

def _samples():
    rows = [  # (problem, length, correct)
        (0, 100, True), (0, 300, False), (0, 200, True), (0, 300, True),   # chosen 100, rejected the last 300
        (1, 50, False), (1, 60, False),                                     # no correct sample
        (2, 80, True), (2, 80, False),                                      # nothing longer than 80
        (3, 40, True), (3, 20, True), (3, 90, False),                       # chosen 20 (n=2: also 40)
    ]
    return [{"problem_id": p, "sample_index": j, "problem": f"p{p}", "ground_truth_answer": "1", "prompt": f"Q{p}\n",
             "solution": f"s{p}-{j}", "length": L, "correct": c} for j, (p, L, c) in enumerate(rows)]


def test_dpo_pairs_chooses_shortest_correct_against_longest(tmp_path):
    path = tmp_path / "pairs.jsonl"
    pairs = o1pruner.dpo_pairs(_samples(), out=path)
    assert [(r["problem_id"], r["chosen"]["solution"], r["rejected"]["solution"]) for r in pairs] == [
        (0, "s0-0", "s0-3"), (3, "s3-9", "s3-10")]
    r = pairs[0]
    assert r["prompt"] == "Q0\n" and r["ref_accuracy"] == 0.75 and r["n_samples"] == 4
    assert r["chosen"]["length"] == 100 and r["rejected"]["correct"] is True
    assert pairs.counts() == {"problems": 4, "pairs": 2, "problems_used": 2, "no_correct": 1, "no_longer": 1}
    assert "2 pairs from 2 of 4 problems" in pairs.summary() and "1 with no correct sample" in pairs.summary()
    back = o1pruner.PairDataset.from_jsonl(path)
    assert back.records == pairs.records
    seq = pairs.sequences()
    assert [s["solution"] for s in seq] == ["s0-0", "s3-9", "s0-3", "s3-10"]
    assert all(s["problem"] == f"p{s['problem_id']}" for s in seq)
    two = o1pruner.dpo_pairs(_samples(), n=2)
    assert [(r["chosen"]["solution"], r["rejected"]["solution"]) for r in two] == [
        ("s0-0", "s0-3"), ("s0-2", "s0-3"), ("s3-9", "s3-10"), ("s3-8", "s3-10")]


def test_dpo_pairs_errors(tmp_path):
    with pytest.raises(ValueError, match="n: must be an int >= 1"):
        o1pruner.dpo_pairs(_samples(), n=0)
    with pytest.raises(ValueError, match="no problem gives a pair"):
        o1pruner.dpo_pairs([s for s in _samples() if s["problem_id"] in (1, 2)])
    bad = tmp_path / "bad.jsonl"
    o1pruner.io.write_jsonl(bad, [{"problem": "x", "chosen": {"solution": "a"}}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: a pair record needs a 'rejected' object"):
        o1pruner.PairDataset.from_jsonl(bad)


# ---- training ------------------------------------------------------------------------------

def _dpo_cfg(**kw):
    base = dict(objective="dpo", dpo_beta=0.5, lr=3e-3, epochs=3, batch_size=3, warmup_ratio=0.0, seed=1,
                checkpoint_every=2)
    base.update(kw)
    return o1pruner.TrainConfig(**base)


def _no_time(h):
    return [{k: v for k, v in x.items() if k != "seconds"} for x in h]


def test_dpo_training_learns_the_preference():
    pairs = o1pruner.dpo_pairs(TH.tiny_samples(8, 4))
    tr = Trainer(TH.tiny_model(), pairs, TOK, _dpo_cfg(checkpoint_every=None, epochs=6), progress=False)
    h = tr.train()
    assert len(h) == 6 * 3 and h[0]["pairs"] == 3 and h[0]["sequences"] == 6
    # step 1: the policy is the reference: margin 0, loss log 2
    assert h[0]["loss"] == pytest.approx(np.log(2), abs=1e-5)
    assert abs(h[0]["reward_margin"]) < 1e-4
    # evaluated on all pairs at the end: the policy prefers every chosen response more than the reference does
    model, ref_model = tr.model, TH.tiny_model()
    seqs = pairs.sequences()
    P = len(pairs)

    def seq_logp(m):
        enc = o1pruner.train.encode_samples(seqs, o1pruner.train.SequenceFormat(TOK))
        ids, mask, tg = enc.batch(list(range(2 * P)))
        lp = m.logprobs(ids, mask, tg)
        return np.where(tg != -100, lp, 0).sum(1, dtype=np.float64)

    pol, ref_lp = seq_logp(model), seq_logp(ref_model)
    margin = 0.5 * ((pol[:P] - ref_lp[:P]) - (pol[P:] - ref_lp[P:]))
    assert (margin > 0).mean() == 1.0, margin
    assert h[-1]["reward_accuracy"] == 1.0 and h[-1]["reward_margin"] > 1.0
    assert h[-1]["loss"] < 0.5 * h[0]["loss"]
    assert tr.summary()["reward_accuracy_last"] == 1.0


def test_dpo_step_equals_hand_written_step_and_micro_batches_agree():
    pairs = o1pruner.dpo_pairs(TH.tiny_samples(6, 4))
    a = Trainer(TH.tiny_model(), pairs, TOK, _dpo_cfg(checkpoint_every=None, epochs=1), progress=False)
    b = Trainer(TH.tiny_model(), pairs, TOK, _dpo_cfg(checkpoint_every=None, epochs=1, micro_batch_size=1),
                progress=False)
    ha, hb = a.train(max_steps=1), b.train(max_steps=1)
    assert ha[0]["loss"] == pytest.approx(hb[0]["loss"], rel=1e-6)
    np.testing.assert_allclose(a.model.flat_parameters, b.model.flat_parameters, rtol=1e-4, atol=1e-6)
    # by hand: the first batch's pairs, one forward over chosen then rejected sequences
    model = TH.tiny_model()
    perm = np.random.default_rng(1).permutation(len(pairs))[:3].tolist()
    P = len(pairs)
    rows = perm + [P + p for p in perm]
    enc = a.data
    ids, mask, tg = enc.batch(rows)
    ref_lp = np.where(tg != -100, TH.tiny_model().logprobs(ids, mask, tg), 0).sum(1, dtype=np.float64)
    lp = model.forward(ids, mask, tg)
    valid = tg != -100
    res = o1pruner.dpo_loss(lp[:3], lp[3:], ref_lp[:3], ref_lp[3:], valid[:3], valid[3:], beta=0.5)
    model.backward(np.concatenate([res.chosen_grad, res.rejected_grad]))
    cfg = a.config
    model.step(lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
               max_grad_norm=cfg.max_grad_norm)
    assert ha[0]["loss"] == pytest.approx(res.loss, rel=1e-6)
    np.testing.assert_allclose(a.model.flat_parameters, model.flat_parameters, rtol=1e-5, atol=1e-7)


def test_dpo_resume_continues_exactly(tmp_path):
    pairs = o1pruner.dpo_pairs(TH.tiny_samples(8, 4))
    path = tmp_path / "pairs.jsonl"
    pairs.to_jsonl(path)
    full = Trainer(TH.tiny_model(), pairs, TOK, _dpo_cfg(checkpoint_every=None), progress=False)
    want = full.train()
    out = tmp_path / "run"
    a = Trainer(TH.tiny_model(), path, TOK, _dpo_cfg(), out_dir=out, progress=False)  # from the JSONL
    a.train(max_steps=4)
    assert (out / "reference_logprobs.npz").exists()
    b = Trainer(TH.tiny_model(), path, TOK, _dpo_cfg(), out_dir=out, progress=False)
    got = b.train()
    assert b.resumed_step == 4 and b.step == full.step == 9
    np.testing.assert_array_equal(b.model.flat_parameters, full.model.flat_parameters)
    assert _no_time(got) == _no_time(want)
    assert _no_time(o1pruner.io.read_jsonl(out / "train_log.jsonl")) == _no_time(want)


def test_dpo_settings_and_data_errors():
    pairs = o1pruner.dpo_pairs(TH.tiny_samples(4, 4))
    with pytest.raises(ValueError, match="dpo_beta"):
        o1pruner.TrainConfig(objective="dpo", dpo_beta=0.0)
    with pytest.raises(ValueError, match="dpo_length_normalize"):
        o1pruner.TrainConfig(objective="dpo", dpo_length_normalize="yes")
    with pytest.raises(ValueError, match="objective"):
        o1pruner.TrainConfig(objective="simpo")
    with pytest.raises(ValueError, match="lam: only for objective='ppo'"):
        Trainer(TH.tiny_model(), pairs, TOK, objective="dpo", lam=2.0, progress=False)
    with pytest.raises(ValueError, match=r"a preference pair \(chosen/rejected\); pairs train with objective='dpo'"):
        Trainer(TH.tiny_model(), pairs, TOK, objective="ppo", progress=False)
    with pytest.raises(ValueError, match=r"dataset\[0\]: a pair record needs a 'chosen' object"):
        Trainer(TH.tiny_model(), TH.tiny_records(4), TOK, objective="dpo", progress=False)


def test_dpo_length_normalize_trains_with_mean_reference():
    pairs = o1pruner.dpo_pairs(TH.tiny_samples(5, 4))
    tr = Trainer(TH.tiny_model(), pairs, TOK, _dpo_cfg(checkpoint_every=None, dpo_length_normalize=True, dpo_beta=5.0),
                 progress=False)
    h = tr.train()
    assert h[0]["loss"] == pytest.approx(np.log(2), abs=1e-5)
    assert h[-1]["reward_margin"] > h[0]["reward_margin"]
