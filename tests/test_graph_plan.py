"""Model.forward's execution plan (activation fusion, repeated-layer reuse) against the declared layers.

The plan must give bit-identical outputs to running every declared layer, while trace/summary/first_divergence
keep seeing every layer name the model declares.
"""

from __future__ import annotations

import numpy as np

from nnlite.graph import GraphBuilder
from nnlite.plan import plan_steps
from nnlite.plan_sums import SumStep


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def branchy_model(rng):
    """conv -> relu (fusable), conv read twice -> relu (not fusable), add -> leaky_relu (fusable),
    the same relu twice on one tensor (NASNet's branches), and a relu that is a model output."""
    g = GraphBuilder("branchy")
    x = g.input("image", (9, 9, 3))
    a = g.layer("conv2d", "conv_a", x, kernel=rand(rng, 3, 3, 3, 8), bias=rand(rng, 8), padding="same")
    a = g.layer("relu", "relu_a", a)
    b = g.layer("conv2d", "conv_b", a, kernel=rand(rng, 1, 1, 8, 8))
    b_relu = g.layer("relu6", "relu6_b", b)
    s = g.layer("add", "sum", b, b_relu)  # conv_b is read twice: its relu6 cannot be fused
    s = g.layer("leaky_relu", "sum_act", s, alpha=0.3)
    r1 = g.layer("relu", "branch1_relu", s)
    r2 = g.layer("relu", "branch2_relu", s)  # same op, same input: computed once
    c1 = g.layer("separable_conv2d", "sep1", r1, depthwise_kernel=rand(rng, 3, 3, 8, 1),
                 pointwise_kernel=rand(rng, 1, 1, 8, 4), padding="same")
    c2 = g.layer("depthwise_conv2d", "dw2", r2, kernel=rand(rng, 3, 3, 8, 1), padding="same")
    c2 = g.layer("sigmoid", "dw2_act", c2)
    d = g.layer("dense", "head", c1, kernel=rand(rng, 4, 5))
    out = g.layer("swish", "head_act", d)
    last = g.layer("relu", "out_relu", c2)
    return g.build([out, last])


def test_plan_fuses_and_reuses_but_outputs_are_bit_identical():
    rng = np.random.default_rng(0)
    model = branchy_model(rng)
    x = rand(rng, 2, 9, 9, 3)
    fused = model(x)
    model.optimize = False
    plain = model(x)
    for got, want in zip(fused, plain):
        assert np.array_equal(got, want)
    steps = plan_steps(model.layers, model.outputs)
    by_out = {s.out: s for s in steps}
    assert by_out["relu_a"].layer.name == "conv_a" and by_out["relu_a"].extra == {"activation": "relu"}
    assert by_out["sum_act"].extra == {"activation": "leaky_relu", "alpha": 0.3}
    assert by_out["dw2_act"].layer.name == "dw2" and by_out["head_act"].layer.name == "head"
    assert "relu6_b" in by_out and by_out["conv_b"].extra == {}  # conv_b has two readers
    assert "branch2_relu" not in by_out and by_out["sep1"].inputs == ("branch1_relu",)
    assert "out_relu" in by_out and by_out["out_relu"].layer.name == "out_relu"  # c2's output is read once,
    # but dw2_act is already fused into dw2, so out_relu (a model output) still runs on its own
    assert len(steps) == len(model.layers) - 5


def test_trace_and_summary_still_show_every_declared_layer():
    rng = np.random.default_rng(1)
    model = branchy_model(rng)
    x = rand(rng, 1, 9, 9, 3)
    model(x)  # builds the plan first: trace must not use it
    values = model.trace(x)
    assert list(values) == ["image", *(layer.name for layer in model.layers)]
    np.testing.assert_array_equal(values["relu_a"], np.maximum(values["conv_a"], 0))
    assert [r["name"] for r in model.layer_table()] == [layer.name for layer in model.layers]
    assert model.first_divergence({"conv_a": values["conv_a"], "branch2_relu": values["branch2_relu"]}, x) is None


def test_custom_callables_are_never_fused_or_merged():
    def my_conv(x, *, kernel, activation=None):
        return x @ kernel[0, 0]

    def my_relu(x):
        return np.maximum(x, 0)

    rng = np.random.default_rng(2)
    g = GraphBuilder("custom")
    x = g.input("x", (3, 3, 4))
    a = g.layer(my_conv, "conv2d", x, kernel=rand(rng, 1, 1, 4, 4))
    a = g.layer("relu", "r", a)  # producer is not the nnlite kernel: stays a separate step
    b = g.layer(my_relu, "relu_1", a)
    c = g.layer(my_relu, "relu_2", a)  # custom ops are not assumed pure: both run
    model = g.build([b, c])
    assert [s.out for s in plan_steps(model.layers, model.outputs)] == ["conv2d", "r", "relu_1", "relu_2"]


