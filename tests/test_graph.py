"""The model graph: execution order, trace, summary, first divergence, typed errors."""

import numpy as np
import pytest

from nnlite.errors import ModelError, ShapeError
from nnlite.graph import GraphBuilder, relative_error


def scale(x, *, factor):
    return x * factor


def matmul_last(x, *, kernel):
    return x @ kernel  # (..., in) @ (in, out)


def add2(a, b):
    return a + b


def tiny_model(rng):
    g = GraphBuilder("tiny")
    x = g.input("image", (4, 4, 3))
    a = g.layer(matmul_last, "proj", x, kernel=rng.standard_normal((3, 5)).astype(np.float32))
    b = g.layer(scale, "double", a, factor=2.0, covers=("double_pre", "double_post"))
    c = g.layer(add2, "sum", a, b)
    return g.build([c])


def test_forward_matches_hand_computation():
    rng = np.random.default_rng(0)
    model = tiny_model(rng)
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    k = model["proj"].weights["kernel"]
    np.testing.assert_allclose(model(x), 3 * (x @ k), rtol=1e-6)


def test_trace_keeps_every_intermediate_in_order():
    rng = np.random.default_rng(1)
    model = tiny_model(rng)
    x = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)
    acts = model.trace(x)
    assert list(acts) == ["image", "proj", "double", "sum"]
    np.testing.assert_allclose(acts["double"], 2 * acts["proj"])


def test_summary_counts_params_and_shapes():
    model = tiny_model(np.random.default_rng(2))
    text = model.summary()
    assert "proj" in text and "(None, 4, 4, 5)" in text
    assert "Total params: 15" in text
    assert model.params == 15


def test_first_divergence_names_the_broken_layer():
    rng = np.random.default_rng(3)
    model = tiny_model(rng)
    x = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)
    ref = {k: v.copy() for k, v in model.trace(x).items()}
    assert model.first_divergence(ref, x) is None
    # a reference recorded under the covered (framework) name is matched too
    ref["double_post"] = ref.pop("double") + 1.0
    div = model.first_divergence(ref, x, tolerance=1e-4)
    assert div is not None and div.layer == "double" and div.reference_name == "double_post"
    assert div.rel_error > 1e-4
    assert "double" in str(div)


def test_relative_error_is_scale_free():
    a = np.array([1.0, 2.0, 3.0])
    assert relative_error(a * 1e-6, a * 1e-6) == 0.0
    assert relative_error(a * 1.01, a) == pytest.approx(0.01)
    assert relative_error(a[:2], a) == float("inf")


def test_wrong_input_shape_is_a_typed_error():
    model = tiny_model(np.random.default_rng(4))
    with pytest.raises(ShapeError, match="expects shape"):
        model(np.zeros((1, 5, 4, 3), np.float32))


def test_builder_rejects_duplicates_and_unknown_inputs():
    g = GraphBuilder("bad")
    x = g.input("x", (2,))
    g.layer(scale, "s", x, factor=1.0)
    with pytest.raises(ModelError, match="used twice"):
        g.layer(scale, "s", x, factor=1.0)
    with pytest.raises(ModelError, match="not defined"):
        g.layer(scale, "t", "nowhere", factor=1.0)
    with pytest.raises(ModelError, match="unknown op"):
        g.layer("no_such_kernel", "u", x)


def test_intermediates_are_freed_but_outputs_kept():
    rng = np.random.default_rng(5)
    model = tiny_model(rng)
    feed = model._feed((np.ones((1, 4, 4, 3), np.float32),), {})
    values = model._run(feed, keep_all=False)
    assert set(values) == {"sum"}
    assert set(model._run_steps(*model._execution_plan(), feed)) == {"sum"}  # what forward() runs
    assert len(model._run(feed, keep_all=True)) == len(model.layers) + 1  # trace: every layer and the input
