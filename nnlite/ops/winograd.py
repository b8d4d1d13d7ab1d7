"""3x3 convolutions at stride 1 by Winograd's minimal filtering F(2x2, 3x3): 16 multiplies for each 2x2 block
of outputs and input channel, where the direct convolution takes 36.

Each 2x2 block of outputs (a "tile") reads a 4x4 patch d of the input (zeros outside the image). With the
fixed matrices

    B^T = | 1  0 -1  0 |      G = |  1    0    0  |      A^T = | 1  1  1  0 |
          | 0  1  1  0 |          | 1/2  1/2  1/2 |            | 0  1 -1 -1 |
          | 0 -1  1  0 |          | 1/2 -1/2  1/2 |
          | 0  1  0 -1 |          |  0    0    1  |

the block is  A^T [ sum over input channels c of (G g_c G^T) * (B^T d_c B) ] A  (``*``: element by element,
g_c the 3x3 kernel of channel c), exactly the convolution in exact arithmetic. The sum over channels at each
of the 16 positions of the 4x4 product is a matrix product: (tiles x cin) times (cin x cout), one per
position. nnlite runs those 16 products on the GEMM's own register tiles (:func:`nnlite.ops.panels.panel_tiles_whole`,
called by address), on the kernel transformed once, G g G^T in float64 rounded to float32, and packed into
the GEMM's panels (:mod:`nnlite.ops.prepack`; a writable kernel is transformed on every call).

Blocking: the tiles are split evenly between the threads, and a thread takes its share in blocks of at most
``block`` tiles (:func:`block_tiles`, from the L2 size): it transforms the block's input patches into V
(16 x block x cin), runs the 16 products into M (16 x block x cout), and transforms M back to the output with
bias and activation (relu, relu6, leaky relu; sigmoid and swish are left to the direct GEMM).

Numerics: not the direct convolution's bits. The input and output transforms only add and subtract, and the
kernel transform is exact up to one rounding, so the result differs from the direct sum by a few float32
roundings (largest error over largest output 3e-7 to 5e-7 on real layers, tested against the float64 twin). The
arithmetic of a tile does not depend on which block or thread computes it, so every thread count gives the
same bits. Reference twin: :func:`nnlite.ops.reference.conv2d` (the direct sum in float64), as for the direct GEMM.

When: :func:`chosen` (called from :func:`nnlite.ops.gemm.layout`): a 3x3 kernel at stride and dilation 1,
enough channels that the transforms are a small part of the work, and enough tiles that reading the
transformed kernel, 16/9 the size of the layer's own, is not (:data:`MIN_TILES`: late 7x7 layers at batch 1
stay direct). The transformed kernels of a model's frozen conv kernels are kept while those live: memory
of 16/9 the size of the kernels that run this way.
"""

from __future__ import annotations

import functools

import numpy as np

from ..limits import env_switch
from . import bound, buffers, drivers, machine, panels, parallel, prepack
from .activations import LINEAR
from .jit import driven, inlined
from .prepare import summing, writing_into
from .simd import vadd, vload_n, vstore_n, vsub, vzero
from .tiles import NR, ZERO, finish, sum_address, zeros

POSITIONS = 16                 # 4x4 products per tile
MIN_CHANNELS = 16              # fewer input or output channels: the transforms cost more than they save
# Fewer tiles (a classifier's last 7x7 maps at batch 1: 16 tiles) gain little, as their transformed kernels,
# the largest and 16/9 the size of their own, stream from memory on every call, and cost the most memory
# (ResNet50's last stage at batch 1: 1 % of its time for 49 MB, benchmarks/RESULTS.md, round 9)
MIN_TILES = 20
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
_GG = np.kron(_G, _G)  # (16, 9): [4a + b, 3i + j] = G[a, i] * G[b, j]


@functools.cache
def enabled() -> bool:
    """``NNLITE_WINOGRAD``: "1" (default when unset or empty) or "0" (every convolution by the direct GEMM)."""
    return env_switch("NNLITE_WINOGRAD")


