"""Readable float64 NumPy twins of every C kernel.

Each function here computes what its namesake in the public API computes, in
the plainest NumPy a reader can check against method.md in a minute. Tests
compare the C core against these; nothing else should call them in a hot path.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "reference_stats",
    "length_harmonizing_reward",
    "harmonize_weights",
    "token_logprobs",
    "token_logprobs_backward",
    "sequence_logprobs",
    "sequence_logprobs_backward",
    "ppo_clip_loss",
    "dpo_loss",
    "fused_linear_logprobs",
    "fused_linear_logprobs_backward",
    "tinylm_forward",
    "tinylm_backward",
]


# ---- rewards (method.md steps 1-2) ---------------------------------------

def reference_stats(lengths, correct, group):
    """(ids, mean_length, accuracy, count, inverse) per problem id."""
    lengths = np.asarray(lengths, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    ids, inverse, count = np.unique(np.asarray(group), return_inverse=True, return_counts=True)
    with np.errstate(over="ignore"):
        mean_length = np.bincount(inverse, weights=lengths) / count
    # a sum that overflowed (lengths near the float64 maximum): in units of 2^64
    big = np.isinf(mean_length)
    if big.any():
        scaled = np.ldexp(np.bincount(inverse, weights=np.ldexp(lengths, -64)) / count, 64)
        mean_length = np.where(big, scaled, mean_length)
    accuracy = np.bincount(inverse, weights=correct) / count
    return ids, mean_length, accuracy, count, inverse


def length_harmonizing_reward(lengths, correct, ref_mean_length, ref_accuracy, lam):
    """R = Lbar/L - 1 + lam (A - Abar)."""
    L = np.asarray(lengths, dtype=np.float64)
    A = np.asarray(correct, dtype=np.float64)
    return np.asarray(ref_mean_length, np.float64) / L - 1.0 + lam * (A - np.asarray(ref_accuracy, np.float64))


def harmonize_weights(rewards, clip=(-2.0, 4.0), normalize="dataset", group=None):
    """Clip (w <= lo -> lo, w > hi -> hi), then z-score with ddof 0."""
    w = np.array(rewards, dtype=np.float64)
    if clip is not None:
        lo, hi = clip
        w = np.where(w <= lo, lo, w)
        w = np.where(w > hi, hi, w)

    def z(x):
        if np.all(x == x[0]):
            return np.zeros_like(x)
        # in units of the power of two above max |x| (the z-score is
        # scale-free): neither the sum nor the squares overflow or underflow
        xs = np.ldexp(x, -np.frexp(np.max(np.abs(x)))[1])
        return (xs - xs.mean()) / xs.std()

    if normalize == "dataset":
        return z(w)
    if normalize == "group":
        out = np.empty_like(w)
        group = np.asarray(group)
        for g in np.unique(group):
            sel = group == g
            out[sel] = z(w[sel])
        return out
    return w


# ---- token log-probs (shared by the logprob and fused families) ------------

def token_logprobs(logits, targets, temperature=1.0, ignore_index=-100):
    """(logp, entropy, lse) per row of z = logits / temperature, float64.

    logp[i] = z[i, t_i] - lse[i], lse[i] = log sum_j exp z[i, j],
    entropy[i] = -sum_j p_ij log p_ij = lse[i] - sum_j p_ij z_ij.
    Rows whose target is ignore_index give 0 for all three. Entries of -inf
    (a masked vocabulary) have p = 0 and add nothing to the entropy. Every
    sum runs on z - max (the entropy as log s - sum p (z - m), the same value):
    with large logits, lse - sum p z would cancel catastrophically.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    t = np.asarray(targets, dtype=np.int64)
    n = z.shape[0]
    logp, ent, lse = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        if t[i] == ignore_index:
            continue
        m = z[i].max()
        zc = z[i] - m
        s = np.exp(zc).sum()
        lse[i] = m + np.log(s)
        p = np.exp(zc) / s
        finite = p > 0
        ent[i] = np.log(s) - (p[finite] * zc[finite]).sum()
        logp[i] = zc[t[i]] - np.log(s)
    return logp, ent, lse


