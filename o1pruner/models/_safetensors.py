"""Minimal reader and writer of the safetensors format (no dependency on the
``safetensors`` package): an 8-byte little-endian header length, a JSON
header mapping tensor names to dtype, shape and byte offsets (plus an
optional ``__metadata__`` dict of strings), then the raw little-endian data.
Files are written atomically: temporary file, fsync, os.replace.
"""

from __future__ import annotations

import json
import struct
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from .._atomic import atomic_write

__all__ = ["write_safetensors", "read_safetensors", "read_safetensors_header", "atomic_write_bytes",
           "to_bfloat16_bits"]

_TO_CODE = {
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
_FROM_CODE = {v: k for k, v in _TO_CODE.items()}
_MAX_HEADER = 100 << 20  # the reference implementation's limit


def _atomic_write(path: str, write) -> None:
    """Call write(file) on a temporary file next to `path`, fsync it and
    move it over `path`, so readers see the old file or the new one."""
    atomic_write(path, write, mode="wb")


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file, fsync, os.replace)."""
    _atomic_write(path, lambda f: f.write(data))


def to_bfloat16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even
    (NaN stays NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    return np.where(nan, np.uint16(0x7FC0), rounded)


def write_safetensors(path: str, tensors: Mapping[str, object],
                      metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write named arrays to `path` in the safetensors format, atomically.

    Tensors are stored in the order given, C-contiguous and little-endian. A
    value may also be a pair ``("BF16", uint16 array of bit patterns)`` (see
    :func:`to_bfloat16_bits`). `metadata` values must be strings (as the
    format requires).
    """
    header: Dict[str, object] = {}
    arrays = []
    offset = 0
    for name, arr in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"tensors: invalid tensor name {name!r}")
        if isinstance(arr, tuple) and len(arr) == 2 and arr[0] == "BF16":
            a = np.ascontiguousarray(arr[1], dtype="<u2")
            header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
            arrays.append(a)
            offset += a.nbytes
            continue
        a = np.asarray(arr)
        code = _TO_CODE.get(a.dtype.newbyteorder("="))
        if code is None:
            raise TypeError(f"tensors: dtype {a.dtype} of {name!r} is not supported")
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        arrays.append(a)
        offset += a.nbytes
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"metadata: keys and values must be strings (bad keys: {bad})")
        header["__metadata__"] = dict(metadata)
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned

    def write(f):
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for a in arrays:
            f.write(memoryview(a.reshape(-1)).cast("B"))

    _atomic_write(path, write)


def _read_header(f, path: str) -> Tuple[Dict[str, Tuple[str, Tuple[int, ...], int, int]], Dict[str, str], int]:
    """Parse the header from an open file: (name -> (dtype code, shape,
    start, end), metadata, header length). Nothing of the data is read."""
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", raw)
    if n > _MAX_HEADER:
        raise ValueError(f"{path}: safetensors header of {n} bytes is too large")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: invalid safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: invalid safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    entries = {}
    for name, info in header.items():
        try:
            code, shape, (start, end) = info["dtype"], tuple(int(s) for s in info["shape"]), info["data_offsets"]
            start, end = int(start), int(end)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: invalid header entry for {name!r}") from None
        if not isinstance(code, str) or any(s < 0 for s in shape):
            raise ValueError(f"{path}: invalid header entry for {name!r}")
        entries[name] = (code, shape, start, end)
    return entries, dict(metadata), n


def read_safetensors_header(path: str) -> Tuple[Dict[str, Tuple[str, Tuple[int, ...]]], Dict[str, str]]:
    """The header of a safetensors file without its data: (dict name ->
    (dtype code such as "F32" or "BOOL", shape), metadata dict). Lets a
    loader check names, shapes and dtypes before it allocates anything."""
    with open(path, "rb") as f:
        entries, metadata, _ = _read_header(f, path)
    return {k: (code, shape) for k, (code, shape, _, _) in entries.items()}, metadata


def read_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Read a safetensors file: (dict name -> array in native byte order,
    metadata dict). bfloat16 tensors are widened to float32."""
    with open(path, "rb") as f:
        entries, metadata, _ = _read_header(f, path)
        data = f.read()
    out: Dict[str, np.ndarray] = {}
    for name, (code, shape, start, end) in entries.items():
        count = int(np.prod(shape, dtype=np.int64))
        if code == "BF16":
            if end - start != 2 * count or not 0 <= start <= end <= len(data):
                raise ValueError(f"{path}: data offsets of {name!r} do not match its shape")
            u = np.frombuffer(data, dtype="<u2", count=count, offset=start).astype(np.uint32)
            out[name] = (u << 16).view(np.float32).reshape(shape)
            continue
        if code not in _FROM_CODE:
            raise ValueError(f"{path}: dtype {code} of {name!r} is not supported")
        dt = _FROM_CODE[code]
        le = dt.newbyteorder("<") if dt.itemsize > 1 else dt
        if end - start != count * dt.itemsize or not 0 <= start <= end <= len(data):
            raise ValueError(f"{path}: data offsets of {name!r} do not match its shape")
        out[name] = np.frombuffer(data, dtype=le, count=count, offset=start).astype(dt).reshape(shape)
    return out, metadata
