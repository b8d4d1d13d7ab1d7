"""A separable convolution and the max pooling right after it, as one kernel: its output never goes to memory.

Xception-like blocks (face-api.js's age/gender net) and TinyFaceDetector pool every separable convolution's
output at once: a map written whole, then read back by the pool (the age/gender net's first one: 56x56x64 per
image, 6.4 MB at batch 8). Here each thread computes a band of the convolution's rows into a buffer that stays
in L2, as :mod:`nnlite.ops.separable` computes them (a band of depthwise rows, then the 1x1 conv by
:mod:`nnlite.ops.gemm`'s tiles), and pools it straight into the output as :mod:`nnlite.ops.convpool` does; the
rows a band's first pooled row shares with the previous band's last are moved to the buffer's front, not
computed again (recomputing them cost the age/gender net's 3x3 stride-2 pools a ninth more convolution work).
The same arithmetic in the same order as :func:`nnlite.ops.separable_conv2d` then
:func:`nnlite.ops.max_pool2d`: bit-identical to the two ops. :mod:`nnlite.plan` pairs such layers in a model's
plan (:class:`nnlite.plan.SeparablePoolStep`).
"""

from __future__ import annotations

import numpy as np

from ..errors import NnliteError
from . import bound, buffers, depthwise_stream, drivers, engine, machine, panels, parallel, prepack
from .activations import CODES, LINEAR
from .convpool import pooled_band  # (convpool declares max_pool_band, called by address here)
from .jit import driven
from .pooling import _geometry as pool_geometry
from .pooling import max_pool2d, prepare_pool2d
from .prepare import chain, like
from .separable import _fast_pair_geometry, prepare_separable_conv2d, separable_conv2d
from .tiles import ZERO, act_address, copy_run, zeros


def separable_max_pool(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid", dilation=1,
                       activation=None, alpha=0.2, pool_size=2, pool_stride=None, pool_padding="valid"):
    """max_pool2d(separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias, ...), pool_size, pool_stride,
    pool_padding) in one pass where :func:`prepare_separable_max_pool` takes the arguments, else the two ops.
    Arguments as those two ops take them; pool_stride None means pool_size."""
    fused = prepare_separable_max_pool(x, depthwise_kernel, pointwise_kernel, bias, stride=stride, padding=padding,
                                       dilation=dilation, activation=activation, alpha=alpha, pool_size=pool_size,
                                       pool_stride=pool_stride, pool_padding=pool_padding)
    if fused is not None:
        return fused(x)
    y = separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias, stride=stride, padding=padding,
                         dilation=dilation, activation=activation, alpha=alpha)
    return max_pool2d(y, pool_size=pool_size, stride=pool_stride, padding=pool_padding)


def prepare_separable_max_pool(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid",
                               dilation=1, activation=None, alpha=0.2, pool_size=2, pool_stride=None,
                               pool_padding="valid"):
    """:func:`separable_max_pool` for inputs of ``x``'s shape as a function of the input alone (see
    :mod:`nnlite.ops.prepare`): the fused kernel where it takes these arguments as they are (the "simd" engine,
    a C-contiguous float32 input and weights, multiplier 1, a separable convolution that
    :mod:`nnlite.ops.separable` fuses itself: a 1x1 kernel small enough to stay in cache), else the two ops'
    prepared calls one after the other; None unless those take these arguments."""
    fused = _prepare_fused(x, depthwise_kernel, pointwise_kernel, bias, stride, padding, dilation, activation, alpha,
                           pool_size, pool_stride, pool_padding)
    if fused is not None:
        return fused
    first = prepare_separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias, stride=stride, padding=padding,
                                     dilation=dilation, activation=activation, alpha=alpha)
    return chain(first, first and prepare_pool2d(like(first), pool_size=pool_size, stride=pool_stride,
                                                 padding=pool_padding, is_max=True))


