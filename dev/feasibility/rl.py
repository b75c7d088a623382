"""O1-Pruner loop on the torch prototype: presample, weights, seq-mean PPO-clip, eval."""
import argparse, json, math, time, sys, pickle, os
import numpy as np
import torch
from dev.feasibility.tiny import TinyLM, batch_tensors, generate, make_example, token_logprobs
import o1pruner
from o1pruner.tasks.arithmetic import ArithmeticTask, CharTokenizer, parse_solution, Level, LEVELS

ap = argparse.ArgumentParser()
ap.add_argument("--ckpt", default="run1.pt")
ap.add_argument("--ntrain", type=int, default=500)
ap.add_argument("--K", type=int, default=8)
ap.add_argument("--m", type=int, default=2)
ap.add_argument("--temp", type=float, default=1.0)
ap.add_argument("--lam", type=float, default=2.0)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--eps", type=float, default=0.2)
ap.add_argument("--neval", type=int, default=100)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--samples", default="")
ap.add_argument("--tag", default="rl")
ap.add_argument("--sft_shortest", action="store_true")
ap.add_argument("--ratio", default="sequence", choices=["sequence", "token"])
args = ap.parse_args()
print(vars(args), flush=True)

tok = CharTokenizer()
ck = torch.load(args.ckpt)
cfg = ck["cfg"]
levels = tuple(Level(**l) for l in ck["levels"])
task = ArithmeticTask(levels=levels)
torch.manual_seed(args.seed)


def load_model():
    m = TinyLM(cfg["V"], cfg["d"], cfg["L"], cfg["H"], cfg["dff"], cfg["ctx"])
    m.load_state_dict(ck["state"])
    return m


def evaluate(model, name):
    model.eval()
    ev = task.problems(args.neval * task.n_levels, split="heldout", seed=123)
    c0 = time.process_time()
    outs = generate(model, tok, [p.prompt for p in ev], max_new=230)
    gen_s = time.process_time() - c0
    texts = [tok.decode(o) for o in outs]
    lens = np.array([len(o) for o in outs])
    corr = task.grade(texts, ev)
    lv = np.array([p.level for p in ev])
    res = {"acc": float(corr.mean()), "len": float(lens.mean()), "gen_cpu_s": gen_s, "levels": {}}
    bad = [(p.prompt, t) for p, t, c in zip(ev, texts, corr) if not c][:12]
    json.dump(bad, open(f"{args.tag}.{name}.failures.json", "w"), indent=1)
    for l in range(1, task.n_levels + 1):
        s = lv == l
        nck = np.array([parse_solution(t)["n_checks"] for t, mm in zip(texts, s) if mm])
        res["levels"][l] = dict(acc=float(corr[s].mean()), len=float(lens[s].mean()), checks=float(nck.mean()))
        print(f"[{name}] level {l}: acc {corr[s].mean():.3f} len {lens[s].mean():.1f} checks {nck.mean():.2f}", flush=True)
    print(f"[{name}] all: acc {corr.mean():.3f} len {lens.mean():.1f} (gen cpu {gen_s:.0f}s)", flush=True)
    return res


ref = load_model()
results = {"args": vars(args)}
refcache = args.ckpt + f".refeval{args.neval}.json"
if os.path.exists(refcache):
    results["reference"] = json.load(open(refcache))
    results["reference"]["levels"] = {int(k): v for k, v in results["reference"]["levels"].items()}
    print("reference eval (cached):", json.dumps(results["reference"]), flush=True)
else:
    results["reference"] = evaluate(ref, "reference")
    json.dump(results["reference"], open(refcache, "w"))

# ---- step 1: presampling ----
train = task.problems(args.ntrain, split="train", seed=args.seed + 1000)
if args.samples and os.path.exists(args.samples):
    S = pickle.load(open(args.samples, "rb"))
