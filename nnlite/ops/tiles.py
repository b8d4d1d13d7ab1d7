"""What the register-tile kernels share: tile sizes, kernel packing, the epilogue, padded copies.

Used by the GEMM (:mod:`nnlite.ops.gemm`), the fused conv -> max pool (:mod:`nnlite.ops.convpool`) and
depthwise -> 1x1 (:mod:`nnlite.ops.separable`) kernels, the matrix-vector product (:mod:`nnlite.ops.gemv`)
and the SIMD depthwise (:mod:`nnlite.ops.depthwise_simd`). The register tiles themselves are in
:mod:`nnlite.ops.microkernels` and :mod:`nnlite.ops.depthwise_tiles3` (5, 7) (generated).

Activation codes are those of :mod:`nnlite.ops.activations`: the register epilogue :func:`finish` applies
the cheap ones (relu, relu6, leaky relu) before the store; sigmoid and swish (which need exp) run afterwards
over the stored block (:func:`act_block`).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import types

from . import bound, engine
from .activations import LAST_REGISTER_CODE, LEAKY_RELU, RELU, RELU6, act, act_sum_into, act_sum_kept
from .jit import helper, kernel
from .simd import vadd, vload, vload_n, vmul, vselect_ge, vselect_gt, vsplat, vstore, vstore_n, vzero

# A literal 0 passed from one Numba kernel to another makes Numba compile a separate copy of the callee for the
# literal (Literal[int](0)); kernels pass ZERO instead, a plain int64, so each kernel is compiled once.
ZERO = np.int64(0)
# Output rows per register tile. AVX-512 has 32 registers, each a 16-lane vector: 8 rows x 32 channels
# (gemm_tile_8x32; gemm_tile_16x16 takes 2*MR) keep 16 of them, the rest hold a step's weights and inputs. AVX2's 16
# registers hold 8 such vectors (each split in two): 6 rows x 16 channels (gemm_tile_6x16, each half of a panel in
# turn) keep 6, with 2 registers for the weights and one for an input; per step of K, 8 loads feed 12 fused
# multiply-adds, against 6 for 8 with 2 rows x 32 (benchmarks/RESULTS.md, round 21).
MR = 8 if engine.wide_registers() else 6
NR = 32  # output channels per packed panel (two 16-lane vectors)


@helper
def pack_panel(b, k, n, col0, width, pk):
    """pk[kk*32 : kk*32+32] = b[kk, col0 : col0+width] for kk < k (b flat (k*n,)), zeros past width."""
    for kk in range(k):
        src, dst = kk * n + col0, kk * NR
        if width >= NR:
            vstore(pk, dst, vload(b, src))
            vstore(pk, dst + 16, vload(b, src + 16))
        elif width > 16:
            vstore(pk, dst, vload(b, src))
            vstore(pk, dst + 16, vload_n(b, src + 16, width - 16))
        else:
            vstore(pk, dst, vload_n(b, src, width))
            vstore(pk, dst + 16, vzero())


@helper
def pack_all_at(pack_at, b, k, n, packed):
    """Every panel of b flat (k*n,) into packed (panels*k*32,), panel p at p*k*32, by :func:`pack_panel` called
    at address ``pack_at`` (:func:`pack_address`): a kernel that packs through this links no copy of the
    packing loop in (one copy was 700 LLVM instructions)."""
    for p in range((n + NR - 1) // NR):
        bound.call(pack_at, "pack_panel", (b, k, n, p * NR, min(NR, n - p * NR), packed[p * k * NR:(p + 1) * k * NR]))


def pack_address() -> int:
    """Where kernels call :func:`pack_panel` (as "pack_panel", :mod:`nnlite.ops.bound`)."""
    return bound.address("pack_panel")


@helper
def finish(v, bias, code, alpha):
    """bias + activation on one vector of sums (relu, relu6, leaky relu; other codes are applied after the
    store by :func:`act_block`)."""
    v = vadd(v, bias)
    zero = vzero()
    if code == RELU:
        return vselect_gt(v, zero, v, zero)
    if code == RELU6:
        six = vsplat(np.float32(6))
        v = vselect_gt(v, zero, v, zero)
        return vselect_gt(v, six, six, v)
    if code == LEAKY_RELU:
        return vselect_ge(v, zero, v, vmul(v, vsplat(alpha)))
    return v


@helper
def store_row(y, off, v0, v1, width):
    """y[off : off+width] = the first ``width`` lanes of v0 then v1 (width <= 32)."""
    if width >= NR:
        vstore(y, off, v0)
        vstore(y, off + 16, v1)
    elif width > 16:
        vstore(y, off, v0)
        vstore_n(y, off + 16, v1, width - 16)
    else:
        vstore_n(y, off, v0, width)


@kernel
def act_block(y, n, r0, r1, c0, c1, code, alpha):
    """Activation ``code`` in place on rows [r0, r1) x columns [c0, c1) of y flat (rows*n,)."""
    for r in range(r0, r1):
        for j in range(r * n + c0, r * n + c1):
            y[j] = act(y[j], code, alpha)


bound.declare("act_block", act_block, (types.float32[::1], *[types.int64] * 6, types.float32))


def act_address(code: int) -> int:
    """Where kernels call :func:`act_block` for activation ``code`` (sigmoid, swish: applied after the store,
    by address, :mod:`nnlite.ops.bound`), or 0 for the codes the tiles apply in registers: a model without
    sigmoid or swish then never compiles it (nor links it into every kernel, half a second of a first run)."""
    return bound.address("act_block") if code > LAST_REGISTER_CODE else 0


@helper
def sum_rows_at(sum_at, y, acc, total, n, r0, r1, c0, c1, code, alpha):
    """y = act(acc + y) on rows [r0, r1) x columns [c0, c1) of y and acc flat (rows*n,), by the run sum at
    address ``sum_at`` (:func:`sum_address`: :func:`sum_run` or its kept twin): a residual add run on a block
    of a kernel's output while it is in cache, in :func:`nnlite.ops.add`'s order (the same bits). Called, not
    linked in: a kernel carries no copy of the sum's loops."""
    if c0 == 0 and c1 == n:  # whole rows: one run
        bound.call(sum_at, "sum_run", (y, acc, total, r0 * n, r1 * n, code, alpha))
    else:
        for r in range(r0, r1):
            bound.call(sum_at, "sum_run", (y, acc, total, r * n + c0, r * n + c1, code, alpha))


