"""Prepared steps (nnlite.prepared): a plan step's call prepared once per input shape must give the bits the
layers give one by one, and must be made again whenever what it was made from changes."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.graph import GraphBuilder
from nnlite.ops import engine, inverted, separable

pytestmark = pytest.mark.usefixtures("simd_engine")


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def model_with_every_prepared_kind(rng):
    """A conv2d (its activation folded in), a separable_conv2d layer, a depthwise -> 1x1 pair, an
    inverted-residual block with its shortcut, an average and a max pool: each a step with a prepared form."""
    g = GraphBuilder("prepared")
    x = g.input("image", (12, 12, 3))
    a = g.layer("conv2d", "stem", x, kernel=rand(rng, 3, 3, 3, 8), bias=rand(rng, 8), padding="same")
    a = g.layer("relu", "stem_act", a)
    a = g.layer("separable_conv2d", "sep", a, depthwise_kernel=rand(rng, 3, 3, 8, 1),
                pointwise_kernel=rand(rng, 1, 1, 8, 16), bias=rand(rng, 16), padding="same", activation="relu")
    b = g.layer("conv2d", "expand", a, kernel=rand(rng, 1, 1, 16, 48), bias=rand(rng, 48), activation="relu6")
    b = g.layer("depthwise_conv2d", "dw", b, kernel=rand(rng, 3, 3, 48, 1), bias=rand(rng, 48), padding="same",
                activation="relu6")
    b = g.layer("conv2d", "project", b, kernel=rand(rng, 1, 1, 48, 16), bias=rand(rng, 16))
    b = g.layer("add", "shortcut", a, b)
    c = g.layer("depthwise_conv2d", "dw2", b, kernel=rand(rng, 3, 3, 16, 1), stride=2, padding="same")
    c = g.layer("conv2d", "pw2", c, kernel=rand(rng, 1, 1, 16, 24), bias=rand(rng, 24))
    d = g.layer("conv2d", "side", b, kernel=rand(rng, 3, 3, 16, 24), stride=2, padding="same")
    e = g.layer("add", "sum", c, d, c, activation="relu")  # three inputs, one read twice
    e = g.layer("avg_pool2d", "avg", e, pool_size=3, stride=1, padding="same")
    return g.build([g.layer("max_pool2d", "max", e, pool_size=2, stride=2, padding="same")])


@pytest.fixture(params=[True, False], ids=["fused", "layer-by-layer"])
def model(request, monkeypatch):
    """Blocks and pairs fused (as the small map would not be), or not (each of their layers prepared)."""
    monkeypatch.setattr(inverted, "worth_fusing", lambda *args: request.param)
    monkeypatch.setattr(separable, "worth_fusing", lambda *args: request.param)
    inverted._geometry.cache_clear()
    separable._fast_pair_key.cache_clear()
    yield model_with_every_prepared_kind(np.random.default_rng(0))
    inverted._geometry.cache_clear()
    separable._fast_pair_key.cache_clear()


def layer_by_layer(model, x):
    model.optimize = False
    try:
        return model(x)
    finally:
        model.optimize = True


def test_every_kind_is_prepared_and_gives_the_layers_bits(model):
    x = rand(np.random.default_rng(1), 2, 12, 12, 3)
    first, second = model(x), model(x)
    steps, _ = model._execution_plan()
    assert [(type(s).__name__, s.layer.name, s.prepared is not None) for s in steps] == [
        ("Step", "stem", True), ("Step", "sep", True), ("InvertedStep", "project", True), ("PairStep", "pw2", True),
        ("Step", "side", True), ("Step", "sum", True), ("Step", "avg", True), ("Step", "max", True)]
    want = layer_by_layer(model, x)
    assert np.array_equal(first, want) and np.array_equal(second, want)


def test_a_new_weight_array_is_used_at_the_next_call(model):
    x = rand(np.random.default_rng(2), 1, 12, 12, 3)
    before = model(x)
    for name in ("stem", "sep", "expand", "dw2"):  # one layer of each prepared step
        layer = model[name]
        key = "depthwise_kernel" if name == "sep" else "kernel"
        layer.weights[key] = layer.weights[key] * np.float32(0.5)
        got = model(x)
        assert not np.array_equal(got, before) and np.array_equal(got, layer_by_layer(model, x)), name
        before = got


def test_a_new_attribute_value_is_used_at_the_next_call(model):
    x = rand(np.random.default_rng(3), 1, 12, 12, 3)
    model(x)
    for name, key, value in [("sep", "activation", None), ("dw", "activation", "relu"), ("pw2", "activation", "relu"),
                             ("avg", "pool_size", 2), ("max", "stride", 1)]:
        model[name].attrs[key] = value
        got = model(x)
        assert np.array_equal(got, layer_by_layer(model, x)), name
    assert (got >= 0).all()  # pw2's new relu


def test_another_input_shape_or_form_is_prepared_again_or_run_as_it_is(model):
    rng = np.random.default_rng(4)
    x = rand(rng, 1, 12, 12, 3)
    model(x)
    batch = rand(rng, 3, 12, 12, 3)
    assert np.array_equal(model(batch), layer_by_layer(model, batch))
    assert np.array_equal(model(batch.astype(np.float64)), layer_by_layer(model, batch))
    wide = np.zeros((1, 12, 24, 3), np.float32)[:, :, ::2]  # not C-contiguous
    wide[...] = x
    assert np.array_equal(model(wide), layer_by_layer(model, x))


def test_thread_count_and_engine_are_read_at_each_call(model):
    x = rand(np.random.default_rng(5), 1, 12, 12, 3)
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        one = model(x)
        steps, _ = model._execution_plan()
        assert {s.prepared.threads for s in steps} == {1}
        ops.set_num_threads(2)
        assert np.array_equal(model(x), one)
        assert {s.prepared.threads for s in steps} == {ops.get_num_threads()}
    finally:
        ops.set_num_threads(before)
    with engine.use("blas"):  # another engine: not the simd engine's prepared calls, BLAS's order of sums
        blas = model(x)
    assert not np.array_equal(blas, one) and np.abs(blas - one).max() <= 1e-4 * np.abs(one).max()


def test_a_profiler_wrapping_a_layer_sees_its_calls(model):
    x = rand(np.random.default_rng(6), 1, 12, 12, 3)
    want = model(x)
    calls = []
    for name in ("stem", "dw", "pw2"):
        layer = model[name]
        original = layer.fn
        layer.fn = lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k)
    assert np.array_equal(model(x), want) and calls == ["stem", "dw", "pw2"]


def test_weights_or_attrs_changed_through_any_dict_method_or_replaced_are_used(model):
    x = rand(np.random.default_rng(7), 1, 12, 12, 3)
    model(x)
    stem, sep = model["stem"], model["sep"]
    changes = [
        lambda: stem.weights.update(bias=stem.weights["bias"] + np.float32(1)),
        lambda: stem.weights.__ior__({"bias": stem.weights["bias"] - np.float32(3)}),
        lambda: setattr(stem, "weights", {**stem.weights, "kernel": stem.weights["kernel"] * np.float32(2)}),
        lambda: sep.attrs.pop("activation"),           # the kernel's default: no activation
        lambda: sep.attrs.setdefault("activation", "relu"),
        lambda: setattr(sep, "attrs", {**sep.attrs, "activation": None}),
    ]
    before = model(x)
    for i, change in enumerate(changes):
        change()
        got = model(x)
        assert np.array_equal(got, layer_by_layer(model, x)) and not np.array_equal(got, before), i
        before = got


def test_a_model_that_did_not_change_keeps_its_prepared_calls(model):
    x = rand(np.random.default_rng(8), 1, 12, 12, 3)
    model(x)
    steps, _ = model._execution_plan()
    prepared = [s.prepared for s in steps]
    model(x)
    assert [s.prepared for s in steps] == prepared  # the same objects: nothing prepared again
    model["stem"].attrs["activation"] = model["stem"].attrs.get("activation")  # a change, even to the same value
    model(x)
    assert all(s.prepared is not p for s, p in zip(steps, prepared))


def test_prepared_pools_give_the_ops_bits():
    from nnlite.ops import pooling, reference
    rng = np.random.default_rng(9)
    for shape, pool, stride, padding in [((2, 13, 11, 70), 3, 2, "same"), ((1, 12, 12, 16), 2, None, "valid"),
                                         ((1, 9, 7, 5), (3, 2), (1, 2), "same"), ((3, 8, 8, 128), 3, 1, "same")]:
        x = rand(rng, *shape)
        for is_max, name in ((True, "max_pool2d"), (False, "avg_pool2d")):
            call = pooling.prepare_pool2d(x, pool_size=pool, stride=stride, padding=padding, is_max=is_max)
            got = call(x)
            want = getattr(ops, name)(x, pool_size=pool, stride=stride, padding=padding)
            assert call.out_shape == want.shape and np.array_equal(got, want), (shape, name)  # the op's bits
            reference_result = getattr(reference, name)(x, pool_size=pool, stride=stride, padding=padding)
            np.testing.assert_allclose(got, reference_result, rtol=1e-6, atol=1e-6)  # the twin sums in float64
    assert pooling.prepare_pool2d(x[:, ::2], pool_size=2, is_max=True) is None  # not contiguous: the op runs
    assert pooling.prepare_pool2d(x, pool_size=0, is_max=True) is None  # bad arguments: the op raises


def test_a_models_pools_run_prepared_match_the_reference(model):
    from nnlite.ops import reference
    x = rand(np.random.default_rng(10), 1, 12, 12, 3)
    got = model(x)
    steps, _ = model._execution_plan()
    assert all(s.prepared is not None for s in steps if s.layer.name in ("avg", "max"))
    before = model.trace(x)["sum"]  # the add's output, as declared
    want = reference.max_pool2d(reference.avg_pool2d(before, pool_size=3, stride=1, padding="same"),
                                pool_size=2, stride=2, padding="same")
    np.testing.assert_allclose(got, want, rtol=1e-6)


def classifier_tail(rng, activation="relu"):
    """A classifier's last layers: a pool over the map, flatten, two dense layers and a softmax."""
    g = GraphBuilder("tail")
    x = g.input("image", (5, 5, 24))
    a = g.layer("avg_pool2d", "avg", x, pool_size=5)
    a = g.layer("flatten", "flat", a)
    a = g.layer("dense", "fc1", a, kernel=rand(rng, 24, 70), bias=rand(rng, 70), activation=activation)
    a = g.layer("dense", "fc2", a, kernel=rand(rng, 70, 3), bias=rand(rng, 3))
    return g.build([g.layer("softmax", "probs", a)])


