"""token_logprobs forward and forward+backward against NumPy, PyTorch CPU and
this machine's measured read bandwidth (issue 2, section 5).

Run against the installed package (from the repository root, no PYTHONPATH):
    python benchmarks/bench_logprobs.py            # N=2048, V=32000 and 151936, 2 threads
    python benchmarks/bench_logprobs.py --smoke    # tiny sizes, checks the script runs

Correctness is checked first (float64 reference on a few rows, PyTorch on
all of them). Then, per size, side by side in one run (medians):
- forward: o1pruner.token_logprobs (logp, entropy and lse) vs NumPy float32
  (max, exp, sum, log, take: single-threaded) vs torch.log_softmax + gather;
- forward+backward of sum(g * logp): token_logprobs + token_logprobs_backward
  vs torch autograd through log_softmax + gather;
- read bandwidth: the same logits read by two threads (NumPy max-reductions
  of two halves in two Python threads, which release the GIL, and torch
  amax/sum with torch's 2 threads); the best of them is taken, so the share of
  bandwidth reported for the forward is a conservative one.

Each contender is timed in its own block of repeats, with a pause before each
block, o1pruner's blocks first, then NumPy's, then torch's; not round-robin:
on this KVM machine, allocating gigabytes right after another library freed
gigabytes is up to 10x slower for a second or more (page faults on memory the
host has just reclaimed), which round-robin timing charges to whoever comes
next.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

import common

try:
    import torch
except ImportError:  # torch is optional: its columns are left empty
    torch = None

import o1pruner
from o1pruner import reference as ref


def make_case(N, V, seed=0):
    rng = np.random.default_rng(seed)
    # LLM-like logits: a few strong candidates over a broad low tail
    x = rng.standard_normal((N, V), dtype=np.float32) * np.float32(2.0)
    x[:, rng.integers(0, V, 8)] += np.float32(6.0)
    t = rng.integers(0, V, N)
    g = rng.standard_normal(N).astype(np.float32)
    return x, t, g


# ---- the contenders -----------------------------------------------------------

def numpy_forward(x, t):
    """float32 log-softmax at the targets, the plain NumPy way."""
    m = x.max(axis=1, keepdims=True)
    y = x - m
    lse = np.log(np.exp(y).sum(axis=1))
    return y[np.arange(x.shape[0]), t] - lse


def torch_forward(xt, tt):
    with torch.no_grad():
        return torch.log_softmax(xt, dim=-1).gather(1, tt[:, None]).squeeze(1)


def torch_forward_backward(xt, tt, gt):
    x = xt.detach().requires_grad_(True)
    lp = torch.log_softmax(x, dim=-1).gather(1, tt[:, None]).squeeze(1)
    lp.backward(gt)
    return lp.detach(), x.grad


def ours_forward_backward(x, t, g):
    out = o1pruner.token_logprobs(x, t)
    return out, o1pruner.token_logprobs_backward(x, t, out.lse, g)


PAUSE = 2.0  # seconds before each timed block (0.1 in smoke mode)


def blocked_medians(fns, repeat, pause=None):
    """Median time of each function, one block of repeats after another,
    with a pause before each block (see the module docstring)."""
    out = {}
    for k, fn in fns.items():
        time.sleep(PAUSE if pause is None else pause)
        out[k] = common.median_time(fn, repeat=repeat)
    return out


# ---- read bandwidth -------------------------------------------------------------

def read_bandwidth(x, repeat):
    """Bytes/s of reading x with two threads, best of a few methods."""
    halves = [x[: x.shape[0] // 2], x[x.shape[0] // 2:]]

    def numpy_two_threads():
        ths = [threading.Thread(target=np.maximum.reduce, args=(h,), kwargs=dict(axis=None)) for h in halves]
        for th in ths:
            th.start()
        for th in ths:
            th.join()

    fns = {"numpy max, 2 Python threads": numpy_two_threads}
    if torch is not None:
        xt = torch.from_numpy(x)
        fns["torch amax, 2 threads"] = lambda: xt.amax()
        fns["torch sum, 2 threads"] = lambda: xt.sum()
    times = common.interleaved_medians(fns, repeat=repeat)
    rates = {k: x.nbytes / v for k, v in times.items()}
    best = max(rates, key=rates.get)
    return rates[best], best, rates


# ---- checks ----------------------------------------------------------------------

def dlogits_bound(lse, g):
    """Float32 rounding bound of |ours - torch| for d logits = g (softmax -
    onehot), relative to the scale of the problem, not to one machine: both
    round the exponent argument x - lse to float32, an absolute error up to
    eps * |lse|, which moves each p = exp(x - lse) by p * eps * |lse|; the
    sums over the vocabulary (in different orders and vector widths: AVX2,
    AVX-512, torch's own kernels) add a few eps more. 32 eps * max|lse| *
    max|g| covers both with margin (1.1e-5 was measured against a fixed
    1e-5 on an AVX2 machine, issue 12)."""
    eps = float(np.finfo(np.float32).eps)
    return 32 * eps * max(1.0, float(np.max(np.abs(lse)))) * max(1e-30, float(np.max(np.abs(g))))


def check(x, t, g, rows=4):
    """Our results against the float64 reference (a few rows) and torch (all)."""
    out, d = ours_forward_backward(x, t, g)
    sel = np.linspace(0, x.shape[0] - 1, rows).astype(int)
    lp, ent, lse = ref.token_logprobs(x[sel], t[sel])
    err = {
        "logp_vs_ref": float(np.max(np.abs(out.logp[sel] - lp))),
        "entropy_vs_ref": float(np.max(np.abs(out.entropy[sel] - ent))),
        "lse_vs_ref": float(np.max(np.abs(out.lse[sel] - lse) / np.abs(lse))),
    }
    dref = ref.token_logprobs_backward(x[sel], t[sel], g[sel])
    err["dlogits_vs_ref"] = float(np.max(np.abs(d[sel] - dref)))
    assert err["logp_vs_ref"] < 1e-4 and err["entropy_vs_ref"] < 1e-4, err
    assert err["lse_vs_ref"] < 1e-6 and err["dlogits_vs_ref"] < 1e-6, err
    assert np.max(np.abs(numpy_forward(x, t) - out.logp)) < 1e-3
    if torch is not None:
        tlp, tgrad = torch_forward_backward(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(g))
        err["logp_vs_torch"] = float(np.max(np.abs(tlp.numpy() - out.logp)))
        err["dlogits_vs_torch"] = float(np.max(np.abs(tgrad.numpy() - d)))
        err["dlogits_vs_torch_bound"] = dlogits_bound(out.lse, g)
        assert err["logp_vs_torch"] < 1e-3 and err["dlogits_vs_torch"] < err["dlogits_vs_torch_bound"], err
    return err


# ---- main ------------------------------------------------------------------------

def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated N:V pairs (default 2048:32000,2048:151936)")
    args = p.parse_args(argv)
    threads = common.setup_threads(args.threads or 2)
    global PAUSE
    if args.smoke:
        sizes, repeat, np_repeat = [(64, 1000), (16, 20000)], 1, 1
        PAUSE = 0.1
    else:
        sizes = [(2048, 32000), (2048, 151936)]
        repeat, np_repeat = args.repeat, max(1, min(3, args.repeat))
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split(":")) for s in args.sizes.split(",")]

    results, rows = [], []
    for N, V in sizes:
        x, t, g = make_case(N, V)
        errors = check(x, t, g)
        bw, bw_method, bw_all = read_bandwidth(x, repeat)

        # o1pruner first, then NumPy, then torch (see the module docstring)
        t_fwd, t_fb = {}, {}
        t_fwd.update(blocked_medians({"o1pruner": lambda: o1pruner.token_logprobs(x, t)}, repeat))
        t_fb.update(blocked_medians({"o1pruner": lambda: ours_forward_backward(x, t, g)}, repeat))
        t_np = blocked_medians({"numpy": lambda: numpy_forward(x, t)}, np_repeat)["numpy"]
        if torch is not None:
            xt, tt, gt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(g)
            t_fwd.update(blocked_medians({"torch": lambda: torch_forward(xt, tt)}, repeat))
            t_fb.update(blocked_medians({"torch": lambda: torch_forward_backward(xt, tt, gt)}, repeat))
        fwd_bytes = x.nbytes / t_fwd["o1pruner"]
        r = {
            "N": N, "V": V, "threads": threads, "errors": errors,
            "read_bandwidth_Bps": bw, "read_bandwidth_method": bw_method,
            "read_bandwidth_all_Bps": bw_all,
            "forward_s": t_fwd, "forward_backward_s": t_fb, "numpy_forward_s": t_np,
            "forward_Bps": fwd_bytes,
            "forward_share_of_bandwidth": fwd_bytes / bw,
            "forward_vs_numpy": t_np / t_fwd["o1pruner"],
        }
        if torch is not None:
            r["forward_vs_torch"] = t_fwd["torch"] / t_fwd["o1pruner"]
            r["forward_backward_vs_torch"] = t_fb["torch"] / t_fb["o1pruner"]
        results.append(r)
        fmt = lambda s: f"{s * 1e3:.1f}"
        tt_ = lambda d: fmt(d["torch"]) if "torch" in d else "-"
        ratio = lambda k: f"{r[k]:.2f}x" if k in r else "-"
        rows.append([f"{N}x{V}", fmt(t_fwd["o1pruner"]), tt_(t_fwd), fmt(t_np), ratio("forward_vs_torch"),
                     f"{fwd_bytes / 1e9:.1f} / {bw / 1e9:.1f} ({100 * r['forward_share_of_bandwidth']:.0f}%)",
                     fmt(t_fb["o1pruner"]), tt_(t_fb), ratio("forward_backward_vs_torch")])
        del x

    header = ["N x V", "fwd ms", "torch fwd ms", "numpy fwd ms", "fwd vs torch",
              "fwd GB/s / read GB/s", "fwd+bwd ms", "torch fwd+bwd ms", "fwd+bwd vs torch"]
    m = common.machine()
    print(f"\ntoken_logprobs, {threads} threads; {m.get('cpu')}; SIMD {m.get('simd')}; torch {m.get('torch')}")
    print(common.table(rows, header))
    for r in results:
        print(f"  {r['N']}x{r['V']}: read bandwidth by {r['read_bandwidth_method']}; all: "
              + ", ".join(f"{k} {v / 1e9:.1f} GB/s" for k, v in r["read_bandwidth_all_Bps"].items()))
    path = common.write_result("logprobs", {"results": results, "repeat": repeat}, args.out, smoke=args.smoke)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
