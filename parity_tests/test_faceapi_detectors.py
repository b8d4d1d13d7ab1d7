"""Parity: SsdMobilenetv1 and TinyFaceDetector in nnlite vs the same nets in tf.nn ops (tools/faceapi_tf/).

Both sides take the same real photo as raw RGB and do the whole face-api.js input rule themselves (pad
bottom/right to square, legacy bilinear resize, scaling), so the input rule is checked too; the TF side
decodes and runs ``tf.image.non_max_suppression`` itself, so the post-processing is checked as well.
Criteria: raw outputs relative L2 error <= 1e-4; final detections: same count, every box
coordinate within 0.5 px.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nnlite.graph import relative_error
from nnlite.models.faceapi import ssd_mobilenetv1, tiny_face_detector
from nnlite.models.faceapi.ssd_mobilenetv1 import SsdMobilenetv1
from nnlite.models.faceapi.tiny_face_detector import TinyFaceDetector
from tools.faceapi_tf import ssd_mobilenetv1 as ssd_tf
from tools.faceapi_tf import tiny_face_detector as tiny_tf

RAW_TOLERANCE = 1e-4
BOX_TOLERANCE_PX = 0.5
# landscape group photos of several sizes (scenes/bbt4.jpg is faces.jpg again), a portrait photo (pads on
# the right) and a small portrait crop
IMAGES = ["test-images/faces.jpg", "scenes/bbt1.jpg", "scenes/bbt2.jpg", "scenes/bbt3.jpg", "scenes/bbt5.jpg",
          "portrait:scenes/bbt1.jpg", "test-images/face_rectangular.png"]


def _load(shared_dir, name: str) -> np.ndarray:
    portrait = name.startswith("portrait:")
    with Image.open(shared_dir / "data" / "faceapi" / name.removeprefix("portrait:")) as im:
        img = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(img[:, 380:880]) if portrait else img    # bbt1 768 x 1366 -> 768 x 500


@pytest.fixture(scope="module")
def photos(shared_dir):
    return {name: _load(shared_dir, name) for name in IMAGES}


@pytest.fixture(scope="module")
def ssd_pair(tf, cache_dir):
    ref = tf.saved_model.load(str(ssd_tf.export_savedmodel(cache_dir)))
    return SsdMobilenetv1(), ref.signatures


@pytest.fixture(scope="module")
def tiny_pair(tf, cache_dir):
    ref = tf.saved_model.load(str(tiny_tf.export_savedmodel(cache_dir)))
    return TinyFaceDetector(), ref.signatures


def _assert_same_detections(ours, boxes, scores, what: str):
    assert len(ours) == len(scores), f"{what}: nnlite found {len(ours)} faces, TensorFlow {len(scores)}"
    assert len(ours) > 0 or "face_rectangular" in what, f"{what}: no faces - the photo should have some"
    for i, (det, ref_box, ref_score) in enumerate(zip(ours, boxes, scores)):
        diff = np.abs(np.asarray(det.box) - ref_box).max()
        assert diff <= BOX_TOLERANCE_PX, f"{what} face {i}: box {det.box} vs TF {ref_box} ({diff:.3g} px)"
        assert abs(det.score - ref_score) <= 1e-4, f"{what} face {i}: score {det.score} vs TF {ref_score}"


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGES)
def test_ssd_mobilenetv1_matches_tensorflow(name, tf, photos, ssd_pair):
    net, ref = ssd_pair
    img = photos[name]
    image = tf.constant(img[None].astype(np.float32))
    raw = ref["raw"](image=image)
    boxes, scores = net.forward(img)
    assert boxes.shape == (5118, 4) and scores.shape == (5118,)
    assert relative_error(boxes, raw["boxes"].numpy()) <= RAW_TOLERANCE
    assert relative_error(scores, raw["scores"].numpy()) <= RAW_TOLERANCE

    # the public detect() at the default threshold; the post-processing alone (same code) at a low one
    height, width = img.shape[:2]
    for min_score in (0.5, 0.05):   # 0.05: many overlapping weak boxes for NMS
        det = ref["detect"](image=image, min_score=tf.constant(min_score))
        ours = net.detect(img) if min_score == 0.5 else ssd_mobilenetv1.postprocess(
            boxes, scores, width, height, min_score=min_score, max_results=100, iou_threshold=0.5)
        _assert_same_detections(ours, det["boxes"].numpy(), det["scores"].numpy(),
                                f"{name} (min_score {min_score})")


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGES)
def test_tiny_face_detector_matches_tensorflow(name, tf, photos, tiny_pair):
    net, ref = tiny_pair
    img = photos[name]
    image = tf.constant(img[None].astype(np.float32))
    for size in (416, 320) if name != "scenes/bbt1.jpg" else (416, 320, 608):
        raw = ref["raw"](image=image, input_size=tf.constant(size))["output"].numpy()
        out = net.forward(img, input_size=size)
        assert out.shape == (size // 32, size // 32, 25)
        assert relative_error(out, raw) <= RAW_TOLERANCE

        det = ref["detect"](image=image, input_size=tf.constant(size), min_score=tf.constant(0.5))
        height, width = img.shape[:2]
        ours = net.detect(img) if size == 416 else tiny_face_detector.postprocess(
            out, width, height, size, min_score=0.5, iou_threshold=0.4)
        _assert_same_detections(ours, det["boxes"].numpy(), det["scores"].numpy(), f"{name} (input size {size})")
