"""Bounded sympy fallback for the answers the C grader leaves UNKNOWN.

Each item runs in a worker process (a fresh interpreter started with
``subprocess``, like multiprocessing's "spawn" context but without
re-importing the caller's ``__main__``, so it works from scripts without a
main guard, from threads and in notebooks). The parent waits for each answer
with a deadline (``selectors``, no signals); a worker that misses its deadline
is killed and replaced, and its item counts as a timeout (not equal).
Nothing the workers do can hang the caller: every wait has a time limit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from typing import List, Optional, Sequence, Tuple

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sympy_worker.py")

# items longer than this are not sent (sympy would only time out on them)
MAX_ITEM_CHARS = 20000


def sympy_available() -> bool:
    """True when sympy can be imported (the optional extra ``o1pruner[sympy]``)."""
    return importlib.util.find_spec("sympy") is not None


class _Worker:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-I", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.ready = False
        self.item: Optional[int] = None
        self.deadline = 0.0

    def lines(self) -> List[str]:
        """Complete lines available now ([] when none; None-like EOF raises EOFError)."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        if not chunk:
            raise EOFError
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return [d.decode("utf-8", "replace") for d in done]

    def send(self, job_id: int, pred: str, gold: str, deadline: float) -> None:
        line = json.dumps({"id": job_id, "pred": pred, "gold": gold}) + "\n"
        self.proc.stdin.write(line.encode("utf-8", "surrogatepass"))
        self.proc.stdin.flush()
        self.item = job_id
        self.deadline = deadline

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class SympyFallback:
    """A small pool of sympy worker processes with a hard per-item timeout.

    Use it as a context manager (or call :meth:`close`) to reuse the workers
    over several :func:`o1pruner.grade_responses` calls; passing
    ``fallback="sympy"`` instead starts and stops a pool for one call.

    Parameters
    ----------
    timeout : float, default 5.0
        Seconds one item may take. A worker still busy after that is killed
        and replaced; the item counts as a timeout (not equal).
    workers : int, optional
        Number of processes (default: min(2, CPU count)).
    start_timeout : float, default 60.0
        Seconds a new worker may take to import sympy.

    Examples
    --------
    >>> with SympyFallback(timeout=2.0) as fb:                      # doctest: +SKIP
    ...     res = o1pruner.grade_responses(responses, golds, fallback=fb, details=True)
    >>> res.n_timeout                                                # doctest: +SKIP
    0
    """

    NOT_EQUAL, EQUAL, TIMEOUT, ERROR = 0, 1, 3, 4

    def __init__(self, timeout: float = 5.0, workers: Optional[int] = None, start_timeout: float = 60.0):
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers: expected a positive int, got {workers!r}")
        self.timeout = float(timeout)
        self.start_timeout = float(start_timeout)
        self.n_workers = workers or max(1, min(2, os.cpu_count() or 1))
        self._workers: List[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        #: running totals over the pool's life
        self.n_checked = 0
        self.n_timeout = 0
        self.n_error = 0

    # -- lifecycle --------------------------------------------------------------
    def close(self) -> None:
        """Kill the worker processes (idempotent)."""
        with self._lock:
            for w in self._workers:
                w.kill()
            self._workers = []
            self._closed = True

    def __enter__(self) -> "SympyFallback":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            for w in self._workers:
                w.kill()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- work ---------------------------------------------------------------------
    def check(self, pairs: Sequence[Tuple[str, str]]) -> List[int]:
        """Decide each (prediction, gold) pair of normalised answers.

        Returns one code per pair: EQUAL (1), NOT_EQUAL (0), TIMEOUT (3) or
        ERROR (4: could not parse, too long, or the worker died).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("SympyFallback: the pool is closed")
            return self._check(list(pairs))

    def _check(self, pairs: List[Tuple[str, str]]) -> List[int]:
        n = len(pairs)
        out = [self.ERROR] * n
        todo = deque()
        for k, (p, g) in enumerate(pairs):
            if len(p) > MAX_ITEM_CHARS or len(g) > MAX_ITEM_CHARS:
                out[k] = self.ERROR
            else:
                todo.append(k)
        if not todo:
            self._count(out)
            return out
        want = min(self.n_workers, len(todo))
        while len(self._workers) < want:
            self._workers.append(self._start())
        sel = selectors.DefaultSelector()
        try:
            for w in self._workers:
                sel.register(w.fd, selectors.EVENT_READ, w)
            busy = 0
            failures = 0
            while todo or busy:
                now = time.monotonic()
                # hand out work to idle, ready workers
                for w in self._workers:
                    if w.ready and w.item is None and todo:
                        k = todo.popleft()
                        try:
                            w.send(k, pairs[k][0], pairs[k][1], now + self.timeout)
                            busy += 1
                        except OSError:  # died while idle
                            out[k] = self.ERROR
                            w.deadline = 0.0
                            w.item = -1
                            busy += 1
                # wait for an answer or the nearest deadline
                deadlines = [w.deadline for w in self._workers if w.item is not None or not w.ready]
                wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.05
                events = sel.select(timeout=min(wait, 1.0))
                for key, _ in events:
                    w = key.data
                    try:
                        lines = w.lines()
                    except EOFError:
                        lines = None
                    if lines is None:  # the worker died
                        if w.item is not None and w.item >= 0:
                            out[w.item] = self.ERROR
                        if w.item is not None:
                            busy -= 1
                        failures += 1
                        self._replace(sel, w, failures)
                        continue
                    for line in lines:
                        if line.strip() == "ready":
                            w.ready = True
                            w.deadline = 0.0
                            continue
                        try:
                            msg = json.loads(line)
                        except ValueError:
                            continue
                        if msg.get("id") == w.item:
                            r = msg.get("r")
                            out[w.item] = self.EQUAL if r == 1 else self.NOT_EQUAL if r == 0 else self.ERROR
                            w.item = None
                            w.deadline = 0.0
                            busy -= 1
                now = time.monotonic()
                for w in list(self._workers):
                    if w.item is not None and now >= w.deadline:
                        if w.item >= 0:
                            out[w.item] = self.TIMEOUT
                        busy -= 1
                        self._replace(sel, w, failures)
                    elif not w.ready and w.item is None and now >= w.deadline:
                        failures += 1  # could not even start
                        self._replace(sel, w, failures)
                if failures > 4 * self.n_workers + n:
                    # workers keep dying (no sympy in this interpreter?): give up
                    for k in todo:
                        out[k] = self.ERROR
                    todo.clear()
                    for w in self._workers:
                        if w.item is not None and w.item >= 0:
                            out[w.item] = self.ERROR
                        w.item = None
                    busy = 0
        finally:
            sel.close()
        self._count(out)
        return out

    def _count(self, out: List[int]) -> None:
        self.n_checked += len(out)
        self.n_timeout += sum(1 for r in out if r == self.TIMEOUT)
        self.n_error += sum(1 for r in out if r == self.ERROR)

    def _start(self) -> _Worker:
        w = _Worker()
        w.deadline = time.monotonic() + self.start_timeout
        return w

    def _replace(self, sel, w: _Worker, failures: int) -> None:
        try:
            sel.unregister(w.fd)
        except (KeyError, ValueError):
            pass
        w.kill()
        i = self._workers.index(w)
        nw = self._start()
        self._workers[i] = nw
        sel.register(nw.fd, selectors.EVENT_READ, nw)


def resolve_fallback(fallback, timeout: float):
    """(SympyFallback or None, owned) for the `fallback` argument."""
    if isinstance(fallback, SympyFallback):
        return fallback, False
    if fallback == "sympy":
        if not sympy_available():
            warnings.warn(
                "fallback='sympy' but sympy is not installed (pip install 'o1pruner[sympy]'): "
                "UNKNOWN answers count as not correct",
                RuntimeWarning,
                stacklevel=3,
            )
            return None, False
        return SympyFallback(timeout=timeout), True
    raise ValueError(f"fallback: expected None, 'sympy' or a SympyFallback, got {fallback!r}")
