"""The optional dependencies of :mod:`o1pruner.hf`, imported once with the
message that names the extra to install."""

try:
    import torch
    import transformers
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "o1pruner.hf needs PyTorch and Hugging Face transformers, which are optional: "
        "install them with pip install 'o1pruner[hf]' (torch, transformers, accelerate)"
    ) from _exc

__all__ = ["torch", "transformers"]
