"""Log-probs of responses under any causal LM (pure torch, any device): the
per-sequence sums of a forward pass, and :func:`response_logprobs`, which
scores whole prompt/response lists in padding-invariant batches."""

from __future__ import annotations

import math
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .tokenize import context_length, encode_pair, pad_token_id, text_ids, truncate, warn_truncated

from .deps import torch, transformers  # noqa: F401  (the [hf] extra, or an ImportError naming it)

__all__ = ["ResponseLogprobs", "response_logprobs", "response_logprob_sums", "sequence_logprobs"]


def check_lengths(**lists) -> int:
    sizes = {k: len(v) for k, v in lists.items()}
    n = next(iter(sizes.values()))
    if any(s != n for s in sizes.values()):
        desc = ", ".join(f"{k} has {s}" for k, s in sizes.items())
        raise ValueError(f"{'/'.join(sizes)}: lengths differ ({desc})")
    return n


def forward_accepts(model, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def token_logprobs_from_logits(logits, targets, temperature: float = 1.0, chunk: int = 1024):
    """log softmax(logits / T)[target] per row, in at least float32 (model
    logits may be bf16), `chunk` rows at a time so the float32 copy stays small."""
    out = []
    for s in range(0, logits.shape[0], chunk):
        z = logits[s:s + chunk]
        if z.dtype in (torch.float16, torch.bfloat16):
            z = z.float()
        if temperature != 1.0:
            z = z / temperature
        t = targets[s:s + chunk]
        out.append(z.gather(1, t[:, None]).squeeze(1) - torch.logsumexp(z, dim=-1))
    return torch.cat(out) if out else logits.new_zeros(0, dtype=torch.float32)


def response_logprob_sums(logits, input_ids, response_mask, temperature: float = 1.0):
    """Per-sequence sum of response-token log-probs and token counts (differentiable).

    Parameters
    ----------
    logits : Tensor, shape (B, T, V)
        Model outputs for ``input_ids``; position t predicts token t+1.
    input_ids : LongTensor, shape (B, T)
    response_mask : BoolTensor, shape (B, T)
        True at response tokens (prompt and padding False).
    temperature : float, default 1.0

    Returns
    -------
    (sum_logp, num_tokens) : Tensors of shape (B,), float32 and int64.
        The mean log-prob of the public loss is ``sum_logp / num_tokens``.
    """
    B = input_ids.shape[0]
    mask = response_mask[:, 1:].bool()
    z = logits[:, :-1][mask]                 # only the scored rows: (Ntok, V)
    t = input_ids[:, 1:][mask]
    lp = token_logprobs_from_logits(z, t, temperature, chunk=max(1, z.shape[0]))
    rows = torch.nonzero(mask, as_tuple=True)[0]
    sums = torch.zeros(B, dtype=lp.dtype, device=lp.device).index_add(0, rows, lp)
    return sums, mask.sum(1)


class ResponseLogprobs(NamedTuple):
    """Log-probs of responses under a model (see :func:`response_logprobs`).

    Attributes
    ----------
    token_logprobs : list of ndarray of float32
        Per-token log-probs of each response (its scored tokens).
    mean : ndarray of float64, shape (B,)
        Mean log-prob per token: the ``ref_mean_logp`` of the public loss.
    sum : ndarray of float64, shape (B,)
        Sum of the token log-probs (log pi(y|x) of the scored tokens).
    num_tokens : ndarray of int64, shape (B,)
        Scored tokens per response (after truncation; includes the eos token
        when ``append_eos``).
    truncated : ndarray of bool, shape (B,)
        Responses cut to fit the context.
    """

    token_logprobs: List[np.ndarray]
    mean: np.ndarray
    sum: np.ndarray
    num_tokens: np.ndarray
    truncated: np.ndarray

    @property
    def num_truncated(self) -> int:
        """How many responses were truncated."""
        return int(self.truncated.sum())


def device_of(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def pad_batch(seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int, device=None,
               length: Optional[int] = None):
    """Right-padded input_ids, attention_mask and response_mask (width
    `length`, default the longest sequence)."""
    T = max(len(s) for s in seqs) if length is None else int(length)
    B = len(seqs)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    att = torch.zeros((B, T), dtype=torch.long)
    resp = torch.zeros((B, T), dtype=torch.bool)
    for i, (s, p) in enumerate(zip(seqs, starts)):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        att[i, :len(s)] = 1
        resp[i, p:len(s)] = True
    if device is not None:
        ids, att, resp = ids.to(device), att.to(device), resp.to(device)
    return ids, att, resp


def response_logprobs(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], *,
                      batch_size: int = 8, template: Any = None,
                      append_eos: bool = True, max_length: Optional[int] = None,
                      temperature: float = 1.0, progress: bool = False) -> ResponseLogprobs:
    """Per-token log-probs of each response given its prompt, under any causal LM.

    Used to precompute the frozen reference pi_ref once (method.md step 3):
    ``ref_mean_logp = response_logprobs(model, tok, prompts, responses).mean``.
    Prompt tokens are masked (only response tokens are scored), each prompt is
    rendered with :func:`render_prompt`, and batches are right-padded so
    padding changes nothing (sequences are sorted by length to pad little).

    Parameters
    ----------
    model : transformers causal LM (or any module returning ``.logits``)
        Evaluated in eval mode without gradients; its training mode is restored.
    tokenizer : transformers tokenizer
        A tokenizer without a pad token is fine (see Warns).
    prompts : sequence of str
        The problems (rendered with `template`, as for sampling).
    responses : sequence of str, same length as `prompts`
    batch_size : int, default 8
    template : PromptTemplate, str or callable, optional
        The template the responses were sampled with (see
        :func:`o1pruner.prompts.as_template`); default the bare problem,
        through the tokenizer's chat template when it has one.
    append_eos : bool, default True
        Score the eos token after each response (as training does).
    max_length : int, optional
        Context limit in tokens; default the model's ``max_position_embeddings``.
        Longer prompt + response pairs have their response truncated (warned
        and counted in ``truncated``).
    temperature : float, default 1.0
        Divide the logits by this (the public code scores at 1).
    progress : bool, default False
        Show a tqdm progress bar.

    Returns
    -------
    ResponseLogprobs

    Notes
    -----
    Memory: the model's logits for the response positions of a batch
    (batch_size x longest response x vocabulary, in the model's dtype) plus a
    float32 copy of up to 1024 rows at a time; lower `batch_size` for long
    responses and large vocabularies. The prompt positions' logits are not
    kept for models whose forward takes ``logits_to_keep``.

    Raises
    ------
    ValueError
        `prompts` and `responses` of different lengths, a response with no
        token to score, a prompt that alone fills the context, bad sizes.

    Warns
    -----
    UserWarning
        Truncated responses (how many, which); a tokenizer without a pad token.
    """
    n = check_lengths(prompts=prompts, responses=responses)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature: must be positive and finite, got {temperature}")
    limit = context_length(model, max_length)
    seqs, starts = [], []
    truncated = np.zeros(n, dtype=bool)
    for i in range(n):
        ids, p = encode_pair(tokenizer, prompts[i], responses[i], template, append_eos)
        if len(ids) == p:
            raise ValueError(f"responses[{i}]: empty response, no token to score (use append_eos=True)")
        ids, truncated[i] = truncate(ids, p, limit, f"prompts[{i}]")
        seqs.append(ids)
        starts.append(p)
    warn_truncated(truncated, limit)
    pad_id = pad_token_id(tokenizer) if n else 0
    device = device_of(model)
    keep = forward_accepts(model, "logits_to_keep")

    token_lp: List[Optional[np.ndarray]] = [None] * n
    order = sorted(range(n), key=lambda i: len(seqs[i]))
    batches = [order[s:s + int(batch_size)] for s in range(0, n, int(batch_size))]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="response log-probs")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for idx in batches:
                ids, att, resp = pad_batch([seqs[i] for i in idx], [starts[i] for i in idx], pad_id, device)
                T = ids.shape[1]
                # logits are needed from the first response token's predecessor on
                first = min(starts[i] for i in idx) - 1
                kwargs = {"logits_to_keep": T - first} if keep and first > 0 else {}
                logits = model(input_ids=ids, attention_mask=att, **kwargs).logits
                off = T - logits.shape[1]       # positions dropped at the front
                for row, i in enumerate(idx):
                    p, L = starts[i], len(seqs[i])
                    z = logits[row, p - 1 - off:L - 1 - off]
                    lp = token_logprobs_from_logits(z, ids[row, p:L], temperature)
                    token_lp[i] = lp.cpu().numpy().astype(np.float32)
    finally:
        model.train(was_training)
    sums = np.array([float(np.sum(t, dtype=np.float64)) for t in token_lp], dtype=np.float64)
    counts = np.array([t.size for t in token_lp], dtype=np.int64)
    return ResponseLogprobs(token_lp, sums / np.maximum(counts, 1), sums, counts, truncated)  # type: ignore[arg-type]


#: Former name of :func:`response_logprob_sums` (it is not
#: :func:`o1pruner.sequence_logprobs`, which reduces given token log-probs);
#: kept for old code, deprecated.
sequence_logprobs = response_logprob_sums
