"""A SavedModel or frozen graph is an ordinary nnlite.graph.Model: layers named as its nodes, the layer table,
traces, the first diverging node, `nnlite inspect PATH`, and the graph features that importing needs
(several outputs per layer, inputs that are not float images)."""

import numpy as np
import pytest
from PIL import Image

from nnlite.cli import main
from nnlite.errors import ModelError, ShapeError
from nnlite.graph import GraphBuilder, Model
from nnlite.ops import tensor
from nnlite.paths import data_dir
from nnlite.savedmodel import load
from tests.test_savedmodel import a_ints, const, fld, graph, node, placeholder

RNG = np.random.default_rng(11)
K1 = RNG.normal(size=(3, 3, 3, 4)).astype(np.float32)   # (kh, kw, cin, cout)
B1 = RNG.normal(size=4).astype(np.float32)
K2 = RNG.normal(size=(1, 1, 4, 5)).astype(np.float32)
B2 = RNG.normal(size=5).astype(np.float32)
CAT = str(data_dir() / "samples" / "chelsea.png")


def two_conv_graph(x_dims=(-1, 6, 6, 3)) -> bytes:
    """x (N,6,6,3) -> 3x3 conv + bias -> relu -> 1x1 conv + bias -> relu -> split in two along channels
    (sizes 2, 3) -> mean of the second piece over H, W."""
    same = {"strides": a_ints([1, 1, 1, 1]), "padding": fld(2, b"SAME")}
    return graph(
        placeholder("x", x_dims),
        const("k1", K1), const("b1", B1), const("k2", K2), const("b2", B2),
        const("axes", np.array([1, 2], np.int32)), const("sizes", np.array([2, 3], np.int32)),
        const("split_axis", np.int32(3)),
        node("conv1", "Conv2D", ["x", "k1"], **same), node("bias1", "BiasAdd", ["conv1", "b1"]),
        node("relu1", "Relu", ["bias1"]),
        node("conv2", "Conv2D", ["relu1", "k2"], **same), node("bias2", "BiasAdd", ["conv2", "b2"]),
        node("relu2", "Relu", ["bias2"]),
        node("split", "SplitV", ["relu2", "sizes", "split_axis"], num_split=fld(3, 2)),
        node("pool", "Mean", ["split:1", "axes"]))


@pytest.fixture
def pb(tmp_path):
    path = tmp_path / "two_conv.pb"
    path.write_bytes(two_conv_graph())
    return path


def test_savedmodel_model_is_a_graph_named_by_nodes(pb):
    m = load(pb)
    model = m.model
    assert isinstance(model, Model)
    assert model["conv1"].op == "conv2d" and model["conv1"].covers == ("conv1", "bias1")
    assert model["relu1"].op == "relu" and "split:1" in model["pool"].inputs
    rows = {r["name"]: r for r in model.layer_table()}
    assert rows["conv1"]["output_shape"] == (1, 6, 6, 4)
    assert rows["conv1"]["params"] == K1.size + B1.size
    assert rows["conv1"]["macs"] == 6 * 6 * K1.size
    assert rows["pool"]["output_shape"] == (1, 3)
    text = model.summary()
    assert "x (None, 6, 6, 3)" in text and "conv2" in text and f"{K2.size + B2.size}" in text


def test_savedmodel_runs_through_the_graph_plan(pb):
    m = load(pb)
    x = RNG.normal(size=(2, 6, 6, 3)).astype(np.float32)
    (y,) = m.run({"x": x}, ["pool"])
    np.testing.assert_array_equal(y, m.model.forward(x))
    (program,) = m._programs.values()
    # each relu runs inside its convolution: one step per conv, output under the relu's name
    assert program.steps[:2] == [("relu1", "_FusedConv"), ("relu2", "_FusedConv")]
    acts = m.model.trace(x)
    np.testing.assert_array_equal(acts["split:1"], acts["relu2"][..., 2:])


def test_first_divergence_names_the_first_differing_node(pb):
    x = RNG.normal(size=(1, 6, 6, 3)).astype(np.float32)
    original = load(pb)
    names = ["bias1", "relu1", "bias2", "relu2", "pool"]
    reference = dict(zip(names, original.run({"x": x}, names)))   # per-node outputs of the original
    perturbed = load(pb)
    perturbed.model["conv2"].weights["kernel"][0, 0, 1, 2] += 0.5
    found = perturbed.model.first_divergence(reference, x)
    assert found is not None and found.layer == "conv2" and found.reference_name == "bias2"
    assert [name for name, _ in found.checked] == ["conv1", "relu1", "conv2"]
    assert all(err <= 1e-6 for _, err in found.checked[:-1])
    assert load(pb).model.first_divergence(reference, x) is None


