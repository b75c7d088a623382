"""Crash-safe checkpoints of a training run: a checkpoint folder is written
under a temporary name, renamed into place, and only then named by the
``LATEST`` pointer (replaced atomically), so a crash at any moment leaves the
previous checkpoint the valid one."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, Optional

import numpy as np

from .. import data as _io
from .._atomic import PathLike, fsync_dir

__all__ = ["latest_checkpoint", "save_checkpoint", "read_state", "restore_model", "TRAIN_STATE_FORMAT"]


TRAIN_STATE_FORMAT = "o1pruner.trainer/1"


def latest_checkpoint(out_dir: PathLike) -> Optional[str]:
    """Folder of the last complete checkpoint under ``out_dir/checkpoints``,
    or None. Completeness is what the ``LATEST`` pointer says: it is
    replaced atomically only after the checkpoint it names is fully written."""
    ck = os.path.join(os.fspath(out_dir), "checkpoints")
    ptr = os.path.join(ck, "LATEST")
    if not os.path.exists(ptr):
        return None
    info = _io.read_json(ptr)
    path = os.path.join(ck, info["dir"])
    if not os.path.isdir(path):
        raise ValueError(f"{ptr}: names {info['dir']!r}, which does not exist")
    return path


def _fsync_tree(folder: str) -> None:
    for name in os.listdir(folder):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(folder)


def save_checkpoint(out_dir: str, step: int, model: Any, log_ratio: np.ndarray, state: Dict[str, Any],
                    keep: int) -> str:
    """Write the checkpoint of step `step` to ``out_dir/checkpoints`` and
    return its folder: the model with its optimizer state, the dual ascent's
    log-ratios and the trainer `state` (JSON) go to a temporary folder that is
    renamed into place; only then is the ``LATEST`` pointer replaced
    (atomically), so a crash at any moment leaves the previous checkpoint the
    valid one. Older checkpoints beyond `keep` are deleted."""
    ck = os.path.join(out_dir, "checkpoints")
    os.makedirs(ck, exist_ok=True)
    name = f"step-{step:06d}"
    final = os.path.join(ck, name)
    tmp = final + ".tmp"
    for d in os.listdir(ck):
        if d.endswith(".tmp"):  # left by an interrupted write: a folder, or the LATEST pointer's temp file
            p = os.path.join(ck, d)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.unlink(p)
                except OSError:
                    pass
    if os.path.exists(final):
        shutil.rmtree(final)  # renamed into place, but LATEST was not yet updated to name it
    os.makedirs(tmp)
    model.save(tmp, optimizer=True)
    np.save(os.path.join(tmp, "dual_log_ratio.npy"), log_ratio)
    with open(os.path.join(tmp, "trainer_state.json"), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    _fsync_tree(tmp)
    os.rename(tmp, final)
    fsync_dir(ck)
    _io.write_json(os.path.join(ck, "LATEST"), {"dir": name, "step": step})
    # drop older checkpoints beyond keep_checkpoints
    olds = sorted(d for d in os.listdir(ck) if d.startswith("step-") and not d.endswith(".tmp") and d != name)
    for d in olds[: max(0, len(olds) - (keep - 1))]:
        shutil.rmtree(os.path.join(ck, d), ignore_errors=True)
    return final


def read_state(path: str) -> Dict[str, Any]:
    """The trainer state of checkpoint folder `path` (format checked)."""
    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
        st = json.load(f)
    if st.get("format") != TRAIN_STATE_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of this trainer (format {st.get('format')!r})")
    return st


def restore_model(path: str, model: Any) -> np.ndarray:
    """Load checkpoint `path`'s weights and optimizer state into `model` (same
    architecture) and return the dual ascent's saved log-ratios."""
    from ..models import TinyLM

    loaded = TinyLM.load(path, optimizer=True)
    if loaded.config != model.config:
        raise ValueError(f"{path}: model architecture differs from the model given")
    model.load_state_dict(loaded.state_dict())
    model.load_optimizer_state(loaded.optimizer_state())  # the moments and step count of the checkpoint
    return np.load(os.path.join(path, "dual_log_ratio.npy"))
