"""TinyLM (o1pruner.models) against the same Qwen2-style architecture written
in PyTorch CPU: training tokens/s (forward + backward + AdamW) and batched
greedy generation tokens/s (both with a KV cache), same weights, same
threads, one run. Log-probs and greedy tokens are checked to agree first.

    python benchmarks/bench_model.py            # full sizes
    python benchmarks/bench_model.py --smoke    # seconds

Workloads: "full" batches have every row of length T (no padding, the
compute-bound case); "padded" batches have lengths drawn uniformly in
[T/4, T], right-padded to T, as SFT/RL batches of varying solutions are:
TinyLM packs the real tokens and skips the padding, the PyTorch model (like
Hugging Face's) computes the padded positions under an attention mask.
Tokens/s count real tokens only. Without torch installed (CI smoke runs)
the script checks TinyLM against the float64 reference and times it alone.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

import common

try:
    import torch
    import torch.nn.functional as tF
except ImportError:  # pragma: no cover
    torch = None


# ---- the same architecture in PyTorch --------------------------------------

def build_torch_model(model):
    """A plain PyTorch Qwen2-style model holding a copy of TinyLM's weights
    (separate q/k/v and gate/up projections, as Hugging Face writes it;
    scaled_dot_product_attention; AdamW from torch.optim)."""
    cfg = model.config
    d, H, F_, L = cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.num_hidden_layers
    D = d // H
    P = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in model.named_parameters()}

    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    ang = torch.arange(cfg.max_position_embeddings, dtype=torch.float32)[:, None] * inv_freq
    ang = torch.cat([ang, ang], -1)
    cos_t, sin_t = ang.cos(), ang.sin()

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps))

    def rot(x):
        return torch.cat([-x[..., D // 2:], x[..., : D // 2]], -1)

    def lin(x, name, bias=False):
        return tF.linear(x, P[name + ".weight"], P[name + ".bias"] if bias else None)

    def layer_qkv(x, i, pos):
        pre = f"model.layers.{i}."
        h = rms(x, P[pre + "input_layernorm.weight"])
        B, T = x.shape[:2]
        q = lin(h, pre + "self_attn.q_proj", True).view(B, T, H, D).transpose(1, 2)
        k = lin(h, pre + "self_attn.k_proj", True).view(B, T, H, D).transpose(1, 2)
        v = lin(h, pre + "self_attn.v_proj", True).view(B, T, H, D).transpose(1, 2)
        c, s = cos_t[pos], sin_t[pos]
        return q * c + rot(q) * s, k * c + rot(k) * s, v

    def layer_rest(x, a, i):
        pre = f"model.layers.{i}."
        B, T = x.shape[:2]
        x = x + lin(a.transpose(1, 2).reshape(B, T, d), pre + "self_attn.o_proj")
        h = rms(x, P[pre + "post_attention_layernorm.weight"])
        g = lin(h, pre + "mlp.gate_proj")
        u = lin(h, pre + "mlp.up_proj")
        return x + lin(tF.silu(g) * u, pre + "mlp.down_proj")

    def hidden(ids, mask=None):
        B, T = ids.shape
        x = P["model.embed_tokens.weight"][ids]
        pos = torch.arange(T)
        attn_mask = None
        if mask is not None:  # causal and key padding, as Hugging Face builds it
            attn_mask = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None] & mask[:, None, None, :].bool()
        for i in range(L):
            q, k, v = layer_qkv(x, i, pos)
            if attn_mask is None:
                a = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                a = tF.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            x = layer_rest(x, a, i)
        return rms(x, P["model.norm.weight"])

    def logprobs(ids, mask, targets):
        h = hidden(ids, mask)
        logits = h @ P["model.embed_tokens.weight"].T
        lp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        return torch.where(targets >= 0, lp, torch.zeros_like(lp))

    opt = torch.optim.AdamW(list(P.values()), lr=1e-4, weight_decay=0.0)

    def train_step(ids, mask, targets):
        opt.zero_grad(set_to_none=True)
        lp = logprobs(ids, mask, targets)
        valid = (targets >= 0).sum()
        loss = -lp.sum() / valid
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        return float(loss.detach())

    @torch.inference_mode()
    def generate(prompts, max_new):
        """Greedy decoding of equal-length prompts [B, T0] with a
        preallocated KV cache per layer."""
        B, T0 = prompts.shape
        Tc = T0 + max_new
        kc = [torch.zeros(B, H, Tc, D) for _ in range(L)]
        vc = [torch.zeros(B, H, Tc, D) for _ in range(L)]
        out = torch.empty(B, max_new, dtype=torch.long)
        x = P["model.embed_tokens.weight"][prompts]
        pos = torch.arange(T0)
        for i in range(L):
            q, k, v = layer_qkv(x, i, pos)
            kc[i][:, :, :T0], vc[i][:, :, :T0] = k, v
            x = layer_rest(x, tF.scaled_dot_product_attention(q, k, v, is_causal=True), i)
        h = rms(x[:, -1:], P["model.norm.weight"])
        tok = (h @ P["model.embed_tokens.weight"].T).argmax(-1)
        out[:, 0] = tok[:, 0]
        for s in range(1, max_new):
            p = T0 + s - 1
            x = P["model.embed_tokens.weight"][tok]
            pos = torch.tensor([p])
            for i in range(L):
                q, k, v = layer_qkv(x, i, pos)
                kc[i][:, :, p: p + 1], vc[i][:, :, p: p + 1] = k, v
                a = tF.scaled_dot_product_attention(q, kc[i][:, :, : p + 1], vc[i][:, :, : p + 1])
                x = layer_rest(x, a, i)
            h = rms(x, P["model.norm.weight"])
            tok = (h @ P["model.embed_tokens.weight"].T).argmax(-1)
            out[:, s] = tok[:, 0]
        return out

    return logprobs, train_step, generate


# ---- the benchmark ------------------------------------------------------------

def _cells(t, n):
    """tokens/s of o1pruner and torch and the speed-up ("-" without torch)."""
    if "torch" not in t:
        return [f"{n / t['o1pruner']:,.0f}", "-", "-"]
    return [f"{n / t['o1pruner']:,.0f}", f"{n / t['torch']:,.0f}", f"{t['torch'] / t['o1pruner']:.2f}x"]


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="training sequences per step")
    p.add_argument("--gen-batch", type=int, default=32, help="prompts generated together")
    p.add_argument("--hidden", type=int, default=256, help="hidden_size d")
    p.add_argument("--layers", type=int, default=4, help="num_hidden_layers")
    p.add_argument("--heads", type=int, default=4, help="num_attention_heads")
    p.add_argument("--ff", type=int, default=688, help="intermediate_size")
    p.add_argument("--vocab", type=int, default=64, help="vocab_size")
    p.add_argument("--seq", type=int, default=256, help="training sequence length T")
    args = p.parse_args(argv)
    import o1pruner
    from o1pruner.models import TinyLM, TinyLMConfig, next_token_targets

    threads = common.setup_threads(args.threads)
    if args.smoke:
        cfg = TinyLMConfig(vocab_size=64, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                           num_attention_heads=2, max_position_embeddings=128)
        T, B, GB, T0, NEW, repeat = 64, 4, 8, 8, 24, 1
    else:
        T = args.seq
        cfg = TinyLMConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.ff,
                           num_hidden_layers=args.layers, num_attention_heads=args.heads,
                           max_position_embeddings=max(512, T))
        B, GB, T0, NEW, repeat = args.batch, args.gen_batch, 32, T - 32, args.repeat
    model = TinyLM(cfg, seed=0)
    rng = np.random.default_rng(0)
    # weights a little larger than the init so the check is not trivially tiny
    for name, v in model.named_parameters():
        if not name.endswith("norm.weight"):
            v *= 3.0
    have_torch = torch is not None
    if have_torch:
        logprobs_t, train_t, generate_t = build_torch_model(model)
    else:
        print("torch is not installed: o1pruner alone, checked against the float64 reference")

    ids = rng.integers(0, cfg.vocab_size, (B, T))
    full_mask = np.ones((B, T), np.int64)
    lengths = rng.integers(T // 4, T + 1, B)
    pad_mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    batches = {"full": full_mask, "padded": pad_mask}

    # correctness first: same log-probs from the same weights
    worst = 0.0
    prompts = rng.integers(0, cfg.vocab_size, (GB, T0))
    g_ours = model.generate([list(r) for r in prompts], max_new_tokens=NEW, temperature=0, stop_token_id=[])
    if have_torch:
        for name, mask in batches.items():
            tg = next_token_targets(ids, mask)
            ours = model.logprobs(ids, mask, tg)
            with torch.no_grad():
                theirs = logprobs_t(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(tg)).numpy()
            worst = max(worst, float(np.abs(ours - theirs).max()))
        g_torch = generate_t(torch.from_numpy(prompts), NEW).numpy()
        agree = float(np.mean(np.cumprod(g_ours.tokens == g_torch, axis=1)[:, -1]))
        share = float(np.mean(g_ours.tokens == g_torch))
        what = f"greedy continuations identical for {agree:.0%} of prompts ({share:.1%} of tokens)"
    else:
        from o1pruner import reference
        sub_ids, sub_mask = ids[:2, :64], pad_mask[:2, :64]
        tg = next_token_targets(sub_ids, sub_mask)
        want, _, _ = reference.tinylm_forward(dict(model.named_parameters()), cfg, sub_ids, sub_mask, tg)
        worst = float(np.abs(model.logprobs(sub_ids, sub_mask, tg) - want).max())
        agree, what = None, "vs the float64 reference"
    if worst > 1e-3:
        sys.exit(f"log-probs differ by {worst:.3e}")
    print(f"check: max |logp diff| = {worst:.2e}; {what}")

    rows, results = [], {}
    for name, mask in batches.items():
        tg = next_token_targets(ids, mask)
        if have_torch:
            ti, tm, tt = (torch.from_numpy(a) for a in (ids, mask, tg))
        n_tok = int(mask.sum())
        fns = {"o1pruner": lambda: model.train_step(ids, mask, tg, lr=1e-4, max_grad_norm=1.0)}
        if have_torch:
            fns["torch"] = lambda: train_t(ti, tm if name == "padded" else None, tt)
        t = common.interleaved_medians(fns, repeat=repeat, warmup=1)
        results[f"train_{name}"] = {k: {"seconds": v, "tokens_per_s": n_tok / v} for k, v in t.items()}
        rows.append([f"train, {name} batch {B}x{T} ({n_tok} tokens)"] + _cells(t, n_tok))

    plist = [list(r) for r in prompts]
    fns = {"o1pruner": lambda: model.generate(plist, max_new_tokens=NEW, temperature=0, stop_token_id=[])}
    if have_torch:
        tp = torch.from_numpy(prompts)
        fns["torch"] = lambda: generate_t(tp, NEW)
    t = common.interleaved_medians(fns, repeat=max(1, repeat // 2), warmup=1)
    n_gen = GB * NEW
    results["generate_greedy"] = {k: {"seconds": v, "tokens_per_s": n_gen / v} for k, v in t.items()}
    rows.append([f"generate, {GB} prompts x {T0} + {NEW} new"] + _cells(t, n_gen))
    # sampling (temperature 1, top-p 0.9) costs about the same in o1pruner
    ts = common.median_time(lambda: model.generate(plist, max_new_tokens=NEW, temperature=1.0, top_p=0.9,
                                                   seed=0, stop_token_id=[]), repeat=max(1, repeat // 2))
    results["generate_sampled_o1pruner"] = {"seconds": ts, "tokens_per_s": n_gen / ts}

    # the ceiling for training: plain sgemm at the step's largest shape, and
    # the matmul rate of each training step (6 N x matmul parameters per
    # step, attention excluded)
    from o1pruner._loader import _core
    d, F_ = cfg.hidden_size, cfg.intermediate_size
    xa = rng.standard_normal((B * T, d)).astype(np.float32)
    wa = rng.standard_normal((2 * F_, d)).astype(np.float32)
    t_gemm = common.median_time(lambda: _core.sgemm(xa, wa, trans_b=True), repeat=repeat)
    sgemm_gflops = 2 * B * T * d * 2 * F_ / t_gemm / 1e9
    matmul_params = cfg.num_hidden_layers * (4 * d * d + 3 * d * F_) + cfg.vocab_size * d
    step_flops = 6 * matmul_params * B * T
    rate = {k: step_flops / v["seconds"] / 1e9 for k, v in results["train_full"].items()}
    results["ceiling"] = {"sgemm_gflops": sgemm_gflops, "train_full_matmul_gflops": rate}
    print(common.table(rows, ["workload (tokens/s)", "o1pruner", "torch", "speed-up"]))
    print("training matmul rate (full batch): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rate.items())
          + f"; plain sgemm {B * T}x{d}x{2 * F_}: {sgemm_gflops:.0f} GFLOP/s")
    print(f"o1pruner sampling (T=1, top_p=0.9): {n_gen / ts:,.0f} tokens/s")
    payload = {
        "config": {k: getattr(cfg, k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                                                 "num_hidden_layers", "num_attention_heads")},
        "train_batch": [B, T], "generate": {"prompts": GB, "prompt_len": T0, "new_tokens": NEW},
        "threads": threads, "torch": have_torch,
        "check": {"max_abs_logp_diff": worst, "greedy_prompts_identical": agree},
        "results": results, "repeat": repeat,
    }
    path = common.write_result("bench_model", payload, out=args.out, smoke=args.smoke)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
