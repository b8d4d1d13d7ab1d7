"""Thread count for every kernel: ``NNLITE_NUM_THREADS`` (default: all cores) for Numba and BLAS alike.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` only when it is loaded, i.e. when NumPy is first imported. So
:func:`apply_env_before_numpy` (called by ``nnlite.ops`` before it imports NumPy) copies
``NNLITE_NUM_THREADS`` into ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` unless the
user set those. If NumPy was already imported, :func:`set_num_threads` calls the BLAS library's own
``*_set_num_threads`` through ctypes instead (NumPy's wheels bundle scipy-openblas). Numba's thread count
is set with ``numba.set_num_threads``. On AMD CPUs with AVX-512 it also sets ``OPENBLAS_CORETYPE=SkylakeX``
(unless set), because OpenBLAS 0.3.x may not recognise them (Zen 5) and would use its AVX2 kernels at half
the float32 matmul speed. Both variables only take effect if ``nnlite.ops`` is imported before NumPy.
This module must not import NumPy at import time.
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


def _cpu_flags() -> tuple[str, set[str]]:
    """(vendor, feature flags) of CPU 0 from /proc/cpuinfo; ("", set()) where that file does not exist."""
    vendor, flags = "", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id":
                    vendor = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return vendor, flags


def _openblas_coretype() -> str | None:
    """"SkylakeX" on AMD CPUs with AVX-512 (Zen 4/5), which OpenBLAS 0.3.x may not recognise (it then falls
    back to its AVX2 "Haswell" kernels, half the float32 matmul speed measured on Zen 5); None otherwise."""
    vendor, flags = _cpu_flags()
    if vendor == "AuthenticAMD" and {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd"} <= flags:
        return "SkylakeX"
    return None


def apply_env_before_numpy() -> None:
    """Before NumPy loads OpenBLAS (and Numba its OpenMP pool): thread counts and wait policies.

    * NNLITE_NUM_THREADS -> OPENBLAS/OMP/MKL_NUM_THREADS.
    * Idle worker threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE, OPENBLAS_THREAD_TIMEOUT=4):
      Numba kernels and BLAS calls alternate, and a spinning idle pool steals the cores the other pool
      needs. Measured on the shared 2-core machine under load, MobileNetV2 batch 1 at 2 threads took
      2340 ms with the spinning defaults and 37 ms with these (21 ms at 1 thread).
    * OPENBLAS_CORETYPE as :func:`_openblas_coretype` says.
    Variables the user set are left alone.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when Numba first starts its OpenMP pool
    if "numpy" in sys.modules:
        return  # OpenBLAS already read its variables; set_num_threads() still works through ctypes
    n = requested_threads()
    for name in _BLAS_ENV if n is not None else ():
        os.environ.setdefault(name, str(n))
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # 2**4 cycles of spinning, then sleep
    coretype = _openblas_coretype()
    if coretype and "OPENBLAS_CORETYPE" not in os.environ:
        os.environ["OPENBLAS_CORETYPE"] = coretype


def _blas_libraries() -> list[str]:
    """Paths of the BLAS libraries loaded in this process (Linux: /proc/self/maps; elsewhere none)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.rstrip().split("/")[-1].lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def _blas_functions(kind: str):
    """``*_{kind}_num_threads`` functions of the loaded OpenBLAS libraries."""
    found = []
    for path in _blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            name = f"{prefix}_{kind}_num_threads"
            fn = getattr(lib, name + "64_", None) or getattr(lib, name, None)
            if fn is not None:
                found.append(fn)
                break
    return found


def blas_core() -> str | None:
    """The kernel family OpenBLAS chose (e.g. "SkylakeX", "Haswell"), or None if no OpenBLAS is loaded."""
    for path in _blas_libraries():
        lib = ctypes.CDLL(path)
        fn = getattr(lib, "scipy_openblas_get_corename64_", None) or getattr(lib, "openblas_get_corename", None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            return fn().decode()
    return None


def blas_num_threads() -> int | None:
    """OpenBLAS's current thread count, or None if no OpenBLAS is loaded (e.g. NumPy built on MKL/Accelerate)."""
    getters = _blas_functions("get")
    if not getters:
        return None
    getters[0].argtypes, getters[0].restype = [], ctypes.c_int
    return int(getters[0]())


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in Numba kernels and in NumPy's BLAS from now on."""
    import numba
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    for setter in _blas_functions("set"):
        setter.argtypes, setter.restype = [ctypes.c_int], None
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
