"""Leak figures of the README's Reliability section: 10^5 calls of every C
entry point (half of them raising ValueError/TypeError), RSS, Python's
allocated blocks and the inputs' reference counts before and after.

    python benchmarks/leak_check.py            # 10^5 each
    python benchmarks/leak_check.py --calls 2000

Not a bench_*.py (run_all.py skips it): it takes minutes, not seconds.
Exits non-zero when a loop leaks (any refcount drift, > 1,000 blocks or
> 4 MiB of RSS over the loop)."""

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from common import table, write_result  # noqa: E402
from leak_cases import build_cases, run_loop  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    cases = build_cases()
    rows, out, bad = [], {}, []
    for name in sorted(cases):
        if args.only and name not in args.only:
            continue
        ok, fail, inputs = cases[name]
        t0 = time.perf_counter()
        r = run_loop(ok, fail, inputs, n=args.calls)
        r["seconds"] = round(time.perf_counter() - t0, 2)
        out[name] = r
        leak = r["refcount_drift"] != 0 or abs(r["blocks_growth"]) > 1000 or r["rss_growth"] > 4 << 20
        if leak:
            bad.append(name)
        rows.append([name, r["calls"], f"{r['rss_growth'] / 1024:.0f}", r["blocks_growth"], r["refcount_drift"],
                     r["seconds"], "LEAK" if leak else "flat"])
        print(f"{name}: {r}", flush=True)
    print(table(rows, ["entry point", "calls", "RSS growth KiB", "blocks growth", "refcount drift", "s",
                       "verdict"]))
    write_result("leak_check", {"calls_per_entry_point": args.calls, "results": out},
                 smoke=args.calls < 100_000)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