def test_a_profiler_wrapping_layer_fn_still_sees_fused_calls():
    rng = np.random.default_rng(3)
    model = branchy_model(rng)
    x = rand(rng, 1, 9, 9, 3)
    calls = []
    layer = model["conv_a"]
    inner = layer.fn
    layer.fn = lambda *a, **k: calls.append(k.get("activation")) or inner(*a, **k)
    model(x)  # the plan is built after the wrapping here: it must fuse all the same
    assert calls == ["relu"]


def test_depthwise_then_pointwise_runs_as_one_step_with_identical_outputs(simd_engine):
    """dw -> relu6 -> 1x1 conv -> relu becomes one PairStep (same bits as the layers one by one); a depthwise
    read twice, a 3x3 'pointwise' or a strided 1x1 conv is not paired; a profiler's wrapped fn unpairs it."""
    from nnlite import plan
    rng = np.random.default_rng(5)
    g = GraphBuilder("pairs")
    x = g.input("image", (12, 12, 8))
    a = g.layer("depthwise_conv2d", "dw_a", x, kernel=rand(rng, 3, 3, 8, 1), bias=rand(rng, 8), padding="same")
    a = g.layer("relu6", "dw_a_act", a)
    a = g.layer("conv2d", "pw_a", a, kernel=rand(rng, 1, 1, 8, 24), bias=rand(rng, 24))
    a = g.layer("relu", "pw_a_act", a)  # paired: dw_a (+relu6) and pw_a (+relu)
    b = g.layer("depthwise_conv2d", "dw_b", a, kernel=rand(rng, 3, 3, 24, 1), stride=2, padding="same")
    b1 = g.layer("conv2d", "pw_b1", b, kernel=rand(rng, 1, 1, 24, 8))  # dw_b has two readers: no pair
    b2 = g.layer("conv2d", "pw_b2", b, kernel=rand(rng, 1, 1, 24, 8))
    s = g.layer("add", "sum", b1, b2)
    c = g.layer("depthwise_conv2d", "dw_c", s, kernel=rand(rng, 3, 3, 8, 1), padding="same")
    c = g.layer("conv2d", "pw_c", c, kernel=rand(rng, 3, 3, 8, 4), padding="same")  # 3x3: no pair
    d = g.layer("depthwise_conv2d", "dw_d", c, kernel=rand(rng, 3, 3, 4, 1), padding="same")
    d = g.layer("conv2d", "pw_d", d, kernel=rand(rng, 1, 1, 4, 4), stride=2)  # strided: no pair
    model = g.build([d])
    steps = plan_steps(model.layers, model.outputs)
    pairs = [s for s in steps if isinstance(s, plan.PairStep)]
    assert [(p.first.layer.name, p.layer.name, p.out) for p in pairs] == [("dw_a", "pw_a", "pw_a_act")]
    assert pairs[0].first.extra == {"activation": "relu6"} and pairs[0].extra == {"activation": "relu"}
    img = rand(rng, 2, 12, 12, 8)
    fused = model(img)
    model.optimize = False
    assert np.array_equal(fused, model(img))
    model.optimize = True
    calls = []
    layer = model["pw_a"]
    original = layer.fn
    layer.fn = lambda *a, **k: calls.append(1) or original(*a, **k)  # as benchmarks/profile_layers does
    try:
        assert np.array_equal(model(img), fused) and calls == [1]
    finally:
        layer.fn = original


def test_conv_then_max_pool_runs_as_one_step_with_identical_outputs(simd_engine):
    from nnlite import plan
    rng = np.random.default_rng(6)
    g = GraphBuilder("convpool")
    x = g.input("image", (21, 21, 3))
    a = g.layer("conv2d", "conv0", x, kernel=rand(rng, 3, 3, 3, 16), bias=rand(rng, 16), padding="valid")
    a = g.layer("leaky_relu", "conv0_act", a, alpha=0.1)
    a = g.layer("max_pool2d", "pool0", a, pool_size=2, stride=2, padding="same")  # paired with conv0 (+leaky)
    b = g.layer("conv2d", "conv1", a, kernel=rand(rng, 3, 3, 16, 8), padding="same")
    b1 = g.layer("max_pool2d", "pool1", b, pool_size=2)
    b2 = g.layer("relu", "side", b)  # conv1 has two readers: not paired
    model = g.build([b1, b2])
    steps = plan_steps(model.layers, model.outputs)
    fused = [s for s in steps if isinstance(s, plan.ConvPoolStep)]
    assert [(s.first.layer.name, s.layer.name) for s in fused] == [("conv0", "pool0")]
    img = rand(rng, 2, 21, 21, 3)
    got = model(img)
    model.optimize = False
    for a_, b_ in zip(got, model(img)):
        assert np.array_equal(a_, b_)


