"""Fused LM head + token log-probs (issue 3): time and memory against plain
BLAS sgemm and against PyTorch CPU.

For each shape (tokens N, hidden d, vocabulary V), after checking the results
against the float64 reference (a subset of rows) and against PyTorch:

- forward: fused_linear_logprobs / one plain sgemm producing the same logits
  (o1pruner._core.sgemm, the same BLAS): target <= 1.15
- backward: fused_linear_logprobs_backward / the three plain sgemms it needs
  (logits = H W^T, dH = G W, dW = G^T H): target <= 1.25
- PyTorch CPU peers, forward and training step (forward + backward):
  "torch": materialised logits + log_softmax + gather + entropy, autograd;
  "torch-chunked": the same per chunk of 512 tokens in an autograd.Function
  that saves only its inputs and recomputes each chunk in the backward (the
  scheme of verl's FusedLinearForPPO).
- extra peak memory (peak RSS of a child process over its inputs): fused
  forward + backward at N = 8192, V = 151936, d = 896 (target <= 64 MiB,
  independent of N), against N*V*4 bytes for materialised logits, and against
  both torch peers at N = 4096 (target: >= 20x lower).

Measurements of one group are interleaved (common.interleaved_medians), so
the noise of the shared machine hits every side alike.

    python benchmarks/bench_fused.py [--smoke] [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

import common

import o1pruner
from o1pruner import _core
from o1pruner import reference as ref

FULL_SHAPES = [(1024, 896, 151936), (4096, 896, 151936), (2048, 4096, 32000)]
SMOKE_SHAPES = [(300, 64, 3001), (700, 96, 1000)]
CHUNK = 512  # tokens per chunk of the chunked torch peer
# PyTorch is a peer, not a dependency: without it only the sgemm baselines run
HAVE_TORCH = importlib.util.find_spec("torch") is not None


# ---- data ---------------------------------------------------------------------------

def make_problem(N, d, V, seed=0):
    """float32 inputs made without float64 temporaries; logits of order 3."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, d), dtype=np.float32)
    w = rng.standard_normal((V, d), dtype=np.float32)
    w *= np.float32(3.0 / np.sqrt(d))
    t = rng.integers(0, V, N)
    gl = rng.standard_normal(N, dtype=np.float32)
    ge = rng.standard_normal(N, dtype=np.float32) * np.float32(0.1)
    return h, w, t, gl, ge


# ---- PyTorch peers ------------------------------------------------------------------

