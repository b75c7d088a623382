"""Building the O1-Pruner training set from a samples JSONL at scale:
build_dataset_streaming (two passes, bounded memory) against the in-memory
build_dataset, samples/s and peak RSS at two file sizes.

Samples are synthetic, shaped like pre-sampled reasoning traces (K = 16 per
problem, a chain of thought ending in \\boxed{answer}); lengths are given,
correctness is graded by the package grader (o1pruner.grading) when it is in
the build, else taken from the file (the table says which).

    python benchmarks/bench_stream.py [--smoke]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

import common

K = 16


def write_samples(path: str, n_problems: int, words: int, seed: int = 0, graded: bool = True) -> int:
    """A JSONL of n_problems * K sample records, written line by line."""
    import json

    rng = np.random.default_rng(seed)
    filler = "Let me check this step again carefully. "
    with open(path, "w") as f:
        for p in range(n_problems):
            gold = str(int(rng.integers(0, 10_000)))
            for j in range(K):
                n_words = int(rng.integers(words // 2, words * 2))
                ok = rng.random() < 0.6
                ans = gold if ok else str(int(gold) + 1)
                rec = {"problem_id": p, "problem": f"Compute the value of problem {p}.", "ground_truth_answer": gold,
                       "solution": filler * (n_words // 7) + f"So the answer is \\boxed{{{ans}}}.",
                       "length": n_words * 2}
                if not graded:
                    rec["correct"] = bool(ok)
                f.write(json.dumps(rec) + "\n")
    return n_problems * K


def have_grader() -> bool:
    try:
        import o1pruner.grading  # noqa: F401
    except ImportError:
        return False
    return True


STREAM_CODE = """import o1pruner
from o1pruner.streaming import build_dataset_streaming

build_dataset_streaming({src!r}, {out!r}, chunk_size=2048)
"""

MEMORY_CODE = """import o1pruner

o1pruner.build_dataset({src!r}, out={out!r})
"""


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    threads = common.setup_threads(args.threads)
    import o1pruner
    import o1pruner.io as io
    from o1pruner.streaming import build_dataset_streaming

    graded = have_grader()
    sizes = [200, 800] if args.smoke else [6250, 25000]  # problems; x16 samples
    words = 40 if args.smoke else 150
    repeat = 1 if args.smoke else max(1, min(args.repeat, 3))
    tmp = tempfile.mkdtemp(prefix="bench_stream_")
    rows, results = [], []
    try:
        for n_problems in sizes:
            src = os.path.join(tmp, f"samples_{n_problems}.jsonl")
            n = write_samples(src, n_problems, words, graded=graded)
            mb = os.path.getsize(src) / 2**20
            out_s, out_m = os.path.join(tmp, "stream.jsonl"), os.path.join(tmp, "memory.jsonl")
            # correctness first: the same records as the in-memory builder
            res = build_dataset_streaming(src, out_s)
            ds = o1pruner.build_dataset(src, out=out_m)
            a = sorted(io.read_jsonl(out_s), key=lambda r: (r["problem_id"], r["sample_index"]))
            b = sorted(ds.records, key=lambda r: (r["problem_id"], r["sample_index"]))
            assert len(a) == len(b) == res.n_kept
            err = max(abs(x["weight"] - y["weight"]) for x, y in zip(a, b))
            assert err < 1e-9 and all(x["length"] == y["length"] and x["correct"] == y["correct"] for x, y in zip(a, b))
            del a, b, ds
            t = common.interleaved_medians({
                "stream": lambda: build_dataset_streaming(src, out_s),
                "memory": lambda: o1pruner.build_dataset(src, out=out_m),
            }, repeat=repeat, warmup=0)
            rss_s = common.peak_rss_of(STREAM_CODE.format(src=src, out=out_s))
            rss_m = common.peak_rss_of(MEMORY_CODE.format(src=src, out=out_m))
            r = {"samples": n, "file_mb": round(mb, 1), "graded": graded,
                 "stream_s": t["stream"], "memory_s": t["memory"],
                 "stream_samples_per_s": n / t["stream"], "memory_samples_per_s": n / t["memory"],
                 "stream_peak_rss_mb": rss_s / 2**20, "memory_peak_rss_mb": rss_m / 2**20,
                 "max_weight_diff": err}
            results.append(r)
            rows.append([n, f"{mb:.0f}", "C grader" if graded else "given",
                         f"{r['stream_samples_per_s']:,.0f}", f"{r['memory_samples_per_s']:,.0f}",
                         f"{t['memory'] / t['stream']:.2f}",
                         f"{r['stream_peak_rss_mb']:.0f}", f"{r['memory_peak_rss_mb']:.0f}"])
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print(common.table(rows, ["samples", "file MiB", "correctness", "stream samples/s", "in-memory samples/s",
                              "speed ratio (stream/in-memory)", "stream peak RSS MiB", "in-memory peak RSS MiB"]))
    print("peak RSS: growth over a child that only imports o1pruner")
    path = common.write_result("bench_stream", {"results": results, "threads": threads, "K": K}, args.out, args.smoke)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
