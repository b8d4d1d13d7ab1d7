"""Feature-map grids and atomic writes."""

import numpy as np
import pytest

from nnlite.errors import ShapeError
from nnlite.fsutil import atomic_path, atomic_write_bytes
from nnlite.viz import feature_map_grid


def test_grid_tiles_every_channel_scaled_on_its_own():
    act = np.zeros((1, 4, 4, 5), np.float32)
    act[0, :, :, 0] = 3.0                                 # constant, not zero: mid-grey
    act[0, :, :, 1] = np.arange(16).reshape(4, 4)      # a ramp: spans 0..255 after scaling
    act[0, :, :, 2] = 1e-3 * np.arange(16).reshape(4, 4)  # tiny values: scaled up just the same
    grid = feature_map_grid(act, gap=1)
    assert grid.dtype == np.uint8
    # 5 maps -> 3 columns x 2 rows of 48x48 cells (4 px maps enlarged 12x) plus 1 px gaps
    assert grid.shape == (2 * 49 + 1, 3 * 49 + 1)
    first = grid[1:49, 1:49]
    assert (first == 128).all()                           # flat channel drawn mid-grey
    dead = grid[50:98, 1:49]                              # channel 3 is all zero: hatched, not grey
    assert set(np.unique(dead)) == {40, 200}
    ramp, tiny = grid[1:49, 50:98], grid[1:49, 99:147]
    assert ramp.min() == 0 and ramp.max() == 255
    assert np.abs(ramp.astype(int) - tiny).max() <= 1


def test_grid_limits_channel_count_and_rejects_bad_shapes():
    grid = feature_map_grid(np.random.default_rng(0).random((8, 8, 100)), max_maps=4, gap=0)
    assert grid.shape == (2 * 48, 2 * 48)
    with pytest.raises(ShapeError, match="activation"):
        feature_map_grid(np.zeros((2, 2, 2, 2, 2)))


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1


def test_atomic_output_gets_normal_permissions(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "out.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644
