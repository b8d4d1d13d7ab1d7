"""Which engine runs convolutions, depthwise convolutions and small dense layers: one choice per process.

- ``"simd"``: nnlite's own kernels on explicit 16-lane vectors (:mod:`nnlite.ops.gemm`,
  :mod:`nnlite.ops.depthwise_simd`, :mod:`nnlite.ops.gemv`, and the fused pairs built on them).
- ``"blas"``: im2col + NumPy's matmul (:mod:`nnlite.ops.conv`) and the plain Numba depthwise loops.

The default is "simd" where the CPU has AVX-512 (the 16-lane register tiles fit its 32 vector registers)
and Numba compiles for this CPU; else "blas". ``NNLITE_GEMM=simd|blas`` overrides it; :func:`use` changes
it for a block of code (tests and benchmarks compare the two). Both give results equal to float32 rounding.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import ConfigError

ENGINES = ("simd", "blas")


def cpu_has_avx512() -> bool:
    """True when /proc/cpuinfo lists avx512f (False where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return "avx512f" in line.split()
    except OSError:
        pass
    return False


def numba_targets_host() -> bool:
    """False when Numba was told to compile for another CPU (``NUMBA_CPU_NAME``, e.g. "generic" for a cache
    shared between machines) without AVX-512 in ``NUMBA_CPU_FEATURES``: the 16-lane tiles would then be
    split into narrower registers and spill."""
    name = os.environ.get("NUMBA_CPU_NAME", "").strip()
    return name in ("", "host") or "+avx512f" in os.environ.get("NUMBA_CPU_FEATURES", "")


def choose() -> str:
    """The engine this process should use: ``NNLITE_GEMM`` if set, else what the CPU supports."""
    raw = os.environ.get("NNLITE_GEMM", "").strip().lower()
    if raw in ENGINES:
        return raw
    if raw:
        raise ConfigError(f"NNLITE_GEMM: expected 'simd' or 'blas', found {raw!r}")
    return "simd" if cpu_has_avx512() and numba_targets_host() else "blas"


_current: str | None = None


def current() -> str:
    """The engine in use ("simd" or "blas"), chosen on first use."""
    global _current
    if _current is None:
        _current = choose()
    return _current


def simd() -> bool:
    """True when the "simd" engine is in use (the kernels' hot-path test)."""
    return (_current or current()) == "simd"


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Run a block with engine ``name``, then restore the previous one."""
    global _current
    if name not in ENGINES:
        raise ConfigError(f"unknown conv engine {name!r}; expected one of {', '.join(ENGINES)}")
    previous, _current = current(), name
    try:
        yield
    finally:
        _current = previous
