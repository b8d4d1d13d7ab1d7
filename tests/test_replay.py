"""Replays (nnlite.replay): a plan run again on inputs like the last ones calls the prepared calls it used without
each step's checks, and must give the bits the layers give one by one, whatever ran or changed in between."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops, prepared, replay
from nnlite.graph import GraphBuilder
from tests.test_prepared import layer_by_layer, rand

pytestmark = pytest.mark.usefixtures("simd_engine")


def small_model(rng, middle=None):
    """conv -> separable conv -> (``middle``, a Python function, if given) -> conv -> add -> max pool."""
    g = GraphBuilder("replayed")
    x = g.input("image", (None, None, 3))
    a = g.layer("conv2d", "stem", x, kernel=rand(rng, 3, 3, 3, 8), bias=rand(rng, 8), padding="same",
                activation="relu")
    b = g.layer("separable_conv2d", "sep", a, depthwise_kernel=rand(rng, 3, 3, 8, 1),
                pointwise_kernel=rand(rng, 1, 1, 8, 8), bias=rand(rng, 8), padding="same")
    if middle is not None:
        b = g.layer(middle, "middle", b)
        a = g.layer(middle, "middle_a", a)
    c = g.layer("conv2d", "head", b, kernel=rand(rng, 3, 3, 8, 8), bias=rand(rng, 8), padding="same")
    c = g.layer("add", "sum", a, c, activation="relu")
    return g.build([g.layer("max_pool2d", "pool", c, pool_size=2, stride=2, padding="same")])


@pytest.fixture
def fits_calls(monkeypatch):
    """How many times a prepared call's fits() was asked."""
    calls = []
    original = prepared.Prepared.fits
    monkeypatch.setattr(prepared.Prepared, "fits", lambda self, xs: calls.append(self) or original(self, xs))
    return calls


def test_a_second_run_replays_every_step_without_its_checks_and_gives_the_layers_bits(fits_calls):
    model = small_model(np.random.default_rng(0))
    x = rand(np.random.default_rng(1), 2, 10, 12, 3)
    first = model(x)
    assert fits_calls, "the first run noted which steps' prepared calls it used"
    (key, calls), = model._replays.items()
    steps, _ = model._execution_plan()
    assert len(calls) == len(steps) and all(c is s.prepared.call for c, s in zip(calls, steps))
    fits_calls.clear()
    second = model(x)
    assert not fits_calls
    assert np.array_equal(first, second) and np.array_equal(second, layer_by_layer(model, x))


def test_input_shapes_taking_turns_each_replay_their_own_calls():
    model = small_model(np.random.default_rng(2))
    rng = np.random.default_rng(3)
    inputs = [rand(rng, 1, 10, 12, 3), rand(rng, 1, 16, 8, 3), rand(rng, 3, 10, 12, 3)]
    for x in inputs * 3:  # each step's own prepared call is the last shape's: the replay must keep its own
        assert np.array_equal(model(x), layer_by_layer(model, x))
    assert len(model._replays) == 3


def test_a_step_after_a_python_layer_whose_output_shape_varies_is_checked_at_each_run():
    size = [8]  # read at each call: no layer changes, so the model's input signature alone stays the same

    def crop(x):
        return np.ascontiguousarray(x[:, :size[0], :size[0]])

    model = small_model(np.random.default_rng(4), middle=crop)
    x = rand(np.random.default_rng(5), 1, 8, 8, 3)
    for n in (8, 6, 8, 4, 6):
        size[0] = n
        got = model(x)
        assert got.shape == (1, (n + 1) // 2, (n + 1) // 2, 8)
        assert np.array_equal(got, layer_by_layer(model, x)), n


def test_a_python_layer_makes_only_what_follows_it_checked(fits_calls):
    model = small_model(np.random.default_rng(6), middle=lambda x: x + np.float32(0))
    x = rand(np.random.default_rng(7), 1, 8, 8, 3)
    model(x)
    fits_calls.clear()
    assert np.array_equal(model(x), layer_by_layer(model, x))
    steps, _ = model._execution_plan()
    checked = {id(p) for p in fits_calls}
    seen = [(type(s).__name__, s.layer.name, s.prepared is not None and id(s.prepared) in checked) for s in steps]
    assert seen == [("Step", "stem", False), ("Step", "sep", False), ("Step", "middle", False),
                    ("Step", "middle_a", False), ("SumStep", "sum", True), ("Step", "pool", True)]


def test_changes_to_layers_threads_or_engine_are_seen_and_old_replays_dropped():
    model = small_model(np.random.default_rng(8))
    x = rand(np.random.default_rng(9), 1, 10, 12, 3)
    model(x)
    model["head"].weights["bias"] = model["head"].weights["bias"] + np.float32(1)
    assert np.array_equal(model(x), layer_by_layer(model, x))
    assert len(model._replays) == 1  # the replay made before the change is gone
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        one = model(x)
        assert np.array_equal(model(x), one)  # replayed at one thread
        steps, _ = model._execution_plan()
        assert {s.prepared.threads for s in steps} == {1}  # not the two-thread replay
        ops.set_num_threads(2)
        assert np.array_equal(model(x), one) and np.array_equal(model(x), one)
        assert {s.prepared.threads for s in steps} == {2}  # prepared again for two threads, not replayed
        assert list(model._replays.values()) == [[s.prepared.call for s in steps]]
    finally:
        ops.set_num_threads(before)
    with ops.engine.use("blas"):
        blas = model(x)
    assert not np.array_equal(blas, one)  # BLAS's order of sums: the simd replay was not used


def test_at_most_max_signatures_replays_are_kept():
    model = small_model(np.random.default_rng(10))
    rng = np.random.default_rng(11)
    for h in range(4, 4 + 2 * replay.MAX_SIGNATURES + 1):
        x = rand(rng, 1, h, 6, 3)
        assert np.array_equal(model(x), layer_by_layer(model, x))
        assert 1 <= len(model._replays) <= replay.MAX_SIGNATURES


def test_threads_running_one_model_on_inputs_of_several_shapes_get_the_layers_bits():
    from concurrent.futures import ThreadPoolExecutor
    model = small_model(np.random.default_rng(12))
    rng = np.random.default_rng(13)
    inputs = [rand(rng, 1, 4 + i, 6, 3) for i in range(replay.MAX_SIGNATURES + 2)]  # more than are kept
    want = [layer_by_layer(model, x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: model(inputs[i % len(inputs)]), range(12 * len(inputs))))
    assert all(np.array_equal(g, want[i % len(inputs)]) for i, g in enumerate(got))