@helper
def sum_run(y, acc, total, start, end, code, alpha):
    """y = act(acc + y) on the flat run [start, end) of y and acc, 4096 values at a time: still in L1 for the
    activation. ``total`` (empty here) is :func:`sum_run_kept`'s: the two take the same arguments."""
    for s0 in range(start, end, 4096):
        s1 = min(end, s0 + 4096)
        # sliced: range() indices need no wraparound test, so the loops vectorise
        act_sum_into(y[s0:s1], acc[s0:s1], code, alpha)  # the sum and its activation in one loop


@helper
def sum_run_kept(y, acc, total, start, end, code, alpha):
    """:func:`sum_run` that first stores the sum in ``total`` (flat, as y): a sum the model reads again."""
    for s0 in range(start, end, 4096):
        s1 = min(end, s0 + 4096)
        block = y[s0:s1]
        act_sum_kept(block, total[s0:s1], acc[s0:s1], block, code, alpha)


def sum_address(keep: bool) -> int:
    """Where kernels call the residual sum of a flat run of their output, by address (:mod:`nnlite.ops.bound`;
    call it as "sum_run", or through :func:`sum_rows_at`: the kept twin takes the same arguments). Only the
    variant a model uses is compiled: the kept sum (:func:`act_sum_kept`) was a fifth of a second of a first
    run that never kept one."""
    return bound.address("sum_run" + ("_kept" if keep else ""))


bound.declare("pack_panel", pack_panel, (types.float32[::1], *[types.int64] * 4, types.float32[::1]))
_SUM = (types.float32[::1],) * 3  # y, acc, total
for _name, _fn in (("sum_run", sum_run), ("sum_run_kept", sum_run_kept)):
    bound.declare(_name, _fn, (*_SUM, *[types.int64] * 3, types.float32))


@helper
def copy_run(src, s, dst, d, count):
    """dst[d : d+count] = src[s : s+count] (flat float32 arrays), 16 lanes at a time."""
    t = 0
    while t + 16 <= count:
        vstore(dst, d + t, vload(src, s + t))
        t += 16
    if t < count:
        vstore_n(dst, d + t, vload_n(src, s + t, count - t), count - t)


@helper
def zero_run(dst, d, count):
    """dst[d : d+count] = 0 (a flat float32 array), 16 lanes at a time."""
    t = 0
    while t + 16 <= count:
        vstore(dst, d + t, vzero())
        t += 16
    if t < count:
        vstore_n(dst, d + t, vzero(), count - t)


@functools.lru_cache(maxsize=64)
def zeros(n: int) -> np.ndarray:
    """A float32 zero vector of length n (the bias of a layer without one). Shared: kernels only read it (it
    is not marked read-only because Numba would compile every kernel again for read-only arrays)."""
    return np.zeros(n, np.float32)
