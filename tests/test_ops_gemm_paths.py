"""The GEMM's alternative paths against each other: kernels read in place, packed once or per call, a
matrix-vector product, rows in blocks through every panel, and the padded copy the tiles read. Each path
must give the same bits as the plain packed tiles (and stay close to the naive twin).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from nnlite import ops
from nnlite.ops import gemm, parallel, reference
from tests.closeness import TOL, rel


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 4, 4, 300, 48), (1, 3, 3, 64, 270), (1, 2, 2, 24, 80), (1, 1, 1, 50, 96),
                                   (1, 9, 9, 16, 64)])
def test_kernel_read_in_place_packed_or_as_a_vector_product_gives_the_same_bits(simd_engine, direct_gemm, monkeypatch,
                                                                                 shape):
    """Few rows read full kernel panels in place, a few pixels run as a matrix-vector product: both sum
    in the same order as the packed tiles, so forcing the packed tiles must not change a bit."""
    from nnlite.ops import gemv
    n, h, w, cin, cout = shape
    rng = np.random.default_rng(cout)
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, 3, 3, cin, cout), rand(rng, cout)
    for act in ("relu6", "swish"):
        fast = ops.conv2d(x, kernel, bias, padding="same", activation=act)
        with monkeypatch.context() as m:
            m.setattr(gemm, "DIRECT_MAX_ROWS", 0)
            m.setattr(gemv, "GEMV_MAX_ROWS", 0)
            packed = ops.conv2d(x, kernel, bias, padding="same", activation=act)
        assert np.array_equal(fast, packed)
        assert rel(fast, reference.conv2d(x, kernel, bias, padding="same", activation=act)) <= TOL


@pytest.mark.parametrize("shape", [(2, 20, 20, 24, 144, 1), (1, 17, 13, 8, 70, 3), (3, 9, 9, 40, 96, 3)])
def test_row_blocks_give_the_same_bits(simd_engine, direct_gemm, monkeypatch, shape):
    """Rows run in blocks through every panel (machine.blocking().row_block_input, here made small enough
    for several blocks per thread, partial last ones included): each output row sums in the same order
    as panel by panel, so the bits match with blocks off, at 1 and 2 threads, packed once or per call."""
    from nnlite.ops import machine
    n, h, w, cin, cout, k = shape
    rng = np.random.default_rng(cin)
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, k, k, cin, cout), rand(rng, cout)
    lay = gemm.layout(x.shape, kernel.shape, (1, 1), (1, 1), (k // 2,) * 4, (h, w))
    panels = -(-cout // gemm.NR)
    # just room for the packed kernel: blocks of panels*32 rows, several per thread
    small = machine.blocking()._replace(row_block_input=lay.run * lay.taps.shape[0] * panels * gemm.NR * 4)
    results = {}
    for blocks in (False, True):
        with monkeypatch.context() as m:
            m.setattr(machine, "blocking", lambda on=blocks: small if on else small._replace(row_block_input=0))
            rows = panels * gemm.NR // (2 * gemm.MR) * (2 * gemm.MR)  # whole pairs of tiles (6- or 8-row)
            assert gemm._row_block(lay, panels) == (rows if blocks else 0)
            for threads in (1, 2):
                parallel.set_threads(threads)
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                for act in ("relu", "sigmoid"):
                    results[blocks, threads, act] = ops.conv2d(x, kernel, bias, padding="same", activation=act)
    parallel.set_threads(ops.get_num_threads())
    for key, value in results.items():
        assert np.array_equal(value, results[False, 1, key[2]]), key
    want = reference.conv2d(x, kernel, bias, padding="same", activation="sigmoid")
    assert rel(results[True, 2, "sigmoid"], want) <= TOL



@pytest.mark.parametrize("with_l3", [True, False])
def test_a_kernel_too_large_for_blocks_takes_them_on_an_input_past_the_cache(simd_engine, monkeypatch, with_l3):
    """A packed kernel larger than the row block's budget runs panel by panel while the input stays in the
    last-level cache, in blocks once it would not (here: a cache made tiny, or none at all and an input over
    L2): the same bits either way, at 1 and 2 threads."""
    from nnlite.ops import machine
    rng = np.random.default_rng(9)
    x, kernel, bias = rand(rng, 2, 24, 20, 96), rand(rng, 1, 1, 96, 200), rand(rng, 200)
    lay = gemm.layout(x.shape, kernel.shape, (1, 1), (1, 1), (0, 0, 0, 0), (24, 20))
    panels = -(-200 // gemm.NR)
    caches, blocking = machine.caches(), machine.blocking()
    tight = blocking._replace(row_block_input=96 * 4 * 32)   # room for 32 input rows, not for the kernel
    results = {}
    for past in (False, True):
        size = 64 if past else 1 << 40   # the last-level cache (L3, or L2 where there is none): tiny or huge
        with monkeypatch.context() as m:
            m.setattr(machine, "blocking", lambda: tight)
            m.setattr(machine, "caches",
                      lambda s=size: caches._replace(l3=s) if with_l3 else caches._replace(l3=0, l2=s))
            assert gemm._row_block(lay, panels) == (32 // (2 * gemm.MR) * (2 * gemm.MR) if past else 0)
            for threads in (1, 2):
                parallel.set_threads(threads)
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                results[past, threads] = ops.conv2d(x, kernel, bias, activation="relu")
    parallel.set_threads(ops.get_num_threads())
    for key, value in results.items():
        assert np.array_equal(value, results[False, 1]), key
    assert rel(results[True, 2], reference.conv2d(x, kernel, bias, activation="relu")) <= TOL

@pytest.mark.parametrize("shape, pads", [
    ((1, 5, 7, 3), (1, 1, 1, 1)),      # an RGB stem: rows of 21 values, a 16-lane vector and a 5-lane tail
    ((2, 4, 3, 16), (0, 1, 0, 1)),     # TF 'same' at stride 2: padding only after
    ((1, 3, 2, 5), (2, 0, 3, 0)),      # only before, wider than the row itself
    ((1, 6, 6, 32), (0, 0, 0, 0)),     # nothing to pad: a plain copy
    ((1, 1, 1, 1), (3, 2, 4, 5)),
])
def test_padding_every_row_is_numpy_pad(shape, pads):
    """gemm.pad_for_rows over every row of every image against np.pad, on a target first filled with NaN:
    every value is written."""
    from nnlite.ops import bound
    top, bottom, left, right = pads
    n, h, w, c = shape
    hp, wp = h + top + bottom, w + left + right
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    xp = np.full((n, hp, wp, c), np.nan, np.float32)
    # geometry of a 1-row, 1-column "conv" reading one padded row per output row: output rows = padded rows
    g = np.array([n, h, w, c, hp, wp, top, left, hp, 1, 1, 1], np.int64)

    @numba.njit
    def pad_all(at, src, dst, g, rows):  # pad_for_rows is a helper: kernels call it
        bound.call(at, "pad_for_rows", (src, dst, g, np.int64(0), rows))

    pad_all(bound.address("pad_for_rows"), x.reshape(-1), xp.reshape(-1), g, np.int64(n * hp))
    np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))))


@pytest.mark.parametrize("shape", [
    (3, 9, 7, 5, 40, 3, 1, "same"),    # batch 3: pieces that start and end inside different images
    (2, 12, 12, 3, 32, 3, 2, "same"),  # an RGB stem at stride 2: TF pads only after
    (1, 10, 11, 8, 20, 5, 1, (2, 2, 1, 3)),
    (2, 6, 6, 16, 96, 3, 1, "same"),   # three panels: split by panels, each piece pads a copy of its own
])
def test_each_piece_pads_the_input_rows_it_reads(simd_engine, shape):
    """The pieces of a padded conv pad, themselves, the input rows their output reads (gemm.pad_geometry):
    run on ranges of every size and place, each on a padded buffer first filled with NaN, the rows a piece
    computes equal the whole layer's (a row it needs and did not pad would bring a NaN in)."""
    from nnlite.ops import bound
    from nnlite.ops.padding import resolve_padding_2d
    from nnlite.ops.tiles import act_address, pack_address
    run_units = gemm._units_parallel.callable()  # the kernel has no Python wrapper of its own: its twin
    n, h, w, cin, cout, k, stride, padding = shape
    rng = np.random.default_rng(h * w)
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, k, k, cin, cout), rand(rng, cout)
    want = ops.conv2d(x, kernel, bias, stride=stride, padding=padding, activation="relu")
    assert rel(want, reference.conv2d(x, kernel, bias, stride=stride, padding=padding, activation="relu")) <= TOL
    (t, b, oh), (l, r, ow) = resolve_padding_2d(h, w, k, k, stride, 1, padding)
    lay = gemm.layout(x.shape, kernel.shape, (stride,) * 2, (1, 1), (t, b, l, r), (oh, ow))
    pad = gemm.pad_geometry(lay)
    units_of_rows, panels = -(-lay.rows // gemm.ROW_UNIT), -(-cout // gemm.NR)
    by_rows = panels == 1
    units = units_of_rows if by_rows else panels
    size = n * (h + t + b) * (w + l + r) * cin
    ranges = [(0, units)] + [tuple(sorted(rng.choice(units + 1, 2, replace=False))) for _ in range(12)]
    for u0, u1 in ranges:
        xp = np.full(size, np.nan, np.float32)
        y = np.full(lay.rows * cout, np.nan, np.float32)
        run_units(xp, lay.run, lay.taps, lay.bases, kernel.reshape(-1), np.zeros(0, np.float32), bias, 1,
                  np.float32(0.2), y, cout, cout, lay.rows, by_rows, False, 0, bound.address("panel_tiles"),
                  act_address(1), x.reshape(-1), pad, bound.address("pad_for_rows"), pack_address(), *gemm.NO_SUM,
                  u0, u1)
        got, full = y.reshape(lay.rows, cout), want.reshape(lay.rows, cout)
        if by_rows:
            rows = slice(u0 * gemm.ROW_UNIT, min(lay.rows, u1 * gemm.ROW_UNIT))
            np.testing.assert_array_equal(got[rows], full[rows])
        else:
            cols = slice(u0 * gemm.NR, min(cout, u1 * gemm.NR))
            np.testing.assert_array_equal(got[:, cols], full[:, cols])


@pytest.mark.parametrize("case", [(2, 17, 15, 5, 40, 3, 2, "same", 3, 2, "valid", 1),
                                  (1, 20, 19, 3, 16, 3, 1, "same", 2, 2, "same", 2),
                                  (3, 12, 10, 8, 33, 5, 1, (2, 2, 1, 3), 2, 1, "same", 3)])
def test_each_band_of_conv_max_pool_pads_the_input_rows_it_reads(simd_engine, case):
    """conv2d_max_pool's bands pad, themselves, the input rows their conv rows read: run on ranges of pooled
    rows of every size and place, in bands of 1-3 pooled rows, each on a padded buffer first filled with
    NaN, the rows a range pools equal the whole layer's."""
    from nnlite.ops import bound, convpool
    from nnlite.ops.padding import resolve_padding_2d
    from nnlite.ops.tiles import act_address, pack_address
    conv_pool_rows = convpool._conv_pool_parallel.callable()  # as run_units above
    n, h, w, cin, cout, k, stride, padding, pool, pool_stride, pool_padding, band = case
    rng = np.random.default_rng(h * w)
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, k, k, cin, cout), rand(rng, cout)
    want = convpool.conv2d_max_pool(x, kernel, bias, stride=stride, padding=padding, activation="relu",
                                    pool_size=pool, pool_stride=pool_stride, pool_padding=pool_padding)
    mid = reference.conv2d(x, kernel, bias, stride=stride, padding=padding, activation="relu")
    assert rel(want, reference.max_pool2d(mid, pool_size=pool, stride=pool_stride, padding=pool_padding)) <= TOL
    (t, b, oh), (l, r, ow) = resolve_padding_2d(h, w, k, k, stride, 1, padding)
    (pt, _, poh), (pl, _, pow_) = resolve_padding_2d(oh, ow, pool, pool, pool_stride, 1, pool_padding)
    lay = gemm.layout(x.shape, kernel.shape, (stride,) * 2, (1, 1), (t, b, l, r), (oh, ow))
    rows = n * poh
    ranges = [(0, rows)] + [tuple(sorted(rng.choice(rows + 1, 2, replace=False))) for _ in range(12)]
    for r0, r1 in ranges:
        xp = np.full(n * (h + t + b) * (w + l + r) * cin, np.nan, np.float32)
        y = np.full(want.size, np.nan, np.float32)
        conv_pool_rows(xp, lay.run, lay.taps, lay.bases, kernel.reshape(-1), bias, 1, np.float32(0.2),
                       cout, oh, ow, pool, pool, pool_stride, pool_stride, pt, pl, poh, pow_, y, band,
                       bound.address("panel_tiles"), act_address(1), x.reshape(-1),
                       gemm.pad_geometry(lay), bound.address("pad_for_rows"), pack_address(), r0, r1)
        np.testing.assert_array_equal(y.reshape(rows, -1)[r0:r1], want.reshape(rows, -1)[r0:r1])


