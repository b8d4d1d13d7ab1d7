"""nnlite.ops.simd_rows: each row intrinsic against a twin written one vector at a time with nnlite.ops.simd, bit
for bit, and the streaming row never reads a column or channel outside the ones it is given."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from nnlite.ops import simd
from nnlite.ops.simd import vfma, vload, vload_n, vsplat_at, vstore, vzero
from nnlite.ops.simd_rows import fma_splat_rows, gather_rows, pixel_rows, stream_row, vzeros

RNG = np.random.default_rng(16)


# ---- the GEMM step: rows x vectors of sums, one broadcast per row

@njit
def _splat_rows_3x2(x, bases, m0, last, offs, pk, out):
    q = gather_rows(bases, m0, last, 3)
    acc = vzeros(6)
    for s in range(offs.shape[0]):
        acc = fma_splat_rows(x, q, offs[s], (vload(pk, 32 * s), vload(pk, 32 * s + 16)), acc)
    for i in range(6):
        vstore(out, 16 * i, acc[i])


@njit
def _splat_rows_twin(x, bases, m0, last, offs, pk, out, rows, vectors):
    for r in range(rows):
        q = bases[min(m0 + r, last)]
        for v in range(vectors):
            a = vzero()
            for s in range(offs.shape[0]):
                a = vfma(vsplat_at(x, q + offs[s]), vload(pk, 32 * s + 16 * v), a)
            vstore(out, 16 * (r * vectors + v), a)


@pytest.mark.parametrize("m0, last", [(0, 7), (5, 6), (6, 6)])
def test_fma_splat_rows_is_the_per_vector_fma_chain(m0, last):
    x = RNG.standard_normal(64).astype(np.float32)
    bases = RNG.permutation(40).astype(np.int64)[:8]
    offs = RNG.integers(0, 20, 11).astype(np.int64)
    pk = RNG.standard_normal(32 * 11).astype(np.float32)
    got, want = np.zeros(96, np.float32), np.full(96, np.nan, np.float32)
    _splat_rows_3x2(x, bases, m0, last, offs, pk, got)
    _splat_rows_twin(x, bases, m0, last, offs, pk, want, 3, 2)
    assert got.tobytes() == want.tobytes()


def test_row_offsets_clamp_at_the_last_row():
    @njit
    def offsets(q0, last, scale, add):
        return pixel_rows(q0, last, scale, add, 4)

    assert offsets(5, 6, 10, 3) == (53, 63, 63, 63)
    assert offsets(0, 9, 2, 0) == (0, 2, 4, 6)


# ---- the streaming depthwise row: (kernel size, pixels, stride, edge) as the generated tiles use them

def _stream_runner(size, pixels, stride, edge):
    loads = ", ".join(f"vload(wk, {16 * j})" for j in range(size))
    source = (f"def run(xf, q, c, width, jlo, jhi, wk, out):\n"
              f"    acc = stream_row(xf, q, c, width, jlo, jhi, ({loads},), vzeros({pixels}), {stride}, {edge})\n"
              f"    for m in range({pixels}):\n"
              f"        vstore(out, 16 * m, acc[m])\n")
    scope = {"stream_row": stream_row, "vzeros": vzeros, "vload": vload, "vstore": vstore}
    exec(source, scope)   # a literal tuple length and stride, as in the generated tiles
    return njit(scope["run"])


@njit
def _stream_twin(xf, q, c, width, jlo, jhi, wk, out, size, pixels, stride):
    for m in range(pixels):
        a = vzero()
        for tap in range(size):
            j = m * stride + tap
            if jlo <= j < jhi:
                a = vfma(vload_n(xf, q + j * c, width), vload(wk, 16 * tap), a)
        vstore(out, 16 * m, a)


@pytest.mark.parametrize("plain_when_full", [False, True])  # the loads as compiled with AVX-512, and without
@pytest.mark.parametrize("size, pixels, stride", [(3, 8, 1), (3, 4, 1), (3, 4, 2), (5, 8, 2), (5, 4, 1), (7, 8, 1)])
def test_stream_row_is_each_sums_taps_in_order_and_reads_only_inside(size, pixels, stride, plain_when_full,
                                                                      monkeypatch):
    monkeypatch.setattr(simd, "PLAIN_WHEN_FULL", plain_when_full)
    edge = size // 2
    run = _stream_runner(size, pixels, stride, edge)
    columns = (pixels - 1) * stride + size
    c = 24
    for trial in range(12):
        width = 16 if trial < 3 else int(RNG.integers(1, 17))
        jlo, jhi = int(RNG.integers(0, edge + 1)), columns - int(RNG.integers(0, edge + 1))
        c0 = int(RNG.integers(0, c - width + 1))
        xf = np.full(columns * c, np.nan, np.float32)  # NaN wherever the row must not read
        for j in range(jlo, jhi):
            xf[j * c + c0: j * c + c0 + width] = RNG.standard_normal(width)
        xf = xf[: (jhi - 1) * c + c0 + width].copy()   # ends at the last value read: a read past it may fault
        wk = RNG.standard_normal(16 * size).astype(np.float32)
        got, want = np.zeros(16 * pixels, np.float32), np.ones(16 * pixels, np.float32)
        run(xf, c0, c, width, jlo, jhi, wk, got)
        _stream_twin(xf, c0, c, width, jlo, jhi, wk, want, size, pixels, stride)
        assert got.tobytes() == want.tobytes(), (trial, width, jlo, jhi)
        assert not np.isnan(got).any()
