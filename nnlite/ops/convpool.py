"""A convolution and the max pooling right after it, as one kernel: the conv output never goes to memory.

A detector's first layer writes a large map that the pool reads back at once (TinyFaceDetector's 416x416
input: a 414x414x16 conv output, 11 MB, pooled to 207x207). Here each thread computes a band of conv rows
into a buffer that stays in L2 (:mod:`nnlite.ops.gemm`'s tiles, with the conv kernel packed once per
thread) and pools it straight into the output. The conv rows are computed by the same code in the same
order as :func:`nnlite.ops.conv2d`, and the max is taken as :func:`nnlite.ops.max_pool2d` takes it
(windows clipped to the map: padded cells never win), so the result is bit-identical to the two ops.
Needs the "simd" conv engine; a convolution that conv2d runs by Winograd's method (:mod:`nnlite.ops.winograd`)
runs as conv2d, then the pool, to keep those bits; :mod:`nnlite.graph` pairs such layers in a model's plan.
"""

from __future__ import annotations

import numpy as np
from numba import types

from . import bound, buffers, checks, conv, drivers, engine, machine, panels, parallel, prepack
from .activations import LAST_REGISTER_CODE, LINEAR, code_of
from .gemm import NO_PAD, layout, pad_geometry
from .jit import driven, helper, inlined
from .padding import pair, resolve_padding_2d
from .simd import vload_n, vselect_gt, vsplat, vstore_n
from .tiles import NR, ZERO, act_address, pack_address, pack_all_at
from .workspace import scratch


