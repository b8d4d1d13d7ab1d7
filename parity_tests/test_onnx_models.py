"""Parity: whole ONNX models run by nnlite.onnx against onnxruntime (the reference) on the same file.

* IResNet-50 (opset 17) and IResNet-100 (opset 11, weights in external data), the ArcFace backbones,
  built by tools/onnx_iresnet.py from seeded weights (checked once against PyTorch's own export of the
  same weights, see tools/iresnet_torch.py): 512-d embeddings, relative L2 <= 1e-5.
* MobileNetV2 as tf2onnx converts the Keras application (opset 11, NHWC input): probabilities within
  1e-5 and identical top-5 on two real photos; SqueezeNet 1.1 with its bundled ImageNet weights the
  same way (opset 13). ``long``: the other bundled models (real weights) and the Keras ResNet50,
  Xception and NASNetMobile (seeded weights) through tf2onnx.
* two tiny CNNs written by PyTorch's exporters (TorchScript at opset 11, torch.export at opset 18),
  committed in tests/data/onnx/ (tools/onnx_torch_fixtures.py), so CI runs real torch.onnx files;
* MobileNetV2 (opsets 11 and 17) and EfficientNet-Lite0 (opset 17, TF 'same' padding as Pad nodes fed by
  shape arithmetic) exported by torch.onnx with nnlite's bundled ImageNet weights:
  ``long`` (it needs files made in the PyTorch environment, which CI does not have), with the Keras
  conversion above as its short twin in the default run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nnlite.onnx

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("data/faceapi/test-images/angry.jpg", "data/faceapi/scenes/bbt1.jpg")


@pytest.fixture(scope="session")
def ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover
        pytest.fail(f"onnxruntime is required for the ONNX parity tests: {exc}")
    return onnxruntime


def reference(ort, path: Path, feeds: dict, optimized: bool = True) -> list[np.ndarray]:
    """onnxruntime's outputs; ``optimized=False`` runs the file's operations as written (no fusions:
    on NASNet, onnxruntime's optimized run already differs from its own unoptimized one by ~1e-5)."""
    opts = ort.SessionOptions()
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def rel(a, b) -> float:
    return float(np.linalg.norm(np.float64(a) - b) / np.linalg.norm(np.float64(b)))


def photos(shared_dir, size: int, nchw: bool) -> np.ndarray:
    images = [np.asarray(Image.open(shared_dir / p).convert("RGB").resize((size, size), Image.BILINEAR),
                         np.float32) for p in PHOTOS]
    x = np.stack(images) / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x


@pytest.mark.slow
@pytest.mark.parametrize("depth,opset,external", [(50, 17, False), (100, 11, True)])
def test_iresnet_matches_onnxruntime(ort, tmp_path, shared_dir, depth, opset, external):
    from tools.onnx_iresnet import write
    path = write(depth, tmp_path / f"iresnet{depth}.onnx", opset, external)
    assert (tmp_path / f"iresnet{depth}.onnx.data").exists() == external
    x = photos(shared_dir, 112, nchw=True)
    x = np.concatenate([x, x[:, :, :, ::-1]])  # batch 4: two faces and their mirror images
    (want,) = reference(ort, path, {"input": x})
    m = nnlite.onnx.load(path)
    assert m.opset == opset and [i.name for i in m.inputs] == ["input"]
    (got,) = m.run({"input": x})
    assert got.shape == (4, 512)
    assert rel(got, want) <= 1e-5, f"relative L2 {rel(got, want):.2e}"


def _top5(y):
    return np.argsort(-y, axis=1)[:, :5]


@pytest.mark.slow
def test_keras_mobilenet_v2_via_tf2onnx_matches_onnxruntime(ort, tf, cache_dir, shared_dir):
    path = cache_dir / "onnx" / "mobilenet_v2_keras_opset11.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "tools.onnx_exports", "keras", "--arch", "mobilenet_v2",
                        "--opset", "11", "--out", str(path)], check=True, cwd=REPO,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), stdout=subprocess.DEVNULL)
    x = photos(shared_dir, 224, nchw=False)
    (want,) = reference(ort, path, {"input": x})
    m = nnlite.onnx.load(path)
    assert m.opset == 11
    (got,) = m.run({"input": x})
    assert want.std() > 1e-3, "the reference is degenerate (uniform probabilities)"
    assert rel(got, want) <= 1e-5, f"relative L2 {rel(got, want):.2e}"
    np.testing.assert_array_equal(_top5(got), _top5(want))
    transposes = [layer for layer in m.model.layers if layer.op == "transpose"]
    assert not transposes, f"an NHWC file should need no layout change, found {[t.name for t in transposes]}"


