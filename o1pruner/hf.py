"""O1-Pruner with Hugging Face models: reference log-probs of responses under
any causal LM, and a transformers.Trainer that trains with the public
O1-Pruner loss (method.md step 3), so the training runs on the engine
researchers already use (accelerate, DeepSpeed ZeRO-3, FSDP).

Needs the optional extra ``pip install 'o1pruner[hf]'`` (torch, transformers,
accelerate). Everything here is pure PyTorch and runs on any device; on CPU the
loss equals the C core's (tests/test_hf.py).

One prompt template everywhere (:class:`o1pruner.PromptTemplate`, as in
:func:`o1pruner.presample` and :func:`o1pruner.evaluate`): it renders the
prompt to sample (:class:`HFGenerator`), to score the reference
(:func:`response_logprobs`) and to train (:class:`O1PrunerTrainer`), so
pi_ref(y|x) during training is the distribution the samples came from (a
pitfall of the public code, method.md).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .prompts import PromptTemplate, as_template

try:
    import torch
    import transformers
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "o1pruner.hf needs PyTorch and Hugging Face transformers, which are optional: "
        "install them with pip install 'o1pruner[hf]' (torch, transformers, accelerate)"
    ) from _exc

__all__ = [
    "render_prompt",
    "encode_pair",
    "ResponseLogprobs",
    "response_logprobs",
    "HFGenerator",
    "sequence_logprobs",
    "o1pruner_loss",
    "O1PrunerDataset",
    "O1PrunerCollator",
    "O1PrunerTrainer",
    "paper_training_arguments",
    "tiny_tokenizer",
    "tiny_qwen2",
]


#: Record fields the trainer reads (ref_num_tokens is optional: when present it
#: is checked against the trainer's own tokenisation).
RECORD_FIELDS = ("prompt", "response", "weight", "ref_mean_logp")


# ---- one prompt template -----------------------------------------------------

def render_prompt(problem: str, tokenizer=None, template: Any = None) -> str:
    """The text the model sees before its response: ``template`` (see
    :func:`o1pruner.prompts.as_template`; default the bare problem, through
    the tokenizer's chat template when it has one) rendered for `problem`.
    The same call is used to sample (:class:`HFGenerator`), to score the
    reference (:func:`response_logprobs`) and to train
    (:class:`O1PrunerTrainer`), as :func:`o1pruner.presample` and
    :func:`o1pruner.evaluate` do."""
    return as_template(template).render(problem, tokenizer)


def _ids(tokenizer, text: str, add_special_tokens: bool) -> List[int]:
    out = tokenizer(text, add_special_tokens=add_special_tokens)
    ids = out["input_ids"] if isinstance(out, Mapping) or hasattr(out, "keys") else out
    return [int(t) for t in ids]


def _pad_id(tokenizer) -> int:
    """Padding id for our own batches. Padded positions are masked out of the
    attention and the loss, so any id works; a tokenizer without a pad token
    gets its eos id (else 0), with one warning."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None:
        return int(pad)
    eos = getattr(tokenizer, "eos_token_id", None)
    fill = int(eos) if eos is not None else 0
    warnings.warn(
        f"tokenizer: it has no pad_token; o1pruner pads its batches with "
        f"{'eos_token_id' if eos is not None else 'id 0'} ({fill}). Padded positions are masked, "
        f"so results are unaffected; set tokenizer.pad_token to silence this.",
        UserWarning, stacklevel=3)
    return fill


def _text_ids(tokenizer, text: str) -> List[int]:
    """Token ids of a rendered prompt. One rule for sampling, scoring and
    training: a tokenizer with a chat template gets no added special tokens
    (its template writes them), others get theirs (e.g. a BOS) unless the
    text already starts with it."""
    bos = getattr(tokenizer, "bos_token", None)
    chat = bool(getattr(tokenizer, "chat_template", None))
    return _ids(tokenizer, text, add_special_tokens=not chat and not (bos and text.startswith(bos)))


def encode_pair(tokenizer, prompt: str, response: str, template: Any = None,
                append_eos: bool = True) -> Tuple[List[int], int]:
    """Token ids of the rendered prompt + the response, and the number of
    prompt tokens.

    The prompt (the problem text) is rendered by :func:`render_prompt` and
    tokenised with the tokenizer's special tokens unless it has a chat
    template (which writes them); the response is tokenised on its own without special tokens,
    so its token count is L(y) as the public code counts it, plus one eos
    token when `append_eos` (the token that ended the sampled response;
    training on it teaches the model where to stop).
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
    if not isinstance(response, str):
        raise TypeError(f"response: expected str, got {type(response).__name__}")
    p = _text_ids(tokenizer, as_template(template).render(prompt, tokenizer))
    if not p:
        raise ValueError("prompt: renders to no tokens, so the response's first token has no context "
                         "(use a template that adds text or a BOS token)")
    r = _ids(tokenizer, response, add_special_tokens=False)
    if append_eos:
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("append_eos: the tokenizer has no eos_token; pass append_eos=False")
        r.append(int(eos))
    return p + r, len(p)


def _context_length(model, max_length: Optional[int]) -> Optional[int]:
    if max_length is not None:
        if int(max_length) < 2:
            raise ValueError(f"max_length: must be >= 2, got {max_length}")
        return int(max_length)
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def _truncate(ids: List[int], n_prompt: int, max_length: Optional[int], where: str) -> Tuple[List[int], bool]:
    """Cut the response so that prompt + response fits max_length."""
    if max_length is None or len(ids) <= max_length:
        return ids, False
    if n_prompt >= max_length:
        raise ValueError(f"{where}: the prompt alone is {n_prompt} tokens, leaving no room for the "
                         f"response within max_length={max_length}")
    return ids[:max_length], True


def _warn_truncated(truncated: np.ndarray, max_length: Optional[int], stacklevel: int = 3) -> None:
    n = int(truncated.sum())
    if n:
        first = np.flatnonzero(truncated)[:5].tolist()
        warnings.warn(
            f"responses: {n} of {truncated.size} responses were longer than the context "
            f"(max_length={max_length}) and were truncated; only their kept tokens are scored "
            f"(first indices: {first})", UserWarning, stacklevel=stacklevel)


# ---- log-probs ------------------------------------------------------------------

def _check_lengths(**lists) -> int:
    sizes = {k: len(v) for k, v in lists.items()}
    n = next(iter(sizes.values()))
    if any(s != n for s in sizes.values()):
        desc = ", ".join(f"{k} has {s}" for k, s in sizes.items())
        raise ValueError(f"{'/'.join(sizes)}: lengths differ ({desc})")
    return n


def _forward_accepts(model, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _token_logprobs_from_logits(logits, targets, temperature: float = 1.0, chunk: int = 1024):
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


def sequence_logprobs(logits, input_ids, response_mask, temperature: float = 1.0):
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
    lp = _token_logprobs_from_logits(z, t, temperature, chunk=max(1, z.shape[0]))
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


def _device_of(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _pad_batch(seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int, device=None,
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
    n = _check_lengths(prompts=prompts, responses=responses)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature: must be positive and finite, got {temperature}")
    limit = _context_length(model, max_length)
    seqs, starts = [], []
    truncated = np.zeros(n, dtype=bool)
    for i in range(n):
        ids, p = encode_pair(tokenizer, prompts[i], responses[i], template, append_eos)
        if len(ids) == p:
            raise ValueError(f"responses[{i}]: empty response, no token to score (use append_eos=True)")
        ids, truncated[i] = _truncate(ids, p, limit, f"prompts[{i}]")
        seqs.append(ids)
        starts.append(p)
    _warn_truncated(truncated, limit)
    pad_id = _pad_id(tokenizer) if n else 0
    device = _device_of(model)
    keep = _forward_accepts(model, "logits_to_keep")

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
                ids, att, resp = _pad_batch([seqs[i] for i in idx], [starts[i] for i in idx], pad_id, device)
                T = ids.shape[1]
                # logits are needed from the first response token's predecessor on
                first = min(starts[i] for i in idx) - 1
                kwargs = {"logits_to_keep": T - first} if keep and first > 0 else {}
                logits = model(input_ids=ids, attention_mask=att, **kwargs).logits
                off = T - logits.shape[1]       # positions dropped at the front
                for row, i in enumerate(idx):
                    p, L = starts[i], len(seqs[i])
                    z = logits[row, p - 1 - off:L - 1 - off]
                    lp = _token_logprobs_from_logits(z, ids[row, p:L], temperature)
                    token_lp[i] = lp.cpu().numpy().astype(np.float32)
    finally:
        model.train(was_training)
    sums = np.array([float(np.sum(t, dtype=np.float64)) for t in token_lp], dtype=np.float64)
    counts = np.array([t.size for t in token_lp], dtype=np.int64)
    return ResponseLogprobs(token_lp, sums / np.maximum(counts, 1), sums, counts, truncated)  # type: ignore[arg-type]


class HFGenerator:
    """A generator for :func:`o1pruner.presample` and :func:`o1pruner.evaluate`
    backed by ``model.generate`` of a Hugging Face causal LM.

    Called with already rendered prompts (those functions render them with
    the one template), it returns one ``{"text", "token_ids", "finished"}``
    per prompt: ``token_ids`` are the generated ids without the eos token
    (so their count is L(y) as the public code counts it), ``finished``
    tells whether generation stopped on eos. Greedy by default (the paper's
    evaluation); ``do_sample=True, temperature=0.5, top_p=0.8`` is the
    paper's pre-sampling. For large runs use vLLM (o1pruner.io reads its
    output); this is for small models and checks.

    Parameters
    ----------
    model, tokenizer : Hugging Face causal LM and its tokenizer
        A tokenizer without a pad token is fine (its eos id pads).
    max_new_tokens : int, default 256
    do_sample : bool, default False
    temperature, top_p : float
        Sampling parameters (used when `do_sample`).
    batch_size : int, default 16
        Prompts per ``model.generate`` call (batches are left-padded).

    Examples
    --------
    >>> samples = o1pruner.presample(HFGenerator(model, tok, do_sample=True, temperature=0.5, top_p=0.8),
    ...                              problems, k=8, tokenizer=tok)            # doctest: +SKIP
    """

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 256, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, batch_size: int = 16):
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {max_new_tokens}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if do_sample and not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature: must be positive and finite when sampling, got {temperature}")
        if not (0 < top_p <= 1):
            raise ValueError(f"top_p: must be in (0, 1], got {top_p}")
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.do_sample = int(max_new_tokens), bool(do_sample)
        self.temperature, self.top_p, self.batch_size = float(temperature), float(top_p), int(batch_size)

    def __call__(self, prompts: Sequence[str], seed: Optional[int] = None) -> List[Dict[str, Any]]:
        tok, model = self.tokenizer, self.model
        pad_id = _pad_id(tok)
        eos = getattr(tok, "eos_token_id", None)
        device = _device_of(model)
        if seed is not None:
            torch.manual_seed(int(seed))
        out: List[Dict[str, Any]] = []
        kw: Dict[str, Any] = dict(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                                  pad_token_id=pad_id, eos_token_id=eos)
        if self.do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p)
        was_training = model.training
        model.eval()
        try:
            for s in range(0, len(prompts), self.batch_size):
                enc = [_text_ids(tok, t) for t in prompts[s:s + self.batch_size]]
                T = max(len(e) for e in enc)
                # left padding: every prompt ends where generation starts
                ids = torch.full((len(enc), T), pad_id, dtype=torch.long)
                att = torch.zeros((len(enc), T), dtype=torch.long)
                for i, e in enumerate(enc):
                    ids[i, T - len(e):] = torch.as_tensor(e, dtype=torch.long)
                    att[i, T - len(e):] = 1
                with torch.inference_mode():
                    gen = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **kw)
                for toks in gen[:, T:].cpu().tolist():
                    finished = eos is not None and eos in toks
                    if finished:
                        toks = toks[:toks.index(eos)]
                    elif pad_id != eos:
                        while toks and toks[-1] == pad_id:  # rows padded after an early stop
                            toks.pop()
                    out.append({"text": tok.decode(toks, skip_special_tokens=True), "token_ids": toks,
                                "finished": bool(finished)})
        finally:
            model.train(was_training)
        return out


# ---- the public O1-Pruner loss in torch ------------------------------------------

def o1pruner_loss(mean_logp, ref_mean_logp, weight, clip_eps: float = 0.2):
    """The public O1-Pruner loss (method.md step 3), differentiable.

    ``r = exp(mean_logp - ref_mean_logp)``;
    ``loss = mean_b max(-w_b r_b, -w_b clamp(r_b, 1 - eps, 1 + eps))``.

    Parameters
    ----------
    mean_logp : Tensor, shape (B,)
        Policy's mean response-token log-prob per sequence.
    ref_mean_logp, weight : Tensor, shape (B,)
        Frozen reference's mean log-prob and the O1-Pruner weight.
    clip_eps : float, default 0.2

    Returns
    -------
    (loss, stats) : scalar Tensor and a dict of detached floats
        ``stats``: ``ratio_mean``, ``clip_fraction`` (share of sequences whose
        clipped branch is active: the gradient stops there).
    """
    ratio = torch.exp(mean_logp - ref_mean_logp)
    unclipped = -weight * ratio
    clipped = -weight * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = torch.max(unclipped, clipped).mean()
    with torch.no_grad():
        stats = {"ratio_mean": float(ratio.mean()),
                 "clip_fraction": float((clipped > unclipped).float().mean())}
    return loss, stats


# ---- dataset, collator, trainer ----------------------------------------------

def _records_list(records) -> List[Mapping[str, Any]]:
    if hasattr(records, "records") and isinstance(getattr(records, "records"), list):
        return records.records  # o1pruner.WeightedDataset
    if isinstance(records, Mapping):
        raise TypeError("records: expected a sequence of dict records, got one dict "
                        "(a column dict? pass datasets.Dataset.from_dict(...) or a list of rows)")
    return records if isinstance(records, (list, tuple)) else list(records)


class O1PrunerDataset(torch.utils.data.Dataset):
    """Tokenised O1-Pruner training records.

    Each record needs the problem text (``problem``, or ``prompt``), the
    response (``response``, or ``solution``), ``weight`` (from
    :func:`o1pruner.build_dataset` / :func:`o1pruner.harmonize_weights`) and
    ``ref_mean_logp`` (the frozen reference's mean token log-prob of the
    response, from :func:`response_logprobs` or
    :meth:`O1PrunerTrainer.compute_reference`). The records of
    :func:`o1pruner.build_dataset` work as they are.

    Consistency checks: a record with both ``problem`` and ``prompt`` (as
    :func:`o1pruner.presample` writes: the rendered text the sample was
    drawn with) must render to that same prompt under `template`, so a
    training template that differs from the sampling one is an error, not a
    silent bias; an optional ``ref_num_tokens`` must match this
    tokenisation, so a reference scored with another template, eos setting
    or cutoff is caught.

    Parameters
    ----------
    records : sequence of mappings (list of dicts, WeightedDataset, datasets.Dataset, ...)
    tokenizer : transformers tokenizer
    template, append_eos : see :func:`encode_pair`
    max_length : int, optional
        Cutoff in tokens (the paper: 3072 or 4096); longer responses are
        truncated (warned, counted in ``num_truncated``).
    require_reference : bool, default False
        Raise at once when a record lacks ``ref_mean_logp``. When False the
        value may be filled in later (:meth:`set_reference`); training checks.

    Raises
    ------
    ValueError, TypeError
        Missing or invalid fields, named with the record index.
    """

    def __init__(self, records, tokenizer, *, template: Any = None,
                 append_eos: bool = True, max_length: Optional[int] = None,
                 require_reference: bool = False):
        recs = _records_list(records)
        tpl = as_template(template)
        n = len(recs)
        if n == 0:
            raise ValueError("records: empty, nothing to train on")
        if max_length is not None and int(max_length) < 2:
            raise ValueError(f"max_length: must be >= 2, got {max_length}")
        self.max_length = None if max_length is None else int(max_length)
        self.input_ids: List[np.ndarray] = []
        self.starts = np.zeros(n, dtype=np.int64)
        self.weight = np.zeros(n, dtype=np.float32)
        self.ref_mean_logp = np.full(n, np.nan, dtype=np.float32)
        self.truncated = np.zeros(n, dtype=bool)
        for i, r in enumerate(recs):
            if not isinstance(r, Mapping):
                raise TypeError(f"records[{i}]: expected a dict, got {type(r).__name__}")
            problem = _field(r, ("problem", "prompt"), i)
            response = _field(r, ("response", "solution"), i)
            if r.get("weight") is None:
                raise ValueError(f"records[{i}]: missing field 'weight' (the O1-Pruner weight: see "
                                 "o1pruner.build_dataset or o1pruner.harmonize_weights)")
            if r.get("problem") is not None and r.get("prompt") is not None:
                rendered = tpl.render(r["problem"], tokenizer)
                if rendered != r["prompt"]:
                    raise ValueError(
                        f"records[{i}]['prompt']: the stored prompt (the text the sample was drawn with) differs "
                        f"from the template's rendering of 'problem' ({rendered[:60]!r}...); pass the template "
                        f"used for sampling")
            self.weight[i] = _finite(r["weight"], f"records[{i}]['weight']")
            ref = r.get("ref_mean_logp")
            if ref is None:
                if require_reference:
                    raise ValueError(f"records[{i}]: missing field 'ref_mean_logp' (precompute it with "
                                     "o1pruner.hf.response_logprobs or O1PrunerTrainer.compute_reference)")
            else:
                v = _finite(ref, f"records[{i}]['ref_mean_logp']")
                if v > 0:
                    raise ValueError(f"records[{i}]['ref_mean_logp']: a mean log-prob is <= 0, got {v}")
                self.ref_mean_logp[i] = v
            ids, p = encode_pair(tokenizer, problem, response, tpl, append_eos)
            if len(ids) == p:
                raise ValueError(f"records[{i}]['response']: empty response, no token to train on")
            ids, self.truncated[i] = _truncate(ids, p, self.max_length, f"records[{i}]['problem']")
            nref = r.get("ref_num_tokens")
            if nref is not None and int(nref) != len(ids) - p:
                raise ValueError(
                    f"records[{i}]['ref_num_tokens']: the reference scored {int(nref)} tokens but this "
                    f"tokenisation gives {len(ids) - p}; score the reference with the same template, "
                    f"append_eos and max_length as training")
            self.input_ids.append(np.asarray(ids, dtype=np.int64))
            self.starts[i] = p
        _warn_truncated(self.truncated, self.max_length)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {"input_ids": self.input_ids[i], "response_start": int(self.starts[i]),
                "weight": float(self.weight[i]), "ref_mean_logp": float(self.ref_mean_logp[i]), "index": i}

    @property
    def num_truncated(self) -> int:
        return int(self.truncated.sum())

    @property
    def num_tokens(self) -> np.ndarray:
        """Scored (response) tokens per record."""
        return np.array([len(x) for x in self.input_ids], dtype=np.int64) - self.starts

    def missing_reference(self) -> np.ndarray:
        """Indices of records without ``ref_mean_logp``."""
        return np.flatnonzero(np.isnan(self.ref_mean_logp))

    def set_reference(self, ref_mean_logp) -> None:
        """Set every record's ``ref_mean_logp`` (array of shape (len(self),))."""
        v = np.asarray(ref_mean_logp, dtype=np.float64)
        if v.shape != (len(self),):
            raise ValueError(f"ref_mean_logp: expected shape ({len(self)},), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"ref_mean_logp: {int((~np.isfinite(v)).sum())} values are not finite")
        self.ref_mean_logp[:] = v

    def records(self, records=None) -> List[Dict[str, Any]]:
        """The reference statistics as records (``ref_mean_logp``,
        ``ref_num_tokens``), merged into `records` when given: save them and
        the next run skips the reference pass."""
        out = []
        for i in range(len(self)):
            base = dict(records[i]) if records is not None else {}
            base["ref_mean_logp"] = float(self.ref_mean_logp[i])
            base["ref_num_tokens"] = int(self.num_tokens[i])
            out.append(base)
        return out


def _field(r: Mapping[str, Any], names: Tuple[str, str], i: int) -> str:
    for f in names:
        v = r.get(f)
        if v is not None:
            if not isinstance(v, str):
                raise TypeError(f"records[{i}]['{f}']: expected str, got {type(v).__name__}")
            return v
    raise ValueError(f"records[{i}]: missing field {names[0]!r} (or {names[1]!r})")


def _finite(x, where: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected a number, got {type(x).__name__}") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: must be finite, got {v}")
    return v


class O1PrunerCollator:
    """Right-pad a list of :class:`O1PrunerDataset` items into tensors:
    input_ids, attention_mask, response_mask, weight, ref_mean_logp, index."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: Optional[int] = None):
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        seqs = [f["input_ids"] for f in features]
        starts = [int(f["response_start"]) for f in features]
        T = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            m = int(self.pad_to_multiple_of)
            T = -(-T // m) * m
        ids, att, resp = _pad_batch(seqs, starts, self.pad_token_id, length=T)
        return {
            "input_ids": ids,
            "attention_mask": att,
            "response_mask": resp,
            "weight": torch.tensor([float(f["weight"]) for f in features], dtype=torch.float32),
            "ref_mean_logp": torch.tensor([float(f["ref_mean_logp"]) for f in features], dtype=torch.float32),
            "index": torch.tensor([int(f.get("index", -1)) for f in features], dtype=torch.long),
        }


_OWN_KEYS = ("response_mask", "weight", "ref_mean_logp", "index")


class O1PrunerTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` that trains with the public O1-Pruner loss.

    Off-policy PPO-clip on pre-sampled responses (method.md step 3): per
    sequence the mean response-token log-prob of the policy and of the frozen
    reference give ``r = exp(mean_logp - ref_mean_logp)``, and the loss is
    ``mean_b max(-w_b r_b, -w_b clamp(r_b, 1-eps, 1+eps))`` (no KL, no
    entropy, ratio always against the initial model). Everything else (the
    optimiser, schedule, gradient accumulation, mixed precision,
    accelerate/DeepSpeed/FSDP) is the stock Trainer's.

    Unlike the public code, the reference log-probs are computed once before
    training (:meth:`compute_reference`, or :func:`response_logprobs` offline)
    and stored in the records, so no second copy of the model is kept.

    Parameters
    ----------
    model, args, processing_class, callbacks, optimizers, ... :
        As ``transformers.Trainer``. ``processing_class`` (the tokenizer) is
        required unless the datasets are already :class:`O1PrunerDataset`.
        ``args.remove_unused_columns`` is set to False (the loss needs the
        record columns).
    train_dataset, eval_dataset : records or O1PrunerDataset
        Records (list of dicts, datasets.Dataset) with ``prompt``,
        ``response``, ``weight`` and ``ref_mean_logp`` (may be missing until
        :meth:`compute_reference` is called).
    template, append_eos : see :func:`encode_pair`
        Use the template the samples were generated with.
    max_length : int, optional
        Token cutoff (paper: 3072 for Marco-o1, 4096 for QwQ); default the
        model's context length.
    clip_eps : float, default 0.2
    temperature : float, default 1.0
        Logits are divided by it (as for the reference).

    Notes
    -----
    Each micro-batch's loss is its mean over sequences, divided by the number
    of gradient-accumulation steps, and data-parallel ranks average their
    gradients: with equal micro-batches the step uses the mean over the whole
    effective batch, as the public code does. Logged per step: ``ratio_mean``
    and ``clip_fraction``.
    """

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, eval_dataset=None,
                 processing_class=None, *, template: Any = None,
                 append_eos: bool = True, max_length: Optional[int] = None, clip_eps: float = 0.2,
                 temperature: float = 1.0, **kwargs):
        if not (0.0 < float(clip_eps) < 1.0):
            raise ValueError(f"clip_eps: must be in (0, 1), got {clip_eps}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature: must be positive and finite, got {temperature}")
        if model is None:
            raise ValueError("model: required")
        self.clip_eps = float(clip_eps)
        self.temperature = float(temperature)
        self._o1p_encode = dict(template=template, append_eos=append_eos,
                                max_length=_context_length(model, max_length))
        self._o1p_tokenizer = processing_class
        train_dataset = self._as_dataset(train_dataset, "train_dataset")
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._as_dataset(v, f"eval_dataset[{k!r}]") for k, v in eval_dataset.items()}
        else:
            eval_dataset = self._as_dataset(eval_dataset, "eval_dataset")
        if args is None:
            args = transformers.TrainingArguments(output_dir="o1pruner_runs/hf", report_to="none")
        args.remove_unused_columns = False
        if data_collator is None:
            if processing_class is None:
                raise ValueError("processing_class: a tokenizer is needed (for the pad id)")
            data_collator = O1PrunerCollator(_pad_id(processing_class))
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class, **kwargs)
        # our loss is a per-micro-batch mean: let the Trainer divide it by the
        # accumulation steps (the model's own token-count scaling does not apply)
        self.model_accepts_loss_kwargs = False
        if hasattr(self, "loss_is_scaled_for_ga"):
            self.loss_is_scaled_for_ga = False
        self.label_names = []
        self._o1p_stats: Dict[str, List[float]] = {}
        self._o1p_reference_mode = False

    def _as_dataset(self, data, name: str):
        if data is None or isinstance(data, O1PrunerDataset):
            return data
        if self._o1p_tokenizer is None:
            raise ValueError(f"processing_class: a tokenizer is needed to tokenise {name}")
        return O1PrunerDataset(data, self._o1p_tokenizer, **self._o1p_encode)

    # -- loss -------------------------------------------------------------------
    def _mean_logp(self, model, inputs):
        model_inputs = {k: v for k, v in inputs.items() if k not in _OWN_KEYS}
        logits = model(**model_inputs).logits
        sums, counts = sequence_logprobs(logits, inputs["input_ids"], inputs["response_mask"], self.temperature)
        return sums / counts.clamp(min=1).to(sums.dtype), counts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ref = inputs["ref_mean_logp"]
        if torch.isnan(ref).any():
            bad = inputs["index"][torch.isnan(ref)].tolist()
            raise ValueError(f"ref_mean_logp: missing for records {bad[:5]}; call trainer.compute_reference() "
                             "first or precompute it with o1pruner.hf.response_logprobs")
        mean_lp, _ = self._mean_logp(model, inputs)
        loss, stats = o1pruner_loss(mean_lp, ref.to(mean_lp.dtype), inputs["weight"].to(mean_lp.dtype),
                                    self.clip_eps)
        if model.training:
            for k, v in stats.items():
                self._o1p_stats.setdefault(k, []).append(v)
        return (loss, {"mean_logp": mean_lp.detach()}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            if self._o1p_reference_mode:
                mean_lp, counts = self._mean_logp(model, inputs)
                preds = torch.stack([mean_lp.float(), counts.float()], dim=1)
                return None, preds, inputs["index"]
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: Dict[str, float], *args, **kwargs) -> None:
        if self._o1p_stats and "loss" in logs:
            for k, v in self._o1p_stats.items():
                logs[k] = float(np.mean(v))
            self._o1p_stats = {}
        super().log(logs, *args, **kwargs)

    # -- reference ----------------------------------------------------------------
    def compute_reference(self, dataset: Optional[O1PrunerDataset] = None) -> np.ndarray:
        """Score the records with the current (initial) model and store their
        ``ref_mean_logp``: the frozen reference, computed once.

        Call before :meth:`train`. Without `dataset` it scores the train
        dataset and every eval dataset. It runs the Trainer's own distributed
        prediction loop, so under accelerate/DeepSpeed ZeRO-3 it uses the same
        sharded model as training (no second copy). Returns the values of
        `dataset` (default: of the train dataset); they are also written into
        the datasets, and ``dataset.records(...)`` gives them as records to
        save so that the next run skips this pass.
        """
        if self.state.global_step > 0:
            raise RuntimeError("compute_reference: the model has already been trained; the reference must be "
                               "the initial model")
        if dataset is not None:
            if not isinstance(dataset, O1PrunerDataset):
                raise TypeError(f"dataset: expected an O1PrunerDataset, got {type(dataset).__name__}")
            return self._score_reference(dataset)
        evals = self.eval_dataset.values() if isinstance(self.eval_dataset, dict) else [self.eval_dataset]
        for ds in evals:
            if isinstance(ds, O1PrunerDataset):
                self._score_reference(ds)
        if not isinstance(self.train_dataset, O1PrunerDataset):
            raise TypeError("train_dataset: expected records or an O1PrunerDataset")
        return self._score_reference(self.train_dataset)

    def _score_reference(self, ds: O1PrunerDataset) -> np.ndarray:
        self._o1p_reference_mode = True
        try:
            out = self.predict(ds, metric_key_prefix="reference")
        finally:
            self._o1p_reference_mode = False
        preds, idx = np.asarray(out.predictions), np.asarray(out.label_ids).astype(np.int64)
        values = np.full(len(ds), np.nan)
        values[idx] = preds[:, 0]
        counts = np.zeros(len(ds), dtype=np.int64)
        counts[idx] = preds[:, 1].astype(np.int64)
        if np.isnan(values).any() or not np.array_equal(counts, ds.num_tokens):
            raise RuntimeError("compute_reference: the prediction loop did not return every record once")
        ds.set_reference(values)
        return values

    def train(self, *args, **kwargs):
        for name, ds in (("train_dataset", self.train_dataset),):
            if isinstance(ds, O1PrunerDataset):
                miss = ds.missing_reference()
                if miss.size:
                    raise ValueError(
                        f"{name}: {miss.size} records have no 'ref_mean_logp' (first: {miss[:5].tolist()}); "
                        "call trainer.compute_reference() before train(), or precompute it with "
                        "o1pruner.hf.response_logprobs")
        return super().train(*args, **kwargs)


