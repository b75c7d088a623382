"""The run's record: ``train_config.json`` (settings, once), the per-step
log ``train_log.jsonl`` (crash-safe appends; cut back to the checkpoint's
step on resume) and the progress bar."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional

from .. import data as _io

__all__ = ["RunLog", "trim_log"]

LOG_NAME = "train_log.jsonl"


def trim_log(out_dir: str, step: int) -> List[Dict[str, Any]]:
    """The logged steps up to `step` (the log file is rewritten without the
    later ones and any torn last line)."""
    log_path = os.path.join(out_dir, LOG_NAME)
    if not os.path.exists(log_path):
        return []
    recs = _io.read_jsonl(log_path, torn_tail="drop")
    keep = [r for r in recs if r.get("step", 0) <= step]
    if len(keep) != len(recs) or recs.torn_tail:
        _io.write_jsonl(log_path, keep)
    return keep


class RunLog:
    """Where each step's log goes: the JSONL log of `out_dir` (None: nowhere)
    and a tqdm bar (`progress`). A fresh run (`step` 0) starts a new log and
    writes `header` to ``train_config.json``."""

    def __init__(self, out_dir: Optional[str], step: int, total_steps: int, header: Mapping[str, Any],
                 progress: bool, desc: str):
        self.appender = None
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
            if step == 0:
                log_path = os.path.join(out_dir, LOG_NAME)
                if os.path.exists(log_path):
                    os.remove(log_path)
                _io.write_json(os.path.join(out_dir, "train_config.json"), dict(header), indent=1)
            self.appender = _io.JSONLAppender(os.path.join(out_dir, LOG_NAME))
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=step, desc=desc, unit="step")

    def write(self, log: Mapping[str, Any]) -> None:
        if self.appender is not None:
            self.appender.write_batch([log])
        if self.bar is not None:
            post = {"loss": f"{log['loss']:.4f}"}
            if "clip_fraction" in log:
                post["clip"] = f"{log['clip_fraction']:.2f}"
            if "reward_accuracy" in log:  # DPO
                post["acc"] = f"{log['reward_accuracy']:.2f}"
            if log["lam"] is not None:
                post["lam"] = f"{log['lam']:.2f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.appender is not None:
            self.appender.close()
