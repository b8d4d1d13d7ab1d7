"""Every kernel in nnlite.ops (and its reference twin) against the TensorFlow op, on random inputs.

Tolerance: relative error ||ours - tf|| / ||tf|| <= 1e-5 (float32 accumulation-order noise only).
Shapes include odd sizes with stride 2, where TF's 'same' padding is asymmetric (extra row/col bottom/right).
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.ops import reference

IMPLS = pytest.mark.parametrize("impl", [ops, reference], ids=["fast", "reference"])
TOL = 1e-5


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != TF {b.shape}"
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def rand(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def tf_padding(padding):
    """Our padding spec in tf.nn's form: 'SAME'/'VALID' or explicit [[0,0],[t,b],[l,r],[0,0]]."""
    if isinstance(padding, str):
        return padding.upper()
    t, b, l, r = padding
    return [[0, 0], [t, b], [l, r], [0, 0]]


CONV_CASES = [  # (h, w, cin, cout, k, stride, dilation, padding)
    (9, 9, 3, 8, 3, 2, 1, "same"), (8, 8, 4, 6, 3, 2, 1, "same"), (7, 10, 5, 4, 3, 1, 1, "valid"),
    (11, 7, 3, 5, 5, 2, 1, "same"), (10, 10, 6, 7, 1, 1, 1, "valid"), (9, 9, 8, 16, 1, 2, 1, "same"),
    (12, 12, 3, 4, 3, 1, 2, "same"), (12, 9, 3, 4, 3, 1, 3, "valid"), (8, 9, 3, 5, 3, 2, 1, (1, 0, 2, 1)),
    (7, 7, 4, 4, 7, 1, 1, (3, 3, 3, 3)), (5, 5, 2, 3, 7, 3, 1, "same"), (15, 13, 3, 4, 3, 3, 1, "valid"),
]


@IMPLS
@pytest.mark.parametrize("h,w,cin,cout,k,stride,dilation,padding", CONV_CASES)
def test_conv2d(tf, impl, h, w, cin, cout, k, stride, dilation, padding):
    x, kern, bias = rand(2, h, w, cin), rand(k, k, cin, cout, seed=1), rand(cout, seed=2)
    want = tf.nn.relu6(tf.nn.conv2d(x, kern, strides=stride, padding=tf_padding(padding),
                                    dilations=dilation) + bias).numpy()
    got = impl.conv2d(x, kern, bias, stride=stride, padding=padding, dilation=dilation, activation="relu6")
    assert rel(got, want) <= TOL


@IMPLS
@pytest.mark.parametrize("act,tf_name", [("relu", "relu"), ("leaky_relu", "leaky_relu"), ("sigmoid", "sigmoid"),
                                          ("swish", "silu"), (None, None)])
def test_conv2d_activations(tf, impl, act, tf_name):
    x, kern, bias = rand(1, 9, 8, 5), rand(3, 3, 5, 6, seed=1), rand(6, seed=2)
    pre = tf.nn.conv2d(x, kern, strides=2, padding="SAME") + bias
    want = (getattr(tf.nn, tf_name)(pre) if tf_name else pre).numpy()
    got = impl.conv2d(x, kern, bias, stride=2, padding="same", activation=act)
    assert rel(got, want) <= TOL


DW_CASES = [  # (h, w, cin, mult, k, stride, dilation, padding)
    (9, 9, 8, 1, 3, 2, 1, "same"), (8, 8, 6, 2, 3, 2, 1, "same"), (7, 11, 5, 1, 3, 1, 1, "valid"),
    (13, 13, 4, 3, 5, 2, 1, "same"), (12, 12, 4, 1, 3, 1, 2, "same"), (10, 9, 3, 2, 3, 1, 1, (1, 1, 1, 1)),
    (5, 5, 3, 1, 7, 1, 1, "same"), (12, 12, 7, 1, 3, 3, 1, "same"),
]