@pytest.mark.parametrize("activation", ["relu", "swish", "linear"])
@pytest.mark.parametrize("batch", [1, 4])
def test_a_classifier_tail_is_prepared_and_gives_the_layers_bits(activation, batch):
    """Flatten, dense layers of 1-4 rows (matrix-vector products) and the softmax run prepared, with the bits
    of the layers called one by one, and the float64 twins' values."""
    from nnlite.ops import reference
    model = classifier_tail(np.random.default_rng(11), activation)
    x = rand(np.random.default_rng(12), batch, 5, 5, 24) * 3
    first, second = model(x), model(x)
    steps, _ = model._execution_plan()
    assert {s.layer.name: s.prepared is not None for s in steps} == dict.fromkeys(
        ["avg", "flat", "fc1", "fc2", "probs"], True)
    want = layer_by_layer(model, x)
    assert np.array_equal(first, want) and np.array_equal(second, want)
    w = {layer.name: layer.weights for layer in model.layers}
    h = reference.avg_pool2d(x, pool_size=5).reshape(batch, -1)
    h = reference.dense(h, w["fc1"]["kernel"], w["fc1"]["bias"], activation=activation)
    h = reference.dense(h, w["fc2"]["kernel"], w["fc2"]["bias"])
    np.testing.assert_allclose(first, reference.softmax(h), rtol=2e-5, atol=1e-7)