def torch_logprobs(h, w, t):
    """Materialised logits -> log_softmax -> gather, and the entropy."""
    import torch

    logp_all = torch.log_softmax(h @ w.T, dim=-1)
    logp = logp_all.gather(-1, t[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def make_chunked():
    import torch

    class ChunkedLinearLogprobs(torch.autograd.Function):
        """Chunks of tokens; saves only the inputs and recomputes each chunk
        with autograd in the backward (the scheme of verl's
        FusedLinearForPPO, written here from that description)."""

        @staticmethod
        def forward(ctx, h, w, t):
            ctx.save_for_backward(h, w, t)
            outs = [torch_logprobs(h[i:i + CHUNK], w, t[i:i + CHUNK]) for i in range(0, h.shape[0], CHUNK)]
            return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

        @staticmethod
        def backward(ctx, g_logp, g_ent):
            h, w, t = ctx.saved_tensors
            gh, gw = torch.zeros_like(h), torch.zeros_like(w)
            for i in range(0, h.shape[0], CHUNK):
                with torch.enable_grad():
                    hc = h[i:i + CHUNK].detach().requires_grad_()
                    wc = w.detach().requires_grad_()
                    lp, en = torch_logprobs(hc, wc, t[i:i + CHUNK])
                    dh, dw = torch.autograd.grad((lp, en), (hc, wc), (g_logp[i:i + CHUNK], g_ent[i:i + CHUNK]))
                gh[i:i + CHUNK] = dh
                gw += dw
            return gh, gw, None

    return ChunkedLinearLogprobs.apply


def torch_step(fn, h, w, t, gl, ge):
    """Forward + backward of sum(gl logp + ge entropy); returns (logp, entropy, dH, dW)."""
    import torch

    ht = torch.from_numpy(h).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    logp, ent = fn(ht, wt, torch.from_numpy(t))
    (logp * torch.from_numpy(gl) + ent * torch.from_numpy(ge)).sum().backward()
    return logp.detach().numpy(), ent.detach().numpy(), ht.grad.numpy(), wt.grad.numpy()


def torch_forward(fn, h, w, t):
    import torch

    with torch.no_grad():
        logp, ent = fn(torch.from_numpy(h), torch.from_numpy(w), torch.from_numpy(t))
    return logp.numpy(), ent.numpy()


# ---- correctness first ------------------------------------------------------------------

def max_rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def check(h, w, t, gl, ge, rows=8):
    """Fused vs the float64 reference on `rows` rows (forward, and the hidden
    gradient of those rows, which depends on nothing else)."""
    out = o1pruner.fused_linear_logprobs(h, w, t)
    sub = slice(0, rows)
    r_logp, r_ent, _ = ref.fused_linear_logprobs(h[sub], w, t[sub])
    gl_sub = np.zeros_like(gl)
    gl_sub[sub], ge_sub = gl[sub], np.zeros_like(ge)
    ge_sub[sub] = ge[sub]
    gh, gw, _ = o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl_sub, ge_sub)
    r_gh, _, _ = ref.fused_linear_logprobs_backward(h[sub], w, t[sub], gl[sub], ge[sub])
    err = {
        "logp_vs_float64": float(np.abs(out.logp[sub] - r_logp).max()),
        "entropy_vs_float64": float(np.abs(out.entropy[sub] - r_ent).max()),
        "grad_hidden_vs_float64_rel": max_rel(gh[sub], r_gh),
    }
    assert err["logp_vs_float64"] < 1e-3 and err["entropy_vs_float64"] < 1e-3, err
    assert err["grad_hidden_vs_float64_rel"] < 1e-3, err
    return err


# ---- one shape ------------------------------------------------------------------------------

def bench_shape(N, d, V, repeat, warmup):
    h, w, t, gl, ge = make_problem(N, d, V)
    res = {"N": N, "d": d, "V": V, "gemm_gflop": 2.0 * N * V * d / 1e9}
    res["errors"] = check(h, w, t, gl, ge)
    chunked = make_chunked() if HAVE_TORCH else None

    fused_fwd = lambda: o1pruner.fused_linear_logprobs(h, w, t)
    stats = fused_fwd().stats
    fused_bwd = lambda: o1pruner.fused_linear_logprobs_backward(h, w, t, stats, gl, ge)

    def fused_step():
        out = o1pruner.fused_linear_logprobs(h, w, t)
        return out, o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl, ge)

    # the peers agree with us before they are timed
    out, (gh, gw, _) = fused_step()
    peers = (("torch", torch_logprobs), ("torch_chunked", chunked)) if HAVE_TORCH else ()
    for name, fn in peers:
        lp, en, th, tw = torch_step(fn, h, w, t, gl, ge)
        res["errors"][f"{name}_logp"] = float(np.abs(lp - out.logp).max())
        res["errors"][f"{name}_entropy"] = float(np.abs(en - out.entropy).max())
        res["errors"][f"{name}_grad_hidden_rel"] = max_rel(gh, th)
        res["errors"][f"{name}_grad_weight_rel"] = max_rel(gw, tw)
        del lp, en, th, tw
        assert res["errors"][f"{name}_grad_weight_rel"] < 1e-3, res["errors"]
    del gh, gw

    times = {}
    # forward: one plain sgemm writing the N x V logits is the floor
    fwd = {"fused_fwd": fused_fwd, "sgemm": lambda: _core.sgemm(h, w, False, True)}
    if HAVE_TORCH:
        fwd["torch_fwd"] = lambda: torch_forward(torch_logprobs, h, w, t)
        fwd["torch_chunked_fwd"] = lambda: torch_forward(chunked, h, w, t)
    times.update(common.interleaved_medians(fwd, repeat=repeat, warmup=warmup))
    # backward: the three plain sgemms it needs, with a ready N x V gradient G
    G = np.full((N, V), 1e-6, np.float32)
    times.update(common.interleaved_medians({
        "fused_bwd": fused_bwd,
        "three_sgemm": lambda: (_core.sgemm(h, w, False, True), _core.sgemm(G, w), _core.sgemm(G, h, True, False)),
    }, repeat=repeat, warmup=warmup))
    del G
    res["seconds"] = times
    res["ratios"] = {
        "fwd_over_sgemm": times["fused_fwd"] / times["sgemm"],
        "bwd_over_three_sgemm": times["fused_bwd"] / times["three_sgemm"],
    }
    if HAVE_TORCH:
        # a training step: forward + backward
        times.update(common.interleaved_medians({
            "fused_step": fused_step,
            "torch_step": lambda: torch_step(torch_logprobs, h, w, t, gl, ge),
            "torch_chunked_step": lambda: torch_step(chunked, h, w, t, gl, ge),
        }, repeat=repeat, warmup=warmup))
        res["ratios"].update({
            "torch_fwd_over_fused": times["torch_fwd"] / times["fused_fwd"],
            "torch_chunked_fwd_over_fused": times["torch_chunked_fwd"] / times["fused_fwd"],
            "torch_step_over_fused": times["torch_step"] / times["fused_step"],
            "torch_chunked_step_over_fused": times["torch_chunked_step"] / times["fused_step"],
        })
    res["fused_fwd_gflops"] = res["gemm_gflop"] / times["fused_fwd"]
    res["sgemm_gflops"] = res["gemm_gflop"] / times["sgemm"]
    return res


