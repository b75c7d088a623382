"""O1-Pruner end to end on a C TinyLM reference with the package's own pieces
(o1pruner.presample, build_dataset / sft_shortest_dataset, Trainer, evaluate,
compare): the tuning runs behind ``o1pruner demo``'s settings. Prints
accuracy, mean length, their changes, AES and per-level numbers on
held-out problems, and appends one JSON line per run to --results.

    cd benchmarks/feasibility
    python -m dev.feasibility.loop --samples s500x8.jsonl --tag A                  # public-code defaults
    python -m dev.feasibility.loop --samples s500x8.jsonl --set ratio=token --set eps_high=1.0 --tag T
    python -m dev.feasibility.loop --samples s500x8.jsonl --baseline --tag SFT      # SFT-shortest only
    python -m dev.feasibility.loop --samples s500x8.jsonl --rounds 2 --tag R2       # iterate: re-presample the pruned model

``--set key=value`` sets a field of o1pruner.training.TrainConfig (values are
parsed as JSON when they can be, e.g. ``--set lam='"auto"'`` or ``--set lam=auto``).
The held-out problems and the pre-sampled training problems are the demo's
(same seeds and splits). Research script, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import o1pruner
from o1pruner.apps.demo import DEMO_TEMPLATE, copy_model, task_problems
from o1pruner.pipeline import compare, evaluate
from o1pruner.models import TinyLM, load_reference
from o1pruner.pipeline import build_dataset, presample, sft_shortest_dataset
from o1pruner.tasks import ArithmeticTask, CharTokenizer, parse_solution
from o1pruner.models.generator import TinyLMGenerator
from o1pruner.train import TrainConfig, Trainer

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--ckpt", default=None, help="reference checkpoint (default: the shipped one)")
ap.add_argument("--ntrain", type=int, default=500, help="pre-sampled training problems")
ap.add_argument("--K", type=int, default=8, help="samples per problem")
ap.add_argument("--temp", type=float, default=1.0)
ap.add_argument("--max-new", type=int, default=230)
ap.add_argument("--lam", type=float, default=2.0, help="lambda of build_dataset")
ap.add_argument("--m", type=int, default=2, help="samples_per_problem (0: all K)")
ap.add_argument("--normalize", default="dataset", choices=["dataset", "group", "none"])
ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a TrainConfig field")
ap.add_argument("--rounds", type=int, default=1, help="O1-Pruner rounds (round r+1 pre-samples round r's model)")
ap.add_argument("--neval", type=int, default=500, help="held-out problems (all levels)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--samples", default=None, help="JSONL of the reference's pre-samples (written or resumed)")
ap.add_argument("--baseline", action="store_true", help="run the SFT-shortest baseline instead of O1-Pruner")
ap.add_argument("--sft-n", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--tag", default="loop")
ap.add_argument("--results", default="loop_results.jsonl")
ap.add_argument("--save", default=None, help="save the final model here")
a = ap.parse_args()

o1pruner.set_num_threads(a.threads)
tok = CharTokenizer()
task = ArithmeticTask()
ref = load_reference("arithmetic") if a.ckpt is None else TinyLM.load(a.ckpt, optimizer=False)
train_problems = task_problems(task, a.ntrain, "train", a.seed)
eval_problems = task_problems(task, a.neval, "heldout", a.seed)
cfg = {}
for kv in a.set:
    k, v = kv.split("=", 1)
    try:
        cfg[k] = json.loads(v)
    except json.JSONDecodeError:
        cfg[k] = v
times = {}
cpu0 = time.process_time()


def sample(model, path, seed):
    t = time.perf_counter()
    g = TinyLMGenerator(model, tok, max_new_tokens=a.max_new)
    s = presample(g, train_problems, a.K, tokenizer=tok, template=DEMO_TEMPLATE, out=path,
                  batch_size=max(1, 512 // a.K), seed=seed, generate_kwargs={"temperature": a.temp},
                  save_token_ids=True, progress=False)
    times.setdefault("presample", 0.0)
    times["presample"] += time.perf_counter() - t
    return s


def run_eval(model, name):
    t = time.perf_counter()
    g = TinyLMGenerator(model, tok, max_new_tokens=a.max_new)
    r = evaluate(g, eval_problems, name=name, tokenizer=tok, template=DEMO_TEMPLATE, batch_size=512,
                 generate_kwargs={"temperature": 0.0}, seed=a.seed)
    times["eval_" + name] = time.perf_counter() - t
    return r


def per_level(res):
    out = {}
    for s in res.samples:
        d = out.setdefault(s["bucket"], {"c": [], "l": [], "p": []})
        d["c"].append(bool(s["correct"]))
        d["l"].append(s["length"])
        d["p"].append(parse_solution(s["solution"] or "")["n_checks"])
    return {k: {"acc": float(np.mean(v["c"])), "len": float(np.mean(v["l"])), "passes": float(np.mean(v["p"]))}
            for k, v in sorted(out.items())}


samples_path = a.samples or f"samples_{a.tag}.jsonl"
model = ref
stats = []
for rnd in range(a.rounds):
    path = samples_path if rnd == 0 else f"samples_{a.tag}_round{rnd + 1}.jsonl"
    samples = sample(model, path, a.seed + rnd)
    acc = float(np.mean([r["correct"] for r in samples]))
    ln = float(np.mean([r["length"] for r in samples]))
    stats.append({"round": rnd + 1, "sample_accuracy": acc, "sample_length": ln})
    t = time.perf_counter()
    if a.baseline:
        data = sft_shortest_dataset(samples, n=a.sft_n)
        conf = TrainConfig.from_dict(dict({"objective": "sft", "lr": 1e-4, "epochs": 3, "batch_size": 32}, **cfg))
    else:
        data = build_dataset(samples, lam=a.lam, samples_per_problem=a.m or None, seed=a.seed,
                             normalize=None if a.normalize == "none" else a.normalize)
        conf = TrainConfig.from_dict(dict({"lr": 1e-4, "epochs": 3, "batch_size": 32}, **cfg))
    tr = Trainer(copy_model(model), data, tok, conf, progress=False)
    hist = tr.train()
    times[f"train_round{rnd + 1}"] = time.perf_counter() - t
    last = hist[-1] if hist else {}
    stats[-1].update(steps=tr.total_steps, n_train=len(data), clip_fraction=last.get("clip_fraction"),
                     lam=None if tr.lam is None else float(tr.lam))
    model = tr.model
    if a.baseline:
        break

r_ref = run_eval(ref, "reference")
r_new = run_eval(model, "new")
row = compare(r_ref, {"new": r_new}, seed=a.seed, as_pandas=False).rows[-1]
lv_ref, lv_new = per_level(r_ref), per_level(r_new)
rec = {"tag": a.tag, "ckpt": a.ckpt, "baseline": a.baseline, "rounds": a.rounds, "lam": a.lam, "m": a.m,
       "normalize": a.normalize, "ntrain": a.ntrain, "K": a.K, "config": cfg, "rounds_info": stats,
       "ref_acc": r_ref.accuracy, "ref_len": r_ref.mean_length, "acc": r_new.accuracy, "len": r_new.mean_length,
       "dL": row["delta_length"], "dA": row["delta_accuracy"], "aes": row["aes"],
       "levels": {str(k): {"ref": lv_ref[k], "new": lv_new[k], "cut": lv_new[k]["len"] / lv_ref[k]["len"] - 1}
                  for k in lv_ref},
       "seconds": times, "cpu_seconds": time.process_time() - cpu0}
with open(a.results, "a") as f:
    f.write(json.dumps(rec) + "\n")
print(f"{a.tag}: acc {r_ref.accuracy:.3f} -> {r_new.accuracy:.3f} ({100 * row['delta_accuracy']:+.1f} pts), "
      f"len {r_ref.mean_length:.1f} -> {r_new.mean_length:.1f} ({100 * row['delta_length']:+.1f}%), AES {row['aes']:.2f}")
for k in lv_ref:
    print(f"  level {k}: acc {lv_ref[k]['acc']:.2f} -> {lv_new[k]['acc']:.2f}, len {lv_ref[k]['len']:.1f} -> "
          f"{lv_new[k]['len']:.1f} ({100 * rec['levels'][str(k)]['cut']:+.1f}%), passes {lv_ref[k]['passes']:.2f} -> "
          f"{lv_new[k]['passes']:.2f}")
print("  rounds:", stats)
print("  seconds:", {k: round(v, 1) for k, v in times.items()})
if a.save:
    model.save(a.save, optimizer=False)