@IMPLS
@pytest.mark.parametrize("h,w,cin,mult,k,stride,dilation,padding", DW_CASES)
def test_depthwise_conv2d(tf, impl, h, w, cin, mult, k, stride, dilation, padding):
    x, kern, bias = rand(2, h, w, cin), rand(k, k, cin, mult, seed=1), rand(cin * mult, seed=2)
    want = tf.nn.relu(tf.nn.depthwise_conv2d(x, kern, strides=[1, stride, stride, 1], padding=tf_padding(padding),
                                             dilations=[dilation, dilation]) + bias).numpy()
    got = impl.depthwise_conv2d(x, kern, bias, stride=stride, padding=padding, dilation=dilation, activation="relu")
    assert rel(got, want) <= TOL


@IMPLS
@pytest.mark.parametrize("h,w,mult,stride,padding", [(9, 9, 1, 2, "same"), (8, 10, 2, 1, "valid"),
                                                     (11, 11, 1, 1, "same")])
def test_separable_conv2d(tf, impl, h, w, mult, stride, padding):
    x, dk, pk, bias = rand(1, h, w, 6), rand(3, 3, 6, mult, seed=1), rand(1, 1, 6 * mult, 5, seed=2), rand(5, seed=3)
    want = tf.nn.separable_conv2d(x, dk, pk, strides=[1, stride, stride, 1], padding=padding.upper()) + bias
    got = impl.separable_conv2d(x, dk, pk, bias, stride=stride, padding=padding)
    assert rel(got, want.numpy()) <= TOL


@IMPLS
def test_dense_bias_add(tf, impl):
    x, kern, bias = rand(3, 17), rand(17, 9, seed=1), rand(9, seed=2)
    assert rel(impl.dense(x, kern, bias, activation="sigmoid"), tf.sigmoid(tf.matmul(x, kern) + bias)) <= TOL
    x4 = rand(2, 5, 5, 9)
    assert rel(impl.bias_add(x4, bias), tf.nn.bias_add(x4, bias)) <= TOL


@IMPLS
def test_batch_norm_and_folding(tf, impl):
    x, kern = rand(2, 9, 9, 4), rand(3, 3, 4, 6, seed=1)
    gamma, beta, mean, var = rand(6, seed=2), rand(6, seed=3), rand(6, seed=4), np.abs(rand(6, seed=5)) + 0.1
    conv = tf.nn.conv2d(x, kern, strides=2, padding="SAME")
    want = tf.nn.batch_normalization(conv, mean, var, beta, gamma, 1e-3).numpy()
    assert rel(impl.batch_norm(conv.numpy(), gamma, beta, mean, var, epsilon=1e-3), want) <= TOL
    k2, b2 = impl.fold_batch_norm(kern, None, gamma, beta, mean, var, epsilon=1e-3)
    assert rel(impl.conv2d(x, k2, b2, stride=2, padding="same"), want) <= TOL
    dk = rand(3, 3, 4, 2, seed=6)
    dw = tf.nn.depthwise_conv2d(x, dk, strides=[1, 1, 1, 1], padding="SAME")
    g8, b8, m8, v8 = rand(8, seed=7), rand(8, seed=8), rand(8, seed=9), np.abs(rand(8, seed=10)) + 0.1
    want = tf.nn.batch_normalization(dw, m8, v8, b8, g8, 1e-5).numpy()
    k3, b3 = impl.fold_batch_norm(dk, None, g8, b8, m8, v8, epsilon=1e-5, depthwise=True)
    assert rel(impl.depthwise_conv2d(x, k3, b3, padding="same"), want) <= TOL


@IMPLS
@pytest.mark.parametrize("name,tf_fn", [("relu", "relu"), ("relu6", "relu6"), ("sigmoid", "sigmoid"),
                                         ("swish", "silu"), ("leaky_relu", "leaky_relu")])
def test_activations(tf, impl, name, tf_fn):
    x = rand(2, 6, 7, 5) * 8
    assert rel(getattr(impl, name)(x), getattr(tf.nn, tf_fn)(x).numpy()) <= TOL


