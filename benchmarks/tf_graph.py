"""An nnlite layer graph written out as a TensorFlow SavedModel, and that SavedModel as ONNX (tf2onnx).

Why: the benchmark compares *engines*, so all three (nnlite, TensorFlow, onnxruntime) must run the same
network with the same weights at any batch size. Walking ``graph.Model.layers`` and emitting the matching
``tf.nn`` op for each layer gives one TF graph per model with a free batch dimension; batch norms are
already folded into the convolutions at nnlite load time, exactly as TF's own inference optimiser would
fold them. Each SavedModel is then converted with tf2onnx for onnxruntime. The parity tests check the
independent TF references (tools/); here the benchmark only checks that the three engines agree.

SavedModel: ``tf.Module`` whose weights are ``tf.Variable``s, signature ``serving_default`` with input
``input`` (N, H, W, C) float32 and outputs ``output_0``... in the order of ``model.outputs``.
TensorFlow is a bench-only dependency: nothing in nnlite imports this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

OPSET = 17


def _padding(tf, x, padding, value=0.0):
    """nnlite padding -> (x, TF padding string); explicit (t, b, l, r) becomes a tf.pad and VALID."""
    if isinstance(padding, str):
        return x, padding.upper()
    if isinstance(padding, int):
        padding = (padding,) * 4
    t, b, l, r = (int(p) for p in padding)
    if any((t, b, l, r)):
        x = tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]], constant_values=value)
    return x, "VALID"


def _pair(v) -> list[int]:
    return [int(v), int(v)] if np.isscalar(v) else [int(a) for a in v]


def _activate(tf, y, activation, alpha=0.2):
    if activation is None:
        return y
    return {"relu": tf.nn.relu, "relu6": tf.nn.relu6, "sigmoid": tf.sigmoid, "swish": tf.nn.silu,
            "leaky_relu": lambda v: tf.nn.leaky_relu(v, alpha=alpha)}[activation](y)


def _bias_act(tf, y, bias, a):
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    return _activate(tf, y, a.get("activation"), a.get("alpha", 0.2))


def _conv(tf, x, w, a):
    x, pad = _padding(tf, x, a.get("padding", "valid"))
    s, d = _pair(a.get("stride", 1)), _pair(a.get("dilation", 1))
    y = tf.nn.conv2d(x, w["kernel"], strides=[1, *s, 1], padding=pad, dilations=[1, *d, 1])
    return _bias_act(tf, y, w.get("bias"), a)


def _depthwise(tf, x, w, a):
    x, pad = _padding(tf, x, a.get("padding", "valid"))
    s, d = _pair(a.get("stride", 1)), _pair(a.get("dilation", 1))
    y = tf.nn.depthwise_conv2d(x, w["kernel"], strides=[1, *s, 1], padding=pad, dilations=d)
    return _bias_act(tf, y, w.get("bias"), a)


def _separable(tf, x, w, a):
    x, pad = _padding(tf, x, a.get("padding", "valid"))
    s, d = _pair(a.get("stride", 1)), _pair(a.get("dilation", 1))
    y = tf.nn.separable_conv2d(x, w["depthwise_kernel"], w["pointwise_kernel"], strides=[1, *s, 1],
                               padding=pad, dilations=d)
    return _bias_act(tf, y, w.get("bias"), a)


def _dense(tf, x, w, a):
    y = tf.matmul(x, w["kernel"]) if len(x.shape) == 2 else tf.tensordot(x, w["kernel"], axes=1)
    return _bias_act(tf, y, w.get("bias"), a)


def _pool(tf, x, a, kind):
    k = _pair(a["pool_size"])
    s = _pair(a.get("stride") or a["pool_size"])
    fill = float("-inf") if kind == "max" else 0.0
    if kind == "avg" and not isinstance(a.get("padding", "valid"), str):
        raise NotImplementedError("avg_pool2d with explicit padding")   # no model uses it
    x, pad = _padding(tf, x, a.get("padding", "valid"), fill)
    pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    return pool(x, ksize=k, strides=s, padding=pad)


def _reshape(tf, x, shape):
    return tf.reshape(x, tf.concat([tf.shape(x)[:1], tf.constant(list(shape), tf.int32)], axis=0))


def _decode_boxes(tf, x, w, a):
    """SSD box decoding (same rule as nnlite.models.faceapi.ssd_mobilenetv1.decode_boxes)."""
    anchors = w["anchors"]                                   # (A, 4) ymin, xmin, ymax, xmax
    size = anchors[:, 2:] - anchors[:, :2]
    centre = anchors[:, :2] + size / 2.0
    mid = x[..., :2] / 10.0 * size + centre
    half = tf.exp(x[..., 2:] / 5.0) * size / 2.0
    return tf.concat([mid - half, mid + half], axis=-1)


# op name -> tf(tf, inputs, weights, attrs); weights are tf.Variables, attrs plain Python
TRANSLATE = {
    "conv2d": lambda tf, xs, w, a: _conv(tf, xs[0], w, a),
    "depthwise_conv2d": lambda tf, xs, w, a: _depthwise(tf, xs[0], w, a),
    "separable_conv2d": lambda tf, xs, w, a: _separable(tf, xs[0], w, a),
    "dense": lambda tf, xs, w, a: _dense(tf, xs[0], w, a),
    "bias_add": lambda tf, xs, w, a: tf.nn.bias_add(xs[0], w["bias"]),
    "batch_norm": lambda tf, xs, w, a: tf.nn.batch_normalization(
        xs[0], w["mean"], w["variance"], w.get("beta"), w.get("gamma"), a.get("epsilon", 1e-3)),
    "relu": lambda tf, xs, w, a: tf.nn.relu(xs[0]),
    "relu6": lambda tf, xs, w, a: tf.nn.relu6(xs[0]),
    "leaky_relu": lambda tf, xs, w, a: tf.nn.leaky_relu(xs[0], alpha=a.get("alpha", 0.2)),
    "sigmoid": lambda tf, xs, w, a: tf.sigmoid(xs[0]),
    "swish": lambda tf, xs, w, a: tf.nn.silu(xs[0]),
    "softmax": lambda tf, xs, w, a: tf.nn.softmax(xs[0], axis=a.get("axis", -1)),
    "max_pool2d": lambda tf, xs, w, a: _pool(tf, xs[0], a, "max"),
    "avg_pool2d": lambda tf, xs, w, a: _pool(tf, xs[0], a, "avg"),
    "global_avg_pool2d": lambda tf, xs, w, a: tf.reduce_mean(xs[0], axis=[1, 2],
                                                             keepdims=a.get("keepdims", False)),
    "zero_pad2d": lambda tf, xs, w, a: _padding(tf, xs[0], a["padding"])[0],
    "crop2d": lambda tf, xs, w, a: xs[0][:, a["cropping"][0]:tf.shape(xs[0])[1] - a["cropping"][1],
                                         a["cropping"][2]:tf.shape(xs[0])[2] - a["cropping"][3], :],
    "add": lambda tf, xs, w, a: tf.add_n(list(xs)) if len(xs) > 1 else xs[0],
    "multiply": lambda tf, xs, w, a: _product(xs),
    "concat": lambda tf, xs, w, a: tf.concat(list(xs), axis=a.get("axis", -1)),
    "mean": lambda tf, xs, w, a: tf.reduce_mean(xs[0], axis=a["axis"], keepdims=a.get("keepdims", False)),
    "reshape": lambda tf, xs, w, a: _reshape(tf, xs[0], a["shape"]),
    "flatten": lambda tf, xs, w, a: tf.reshape(xs[0], [tf.shape(xs[0])[0], -1]),
    "resize_bilinear": lambda tf, xs, w, a: tf.compat.v1.image.resize_bilinear(
        xs[0], list(a["size"]), align_corners=a.get("align_corners", False),
        half_pixel_centers=a.get("half_pixel_centers", True)),
    # the model-specific callables of the face nets
    "append_zero_channels": lambda tf, xs, w, a: tf.concat([xs[0], tf.zeros_like(xs[0])], axis=-1),
    "decode_boxes": lambda tf, xs, w, a: _decode_boxes(tf, xs[0], w, a),
    "face_scores": lambda tf, xs, w, a: tf.sigmoid(xs[0][..., 1]),
}


def _product(xs):
    y = xs[0]
    for v in xs[1:]:
        y = y * v
    return y


def unsupported_ops(model) -> list[str]:
    return sorted({layer.op for layer in model.layers if layer.op not in TRANSLATE})


def tf_module(tf, model, input_shape: tuple):
    """A tf.Module whose ``serve(input)`` runs ``model``'s layers in TF; input (None, *input_shape)."""
    missing = unsupported_ops(model)
    if missing:
        raise NotImplementedError(f"{model.name}: no TensorFlow translation for ops {missing}")
    (in_name,) = model.inputs

    class Net(tf.Module):
        def __init__(self):
            super().__init__(name=None)
            # tf.Variable names must be unique-ish but may not contain every character of layer names
            self.w = [{k: tf.Variable(v, trainable=False, name=f"w{i}_{k}") for k, v in layer.weights.items()}
                      for i, layer in enumerate(model.layers)]

        @tf.function(input_signature=[tf.TensorSpec([None, *input_shape], tf.float32, name="input")])
        def serve(self, input):  # noqa: A002 - the signature's input name
            values = {in_name: input}
            for layer, w in zip(model.layers, self.w):
                xs = [values[s] for s in layer.inputs]
                values[layer.name] = TRANSLATE[layer.op](tf, xs, w, layer.attrs)
            return {f"output_{i}": values[o] for i, o in enumerate(model.outputs)}

    return Net()


def export_savedmodel(model, input_shape: tuple, path: Path) -> Path:
    """Write ``model`` as a SavedModel at ``path`` (reused when complete; temp folder renamed at the end)."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    module = tf_module(tf, model, tuple(input_shape))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def export_onnx(savedmodel: Path, path: Path, timeout: float = 600) -> Path:
    """Convert the SavedModel with tf2onnx's command line (a subprocess: it is memory-hungry)."""
    path = Path(path)
    if path.is_file():
        return path
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.onnx")
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(savedmodel), "--output", str(tmp),
           "--opset", str(OPSET), "--signature_def", "serving_default"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not tmp.is_file():
        raise RuntimeError(f"tf2onnx failed for {savedmodel}:\n{done.stderr[-3000:]}")
    os.replace(tmp, path)
    return path