def test_prepared_dense_and_softmax_decline_what_their_ops_must_check_or_convert():
    from nnlite.ops.activations import prepare_softmax
    from nnlite.ops.arrays import prepare_flatten
    from nnlite.ops.conv import prepare_dense
    rng = np.random.default_rng(13)
    k, b = rand(rng, 16, 5), rand(rng, 5)
    x = rand(rng, 2, 16)
    call = prepare_dense(x, k, b, activation="leaky_relu", alpha=0.1)
    assert call.out_shape == (2, 5) and np.array_equal(call(x), ops.dense(x, k, b, activation="leaky_relu", alpha=0.1))
    assert prepare_dense(rand(rng, 5, 16), k, b) is None  # more rows than a matrix-vector product takes: BLAS
    assert prepare_dense(x, k, b[:4]) is None and prepare_dense(rand(rng, 2, 15), k, b) is None  # dense raises
    assert prepare_dense(x, k, b, activation="gelu") is None
    assert prepare_dense(x.astype(np.float64), k, b) is None and prepare_dense(x, k.T, b) is None  # to convert
    assert prepare_softmax(x, axis=0) is None and prepare_softmax(x, axis=2) is None  # NumPy's path; an error
    assert prepare_softmax(x[:, ::2]) is None and prepare_softmax(x.astype(np.float16)) is None
    call = prepare_softmax(x, axis=1)
    assert call.out_shape == x.shape and np.array_equal(call(x), ops.softmax(x))
    assert prepare_flatten(x.astype(np.int32)) is None and prepare_flatten(rand(rng, 2, 3, 4)).out_shape == (2, 12)
