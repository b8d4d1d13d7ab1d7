"""Fast kernels (nnlite.ops) against their naive twins (nnlite.ops.reference) on randomized shapes.

Sums of products (convolutions, dense layers, averages, resizes, adds) agree value by value within 1e-5 of
the size of the terms each value sums, other ops to a relative error ||fast - reference|| / ||reference||
<= 1e-5 (tests/closeness.py says why). Hypothesis draws shapes, strides 1-3, dilations, every padding kind,
channel multipliers and activations; invalid draws must fail the same way (a typed ShapeError) in both
implementations.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nnlite import ops
from nnlite.errors import ShapeError
from nnlite.ops import reference
from tests.closeness import TOL, assert_within_rounding, rel, term_scale

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ACTS = st.sampled_from([None, "relu", "relu6", "leaky_relu", "sigmoid", "swish"])
PADDING = st.one_of(st.sampled_from(["valid", "same"]), st.tuples(*[st.integers(0, 3)] * 4))
STRIDE = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
DILATION = st.one_of(st.just(1), st.integers(1, 3), st.tuples(st.integers(1, 2), st.integers(1, 2)))


def rand(seed, *shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ops whose every output value is a sum of products of their inputs: a drawn output of a single value can cancel
SUMS = {"conv2d", "depthwise_conv2d", "separable_conv2d", "avg_pool2d", "resize_bilinear", "add"}


def same_result(name, *args, **kwargs):
    """Run ops.<name> and reference.<name>; both raise the same typed error, or agree to TOL: value by value
    against the size of each sum's terms for the ops in SUMS, else relative to the whole output."""
    try:
        want = getattr(reference, name)(*args, **kwargs)
    except ShapeError:
        with pytest.raises(ShapeError):
            getattr(ops, name)(*args, **kwargs)
        return
    got = getattr(ops, name)(*args, **kwargs)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    if name in SUMS:
        assert_within_rounding(got, want, term_scale(getattr(reference, name), *args, **kwargs))
    else:
        assert rel(got, want) <= TOL


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(1, 12), st.integers(1, 12), st.integers(1, 6),
       st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), STRIDE, DILATION, PADDING, ACTS)
def test_conv2d(seed, n, h, w, cin, cout, kh, kw, stride, dilation, padding, act):
    x, k, b = rand(seed, n, h, w, cin), rand(seed + 1, kh, kw, cin, cout), rand(seed + 2, cout)
    same_result("conv2d", x, k, b, stride=stride, padding=padding, dilation=dilation, activation=act, alpha=0.1)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 9), st.integers(1, 9), st.integers(1, 40), st.integers(1, 40),
       st.integers(1, 3), st.sampled_from(["valid", "same"]), st.booleans())
def test_conv2d_1x1(seed, h, w, cin, cout, stride, padding, with_bias):
    x, k = rand(seed, 2, h, w, cin), rand(seed + 1, 1, 1, cin, cout)
    same_result("conv2d", x, k, rand(seed + 2, cout) if with_bias else None, stride=stride, padding=padding)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(1, 12), st.integers(1, 12), st.integers(1, 8),
       st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), STRIDE, DILATION, PADDING, ACTS)
def test_depthwise_conv2d(seed, n, h, w, cin, mult, kh, kw, stride, dilation, padding, act):
    x, k, b = rand(seed, n, h, w, cin), rand(seed + 1, kh, kw, cin, mult), rand(seed + 2, cin * mult)
    same_result("depthwise_conv2d", x, k, b, stride=stride, padding=padding, dilation=dilation, activation=act)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(1, 12), st.integers(1, 12), st.integers(1, 40),
       STRIDE, PADDING, ACTS)
def test_depthwise_conv2d_3x3(seed, n, h, w, c, stride, padding, act):
    """The unrolled 3x3 / multiplier-1 path, including images narrower than the kernel."""
    x, k, b = rand(seed, n, h, w, c), rand(seed + 1, 3, 3, c, 1), rand(seed + 2, c)
    same_result("depthwise_conv2d", x, k, b, stride=stride, padding=padding, activation=act)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 10), st.integers(1, 5), st.integers(1, 2), st.integers(1, 6),
       st.integers(1, 2), PADDING, ACTS)
def test_separable_conv2d(seed, size, cin, mult, cout, stride, padding, act):
    x = rand(seed, 1, size, size + 1, cin)
    dk, pk, b = rand(seed + 1, 3, 3, cin, mult), rand(seed + 2, 1, 1, cin * mult, cout), rand(seed + 3, cout)
    same_result("separable_conv2d", x, dk, pk, b, stride=stride, padding=padding, activation=act)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(1, 11), st.integers(1, 11), st.integers(1, 5),
       st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))),
       st.one_of(st.none(), STRIDE), PADDING)
