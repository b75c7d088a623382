"""The character-level tokenizer of the built-in arithmetic task, with the
small interface the pipeline accepts from users' tokenizers."""

from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Union

import numpy as np

__all__ = ["CharTokenizer"]

_SPECIALS = ("<pad>", "<bos>", "<eos>")
_CHARS = "\n !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class CharTokenizer:
    """Character-level tokenizer with a fixed vocabulary.

    Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``; then one id per
    printable ASCII character and newline. The vocabulary is fixed so that
    checkpoints stay compatible. It has the small interface the pipeline
    accepts from users' tokenizers: :meth:`encode`, :meth:`decode`,
    ``__call__(text) -> {"input_ids": [...]}`` (like Hugging Face),
    :attr:`vocab_size`, :attr:`pad_token_id`, :attr:`bos_token_id`,
    :attr:`eos_token_id`.

    Examples
    --------
    >>> tok = CharTokenizer()
    >>> tok.decode(tok.encode("1+2=3"))
    '1+2=3'
    >>> tok("ab")["input_ids"] == tok.encode("ab")
    True
    """

    pad_token = "<pad>"
    bos_token = "<bos>"
    eos_token = "<eos>"
    pad_token_id = 0
    bos_token_id = 1
    eos_token_id = 2

    def __init__(self) -> None:
        self._itos: List[str] = list(_SPECIALS) + list(_CHARS)
        self._stoi: Dict[str, int] = {c: i + len(_SPECIALS) for i, c in enumerate(_CHARS)}

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> List[int]:
        """Token ids of `text` (one per character).

        Raises
        ------
        TypeError
            If `text` is not a str.
        ValueError
            If `text` has characters outside the vocabulary (named in the
            message).
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        stoi = self._stoi
        try:
            ids = [stoi[c] for c in text]
        except KeyError:
            bad = sorted({c for c in text if c not in stoi})
            raise ValueError(f"text: characters not in the vocabulary: {', '.join(repr(c) for c in bad)}") from None
        if add_bos:
            ids.insert(0, self.bos_token_id)
        if add_eos:
            ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of token ids; special tokens dropped (or written as ``<eos>``)."""
        out = []
        n = self.vocab_size
        for i in np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1).tolist():
            if not isinstance(i, int) or not 0 <= i < n:
                raise ValueError(f"ids: token id {i!r} out of range [0, {n})")
            if i < len(_SPECIALS):
                if not skip_special_tokens:
                    out.append(self._itos[i])
                continue
            out.append(self._itos[i])
        return "".join(out)

    def __call__(self, text: Union[str, Sequence[str]], add_special_tokens: bool = False) -> Dict[str, list]:
        """``{"input_ids": ids}`` for a str, or a list of id lists for a list of str.

        `add_special_tokens` adds ``<bos>`` in front, like Hugging Face.
        """
        if isinstance(text, str):
            return {"input_ids": self.encode(text, add_bos=add_special_tokens)}
        if isinstance(text, (list, tuple)):
            return {"input_ids": [self.encode(t, add_bos=add_special_tokens) for t in text]}
        raise TypeError(f"text: expected str or list of str, got {type(text).__name__}")

    def get_vocab(self) -> Dict[str, int]:
        """Mapping token string -> id (special tokens included)."""
        return {s: i for i, s in enumerate(self._itos)}
