"""Every hot kernel against the limit of this machine that binds it (issue 17).

The limits are measured in the same run, by benchmarks/roofline_probe.c (built
here with the package's compiler flags, OpenMP, the target clones the package
dispatches to and the package's BLAS), at 1 and 2 threads:
- read bandwidth: each thread sums its contiguous share of a float32 array in
  32 float lanes; an L3-sized array (16 MiB, about the PPO working set) and a
  DRAM-sized one (512 MiB, beyond any cache here);
- copy bandwidth: dst[i] = src[i], counted as read + write bytes (STREAM's
  convention: the write-allocate read is not counted);
- exp throughput: the package's own float32 exps (csrc/kernels/vmath.h:
  o1p_expf, o1p_expf_nonpos and o1p_expf_fast where the build has it) over an
  L1-resident block, summed in lanes: elements per ns;
- sgemm: the package's BLAS at the kernels' shapes, GFLOP/s.
Best of the repeats for a limit (what the machine can reach) and for a
kernel (its median is recorded too): on a shared machine a two-thread median
mostly measures how often other processes took a core. Each kernel is checked against its reference (NumPy
float64 or PyTorch) before it is timed; then, at the --threads count (default:
all CPUs): its time, its achieved rate in the unit of its binding limit, the
limit's time for the same work and the fraction limit time / kernel time, and
PyTorch's time for the same computation where torch is installed.

    python benchmarks/roofline.py [--smoke] [--threads N] [--repeat R]

Writes benchmarks/results/roofline.json and roofline.md (smoke runs:
results/smoke/). `python benchmarks/run_all.py` runs it with the bench_*
scripts.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

import common

import o1pruner

try:
    import torch
except ImportError:  # torch is optional: its columns stay empty
    torch = None

ROOT = common.HERE.parent
CSRC = ROOT / "csrc"
PROBE = common.HERE / "roofline_probe.c"


# ---- the machine ----------------------------------------------------------------------

def cpu_description() -> dict:
    """CPU model, the x86-64 levels it supports (v3: AVX2+FMA, v4: AVX-512) and
    the path the package's dispatch takes."""
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    v3 = {"avx2", "fma", "bmi2", "movbe"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    return {"model": model, "x86_64_v3_avx2": v3, "x86_64_v4_avx512": v4,
            "package_simd": o1pruner.config().get("simd"), "cpus": os.cpu_count()}


def build_probe(tmp: str) -> str | None:
    """Compile roofline_probe.c like the package (flags, clones, BLAS); None
    (with a message) when the source tree or a compiler is missing."""
    if not (PROBE.exists() and (CSRC / "kernels" / "vmath.h").exists()):
        print("roofline: no source tree next to this script (csrc/): machine limits not measured")
        return None
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    flags = ["-std=c11", "-O3", "-fopenmp", "-fno-trapping-math", "-fno-math-errno",
             f"-I{CSRC}", f"-I{CSRC / 'kernels'}"]
    try:
        import scipy_openblas32 as sob

        flags += ["-DO1P_BLAS_PREFIX_SCIPY", f"-I{sob.get_include_dir()}"]
        link = [f"-L{sob.get_lib_dir()}", f"-l{sob.get_library()}", f"-Wl,-rpath,{sob.get_lib_dir()}"]
    except ImportError:
        link = shlex.split(subprocess.run(["pkg-config", "--libs", "openblas"], capture_output=True,
                                          text=True).stdout or "-lopenblas")
        flags += shlex.split(subprocess.run(["pkg-config", "--cflags", "openblas"], capture_output=True,
                                            text=True).stdout)
    exe = os.path.join(tmp, "roofline_probe")
    r = subprocess.run(cc + flags + [str(PROBE), "-o", exe] + link + ["-lm"], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"roofline: could not build the probe ({r.stderr.strip()[-500:]}): machine limits not measured")
        return None
    return exe


def probe(exe: str, *args) -> dict:
    out = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_limits(exe: str, threads: list, smoke: bool, repeat: int, gemm_shapes: dict) -> dict:
    l3, dram = (1 << 20, 8 << 20) if smoke else (16 << 20, 512 << 20)
    lim = {"l3_bytes": l3, "dram_bytes": dram}
    for nt in threads:
        k = f"t{nt}"
        # short runs: many repeats, so that the best one missed the other
        # processes of a shared machine
        lim[f"read_l3_gbs_{k}"] = probe(exe, "read", l3, nt, max(repeat, 30))["gb_per_s"]
        lim[f"read_dram_gbs_{k}"] = probe(exe, "read", dram, nt, repeat)["gb_per_s"]
        lim[f"copy_l3_gbs_{k}"] = probe(exe, "copy", l3, nt, max(repeat, 30))["gb_per_s"]
        lim[f"copy_dram_gbs_{k}"] = probe(exe, "copy", dram, nt, repeat)["gb_per_s"]
        for which in ("full", "nonpos", "fast"):
            r = probe(exe, "exp", which, nt, max(repeat, 10))
            if r.get("available", True):
                lim[f"exp_{which}_per_ns_{k}"] = r["per_ns"]
        for name, (m, n, kk, ta, tb) in gemm_shapes.items():
            lim[f"sgemm_{name}_gflops_{k}"] = probe(exe, "sgemm", m, n, kk, ta, tb, nt, repeat)["gflop_per_s"]
    return lim


# ---- the kernels ----------------------------------------------------------------------

def ppo_batch(B, T, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(-1.5, 1.0, size=(B, T)).astype(np.float32)
    lp = (ref + rng.normal(0, 0.3, size=(B, T)) + rng.normal(0, 0.15, size=(B, 1))).astype(np.float32)
    lengths = rng.integers(T // 4, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    adv = rng.normal(0, 1, size=B)
    return lp, ref, adv, mask


def torch_ppo(ratio):
    def seq_mean(lp, ref, adv, mask):
        m = mask.to(lp.dtype)
        n = m.sum(-1)
        r = torch.exp((lp * m).sum(-1) / n - (ref * m).sum(-1) / n)
        return torch.mean(torch.max(-adv * r, -adv * torch.clamp(r, 0.8, 1.2)))

    def token(lp, ref, adv, mask):  # TRL GRPO
        m = mask.to(lp.dtype)
        a = adv[:, None]
        c1 = torch.exp(lp - ref)
        per = -torch.min(c1 * a, torch.clamp(c1, 0.8, 1.2) * a)
        return ((per * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()

    return seq_mean if ratio == "sequence_mean" else token


def ppo_cases(B, T):
    lp, ref, adv, mask = ppo_batch(B, T)
    cases = []
    for ratio, agg in (("sequence_mean", "mean"), ("token", "grpo")):
        fn = lambda r=ratio, a=agg: o1pruner.ppo_clip_loss(lp, ref, adv, mask, ratio=r, aggregate=a)
        res = fn()
        tfn = None
        if torch is not None:
            tl, tr, ta, tm = (torch.from_numpy(lp).requires_grad_(), torch.from_numpy(ref),
                              torch.from_numpy(adv.astype(np.float32)), torch.from_numpy(mask))
            f = torch_ppo(ratio)

            def tfn(f=f, tl=tl, tr=tr, ta=ta, tm=tm):
                tl.grad = None
                loss = f(tl, tr, ta, tm)
                loss.backward()
                return loss, tl.grad

            loss, g = tfn()
            assert abs(float(loss.detach()) - res.loss) <= 1e-4 * max(1.0, abs(res.loss)), (ratio, float(loss.detach()), res.loss)
            assert np.abs(g.numpy() - res.grad).max() <= 1e-5 * max(1e-6, np.abs(res.grad).max()) + 1e-9, ratio
        # bytes the kernel must move: logp, ref_logp, grad (float32) and the mask
        nbytes = B * T * (4 + 4 + 4 + 1)
        cases.append({"name": f"ppo_clip_loss {ratio} (+grad), B={B} T={T}", "fn": fn, "torch": tfn,
                      "bytes": nbytes, "exps": B * T if ratio == "token" else 0,
                      "mem": "l3", "exp": "full"})
    return cases


def logprob_cases(N, V):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, V), dtype=np.float32) * np.float32(2.0)
    t = rng.integers(0, V, size=N)
    g = rng.standard_normal(N).astype(np.float32)
    res = o1pruner.token_logprobs(x, t)
    # float64 reference on a few rows
    for i in range(min(N, 4)):
        z = x[i].astype(np.float64)
        lse = np.log(np.exp(z - z.max()).sum()) + z.max()
        assert abs(res.logp[i] - (z[t[i]] - lse)) < 1e-4 * max(1.0, abs(lse)), i
    out = np.empty_like(x)
    try:
        o1pruner.token_logprobs_backward(x, t, res.lse, g, out=out)
        bwd = lambda: o1pruner.token_logprobs_backward(x, t, res.lse, g, out=out)
        bwd_name = "token_logprobs_backward (out=)"
    except TypeError:  # a build without out=
        bwd = lambda: o1pruner.token_logprobs_backward(x, t, res.lse, g)
        bwd_name = "token_logprobs_backward"
    d = bwd()
    i = 0
    z = x[i].astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    ref = -g[i] * p
    ref[t[i]] += g[i]
    assert np.abs(d[i] - ref).max() < 1e-6 * abs(g[i]) + 1e-9
    tf = tb = None
    if torch is not None:
        xt, tt, gt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(g)

        def tf():
            lsm = torch.log_softmax(xt, -1)
            return lsm.gather(1, tt[:, None])[:, 0]

        xg = xt.clone().requires_grad_()

        def tb():  # forward + backward: the backward alone is not separable in autograd
            xg.grad = None
            lp = torch.log_softmax(xg, -1).gather(1, tt[:, None])[:, 0]
            (lp * gt).sum().backward()
            return xg.grad

    fwd = lambda: o1pruner.token_logprobs(x, t)
    return [  # the forward's sums use o1p_expf_fast, the backward's per-element p o1p_expf_nonpos
        {"name": f"token_logprobs forward, N={N} V={V}", "fn": fwd, "torch": tf,
         "bytes": N * V * 4, "exps": N * V, "mem": "dram_read", "exp": "fast"},
        {"name": f"{bwd_name}, N={N} V={V}", "fn": bwd, "torch": tb, "torch_note": "torch: forward + backward",
         "bytes": N * V * 8, "exps": N * V, "mem": "dram_copy", "exp": "nonpos"},
    ]


def fused_cases(N, d, V):
    rng = np.random.default_rng(0)
    h = (rng.standard_normal((N, d)) * 0.5).astype(np.float32)
    w = (rng.standard_normal((V, d)) * (1.0 / np.sqrt(d))).astype(np.float32)
    t = rng.integers(0, V, size=N)
    gl = rng.standard_normal(N).astype(np.float32)
    stats = o1pruner.fused_linear_logprobs(h, w, t).stats
    bwd = lambda: o1pruner.fused_linear_logprobs_backward(h, w, t, stats, gl)
    gh, gw, _ = bwd()
    # check against the materialised path
    x = h @ w.T
    lse = o1pruner.token_logprobs(x, t).lse
    dx = o1pruner.token_logprobs_backward(x, t, lse, gl)
    assert np.abs(gh - dx @ w).max() <= 1e-3 * max(1e-6, np.abs(gh).max())
    return [{"name": f"fused LM-head backward, N={N} d={d} V={V}", "fn": bwd, "torch": None,
             "flops": 3 * 2.0 * N * d * V, "gemm": ("fused_nt", "fused_nn", "fused_tn")}]


# ---- the table ----------------------------------------------------------------------------

def timings(fn, repeat):
    """(best, median) wall time of fn() over `repeat` runs after one warm-up."""
    fn()
    ts = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[0], ts[len(ts) // 2]


def evaluate(case, lim, nt, repeat):
    """One kernel against its limits. Both sides are best-of-repeats (the
    limits too): on a shared machine the median of a two-thread run mostly
    measures how often the other processes took a core; the median is
    recorded beside it."""
    k = f"t{nt}"
    t_ours, t_med = timings(case["fn"], repeat)
    row = {"kernel": case["name"], "seconds": t_ours, "median_seconds": t_med}
    limits = {}
    if lim:
        if "bytes" in case:
            mem = {"l3": f"read_l3_gbs_{k}", "dram_read": f"read_dram_gbs_{k}",
                   "dram_copy": f"copy_dram_gbs_{k}"}[case["mem"]]
            limits[{"l3": "L3-sized read", "dram_read": "DRAM read", "dram_copy": "DRAM copy"}[case["mem"]]] = (case["bytes"] / (lim[mem] * 1e9), case["bytes"] / t_ours * 1e-9, "GB/s")
        if case.get("exps"):
            ek = f"exp_{case['exp']}_per_ns_{k}"
            if ek not in lim:  # a build without that exp: the one it replaces
                ek = f"exp_nonpos_per_ns_{k}"
            limits[f"exp ({case['exp']})"] = (case["exps"] / (lim[ek] * 1e9), case["exps"] / t_ours * 1e-9, "exp/ns")
        if "flops" in case:
            per = case["flops"] / len(case["gemm"])
            tl = sum(per / (lim[f"sgemm_{g}_gflops_{k}"] * 1e9) for g in case["gemm"])
            limits["sgemm (3 products)"] = (tl, case["flops"] / t_ours * 1e-9, "GFLOP/s")
        name, (t_lim, rate, unit) = max(limits.items(), key=lambda kv: kv[1][0])
        row.update({"binding_limit": name, "limit_seconds": t_lim, "achieved": rate, "unit": unit,
                    "fraction": t_lim / t_ours, "other_limits": {n: v[0] for n, v in limits.items() if n != name}})
    if case.get("torch") is not None:
        t_torch, t_torch_med = timings(case["torch"], repeat)
        row.update({"torch_seconds": t_torch, "torch_median_seconds": t_torch_med, "torch_over_ours": t_torch / t_ours,
                    "torch_note": case.get("torch_note", "")})
    return row


def markdown(rows, lim, cpu, nt, load):
    head = (f"Machine: {cpu['model']}, {cpu['cpus']} CPUs, x86-64-v3 (AVX2): {cpu['x86_64_v3_avx2']}, "
            f"x86-64-v4 (AVX-512): {cpu['x86_64_v4_avx512']}; package path: {cpu['package_simd']}; "
            f"{nt} threads; load average before the run {load}.\n\n")
    k = f"t{nt}"
    if lim:
        lines = [f"Limits ({nt} threads): read L3-sized {lim[f'read_l3_gbs_{k}']:.0f} GB/s, DRAM "
                 f"{lim[f'read_dram_gbs_{k}']:.0f} GB/s; copy L3-sized {lim[f'copy_l3_gbs_{k}']:.0f}, DRAM "
                 f"{lim[f'copy_dram_gbs_{k}']:.0f} GB/s; exp "
                 + ", ".join(f"{w} {lim[f'exp_{w}_per_ns_{k}']:.1f}/ns" for w in ("full", "nonpos", "fast")
                             if f"exp_{w}_per_ns_{k}" in lim)
                 + "; sgemm " + ", ".join(f"{n} {v:.0f}" for n, v in lim.items()
                                          if n.startswith("sgemm_") and n.endswith(k)) + " GFLOP/s."]
        head += lines[0] + "\n\n"
    table = []
    for r in rows:
        table.append([r["kernel"], f"{r['seconds'] * 1e3:.3g} ms ({r['median_seconds'] * 1e3:.3g})",
                      f"{r['achieved']:.3g} {r['unit']}" if "achieved" in r else "",
                      f"{r['binding_limit']} ({r['limit_seconds'] * 1e3:.3g} ms)" if "binding_limit" in r else "",
                      f"{100 * r['fraction']:.0f}%" if "fraction" in r else "",
                      (f"{r['torch_over_ours']:.2f}x" + (f" ({r['torch_note']})" if r.get("torch_note") else ""))
                      if "torch_over_ours" in r else ""])
    return head + common.table(table, ["kernel", "time, best (median)", "achieved", "binding limit (its time)",
                                       "fraction", "torch time / ours"])


def main() -> int:
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    nt = common.setup_threads(args.threads)
    repeat = 1 if args.smoke else args.repeat
    load = " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"
    cpu = cpu_description()
    if args.smoke:
        B, T, N, V, fN, fd, fV = 16, 256, 16, 5000, 64, 64, 2048
    else:
        B, T, N, V, fN, fd, fV = 256, 4096, 2048, 151936, 1024, 896, 32768
    gemm_shapes = {  # the fused backward's three products at its shape
        "fused_nt": (fN, fV, fd, 0, 1), "fused_nn": (fN, fd, fV, 0, 0), "fused_tn": (fV, fd, fN, 1, 0)}
    threads = sorted({1, nt})
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_probe(tmp)
        lim = measure_limits(exe, threads, args.smoke, repeat, gemm_shapes) if exe else None
    print(f"limits measured in {time.time() - t0:.1f} s", flush=True)
    cases = ppo_cases(B, T) + logprob_cases(N, V) + fused_cases(fN, fd, fV)
    rows = []
    for c in cases:
        rows.append(evaluate(c, lim, nt, min(repeat, 3) if "flops" in c else repeat))
        print(f"  {c['name']}: {rows[-1]['seconds'] * 1e3:.3g} ms", flush=True)
    md = markdown(rows, lim, cpu, nt, load)
    print(md)
    path = common.write_result("roofline", {"cpu": cpu, "threads": nt, "load_average": load, "limits": lim,
                                            "kernels": rows, "smoke": args.smoke}, args.out, args.smoke)
    md_path = path.with_suffix(".md")
    tmp_md = md_path.with_suffix(".md.tmp")
    tmp_md.write_text(md + "\n")
    os.replace(tmp_md, md_path)
    print(f"wrote {path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
