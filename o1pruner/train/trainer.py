"""The built-in model's trainer: a short loop over steps that read like
llm.c's (forward; zero_grad; backward; update). The pieces it calls live in
their own modules: the objective spec (:mod:`.objective`), the reference
log-probs (:mod:`.ref_logprobs`), lambda and the weights (:mod:`.dual`),
checkpoints (:mod:`.checkpoint`) and the run's log (:mod:`.log`)."""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import data as _io
from .._atomic import PathLike
from ..data.dataset import WeightedDataset, pair_sequences
from ..data.records import FileLoc, group_ids, record_loc
from ..data.tokenize import EncodedSamples, SequenceFormat, encode_samples
from ..data.validators import finite_column
from ..kernels.objectives import DPOStats, PPOStats, dpo_loss
from .checkpoint import TRAIN_STATE_FORMAT, latest_checkpoint, read_state, restore_model, save_checkpoint
from .config import TrainConfig, lr_at
from .dual import accuracy_estimate, dual_step, recompute_weights
from .log import RunLog, trim_log
from .objective import PPOConfig
from .ref_logprobs import compute_reference, load_or_compute_reference, reference_tokens

__all__ = ["Trainer"]

_WEIGHT_FIELDS = ("weight", "length", "correct", "ref_mean_length", "ref_accuracy")


def _as_records(data: Any) -> Tuple[List[Dict[str, Any]], Dict[str, Any], str, Optional[Dict[str, np.ndarray]]]:
    """(records, construction params, name for messages, columns): a
    :class:`~o1pruner.WeightedDataset` also gives its columns (validated when
    it was built); records from elsewhere are validated where they are read."""
    if isinstance(data, WeightedDataset):
        try:
            cols: Optional[Dict[str, np.ndarray]] = data.arrays()
        except (KeyError, TypeError, ValueError):  # a dataset without every column (SFT-shortest)
            cols = None
        return [dict(r) for r in data.records], dict(data.params), "dataset", cols
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        read = _io.read_jsonl(path)
        where = FileLoc(path)
        where.lines = list(read.lines)
        return list(read), {}, where, None
    if isinstance(data, Mapping) or isinstance(data, (bytes, str)):
        raise TypeError(f"dataset: expected a WeightedDataset, a list of records or a JSONL path, got {type(data).__name__}")
    try:
        recs = [dict(r) for r in data]
    except (TypeError, ValueError):
        raise TypeError(f"dataset: expected a WeightedDataset, a list of records or a JSONL path, got {type(data).__name__}") from None
    return recs, {}, "dataset", None


def _merge_stats(stats: Sequence[PPOStats]) -> Dict[str, float]:
    """Step statistics from its micro-batches' (weighted by their counts)."""
    cnt = 0
    clip_sum = dual_sum = kl_sum = ratio_sum = 0.0
    rmin, rmax = math.inf, -math.inf
    for st in stats:
        c = st.count
        if c:
            cnt += c
            clip_sum += st.clip_fraction * c
            dual_sum += st.dual_clip_fraction * c
            kl_sum += st.approx_kl * c
            ratio_sum += st.ratio_mean * c
            rmin = min(rmin, st.ratio_min)
            rmax = max(rmax, st.ratio_max)
    return {
        "clip_fraction": clip_sum / cnt if cnt else 0.0,
        "dual_clip_fraction": dual_sum / cnt if cnt else 0.0,
        "approx_kl": kl_sum / cnt if cnt else 0.0,
        "ratio_mean": ratio_sum / cnt if cnt else 1.0,
        "ratio_min": rmin if cnt else 1.0,
        "ratio_max": rmax if cnt else 1.0,
    }


def _merge_dpo_stats(stats: Sequence[DPOStats]) -> Dict[str, float]:
    """Step statistics of the DPO objective from its micro-batches' (weighted
    by their counts of pairs)."""
    cnt = sum(st.count for st in stats)
    out = {}
    for k in ("reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward"):
        out[k] = sum(getattr(st, k) * st.count for st in stats) / cnt if cnt else 0.0
    return out


