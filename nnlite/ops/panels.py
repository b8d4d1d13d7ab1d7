"""The register tiles over one channel panel of a convolution: the inner loop of :mod:`nnlite.ops.gemm` and of
every fused kernel built on it (conv -> pool, depthwise -> 1x1, inverted blocks, Winograd's products), which
call it by address (:func:`address`, :mod:`nnlite.ops.bound`).

Two ways over K (taps x input channels):

- :func:`panel_tiles_whole`: each tile of :data:`nnlite.ops.tiles.MR` rows takes the whole of K in one pass: 8 rows x
  32 channels with AVX-512, reading the panel's K x 32 weights once per 8 output rows; with AVX2 (:data:`HALVES`),
  6 rows x 16 channels, first on the panel's left half, then on its right, while the 6 input rows are in L1.
- :func:`panel_tiles_chunked`, with AVX2, the same 6 x 16 tiles on panels over a quarter of L2
  (:data:`WHOLE_MAX_K`; a 3x3 conv on 512 channels), which a pass per 6 rows would stream from L3. K goes in chunks
  of :data:`KC` channels of one tap, whose weights (KC x 32 floats, half of L1) every tile of the panel takes in
  turn while they stay in L1; each tile stores its sums after a chunk and loads them for the next. A float32 stored
  and loaded is the same value, so the sums are the one pass's, bit for bit; bias and activation go on after the
  last chunk. Smaller panels take one pass: in chunks, each input row is read in short runs, one per chunk, which
  the prefetchers follow worse (benchmarks/RESULTS.md, rounds 20 and 21).

A panel's single last row runs on a one-row tile (:data:`TAIL_ROWS`). With AVX2 its last 2-4 rows, or 8, run on
4 x 16 tiles (:func:`tile_rows`): a 4x4 map's 16 rows are 6 + 6 + 4 rows of sums, not 18, and a 3x3 map's 9 are 10,
not 12. Otherwise a last 2 or more rows take a whole tile, which recomputes the last row for its spare rows (not
stored).
"""

from __future__ import annotations

from numba import types

from . import bound, machine
from .jit import helper, inlined
from .microkernels import (
    gemm_part_1x32,
    gemm_part_4x16,
    gemm_part_6x16,
    gemm_tile_1x32,
    gemm_tile_4x16,
    gemm_tile_6x16,
    gemm_tile_8x32,
    gemm_tile_16x16,
)
from .simd import vload_n
from .tiles import MR, NR