def conv2d_max_pool(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2,
                    pool_size=2, pool_stride=None, pool_padding="valid"):
    """max_pool2d(conv2d(x, kernel, bias, ...), pool_size, pool_stride, pool_padding) in one pass.
    Arguments as those two ops take them; pool_stride None means pool_size."""
    x = np.ascontiguousarray(checks.nhwc(x, "conv2d_max_pool"))
    kernel = np.ascontiguousarray(checks.array(kernel, "conv2d_max_pool", "kernel (kh, kw, cin, cout)", 4))
    kh, kw, cin, cout = kernel.shape
    checks.channels("conv2d_max_pool", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cout, "conv2d_max_pool")
    code = code_of(activation, "conv2d_max_pool")
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    lay = layout(x.shape, kernel.shape, (sh, sw), (dh, dw), (t, b, l, r), (oh, ow))
    if not engine.simd() or (lay.winograd and code <= LAST_REGISTER_CODE):  # conv2d's own result, then the pool
        from .pooling import max_pool2d
        y = conv.conv2d(x, kernel, bias, stride=stride, padding=padding, dilation=dilation, activation=activation,
                        alpha=alpha)
        return max_pool2d(y, pool_size=pool_size, stride=pool_stride, padding=pool_padding)
    ph, pw = pair(pool_size, "conv2d_max_pool pool_size")
    psh, psw = (ph, pw) if pool_stride is None else pair(pool_stride, "conv2d_max_pool pool_stride")
    checks.pool_padding(pool_padding, ph, pw, "conv2d_max_pool")
    (pt, _, poh), (pl, _, pow_) = resolve_padding_2d(oh, ow, ph, pw, (psh, psw), 1, pool_padding)
    if t or b or l or r:  # each band pads the input rows it reads (see gemm.pad_geometry)
        xp = scratch("gemm_pad", (x.shape[0], x.shape[1] + t + b, x.shape[2] + l + r, cin))
        pad = pad_geometry(lay)
    else:
        xp, pad = x, NO_PAD
    n = x.shape[0]
    y = buffers.empty((n, poh, pow_, cout))
    rows = n * poh
    band = max(1, machine.blocking().convpool_band // (4 * ow * cout * psh))  # pooled rows per band: in L2
    bias = np.zeros(cout, np.float32) if bias is None else prepack.as_writable(bias)  # (the caller holds bias)
    args = (xp.reshape(-1), lay.run, lay.taps, lay.bases, prepack.as_writable(kernel).reshape(-1), bias, code,
            np.float32(alpha), cout, oh, ow, ph, pw, psh, psw, pt, pl, poh, pow_, y.reshape(-1), band,
            panels.address(lay.run * lay.taps.shape[0]), act_address(code), x.reshape(-1), pad,
            bound.address("pad_for_rows") if pad.shape[0] else 0, pack_address())
    parallel.split(_conv_pool_rows, _conv_pool_parallel, args, rows, lay.work)
    return y


@driven
def _conv_pool_rows(xf, run, taps, bases, k, bias, code, alpha, cout, oh, ow, ph, pw, psh, psw, ptop, pleft, poh,
                    pow_, y, band, tiles_at, act_at, src, pad, pad_at, pack_at, r0, r1):
    # pooled rows R = n*poh + py in [r0, r1), ``band`` of them at a time, never across images: the conv rows
    # they need, [a, e) of image n, are computed into ``buf`` and max-pooled into y (flat (N*poh*pow_*cout,));
    # pad: empty, or the geometry (gemm.pad_geometry) with which each band first pads the input rows it reads
    # from src into xf, by pad_at: bound.address("pad_for_rows") (0 when pad is empty); the kernel is packed
    # through pack_at: tiles.pack_address()
    kk = taps.shape[0] * run
    panels = (cout + NR - 1) // NR
    packed = np.empty(panels * kk * NR, np.float32)
    pack_all_at(pack_at, k, kk, cout, packed)
    fused = code if code <= LAST_REGISTER_CODE else LINEAR
    buf = np.empty(((band - 1) * psh + ph) * ow * cout, np.float32)
    b0 = r0
    while b0 < r1:
        n, b1, py0, py1, a, e = pooled_band(b0, r1, band, poh, psh, ptop, ph, oh)  # conv rows [a, e) of image n
        if e > a:
            pix = (n * oh + a) * ow
            if pad.shape[0]:  # the input rows conv rows [a, e) read
                bound.call(pad_at, "pad_for_rows", (src, xf, pad, pix, pix + (e - a) * ow))
            m = (e - a) * ow
            for p in range(panels):
                rows = bases[pix:pix + m]
                bound.call(tiles_at, "panel_tiles", (xf, run, taps, rows, packed, p * kk * NR, NR, bias, fused, alpha,
                                                     buf, cout, cout, ZERO, m, p))
            if code > LAST_REGISTER_CODE:
                bound.call(act_at, "act_block", (buf, cout, ZERO, m, ZERO, cout, code, alpha))
        max_pool_band(buf, a, oh, ow, cout, ph, pw, psh, psw, ptop, pleft, poh, pow_, n, py0, py1, y)
        b0 = b1


@inlined
def pooled_band(b0, r1, band, poh, psh, ptop, ph, oh):
    """The band of pooled rows from R = b0 (R = n*poh + py): at most ``band`` rows, not past r1 nor image n's
    last; returns (n, its end b1, its rows py0..py1 of image n, the rows [a, e) of the map they read, e >= a)."""
    n = b0 // poh
    b1 = min(r1, b0 + band, (n + 1) * poh)
    py0, py1 = b0 - n * poh, b1 - n * poh
    a = max(0, py0 * psh - ptop)
    return n, b1, py0, py1, a, max(min(oh, (py1 - 1) * psh - ptop + ph), a)


@helper
def max_pool_band(buf, a, oh, ow, c, ph, pw, psh, psw, ptop, pleft, poh, pow_, n, py0, py1, y):
    """Pooled rows [py0, py1) of image n into y (flat (N*poh*pow_*c,)) from ``buf``: the rows [a, ...) of the
    map being pooled (oh, ow, c) that they read, windows clipped to the map, the max taken as max_pool2d takes
    it (taps row by row from -inf, ``v if v > acc else acc``: padded cells and NaN never win)."""
    start = vsplat(np.float32(-np.inf))
    for py in range(py0, py1):
        i0, i1 = max(py * psh - ptop, 0), min(py * psh - ptop + ph, oh)
        for px in range(pow_):
            j0, j1 = max(px * psw - pleft, 0), min(px * psw - pleft + pw, ow)
            out = ((n * poh + py) * pow_ + px) * c
            for c0 in range(0, c, 16):  # 16 channels in a register
                width = min(16, c - c0)
                acc = start
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        v = vload_n(buf, ((i - a) * ow + j) * c + c0, width)
                        acc = vselect_gt(v, acc, v, acc)
                vstore_n(y, out + c0, acc, width)


_conv_pool_parallel = drivers.driver(_conv_pool_rows)
_F, _I = types.float32[::1], types.int64
bound.declare("max_pool_band", max_pool_band, (_F, *[_I] * 15, _F))

