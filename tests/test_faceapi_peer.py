"""face-api.js's own test expectations for the single face nets (PEER_SUITE.md section 3-4), ported.

We run face-api.js's *tensor path* (centred zero pad, tfjs bilinear resize), so where PEER_SUITE.md
gives a separate tolerance for tensors we use it; everything else uses face-api.js's tolerance. The
expected values were produced by face-api.js itself (test-expected/*.json), never by nnlite.
Entries: P1, L1-L3, LT1-LT3, R1-R3, A1-A2, E1-E2, H2 (centred), H6, H7.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nnlite.image import pad_to_square
from nnlite.models.faceapi.age_gender import AgeGenderNet
from nnlite.models.faceapi.common import to_square_tensor
from nnlite.models.faceapi.face_expression import LABELS, FaceExpressionNet
from nnlite.models.faceapi.face_landmark_68 import FaceLandmark68Net, unpad_landmarks
from nnlite.models.faceapi.face_landmark_68_tiny import FaceLandmark68TinyNet
from nnlite.models.faceapi.face_recognition import FaceRecognitionNet
from nnlite.vision.align import crop
from nnlite.vision.faces import FaceMatcher


@pytest.fixture(scope="module")
def faceapi(shared_dir):
    return shared_dir / "data" / "faceapi"


@pytest.fixture(scope="module")
def img(faceapi):
    cache = {}

    def load(name):
        if name not in cache:
            with Image.open(faceapi / "test-images" / name) as im:
                cache[name] = np.asarray(im.convert("RGB"))    # greyscale PNGs -> 3 equal channels
        return cache[name]
    return load


@pytest.fixture(scope="module")
def expected(faceapi):
    def load(name):
        data = json.loads((faceapi / "test-expected" / name).read_text())
        if data and isinstance(data[0], dict):
            return np.array([[p["x"], p["y"]] for p in data])
        return np.array(data)
    return load


# -- P1: landmark post-processing (no weights) ----------------------------------------------------------

def _rows(pattern_axis: int) -> np.ndarray:
    row = np.zeros(136)
    for i, v in enumerate((0.4, 0.2, 0.1)):
        row[2 * i + pattern_axis] = v
        row[2 * i + 1 - pattern_axis] = 0.55
    return row


@pytest.mark.parametrize("size, axis, want", [((200, 300), 0, (0.35, 0.05, -0.10)),
                                              ((300, 200), 1, (0.35, 0.05, -0.10)),
                                              ((300, 300), 0, (0.4, 0.2, 0.1))])
def test_p1_unpad_single(size, axis, want):
    out = unpad_landmarks(_rows(axis)[None], 128, [size])[0]
    np.testing.assert_allclose(out[:3, axis], want, atol=0.005)
    np.testing.assert_allclose(out[:3, 1 - axis], 0.55, atol=0.005)


def test_p1_unpad_batch_rows_independent():
    out = unpad_landmarks(np.stack([_rows(0), _rows(1), _rows(0)]), 128, [(200, 300), (300, 200), (300, 300)])
    np.testing.assert_allclose(out[0, :3, 0], (0.35, 0.05, -0.10), atol=0.005)
    np.testing.assert_allclose(out[1, :3, 1], (0.35, 0.05, -0.10), atol=0.005)
    np.testing.assert_allclose(out[2, :3, 0], (0.4, 0.2, 0.1), atol=0.005)
    np.testing.assert_allclose(out[:, :3, :].min(), -0.10, atol=0.005)


# -- H2 (centred half) and H6 ------------------------------------------------------------------------------

@pytest.mark.parametrize("h, w, columns", [(4, 2, "0110"), (4, 3, "1110"), (5, 2, "01100"), (5, 4, "11110")])
def test_h2_pad_to_square_centred(h, w, columns):
    out, (top, left) = pad_to_square(np.ones((h, w, 3), np.uint8), center=True)
    assert top == 0 and left == columns.index("1")
    assert out.shape == (h, h, 3)
    assert "".join("1" if out[:, c].all() else "0" for c in range(h)) == columns
    # the face nets' own input path pads the same way (size = side, so no resize)
    sq = to_square_tensor(np.ones((h, w, 3), np.uint8), h)[0]
    assert sq.dtype == np.float32
    np.testing.assert_array_equal(sq, out)


@pytest.mark.parametrize("box, shape", [((0, 0, 50, 60), (60, 50)), ((50, 50, 70, 80), (80, 70)),
                                        ((-10, -10, 110, 110), (100, 100)), ((50, 50, 110, 110), (100, 100)),
                                        ((-10, -10, 170, 170), (150, 150))])
def test_h6_extract_face_crops(img, box, shape):
    assert crop(img("face1.png"), box).shape == (*shape, 3)


# -- landmark nets -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def landmark_full():
    return FaceLandmark68Net()


@pytest.fixture(scope="module")
def landmark_tiny():
    return FaceLandmark68TinyNet()


def _max_euclid(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - b, axis=1).max())


@pytest.mark.parametrize("image, ref, tol", [("face1.png", "faceLandmarkPositions1.json", 3),        # L1
                                             ("face_rectangular.png", "faceLandmarkPositionsRect.json", 6)])  # L2
def test_l1_l2_full_landmarks(landmark_full, img, expected, image, ref, tol):
    pts = landmark_full.detect_landmarks(img(image))
    assert pts.shape == (68, 2)
    assert _max_euclid(pts, expected(ref)) <= tol


def test_l3_full_landmarks_batch_per_axis(landmark_full, img, expected):
    refs = ["faceLandmarkPositions1.json", "faceLandmarkPositions2.json", "faceLandmarkPositionsRect.json"]
    out = landmark_full.detect_landmarks([img("face1.png"), img("face2.png"), img("face_rectangular.png")])
    assert len(out) == 3
    for pts, ref in zip(out, refs):
        assert np.abs(pts - expected(ref)).max() <= 3, ref       # tensor batch: 3 px per axis


@pytest.mark.parametrize("image, ref", [("face1.png", "faceLandmarkPositions1Tiny.json"),           # LT1
                                        ("face_rectangular.png", "faceLandmarkPositionsRectTiny.json")])  # LT2
def test_lt1_lt2_tiny_landmarks(landmark_tiny, img, expected, image, ref):
    assert _max_euclid(landmark_tiny.detect_landmarks(img(image)), expected(ref)) <= 5


def test_lt3_tiny_landmarks_batch(landmark_tiny, img, expected):
    refs = ["faceLandmarkPositions1Tiny.json", "faceLandmarkPositions2Tiny.json",
            "faceLandmarkPositionsRectTiny.json"]
    out = landmark_tiny.detect_landmarks([img("face1.png"), img("face2.png"), img("face_rectangular.png")])
    for pts, ref in zip(out, refs):
        assert _max_euclid(pts, expected(ref)) <= 3, ref          # tensor batch: 3 px Euclidean


# -- recognition -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recognition():
    return FaceRecognitionNet()


@pytest.mark.parametrize("image, ref", [("face1.png", "faceDescriptor1.json"),                  # R1
                                        ("face_rectangular.png", "faceDescriptorRect.json")])   # R2
def test_r1_r2_descriptor(recognition, img, expected, image, ref):
    desc = recognition.compute_descriptor(img(image))
    assert desc.shape == (128,)
    assert np.linalg.norm(desc - expected(ref)) < 0.1


def test_r3_descriptor_batch(recognition, img, expected):
    out = recognition.compute_descriptor([img("face1.png"), img("face2.png"), img("face_rectangular.png")])
    for desc, ref in zip(out, ["faceDescriptor1.json", "faceDescriptor2.json", "faceDescriptorRect.json"]):
        assert desc.shape == (128,)
        assert np.linalg.norm(desc - expected(ref)) < 0.1, ref


# -- age / gender and expression -------------------------------------------------------------------------

def _check_angry_age(r):
    assert 36 <= r["age"] <= 42 and r["gender"] == "male" and r["gender_probability"] >= 0.9


def test_a1_a2_age_gender(img):
    net = AgeGenderNet()
    _check_angry_age(net.predict_age_gender(img("angry_cropped.jpg")))                      # A1
    angry, surprised = net.predict_age_gender([img("angry_cropped.jpg"), img("surprised_cropped.jpg")])
    _check_angry_age(angry)                                                                  # A2
    assert 24 <= surprised["age"] <= 28 and surprised["gender"] == "female"
    assert surprised["gender_probability"] >= 0.8


def test_e1_e2_expressions(img):
    net = FaceExpressionNet()
    one = net.predict_expressions(img("angry_cropped.jpg"))                                 # E1
    assert list(one) == list(LABELS) and len(one) == 7 and one["angry"] > 0.95
    angry, surprised = net.predict_expressions([img("angry_cropped.jpg"), img("surprised_cropped.jpg")])
    assert angry["angry"] > 0.95 and surprised["surprised"] > 0.95                          # E2
    assert abs(sum(one.values()) - 1) < 1e-5


# -- H7: FaceMatcher JSON round trip ------------------------------------------------------------------------

def test_h7_face_matcher_json():
    foo = [np.float32([1, 2, 3]), np.float32([4, 5, 6])]
    bar = [np.float32([7, 8, 9]), np.float32([3, 2, 1])]
    matcher = FaceMatcher({"foo": foo, "bar": bar}, threshold=123.321)
    text = json.dumps(matcher.to_json(), separators=(",", ":"))
    assert text == ('{"distanceThreshold":123.321,"labeledDescriptors":['
                    '{"label":"foo","descriptors":[[1,2,3],[4,5,6]]},'
                    '{"label":"bar","descriptors":[[7,8,9],[3,2,1]]}]}')
    back = FaceMatcher.from_json(json.loads(text))
    assert back.threshold == 123.321 and back.labels == ["foo", "bar"]
    for got, want in zip(back.descriptors, [foo, bar]):
        assert got.dtype == np.float32 and len(got) == 2
        np.testing.assert_array_equal(got, want)
