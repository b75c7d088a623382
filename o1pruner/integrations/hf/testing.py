"""A tiny Qwen2 model and tokenizer built locally, for tests and notebooks
(nothing is downloaded)."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from .deps import torch, transformers  # noqa: F401  (the [hf] extra, or an ImportError naming it)

__all__ = ["tiny_tokenizer", "tiny_qwen2", "TINY_CHAT_TEMPLATE"]


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