# ---- the paper's hyper-parameters ---------------------------------------------

def paper_training_arguments(output_dir: str, *, model: str = "marco-o1-7b", **overrides):
    """``TrainingArguments`` with the paper's / public code's setup.

    1 epoch, cosine schedule with 10% warmup, grad-norm clip 10, effective
    batch 32 (per-device batch x accumulation x devices: set
    ``per_device_train_batch_size`` and ``gradient_accumulation_steps`` for
    your GPU count), lr 2e-7 for Marco-o1-7B (full fine-tune) or 2e-6 for
    QwQ-32B-Preview. ``overrides`` win (e.g. ``bf16=True``,
    ``deepspeed="examples/hf/ds_zero3.json"``, ``gradient_checkpointing=True``).
    """
    lrs = {"marco-o1-7b": 2e-7, "qwq-32b": 2e-6}
    if model not in lrs:
        raise ValueError(f"model: expected one of {sorted(lrs)}, got {model!r}")
    kw: Dict[str, Any] = dict(output_dir=output_dir, num_train_epochs=1, learning_rate=lrs[model],
                              lr_scheduler_type="cosine", max_grad_norm=10.0, weight_decay=0.0,
                              per_device_train_batch_size=1, gradient_accumulation_steps=32,
                              logging_steps=1, save_strategy="epoch", report_to="none")
    import dataclasses

    fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    # transformers >= 5 takes the warmup ratio as a float warmup_steps
    kw["warmup_ratio" if "warmup_ratio" in fields else "warmup_steps"] = 0.1
    kw.update(overrides)
    return transformers.TrainingArguments(**kw)


