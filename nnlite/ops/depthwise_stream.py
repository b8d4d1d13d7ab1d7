"""Depthwise rows for square 3x3, 5x5 and 7x7 kernels at stride 1 or 2: tiles that stream along kernel rows.

The generic tile of :mod:`nnlite.ops.depthwise_simd` loads one input vector per tap and pixel, and the
pixels at a row's ends take a one-pixel path. Here a tile of 8 (in rows of 4-7 pixels, or of a 3x3 kernel
at stride 2: 4) output pixels x 16 channels walks each kernel row once: every input vector under it is loaded
once and feeds each sum of the tile that reads it (:mod:`nnlite.ops.depthwise_tiles3`, ``5``, ``7``). A 3x3
kernel's 9 weight vectors stay in registers while a tile moves along the row (with AVX-512's 32 registers:
:data:`LOAD_WEIGHTS`); a larger kernel, and a 3x3 one with AVX2, loads a kernel row's weights per tile. The
row's last tile starts at ``ow - pixels``, recomputing pixels the one before it stored (the same bits), so rows
of any width from 4 pixels are whole tiles, the ends included: a tile's taps in the padding (rows outside
[i0, i1), columns outside [jlo, jhi)) are skipped, as the generic path skips them, and each sum takes its taps in
the generic path's order, so both give the same bits.

Which way a row is walked: where the row's kernel-high band of input (kh rows x w x c floats) fits in L1,
each 16-channel block takes the whole row before the next (the band stays in L1 across the blocks, and a
3x3 kernel's weights are loaded once per block); otherwise each tile position takes every channel block in
turn (an input pixel's channels read as one contiguous run). :func:`depthwise_simd.depthwise_rows` calls
the rows functions here by address (:mod:`nnlite.ops.bound`): a model compiles only the sizes it has.

Reading ahead: where the input is larger than L2, while an output row runs its tiles also ask for (a
prefetch hint into L2, a few cache lines per tile) the input rows the next output row reads first. On a map
larger than the caches (SSD's 256x256x64 at 512 px) the input comes from memory, where the hardware's
prefetchers alone left the tiles waiting on each row's first lines: a stride-2 layer read its input at well
under the memory's bandwidth (benchmarks/RESULTS.md, round 13). The hints change no value.
(kw, dw: the kernel's width and column dilation, as for every rows function; here kw = kh and dw = 1.)
"""

from __future__ import annotations

from . import bound, engine
from .depthwise_simd import ROWS_ARGS, valid_range
from .depthwise_tiles3 import (
    dwconv3_tile_4x16_s1,
    dwconv3_tile_4x16_s1_loads,
    dwconv3_tile_4x16_s2,
    dwconv3_tile_4x16_s2_loads,
    dwconv3_tile_8x16_s1,
    dwconv3_tile_8x16_s1_loads,
)
from .depthwise_tiles5 import dwconv5_tile_4x16_s1, dwconv5_tile_4x16_s2, dwconv5_tile_8x16_s1, dwconv5_tile_8x16_s2
from .depthwise_tiles7 import dwconv7_tile_8x16_s1, dwconv7_tile_8x16_s2
from .jit import helper
from .simd import prefetch_l2, vload_n, vzero

SIZES = {3: "rows3", 5: "rows_large", 7: "rows_large"}  # kernel size -> the bound name of its rows function
# AVX2's 16 registers cannot hold a 3x3 kernel's 9 weight vectors (18 registers) beside an 8-pixel tile's sums: there
# the 3x3 tiles load each kernel row's weights themselves (``*_loads``), up to 20 % faster than spilling them
# (benchmarks/RESULTS.md, round 21). A constant, so each machine's rows3 compiles only its own tiles.
LOAD_WEIGHTS = not engine.wide_registers()


def rows_name(h, w, kh, kw, sh, sw, dh, dw, left, ow) -> str | None:
    """The rows function (its :mod:`nnlite.ops.bound` name) whose tiles take this layer, or None: a square 3x3,
    5x5 or 7x7 kernel (no dilation along rows) at stride 1 or 2 along rows, rows of at least 4 pixels (7x7
    kernels: 8), and no more than kw // 2 columns of padding at either end of a row (as "same" padding has):
    a tile tests only that many columns at each end."""
    if kh != kw or kw not in SIZES or dw != 1 or sw not in (1, 2) or left > kw // 2:
        return None
    if ow < (8 if kw == 7 else 4):  # the rows functions' tiles: 8 pixels, or 4 in shorter rows (none for 7x7)
        return None
    right = (ow - 1) * sw - left + kw - 1  # input column of the row's last tap
    return SIZES[kw] if right - (w - 1) <= kw // 2 else None


def rows_address(h, w, kh, kw, sh, sw, dh, dw, left, ow) -> int:
    """The address of the rows function for this layer (compiled, or loaded from the cache, now): the streaming
    one :func:`rows_name` names, else :func:`nnlite.ops.depthwise_simd.rows_generic`."""
    return bound.address(rows_name(h, w, kh, kw, sh, sw, dh, dw, left, ow) or "rows_generic")


