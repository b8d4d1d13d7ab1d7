"""The compiled kernels of :mod:`nnlite.library.face_index` (its docstring gives the method): the coarse scan of
the 4-bit codes with each row's lower bound, the re-check of its candidates with their 8-bit codes, and exact
float64 distances for the few rows left.
"""

from __future__ import annotations

import types as pytypes

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..ops.jit import locked
from ..ops.simd import prefetch_l2
from .nibbles import BYTES, RUN, nibble_dot, nibble_dot4

CHUNK = 8192          # rows per scan chunk: each keeps its own k best, so the split never changes a result
SLACK = 1e-4          # relative shrink of every bound, far above float32 rounding in the kernels
BLOCK = 64            # rows whose bounds are computed together, as vectors across rows; <= 64: one bit each
MAX_SIZE = 4096       # descriptor dimensions at most: the scan's integer dot products stay within int32
AHEAD, LINE = 64, 64  # the scan asks the cache for the codes this many rows ahead, a line of this many bytes at a time
FAST = {"reassoc", "contract", "arcp"}   # lets LLVM vectorize the row reductions (no NaN/Inf assumptions)


def _named(fn, suffix: str):
    """A copy of a kernel's Python function under its own name: Numba's on-disk cache is keyed by the function's
    name, not by ``parallel=True``, so a serial and a parallel compilation of one function would share (and
    load) each other's machine code."""
    twin = pytypes.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_{suffix}", fn.__defaults__)
    twin.__qualname__ = f"{fn.__qualname__}_{suffix}"
    return twin


@intrinsic
def lowest_bit(typingctx, mask):
    """The index of the lowest set bit of a nonzero uint64 (``llvm.cttz``: one instruction, tzcnt or bsf)."""
    if mask != types.uint64:
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64, ir.IntType(1)]), "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])
    return types.int64(mask), codegen


@numba.njit(cache=True, nogil=True)
def _insert(best_d, best_i, acc, row):
    """acc (of row) into the sorted k best best_d / best_i in place of the last; returns the new last."""
    t = best_d.shape[0] - 1
    while t > 0 and best_d[t - 1] > acc:
        best_d[t] = best_d[t - 1]
        best_i[t] = best_i[t - 1]
        t -= 1
    best_d[t] = acc
    best_i[t] = row
    return best_d[best_d.shape[0] - 1]


