"""The inverted-residual block in bands (nnlite.ops.inverted): bit for bit the three layers it replaces.

Each case is run with the fusion forced on (worth_fusing patched), so the banded kernel itself is what is
compared: its buffer of expanded rows, the rows kept from one band to the next, bands that stop at an image's
last row, the depthwise's clipping at the map's edges and every thread split.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.errors import ShapeError
from nnlite.ops import engine, inverted, parallel, reference, separable

TOL = 1e-5

CASES = [  # (n, h, w, cin, e, cout, k, stride, padding, dilation)
    (1, 112, 40, 16, 96, 24, 3, 2, "same", 1),  # MobileNetV2's second block, narrowed: one output row per band
    (1, 56, 56, 24, 144, 24, 3, 1, "same", 1),  # each band keeps two rows of the one before
    (2, 30, 17, 8, 48, 16, 5, 2, "same", 1),  # a batch: bands stop at each image's last row
    (3, 9, 9, 4, 36, 20, 3, 1, "same", 1),
    (1, 20, 20, 8, 40, 8, 3, 1, "valid", 1),
    (1, 33, 31, 16, 64, 40, 3, 2, "valid", 1),
    (1, 24, 24, 8, 72, 16, 3, 1, "same", 2),  # dilated taps
    (1, 70, 12, 8, 200, 8, 5, 1, "same", 1),  # wide buffer rows: bands of one row, four kept
]
ACTS = [("relu6", "relu6", None), (None, None, "relu"), ("swish", "sigmoid", "swish"), ("leaky_relu", None, None)]


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture
def forced(monkeypatch):
    """The simd engine, and the banded kernel on every shape (not only where worth_fusing says so)."""
    monkeypatch.setattr(inverted, "worth_fusing", lambda *args: True)
    inverted._geometry.cache_clear()
    with engine.use("simd"):
        yield
    inverted._geometry.cache_clear()


def block(rng, case):
    n, h, w, cin, e, cout, k, *_ = case
    return (rand(rng, n, h, w, cin), rand(rng, 1, 1, cin, e), rand(rng, e), rand(rng, k, k, e, 1), rand(rng, e),
            rand(rng, 1, 1, e, cout), rand(rng, cout))


def layer_by_layer(x, ek, eb, dk, db, pk, pb, acts, **geometry):
    wide = ops.conv2d(x, ek, eb, activation=acts[0], alpha=0.1)
    return separable.depthwise_pointwise(wide, dk, db, pk, pb, depthwise_activation=acts[1], depthwise_alpha=0.1,
                                         activation=acts[2], alpha=0.1, **geometry)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("acts", ACTS, ids=lambda a: "-".join(map(str, a)))
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_banded_block_is_the_three_layers_bit_for_bit(forced, case, acts, threads):
    rng = np.random.default_rng(hash((case, acts)) % 2**32)
    weights = block(rng, case)
    geometry = {"stride": case[7], "padding": case[8], "dilation": case[9]}
    saved = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        shape = (weights[0].shape, weights[1].shape, weights[3].shape, weights[5].shape)
        assert inverted._geometry(*shape, case[7], case[8], case[9], threads) is not None  # the banded kernel ran
        got = ops.inverted_residual(*weights, expand_activation=acts[0], depthwise_activation=acts[1],
                                    activation=acts[2], expand_alpha=0.1, depthwise_alpha=0.1, alpha=0.1, **geometry)
        want = layer_by_layer(*weights, acts, **geometry)
    finally:
        ops.set_num_threads(saved)
    assert np.array_equal(got, want)
    twin = reference.inverted_residual(*weights, expand_activation=acts[0], depthwise_activation=acts[1],
                                       activation=acts[2], expand_alpha=0.1, depthwise_alpha=0.1, alpha=0.1,
                                       **geometry)
    assert np.abs(got - twin).max() <= TOL * max(1.0, np.abs(twin).max())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[7]], ids=["56x56", "batch3", "wide"])
def test_the_shortcut_is_added_as_add_adds_it(forced, case, threads):
    """residual=x: the block's output plus its input, bit for bit ops.add(x, block) (stride 1, cin == cout)."""
    rng = np.random.default_rng(8)
    n, h, w, cin, e, _, k, *_ = case
    x, ek, eb, dk, db, _, _ = block(rng, case)
    pk, pb = rand(rng, 1, 1, e, cin), rand(rng, cin)
    saved = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        got = ops.inverted_residual(x, ek, eb, dk, db, pk, pb, padding="same", expand_activation="relu6",
                                    residual=x)
        want = ops.add(x, layer_by_layer(x, ek, eb, dk, db, pk, pb, ("relu6", None, None), padding="same"))
    finally:
        ops.set_num_threads(saved)
    assert np.array_equal(got, want)
    twin = reference.inverted_residual(x, ek, eb, dk, db, pk, pb, padding="same", expand_activation="relu6",
                                       residual=x)
    assert np.abs(got - twin).max() <= TOL * max(1.0, np.abs(twin).max())
    with pytest.raises(ShapeError, match="broadcast"):  # a residual of another shape: the checked add's error
        ops.inverted_residual(x, ek, eb, dk, db, pk, pb, padding="same", residual=x[:, :-1])


