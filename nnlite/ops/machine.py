"""What the kernels need to know about this machine, read once: cache sizes, vector width, cores.

Blocking sizes are derived from the caches instead of being constants tuned on one CPU: a band of rows that
a fused kernel keeps between its two halves must fit in the L2 of the core that computes it, with room for
the kernel weights and the input rows streaming past. The ratios below were chosen where the kernels were
first measured (a 1 MiB L2) and scale with the cache the machine reports; ``NNLITE_L2_BYTES`` and
``NNLITE_L3_BYTES`` override what Linux reports (e.g. inside a VM that hides its caches).
:func:`describe` reports the choices (benchmarks/RESULTS.md records them per machine).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

from ..limits import env_number

DEFAULT_L2 = 1 << 20   # when the OS says nothing: a common L2 size per core
DEFAULT_L3 = 32 << 20


class Caches(NamedTuple):
    l1d: int   # bytes, per core
    l2: int    # bytes, per core
    l3: int    # bytes, shared (0 when there is none)


class Blocking(NamedTuple):
    """Sizes the kernels block their work by (bytes)."""
    convpool_band: int      # conv rows computed before they are max-pooled (nnlite.ops.convpool)
    separable_band: int     # depthwise rows computed before the 1x1 conv reads them (nnlite.ops.separable)
    fuse_max_weights: int   # largest 1x1 kernel worth fusing after a depthwise (re-read once per band)
    im2col_chunk: int       # im2col columns per chunk of the "blas" engine (nnlite.ops.conv)
    panel_split_input: int  # largest conv input (bytes) each thread re-reads per channel panel (nnlite.ops.gemm)
    row_block_input: int    # conv input rows (bytes) a thread takes through every channel panel at once (gemm)


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG") or 0) * scale


def _env_bytes(name: str) -> int | None:
    return env_number(name, None, _size)


@functools.lru_cache(maxsize=1)
def caches(root: str = "/sys/devices/system/cpu/cpu0/cache") -> Caches:
    """Data cache sizes of CPU 0 as Linux reports them (sysfs); defaults where it reports nothing."""
    found = {}
    for index in sorted(Path(root).glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = _size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified"):
            found[level] = size
    return Caches(found.get(1, 32 << 10), _env_bytes("NNLITE_L2_BYTES") or found.get(2, DEFAULT_L2),
                  _env_bytes("NNLITE_L3_BYTES") or found.get(3, DEFAULT_L3))


@functools.lru_cache(maxsize=1)
def blocking() -> Blocking:
    """Blocking sizes from :func:`caches`: a quarter of L2 for a conv band (the rest holds the packed
    kernel panel and the input rows), 3/16 for a depthwise band (its 1x1 kernel also streams through L2),
    an eighth for the 1x1 kernels worth fusing, an eighth of L3 (at least 1 MiB) for im2col chunks, a
    quarter of L2 for a conv input that threads splitting the output channels each read once per panel, and
    a quarter for a block of conv input rows that every channel panel reads in turn (and for the packed
    kernel those panels make up)."""
    c = caches()
    return Blocking(convpool_band=c.l2 // 4, separable_band=c.l2 * 3 // 16, fuse_max_weights=c.l2 // 8,
                    im2col_chunk=max(1 << 20, c.l3 // 8), panel_split_input=c.l2 // 4,
                    row_block_input=c.l2 // 4)


def llvm_cpu_name() -> str:
    """The CPU name Numba's LLVM compiles for (e.g. "znver4", "sapphirerapids")."""
    import llvmlite.binding as llvm
    return llvm.get_host_cpu_name()


def cpu_model() -> str:
    """The model name /proc/cpuinfo gives, with its family and model numbers (a VM may name only the brand:
    "AMD EPYC" is a Zen 4 as family 25 and a Zen 5 as family 26)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if not key.strip():
                    break  # the first processor's block ends
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name", "unknown")
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def cpu_flags(wanted=("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")) -> list[str]:
    from .engine import cpu_flags as every_flag
    flags = every_flag()
    return [f for f in wanted if f in flags]


def describe() -> dict:
    """This machine and the choices the kernels made on it, for benchmark reports."""
    from . import engine, gemm, gemv, panels, parallel, prepack, tiles, winograd
    c, b = caches(), blocking()
    wino = (f"from {winograd.MIN_TILES} tiles and {winograd.MIN_CHANNELS} channels, blocks of up to "
            f"{winograd.block_tiles(64, 64, 1 << 20, 1)} tiles at 64 -> 64 channels" if winograd.enabled()
            else "off (NNLITE_WINOGRAD=0)")
    shapes = (f"{tiles.MR}x16 on each half of a {tiles.NR}-channel panel" if panels.HALVES
              else f"{tiles.MR}x{tiles.NR} and {2 * tiles.MR}x16")
    fixed = (f"register tiles {shapes} (16-lane vectors), kernels read in place "
             f"up to {gemm.DIRECT_MAX_ROWS} output rows, matrix-vector product up to {gemv.GEMV_MAX_ROWS} rows, "
             f"threads from {parallel.MIN_WORK} values of work, kernels packed once: "
             f"{'yes' if prepack.enabled() else 'no (NNLITE_PREPACK=0)'}; 3x3 stride-1 convolutions by Winograd "
             f"F(2x2, 3x3) {wino}")
    return {"cpu": cpu_model(), "llvm_cpu": llvm_cpu_name(), "flags": cpu_flags(), "engine": engine.current(),
            "caches": {"l1d": c.l1d, "l2": c.l2, "l3": c.l3}, "blocking": b._asdict(), "tiles": fixed}