def test_pooling(seed, n, h, w, c, pool, stride, padding):
    x = rand(seed, n, h, w, c)
    same_result("max_pool2d", x, pool_size=pool, stride=stride, padding=padding)
    same_result("avg_pool2d", x, pool_size=pool, stride=stride, padding=padding)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 9), st.integers(1, 9), st.integers(1, 20), st.integers(1, 20),
       st.sampled_from([(True, False), (False, False), (False, True)]))
def test_resize(seed, h, w, oh, ow, rule):
    half_pixel_centers, align_corners = rule
    x = rand(seed, 2, h, w, 3)
    kwargs = dict(size=(oh, ow), half_pixel_centers=half_pixel_centers, align_corners=align_corners)
    same_result("resize_bilinear", x, **kwargs)
    assert np.array_equal(ops.resize_nearest(x, **kwargs), reference.resize_nearest(x, **kwargs))


@pytest.mark.parametrize("shape", [(1, 7, 7, 1280), (3, 5, 4, 7), (2, 13, 13, 1000), (1, 1, 1, 3)])
def test_global_average_pool_has_numpys_float64_mean_bits(shape):
    """The kernel sums each channel in float64 pixel by pixel and divides once: exactly NumPy's float64 mean
    over the pixel axis, cast to float32, at every scale."""
    rng = np.random.default_rng(shape[3])
    for scale in (1.0, 1e4, 1e-6):
        x = (rng.standard_normal(shape) * scale).astype(np.float32)
        want = x.reshape(shape[0], -1, shape[3]).mean(axis=1, dtype=np.float64).astype(np.float32)
        assert np.array_equal(ops.global_avg_pool2d(x), want)
        assert np.array_equal(ops.global_avg_pool2d(x, keepdims=True), want.reshape(shape[0], 1, 1, shape[3]))


def _pool_in_order(x, pool, stride, padding, is_max):
    """Pooling in float32 with each window's taps taken row by row, as nnlite's kernels take them."""
    from nnlite.ops.padding import resolve_padding_2d
    (kh, kw), (sh, sw) = pool, stride
    (t, _, oh), (l, _, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, 1, padding)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), np.float32)
    for oy in range(oh):
        rows = range(max(oy * sh - t, 0), min(oy * sh - t + kh, x.shape[1]))
        for ox in range(ow):
            cols = range(max(ox * sw - l, 0), min(ox * sw - l + kw, x.shape[2]))
            acc = np.full((x.shape[0], x.shape[3]), -np.inf if is_max else 0.0, np.float32)
            for iy in rows:
                for ix in cols:
                    v = x[:, iy, ix]
                    acc = np.where(v > acc, v, acc) if is_max else acc + v   # max as Numba's max(acc, v)
            y[:, oy, ox] = acc if is_max else acc / np.float32(len(rows) * len(cols))
    return y


@pytest.mark.parametrize("c", [11, 16, 24, 40, 70, 80, 136])  # 1 to 4 registers, 4 + 1, 4 + 16, 8 + 1
@pytest.mark.parametrize("pool, padding", [((3, 3), "same"), ((2, 3), "valid"), ((1, 1), "same"),
                                           ((3, 3), (1, 0, 2, 1))])
def test_pooling_at_column_stride_1_sums_taps_in_order(c, pool, padding):
    """Column stride 1 (rows of taps summed as flat runs, pooling.py's flat path; averages only below 16
    channels) and stride 2 (per pixel; max pooling in registers): the same bits as taking each window's taps
    row by row in float32, infinities and NaN included, on a size split over threads."""
    x = rand(c, 2, 37, 29, c, scale=3)
    x[0, 5, 7, :3] = (np.inf, -np.inf, np.nan)
    x[1, 9, 4:8, ::7] = np.nan   # in every register of a 40-channel pixel
    for name, is_max in (("max_pool2d", True), ("avg_pool2d", False)):
        for stride in ((1, 1), (2, 1), (1, 2)):
            got = getattr(ops, name)(x, pool_size=pool, stride=stride, padding=padding)
            with np.errstate(invalid="ignore"):
                want = _pool_in_order(x, pool, stride, padding, is_max)
            assert np.array_equal(got, want, equal_nan=True), (name, stride)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 4), st.integers(1, 70), st.integers(1, 30), ACTS)