@helper
def _rows3(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, code, alpha, yf, oh, ow, row_off, l1,
           l2, r0, r1):
    # Rows r = n*oh + oy in [r0, r1) of a 3x3 depthwise convolution (module docstring): xf = x (N, H, W, C)
    # flattened, k (9*C,) taps in (i, j) order, yf = y (N, oh, ow, C) flattened, row r stored at r - row_off.
    row, pixels = dh * w * c, 8 if ow >= 8 and sw == 1 else 4
    columns = (pixels - 1) * sw + 3
    tiles, blocks = (ow + pixels - 1) // pixels, (c + 15) // 16
    by_channel = kh * w * c * 4 <= l1
    fetch = xf.shape[0] * 4 > l2  # read ahead (module docstring): an input larger than L2
    w00 = w01 = w02 = w10 = w11 = w12 = w20 = w21 = w22 = bv = vzero()
    for r in range(r0, r1):
        n = r // oh
        iy0 = (r - n * oh) * sh - top_pad  # input row of tap i = 0
        i0, i1 = valid_range(3, h, dh, iy0)
        top, out_row = (n * h + iy0) * w * c, (r - row_off) * ow * c
        ahead = top + 3 * row  # the sh rows the next output row reads first (dilation 1), fetched while this one runs
        per_unit = (sh * w * c // 16 + tiles * blocks - 1) // (tiles * blocks) if fetch else 0  # lines per unit
        for u in range(tiles * blocks):
            for q in range(per_unit):
                prefetch_l2(xf, ahead + (u * per_unit + q) * 16)
            b, t = (u // tiles, u % tiles) if by_channel else (u % blocks, u // blocks)
            c0, width = b * 16, min(16, c - b * 16)
            if t == 0 or not by_channel:
                if not LOAD_WEIGHTS:
                    w00, w01, w02 = vload_n(k, c0, width), vload_n(k, c + c0, width), vload_n(k, 2 * c + c0, width)
                    w10, w11 = vload_n(k, 3 * c + c0, width), vload_n(k, 4 * c + c0, width)
                    w12, w20 = vload_n(k, 5 * c + c0, width), vload_n(k, 6 * c + c0, width)
                    w21, w22 = vload_n(k, 7 * c + c0, width), vload_n(k, 8 * c + c0, width)
                bv = vload_n(bias, c0, width)
            ox0 = min(pixels * t, ow - pixels)
            ix0 = ox0 * sw - left  # input column of the tile's first tap
            p, out, jlo, jhi = top + ix0 * c + c0, out_row + ox0 * c + c0, max(0, -ix0), min(columns, w - ix0)
            if LOAD_WEIGHTS:
                if pixels == 8:
                    dwconv3_tile_8x16_s1_loads(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
                elif sw == 1:
                    dwconv3_tile_4x16_s1_loads(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
                else:
                    dwconv3_tile_4x16_s2_loads(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
            elif pixels == 8:
                dwconv3_tile_8x16_s1(xf, p, row, c, width, i0, i1, jlo, jhi, w00, w01, w02, w10, w11, w12, w20, w21,
                                     w22, bv, yf, out, code, alpha)
            elif sw == 1:
                dwconv3_tile_4x16_s1(xf, p, row, c, width, i0, i1, jlo, jhi, w00, w01, w02, w10, w11, w12, w20, w21,
                                     w22, bv, yf, out, code, alpha)
            else:
                dwconv3_tile_4x16_s2(xf, p, row, c, width, i0, i1, jlo, jhi, w00, w01, w02, w10, w11, w12, w20, w21,
                                     w22, bv, yf, out, code, alpha)


@helper
def _rows_large(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, code, alpha, yf, oh, ow, row_off,
                l1, l2, r0, r1):
    # _rows3 for 5x5 and 7x7 kernels, whose tiles load each kernel row's weights themselves.
    row, pixels = dh * w * c, 8 if ow >= 8 else 4
    columns = (pixels - 1) * sw + kh
    tiles, blocks = (ow + pixels - 1) // pixels, (c + 15) // 16
    by_channel = kh * w * c * 4 <= l1
    fetch = xf.shape[0] * 4 > l2
    for r in range(r0, r1):
        n = r // oh
        iy0 = (r - n * oh) * sh - top_pad
        i0, i1 = valid_range(kh, h, dh, iy0)
        top, out_row = (n * h + iy0) * w * c, (r - row_off) * ow * c
        ahead = top + kh * row  # as in _rows3
        per_unit = (sh * w * c // 16 + tiles * blocks - 1) // (tiles * blocks) if fetch else 0
        for u in range(tiles * blocks):
            for q in range(per_unit):
                prefetch_l2(xf, ahead + (u * per_unit + q) * 16)
            b, t = (u // tiles, u % tiles) if by_channel else (u % blocks, u // blocks)
            c0, width = b * 16, min(16, c - b * 16)
            bv = vload_n(bias, c0, width)
            ox0 = min(pixels * t, ow - pixels)
            ix0 = ox0 * sw - left
            p, out, jlo, jhi = top + ix0 * c + c0, out_row + ox0 * c + c0, max(0, -ix0), min(columns, w - ix0)
            if kh == 7 and sw == 1:
                dwconv7_tile_8x16_s1(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
            elif kh == 7:
                dwconv7_tile_8x16_s2(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
            elif pixels == 8 and sw == 1:
                dwconv5_tile_8x16_s1(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
            elif pixels == 8:
                dwconv5_tile_8x16_s2(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
            elif sw == 1:
                dwconv5_tile_4x16_s1(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)
            else:
                dwconv5_tile_4x16_s2(xf, p, row, c, width, i0, i1, jlo, jhi, k, c0, bv, yf, out, code, alpha)


bound.declare("rows3", _rows3, ROWS_ARGS)
bound.declare("rows_large", _rows_large, ROWS_ARGS)
