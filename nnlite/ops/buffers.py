"""Large outputs from buffers kept across calls, so their pages stay in the process.

glibc serves every allocation of 32 MiB or more (:data:`nnlite.ops.memory.MMAP_THRESHOLD`, the most it allows)
with fresh pages from the kernel and returns them when the array dies. A large map (batch 8, or a 1024-px image)
is then faulted in and zeroed on every call, and on a virtual machine whose freed memory the host takes back
that costs far more than the layer: on its first call after another model ran, Xception at batch 8 spent
ten times its layer's compute in the system faulting in one 88 MB output (benchmarks/RESULTS.md, round 15).
onnxruntime keeps such memory in its arena; :func:`empty` does the same for nnlite's kernels.

:func:`empty` is ``np.empty(shape, np.float32)``; for :data:`LARGE` bytes or more it hands out a kept buffer
of exactly that shape that nothing else references any more (its reference count is that of a kept buffer
nothing else holds, measured once at import by the same code: :func:`_refs`), else makes one and keeps it.
An array still held anywhere, by the caller, a view of it or a container, is never handed out again. The
buffers kept total at most ``NNLITE_BUFFER_POOL_MB`` megabytes (default 256; 0 turns the pool off); past that
the least recently used are forgotten. :func:`release` forgets them all (their memory goes back once nothing
else holds them). An interpreter that counts references otherwise is caught by the same measurement: where
one more holder does not raise the count, there is no pool.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

from .memory import MMAP_THRESHOLD

LARGE = MMAP_THRESHOLD  # bytes: smaller arrays come from glibc's heap, which keeps freed memory itself
_kept: list[np.ndarray] = []  # least recently handed out first
_lock = threading.Lock()


def _refs(i: int) -> int:
    """sys.getrefcount of kept buffer i, as the checks below see it."""
    buf = _kept[i]
    return sys.getrefcount(buf)


def _free_count() -> int:
    """:func:`_refs` of a buffer nothing else holds, or 0 (no pool) where one more holder would not show."""
    _kept.append(np.empty(1, np.float32))
    free = _refs(0)
    held = _kept[0]
    seen = _refs(0)
    del held
    _kept.clear()
    return free if seen == free + 1 else 0


_FREE = _free_count()


def capacity() -> int:
    """Bytes the pool may keep (``NNLITE_BUFFER_POOL_MB``, default 256; 0: no pool)."""
    value = os.environ.get("NNLITE_BUFFER_POOL_MB", "256")
    try:
        return max(0, int(value)) << 20
    except ValueError:
        return 256 << 20


def empty(shape: tuple[int, ...]) -> np.ndarray:
    """``np.empty(shape, np.float32)``, from a kept buffer when it is :data:`LARGE` or larger (see above)."""
    nbytes = 4 * math.prod(shape)
    if nbytes < LARGE:
        return np.empty(shape, np.float32)
    limit = capacity()
    if nbytes > limit or not _FREE:
        return np.empty(shape, np.float32)
    shape = tuple(shape)
    with _lock:
        for i in range(len(_kept)):
            if _kept[i].shape == shape and _refs(i) == _FREE:
                buf = _kept.pop(i)
                _kept.append(buf)
                return buf
        buf = np.empty(shape, np.float32)
        _kept.append(buf)
        _trim(limit)
        return buf


def _trim(limit: int) -> None:
    """Forget the least recently handed out buffers, free ones first, until the kept ones fit in ``limit``."""
    total = sum(b.nbytes for b in _kept)
    for busy_too in (False, True):
        i = 0
        while total > limit and i < len(_kept) - 1:  # the newest (just handed out) stays
            if busy_too or _refs(i) == _FREE:
                total -= _kept.pop(i).nbytes
            else:
                i += 1


def kept_bytes() -> int:
    """Bytes the pool holds now (free or in use)."""
    with _lock:
        return sum(b.nbytes for b in _kept)


def release() -> None:
    """Forget every kept buffer: their memory goes back to the system once nothing else holds them."""
    with _lock:
        _kept.clear()
