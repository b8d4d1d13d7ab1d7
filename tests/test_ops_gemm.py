"""nnlite's own implicit-GEMM convolution (nnlite.ops.gemm) and its SIMD primitives (nnlite.ops.simd).

tests/test_ops.py already runs ops.conv2d against its naive twin with whichever engine this CPU picks;
here both engines are forced in turn, on shapes chosen to hit every edge of the tiling: rows that are not a
multiple of the 8-row tile, channel counts on either side of the 16- and 32-wide panels, long sums, few
output rows (the split by channels) and batches. The SIMD primitives are checked lane by lane, including
that masked loads and stores touch nothing past their count.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from nnlite import ops
from nnlite.errors import ConfigError, ShapeError
from nnlite.ops import engine as engines
from nnlite.ops import gemm, machine, parallel, reference, separable, simd
from tests.closeness import TOL, assert_within_rounding, rel, term_scale

ENGINES = ("simd", "blas")


@pytest.fixture(params=ENGINES)
def engine(request):
    with engines.use(request.param):
        yield request.param


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


CASES = [  # (n, h, w, cin, cout, k, stride, dilation, padding)
    (1, 7, 9, 5, 1, 3, 1, 1, "same"),  # 63 rows: 7 full tiles + 7 rows
    (1, 11, 3, 16, 15, 1, 1, 1, "valid"),
    (1, 6, 6, 16, 16, 3, 1, 1, "same"),
    (2, 5, 5, 8, 17, 3, 2, 1, "same"),  # batch: rows cross image boundaries inside a tile
    (1, 9, 9, 7, 31, 3, 1, 2, "same"),
    (1, 8, 8, 4, 32, 1, 2, 1, "valid"),  # strided 1x1
    (1, 10, 10, 3, 33, 7, 2, 1, "same"),  # RGB stem
    (1, 4, 4, 300, 48, 3, 1, 1, "same"),  # long sums (K = 2700), few rows: split by channels
    (1, 3, 3, 64, 270, 1, 1, 1, "valid"),  # several panels and a 14-wide tail
    (3, 13, 2, 2, 70, (1, 3), (2, 1), 1, (1, 2, 0, 3)),
    (1, 1, 1, 40, 70, 3, 1, 1, "same"),  # one output pixel: a matrix-vector product
    (2, 1, 2, 9, 33, 1, 1, 1, "valid"),  # four output pixels over two images
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("act", [None, "relu", "relu6", "leaky_relu", "sigmoid", "swish"])
def test_conv2d_matches_reference(engine, case, act):
    n, h, w, cin, cout, k, stride, dilation, padding = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(hash((case[:6], act)) % 2**32)
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, kh, kw, cin, cout), rand(rng, cout)
    kwargs = dict(stride=stride, dilation=dilation, padding=padding, activation=act, alpha=0.1)
    want = reference.conv2d(x, kernel, bias, **kwargs)
    got = ops.conv2d(x, kernel, bias, **kwargs)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert rel(got, want) <= TOL
    checked = ops.conv2d(x.astype(np.float64), np.asfortranarray(kernel), list(bias), **kwargs)  # converted first
    assert np.array_equal(got, checked)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(1, 20), st.integers(1, 20), st.integers(1, 40),
       st.integers(1, 80), st.integers(1, 4), st.integers(1, 2), st.sampled_from(["valid", "same"]),
       st.booleans())
def test_conv2d_random_shapes(engine, seed, n, h, w, cin, cout, k, stride, padding, with_bias):
    rng = np.random.default_rng(seed)
    x, kernel = rand(rng, n, h, w, cin), rand(rng, k, k, cin, cout)
    bias = rand(rng, cout) if with_bias else None
    kwargs = dict(stride=stride, padding=padding, activation="relu")
    try:
        want = reference.conv2d(x, kernel, bias, **kwargs)
    except ShapeError:
        return
    assert_within_rounding(ops.conv2d(x, kernel, bias, **kwargs), want, term_scale(reference.conv2d, x, kernel, bias,
                                                                                     **kwargs))


def test_engines_agree_and_thread_splits_are_bit_identical(simd_engine):
    """Rows split (many rows) and channel split (few rows) give the same bits at 1 and 2 threads."""
    rng = np.random.default_rng(3)
    before = ops.get_num_threads()
    for x, kernel in [(rand(rng, 1, 40, 40, 24), rand(rng, 3, 3, 24, 40)),  # by rows
                      (rand(rng, 1, 3, 3, 200), rand(rng, 1, 1, 200, 500))]:  # by channel panels
        try:
            ops.set_num_threads(1)
            assert parallel.parts(1000, 1 << 30) == 1
            one = ops.conv2d(x, kernel, padding="same", activation="swish")
            ops.set_num_threads(2)
            assert parallel.parts(1000, 1 << 30) == min(2, numba.config.NUMBA_NUM_THREADS)
            two = ops.conv2d(x, kernel, padding="same", activation="swish")
        finally:
            ops.set_num_threads(before)
        assert np.array_equal(one, two)
        with engines.use("blas"):
            assert rel(one, ops.conv2d(x, kernel, padding="same", activation="swish")) <= TOL


@pytest.mark.parametrize("cout", [32, 16, 45, 70])  # 32- and 16-wide panels, and both in one layer
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_tile_paths_give_each_row_the_same_bits(simd_engine, direct_gemm, cout, threads):
    """A panel's single last row runs on a one-row tile, other last rows on a whole tile that recomputes the
    last row: an output row's sum must not depend on which. Dropping the input's last columns moves the
    panel's end to every place in a tile; with "valid" padding the rows kept must not change a bit."""
    rng = np.random.default_rng(cout)
    x = rand(rng, 1, 3, 42, 24)
    kernel, bias = rand(rng, 3, 3, 24, cout), rand(rng, cout)
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(threads)
        whole = ops.conv2d(x, kernel, bias, padding="valid", activation="relu")  # (1, 1, 40, cout): 40 rows
        assert rel(whole, reference.conv2d(x, kernel, bias, padding="valid", activation="relu")) <= TOL
        for cut in range(1, 36):  # 39 .. 5 rows: every remainder of 8 and of 16
            part = ops.conv2d(np.ascontiguousarray(x[:, :, :42 - cut]), kernel, bias, padding="valid",
                              activation="relu")
            assert np.array_equal(part, whole[:, :, :40 - cut]), cut
    finally:
        ops.set_num_threads(before)


