"""Crash-safe file replacement, shared by :mod:`o1pruner.io` (JSON, JSONL,
checkpoint state) and the model checkpoints (:mod:`o1pruner.models`)."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Union

__all__ = ["atomic_write", "fsync_dir", "PathLike"]

#: A file path: str or os.PathLike. The one definition; the package imports it
#: from here (or from :mod:`o1pruner.io`, which re-exports it).
PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    # os.umask can only be read by setting it; set it back at once
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str) -> None:
    """fsync a folder so a rename inside it survives a power cut (a no-op
    where folders cannot be opened)."""
    try:
        dfd = os.open(folder or ".", os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def atomic_write(path: PathLike, data: Union[str, bytes, Callable[[Any], None]], *, mode: str = "w") -> None:
    """Replace `path` all at once: write a temporary file beside it, fsync it,
    then ``os.replace`` it over `path` (and fsync the folder).

    A crash at any moment leaves either the old file or the new one, never a
    mix. `data` is the text/bytes to write, or a function that writes into
    the open file object (opened with `mode`, "w" text or "wb" binary). The
    new file gets the permissions of a file created with ``open`` (0666 less
    the umask), not the private 0600 of a temporary file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, bytes):
        mode = "wb"
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)
