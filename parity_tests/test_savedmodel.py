"""Parity: Keras classifiers saved by TensorFlow as SavedModels / frozen graphs, run by nnlite.savedmodel.

tools/export_savedmodels.py exports MobileNetV2 (224x224), ResNet50, Xception and NASNetMobile (96x96 to
fit the CI budget; the architecture is what matters) in three forms -- Keras 3 ``model.export()``, a TF1
graph saved with ``SavedModelBuilder`` under tag ``myTag``, a frozen GraphDef -- and records TensorFlow's
outputs on two real photos. nnlite must match them: relative L2 <= 1e-5 and identical top-5.

ResNet50 gets 5e-5: its 53 float32 convolutions in a row with random weights amplify rounding, and
TensorFlow's own Keras 3 export and TF1 graph of the very same weights already disagree by ~3e-5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nnlite.cli import main as cli_main
from nnlite.savedmodel import load
from tools.export_savedmodels import ARCHS, FORMS, ensure_exports

PHOTOS = ("data/faceapi/test-images/angry.jpg", "data/faceapi/scenes/bbt1.jpg")
TOLERANCE = {"mobilenet_v2": 1e-5, "xception": 1e-5, "nasnet_mobile": 1e-5, "resnet50": 5e-5}


def photo_batch(shared_dir, size: int) -> np.ndarray:
    """Real photos resized to size x size, scaled to -1..1 (the Keras MobileNet/Xception/NASNet rule)."""
    images = [np.asarray(Image.open(shared_dir / p).convert("RGB").resize((size, size), Image.BILINEAR),
                         np.float32) for p in PHOTOS]
    return np.stack(images) / np.float32(127.5) - np.float32(1.0)


@pytest.fixture(scope="session")
def exports(tf, cache_dir, shared_dir):
    sizes = {size for _, size in ARCHS.values()}
    return ensure_exports(cache_dir / "savedmodel", {s: photo_batch(shared_dir, s) for s in sizes})


def _case(exports, form: str, arch: str):
    folder = exports / form / arch
    meta = json.loads((folder / "meta.json").read_text())
    x = np.load(exports / "inputs.npz")[str(ARCHS[arch][1])]
    return folder, meta, x, np.load(folder / "reference.npz")["y"]


def _compare(y: np.ndarray, ref: np.ndarray, tol: float) -> None:
    assert y.shape == ref.shape
    rel = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    assert rel <= tol, f"relative L2 {rel:.2e} > {tol:.0e}"
    np.testing.assert_array_equal(np.argsort(-y, axis=1)[:, :5], np.argsort(-ref, axis=1)[:, :5])


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("form", FORMS)
def test_savedmodel_matches_tensorflow(exports, form, arch):
    folder, meta, x, ref = _case(exports, form, arch)
    if form == "frozen":
        m = load(folder / "model.pb")
    else:
        m = load(folder / "model", tags=meta["tags"])
        assert m.tags == meta["tags"]
    if form == "keras3":  # by signature, and by the graph's own tensor names
        (y,) = m.run({meta["input"]: x}, [meta["output"]], signature=meta["signature"])
        sig = m.signatures[meta["signature"]]
        (by_name,) = m.run({sig.inputs[meta["input"]].name: x}, [sig.outputs[meta["output"]].name])
        np.testing.assert_array_equal(by_name, y)
    else:
        (y,) = m.run({meta["input"]: x}, [meta["output"]])
    _compare(y, ref, TOLERANCE[arch])


@pytest.mark.slow
def test_tf1_graph_prunes_its_learning_phase_branches(exports):
    folder, meta, x, ref = _case(exports, "tf1", "mobilenet_v2")
    m = load(folder / "model", tags=["myTag"])
    types = {op.type for op in m.operations()}
    assert {"Switch", "Merge", "FusedBatchNormV3", "PlaceholderWithDefault"} <= types
    assert meta["output"] == "predictions/Softmax" and m.inputs == ["input_1"]
    (y,) = m.run({"input_1": x, "keras_learning_phase": np.bool_(False)}, ["predictions/Softmax"])
    _compare(y, ref, TOLERANCE["mobilenet_v2"])


@pytest.mark.slow
def test_cli_runs_keras3_export_on_an_image(exports, shared_dir, capsys):
    folder, meta, _, _ = _case(exports, "keras3", "mobilenet_v2")
    photo = shared_dir / PHOTOS[0]
    assert cli_main(["savedmodel", str(folder / "model"), "--run", "--feed", f"{meta['input']}={photo}",
                     "--image-scale", "symmetric", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    probs = np.array(out["outputs"]["output_0"], np.float32)
    (ref,) = load(folder / "model").run({meta["input"]: photo_batch(shared_dir, 224)[:1]}, None,
                                        signature="serving_default")
    np.testing.assert_allclose(probs, ref, rtol=1e-4, atol=1e-7)
