"""Thread count for every kernel: ``NNLITE_NUM_THREADS`` (default: all cores this process may use).

nnlite's Numba kernels run on Numba's threads (``prange`` drivers, :mod:`nnlite.ops.parallel`); the BLAS
conv engine (CPUs without AVX-512) calls NumPy's matmul from nnlite's Python pool. NumPy's OpenBLAS is
switched to one thread either way (otherwise its pool fights nnlite's threads for the cores; see
parallel.py). This is process-wide: NumPy matmuls elsewhere in the program also run single-threaded after
``import nnlite.ops``.

* Numba's thread count is per Python thread. Before Numba loads, ``NUMBA_NUM_THREADS`` is exported as the
  requested count (unless set), so every thread, a web server's included, defaults to it;
  :func:`set_num_threads` changes the calling thread's count, up to that launch-time maximum.
* If NumPy is not imported yet, ``OPENBLAS_NUM_THREADS=1`` is exported first, so OpenBLAS starts no
  threads at all; otherwise OpenBLAS's ``*_set_num_threads`` is called through ctypes.
* On AMD CPUs with AVX-512, ``OPENBLAS_CORETYPE=SkylakeX`` is exported (unless set, and only before NumPy
  loads): OpenBLAS 0.3.x may not recognise Zen 5 and then uses its AVX2 kernels at half the float32 matmul
  speed (half the rate of its AVX-512 kernels on a ResNet50-sized product). Some environments pin
  ``OPENBLAS_CORETYPE`` themselves; that choice is respected.
* How idle threads wait is left to the threading layer: libgomp's threads spin for a while before they
  sleep, which keeps back-to-back regions fast. On a busy machine that spinning costs a thread its share
  of the CPU and each region then waits for the descheduled thread; :class:`nnlite.ops.parallel.BusyGuard`
  notices and runs regions on one thread for a while. Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) or
  a short spin (``GOMP_SPINCOUNT``) avoids the waits too, but paid a wake-up in every region that cost
  small layers what their second thread gained (benchmarks/RESULTS.md, "Busy machine"); both remain
  the user's choice, and :func:`wait_policy` reports it. ``NNLITE_BUSY_GUARD=0`` turns the guard off.
This module must not import NumPy at import time.
"""

from __future__ import annotations

import ctypes
import os
import sys

from ..errors import ConfigError
from ..limits import env_switch


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def requested_threads() -> int:
    """The integer in ``NNLITE_NUM_THREADS``, or all available cores when unset/empty."""
    raw = os.environ.get("NNLITE_NUM_THREADS", "").strip()
    if not raw:
        return available_cores()
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"NNLITE_NUM_THREADS: expected a positive integer, found {raw!r}") from None
    if n < 1:
        raise ConfigError(f"NNLITE_NUM_THREADS: expected a positive integer, found {raw!r}")
    return n


def _openblas_coretype() -> str | None:
    """"SkylakeX" on AMD CPUs with AVX-512 (Zen 4/5), which OpenBLAS may not recognise; None otherwise."""
    vendor, flags = "", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    vendor = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        return None
    if vendor == "AuthenticAMD" and {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd"} <= flags:
        return "SkylakeX"
    return None


def apply_env_before_numpy() -> None:
    """Before NumPy loads OpenBLAS: one BLAS thread, and the AVX-512 kernels where OpenBLAS would miss them."""
    if "numba" not in sys.modules and "NUMBA_NUM_THREADS" not in os.environ:
        try:  # Numba's thread count is per Python thread: this makes NNLITE_NUM_THREADS every thread's default
            os.environ["NUMBA_NUM_THREADS"] = str(requested_threads())
        except ConfigError:
            pass  # configure() reports the bad value
    if "numpy" in sys.modules:   # too late for the environment: OpenBLAS's own setter (the NumPy engine has no
        pin_blas()                 # configure(), which Numba's kernels get)
        return
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    coretype = _openblas_coretype()
    if coretype and "OPENBLAS_CORETYPE" not in os.environ:
        os.environ["OPENBLAS_CORETYPE"] = coretype


WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def wait_policy() -> str:
    """How idle OpenMP threads wait: "environment: NAME=VALUE" where the user set a policy, else
    "libgomp default" (spin, then sleep)."""
    chosen = [f"{name}={os.environ[name]}" for name in WAIT_VARIABLES if name in os.environ]
    return "environment: " + ", ".join(chosen) if chosen else "libgomp default"


def busy_guard_requested() -> bool:
    """``NNLITE_BUSY_GUARD``: "1" (default when unset or empty) or "0"."""
    return env_switch("NNLITE_BUSY_GUARD")


def _blas_libraries() -> list[str]:
    """Paths of the BLAS libraries loaded in this process (Linux: /proc/self/maps; elsewhere none)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.rstrip().split("/")[-1].lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def _openblas_function(name: str, restype, argtypes):
    """``name`` (scipy-openblas or plain OpenBLAS spelling) from the first loaded library that has it."""
    for path in _blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (f"scipy_{name}64_", f"scipy_{name}", f"{name}64_", name):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype, fn.argtypes = restype, argtypes
                return fn
    return None


def blas_num_threads() -> int | None:
    """OpenBLAS's thread count, or None if no OpenBLAS is loaded (e.g. NumPy built on MKL/Accelerate)."""
    fn = _openblas_function("openblas_get_num_threads", ctypes.c_int, [])
    return None if fn is None else int(fn())


def blas_core() -> str | None:
    """The kernel family OpenBLAS chose (e.g. "SkylakeX", "Haswell"), or None if no OpenBLAS is loaded."""
    fn = _openblas_function("openblas_get_corename", ctypes.c_char_p, [])
    return None if fn is None else fn().decode()


def pin_blas() -> None:
    """One OpenBLAS thread from now on, through its setter (where an OpenBLAS is loaded)."""
    fn = _openblas_function("openblas_set_num_threads", None, [ctypes.c_int])
    if fn is not None:
        fn(1)


def set_num_threads(n: int) -> None:
    """Run nnlite's kernels on ``n`` threads from now on: the Python pool, and Numba's kernels launched from
    this Python thread (at most ``NUMBA_NUM_THREADS``, fixed when Numba loaded). BLAS stays at one thread.
    A busy guard holding regions on one thread (:class:`nnlite.ops.parallel.BusyGuard`) lets go."""
    import numba

    from . import parallel
    n = max(1, int(n))
    parallel.set_threads(n)
    parallel.guard.restart()  # an explicit request: try the threads now, whatever the guard saw before
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # this Python thread's prange kernels
    pin_blas()


def get_num_threads() -> int:
    """The number of threads nnlite's kernels use (Numba's count for this Python thread)."""
    import numba

    from . import parallel
    return min(parallel.threads(), numba.get_num_threads())


def configure() -> None:
    """Apply NNLITE_NUM_THREADS (default: all cores) and NNLITE_BUSY_GUARD; :mod:`nnlite.ops.parallel` calls it
    as it loads, so before the first compiled kernel runs (a process on the NumPy engine never loads it)."""
    from . import parallel
    set_num_threads(requested_threads())
    parallel.guard.enabled = busy_guard_requested()