@pytest.mark.parametrize("shape", [(1, 1, 1, 40, 70, 1), (1, 2, 2, 24, 96, 2), (2, 1, 1, 16, 33, 1),
                                   (1, 3, 3, 8, 20, 2), (1, 2, 2, 8, 20, 1)])
def test_a_vector_product_without_the_kernel_rows_that_meet_only_padding_gives_the_same_bits(simd_engine,
                                                                                               monkeypatch, shape):
    """A conv on a few pixels of a small map leaves out the kernel rows that only ever multiply padding
    (a 3x3 'same' conv on a 1x1 map keeps one tap of nine): the bits equal the whole product's, with
    negative, zero and positive inputs; with an infinite weight nothing is left out (0 x inf is NaN)."""
    from nnlite.ops import gemv, prepack
    n, h, w, cin, cout, stride = shape
    rng = np.random.default_rng(cin * cout)
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, 3, 3, cin, cout), rand(rng, cout)
    x[..., ::3] = 0.0
    prepack.freeze(kernel)
    used = []
    whole = gemm._vector_product_inputs

    def spy(lay, k):
        got = whole(lay, k)
        used.append(got[0].shape[1] < gemm.few_pixels(lay).source.shape[1])
        return got
    monkeypatch.setattr(gemm, "_vector_product_inputs", spy)
    fast = ops.conv2d(x, kernel, bias, stride=stride, padding="same", activation="relu")
    monkeypatch.setattr(gemm, "_vector_product_inputs",
                        lambda lay, k: (gemm.few_pixels(lay).source, gemv.packed_blocks(k)))
    full = ops.conv2d(x, kernel, bias, stride=stride, padding="same", activation="relu")
    assert np.array_equal(fast, full)
    assert rel(fast, reference.conv2d(x, kernel, bias, stride=stride, padding="same", activation="relu")) <= TOL
    assert used == [h * w // stride ** 2 <= 1]   # one output pixel: some taps never meet an input
    monkeypatch.setattr(gemm, "_vector_product_inputs", whole)
    infinite = kernel.copy()
    infinite[0, 0, 0, 0] = np.inf
    prepack.freeze(infinite)
    got = ops.conv2d(x, infinite, bias, stride=stride, padding="same")
    with np.errstate(invalid="ignore"):
        want = reference.conv2d(x, infinite, bias, stride=stride, padding="same")
    assert np.isnan(want).any() and np.array_equal(np.isnan(got), np.isnan(want))
