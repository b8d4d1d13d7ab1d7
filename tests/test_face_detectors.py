"""Face detectors on the bundled face-api.js weights: the peer suite's S1, S2, T1, T2, bad input, helpers.

The expected boxes and scores are face-api.js's own test expectations on faces.jpg (PEER_SUITE.md, section 2),
compared as face-api.js does: both lists sorted by the distance of the box's top-left corner from the origin,
paired by position; |score delta| < 0.05; the corner distance and the (width, height) distance each within
maxBoxDelta. Those numbers came from face-api.js on tfjs-node, so they check the whole detector end to end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import nnlite
from nnlite.boxes import Detection
from nnlite.errors import ImageError, NnliteError, WeightsMissingError
from nnlite.models.faceapi.detector_input import detector_input, js_round, square_to_image_scale
from nnlite.models.faceapi.ssd_mobilenetv1 import SsdMobilenetv1, decode_boxes
from nnlite.models.faceapi.tiny_face_detector import ANCHORS, TinyFaceDetector, decode
from nnlite.models.faceapi.weights import NETS, load_net_weights

# PEER_SUITE.md section 2, sorted: (x, y, w, h) and scores
SSD_BOXES = [(84, 14, 79, 132), (234, 36, 84, 119), (48, 253, 104, 129), (260, 227, 76, 117),
             (466, 165, 88, 130), (577, 65, 84, 105)]
SSD_SCORES = [0.54, 0.81, 0.97, 0.88, 0.84, 0.61]
TINY_BOXES = [(54, 33, 134, 114), (214, 53, 124, 119), (29, 264, 139, 137), (224, 240, 147, 128),
              (430, 183, 162, 143), (547, 81, 136, 114)]
TINY_SCORES_416 = [0.70, 0.82, 0.93, 0.86, 0.79, 0.84]
TINY_SCORES_320 = [0.77, 0.75, 0.88, 0.77, 0.83, 0.85]
MAX_SCORE_DELTA = 0.05


@pytest.fixture(scope="module")
def faceapi_dir(shared_dir):
    return shared_dir / "data" / "faceapi"


@pytest.fixture(scope="module")
def faces(faceapi_dir):
    with Image.open(faceapi_dir / "test-images" / "faces.jpg") as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def ssd():
    return SsdMobilenetv1()


@pytest.fixture(scope="module")
def tiny():
    return TinyFaceDetector()


def _sorted(dets: list[Detection]) -> list[Detection]:
    return sorted(dets, key=lambda d: math.hypot(d.x, d.y))


def _assert_matches(dets, boxes, scores, max_box_delta):
    dets = _sorted(dets)
    assert len(dets) == len(boxes), [d.box for d in dets]
    for i, (det, (x, y, w, h), score) in enumerate(zip(dets, boxes, scores)):
        assert abs(det.score - score) < MAX_SCORE_DELTA, f"face {i}: score {det.score:.3f}, expected {score}"
        corner = math.hypot(det.x - x, det.y - y)
        size = math.hypot(det.width - w, det.height - h)
        assert corner <= max_box_delta and size <= max_box_delta, \
            f"face {i}: box {tuple(round(v, 1) for v in det.box)}, expected {(x, y, w, h)}"


# -- peer suite ------------------------------------------------------------------------------------

def test_s1_ssd_min_confidence_07(ssd, faces):
    _assert_matches(ssd.detect(faces, min_score=0.7), SSD_BOXES[1:5], SSD_SCORES[1:5], max_box_delta=4)


def test_s2_ssd_min_confidence_05(ssd, faces):
    _assert_matches(ssd.detect(faces, min_score=0.5), SSD_BOXES, SSD_SCORES, max_box_delta=5)


def test_t1_tiny_input_320(tiny, faces):
    _assert_matches(tiny.detect(faces, input_size=320), TINY_BOXES, TINY_SCORES_320, max_box_delta=40)


def test_t2_tiny_input_416(tiny, faces):
    _assert_matches(tiny.detect(faces), TINY_BOXES, TINY_SCORES_416, max_box_delta=5)


def test_results_are_best_first_detections_in_pixels(ssd, tiny, faces):
    for dets in (ssd.detect(faces), tiny.detect(faces)):
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(v, float) for d in dets for v in (*d.box, d.score))


# -- bad and unusual input ------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["ssd", "tiny"])
def test_no_face_gives_empty_list(which, request, faceapi_dir):
    net = request.getfixturevalue(which)
    with Image.open(faceapi_dir / "test-images" / "white.png") as im:
        white = np.asarray(im.convert("RGB"))
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert net.detect(white) == []
    assert net.detect(noise) == []


@pytest.mark.parametrize("which", ["ssd", "tiny"])
@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 7, 3), (7, 2, 3), (1, 1500, 3)])
def test_tiny_images_give_no_faces_not_errors(which, shape, request):
    assert request.getfixturevalue(which).detect(np.full(shape, 128, np.uint8)) == []


def test_greyscale_and_rgba_match_rgb(ssd, tiny, faceapi_dir):
    with Image.open(faceapi_dir / "test-images" / "faces.jpg") as im:
        grey = np.asarray(im.convert("L"))
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full_like(grey[:, :, None], 255)], axis=2)
    expected = ssd.detect(rgb)
    assert len(expected) == 6
    assert ssd.detect(grey) == expected
    assert ssd.detect(grey[:, :, None]) == expected
    assert ssd.detect(rgba) == expected
    assert tiny.detect(grey) == tiny.detect(rgb)


def test_huge_image_scales_the_boxes(ssd, faces):
    # 4x faces.jpg: the padded square is resized to 512 either way, so the boxes scale by about 4
    big = np.asarray(Image.fromarray(faces).resize((2840, 1892), Image.BILINEAR))
    small, large = _sorted(ssd.detect(faces)), _sorted(ssd.detect(big))
    assert len(large) == len(small) == 6
    for s, b in zip(small, large):
        assert np.allclose(np.asarray(b.box) / 4, s.box, atol=4), (b.box, s.box)


@pytest.mark.parametrize("bad", [np.zeros((4,), np.uint8), np.zeros((5, 5, 2), np.uint8),
                                 np.zeros((0, 5, 3), np.uint8), np.zeros((2, 5, 5, 3), np.uint8)])
def test_bad_arrays_raise_image_error(ssd, tiny, bad):
    for net in (ssd, tiny):
        with pytest.raises(ImageError):
            net.detect(bad)


def test_bad_options_raise_typed_errors(ssd, tiny, faces):
    with pytest.raises(NnliteError, match="multiple of 32"):
        tiny.detect(faces, input_size=300)
    with pytest.raises(NnliteError, match="min_score"):
        tiny.detect(faces, min_score=1.5)
    with pytest.raises(NnliteError, match="min_score"):
        ssd.detect(faces, min_score=0)


# -- helpers: input rule, decoding -----------------------------------------------------------------

def test_detector_input_pads_bottom_right():
    img = np.full((2, 4, 3), 200, np.uint8)                     # wide: rows are added at the bottom
    x, width, height = detector_input(img, 4, "test")
    assert (width, height) == (4, 2) and x.shape == (1, 4, 4, 3)
    assert np.all(x[0, :2] == 200) and np.all(x[0, 2:] == 0)
    x, _, _ = detector_input(img.transpose(1, 0, 2), 4, "test")  # tall: columns are added on the right
    assert np.all(x[0, :, :2] == 200) and np.all(x[0, :, 2:] == 0)


def test_square_to_image_scale_uses_javascript_rounding():
    assert js_round(2.5) == 3 and js_round(3.5) == 4 and js_round(-0.5) == 0
    # faces.jpg at 512: round(473 * 512 / 710) = round(341.09...) = 341
    sx, sy = square_to_image_scale(710, 473, 512)
    assert sx == 1.0 and sy == 512 / 341


def test_decode_boxes_zero_encoding_returns_the_anchor():
    anchors = np.array([[0.1, 0.2, 0.3, 0.6]], np.float32)           # ymin, xmin, ymax, xmax
    assert np.allclose(decode_boxes(np.zeros((1, 1, 4), np.float32), anchors=anchors), anchors)
    # ty = 10 moves the centre down by one anchor height; th = 5 * ln 2 doubles the height
    enc = np.array([[[10.0, 0.0, 5 * np.log(2.0), 0.0]]], np.float32)
    assert np.allclose(decode_boxes(enc, anchors=anchors), [[[0.2, 0.2, 0.6, 0.6]]], atol=1e-6)


def test_tiny_decode_one_cell():
    raw = np.full((2, 2, 25), -20.0)                              # every score sigmoid(-20) ~ 0
    raw[1, 0, 2 * 5:3 * 5] = [0.0, 0.0, 0.0, 0.0, 3.0]            # row 1, col 0, anchor 2, score sigmoid(3)
    boxes, scores = decode(raw, 0.5)
    aw, ah = ANCHORS[2]
    assert np.allclose(scores, [1 / (1 + np.exp(-3.0))])
    # centre ((0 + 0.5) / 2, (1 + 0.5) / 2), size (aw / 2, ah / 2)
    assert np.allclose(boxes, [[0.25 - aw / 4, 0.75 - ah / 4, aw / 2, ah / 2]])


# -- weights and registry ---------------------------------------------------------------------------

def test_bundled_weights_match_pinned_sha256s():
    from tools.faceapi_weights import DEFAULT_OUT, check_dir
    assert check_dir(DEFAULT_OUT) == 0


def test_weights_tool_recreates_folder_from_archive(shared_dir, tmp_path):
    from tools.faceapi_weights import DEFAULT_OUT, main
    assert main([str(shared_dir / "weights-src" / "vladmandic-face-api-1.7.15.tgz"), "--out", str(tmp_path)]) == 0
    for path in DEFAULT_OUT.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("net", NETS)
def test_every_bundled_net_loads(net):
    weights = load_net_weights(net)
    assert weights and all(isinstance(v, np.ndarray) for v in weights.values())


def test_missing_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("NNLITE_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsMissingError, match="NNLITE_WEIGHTS is set to"):
        load_net_weights("tiny_face_detector")


def test_registry_loads_both_detectors():
    ssd, tiny = nnlite.load("ssd_mobilenetv1"), nnlite.load("tiny_face_detector")
    assert isinstance(ssd, SsdMobilenetv1) and isinstance(tiny, TinyFaceDetector)
    assert ssd.model.params > 5_000_000
    assert tiny.model.params == sum(v.size for v in load_net_weights("tiny_face_detector").values())
