"""An imported ONNX model is an ordinary nnlite graph: summary, trace, first_divergence against
onnxruntime's intermediate tensors, `nnlite inspect FILE.onnx` and `nnlite onnx` (describe, --ops, --run
with .npy and image feeds, --json, errors)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
from onnx import helper
from PIL import Image

import nnlite.onnx
from nnlite.cli import main as cli_main
from tests.test_onnx_errors import small_model


def _with_intermediates(path, names, out):
    m = onnx.load(path)
    for n in names:
        m.graph.output.append(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    onnx.save_model(m, out)
    return out


def test_summary_and_first_divergence(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(small_model(), path)
    m = nnlite.onnx.load(path)
    table = m.model.summary()
    assert "conv2d" in table and "max_pool2d" in table and "Total params: 432" in table
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    names = ["c", "r", "p", "f"]
    ref_path = _with_intermediates(path, names, tmp_path / "all.onnx")
    outs = onnxruntime.InferenceSession(str(ref_path), providers=["CPUExecutionProvider"]).run(names, {"x": x})
    reference = dict(zip(names, outs))
    assert m.first_divergence(reference, {"x": x}, tolerance=1e-5) is None
    np.testing.assert_allclose(m.run({"x": x}, ["p"])[0], reference["p"], rtol=1e-5, atol=1e-6)
    reference["p"] = reference["p"] + 1.0
    div = m.first_divergence(reference, {"x": x}, tolerance=1e-5)
    assert div is not None and div.layer == "p"


def test_inspect_and_onnx_cli(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save_model(small_model(), path)
    assert cli_main(["inspect", str(path)]) == 0
    assert "conv2d" in capsys.readouterr().out
    assert cli_main(["onnx", str(path), "--ops"]) == 0
    out = capsys.readouterr().out
    assert "opset: 13" in out and "input  x: float32 (?, 3, 8, 8)" in out and "conv  Conv  x, w, b -> c" in out
    x = np.random.default_rng(4).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli_main(["onnx", str(path), "--run", "--feed", f"x={tmp_path / 'x.npy'}", "--json"]) == 0
    got = np.array(json.loads(capsys.readouterr().out)["outputs"]["y"], np.float32)
    np.testing.assert_allclose(got, nnlite.onnx.load(path).run({"x": x})[0], rtol=1e-6)
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "img.png")
    assert cli_main(["onnx", str(path), "--run", "--feed", f"x={tmp_path / 'img.png'}", "--image-scale", "unit",
                     "--fetch", "r"]) == 0
    assert "r: shape (1, 4, 4, 4) float32" in capsys.readouterr().out
    assert cli_main(["onnx", str(path), "--run", "--feed", f"nope={tmp_path / 'x.npy'}"]) == 2
    assert "no input named 'nope'" in capsys.readouterr().err
    assert cli_main(["onnx", str(tmp_path / "x.npy")]) == 2
    assert "not an ONNX model" in capsys.readouterr().err


def test_prelu_kernel_matches_its_reference():
    from nnlite.onnx.arrays import prelu
    from nnlite.onnx.prelu import prelu_channels
    rng = np.random.default_rng(8)
    for shape in [(1, 5, 7, 3), (2, 56, 56, 64), (3, 17)]:
        x = rng.standard_normal(shape).astype(np.float32)
        slope = rng.uniform(-0.5, 0.5, shape[-1]).astype(np.float32)
        np.testing.assert_array_equal(prelu_channels(x, slope=slope), prelu(x, slope))