@pytest.mark.parametrize("hw", [(14, 14), (1, 1), (2, 2)])
def test_an_empty_batch_gives_an_empty_output(engine, hw):
    """No detections: Mask R-CNN's heads run on zero regions."""
    rng = np.random.default_rng(0)
    x, kernel = np.zeros((0, *hw, 8), np.float32), rand(rng, 3, 3, 8, 40)
    assert ops.conv2d(x, kernel, padding="same").shape == (0, *hw, 40)
    assert ops.dense(np.zeros((0, 8), np.float32), rand(rng, 8, 5)).shape == (0, 5)


def test_engine_choice_from_the_environment(monkeypatch):
    for raw, want in [("simd", "simd"), (" BLAS ", "blas")]:
        monkeypatch.setenv("NNLITE_GEMM", raw)
        assert engines.choose() == want
    monkeypatch.setenv("NNLITE_GEMM", "mkl")
    with pytest.raises(ConfigError, match="NNLITE_GEMM"):
        engines.choose()
    monkeypatch.delenv("NNLITE_GEMM")
    monkeypatch.delenv("NUMBA_CPU_NAME", raising=False)
    monkeypatch.delenv("NUMBA_CPU_FEATURES", raising=False)
    cases = [({"avx512f", "avx2", "fma"}, 32), ({"avx2", "fma"}, 8), ({"avx2"}, 0), ({"sse4_2"}, 0)]
    for flags, registers in cases:  # the register tiles' size follows the register file
        monkeypatch.setattr(engines, "cpu_flags", lambda flags=flags: flags)
        assert engines.vector_registers() == registers, flags
        assert engines.choose() == ("simd" if registers else "blas")
    monkeypatch.setattr(engines, "cpu_flags", lambda: {"avx512f", "avx2", "fma"})
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")  # a portable Numba build: no tiles sized for this CPU
    assert (engines.vector_registers(), engines.choose()) == (0, "blas")
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+fma")
    assert engines.vector_registers() == 8
    with pytest.raises(ConfigError, match="mkl"):
        with engines.use("mkl"):
            pass


@njit(cache=True)
def _roundtrip(src, dst, offset, count, scalar, alpha):
    v = simd.vload_n(src, offset, count)
    simd.vstore_n(dst, offset, v, count)
    full = simd.vload(src, 0)
    fma = simd.vfma(full, simd.vsplat(scalar), simd.vzero())  # src * scalar
    simd.vstore(dst, 20, simd.vadd(fma, simd.vmul(full, simd.vsplat(alpha))))
    zero = simd.vzero()
    simd.vstore(dst, 40, simd.vselect_gt(full, zero, full, zero))
    simd.vstore(dst, 60, simd.vselect_ge(full, zero, full, simd.vmul(full, simd.vsplat(alpha))))


