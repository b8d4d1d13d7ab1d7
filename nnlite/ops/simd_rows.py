"""Rows of explicit SIMD vectors: the inner steps of the register tiles, each one Numba intrinsic.

A register tile keeps its sums in many vectors (16 in :func:`nnlite.ops.microkernels.gemm_tile_16x16`), and
each step of its inner loop updates all of them: written as one ``vfma`` call per sum, a tile was a few
hundred Numba statements, and Numba's typing and lowering of those took most of a model's first run
(benchmarks/RESULTS.md, round 16). Here a tile's sums are one Numba tuple of :data:`~nnlite.ops.simd.f32x16`
(``UniTuple(f32x16, n)``; an LLVM aggregate that LLVM splits back into registers), and one intrinsic emits the
whole step: the same loads, broadcasts and fused multiply-adds, in the same order for every sum, as the
statements it replaces, so the same bits.

Offsets are element offsets into 1-D C-contiguous float32 arrays, unchecked as in :mod:`nnlite.ops.simd`.
Counts that shape a tuple (``n``, ``stride``, ``edge``) must be compile-time constants (integer literals).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .simd import ZERO_IR, f32x16, fma_ir, load_n_ir, splat_ir


def _literal(value) -> int | None:
    return value.literal_value if isinstance(value, types.IntegerLiteral) else None


def _vectors(value) -> int | None:
    """n for a UniTuple(f32x16, n), else None."""
    if isinstance(value, types.UniTuple) and value.dtype == f32x16:
        return value.count
    return None


def _data(context, builder, arrty, arr):
    return context.make_array(arrty)(context, builder, arr).data


def _items(builder, tup, count):
    return [builder.extract_value(tup, i) for i in range(count)]


@intrinsic
def vzeros(typingctx, n):
    """A tuple of ``n`` vectors of zeros."""
    count = _literal(n)
    if count is None:
        return None
    ty = types.UniTuple(f32x16, count)
    return ty(n), lambda context, builder, sig, args: context.make_tuple(builder, ty, [ZERO_IR] * count)


@intrinsic
def gather_rows(typingctx, bases, m0, last, n):
    """(bases[min(m0 + i, last)] for i < n): a GEMM tile's row offsets (rows past ``last`` repeat it)."""
    count = _literal(n)
    if count is None or not isinstance(bases, types.Array):
        return None
    ty = types.UniTuple(types.intp, count)

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        rows = []
        for i in range(count):
            r = builder.add(args[1], ir.Constant(args[1].type, i))
            r = builder.select(builder.icmp_signed("<", r, args[2]), r, args[2])
            rows.append(builder.load(builder.gep(data, [r])))
        return context.make_tuple(builder, ty, rows)
    return ty(bases, types.intp, types.intp, n), codegen


@intrinsic
def fma_splat_rows(typingctx, x, q, off, w, acc):
    """One step of a GEMM tile of R rows x V vectors: for each row r, x[q[r] + off] broadcast and multiplied by
    each weight vector w[v] into acc[r*V + v]. ``q``: R offsets; ``w``: V vectors; ``acc``: R*V vectors."""
    vectors, sums = _vectors(w), _vectors(acc)
    if vectors is None or sums is None or not isinstance(q, types.UniTuple) or q.count * vectors != sums:
        return None
    rows = q.count

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        ws, sums_in = _items(builder, args[3], vectors), _items(builder, args[4], rows * vectors)
        out = []
        for r in range(rows):
            at = builder.add(builder.extract_value(args[1], r), args[2])
            v = splat_ir(builder, builder.load(builder.gep(data, [at]), align=4))
            out += [fma_ir(builder, v, ws[i], sums_in[r * vectors + i]) for i in range(vectors)]
        return context.make_tuple(builder, sig.return_type, out)
    return acc(x, q, types.intp, w, acc), codegen


@intrinsic
def load_rows_n(typingctx, arr, off, step, width, n):
    """(arr[off + j*step : ... + width] for j < n), each in the first ``width`` lanes of a vector."""
    count = _literal(n)
    if count is None:
        return None
    ty = types.UniTuple(f32x16, count)

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        out = []
        for j in range(count):
            at = builder.add(args[1], builder.mul(args[2], ir.Constant(args[2].type, j)))
            out.append(load_n_ir(builder, builder.gep(data, [at]), args[3]))
        return context.make_tuple(builder, ty, out)
    return ty(arr, types.intp, types.intp, types.intp, n), codegen


