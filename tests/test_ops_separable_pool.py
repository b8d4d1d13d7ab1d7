"""A separable convolution and the max pool after it as one kernel (nnlite.ops.separable_pool): the bits of
separable_conv2d then max_pool2d, whatever the band (down to one pooled row, where every band keeps the rows
it shares with the previous one), thread count, batch or pool geometry; the two ops' prepared calls where the
fused kernel declines; and in a model's plan, one SeparablePoolStep with the declared layers' bits."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops, plan
from nnlite.errors import ModelError
from nnlite.graph import GraphBuilder
from nnlite.ops import machine, reference, separable_pool
from nnlite.plan import plan_steps
from tests.test_prepared import layer_by_layer

pytestmark = pytest.mark.usefixtures("simd_engine")

CASES = [  # (n, h, w, cin, cout, k, stride, dilation, padding, activation, pool, pool_stride, pool_padding)
    (1, 24, 24, 32, 64, 3, 1, 1, "same", "relu", 3, 2, "same"),            # the age/gender net's blocks
    (2, 21, 21, 16, 32, 3, 1, 1, "same", "leaky_relu", 2, 2, "same"),      # TinyFaceDetector's, an odd map
    (1, 13, 13, 64, 96, 3, 1, 1, "same", "leaky_relu", 2, 1, "same"),      # its last: a stride-1 pool
    (3, 19, 17, 8, 20, 3, 2, 1, "valid", "swish", 3, 2, "valid"),          # strided conv, sigmoid-type act
    (1, 15, 16, 8, 33, 5, 1, 1, "same", None, (3, 2), (2, 3), (1, 1, 0, 1)),  # explicit, uneven pool padding
    (1, 20, 18, 8, 16, 3, 1, 2, "same", "relu6", 3, 3, "valid"),            # dilated taps, pool windows apart
]


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def arguments(case, seed=0):
    n, h, w, cin, cout, k, stride, dilation, padding, act, pool, pool_stride, pool_padding = case
    rng = np.random.default_rng(seed)
    x, dk = rand(rng, n, h, w, cin), rand(rng, k, k, cin, 1)
    pk, bias = rand(rng, 1, 1, cin, cout) / np.float32(cin ** 0.5), rand(rng, cout)
    conv = dict(stride=stride, dilation=dilation, padding=padding, activation=act, alpha=0.1)
    return x, dk, pk, bias, conv, dict(pool_size=pool, stride=pool_stride, padding=pool_padding)


def two_ops(x, dk, pk, bias, conv, pool):
    return ops.max_pool2d(ops.separable_conv2d(x, dk, pk, bias, **conv), **pool)


def fused(x, dk, pk, bias, conv, pool):
    """The fused kernel itself (None where it declines)."""
    return separable_pool._prepare_fused(x, dk, pk, bias, conv["stride"], conv["padding"], conv["dilation"],
                                         conv["activation"], conv["alpha"], pool["pool_size"], pool["stride"],
                                         pool["padding"])


@pytest.fixture(params=["L2", "one row", "three rows"])
def band(request, monkeypatch):
    """Bands as the machine sizes them, of one pooled row, or of about three (the buffer budget forced)."""
    if request.param != "L2":
        blocking = machine.blocking()
        size = 1 if request.param == "one row" else 3 * 4 * 24 * (32 + 64) * 2
        monkeypatch.setattr(machine, "blocking", lambda: blocking._replace(convpool_band=size))
    return request.param


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_fused_kernel_gives_separable_conv_then_max_pool_bits(case, band, threads):
    x, dk, pk, bias, conv, pool = arguments(case)
    call = fused(x, dk, pk, bias, conv, pool)
    assert call is not None
    before = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        got = call(x)
    finally:
        ops.set_num_threads(before)
    assert got.shape == call.out_shape
    assert np.array_equal(got, two_ops(x, dk, pk, bias, conv, pool))
    want = reference.max_pool2d(reference.separable_conv2d(x, dk, pk, bias, **conv), **pool)
    assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)


def test_the_op_and_its_twin_agree_and_a_large_pointwise_kernel_is_read_once_per_thread():
    """separable_max_pool itself; a 1x1 kernel over the fused-kernel budget with one band per thread (fused,
    all rows in one band) and with many (the two ops' prepared calls)."""
    for h in (6, 40):
        x, dk, pk, bias, conv, pool = arguments((1, h, h, 256, 256, 3, 1, 1, "same", "relu", 3, 2, "same"), seed=h)
        assert (fused(x, dk, pk, bias, conv, pool) is None) == (h == 40)
        kwargs = dict(**conv, pool_size=pool["pool_size"], pool_stride=pool["stride"], pool_padding=pool["padding"])
        got = ops.separable_max_pool(x, dk, pk, bias, **kwargs)
        assert np.array_equal(got, two_ops(x, dk, pk, bias, conv, pool))
        prepared = separable_pool.prepare_separable_max_pool(x, dk, pk, bias, **kwargs)
        assert prepared is not None and np.array_equal(prepared(x), got)
        want = reference.separable_max_pool(x, dk, pk, bias, **kwargs)
        assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)