def test_expand_depthwise_project_runs_as_one_step_with_identical_outputs(simd_engine, monkeypatch):
    """1x1 conv (+relu6) -> dw (+relu6) -> 1x1 conv becomes one InvertedStep (same bits as the layers one by
    one); an expansion read twice or a 3x3 'expansion' stays a conv before a PairStep; a profiler's wrapped fn
    runs the two steps."""
    from nnlite import plan
    from nnlite.ops import inverted, parallel
    monkeypatch.setattr(inverted, "worth_fusing", lambda *args: True)  # this small map is banded too
    inverted._geometry.cache_clear()
    rng = np.random.default_rng(7)
    g = GraphBuilder("inverted")
    x = g.input("image", (16, 16, 8))
    a = g.layer("conv2d", "expand_a", x, kernel=rand(rng, 1, 1, 8, 48), bias=rand(rng, 48))
    a = g.layer("relu6", "expand_a_act", a)
    a = g.layer("depthwise_conv2d", "dw_a", a, kernel=rand(rng, 3, 3, 48, 1), bias=rand(rng, 48), padding="same")
    a = g.layer("relu6", "dw_a_act", a)
    a = g.layer("conv2d", "project_a", a, kernel=rand(rng, 1, 1, 48, 8), bias=rand(rng, 8))  # with the two above
    a = g.layer("add", "shortcut_a", x, a)  # the block's shortcut: fused too
    a2 = g.layer("conv2d", "expand_a2", a, kernel=rand(rng, 1, 1, 8, 24))
    a2 = g.layer("depthwise_conv2d", "dw_a2", a2, kernel=rand(rng, 3, 3, 24, 1), padding="same")
    a2 = g.layer("conv2d", "project_a2", a2, kernel=rand(rng, 1, 1, 24, 8))
    a2 = g.layer("add", "shortcut_a2", a2, a)  # either order
    a = g.layer("relu", "shortcut_a2_act", a2)  # an add with an activation: not fused with the block
    b = g.layer("conv2d", "expand_b", a, kernel=rand(rng, 1, 1, 8, 32))
    b = g.layer("depthwise_conv2d", "dw_b", b, kernel=rand(rng, 3, 3, 32, 1), stride=2, padding="same")
    b = g.layer("conv2d", "project_b", b, kernel=rand(rng, 1, 1, 32, 8))  # fused too, stride 2
    c = g.layer("conv2d", "expand_c", b, kernel=rand(rng, 3, 3, 8, 16), padding="same")  # 3x3: not an expansion
    c = g.layer("depthwise_conv2d", "dw_c", c, kernel=rand(rng, 3, 3, 16, 1), padding="same")
    c = g.layer("conv2d", "project_c", c, kernel=rand(rng, 1, 1, 16, 8))
    d = g.layer("conv2d", "expand_d", c, kernel=rand(rng, 1, 1, 8, 16))
    d2 = g.layer("relu", "side", d)  # expand_d read twice: not fused with its pair
    d = g.layer("depthwise_conv2d", "dw_d", d, kernel=rand(rng, 3, 3, 16, 1), padding="same")
    d = g.layer("conv2d", "project_d", d, kernel=rand(rng, 1, 1, 16, 16))
    model = g.build([g.layer("add", "sum", d, d2)])
    steps = plan_steps(model.layers, model.outputs)
    blocks = [s for s in steps if isinstance(s, plan.InvertedStep)]
    assert [(s.expand.layer.name, s.pair.first.layer.name, s.layer.name, s.out) for s in blocks] == [
        ("expand_a", "dw_a", "project_a", "shortcut_a"), ("expand_a2", "dw_a2", "project_a2", "project_a2"),
        ("expand_b", "dw_b", "project_b", "project_b")]
    assert blocks[0].expand.extra == {"activation": "relu6"} and blocks[0].inputs == ("image",)
    assert blocks[0].residual.layer.name == "shortcut_a" and blocks[1].residual is None
    assert [s.layer.name for s in steps if isinstance(s, plan.PairStep)] == ["project_c"]
    sums = [s for s in steps if isinstance(s, SumStep)]  # the last add runs inside project_d's pair
    assert [(type(s.producer), s.producer.layer.name, s.out) for s in sums] == [(plan.PairStep, "project_d", "sum")]
    img = rand(rng, 2, 16, 16, 8)
    calls = []
    split = parallel.split  # every banded block is one call of its kernel
    monkeypatch.setattr(parallel, "split", lambda kernel, *args: (
        calls.append(1) if kernel is inverted._inverted_rows else None) or split(kernel, *args))
    fused = model(img)
    assert calls == [1, 1, 1]  # every block ran banded
    model.optimize = False
    assert np.array_equal(fused, model(img))
    model.optimize = True
    layer = model["dw_a"]
    original = layer.fn
    layer.fn = lambda *a, **k: calls.append("dw") or original(*a, **k)  # as benchmarks/profile_layers does
    try:
        assert np.array_equal(model(img), fused) and calls[3:] == ["dw", 1, 1]
    finally:
        layer.fn = original