# ---- memory (child processes) ---------------------------------------------------------------

def _setup_code(N, d, V, threads, torch_inputs=False):
    """Child prologue: imports and inputs (the baseline child runs only this),
    with the gradient outputs already written so their pages count here."""
    paths = [str(common.HERE), str(Path(o1pruner.__file__).resolve().parents[1])]
    src = textwrap.dedent(f"""\
        import sys
        sys.path[:0] = {paths!r}
        import numpy as np
        import o1pruner
        import bench_fused as b
        o1pruner.set_num_threads({threads})
        h, w, t, gl, ge = b.make_problem({N}, {d}, {V})
        gh = np.zeros_like(h); gw = np.zeros_like(w); gh.fill(0); gw.fill(0)
        """)
    if torch_inputs:
        src += f"import torch\ntorch.set_num_threads({threads})\nchunked = b.make_chunked()\n"
    return src


def peak_fused(N, d, V, threads):
    body = ("out = o1pruner.fused_linear_logprobs(h, w, t)\n"
            "o1pruner.fused_linear_logprobs_backward(h, w, t, out.stats, gl, ge, grad_hidden=gh, grad_weight=gw)\n")
    return common.peak_rss_of(_setup_code(N, d, V, threads) + "\n" + body)


def peak_torch(N, d, V, threads, chunked):
    fn = "chunked" if chunked else "b.torch_logprobs"
    body = f"b.torch_step({fn}, h, w, t, gl, ge)\n"
    return common.peak_rss_of(_setup_code(N, d, V, threads, torch_inputs=True) + "\n" + body)