@intrinsic
def stream_row(typingctx, xf, q, c, width, jlo, jhi, w, acc, stride, edge):
    """One kernel row of a streaming depthwise tile (:mod:`nnlite.ops.depthwise_stream`): P = len(acc) output
    pixels at ``stride`` under a row of K = len(w) weight vectors. Input column j (< (P-1)*stride + K) is
    ``width`` channels at xf[q + j*c], loaded once and multiplied into every sum that reads it (sum m takes it
    with weight w[j - m*stride]); each sum takes its columns left to right. Only the first and last ``edge``
    columns may lie in the padding: column j is read where jlo <= j < jhi, those tests made only there."""
    size, pixels, step, margin = _vectors(w), _vectors(acc), _literal(stride), _literal(edge)
    if None in (size, pixels, step, margin):
        return None
    columns = (pixels - 1) * step + size

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        q, c, width, jlo, jhi = args[1:6]
        ws, sums = _items(builder, args[6], size), _items(builder, args[7], pixels)
        for j in range(columns):
            uses = [(m, j - m * step) for m in range(pixels) if 0 <= j - m * step < size]
            if not uses:
                continue
            at = ir.Constant(c.type, j)
            tests = ([builder.icmp_signed("<=", jlo, at)] if j < margin else []) + (
                [builder.icmp_signed("<", at, jhi)] if j >= columns - margin else [])
            before, entry = list(sums), builder.block
            cond = tests[0] if len(tests) == 1 else builder.and_(*tests) if tests else None
            if cond is not None:
                then = builder.append_basic_block(f"column{j}")
                merge = builder.append_basic_block(f"column{j}_done")
                builder.cbranch(cond, then, merge)
                builder.position_at_end(then)
            x = load_n_ir(builder, builder.gep(data, [builder.add(q, builder.mul(at, c))]), width)
            for m, tap in uses:
                sums[m] = fma_ir(builder, x, ws[tap], sums[m])
            if cond is not None:
                then = builder.block  # where the loaded column's sums come from (the load may add blocks)
                builder.branch(merge)
                builder.position_at_end(merge)
                for m, _ in uses:
                    phi = builder.phi(sums[m].type)
                    phi.add_incoming(sums[m], then)
                    phi.add_incoming(before[m], entry)
                    sums[m] = phi
        return context.make_tuple(builder, sig.return_type, sums)
    return acc(xf, types.intp, types.intp, types.intp, types.intp, types.intp, w, acc, stride, edge), codegen


@intrinsic
def pixel_rows(typingctx, q0, last, scale, add, n):
    """(min(q0 + i, last) * scale + add for i < n): a depthwise tile's pixel offsets (pixels past ``last``
    repeat it)."""
    count = _literal(n)
    if count is None:
        return None
    ty = types.UniTuple(types.intp, count)

    def codegen(context, builder, sig, args):
        q0, last, scale, add = args[:4]
        out = []
        for i in range(count):
            r = builder.add(q0, ir.Constant(q0.type, i))
            r = builder.select(builder.icmp_signed("<", r, last), r, last)
            out.append(builder.add(builder.mul(r, scale), add))
        return context.make_tuple(builder, ty, out)
    return ty(types.intp, types.intp, types.intp, types.intp, n), codegen


@intrinsic
def fma_load_rows(typingctx, xf, q, off, width, w, acc):
    """One tap of a depthwise tile: acc[i] += (the ``width`` channels at xf[q[i] + off]) * w, for each pixel i."""
    pixels = _vectors(acc)
    if pixels is None or w != f32x16 or not isinstance(q, types.UniTuple) or q.count != pixels:
        return None

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        sums = _items(builder, args[5], pixels)
        out = []
        for i in range(pixels):
            at = builder.add(builder.extract_value(args[1], i), args[2])
            out.append(fma_ir(builder, load_n_ir(builder, builder.gep(data, [at]), args[3]), args[4], sums[i]))
        return context.make_tuple(builder, sig.return_type, out)
    return acc(xf, q, types.intp, types.intp, w, acc), codegen
