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
    model = dense_block_model(rng, size=40)
    x = rand(rng, 1, 40, 40, 8)
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
