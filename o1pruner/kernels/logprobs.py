"""Token log-probabilities from materialised logits: log p(target), the
entropy and the log-sum-exp of every row, and their gradient (the backward).
The numbers come from the C core (one pass over each row); this module owns
the documentation and the defaults."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import numpy.typing as npt

from .._loader import _core

__all__ = ["TokenLogprobs", "token_logprobs", "token_logprobs_backward"]


class TokenLogprobs(NamedTuple):
    """Per-token results of :func:`token_logprobs`, each float32 of shape (N,).

    Attributes
    ----------
    logp : ndarray of float32, shape (N,)
        ``log p(targets[i])`` under ``softmax(logits[i] / temperature)``;
        0 on ignored rows, -inf where the target's logit is -inf.
    entropy : ndarray of float32, shape (N,)
        ``H = -sum_j p_j log p_j`` (>= 0); 0 on ignored rows.
    lse : ndarray of float32, shape (N,)
        ``log sum_j exp(logits[i, j] / temperature)``; 0 on ignored rows.
        :func:`token_logprobs_backward` needs it.
    """

    logp: np.ndarray
    entropy: np.ndarray
    lse: np.ndarray


def token_logprobs(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    temperature: float = 1.0,
    ignore_index: int = -100,
) -> TokenLogprobs:
    """Log-probability of each target token, the entropy and the log-sum-exp.

    For every row i with ``z = logits[i] / temperature`` and
    ``p = softmax(z)``: ``logp = z[t] - lse``, ``lse = log sum_j exp z_j``,
    ``entropy = lse - sum_j p_j z_j``. One pass over each row (online max and
    sums), so the cost is one read of the logits; nothing of size N x V is
    allocated besides the float32 copy made when the input is not already
    float32 C-contiguous.

    Parameters
    ----------
    logits : array_like, shape (N, V)
        Float16, float32 or float64 logits, any memory layout (converted once
        to float32 C order). ``-inf`` entries mask tokens out (p = 0); a row
        must keep at least one finite entry and hold no NaN or +inf.
    targets : array_like of int, shape (N,)
        Token id of each row in ``[0, V)``, or `ignore_index`.
    temperature : float, default 1.0
        Sampling temperature; the logits are divided by it. Finite and > 0.
    ignore_index : int, default -100
        Rows whose target equals this are skipped: all three outputs are 0
        and the backward gives them no gradient (PyTorch's convention).

    Returns
    -------
    TokenLogprobs
        ``(logp, entropy, lse)``, float32 arrays of shape (N,).

    Raises
    ------
    ValueError
        `logits` not 2-D or empty, a row of `logits` that is all -inf or holds
        NaN or +inf, or whose ``logits / temperature`` overflows float32;
        `targets` of the wrong length or outside ``[0, V)``; `temperature` not
        finite or <= 0. Messages name the argument and the row.
    TypeError
        `logits` not floating, `targets` not integer, `temperature` not a
        real number, `ignore_index` not an int.

    Notes
    -----
    Compute is float32 with float64 accumulation across the vocabulary
    (float32 partial sums inside blocks of 2048 entries); the result is
    within a few float32 roundings of the float64 reference
    (``o1pruner.reference.token_logprobs``). The temperature enters as its
    float32 reciprocal, ``z = logits * float32(1 / temperature)``, identically
    in the forward and the backward. A row whose target logit is -inf (a
    masked token was sampled) gets ``logp = -inf`` and finite entropy and
    lse. Rows are split across ``o1pruner.get_num_threads()`` threads; the
    result does not depend on the thread count. The GIL is released.

    Examples
    --------
    >>> import numpy as np
    >>> import o1pruner
    >>> logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], dtype=np.float32))
    >>> out = o1pruner.token_logprobs(logits, [0, -100])
    >>> np.round(np.exp(out.logp), 4).tolist(), out.entropy[1].item()
    ([0.5, 1.0], 0.0)
    >>> round(out.entropy[0].item(), 4)  # 1.5 log 2
    1.0397
    """
    logp, entropy, lse = _core.token_logprobs(logits, targets, temperature, ignore_index)
    return TokenLogprobs(logp, entropy, lse)


def token_logprobs_backward(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    lse: npt.ArrayLike,
    grad_logp: npt.ArrayLike,
    grad_entropy: Optional[npt.ArrayLike] = None,
    temperature: float = 1.0,
    ignore_index: int = -100,
    out: Optional[np.ndarray] = None,
    accumulate: bool = False,
) -> np.ndarray:
    """Gradient of ``sum_i grad_logp[i] logp[i] + grad_entropy[i] entropy[i]``
    with respect to the logits.

    With ``z = logits / temperature`` and ``p = exp(z - lse)``:
    ``dlogits[i, j] = (grad_logp[i] (1[j = t_i] - p_ij)
    - grad_entropy[i] p_ij (z_ij - E_p[z_i])) / temperature``,
    and 0 on ignored rows. `p` is recomputed from the saved `lse`, so only
    O(N) values are kept between forward and backward.

    Parameters
    ----------
    logits : array_like, shape (N, V)
        The logits given to :func:`token_logprobs` (same rules).
    targets : array_like of int, shape (N,)
        The targets given to :func:`token_logprobs`.
    lse : array_like, shape (N,)
        ``token_logprobs(...).lse`` for these logits and temperature.
    grad_logp : array_like, shape (N,)
        Upstream gradient of `logp` (finite on rows that are not ignored).
    grad_entropy : array_like, shape (N,), optional
        Upstream gradient of `entropy`; None means zero (one pass per row
        instead of two).
    temperature : float, default 1.0
        As in the forward.
    ignore_index : int, default -100
        As in the forward.
    out : ndarray of float32, shape (N, V), optional
        Where to write the gradient instead of a new array: C-contiguous,
        aligned, writeable, not sharing memory with any input. A new N x V
        array costs a first touch of every page at each call (for N = 2048,
        V = 151936 that is 1.2 GB); a reused `out` does not.
    accumulate : bool, default False
        With `out`: add the gradient to it (``out += dlogits``; ignored rows
        are left as they are) instead of overwriting it.

    Returns
    -------
    ndarray of float32, shape (N, V)
        ``dlogits`` (`out` itself when given). Entries where ``logits`` is
        -inf (p = 0) get exactly 0 (added to `out` when accumulating).

    Raises
    ------
    ValueError
        Any of the forward's conditions; `lse`, `grad_logp` or `grad_entropy`
        of the wrong shape or not finite on a row that is not ignored; `lse`
        that does not belong to these logits (``sum_j exp(z_j - lse)``
        further from 1 than rounding allows); `out` of the wrong shape or
        layout, or sharing memory with an input; `accumulate` without `out`.
        Every check on the arguments comes before `out` is written: such an
        error leaves it as it was. Non-finite logits and an `lse` that does
        not match are found while computing: then rows of `out` may already
        be written (or added to).
    TypeError
        Non-floating arrays, non-integer `targets`, `temperature` not a real
        number, `ignore_index` not an int, `out` not a float32 ndarray.

    Notes
    -----
    `p` is recomputed as ``exp((logits - lse * temperature) / temperature)``:
    the subtraction is exact for every entry that carries probability, so the
    only error of size ``|lse| * 2**-24`` is a shift common to the whole row,
    and `p` is renormalised by its sum whenever that shift is measurable.
    The gradient is therefore accurate to a few 1e-6 relative to
    ``|grad_logp| + |grad_entropy| * |z - E_p[z]|``, even for logits around
    1e4 or larger. An `lse` that is further off than rounding explains
    raises ValueError rather than giving a wrong gradient.
    Rows are split across threads; the result does not depend on the thread
    count. The GIL is released.

    Examples
    --------
    >>> import numpy as np
    >>> import o1pruner
    >>> logits = np.log(np.array([[0.5, 0.25, 0.25]], dtype=np.float32))
    >>> out = o1pruner.token_logprobs(logits, [0])
    >>> g = o1pruner.token_logprobs_backward(logits, [0], out.lse, np.ones(1, np.float32))
    >>> np.round(g, 4).tolist()  # onehot - p
    [[0.5, -0.25, -0.25]]
    """
    return _core.token_logprobs_backward(
        logits, targets, lse, grad_logp, grad_entropy, temperature, ignore_index, out=out, accumulate=accumulate
    )
