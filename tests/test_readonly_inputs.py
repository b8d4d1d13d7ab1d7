"""Read-only inputs (a memory-mapped file, np.frombuffer, an array marked so) work like any other: every op and
a model give the writable array's bits. Numba types a read-only array apart from a writable one, and the
kernels called by address take one type, so the ops copy such an input first (it failed to compile before)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.graph import GraphBuilder


def read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


RNG = np.random.default_rng(0)
K3, K1 = RNG.random((3, 3, 20, 16), dtype=np.float32), RNG.random((1, 1, 20, 16), dtype=np.float32)
DW3, DW5 = RNG.random((3, 3, 20, 1), dtype=np.float32), RNG.random((5, 5, 20, 1), dtype=np.float32)
PW, EK, PK = (RNG.random((1, 1, 20, 8), dtype=np.float32), RNG.random((1, 1, 20, 40), dtype=np.float32),
              RNG.random((1, 1, 40, 20), dtype=np.float32))
DW40 = RNG.random((3, 3, 40, 1), dtype=np.float32)

OPS = {
    "conv2d 3x3": lambda x: ops.conv2d(x, K3, padding="same"),
    "conv2d 1x1": lambda x: ops.conv2d(x, K1),
    "conv2d 3x3 stride 2": lambda x: ops.conv2d(x, K3, stride=2, padding="same"),
    "depthwise 3x3": lambda x: ops.depthwise_conv2d(x, DW3, padding="same"),
    "depthwise 5x5": lambda x: ops.depthwise_conv2d(x, DW5, padding="same"),
    "separable": lambda x: ops.separable_conv2d(x, DW3, PW, padding="same"),
    "inverted residual": lambda x: ops.inverted_residual(x, EK, None, DW40, None, PK, None, padding="same",
                                                         residual=x),
    "conv + max pool": lambda x: ops.conv2d_max_pool(x, K3, padding="same"),
    "separable + max pool": lambda x: ops.separable_max_pool(x, DW3, PW, padding="same", pool_size=3, pool_stride=2),
    "max pool": lambda x: ops.max_pool2d(x, pool_size=2),
    "max pool stride 1": lambda x: ops.max_pool2d(x, pool_size=3, stride=1, padding="same"),
    "average pool": lambda x: ops.avg_pool2d(x, pool_size=3, stride=1, padding="same"),
    "add": lambda x: ops.add(x, x, activation="relu"),
    "concat": lambda x: ops.concat(x, x, x),
    "relu": lambda x: ops.relu(x),
    "softmax": lambda x: ops.softmax(x),
    "global average pool": lambda x: ops.global_avg_pool2d(x),
}


@pytest.mark.parametrize("name", list(OPS))
def test_an_op_on_a_read_only_input_gives_the_writable_inputs_bits(name):
    x = RNG.random((1, 12, 12, 20), dtype=np.float32)
    want = OPS[name](x)
    assert np.array_equal(OPS[name](read_only(x)), want)


def test_a_model_on_a_read_only_input():
    g = GraphBuilder("read_only")
    x = g.input("image", (12, 12, 20))
    a = g.layer("conv2d", "pw", x, kernel=K1, padding="same", activation="relu")
    a = g.layer("depthwise_conv2d", "dw", a, kernel=RNG.random((3, 3, 16, 1), dtype=np.float32), padding="same")
    a = g.layer("max_pool2d", "pool", a, pool_size=2)
    model = g.build([a])
    image = RNG.random((2, 12, 12, 20), dtype=np.float32)
    want = model(image)
    frozen = read_only(image)
    assert np.array_equal(model(frozen), want) and np.array_equal(model(frozen), want)  # prepared on the 2nd call
    assert not frozen.flags.writeable


BIAS16, BIAS20, BIAS8 = (RNG.random(16, dtype=np.float32), RNG.random(20, dtype=np.float32),
                         RNG.random(8, dtype=np.float32))
DK = RNG.random((16, 5), dtype=np.float32)
WEIGHTED = {  # an op's kernels and biases as given (w: writable, or each read-only as read_only(w) makes it)
    "conv2d 1x1": lambda x, w: ops.conv2d(x, w(K1), w(BIAS16), activation="relu"),
    "conv2d 3x3 stride 2": lambda x, w: ops.conv2d(x, w(K3), w(BIAS16), stride=2, padding="same"),
    "conv2d 3x3 (Winograd)": lambda x, w: ops.conv2d(x, w(K3), w(BIAS16), padding="same"),
    "conv2d on 4 pixels": lambda x, w: ops.conv2d(x[:, :2, :2], w(K1), w(BIAS16)),
    "depthwise 3x3": lambda x, w: ops.depthwise_conv2d(x, w(DW3), w(BIAS20), padding="same"),
    "depthwise 5x5 stride 2": lambda x, w: ops.depthwise_conv2d(x, w(DW5), w(BIAS20), stride=2, padding="same"),
    "separable": lambda x, w: ops.separable_conv2d(x, w(DW3), w(PW), w(BIAS8), padding="same"),
    "depthwise -> 1x1": lambda x, w: ops.depthwise_pointwise(x, w(DW3), w(BIAS20), w(PW), w(BIAS8), padding="same"),
    "inverted residual": lambda x, w: ops.inverted_residual(x, w(EK), None, w(DW40), None, w(PK), w(BIAS20),
                                                            padding="same", residual=x),
    "conv + max pool": lambda x, w: ops.conv2d_max_pool(x, w(K3), w(BIAS16), padding="same"),
    "separable + max pool": lambda x, w: ops.separable_max_pool(x, w(DW3), w(PW), w(BIAS8), padding="same",
                                                                activation="relu", pool_size=2),
    "dense": lambda x, w: ops.dense(x[:, 0, 0, :16], w(DK), w(BIAS16[:5])),
    "bias add": lambda x, w: ops.bias_add(x, w(BIAS20)),
}


@pytest.mark.parametrize("name", list(WEIGHTED))
def test_an_op_with_read_only_weights_gives_the_writable_weights_bits(name):
    """Read-only kernels and biases (a model's frozen weights, a memory-mapped file) are read through a
    writable-typed view: before, a read-only bias or depthwise kernel failed in Numba's typing."""
    x = RNG.random((1, 12, 12, 20), dtype=np.float32)
    want = WEIGHTED[name](x, lambda w: w)
    assert np.array_equal(WEIGHTED[name](x, read_only), want)


@pytest.mark.parametrize("name", ["conv2d 1x1", "conv2d 3x3 (Winograd)", "depthwise 3x3", "separable",
                                  "separable + max pool", "dense"])
def test_a_prepared_op_holds_the_read_only_weights_it_reads(name):
    """The kernels read a read-only weight through a writable view of its memory that does not own it: a
    prepared function must keep the weights themselves alive, or a caller dropping them leaves it reading
    freed memory."""
    import gc
    import weakref

    from nnlite.ops.conv import prepare_conv2d, prepare_dense
    from nnlite.ops.depthwise import prepare_depthwise_conv2d
    from nnlite.ops.separable import prepare_separable_conv2d
    from nnlite.ops.separable_pool import prepare_separable_max_pool
    x = RNG.random((1, 12, 12, 20), dtype=np.float32)
    makers = {"conv2d 1x1": lambda w: prepare_conv2d(x, w(K1), w(BIAS16)),
              "conv2d 3x3 (Winograd)": lambda w: prepare_conv2d(x, w(K3), w(BIAS16), padding="same"),
              "depthwise 3x3": lambda w: prepare_depthwise_conv2d(x, w(DW3), w(BIAS20), padding="same"),
              "separable": lambda w: prepare_separable_conv2d(x, w(DW3), w(PW), w(BIAS8), padding="same"),
              "separable + max pool": lambda w: prepare_separable_max_pool(x, w(DW3), w(PW), w(BIAS8),
                                                                           padding="same", pool_size=2),
              "dense": lambda w: prepare_dense(x[:, 0, 0, :16], w(DK), w(BIAS16[:5]))}
    refs = []

    def weight(a):
        a = read_only(a)
        refs.append(weakref.ref(a))
        return a
    call = makers[name](weight)
    gc.collect()
    assert call is not None and all(ref() is not None for ref in refs)
    del call
    gc.collect()
    assert all(ref() is None for ref in refs)  # and only while it lives
