"""Allocator tuning: keep freed activation memory in the process instead of returning it to the OS.

Every layer allocates its output (megabytes at batch 8) and frees its inputs. glibc's malloc serves such
blocks with fresh ``mmap`` pages, or trims them off the heap top when freed, so the next layer's output is
page-faulted in again: FaceLandmark68Net at batch 8 spent 40 % of its time there (measured with 1 thread;
neutral on other models). :func:`tune_malloc` raises glibc's mmap threshold to 32 MiB and
its trim threshold to 128 MiB, so freed blocks are reused. The price: up to 128 MiB freed memory stays
in the process (counted in RSS) until it is reused. Applied on the first kernel call (:func:`tune_once`,
from :func:`nnlite.ops.parallel.run`), not at import: weight loading's large transients then still go
back to the OS (tuning before loading cost ResNet50 +50 MB peak RSS, measured). Not done when the user set
any ``MALLOC_*_`` variable or ``NNLITE_MALLOC_TUNING=0``, nor off glibc (musl, macOS, Windows): results
never depend on it.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # mallopt parameter numbers from glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20


_done = [False]


def tune_once() -> None:
    """:func:`tune_malloc` the first time it is called in this process."""
    if not _done[0]:
        _done[0] = True
        tune_malloc()


def tune_malloc() -> bool:
    """Apply the thresholds above; True when glibc accepted them."""
    if os.environ.get("NNLITE_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return False   # the user tunes malloc themselves
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
