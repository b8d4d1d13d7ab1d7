"""The concat kernel (nnlite.ops.concatenate) against NumPy's concatenate, its twin in ops.reference."""

import numpy as np
import pytest

from nnlite import ops
from nnlite.errors import ModelError, ShapeError
from nnlite.ops import concatenate, reference


@pytest.fixture
def kernel_always(monkeypatch):
    """Every concat through the kernel, however small (the size cut-off sends small ones to NumPy)."""
    monkeypatch.setattr(concatenate, "SMALL", 0)


@pytest.fixture
def threads():
    before = ops.get_num_threads()
    yield ops.set_num_threads
    ops.set_num_threads(before)


def _random_case(rng):
    ndim = int(rng.integers(1, 5))
    shape = [int(rng.integers(1, 6)) for _ in range(ndim)]
    axis = int(rng.integers(-ndim, ndim))
    count = int(rng.integers(2, 7))
    shapes = []
    for _ in range(count):
        s = list(shape)
        s[axis] = int(rng.integers(0, 9))  # 0: an input with nothing along the axis
        shapes.append(tuple(s))
    return [rng.standard_normal(s).astype(np.float32) for s in shapes], axis


@pytest.mark.parametrize("seed", range(60))
def test_random_shapes_axes_and_counts_match_numpy(seed, kernel_always):
    xs, axis = _random_case(np.random.default_rng(seed))
    got = ops.concat(*xs, axis=axis)
    want = reference.concat(*xs, axis=axis)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.array_equal(got, want)


def test_channel_concat_of_feature_maps_on_one_and_two_threads(threads):
    # sizes above the cut-off, rows split between threads: each output row written by one piece
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 28, 28, c)).astype(np.float32) for c in (44, 44, 7, 44, 1, 44)]
    want = reference.concat(*xs, axis=-1)
    for n in (1, 2):
        threads(n)
        assert np.array_equal(ops.concat(*xs, axis=-1), want)


def test_inputs_that_are_views_or_other_dtypes(kernel_always):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, 6, 5, 8)).astype(np.float32)
    view = base[:, :, :, ::2]  # not contiguous
    sliced = base[:, :, :, 1:4]
    doubles = rng.standard_normal((2, 6, 5, 3))  # float64: converted, as every op converts its inputs
    got = ops.concat(view, sliced, doubles, axis=-1)
    assert np.array_equal(got, reference.concat(view, sliced, doubles, axis=-1))
    got_mid = ops.concat(base[:, ::-1], base, axis=1)
    assert np.array_equal(got_mid, reference.concat(base[:, ::-1], base, axis=1))


def test_the_output_is_new_memory(kernel_always):
    x = np.ones((3, 4), np.float32)
    y = ops.concat(x, x, axis=-1)
    y[:] = 5
    assert np.all(x == 1)


@pytest.mark.parametrize("shapes, axis", [
    (((2, 3, 4), (2, 5, 4)), -1),   # differ outside the axis
    (((2, 3, 4), (2, 3)), 1),       # differ in rank
])
def test_mismatched_shapes_are_a_shape_error(shapes, axis, kernel_always):
    xs = [np.zeros(s, np.float32) for s in shapes]
    with pytest.raises(ShapeError, match="concat: shapes"):
        ops.concat(*xs, axis=axis)


def test_no_inputs_and_bad_axis_are_nnlite_errors():
    with pytest.raises(ShapeError, match="at least one input"):
        ops.concat()
    with pytest.raises(ModelError, match="axis 3"):
        ops.concat(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), axis=3)


@pytest.mark.parametrize("seed", range(20))
def test_a_prepared_concat_copies_whatever_inputs_of_its_shapes_it_is_given(seed, kernel_always):
    rng = np.random.default_rng(100 + seed)
    xs, axis = _random_case(rng)
    call = concatenate.prepare_concat(*xs, axis=axis)
    want = reference.concat(*xs, axis=axis)
    if want.size == 0 or len(xs) == 1 or int(np.prod(xs[0].shape[:axis % xs[0].ndim])) <= 1:
        assert call is None  # NumPy's
        return
    assert call is not None and call.out_shape == want.shape
    fresh = [rng.standard_normal(x.shape).astype(np.float32) for x in xs]
    assert np.array_equal(call(*fresh), reference.concat(*fresh, axis=axis))
    views = [np.asfortranarray(x) for x in fresh]  # other memory layouts: made contiguous first
    assert np.array_equal(call(*views), reference.concat(*fresh, axis=axis))


def test_no_prepared_concat_for_what_the_op_converts_or_rejects(kernel_always):
    x = np.zeros((2, 3, 4), np.float32)
    assert concatenate.prepare_concat(x, x.astype(np.float64)) is None
    assert concatenate.prepare_concat(x, x[:, :, ::2]) is None
    assert concatenate.prepare_concat(x, np.zeros((2, 5, 4), np.float32)) is None
    assert concatenate.prepare_concat(x, x, axis=3) is None
    assert concatenate.prepare_concat(x, x, axis="1") is None
    assert concatenate.prepare_concat(x, x, axis=np.int64(1)).out_shape == (2, 6, 4)


def test_a_models_concat_step_runs_prepared():
    from nnlite.graph import GraphBuilder
    g = GraphBuilder("cat")
    a, b = g.input("a", (16, 16, 40)), g.input("b", (16, 16, 24))
    model = g.build([g.layer("concat", "both", g.layer("relu", "ra", a), g.layer("relu", "rb", b))])
    rng = np.random.default_rng(3)
    feed = {"a": rng.standard_normal((4, 16, 16, 40)).astype(np.float32),
            "b": rng.standard_normal((4, 16, 16, 24)).astype(np.float32)}
    want = reference.concat(np.maximum(feed["a"], 0), np.maximum(feed["b"], 0), axis=-1)
    for _ in range(2):
        assert np.array_equal(model(**feed), want)
    step = next(s for s in model._execution_plan()[0] if s.out == "both")
    assert step.prepared is not None