def chosen(k_shape, stride, dilation, out_shape) -> bool:
    """True when a convolution of this kernel shape, stride, dilation and output shape (N, oh, ow, cout) runs
    as F(2x2, 3x3)."""
    if not enabled():
        return False
    kh, kw, cin, cout = k_shape
    n, oh, ow, _ = out_shape
    tiles = n * ((oh + 1) // 2) * ((ow + 1) // 2)
    return (kh == kw == 3 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and cin >= MIN_CHANNELS
            and cout >= MIN_CHANNELS and tiles >= MIN_TILES)


def kernel_transform(kernel: np.ndarray) -> np.ndarray:
    """(3, 3, cin, cout) -> (16, cin, cout) float32: G g G^T for every (cin, cout) pair, computed in float64;
    position 4i + j of the 4x4 product at [4i + j]."""
    g = kernel.reshape(9, -1)
    pairs = g.shape[1]
    out = np.empty((POSITIONS, pairs), np.float32)
    step = max(256, machine.caches().l2 // (8 * (9 + POSITIONS)))  # float64 columns in and out within L2
    g64, u64 = np.empty((9, step)), np.empty((POSITIONS, step))
    for lo in range(0, pairs, step):  # one matrix product per slice of pairs: 5x faster than one einsum
        width = min(step, pairs - lo)
        g64[:, :width] = g[:, lo:lo + width]
        np.matmul(_GG, g64[:, :width], out=u64[:, :width])
        out[:, lo:lo + width] = u64[:, :width]
    return out.reshape(POSITIONS, *kernel.shape[2:])


def _packed(view: np.ndarray) -> np.ndarray:
    """The transformed kernel, each position's (cin, cout) matrix packed into 32-column panels, one after the
    other (position p's panels at p * panels * cin * 32)."""
    u = kernel_transform(view)
    cin, cout = u.shape[1:]
    size = -(-cout // NR) * cin * NR
    packed = np.empty(POSITIONS * size, np.float32)
    for pos in range(POSITIONS):
        prepack.pack_matrix(np.ascontiguousarray(u[pos]).reshape(-1), cin, cout, packed[pos * size:(pos + 1) * size])
    return packed


def block_tiles(cin: int, cout: int, tiles: int, threads: int) -> int:
    """Tiles per block: V and M of a block (16 positions x (cin + cout) floats per tile) in half of L2, in
    whole 8-row register tiles, at least 16 and at most 256, and no larger than a thread's share of the tiles."""
    fit = machine.caches().l2 // 2 // (4 * POSITIONS * (cin + cout))
    share = -(-tiles // threads)
    return int(min(256, max(16, fit // 8 * 8), -(-share // 8) * 8))


def prepare(kernel: np.ndarray, bias, code: int, alpha: float, in_shape, pads, out_shape, accumulate=None, into=None):
    """The convolution as a function of x alone (``.out_shape``), for inputs of ``in_shape``; pads (top,
    bottom, left, right) as resolved by conv2d. ``code``: an activation the register epilogue applies.
    ``accumulate=(code, alpha, keep)``: ``f(x, acc)``, each block's outputs summed with acc while in cache (see
    :func:`nnlite.ops.gemm.prepare`). ``into=(channels, offset)``: ``f(x, out)`` writing into channels
    [offset, offset + cout) of a wider map ``out`` (as there)."""
    n, h, w, cin = in_shape
    _, oh, ow, cout = out_shape
    top, _, left, _ = pads
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    tiles = n * th * tw
    block = block_tiles(cin, cout, tiles, parallel.numba_threads())
    pre = prepack.once(kernel, "winograd-f2x3", _packed)
    packed = _packed(kernel) if pre is None else pre
    held = (kernel, bias)  # the launch holds them while their writable views are used
    bias = zeros(cout) if bias is None else prepack.as_writable(bias)
    taps = np.zeros(1, np.int64)  # each product: a 1x1 "convolution" of the block's transformed patches
    bases = np.arange(block, dtype=np.int64) * cin
    work = tiles * POSITIONS * cin * cout // 4
    head = (h, w, cin, top, left, oh, ow, th, tw, packed, bias, code, np.float32(alpha))
    tail = (block, taps, bases, zeros(cout), panels.address(cin))

    def launch(x, y, sums, ldy=cout, _held=held, _packed=packed):  # held while their views are used
        parallel.split(_blocks, _blocks_parallel, (x.reshape(-1), *head, y.reshape(-1), cout, ldy, *tail, *sums), tiles,
                       work)

    if into is not None:
        channels, offset = into
        return writing_into(out_shape, lambda x, y: launch(x, y, NO_SUM, channels), offset)

    if accumulate is not None:
        scode, salpha, keep = accumulate
        sum_at = sum_address(keep)
        return summing(out_shape, keep, lambda x, acc, total, y: launch(
            x, y, (acc.reshape(-1), total.reshape(-1), scode, salpha, sum_at)))

    def winograd(x):
        y = buffers.empty(out_shape)
        launch(x, y, NO_SUM)
        return y
    winograd.out_shape = tuple(out_shape)
    return winograd


NO_SUM = (prepack.NONE, prepack.NONE, LINEAR, np.float32(0), 0)  # _blocks' acc, total, scode, salpha, sum_at: none


@inlined
def _patch(x, off, ok, m):
    """m channels of one input pixel at x[off], or zeros where the pixel lies outside the image."""
    if ok:
        return vload_n(x, off, m)
    return vzero()


@inlined
def _bt(d0, d1, d2, d3):
    """B^T times a column (d0, d1, d2, d3) of the patch."""
    return vsub(d0, d2), vadd(d1, d2), vsub(d2, d1), vsub(d1, d3)


@inlined
def _store_bt_row(v, off, stride, t0, t1, t2, t3, m):
    """One row of (B^T d) B: positions off, off + stride, ... of v."""
    vstore_n(v, off, vsub(t0, t2), m)
    vstore_n(v, off + stride, vadd(t1, t2), m)
    vstore_n(v, off + 2 * stride, vsub(t2, t1), m)
    vstore_n(v, off + 3 * stride, vsub(t1, t3), m)


@inlined
def _input_tile(x, h, w, c, img, iy0, ix0, v, stride, at):
    """B^T d B of the 4x4 patch whose top-left input pixel is (iy0, ix0) of image img (zeros outside), every
    channel: position q's values at v[at + q*stride : ... + c]."""
    r0, r1, r2, r3 = 0 <= iy0 < h, 0 <= iy0 + 1 < h, 0 <= iy0 + 2 < h, 0 <= iy0 + 3 < h
    c0, c1, c2, c3 = 0 <= ix0 < w, 0 <= ix0 + 1 < w, 0 <= ix0 + 2 < w, 0 <= ix0 + 3 < w
    row = w * c
    for ch in range(0, c, 16):
        m = min(16, c - ch)
        o0 = ((img * h + iy0) * w + ix0) * c + ch  # may point outside x: only read where the pixel is inside
        o1, o2, o3 = o0 + row, o0 + 2 * row, o0 + 3 * row
        t00, t10, t20, t30 = _bt(_patch(x, o0, r0 and c0, m), _patch(x, o1, r1 and c0, m),
                                 _patch(x, o2, r2 and c0, m), _patch(x, o3, r3 and c0, m))
        t01, t11, t21, t31 = _bt(_patch(x, o0 + c, r0 and c1, m), _patch(x, o1 + c, r1 and c1, m),
                                 _patch(x, o2 + c, r2 and c1, m), _patch(x, o3 + c, r3 and c1, m))
        t02, t12, t22, t32 = _bt(_patch(x, o0 + 2 * c, r0 and c2, m), _patch(x, o1 + 2 * c, r1 and c2, m),
                                 _patch(x, o2 + 2 * c, r2 and c2, m), _patch(x, o3 + 2 * c, r3 and c2, m))
        t03, t13, t23, t33 = _bt(_patch(x, o0 + 3 * c, r0 and c3, m), _patch(x, o1 + 3 * c, r1 and c3, m),
                                 _patch(x, o2 + 3 * c, r2 and c3, m), _patch(x, o3 + 3 * c, r3 and c3, m))
        out = at + ch
        _store_bt_row(v, out, stride, t00, t01, t02, t03, m)
        _store_bt_row(v, out + 4 * stride, stride, t10, t11, t12, t13, m)
        _store_bt_row(v, out + 8 * stride, stride, t20, t21, t22, t23, m)
        _store_bt_row(v, out + 12 * stride, stride, t30, t31, t32, t33, m)


@inlined
def _at(m0, m1, m2, m3):
    """A^T times a column (m0, m1, m2, m3) of the product."""
    return vadd(vadd(m0, m1), m2), vsub(vsub(m1, m2), m3)


@inlined
def _output_tile(mm, stride, at, y, oh, ow, k, ldy, img, oy, ox, bias, code, alpha):
    """A^T M A of one tile's products (position q at mm[at + q*stride]), plus bias and activation, into the
    2x2 outputs at (oy, ox) of image img that lie inside the output (each pixel's k channels ldy apart)."""
    down, right = oy + 1 < oh, ox + 1 < ow
    o = ((img * oh + oy) * ow + ox) * ldy
    for ch in range(0, k, 16):
        m = min(16, k - ch)
        q = at + ch
        s00, s10 = _at(vload_n(mm, q, m), vload_n(mm, q + 4 * stride, m), vload_n(mm, q + 8 * stride, m),
                       vload_n(mm, q + 12 * stride, m))
        s01, s11 = _at(vload_n(mm, q + stride, m), vload_n(mm, q + 5 * stride, m), vload_n(mm, q + 9 * stride, m),
                       vload_n(mm, q + 13 * stride, m))
        s02, s12 = _at(vload_n(mm, q + 2 * stride, m), vload_n(mm, q + 6 * stride, m),
                       vload_n(mm, q + 10 * stride, m), vload_n(mm, q + 14 * stride, m))
        s03, s13 = _at(vload_n(mm, q + 3 * stride, m), vload_n(mm, q + 7 * stride, m),
                       vload_n(mm, q + 11 * stride, m), vload_n(mm, q + 15 * stride, m))
        b = vload_n(bias, ch, m)
        y00, y01 = _at(s00, s01, s02, s03)
        vstore_n(y, o + ch, finish(y00, b, code, alpha), m)
        if right:
            vstore_n(y, o + ldy + ch, finish(y01, b, code, alpha), m)
        if down:
            y10, y11 = _at(s10, s11, s12, s13)
            vstore_n(y, o + ow * ldy + ch, finish(y10, b, code, alpha), m)
            if right:
                vstore_n(y, o + (ow + 1) * ldy + ch, finish(y11, b, code, alpha), m)


@driven
def _blocks(xf, h, w, c, top, left, oh, ow, th, tw, packed, bias, code, alpha, yf, k, ldy, block, taps, bases,
            nobias, tiles_at, acc, total, scode, salpha, sum_at, u0, u1):
    # tiles [u0, u1) (tile t = (img, ty, tx) in row-major order) in blocks of at most ``block``: transform a
    # block's patches into v, the 16 products into mm (panel_tiles, by address tiles_at), and mm back into yf;
    # acc (flat, as yf) or empty: then the block's outputs become act_scode(acc + y), the sum first copied to
    # total unless that is empty (tiles.sum_run, by address sum_at, on each tile row's two runs of output pixels);
    # output pixels ldy values apart (k, or a wider map's channels: see nnlite.ops.panels.panel_tiles_whole;
    # no acc then)
    v = np.empty(POSITIONS * block * c, np.float32)
    mm = np.empty(POSITIONS * block * k, np.float32)
    panels = (k + NR - 1) // NR
    per_image = th * tw
    for t0 in range(u0, u1, block):
        count = min(block, u1 - t0)
        for i in range(count):
            img, rest = divmod(t0 + i, per_image)
            ty, tx = divmod(rest, tw)
            _input_tile(xf, h, w, c, img, 2 * ty - top, 2 * tx - left, v, block * c, i * c)
        for pos in range(POSITIONS):
            vp = v[pos * block * c:(pos + 1) * block * c]
            mp = mm[pos * block * k:(pos + 1) * block * k]
            for p in range(panels):
                bound.call(tiles_at, "panel_tiles", (vp, c, taps, bases, packed, (pos * panels + p) * c * NR, NR,
                                                     nobias, LINEAR, alpha, mp, k, k, ZERO, count, p))
        for i in range(count):
            img, rest = divmod(t0 + i, per_image)
            ty, tx = divmod(rest, tw)
            _output_tile(mm, block * k, i * k, yf, oh, ow, k, ldy, img, 2 * ty, 2 * tx, bias, code, alpha)
        i = 0
        while acc.shape[0] and i < count:  # the block's tiles along one tile row at a time
            img, rest = divmod(t0 + i, per_image)
            ty, tx = divmod(rest, tw)
            run = min(count - i, tw - tx)
            for oy in range(2 * ty, min(oh, 2 * ty + 2)):
                start = ((img * oh + oy) * ow + 2 * tx) * k
                bound.call(sum_at, "sum_run", (yf, acc, total, start, start + (min(ow, 2 * (tx + run)) - 2 * tx) * k,
                                               scode, salpha))
            i += run


_blocks_parallel = drivers.driver(_blocks)
