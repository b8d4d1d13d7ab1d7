"""Thread count for every kernel: ``NNLITE_NUM_THREADS`` (default: all cores) for Numba and BLAS alike.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` only when it is loaded, i.e. when NumPy is first imported. So
:func:`apply_env_before_numpy` (called by ``nnlite.ops`` before it imports NumPy) copies
``NNLITE_NUM_THREADS`` into ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` unless the
user set those. If NumPy was already imported, :func:`set_num_threads` calls the BLAS library's own
``*_set_num_threads`` through ctypes instead (NumPy's wheels bundle scipy-openblas). Numba's thread count
is set with ``numba.set_num_threads``. This module must not import NumPy at import time.
"""

from __future__ import annotations

import ctypes
import os
import sys

from ..errors import ModelError

_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def requested_threads() -> int | None:
    """The integer in ``NNLITE_NUM_THREADS``, or None when unset/empty."""
    raw = os.environ.get("NNLITE_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        raise ModelError(f"NNLITE_NUM_THREADS: expected a positive integer, found {raw!r}") from None
    if n < 1:
        raise ModelError(f"NNLITE_NUM_THREADS: expected a positive integer, found {raw!r}")
    return n


def apply_env_before_numpy() -> None:
    """Copy NNLITE_NUM_THREADS into the BLAS env variables, if NumPy is not loaded yet and they are unset."""
    n = requested_threads()
    if n is None or "numpy" in sys.modules:
        return
    for name in _BLAS_ENV:
        os.environ.setdefault(name, str(n))


def _blas_setters():
    """``*_set_num_threads`` functions of the BLAS libraries loaded in this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if line.rstrip().split("/")[-1].lower().count("blas")}
    except OSError:
        return []
    setters = []
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                    "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], None
                setters.append(fn)
                break
    return setters


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in Numba kernels and in NumPy's BLAS from now on."""
    import numba
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    for setter in _blas_setters():
        setter(n)


def get_num_threads() -> int:
    """Numba's current thread count (the one nnlite's parallel kernels use)."""
    import numba
    return numba.get_num_threads()


def configure() -> None:
    """Apply NNLITE_NUM_THREADS (if set) now that NumPy and Numba are importable."""
    n = requested_threads()
    if n is not None:
        set_num_threads(n)
