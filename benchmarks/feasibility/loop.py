"""O1-Pruner end to end on the built-in reference model (C TinyLM): pre-sample,
build the weighted set, off-policy PPO-clip fine-tuning, greedy evaluation on
held-out problems; optionally the SFT-shortest baseline. Prints the numbers
issue 6 asks for and the time (wall and CPU) of each stage.

Uses the package's pieces: o1pruner.presample, o1pruner.build_dataset /
sft_shortest_dataset, o1pruner.ppo_clip_loss, TinyLM forward/backward/step,
o1pruner.aes. The training loop itself is written out here (the pipeline's
Trainer is built separately); it follows method.md step 3.

    cd benchmarks/feasibility
    PYTHONPATH=../.. python loop.py                       # shipped reference, defaults
    PYTHONPATH=../.. python loop.py --ckpt DIR --ratio token --eps-high 0.28 --tag T
    PYTHONPATH=../.. python loop.py --baseline            # also the SFT-shortest baseline
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

import o1pruner
from o1pruner.models import TinyLM
from o1pruner.models.reference_report import format_report, level_report
from o1pruner.models.train_reference import pad_batch
from o1pruner.tasks.arithmetic import ArithmeticTask, CharTokenizer, parse_solution

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--ckpt", default=None, help="reference checkpoint (default: the shipped one)")
ap.add_argument("--ntrain", type=int, default=500, help="pre-sampled training problems")
ap.add_argument("--K", type=int, default=8, help="samples per problem")
ap.add_argument("--temp", type=float, default=1.0)
ap.add_argument("--top-p", type=float, default=1.0)
ap.add_argument("--max-new", type=int, default=230)
ap.add_argument("--lam", type=float, default=2.0)
ap.add_argument("--m", type=int, default=2, help="samples_per_problem (0: all K)")
ap.add_argument("--normalize", default="dataset", choices=["dataset", "group", "none"])
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--warmup", type=float, default=0.1)
ap.add_argument("--min-lr", type=float, default=0.0, help="final lr as a fraction of lr")
ap.add_argument("--grad-clip", type=float, default=10.0)
ap.add_argument("--eps-low", type=float, default=0.2)
ap.add_argument("--eps-high", type=float, default=0.2)
ap.add_argument("--ratio", default="sequence_mean", choices=["sequence_mean", "token"])
ap.add_argument("--aggregate", default=None)
ap.add_argument("--neval", type=int, default=100, help="held-out problems per level")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--samples", default=None, help="JSONL of pre-samples (reused if it exists with the same settings)")
ap.add_argument("--baseline", action="store_true", help="also run the SFT-shortest baseline")
ap.add_argument("--only-baseline", action="store_true")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--tag", default="loop")
ap.add_argument("--save", default=None, help="save the pruned model here")
args = ap.parse_args()
print(json.dumps(vars(args)), flush=True)
o1pruner.set_num_threads(args.threads)
tok = CharTokenizer()
task = ArithmeticTask()
timing = {}


class Clock:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *a):
        timing[self.name] = {"wall_s": round(time.perf_counter() - self.t, 2), "cpu_s": round(time.process_time() - self.c, 2)}
        print(f"[time] {self.name}: {timing[self.name]}", flush=True)


def load():
    if args.ckpt is None:
        from o1pruner.models import load_reference
        return load_reference()
    return TinyLM.load(args.ckpt, optimizer=False)


ref = load()
results = {"args": vars(args)}
with Clock("eval_reference"):
    results["reference"] = level_report(ref, task, per_level=args.neval, seed=123, tokenizer=tok)
print("reference:\n" + format_report(results["reference"]), flush=True)

# ---- step 1: pre-sampling -----------------------------------------------------
train = task.problems(args.ntrain, split="train", seed=args.seed + 1000)
records = [{"problem_id": i, "problem": p.expr, "ground_truth_answer": str(p.answer), "difficulty": p.level}
           for i, p in enumerate(train)]
template = o1pruner.PromptTemplate("Q:{problem}\n")
with Clock("presample"):
    samples = o1pruner.presample(ref, records, args.K, tokenizer=tok, template=template, out=args.samples,
                                 batch_size=max(1, 512 // args.K), seed=args.seed, progress=False,
                                 generate_kwargs=dict(tokenizer=tok, temperature=args.temp, top_p=args.top_p,
                                                      max_new_tokens=args.max_new, batch_size=512))
n_tok = sum(r["length"] for r in samples)
print(f"presampled {len(samples)} samples, {n_tok} tokens ({n_tok / timing['presample']['cpu_s']:.0f} tok/CPU-s)", flush=True)
lv = np.array([r["difficulty"] for r in samples])
corr = np.array([r["correct"] for r in samples])
lens = np.array([r["length"] for r in samples], dtype=float)
nck = np.array([parse_solution(r["solution"])["n_checks"] for r in samples])
stats = {}
for l in range(1, task.n_levels + 1):
    s = lv == l
    pk = np.bincount(nck[s], minlength=4)[:4] / s.sum()
    acck = [float(corr[s][nck[s] == k].mean()) if np.any(nck[s] == k) else float("nan") for k in range(4)]
    lenk = [float(lens[s][nck[s] == k].mean()) if np.any(nck[s] == k) else float("nan") for k in range(4)]
    stats[l] = dict(acc=float(corr[s].mean()), len=float(lens[s].mean()), p_k=pk.tolist(), acc_k=acck, len_k=lenk)
    print(f"samples level {l}: acc {corr[s].mean():.3f} len {lens[s].mean():.1f} P(k) {np.round(pk, 2)} "
          f"acc|k {np.round(acck, 2)} len|k {np.round(lenk, 1)}", flush=True)
results["samples"] = stats


# ---- training -------------------------------------------------------------------
def encode(recs):
    seqs, plen = [], []
    for r in recs:
        p = tok.encode(r["prompt"])
        seqs.append(p + tok.encode(r["solution"]) + [tok.eos_token_id])
        plen.append(len(p))
    return seqs, plen


def batch_arrays(seqs, plen, idx):
    ids, mask = pad_batch([seqs[i] for i in idx], tok.pad_token_id)
    tgt = o1pruner.models.next_token_targets(ids, mask, prompt_lengths=[plen[i] for i in idx])
    return ids, mask, tgt


def lr_at(step, nsteps):
    warm = max(1, int(round(args.warmup * nsteps)))
    if step < warm:
        return args.lr * (step + 1) / warm
    frac = (step - warm) / max(1, nsteps - warm)
    return args.lr * (args.min_lr + (1 - args.min_lr) * 0.5 * (1 + math.cos(math.pi * frac)))


def train(ds, name, weighted=True):
    recs = ds.records
    seqs, plen = encode(recs)
    w = np.array([r["weight"] for r in recs], dtype=np.float64)
    policy = load()
    ref_lp = None
    if weighted:
        with Clock(f"{name}_ref_logprobs"):
            ref_lp = []
            for s in range(0, len(seqs), 64):
                idx = np.arange(s, min(len(seqs), s + 64))
                ids, mask, tgt = batch_arrays(seqs, plen, idx)
                ref_lp.append((idx, ref.logprobs(ids, mask, tgt)))
            ref_rows = {}
            for idx, lp in ref_lp:
                for j, i in enumerate(idx):
                    ref_rows[i] = lp[j]
    rng = np.random.default_rng(args.seed + 1)
    nsteps = args.epochs * math.ceil(len(seqs) / args.batch)
    step = 0
    log = []
    with Clock(f"{name}_train"):
        for ep in range(args.epochs):
            perm = rng.permutation(len(seqs))
            for b0 in range(0, len(perm), args.batch):
                idx = perm[b0:b0 + args.batch]
                ids, mask, tgt = batch_arrays(seqs, plen, idx)
                valid = tgt != -100
                lr = lr_at(step, nsteps)
                policy.zero_grad()
                logp = policy.forward(ids, mask, tgt)
                if weighted:
                    T = ids.shape[1]
                    rl = np.zeros_like(logp)
                    for j, i in enumerate(idx):
                        r = ref_rows[i]
                        rl[j, :min(T, r.shape[0])] = r[:T]
                    res = o1pruner.ppo_clip_loss(logp, rl, w[idx], valid, eps_low=args.eps_low, eps_high=args.eps_high,
                                                 ratio=args.ratio, aggregate=args.aggregate)
                    grad, loss, st = res.grad, res.loss, res.stats
                else:  # SFT baseline: mean NLL over tokens of the batch
                    n = valid.sum()
                    grad = np.where(valid, -1.0 / n, 0.0).astype(np.float32)
                    loss, st = float(-(logp[valid]).sum() / n), None
                policy.backward(grad)
                gn = policy.step(lr=lr, betas=(0.9, 0.95), weight_decay=0.0, max_grad_norm=args.grad_clip)
                if st is not None:
                    log.append(dict(step=step, loss=loss, clip=st.clip_fraction, kl=st.approx_kl, rmin=st.ratio_min,
                                    rmax=st.ratio_max, gn=gn))
                    if step % 20 == 0 or step == nsteps - 1:
                        print(f"  {name} step {step}/{nsteps} loss {loss:+.4f} clipfrac {st.clip_fraction:.2f} "
                              f"kl {st.approx_kl:.4f} ratio [{st.ratio_min:.2f},{st.ratio_max:.2f}] gnorm {gn:.2f} lr {lr:.1e}",
                              flush=True)
                step += 1
    return policy, log


def report(name, model):
    with Clock(f"eval_{name}"):
        rep = level_report(model, task, per_level=args.neval, seed=123, tokenizer=tok)
    r0 = results["reference"]
    a0, l0 = r0["all"]["accuracy"], r0["all"]["mean_length"]
    a1, l1 = rep["all"]["accuracy"], rep["all"]["mean_length"]
    rep["delta_length"] = (l1 - l0) / l0
    rep["delta_accuracy"] = a1 - a0
    rep["aes"] = float(o1pruner.aes(a0, l0, a1, l1))
    print(f"{name}:\n" + format_report(rep), flush=True)
    print(f"{name}: length {l0:.1f} -> {l1:.1f} ({100 * rep['delta_length']:+.1f}%), acc {a0:.3f} -> {a1:.3f} "
          f"({100 * rep['delta_accuracy']:+.1f} pts), AES {rep['aes']:.3f}", flush=True)
    cuts = []
    for x, y in zip(r0["levels"], rep["levels"]):
        c = (y["mean_length"] - x["mean_length"]) / x["mean_length"]
        cuts.append(c)
        print(f"  level {x['level']}: len {x['mean_length']:.1f} -> {y['mean_length']:.1f} ({100 * c:+.0f}%), "
              f"acc {x['accuracy']:.3f} -> {y['accuracy']:.3f}, passes {x['checks']:.2f} -> {y['checks']:.2f}", flush=True)
    rep["cut_per_level"] = cuts
    results[name] = rep


if not args.only_baseline:
    with Clock("build_dataset"):
        ds = o1pruner.build_dataset(samples, lam=args.lam, samples_per_problem=args.m or None,
                                    normalize=None if args.normalize == "none" else args.normalize, seed=42)
    print(ds.summary(), flush=True)
    wl = np.array([r["difficulty"] for r in ds.records])
    wk = np.array([parse_solution(r["solution"])["n_checks"] for r in ds.records])
    ww = np.array([r["weight"] for r in ds.records])
    wtab = {}
    for l in range(1, task.n_levels + 1):
        s = wl == l
        wtab[l] = {k: (float(ww[s & (wk == k)].mean()), int(np.sum(s & (wk == k)))) for k in range(4) if np.any(s & (wk == k))}
        print(f"weights level {l}: " + " ".join(f"k={k}:{v[0]:+.2f}(n={v[1]})" for k, v in wtab[l].items()), flush=True)
    results["weights"] = wtab
    policy, log = train(ds, "o1pruner")
    results["train_log"] = log
    report("o1pruner", policy)
    if args.save:
        policy.save(args.save, optimizer=False)
if args.baseline or args.only_baseline:
    with Clock("build_sft_shortest"):
        sds = o1pruner.sft_shortest_dataset(samples, n=2)
    base, _ = train(sds, "sft_shortest", weighted=False)
    report("sft_shortest", base)
results["timing"] = timing
os.makedirs("results", exist_ok=True)
with open(os.path.join("results", f"{args.tag}.json"), "w") as f:
    json.dump(results, f, indent=1, default=float)
print("timing:", json.dumps(timing), flush=True)
