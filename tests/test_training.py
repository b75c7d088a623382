"""Trainer of the built-in model: the step against a hand-written step,
micro-batches, the schedule, the reference log-probs, the SFT objective, the
dual ascent on lambda, logs, checkpoints and exact resume (including a
SIGKILL in the middle of a checkpoint write), bad input."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import o1pruner
from o1pruner.models import TinyLM, next_token_targets
from o1pruner.train import (
    SequenceFormat,
    TinyLMGenerator,
    TrainConfig,
    Trainer,
    encode_samples,
    latest_checkpoint,
    lr_at,
)

import training_helpers as TH

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(o1pruner.__file__)))
TOK = TH.TOK


def _no_time(hist):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in hist]


def _batch(recs, model=None):
    fmt = SequenceFormat(TOK)
    enc = encode_samples(recs, fmt)
    return enc, enc.batch(list(range(len(recs))))


# ---- schedule ------------------------------------------------------------------------

def test_lr_schedule_is_hugging_face_cosine_with_warmup():
    total, warm_ratio, lr = 50, 0.1, 3e-4
    warm = math.ceil(warm_ratio * total)
    for s in range(total):
        if s < warm:
            want = lr * s / warm
        else:
            want = lr * max(0.0, 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
        assert lr_at(s, total, lr, warm_ratio) == pytest.approx(want, rel=1e-12, abs=1e-18)
    assert lr_at(0, 10, 1.0, 0.0) == 1.0
    assert lr_at(9, 10, 1.0, 0.0, min_lr_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.9)))
    trainer = Trainer(TH.tiny_model(), TH.tiny_records(10), TOK, batch_size=4, epochs=2, lr=1e-3, progress=False)
    hist = trainer.train()
    assert trainer.total_steps == 6 and len(hist) == 6
    assert [h["lr"] for h in hist] == [lr_at(s, 6, 1e-3, 0.1) for s in range(6)]
    assert [h["epoch"] for h in hist] == [0, 0, 0, 1, 1, 1]
    assert [h["sequences"] for h in hist] == [4, 4, 2, 4, 4, 2]


# ---- encoding and generation -----------------------------------------------------------

def test_encode_samples_bos_eos_token_ids_and_truncation():
    recs = [{"prompt": "Q:1+2\n", "solution": "3"}, {"prompt": "Q:4\n", "token_ids": [10, 11, TOK.eos_token_id]}]
    enc = encode_samples(recs, SequenceFormat(TOK))
    assert enc.ids[0].tolist() == [TOK.bos_token_id] + TOK.encode("Q:1+2\n") + TOK.encode("3") + [TOK.eos_token_id]
    assert enc.prompt_lengths.tolist() == [7, 5] and enc.response_lengths.tolist() == [2, 3]
    assert enc.ids[1].tolist()[-3:] == [10, 11, TOK.eos_token_id]
    enc = encode_samples(recs, SequenceFormat(TOK, add_bos=False), max_length=7)
    assert enc.truncated.tolist() == [True, False] and enc.response_lengths.tolist() == [1, 3]
    ids, mask, targets = enc.batch([0, 1])
    want = next_token_targets(ids, mask, prompt_lengths=enc.prompt_lengths)
    np.testing.assert_array_equal(targets, want)
    assert (targets != -100).sum(1).tolist() == [1, 3]
    enc = encode_samples([{"problem": "1+1", "solution": "2"}], SequenceFormat(TOK), template="Q:{problem}\n")
    assert TOK.decode(enc.ids[0]) == "Q:1+1\n2"


def test_generator_text_and_token_ids():
    model = TH.tiny_model()
    gen = TinyLMGenerator(model, TOK, max_new_tokens=12)
    out = gen(["Q:1+2\n", "Q:5-3+1\n"], temperature=0.0)
    again = gen.generate(["Q:1+2\n", "Q:5-3+1\n"], temperature=0.0)
    assert out == again
    direct = model.generate([[TOK.bos_token_id] + TOK.encode(p) for p in ["Q:1+2\n", "Q:5-3+1\n"]],
                            max_new_tokens=12, temperature=0, stop_token_id=TOK.eos_token_id)
    for o, seq, stopped in zip(out, direct.sequences(), direct.stopped):
        assert o["token_ids"] == seq.tolist()
        assert o["text"] == TOK.decode(seq[:-1] if stopped else seq)
    # sampling depends on the seed only
    a = gen(["Q:1+2\n"] * 3, temperature=1.0, seed=5)
    b = gen(["Q:1+2\n"] * 3, temperature=1.0, seed=5)
    assert a == b
    # presample and evaluate accept it (evaluate decodes greedily through .generate)
    probs = [{"problem": "1+2", "ground_truth_answer": "3"}]
    res = o1pruner.evaluate(gen, probs, tokenizer=TOK, template="Q:{problem}\n")
    assert res.samples[0]["solution"] == out[0]["text"]


# ---- the step ------------------------------------------------------------------------------

def _manual_step(model, recs, cfg, lr):
    """One PPO step written out: reference = the model itself (ratio 1)."""
    enc, (ids, mask, tg) = _batch(recs)
    valid = tg != -100
    ref_lp = model.logprobs(ids, mask, tg)
    w = np.array([r["weight"] for r in recs])
    model.zero_grad()
    lp = model.forward(ids, mask, tg)
    if cfg.ratio == "sequence_mean":
        ref = o1pruner.sequence_logprobs(ref_lp, valid, "mean")
    else:
        ref = ref_lp
    res = o1pruner.ppo_clip_loss(lp, ref, w, valid, cfg.eps_low, cfg.eps_high, cfg.ratio, cfg.aggregate)
    g = res.grad
    if cfg.aggregate == "dr_grpo":  # the trainer divides by B * (longest response), not B * T
        T = ids.shape[1]
        g = g * np.float32(T / enc.response_lengths.max())
    model.backward(g)
    model.step(lr=lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm)
    return res


@pytest.mark.parametrize("ratio,aggregate", [
    ("sequence_mean", None), ("sequence_mean", "sum"), ("token", None), ("token", "grpo"), ("token", "bnpo"),
    ("token", "seq-mean-token-sum"), ("token", "dr_grpo")])
def test_step_equals_hand_written_step_and_micro_batches_agree(ratio, aggregate):
    recs = TH.tiny_records(8)
    cfg = TrainConfig(lr=1e-3, batch_size=8, warmup_ratio=0.0, ratio=ratio, aggregate=aggregate, eps_high=0.28)
    manual = TH.tiny_model()
    res = _manual_step(manual, recs, cfg, lr=1e-3)
    for mb in (None, 3):
        model = TH.tiny_model()
        # seed chosen so the permutation is irrelevant: one batch of all rows
        tr = Trainer(model, recs, TOK, cfg, micro_batch_size=mb, progress=False)
        hist = tr.train()
        assert len(hist) == 1
        np.testing.assert_allclose(model.flat_parameters, manual.flat_parameters, rtol=0, atol=2e-6)
        if aggregate != "dr_grpo":
            assert hist[0]["loss"] == pytest.approx(res.loss, rel=1e-5, abs=1e-6)
        assert hist[0]["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
        assert hist[0]["clip_fraction"] == 0.0


def test_first_step_loss_is_minus_mean_weight_and_reference_logprobs():
    recs = TH.tiny_records(10)
    model = TH.tiny_model()
    tr = Trainer(model, recs, TOK, batch_size=10, progress=False)
    ref = tr.compute_reference()
    enc, (ids, mask, tg) = _batch(recs)
    lp = model.logprobs(ids, mask, tg)
    valid = tg != -100
    np.testing.assert_allclose(ref["mean"], o1pruner.sequence_logprobs(lp, valid, "mean"), rtol=1e-5)
    np.testing.assert_allclose(ref["sum"], o1pruner.sequence_logprobs(lp, valid, "sum"), rtol=1e-5)
    np.testing.assert_allclose(ref["tokens"], lp[valid], rtol=1e-5, atol=1e-6)
    hist = tr.train()
    assert hist[0]["loss"] == pytest.approx(-np.mean([r["weight"] for r in recs]), rel=1e-5)
    assert hist[0]["approx_kl"] == pytest.approx(0.0, abs=1e-6)


def test_sft_objective_is_train_step():
    recs = TH.tiny_records(6)
    enc, (ids, mask, tg) = _batch(recs)
    manual = TH.tiny_model()
    st = manual.train_step(ids, mask, tg, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, max_grad_norm=10.0)
    model = TH.tiny_model()
    tr = Trainer(model, recs, TOK, objective="sft", lr=1e-3, batch_size=6, warmup_ratio=0.0, progress=False)
    hist = tr.train()
    np.testing.assert_allclose(model.flat_parameters, manual.flat_parameters, rtol=0, atol=2e-6)
    assert hist[0]["loss"] == pytest.approx(st["loss"], rel=1e-5)
    assert hist[0]["grad_norm"] == pytest.approx(st["grad_norm"], rel=1e-4)


def test_sft_shortest_dataset_trains_without_weights_and_lowers_its_loss():
    ds = o1pruner.sft_shortest_dataset(TH.tiny_samples(6, 4))
    assert all(r["weight"] == 1.0 for r in ds)
    tr = Trainer(TH.tiny_model(), ds, TOK, objective="sft", lr=3e-3, epochs=8, batch_size=4, warmup_ratio=0.0,
                 progress=False)
    hist = tr.train()
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]


def test_training_moves_probability_towards_positive_weights():
    """A few PPO steps raise the mean log-prob of the positively weighted
    samples relative to the negatively weighted ones."""
    recs = TH.tiny_records(8)
    for i, r in enumerate(recs):
        r["weight"] = 1.0 if i % 2 == 0 else -1.0
    model = TH.tiny_model()
    tr = Trainer(model, recs, TOK, lr=3e-3, epochs=5, batch_size=8, warmup_ratio=0.0, progress=False)
    tr.train()
    enc, (ids, mask, tg) = _batch(recs)
    after = o1pruner.sequence_logprobs(model.logprobs(ids, mask, tg), tg != -100, "mean")
    delta = after - tr.compute_reference()["mean"]
    assert delta[::2].mean() > delta[1::2].mean() + 0.01


# ---- lambda -------------------------------------------------------------------------------------

def test_weights_for_lambda_match_build_dataset():
    samples = TH.tiny_samples(6, 4)
    ds2 = o1pruner.build_dataset(samples, lam=2.0)
    ds5 = o1pruner.build_dataset(samples, lam=5.0)
    tr = Trainer(TH.tiny_model(), ds2, TOK, lam=2.0, progress=False)
    np.testing.assert_allclose(tr.weights_for(2.0), [r["weight"] for r in ds2], rtol=1e-12)
    np.testing.assert_allclose(tr.weights_for(5.0), [r["weight"] for r in ds5], rtol=1e-12)
    tr = Trainer(TH.tiny_model(), ds2, TOK, lam=5.0, progress=False)
    np.testing.assert_allclose(tr.weights, [r["weight"] for r in ds5], rtol=1e-12)
    # without lam the records' weights are used as given
    tr = Trainer(TH.tiny_model(), ds2, TOK, progress=False)
    assert tr.lam is None
    np.testing.assert_array_equal(tr.weights, [r["weight"] for r in ds2])


def test_accuracy_estimate_formulas():
    samples = TH.tiny_samples(4, 4)
    ds = o1pruner.build_dataset(samples, samples_per_problem=None)
    A = np.array([r["correct"] for r in ds], dtype=float)
    g = np.array([r["problem_id"] for r in ds])
    lr = np.random.default_rng(0).normal(size=len(ds)) * 3
    tr = Trainer(TH.tiny_model(), ds, TOK, lam="auto", progress=False)
    r = np.exp(lr)
    assert tr.accuracy_estimate(lr) == pytest.approx((r * A).sum() / r.sum(), rel=1e-12)
    assert tr.accuracy_estimate(np.zeros(len(ds))) == pytest.approx(A.mean())
    tr = Trainer(TH.tiny_model(), ds, TOK, lam="auto", dual_estimator="problem", progress=False)
    want = np.mean([(r[g == k] * A[g == k]).sum() / r[g == k].sum() for k in np.unique(g)])
    assert tr.accuracy_estimate(lr) == pytest.approx(want, rel=1e-12)
    assert tr.accuracy_estimate(lr + 500.0) == pytest.approx(want, rel=1e-12)  # no overflow: log-space


def test_dual_ascent_updates_lambda_and_weights_each_step(tmp_path):
    samples = TH.tiny_samples(6, 4)
    for i, r in enumerate(samples):
        r["correct"] = i % 3 != 0  # a mix, so the accuracy estimate moves with the ratios
    ds = o1pruner.build_dataset(samples, lam=2.0)
    tr = Trainer(TH.tiny_model(), ds, TOK, lam="auto", lam_lr=50.0, lr=3e-3, epochs=3, batch_size=4,
                 out_dir=tmp_path, progress=False)
    seen = []
    hist = tr.train(callback=lambda h: seen.append(tr.weights.copy()))
    assert hist[0]["lam"] == 2.0
    for a, b, w in zip(hist, hist[1:], seen):
        want = max(0.0, a["lam"] + 50.0 * (a["acc_reference"] - a["acc_estimate"]))
        assert b["lam"] == pytest.approx(want, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(w, tr.weights_for(b["lam"]), rtol=1e-12)
    assert len({round(h["lam"], 9) for h in hist}) > 1  # it moved
    assert all(h["acc_reference"] == pytest.approx(np.mean([r["correct"] for r in ds])) for h in hist)
    logged = o1pruner.io.read_jsonl(tmp_path / "train_log.jsonl")
    assert [r["lam"] for r in logged] == [h["lam"] for h in hist]


def test_dual_ascent_raises_lambda_when_training_hurts_estimated_accuracy():
    """Short samples are the wrong ones: with lambda starting at 0 the
    length term pushes the policy towards them, the importance-weighted
    accuracy estimate falls below the reference's, and lambda rises until
    correct samples get the larger weights."""
    samples = TH.tiny_samples(6, 4)
    for r in samples:
        r["correct"] = r["sample_index"] < 2
        r["length"] = 100 if r["correct"] else 40
    ds = o1pruner.build_dataset(samples, lam=0.0, samples_per_problem=None)
    A = np.array([r["correct"] for r in ds])
    tr = Trainer(TH.tiny_model(), ds, TOK, lam="auto", lam_lr=20.0, lr=3e-3, epochs=6, batch_size=8,
                 warmup_ratio=0.0, progress=False)
    w0 = tr.weights_for(0.0)
    assert w0[A].mean() < w0[~A].mean()
    hist = tr.train()
    assert hist[0]["lam"] == 0.0
    assert min(h["acc_estimate"] for h in hist) < 0.5 - 0.01  # the estimate fell (reference: 0.5)
    assert tr.lam > 0.5
    w = tr.weights_for(tr.lam)
    assert w[A].mean() > w[~A].mean()


# ---- logs, checkpoints, resume ----------------------------------------------------------------------

def _cfg(**kw):
    base = dict(lr=2e-3, epochs=3, batch_size=4, ratio="token", lam="auto", lam_lr=20.0, checkpoint_every=2, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_logs_and_checkpoint_files(tmp_path):
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    tr = Trainer(TH.tiny_model(), ds, TOK, _cfg(), out_dir=tmp_path, progress=False)
    hist = tr.train()
    lines = o1pruner.io.read_jsonl(tmp_path / "train_log.jsonl")
    assert len(lines) == len(hist) == tr.total_steps == 9
    for k in ("loss", "clip_fraction", "approx_kl", "ratio_mean", "ratio_min", "ratio_max", "lam", "lr", "grad_norm",
              "acc_estimate", "step", "epoch", "tokens", "seconds"):
        assert k in lines[0]
    assert latest_checkpoint(tmp_path).endswith("step-000009")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["LATEST", "step-000009"]
    ck = tmp_path / "checkpoints" / "step-000009"
    assert {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
            "dual_log_ratio.npy"} <= set(os.listdir(ck))
    final = TinyLM.load(tmp_path / "model")
    np.testing.assert_array_equal(final.flat_parameters, tr.model.flat_parameters)
    assert (tmp_path / "reference_logprobs.npz").exists()


@pytest.mark.parametrize("stop", [3, 4])  # mid-epoch (3 steps per epoch: 3 is a boundary) and inside one
def test_resume_continues_exactly(tmp_path, stop):
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    full = Trainer(TH.tiny_model(), ds, TOK, _cfg(checkpoint_every=None), progress=False)
    want = full.train()
    out = tmp_path / "run"
    a = Trainer(TH.tiny_model(), ds, TOK, _cfg(), out_dir=out, progress=False)
    a.train(max_steps=stop)
    assert a.step == stop
    # a fresh process would build a fresh trainer from the same initial model
    b = Trainer(TH.tiny_model(), ds, TOK, _cfg(), out_dir=out, progress=False)
    got = b.train()
    assert b.step == 9
    np.testing.assert_array_equal(b.model.flat_parameters, full.model.flat_parameters)
    assert _no_time(got) == _no_time(want)
    assert _no_time(o1pruner.io.read_jsonl(out / "train_log.jsonl")) == _no_time(want)
    assert b.lam == full.lam


def test_resume_drops_log_lines_after_the_checkpoint(tmp_path):
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    full = Trainer(TH.tiny_model(), ds, TOK, _cfg(checkpoint_every=None), progress=False)
    want = full.train()
    a = Trainer(TH.tiny_model(), ds, TOK, _cfg(checkpoint_every=4), out_dir=tmp_path, progress=False)
    a.train(max_steps=6)  # checkpoints at 4 and at the stop (6)
    # pretend the run went on to step 7 and crashed before its next checkpoint
    with open(tmp_path / "train_log.jsonl", "a") as f:
        f.write(json.dumps({"step": 7, "loss": 123.0}) + "\n" + '{"step": 8, "lo')
    b = Trainer(TH.tiny_model(), ds, TOK, _cfg(checkpoint_every=4), out_dir=tmp_path, progress=False)
    with pytest.warns(RuntimeWarning, match="incomplete last line"):
        got = b.train()
    assert _no_time(got) == _no_time(want)
    assert _no_time(o1pruner.io.read_jsonl(tmp_path / "train_log.jsonl")) == _no_time(want)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    import o1pruner
    from o1pruner.models import TinyLM
    import training_helpers as TH
    from test_training import _cfg

    real_save = TinyLM.save
    calls = []

    def save_then_die(self, path, **kw):
        real_save(self, path, **kw)
        calls.append(path)
        if len(calls) == 2:  # second checkpoint: model files written, trainer state and LATEST not yet
            with open(os.path.join(path, "model.safetensors"), "r+b") as f:
                f.truncate(100)  # and a torn file, for good measure
            os.kill(os.getpid(), signal.SIGKILL)

    TinyLM.save = save_then_die
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    o1pruner.Trainer(TH.tiny_model(), ds, TH.TOK, _cfg(), out_dir={out!r}, progress=False).train()
""")