def _sequence_where(where: Any) -> Any:
    """Where the sequences of pair records come from, for messages: a file's
    line numbers twice (chosen sequences, then rejected ones)."""
    lines = getattr(where, "lines", None)
    if lines is None:
        return f"{where} (sequences: chosen of each pair, then rejected)"
    loc = FileLoc(str(where))
    loc.lines = list(lines) * 2
    return loc


class Trainer:
    """Fine-tune a :class:`~o1pruner.models.TinyLM` on a weighted dataset with
    O1-Pruner's off-policy PPO-clip objective (or plain SFT), or on
    preference pairs with DPO (``objective="dpo"``).

    The reference log-probs are computed once, before the first step, from
    the model as given (or `ref_model`): the per-sequence mean log-prob for
    ``ratio="sequence_mean"``, the token log-probs for ``ratio="token"``,
    and the whole-sequence log-prob for the dual ascent. The model is trained
    in place.

    Parameters
    ----------
    model : TinyLM
        The policy, initialised as the reference (the model that sampled the
        data).
    dataset : WeightedDataset, list of dict or path
        Training records (from :func:`o1pruner.build_dataset` or
        :func:`o1pruner.sft_shortest_dataset`, or their JSONL): each with a
        prompt (``prompt``, or ``problem`` and `template`), a response
        (``token_ids`` or ``solution``) and, for ``objective="ppo"``, a
        finite ``weight`` (or the fields to recompute it, see
        ``TrainConfig.lam``). With ``objective="dpo"``: pair records
        (:func:`o1pruner.dpo_pairs`, a :class:`~o1pruner.PairDataset` or its
        JSONL), each with the shared prompt fields and ``chosen`` /
        ``rejected`` objects holding the responses; the reference's
        whole-sequence log-probs of both responses are computed once (and
        cached like the PPO path's), and ``batch_size`` counts pairs.
    tokenizer : object
        Encodes prompts and solutions (e.g. :class:`o1pruner.tasks.CharTokenizer`).
    config : TrainConfig, optional
        Settings; keyword arguments override single fields
        (``Trainer(model, ds, tok, lr=3e-4, epochs=2)``).
    out_dir : path, optional
        Where logs (``train_log.jsonl``), the reference log-probs cache,
        checkpoints (``checkpoints/step-NNNNNN`` + ``checkpoints/LATEST``) and
        the final model (``model/``) go. Without it nothing is written.
    ref_model : TinyLM, optional
        The frozen reference, if not the model as given.
    template : optional
        Render prompts from ``problem`` instead of the records' ``prompt``.
    add_bos : bool, default True
        Prompts start with BOS (as :class:`TinyLMGenerator` samples them).
    progress : bool, default True
        A tqdm progress bar.

    Attributes
    ----------
    ppo : PPOConfig
        The objective (``config.ppo``).
    weights : ndarray of float64
        The current training weight (advantage) of each sample.
    history : list of dict
        One entry per step: ``step``, ``epoch``, ``loss``, ``clip_fraction``,
        ``dual_clip_fraction``, ``approx_kl``, ``ratio_mean``, ``ratio_min``,
        ``ratio_max``, ``lam``, ``acc_estimate`` (Ahat_theta, with
        ``lam="auto"``), ``lr``, ``grad_norm``, ``tokens``, ``seconds``.
        With ``objective="dpo"`` the objective's statistics are
        ``reward_accuracy``, ``reward_margin``, ``chosen_reward`` and
        ``rejected_reward`` (:class:`o1pruner.DPOStats`) instead of the
        ratio's, and ``pairs`` counts the step's pairs.
    lam : float or None
        Current lambda (None when the records' weights are used as given).

    Raises
    ------
    ValueError
        An empty dataset, a record without a needed field, a non-finite
        weight, a response of zero tokens, bad settings (each naming the
        record or the setting).

    Examples
    --------
    >>> trainer = Trainer(model, ds, tokenizer, lr=1e-4, epochs=2, out_dir="run")  # doctest: +SKIP
    >>> history = trainer.train()                                                # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        dataset: Any,
        tokenizer: Any,
        config: Optional[TrainConfig] = None,
        *,
        out_dir: Optional[PathLike] = None,
        ref_model: Any = None,
        template: Any = None,
        add_bos: bool = True,
        progress: bool = True,
        **overrides: Any,
    ):
        from ..models import TinyLM

        if not isinstance(model, TinyLM):
            raise TypeError(f"model: expected an o1pruner.models.TinyLM, got {type(model).__name__} "
                            "(for PyTorch / Hugging Face models see o1pruner.hf.O1PrunerTrainer)")
        if ref_model is not None and not isinstance(ref_model, TinyLM):
            raise TypeError(f"ref_model: expected an o1pruner.models.TinyLM, got {type(ref_model).__name__}")
        if config is None:
            config = TrainConfig(**overrides)
        elif overrides:
            d = config.to_dict()
            d.update(overrides)
            config = TrainConfig.from_dict(d)
        elif not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        recs, params, where, cols = _as_records(dataset)
        if not recs:
            raise ValueError(f"{where}: empty (no training sample)")
        if params:  # weights are recomputed the way the dataset was built
            if "clip" in params and "clip" not in overrides:
                config.clip = None if params["clip"] is None else tuple(params["clip"])
            if "normalize" in params and "normalize" not in overrides:
                config.normalize = params["normalize"]
        self.config = config
        self.ppo: PPOConfig = config.ppo
        self.model = model
        self.tokenizer = tokenizer
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.progress = progress
        is_pair = [isinstance(r.get("chosen"), Mapping) or isinstance(r.get("rejected"), Mapping) for r in recs]
        self.pairs: Optional[List[Dict[str, Any]]] = None
        if config.objective == "dpo":
            self.pairs = recs  # one record per pair; the model sees 2 sequences per pair
            recs = pair_sequences(recs, where)
            where = _sequence_where(where)
        elif any(is_pair):
            raise ValueError(f"{record_loc(where, is_pair.index(True))}: a preference pair (chosen/rejected); "
                             "pairs train with objective='dpo'")
        self.records = recs
        self._where = where
        self.format = SequenceFormat(tokenizer, add_bos=add_bos, add_eos=True)
        ctx = model.config.max_position_embeddings
        max_len = ctx if config.max_length is None else min(config.max_length, ctx)
        self.data: EncodedSamples = encode_samples(recs, self.format, template=template, max_length=max_len, where=where)
        vocab = model.config.vocab_size
        for i, a in enumerate(self.data.ids):
            if a.min() < 0 or a.max() >= vocab:
                raise ValueError(f"{record_loc(where, i)}: token id {int(a.max() if a.max() >= vocab else a.min())} is outside the model's vocabulary [0, {vocab})")
        if self.data.truncated.any():
            warnings.warn(f"{where}: {int(self.data.truncated.sum())} response(s) cut to max_length={max_len} tokens",
                          RuntimeWarning, stacklevel=2)
        n = len(self.data)
        # problems (for the per-problem dual estimator and group normalisation)
        # (the dataset's group column, else the records' ids; numbered in order of first appearance)
        if cols is not None and "group" in cols:
            self._group = group_ids(cols["group"])
        else:
            self._group = group_ids([r.get("problem_id", i) for i, r in enumerate(recs)])
        self._columns = cols
        self._setup_weights(params)
        #: what a batch is drawn from: sequences, or pairs (DPO)
        self._n_units = n if self.pairs is None else len(self.pairs)
        self.steps_per_epoch = -(-self._n_units // config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.history: List[Dict[str, Any]] = []
        self.step = 0
        #: the step of the checkpoint :meth:`train` resumed from (None: a fresh start)
        self.resumed_step: Optional[int] = None
        self._rng = np.random.default_rng(config.seed)
        self._perm: Optional[np.ndarray] = None
        self._perm_epoch = -1
        self._ref_model = ref_model
        self._ref: Optional[Dict[str, np.ndarray]] = None
        self._log_ratio = np.zeros(n, dtype=np.float64)  # latest log r_i of each sample (dual ascent)

    # ---- weights and lambda ----------------------------------------------------------

    def _column(self, name: str, positive: bool = False) -> np.ndarray:
        """A float64 column of the training samples: the dataset's own, or
        read (and checked) from the records."""
        if self._columns is not None and name in self._columns:
            return self._columns[name].astype(np.float64)
        return finite_column(self.records, name, self._where, positive=positive)

    def _setup_weights(self, params: Mapping[str, Any]) -> None:
        cfg = self.config
        where = self._where
        recs = self.records
        n = len(recs)
        self.lam: Optional[float] = None
        self._fields: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = None
        if cfg.objective in ("sft", "dpo"):
            self.weights = np.ones(n, dtype=np.float64)
            if cfg.lam is not None:
                raise ValueError(f"lam: only for objective='ppo' ({cfg.objective.upper()} has no weights)")
            return
        if cfg.lam is None:
            self.weights = self._column("weight")
            return
        L = self._column("length", positive=True)
        A = self._column("correct")
        if np.any((A != 0) & (A != 1)):
            i = int(np.argmax((A != 0) & (A != 1)))
            raise ValueError(f"{record_loc(where, i)}: field 'correct' must be a boolean, got {recs[i]['correct']!r}")
        Lbar = self._column("ref_mean_length", positive=True)
        Abar = self._column("ref_accuracy")
        self._fields = (L, A, Lbar, Abar)
        if cfg.lam == "auto":
            lam0 = cfg.lam_init if cfg.lam_init is not None else float(params.get("lam", 2.0))
        else:
            lam0 = float(cfg.lam)
        self.lam = float(lam0)
        self.weights = self.weights_for(self.lam)

    def weights_for(self, lam: float) -> np.ndarray:
        """The training weights with accuracy weight `lam`: reward
        ``(Lbar - L)/L + lam (A - Abar)``, clipped and normalised as
        configured (needs the records' length/correct/reference fields)."""
        if self._fields is None:
            raise ValueError("lam: the weights are fixed (the records' 'weight'); set TrainConfig.lam to recompute them")
        return recompute_weights(self._fields, lam, self._group, self.config.clip, self.config.normalize)

    def accuracy_estimate(self, log_ratio: Optional[np.ndarray] = None) -> float:
        """Ahat_theta: the policy's accuracy on the training prompts, estimated
        off-policy from the reference samples with self-normalised importance
        weights (``TrainConfig.dual_estimator``). With ``log_ratio = 0`` it
        is the reference's own accuracy on these samples (Abar_ref)."""
        A = self._column("correct") if self._fields is None else self._fields[1]
        lr = self._log_ratio if log_ratio is None else log_ratio
        return accuracy_estimate(A, lr, self._group, self.config.dual_estimator)

    # ---- reference log-probs --------------------------------------------------------------

    def _reference_model(self) -> Any:
        return self._ref_model if self._ref_model is not None else self.model

    def _chunk(self) -> int:
        return max(self.config.micro_batch_size or self.config.batch_size, 32)

    def compute_reference(self) -> Dict[str, np.ndarray]:
        """Reference log-probs of every training sequence (computed once):
        ``mean`` and ``sum`` per sequence (float64) and the token log-probs
        (``tokens``, float32, concatenated; ``offsets`` delimit sequences)."""
        if self._ref is None:
            self._ref = compute_reference(self._reference_model(), self.data, self._chunk())
        return self._ref

    # ---- one step ----------------------------------------------------------------------------

    def _batch_rows(self, step: int) -> Tuple[int, List[int]]:
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._perm_epoch != epoch:
            self._perm = self._rng.permutation(self._n_units)
            self._perm_epoch = epoch
        bs = self.config.batch_size
        assert self._perm is not None
        return epoch, self._perm[k * bs: (k + 1) * bs].tolist()

    def _forward(self, ids: np.ndarray, mask: np.ndarray, tg: np.ndarray, step: int) -> np.ndarray:
        """The policy's token log-probs of a micro-batch (the model keeps the
        activations for its backward)."""
        valid = tg != -100
        try:
            lp = self.model.forward(ids, mask, tg)
        except ValueError as e:  # the core refuses non-finite logits
            if "non-finite" not in str(e):
                raise
            lp = None
        if lp is None or not np.isfinite(lp[valid]).all():
            raise FloatingPointError(f"policy: non-finite log-probs at step {step + 1} (the model diverged; "
                                     "lower lr, or resume from the last checkpoint)")
        return lp

    def _loss(self, sub: List[int], lp: np.ndarray, tg: np.ndarray, B: int, N: int,
              max_resp: int) -> Tuple[float, np.ndarray, PPOStats]:
        """Loss, d loss / d logp and statistics of micro-batch `sub`, as its
        share of the whole batch (B sequences, N tokens): the objective's
        aggregate takes the batch's normalisers. Also records each sequence's
        log-ratio for the dual ascent."""
        cfg = self.config
        ref = self._ref
        assert ref is not None
        valid = tg != -100
        lp64 = np.where(valid, lp, 0.0).astype(np.float64)
        seq_sum = lp64.sum(1)
        if cfg.dual_ratio == "sequence":
            self._log_ratio[sub] = seq_sum - ref["sum"][sub]
        else:
            self._log_ratio[sub] = seq_sum / self.data.response_lengths[sub] - ref["mean"][sub]
        if cfg.objective == "dpo":
            return self._dpo_loss(sub, lp, valid, B)
        if cfg.objective == "sft":  # mean negative log-likelihood per token of the batch
            grad = np.where(valid, np.float32(-1.0 / N), np.float32(0.0)).astype(np.float32)
            return -float(lp64.sum()) / N, grad, self.ppo.ratio_stats(lp, ref["mean"][sub], valid)
        spec = self.ppo
        if spec.ratio == "sequence_mean":
            res = spec.loss(lp, ref["mean"][sub], self.weights[sub], valid, global_batch_size=B)
        else:
            res = spec.loss(lp, reference_tokens(ref, self.data, sub, lp.shape[1]), self.weights[sub], valid,
                            global_batch_size=B, batch_num_tokens=N, max_response_length=max_resp)
        return res.loss, res.grad, res.stats

    def _dpo_loss(self, sub: List[int], lp: np.ndarray, valid: np.ndarray, B: int) -> Tuple[float, np.ndarray, DPOStats]:
        """The DPO loss of a micro-batch whose sequences `sub` are its pairs'
        chosen responses then their rejected ones (so `lp` holds the chosen
        rows then the rejected rows), as its share of a batch of `B` pairs."""
        cfg = self.config
        ref = self._ref
        assert ref is not None
        b = len(sub) // 2
        key = "mean" if cfg.dpo_length_normalize else "sum"
        res = dpo_loss(lp[:b], lp[b:], ref[key][sub[:b]], ref[key][sub[b:]], valid[:b], valid[b:], cfg.dpo_beta,
                       length_normalize=cfg.dpo_length_normalize, global_batch_size=B)
        return res.loss, np.concatenate([res.chosen_grad, res.rejected_grad]), res.stats

    def _sequence_rows(self, units: List[int]) -> List[int]:
        """The sequences of batch units: themselves, or for pairs (DPO) the
        chosen sequences then the rejected ones."""
        if self.pairs is None:
            return units
        P = len(self.pairs)
        return list(units) + [P + u for u in units]

    def _train_step(self, step: int) -> Dict[str, Any]:
        cfg = self.config
        t0 = time.perf_counter()
        epoch, units = self._batch_rows(step)
        rows = self._sequence_rows(units)
        lam_used = self.lam
        B = len(units)
        resp = self.data.response_lengths[rows]
        N, max_resp = int(resp.sum()), int(resp.max())
        T_batch = max(len(self.data.ids[i]) for i in rows)
        mb = cfg.micro_batch_size or B
        model = self.model
        loss_total = 0.0
        stats = []
        model.zero_grad()
        for s in range(0, B, mb):
            sub = self._sequence_rows(units[s: s + mb])
            ids, mask, tg = self.data.batch(sub, pad_to=T_batch)
            lp = self._forward(ids, mask, tg, step)
            loss, grad, st = self._loss(sub, lp, tg, B, N, max_resp)
            model.backward(grad)
            loss_total += loss
            stats.append(st)
        lr = lr_at(step, self.total_steps, cfg.lr, cfg.warmup_ratio, cfg.min_lr_ratio)
        gnorm = model.step(lr=lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                           max_grad_norm=cfg.max_grad_norm)
        merged = _merge_dpo_stats(stats) if cfg.objective == "dpo" else _merge_stats(stats)
        log: Dict[str, Any] = {"step": step + 1, "epoch": epoch, "loss": float(loss_total), **merged,
                               "lam": lam_used, "acc_estimate": None, "acc_reference": None, "lr": lr,
                               "grad_norm": float(gnorm), "sequences": len(rows), "tokens": N}
        if cfg.objective == "dpo":
            log["pairs"] = B
        if cfg.lam == "auto":
            self._dual_ascent(log)
        log["seconds"] = time.perf_counter() - t0
        for k in ("loss", "grad_norm"):
            if not math.isfinite(log[k]):
                raise FloatingPointError(f"{k}: became {log[k]} at step {step + 1}; lower lr or check the data")
        return log

    def _dual_ascent(self, log: Dict[str, Any]) -> None:
        assert self.lam is not None
        cfg = self.config
        ahat = self.accuracy_estimate()
        target = self.accuracy_estimate(np.zeros_like(self._log_ratio))
        self.lam = dual_step(self.lam, ahat, target, cfg.lam_lr, cfg.lam_max)
        self.weights = self.weights_for(self.lam)
        log["acc_estimate"] = ahat
        log["acc_reference"] = target

    # ---- checkpoints ---------------------------------------------------------------------------

    def _state(self) -> Dict[str, Any]:
        return {
            "format": TRAIN_STATE_FORMAT,
            "step": self.step,
            "total_steps": self.total_steps,
            "lam": self.lam,
            "rng": self._rng.bit_generator.state,
            "perm_epoch": self._perm_epoch,
            "perm": None if self._perm is None else self._perm.tolist(),
            "config": self.config.to_dict(),
            "data_sha256": self.data.digest(),
            "format_tokens": self.format.to_dict(),
        }

    def save_checkpoint(self) -> str:
        """Write a checkpoint of the current step to ``out_dir/checkpoints``
        and return its folder (see :func:`o1pruner.train.checkpoint.save_checkpoint`:
        a crash at any moment leaves the previous checkpoint the valid one)."""
        if self.out_dir is None:
            raise ValueError("out_dir: needed to write checkpoints")
        return save_checkpoint(self.out_dir, self.step, self.model, self._log_ratio, self._state(),
                               self.config.keep_checkpoints)

    def _resume(self) -> bool:
        path = latest_checkpoint(self.out_dir) if self.out_dir is not None else None
        if path is None or self.out_dir is None:
            return False
        st = read_state(path)
        if st["data_sha256"] != self.data.digest():
            raise ValueError(f"{path}: was trained on other data (token ids differ); use another out_dir")
        mine = self.config.to_dict()
        theirs = dict(TrainConfig().to_dict(), **st["config"])  # settings added since: their defaults
        diff = sorted(k for k in mine if k not in ("checkpoint_every", "keep_checkpoints") and mine[k] != theirs.get(k))
        if diff:
            raise ValueError(f"{path}: was written with other settings ({', '.join(f'{k}={theirs.get(k)!r}' for k in diff)}); "
                             "use the same settings to resume or another out_dir")
        self._log_ratio = restore_model(path, self.model)
        self.step = int(st["step"])
        self.resumed_step = self.step
        self.lam = st["lam"]
        self._rng.bit_generator.state = st["rng"]
        self._perm_epoch = int(st["perm_epoch"])
        self._perm = None if st["perm"] is None else np.asarray(st["perm"], dtype=np.int64)
        if self.config.lam is not None:
            assert self.lam is not None
            self.weights = self.weights_for(self.lam)
        self.history = trim_log(self.out_dir, self.step)
        return True

    # ---- the loop -------------------------------------------------------------------------------

    def train(self, *, resume: bool = True, max_steps: Optional[int] = None,
              callback: Optional[Callable[[Dict[str, Any]], Any]] = None) -> List[Dict[str, Any]]:
        """Run (or continue) training.

        Parameters
        ----------
        resume : bool, default True
            With an `out_dir` holding a checkpoint, continue from it: the
            model, optimizer moments, step, lambda, data order and RNG state
            are restored, so the run continues exactly as an uninterrupted
            one with the same seed would (and the log is cut back to the
            checkpoint's step).
        max_steps : int, optional
            Stop after this many steps in all (the schedule still spans the
            full run); a checkpoint is written at the stop.
        callback : callable, optional
            Called with each step's log.

        Returns
        -------
        list of dict
            :attr:`history`.
        """
        if not resume and self.out_dir is not None and latest_checkpoint(self.out_dir) is not None and self.step == 0:
            raise ValueError(f"out_dir: {self.out_dir} holds a checkpoint; pass resume=True or use another out_dir")
        # the reference is the model as given (before a checkpoint is loaded into it)
        path = None if self.out_dir is None else os.path.join(self.out_dir, "reference_logprobs.npz")
        self._ref = load_or_compute_reference(path, self._reference_model(), self.data, self._chunk(), self._ref)
        if resume and self.step == 0:
            self._resume()
        end = self.total_steps if max_steps is None else min(self.total_steps, int(max_steps))
        header = {"config": self.config.to_dict(), "format": self.format.to_dict(), "n_samples": len(self.data),
                  "total_steps": self.total_steps}
        run_log = RunLog(self.out_dir, self.step, self.total_steps, header, self.progress,
                         f"train ({self.config.objective})")
        every = self.config.checkpoint_every
        try:
            while self.step < end:
                log = self._train_step(self.step)
                self.step += 1
                self.history.append(log)
                run_log.write(log)
                if callback is not None:
                    callback(log)
                if self.out_dir is not None and (self.step == end or (every is not None and self.step % every == 0)):
                    self.save_checkpoint()
        finally:
            run_log.close()
        if self.out_dir is not None and self.step == self.total_steps:
            self.model.save(os.path.join(self.out_dir, "model"), optimizer=False)
        return self.history

    def summary(self) -> Dict[str, Any]:
        """First and last step's numbers and the totals."""
        h = self.history
        if not h:
            return {"steps": 0}
        out = {"steps": len(h), "loss_first": h[0]["loss"], "loss_last": h[-1]["loss"]}
        if self.config.objective == "dpo":
            out.update(reward_accuracy_last=h[-1]["reward_accuracy"], reward_margin_last=h[-1]["reward_margin"])
        else:
            out.update(clip_fraction_last=h[-1]["clip_fraction"], approx_kl_last=h[-1]["approx_kl"])
        out.update(lam_last=self.lam, seconds=float(sum(x["seconds"] for x in h)))
        return out
