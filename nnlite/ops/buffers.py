"""Large outputs from buffers kept across calls, so their pages stay in the process.

glibc serves every allocation of 32 MiB or more (:data:`nnlite.ops.memory.MMAP_THRESHOLD`, the most it allows)
with fresh pages from the kernel and returns them when the array dies. A large map (batch 8, or a 1024-px image)
is then faulted in and zeroed on every call, and on a virtual machine whose freed memory the host takes back
that costs far more than the layer: on its first call after another model ran, Xception at batch 8 spent
ten times its layer's compute in the system faulting in one 88 MB output (benchmarks/RESULTS.md, round 15).
onnxruntime keeps such memory in its arena; :func:`empty` does the same for nnlite's kernels.

:func:`empty` is ``np.empty(shape, np.float32)`` (some start on a cache line, below); for :data:`LARGE` bytes or
more it hands out a kept buffer of exactly that shape that nothing else references any more (its reference
counts are those of a kept buffer nothing else holds, measured once at import by the same code:
:func:`_refs`), else makes one and keeps it.
An array still held anywhere, by the caller, a view of it or a container, is never handed out again. The
buffers kept total at most ``NNLITE_BUFFER_POOL_MB`` megabytes (default 256; 0 turns the pool off); past that
the least recently used are forgotten. :func:`release` forgets them all (their memory goes back once nothing
else holds them). An interpreter that counts references otherwise is caught by the same measurement: where
one more holder does not raise the count, there is no pool.

Maps whose pixels lie a multiple of 1 KiB apart (a last dimension of :data:`ALIGN_CHANNELS` floats or a
multiple of it), and every array of :data:`LARGE` bytes or more, start on a cache line (:func:`aligned`).
NumPy aligns its allocations to 16 bytes only, and the kernels load and store 16 floats (64 bytes) at a time,
so every vector of such a map straddled two lines, and those split accesses fall into the few L1 sets its
pixels share: a 3x3 depthwise layer on 16x16x1024 took twice as long (benchmarks/RESULTS.md, round 19).
Other channel counts gain less than the microsecond an aligned array costs, which small models at two threads
pay once per layer. An aligned array is a view of one a line longer; a view of it has that longer array as its
base, so the pool checks both.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading

import numpy as np

from .memory import MMAP_THRESHOLD

LARGE = MMAP_THRESHOLD  # bytes: smaller arrays come from glibc's heap, which keeps freed memory itself
LINE = 64  # bytes: a cache line, one 16-float vector
ALIGN_CHANNELS = 256  # floats: maps with a multiple of this many channels start on a line (see above)
_kept: list[np.ndarray] = []  # least recently handed out first
_lock = threading.Lock()


def aligned(shape: tuple[int, ...]) -> np.ndarray:
    """``np.empty(shape, np.float32)`` starting on a cache line: a view of an array one line longer."""
    raw = np.empty(math.prod(shape) + LINE // 4, np.float32)
    start = ctypes.addressof(ctypes.c_char.from_buffer(raw))  # a quarter of what raw.ctypes.data costs
    return np.ndarray(shape, np.float32, raw, -start % LINE)


def _refs(i: int) -> tuple[int, int]:
    """sys.getrefcount of kept buffer i and of the array it views, as the checks below see them."""
    buf = _kept[i]
    return sys.getrefcount(buf), sys.getrefcount(buf.base)


def _free_count() -> tuple[int, int] | None:
    """:func:`_refs` of a buffer nothing else holds, or None (no pool) where one more holder of the buffer, or
    of a view of it, would not show."""
    _kept.append(aligned((1,)))
    free = _refs(0)
    held = _kept[0]
    seen = _refs(0)
    del held
    view = _kept[0][:]
    seen_view = _refs(0)
    del view
    _kept.clear()
    ok = seen == (free[0] + 1, free[1]) and seen_view[1] == free[1] + 1
    return free if ok else None


_FREE = _free_count()


def capacity() -> int:
    """Bytes the pool may keep (``NNLITE_BUFFER_POOL_MB``, default 256; 0: no pool)."""
    value = os.environ.get("NNLITE_BUFFER_POOL_MB", "256")
    try:
        return max(0, int(value)) << 20
    except ValueError:
        return 256 << 20


def empty(shape: tuple[int, ...]) -> np.ndarray:
    """``np.empty(shape, np.float32)``, from a kept buffer when it is :data:`LARGE` or larger, starting on a
    cache line where it is that large or its pixels lie a multiple of 1 KiB apart (see above)."""
    shape = tuple(shape)
    nbytes = 4 * math.prod(shape)
    if nbytes < LARGE:
        return aligned(shape) if shape and shape[-1] % ALIGN_CHANNELS == 0 else np.empty(shape, np.float32)
    limit = capacity()
    if nbytes > limit or _FREE is None:
        return aligned(shape)
    with _lock:
        for i in range(len(_kept)):
            if _kept[i].shape == shape and _refs(i) == _FREE:
                buf = _kept.pop(i)
                _kept.append(buf)
                return buf
        buf = aligned(shape)
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
