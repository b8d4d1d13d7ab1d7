"""`nnlite inspect`: the layer table and feature-map PNGs of a real bundled model."""

import numpy as np
from PIL import Image

from nnlite.cli import main
from nnlite.paths import data_dir

CAT = str(data_dir() / "samples" / "chelsea.png")


def test_inspect_prints_summary_with_totals(capsys):
    assert main(["inspect", "squeezenet1_1"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 1,235,496" in out       # SqueezeNet 1.1's published parameter count
    assert "conv1" in out and "Output shape" in out


def test_inspect_renders_feature_maps(tmp_path):
    out = tmp_path / "maps.png"
    assert main(["inspect", "squeezenet1_1", "--image", CAT, "--layer", "conv1", "--out", str(out),
                 "--max-maps", "16"]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.ndim == 2 and grid.dtype == np.uint8
    assert grid.std() > 10                            # real activations, not a blank picture


def test_inspect_unknown_layer_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "maps.png"
    assert main(["inspect", "squeezenet1_1", "--image", CAT, "--layer", "fire2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no layer 'fire2'" in err and "fire2/" in err  # suggests the real names
    assert not out.exists()


def test_inspect_unknown_model(capsys):
    assert main(["inspect", "no_such_net"]) == 2
    assert "unknown model" in capsys.readouterr().err