else:
    prompts = [p.prompt for p in train for _ in range(args.K)]
    c0 = time.process_time()
    outs = generate(ref, tok, prompts, max_new=230, temperature=args.temp, seed=args.seed)
    samp_s = time.process_time() - c0
    texts = [tok.decode(o) for o in outs]
    probs_rep = [p for p in train for _ in range(args.K)]
    S = dict(outs=outs, texts=texts, correct=task.grade(texts, probs_rep), samp_s=samp_s)
    if args.samples:
        pickle.dump(S, open(args.samples, "wb"))
print(f"presample cpu {S['samp_s']:.0f}s, {sum(len(o) for o in S['outs'])} tokens", flush=True)
lengths = np.array([len(o) for o in S["outs"]], dtype=np.float64)
correct = np.asarray(S["correct"], dtype=np.float64)
group = np.repeat(np.arange(len(train)), args.K)
stats = o1pruner.reference_stats(lengths, correct, group)
Lbar, Abar = stats.per_sample()
lvl_s = np.array([p.level for p in train])[group]
for l in range(1, task.n_levels + 1):
    s = lvl_s == l
    nck = np.array([parse_solution(t)["n_checks"] for t, mm in zip(S["texts"], s) if mm])
    print(f"samples level {l}: acc {correct[s].mean():.3f} len {lengths[s].mean():.1f} "
          f"P(k)={np.bincount(nck, minlength=4)[:4] / len(nck)}", flush=True)
    # accuracy per k
    accs = [correct[s][nck == k].mean() if np.any(nck == k) else float('nan') for k in range(4)]
    lens_k = [lengths[s][nck == k].mean() if np.any(nck == k) else float('nan') for k in range(4)]
    print(f"    acc by k {np.round(accs, 3)} len by k {np.round(lens_k, 1)}", flush=True)

# ---- step 2: weights (public code: keep m per problem after a seeded shuffle) ----
rng = np.random.default_rng(args.seed)
keep = []
for g in range(len(train)):
    idx = np.arange(g * args.K, (g + 1) * args.K)
    rng.shuffle(idx)
    keep += list(idx[: args.m])
keep = np.array(keep)
R = o1pruner.length_harmonizing_reward(lengths, correct, Lbar, Abar, lam=args.lam)
if args.sft_shortest:
    # baseline: SFT on the 2 shortest correct samples per problem
    keep = []
    for g in range(len(train)):
        idx = np.arange(g * args.K, (g + 1) * args.K)
        idx = idx[correct[idx] > 0]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        keep += list(idx[:2])
    keep = np.array(keep)
    w = np.ones(len(keep))
else:
    w = o1pruner.harmonize_weights(R[keep], clip=(-2.0, 4.0), normalize="dataset")
kl = lvl_s[keep]
for l in range(1, task.n_levels + 1):
    s = kl == l
    nck = np.array([parse_solution(S["texts"][i])["n_checks"] for i in keep[s]])
    print(f"weights level {l}: " + " ".join(
        f"k={k}:{w[s][nck == k].mean():+.2f}(n={np.sum(nck == k)})" for k in range(4) if np.any(nck == k)), flush=True)

# ---- step 3: off-policy PPO-clip, seq-mean ratio against the frozen reference ----
ex = [make_example(tok, train[group[i]].prompt, "") for i in keep]
examples = []
for i in keep:
    p = [tok.bos_token_id] + tok.encode(train[group[i]].prompt)
    r = S["outs"][i]
    if len(r) == 0 or r[-1] != tok.eos_token_id:
        r = r  # truncated sample: train on what was generated
    ids = p + list(r)
    mask = [0] * (len(p) - 1) + [1] * len(r)
    examples.append((ids, mask))


def seq_mean_lp(model, batch):
    inp, tgt, msk = batch_tensors(batch)
    lp = token_logprobs(model, inp, tgt)
    return (lp * msk).sum(1) / msk.sum(1).clamp(min=1)