def scan_coarse(coarse, weights, scale, norms, offset, delta, err4, limit, best_d, best_i, cand_i, cand_b, counts):
    """coarse (N, H) uint8, weights (int8, nibbles.quantize's layout), norms, err4 (N,) float32. Each row's
    lower bound on ||q - x||, ||q - x_hat4|| - err4[i] shrunk by SLACK, from ||q - x_hat4||^2 = offset +
    norms[i] + scale * (an integer dot product of the row's nibbles with the weights, nibbles.nibble_dot)
    (Grid.coarse_terms says why; delta bounds the weights' rounding and float32's). Chunk c of CHUNK rows
    writes (row, bound) of its rows whose bound is <= limit to cand_i / cand_b[c * CHUNK:][:counts[c]], and
    the k of those of smallest ||q - x_hat4||^2 to best_d / best_i (C, k), sorted. No per-row output: a query
    writes only its few candidates. Dot products come four rows at a time (the codes AHEAD rows on asked for),
    bounds a block of 64 rows at a time (vectors across rows), its candidates found from a 64-bit mask."""
    n, half = coarse.shape
    flat = coarse.reshape(-1)
    k = best_d.shape[1]
    scale32 = np.float32(scale)
    for c in numba.prange(best_d.shape[0]):
        for t in range(k):
            best_d[c, t] = np.inf
            best_i[c, t] = -1
        worst = np.float32(np.inf)
        count = 0
        dots = np.empty(BLOCK, np.int32)   # |dot| <= 15 * 32000 * D < 2^31 (D <= MAX_SIZE)
        accs, lows = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32)
        stop = min(n, (c + 1) * CHUNK)
        for start in range(c * CHUNK, stop, BLOCK):
            m = min(BLOCK, stop - start)
            quads = m - m % 4
            for r in range(0, quads, 4):   # four rows at once: their sums are reduced together
                row, d0, d1, d2, d3 = (start + r) * half, 0, 0, 0, 0
                for b0 in range(0, 4 * half, LINE):   # the four rows AHEAD on (past the end: a hint, no fault)
                    prefetch_l2(flat, row + AHEAD * half + b0)
                for b0 in range(0, half, BYTES):
                    e0, e1, e2, e3 = nibble_dot4(flat, row + b0, half, weights, b0 // BYTES * RUN,
                                                 min(BYTES, half - b0))
                    d0, d1, d2, d3 = d0 + e0, d1 + e1, d2 + e2, d3 + e3
                dots[r], dots[r + 1], dots[r + 2], dots[r + 3] = d0, d1, d2, d3
            for r in range(quads, m):
                row, dot = (start + r) * half, 0
                for b0 in range(0, half, BYTES):
                    dot += nibble_dot(flat, row + b0, weights, b0 // BYTES * RUN, min(BYTES, half - b0))
                dots[r] = dot
            for r in range(m):   # a block's bounds at once, as vectors across rows: no float min reduction here,
                acc = np.float32(dots[r]) * scale32 + offset + norms[start + r]   # which LLVM would leave scalar
                accs[r] = acc
                lows[r] = np.sqrt(max(acc - delta, np.float32(0))) * np.float32(1 - SLACK) \
                    - err4[start + r] * np.float32(1 + SLACK)
            within = np.uint64(0)   # bit r: row r's bound is within the limit (a few % of rows, or none)
            for r in range(m):
                within |= np.uint64(lows[r] <= limit) << np.uint64(r)
            while within != np.uint64(0):
                r = lowest_bit(within)
                within &= within - np.uint64(1)
                cand_i[c * CHUNK + count] = start + r
                cand_b[c * CHUNK + count] = lows[r]
                count += 1
                if accs[r] < worst:
                    worst = _insert(best_d[c], best_i[c], accs[r], start + r)
        counts[c] = count


# locked: each cache entry is also stamped with this folder's files (nibbles.py's instructions are compiled in)
scan_coarse_parallel = locked(numba.njit(parallel=True, cache=True, nogil=True, fastmath=FAST)(scan_coarse))


def refine(coarse, fine, a_even, a_odd, step_even, step_odd, err8, cand_i, cand_b, counts, limit, out):
    """The candidates of scan_coarse whose 4-bit bound is <= limit, re-checked with their 8-bit code
    (coarse * 16 + fine) and err8, q_j - x_hat8_j being a_j - step_j * code_j: the survivors' row numbers go
    to out[:returned count], chunk by chunk. Each chunk's candidates are re-checked in parallel, kept in place
    in cand_i; a chunk first reads one byte at each end of its candidates' codes (independent loads, many in
    flight, so the re-check then finds them in cache)."""
    half = coarse.shape[1]
    kept = np.zeros(counts.shape[0], np.int64)
    touched = np.zeros(counts.shape[0], np.int64)
    for c in numba.prange(counts.shape[0]):
        base, m, touch = c * CHUNK, 0, 0
        for s in range(base, base + counts[c]):
            if cand_b[s] <= limit:
                i = cand_i[s]
                cand_i[base + m] = i   # in place: m <= s - base
                m += 1
                touch += coarse[i, 0] + coarse[i, half - 1] + fine[i, 0] + fine[i, half - 1]
        count = 0
        for t in range(base, base + m):
            i = cand_i[t]
            acc = np.float32(0.0)
            for j in range(half):   # bytes split in float (exact for 0..255), as in scan_coarse
                high, low = np.float32(coarse[i, j]), np.float32(fine[i, j])
                high_odd = np.floor(high * np.float32(0.0625))
                low_odd = np.floor(low * np.float32(0.0625))
                x0 = a_even[j] - step_even[j] * ((high - np.float32(16) * high_odd) * np.float32(16)
                                                 + (low - np.float32(16) * low_odd))
                x1 = a_odd[j] - step_odd[j] * (high_odd * np.float32(16) + low_odd)
                acc += x0 * x0 + x1 * x1
            if np.sqrt(acc) * np.float32(1 - SLACK) - err8[i] * np.float32(1 + SLACK) <= limit:
                cand_i[base + count] = i
                count += 1
        kept[c], touched[c] = count, touch
    found = 0
    for c in range(counts.shape[0]):
        for t in range(c * CHUNK, c * CHUNK + kept[c]):
            out[found] = cand_i[t]
            found += 1
    return found, touched.sum()


refine = locked(numba.njit(parallel=True, cache=True, nogil=True, fastmath=FAST)(refine))


def exact_distances(rows, query, which, unit, out):
    """rows (N, D) float32 (RAM or memory-mapped), query (D,) float32, which (m,) int64 -> out (m,) float64:
    squared Euclidean distances, in float64; ``unit`` scales each row to unit length first (cosine)."""
    for t in numba.prange(which.shape[0]):
        i = which[t]
        scale = 1.0
        if unit:
            norm = 0.0
            for j in range(rows.shape[1]):
                norm += np.float64(rows[i, j]) ** 2
            scale = 1.0 / max(np.sqrt(norm), 1e-12)
        acc = 0.0
        for j in range(rows.shape[1]):
            diff = np.float64(query[j]) - np.float64(rows[i, j]) * scale
            acc += diff * diff
        out[t] = acc


exact_distances_parallel = numba.njit(parallel=True, cache=True, nogil=True)(_named(exact_distances, "parallel"))
exact_distances = numba.njit(cache=True, nogil=True)(exact_distances)   # a few rows: no thread hand-off
