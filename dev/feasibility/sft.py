"""SFT of the torch prototype on long-thought solutions; then greedy eval per level."""
import argparse, json, math, time, sys
import numpy as np
import torch
from dev.feasibility.tiny import TinyLM, batch_tensors, generate, make_example, token_logprobs
from o1pruner.tasks.arithmetic import ArithmeticTask, CharTokenizer, parse_solution, Level, LEVELS

ap = argparse.ArgumentParser()
ap.add_argument("--d", type=int, default=160)
ap.add_argument("--L", type=int, default=6)
ap.add_argument("--H", type=int, default=4)
ap.add_argument("--dff", type=int, default=448)
ap.add_argument("--steps", type=int, default=2000)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--wd", type=float, default=0.1)
ap.add_argument("--warmup", type=int, default=100)
ap.add_argument("--minutes", type=float, default=30)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", default="ckpt.pt")
ap.add_argument("--neval", type=int, default=100)
ap.add_argument("--errs", default="")
ap.add_argument("--check_probs", default="")
args = ap.parse_args()
print(vars(args), flush=True)

torch.manual_seed(args.seed)
tok = CharTokenizer()
levels = LEVELS
if args.errs:
    errs = [float(x) for x in args.errs.split(",")]
    levels = tuple(Level(l.n_operands, l.min_digits, l.max_digits, e) for l, e in zip(LEVELS, errs))
cp = tuple(float(x) for x in args.check_probs.split(",")) if args.check_probs else None
task = ArithmeticTask(levels=levels, check_probs=cp)
model = TinyLM(tok.vocab_size, args.d, args.L, args.H, args.dff)
print("params", model.nparams(), flush=True)
decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": nodecay, "weight_decay": 0}],
                        lr=args.lr, betas=(0.9, 0.95))
nprob = args.steps * args.batch
problems = task.problems(nprob, split="train", seed=args.seed, unique=False)
rng = np.random.default_rng(args.seed + 1)
examples = [make_example(tok, p.prompt, task.long_solution(p, rng).text) for p in problems]
# length bucketing: sort within windows of 64 batches, then shuffle batch order
W = 64 * args.batch
batches = []
for w0 in range(0, len(examples), W):
    win = sorted(examples[w0:w0 + W], key=lambda e: len(e[0]))
    batches += [win[i:i + args.batch] for i in range(0, len(win), args.batch)]
perm = rng.permutation(len(batches))
batches = [batches[i] for i in perm]
t0 = time.perf_counter(); c0 = time.process_time()
ntok = 0
for step in range(args.steps):
    lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
    for g in opt.param_groups:
        g["lr"] = lr
    batch = batches[step]
    inp, tgt, msk = batch_tensors(batch)
    lp = token_logprobs(model, inp, tgt)
    loss = -(lp * msk).sum() / msk.sum()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    ntok += inp.numel()
    if step % 100 == 0 or step == args.steps - 1:
        el = time.perf_counter() - t0; ce = time.process_time() - c0
        print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} wall {el:.0f}s cpu {ce:.0f}s tok/cpu-s {ntok/ce:.0f}", flush=True)
    if time.process_time() - c0 > args.minutes * 60:
        print("time budget hit at step", step, flush=True)
        break
train_s = time.process_time() - c0
torch.save({"cfg": model.cfg, "state": model.state_dict(), "levels": [l.__dict__ for l in levels], "check_probs": task.check_probs}, args.out)

# greedy eval on held-out problems
model.eval()
ev = task.problems(args.neval * task.n_levels, split="heldout", seed=123)
t1 = time.process_time()
outs = generate(model, tok, [p.prompt for p in ev], max_new=230)
gen_s = time.process_time() - t1
texts = [tok.decode(o) for o in outs]
lens = np.array([len(o) for o in outs])
corr = task.grade(texts, ev)
lv = np.array([p.level for p in ev])
res = {"args": vars(args), "train_s": train_s, "gen_s": gen_s}
for l in range(1, task.n_levels + 1):
    s = lv == l
    ps = [parse_solution(t) for t, m in zip(texts, s) if m]
    nck = np.array([q["n_checks"] for q in ps])
    gcorr = np.mean([q["guess"] == p.answer for q, p, in zip(ps, [p for p, m in zip(ev, s) if m])])
    wf = np.mean([q["well_formed"] for q in ps])
    res[l] = dict(acc=float(corr[s].mean()), len=float(lens[s].mean()), checks=float(nck.mean()),
                  guess_acc=float(gcorr), well_formed=float(wf))
    print(f"level {l}: acc {corr[s].mean():.3f} len {lens[s].mean():.1f} checks {nck.mean():.2f} "
          f"guess_acc {gcorr:.2f} wf {wf:.2f}", flush=True)
print(f"all: acc {corr.mean():.3f} len {lens.mean():.1f} gen {gen_s:.1f}s", flush=True)
for t in texts[:3] + texts[-3:]:
    print(t)
    print("--")
json.dump(res, open(args.out + ".json", "w"), indent=1)
