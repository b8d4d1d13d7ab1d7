"""Convolution as an implicit GEMM on explicit SIMD register tiles: nnlite's own matrix multiply.

Why not BLAS: a convolution layer at batch 1 is a modest matrix product (49 to 3136 rows), and NumPy's OpenBLAS
re-packs the whole kernel on every call and, where ``OPENBLAS_CORETYPE`` pins its AVX2 kernels on an AVX-512 CPU,
runs at half the float32 rate. On ResNet50's and MobileNetV2's layer shapes this GEMM beat OpenBLAS's AVX2
kernels by 1.3-1.8x on one core, and on an AVX2-only CPU too (figures in benchmarks/RESULTS.md).

The product: output row r (one output pixel) times kernel column j (one output channel) is
    y[r, j] = act(bias[j] + sum over taps t, channels c of  x[base(r) + tap(t) + c] * k[t*C + c, j])
where x is the (zero-padded) input flattened, ``base(r)`` the offset of the pixel's top-left input and
``tap(t)`` the offset of kernel tap t = (i, j). So a k x k convolution needs no im2col copy, a strided one
no gather, and a 1x1 convolution is the same loop with one tap. Without column dilation a kernel row's
kw taps read kw*C consecutive inputs, so the loop runs over kh "taps" of kw*C values each (fewer, longer
inner loops: an RGB stem's 3x3x3 is 3 runs of 9, not 9 of 3). The kernel matrix is the layer's own
(kh*kw*cin, cout) weights, unchanged.

Blocking: output channels go in panels of 32 (two 16-lane vectors). Each panel's slice of the kernel is copied into a
contiguous (K, 32) scratch, then register tiles of :data:`MR` output rows take it (:mod:`nnlite.ops.panels`): with
AVX-512, 8 x 32 sums, per step of K 2 vector loads, 8 broadcasts and 16 fused multiply-adds (16 x 16 on panels of at
most 16 channels); with AVX2, 6 x 16 on each half of the panel in turn, and K in chunks that stay in L1 where the
panel is over a quarter of L2. Where a layer has at most
:data:`DIRECT_MAX_ROWS` output rows (late layers at batch 1) the copy would be read as often as it is written, so the
tiles read full panels of the kernel in place; a convolution with at most four output pixels runs as a matrix-vector
product (:mod:`nnlite.ops.gemv`), which reads the kernel once. Both sum in the same order as the packed tiles (the
same bits). Bias and relu/relu6/leaky_relu go on the registers before the store; sigmoid/swish after.

The sum over K runs in the same order (taps, then channels) whatever the thread split, so every thread
count gives bit-identical results. Reference twin: :func:`nnlite.ops.reference.conv2d`.

3x3 convolutions at stride 1 that :func:`nnlite.ops.winograd.chosen` takes (enough channels and output tiles)
run instead as Winograd's F(2x2, 3x3), 16 products on these same tiles (:func:`prepare` hands them over).
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

import numpy as np
from numba import types

from . import bound, buffers, drivers, gemv, machine, parallel, prepack, tiles, winograd
from .activations import LAST_REGISTER_CODE, LINEAR
from .jit import driven, helper
from .panels import address as panel_address
from .prepare import summing, writing_into
from .tiles import MR, NR, ZERO, act_address, copy_run, pack_address, pack_all_at, sum_address, zero_run, zeros
from .workspace import scratch

DIRECT_MAX_ROWS = 16  # at most this many output rows: the tiles read the kernel in place, unpacked
# Split by rows, a piece takes whole units of this many output rows: pairs of rows with AVX2, whose 6- and 4-row
# tiles cover any even count of at least 4 without spare rows (nnlite.ops.panels.tile_rows), so that the pieces
# get even shares (an 8x8 map's 64 rows at 2 threads: 32 + 32, not 36 + 28 in 6-row tiles); whole tiles with AVX-512.
ROW_UNIT = 2 if MR == 6 else MR


@functools.lru_cache(maxsize=512)
def _offsets(n_img, hp, wp, c, kh, kw, sh, sw, dh, dw, oh, ow):
    """int64 offsets into the flattened padded input (N, hp, wp, c): ``taps``, where each run of
    inputs starts relative to a pixel's top-left input, and ``bases`` (n_img*oh*ow,), of each output pixel's
    top-left input. A run is one kernel row's kw*c inputs (contiguous when dw == 1: kh taps) or else one
    tap's c inputs (kh*kw taps). Cached: a model calls each layer with the same shapes every time."""
    if dw == 1:  # a kernel row's kw*c inputs are one contiguous run: one tap per row, runs of kw*c
        taps = np.array([i * dh * wp * c for i in range(kh)], np.int64)
    else:
        taps = np.array([(i * dh * wp + j * dw) * c for i in range(kh) for j in range(kw)], np.int64)
    img = np.arange(n_img, dtype=np.int64)[:, None, None] * (hp * wp * c)
    row = np.arange(oh, dtype=np.int64)[None, :, None] * (sh * wp * c)
    col = np.arange(ow, dtype=np.int64)[None, None, :] * (sw * c)
    bases = (img + row + col).reshape(-1)
    return taps, bases  # not marked read-only (shared, but only read): see tiles.zeros