def bench_memory(smoke, threads):
    if smoke:
        big, mid, d, V = 1024, 512, 64, 5000
    else:
        big, mid, d, V = 8192, 4096, 896, 151936
    mib = 2.0**20
    mem = {"d": d, "V": V}
    for N in (mid, big):
        mem[f"fused_extra_peak_mib_N{N}"] = peak_fused(N, d, V, threads) / mib
        mem[f"materialised_logits_mib_N{N}"] = N * V * 4 / mib
    mem["mid"], mem["big"] = mid, big
    if not HAVE_TORCH:
        return mem
    mem[f"torch_extra_peak_mib_N{mid}"] = peak_torch(mid, d, V, threads, chunked=False) / mib
    mem[f"torch_chunked_extra_peak_mib_N{mid}"] = peak_torch(mid, d, V, threads, chunked=True) / mib
    f = max(mem[f"fused_extra_peak_mib_N{mid}"], 1.0)
    mem[f"torch_over_fused_N{mid}"] = mem[f"torch_extra_peak_mib_N{mid}"] / f
    mem[f"torch_chunked_over_fused_N{mid}"] = mem[f"torch_chunked_extra_peak_mib_N{mid}"] / f
    return mem


# ---- main ---------------------------------------------------------------------------------------

def main() -> int:
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--no-memory", action="store_true", help="skip the child-process memory measurements")
    args = p.parse_args()
    threads = common.setup_threads(args.threads or 2)
    repeat = 1 if args.smoke else args.repeat
    warmup = 1
    shapes = SMOKE_SHAPES if args.smoke else FULL_SHAPES
    t0 = time.time()
    results = []
    for N, d, V in shapes:
        print(f"shape N={N} d={d} V={V} ...", flush=True)
        results.append(bench_shape(N, d, V, repeat, warmup))
    memory = None if args.no_memory else bench_memory(args.smoke, threads)

    rows = []
    for r in results:
        s, q = r["seconds"], r["ratios"]
        peer = lambda a, b: f"{q[a]:.2f}x / {q[b]:.2f}x" if HAVE_TORCH else "(no torch)"
        rows.append([
            f"{r['N']} x {r['d']} x {r['V']}",
            f"{s['fused_fwd']:.3f}", f"{s['sgemm']:.3f}", f"**{q['fwd_over_sgemm']:.3f}**",
            f"{s['fused_bwd']:.3f}", f"{s['three_sgemm']:.3f}", f"**{q['bwd_over_three_sgemm']:.3f}**",
            peer("torch_fwd_over_fused", "torch_chunked_fwd_over_fused"),
            peer("torch_step_over_fused", "torch_chunked_step_over_fused"),
        ])
    print()
    print(common.table(rows, [
        "N x d x V", "fused fwd s", "1 sgemm s", "fwd / sgemm", "fused bwd s", "3 sgemm s", "bwd / 3 sgemm",
        "torch / fused fwd (full / chunked)", "torch / fused step (full / chunked)",
    ]))
    if memory:
        mid, big = memory["mid"], memory["big"]
        mrows = [
            [f"fused fwd+bwd, N={mid}", f"{memory[f'fused_extra_peak_mib_N{mid}']:.1f}", "1"],
            [f"fused fwd+bwd, N={big}", f"{memory[f'fused_extra_peak_mib_N{big}']:.1f}", ""],
            [f"materialised logits alone, N={big}", f"{memory[f'materialised_logits_mib_N{big}']:.0f}", ""],
        ]
        if HAVE_TORCH:
            mrows += [
                [f"torch (logits + log_softmax), N={mid}", f"{memory[f'torch_extra_peak_mib_N{mid}']:.0f}",
                 f"{memory[f'torch_over_fused_N{mid}']:.0f}x"],
                [f"torch chunked ({CHUNK} tokens), N={mid}",
                 f"{memory[f'torch_chunked_extra_peak_mib_N{mid}']:.0f}",
                 f"{memory[f'torch_chunked_over_fused_N{mid}']:.0f}x"],
            ]
        print()
        print(common.table(mrows, [f"extra peak RSS (d={memory['d']}, V={memory['V']})", "MiB", "vs fused"]))
    payload = {"shapes": results, "memory": memory, "threads": threads, "repeat": repeat,
               "chunk_tokens_torch_chunked": CHUNK, "wall_seconds": time.time() - t0}
    path = common.write_result("bench_fused", payload, args.out, smoke=args.smoke)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
