"""The ArcFace path end to end with a seeded IResNet-50 (tools/onnx_iresnet.py; real InsightFace weights
are not available here): FacePipeline(recognizer="arcface") must give, for each detected face, exactly
what onnxruntime gives on the crop that InsightFace's recipe (scikit-image similarity transform onto
the five-point template, bilinear warp, (x - 127.5) / 127.5) makes from the same landmarks, L2-normalised.
The CLI carries the recogniser name and refuses to compare descriptors of different recognisers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.transform import SimilarityTransform, warp

from nnlite.cli import main as cli_main
from nnlite.image import load_image
from nnlite.vision.faces import FacePipeline

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]])


@pytest.fixture(scope="module")
def iresnet50(tmp_path_factory):
    from tools.onnx_iresnet import write
    return write(50, tmp_path_factory.mktemp("arcface") / "iresnet50.onnx", 17)


def insightface_embedding(ort_session, img, lm68):
    lm = np.asarray(lm68, np.float64)
    five = np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])
    tform = SimilarityTransform.from_estimate(five, TEMPLATE)
    crop = warp(img.astype(np.float64), tform.inverse, output_shape=(112, 112), order=1, mode="constant",
                cval=0.0, preserve_range=True).astype(np.float32)
    x = ((crop - 127.5) / 127.5).transpose(2, 0, 1)[None]
    (y,) = ort_session.run(None, {"input": np.ascontiguousarray(x, np.float32)})
    return y[0] / np.linalg.norm(y[0])


@pytest.mark.slow
def test_arcface_pipeline_matches_insightface_recipe_on_onnxruntime(iresnet50, shared_dir):
    import onnxruntime
    sess = onnxruntime.InferenceSession(str(iresnet50), providers=["CPUExecutionProvider"])
    photo = shared_dir / "data/faceapi/scenes/bbt1.jpg"
    faces = FacePipeline(recognizer="arcface", arcface_model=iresnet50, attributes=False).detect(photo)
    assert len(faces) >= 3
    img = load_image(photo)
    for f in faces:
        assert f.recognizer == "arcface" and f.descriptor.shape == (512,)
        assert np.linalg.norm(f.descriptor) == pytest.approx(1.0, abs=1e-5)
        want = insightface_embedding(sess, img, f.landmarks)
        # border pixels of the warp may round differently from scikit-image's: a small tolerance
        assert float(np.dot(f.descriptor, want)) > 0.9999


@pytest.mark.slow
def test_cli_faces_and_compare_with_arcface(iresnet50, shared_dir, capsys):
    photo = str(shared_dir / "data/faceapi/test-images/angry.jpg")
    assert cli_main(["faces", photo, "--recognizer", "arcface", "--arcface-model", str(iresnet50), "--json"]) == 0
    face = json.loads(capsys.readouterr().out)["faces"][0]
    assert face["recognizer"] == "arcface" and len(face["descriptor"]) == 512
    assert cli_main(["compare", photo, photo, "--recognizer", "arcface", "--arcface-model", str(iresnet50),
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recognizer"] == "arcface" and out["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert out["same_person"] is True and out["threshold"] == 0.35
    assert cli_main(["faces", photo, "--recognizer", "arcface"]) == 2
    assert "--arcface-model" in capsys.readouterr().err


@pytest.mark.slow
def test_library_indexes_and_searches_with_arcface(iresnet50, shared_dir, tmp_path, capsys):
    """`index --recognizer arcface` stores 512-d ArcFace descriptors; `search --face` with the same recogniser
    finds the query photo's own face at cosine distance ~0; a face-api.js query is refused (no such faces)."""
    import shutil
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("angry.jpg", "surprised.jpg"):
        shutil.copy(shared_dir / "data/faceapi/test-images" / name, photos / name)
    db = str(tmp_path / "lib.db")
    arcface = ["--recognizer", "arcface", "--arcface-model", str(iresnet50)]
    assert cli_main(["index", str(photos), "--db", db, "--quiet", *arcface]) == 0
    capsys.readouterr()
    query = str(photos / "angry.jpg")
    assert cli_main(["search", "--face", query, "--db", db, "--json", "--all", *arcface]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["recognizer"] == "arcface"
    assert out["threshold"] == pytest.approx(1 - 0.35)
    best = out["results"][0]
    assert best["path"].endswith("angry.jpg") and best["distance"] == pytest.approx(0.0, abs=1e-4)
    assert cli_main(["search", "--face", query, "--db", db]) == 2   # a 128-d face-api.js query: refused
    assert "faceapi" in capsys.readouterr().err
