"""The SIMD depthwise convolution (nnlite.ops.depthwise_simd): both engines against the naive twin on shapes
that hit every edge of the tiling (border pixels, partial tiles, channel tails, strides, dilation, batches),
and the same bits for a pixel wherever the tiling puts it and whichever way a 3x3 tile walks a row."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.ops import engine as engines
from nnlite.ops import machine, reference
from tests.closeness import TOL, rel


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture(params=("simd", "blas"))
def engine(request):
    with engines.use(request.param):
        yield request.param


DEPTHWISE_CASES = [  # (n, h, w, c, k, stride, dilation, padding)
    (1, 3, 3, 70, 5, 1, 1, "same"),  # every pixel is a border pixel
    (1, 9, 30, 16, 3, 1, 1, "same"),  # interior tiles of 8 plus a partial tile
    (2, 11, 13, 33, 3, 2, 1, "same"),
    (1, 20, 21, 11, 7, 2, 1, "same"),
    (1, 12, 12, 130, 3, 1, 2, "valid"),  # channels in 64-wide groups with a 2-channel tail
    (1, 6, 40, 8, (1, 5), (1, 3), 1, (2, 0, 1, 3)),
    (1, 16, 32, 24, 3, 2, 1, "same"),  # 3x3 at stride 2, even width: no padding on the left, a column on the right
    (2, 17, 33, 40, 3, 2, 1, "same"),  # odd width: a column on each side; rows cross images
    (1, 10, 19, 20, 3, 2, 1, "valid"),
    (1, 5, 8, 17, 3, 1, 1, "same"),  # one tile per row, both ends padded
    (1, 7, 7, 40, 3, 1, 1, "same"),  # rows of 7: two 4-pixel tiles
    (1, 14, 14, 24, 3, 2, 1, "same"),  # rows of 7 at stride 2
    (1, 12, 20, 24, 5, 1, 1, "same"),  # 5x5: two columns of padding at each end
    (2, 15, 17, 20, 5, 2, 1, "same"),
    (1, 7, 7, 33, 5, 1, 1, "same"),  # 5x5 in rows of 7
    (1, 10, 12, 8, 5, 1, 1, "valid"),
    (1, 16, 19, 18, 7, 1, 1, "same"),  # 7x7: three columns of padding at each end
    (1, 28, 28, 11, 7, 2, 1, "same"),
]


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[str(i) for i in range(len(DEPTHWISE_CASES))])
@pytest.mark.parametrize("act", [None, "relu6", "leaky_relu", "swish"])
def test_depthwise_matches_reference(engine, case, act):
    n, h, w, c, k, stride, dilation, padding = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(hash((case[:5], act)) % 2**32)
    x, kernel, bias = rand(rng, n, h, w, c), rand(rng, kh, kw, c, 1), rand(rng, c)
    kwargs = dict(stride=stride, dilation=dilation, padding=padding, activation=act, alpha=0.1)
    got = ops.depthwise_conv2d(x, kernel, bias, **kwargs)
    assert rel(got, reference.depthwise_conv2d(x, kernel, bias, **kwargs)) <= TOL


@pytest.mark.parametrize("kernel_hw, stride", [((3, 3), 1), ((3, 3), 2), ((5, 5), 1), ((5, 5), 2), ((7, 7), 1),
                                               ((7, 7), 2), ((1, 3), 1), ((5, 3), 1), ((3, 5), 1)])
def test_depthwise_tile_paths_give_each_pixel_the_same_bits(simd_engine, kernel_hw, stride):
    """A pixel's sum is the same wherever the row's tiling puts it: in a whole tile, a partial tile or the
    one-pixel path of the generic kernel, and for square kernels in an 8- or 4-pixel streaming tile (a row's
    last tile overlapping the one before) or, in rows too short for those, the generic path.
    Cropping the input's left columns (by whole strides) moves every output pixel to another place in the
    tiling, and with "valid" padding must not change a bit."""
    rng = np.random.default_rng(sum(kernel_hw) + stride)
    x = rand(rng, 2, 8, 37, 40)
    kernel, bias = rand(rng, *kernel_hw, 40, 1), rand(rng, 40)
    kwargs = dict(stride=stride, padding="valid", activation="relu6")
    whole = ops.depthwise_conv2d(x, kernel, bias, **kwargs)
    assert rel(whole, reference.depthwise_conv2d(x, kernel, bias, **kwargs)) <= TOL
    for crop in range(stride, 31, stride):
        part = ops.depthwise_conv2d(np.ascontiguousarray(x[:, :, crop:]), kernel, bias, **kwargs)
        assert np.array_equal(part, whole[:, :, crop // stride:]), crop


@pytest.mark.parametrize("case", [(1, 12, 30, 48, 3, 1, "same"), (2, 15, 33, 40, 3, 2, "same"),
                                  (1, 9, 20, 100, 3, 1, "valid"), (1, 7, 7, 40, 3, 1, "same"),
                                  (1, 14, 22, 36, 5, 1, "same"), (1, 13, 25, 20, 7, 2, "same")])
def test_streaming_tiles_take_rows_either_way_with_the_same_bits(simd_engine, monkeypatch, case):
    """Streaming tiles go along a row one 16-channel block at a time where the row's kernel-high band of
    input fits in L1, else through every block at each position: both orders give the same bits (each is
    forced here by the L1 size the kernel is told), and match the reference. Either way, an input larger
    than L2 has each row read the next one's input ahead (prefetch hints, past the input's end on the last
    rows): forced by an L2 of 0 bytes, the same bits again."""
    n, h, w, c, k, stride, padding = case
    rng = np.random.default_rng(c)
    x, kernel, bias = rand(rng, n, h, w, c), rand(rng, k, k, c, 1), rand(rng, c)
    kwargs = dict(stride=stride, padding=padding, activation="relu")
    got = []
    for l1 in (0, 1 << 30):
        for l2 in (0, 1 << 30):
            monkeypatch.setattr(machine, "caches", lambda l1=l1, l2=l2: machine.Caches(l1, l2, 32 << 20))
            got.append(ops.depthwise_conv2d(x, kernel, bias, **kwargs))
    assert all(np.array_equal(g, got[0]) for g in got[1:])
    assert rel(got[0], reference.depthwise_conv2d(x, kernel, bias, **kwargs)) <= TOL


@pytest.mark.parametrize("stride", [1, 2])
def test_fused_depthwise_reads_ahead_with_the_same_bits(simd_engine, monkeypatch, stride):
    """The depthwise rows inside the fused pair and inverted-residual kernels, reading ahead (told an L2 of 0
    bytes: every input is larger; the blocking sizes kept) or not: the same bits."""
    rng = np.random.default_rng(stride)
    x, dk, db = rand(rng, 2, 21, 19, 24), rand(rng, 3, 3, 24, 1), rand(rng, 24)
    pk, pb, ek = rand(rng, 1, 1, 24, 40), rand(rng, 40), rand(rng, 1, 1, 24, 24)
    blocking, caches = machine.blocking(), machine.caches()
    monkeypatch.setattr(machine, "blocking", lambda: blocking)
    got = []
    for l2 in (0, 1 << 30):
        monkeypatch.setattr(machine, "caches", lambda l2=l2: caches._replace(l2=l2))
        got.append((ops.depthwise_pointwise(x, dk, db, pk, pb, stride=stride, padding="same", activation="relu"),
                    ops.inverted_residual(x, ek, None, dk, db, pk, pb, stride=stride, padding="same")))
    assert all(np.array_equal(a, b) for a, b in zip(*got))


def test_3x3_tiles_that_load_their_weights_give_the_same_bits(monkeypatch):
    """AVX2's 3x3 tiles load each kernel row's weights (depthwise_stream.LOAD_WEIGHTS); AVX-512's keep all 9 in
    registers. Both rows functions are compiled here, whatever the machine, and run every row of random layers
    (8- and 4-pixel tiles, strides 1 and 2, padded edges, channel tails): the same bits, and the reference's."""
    from nnlite.ops import depthwise_simd, depthwise_stream, padding
    from tests.fresh_kernels import fresh_address
    ways = []
    for loads in (False, True):
        monkeypatch.setattr(depthwise_stream, "LOAD_WEIGHTS", loads)
        ways.append(fresh_address(f"test_rows3_loads_{loads}", depthwise_stream._rows3, depthwise_simd.ROWS_ARGS))
    rows_kernel = depthwise_simd.depthwise_rows_parallel.callable()  # no Python wrapper of its own: the twin
    rng = np.random.default_rng(3)
    for trial in range(16):
        stride, pad = (1, 2)[trial % 2], ("same", "valid")[trial // 2 % 2]
        n, h, w, c = (int(rng.integers(lo, hi)) for lo, hi in ((1, 3), (3, 12), (9, 30), (1, 50)))
        x, kernel, bias = rand(rng, n, h, w, c), rand(rng, 3, 3, c, 1), rand(rng, c)
        (top, _, oh), (left, _, ow) = padding.resolve_padding_2d(h, w, 3, 3, stride, 1, pad)
        code = trial % 3  # linear, relu, relu6
        outs = []
        for rows_at in ways:
            y = np.full(n * oh * ow * c, np.nan, np.float32)
            rows_kernel(x.reshape(-1), h, w, c, kernel.reshape(-1), bias, 3, 3, stride, stride, 1,
                        1, top, left, code, np.float32(0.2), y, oh, ow, 0, 0, rows_at, 32 << 10,
                        512 << 10, 0, n * oh)
            outs.append(y.reshape(n, oh, ow, c))
        assert outs[0].tobytes() == outs[1].tobytes(), (trial, n, h, w, c, stride, pad)
        want = reference.depthwise_conv2d(x, kernel, bias, stride=stride, padding=pad,
                                          activation=(None, "relu", "relu6")[code])
        assert rel(outs[1], want) <= TOL, trial
