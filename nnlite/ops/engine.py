"""Which engine runs convolutions, depthwise convolutions and small dense layers: one choice per process.

- ``"simd"``: nnlite's own kernels on explicit 16-lane vectors (:mod:`nnlite.ops.gemm`,
  :mod:`nnlite.ops.depthwise_simd`, :mod:`nnlite.ops.gemv`, and the fused pairs built on them).
- ``"blas"``: im2col + NumPy's matmul (:mod:`nnlite.ops.conv`) and the plain Numba depthwise loops.
- ``"numpy"``: every layer a model declares in NumPy alone (:mod:`nnlite.ops.numpy_engine`), nothing compiled and
  Numba never imported: for a process that runs a model once (the command line's one-image commands choose it,
  :mod:`nnlite.cli`); slower per call. Layers without a NumPy form, and kernels called directly, run as on "blas".

The default is "simd" where the CPU has AVX-512, or AVX2 with FMA, and Numba compiles for this CPU (the
register tiles are sized by the register file: :func:`vector_registers`); else "blas". ``NNLITE_GEMM=simd|blas|numpy``
overrides it; :func:`use` changes it for a block of code (tests and benchmarks compare them). All give results
equal to float32 rounding.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

from ..errors import ConfigError

ENGINES = ("simd", "blas", "numpy")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The first CPU's flags in /proc/cpuinfo (empty where there is no such file), read once."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def numba_compiles_for(*features: str) -> bool:
    """True unless Numba was told to compile for another CPU (``NUMBA_CPU_NAME``, e.g. "generic" for a cache
    shared between machines) without all of ``features`` in ``NUMBA_CPU_FEATURES``: the vectors would then be
    split into narrower registers than the tiles were sized for, and spill."""
    name = os.environ.get("NUMBA_CPU_NAME", "").strip()
    given = os.environ.get("NUMBA_CPU_FEATURES", "")
    return name in ("", "host") or all(f"+{feature}" in given for feature in features)


def vector_registers() -> int:
    """How many 16-lane float32 vectors the register file holds as Numba compiles here: 32 with AVX-512, 8 with
    AVX2 and FMA (16 registers of 8 lanes), else 0. The register tiles are sized by it (:data:`tiles.MR`)."""
    flags = cpu_flags()
    if "avx512f" in flags and numba_compiles_for("avx512f"):
        return 32
    if {"avx2", "fma"} <= flags and numba_compiles_for("avx2", "fma"):
        return 8
    return 0


def wide_registers() -> bool:
    """True when the register file holds 32 vectors of 16 lanes (AVX-512): the large register tiles."""
    return vector_registers() >= 32


def choose() -> str:
    """The engine this process should use: ``NNLITE_GEMM`` if set, else what the CPU supports."""
    raw = os.environ.get("NNLITE_GEMM", "").strip().lower()
    if raw in ENGINES:
        return raw
    if raw:
        raise ConfigError(f"NNLITE_GEMM: expected 'simd', 'blas' or 'numpy', found {raw!r}")
    return "simd" if vector_registers() else "blas"


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


def numpy() -> bool:
    """True when the "numpy" engine is in use: models run their declared layers in NumPy alone."""
    return (_current or current()) == "numpy"


def select(name: str) -> bool:
    """Make ``name`` this process's engine if none was chosen yet (nothing has run); True if it now is."""
    global _current
    if name not in ENGINES:
        raise ConfigError(f"unknown conv engine {name!r}; expected one of {', '.join(ENGINES)}")
    if _current is None:
        _current = name
    return _current == name


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
