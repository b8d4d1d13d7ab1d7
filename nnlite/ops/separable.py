"""Separable convolution, and a depthwise layer fused with the 1x1 conv after it.

:func:`depthwise_pointwise` computes act(pointwise(act_d(depthwise(x) + b_d)) + b) without writing the
depthwise output to memory: each thread computes a band of depthwise rows into a buffer that stays in L2
(:mod:`nnlite.ops.depthwise_simd`) and multiplies it by the pointwise kernel at once with
:mod:`nnlite.ops.gemm`'s tiles. :func:`separable_conv2d` (Keras's SeparableConv2D) uses it with the "simd"
engine; :mod:`nnlite.graph` pairs depthwise and 1x1 conv layers through it.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import types

from ..errors import ShapeError
from . import bound, buffers, checks, depthwise_stream, drivers, engine, machine, panels, parallel, prepack
from .activations import CODES, LAST_REGISTER_CODE, LINEAR, code_of
from .conv import _plain, _plain_input, cached_geometry, conv2d, prepare_conv2d
from .depthwise import depthwise_conv2d, prepare_depthwise_conv2d
from .jit import driven
from .padding import pair, resolve_padding_2d
from .prepare import chain, like, sum_of, summing
from .tiles import NR, ZERO, act_address, pack_address, pack_all_at, sum_address, sum_rows_at, zeros


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid", dilation=1,
                     activation=None, alpha=0.2):
    """Depthwise (kh, kw, cin, mult) then pointwise (1, 1, cin*mult, cout); bias and activation after both."""
    fast = prepare_separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias, stride=stride, padding=padding,
                                    dilation=dilation, activation=activation, alpha=alpha)
    if fast is not None:  # hot path (a model's layer): every argument already in final form
        return fast(x)
    pointwise_kernel = checks.array(pointwise_kernel, "separable_conv2d", "pointwise kernel (1, 1, cin*mult, cout)", 4)
    if (engine.simd() and np.ndim(depthwise_kernel) == 4 and np.shape(depthwise_kernel)[3] == 1):
        return depthwise_pointwise(x, depthwise_kernel, None, pointwise_kernel, bias, stride=stride,
                                   padding=padding, dilation=dilation, activation=activation, alpha=alpha)
    mid = depthwise_conv2d(x, depthwise_kernel, stride=stride, padding=padding, dilation=dilation)
    return conv2d(mid, pointwise_kernel, bias, activation=activation, alpha=alpha)


# Band and fusion sizes come from the L2 size (nnlite.ops.machine.blocking): a band of depthwise rows stays in
# L2 while the GEMM reads it.


def worth_fusing(rows: int, ow: int, cin: int, cout: int, threads: int) -> bool:
    """Fuse a depthwise layer of ``rows`` output rows (N*oh) with the 1x1 conv after it? Each band of depthwise
    rows multiplies by the whole pointwise kernel, so a kernel over ``fuse_max_weights`` (an eighth of L2)
    would stream from L3 once per band, which costs more than the memory pass fusing saves. Except when each
    thread has a single band (small maps: the late layers at batch 1) and the kernel fits in L2: it is then
    read once per thread, as the unfused 1x1 conv would read its share, and the depthwise output never
    crosses to another core's cache (benchmarks/RESULTS.md has the measurements)."""
    kernel = 4 * cin * cout
    blocking = machine.blocking()
    if kernel <= blocking.fuse_max_weights:
        return True
    band = max(1, blocking.separable_band // (4 * ow * cin))
    return -(-rows // max(1, threads)) <= band and kernel <= machine.caches().l2


def depthwise_pointwise(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, *, stride=1,
                        padding="valid", dilation=1, depthwise_activation=None, activation=None, alpha=0.2,
                        depthwise_alpha=0.2):
    """act(pointwise(act_d(depthwise(x) + depthwise_bias)) + pointwise_bias) without writing the depthwise
    output to memory: each thread computes a band of depthwise rows into a buffer that stays in L2 and
    multiplies it by the pointwise kernel at once (:func:`_separable_rows`); where :func:`worth_fusing` says
    no (a large pointwise kernel) the two run one after the other. The same arithmetic, in the same order,
    as depthwise_conv2d then conv2d with the "simd" engine, so results are bit-identical to them.
    Multiplier 1 only. depthwise_kernel (kh, kw, cin, 1), pointwise_kernel (1, 1, cin, cout)."""
    fast = prepare_depthwise_pointwise(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias,
                                       stride=stride, padding=padding, dilation=dilation,
                                       depthwise_activation=depthwise_activation, activation=activation, alpha=alpha,
                                       depthwise_alpha=depthwise_alpha)
    if fast is not None:  # hot path: nothing to convert
        return fast(x)
    x = np.ascontiguousarray(checks.nhwc(x, "separable_conv2d"))
    dk = checks.array(depthwise_kernel, "separable_conv2d", "depthwise kernel (kh, kw, cin, 1)", 4)
    pk = checks.array(pointwise_kernel, "separable_conv2d", "pointwise kernel (1, 1, cin, cout)", 4)
    kh, kw, cin, mult = dk.shape
    checks.channels("separable_conv2d", f"depthwise kernel of shape {dk.shape}", cin, x.shape[3])
    checks.channels("separable_conv2d", f"pointwise kernel of shape {pk.shape}", pk.shape[2], cin * mult)
    if mult != 1 or pk.shape[:2] != (1, 1):
        raise ShapeError(f"separable_conv2d: fused path needs multiplier 1 and a 1x1 pointwise kernel, got "
                         f"{dk.shape} and {pk.shape}")
    cout = pk.shape[3]
    db = checks.bias_vector(depthwise_bias, cin, "separable_conv2d")
    pb = checks.bias_vector(pointwise_bias, cout, "separable_conv2d")
    dcode, pcode = code_of(depthwise_activation, "separable_conv2d"), code_of(activation, "separable_conv2d")
    resolved = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    if not worth_fusing(x.shape[0] * resolved[0][2], resolved[1][2], cin, cout, parallel.numba_threads()):
        mid = depthwise_conv2d(x, dk, db, stride=stride, padding=padding, dilation=dilation,
                               activation=depthwise_activation, alpha=depthwise_alpha)
        return conv2d(mid, pk, pb, activation=activation, alpha=alpha)
    geo = _pair_geometry(x.shape, dk.shape, pk.shape, pair(stride, "stride"), pair(dilation, "dilation"), resolved)
    return _prepare_pair(x.shape[0], np.ascontiguousarray(dk), db, np.ascontiguousarray(pk), pb, dcode,
                         depthwise_alpha, pcode, alpha, geo)(x)


def prepare_depthwise_pointwise(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, *, stride=1,
                                padding="valid", dilation=1, depthwise_activation=None, activation=None, alpha=0.2,
                                depthwise_alpha=0.2, accumulate=None):
    """:func:`depthwise_pointwise` for inputs of ``x``'s shape as a function of the input alone (see
    :mod:`nnlite.ops.prepare`): the fused kernel, or the two layers' fast paths where it is not worth fusing;
    None unless those take these arguments.

    ``accumulate=(activation, alpha, keep)``: as ``f(x, acc)`` returning ``act(acc + y)`` and, with ``keep``,
    first ``acc + y`` itself: ``(acc + y, act(acc + y))``; y is this layer's output, never stored, and acc a
    C-contiguous float32 array of its shape (None for an activation add does not know). Each band (unfused:
    each block of the 1x1 conv's output) is summed while in cache, as :func:`nnlite.ops.add` sums (the same
    bits as ``add(acc, y, activation=...)``)."""
    if not engine.simd():
        return None
    geo = _fast_pair_geometry(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, stride,
                              padding, dilation, depthwise_activation, activation)
    if geo is None:  # not fused (see worth_fusing): the two layers one after the other, each prepared, the
        # 1x1 conv summing as it writes where there is a sum (its GEMM's blocks, nnlite.ops.conv.prepare_conv2d)
        first = prepare_depthwise_conv2d(x, depthwise_kernel, depthwise_bias, stride=stride, padding=padding,
                                         dilation=dilation, activation=depthwise_activation, alpha=depthwise_alpha)
        second = first and prepare_conv2d(like(first), pointwise_kernel, pointwise_bias, activation=activation,
                                          alpha=alpha, accumulate=accumulate)
        if accumulate is None or first is None or second is None:
            return chain(first, second)

        def chained_sum(x, acc):
            return second(first(x), acc)
        chained_sum.out_shape = second.out_shape
        return chained_sum
    if accumulate is not None:
        accumulate = sum_of(accumulate)
        if accumulate is None:
            return None
    return _prepare_pair(x.shape[0], depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias,
                         CODES[depthwise_activation], depthwise_alpha, CODES[activation], alpha, geo, accumulate)


def prepare_separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid",
                             dilation=1, activation=None, alpha=0.2, accumulate=None):
    """:func:`separable_conv2d` as :func:`prepare_depthwise_pointwise` prepares its fused path (else None)."""
    return prepare_depthwise_pointwise(x, depthwise_kernel, None, pointwise_kernel, bias, stride=stride,
                                       padding=padding, dilation=dilation, activation=activation, alpha=alpha,
                                       accumulate=accumulate)


@functools.lru_cache(maxsize=1024)
def _pair_geometry(x_shape, dk_shape, pk_shape, stride, dilation, resolved):
    """Shape-derived arguments of _separable_rows, and (rows, band, work); cached per layer shape."""
    n, h, w, cin = x_shape
    kh, kw = dk_shape[0], dk_shape[1]
    cout = pk_shape[3]
    (t, _, oh), (l, _, ow) = resolved
    rows = n * oh
    band = max(1, min(rows, machine.blocking().separable_band // (4 * ow * cin)))
    return (h, w, cin, kh, kw, *stride, *dilation, t, l, oh, ow, cout, rows, band,
            rows * ow * cin * (kh * kw + cout) // 4)


@functools.lru_cache(maxsize=1024)
def _fast_pair_key(x_shape, dk_shape, pk_shape, stride, padding, dilation, threads):
    if not (dk_shape[2] == x_shape[3] and dk_shape[3] == 1 and pk_shape[:3] == (1, 1, x_shape[3])):
        return None
    resolved = resolve_padding_2d(x_shape[1], x_shape[2], dk_shape[0], dk_shape[1], stride, dilation, padding)
    if not worth_fusing(x_shape[0] * resolved[0][2], resolved[1][2], x_shape[3], pk_shape[3], threads):
        return None
    return _pair_geometry(x_shape, dk_shape, pk_shape, pair(stride, "stride"), pair(dilation, "dilation"),
                          resolved)


def _fast_pair_geometry(x, dk, db, pk, pb, stride, padding, dilation, dact, act):
    """depthwise_pointwise's geometry when every argument is in final form and fusable, else None."""
    if not (_plain_input(x) and _plain(dk, 4) and _plain(pk, 4) and (db is None or _plain(db, 1))
            and (pb is None or _plain(pb, 1))):
        return None
    geo = cached_geometry(_fast_pair_key, (dact, act), x.shape, dk.shape, pk.shape, stride, padding, dilation,
                          parallel.numba_threads())
    if geo is None or (db is not None and db.shape[0] != x.shape[3]) or (pb is not None and pb.shape[0] != geo[13]):
        return None
    return geo


def _prepare_pair(n, dk, db, pk, pb, dcode, dalpha, pcode, alpha, geo, accumulate=None):
    """The fused pair for a batch of ``n`` as a function of x alone (see gemm.prepare), or of (x, acc) with
    ``accumulate`` (see prepare_depthwise_pointwise)."""
    h, w, cin, kh, kw, sh, sw, dh, dw, t, l, oh, ow, cout, rows, band, work = geo
    pre = prepack.panels(pk) if cout >= n * oh * ow else None  # more kernel than pixels: packed once
    w_ = prepack.as_writable  # read-only arrays as the writable type every kernel is compiled for (never written)
    head = (h, w, cin, w_(dk).reshape(-1), zeros(cin) if db is None else w_(db), kh, kw, sh, sw, dh, dw, t, l, dcode,
            np.float32(dalpha), w_(pk).reshape(-1), prepack.NONE if pre is None else pre,
            zeros(cout) if pb is None else w_(pb), pcode, np.float32(alpha))
    dw_rows_at = depthwise_stream.rows_address(h, w, kh, kw, sh, sw, dh, dw, l, ow)
    tail = (oh, ow, cout, band, bound.address("depthwise_rows"), panels.address(cin), act_address(dcode),
            act_address(pcode), dw_rows_at, machine.caches().l1d, machine.caches().l2,
            ZERO if accumulate is None else sum_address(accumulate[2]), 0 if pre is not None else pack_address(), ZERO)

    out_shape = (n, oh, ow, cout)
    none = (prepack.NONE, prepack.NONE, LINEAR, np.float32(0))

    def fused(x, _held=(dk, db, pk, pb)):  # _held: while their writable views are used
        y = buffers.empty(out_shape)
        parallel.split(_separable_rows, _separable_parallel, (x.reshape(-1), *head, *none, y.reshape(-1), *tail),
                       rows, work)
        return y
    if accumulate is None:
        fused.out_shape = out_shape
        return fused
    scode, salpha, keep = accumulate

    def run(x, acc, total, y, _held=(dk, db, pk, pb)):
        parallel.split(_separable_rows, _separable_parallel, (x.reshape(-1), *head, acc.reshape(-1), total.reshape(-1),
                                                              scode, salpha, y.reshape(-1), *tail), rows, work)
    return summing(out_shape, keep, run)


@driven
def _separable_rows(xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode, dalpha, pk, pre, pbias,
                    pcode, palpha, acc, total, scode, salpha, yf, oh, ow, cout, band, rows_at, tiles_at, dact_at,
                    pact_at, dw_rows_at, l1, l2, sum_at, pack_at, row_off, r0, r1):
    # Output rows [r0, r1) of depthwise_pointwise, ``band`` rows at a time: the depthwise rows go to ``mid``
    # (band*ow, c), then nnlite.ops.gemm's tiles multiply them by the pointwise kernel pk (c*cout,), packed
    # here or already (pre, from nnlite.ops.prepack; else empty).
    # rows_at, tiles_at: the bound.address of depthwise_rows and panel_tiles; dact_at, pact_at: tiles.act_address
    # of dcode and pcode; dw_rows_at, l1: depthwise_rows' own. acc (flat, as yf) or empty: each
    # band becomes act_scode(acc + band), the sum first copied to total unless that is empty (tiles.sum_rows_at,
    # by address sum_at, so that models without such sums never compile it; 0 without acc); pack_at:
    # tiles.pack_address() (0 with pre). Row r is stored at row r - row_off of yf (and of acc and total)
    mid = np.empty(band * ow * c, np.float32)
    panels = (cout + NR - 1) // NR
    if pre.shape[0]:
        packed = pre
    else:
        packed = np.empty(panels * c * NR, np.float32)  # the pointwise kernel packed once, for every band
        pack_all_at(pack_at, pk, c, cout, packed)
    bases = np.empty(band * ow, np.int64)  # each depthwise output pixel's offset in mid
    for i in range(band * ow):
        bases[i] = i * c
    taps = np.empty(1, np.int64)  # a 1x1 conv: one tap
    taps[0] = 0
    fused = pcode if pcode <= LAST_REGISTER_CODE else LINEAR
    for b0 in range(r0, r1, band):
        b1 = min(r1, b0 + band)
        bound.call(rows_at, "depthwise_rows", (xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode,
                                               dalpha, mid, oh, ow, b0, dact_at, dw_rows_at, l1, l2,
                                               b0, b1))
        out = yf[(b0 - row_off) * ow * cout:(b1 - row_off) * ow * cout]
        n_rows = (b1 - b0) * ow
        for p in range(panels):
            bound.call(tiles_at, "panel_tiles", (mid, c, taps, bases, packed, p * c * NR, NR, pbias, fused, palpha, out,
                                                 cout, cout, ZERO, n_rows, p))
        if pcode > LAST_REGISTER_CODE:
            bound.call(pact_at, "act_block", (out, cout, ZERO, n_rows, ZERO, cout, pcode, palpha))
        if acc.shape[0]:  # acc + y in add's order (nnlite.ops.shape._add_into), then its activation
            sum_rows_at(sum_at, yf, acc, total, cout, (b0 - row_off) * ow, (b1 - row_off) * ow, ZERO, cout, scode,
                        salpha)


_separable_parallel = drivers.driver(_separable_rows)
_F, _I = types.float32[::1], types.int64
bound.declare("separable_rows", _separable_rows, (_F, _I, _I, _I, _F, _F, *[_I] * 8, _I, types.float32, _F, _F, _F, _I,
                                                  types.float32, _F, _F, _I, types.float32, _F, *[_I] * 16))