@pytest.mark.parametrize("plain_when_full", [None, False, True])  # as compiled here; with AVX-512; without
@pytest.mark.parametrize("count", [0, 1, 5, 15, 16, 17])
def test_simd_primitives_lane_by_lane(count, plain_when_full, monkeypatch):
    roundtrip = _roundtrip
    if plain_when_full is not None:  # a fresh compile with full vectors' loads and stores made one way or the other
        monkeypatch.setattr(simd, "PLAIN_WHEN_FULL", plain_when_full)
        roundtrip = njit(_roundtrip.py_func)
    src = np.arange(-8, 72, dtype=np.float32)  # 80 values, lanes 0..15 = -8..7
    src[3] = np.nan
    dst = np.full(80, 99.0, np.float32)
    roundtrip(src, dst, 2, count, np.float32(2.0), np.float32(0.5))
    count = min(count, 16)
    assert np.array_equal(dst[2:2 + count], src[2:2 + count], equal_nan=True)
    assert (dst[:2] == 99).all() and (dst[2 + count:20] == 99).all()  # masked store wrote nothing else
    lanes = src[:16]
    np.testing.assert_array_equal(dst[20:36], lanes * 2 + lanes * 0.5)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(dst[40:56], np.where(lanes > 0, lanes, 0))  # NaN -> 0, as ops.relu
        np.testing.assert_array_equal(dst[60:76], np.where(lanes >= 0, lanes, 0.5 * lanes))
    assert (dst[36:40] == 99).all() and (dst[56:60] == 99).all() and (dst[76:] == 99).all()


def test_masked_load_reads_nothing_past_its_count():
    """A 3-value tail at the very end of an array: a full 16-lane load there would read past the buffer."""
    rng = np.random.default_rng(0)
    x, kernel = rand(rng, 1, 1, 1, 5), rand(rng, 1, 1, 5, 3)  # b (5*3 values): the last row is a 3-lane tail
    for _ in range(20):
        want = reference.conv2d(x, kernel)
        assert rel(gemm.conv2d(x, kernel, None, 0, 0.2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)), want) <= TOL


SEPARABLE_CASES = [  # (n, h, w, cin, cout, k, stride, padding)
    (1, 9, 9, 16, 24, 3, 1, "same"),
    (2, 13, 7, 11, 40, 5, 2, "same"),  # batch: bands cross image boundaries
    (1, 30, 30, 64, 33, 3, 1, "same"),  # several bands per thread
    (1, 4, 4, 130, 200, 3, 1, "valid"),
    (1, 6, 6, 200, 200, 3, 1, "same"),  # a kernel over fuse_max_weights on a 1 MiB L2, one band a thread
    (1, 40, 30, 200, 200, 3, 1, "same"),  # the same kernel, several bands a thread: unfused on a 1 MiB L2
]


@pytest.mark.parametrize("case", SEPARABLE_CASES, ids=[str(i) for i in range(len(SEPARABLE_CASES))])
@pytest.mark.parametrize("acts", [(None, None), ("relu6", "relu"), ("swish", "sigmoid"), (None, "leaky_relu")])
def test_fused_depthwise_pointwise(simd_engine, case, acts):
    """depthwise_pointwise = depthwise_conv2d then conv2d, bit for bit (simd engine), and the naive twins."""
    n, h, w, cin, cout, k, stride, padding = case
    rng = np.random.default_rng(hash((case, acts)) % 2**32)
    x, dk, db = rand(rng, n, h, w, cin), rand(rng, k, k, cin, 1), rand(rng, cin)
    pk, pb = rand(rng, 1, 1, cin, cout), rand(rng, cout)
    got = ops.separable.depthwise_pointwise(x, dk, db, pk, pb, stride=stride, padding=padding,
                                            depthwise_activation=acts[0], activation=acts[1], alpha=0.1)
    mid = ops.depthwise_conv2d(x, dk, db, stride=stride, padding=padding, activation=acts[0])
    assert np.array_equal(got, ops.conv2d(mid, pk, pb, activation=acts[1], alpha=0.1))
    as64 = [a.astype(np.float64) for a in (x, dk, db, pk, pb)]  # the checked (converting) path: same bits
    assert np.array_equal(got, ops.separable.depthwise_pointwise(
        *as64, stride=list(stride) if isinstance(stride, tuple) else stride, padding=padding,
        depthwise_activation=acts[0], activation=acts[1], alpha=0.1))
    want = reference.conv2d(reference.depthwise_conv2d(x, dk, db, stride=stride, padding=padding,
                                                       activation=acts[0]), pk, pb, activation=acts[1], alpha=0.1)
    assert rel(got, want) <= TOL
    sep = ops.separable_conv2d(x, dk, pk, pb, stride=stride, padding=padding, activation=acts[1], alpha=0.1)
    assert rel(sep, reference.separable_conv2d(x, dk, pk, pb, stride=stride, padding=padding, activation=acts[1],
                                               alpha=0.1)) <= TOL


