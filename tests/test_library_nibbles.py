"""The face index's integer dot product of 4-bit codes (nnlite.library.nibbles) against its NumPy twin, and
the bound on what rounding the float weights to 16 bits can change."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from nnlite.library.nibbles import BYTES, RUN, nibble_dot, nibble_dot4, nibble_dot_reference, quantize


@numba.njit(cache=False)
def _one(codes, offset, weights, woffset, count):
    return nibble_dot(codes, offset, weights, woffset, count)


@numba.njit(cache=False)
def _four(codes, offset, stride, weights, woffset, count):
    return nibble_dot4(codes, offset, stride, weights, woffset, count)


@pytest.mark.parametrize("offset, woffset, count", [(0, 0, 64), (7, RUN, 64), (1000 - 64, 0, 64), (5, 0, 17),
                                                    (3, RUN, 63), (0, 0, 1), (9, 0, 0)])
def test_nibble_dot_is_its_numpy_twin(offset, woffset, count):
    rng = np.random.default_rng(count)
    codes = rng.integers(0, 256, 1000).astype(np.uint8)
    weights = rng.integers(-128, 128, 2 * RUN).astype(np.int8)
    weights[:4] = (-128, 127, -128, 127)   # the extremes of both bytes
    assert _one(codes, offset, weights, woffset, count) == nibble_dot_reference(codes, offset, weights, woffset, count)
    stride = (1000 - offset - max(count, 1)) // 3
    want = tuple(nibble_dot_reference(codes, offset + r * stride, weights, woffset, count) for r in range(4))
    assert _four(codes, offset, stride, weights, woffset, count) == want


def test_nibble_dot_reads_no_code_byte_past_its_count():
    """The last 5 bytes of an array: a full 64-byte load there would read past the buffer (and the bytes
    after the count must not count)."""
    codes = np.full(69, 255, np.uint8)
    weights = np.ones(RUN, np.int8)
    for _ in range(20):
        assert _one(codes[64:], 0, weights, 0, 5) == 5 * (257 * 15 + 257 * 15)


@pytest.mark.parametrize("dims", [128, 512, 30])
def test_quantized_weights_stay_within_their_error_bound(dims):
    """scale * (integer dot product) is within the returned error of the float dot product, for the nibbles
    that make it largest (15 where the rounding went one way, 0 elsewhere) and for random ones."""
    rng = np.random.default_rng(dims)
    half = dims // 2
    for size in (1e-6, 0.03, 50.0):
        w_even, w_odd = rng.normal(size=half) * size, rng.normal(size=half) * size
        weights, scale, error = quantize(w_even, w_odd)
        assert weights.dtype == np.int8 and len(weights) == -(-half // BYTES) * RUN
        q_even = np.rint(w_even / scale)
        worst = np.where(w_even > scale * q_even, 15, 0).astype(np.uint8)   # even nibbles only
        for nibbles in (worst, rng.integers(0, 256, half).astype(np.uint8)):
            exact = (w_even * (nibbles & 15)).sum() + (w_odd * (nibbles >> 4)).sum()
            got = scale * sum(_one(nibbles, b, weights, b // BYTES * RUN, min(BYTES, half - b))
                              for b in range(0, half, BYTES))
            assert abs(got - exact) <= error * (1 + 1e-9)
        assert error <= 15 * dims * scale / 2 + 1e-12   # never looser than half a step a weight


def _host_has(*features) -> bool:
    import llvmlite.binding as llvm
    return all(f"+{f}" in llvm.get_host_cpu_features().flatten().split(",") for f in features)


@pytest.mark.parametrize("mode", ["portable", "avx2", "vnni"])
def test_each_path_matches_its_numpy_twin(mode, monkeypatch):
    """The IR of each kind of CPU (nibbles.MODE), compiled here on purpose where this CPU can run it: the same
    integers. The paths this CPU cannot run are compiled and run where it can (CI machines differ)."""
    from nnlite.library import nibbles
    from nnlite.ops.engine import numba_compiles_for
    needs = {"portable": (), "avx2": ("avx2",), "vnni": ("avx512vnni", "avx512bw")}[mode]
    if not _host_has(*needs):
        pytest.skip(f"this CPU cannot run the {mode} instructions")
    if not numba_compiles_for(*needs):   # NUMBA_CPU_NAME=generic: LLVM would abort the process on them
        pytest.skip(f"Numba compiles for a CPU without the {mode} instructions (NUMBA_CPU_NAME)")
    monkeypatch.setattr(nibbles, "MODE", mode)

    @numba.njit(cache=False)
    def one(codes, offset, weights, woffset, count):
        return nibbles.nibble_dot(codes, offset, weights, woffset, count)

    @numba.njit(cache=False)
    def four(codes, offset, stride, weights, woffset, count):
        return nibbles.nibble_dot4(codes, offset, stride, weights, woffset, count)

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, 1000).astype(np.uint8)
    weights = rng.integers(-128, 128, 2 * RUN).astype(np.int8)
    weights[:4] = (-128, 127, -128, 127)   # the extremes of both bytes, with nibbles of 15 below
    codes[:64] = 255
    for offset, woffset, count in [(0, 0, 64), (7, RUN, 64), (5, 0, 17), (9, 0, 0), (0, 0, 63), (3, RUN, 1)]:
        assert one(codes, offset, weights, woffset, count) == nibble_dot_reference(codes, offset, weights, woffset,
                                                                                 count)
        want = tuple(nibble_dot_reference(codes, offset + r * 200, weights, woffset, count) for r in range(4))
        assert four(codes, offset, 200, weights, woffset, count) == want
    extreme = np.full(64, 255, np.uint8)   # every nibble 15 against every weight byte at -128 or 127
    for value in (-128, 127):
        w = np.full(RUN, value, np.int8)
        assert one(extreme, 0, w, 0, 64) == nibble_dot_reference(extreme, 0, w, 0, 64)


def test_numba_told_to_compile_for_a_generic_cpu_gets_the_portable_ir(monkeypatch):
    """NUMBA_CPU_NAME=generic (a cache shared between machines): an AVX2 or VNNI instruction there would stop
    LLVM, so the mode is the portable one unless NUMBA_CPU_FEATURES grants the features."""
    from nnlite.library import nibbles
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "")
    assert nibbles._mode() == "portable"
    if _host_has("avx2"):
        monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2")   # granted AVX2, not VNNI
        assert nibbles._mode() == "avx2"