@example(seed=283, rows=1, n_in=21, n_out=1, act=None)  # a sum of 21 terms near 1 that cancels to 1.4e-5
def test_dense_and_activations(seed, rows, n_in, n_out, act):
    x, k, b = rand(seed, rows, n_in, scale=4), rand(seed + 1, n_in, n_out), rand(seed + 2, n_out)
    exp_based = act in ("sigmoid", "swish")
    kwargs = dict(activation=None if exp_based else act, alpha=0.3)
    got, want = ops.dense(x, k, b, **kwargs), reference.dense(x, k, b, **kwargs)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
    # Each output sums n_in products and the bias: float32 rounds it relative to the sum of their magnitudes, not
    # to the result, which can cancel to near zero (the example above); relu, relu6 and leaky_relu (alpha < 1)
    # move two values no further apart, so the bound holds after them too.
    assert_within_rounding(got, want, term_scale(reference.dense, x, k, b))
    if exp_based:  # exp turns float32's rounding of z = x @ k + b into relative error |z| times larger (sigmoid(-52):
        z = ops.dense(x, k, b)  # 1.1e-5); the fused activation against the twin's on the same z
        assert rel(ops.dense(x, k, b, activation=act), getattr(reference, act)(z)) <= TOL
    for name in ("relu", "relu6", "sigmoid", "swish"):
        same_result(name, x)
    same_result("leaky_relu", x, alpha=0.3)
    same_result("softmax", x * 20)
    same_result("softmax", x, axis=0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 6), st.integers(1, 6), st.integers(1, 8), st.booleans())
def test_normalization(seed, h, w, c, scaled):
    x, mean, var = rand(seed, 2, h, w, c), rand(seed + 1, c), np.abs(rand(seed + 2, c)) + 0.01
    gamma, beta = (rand(seed + 3, c), rand(seed + 4, c)) if scaled else (None, None)
    same_result("bias_add", x, mean)
    same_result("batch_norm", x, gamma, beta, mean, var, epsilon=1e-3)
    # folding batch norm into a conv equals conv followed by batch norm
    k, b, m4, v4 = rand(seed + 5, 3, 3, c, 4), rand(seed + 6, 4), rand(seed + 7, 4), np.abs(rand(seed + 8, 4)) + .01
    g4, b4 = (rand(seed + 9, 4), rand(seed + 10, 4)) if scaled else (None, None)
    k2, b2 = ops.fold_batch_norm(k, b, g4, b4, m4, v4, epsilon=1e-3)
    want = reference.batch_norm(reference.conv2d(x, k, b, padding="same"), g4, b4, m4, v4, epsilon=1e-3)
    assert rel(ops.conv2d(x, k2, b2, padding="same"), want) <= TOL


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 7), st.integers(1, 7), st.integers(1, 5),
       st.tuples(*[st.integers(0, 3)] * 4))
def test_shape_ops(seed, h, w, c, pads):
    x, y, gate = rand(seed, 2, h, w, c), rand(seed + 1, 2, h, w, c), rand(seed + 2, 2, 1, 1, c)
    same_result("zero_pad2d", x, padding=pads)
    same_result("crop2d", ops.zero_pad2d(x, padding=pads), cropping=pads)
    same_result("add", x, y, gate)
    same_result("multiply", x, gate)
    same_result("concat", x, y, axis=-1)
    same_result("mean", x, axis=(1, 2), keepdims=True)
    same_result("global_avg_pool2d", x)
    same_result("global_avg_pool2d", x, keepdims=True)
    same_result("reshape", x, shape=(h * w, c))
    same_result("flatten", x)


# ---------------------------------------------------------------- edge cases and errors


@pytest.mark.parametrize("name", ["conv2d", "depthwise_conv2d"])
def test_kernel_bigger_than_input_same(name):
    x, k = rand(0, 1, 2, 3, 4), rand(1, 7, 5, 4, 2)
    assert getattr(ops, name)(x, k, padding="same", stride=2).shape[1:3] == (1, 2)
    same_result(name, x, k, padding="same", stride=2)
    with pytest.raises(ShapeError, match="smaller than the window"):
        getattr(ops, name)(x, k, padding="valid")


def test_one_pixel_images():
    x = rand(0, 3, 1, 1, 5)
    for name, k in (("conv2d", rand(1, 3, 3, 5, 2)), ("depthwise_conv2d", rand(1, 3, 3, 5, 2))):
        same_result(name, x, k, padding="same", stride=2)
    same_result("max_pool2d", x, pool_size=3, stride=2, padding="same")
    same_result("avg_pool2d", x, pool_size=3, stride=2, padding="same")
    same_result("resize_bilinear", x, size=(4, 3))