def test_separable_fusion_rule(monkeypatch):
    """worth_fusing on a machine with a 1 MiB L2: a small pointwise kernel always; a larger one only where each
    thread has a single band of depthwise rows and the kernel fits in L2."""
    monkeypatch.setattr(machine, "caches", lambda: machine.Caches(32 << 10, 1 << 20, 32 << 20))
    monkeypatch.setattr(machine, "blocking", lambda: machine.Blocking(256 << 10, 192 << 10, 128 << 10, 4 << 20,
                                                                        256 << 10, 256 << 10))
    assert separable.worth_fusing(56, 56, 32, 64, 2)  # an 8 KB kernel
    assert separable.worth_fusing(7, 7, 256, 256, 2)  # 256 KB; 4 rows a thread, bands of 27 rows
    assert not separable.worth_fusing(7, 7, 1024, 1024, 2)  # 4 MB: more than L2
    assert not separable.worth_fusing(40, 30, 200, 200, 2)  # 160 KB; 20 rows a thread, bands of 8
    assert separable.worth_fusing(40, 30, 200, 200, 8)  # 5 rows a thread


@pytest.mark.parametrize("fuse", [True, False])
def test_the_fusion_rule_changes_no_bits(simd_engine, monkeypatch, fuse):
    rng = np.random.default_rng(11)
    x, dk, db = rand(rng, 1, 6, 6, 200), rand(rng, 3, 3, 200, 1), rand(rng, 200)
    pk, pb = rand(rng, 1, 1, 200, 200), rand(rng, 200)
    mid = ops.depthwise_conv2d(x, dk, db, padding="same", activation="relu6")
    want = ops.conv2d(mid, pk, pb, activation="relu")
    monkeypatch.setattr(separable, "worth_fusing", lambda *args: fuse)
    separable._fast_pair_key.cache_clear()  # shapes decided before the patch
    try:
        got = separable.depthwise_pointwise(x, dk, db, pk, pb, padding="same", depthwise_activation="relu6",
                                            activation="relu")
        checked = separable.depthwise_pointwise(x.astype(np.float64), dk, db, pk, pb, padding="same",
                                                depthwise_activation="relu6", activation="relu")
    finally:
        separable._fast_pair_key.cache_clear()
    assert np.array_equal(got, want) and np.array_equal(checked, want)


def test_fused_depthwise_pointwise_rejects_what_it_cannot_fuse():
    x = np.zeros((1, 5, 5, 4), np.float32)
    with pytest.raises(ShapeError, match="multiplier 1"):
        ops.separable.depthwise_pointwise(x, np.zeros((3, 3, 4, 2), np.float32), None,
                                          np.zeros((1, 1, 8, 3), np.float32), None)
    with pytest.raises(ShapeError):
        ops.separable.depthwise_pointwise(x, np.zeros((3, 3, 4, 1), np.float32), None,
                                          np.zeros((1, 1, 5, 3), np.float32), None)


CONV_POOL_CASES = [  # (n, h, w, cin, cout, k, stride, padding, pool, pool_stride, pool_padding)
    (1, 20, 20, 3, 16, 3, 1, "valid", 2, 2, "same"),  # TinyFaceDetector's conv0 + pool0 (odd map)
    (2, 17, 15, 5, 40, 3, 2, "same", 3, 2, "valid"),  # overlapping windows, a batch (SqueezeNet's conv1 + pool)
    (1, 30, 12, 8, 33, 3, 1, "same", 2, 1, "same"),  # stride-1 pool
    (1, 9, 9, 4, 8, 1, 1, "valid", (3, 2), (2, 3), (1, 1, 0, 1)),
]


