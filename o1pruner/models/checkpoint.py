"""TinyLM checkpoints: a Hugging Face Qwen2 folder (``config.json`` +
``model.safetensors``) plus ``optimizer.safetensors`` (AdamW state) to resume
training. Used by :meth:`TinyLM.save` and :meth:`TinyLM.load`."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import numpy as np

from .._loader import _core
from ._safetensors import (atomic_write_bytes, read_safetensors, read_safetensors_header, to_bfloat16_bits,
                           write_safetensors)
from .config import TinyLMConfig

__all__ = ["save_checkpoint", "read_checkpoint", "check_weights_header"]


def save_checkpoint(path: str, config: TinyLMConfig, params: Dict[str, np.ndarray],
                    optimizer: Optional[Dict[str, Any]], dtype: str) -> None:
    """Write the folder `path` (see :meth:`TinyLM.save`): `params` by Hugging
    Face name, `optimizer` (``exp_avg``, ``exp_avg_sq``, ``step``) or None to
    remove a stale optimizer state; every file atomically."""
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"dtype: must be 'float32', 'float16' or 'bfloat16', got {dtype!r}")
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    cfg = config.to_dict()
    cfg["torch_dtype"] = dtype
    atomic_write_bytes(os.path.join(path, "config.json"),
                       (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode())
    if dtype == "float32":
        tensors: Dict[str, Any] = dict(params)
    elif dtype == "float16":
        tensors = {k: v.astype(np.float16) for k, v in params.items()}
    else:
        tensors = {k: ("BF16", to_bfloat16_bits(v)) for k, v in params.items()}
    write_safetensors(os.path.join(path, "model.safetensors"), tensors,
                      {"format": "pt", "producer": "o1pruner.models.TinyLM"})
    opt_path = os.path.join(path, "optimizer.safetensors")
    if optimizer is not None:
        write_safetensors(opt_path, {"exp_avg": optimizer["exp_avg"], "exp_avg_sq": optimizer["exp_avg_sq"]},
                          {"format": "o1pruner-adamw", "step": str(optimizer["step"]),
                           "layout": "flat parameter buffer of o1pruner.models.TinyLM"})
    elif os.path.exists(opt_path):
        os.unlink(opt_path)  # a stale optimizer state would not match these parameters


def read_checkpoint(path: str, optimizer: bool):
    """(config, tensors, optimizer state or None) of the folder `path`.

    ``config.json`` is checked against the weights' header before the
    tensors are read (and before the caller allocates a model of the
    config's size: a wrong num_hidden_layers would otherwise allocate, and
    initialise, a model the file cannot fill); the optimizer moments are
    checked against the config's parameter count."""
    path = os.fspath(path)
    with open(os.path.join(path, "config.json")) as f:
        config = TinyLMConfig.from_dict(json.load(f))
    weights = os.path.join(path, "model.safetensors")
    check_weights_header(config, weights)
    tensors, _ = read_safetensors(weights)
    opt_path = os.path.join(path, "optimizer.safetensors")
    state = None
    if optimizer and os.path.exists(opt_path):
        moments, meta = read_safetensors(opt_path)
        n = int(_core.model_num_params(config._c_tuple()))
        for key in ("exp_avg", "exp_avg_sq"):
            if key not in moments or moments[key].shape != (n,):
                raise ValueError(f"{opt_path}: {key} missing or of the wrong size")
        state = {"exp_avg": moments["exp_avg"], "exp_avg_sq": moments["exp_avg_sq"],
                 "step": int(meta.get("step", "0"))}
    return config, tensors, state


_FLOAT_CODES = ("F32", "F16", "BF16", "F64")


def check_weights_header(config: TinyLMConfig, path: str) -> None:
    """ValueError / TypeError unless the safetensors header at `path` holds
    exactly the tensors of `config` (names, shapes; an optional tied
    ``lm_head.weight``), all floating point. Reads only the header."""
    header, _ = read_safetensors_header(path)
    layers = set()
    for name in header:
        parts = name.split(".")
        if len(parts) > 3 and parts[:2] == ["model", "layers"] and parts[2].isdigit():
            layers.add(int(parts[2]))
    L = int(config.num_hidden_layers)
    if len(layers) != L or layers != set(range(L)):
        held = f"layers {min(layers)}..{max(layers)} ({len(layers)} in all)" if layers else "no layers"
        raise ValueError(f"{path}: config.json says num_hidden_layers = {L}, but the weights hold {held}")
    # the layout is now bounded by what the file itself lists
    want = {name: tuple(shape) for name, _, shape in _core.model_layout(config._c_tuple())}
    emb = want["model.embed_tokens.weight"]
    if "lm_head.weight" in header:
        want["lm_head.weight"] = emb
    missing = sorted(set(want) - set(header))
    unknown = sorted(set(header) - set(want))
    if missing or unknown:
        raise ValueError(f"{path}: does not match config.json: unknown names {unknown[:5]}, "
                         f"missing names {missing[:5]}")
    for name, shape in want.items():
        code, got = header[name]
        if tuple(got) != shape:
            raise ValueError(f"{path}: {name} has shape {tuple(got)}, but config.json implies {shape}")
        if code not in _FLOAT_CODES:
            raise TypeError(f"{path}: {name} has dtype {code}, expected a floating-point tensor "
                            f"({', '.join(_FLOAT_CODES)})")
