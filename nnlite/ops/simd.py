"""Explicit SIMD vectors for Numba kernels: a 16-lane float32 type and the few operations a GEMM needs.

Numba's loop vectoriser cannot keep a matrix-multiply tile in registers (its arrays may alias, so each
multiply-add would load and store the tile). Here a tile is plain local variables of type :data:`f32x16`,
an LLVM ``<16 x float>``: LLVM keeps them in vector registers (one AVX-512 ``zmm`` each) and each
``fma`` is one instruction. Each operation below is a Numba ``@intrinsic`` emitting a few lines of LLVM IR;
the kernels that use them (:mod:`nnlite.ops.gemm`) are ordinary ``@njit`` code.

On a CPU without AVX-512 LLVM splits each vector into two AVX2 registers (of 16, against AVX-512's 32): still
one instruction per half, so the tiles there keep a quarter as many vectors of sums (:data:`nnlite.ops.tiles.MR`).

Memory operations take a 1-D C-contiguous float32 array and an element offset, and do no bounds check:
callers guarantee ``offset + 16 <= size`` (``*_n`` variants: ``offset + count <= size``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from . import engine

LANES = 16
PLAIN_WHEN_FULL = not engine.wide_registers()  # see _plain_when_full
_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, LANES)
_I32 = ir.IntType(32)


class F32x16(types.Type):
    """Numba type of a 16-lane float32 vector (an LLVM ``<16 x float>`` value)."""

    def __init__(self):
        super().__init__(name="f32x16")


f32x16 = F32x16()


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _vec_ptr(context, builder, arrty, arr, offset):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [offset]), _VEC.as_pointer())


def _lane_mask(builder, count):
    """<16 x i1>: lane i is on when i < count."""
    i64v = ir.VectorType(ir.IntType(64), LANES)
    lanes = ir.Constant(i64v, list(range(LANES)))
    first = builder.insert_element(ir.Constant(i64v, ir.Undefined), count, ir.Constant(_I32, 0))
    splat = builder.shuffle_vector(first, ir.Constant(i64v, ir.Undefined),
                                   ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))
    return builder.icmp_signed("<", lanes, splat)


def _masked_name(op: str, ptr) -> str:
    opaque = getattr(ptr.type, "is_opaque", False)
    return f"llvm.masked.{op}.v16f32.{'p0' if opaque else 'p0v16f32'}"


# LLVM IR of the operations below, for intrinsics that emit many of them at once (nnlite.ops.simd_rows)

def splat_ir(builder, value):
    """<16 x float> with every lane = the float ``value``."""
    first = builder.insert_element(ir.Constant(_VEC, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, ir.Constant(_VEC, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def fma_ir(builder, a, b, c):
    """a * b + c with one rounding."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")
    return builder.call(fn, [a, b, c])


def load_n_ir(builder, element_ptr, count):
    """The first ``count`` floats from ``element_ptr`` on, 0 in the other lanes; reads nothing beyond."""
    ptr = builder.bitcast(element_ptr, _VEC.as_pointer())

    def masked():
        mask = _lane_mask(builder, count)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [ptr.type, _I32, mask.type, _VEC]), _masked_name("load", ptr))
        return builder.call(fn, [ptr, ir.Constant(_I32, 4), mask, ir.Constant(_VEC, [0.0] * LANES)])
    return _plain_when_full(builder, count, lambda: builder.load(ptr, align=4), masked)


def _plain_when_full(builder, count, plain, masked):
    """masked(), or where the CPU has no AVX-512 and count >= 16 at run time, plain(): AVX2 has no mask
    registers, so a masked load there is a slower instruction, and a masked store one many times slower
    (microcoded on AMD's cores). A full vector, the common case, then takes the plain one."""
    if not PLAIN_WHEN_FULL:
        return masked()
    with builder.if_else(builder.icmp_signed(">=", count, ir.Constant(count.type, LANES))) as (full, partial):
        with full:
            a, from_full = plain(), builder.block
        with partial:
            b, from_partial = masked(), builder.block
    if a is None:
        return None
    value = builder.phi(_VEC)
    value.add_incoming(a, from_full)
    value.add_incoming(b, from_partial)
    return value


ZERO_IR = ir.Constant(_VEC, [0.0] * LANES)


@intrinsic
def vzero(typingctx):
    """All lanes 0."""
    return f32x16(), lambda context, builder, sig, args: ZERO_IR


@intrinsic
def vsplat(typingctx, x):
    """All lanes = the float32 scalar x."""
    if x != types.float32:
        return None
    return f32x16(x), lambda context, builder, sig, args: splat_ir(builder, args[0])


