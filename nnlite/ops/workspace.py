"""Reusable scratch buffers, so hot kernels do not allocate (and page-fault in) big temporaries per call.

Buffers are per thread (two Python threads running models at once never share one) and only grow.
A buffer's content is garbage between calls: callers must fully overwrite what they use, and must never
return a view of it.
"""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous float32 array of ``shape`` backed by this thread's buffer ``name``."""
    size = 1
    for dim in shape:
        size *= int(dim)
    pool = _local.__dict__.setdefault("pool", {})
    buf = pool.get(name)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), np.float32)
        pool[name] = buf
    return buf[:size].reshape(shape)


def release() -> None:
    """Free this thread's scratch buffers (e.g. after running a very large model once)."""
    _local.__dict__.pop("pool", None)
