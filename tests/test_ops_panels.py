"""nnlite.ops.panels: AVX2's ways over a panel give the bits of AVX-512's, on any machine: the chunked pass over K
those of the whole pass, and 6 x 16 tiles on each half of a panel those of 8 x 32 tiles.

Each way is compiled here with small chunks (``KC``) and no whole-pass shortcut (``WHOLE_MAX_K``), so chunks
end inside a tap's channels, at a tap's end and past it, on 1x1 and 3x3 convolutions, panels of 32, 16-32 and
at most 16 channels, and row counts with and without a one-row tail.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlite.ops import bound, gemm, panels, reference
from nnlite.ops.tiles import NR, pack_address
from tests.closeness import TOL, rel
from tests.fresh_kernels import fresh_address


def _address(name, fn):
    """Where kernels call ``fn`` compiled now, with panels' globals as the test set them (as nnlite.ops.gemm's
    kernels call it: by address)."""
    return fresh_address(name, fn, bound._DECLARED["panel_tiles"][1])


def _compare(ways, rng, trials):
    """Each way over every row and panel of random 1x1 and 3x3 convolutions: the same bits, and the reference's
    values."""
    run_units = gemm._units_parallel.callable()  # the kernel has no Python wrapper of its own: its twin
    for trial in range(trials):
        kernel_size = (1, 3)[trial % 2]
        h, w = int(rng.integers(kernel_size, 9)), int(rng.integers(kernel_size, 9))
        cin, cout = int(rng.integers(1, 60)), int(rng.choice([5, 16, 24, 32, 45, 70]))
        x = rng.standard_normal((1, h, w, cin)).astype(np.float32)
        kernel = rng.standard_normal((kernel_size, kernel_size, cin, cout)).astype(np.float32)
        bias = rng.standard_normal(cout).astype(np.float32)
        oh, ow = h - kernel_size + 1, w - kernel_size + 1
        lay = gemm.layout(x.shape, kernel.shape, (1, 1), (1, 1), (0, 0, 0, 0), (oh, ow))
        code = trial % 3  # linear, relu, relu6: the activation goes on after the last chunk only
        outs = []
        for tiles_at in ways:  # one call over every row and panel, each panel packed just before its tiles
            y = np.full(lay.rows * cout, np.nan, np.float32)
            run_units(x.reshape(-1), lay.run, lay.taps, lay.bases, kernel.reshape(-1), np.zeros(0, np.float32),
                      bias, code, np.float32(0.2), y, cout, cout, lay.rows, False, False, 0, tiles_at, 0,
                      x.reshape(-1), gemm.NO_PAD, 0, pack_address(), *gemm.NO_SUM, 0, -(-cout // NR))
            outs.append(y.reshape(1, oh, ow, cout))
        assert outs[0].tobytes() == outs[1].tobytes(), (trial, h, w, cin, cout, kernel_size)
        want = reference.conv2d(x, kernel, bias, activation=(None, "relu", "relu6")[code])
        assert rel(outs[1], want) <= TOL, trial


@pytest.mark.parametrize("chunk", [8, 40])
def test_chunks_over_k_give_the_whole_pass_bits(chunk, monkeypatch):
    monkeypatch.setattr(panels, "KC", chunk)
    monkeypatch.setattr(panels, "WHOLE_MAX_K", 0)
    ways = (_address("test_panel_whole", panels.panel_tiles_whole),
            _address(f"test_panel_chunked_{chunk}", panels.panel_tiles_chunked))
    _compare(ways, np.random.default_rng(chunk), 24)


def test_half_panel_tiles_give_the_whole_tiles_bits(monkeypatch):
    ways = []
    for halves in (False, True):  # 8 x 32 (16 x 16) tiles, then 6 x 16 ones on each half of a panel
        monkeypatch.setattr(panels, "HALVES", halves)
        ways.append(_address(f"test_panel_halves_{halves}", panels.panel_tiles_whole))
    _compare(ways, np.random.default_rng(6), 32)


@pytest.mark.parametrize("chunked", [False, True])
def test_every_last_row_count_gives_the_reference(chunked, monkeypatch):
    """AVX2's tiles over 1-20 rows, each count ending on its own mix of 6-, 4- and one-row tiles
    (:func:`nnlite.ops.panels.tile_rows`): every row stored, with the reference's values and the bits of
    AVX-512's 8 x 32 tiles."""
    monkeypatch.setattr(panels, "KC", 16)
    monkeypatch.setattr(panels, "WHOLE_MAX_K", 0)
    rng = np.random.default_rng(20)
    cases = []
    for rows in range(1, 21):
        x = rng.standard_normal((1, rows, 1, 40)).astype(np.float32)
        kernel = rng.standard_normal((1, 1, 40, 32)).astype(np.float32)
        cases.append((x, kernel, rng.standard_normal(32).astype(np.float32)))
    bits = {}
    run_units = gemm._units_parallel.callable()  # as in _compare
    for halves in (False, True):
        monkeypatch.setattr(panels, "HALVES", halves)
        fn = panels.panel_tiles_chunked if chunked and halves else panels.panel_tiles_whole
        at = _address(f"test_panel_rows_{halves}_{chunked}", fn)
        for x, kernel, bias in cases:
            rows = x.shape[1]
            lay = gemm.layout(x.shape, kernel.shape, (1, 1), (1, 1), (0, 0, 0, 0), (rows, 1))
            y = np.full(rows * 32, np.nan, np.float32)
            run_units(x.reshape(-1), lay.run, lay.taps, lay.bases, kernel.reshape(-1), np.zeros(0, np.float32),
                      bias, 1, np.float32(0.2), y, 32, 32, rows, False, False, 0, at, 0, x.reshape(-1), gemm.NO_PAD,
                      0, pack_address(), *gemm.NO_SUM, 0, 1)
            want = reference.conv2d(x, kernel, bias, activation="relu").reshape(-1)
            assert not np.isnan(y).any() and rel(y, want) <= TOL, (halves, rows)
            assert bits.setdefault(rows, y.tobytes()) == y.tobytes(), (halves, rows)
