"""Limits that keep a small or damaged file from asking for unbounded memory or time.

Most limits come from the file itself: a tensor whose bytes are stored in the file may not be larger than
those bytes, a zip member may not inflate past its declared size, a pickle's memo index may not exceed its
opcode count. Where a format lets a few bytes stand for many (a TensorFlow constant "splat" that fills a
shape from one value, a compressed zip member, a PyTorch tensor with stride 0), the bytes produced beyond
the bytes stored are capped by :func:`max_expand_bytes`:

* ``NNLITE_MAX_EXPAND_BYTES`` (environment, bytes; default 4 GiB): the largest array a loader builds
  from fewer stored bytes (splats and fills, decompressed zip members, overlapping strides).
* ``NNLITE_HDF5_TIMEOUT`` (environment, seconds; default 10): how long reading an HDF5 file's structure
  may take before the file is reported as damaged (a damaged file can make the HDF5 library loop).

Fixed structural limits (no legitimate model comes near them): protobuf nesting depth
(:data:`MAX_PROTOBUF_DEPTH`) and function-inlining depth (:data:`MAX_INLINE_DEPTH`).
"""

from __future__ import annotations

import os

from .errors import ConfigError

GiB = 1 << 30
DEFAULT_MAX_EXPAND_BYTES = 4 * GiB
DEFAULT_HDF5_TIMEOUT = 10.0

MAX_PROTOBUF_DEPTH = 100   # protobuf's own default recursion limit
MAX_INLINE_DEPTH = 64      # nested function calls inlined into one graph
MAX_RANK = 32              # TensorFlow's own limit on tensor rank (NumPy allows 64)


def env_switch(name: str) -> bool:
    """An on/off environment variable: "1" (also unset or blank, the default) or "0"; ConfigError otherwise."""
    raw = os.environ.get(name, "").strip()
    if raw not in ("", "0", "1"):
        raise ConfigError(f"{name}: expected 0 or 1, found {raw!r}")
    return raw != "0"


def env_number(name: str, default, kind=float):
    """A positive number from environment variable ``name`` (``default`` when unset or blank), read with
    ``kind`` (float, int, or a parser such as a size reader); ConfigError names the variable otherwise."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not a valid number or size") from None
    if value <= 0:
        raise ConfigError(f"environment variable {name}={text!r} must be positive")
    return value


def max_expand_bytes() -> int:
    """The cap on bytes produced beyond those stored (``NNLITE_MAX_EXPAND_BYTES``, default 4 GiB)."""
    return int(env_number("NNLITE_MAX_EXPAND_BYTES", DEFAULT_MAX_EXPAND_BYTES, int))


def hdf5_timeout() -> float:
    """Seconds an HDF5 structure read may take (``NNLITE_HDF5_TIMEOUT``, default 10)."""
    return env_number("NNLITE_HDF5_TIMEOUT", DEFAULT_HDF5_TIMEOUT)


def check_expand(nbytes: int, stored: int, error, what: str) -> None:
    """Raise ``error(...)`` when an array of ``nbytes`` built from ``stored`` bytes breaks the expand cap."""
    cap = max_expand_bytes()
    if nbytes > stored and nbytes > cap:
        raise error(f"{what}: {nbytes:,} bytes from {stored:,} stored bytes exceeds the limit of {cap:,} "
                    f"bytes (set NNLITE_MAX_EXPAND_BYTES to raise it)")