@pytest.mark.parametrize("name,kshape", [("conv2d", (3, 3, 4, 8)), ("depthwise_conv2d", (3, 3, 4, 1))])
def test_channel_mismatch_is_a_shape_error(name, kshape):
    for impl in (ops, reference):
        with pytest.raises(ShapeError, match=r"expects 4 input channels, found 3"):
            getattr(impl, name)(rand(0, 1, 5, 5, 3), rand(1, *kshape))


def test_bad_inputs_are_typed_errors():
    with pytest.raises(ShapeError, match="4-D NHWC"):
        ops.conv2d(rand(0, 5, 5, 3), rand(1, 3, 3, 3, 2))
    with pytest.raises(ShapeError, match=r"bias of shape \(2,\)"):
        ops.conv2d(rand(0, 1, 5, 5, 3), rand(1, 3, 3, 3, 2), np.zeros(3))
    with pytest.raises(ShapeError, match="dense"):
        ops.dense(rand(0, 2, 5), rand(1, 6, 3))


def test_resolve_padding_tf_same_rule():
    assert ops.resolve_padding(224, 3, 2, 1, "same") == (0, 1, 112)  # extra row goes bottom/right
    assert ops.resolve_padding(225, 3, 2, 1, "same") == (1, 1, 113)
    assert ops.resolve_padding(7, 3, 1, 2, "valid") == (0, 0, 3)
    assert ops.resolve_padding(5, 3, 2, 1, (1, 2)) == (1, 2, 3)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 7), st.integers(1, 7), st.integers(1, 5), ACTS)
def test_add_with_fused_activation(seed, h, w, c, act):
    x, y, gate = rand(seed, 2, h, w, c, scale=3), rand(seed + 1, 2, h, w, c), rand(seed + 2, 2, 1, 1, c)
    same_result("add", x, y, gate, activation=act, alpha=0.1)
    if act is not None:  # the fused form is exactly add then the standalone activation
        alone = getattr(ops, act)(ops.add(x, y, gate), **({"alpha": 0.1} if act == "leaky_relu" else {}))
        assert np.array_equal(ops.add(x, y, gate, activation=act, alpha=0.1), alone)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(5, 40), st.integers(5, 40), st.integers(1, 7),
       st.integers(1, 20), st.integers(1, 7), STRIDE, DILATION, PADDING)
def test_conv2d_few_input_channels(seed, n, h, w, cin, cout, k, stride, dilation, padding):
    """The thin-input im2col (cin < THIN_CIN, e.g. an RGB stem) on image-sized inputs and 1x1..7x7 kernels."""
    x, kern, b = rand(seed, n, h, w, cin), rand(seed + 1, k, k, cin, cout), rand(seed + 2, cout)
    same_result("conv2d", x, kern, b, stride=stride, padding=padding, dilation=dilation, activation="relu")


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(3, 30), st.integers(3, 30), st.integers(1, 140),
       st.integers(1, 7), st.integers(1, 7), STRIDE, DILATION, PADDING, ACTS)
def test_depthwise_conv2d_flat_rows(seed, n, h, w, c, kh, kw, stride, dilation, padding, act):
    """Multiplier 1 up to 140 channels: the flat-row kernel (see depthwise.FLAT_MAX_C) and its neighbours."""
    x, k, b = rand(seed, n, h, w, c), rand(seed + 1, kh, kw, c, 1), rand(seed + 2, c)
    same_result("depthwise_conv2d", x, k, b, stride=stride, padding=padding, dilation=dilation, activation=act)


def test_inputs_are_not_modified():
    x = rand(0, 1, 4, 4, 3, scale=3)
    before = x.copy()
    for name in ("relu", "relu6", "sigmoid", "swish", "leaky_relu"):
        getattr(ops, name)(x)
    assert np.array_equal(x, before)


# ---------------------------------------------------------------- threads and the Numba cache

