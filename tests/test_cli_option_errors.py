"""Option errors are one ``nnlite CMD: error: ...`` line (exit 2, no usage block); ``savedmodel --json`` always
prints one JSON value; files that are not what a command wants are named for what they are not; ``inspect``
says what its picture shows, draws dead channels hatched and vectors as bar plots."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nnlite.cli import main
from nnlite.paths import data_dir
from nnlite.viz import render_activation, vector_plot

SAMPLES = data_dir() / "samples"


def _run(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, out, err, command, *needles):
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith(f"nnlite {command}: error: ") and "usage:" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("argv, needles", [
    (["classify", "x.png", "--top", "0"], ["--top", "at least 1"]),
    (["faces", "x.jpg", "--min-score", "1.5"], ["--min-score", "1.5"]),
    (["faces", "x.jpg", "--min-score", "nan"], ["--min-score", "finite"]),
    (["faces", "x.jpg", "--detector", "yolo"], ["--detector", "yolo"]),
    (["serve", "--port", "99999"], ["--port", "99999"]),
    (["faces", "x.jpg", "--out", "/proc/nnlite-test/x.png"], ["--out", "does not exist"]),
    (["faces", "x.jpg", "--out", "/proc/x.png"], ["--out", "not writable"]),
    (["fetch", "mobilenet_v2"], ["bundled", "nothing to fetch", "nasnet_mobile"]),
    (["fetch", "alexnet"], ["unknown model", "xception"]),
    (["classify"], ["required", "IMAGE"]),
    (["classify", "x.png", "--bogus"], ["unrecognized", "--bogus"]),
])
def test_option_errors_are_one_line_without_usage(capsys, argv, needles):
    code, out, err = _run(capsys, argv)
    _one_line_error(code, out, err, argv[0], *needles)


def test_unknown_command_is_one_line(capsys):
    code, out, err = _run(capsys, ["clasify"])
    assert code == 2 and err.startswith("nnlite: error: ") and len(err.strip().splitlines()) == 1


def test_help_still_shows_usage(capsys):
    code, out, _ = _run(capsys, ["classify", "--help"])
    assert code == 0 and out.startswith("usage: nnlite classify")


def test_option_error_from_the_installed_script_shape():
    done = subprocess.run([sys.executable, "-m", "nnlite", "classify", "x.png", "--top", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "nnlite classify: error: argument --top: must be at least 1, found 0 " \
                          "(see `nnlite classify --help`)\n"


# -- savedmodel: --json without --run, feeds and models that are not what they claim -----------------------

@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory):
    from tests.test_savedmodel import conv_graph
    path = tmp_path_factory.mktemp("sm") / "conv.pb"
    path.write_bytes(conv_graph())
    return path


def test_savedmodel_json_without_run_is_one_json_object(capsys, tiny_pb):
    code, out, err = _run(capsys, ["savedmodel", str(tiny_pb), "--json"])
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["path"] == str(tiny_pb) and doc["tags"] == [] and doc["signatures"] == {}
    assert doc["inputs"] == ["x"] and "operations" not in doc
    code, out, _ = _run(capsys, ["savedmodel", str(tiny_pb), "--json", "--ops"])
    ops = {op["name"]: op for op in json.loads(out)["operations"]}
    assert ops["conv"]["type"] == "Conv2D" and ops["conv"]["inputs"] == ["x", "k"]


@pytest.mark.parametrize("content, needles", [
    (b"hello, this is not an array\n", ["not a NumPy .npy array file"]),
    (b"", ["not a NumPy .npy array file"]),
    ("pickled", ["pickled Python objects, not a numeric array"]),
])
def test_junk_npy_feed_says_what_it_is_not(capsys, tiny_pb, tmp_path, content, needles):
    feed = tmp_path / "x.npy"
    if content == "pickled":
        np.save(feed, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        feed.write_bytes(content)
    code, out, err = _run(capsys, ["savedmodel", str(tiny_pb), "--run", "--feed", f"x={feed}", "--fetch", "conv"])
    _one_line_error(code, out, err, "savedmodel", str(feed), *needles)
    assert "pickled data" not in err    # NumPy's own advice (allow_pickle=True) is not for nnlite users


@pytest.mark.parametrize("as_dir", [False, True])
def test_text_file_as_savedmodel_says_it_is_text(capsys, tmp_path, as_dir):
    path = tmp_path / ("saved_model.pb" if as_dir else "model.pb")
    path.write_text("node {\n  name: \"x\"\n  op: \"Placeholder\"\n}\n")
    code, out, err = _run(capsys, ["savedmodel", str(tmp_path if as_dir else path)])
    _one_line_error(code, out, err, "savedmodel", str(path), "a text file, not a",
                    "SavedModel" if as_dir else "GraphDef")


def test_random_bytes_as_graph_say_not_a_graphdef(capsys, tmp_path):
    path = tmp_path / "model.pb"
    path.write_bytes(np.random.default_rng(3).bytes(3000))
    code, out, err = _run(capsys, ["savedmodel", str(path)])
    _one_line_error(code, out, err, "savedmodel", "not a frozen GraphDef", "damaged protobuf")


# -- inspect: what the picture shows ------------------------------------------------------------------

def test_inspect_prints_shape_and_what_the_grid_shows(capsys, tmp_path):
    out_png = tmp_path / "maps.png"
    code, out, err = _run(capsys, ["inspect", "mobilenet_v2", "--image", str(SAMPLES / "chelsea.png"),
                                   "--layer", "features.0.0", "--out", str(out_png), "--max-maps", "16"])
    assert code == 0, err
    assert out.startswith(f"wrote {out_png}: layer features.0.0, output (1, 112, 112, 32): grid of channels "
                          "0-15 of 32")
    assert "black = min, white = max" in out and "dead (all zero, hatched)" in out
    assert Image.open(out_png).size == (4 * 114 + 2, 4 * 114 + 2)   # 4x4 cells of 112 px, 2 px gaps


def test_inspect_vector_layer_gives_a_bar_plot(capsys, tmp_path):
    out_png = tmp_path / "logits.png"
    code, out, err = _run(capsys, ["inspect", "mobilenet_v2", "--image", str(SAMPLES / "chelsea.png"),
                                   "--layer", "classifier.1", "--out", str(out_png)])
    assert code == 0, err
    assert "output (1, 1000): a vector of 1000 values, drawn as one bar each" in out
    img = np.asarray(Image.open(out_png))
    assert img.shape == (240, 1000)
    column = img[:, 285]                      # Egyptian_cat, the top logit: the tallest bar, upwards
    assert column[0] == 0 and (img[:, :][0] == 0).sum() == 1


def test_dead_channels_differ_from_constant_ones():
    act = np.zeros((1, 6, 6, 3), np.float32)
    act[..., 1] = 0.5                         # constant but alive
    act[..., 2] = np.arange(36).reshape(6, 6)
    grid, text = render_activation(act)
    cells = [grid[2:50, 2 + i * 50:50 + i * 50] for i in range(3)]
    assert (cells[1] == 128).all()
    assert not (cells[0] == 128).any() and len(np.unique(cells[0])) == 2
    assert "1 dead" in text and "1 constant" in text


def test_vector_plot_bars_go_up_and_down_from_zero():
    img = vector_plot(np.array([2.0, -1.0, 0.0, 1.0]), height=31, min_width=4)
    zero = 20                                 # top 2, bottom -1: zero two thirds of the way down
    assert (img[zero] != 255).all()
    assert (img[0:zero, 0] == 0).all() and (img[zero + 1:, 1] == 0).all()
    assert (img[:zero, 2] == 255).all() and (img[zero + 1:, 2] == 255).all()
    assert img[10, 3] == 0 and img[9, 3] == 255


def test_the_help_lists_every_command_without_loading_numba():
    """``nnlite --help`` builds every command's parser; none may bring in Numba (it took a second)."""
    probe = "import sys; from nnlite.cli import build_parser; build_parser(); print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"