def _prepare_fused(x, depthwise_kernel, pointwise_kernel, bias, stride, padding, dilation, activation, alpha,
                   pool_size, pool_stride, pool_padding):
    if not engine.simd():
        return None
    # None too for an activation nnlite does not know, or an unhashable one (the two ops raise nnlite's error)
    geo = _fast_pair_geometry(x, depthwise_kernel, None, pointwise_kernel, bias, stride, padding, dilation, None,
                              activation)
    if geo is None:
        return None
    h, w, cin, kh, kw, sh, sw, dh, dw, t, l, oh, ow, cout, rows, _, work = geo
    try:
        ph, pw, psh, psw, pt, pl, out_shape = pool_geometry((x.shape[0], oh, ow, cout), pool_size, pool_stride,
                                                            pool_padding, "max_pool2d")
    except NnliteError:   # the pool's own checks raise it when the two ops run
        return None
    n, poh, pow_ = out_shape[:3]
    if poh <= 0 or pow_ <= 0:
        return None
    # pooled rows per band: their convolution rows, depthwise and pointwise, in the conv->pool band (L2); a
    # pointwise kernel too large to stay in cache beside them (fused only where each thread has one band of
    # rows: separable.worth_fusing) is read once per thread, all its rows in one band
    blocking = machine.blocking()
    band = max(1, blocking.convpool_band // (4 * ow * (cin + cout) * psh))
    if 4 * cin * cout > blocking.fuse_max_weights:
        band = max(band, -(-n * poh // max(1, parallel.numba_threads())))
    band = min(band, poh)
    pcode = CODES[activation]
    pre = prepack.panels_now(pointwise_kernel)  # packed here: each band's call would pack it again
    w_ = prepack.as_writable  # read-only arrays as the writable type every kernel is compiled for (never written)
    head = (h, w, cin, w_(depthwise_kernel).reshape(-1), zeros(cin), kh, kw, sh, sw, dh, dw, t, l, LINEAR,
            np.float32(0.2), w_(pointwise_kernel).reshape(-1), pre,
            zeros(cout) if bias is None else w_(bias), pcode, np.float32(alpha), oh, ow, cout, ph, pw, psh, psw, pt,
            pl, poh, pow_)
    tail = (band, bound.address("depthwise_rows"), panels.address(cin), act_address(LINEAR),
            act_address(pcode), depthwise_stream.rows_address(h, w, kh, kw, sh, sw, dh, dw, l, ow),
            machine.caches().l1d, machine.caches().l2, bound.address("separable_rows"), bound.address("max_pool_band"))

    def fused(x, _held=(depthwise_kernel, pointwise_kernel, bias)):  # _held: while their writable views are used
        y = buffers.empty(out_shape)
        parallel.split(_separable_pool_rows, _separable_pool_parallel, (x.reshape(-1), *head, y.reshape(-1), *tail),
                       n * poh, work)
        return y
    fused.out_shape = out_shape
    return fused


@driven
def _separable_pool_rows(xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode, dalpha, pk, pre,
                         pbias, pcode, palpha, oh, ow, cout, ph, pw, psh, psw, ptop, pleft, poh, pow_, y, band,
                         rows_at, tiles_at, dact_at, pact_at, dw_rows_at, l1, l2, sep_at, pool_at, r0, r1):
    # pooled rows R = n*poh + py in [r0, r1), ``band`` of them at a time, never across images: the convolution
    # rows they read, [a, e) of image n, are computed into ``buf`` by nnlite.ops.separable._separable_rows (by
    # address sep_at: this kernel compiles none of its code again; pre: its packed pointwise kernel), then
    # max-pooled into y (flat (N*poh*pow_*cout,)) by convpool.max_pool_band (pool_at). Other arguments are
    # _separable_rows'.
    span = (band - 1) * psh + ph
    buf = np.empty(span * ow * cout, np.float32)
    have, k0, k1 = -1, ZERO, ZERO  # buf holds the convolution rows [k0, k1) of image ``have``
    b0 = r0
    while b0 < r1:
        n, b1, py0, py1, a, e = pooled_band(b0, r1, band, poh, psh, ptop, ph, oh)  # convolution rows [a, e)
        start = a
        if have == n and k0 <= a < k1:  # rows [a, k1) the last band computed: moved to the front, not again
            keep = min(k1, e) - a
            shift = (a - k0) * ow * cout
            if shift:
                copy_run(buf, shift, buf, ZERO, keep * ow * cout)  # ascending: safe where the ranges overlap
            start = a + keep
        if e > start:  # rows [start, e) of image n, stored from row start - a of buf
            base = n * oh
            none = pre[:0]  # no sum: an empty array of the argument's type (a global one would be read-only)
            bound.call(sep_at, "separable_rows", (xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode,
                                                  dalpha, pk, pre, pbias, pcode, palpha, none, none, LINEAR,
                                                  np.float32(0), buf, oh, ow, cout, e - start, rows_at, tiles_at,
                                                  dact_at, pact_at, dw_rows_at, l1, l2, ZERO, ZERO, base + a,
                                                  base + start, base + e))
        have, k0, k1 = n, a, e
        bound.call(pool_at, "max_pool_band", (buf, a, oh, ow, cout, ph, pw, psh, psw, ptop, pleft, poh, pow_, n, py0,
                                              py1, y))
        b0 = b1


_separable_pool_parallel = drivers.driver(_separable_pool_rows)
