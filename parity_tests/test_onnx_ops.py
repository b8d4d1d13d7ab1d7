"""Parity: one small ONNX graph per operator form (built with the ``onnx`` package), run by nnlite.onnx
and by onnxruntime on the same seeded input. Relative L2 <= 1e-5 each: convolution variants (groups,
depthwise, dilation, auto_pad, asymmetric pads), pooling (ceil_mode, count_include_pad), Resize modes,
Pad/Slice/Split/Concat on NHWC tensors, a zero Pad merged into the next Conv, per-channel Mul/Add
folded into a depthwise conv, shape arithmetic folded at load (Shape -> Gather -> Concat ->
Reshape), activations, Softmax, Gemm/MatMul and reductions."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnlite.onnx

RNG = np.random.default_rng(5)


def const(name, shape=None, value=None, dtype=np.float32):
    arr = np.asarray(value, dtype) if value is not None else RNG.standard_normal(shape).astype(dtype) * 0.5
    return numpy_helper.from_array(arr, name)


def model(nodes, inits, in_shape, opset=17, out="y"):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape[1:]])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def conv(x, y, w, cin, cout, k, group=1, **kw):
    return ([helper.make_node("Conv", [x, w, w + "_b"], [y], kernel_shape=[k, k], group=group, **kw)],
            [const(w, (cout, cin // group, k, k)), const(w + "_b", (cout,))])


def case_conv(**kw):
    def make():
        n, i = conv("x", "c", "w", kw.pop("cin", 8), kw.pop("cout", 12), kw.pop("k", 3), **kw)
        n.append(helper.make_node("Relu", ["c"], ["y"]))
        return n, i, (2, 8, 13, 11)
    return make


def single(op, in_shape=(2, 6, 9, 10), inits=(), extra_inputs=(), opset=17, **attrs):
    def make():
        return [helper.make_node(op, ["x", *extra_inputs], ["y"], **attrs)], list(inits), in_shape
    make.opset = opset
    return make


def conv_then(op, extra_inputs=(), inits=(), opset=17, **attrs):
    """An op on an NHWC tensor (after a conv), so its axes must be remapped."""
    def make():
        n, i = conv("x", "c", "w", 6, 6, 3, pads=[1, 1, 1, 1])
        n.append(helper.make_node(op, ["c", *extra_inputs], ["y"], **attrs))
        return n, i + list(inits), (2, 6, 9, 10)
    make.opset = opset
    return make


def shape_arith():
    n, i = conv("x", "c", "w", 6, 4, 3, pads=[1, 1, 1, 1])
    n += [helper.make_node("Shape", ["c"], ["s"]),
          helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
          helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
          helper.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
          helper.make_node("Reshape", ["c", "shape"], ["f"]),
          helper.make_node("MatMul", ["f", "m"], ["y"])]
    i += [const("zero", value=0, dtype=np.int64), const("ax0", value=[0], dtype=np.int64),
          const("minus1", value=[-1], dtype=np.int64), const("m", (4 * 9 * 10, 7))]
    return n, i, (2, 6, 9, 10)


def se_block():
    n, i = conv("x", "c", "w", 6, 6, 3, pads=[1, 1, 1, 1])
    n += [helper.make_node("GlobalAveragePool", ["c"], ["g"]),
          helper.make_node("Conv", ["g", "w2"], ["g2"], kernel_shape=[1, 1]),
          helper.make_node("HardSigmoid", ["g2"], ["h"], alpha=0.2, beta=0.5),
          helper.make_node("Mul", ["c", "h"], ["m"]),
          helper.make_node("Sub", ["m", "k"], ["s"]),
          helper.make_node("Div", ["s", "d"], ["y"])]
    i += [const("w2", (6, 6, 1, 1)), const("k", (6, 1, 1)), const("d", value=2.0)]
    return n, i, (2, 6, 9, 10)


def resize(mode, coord, nearest="round_prefer_floor", scales=(1, 1, 2, 1.5), sizes=None, opset=17):
    def make():
        ins = ["x", "roi", "sc"] if sizes is None else ["x", "roi", "", "sz"]
        inits = [const("sc", value=scales)] if sizes is None else [const("sz", value=sizes, dtype=np.int64)]
        inits.append(const("roi", value=np.zeros(0)))
        n = [helper.make_node("Resize", ins, ["y"], mode=mode, coordinate_transformation_mode=coord,
                              nearest_mode=nearest)]
        return n, inits, (1, 3, 7, 8)
    make.opset = opset
    return make


CASES = {
    "conv_plain": case_conv(pads=[1, 1, 1, 1]),
    "conv_strided_asym_pads": case_conv(strides=[2, 2], pads=[0, 1, 2, 1]),
    "conv_dilated": case_conv(dilations=[2, 2], pads=[2, 2, 2, 2]),
    "conv_same_upper": case_conv(auto_pad="SAME_UPPER", strides=[2, 2]),
    "conv_same_lower": case_conv(auto_pad="SAME_LOWER", strides=[2, 2], k=4),
    "conv_grouped": case_conv(group=4, cout=12, pads=[1, 1, 1, 1]),
    "conv_depthwise_mult2": case_conv(group=8, cout=16, pads=[1, 1, 1, 1]),
    "maxpool_ceil": single("MaxPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    "maxpool_pads": single("MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "avgpool_exclude_pad": single("AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "avgpool_include_pad": single("AveragePool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                                  count_include_pad=1),
    "global_max_pool": single("GlobalMaxPool"),
    "resize_nearest_asym_floor": resize("nearest", "asymmetric", "floor"),
    "resize_nearest_half_pixel": resize("nearest", "half_pixel", scales=(1, 1, 0.5, 2)),
    "resize_nearest_sizes": resize("nearest", "half_pixel", "round_prefer_ceil", sizes=(1, 3, 11, 5)),
    "resize_linear_half_pixel": resize("linear", "half_pixel"),
    "resize_linear_align_corners": resize("linear", "align_corners", sizes=(1, 3, 12, 15)),
    "resize_linear_pytorch": resize("linear", "pytorch_half_pixel", scales=(1, 1, 0.5, 0.75)),
    "resize_linear_asymmetric_opset11": resize("linear", "asymmetric", opset=11),
    "pad_nhwc_reflect": conv_then("Pad", ["p"], [const("p", value=[0, 0, 1, 2, 0, 0, 2, 1], dtype=np.int64)],
                                  mode="reflect"),
    "pad_constant_value": conv_then("Pad", ["p", "v"], [const("p", value=[0, 1, 1, 0, 0, 2, 0, 3], dtype=np.int64),
                                                       const("v", value=0.5)]),
    "slice_nhwc_steps": conv_then("Slice", ["st", "en", "ax", "sp"],
                                  [const(n, value=v, dtype=np.int64) for n, v in
                                   (("st", [1, 0, 8]), ("en", [5, 9, 0]), ("ax", [1, 2, -1]), ("sp", [2, 3, -2]))]),
    "split_channels": lambda: ([*conv("x", "c", "w", 6, 6, 3)[0],
                                helper.make_node("Split", ["c", "sp"], ["a", "b"], axis=1),
                                helper.make_node("Mul", ["a", "b"], ["y"])],
                               [*conv("x", "c", "w", 6, 6, 3)[1], const("sp", value=[3, 3], dtype=np.int64)],
                               (2, 6, 9, 10)),
    "concat_channels_with_input": lambda: ([*conv("x", "c", "w", 6, 6, 3, pads=[1, 1, 1, 1])[0],
                                            helper.make_node("Concat", ["c", "x"], ["y"], axis=1)],
                                           conv("x", "c", "w", 6, 6, 3)[1], (2, 6, 9, 10)),
    "softmax_channels_nhwc": conv_then("Softmax", axis=1),
    "transpose_nhwc": conv_then("Transpose", perm=[0, 2, 1, 3]),
    "reduce_mean_keepdims_opset18": conv_then("ReduceMean", ["ax"], [const("ax", value=[2, 3], dtype=np.int64)],
                                              opset=18),
    "reduce_mean_flat": conv_then("ReduceMean", axes=[2, 3], keepdims=0),
    "reduce_max_channels": conv_then("ReduceMax", axes=[1], keepdims=1),
    "flatten_after_conv": conv_then("Flatten", axis=1),
    "hardswish": conv_then("HardSwish"),
    "leaky_relu": conv_then("LeakyRelu", alpha=0.1),
    "sigmoid": conv_then("Sigmoid"),
    "clip_general": conv_then("Clip", ["lo", "hi"], [const("lo", value=-0.3), const("hi", value=0.4)]),
    "prelu_channel": conv_then("PRelu", ["sl"], [const("sl", (6, 1, 1))]),
    "shape_arithmetic_reshape": shape_arith,
    "squeeze_excite_like": se_block,
    "gemm_transposed": single("Gemm", (3, 10), [const("b", (4, 10)), const("c", (4,))], ["b", "c"], transB=1,
                              alpha=0.5, beta=2.0),
    "batchnorm_standalone": single("BatchNormalization", (2, 3, 5, 4),
                                   [const("s", (3,)), const("bb", (3,)), const("mu", (3,)),
                                    const("var", value=[0.5, 1.0, 2.0])], ["s", "bb", "mu", "var"]),
    "pad_merged_into_conv": lambda: ([helper.make_node("Pad", ["x", "p"], ["xp"]),
                                      *conv("xp", "y", "w", 6, 5, 3, strides=[2, 2])[0]],
                                     [const("p", value=[0, 0, 0, 1, 0, 0, 1, 2], dtype=np.int64),
                                      *conv("xp", "y", "w", 6, 5, 3)[1]], (2, 6, 9, 10)),
    "mul_add_folded_into_depthwise": lambda: ([*conv("x", "c", "w", 6, 6, 3, group=6)[0],
                                               helper.make_node("Mul", ["c", "s"], ["m"]),
                                               helper.make_node("Add", ["m", "t"], ["y"])],
                                              [*conv("x", "c", "w", 6, 6, 3, group=6)[1], const("s", (6, 1, 1)),
                                               const("t", (1, 6, 1, 1))], (2, 6, 9, 10)),
    "resize_opset10_nearest": single("Resize", (1, 2, 5, 7), [const("s", value=[1, 1, 1.7, 2.5])], ["s"],
                                     opset=10, mode="nearest"),
    "resize_opset10_linear": single("Resize", (1, 2, 5, 7), [const("s", value=[1, 1, 1.7, 0.6])], ["s"],
                                    opset=10, mode="linear"),
    "upsample_opset9_nearest": single("Upsample", (1, 2, 5, 7), [const("s", value=[1, 1, 2, 3])], ["s"],
                                      opset=9, mode="nearest"),
    "upsample_opset9_linear": single("Upsample", (1, 2, 5, 7), [const("s", value=[1, 1, 2, 1.5])], ["s"],
                                     opset=9, mode="linear"),
    "clip_opset6_attrs": single("Clip", opset=6, min=-0.2, max=0.3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_onnxruntime(tmp_path, name):
    import onnxruntime
    make = CASES[name]
    nodes, inits, shape = make()
    m = model(nodes, inits, shape, opset=getattr(make, "opset", 17))
    if getattr(make, "opset", 17) < 11:
        m.ir_version = 3 if make.opset <= 6 else 5
    path = tmp_path / f"{name}.onnx"
    onnx.save_model(m, path)
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    (want,) = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    (got,) = nnlite.onnx.load(path).run({"x": x})
    assert got.shape == want.shape
    err = float(np.linalg.norm(np.float64(got) - want) / np.linalg.norm(want))
    assert err <= 1e-5, f"{name}: relative L2 {err:.2e}"


@pytest.mark.parametrize("name,absent", [("pad_merged_into_conv", {"Pad", "transpose"}),
                                         ("mul_add_folded_into_depthwise", {"Mul", "Add", "Binary"}),
                                         ("conv_plain", {"transpose"})])
def test_layout_and_folding_leave_no_extra_layers(tmp_path, name, absent):
    nodes, inits, shape = CASES[name]()
    path = tmp_path / "m.onnx"
    onnx.save_model(model(nodes, inits, shape), path)
    layers = nnlite.onnx.load(path).model.layers
    ops = [layer.op for layer in layers]
    # one transpose in (NCHW -> NHWC) and one out are expected; nothing else
    assert ops.count("transpose") <= 2
    assert not ({op for op in ops if op != "transpose"} & absent), ops
