"""nnlite.savedmodel without TensorFlow: protobuf decoding, bundles, damaged files, graph execution.

Graphs here are written byte by byte with a tiny protobuf encoder (field numbers from TensorFlow's
.proto files), so these tests need no TensorFlow; expected values come from plain NumPy formulas.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from nnlite.cli import main as cli_main
from nnlite.errors import GraphFormatError, UnsupportedOpError
from nnlite.savedmodel import load
from nnlite.savedmodel.bundle import MAGIC, TensorBundle
from nnlite.savedmodel.crc32c import crc32c
from nnlite.savedmodel.slicing import strided_slice
from nnlite.savedmodel.wire import decode
from tests.protobuf_bytes import fld, varint

# -- a minimal protobuf encoder (tests/protobuf_bytes.py) --------------------------------------------


def shape(dims) -> bytes:
    return b"".join(fld(2, fld(1, d)) for d in dims)


def tensor(a: np.ndarray) -> bytes:
    code = {np.float32: 1, np.int32: 3, np.bool_: 10}[a.dtype.type]
    return fld(1, code) + fld(2, shape(a.shape)) + fld(4, a.tobytes())


def attr(key: str, value: bytes) -> bytes:
    return fld(5, fld(1, key) + fld(2, value))


def a_tensor(a):
    return fld(8, tensor(np.asarray(a)))


def a_ints(values):
    return fld(1, fld(3, b"".join(varint(v) for v in values)))


def node(name, op, inputs=(), **attrs) -> bytes:
    out = fld(1, name) + fld(2, op) + b"".join(fld(3, i) for i in inputs)
    return out + b"".join(attr(k, v) for k, v in attrs.items())


def const(name, a) -> bytes:
    a = np.asarray(a)
    return node(name, "Const", value=a_tensor(a), dtype=fld(6, {np.float32: 1, np.int32: 3}[a.dtype.type]))


def graph(*nodes) -> bytes:
    return b"".join(fld(1, n) for n in nodes)


def placeholder(name, dims, dtype=1) -> bytes:
    return node(name, "Placeholder", dtype=fld(6, dtype), shape=fld(7, shape(dims)))


RNG = np.random.default_rng(7)
KERNEL = RNG.normal(size=(1, 1, 3, 4)).astype(np.float32)
BIAS = RNG.normal(size=4).astype(np.float32)


def conv_graph() -> bytes:
    """x (1,2,2,3) -> 1x1 Conv2D -> BiasAdd -> Relu -> Mean over H,W -> Softmax."""
    return graph(
        placeholder("x", (-1, 2, 2, 3)),
        const("k", KERNEL), const("b", BIAS), const("axes", np.array([1, 2], np.int32)),
        node("conv", "Conv2D", ["x", "k"], strides=a_ints([1, 1, 1, 1]), padding=fld(2, b"VALID")),
        node("bias", "BiasAdd", ["conv", "b"]), node("relu", "Relu", ["bias"]),
        node("pool", "Mean", ["relu", "axes"]), node("out", "Softmax", ["pool"]))


def expected_conv(x):
    y = np.maximum(np.einsum("nhwc,cd->nhwd", x, KERNEL[0, 0]) + BIAS, 0).mean(axis=(1, 2))
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return y, e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def conv_pb(tmp_path):
    path = tmp_path / "frozen.pb"
    path.write_bytes(conv_graph())
    return path


# -- decoder --------------------------------------------------------------------------------------

def test_decoder_reads_nodes_attrs_and_maps(conv_pb):
    g = decode(conv_pb.read_bytes(), "GraphDef", conv_pb)
    conv = [n for n in g.node if n.name == "conv"][0]
    assert conv.op == "Conv2D" and conv.input == ["x", "k"]
    assert conv.attr["strides"].list.i == [1, 1, 1, 1] and conv.attr["padding"].s == b"VALID"
    assert g.node[0].attr["shape"].shape.dim[0].size == -1  # negative int64 survives


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("damage, what", [
    (lambda b: b[:-3], "runs past"),           # a length past the end of the buffer
    (lambda b: b + b"\x0a\xff", "truncated varint"),
    (lambda b: b + b"\x0f", "bad wire type 7"),
])
def test_damaged_protobuf_names_file_and_offset(tmp_path, damage, what):
    path = tmp_path / "bad.pb"
    path.write_bytes(damage(conv_graph()))
    with pytest.raises(GraphFormatError, match=what) as info:
        load(path)
    assert str(path) in str(info.value) and "at byte" in str(info.value)
    assert 0 <= info.value.offset <= path.stat().st_size


def test_random_bytes_saved_model_is_a_typed_error(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(GraphFormatError) as info:
        load(tmp_path)
    assert "saved_model.pb" in str(info.value)


def test_truncated_saved_model(tmp_path):
    meta = fld(1, fld(4, "myTag")) + fld(2, conv_graph())
    data = fld(2, meta)
    (tmp_path / "saved_model.pb").write_bytes(data[: len(data) // 2])
    with pytest.raises(GraphFormatError, match="at byte"):
        load(tmp_path, tags=["myTag"])


# -- tensor bundle (written here in the LevelDB table layout) -------------------------------------

def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _block(pairs) -> bytes:
    body = b"".join(varint(0) + varint(len(k)) + varint(len(v)) + k + v for k, v in pairs)
    body += struct.pack("<II", 0, 1)  # one restart point at offset 0, count 1
    return body + b"\x00" + struct.pack("<I", _masked(crc32c(body + b"\x00")))


def write_bundle(prefix, tensors: dict) -> None:
    data, entries = b"", []
    for key in sorted(tensors):
        a = tensors[key]
        entry = fld(1, 1) + fld(2, shape(a.shape)) + fld(4, len(data)) + fld(5, a.nbytes)
        entry += varint(6 << 3 | 5) + struct.pack("<I", _masked(crc32c(a.tobytes())))
        entries.append((key.encode(), entry))
        data += a.tobytes()
    header = (b"", fld(1, 1))
    block = _block([header] + entries)
    index = _block([(entries[-1][0], varint(0) + varint(len(block) - 5))])
    footer = varint(0) + varint(0) + varint(len(block)) + varint(len(index) - 5)
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", MAGIC)
    (prefix.parent / (prefix.name + ".index")).write_bytes(block + index + footer)
    (prefix.parent / (prefix.name + ".data-00000-of-00001")).write_bytes(data)


def test_bundle_round_trip_and_checksum(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((4,), 2.5, np.float32)
    write_bundle(tmp_path / "variables", {"layer/kernel": a, "layer/bias": b})
    bundle = TensorBundle(tmp_path / "variables")
    assert bundle.keys() == ["layer/bias", "layer/kernel"]
    np.testing.assert_array_equal(bundle.read("layer/kernel"), a)
    data = tmp_path / "variables.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(GraphFormatError, match="checksum mismatch"):
        TensorBundle(tmp_path / "variables").read("layer/kernel")


@pytest.mark.parametrize("damage, what", [
    (lambda b: b[:-1] + b"\x00", "bad table magic"),
    (lambda b: b[:20], "too short"),
    (lambda b: b[:5] + bytes([b[5] ^ 0x40]) + b[6:], "checksum"),
])
def test_bad_index_is_a_typed_error(tmp_path, damage, what):
    write_bundle(tmp_path / "variables", {"w": np.ones(3, np.float32)})
    index = tmp_path / "variables.index"
    index.write_bytes(damage(index.read_bytes()))
    with pytest.raises(GraphFormatError, match=what) as info:
        TensorBundle(tmp_path / "variables")
    assert "variables.index" in str(info.value)


def test_saved_model_with_variables_by_name(tmp_path):
    """TF1 layout: a VariableV2 read through Identity, its value found in the bundle by name."""
    g = graph(placeholder("input_1", (-1, 3)),
              node("dense/kernel", "VariableV2", dtype=fld(6, 1), shape=fld(7, shape((3, 2)))),
              node("dense/kernel/read", "Identity", ["dense/kernel"]),
              node("dense/MatMul", "MatMul", ["input_1", "dense/kernel/read"]))
    (tmp_path / "variables").mkdir()
    w = RNG.normal(size=(3, 2)).astype(np.float32)
    write_bundle(tmp_path / "variables" / "variables", {"dense/kernel": w})
    (tmp_path / "saved_model.pb").write_bytes(fld(2, fld(1, fld(4, "myTag")) + fld(2, g)))
    m = load(tmp_path, tags=["myTag"])
    assert m.tags == ["myTag"]
    x = RNG.normal(size=(2, 3)).astype(np.float32)
    (y,) = m.run({"input_1": x}, ["dense/MatMul"])
    np.testing.assert_allclose(y, x @ w, rtol=1e-6)
    with pytest.raises(GraphFormatError, match="no meta graph tagged"):
        load(tmp_path, tags=["serve"])


# -- execution ------------------------------------------------------------------------------------

def test_frozen_graph_runs_by_node_names(conv_pb):
    m = load(conv_pb)
    x = RNG.normal(size=(2, 2, 2, 3)).astype(np.float32)
    pool, probs = m.run({"x:0": x}, ["pool", "out:0"])
    want_pool, want_probs = expected_conv(x)
    np.testing.assert_allclose(pool, want_pool, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-6)
    ops = {o.name: o for o in m.operations()}
    assert ops["conv"].type == "Conv2D" and ops["conv"].inputs == ["x", "k"]
    assert ops["x"].shape == (None, 2, 2, 3)


def test_wrong_feed_shape_is_a_shape_error(conv_pb):
    from nnlite.errors import ShapeError
    with pytest.raises(ShapeError, match="expects shape"):
        load(conv_pb).run({"x": np.zeros((1, 3, 3, 3), np.float32)}, ["out"])


def switch_graph(train_op: str) -> bytes:
    """TF1 learning-phase pattern: training branch doubles x (then ``train_op``), inference adds 1."""
    return graph(
        placeholder("x", (-1, 2)), const("two", np.float32(2)), const("one", np.float32(1)),
        node("flag/default", "Const", value=a_tensor(np.bool_(False)), dtype=fld(6, 10)),
        node("flag", "PlaceholderWithDefault", ["flag/default"], dtype=fld(6, 10), shape=fld(7, b"")),
        node("sw", "Switch", ["x", "flag"]),
        node("train", "Mul", ["sw:1", "two"]), node("train/unknown", train_op, ["train"]),
        node("infer", "AddV2", ["sw", "one"]),
        node("merge", "Merge", ["train/unknown", "infer"], N=fld(3, 2)))


def test_switch_merge_prunes_the_branch_not_taken(tmp_path):
    path = tmp_path / "switch.pb"
    path.write_bytes(switch_graph("TrainOnlyOp"))
    m = load(path)  # TrainOnlyOp lies on the pruned branch: not reported
    x = np.array([[1.0, -2.0]], np.float32)
    (y,) = m.run({"x": x}, ["merge"])
    np.testing.assert_array_equal(y, x + 1)
    with pytest.raises(UnsupportedOpError, match="TrainOnlyOp"):  # a fed flag may take that branch
        m.run({"x": x, "flag": np.bool_(True)}, ["merge"])


def test_switch_merge_with_a_fed_predicate(tmp_path):
    path = tmp_path / "switch.pb"
    path.write_bytes(switch_graph("Relu"))
    m = load(path)
    x = np.array([[1.0, -2.0]], np.float32)
    (y,) = m.run({"x": x, "flag": np.bool_(False)}, ["merge"])
    np.testing.assert_array_equal(y, x + 1)
    (y, index) = m.run({"x": x, "flag": np.bool_(True)}, ["merge", "merge:1"])
    np.testing.assert_array_equal(y, np.maximum(x * 2, 0))
    assert int(index) == 0


def test_unsupported_ops_listed_once_at_load(tmp_path):
    path = tmp_path / "odd.pb"
    path.write_bytes(graph(placeholder("x", (-1, 2)), node("a", "FancyOp", ["x"]), node("b", "FancyOp", ["a"]),
                           node("c", "OtherOp", ["b"]), node("d", "Relu", ["c"])))
    with pytest.raises(UnsupportedOpError) as info:
        load(path)
    text = str(info.value)
    assert "2 operation type(s)" in text and "FancyOp (e.g. node 'a')" in text and "OtherOp (e.g. node 'c')" in text


def test_strided_slice_masks():
    x = np.arange(24).reshape(2, 3, 4)
    # x[1, :, ::-2] with shrink on axis 0, end mask on axis 1, negative stride on axis 2
    y = strided_slice(x, [1, 0, -1], [2, 0, -5], [1, 1, -2], end_mask=0b010, shrink_axis_mask=0b001)
    np.testing.assert_array_equal(y, x[1, :, ::-2])
    y = strided_slice(x, [0, 1], [0, 2], [1, 1], ellipsis_mask=0b01)
    np.testing.assert_array_equal(y, x[..., 1:2])


def test_cli_json_prints_exactly_one_object(conv_pb, tmp_path, capsys):
    x = RNG.normal(size=(1, 2, 2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = cli_main(["savedmodel", str(conv_pb), "--run", "--feed", f"x={tmp_path / 'x.npy'}",
                     "--fetch", "out", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["outputs"] and list(out["outputs"]) == ["out"]
    np.testing.assert_allclose(np.array(out["outputs"]["out"]), expected_conv(x)[1], rtol=1e-5)


def test_cli_lists_operations_and_reports_errors(conv_pb, tmp_path, capsys):
    assert cli_main(["savedmodel", str(conv_pb), "--ops"]) == 0
    text = capsys.readouterr().out
    assert "conv  Conv2D" in text and "inputs: x" in text
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x0a\xff\xff")
    assert cli_main(["savedmodel", str(bad)]) == 2
    assert "damaged protobuf" in capsys.readouterr().err
