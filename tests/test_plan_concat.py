"""Convolutions write into the channel concat that reads them (nnlite.plan_concat, ``into=`` of
nnlite.ops.conv.prepare_conv2d): the same bits as the declared layers, each convolution touching only its own
channels, and the concat fused only where nothing else reads its inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.graph import GraphBuilder
from nnlite.ops import reference
from nnlite.ops.conv import prepare_conv2d
from nnlite.plan_concat import ConcatStep
from tests.test_plan_sums import _compare, _conv, _on_one_and_two_threads, rand

# (n, h, w, cin, cout, k, stride, padding): 1x1 split by rows, by panels and in blocks of rows; 3x3 on
# Winograd's (stride 1, 'same') and on the direct GEMM (strided, 'valid'); 16-channel panels; an RGB stem
CASES = [(1, 20, 20, 16, 64, 1, 1, "valid"), (1, 6, 6, 64, 200, 1, 1, "valid"), (2, 40, 40, 24, 40, 1, 1, "valid"),
         (1, 23, 19, 16, 48, 3, 1, "same"), (2, 17, 15, 8, 16, 3, 2, "valid"), (1, 30, 30, 3, 24, 3, 2, "same"),
         (1, 9, 9, 32, 12, 5, 1, "same"), (1, 8, 8, 40, 96, 1, 2, "valid")]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_a_convolution_writes_only_its_channels_of_a_wider_map(simd_engine, case, threads):
    n, h, w, cin, cout, k, stride, padding = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rand(rng, n, h, w, cin)
    kernel, bias = rand(rng, k, k, cin, cout) / np.float32((k * k * cin) ** 0.5), rand(rng, cout)
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(threads)
        want = ops.conv2d(x, kernel, bias, stride=stride, padding=padding, activation="relu")
        for offset, extra in [(0, 5), (7, 0), (3, 17)]:
            channels = offset + cout + extra
            call = prepare_conv2d(x, kernel, bias, stride=stride, padding=padding, activation="relu",
                                  into=(channels, offset))
            assert call is not None and call.out_shape == want.shape
            out = np.full((*want.shape[:3], channels), np.nan, np.float32)
            call(x, out)
            np.testing.assert_array_equal(out[..., offset:offset + cout], want)
            assert np.isnan(out[..., :offset]).all() and np.isnan(out[..., offset + cout:]).all()
    finally:
        ops.set_num_threads(before)
    got = out[..., offset:offset + cout]
    ref = reference.conv2d(x, kernel, bias, stride=stride, padding=padding, activation="relu")
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_no_wider_map_where_the_tiles_would_not_write_it(simd_engine):
    """An activation applied after the store (sigmoid, swish: it reads rows of the output's own width), a
    matrix-vector product (a few output pixels), or a sum in the kernel at once: None (the step falls back)."""
    rng = np.random.default_rng(5)
    x, kernel = rand(rng, 1, 12, 12, 8), rand(rng, 1, 1, 8, 32)
    assert prepare_conv2d(x, kernel, activation="sigmoid", into=(40, 8)) is None
    assert prepare_conv2d(x, kernel, activation="swish", into=(40, 8)) is None
    assert prepare_conv2d(rand(rng, 1, 2, 2, 8), kernel, into=(40, 8)) is None
    assert prepare_conv2d(x, kernel, into=(40, 8), accumulate=(None, 0.2, False)) is None
    assert prepare_conv2d(x, kernel, activation="leaky_relu", into=(40, 8)) is not None


def fire_model(rng, size=20, act="relu", axis=-1):
    """SqueezeNet's fire module twice (squeeze 1x1, then expand 1x1 and 3x3 concatenated), a three-way concat
    whose middle input is the block's input itself (not a convolution: unfused), and a concat one of whose
    convolutions another layer also reads (unfused)."""
    g = GraphBuilder("fire")
    x = g.input("image", (size, size, 16))
    h = x
    for i in range(2):
        s = _conv(g, rng, f"fire{i}/squeeze", h, 16 if i == 0 else 48, 16, activation="relu")
        e1 = _conv(g, rng, f"fire{i}/expand1x1", s, 16, 24, activation=act)
        e3 = _conv(g, rng, f"fire{i}/expand3x3", s, 16, 24, k=3, activation=act)
        h = g.layer("concat", f"fire{i}/concat", e1, e3, axis=axis)
    mixed = g.layer("concat", "mixed", _conv(g, rng, "a", h, 48, 8), x, _conv(g, rng, "b", h, 48, 8))
    shared = _conv(g, rng, "shared", h, 48, 8)
    both = g.layer("concat", "both", shared, _conv(g, rng, "c", h, 48, 8))
    return g.build([mixed, both, g.layer("relu", "side", shared)])


def test_fire_modules_write_into_their_concats(simd_engine):
    rng = np.random.default_rng(0)
    model = fire_model(rng)
    x = rand(rng, 2, 20, 20, 16)
    first = _compare(model, x)
    steps, _ = model._execution_plan()
    concats = [s for s in steps if isinstance(s, ConcatStep)]
    assert [(s.out, s.inputs, [p.layer.name for p in s.parts]) for s in concats] == [
        ("fire0/concat", ("fire0/squeeze",), ["fire0/expand1x1", "fire0/expand3x3"]),
        ("fire1/concat", ("fire1/squeeze",), ["fire1/expand1x1", "fire1/expand3x3"])]
    assert all(s.prepared is not None for s in concats)  # written in place
    names = [s.out for s in steps]
    assert "fire0/expand1x1" not in names and {"mixed", "both", "a", "b", "shared", "c"} <= set(names)
    for a, b in zip(_compare(model, x), first):  # prepared calls: the same bits again
        assert np.array_equal(a, b)


@pytest.mark.parametrize("act, axis", [("sigmoid", -1), ("leaky_relu", 3), ("relu6", -1)])
def test_other_activations_and_axis_3(simd_engine, act, axis):
    rng = np.random.default_rng(1)
    model = fire_model(rng, act=act, axis=axis)
    _compare(model, rand(rng, 1, 20, 20, 16))
    concats = [s for s in model._execution_plan()[0] if isinstance(s, ConcatStep)]
    assert len(concats) == 2
    assert all((s.prepared is None) == (act == "sigmoid") for s in concats)  # sigmoid: convs, then the concat


def test_a_concat_along_another_axis_is_not_fused(simd_engine):
    rng = np.random.default_rng(2)
    g = GraphBuilder("rows")
    x = g.input("image", (10, 10, 8))
    model = g.build([g.layer("concat", "wide", _conv(g, rng, "a", x, 8, 16), _conv(g, rng, "b", x, 8, 16), axis=2)])
    assert _compare(model, rand(rng, 1, 10, 10, 8)).shape == (1, 10, 20, 16)
    assert not any(isinstance(s, ConcatStep) for s in model._execution_plan()[0])


def test_thread_counts_fallbacks_and_a_profiler_give_the_same_bits(simd_engine):
    rng = np.random.default_rng(3)
    model = fire_model(rng, size=33)
    x = rand(rng, 1, 33, 33, 16)
    want = _on_one_and_two_threads(model, x)
    calls, originals = [], {}
    for name in ("fire1/concat", "fire1/expand3x3"):  # a profiler's wrapper: each layer called as declared
        layer = model[name]
        originals[name] = layer.fn
        layer.fn = lambda *a, _f=layer.fn, _n=name, **k: calls.append(_n) or _f(*a, **k)
    try:
        for a, b in zip(model(x), want):
            assert np.array_equal(a, b)
        assert calls == ["fire1/expand3x3", "fire1/concat"]
    finally:
        for name, fn in originals.items():
            model[name].fn = fn
    with ops.engine.use("blas"):
        _compare(model, x)
