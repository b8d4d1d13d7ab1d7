"""nnlite.savedmodel with TF2 functional control flow (If / StatelessIf), without TensorFlow.

Graphs are written byte by byte (the encoder of tests/test_savedmodel.py plus a function library);
expected values come from plain NumPy formulas.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from nnlite.errors import UnsupportedOpError
from nnlite.savedmodel import load
from tests.test_savedmodel import a_ints, a_tensor, const, fld, node, placeholder, varint

RNG = np.random.default_rng(11)
KERNEL = RNG.normal(size=(1, 1, 3, 4)).astype(np.float32)
GAMMA, BETA, MEAN = (RNG.normal(size=4).astype(np.float32) for _ in range(3))
VAR = RNG.uniform(0.5, 2.0, 4).astype(np.float32)
EPS = 1e-3


def a_float(v: float) -> bytes:
    return varint(4 << 3 | 5) + struct.pack("<f", v)  # AttrValue.f: a fixed32 field


def func_attr(name: str) -> bytes:
    return fld(10, fld(1, name))


def function(name, inputs, outputs, nodes, ret) -> bytes:
    """FunctionDef: ``inputs``/``outputs`` are argument names (float32), ``ret`` maps output -> tensor."""
    sig = fld(1, name) + b"".join(fld(2, fld(1, a) + fld(3, 1)) for a in inputs)
    sig += b"".join(fld(3, fld(1, a) + fld(3, 1)) for a in outputs)
    out = fld(1, sig) + b"".join(fld(3, n) for n in nodes)
    return out + b"".join(fld(4, fld(1, k) + fld(2, v)) for k, v in ret.items())


def graph_with(nodes, functions) -> bytes:
    return b"".join(fld(1, n) for n in nodes) + fld(2, b"".join(fld(1, f) for f in functions))


def batch_norm_fn(name: str, training: bool, extra_op: str | None = None) -> bytes:
    """tf_keras's batch-norm branch: FusedBatchNormV3 on (x, gamma, beta, mean, var)."""
    nodes = [node("bn", "FusedBatchNormV3", ["x", "g", "b", "m", "v"], epsilon=a_float(EPS),
                  is_training=fld(5, int(training)))]
    y = "bn:y:0"
    if extra_op:
        nodes.append(node("extra", extra_op, [y]))
        y = "extra:y:0"
    return function(name, ["x", "g", "b", "m", "v"], ["y", "mean"], nodes, {"y": y, "mean": "bn:batch_mean:0"})


def keras_bn_graph(train_op: str | None = None) -> bytes:
    """x -> 1x1 Conv2D -> If(learning phase, then: training BN, else: inference BN) -> Identity -> Relu."""
    nodes = [
        placeholder("x", (-1, 2, 2, 3)), const("k", KERNEL),
        const("gamma", GAMMA), const("beta", BETA), const("mean", MEAN), const("var", VAR),
        node("conv", "Conv2D", ["x", "k"], strides=a_ints([1, 1, 1, 1]), padding=fld(2, b"VALID")),
        node("lp/default", "Const", value=a_tensor(np.bool_(False)), dtype=fld(6, 10)),
        node("lp", "PlaceholderWithDefault", ["lp/default"], dtype=fld(6, 10), shape=fld(7, b"")),
        node("bn/cond", "If", ["lp", "conv", "gamma", "beta", "mean", "var"],
             then_branch=func_attr("bn_true"), else_branch=func_attr("bn_false")),
        node("bn/cond/Identity", "Identity", ["bn/cond"]), node("relu", "Relu", ["bn/cond/Identity"])]
    return graph_with(nodes, [batch_norm_fn("bn_true", True, train_op), batch_norm_fn("bn_false", False)])


def conv(x):
    return np.einsum("nhwc,cd->nhwd", x, KERNEL[0, 0])


def bn(y, mean, var):
    return GAMMA * (y - mean) / np.sqrt(var + np.float32(EPS)) + BETA


@pytest.fixture
def bn_pb(tmp_path):
    path = tmp_path / "cfv2.pb"
    path.write_bytes(keras_bn_graph())
    return path