# A one-row tile keeps one or two sums, each waiting on the FMA latency (4 cycles): a quarter of a whole 8-row
# tile's time with one 512-bit FMA per cycle (Zen 4), half with two (most AVX-512 Xeons). So only a panel's
# single last row runs on one; 2-7 last rows take a whole tile either way.
TAIL_ROWS = 2
HALVES = MR == 6  # AVX2: 6 x 16 tiles on each half of a panel; AVX-512: 8 x 32 tiles (16 x 16 on narrow panels)
KC = max(16, machine.caches().l1d // (8 * NR))  # channels per chunk: KC x 32 floats of weights, half of L1
WHOLE_MAX_K = machine.caches().l2 // (16 * NR)  # K of a panel of a quarter of L2: a pass over it reads it from L2


@inlined
def tile_rows(rest):
    """Rows of AVX2's next tile, ``rest`` (at least 2) rows of the panel left: 4 for the last 2-4, and for the
    last 8 (two 4-row tiles), else 6. Every even count of at least 4 then runs without spare rows, and an odd
    count with at most one (a last row alone runs on the one-row tile). A 4 x 16 tile keeps 4 vectors of sums in
    8 registers, as many as two FMA pipes of 4 cycles' latency need (benchmarks/RESULTS.md, round 24)."""
    return 4 if rest <= 4 or rest == 8 else 6


@helper
def panel_tiles_whole(x, c, taps, bases, pk, kk, ldk, bias, code, alpha, y, n, ldy, r0, r1, p):
    """Rows [r0, r1) of channel panel p, whose kernel row i is at pk[kk + i*ldk]: packed
    (:func:`nnlite.ops.tiles.pack_panel`, ldk 32) or the layer's own (kh*kw*cin, cout) kernel (ldk cout, kk
    the panel's first column). x the flattened (padded) input, taps/bases from :func:`nnlite.ops.gemm.layout`
    (c inputs per tap); output row r's n values at y[r*ldy] (flat; ldy = n, or a wider map's channel count when
    y starts at this layer's channels of it, as a concat's input written in place)."""
    col0 = p * NR
    width = min(NR, n - col0)
    bias0 = vload_n(bias, col0, min(16, width))
    if width > 16:
        bias1 = vload_n(bias, col0 + 16, width - 16)
        m0 = r0
        while r1 - m0 >= TAIL_ROWS:  # whole tiles, the last one's spare rows not stored
            if not HALVES:
                gemm_tile_8x32(x, c, taps, bases, pk, kk, ldk, m0, r1, y, ldy, col0, width, bias0, bias1, code, alpha)
                m0 += 8
                continue
            rows = tile_rows(r1 - m0)
            for half in range(2):  # a loop, not two calls: each tile is compiled into the function once
                at, col, wide, b = (kk, col0, 16, bias0) if half == 0 else (kk + 16, col0 + 16, width - 16, bias1)
                if rows == 4:
                    gemm_tile_4x16(x, c, taps, bases, pk, at, ldk, m0, r1, y, ldy, col, wide, b, code, alpha)
                else:
                    gemm_tile_6x16(x, c, taps, bases, pk, at, ldk, m0, r1, y, ldy, col, wide, b, code, alpha)
            m0 += rows
        for m in range(m0, r1):  # fewer than TAIL_ROWS rows left: one by one
            gemm_tile_1x32(x, c, taps, bases, pk, kk, ldk, m, r1, y, ldy, col0, width, bias0, bias1, code, alpha)
    elif HALVES:  # a panel of at most 16 channels (rare on 7x7 maps; no one-row tile, which would compile longer)
        for m0 in range(r0, r1, 6):
            gemm_tile_6x16(x, c, taps, bases, pk, kk, ldk, m0, r1, y, ldy, col0, width, bias0, code, alpha)
    else:
        for m0 in range(r0, r1, 16):
            gemm_tile_16x16(x, c, taps, bases, pk, kk, ldk, m0, r1, y, ldy, col0, width, bias0, code, alpha)


@helper
def panel_tiles_chunked(x, c, taps, bases, pk, kk, ldk, bias, code, alpha, y, n, ldy, r0, r1, p):
    """:func:`panel_tiles_whole`, K in chunks of :data:`KC` channels of one tap (module docstring), on 6 x 16
    tiles whatever the machine (tests compare the two ways everywhere). A panel of at most :data:`WHOLE_MAX_K`
    rows takes the whole pass: in chunks, each row of the input would be read in short runs, one per chunk."""
    if c * taps.shape[0] <= WHOLE_MAX_K:
        panel_tiles_whole(x, c, taps, bases, pk, kk, ldk, bias, code, alpha, y, n, ldy, r0, r1, p)
        return
    col0 = p * NR
    width = min(NR, n - col0)
    bias0 = vload_n(bias, col0, min(16, width))
    bias1 = vload_n(bias, col0 + 16, max(0, width - 16))
    last_tap = taps.shape[0] - 1
    for t in range(last_tap + 1):
        tap = taps[t]
        for ch0 in range(0, c, KC):
            ch1 = min(c, ch0 + KC)
            first, last = t == 0 and ch0 == 0, t == last_tap and ch1 == c
            at = kk + (t * c + ch0) * ldk
            if width > 16:
                m0 = r0
                while r1 - m0 >= TAIL_ROWS:
                    rows = tile_rows(r1 - m0)
                    for half in range(2):  # as in panel_tiles_whole: each tile compiled in once
                        hat, col, wide, b = (at, col0, 16, bias0) if half == 0 else (at + 16, col0 + 16, width - 16,
                                                                                      bias1)
                        if rows == 4:
                            gemm_part_4x16(x, tap, ch0, ch1, bases, pk, hat, ldk, m0, r1, y, ldy, col, wide, b, first,
                                           last, code, alpha)
                        else:
                            gemm_part_6x16(x, tap, ch0, ch1, bases, pk, hat, ldk, m0, r1, y, ldy, col, wide, b, first,
                                           last, code, alpha)
                    m0 += rows
                for m in range(m0, r1):
                    gemm_part_1x32(x, tap, ch0, ch1, bases, pk, at, ldk, m, r1, y, ldy, col0, width, bias0, bias1,
                                   first, last, code, alpha)
            else:
                for m0 in range(r0, r1, 6):
                    gemm_part_6x16(x, tap, ch0, ch1, bases, pk, at, ldk, m0, r1, y, ldy, col0, width, bias0, first,
                                   last, code, alpha)


_F, _I = types.float32[::1], types.int64[::1]
_ARGS = (_F, types.int64, _I, _I, _F, types.int64, types.int64, _F, types.int64, types.float32, _F, *[types.int64] * 5)
bound.declare("panel_tiles", panel_tiles_whole, _ARGS)
bound.declare("panel_tiles_chunked", panel_tiles_chunked, _ARGS)


def address(k: int) -> int:
    """Where kernels call the tiles of a panel of ``k`` kernel rows (K): :func:`panel_tiles_chunked` where 2-row
    tiles meet a panel over a quarter of L2, else :func:`panel_tiles_whole`. Chosen per layer, so that a model
    without such a panel never compiles the chunked tiles (a first run's seconds)."""
    return bound.address("panel_tiles_chunked" if HALVES and k > WHOLE_MAX_K else "panel_tiles")
