"""Two depthwise -> 1x1 pairs in a row whose first 1x1 conv widens the map (nnlite.plan_chain): regrouped as
the first depthwise and an inverted-residual block where the widened map is large, as the two pairs where it
is not; the same bits as the declared layers one by one either way, at 1 and 2 threads, and on every fallback.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops, plan_chain
from nnlite.graph import GraphBuilder
from nnlite.ops import inverted, machine
from nnlite.plan import PairStep
from tests.test_prepared import layer_by_layer

pytestmark = pytest.mark.usefixtures("simd_engine")


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def mobilenet_v1_model(rng, widths=(8, 24, 40, 40), strides=(1, 2, 1), size=20, extra_reader=False):
    """Depthwise (relu6) -> 1x1 conv (relu6, relu, relu6) pairs, as MobileNetV1's layers: widths[i] -> widths[i + 1]."""
    g = GraphBuilder("v1")
    a = g.input("image", (size, size, widths[0]))
    outs = []
    for i, (cin, cout, stride) in enumerate(zip(widths, widths[1:], strides)):
        a = g.layer("depthwise_conv2d", f"dw{i}", a, kernel=rand(rng, 3, 3, cin, 1), bias=rand(rng, cin), stride=stride,
                    padding="same", activation="relu6")
        a = g.layer("conv2d", f"pw{i}", a, kernel=rand(rng, 1, 1, cin, cout) / np.float32(cin ** 0.5),
                    bias=rand(rng, cout))
        a = g.layer("relu6" if i % 2 == 0 else "relu", f"pw{i}_act", a)  # folded into the conv (its step's extra)
        outs.append(a)
    if extra_reader:  # the first pair's output also read by a pool: not chained
        return g.build([a, g.layer("max_pool2d", "side", outs[0], pool_size=2)])
    return g.build([a])


@pytest.fixture(params=["regrouped", "pairs"])
def regroup(request, monkeypatch):
    """Every chain regrouped (a last-level cache of 64 bytes: any map is larger) or none (1 TB)."""
    size = 64 if request.param == "regrouped" else 1 << 40
    caches = machine.caches()
    monkeypatch.setattr(machine, "caches", lambda: caches._replace(l3=size))
    return request.param == "regrouped"


@pytest.mark.parametrize("threads", [1, 2])
def test_a_widening_pair_and_the_next_give_the_layers_bits(regroup, threads, monkeypatch):
    model = mobilenet_v1_model(np.random.default_rng(1))
    x = rand(np.random.default_rng(2), 2, 20, 20, 8)
    blocks = []
    real = inverted.prepare_inverted_residual
    monkeypatch.setattr(inverted, "prepare_inverted_residual", lambda *a, **k: blocks.append(1) or real(*a, **k))
    before = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        got, again = model(x), model(x)
        steps, _ = model._execution_plan()
        assert [type(s).__name__ for s in steps] == ["ChainStep", "PairStep"]  # pw0 widens 8 -> 24; pw1 does not
        chain = steps[0]
        assert (chain.first.first.layer.name, chain.first.layer.name, chain.layer.name) == ("dw0", "pw0", "pw1")
        assert chain.prepared is not None and blocks == ([1] if regroup else [])
        want = layer_by_layer(model, x)
    finally:
        ops.set_num_threads(before)
    assert np.array_equal(got, want) and np.array_equal(again, want)


def test_what_is_not_chained():
    rng = np.random.default_rng(3)
    narrowing = mobilenet_v1_model(rng, widths=(24, 16, 16, 16))  # no 1x1 conv widens the map
    shared = mobilenet_v1_model(rng, extra_reader=True)  # the first pair's output has a second reader
    steps, _ = narrowing._execution_plan()
    assert [type(s).__name__ for s in steps] == ["PairStep"] * 3
    steps, _ = shared._execution_plan()  # pw0's pair stays; pw1 (24 -> 40) and the next pair chain
    assert [(type(s).__name__, s.layer.name) for s in steps] == [("PairStep", "pw0"), ("ChainStep", "pw2"),
                                                                 ("Step", "side")]
    assert steps[1].first.layer.name == "pw1" and isinstance(steps[1].second, PairStep)


def test_a_profilers_wrapper_runs_the_layers(regroup):
    model = mobilenet_v1_model(np.random.default_rng(4))
    x = rand(np.random.default_rng(5), 1, 20, 20, 8)
    want = model(x)
    calls = []
    layer = model["dw1"]
    original = layer.fn
    layer.fn = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        assert np.array_equal(model(x), want) and calls == [1]
    finally:
        layer.fn = original


def test_regrouping_needs_a_large_map_and_the_banded_block(monkeypatch):
    model = mobilenet_v1_model(np.random.default_rng(6))
    steps, _ = model._execution_plan()
    block = steps[0].block
    caches = machine.caches()
    monkeypatch.setattr(machine, "caches", lambda: caches._replace(l3=4 * 4 * 20 * 20 * 24))  # a quarter: the map
    assert not plan_chain.worth_regrouping((1, 20, 20, 24), block)  # not over a quarter of the cache
    assert plan_chain.worth_regrouping((2, 20, 20, 24), block)
    monkeypatch.setattr(inverted, "worth_fusing", lambda *a: False)  # the block would run as its layers
    inverted._geometry.cache_clear()
    try:
        assert not plan_chain.worth_regrouping((2, 20, 20, 24), block)
    finally:
        inverted._geometry.cache_clear()