@intrinsic
def vsplat_at(typingctx, arr, offset):
    """All lanes = arr[offset] (a float32 array): the element is addressed directly, without the
    negative-index wrap-around an ``arr[i]`` read compiles to, which in a tile's inner loop cost four
    integer instructions per broadcast."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return splat_ir(builder, builder.load(builder.gep(data, [args[1]]), align=4))
    return f32x16(arr, types.intp), codegen


@intrinsic
def vload(typingctx, arr, offset):
    """arr[offset : offset + 16]."""
    def codegen(context, builder, sig, args):
        return builder.load(_vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=4)
    return f32x16(arr, types.intp), codegen


@intrinsic
def vload_n(typingctx, arr, offset, count):
    """arr[offset : offset + count] in the first ``count`` lanes, 0 in the others; reads nothing beyond."""
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return load_n_ir(builder, builder.gep(data, [args[1]]), args[2])
    return f32x16(arr, types.intp, types.intp), codegen


@intrinsic
def vstore(typingctx, arr, offset, v):
    """arr[offset : offset + 16] = v."""
    def codegen(context, builder, sig, args):
        builder.store(args[2], _vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()
    return types.void(arr, types.intp, f32x16), codegen


@intrinsic
def vstore_n(typingctx, arr, offset, v, count):
    """arr[offset : offset + count] = the first ``count`` lanes of v; writes nothing beyond."""
    def codegen(context, builder, sig, args):
        ptr = _vec_ptr(context, builder, sig.args[0], args[0], args[1])

        def masked():
            mask = _lane_mask(builder, args[3])
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [_VEC, ptr.type, _I32, mask.type]),
                _masked_name("store", ptr))
            builder.call(fn, [args[2], ptr, ir.Constant(_I32, 4), mask])

        def plain():
            builder.store(args[2], ptr, align=4)
        _plain_when_full(builder, args[3], plain, masked)
        return context.get_dummy_value()
    return types.void(arr, types.intp, f32x16, types.intp), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c, lane by lane, with one rounding (as BLAS's FMA kernels)."""
    return f32x16(f32x16, f32x16, f32x16), lambda context, builder, sig, args: fma_ir(builder, *args)


@intrinsic
def vadd(typingctx, a, b):
    """a + b."""
    return f32x16(f32x16, f32x16), lambda context, builder, sig, args: builder.fadd(*args)


@intrinsic
def vsub(typingctx, a, b):
    """a - b."""
    return f32x16(f32x16, f32x16), lambda context, builder, sig, args: builder.fsub(*args)


@intrinsic
def vmul(typingctx, a, b):
    """a * b."""
    return f32x16(f32x16, f32x16), lambda context, builder, sig, args: builder.fmul(*args)


@intrinsic
def vdiv(typingctx, a, b):
    """a / b (IEEE division, lane by lane: the same bits as a scalar division)."""
    return f32x16(f32x16, f32x16), lambda context, builder, sig, args: builder.fdiv(*args)


@intrinsic
def vselect_gt(typingctx, a, b, yes, no):
    """yes where a > b, else no (a NaN in a or b picks no)."""
    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered(">", args[0], args[1]), args[2], args[3])
    return f32x16(f32x16, f32x16, f32x16, f32x16), codegen


@intrinsic
def vselect_ge(typingctx, a, b, yes, no):
    """yes where a >= b, else no (a NaN in a or b picks no)."""
    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered(">=", args[0], args[1]), args[2], args[3])
    return f32x16(f32x16, f32x16, f32x16, f32x16), codegen


@intrinsic
def prefetch_l2(typingctx, arr, offset):
    """A hint to bring the cache line holding ``arr[offset]`` (an array of any type, ``offset`` in its elements) into
    L2 (x86 ``prefetcht1``): never faults, whatever the address, and changes no value."""
    if not (isinstance(arr, types.Array) and isinstance(offset, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        byte_ptr = ir.IntType(8).as_pointer()
        opaque = getattr(data.type, "is_opaque", False)
        signature = ir.FunctionType(ir.VoidType(), [byte_ptr, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, signature,
                                            "llvm.prefetch.p0" if opaque else "llvm.prefetch.p0i8")
        address = builder.bitcast(builder.gep(data, [args[1]]), byte_ptr)
        builder.call(fn, [address, ir.Constant(_I32, 0), ir.Constant(_I32, 2), ir.Constant(_I32, 1)])
        return context.get_dummy_value()
    return types.none(arr, offset), codegen
