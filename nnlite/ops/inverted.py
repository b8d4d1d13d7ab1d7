"""The inverted-residual block in bands: 1x1 expand -> depthwise -> 1x1 project, the expanded map never in memory.

MobileNetV2 and EfficientNet widen a thin map six-fold with a 1x1 conv, filter it depthwise and project it
back. Run layer by layer, the widest map is written out and read back at once: MobileNetV2's second block
writes 112x112x96 floats (4.8 MB), more than L2 holds, so both passes go to L3 or memory. Here each thread
walks its output rows in bands: it expands just the input rows the band's depthwise taps need into a buffer
that stays in L2 (keeping the rows the next band shares with this one, so each row is expanded once per
thread), runs the depthwise rows on that buffer (:mod:`nnlite.ops.depthwise_simd`) and projects them with
:mod:`nnlite.ops.gemm`'s tiles, as :mod:`nnlite.ops.separable` does for a depthwise -> 1x1 pair.

Every value is computed by the same code in the same order as conv2d, then depthwise_conv2d, then conv2d
(the depthwise rows see the buffer as an image whose first row is the band's first input row), so the
result is bit-identical to the three layers. :mod:`nnlite.plan` fuses such layers in a model's plan; blocks
with kernels too large to re-read per band, or too few rows per thread (:func:`worth_fusing`), run as a 1x1
conv then the fused depthwise -> 1x1 pair.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import NnliteError
from . import bound, buffers, depthwise_stream, drivers, engine, machine, panels, parallel, prepack
from .activations import CODES, LAST_REGISTER_CODE, LINEAR
from .conv import _plain, _plain_input, cached_geometry, conv2d, prepare_conv2d
from .jit import driven
from .padding import pair, resolve_padding_2d
from .prepare import like
from .separable import depthwise_pointwise, prepare_depthwise_pointwise
from .shape import add
from .tiles import NR, ZERO, act_address, copy_run, pack_address, pack_all_at, zeros


def inverted_residual(x, expand_kernel, expand_bias, depthwise_kernel, depthwise_bias, pointwise_kernel,
                      pointwise_bias, *, stride=1, padding="valid", dilation=1, expand_activation=None,
                      depthwise_activation=None, activation=None, expand_alpha=0.2, depthwise_alpha=0.2, alpha=0.2,
                      residual=None):
    """depthwise_pointwise(conv2d(x, expand_kernel, expand_bias, activation=expand_activation), ...) with the
    expanded map kept in L2 band by band; bit-identical to the three ops. expand_kernel (1, 1, cin, e),
    depthwise_kernel (kh, kw, e, 1), pointwise_kernel (1, 1, e, cout); stride, padding and dilation are the
    depthwise's. ``residual`` (the output's shape), if given, is added to the result as ``add(residual, y)``
    adds it (a MobileNetV2 block's shortcut), band by band. Arguments that are not C-contiguous float32 arrays
    of those shapes, and blocks :func:`worth_fusing` turns down, run as the ops one after the other (which
    convert what they can and raise nnlite's errors)."""
    fast = prepare_inverted_residual(
        x, expand_kernel, expand_bias, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias,
        stride=stride, padding=padding, dilation=dilation, expand_activation=expand_activation,
        depthwise_activation=depthwise_activation, activation=activation, expand_alpha=expand_alpha,
        depthwise_alpha=depthwise_alpha, alpha=alpha, shortcut=residual is not None)
    if fast is not None and (residual is None or (_plain_input(residual) and residual.shape == fast.out_shape)):
        return fast(x, residual)
    mid = conv2d(x, expand_kernel, expand_bias, activation=expand_activation, alpha=expand_alpha)
    y = depthwise_pointwise(mid, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, stride=stride,
                            padding=padding, dilation=dilation, depthwise_activation=depthwise_activation,
                            depthwise_alpha=depthwise_alpha, activation=activation, alpha=alpha)
    return y if residual is None else add(residual, y)


def worth_fusing(n: int, h: int, kh: int, sh: int, dh: int, threads: int) -> bool:
    """Fuse unless each thread would expand many of its input rows twice: a thread's range of output rows
    needs the (kh - 1)*dh + 1 - sh input rows before it that the previous range also expands. Measured on
    MobileNetV2 and EfficientNet-Lite0 block shapes (benchmarks/RESULTS.md): as fast or faster fused
    wherever that overlap is at most half of a thread's rows; far faster on maps larger than L2."""
    overlap = max(0, (kh - 1) * dh + 1 - sh)
    return threads == 1 or 2 * overlap * threads <= n * h


@functools.lru_cache(maxsize=1024)
def _geometry(x_shape, ek_shape, dk_shape, pk_shape, stride, padding, dilation, threads):
    """Shape-derived arguments of _inverted_rows, and (rows, work); None when the block is not fused."""
    n, h, w, cin = x_shape
    e = ek_shape[3]
    kh, kw = dk_shape[0], dk_shape[1]
    cout = pk_shape[3]
    weights = machine.blocking().fuse_max_weights
    if not (ek_shape[:3] == (1, 1, cin) and dk_shape[2:] == (e, 1) and pk_shape[:3] == (1, 1, e)
            and cin * e * 4 <= weights and e * cout * 4 <= weights):
        return None
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    if not worth_fusing(n, h, kh, sh, dh, threads):
        return None
    (t, _, oh), (l, _, ow) = resolve_padding_2d(h, w, kh, kw, stride, dilation, padding)
    if oh <= 0 or ow <= 0:
        return None
    # band: output rows whose input rows (the ring) and depthwise rows fit in the depthwise->1x1 band budget
    budget = machine.blocking().separable_band
    band = 1
    while band < oh and (_ring(band + 1, sh, kh, dh) * w + (band + 1) * ow) * e * 4 <= budget:
        band += 1
    rows = n * oh
    work = (n * h * w * cin * e + rows * ow * e * (kh * kw + cout)) // 4
    return (h, w, cin, e, kh, kw, sh, sw, dh, dw, t, l, oh, ow, cout, band, min(h, _ring(band, sh, kh, dh)), rows,
            work)


def fused(x_shape, ek_shape, dk_shape, pk_shape, stride, padding, dilation) -> bool:
    """True when :func:`prepare_inverted_residual` runs a block of these shapes as its banded kernel at the
    current thread count (not the layers one after the other)."""
    try:
        return _geometry(tuple(x_shape), tuple(ek_shape), tuple(dk_shape), tuple(pk_shape), stride, padding, dilation,
                         parallel.numba_threads()) is not None
    except (TypeError, NnliteError):  # an unhashable or bad argument: the layers' own checks raise for it
        return False


def _ring(band: int, sh: int, kh: int, dh: int) -> int:
    """Input rows the depthwise taps of ``band`` consecutive output rows read."""
    return (band - 1) * sh + (kh - 1) * dh + 1


def _fast_geometry(x, ek, eb, dk, db, pk, pb, stride, padding, dilation, acts):
    if not (_plain_input(x) and _plain(ek, 4) and _plain(dk, 4) and _plain(pk, 4)
            and all(b is None or _plain(b, 1) for b in (eb, db, pb))):
        return None
    geo = cached_geometry(_geometry, acts, x.shape, ek.shape, dk.shape, pk.shape, stride, padding, dilation,
                          parallel.numba_threads())
    if geo is None:
        return None
    e, cout = geo[3], geo[14]
    if any(b is not None and b.shape[0] != size for b, size in ((eb, e), (db, e), (pb, cout))):
        return None
    return geo


def prepare_inverted_residual(x, expand_kernel, expand_bias, depthwise_kernel, depthwise_bias, pointwise_kernel,
                              pointwise_bias, *, stride=1, padding="valid", dilation=1, expand_activation=None,
                              depthwise_activation=None, activation=None, expand_alpha=0.2, depthwise_alpha=0.2,
                              alpha=0.2, shortcut=False):
    """:func:`inverted_residual` for inputs of ``x``'s shape as a function ``f(x, residual=None)`` (see
    :mod:`nnlite.ops.prepare`): the banded kernel, or the layers' fast paths where it is not worth fusing; None
    unless those take these arguments. With ``shortcut``, ``f(x, residual)`` needs the residual: the layers' path
    then sums it in the 1x1 projection's kernel, as the banded kernel does, rather than in an add after it."""
    if not engine.simd():
        return None
    geo = _fast_geometry(x, expand_kernel, expand_bias, depthwise_kernel, depthwise_bias, pointwise_kernel,
                         pointwise_bias, stride, padding, dilation,
                         (expand_activation, depthwise_activation, activation))
    if geo is None:  # not fused (see worth_fusing): the layers one after the other, each prepared
        expand = prepare_conv2d(x, expand_kernel, expand_bias, activation=expand_activation, alpha=expand_alpha)
        rest = expand and prepare_depthwise_pointwise(
            like(expand), depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, stride=stride,
            padding=padding, dilation=dilation, depthwise_activation=depthwise_activation,
            depthwise_alpha=depthwise_alpha, activation=activation, alpha=alpha,
            accumulate=("linear", 0.0, False) if shortcut else None)  # acc + y: add(residual, y)'s sum
        if expand is None or rest is None:
            return None
        if shortcut:
            def layers(x, residual):
                return rest(expand(x), residual)
        else:
            def layers(x, residual=None):
                y = rest(expand(x))
                return y if residual is None else add(residual, y)
        layers.out_shape = rest.out_shape
        return layers
    return _prepare(x.shape[0], expand_kernel, expand_bias, depthwise_kernel, depthwise_bias, pointwise_kernel,
                    pointwise_bias, CODES[expand_activation], expand_alpha, CODES[depthwise_activation],
                    depthwise_alpha, CODES[activation], alpha, geo)


def _prepare(n, ek, eb, dk, db, pk, pb, ecode, ealpha, dcode, dalpha, pcode, alpha, geo):
    h, w, cin, e, kh, kw, sh, sw, dh, dw, t, l, oh, ow, cout, band, ring, rows, work = geo
    weights = (ek, eb, dk, db, pk, pb)  # held by the function below while their writable views are used
    epre, ppre = prepack.panels(ek), prepack.panels(pk)  # frozen model weights: packed once, else per thread
    w_ = prepack.as_writable  # read-only arrays as the writable type every kernel is compiled for (never written)
    eb, db, pb = (zeros(size) if b is None else w_(b) for b, size in ((eb, e), (db, e), (pb, cout)))
    head = (h, w, cin, w_(ek).reshape(-1), prepack.NONE if epre is None else epre, eb, ecode, np.float32(ealpha),
            w_(dk).reshape(-1), db, kh, kw, sh, sw, dh, dw, t, l, dcode, np.float32(dalpha), w_(pk).reshape(-1),
            prepack.NONE if ppre is None else ppre, pb, pcode, np.float32(alpha))
    tail = (oh, ow, e, cout, band, ring, bound.address("depthwise_rows"), panels.address(max(cin, e)),
            act_address(ecode), act_address(dcode), act_address(pcode),
            depthwise_stream.rows_address(h, w, kh, kw, sh, sw, dh, dw, l, ow), machine.caches().l1d,
            machine.caches().l2, 0 if epre is not None and ppre is not None else pack_address())
    out_shape = (n, oh, ow, cout)

    def fused(x, residual=None, _weights=weights):
        y = buffers.empty(out_shape)
        res = prepack.NONE if residual is None else w_(residual).reshape(-1)
        parallel.split(_inverted_rows, _inverted_parallel, (w_(x).reshape(-1), *head, res, y.reshape(-1), *tail),
                       rows, work)
        return y
    fused.out_shape = out_shape
    return fused


@driven
def _inverted_rows(xf, h, w, cin, ek, epre, ebias, ecode, ealpha, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left,
                   dcode, dalpha, pk, ppre, pbias, pcode, palpha, res, yf, oh, ow, e, cout, band, ring, rows_at,
                   tiles_at, eact_at, dact_at, pact_at, dw_rows_at, l1, l2, pack_at, r0, r1):
    # Output rows r = n*oh + oy in [r0, r1), at most ``band`` rows of one image at a time. ``buf`` holds the
    # expanded input rows [k0, k1) of image ``have``; the next band keeps the rows it shares with them (moved to
    # the front) and expands only the rest. pre arrays: kernels packed once (nnlite.ops.prepack), or empty; res:
    # the residual added to the output (flat, as yf), or empty.
    # rows_at, tiles_at: bound.address of depthwise_rows and panel_tiles; *act_at: tiles.act_address of each code;
    # dw_rows_at, l1: depthwise_rows' own; pack_at: tiles.pack_address() (0 when both kernels come packed)
    buf = np.empty(ring * w * e, np.float32)
    mid = np.empty(band * ow * e, np.float32)
    epanels, ppanels = (e + NR - 1) // NR, (cout + NR - 1) // NR
    if epre.shape[0]:
        epacked = epre
    else:
        epacked = np.empty(epanels * cin * NR, np.float32)
        pack_all_at(pack_at, ek, cin, e, epacked)
    if ppre.shape[0]:
        ppacked = ppre
    else:
        ppacked = np.empty(ppanels * e * NR, np.float32)
        pack_all_at(pack_at, pk, e, cout, ppacked)
    ebases = np.empty(ring * w, np.int64)  # each input pixel's offset from the first expanded row's
    for i in range(ring * w):
        ebases[i] = i * cin
    pbases = np.empty(band * ow, np.int64)  # each depthwise output pixel's offset in mid
    for i in range(band * ow):
        pbases[i] = i * e
    taps = np.empty(1, np.int64)  # 1x1 convs: one tap
    taps[0] = 0
    efused = ecode if ecode <= LAST_REGISTER_CODE else LINEAR
    pfused = pcode if pcode <= LAST_REGISTER_CODE else LINEAR
    have, k0, k1 = -1, ZERO, ZERO
    r = r0
    while r < r1:
        n = r // oh
        oy0 = r - n * oh
        oy1 = min(oh, oy0 + band, oy0 + r1 - r)
        e0 = min(max(oy0 * sh - top_pad, 0), h)  # the input rows the band's taps read, clipped to the image
        e1 = max(min((oy1 - 1) * sh - top_pad + (kh - 1) * dh + 1, h), e0)
        start = e0
        if have == n and k0 <= e0 < k1:  # rows [e0, k1) are already expanded: move them to the front
            keep = min(k1, e1) - e0
            shift = (e0 - k0) * w * e
            if shift:
                copy_run(buf, shift, buf, ZERO, keep * w * e)  # ascending: safe where the two ranges overlap
            start = e0 + keep
        if e1 > start:
            count = (e1 - start) * w
            first = (n * h + start) * w * cin
            xs = xf[first:first + count * cin]
            out = buf[(start - e0) * w * e:(e1 - e0) * w * e]
            for p in range(epanels):
                bound.call(tiles_at, "panel_tiles", (xs, cin, taps, ebases, epacked, p * cin * NR, NR, ebias, efused,
                                                     ealpha, out, e, e, ZERO, count, p))
            if ecode > LAST_REGISTER_CODE:
                bound.call(eact_at, "act_block", (out, e, ZERO, count, ZERO, e, ecode, ealpha))
        have, k0, k1 = n, e0, e1
        # the buffer as an image of e1 - e0 rows whose row 0 is input row e0 (rows r' = oy < oh: image 0)
        bound.call(rows_at, "depthwise_rows", (buf, e1 - e0, w, e, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad + e0,
                                               left, dcode, dalpha, mid, oh, ow, oy0, dact_at, dw_rows_at, l1, l2,
                                               oy0, oy1))
        n_rows = (oy1 - oy0) * ow
        out = yf[r * ow * cout:(r * ow + n_rows) * cout]
        for p in range(ppanels):
            bound.call(tiles_at, "panel_tiles", (mid, e, taps, pbases, ppacked, p * e * NR, NR, pbias, pfused, palpha,
                                                 out, cout, cout, ZERO, n_rows, p))
        if pcode > LAST_REGISTER_CODE:
            bound.call(pact_at, "act_block", (out, cout, ZERO, n_rows, ZERO, cout, pcode, palpha))
        if res.shape[0]:  # the shortcut, while the band is in L1/L2: y + res is add(res, y)'s sum (a + b == b + a)
            rs = res[r * ow * cout:(r * ow + n_rows) * cout]
            for i in range(n_rows * cout):
                out[i] += rs[i]
        r += oy1 - oy0


_inverted_parallel = drivers.driver(_inverted_rows)
