"""Adds run inside the separable convolution producing their input (nnlite.plan_sums): the same bits as the
declared layers one by one, on the fused kernel and on every fallback, and only where nothing else reads the
convolution's output.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from nnlite import ops
from nnlite.graph import GraphBuilder
from nnlite.plan_sums import SumStep


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _separable(g, rng, name, x, cin, cout, stride=1):
    return g.layer("separable_conv2d", name, x, depthwise_kernel=rand(rng, 3, 3, cin, 1),
                   pointwise_kernel=rand(rng, 1, 1, cin, cout) / np.float32(cin ** 0.5), bias=rand(rng, cout),
                   stride=stride, padding="same")


def dense_block_model(rng, act="relu", size=12):
    """face-api.js's dense block: o0, then each conv reads relu(o0 + ... + o{k-1}); the block's output is
    relu(o0 + ... + o3). Then a residual add with the separable output first, and one whose output is also read
    by a layer besides the add (not fused)."""
    g = GraphBuilder("dense")
    x = g.input("image", (size, size, 8))
    outs = [_separable(g, rng, "conv0", x, 8, 16, stride=2)]
    for k in range(1, 4):
        inp = outs[0] if k == 1 else g.layer(act, f"act{k}", g.layer("add", f"add{k}", *outs))
        outs.append(_separable(g, rng, f"conv{k}", inp, 16, 16))
    block = g.layer(act, "block", g.layer("add", "add", *outs))
    y = _separable(g, rng, "res_conv", block, 16, 16)
    res = g.layer("add", "residual", y, block, activation="leaky_relu", alpha=0.1)  # the separable output first
    z = _separable(g, rng, "side_conv", res, 16, 16)
    side = g.layer("add", "side_sum", res, z)  # z is also an output: stays a plain add
    return g.build([side, z])


def _compare(model, x):
    fused = model(x)
    model.optimize = False
    try:
        plain = model(x)
    finally:
        model.optimize = True
    for a, b in zip(fused, plain):
        assert np.array_equal(a, b)
    return fused


def test_a_dense_block_sums_inside_its_convolutions(simd_engine):
    rng = np.random.default_rng(0)
    model = dense_block_model(rng)
    x = rand(rng, 2, 12, 12, 8)
    first = _compare(model, x)
    steps, _ = model._execution_plan()
    sums = [s for s in steps if isinstance(s, SumStep)]
    assert [(s.producer.layer.name, s.out, s.inputs[-1], s.total) for s in sums] == [
        ("conv1", "act2", "conv0", "act2:sum"), ("conv2", "act3", "act2:sum", "act3:sum"),
        ("conv3", "block", "act3:sum", None), ("res_conv", "residual", "block", None)]
    assert all(s.prepared is not None for s in sums)  # the fused kernel ran
    assert not any(s.out in ("conv1", "conv2", "conv3", "res_conv") for s in steps)  # never stored ...
    assert "side_sum" in [s.out for s in steps if type(s).__name__ == "Step"]  # ... except where read elsewhere
    for a, b in zip(_compare(model, x), first):  # prepared calls: the same bits again
        assert np.array_equal(a, b)


@pytest.mark.parametrize("act", ["relu6", "sigmoid", "swish"])
def test_every_activation_of_the_sum(simd_engine, act):
    rng = np.random.default_rng(1)
    _compare(dense_block_model(rng, act=act), rand(rng, 1, 12, 12, 8))


def test_thread_counts_give_the_same_bits(simd_engine):
    rng = np.random.default_rng(2)
    _on_one_and_two_threads(dense_block_model(rng, size=40), rand(rng, 1, 40, 40, 8))


def _on_one_and_two_threads(model, x):
    """:func:`_compare` with 1, then 2 threads; the two give the same bits. Returns the second's outputs."""
    before = ops.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            ops.set_num_threads(threads)
            assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
            results.append(_compare(model, x))
    finally:
        ops.set_num_threads(before)
    for a, b in zip(*results):
        assert np.array_equal(a, b)
    return results[1]


def test_fallbacks_give_the_same_bits_and_a_profiler_sees_each_declared_add(simd_engine):
    """A profiler's wrapper on an add, or the "blas" engine: the producer, then the add layer, one by one."""
    rng = np.random.default_rng(3)
    model = dense_block_model(rng)
    x = rand(rng, 1, 12, 12, 8)
    fused = model(x)
    calls = []
    layer = model["add3"]
    original = layer.fn
    layer.fn = lambda *a, **k: calls.append(len(a)) or original(*a, **k)
    try:
        for a, b in zip(model(x), fused):
            assert np.array_equal(a, b)
        assert calls == [2]  # once, on the running sum and the new output
    finally:
        layer.fn = original
    with ops.engine.use("blas"):
        _compare(model, x)


def test_an_add_that_broadcasts_runs_unfused():
    rng = np.random.default_rng(4)
    g = GraphBuilder("broadcast")
    x = g.input("image", (6, 6, 8))
    bias = g.input("bias", (1, 1, 16))
    y = _separable(g, rng, "conv", x, 8, 16)
    out = g.layer("add", "sum", bias, y, activation="relu")
    model = g.build([out])
    feed = {"image": rand(rng, 1, 6, 6, 8), "bias": rand(rng, 1, 1, 1, 16)}
    fused = model(**feed)
    model.optimize = False
    assert np.array_equal(fused, model(**feed))


