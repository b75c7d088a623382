"""ppo_clip_loss with its gradient against PyTorch CPU (forward + autograd
backward, same thread count), at B=256 sequences of T=4096 tokens: the public
O1-Pruner loss (sequence-mean ratio, with the reference's per-token log-probs
or its per-sequence means computed ahead), TRL's GRPO loss and verl's policy
loss (token ratio). Results are checked against PyTorch before anything is timed.

    python benchmarks/bench_ppo.py [--smoke] [--threads N]
"""

from __future__ import annotations

import sys

import numpy as np

import common

import o1pruner

TARGET = 5.0  # issue 2, section 5: >= 5x a PyTorch implementation


def make_batch(B, T, seed=0):
    rng = np.random.default_rng(seed)
    ref_logp = rng.normal(-1.5, 1.0, size=(B, T)).astype(np.float32)
    logp = (ref_logp + rng.normal(0, 0.3, size=(B, T)) + rng.normal(0, 0.15, size=(B, 1))).astype(np.float32)
    lengths = rng.integers(T // 4, T + 1, size=B)  # right-padded responses
    mask = np.arange(T)[None, :] < lengths[:, None]
    adv = rng.normal(0, 1, size=B)
    return logp, ref_logp, adv, mask


def torch_cases(torch):
    """The three objectives written in PyTorch as their codebases state them
    (float32, autograd for the gradient)."""

    def public_o1pruner(lp, ref, adv, mask):
        m = mask.to(lp.dtype)
        n = m.sum(-1)
        ratio = torch.exp((lp * m).sum(-1) / n - (ref * m).sum(-1) / n)
        return torch.mean(torch.max(-adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2)))

    def public_o1pruner_ref_means(lp, ref_mean, adv, mask):
        # the frozen reference's mean log-probs computed once, ahead of training
        m = mask.to(lp.dtype)
        ratio = torch.exp((lp * m).sum(-1) / m.sum(-1) - ref_mean)
        return torch.mean(torch.max(-adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2)))

    def trl_grpo(lp, ref, adv, mask):
        m = mask.to(lp.dtype)
        a = adv[:, None]
        coef_1 = torch.exp(lp - ref)
        coef_2 = torch.clamp(coef_1, 0.8, 1.2)
        per_token = -torch.min(coef_1 * a, coef_2 * a)
        return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()

    def verl_token_mean(lp, ref, adv, mask):
        m = mask.to(lp.dtype)
        a = adv[:, None]
        ratio = torch.exp(torch.clamp(lp - ref, -20.0, 20.0))
        l1, l2 = -a * ratio, -a * torch.clamp(ratio, 0.8, 1.2)
        lmax = torch.maximum(l1, l2)
        pg = torch.where(a < 0, torch.min(-a * 3.0, lmax), lmax)
        return (pg * m).sum() / m.sum()

    return {
        "sequence_mean (O1-Pruner)": (public_o1pruner, dict()),
        "sequence_mean, reference means given": (public_o1pruner_ref_means, dict(ref_means=True)),
        "token, grpo (TRL)": (trl_grpo, dict(ratio="token", aggregate="grpo")),
        "token, token-mean + dual clip + clamp (verl)": (
            verl_token_mean, dict(ratio="token", aggregate="token-mean", dual_clip=3.0, logratio_clamp=20.0)),
    }


def without_torch(logp, ref_logp, adv, mask, smoke) -> int:
    """No PyTorch to compare with: check every mode against the float64
    reference and stop (a smoke run passes, a full run fails)."""
    from o1pruner import reference

    for kw in (dict(), dict(ratio="token", aggregate="grpo"),
               dict(ratio="token", aggregate="token-mean", dual_clip=3.0, logratio_clamp=20.0)):
        res = o1pruner.ppo_clip_loss(logp, ref_logp, adv, mask, **kw)
        loss, grad, _ = reference.ppo_clip_loss(logp, ref_logp, adv, mask, **kw)
        err = np.abs(res.grad - grad).max() / np.abs(grad).max()
        if not (abs(res.loss - loss) <= 1e-5 * (1 + abs(loss)) and err < 1e-4):
            print(f"{kw}: MISMATCH against the float64 reference: loss {res.loss} vs {loss}, grad {err:.2e}")
            return 1
    print("results match the float64 reference; torch is not installed, so nothing is timed "
          "(pip install torch==2.13.0)")
    return 0 if smoke else 1


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    threads = common.setup_threads(args.threads)
    B, T = (8, 256) if args.smoke else (256, 4096)
    repeat = 1 if args.smoke else args.repeat
    logp, ref_logp, adv, mask = make_batch(B, T)
    try:
        import torch
    except ImportError:
        return without_torch(logp, ref_logp, adv, mask, args.smoke)
    ref_means = o1pruner.sequence_logprobs(ref_logp, mask, "mean")
    t_adv, t_mask = torch.from_numpy(adv.astype(np.float32)), torch.from_numpy(mask)
    rows, results = [], []
    for name, (fn, kw) in torch_cases(torch).items():
        kw = dict(kw)
        ref_in = ref_means if kw.pop("ref_means", False) else ref_logp
        t_ref = torch.from_numpy(ref_in.astype(np.float32))

        def ours():
            return o1pruner.ppo_clip_loss(logp, ref_in, adv, mask, **kw)

        def pytorch():
            lp = torch.from_numpy(logp).requires_grad_()
            loss = fn(lp, t_ref, t_adv, t_mask)
            loss.backward()
            return loss.item(), lp.grad

        # correctness first
        res = ours()
        loss, grad = pytorch()
        grad = grad.numpy()
        gscale = np.abs(grad).max()
        loss_err = abs(res.loss - loss) / max(abs(loss), 1e-30)
        grad_err = np.abs(res.grad - grad).max() / gscale
        if not (loss_err < 1e-4 and grad_err < 1e-4):
            print(f"{name}: MISMATCH against PyTorch: loss {res.loss} vs {loss} (rel {loss_err:.2e}), "
                  f"grad max rel {grad_err:.2e}")
            return 1
        times = common.interleaved_medians({"ours": ours, "torch": pytorch}, repeat=repeat)
        ratio = times["torch"] / times["ours"]
        results.append(dict(case=name, B=B, T=T, ours_ms=times["ours"] * 1e3, torch_ms=times["torch"] * 1e3,
                            speedup=ratio, target=TARGET, loss_rel_err=loss_err, grad_rel_err=float(grad_err)))
        rows.append([name, f"{B}x{T}", f"{times['ours'] * 1e3:.2f}", f"{times['torch'] * 1e3:.2f}",
                     f"{ratio:.1f}x", "yes" if ratio >= TARGET else "no",
                     f"{max(loss_err, float(grad_err)):.1e}"])

    header = ["ppo_clip_loss + grad", "B x T", "o1pruner ms", "PyTorch ms", "speedup", f">= {TARGET:g}x",
              "max rel err"]
    print(f"threads: {threads}, repeats: {repeat} (medians, interleaved)")
    print(common.table(rows, header))
    path = common.write_result("ppo", dict(benchmark="ppo_clip_loss", threads=threads, repeat=repeat,
                                           results=results), out=args.out, smoke=args.smoke)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