# ---- a tiny model and tokenizer built locally (tests, notebooks) ------------------

# The pre-tokenisation regex of the Qwen2 tokenizers (a public constant of
# their tokenizer.json): contractions, letter runs, single digits, punctuation
# runs, newlines, spaces.
_QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

#: A ChatML-style template (the Qwen family's layout) for the tiny tokenizer.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(texts: Iterable[str], *, vocab_size: int = 256, pad_token: bool = True,
                   chat_template: bool = True):
    """A byte-level BPE tokenizer trained on `texts` with the `tokenizers`
    package (no download), wrapped as a ``PreTrainedTokenizerFast``.

    It uses the Qwen2 tokenizers' pipeline (NFC, their split regex with one
    digit per token, byte-level BPE), so a checkpoint saved with a tiny Qwen2
    model reloads through ``AutoTokenizer`` with identical ids. Special
    tokens: ``<|endoftext|>`` (eos, and pad when `pad_token`),
    ``<|im_start|>``, ``<|im_end|>``; `chat_template` sets a ChatML template.
    """
    try:
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    except ImportError as exc:  # pragma: no cover
        raise ImportError("tiny_tokenizer needs the tokenizers package: pip install 'o1pruner[hf]'") from exc
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    kw = dict(tokenizer_object=tok, eos_token="<|endoftext|>")
    if pad_token:
        kw["pad_token"] = "<|endoftext|>"
    out = transformers.PreTrainedTokenizerFast(**kw)
    out.add_special_tokens({"additional_special_tokens": special[1:]})
    if chat_template:
        out.chat_template = TINY_CHAT_TEMPLATE
    return out


def tiny_qwen2(tokenizer, *, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
               num_kv_heads: int = 2, intermediate_size: int = 128, max_position_embeddings: int = 512,
               seed: int = 0):
    """A randomly initialised Qwen2-architecture causal LM sized for `tokenizer`
    (built from a config: no download). For tests and demos; the same code
    paths run a real checkpoint from ``AutoModelForCausalLM.from_pretrained``."""
    cfg = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = transformers.Qwen2ForCausalLM(cfg)
    model.eval()
    return model