WORKLOAD = '''
import numpy as np, numba
from nnlite import ops
rng = np.random.default_rng(7)
def r(*s): return rng.standard_normal(s).astype(np.float32)
x = r(2, 64, 60, 16)  # large enough that every kernel below splits its work across threads
outputs = {
    "conv": ops.conv2d(x, r(3, 3, 16, 24), r(24), stride=2, padding="same", activation="relu6"),
    "conv1x1": ops.conv2d(x, r(1, 1, 16, 40), r(40), activation="swish"),
    "depthwise": ops.depthwise_conv2d(x, r(3, 3, 16, 2), r(32), stride=2, padding="same", activation="relu"),
    "depthwise3x3": ops.depthwise_conv2d(x, r(3, 3, 16, 1), r(16), padding="same", activation="relu6"),
    "dense": ops.dense(r(4, 300), r(300, 50), r(50), activation="sigmoid"),
    "max": ops.max_pool2d(x, pool_size=3, stride=2, padding="same"),
    "avg": ops.avg_pool2d(x, pool_size=3, stride=2, padding="same"),
    "resize": ops.resize_bilinear(x, size=(90, 70)),
    "bn": ops.batch_norm(x, r(16), r(16), r(16), np.abs(r(16)) + 1, epsilon=1e-3),
    "relu": ops.relu(x),
    "conv_rgb": ops.conv2d(r(2, 64, 60, 3), r(7, 7, 3, 16), r(16), stride=2, padding="same", activation="relu"),
    "add_relu": ops.add(x, r(2, 64, 60, 16), activation="relu"),
    "depthwise_flat": ops.depthwise_conv2d(x, r(5, 5, 16, 1), r(16), padding="same", activation="relu"),
    "depthwise_flat_s2": ops.depthwise_conv2d(x, r(7, 7, 16, 1), r(16), stride=2, padding="same"),
    "conv_few_rows": ops.conv2d(r(1, 5, 7, 64), r(3, 3, 64, 200), r(200), padding="same"),  # split by channels
}
dispatchers = [obj for mod in (ops.activations, ops.conv, ops.gemm, ops.depthwise, ops.pooling, ops.resize)
               for obj in vars(mod).values() if isinstance(obj, numba.core.registry.CPUDispatcher)]
cache_misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
threads = (ops.get_num_threads(), ops.blas_num_threads())
'''


def test_one_thread_matches_all_threads_and_uses_the_numba_cache(tmp_path):
    """NNLITE_NUM_THREADS=1 reaches nnlite's pool (BLAS stays at 1 thread), gives the same outputs as >= 2
    threads (1e-6 relative), and a second process loads the compiled kernels from Numba's cache."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here: dict = {}
    before = ops.get_num_threads()
    ops.set_num_threads(max(2, ops.threads.available_cores()))  # at least 2, so chunks really run in parallel
    try:
        exec(WORKLOAD, here)  # compiles and caches the kernels if needed
    finally:
        ops.set_num_threads(before)
    assert here["threads"][0] >= 2 and here["threads"][1] in (1, None)
    out = tmp_path / "one_thread.npz"
    script = WORKLOAD + f"\nnp.savez({str(out)!r}, **outputs, threads=np.array(threads), misses=cache_misses)\n"
    env = {**os.environ, "NNLITE_NUM_THREADS": "1"}
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=Path(__file__).resolve().parents[1])
    one = np.load(out)
    assert list(one["threads"]) == [1, 1], "NNLITE_NUM_THREADS=1 did not reach Numba and BLAS"
    assert int(one["misses"]) == 0, "a second process recompiled Numba kernels instead of loading the cache"
    for name, want in here["outputs"].items():
        assert rel(one[name], want) <= 1e-6, name


def test_parallel_chunks_partition_the_rows():
    from nnlite.ops import parallel
    before = parallel.threads()
    try:
        parallel.set_threads(3)
        for total, work, min_parts, min_rows in [(100, 1 << 30, 1, 1), (7, 1 << 30, 1, 1), (100, 10, 1, 1),
                                                 (1000, 1 << 30, 40, 1), (100, 1 << 30, 1, 64)]:
            parts = parallel.chunks(total, work, min_parts, min_rows)
            assert parts[0][0] == 0 and parts[-1][1] == total
            assert all(a < b for a, b in parts) and all(p[1] == q[0] for p, q in zip(parts, parts[1:]))
        assert len(parallel.chunks(100, 10)) == 1  # small work runs inline
        assert len(parallel.chunks(1000, 1 << 30, min_parts=40)) == 40
        assert len(parallel.chunks(100, 1 << 30, min_rows=64)) == 1
        seen = []
        parallel.run(lambda a, b: seen.extend(range(a, b)), 1000, 1 << 30)
        assert sorted(seen) == list(range(1000))

        parallel.set_threads(1)  # one thread, several chunks (cache blocking): all run inline
        seen.clear()
        parallel.run(lambda a, b: seen.extend(range(a, b)), 1000, 1 << 30, min_parts=7)
        assert sorted(seen) == list(range(1000))
        parallel.set_threads(3)

        def boom(a, b):
            raise ValueError("chunk failed")
        with pytest.raises(ValueError, match="chunk failed"):
            parallel.run(boom, 1000, 1 << 30)
    finally:
        parallel.set_threads(before)