def test_sigkill_during_checkpoint_write_keeps_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT.format(root=ROOT, tests=TESTS, out=str(out)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    ck = latest_checkpoint(out)
    assert ck is not None and ck.endswith("step-000002")
    assert any(d.endswith(".tmp") for d in os.listdir(out / "checkpoints"))  # the torn write is there...
    TinyLM.load(ck)  # ...and the named checkpoint is whole
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    full = Trainer(TH.tiny_model(), ds, TOK, _cfg(checkpoint_every=None), progress=False)
    want = full.train()
    b = Trainer(TH.tiny_model(), ds, TOK, _cfg(), out_dir=out, progress=False)
    got = b.train()
    np.testing.assert_array_equal(b.model.flat_parameters, full.model.flat_parameters)
    assert _no_time(got) == _no_time(want)
    assert not any(d.endswith(".tmp") for d in os.listdir(out / "checkpoints"))


def test_resume_refuses_other_settings_or_data(tmp_path):
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    Trainer(TH.tiny_model(), ds, TOK, _cfg(), out_dir=tmp_path, progress=False).train(max_steps=2)
    with pytest.raises(ValueError, match="other settings.*lr="):
        Trainer(TH.tiny_model(), ds, TOK, _cfg(lr=1e-3), out_dir=tmp_path, progress=False).train()
    other = o1pruner.build_dataset(TH.tiny_samples(5, 4, seed=1))
    with pytest.raises(ValueError, match="other data"):
        Trainer(TH.tiny_model(), other, TOK, _cfg(), out_dir=tmp_path, progress=False).train()
    with pytest.raises(ValueError, match="holds a checkpoint"):
        Trainer(TH.tiny_model(), ds, TOK, _cfg(), out_dir=tmp_path, progress=False).train(resume=False)
    # nothing of the run was lost
    assert latest_checkpoint(tmp_path).endswith("step-000002")
    assert len(o1pruner.io.read_jsonl(tmp_path / "train_log.jsonl")) == 2


def test_trains_from_a_build_jsonl_file(tmp_path):
    samples = TH.tiny_samples(4, 4)
    path = tmp_path / "train.jsonl"
    ds = o1pruner.build_dataset(samples, out=path)
    a = Trainer(TH.tiny_model(), path, TOK, lr=1e-3, batch_size=4, progress=False)
    b = Trainer(TH.tiny_model(), ds, TOK, lr=1e-3, batch_size=4, progress=False)
    a.train(), b.train()
    np.testing.assert_array_equal(a.model.flat_parameters, b.model.flat_parameters)


# ---- bad input -------------------------------------------------------------------------------------------

def test_bad_dataset_errors(tmp_path):
    m = TH.tiny_model()
    recs = TH.tiny_records(4)
    with pytest.raises(ValueError, match="dataset: empty"):
        Trainer(m, [], TOK)
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    with pytest.raises(ValueError, match="empty.jsonl: empty"):
        Trainer(m, p, TOK)
    bad = [dict(r) for r in recs]
    del bad[2]["weight"]
    with pytest.raises(ValueError, match=r"dataset\[2\]: missing field 'weight'"):
        Trainer(m, bad, TOK)
    bad = [dict(r) for r in recs]
    bad[1]["weight"] = float("nan")
    with pytest.raises(ValueError, match=r"dataset\[1\]: field 'weight' is nan"):
        Trainer(m, bad, TOK)
    bad = [dict(r) for r in recs]
    bad[3]["token_ids"] = []
    with pytest.raises(ValueError, match=r"dataset\[3\]: the response has zero tokens"):
        Trainer(m, bad, TOK)
    bad = [dict(r) for r in recs]
    del bad[0]["prompt"]
    with pytest.raises(ValueError, match=r"dataset\[0\]: missing field 'prompt'"):
        Trainer(m, bad, TOK)
    bad = [dict(r) for r in recs]
    del bad[0]["solution"]
    with pytest.raises(ValueError, match=r"dataset\[0\]: missing field 'solution'"):
        Trainer(m, bad, TOK)
    bad = [dict(r) for r in recs]
    bad[1]["token_ids"] = [5, 500]
    with pytest.raises(ValueError, match=r"dataset\[1\]: token id 500 is outside"):
        Trainer(m, bad, TOK)
    # lambda recomputation needs the reference fields, and positive lengths
    with pytest.raises(ValueError, match=r"dataset\[0\]: missing field 'ref_mean_length'"):
        Trainer(m, recs, TOK, lam="auto")
    ds = [dict(r) for r in o1pruner.build_dataset(TH.tiny_samples(3, 2))]
    ds[1]["length"] = 0
    with pytest.raises(ValueError, match=r"dataset\[1\]: field 'length' must be > 0"):
        Trainer(m, ds, TOK, lam=2.0)
    p = tmp_path / "corrupt.jsonl"
    p.write_text(json.dumps(recs[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="corrupt.jsonl:2"):
        Trainer(m, p, TOK)
    with pytest.raises(ValueError, match="prompt has .* no room"):
        Trainer(m, [{"prompt": "Q:" + "1" * 300, "solution": "1", "weight": 1.0}], TOK)
    with pytest.raises(TypeError, match="dataset"):
        Trainer(m, {"prompt": "x"}, TOK)
    with pytest.raises(TypeError, match="model"):
        Trainer("model", recs, TOK)


@pytest.mark.parametrize("kw,match", [
    (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"), (dict(micro_batch_size=0), "micro_batch_size"),
    (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(warmup_ratio=1.0), "warmup_ratio"),
    (dict(max_grad_norm=-1.0), "max_grad_norm"), (dict(eps_low=1.0), "eps_low"), (dict(eps_high=0.0), "eps_high"),
    (dict(ratio="seq"), "ratio"), (dict(aggregate="grpo"), "aggregate"), (dict(ratio="token", aggregate="mean"), "aggregate"),
    (dict(lam="max"), "lam"), (dict(lam=-1.0), "lam"), (dict(lam_lr=0.0), "lam_lr"), (dict(objective="simpo"), "objective"), (dict(dpo_beta=0.0), "dpo_beta"),
    (dict(dual_ratio="token"), "dual_ratio"), (dict(dual_estimator="x"), "dual_estimator"), (dict(clip=(4, -2)), "clip"),
    (dict(normalize="z"), "normalize"), (dict(betas=(0.9,)), "betas"), (dict(checkpoint_every=0), "checkpoint_every"),
    (dict(dual_clip=1.0), "dual_clip"), (dict(seed=1.5), "seed"),
])
def test_bad_settings_name_the_setting(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def test_sft_rejects_lambda_and_checkpoints_need_out_dir():
    with pytest.raises(ValueError, match="lam"):
        Trainer(TH.tiny_model(), TH.tiny_records(4), TOK, objective="sft", lam=2.0)
    tr = Trainer(TH.tiny_model(), TH.tiny_records(4), TOK, progress=False)
    with pytest.raises(ValueError, match="out_dir"):
        tr.save_checkpoint()


def test_nan_during_training_is_named_and_keeps_the_checkpoint(tmp_path):
    recs = TH.tiny_records(8)
    tr = Trainer(TH.tiny_model(), recs, TOK, lr=1e-3, batch_size=4, epochs=2, checkpoint_every=1, out_dir=tmp_path,
                 progress=False)
    tr.train(max_steps=2)
    tr.model.flat_parameters[:] = np.nan  # a blown-up model
    with pytest.raises(FloatingPointError, match="non-finite log-probs at step 3"):
        tr.train()
    assert latest_checkpoint(tmp_path).endswith("step-000002")
    assert np.isfinite(TinyLM.load(latest_checkpoint(tmp_path)).flat_parameters).all()
    assert len(o1pruner.io.read_jsonl(tmp_path / "train_log.jsonl")) == 2


def test_reference_tokens_are_the_batch_layout_of_the_concatenated_ones():
    """ratio='token' reads the reference's token log-probs as rows of one
    [n, T_max] matrix made once from the cached concatenated form: the same
    values the batch's scored positions (targets != -100) would get by a
    per-batch masked scatter."""
    from o1pruner.data.tokenize import EncodedSamples
    from o1pruner.train.ref_logprobs import reference_tokens

    rng = np.random.default_rng(0)
    n = 9
    p = rng.integers(1, 6, n)
    r = rng.integers(1, 8, n)
    data = EncodedSamples([rng.integers(0, 50, int(a + b)) for a, b in zip(p, r)], p.astype(np.int64),
                          r.astype(np.int64), np.zeros(n, bool))
    offsets = np.concatenate([[0], np.cumsum(r)]).astype(np.int64)
    ref = {"tokens": rng.standard_normal(int(offsets[-1])).astype(np.float32), "offsets": offsets}
    for rows in ([0, 1, 2], [8, 3], list(range(n))[::-1]):
        T = max(len(data.ids[i]) for i in rows) + 2
        _, _, tg = data.batch(rows, pad_to=T)
        want = np.zeros((len(rows), T), np.float32)
        valid = tg != -100
        for j, i in enumerate(rows):
            want[j][valid[j]] = ref["tokens"][offsets[i]: offsets[i + 1]]
        got = reference_tokens(ref, data, rows, T)
        assert got.dtype == np.float32 and np.array_equal(got, want)
    with pytest.raises(ValueError, match="do not match"):
        reference_tokens({"tokens": ref["tokens"][:-1], "offsets": offsets - np.r_[0, np.ones(n, np.int64)]}, data, [0], 4)
