"""o1pruner.hf: reference log-probs under a causal LM and the O1-Pruner Trainer,
on a tiny randomly initialised Qwen2 model and a tokenizer built locally (no
download). Skipped when the optional transformers extra is not installed."""

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("accelerate")

import o1pruner  # noqa: E402
import o1pruner.integrations.hf as H  # noqa: E402
from o1pruner.kernels import slow as ref  # noqa: E402

from helpers import assert_close  # noqa: E402


def corpus():
    return [f"Q:{a}+{b}\n{a}+{b}={a + b}\n\\boxed{{{a + b}}}" for a in range(0, 40, 3) for b in range(0, 40, 7)]


@pytest.fixture(scope="module")
def tok():
    return H.tiny_tokenizer(corpus(), vocab_size=320)


@pytest.fixture(scope="module")
def model(tok):
    return H.tiny_qwen2(tok, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                        intermediate_size=64, max_position_embeddings=128, seed=0)


def records(n=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = (int(x) for x in rng.integers(0, 40, 2))
        reps = 1 + i % 3
        out.append({"prompt": f"{a}+{b}", "response": f"{a}+{b}={a + b}\n" * reps + f"\\boxed{{{a + b}}}",
                    "weight": float(rng.normal())})
    w = np.array([r["weight"] for r in out])
    for r, z in zip(out, (w - w.mean()) / w.std()):
        r["weight"] = float(z)
    return out


def full_logprobs(model, ids, p):
    """log softmax of the unpadded full sequence, float64."""
    with torch.no_grad():
        lg = model(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(lg, -1)[torch.arange(p - 1, len(ids) - 1), torch.tensor(ids[p:])].numpy()


# ---- prompt template --------------------------------------------------------------

def test_render_prompt_is_the_pipeline_template(tok):
    from o1pruner import PromptTemplate

    chat = H.render_prompt("1+1", tok)
    assert chat == "<|im_start|>user\n1+1<|im_end|>\n<|im_start|>assistant\n"  # chat template when present
    assert H.render_prompt("1+1", tok, PromptTemplate(chat=False)) == "1+1"
    assert H.render_prompt("x{1}", tok, PromptTemplate("Q: {problem} \\boxed{}", chat=False)) == "Q: x{1} \\boxed{}"
    sys_chat = H.render_prompt("1+1", tok, PromptTemplate(system="S"))
    assert sys_chat.startswith("<|im_start|>system\nS<|im_end|>")
    plain = H.tiny_tokenizer(corpus()[:5], chat_template=False)
    assert H.render_prompt("a", plain) == "a"
    with pytest.raises(ValueError, match="template"):
        H.render_prompt("a", plain, PromptTemplate(chat=True))


def test_encode_pair_counts_response_tokens(tok):
    ids, p = H.encode_pair(tok, "1+2", "1+2=3")
    resp = tok("1+2=3", add_special_tokens=False)["input_ids"]
    assert ids[p:] == resp + [tok.eos_token_id]
    ids2, p2 = H.encode_pair(tok, "1+2", "1+2=3", append_eos=False)
    assert ids2[p2:] == resp and p2 == p
    with pytest.raises(TypeError, match="response"):
        H.encode_pair(tok, "1+2", 5)
    with pytest.raises(TypeError, match="prompt"):
        H.encode_pair(tok, None, "5")
    plain = H.tiny_tokenizer(corpus()[:5], chat_template=False)
    with pytest.raises(ValueError, match="prompt: renders to no tokens"):
        H.encode_pair(plain, "", "5")


# ---- response log-probs ----------------------------------------------------------

def test_response_logprobs_match_unpadded_full_softmax(model, tok):
    recs = records(7)
    P = [r["prompt"] for r in recs]
    R = [r["response"] for r in recs]
    out = H.response_logprobs(model, tok, P, R, batch_size=3)
    assert out.num_truncated == 0
    for i in range(len(recs)):
        ids, p = H.encode_pair(tok, P[i], R[i])
        want = full_logprobs(model, ids, p)
        assert out.num_tokens[i] == len(ids) - p
        assert_close(out.token_logprobs[i], want, rtol=1e-5, atol=2e-5, what=f"tokens {i}")
        assert_close(out.sum[i], want.sum(), rtol=1e-5, atol=1e-4, what=f"sum {i}")
        assert_close(out.mean[i], want.mean(), rtol=1e-5, atol=1e-5, what=f"mean {i}")
    one = H.response_logprobs(model, tok, P, R, batch_size=1)
    assert_close(one.mean, out.mean, rtol=1e-5, atol=1e-5, what="batch 1 vs 3")


def test_response_logprobs_restores_training_mode(model, tok):
    model.train()
    try:
        H.response_logprobs(model, tok, ["1+1"], ["2"])
        assert model.training
    finally:
        model.eval()


def test_response_logprobs_temperature(model, tok):
    ids, p = H.encode_pair(tok, "3+4", "3+4=7")
    with torch.no_grad():
        lg = model(torch.tensor([ids])).logits[0].double() / 0.5
    want = torch.log_softmax(lg, -1)[torch.arange(p - 1, len(ids) - 1), torch.tensor(ids[p:])].numpy()
    out = H.response_logprobs(model, tok, ["3+4"], ["3+4=7"], temperature=0.5)
    assert_close(out.token_logprobs[0], want, rtol=1e-5, atol=2e-5)
    with pytest.raises(ValueError, match="temperature"):
        H.response_logprobs(model, tok, ["3+4"], ["7"], temperature=0.0)


def test_tokenizer_without_pad_token(model, tok):
    nopad = H.tiny_tokenizer(corpus(), vocab_size=320, pad_token=False)
    assert nopad.pad_token_id is None
    P, R = ["1+2", "30+30"], ["1+2=3", "30+30=60\n30+30=60"]
    with pytest.warns(UserWarning, match="tokenizer: it has no pad_token"):
        a = H.response_logprobs(model, nopad, P, R, batch_size=2)
    b = H.response_logprobs(model, tok, P, R, batch_size=2)
    assert_close(a.mean, b.mean, rtol=1e-6, atol=1e-6)


def test_truncation_warns_and_counts(model, tok):
    P = ["1+2", "5+5"]
    R = ["1+2=3", "5+5=10\n" * 40]
    ids, p = H.encode_pair(tok, P[1], R[1])
    limit = p + 10
    assert len(ids) > limit
    with pytest.warns(UserWarning, match=r"responses: 1 of 2 .*truncated"):
        out = H.response_logprobs(model, tok, P, R, max_length=limit)
    assert out.num_truncated == 1 and out.truncated.tolist() == [False, True]
    assert out.num_tokens[1] == 10
    assert_close(out.token_logprobs[1], full_logprobs(model, ids[:limit], p), rtol=1e-5, atol=2e-5)
    # the model's own context (128 positions) is the default limit
    with pytest.warns(UserWarning, match="max_length=128"):
        H.response_logprobs(model, tok, ["1"], ["9+9=18\n" * 60])


def test_response_logprobs_bad_input(model, tok):
    with pytest.raises(ValueError, match="prompts/responses: lengths differ"):
        H.response_logprobs(model, tok, ["a", "b"], ["c"])
    with pytest.raises(ValueError, match=r"responses\[0\]"):
        H.response_logprobs(model, tok, ["a"], [""], append_eos=False)
    with pytest.raises(ValueError, match=r"prompts\[0\]: the prompt alone"):
        H.response_logprobs(model, tok, ["1+1=2 " * 100], ["2"], max_length=16)
    with pytest.raises(ValueError, match="batch_size"):
        H.response_logprobs(model, tok, ["a"], ["b"], batch_size=0)
    with pytest.raises(TypeError, match="response"):
        H.response_logprobs(model, tok, ["a"], [None])


# ---- the loss in torch -------------------------------------------------------------

def numpy_loss(mean_lp, ref_lp, w, eps=0.2):
    r = np.exp(mean_lp - ref_lp)
    return np.mean(np.maximum(-w * r, -w * np.clip(r, 1 - eps, 1 + eps)))


def test_o1pruner_loss_value_and_gradient():
    rng = np.random.default_rng(1)
    B = 9
    ref_lp = rng.normal(-1.0, 0.3, B)
    # ratios spread over both sides of the clip range, none on a kink
    log_r = np.array([-0.5, -0.3, -0.1, 0.0, 0.05, 0.1, 0.25, 0.4, -0.25])
    w = np.array([1.0, -1.0, 0.5, -0.7, 2.0, -2.0, 1.5, -0.3, 0.8])
    mean_lp = torch.tensor(ref_lp + log_r, dtype=torch.float64, requires_grad=True)
    loss, stats = H.o1pruner_loss(mean_lp, torch.tensor(ref_lp), torch.tensor(w))
    assert_close(loss.item(), numpy_loss(ref_lp + log_r, ref_lp, w), rtol=1e-12, atol=1e-12)
    loss.backward()
    # central differences of the NumPy formula
    h = 1e-6
    fd = np.zeros(B)
    for b in range(B):
        up, dn = ref_lp + log_r, ref_lp + log_r
        up = up.copy(); dn = dn.copy()
        up[b] += h; dn[b] -= h
        fd[b] = (numpy_loss(up, ref_lp, w) - numpy_loss(dn, ref_lp, w)) / (2 * h)
    assert_close(mean_lp.grad.numpy(), fd, rtol=1e-6, atol=1e-8)
    r = np.exp(log_r)
    clipped = (-w * np.clip(r, 0.8, 1.2)) > (-w * r)
    assert stats["clip_fraction"] == pytest.approx(clipped.mean())
    assert stats["ratio_mean"] == pytest.approx(r.mean())


def test_sequence_logprobs_matches_reference(model, tok):
    """Gradient of the trainer's loss w.r.t. the logits equals the chain of the
    project's float64 references (token_logprobs_backward, the loss formula)."""
    recs = records(4, seed=3)
    ds = H.O1PrunerDataset(recs, tok)
    batch = H.O1PrunerCollator(tok.pad_token_id)([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.double().requires_grad_(True)
    sums, counts = H.sequence_logprobs(logits, batch["input_ids"], batch["response_mask"])
    mean = sums / counts
    rng = np.random.default_rng(0)
    ref_lp = mean.detach().numpy() + rng.uniform(-0.4, 0.4, len(recs))
    w = np.array([r["weight"] for r in recs])
    loss, _ = H.o1pruner_loss(mean, torch.tensor(ref_lp), torch.tensor(w))
    loss.backward()
    # reference: rows that are scored, their targets, the chain rule by hand
    B, T, V = logits.shape
    mask = batch["response_mask"][:, 1:].numpy()
    z = logits.detach().numpy()[:, :-1][mask]
    t = batch["input_ids"][:, 1:].numpy()[mask]
    lp, _, _ = ref.token_logprobs(z, t)
    rows = np.nonzero(mask)[0]
    n = np.bincount(rows, minlength=B)
    m = np.bincount(rows, weights=lp, minlength=B) / n
    assert_close(mean.detach().numpy(), m, rtol=1e-10, atol=1e-10, what="mean log-prob")
    r = np.exp(m - ref_lp)
    # d loss / d m_b: -w r / B on the active (unclipped or inside-range) branch, else 0
    unclipped_active = (-w * r) >= (-w * np.clip(r, 0.8, 1.2))
    inside = (r >= 0.8) & (r <= 1.2)
    dm = np.where(unclipped_active | inside, -w * r, 0.0) / B
    g = ref.token_logprobs_backward(z, t, (dm / n)[rows])
    want = np.zeros((B, T - 1, V))
    want[mask] = g
    assert_close(logits.grad.numpy()[:, :-1], want, rtol=1e-9, atol=1e-12, what="d loss / d logits")
    assert np.all(logits.grad.numpy()[:, -1] == 0)


def test_trainer_loss_and_gradient_equal_the_c_kernel(tok, tmp_path):
    """On CPU the Trainer's pure-torch loss equals o1pruner.ppo_clip_loss (C)
    on the same token log-probs, and so does its gradient w.r.t. them."""
    m = fresh_model(tok, seed=4)
    recs = records(6, seed=9)
    tr = make_trainer(m, tok, recs, tmp_path, eval_dataset=None)
    tr.compute_reference()
    rng = np.random.default_rng(1)
    tr.train_dataset.set_reference(tr.train_dataset.ref_mean_logp + rng.uniform(-0.3, 0.3, len(recs)))
    batch = H.O1PrunerCollator(tok.pad_token_id)([tr.train_dataset[i] for i in range(len(recs))])
    loss = tr.compute_loss(m, batch)
    # the same token log-probs as a (B, T-1) matrix, then the C loss
    with torch.no_grad():
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = torch.log_softmax(logits[:, :-1].double(), -1).gather(2, batch["input_ids"][:, 1:, None]).squeeze(2)
    lp = lp.requires_grad_(True)
    mask = batch["response_mask"][:, 1:]
    mean = (lp * mask).sum(1) / mask.sum(1)
    tloss, _ = H.o1pruner_loss(mean, batch["ref_mean_logp"].double(), batch["weight"].double())
    tloss.backward()
    c = o1pruner.ppo_clip_loss(lp.detach().numpy(), batch["ref_mean_logp"].double().numpy(),
                               batch["weight"].double().numpy(), mask.numpy())
    assert_close(loss.item(), c.loss, rtol=1e-5, atol=1e-6, what="trainer loss vs C")
    assert_close(tloss.item(), c.loss, rtol=1e-6, atol=1e-7, what="torch loss vs C")
    assert_close(lp.grad.numpy(), c.grad, rtol=1e-5, atol=1e-8, what="d loss / d token logp")


# ---- dataset and collator ---------------------------------------------------------

def test_dataset_and_collator(tok):
    recs = records(5)
    recs[0]["ref_mean_logp"] = -1.5
    ds = H.O1PrunerDataset(recs, tok)
    assert len(ds) == 5 and ds.missing_reference().tolist() == [1, 2, 3, 4]
    batch = H.O1PrunerCollator(7, pad_to_multiple_of=8)([ds[0], ds[3]])
    assert batch["input_ids"].shape[1] % 8 == 0
    for row, i in enumerate([0, 3]):
        L = len(ds.input_ids[i])
        assert batch["input_ids"][row, :L].tolist() == ds.input_ids[i].tolist()
        assert batch["input_ids"][row, L:].eq(7).all() and batch["attention_mask"][row, L:].eq(0).all()
        assert batch["response_mask"][row].sum() == ds.num_tokens[i]
        assert batch["response_mask"][row, ds.starts[i]]
    assert batch["ref_mean_logp"][0] == -1.5 and math.isnan(batch["ref_mean_logp"][1])
    out = ds.records(recs)
    assert out[0]["ref_num_tokens"] == ds.num_tokens[0] and out[0]["prompt"] == recs[0]["prompt"]


@pytest.mark.parametrize("field,message", [
    ("prompt", r"missing field 'problem' \(or 'prompt'\)"),
    ("response", r"missing field 'response' \(or 'solution'\)"),
    ("weight", r"missing field 'weight'"),
])
def test_dataset_missing_field(tok, field, message):
    recs = records(3)
    del recs[2][field]
    with pytest.raises(ValueError, match=r"records\[2\]: " + message):
        H.O1PrunerDataset(recs, tok)


def test_dataset_accepts_pipeline_field_names(tok):
    recs = records(3)
    alt = [{"problem": r["prompt"], "solution": r["response"], "weight": r["weight"]} for r in recs]
    a, b = H.O1PrunerDataset(recs, tok), H.O1PrunerDataset(alt, tok)
    assert all(np.array_equal(x, y) for x, y in zip(a.input_ids, b.input_ids))


def test_dataset_bad_values(tok):
    recs = records(3)
    with pytest.raises(ValueError, match=r"records\[0\]: missing field 'ref_mean_logp'"):
        H.O1PrunerDataset(recs, tok, require_reference=True)
    bad = [dict(r) for r in recs]
    bad[1]["weight"] = float("nan")
    with pytest.raises(ValueError, match=r"records\[1\]\['weight'\]: must be finite"):
        H.O1PrunerDataset(bad, tok)
    bad = [dict(r) for r in recs]
    bad[1]["weight"] = "heavy"
    with pytest.raises(TypeError, match=r"records\[1\]\['weight'\]"):
        H.O1PrunerDataset(bad, tok)
    bad = [dict(r, ref_mean_logp=-1.0) for r in recs]
    bad[2]["ref_mean_logp"] = 0.5
    with pytest.raises(ValueError, match=r"records\[2\]\['ref_mean_logp'\]"):
        H.O1PrunerDataset(bad, tok)
    bad = [dict(r, ref_mean_logp=-1.0, ref_num_tokens=1) for r in recs]
    with pytest.raises(ValueError, match=r"records\[0\]\['ref_num_tokens'\]"):
        H.O1PrunerDataset(bad, tok)
    with pytest.raises(ValueError, match="records: empty"):
        H.O1PrunerDataset([], tok)
    with pytest.raises(TypeError, match="records"):
        H.O1PrunerDataset({"prompt": ["a"]}, tok)
    with pytest.raises(TypeError, match=r"records\[0\]"):
        H.O1PrunerDataset(["a"], tok)
    with pytest.warns(UserWarning, match="responses: .* truncated"):
        ds = H.O1PrunerDataset(recs, tok, max_length=30)
    assert ds.num_truncated == 3 and max(len(x) for x in ds.input_ids) == 30


# ---- the trainer -------------------------------------------------------------------

def make_trainer(model, tok, recs, tmp_path, **kw):  # noqa: D103
    args = dict(learning_rate=3e-3, per_device_train_batch_size=4, gradient_accumulation_steps=1,
                per_device_eval_batch_size=4, num_train_epochs=1, save_strategy="no", use_cpu=True,
                logging_steps=1, disable_tqdm=True, seed=0)
    args.update(kw.pop("args", {}))
    return H.O1PrunerTrainer(model=model, args=H.paper_training_arguments(str(tmp_path), **args),
                             train_dataset=recs, eval_dataset=kw.pop("eval_dataset", recs),
                             processing_class=tok, **kw)


def fresh_model(tok, seed=0):
    return H.tiny_qwen2(tok, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                        intermediate_size=64, max_position_embeddings=128, seed=seed)


def test_trainer_reference_equals_response_logprobs(tok, tmp_path):
    m = fresh_model(tok)
    recs = records(10)
    tr = make_trainer(m, tok, recs, tmp_path)
    ref_lp = tr.compute_reference()
    direct = H.response_logprobs(m, tok, [r["prompt"] for r in recs], [r["response"] for r in recs])
    assert_close(ref_lp, direct.mean, rtol=1e-5, atol=1e-5)
    # at step 0 the ratio is 1: the loss is -mean(w) = 0 for z-normalised weights
    ev = tr.evaluate()
    assert abs(ev["eval_loss"]) < 1e-5


def test_trainer_requires_reference(tok, tmp_path):
    tr = make_trainer(fresh_model(tok), tok, records(4), tmp_path)
    with pytest.raises(ValueError, match="ref_mean_logp"):
        tr.train()


def test_trainer_loss_decreases_and_checkpoint_reloads(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    m = fresh_model(tok, seed=1)
    recs = records(16, seed=5)
    tr = make_trainer(m, tok, recs, tmp_path / "run", args=dict(num_train_epochs=4))
    tr.compute_reference()
    loss0 = tr.evaluate()["eval_loss"]
    tr.train()
    loss1 = tr.evaluate()["eval_loss"]
    assert loss1 < loss0 - 0.05, (loss0, loss1)
    logs = [l for l in tr.state.log_history if "loss" in l]
    assert len(logs) == 16 and all("ratio_mean" in l and "clip_fraction" in l for l in logs)
    # positive-weight samples became likelier, negative ones less likely
    P, R = [r["prompt"] for r in recs], [r["response"] for r in recs]
    after = H.response_logprobs(m, tok, P, R).mean
    delta = after - tr.train_dataset.ref_mean_logp
    w = np.array([r["weight"] for r in recs])
    assert np.corrcoef(w, delta)[0, 1] > 0.5
    # save and reload: same model, same tokenizer
    out = tmp_path / "ckpt"
    tr.save_model(str(out))
    m2 = transformers.AutoModelForCausalLM.from_pretrained(str(out))
    tok2 = transformers.AutoTokenizer.from_pretrained(str(out))
    assert tok2(R[0])["input_ids"] == tok(R[0])["input_ids"]
    again = H.response_logprobs(m2, tok2, P, R).mean
    assert_close(again, after, rtol=1e-5, atol=1e-5, what="reloaded checkpoint")


def test_gradient_accumulation_matches_big_batch(tok, tmp_path):
    """One optimiser step over 4 sequences: batch 4 x 1 step equals batch 2 x
    2 accumulation steps (the loss is a mean over the effective batch)."""
    recs = records(4, seed=7)
    for r in recs:  # equal lengths so both splits weigh sequences alike
        r["response"] = "12+13=25"
    params = []
    for bs, ga in ((4, 1), (2, 2)):
        m = fresh_model(tok, seed=2)
        tr = make_trainer(m, tok, recs, tmp_path / f"ga{ga}",
                          args=dict(per_device_train_batch_size=bs, gradient_accumulation_steps=ga,
                                    optim="sgd", learning_rate=0.5, warmup_steps=0, max_grad_norm=1e9,
                                    lr_scheduler_type="constant"))
        # shift the reference so the ratios differ from 1 and clipping is exercised
        tr.compute_reference()
        tr.train_dataset.set_reference(tr.train_dataset.ref_mean_logp + np.array([0.1, -0.3, 0.0, 0.25]))
        tr.train()
        params.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    base = torch.cat([p.detach().flatten() for p in fresh_model(tok, seed=2).parameters()])
    assert (params[0] - base).abs().max() > 1e-4  # it moved
    assert_close(params[1].numpy(), params[0].numpy(), rtol=1e-4, atol=1e-6)


def test_trainer_bad_arguments(tok, tmp_path):
    m = fresh_model(tok)
    with pytest.raises(ValueError, match="clip_eps"):
        make_trainer(m, tok, records(2), tmp_path, clip_eps=1.5)
    with pytest.raises(ValueError, match="processing_class"):
        H.O1PrunerTrainer(model=m, args=H.paper_training_arguments(str(tmp_path), use_cpu=True),
                          train_dataset=records(2))
    with pytest.raises(ValueError, match=r"records\[1\]: missing field 'weight'"):
        recs = records(2)
        del recs[1]["weight"]
        make_trainer(m, tok, recs, tmp_path)


def test_trainer_with_tokenizer_without_pad_token(tmp_path):
    nopad = H.tiny_tokenizer(corpus(), vocab_size=320, pad_token=False)
    m = fresh_model(nopad)
    with pytest.warns(UserWarning, match="tokenizer: it has no pad_token"):
        tr = make_trainer(m, nopad, records(4), tmp_path, eval_dataset=None,
                          args=dict(max_steps=1, per_device_train_batch_size=4))
    tr.compute_reference()
    tr.train()
    assert tr.state.global_step == 1
    with pytest.raises(RuntimeError, match="already been trained"):
        tr.compute_reference()


def test_paper_training_arguments(tmp_path):
    a = H.paper_training_arguments(str(tmp_path), use_cpu=True)
    assert a.learning_rate == 2e-7 and a.max_grad_norm == 10.0 and a.num_train_epochs == 1
    assert getattr(a.lr_scheduler_type, "value", a.lr_scheduler_type) == "cosine"
    ratio = getattr(a, "warmup_ratio", None) or a.warmup_steps
    assert ratio == 0.1
    assert a.per_device_train_batch_size * a.gradient_accumulation_steps == 32
    assert H.paper_training_arguments(str(tmp_path), model="qwq-32b", use_cpu=True).learning_rate == 2e-6
    with pytest.raises(ValueError, match="model"):
        H.paper_training_arguments(str(tmp_path), model="gpt")


# ---- generation --------------------------------------------------------------------

def test_generator_greedy_matches_manual_argmax(model, tok):
    prompts = [H.render_prompt(p, tok) for p in ("1+2", "30+9")]
    out = H.HFGenerator(model, tok, max_new_tokens=6, batch_size=2)(prompts)
    assert len(out) == 2
    for text, got in zip(prompts, out):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        toks = []
        with torch.no_grad():
            for _ in range(6):
                nxt = int(model(torch.tensor([ids + toks])).logits[0, -1].argmax())
                if nxt == tok.eos_token_id:
                    break
                toks.append(nxt)
        assert got["token_ids"] == toks
        assert got["finished"] == (len(toks) < 6)
        assert got["text"] == tok.decode(toks, skip_special_tokens=True)


def test_generator_sampling_is_seeded(model, tok):
    g = H.HFGenerator(model, tok, max_new_tokens=5, do_sample=True, temperature=1.0, top_p=0.9)
    p = [H.render_prompt("1+2", tok)] * 3
    assert g(p, seed=3) == g(p, seed=3)
    with pytest.raises(ValueError, match="temperature"):
        H.HFGenerator(model, tok, do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        H.HFGenerator(model, tok, max_new_tokens=0)


def test_pipeline_records_train_directly(model, tok, tmp_path):
    """presample (HFGenerator) -> build_dataset -> O1PrunerTrainer, with the
    template check: training with another template than sampling fails."""
    import o1pruner
    from o1pruner import PromptTemplate

    problems = [{"problem": f"{a}+{b}", "ground_truth_answer": str(a + b)} for a, b in [(1, 2), (3, 4), (10, 5)]]
    grader = lambda texts, golds: [g in t for t, g in zip(texts, golds)]  # noqa: E731
    tpl = PromptTemplate(system="Add.")
    samples = o1pruner.presample(H.HFGenerator(model, tok, max_new_tokens=8, do_sample=True), problems, k=4,
                                 tokenizer=tok, template=tpl, grader=grader, progress=False)
    ds = o1pruner.build_dataset(samples, samples_per_problem=2)
    tr = make_trainer(fresh_model(tok), tok, ds, tmp_path, template=tpl, eval_dataset=None)
    assert len(tr.train_dataset) == 6
    with pytest.raises(ValueError, match=r"records\[0\]\['prompt'\]: the stored prompt"):
        make_trainer(fresh_model(tok), tok, ds, tmp_path, eval_dataset=None)  # default template: no system turn


# ---- the documented recipe --------------------------------------------------------

def test_example_script_and_configs(tok, tmp_path):
    import importlib.util
    import json
    import pathlib

    import o1pruner.io as io

    root = pathlib.Path(__file__).resolve().parents[1] / "examples" / "hf"
    cfg = json.loads((root / "ds_zero3.json").read_text())
    assert cfg["zero_optimization"]["stage"] == 3 and cfg["gradient_clipping"] == "auto"
    yaml = pytest.importorskip("yaml")
    acc = yaml.safe_load((root / "accelerate_zero3.yaml").read_text())
    assert acc["distributed_type"] == "DEEPSPEED"
    assert (root.parents[1] / acc["deepspeed_config"]["deepspeed_config_file"]).exists()

    model_dir = tmp_path / "tiny"
    fresh_model(tok).save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    recs = [{"problem": r["prompt"], "solution": r["response"], "weight": r["weight"]} for r in records(8)]
    data = tmp_path / "train.jsonl"
    io.write_jsonl(data, recs)
    spec = importlib.util.spec_from_file_location("train_o1pruner", root / "train_o1pruner.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "run"
    argv = ["--model", str(model_dir), "--data", str(data), "--output", str(out), "--use-cpu", "--batch", "4",
            "--per-device-batch", "2", "--lr", "1e-3", "--max-steps", "2"]
    assert mod.main(argv) == 0
    saved = list(io.read_jsonl(out / "records_with_reference.jsonl"))
    assert len(saved) == 8 and all(r["ref_mean_logp"] < 0 and r["ref_num_tokens"] > 0 for r in saved)
    direct = H.response_logprobs(fresh_model(tok), tok, [r["problem"] for r in recs], [r["solution"] for r in recs])
    assert_close([r["ref_mean_logp"] for r in saved], direct.mean, rtol=1e-5, atol=1e-5)
    assert (out / "final" / "config.json").exists()
    assert mod.main(argv + ["--reference-only"]) == 0  # reuses the saved reference
