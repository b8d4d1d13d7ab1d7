"""An integer dot product of packed 4-bit codes with 16-bit weights, for the face index's coarse scan.

A byte of codes holds two nibbles, ``e + 16 o`` (an even and an odd dimension). :func:`nibble_dot` takes up to
64 such bytes and returns, as one integer, ``sum_i we_i * e_i + wo_i * o_i`` for 16-bit integer weights. Each
weight is stored as two signed bytes, ``w = 256 hi + lo`` (:func:`quantize` lays them out), so that on a CPU
with AVX-512 VNNI the sum is four ``vpdpbusd`` instructions (64 byte products summed into 16 lanes each) on the
nibbles as they are, with no widening; with AVX2, eight ``vpmaddubsw`` (pairs of byte products summed into 16-bit
lanes: at most 2 * 15 * 128, so never saturated) and four ``vpmaddwd`` (pairs of those into 32-bit lanes, the high
bytes' times 256); elsewhere portable LLVM vector IR in 32-bit lanes (:data:`MODE`). It is a Numba
``@intrinsic``. Integer sums are exact, so the only error against float weights is their rounding to 16 bits,
which :func:`quantize` bounds. The naive twin is :func:`nibble_dot_reference`.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..ops import compile_notice  # noqa: F401  (before any kernel can compile)
from ..ops.engine import numba_compiles_for

BYTES = 64     # code bytes per call (a 128-d descriptor's coarse nibbles)
RUN = 4 * BYTES  # weight bytes per call: even hi, even lo, odd hi, odd lo
_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)


def _mode() -> str:
    """"vnni" where Numba compiles for a CPU with AVX-512 VNNI (512-bit ``vpdpbusd``), "avx2" with AVX2, else
    "portable". Numba told to compile for another CPU (``NUMBA_CPU_NAME``, e.g. "generic") without those features
    in ``NUMBA_CPU_FEATURES`` gets the portable IR: LLVM cannot emit an instruction its target lacks."""
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features().flatten().split(",")
    except Exception:   # no feature list on this platform: the portable IR
        return "portable"
    if "+avx512vnni" in features and "+avx512bw" in features and numba_compiles_for("avx512vnni", "avx512bw"):
        return "vnni"
    return "avx2" if "+avx2" in features and numba_compiles_for("avx2") else "portable"


MODE = _mode()


def _call(builder, name, ret, args):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, [a.type for a in args]), name)
    return builder.call(fn, args)


def _row_total(context, builder, sig, code_arr, off, w_arr, woff, n):
    """One row's products as a vector of 32-bit sums (16 lanes with VNNI, 8 with AVX2, else 64); their sum is the
    dot."""
    v8 = ir.VectorType(_I8, BYTES)
    data = context.make_array(sig.args[0])(context, builder, code_arr).data
    ptr = builder.bitcast(builder.gep(data, [off]), v8.as_pointer())
    on = builder.icmp_signed(">", n, ir.Constant(_I64, 0))   # lanes below count: count low bits of a word
    bits = builder.select(on, builder.lshr(ir.Constant(_I64, -1), builder.sub(ir.Constant(_I64, BYTES), n)),
                          ir.Constant(_I64, 0))
    name = f"llvm.masked.load.v{BYTES}i8.{'p0' if getattr(ptr.type, 'is_opaque', False) else f'p0v{BYTES}i8'}"

    def masked():
        return _call(builder, name, v8, [ptr, ir.Constant(_I32, 1), builder.bitcast(bits, ir.VectorType(
            ir.IntType(1), BYTES)), ir.Constant(v8, [0] * BYTES)])
    if MODE == "vnni":   # AVX-512BW masks bytes in one load
        packed = masked()
    else:   # no byte masks below AVX-512: LLVM loads a masked vector byte by byte, so a whole one loads plainly
        with builder.if_else(builder.icmp_signed(">=", n, ir.Constant(_I64, BYTES))) as (whole, part):
            with whole:
                plain, from_whole = builder.load(ptr, align=1), builder.block
            with part:
                partial, from_part = masked(), builder.block
        packed = builder.phi(v8)
        packed.add_incoming(plain, from_whole)
        packed.add_incoming(partial, from_part)
    nibbles = (builder.and_(packed, ir.Constant(v8, [15] * BYTES)), builder.lshr(packed, ir.Constant(v8, [4] * BYTES)))
    wdata = context.make_array(sig.args[2])(context, builder, w_arr).data
    planes = [builder.load(builder.bitcast(builder.gep(wdata, [builder.add(woff, ir.Constant(_I64, i * BYTES))]),
                                           v8.as_pointer()), align=1) for i in range(4)]
    if MODE == "vnni":   # u8 x s8 products, four summed into each 32-bit lane
        v32 = ir.VectorType(_I32, 16)
        as32 = [builder.bitcast(v, v32) for v in (*nibbles, *planes)]
        dot = "llvm.x86.avx512.vpdpbusd.512"
        zero = ir.Constant(v32, [0] * 16)
        high = _call(builder, dot, v32, [_call(builder, dot, v32, [zero, as32[0], as32[2]]), as32[1], as32[4]])
        low = _call(builder, dot, v32, [_call(builder, dot, v32, [zero, as32[0], as32[3]]), as32[1], as32[5]])
        return builder.add(builder.shl(high, ir.Constant(v32, [8] * 16)), low)
    if MODE == "avx2":
        return _row_total_avx2(builder, nibbles, planes)
    v32 = ir.VectorType(_I32, BYTES)   # portable: 32-bit lanes
    even, odd = (builder.zext(v, v32) for v in nibbles)
    w = [builder.sext(v, v32) for v in planes]
    high = builder.add(builder.mul(even, w[0]), builder.mul(odd, w[2]))
    low = builder.add(builder.mul(even, w[1]), builder.mul(odd, w[3]))
    return builder.add(builder.shl(high, ir.Constant(v32, [8] * BYTES)), low)


def _row_total_avx2(builder, nibbles, planes):
    """<8 x i32> whose sum is the row's dot: per 32-byte half, ``vpmaddubsw`` of each nibble plane with each weight
    plane (u8 x s8, pairs summed into i16: |2 * 15 * 128| < 2^15, exact), the even and odd nibbles' sums added in
    i16 (< 2^14), then ``vpmaddwd`` of the high bytes' sums by 256 and the low bytes' by 1 into i32."""
    v16x16 = ir.VectorType(ir.IntType(16), 16)
    halves = [list(range(32)), list(range(32, 64))]

    def half(v, h):
        return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, 32), halves[h]))

    def maddubs(a, b):
        return _call(builder, "llvm.x86.avx2.pmadd.ub.sw", v16x16, [a, b])

    def maddwd(a, factor):
        return _call(builder, "llvm.x86.avx2.pmadd.wd", ir.VectorType(_I32, 8), [a, ir.Constant(v16x16, [factor] * 16)])

    total = None
    for h in range(2):
        even, odd = half(nibbles[0], h), half(nibbles[1], h)
        w = [half(p, h) for p in planes]
        high = builder.add(maddubs(even, w[0]), maddubs(odd, w[2]))
        low = builder.add(maddubs(even, w[1]), maddubs(odd, w[3]))
        part = builder.add(maddwd(high, 256), maddwd(low, 1))
        total = part if total is None else builder.add(total, part)
    return total


def _reduce(builder, v):
    return builder.sext(_call(builder, f"llvm.vector.reduce.add.v{v.type.count}i32", _I32, [v]), _I64)


def _halve(builder, a, b, width):
    """Lanes of a and b summed in pairs of blocks of ``width``: (a0+a1, b0+b1, a2+a3, ...) laid out a's then b's."""
    lanes = a.type.count
    first = [i + j for i in range(0, lanes, 2 * width) for j in range(width)]
    first = first + [lanes + i for i in first]
    second = [i + width for i in first]
    pick = lambda idx: builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(idx)), idx))  # noqa: E731
    return builder.add(pick(first), pick(second))


def _types_ok(codes, weights) -> bool:
    return (isinstance(codes, types.Array) and codes.dtype == types.uint8 and isinstance(weights, types.Array)
            and weights.dtype == types.int8)


@intrinsic
def nibble_dot(typingctx, codes, offset, weights, woffset, count):
    """sum_i w_even[i] * (codes[offset + i] & 15) + w_odd[i] * (codes[offset + i] >> 4) for i < count (<= 64),
    the weights read from ``weights[woffset : woffset + 256]`` (int8, :func:`quantize`'s layout). Reads no
    code byte past count."""
    if not _types_ok(codes, weights):
        return None

    def codegen(context, builder, sig, args):
        return _reduce(builder, _row_total(context, builder, sig, *args))
    return types.int64(codes, types.intp, weights, types.intp, types.intp), codegen


@intrinsic
def nibble_dot4(typingctx, codes, offset, stride, weights, woffset, count):
    """nibble_dot of four rows, at codes[offset + r * stride] for r < 4, as a tuple; their four sums are
    reduced together (fewer instructions a row than four separate reductions)."""
    if not _types_ok(codes, weights):
        return None

    def codegen(context, builder, sig, args):
        code_arr, off, stride, w_arr, woff, n = args
        inner = types.int64(sig.args[0], types.intp, sig.args[3], types.intp, types.intp)
        rows = [_row_total(context, builder, inner, code_arr, builder.add(off, builder.mul(stride, ir.Constant(
            _I64, r))), w_arr, woff, n) for r in range(4)]
        if MODE == "vnni":   # 4 x 16 lanes -> 2 x (8 + 8) -> 4 x 4 -> 4 x 2 -> 4 x 1
            pair01, pair23 = _halve(builder, rows[0], rows[1], 8), _halve(builder, rows[2], rows[3], 8)
            four = _halve(builder, pair01, pair23, 4)   # 16 lanes: each row's 4 partial sums, row by row
            two = _halve(builder, four, four, 2)        # 32 lanes, the first 8: each row's 2 partial sums
            two = builder.shuffle_vector(two, two, ir.Constant(ir.VectorType(_I32, 8), list(range(8))))
            one = _halve(builder, two, two, 1)          # 8 lanes, the first 4: the rows' sums
            sums = [builder.sext(builder.extract_element(one, ir.Constant(_I32, r)), _I64) for r in range(4)]
        elif MODE == "avx2":   # 4 x 8 lanes -> 2 x (4 + 4) -> 4 x 2 -> 4 x 1
            pair01, pair23 = _halve(builder, rows[0], rows[1], 4), _halve(builder, rows[2], rows[3], 4)
            two = _halve(builder, pair01, pair23, 2)    # 8 lanes: each row's 2 partial sums, row by row
            one = _halve(builder, two, two, 1)          # 8 lanes, the first 4: the rows' sums
            sums = [builder.sext(builder.extract_element(one, ir.Constant(_I32, r)), _I64) for r in range(4)]
        else:
            sums = [_reduce(builder, v) for v in rows]
        return context.make_tuple(builder, sig.return_type, sums)
    return types.UniTuple(types.int64, 4)(codes, types.intp, types.intp, weights, types.intp, types.intp), codegen


def nibble_dot_reference(codes: np.ndarray, offset: int, weights: np.ndarray, woffset: int, count: int) -> int:
    """nibble_dot in plain NumPy integers."""
    b = codes[offset:offset + count].astype(np.int64)
    w = weights[woffset:woffset + RUN].astype(np.int64).reshape(4, BYTES)[:, :count]
    return int(((256 * w[0] + w[1]) * (b & 15)).sum() + ((256 * w[2] + w[3]) * (b >> 4)).sum())


def quantize(w_even: np.ndarray, w_odd: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Float weights of the even and odd nibbles, (H,) each, as 16-bit integers ``256 hi + lo`` in nibble_dot's
    layout: per run of 64 code bytes, 256 int8 (even hi, even lo, odd hi, odd lo; zero past H). Returns
    (weights, scale, error): sum w * nibble == scale * (the integer dot product) within ``error`` for any
    nibbles 0..15."""
    w_even, w_odd = np.asarray(w_even, np.float64), np.asarray(w_odd, np.float64)
    largest = max(float(np.abs(w_even).max(initial=0.0)), float(np.abs(w_odd).max(initial=0.0)))
    scale = largest / 32000.0 if largest > 0 else 1.0   # |256 hi + lo| <= 32000: hi stays within int8
    runs = -(-len(w_even) // BYTES)
    q = np.zeros((2, runs * BYTES), np.int64)
    q[0, :len(w_even)], q[1, :len(w_odd)] = np.rint(w_even / scale), np.rint(w_odd / scale)
    hi = np.rint(q / 256.0).astype(np.int64)   # lo = q - 256 hi in [-128, 128]; 128 only when q = 256 hi + 128
    lo = q - 256 * hi
    hi, lo = np.where(lo > 127, hi + 1, hi), np.where(lo > 127, lo - 256, lo)
    out = np.stack([hi[0], lo[0], hi[1], lo[1]]).reshape(4, runs, BYTES).transpose(1, 0, 2)   # (runs, 4, 64)
    error = 15.0 * float(np.abs(w_even - scale * q[0, :len(w_even)]).sum()
                         + np.abs(w_odd - scale * q[1, :len(w_odd)]).sum())
    return np.ascontiguousarray(out, np.int8).reshape(-1), scale, error