def _conv(g, rng, name, x, cin, cout, k=1, **attrs):
    return g.layer("conv2d", name, x, kernel=rand(rng, k, k, cin, cout) / np.float32((k * k * cin) ** 0.5),
                   bias=rand(rng, cout), padding="same", **attrs)


def conv_residual_model(rng, size, c):
    """A bottleneck's residual add (the shortcut first, the 1x1 convolution's output last), then a dense block
    of convolutions (a chain of sums), one of them 3x3 (Winograd's where it takes it: summed unfused)."""
    g = GraphBuilder("residual")
    x = g.input("image", (size, size, c))
    a = _conv(g, rng, "conv_a", x, c, c, activation="relu")
    res = g.layer("add", "res", x, _conv(g, rng, "conv_b", a, c, c), activation="relu")
    outs = [_conv(g, rng, "d0", res, c, c)]
    outs.append(_conv(g, rng, "d1", outs[0], c, c))
    s1 = g.layer("add", "s1", *outs, activation="relu")
    outs.append(_conv(g, rng, "d2", s1, c, c, k=3))
    s2 = g.layer("add", "s2", *outs, activation="relu6")
    outs.append(_conv(g, rng, "d3", s2, c, c))
    return g.build([g.layer("add", "s3", *outs, activation="leaky_relu", alpha=0.1)])


# split by rows (the 3x3 on Winograd's), by panels (the 3x3 too), a matrix-vector product, Winograd's again,
@pytest.mark.parametrize("size, c", [(12, 32), (3, 200), (1, 40), (9, 24), (40, 64)])  # blocks of rows
def test_convolutions_sum_in_their_kernel(simd_engine, size, c):
    """Residual adds and a chain of sums after conv2d on the tiled GEMM, split by rows (blocks of rows summed
    as they are done) or by channel panels (each panel's columns), and on Winograd's (each block of tiles'
    outputs): the same bits as the declared layers; where the convolution runs as a matrix-vector product,
    the producer then the add."""
    rng = np.random.default_rng(size * c)
    model = conv_residual_model(rng, size, c)
    x = rand(rng, 2, size, size, c)
    _compare(model, x)
    steps, _ = model._execution_plan()
    sums = {s.producer.layer.name: s for s in steps if isinstance(s, SumStep)}
    assert set(sums) == {"conv_b", "d1", "d2", "d3"} and sums["d1"].total == "s1:sum"
    fused = {name for name, s in sums.items() if s.prepared is not None}
    assert fused == ({"conv_b", "d1", "d2", "d3"} if size >= 3 else set())
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        one = model(x)
        ops.set_num_threads(2)
        two = model(x)
    finally:
        ops.set_num_threads(before)
    assert np.array_equal(one, two)


@pytest.fixture(params=["fused pair", "unfused pair"])
def pairs(request, monkeypatch):
    """Separable convolutions on the fused depthwise -> 1x1 kernel, or (as Xception's 728-channel ones, whose
    1x1 kernel is too large for it) as the two layers, the 1x1 conv's GEMM summing."""
    from nnlite.ops import separable
    if request.param == "unfused pair":
        monkeypatch.setattr(separable, "worth_fusing", lambda *args: False)
    separable._fast_pair_key.cache_clear()
    yield request.param
    separable._fast_pair_key.cache_clear()   # no geometry cached under the patch outlives the test


@pytest.mark.parametrize("act", ["relu", "relu6", "leaky_relu", "sigmoid"])
def test_a_residual_streams_activation_is_written_with_its_sum(simd_engine, pairs, act):
    """Xception's residual stream: each block reads act(s) and adds its output to s itself. The add's SumStep
    keeps s and writes act(s) in the same pass; no activation step remains; the same bits on the fused kernel,
    on the unfused pair, with 1 and 2 threads, and on the fallbacks."""
    rng = np.random.default_rng(7)
    g = GraphBuilder("stream")
    x = g.input("image", (14, 14, 16))
    s = g.layer("add", "add0", x, _separable(g, rng, "conv0", x, 16, 16))
    for i in (1, 2):
        a = g.layer(act, f"act{i}", s, **({"alpha": 0.3} if act == "leaky_relu" else {}))
        s = g.layer("add", f"add{i}", s, _separable(g, rng, f"conv{i}", a, 16, 16))
    model = g.build([s])
    x = rand(rng, 2, 14, 14, 16)
    first = _compare(model, x)
    steps, _ = model._execution_plan()
    assert not any(s.layer.op == act for s in steps)
    kept = [(s.total, s.out) for s in steps if isinstance(s, SumStep)]
    assert kept == [("add0", "act1"), ("add1", "act2"), (None, "add2")]
    assert all(s.prepared is not None for s in steps if isinstance(s, SumStep))
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        assert np.array_equal(model(x), first)
    finally:
        ops.set_num_threads(before)
    with ops.engine.use("blas"):
        _compare(model, x)