def test_arguments_the_fused_kernel_does_not_take():
    x, dk, pk, bias, conv, pool = arguments(CASES[0])
    assert fused(x.astype(np.float64), dk, pk, bias, conv, pool) is None
    assert fused(x, np.concatenate([dk, dk], axis=3), pk, bias, conv, pool) is None  # multiplier 2
    assert fused(x, dk, pk, bias, {**conv, "activation": "gelu?"}, pool) is None
    assert fused(x, dk, pk, bias, {**conv, "activation": ["relu"]}, pool) is None
    kwargs = dict(pool_size=pool["pool_size"], pool_stride=pool["stride"], pool_padding=pool["padding"])
    for activation in ("gelu?", ["relu"]):  # the op raises nnlite's error for it, as the two ops do
        with pytest.raises(ModelError):
            ops.separable_max_pool(x, dk, pk, bias, **{**conv, "activation": activation}, **kwargs)
    assert fused(x, dk, pk, bias, conv, {**pool, "padding": (3, 3, 3, 3)}) is None   # padding past the window
    with ops.engine.use("blas"):
        assert fused(x, dk, pk, bias, conv, pool) is None


def separable_pool_model(rng):
    g = GraphBuilder("separable_pool")
    x = g.input("image", (20, 20, 8))
    a = g.layer("separable_conv2d", "sep0", x, depthwise_kernel=rand(rng, 3, 3, 8, 1),
                pointwise_kernel=rand(rng, 1, 1, 8, 24), bias=rand(rng, 24), padding="same")
    a = g.layer("leaky_relu", "sep0_act", a, alpha=0.1)          # folded into sep0, then paired with pool0
    a = g.layer("max_pool2d", "pool0", a, pool_size=3, stride=2, padding="same")
    b = g.layer("separable_conv2d", "sep1", a, depthwise_kernel=rand(rng, 3, 3, 24, 1),
                pointwise_kernel=rand(rng, 1, 1, 24, 16), padding="same")
    b1 = g.layer("max_pool2d", "pool1", b, pool_size=2)
    b2 = g.layer("relu", "side", b)  # sep1 has two readers: not paired
    return g.build([b1, b2])


def test_a_separable_conv_and_its_pool_run_as_one_step_with_the_layers_bits():
    model = separable_pool_model(np.random.default_rng(3))
    steps = plan_steps(model.layers, model.outputs)
    pairs = [(s.first.layer.name, s.layer.name) for s in steps if isinstance(s, plan.SeparablePoolStep)]
    assert pairs == [("sep0", "pool0")]
    x = rand(np.random.default_rng(4), 2, 20, 20, 8)
    first, second = model(x), model(x)   # the second call runs the prepared step
    step = next(s for s in model._execution_plan()[0] if isinstance(s, plan.SeparablePoolStep))
    assert step.prepared is not None
    want = layer_by_layer(model, x)
    for got in (first, second):
        assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_a_profilers_wrapper_runs_the_two_layers():
    model = separable_pool_model(np.random.default_rng(5))
    x = rand(np.random.default_rng(6), 1, 20, 20, 8)
    want = model(x)
    layer, calls = model["sep0"], []
    original = layer.fn
    layer.fn = lambda *a, **k: calls.append(1) or original(*a, **k)  # as benchmarks/profile_layers does
    try:
        got = model(x)
    finally:
        layer.fn = original
    assert calls == [1] and all(np.array_equal(a, b) for a, b in zip(got, want))