def token_logprobs_backward(logits, targets, grad_logp, grad_entropy=None, temperature=1.0,
                            ignore_index=-100):
    """d/d logits of sum_i grad_logp[i] logp[i] + grad_entropy[i] entropy[i].

    With p = softmax(z) and z = logits / temperature:
    d logp_i / d z_ij = 1[j = t_i] - p_ij and
    d H_i / d z_ij = -p_ij (z_ij - sum_k p_ik z_ik); both scaled by 1/temperature.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    t = np.asarray(targets, dtype=np.int64)
    g = np.zeros_like(z)
    for i in range(z.shape[0]):
        if t[i] == ignore_index:
            continue
        zc = z[i] - z[i].max()          # centred: no cancellation in zf - ez
        p = np.exp(zc) / np.exp(zc).sum()
        finite = p > 0
        zf = np.where(finite, zc, 0.0)
        ez = (p * zf).sum()
        row = -grad_logp[i] * p
        row[t[i]] += grad_logp[i]
        if grad_entropy is not None:
            row -= grad_entropy[i] * p * (zf - ez)
        g[i] = row / temperature
    return g


# ---- objectives: sequence log-probs and PPO-clip (method.md step 3) ---------

def sequence_logprobs(token_logp, mask, reduce="sum"):
    """Sum (or mean over valid tokens) of each row's valid token log-probs.
    A fully masked row gives 0."""
    x = np.asarray(token_logp, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    s = np.where(m, x, 0.0).sum(axis=1)
    if reduce == "mean":
        n = m.sum(axis=1)
        s = np.where(n > 0, s / np.maximum(n, 1), 0.0)
    return s


def sequence_logprobs_backward(grad, mask, reduce="sum"):
    """d/d token_logp of sum_b grad[b] * sequence_logprobs(...)[b]."""
    m = np.asarray(mask).astype(bool)
    g = np.asarray(grad, dtype=np.float64)
    if reduce == "mean":
        n = m.sum(axis=1)
        g = np.where(n > 0, g / np.maximum(n, 1), 0.0)
    return np.where(m, g[:, None], 0.0)


def _clip_objective(lr, A, eps_low, eps_high, dual_clip, logratio_clamp):
    """The PPO-clip loss of log-ratios `lr` (A broadcasts against it) and its
    derivative d loss / d lr, with PyTorch's rules at the kinks: max/min give
    the whole gradient to the larger/smaller side and half to each side of a
    tie; clamp passes it on its inclusive range. Returns (loss, dloss, r,
    clamped log-ratio, clipped, dual_clipped)."""
    if logratio_clamp is not None:
        lrc = np.clip(lr, -logratio_clamp, logratio_clamp)
        g_lr = (lr >= -logratio_clamp) & (lr <= logratio_clamp)
    else:
        lrc, g_lr = lr, np.ones(np.shape(lr), dtype=bool)
    r = np.exp(lrc)
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    p1 = -A * r                       # unclipped branch
    p2 = -A * np.clip(r, lo, hi)      # clipped branch
    loss = np.maximum(p1, p2)
    share1 = np.where(p1 > p2, 1.0, np.where(p1 == p2, 0.5, 0.0))
    w = share1 + (1.0 - share1) * ((r >= lo) & (r <= hi))   # d loss / d r = -A w
    dual_clipped = np.zeros(np.shape(loss), dtype=bool)
    if dual_clip is not None:         # verl: for A < 0, min(loss, -A c)
        p3 = -A * dual_clip
        neg = np.broadcast_to(A < 0, np.shape(loss))
        share = np.where(loss < p3, 1.0, np.where(loss == p3, 0.5, 0.0))
        dual_clipped = neg & (loss > p3)
        loss = np.where(neg, np.minimum(loss, p3), loss)
        w = np.where(neg, w * share, w)
    zero = np.broadcast_to(A == 0, np.shape(loss))
    loss = np.where(zero, 0.0, loss)
    d = np.where(zero, 0.0, w) * g_lr
    dloss = np.where(d != 0, -A * d * r, 0.0)    # chain rule through r = exp(lr)
    return loss, dloss, r, lrc, p2 > p1, dual_clipped


def ppo_clip_loss(logp, ref_logp, advantages, mask, eps_low=0.2, eps_high=0.2,
                  ratio="sequence_mean", aggregate=None, dual_clip=None, logratio_clamp=None, *,
                  global_batch_size=None, batch_num_tokens=None, max_response_length=None):
    """(loss, d loss / d logp [B,T], stats dict), float64.

    ratio="sequence_mean": r_b = exp(mean_lp_b - mean_ref_b) over valid tokens,
    loss = (1/B or 1) * sum_b l_b over non-empty rows ("mean" / "sum").
    ratio="token": r_bt = exp(logp - ref_logp) per valid token, the token losses
    weighted by the aggregate: 1/N ("token-mean", "bnpo"), 1/(B n_b) ("grpo",
    "seq-mean-token-mean"), 1/B ("seq-mean-token-sum"), 1/(B T) ("dr_grpo"),
    where B, N and T are `global_batch_size`, `batch_num_tokens` and
    `max_response_length` when given (this call is a micro-batch of a batch).
    """
    lp = np.asarray(logp, dtype=np.float64)
    ref = np.asarray(ref_logp, dtype=np.float64)
    A = np.asarray(advantages, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    b, T = lp.shape
    n = m.sum(axis=1)
    B = b if global_batch_size is None else int(global_batch_size)
    T = T if max_response_length is None else int(max_response_length)
    opts = (eps_low, eps_high, dual_clip, logratio_clamp)
    with np.errstate(invalid="ignore", over="ignore"):
        if ratio == "sequence_mean":
            aggregate = aggregate or "mean"
            mean_lp = np.where(m, lp, 0.0).sum(axis=1) / np.maximum(n, 1)
            mean_ref = ref if ref.ndim == 1 else np.where(m, ref, 0.0).sum(axis=1) / np.maximum(n, 1)
            l, dl, r, lrc, clipped, dclipped = _clip_objective(mean_lp - mean_ref, A, *opts)
            s = 1.0 / B if aggregate == "mean" else 1.0
            ok = n > 0                    # fully masked rows contribute nothing
            loss = s * l[ok].sum()
            grad = np.where(m, np.where(ok, s * dl / np.maximum(n, 1), 0.0)[:, None], 0.0)
            sel = ok
        else:
            aggregate = aggregate or "token-mean"
            lr = np.where(m, lp - ref, 0.0)
            l, dl, r, lrc, clipped, dclipped = _clip_objective(lr, A[:, None], *opts)
            N = n.sum() if batch_num_tokens is None else int(batch_num_tokens)
            weight = {
                "token-mean": np.full(b, 1.0 / N if N > 0 else 0.0),
                "bnpo": np.full(b, 1.0 / max(N, 1)),
                "grpo": 1.0 / (B * np.maximum(n, 1)),
                "seq-mean-token-mean": 1.0 / (B * np.maximum(n, 1)),
                "seq-mean-token-sum": np.full(b, 1.0 / B),
                "dr_grpo": np.full(b, 1.0 / (B * T)),
            }[aggregate][:, None]
            loss = np.where(m, weight * l, 0.0).sum()
            grad = np.where(m, weight * dl, 0.0)
            sel = m
    count = int(sel.sum())
    stats = dict(
        clip_fraction=clipped[sel].mean() if count else 0.0,
        dual_clip_fraction=dclipped[sel].mean() if count else 0.0,
        approx_kl=-lrc[sel].mean() if count else 0.0,
        ratio_mean=r[sel].mean() if count else 1.0,
        ratio_min=r[sel].min() if count else 1.0,
        ratio_max=r[sel].max() if count else 1.0,
        count=count,
    )
    return float(loss), grad, stats


# ---- DPO (the paper's DPO baseline) ------------------------------------------

def dpo_loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, chosen_mask, rejected_mask,
             beta=0.1, *, weights=None, length_normalize=False, global_batch_size=None):
    """(loss, d loss / d chosen_logp, d loss / d rejected_logp, stats dict), float64.

    pi = sum (or mean) of the valid token log-probs of each response;
    z = beta ((pi_c - ref_c) - (pi_r - ref_r)); loss = sum_b w_b softplus(-z_b) / B
    over the pairs that are not padding (both rows empty), B = `global_batch_size`
    when given; d loss / d pi_c = -beta w sigmoid(-z) / B = -d loss / d pi_r.
    """
    reduce = "mean" if length_normalize else "sum"
    mc, mr = np.asarray(chosen_mask).astype(bool), np.asarray(rejected_mask).astype(bool)
    pi_c = sequence_logprobs(chosen_logp, mc, reduce)
    pi_r = sequence_logprobs(rejected_logp, mr, reduce)
    b = pi_c.shape[0]
    B = b if global_batch_size is None else int(global_batch_size)
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = mc.any(axis=1)  # a pair with both rows empty is padding
    reward_c = beta * (pi_c - np.asarray(ref_chosen_logp, np.float64))
    reward_r = beta * (pi_r - np.asarray(ref_rejected_logp, np.float64))
    z = reward_c - reward_r
    loss = np.sum(np.where(ok & (w != 0), w * np.logaddexp(0.0, -z), 0.0)) / B
    d = np.where(ok, w * beta * np.exp(-np.logaddexp(0.0, z)) / B, 0.0)  # sigmoid(-z) without overflow
    count = int(ok.sum())
    stats = dict(
        reward_margin=z[ok].mean() if count else 0.0,
        reward_accuracy=(z[ok] > 0).mean() if count else 0.0,
        chosen_reward=reward_c[ok].mean() if count else 0.0,
        rejected_reward=reward_r[ok].mean() if count else 0.0,
        count=count,
    )
    return (float(loss), sequence_logprobs_backward(-d, mc, reduce), sequence_logprobs_backward(d, mr, reduce),
            stats)


# ---- fused LM head + token log-probs (the fused family) --------------------

def _lm_head_logits(hidden, weight, bias):
    """Materialised logits hidden @ weight.T + bias, float64 [N, V]."""
    logits = np.asarray(hidden, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        logits = logits + np.asarray(bias, np.float64)
    return logits


def fused_linear_logprobs(hidden, weight, targets, temperature=1.0, ignore_index=-100, bias=None):
    """(logp, entropy, lse) of z = (hidden @ weight.T + bias) / temperature.

    The unfused definition: materialise the N x V logits, then token_logprobs.
    """
    return token_logprobs(_lm_head_logits(hidden, weight, bias), targets, temperature, ignore_index)


def fused_linear_logprobs_backward(hidden, weight, targets, grad_logp, grad_entropy=None,
                                   temperature=1.0, ignore_index=-100, bias=None):
    """(grad_hidden, grad_weight, grad_bias) of sum_i grad_logp[i] logp[i] +
    grad_entropy[i] entropy[i], by the chain rule through the logits:
    with G = d/d logits (token_logprobs_backward), grad_hidden = G @ weight,
    grad_weight = G.T @ hidden, grad_bias = G summed over the tokens."""
    h = np.asarray(hidden, np.float64)
    w = np.asarray(weight, np.float64)
    g = token_logprobs_backward(_lm_head_logits(h, w, bias), targets, np.asarray(grad_logp, np.float64),
                                None if grad_entropy is None else np.asarray(grad_entropy, np.float64),
                                temperature, ignore_index)
    return g @ w, g.T @ h, g.sum(axis=0)
# ---- TinyLM: the Qwen2-style transformer of o1pruner.models ----------------
#
# params: dict of Hugging Face Qwen2 names -> arrays; config: anything with the
# Qwen2Config attribute names (o1pruner.models.TinyLMConfig). One sequence at
# a time, real tokens only (right padding: positions are column indices, so
# padding never changes the real tokens' results).

def _tinylm_rmsnorm(x, w, eps):
    r = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return w * (x * r), r


def _tinylm_rmsnorm_backward(x, r, w, dy):
    """y = w x r, r = (mean x^2 + eps)^-1/2: dx = r g - x r^3 (g.x)/d, g = w dy."""
    g = w * dy
    dx = r * g - x * r**3 * (g * x).sum(-1, keepdims=True) / x.shape[-1]
    dw = (dy * x * r).sum(0)
    return dx, dw


def _tinylm_rope_tables(n, head_dim, theta):
    """cos, sin [n, head_dim] with HF's layout: angle_i = pos / theta^(2i/D),
    repeated for both halves (rotate_half pairs i with i + D/2)."""
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    ang = np.arange(n, dtype=np.float64)[:, None] * inv_freq[None, :]
    ang = np.concatenate([ang, ang], axis=1)
    return np.cos(ang), np.sin(ang)


def _tinylm_rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _tinylm_attention(q, k, v):
    """Causal softmax(q k^T / sqrt(D)) v per head; q, k, v [H, n, D]."""
    n, D = q.shape[1], q.shape[2]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(D)
    s = np.where(np.tril(np.ones((n, n), dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p @ v, p


def _tinylm_layer_names(i):
    pre = f"model.layers.{i}."
    return {k: pre + v for k, v in dict(
        ln1="input_layernorm.weight", ln2="post_attention_layernorm.weight",
        wq="self_attn.q_proj.weight", bq="self_attn.q_proj.bias",
        wk="self_attn.k_proj.weight", bk="self_attn.k_proj.bias",
        wv="self_attn.v_proj.weight", bv="self_attn.v_proj.bias",
        wo="self_attn.o_proj.weight", wg="mlp.gate_proj.weight",
        wu="mlp.up_proj.weight", wd="mlp.down_proj.weight").items()}


def _tinylm_sequence_forward(P, config, ids):
    """Hidden states [n, d] after the final norm, and the per-layer cache."""
    d, H = config.hidden_size, config.num_attention_heads
    D, eps, n = d // H, config.rms_norm_eps, len(ids)
    cos, sin = _tinylm_rope_tables(n, D, config.rope_theta)
    heads = lambda a: a.reshape(n, H, D).transpose(1, 0, 2)   # [n, d] -> [H, n, D]
    x = P["model.embed_tokens.weight"][ids]
    layers = []
    for i in range(config.num_hidden_layers):
        nm = _tinylm_layer_names(i)
        c = {"x": x}
        h, c["r1"] = _tinylm_rmsnorm(x, P[nm["ln1"]], eps)
        c["h1"] = h
        q = heads(h @ P[nm["wq"]].T + P[nm["bq"]])
        k = heads(h @ P[nm["wk"]].T + P[nm["bk"]])
        v = heads(h @ P[nm["wv"]].T + P[nm["bv"]])
        q = q * cos + _tinylm_rotate_half(q) * sin
        k = k * cos + _tinylm_rotate_half(k) * sin
        o, p = _tinylm_attention(q, k, v)
        c.update(q=q, k=k, v=v, p=p)
        c["a"] = o.transpose(1, 0, 2).reshape(n, d)
        x = x + c["a"] @ P[nm["wo"]].T
        c["xm"] = x
        h, c["r2"] = _tinylm_rmsnorm(x, P[nm["ln2"]], eps)
        c["h2"] = h
        c["g"], c["u"] = h @ P[nm["wg"]].T, h @ P[nm["wu"]].T
        sig = 1.0 / (1.0 + np.exp(-c["g"]))
        c["act"] = c["g"] * sig * c["u"]
        x = x + c["act"] @ P[nm["wd"]].T
        layers.append(c)
    hidden, rf = _tinylm_rmsnorm(x, P["model.norm.weight"], eps)
    return hidden, {"layers": layers, "x": x, "rf": rf, "cos": cos, "sin": sin}


def tinylm_forward(params, config, input_ids, attention_mask=None, targets=None,
                   ignore_index=-100, temperature=1.0):
    """float64 forward of the whole model over a right-padded batch.

    Returns (logp[B,T], hidden[B,T,d], cache): logp[b,t] = log softmax(h_t E^T
    / temperature)[targets[b,t]] for real positions with a target, else 0;
    hidden are the final-norm states (0 on padding); cache feeds
    tinylm_backward.
    """
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    ids = np.asarray(input_ids, dtype=np.int64)
    B, T = ids.shape
    mask = np.ones((B, T), bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
    lengths = mask.sum(1)
    E = P["model.embed_tokens.weight"]
    logp = np.zeros((B, T))
    hidden = np.zeros((B, T, config.hidden_size))
    caches = []
    for b in range(B):
        n = int(lengths[b])
        if n == 0:
            caches.append(None)
            continue
        h, c = _tinylm_sequence_forward(P, config, ids[b, :n])
        hidden[b, :n] = h
        c.update(h=h, ids=ids[b, :n])
        if targets is not None:
            t = np.asarray(targets, dtype=np.int64)[b, :n]
            z = h @ E.T / temperature
            m = z.max(-1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(z - m).sum(-1))
            keep = t != ignore_index
            logp[b, :n] = np.where(keep, z[np.arange(n), np.where(keep, t, 0)] - lse, 0.0)
            c.update(z=z, lse=lse, t=t, keep=keep)
        caches.append(c)
    return logp, hidden, {"P": P, "lengths": lengths, "seqs": caches, "temperature": temperature}


def tinylm_backward(config, cache, grad_logp):
    """Gradients (dict of the same names, float64) of sum grad_logp * logp,
    by hand-written reverse mode through tinylm_forward's cache."""
    P, T = cache["P"], cache["temperature"]
    d, H = config.hidden_size, config.num_attention_heads
    D = d // H
    G = {k: np.zeros_like(v) for k, v in P.items()}
    E = P["model.embed_tokens.weight"]
    gl = np.asarray(grad_logp, dtype=np.float64)
    for b, c in enumerate(cache["seqs"]):
        if c is None:
            continue
        n = len(c["h"])
        # LM head: d logp_t / d z_tj = 1[j = target] - softmax_j, z = h E^T / T
        p = np.exp(c["z"] - c["lse"][:, None])
        dz = -p
        dz[np.arange(n), np.where(c["keep"], c["t"], 0)] += 1.0
        dz *= (gl[b, :n] * c["keep"])[:, None] / T
        G["model.embed_tokens.weight"] += dz.T @ c["h"]
        dh = dz @ E
        dx, dw = _tinylm_rmsnorm_backward(c["x"], c["rf"], P["model.norm.weight"], dh)
        G["model.norm.weight"] += dw
        heads = lambda a: a.reshape(n, H, D).transpose(1, 0, 2)
        merge = lambda a: a.transpose(1, 0, 2).reshape(n, d)
        for i in reversed(range(config.num_hidden_layers)):
            nm, L = _tinylm_layer_names(i), c["layers"][i]
            # MLP: x_out = xm + act Wd^T, act = silu(g) u
            G[nm["wd"]] += dx.T @ L["act"]
            dact = dx @ P[nm["wd"]]
            sig = 1.0 / (1.0 + np.exp(-L["g"]))
            du = dact * L["g"] * sig
            dg = dact * L["u"] * sig * (1.0 + L["g"] * (1.0 - sig))
            G[nm["wg"]] += dg.T @ L["h2"]
            G[nm["wu"]] += du.T @ L["h2"]
            dh2 = dg @ P[nm["wg"]] + du @ P[nm["wu"]]
            ddx, dw = _tinylm_rmsnorm_backward(L["xm"], L["r2"], P[nm["ln2"]], dh2)
            G[nm["ln2"]] += dw
            dx = dx + ddx
            # attention: xm = x + a Wo^T
            G[nm["wo"]] += dx.T @ L["a"]
            do = heads(dx @ P[nm["wo"]])
            p = L["p"]
            dv = p.transpose(0, 2, 1) @ do
            dp = do @ L["v"].transpose(0, 2, 1)
            ds = p * (dp - (dp * p).sum(-1, keepdims=True)) / np.sqrt(D)
            dq = ds @ L["k"]
            dk = ds.transpose(0, 2, 1) @ L["q"]
            # rope is a rotation: its transpose rotates back (sin -> -sin)
            cos, sin = c["cos"], c["sin"]
            unrope = lambda g: g * cos - _tinylm_rotate_half(g * sin)
            dq, dk, dv = merge(unrope(dq)), merge(unrope(dk)), merge(dv)
            h1 = L["h1"]
            dh1 = np.zeros_like(h1)
            for w, bias, g in ((nm["wq"], nm["bq"], dq), (nm["wk"], nm["bk"], dk), (nm["wv"], nm["bv"], dv)):
                G[w] += g.T @ h1
                G[bias] += g.sum(0)
                dh1 += g @ P[w]
            ddx, dw = _tinylm_rmsnorm_backward(L["x"], L["r1"], P[nm["ln1"]], dh1)
            G[nm["ln1"]] += dw
            dx = dx + ddx
        np.add.at(G["model.embed_tokens.weight"], c["ids"], dx)  # embedding rows
    return G