@pytest.mark.parametrize("name", ["tiny_torchscript_opset11", "tiny_dynamo_opset18"])
def test_committed_torch_exports_match_onnxruntime(ort, name):
    path = REPO / "tests" / "data" / "onnx" / f"{name}.onnx"
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    (want,) = reference(ort, path, {"input": x})
    m = nnlite.onnx.load(path)
    (got,) = m.run({"input": x})
    assert want.std() > 1e-3
    assert rel(got, want) <= 1e-5, f"relative L2 {rel(got, want):.2e}"
    np.testing.assert_array_equal(_top5(got), _top5(want))
    assert not {layer.op for layer in m.model.layers} & {"Pad", "BatchNormalization", "Shape", "Gather"}


def _converted(cache_dir, source: str, arch: str, opset: int) -> Path:
    path = cache_dir / "onnx" / f"{arch}_{source}_opset{opset}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "tools.onnx_exports", source, "--arch", arch, "--opset", str(opset),
                        "--out", str(path)], check=True, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                       stdout=subprocess.DEVNULL)
    return path


KERAS_CASES = [pytest.param("bundled", "squeezenet1_1", 227, marks=pytest.mark.slow),
               pytest.param("bundled", "efficientnet_lite0", 224, marks=pytest.mark.long),
               pytest.param("bundled", "mobilenet_v2", 224, marks=pytest.mark.long),
               pytest.param("keras", "resnet50", 96, marks=pytest.mark.long),
               pytest.param("keras", "xception", 96, marks=pytest.mark.long),
               pytest.param("keras", "nasnet_mobile", 96, marks=pytest.mark.long)]


@pytest.mark.parametrize("source,arch,size", KERAS_CASES)
def test_tf2onnx_imagenet_models_match_onnxruntime(ort, tf, cache_dir, shared_dir, source, arch, size):
    """bundled: the real ImageNet weights (squeezenet1_1's short twin in the default run);
    keras: seeded weights, the Keras applications nnlite loads from .h5 files."""
    path = _converted(cache_dir, source, arch, 13)
    x = photos(shared_dir, size, nchw=False) * np.float32(127.5) + np.float32(127.5)  # 0..255
    if source == "keras":
        x = x / np.float32(127.5) - np.float32(1.0)
    (want,) = reference(ort, path, {"input": x}, optimized=False)
    (got,) = nnlite.onnx.load(path).run({"input": x})
    # ResNet50: 53 float32 convolutions in a row with random weights amplify rounding (TensorFlow's own
    # two exports of those weights differ by ~3e-5, see test_savedmodel.py); everything else 1e-5
    tol = 5e-5 if arch == "resnet50" else 1e-5
    assert rel(got, want) <= tol, f"relative L2 {rel(got, want):.2e}"
    np.testing.assert_array_equal(_top5(got.reshape(len(x), -1)), _top5(want.reshape(len(x), -1)))


TORCH_EXPORTS = Path(os.environ.get("NNLITE_ONNX_TORCH_EXPORTS", REPO / ".cache" / "onnx-torch"))


@pytest.mark.long
@pytest.mark.parametrize("arch,opset", [("mobilenet_v2", 11), ("mobilenet_v2", 17), ("efficientnet_lite0", 17)])
def test_torch_exports_with_bundled_weights_match_onnxruntime(ort, shared_dir, arch, opset):
    path = TORCH_EXPORTS / f"{arch}_torch_opset{opset}.onnx"
    if not path.exists():
        pytest.fail(f"{path} is missing: make it with the PyTorch environment, "
                    f"python -m tools.onnx_exports torch --arch {arch} --opset {opset} --out {path}")
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    x = ((photos(shared_dir, 224, nchw=True) + 1) / 2 - mean) / std
    (want,) = reference(ort, path, {"input": x})
    (got,) = nnlite.onnx.load(path).run({"input": x})
    assert rel(got, want) <= 1e-5, f"relative L2 {rel(got, want):.2e}"
    np.testing.assert_array_equal(_top5(got), _top5(want))


@pytest.mark.slow
def test_cli_feeds_an_image_to_an_nhwc_file(ort, tf, cache_dir, shared_dir, capsys):
    import json

    from nnlite.cli import main as cli_main
    path = cache_dir / "onnx" / "mobilenet_v2_keras_opset11.onnx"
    if not path.exists():
        test_keras_mobilenet_v2_via_tf2onnx_matches_onnxruntime(ort, tf, cache_dir, shared_dir)
    photo = shared_dir / PHOTOS[0]
    assert cli_main(["onnx", str(path), "--run", "--feed", f"input={photo}", "--image-scale", "symmetric",
                     "--json"]) == 0
    (got,) = json.loads(capsys.readouterr().out)["outputs"].values()
    (want,) = reference(ort, path, {"input": photos(shared_dir, 224, nchw=False)[:1]})
    assert rel(np.array(got, np.float32), want) <= 1e-5