with torch.no_grad():
    ref_lp = torch.cat([seq_mean_lp(ref, examples[i:i + 64]) for i in range(0, len(examples), 64)])
    ref_tok = []
    for i in range(0, len(examples), 64):
        inp, tgt, msk = batch_tensors(examples[i:i + 64])
        lpt = token_logprobs(ref, inp, tgt)
        for j in range(lpt.shape[0]):
            ref_tok.append(lpt[j])
policy = load_model()
policy.train()
opt = torch.optim.AdamW(policy.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
W = torch.tensor(w, dtype=torch.float32)
nsteps = args.epochs * math.ceil(len(examples) / args.batch)
warm = max(1, int(0.1 * nsteps))
step = 0
c0 = time.process_time()
log = []
for ep in range(args.epochs):
    perm = rng.permutation(len(examples))
    for b0 in range(0, len(perm), args.batch):
        bi = perm[b0:b0 + args.batch]
        lr = args.lr * (min(1.0, (step + 1) / warm)) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, step - warm) / max(1, nsteps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        lp = seq_mean_lp(policy, [examples[i] for i in bi])
        if args.ratio == "token" and not args.sft_shortest:
            inp, tgt, msk = batch_tensors([examples[i] for i in bi])
            lpt = token_logprobs(policy, inp, tgt)
            rt = torch.zeros_like(lpt)
            for j, i in enumerate(bi):
                n = ref_tok[i].shape[0]
                rt[j, :n] = ref_tok[i][: lpt.shape[1]] if n <= lpt.shape[1] else ref_tok[i][: lpt.shape[1]]
            rtok = torch.exp(lpt - rt)
            wb = W[bi][:, None]
            lt = torch.max(-wb * rtok, -wb * torch.clamp(rtok, 1 - args.eps, 1 + args.eps))
            loss = ((lt * msk).sum(1) / msk.sum(1)).mean()
            ratio = rtok[msk > 0]
            clipfrac = float(((ratio - 1).abs() > args.eps).float().mean())
        elif args.sft_shortest:
            loss = -lp.mean()
            clipfrac = 0.0
            ratio = torch.exp(lp - ref_lp[bi])
        else:
            ratio = torch.exp(lp - ref_lp[bi])
            wb = W[bi]
            l1 = -wb * ratio
            l2 = -wb * torch.clamp(ratio, 1 - args.eps, 1 + args.eps)
            loss = torch.max(l1, l2).mean()
            clipfrac = float(((ratio - 1).abs() > args.eps).float().mean())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        opt.step()
        if step % 20 == 0:
            print(f"step {step}/{nsteps} loss {loss.item():+.4f} clipfrac {clipfrac:.2f} "
                  f"ratio [{ratio.min().item():.2f},{ratio.max().item():.2f}] lr {lr:.1e} cpu {time.process_time() - c0:.0f}s",
                  flush=True)
        step += 1
train_s = time.process_time() - c0
print(f"train cpu {train_s:.0f}s for {step} steps", flush=True)
results["pruned"] = evaluate(policy, "o1pruner" if not args.sft_shortest else "sft_shortest")
r0, r1 = results["reference"], results["pruned"]
dl = (r0["len"] - r1["len"]) / r0["len"]
print(f"delta length {-100 * dl:.1f}%  delta acc {100 * (r1['acc'] - r0['acc']):+.1f} pts  "
      f"AES {o1pruner.aes(r0['acc'], r0['len'], r1['acc'], r1['len']):.3f}", flush=True)
for l in range(1, task.n_levels + 1):
    a, b = r0["levels"][l], r1["levels"][l]
    print(f"level {l}: len {a['len']:.1f} -> {b['len']:.1f} ({100 * (b['len'] - a['len']) / a['len']:+.0f}%), "
          f"acc {a['acc']:.3f} -> {b['acc']:.3f}, checks {a['checks']:.2f} -> {b['checks']:.2f}", flush=True)
results.update(train_cpu_s=train_s, presample_cpu_s=S["samp_s"])
json.dump(results, open(f"{args.tag}.json", "w"), indent=1)
