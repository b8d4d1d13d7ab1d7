"""The pool of large output buffers (nnlite.ops.buffers): a buffer is handed out again only once nothing holds it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from nnlite.ops import buffers


@pytest.fixture
def small_pool(monkeypatch):
    """Pool arrays of 4 KB and more (the real threshold is 32 MiB), starting empty and left empty."""
    monkeypatch.setattr(buffers, "LARGE", 4096)
    monkeypatch.delenv("NNLITE_BUFFER_POOL_MB", raising=False)
    buffers.release()
    yield
    buffers.release()


def test_a_free_buffer_is_handed_out_again_and_a_held_one_never(small_pool):
    a = buffers.empty((8, 256))
    first = id(a)
    del a
    b = buffers.empty((8, 256))
    assert id(b) == first                      # nothing held it: the same buffer
    c = buffers.empty((8, 256))
    assert c is not b                          # b is held by this test
    view = b[2:4]
    box = [c]
    del b, c
    d = buffers.empty((8, 256))                # b through a view, c through a list: neither is free
    assert not np.shares_memory(d, view) and not np.shares_memory(d, box[0])
    del view, box, d
    assert id(buffers.empty((8, 256))) == first


@pytest.mark.parametrize("shape", [(256,), (3, 512), (2, 3, 1024), (8, 256), (64, 1024), (64, 100)])
def test_maps_of_256_channels_and_kept_buffers_start_on_a_cache_line(small_pool, shape):
    for _ in range(3):  # (256,) is under the fixture's LARGE; the others are kept, made and handed out again
        a = buffers.empty(shape)
        assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
        assert a.ctypes.data % buffers.LINE == 0
        del a


def test_only_the_same_shape_and_small_arrays_never(small_pool):
    a = buffers.empty((8, 256))
    del a
    b = buffers.empty((256, 8))                # as many bytes, another shape: a buffer of its own
    c = buffers.empty((8, 256))
    assert b.shape == (256, 8) and c.shape == (8, 256) and not np.shares_memory(b, c)
    assert b.dtype == np.float32 and b.flags.c_contiguous and b.flags.writeable
    before = buffers.kept_bytes()
    small = buffers.empty((10,))               # under LARGE: a plain array, not kept
    assert buffers.kept_bytes() == before and small.shape == (10,)


def test_the_pool_keeps_at_most_its_capacity_and_can_be_off(small_pool, monkeypatch):
    monkeypatch.setenv("NNLITE_BUFFER_POOL_MB", "1")
    held = [buffers.empty((64, 1024)) for _ in range(3)]   # 256 KB each
    arrays = [buffers.empty((n, 1024)) for n in (100, 101, 102, 103, 104)]  # ~400 KB each, dropped at once
    del arrays
    assert buffers.kept_bytes() <= 1 << 20
    assert all(h.shape == (64, 1024) for h in held)
    monkeypatch.setenv("NNLITE_BUFFER_POOL_MB", "0")
    buffers.release()
    x = buffers.empty((8, 256))
    del x
    assert buffers.kept_bytes() == 0
    buffers.empty((8, 256))
    assert buffers.kept_bytes() == 0


def test_threads_never_share_a_buffer(small_pool):
    seen, lock, errors = [], threading.Lock(), []

    def work():
        for _ in range(200):
            a = buffers.empty((16, 256))
            a.fill(threading.get_ident() % 1000)
            with lock:
                seen.append(id(a))
            if not np.all(a == threading.get_ident() % 1000):   # another thread wrote into it
                errors.append(1)
            del a

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(seen) == 800


def _model():
    from tests.test_plan_sums import dense_block_model
    return dense_block_model(np.random.default_rng(3), size=24)


def test_a_model_with_pooled_outputs_gives_the_same_bits_and_leaves_held_outputs_alone(small_pool, simd_engine):
    """Every output of the dense block model (its maps are 4 KB and more) from the pool: the same bits as without
    it, and an output held from one call unchanged by the next call on another input."""
    rng = np.random.default_rng(1)
    model = _model()
    x1 = rng.standard_normal((2, 24, 24, 8)).astype(np.float32)
    x2 = rng.standard_normal((2, 24, 24, 8)).astype(np.float32)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("NNLITE_BUFFER_POOL_MB", "0")
        want1, want2 = [o.copy() for o in model(x1)], [o.copy() for o in model(x2)]
    first = model(x1)
    assert buffers.kept_bytes() > 0
    for _ in range(3):
        second = model(x2)
        for got, want in zip(first, want1):
            assert np.array_equal(got, want)       # still the first call's outputs
        for got, want in zip(second, want2):
            assert np.array_equal(got, want)
        assert not any(np.shares_memory(a, b) for a in first for b in second)


@pytest.mark.parametrize("name", ["tiny_face_detector", "face_landmark_68", "age_gender"])
def test_bundled_nets_on_reused_buffers_give_the_same_bits(small_pool, name):
    """Every output of 4 KB and more from the pool, each buffer last written by a call on another input: the
    same bits as fresh arrays (a kernel that left an output value unwritten would show the other call's)."""
    import nnlite

    model = nnlite.load(name).model
    shape = tuple(s or 160 for s in model.inputs["input"])  # a free size (the detector): 160
    rng = np.random.default_rng(5)
    x1 = rng.uniform(0, 255, (2, *shape)).astype(np.float32)
    x2 = rng.uniform(0, 255, (2, *shape)).astype(np.float32)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("NNLITE_BUFFER_POOL_MB", "0")
        want = model(x1)
    want = want if isinstance(want, tuple) else (want,)
    model(x2)
    got = model(x1)
    got = got if isinstance(got, tuple) else (got,)
    assert buffers.kept_bytes() > 0
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