@pytest.mark.parametrize("case", CONV_POOL_CASES, ids=[str(i) for i in range(len(CONV_POOL_CASES))])
@pytest.mark.parametrize("act", [None, "leaky_relu", "swish"])
def test_conv_max_pool_is_conv_then_pool(engine, case, act):
    from nnlite.ops.convpool import conv2d_max_pool
    n, h, w, cin, cout, k, stride, padding, pool, pool_stride, pool_padding = case
    rng = np.random.default_rng(hash((case[:5], act)) % 2**32)
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, k, k, cin, cout), rand(rng, cout)
    got = conv2d_max_pool(x, kernel, bias, stride=stride, padding=padding, activation=act, alpha=0.1,
                          pool_size=pool, pool_stride=pool_stride, pool_padding=pool_padding)
    mid = ops.conv2d(x, kernel, bias, stride=stride, padding=padding, activation=act, alpha=0.1)
    assert np.array_equal(got, ops.max_pool2d(mid, pool_size=pool, stride=pool_stride, padding=pool_padding))
    ref = reference.max_pool2d(reference.conv2d(x, kernel, bias, stride=stride, padding=padding, activation=act,
                                                alpha=0.1), pool_size=pool, stride=pool_stride, padding=pool_padding)
    assert rel(got, ref) <= TOL


@pytest.mark.parametrize("count", [2, 3, 4, 5, 7, 8])  # one pass, then passes of up to 3 more inputs
@pytest.mark.parametrize("act", [None, "relu", "relu6", "leaky_relu", "sigmoid", "swish"])
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 64, 60, 16)])  # serial, and split across threads
def test_same_shape_add_kernel(count, act, shape):
    """The Numba add (same-shape inputs) against the reference, and against NumPy's left-to-right sum bit for bit."""
    rng = np.random.default_rng(count)
    xs = [rand(rng, *shape) for _ in range(count)]
    before = [a.copy() for a in xs]
    got = ops.add(*xs, activation=act, alpha=0.1)
    assert rel(got, reference.add(*xs, activation=act, alpha=0.1)) <= TOL
    total = xs[0] + xs[1]
    for a in xs[2:]:
        total = total + a
    if act is None:
        assert np.array_equal(got, total)
    assert all(np.array_equal(a, b) for a, b in zip(xs, before))  # inputs untouched


def test_kernels_called_from_several_python_threads_at_once():
    """The web demo runs models on request threads: concurrent launches of the parallel kernels (each
    thread's pad/scratch buffers are its own) give the same bits as one call alone."""
    import threading
    rng = np.random.default_rng(9)
    x, kernel = rand(rng, 1, 48, 48, 16), rand(rng, 3, 3, 16, 32)
    dk, pk = rand(rng, 3, 3, 32, 1), rand(rng, 1, 1, 32, 8)

    def model(a):
        y = ops.conv2d(a, kernel, padding="same", activation="relu")
        return ops.separable_conv2d(y, dk, pk, padding="same", activation="relu6")

    want = model(x)
    bad = []

    def work():
        for _ in range(20):
            if not np.array_equal(model(x), want):
                bad.append(1)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not bad


@pytest.mark.parametrize("rows", [1, 3, 4, 5])  # 5: past GEMV_MAX_ROWS, the BLAS path
@pytest.mark.parametrize("n_in, n_out", [(1280, 1000), (7, 70), (64, 16)])
@pytest.mark.parametrize("act", [None, "relu", "sigmoid"])
def test_dense(engine, rows, n_in, n_out, act):
    rng = np.random.default_rng(rows * n_out)
    x, kernel, bias = rand(rng, rows, n_in), rand(rng, n_in, n_out), rand(rng, n_out)
    got = ops.dense(x, kernel, bias, activation=act)
    assert got.shape == (rows, n_out) and got.dtype == np.float32
    assert rel(got, reference.dense(x, kernel, bias, activation=act)) <= TOL
    assert rel(ops.dense(x[0], kernel, None), reference.dense(x[0], kernel, None)) <= TOL  # 1-D input


@pytest.mark.parametrize("n_out", [1000, 100, 70])  # blocks split into pairs, odd counts, a partial last block
def test_matrix_vector_product_gives_the_same_bits_at_each_thread_count_and_layout(simd_engine, n_out):
    rng = np.random.default_rng(n_out)
    x, kernel, bias = rand(rng, 3, 700), rand(rng, 700, n_out), rand(rng, n_out)
    frozen = kernel.copy()
    frozen.flags.writeable = False   # read in pack_blocks' layout, the other as (k, n)
    before, results = ops.get_num_threads(), []
    try:
        for threads in (1, 2):
            ops.set_num_threads(threads)
            results += [ops.dense(x, k, bias, activation="relu") for k in (kernel, frozen)]
    finally:
        ops.set_num_threads(before)
    assert all(np.array_equal(results[0], r) for r in results[1:])
    assert rel(results[0], reference.dense(x, kernel, bias, activation="relu")) <= TOL