@IMPLS
def test_softmax(tf, impl):
    x = rand(4, 1000) * 30  # large logits: needs the max-subtraction to stay finite
    assert rel(impl.softmax(x), tf.nn.softmax(x).numpy()) <= TOL
    x3 = rand(2, 5, 7)
    assert rel(impl.softmax(x3, axis=1), tf.nn.softmax(x3, axis=1).numpy()) <= TOL


POOL_CASES = [(9, 9, 3, 2, "same"), (8, 8, 2, 2, "valid"), (7, 10, 3, 1, "same"), (11, 11, 3, 2, "valid"),
              (10, 10, 2, 2, "same"), (5, 5, 7, 3, "same"), (13, 7, 5, 3, "same")]


@IMPLS
@pytest.mark.parametrize("h,w,k,stride,padding", POOL_CASES)
def test_pooling(tf, impl, h, w, k, stride, padding):
    x = rand(2, h, w, 6)
    for ours, theirs in ((impl.max_pool2d, tf.nn.max_pool2d), (impl.avg_pool2d, tf.nn.avg_pool2d)):
        want = theirs(x, ksize=k, strides=stride, padding=padding.upper()).numpy()
        assert rel(ours(x, pool_size=k, stride=stride, padding=padding), want) <= TOL, ours.__name__
    assert rel(impl.global_avg_pool2d(x), tf.reduce_mean(x, axis=[1, 2]).numpy()) <= TOL


RESIZE_SIZES = [((7, 9), (14, 18)), ((9, 9), (4, 5)), ((5, 8), (13, 3)), ((6, 6), (6, 6)), ((1, 4), (3, 1))]


@IMPLS
@pytest.mark.parametrize("src,dst", RESIZE_SIZES)
def test_resize_tf2(tf, impl, src, dst):
    x = rand(2, *src, 3)
    want = tf.image.resize(x, dst, method="bilinear").numpy()
    assert rel(impl.resize_bilinear(x, size=dst), want) <= TOL
    want = tf.image.resize(x, dst, method="nearest").numpy()
    assert rel(impl.resize_nearest(x, size=dst), want) == 0.0


@IMPLS
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("src,dst", RESIZE_SIZES)
def test_resize_legacy(tf, impl, src, dst, align_corners):
    x = rand(1, *src, 4)
    v1 = tf.compat.v1.image
    want = v1.resize_bilinear(x, dst, align_corners=align_corners, half_pixel_centers=False).numpy()
    got = impl.resize_bilinear(x, size=dst, half_pixel_centers=False, align_corners=align_corners)
    assert rel(got, want) <= TOL
    want = v1.resize_nearest_neighbor(x, dst, align_corners=align_corners, half_pixel_centers=False).numpy()
    got = impl.resize_nearest(x, size=dst, half_pixel_centers=False, align_corners=align_corners)
    assert rel(got, want) == 0.0


@IMPLS
def test_shape_ops(tf, impl):
    x, y = rand(2, 5, 6, 3), rand(2, 5, 6, 3, seed=1)
    se = rand(2, 1, 1, 3, seed=2)
    assert rel(impl.zero_pad2d(x, padding=(1, 2, 0, 3)), tf.pad(x, [[0, 0], [1, 2], [0, 3], [0, 0]])) == 0.0
    assert rel(impl.crop2d(x, cropping=(1, 0, 2, 1)), x[:, 1:, 2:-1]) == 0.0
    assert rel(impl.add(x, y, se), tf.add_n([x, y, tf.broadcast_to(se, x.shape)])) <= TOL
    assert rel(impl.multiply(x, se), tf.multiply(x, se)) <= TOL
    assert rel(impl.concat(x, y), tf.concat([x, y], axis=-1)) == 0.0
    assert rel(impl.mean(x, axis=(1, 2), keepdims=True), tf.reduce_mean(x, axis=[1, 2], keepdims=True)) <= TOL
    assert rel(impl.reshape(x, shape=(30, 3)), tf.reshape(x, (2, 30, 3))) == 0.0
    assert rel(impl.flatten(x), tf.reshape(x, (2, -1))) == 0.0