def test_inspect_cli_on_a_frozen_graph(pb, tmp_path, capsys):
    assert main(["inspect", str(pb)]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "conv2d" in out and "Total params" in out
    png = tmp_path / "maps.png"
    assert main(["inspect", str(pb), "--image", CAT, "--layer", "relu1", "--out", str(png),
                 "--image-scale", "unit"]) == 0
    grid = np.asarray(Image.open(png))
    assert grid.ndim == 2 and grid.std() > 10
    assert main(["inspect", str(pb), "--image", CAT, "--layer", "relu9", "--out", str(png)]) == 2
    assert "no layer 'relu9'" in capsys.readouterr().err


def test_inspect_cli_takes_the_size_a_free_input_leaves_open(tmp_path, capsys):
    path = tmp_path / "free.pb"
    path.write_bytes(two_conv_graph(x_dims=(-1, -1, -1, 3)))
    assert main(["inspect", str(path)]) == 2
    assert "free size" in capsys.readouterr().err
    assert main(["inspect", str(path), "--input-shape", "10,8,3"]) == 0
    assert "(None, 10, 8, 4)" in capsys.readouterr().out


def pad_pool_graph(first: str) -> bytes:
    """x -> ``first`` -> zero pad 1 on H and W -> 3x3/2 'valid' max pool (Keras ResNet's stem)."""
    amounts = np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)
    return graph(placeholder("x", (-1, 7, 7, 2)), const("amounts", amounts),
                 node("act", first, ["x"]), node("pad", "Pad", ["act", "amounts"]),
                 node("pool", "MaxPool", ["pad"], ksize=a_ints([1, 3, 3, 1]), strides=a_ints([1, 2, 2, 1]),
                      padding=fld(2, b"VALID")))


def reference_pad_pool(y):
    padded = np.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))   # TensorFlow's Pad: zeros
    out = np.empty((y.shape[0], 4, 4, y.shape[3]), y.dtype)
    for i in range(4):
        for j in range(4):
            out[:, i, j] = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("first", ["Relu", "Neg"])
def test_zero_pad_before_max_pool_becomes_the_pools_padding_only_after_a_relu(tmp_path, first):
    path = tmp_path / "pad_pool.pb"
    path.write_bytes(pad_pool_graph(first))
    m = load(path)
    x = RNG.normal(size=(2, 7, 7, 2)).astype(np.float32)
    (y,) = m.run({"x": x}, ["pool"])
    np.testing.assert_array_equal(y, reference_pad_pool(np.maximum(x, 0) if first == "Relu" else -x))
    if first == "Relu":   # zeros and the pool's -inf padding agree on a ReLU's output
        assert m.model["pool"].attrs["padding"] == (1, 1, 1, 1) and m.model["pool"].covers == ("pad", "pool")
        assert "pad" not in m.model
    else:                 # a negative input: the zeros are real values, the pad stays
        assert m.model["pad"].op == "tensor.pad" and m.model["pool"].attrs["padding"] == "valid"


def test_a_failing_layer_is_named_as_its_node(tmp_path):
    path = tmp_path / "reshape.pb"
    path.write_bytes(graph(placeholder("x", (-1, 6)), const("to", np.array([-1, 4], np.int32)),
                           node("flat", "Reshape", ["x", "to"])))
    with pytest.raises(ShapeError, match=r"node 'flat' \(Reshape\): reshape: cannot reshape \(1, 6\)"):
        load(path).run({"x": np.zeros((1, 6), np.float32)}, ["flat"])


def test_layers_with_several_outputs_and_typed_inputs():
    b = GraphBuilder("pieces")
    b.input("x", (4,))
    b.input("n", (), dtype=np.int64, batch=False)
    b.layer(lambda x: (x[:, :1], x[:, 1:]), "halves", "x", n_outputs=2)
    b.layer(lambda a, n: a * np.float32(n) if n.dtype == np.int64 else a, "scaled", "halves:1", "n")
    model = b.build(outputs=["halves", "scaled"])
    first, scaled = model.forward(np.arange(8, dtype=np.float64).reshape(2, 4), np.int64(3))
    assert first.dtype == np.float32 and scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, np.arange(8).reshape(2, 4)[:, 1:] * 3)
    assert "n ()" in model.summary()
    with pytest.raises(ShapeError, match="expects shape"):
        model.forward(np.zeros((2, 4), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ModelError, match="not defined before"):
        b.layer(lambda a: a, "bad", "halves:2")


def test_tensor_ops_keep_the_operand_dtype_and_take_keyword_attributes():
    a = RNG.normal(size=(2, 3)).astype(np.float32)
    assert tensor.multiply(a, np.float32(2)).dtype == np.float32
    seven, two = np.array([7], np.int32), np.array([2], np.int32)
    assert tensor.divide(seven, two).dtype == np.int32        # NumPy alone would give float64 3.5
    np.testing.assert_array_equal(tensor.reshape(a, shape=(3, -1)), a.reshape(3, 2))
    np.testing.assert_array_equal(tensor.transpose(a, perm=(1, 0)), a.T)
    np.testing.assert_array_equal(tensor.slice(a, begin=(1, 0), size=(-1, 2)), a[1:, :2])
    np.testing.assert_array_equal(tensor.pad(a, paddings=((0, 0), (1, 1)), mode="reflect"),
                                  np.pad(a, ((0, 0), (1, 1)), mode="reflect"))
    assert [p.shape for p in tensor.split(a, sizes=(1, 2), axis=1)] == [(2, 1), (2, 2)]
    assert tensor.mean(a, axis=(0,), keepdims=True).shape == (1, 3)
    with pytest.raises(ShapeError):
        tensor.reshape(a, shape=(4, 2))
