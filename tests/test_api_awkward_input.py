"""The Python API on awkward input: typed errors or sensible results, never a raw NumPy error.
Also: importing every nnlite module pulls in no deep-learning framework; drawn captions scale."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import nnlite
from nnlite.errors import ImageError, ModelError, ShapeError
from nnlite.paths import data_dir
from nnlite.vision.draw import draw_faces, save_annotated
from nnlite.vision.faces import FaceMatcher, FacePipeline

CHELSEA = str(data_dir() / "samples" / "chelsea.png")
RNG = np.random.default_rng(3)
ODD_ARRAYS = {   # arrays load_image documents as accepted
    "float in [0, 1]": RNG.random((90, 120, 3)),
    "float in [0, 255]": RNG.random((90, 120, 3)) * 255,
    "grey (H, W)": (RNG.random((90, 120)) * 255).astype(np.uint8),
    "RGBA (H, W, 4)": (RNG.random((90, 120, 4)) * 255).astype(np.uint8),
    "uint16": (RNG.random((90, 120, 3)) * 65535).astype(np.uint16),
}
BAD_ARRAYS = {
    "two channels": np.zeros((10, 10, 2), np.uint8), "channels first": np.zeros((3, 64, 64), np.uint8),
    "a batch": np.zeros((2, 64, 64, 3), np.uint8), "empty": np.zeros((0, 0, 3), np.uint8),
    "NaN": np.full((8, 8, 3), np.nan), "complex": np.zeros((8, 8, 3), complex),
}


@pytest.fixture(scope="module")
def clf():
    return nnlite.load("mobilenet_v2")


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline()


def test_unknown_model_is_a_model_error_listing_the_known_ones():
    with pytest.raises(ModelError, match="unknown model 'unknown'.*mobilenet_v2"):
        nnlite.load("unknown")


@pytest.mark.parametrize("kind", ODD_ARRAYS)
def test_odd_arrays_classify_and_detect(clf, pipeline, kind):
    probabilities = clf.classify(ODD_ARRAYS[kind]).probabilities
    assert probabilities.shape == (1000,) and abs(float(probabilities.sum()) - 1) < 1e-3
    assert isinstance(pipeline.detect(ODD_ARRAYS[kind]), list)   # noise: usually [], never an error


@pytest.mark.parametrize("kind", BAD_ARRAYS)
def test_bad_arrays_are_image_errors(clf, pipeline, kind):
    with pytest.raises(ImageError, match="array"):
        clf.classify(BAD_ARRAYS[kind])
    with pytest.raises(ImageError, match="array"):
        pipeline.detect(BAD_ARRAYS[kind])


def test_classify_batch_refuses_a_single_path(clf):
    with pytest.raises(ImageError, match="classify\\(\\)"):
        clf.classify_batch(CHELSEA)   # would otherwise try to open "/", "w", "o", ...


@pytest.mark.parametrize("min_score", [0, 1, 1.5, "0.5", None])
def test_face_pipeline_min_score_is_checked_up_front(min_score):
    with pytest.raises(ModelError, match="min_score"):
        FacePipeline(min_score=min_score)


D = np.linspace(-0.2, 0.2, 128, dtype=np.float32)


@pytest.mark.parametrize("refs, match", [
    ({}, "at least one"), ([], "at least one"), ({"amy": []}, "at least one"),
    ({"amy": [D, D[:64]]}, "one length"), ({"amy": [D], "bob": [D[:64]]}, "same length"),
    ({"amy": ["abc"]}, "numbers"), ({"amy": [None]}, "descriptor"), ({"amy": [np.full(128, np.nan)]}, "NaN"),
])
def test_face_matcher_refuses_bad_references(refs, match):
    with pytest.raises(ShapeError, match=match):
        FaceMatcher(refs)


@pytest.mark.parametrize("threshold", [0, -1, "x", float("nan")])
def test_face_matcher_refuses_bad_thresholds(threshold):
    with pytest.raises(ShapeError, match="threshold"):
        FaceMatcher({"amy": [D]}, threshold=threshold)


@pytest.mark.parametrize("query, match", [
    (D[:64], "64 values"), (np.full(128, np.nan), "NaN"), (np.stack([D, D]), "one query"), ("abc", "numbers"),
])
def test_face_matcher_refuses_bad_queries(query, match):
    with pytest.raises(ShapeError, match=match):
        FaceMatcher({"amy": [D]}).match(query)


def test_face_matcher_takes_one_bare_descriptor_as_one_reference():
    far = -D
    matcher = FaceMatcher({"amy": D, "bob": [far]})   # "amy" given without the enclosing list
    assert matcher.match(D + 0.001)[0] == "amy"
    assert matcher.match(far)[0] == "bob"


def test_importing_every_module_loads_no_deep_learning_framework():
    code = (
        "import importlib, pkgutil, sys, nnlite\n"
        "for m in pkgutil.walk_packages(nnlite.__path__, 'nnlite.'):\n"
        "    if m.name != 'nnlite.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "heavy = {'tensorflow', 'keras', 'tf_keras', 'torch', 'jax', 'onnxruntime', 'tf2onnx'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _fake_face(x, y, w, h):
    points = np.stack([np.linspace(x + w * 0.2, x + w * 0.8, 68), np.linspace(y + h * 0.3, y + h * 0.8, 68)], 1)
    return SimpleNamespace(box=(x, y, w, h), score=0.9, landmarks=points, age=30.0, gender="female",
                           expression={"happy": 0.9, "neutral": 0.1})


def _caption_height(side: int) -> int:
    """Rows of the black caption band drawn above a face in the middle of a white side x side photo."""
    face = _fake_face(side * 0.4, side * 0.4, side * 0.2, side * 0.2)
    picture = np.asarray(draw_faces(np.full((side, side, 3), 255, np.uint8), [face]))
    column = picture[: int(side * 0.4), int(side * 0.4) + 1]   # just right of the box's left edge
    return int((column.max(axis=1) == 0).sum())


def test_captions_grow_with_the_photo():
    small, large = _caption_height(700), _caption_height(2800)
    assert small >= 10                       # legible on a phone-sized picture
    assert large >= 3 * small                # and still legible when the photo is four times larger


def test_caption_stays_inside_the_picture():
    face = _fake_face(180, 2, 19, 19)        # touches the top-right corner
    picture = np.asarray(draw_faces(np.full((200, 200, 3), 255, np.uint8), [face]))
    band = picture.max(axis=2) == 0           # the black caption band
    assert band[:, :180].any()               # shifted left so the whole caption fits in the picture


def test_save_annotated_into_a_missing_folder_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="cannot write annotated image"):
        save_annotated(tmp_path / "nope" / "a.png", np.zeros((20, 20, 3), np.uint8), [])
    assert not (tmp_path / "nope").exists()


def test_models_table_knows_every_present_models_parameter_count():
    from nnlite.models import registry
    for spec in registry.specs():
        if spec.weights_present():
            assert spec.params == nnlite.load(spec.name).model.params, spec.name   # `nnlite models` shows no "?"
