"""PyTorch prototype of the Qwen2-style tiny LM used by the feasibility study
(benchmarks/feasibility.md): tied embeddings, RMSNorm, RoPE, causal MHA with
qkv bias, SwiGLU; batched greedy/temperature sampling with a KV cache."""
import math, time, sys
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from o1pruner.tasks.arithmetic import ArithmeticTask, CharTokenizer

torch.set_num_threads(1)  # the shared machine is oversubscribed: 2 threads spin


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, hd, base=10000.0):
    inv = 1.0 / (base ** (torch.arange(0, hd, 2).float() / hd))
    t = torch.arange(T).float()
    f = torch.outer(t, inv)
    return torch.cos(f), torch.sin(f)


def apply_rope(x, cos, sin):
    # x [B,H,T,hd], rotate-half convention (HF Qwen2)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    c = torch.cat([cos, cos], -1)
    s = torch.cat([sin, sin], -1)
    rot = torch.cat([-x2, x1], -1)
    return x * c + rot * s


class Block(nn.Module):
    def __init__(self, d, H, dff):
        super().__init__()
        self.H = H
        self.n1 = RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=True)
        self.o = nn.Linear(d, d, bias=False)
        self.n2 = RMSNorm(d)
        self.gate = nn.Linear(d, dff, bias=False)
        self.up = nn.Linear(d, dff, bias=False)
        self.down = nn.Linear(dff, d, bias=False)

    def forward(self, x, cos, sin, kv=None, pos0=0, mask=None):
        B, T, d = x.shape
        H = self.H
        hd = d // H
        q, k, v = self.qkv(self.n1(x)).split(d, -1)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        q = apply_rope(q, cos[pos0:pos0 + T], sin[pos0:pos0 + T])
        k = apply_rope(k, cos[pos0:pos0 + T], sin[pos0:pos0 + T])
        if kv is not None:
            if kv[0] is not None:
                k = torch.cat([kv[0], k], 2)
                v = torch.cat([kv[1], v], 2)
            kv[0], kv[1] = k, v
        if mask is not None:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif kv is None or T > 1:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, d))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class TinyLM(nn.Module):
    def __init__(self, V, d=128, L=4, H=4, dff=384, ctx=256):
        super().__init__()
        self.cfg = dict(V=V, d=d, L=L, H=H, dff=dff, ctx=ctx)
        self.emb = nn.Embedding(V, d)
        nn.init.normal_(self.emb.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(d, H, dff) for _ in range(L)])
        for b in self.blocks:
            for m in (b.qkv, b.o, b.gate, b.up):
                nn.init.normal_(m.weight, std=0.02)
            nn.init.normal_(b.down.weight, std=0.02 / math.sqrt(2 * L))
            nn.init.normal_(b.o.weight, std=0.02 / math.sqrt(2 * L))
            nn.init.zeros_(b.qkv.bias)
        self.nf = RMSNorm(d)
        cos, sin = rope_tables(ctx, d // H)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, idx, kvs=None, pos0=0, mask=None):
        x = self.emb(idx)
        for i, b in enumerate(self.blocks):
            x = b(x, self.cos, self.sin, None if kvs is None else kvs[i], pos0, mask)
        return self.nf(x) @ self.emb.weight.t()

    def nparams(self):
        return sum(p.numel() for p in self.parameters())


def token_logprobs(model, ids, targets):
    logits = model(ids)
    return torch.gather(F.log_softmax(logits.float(), -1), 2, targets.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def generate(model, tok, prompts, max_new=200, temperature=0.0, seed=0, batch=512):
    """Prompts left-padded (pad keys masked; RoPE is relative so the shift is harmless)."""
    g = torch.Generator().manual_seed(seed)
    out = [None] * len(prompts)
    enc = [[tok.bos_token_id] + tok.encode(p) for p in prompts]
    for s0 in range(0, len(prompts), batch):
        chunk = list(range(s0, min(len(prompts), s0 + batch)))
        P = max(len(enc[i]) for i in chunk)
        B = len(chunk)
        x = torch.zeros(B, P, dtype=torch.long)
        valid = torch.zeros(B, P + max_new, dtype=torch.bool)
        for j, i in enumerate(chunk):
            x[j, P - len(enc[i]):] = torch.tensor(enc[i])
            valid[j, P - len(enc[i]):] = True
        causal = torch.tril(torch.ones(P, P, dtype=torch.bool))
        m = (causal[None] & valid[:, None, :P])[:, None]
        kvs = [[None, None] for _ in model.blocks]
        logits = model(x, kvs, 0, m)[:, -1]
        pos = P
        gen = torch.zeros(B, max_new, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        n = 0
        for t in range(max_new):
            if temperature > 0:
                p = torch.softmax(logits / temperature, -1)
                nxt = torch.multinomial(p, 1, generator=g).squeeze(1)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
            gen[:, t] = nxt
            n = t + 1
            done = done | (nxt == tok.eos_token_id)
            if bool(done.all()) or pos >= model.cfg["ctx"] - 1:
                break
            m = valid[:, None, None, : pos + 1]
            logits = model(nxt[:, None], kvs, pos, m)[:, -1]
            pos += 1
        for j, i in enumerate(chunk):
            ids = gen[j, :n].tolist()
            if tok.eos_token_id in ids:
                ids = ids[: ids.index(tok.eos_token_id) + 1]
            out[i] = ids
    return out


def pad_batch(seqs, pad=0):
    T = max(len(s) for s in seqs)
    a = torch.full((len(seqs), T), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        a[i, : len(s)] = torch.tensor(s)
    return a


def make_example(tok, prompt, response):
    p = [tok.bos_token_id] + tok.encode(prompt)
    r = tok.encode(response) + [tok.eos_token_id]
    ids = p + r
    # inputs ids[:-1], targets ids[1:], mask = target is in the response
    mask = [0] * (len(p) - 1) + [1] * len(r)
    return ids, mask


def batch_tensors(examples):
    T = max(len(e[0]) for e in examples) - 1
    B = len(examples)
    inp = torch.zeros(B, T, dtype=torch.long)
    tgt = torch.zeros(B, T, dtype=torch.long)
    msk = torch.zeros(B, T)
    for i, (ids, m) in enumerate(examples):
        n = len(ids) - 1
        inp[i, :n] = torch.tensor(ids[:-1])
        tgt[i, :n] = torch.tensor(ids[1:])
        msk[i, :n] = torch.tensor(m, dtype=torch.float32)
    return inp, tgt, msk


if __name__ == "__main__":
    tok = CharTokenizer()
    for (d, L, H, dff) in [(128, 4, 4, 384), (160, 6, 4, 448), (192, 6, 6, 512), (256, 4, 8, 704)]:
        m = TinyLM(tok.vocab_size, d, L, H, dff)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        x = torch.randint(3, 90, (64, 128))
        for it in range(6):
            if it == 1:
                t0 = time.perf_counter()
            lp = token_logprobs(m, x[:, :-1], x[:, 1:])
            loss = -lp.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = (time.perf_counter() - t0) / 5
        print(f"d={d} L={L} H={H} dff={dff} params={m.nparams()/1e6:.2f}M train tok/s={64*127/dt:.0f}")