def test_known_condition_inlines_the_branch_and_fuses_batch_norm(bn_pb):
    m = load(bn_pb)
    x = RNG.normal(size=(2, 2, 2, 3)).astype(np.float32)
    (y,) = m.run({"x": x}, ["relu"])
    np.testing.assert_allclose(y, np.maximum(bn(conv(x), MEAN, VAR), 0), rtol=1e-5, atol=1e-6)
    (program,) = m._programs.values()
    assert [s[1] for s in program.steps] == ["_FusedConv"]  # conv + batch norm + relu: one kernel call
    ops = {o.name: o for o in m.operations()}
    assert ops["bn/cond"].type == "If" and ops["bn/cond"].inputs[:2] == ["lp", "conv"]


def test_fed_condition_chooses_the_branch_at_run_time(bn_pb):
    m = load(bn_pb)
    x = RNG.normal(size=(2, 2, 2, 3)).astype(np.float32)
    y = conv(x)
    mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    (out, batch_mean) = m.run({"x": x, "lp": np.bool_(True)}, ["relu", "bn/cond:1"])
    np.testing.assert_allclose(out, np.maximum(bn(y, mean, var), 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batch_mean, mean, rtol=1e-5, atol=1e-6)
    (out,) = m.run({"x": x, "lp": np.bool_(False)}, ["relu"])
    np.testing.assert_allclose(out, np.maximum(bn(y, MEAN, VAR), 0), rtol=1e-5, atol=1e-6)
    (out,) = m.run({"x": x}, ["relu"])  # the unfed plan is still the inference one
    np.testing.assert_allclose(out, np.maximum(bn(y, MEAN, VAR), 0), rtol=1e-5, atol=1e-6)


def test_branch_not_taken_needs_no_support_until_fed(tmp_path):
    path = tmp_path / "cfv2.pb"
    path.write_bytes(keras_bn_graph(train_op="TrainOnlyOp"))
    m = load(path)
    x = RNG.normal(size=(1, 2, 2, 3)).astype(np.float32)
    m.run({"x": x}, ["relu"])
    with pytest.raises(UnsupportedOpError, match="TrainOnlyOp"):
        m.run({"x": x, "lp": np.bool_(True)}, ["relu"])


def scale_fn(name: str, factor: float) -> bytes:
    nodes = [node("c", "Const", value=a_tensor(np.float32(factor)), dtype=fld(6, 1)),
             node("mul", "Mul", ["x", "c:output:0"]), node("neg", "Neg", ["mul:z:0"])]
    return function(name, ["x"], ["y", "z"], nodes, {"y": "mul:z:0", "z": "neg:y:0"})


def test_stateless_if_on_a_folded_predicate_and_tensor_truth(tmp_path):
    """Condition LogicalNot(Cast(0 -> bool)) is known at load; a fed non-scalar condition is true when
    it has elements (TensorFlow's rule). Outputs map to the branch's return values in order."""
    nodes = [placeholder("x", (-1, 2)), const("zero", np.int32(0)),
             node("as_bool", "Cast", ["zero"], DstT=fld(6, 10)), node("pred", "LogicalNot", ["as_bool"]),
             node("cond", "StatelessIf", ["pred", "x"], then_branch=func_attr("times3"),
                  else_branch=func_attr("times5")),
             placeholder("p", (-1,)),
             node("cond2", "If", ["p", "x"], then_branch=func_attr("times3"), else_branch=func_attr("times5"))]
    path = tmp_path / "if.pb"
    path.write_bytes(graph_with(nodes, [scale_fn("times3", 3.0), scale_fn("times5", 5.0)]))
    m = load(path)
    x = np.array([[1.0, -2.0]], np.float32)
    y, z = m.run({"x": x}, ["cond", "cond:1"])
    np.testing.assert_array_equal(y, 3 * x)
    np.testing.assert_array_equal(z, -3 * x)
    (z,) = m.run({"x": x, "p": np.zeros(0, np.float32)}, ["cond2:1"])
    np.testing.assert_array_equal(z, -5 * x)
    (y,) = m.run({"x": x, "p": np.zeros(3, np.float32)}, ["cond2"])
    np.testing.assert_array_equal(y, 3 * x)