@helper
def pad_for_rows(src, xp, g, r0, r1):
    """The rows of the padded input xp that output pixels [r0, r1) read, padded from src (both flat);
    g (int64): n_img, h, w, c, hp, wp, top, left, oh, ow, sh, span (padded rows one output row reads), from
    :func:`pad_geometry`. Kernels call it by address (:mod:`nnlite.ops.bound`): linked into each caller, it
    was compiled again in each. Rows are copied as vectors (a loop over an RGB stem's 3 channels per pixel ran
    10x slower), never by slice assignment (Numba compiles that with a formatted error message: seconds of a
    first run's compile time)."""
    h, w, c, hp, wp, top, left, oh, ow, sh, span = g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]
    per = oh * ow
    run, prow, lead = w * c, wp * c, left * c
    n0, n1 = r0 // per, (r1 - 1) // per
    for img in range(n0, n1 + 1):
        i0 = (r0 - img * per) // ow * sh if img == n0 else 0
        i1 = min(hp, (r1 - 1 - img * per) // ow * sh + span) if img == n1 else hp
        for i in range(i0, i1):  # each input row is one contiguous run of w*c values in both
            d = (img * hp + i) * prow
            iy = i - top
            if iy < 0 or iy >= h:
                zero_run(xp, d, prow)
            else:
                zero_run(xp, d, lead)
                copy_run(src, (img * h + iy) * run, xp, d + lead, run)
                zero_run(xp, d + lead + run, prow - lead - run)


_F, _I = types.float32[::1], types.int64[::1]
bound.declare("pad_for_rows", pad_for_rows, (_F, _F, _I, types.int64, types.int64))


@driven
def _units(x, c, taps, bases, b, pre, bias, code, alpha, y, n, ldy, rows, by_rows, direct, block, tiles_at, act_at,
           src, pad, pad_at, pack_at, acc, total, scode, salpha, sum_at, u0, u1):
    # units [u0, u1) of the output: ROW_UNIT rows (by_rows) or 32-channel panels; then codes 4/5 on them.
    # Output row r at y[r*ldy] (see panel_tiles; ldy > n only without acc and with a code the tiles apply).
    # pre: b's panels packed once (nnlite.ops.prepack), or empty; direct: full panels read the kernel b in
    # place (see the module docstring); block: rows per block (_row_block) or 0; tiles_at:
    # panel_address(K); act_at: tiles.act_address(code); pad: empty, or the geometry with which
    # this piece first pads the input rows it reads from src into x (by panels: into a copy of its own), by
    # pad_at: bound.address("pad_for_rows") (0 when pad is empty); pack_at: tiles.pack_address() (0 with pre).
    # acc (flat, as y) or empty: each block of output, still in cache, becomes act_scode(acc + y), the sum first
    # copied to total unless that is empty (tiles.sum_rows_at, by address sum_at, so that models without such
    # sums never compile it; code is then one the tiles apply)
    fused = code if code <= LAST_REGISTER_CODE else LINEAR
    panels = (n + NR - 1) // NR
    if by_rows:
        r0, r1, p0, p1 = u0 * ROW_UNIT, min(rows, u1 * ROW_UNIT), 0, panels
        if pad.shape[0] and r1 > r0:
            bound.call(pad_at, "pad_for_rows", (src, x, pad, r0, r1))
    else:
        r0, r1, p0, p1 = 0, rows, u0, u1
        if pad.shape[0]:  # every panel reads every row: this piece's own padded copy
            x = np.empty(x.shape[0], np.float32)
            bound.call(pad_at, "pad_for_rows", (src, x, pad, ZERO, rows))
    k = taps.shape[0] * c
    if block and r1 - r0 > block:  # blocks of rows, every panel of a block before the next (see _row_block)
        if pre.shape[0]:
            packed = pre
        else:
            packed = np.empty(panels * k * NR, np.float32)
            pack_all_at(pack_at, b, k, n, packed)
        for m0 in range(r0, r1, block):
            m1 = min(r1, m0 + block)
            for p in range(p0, p1):
                bound.call(tiles_at, "panel_tiles", (x, c, taps, bases, packed, p * k * NR, NR, bias, fused, alpha, y,
                                                     n, ldy, m0, m1, p))
            if acc.shape[0]:
                tiles.sum_rows_at(sum_at, y, acc, total, n, m0, m1, ZERO, n, scode, salpha)
    else:
        pk = np.empty(0 if pre.shape[0] else k * NR, np.float32)  # this piece's packed panel
        for p in range(p0, p1):  # each panel is packed into pk just before its tiles run, or read in place
            width = min(NR, n - p * NR)
            if pre.shape[0]:
                bound.call(tiles_at, "panel_tiles", (x, c, taps, bases, pre, p * k * NR, NR, bias, fused, alpha, y, n,
                                                     ldy, r0, r1, p))
            elif direct and (width == NR or width == 16):  # the tiles' loads stay inside each kernel row
                bound.call(tiles_at, "panel_tiles", (x, c, taps, bases, b, p * NR, n, bias, fused, alpha, y, n, ldy, r0,
                                                     r1, p))
            else:
                bound.call(pack_at, "pack_panel", (b, k, n, p * NR, width, pk))
                bound.call(tiles_at, "panel_tiles", (x, c, taps, bases, pk, ZERO, NR, bias, fused, alpha, y, n, ldy,
                                                     r0, r1, p))
        if acc.shape[0]:
            tiles.sum_rows_at(sum_at, y, acc, total, n, r0, r1, p0 * NR, min(n, p1 * NR), scode, salpha)
    if code > LAST_REGISTER_CODE:
        bound.call(act_at, "act_block", (y, n, r0, r1, p0 * NR, min(n, p1 * NR), code, alpha))


_units_parallel = drivers.driver(_units)


class Layout(NamedTuple):
    """What conv2d derives from shapes and geometry alone (see :func:`layout`)."""
    pads: tuple[int, int, int, int]   # top, bottom, left, right
    out_shape: tuple[int, int, int, int]
    taps: np.ndarray                  # read-only, see _offsets
    bases: np.ndarray
    run: int                          # inputs per tap: kw*cin or cin
    rows: int                         # output pixels
    work: int                         # multiply-adds / 4, for parallel.parts
    in_shape: tuple[int, int, int, int]
    row_step: int                     # padded input rows between output rows (the stride)
    span: int                         # padded input rows one output row reads: (kh - 1) * dh + 1
    winograd: bool                    # runs as F(2x2, 3x3) (nnlite.ops.winograd.chosen) where its activation allows


@functools.lru_cache(maxsize=1024)
def layout(x_shape, k_shape, stride, dilation, pads, out_hw) -> Layout:
    """The :class:`Layout` of a convolution; cached, since a model calls each layer with the same shapes.
    Arguments as :func:`conv2d` takes them (shapes as tuples)."""
    n_img, h, w, c = x_shape
    kh, kw, _, cout = k_shape
    (sh, sw), (dh, dw), (top, bottom, left, right), (oh, ow) = stride, dilation, pads, out_hw
    taps, bases = _offsets(n_img, h + top + bottom, w + left + right, c, kh, kw, sh, sw, dh, dw, oh, ow)
    rows = n_img * oh * ow
    return Layout(tuple(pads), (n_img, oh, ow, cout), taps, bases, kh * kw * c // taps.shape[0], rows,
                  rows * cout * kh * kw * c // 4, tuple(x_shape), sh, (kh - 1) * dh + 1,
                  winograd.chosen(k_shape, stride, dilation, (n_img, oh, ow, cout)))


def conv2d(x, kernel, bias, code, alpha, stride, dilation, pads, out_hw):
    """y = act(conv(x, kernel) + bias) as one implicit GEMM. x (N, H, W, cin) C-contiguous float32, kernel
    (kh, kw, cin, cout), bias (cout,) or None, pads (top, bottom, left, right), out_hw (oh, ow)."""
    return run(x, kernel, bias, code, alpha, layout(x.shape, kernel.shape, stride, dilation, tuple(pads), out_hw))


def _panel_split(lay: Layout, panels: int, threads: int) -> bool:
    """Split a layer with enough rows by channel panels anyway: when there are panels enough to balance
    the threads and the input stays in L2 for each panel's pass (split by rows, every thread would pack
    the whole kernel)."""
    return panels >= 4 * threads and lay.rows * lay.run * lay.taps.shape[0] * 4 <= machine.blocking().panel_split_input


def _row_block(lay: Layout, panels: int) -> int:
    """Rows per block when a thread's rows run block by block, every channel panel of a block before the next
    (0: panel by panel over all of them). Blocks keep ``machine.blocking().row_block_input`` bytes of input
    rows in L2 while each panel reads them; the packed kernel, re-read for every block, fits there too, or the
    input is over a quarter of the last-level cache (L2 without one): then each panel would stream it from
    memory (SSD's 512 -> 512 1x1 convs at batch 8 were a quarter faster in blocks: RESULTS.md, round 14)."""
    k = lay.run * lay.taps.shape[0]
    limit = machine.blocking().row_block_input
    caches = machine.caches()
    if panels < 2 or (k * panels * NR * 4 > limit and 4 * int(np.prod(lay.in_shape)) <= (caches.l3 // 4 or caches.l2)):
        return 0
    return max(2 * MR, limit // (4 * k) // (2 * MR) * (2 * MR))  # whole pairs of tiles


NO_PAD = np.zeros(0, np.int64)
NO_SUM = (prepack.NONE, prepack.NONE, LINEAR, np.float32(0), 0)  # _units' acc, total, scode, salpha, sum_at: none


def pad_geometry(lay: Layout) -> np.ndarray:
    """int64 (n_img, h, w, c, hp, wp, top, left, oh, ow, stride, span): what _units needs to pad, in each
    piece, just the input rows that piece's output rows read. A piece then reads rows it padded itself,
    from its own core's cache, and rows the previous layer's same piece wrote (rows split the same way).
    Padded once by the calling thread before the launch, half of the copy was read by the other core: at
    2 threads a third of a small 3x3 conv's time (benchmarks/RESULTS.md, round 7).
    The pieces' rows overlap by a kernel's height: those are padded by both, with the same values. Split
    by channel panels, every piece reads every row: each pads all of them into a copy of its own."""
    n_img, oh, ow, _ = lay.out_shape
    top, bottom, left, right = lay.pads
    return np.array([n_img, *lay.in_shape[1:], lay.in_shape[1] + top + bottom, lay.in_shape[2] + left + right, top,
                     left, oh, ow, lay.row_step, lay.span], np.int64)


class FewPixels(NamedTuple):
    """What a conv on at most :data:`gemv.GEMV_MAX_ROWS` output pixels gathers, from the shapes alone."""
    source: np.ndarray              # (rows, K) each pixel's inputs, as offsets into x flattened; padding: x.size
    keep: np.ndarray | None         # (K,) the kernel rows some pixel reads an input with; None: every row
    kept_source: np.ndarray | None  # source[:, keep]
    name: str                       # the packed layout's name for the kept rows (nnlite.ops.prepack.once)


def few_pixels(lay: Layout) -> FewPixels:
    """:class:`FewPixels` of a layout with few output pixels (cached per geometry: an op called directly
    prepares on every call)."""
    return _few_pixels(lay.in_shape, lay.pads, lay.run, lay.taps.tobytes(), lay.bases.tobytes())


@functools.lru_cache(maxsize=256)
def _few_pixels(in_shape, pads, run, taps, bases) -> FewPixels:
    taps, bases = np.frombuffer(taps, np.int64), np.frombuffer(bases, np.int64)
    gather = (bases[:, None, None] + taps[None, :, None] + np.arange(run)[None, None, :]).reshape(len(bases), -1)
    n_img, h, w, c = in_shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    img, rest = np.divmod(gather, hp * wp * c)  # gather: offsets into the padded input
    py, rest = np.divmod(rest, wp * c)
    px, ch = np.divmod(rest, c)
    iy, ix = py - top, px - left
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    source = np.where(inside, ((img * h + iy) * w + ix) * c + ch, n_img * h * w * c)
    keep = inside.any(axis=0)
    if keep.all() or not keep.any():
        return FewPixels(source, None, None, "")
    name = "gemv-rows-" + hashlib.blake2b(np.packbits(keep).tobytes(), digest_size=8).hexdigest()
    return FewPixels(source, keep, np.ascontiguousarray(source[:, keep]), name)


def _vector_product_inputs(lay: Layout, kernel):
    """The matrix-vector product's (source, packed kernel) without the kernel rows that meet only padding
    for every output pixel (a 3x3 'same' conv on a 1x1 map reads one tap of nine): such rows only add exact
    zeros (products of 0 and a finite weight, to sums that start at +0), so the sums keep their bits. Only
    for a frozen kernel whose rows left out are finite, packed once (:func:`nnlite.ops.prepack.once`);
    otherwise, or when every row meets an input, the whole kernel's blocks (None when it is writable)."""
    few = few_pixels(lay)
    if few.keep is not None:
        keep = few.keep

        def compact(view):  # NONE where a row left out holds an infinity or NaN: 0 times it is NaN, not 0
            matrix = view.reshape(-1, view.shape[-1])
            return gemv.pack_rows(matrix[keep]) if np.isfinite(matrix[~keep]).all() else prepack.NONE

        blocks = prepack.once(kernel, few.name, compact)
        if blocks is not None and blocks.size:
            return few.kept_source, blocks
    return few.source, gemv.packed_blocks(kernel)


def run(x, kernel, bias, code, alpha, lay: Layout):
    """:func:`conv2d` with its :class:`Layout` already known: x, kernel, bias as there, and C-contiguous."""
    return prepare(kernel, bias, code, alpha, lay)(x)


def prepare(kernel, bias, code, alpha, lay: Layout, accumulate=None, into=None):
    """:func:`run` for inputs of the layout's shape as a function of x alone: everything that depends only on
    the kernel, the bias and the shapes (threads, split, packed kernel) is done here, once. The function
    (``.out_shape``: the output's shape) holds the kernel and bias and reads the thread count now; callers
    keep it only while those stay the same.

    ``accumulate=(code, alpha, keep)``: ``f(x, acc)`` returning act(acc + y) and, with ``keep``, first the sum
    itself, as :func:`nnlite.ops.separable.prepare_depthwise_pointwise` does: each block of y summed with acc
    while in cache, on the tiled path and Winograd's (None for the matrix-vector product, or an activation of
    the convolution's own that runs after the store). ``into=(channels, offset)``: ``f(x, out)`` writing into
    channels [offset, offset + cout) of ``out``, a C-contiguous float32 map of ``channels`` channels (a concat's
    input, :mod:`nnlite.plan_concat`); None where ``accumulate`` would be, or with it."""
    few = 0 < lay.rows <= gemv.GEMV_MAX_ROWS
    if (accumulate is not None or into is not None) and (few or code > LAST_REGISTER_CODE
                                                           or None not in (accumulate, into)):
        return None
    if lay.winograd and code <= LAST_REGISTER_CODE:
        return winograd.prepare(kernel, bias, code, alpha, lay.in_shape, lay.pads, lay.out_shape, accumulate, into)
    top, bottom, left, right = lay.pads
    padded = top or bottom or left or right
    cout = lay.out_shape[3]
    kernel_w = prepack.as_writable(kernel)  # a view that does not keep ``kernel`` alive: the closures hold it

    if few:  # a few output pixels: a matrix-vector product reads the kernel once
        source, blocks = _vector_product_inputs(lay, kernel)  # (rows, K) into x with a zero appended: no padding
        extended = int(np.prod(lay.in_shape)) + 1
        product = gemv.prepare_rows(kernel_w.reshape(-1, cout), bias, code, alpha, source.shape, blocks)

        def matrix_vector(x, _kernel=kernel):  # _kernel: held while the view is used
            flat = scratch("gemv_input", (extended,))
            flat[:-1] = x.reshape(-1)
            flat[-1] = 0.0
            return product(flat[source]).reshape(lay.out_shape)
        matrix_vector.out_shape = lay.out_shape
        return matrix_vector
    tiles, panels = -(-lay.rows // MR), -(-cout // NR)
    threads = parallel.numba_threads()
    by_rows = panels < threads or (tiles >= 4 * threads and not _panel_split(lay, panels, threads))
    units = -(-lay.rows // ROW_UNIT) if by_rows else panels
    pre = prepack.panels(kernel) if cout >= lay.rows else None  # more kernel than input: pack it once
    head = (lay.run, lay.taps, lay.bases, kernel_w.reshape(-1), prepack.NONE if pre is None else pre,
            zeros(cout) if bias is None else prepack.as_writable(bias), code, np.float32(alpha))
    tail = (lay.rows, by_rows, lay.rows <= DIRECT_MAX_ROWS, _row_block(lay, panels) if by_rows else 0,
            panel_address(lay.run * lay.taps.shape[0]), act_address(code))
    pad = pad_geometry(lay) if padded else NO_PAD
    pad_at = bound.address("pad_for_rows") if padded else 0
    pack_at = 0 if pre is not None else pack_address()  # pack_panel, by address (not linked in)
    padded_shape = (lay.in_shape[0], lay.in_shape[1] + top + bottom, lay.in_shape[2] + left + right, lay.in_shape[3])

    def launch(x, y, sums, ldy=cout, _kernel=kernel, _bias=bias):  # held while their writable views are used
        # padded: the pieces pad the input rows they read (pad_geometry) into this thread's scratch (or, split
        # by panels, each into its own copy)
        xp = scratch("gemm_pad", padded_shape).reshape(-1) if padded else x.reshape(-1)
        parallel.split(_units, _units_parallel, (xp, *head, y.reshape(-1), cout, ldy, *tail, x.reshape(-1), pad, pad_at,
                                                 pack_at, *sums), units, lay.work)

    if into is not None:
        channels, offset = into
        return writing_into(lay.out_shape, lambda x, y: launch(x, y, NO_SUM, channels), offset)

    if accumulate is not None:
        scode, salpha, keep = accumulate
        sum_at = sum_address(keep)
        return summing(lay.out_shape, keep, lambda x, acc, total, y: launch(
            x, y, (acc.reshape(-1), total.reshape(-1), scode, salpha, sum_at)))

    def tiled(x):
        y = buffers.empty(lay.out_shape)
        launch(x, y, NO_SUM)
        return y
    tiled.out_shape = lay.out_shape
    return tiled