def test_read_only_weights_and_absent_biases(forced):
    """Model weights are read-only (nnlite.ops.prepack freezes them) and biases may be None: same bits."""
    rng = np.random.default_rng(3)
    x, ek, eb, dk, db, pk, pb = block(rng, CASES[1])
    want = layer_by_layer(x, ek, None, dk, db, pk, None, ("relu6", "relu6", None), padding="same")
    for a in (ek, dk, db, pk):
        a.flags.writeable = False
    got = ops.inverted_residual(x, ek, None, dk, db, pk, None, padding="same", expand_activation="relu6",
                                depthwise_activation="relu6")
    assert np.array_equal(got, want)


def test_blocks_not_worth_fusing_run_layer_by_layer(monkeypatch):
    """worth_fusing's rule, and that a block it turns down (or one with too large a kernel) gives the same bits."""
    assert inverted.worth_fusing(1, 14, 3, 1, 1, 2) and inverted.worth_fusing(1, 7, 3, 1, 1, 1)
    assert not inverted.worth_fusing(1, 7, 3, 1, 1, 2)  # 3.5 rows a thread, 2 of them expanded twice
    assert inverted.worth_fusing(8, 7, 3, 1, 1, 2)
    rng = np.random.default_rng(4)
    case = (1, 7, 7, 160, 960, 16, 3, 1, "same", 1)  # a 614 KB expansion kernel: over fuse_max_weights
    weights = block(rng, case)
    calls = []
    monkeypatch.setattr(inverted, "_prepare", lambda *a: calls.append(1))
    with engine.use("simd"):
        got = ops.inverted_residual(*weights, padding="same")
    assert calls == [] and np.array_equal(got, layer_by_layer(*weights, (None, None, None), padding="same"))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_block_not_fused_sums_its_shortcut_in_the_projection(monkeypatch, threads):
    """A block worth_fusing turns down, given a residual: the 1x1 projection's kernel adds it as it writes (no
    separate add over the output), with ops.add's bits; the plan's prepared step does the same."""
    rng = np.random.default_rng(12)
    case = (1, 7, 7, 32, 192, 32, 3, 1, "same", 1)
    x, ek, eb, dk, db, pk, pb = block(rng, case)
    want = ops.add(x, layer_by_layer(x, ek, eb, dk, db, pk, pb, ("relu6", "relu6", None), padding="same"))
    monkeypatch.setattr(inverted, "worth_fusing", lambda *args: False)
    monkeypatch.setattr(separable, "worth_fusing", lambda *args: threads == 1)  # the pair fused, or not
    monkeypatch.setattr(inverted, "add", lambda *args, **kwargs: pytest.fail("a separate add"))
    inverted._geometry.cache_clear()
    separable._fast_pair_key.cache_clear()
    saved = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        with engine.use("simd"):
            f = inverted.prepare_inverted_residual(x, ek, eb, dk, db, pk, pb, padding="same",
                                                   expand_activation="relu6", depthwise_activation="relu6",
                                                   shortcut=True)
            got = f(x, x)
            direct = ops.inverted_residual(x, ek, eb, dk, db, pk, pb, padding="same", expand_activation="relu6",
                                           depthwise_activation="relu6", residual=x)
    finally:
        ops.set_num_threads(saved)
        inverted._geometry.cache_clear()
        separable._fast_pair_key.cache_clear()
    assert np.array_equal(got, want) and np.array_equal(direct, want)


def test_arguments_it_cannot_take_as_they_are_take_the_checked_path():
    """Lists, float64 and a bias of the wrong size go through the ops one by one (their conversions, their errors)."""
    rng = np.random.default_rng(5)
    x, ek, eb, dk, db, pk, pb = block(rng, CASES[3])
    want = layer_by_layer(x, ek, eb, dk, db, pk, pb, (None, None, None), padding="same")
    got = ops.inverted_residual(x.astype(np.float64), ek.tolist(), eb, dk, db, pk, pb, padding="same")
    assert np.array_equal(got, want)
    with pytest.raises(ShapeError, match="bias"):
        ops.inverted_residual(x, ek, eb[:-1], dk, db, pk, pb, padding="same")


def test_any_split_of_the_rows_gives_the_same_bits(forced, monkeypatch):
    rng = np.random.default_rng(6)
    weights = block(rng, CASES[2])
    outs = []
    for pieces in (1, 2, 3, 7):  # ranges that start and stop anywhere in an image
        monkeypatch.setattr(parallel, "parts", lambda total, work, p=pieces: min(p, total))
        outs.append(ops.inverted_residual(*weights, stride=2, padding="same", expand_activation="relu"))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
