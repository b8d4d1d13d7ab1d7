"""FacePipeline, alignment, FaceMatcher and the `faces` / `compare` commands, including bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from nnlite.cli import main
from nnlite.errors import ConfigError, ImageError, ModelError, ShapeError
from nnlite.vision import align
from nnlite.vision.faces import Face, FaceMatcher, FacePipeline, face_distance

JSON_FACE_KEYS = ["box", "score", "landmarks", "recognizer", "descriptor", "age", "gender", "gender_probability",
                  "expression"]


@pytest.fixture(scope="module")
def faces_jpg(shared_dir):
    return shared_dir / "data" / "faceapi" / "test-images" / "faces.jpg"


@pytest.fixture(scope="module")
def tiny_pipe():
    return FacePipeline(detector="tiny", attributes=False)


# -- bad and unusual input ------------------------------------------------------------------------------

def test_no_face_is_an_empty_list(tiny_pipe, shared_dir):
    assert tiny_pipe.detect(shared_dir / "data" / "faceapi" / "test-images" / "white.png") == []


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5), (2, 700, 3)])
def test_tiny_images_give_no_face(tiny_pipe, shape):
    assert tiny_pipe.detect(np.full(shape, 90, np.uint8)) == []


def test_huge_blank_image_gives_no_face(tiny_pipe):
    assert tiny_pipe.detect(np.zeros((3000, 4000, 3), np.uint8)) == []


def test_greyscale_and_rgba_find_the_same_faces(tiny_pipe, faces_jpg):
    with Image.open(faces_jpg) as im:
        grey, rgba = np.asarray(im.convert("L")), np.asarray(im.convert("RGBA"))
    assert len(tiny_pipe.detect(rgba)) == 6
    grey_faces = tiny_pipe.detect(grey)
    assert len(grey_faces) >= 5            # colour helps a little; greyscale must still work
    assert all(f.descriptor.shape == (128,) and np.isfinite(f.descriptor).all() for f in grey_faces)


def test_corrupt_image_is_a_typed_error(tiny_pipe, tmp_path):
    with pytest.raises(ImageError):
        tiny_pipe.detect(b"\x89PNG\r\n\x1a\n this is not a png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageError):
        tiny_pipe.detect(bad)


def test_bad_options_are_typed_errors():
    with pytest.raises(ModelError):
        FacePipeline(detector="mtcnn")
    with pytest.raises(ModelError):
        FacePipeline(align="affine")
    with pytest.raises(ModelError):
        FacePipeline(min_score=2)


def test_analyze_given_boxes_and_bad_boxes(tiny_pipe, shared_dir):
    with Image.open(shared_dir / "data" / "faceapi" / "test-images" / "face1.png") as im:
        img = np.asarray(im.convert("RGB"))
    assert tiny_pipe.analyze(img, []) == []
    (face,) = tiny_pipe.analyze(img, [(0, 0, 150, 150)])
    assert face.landmarks.shape == (68, 2) and face.descriptor.dtype == np.float32
    with pytest.raises(ShapeError):
        tiny_pipe.analyze(img, [(0, 0, math.nan, 10)])


# -- alignment --------------------------------------------------------------------------------------------

def _synthetic_landmarks(angle_deg: float) -> np.ndarray:
    pts = np.tile([60.0, 70.0], (68, 1))          # every other point inside the face
    pts[36:42] = (40, 50)
    pts[42:48] = (80, 50)
    pts[48:68] = (60, 90)
    pts[0], pts[16], pts[8] = (20, 40), (100, 40), (60, 120)
    a = math.radians(angle_deg)
    c = np.array([60.0, 50.0])
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (pts - c) @ rot.T + c


def test_landmark_box_pads_ten_percent_per_side():
    x, y, w, h = align.landmark_box(_synthetic_landmarks(0))
    assert (x, y, w, h) == pytest.approx((12, 32, 96, 96))   # bbox 20..100 x 40..120, grown by 20 %


def test_dlib_box_is_square_around_eyes_and_mouth():
    x, y, w, h = align.dlib_box(_synthetic_landmarks(0))
    size = math.floor(math.hypot(20, 40) / 0.45)
    assert (w, h) == (size, size)
    assert (x, y) == (math.floor(60 - 0.5 * size), math.floor(190 / 3 - 0.43 * size))


@pytest.mark.parametrize("angle", [-25.0, 0.0, 12.0])
def test_rotation_levels_the_eyes(angle):
    pts = _synthetic_landmarks(angle)
    assert math.degrees(align.eye_angle(pts)) == pytest.approx(angle)
    level, _, _ = align.rotate_points(pts)
    assert align.eye_angle(level) == pytest.approx(0.0, abs=1e-9)
    img = np.random.default_rng(0).integers(0, 255, (160, 140, 3), np.uint8)
    out, box = align.rotated_crop(img, pts)
    assert out.shape == (round(box[3]), round(box[2]), 3) and out.dtype == np.uint8


def test_crop_is_floored_and_clipped():
    img = np.zeros((10, 20, 3), np.uint8)
    assert align.crop(img, (2.7, 3.2, 5.9, 4.1)).shape == (4, 5, 3)
    assert align.crop(img, (50, 50, 10, 10)).shape[:2] == (1, 1)          # off-image box: one pixel


# -- matching -----------------------------------------------------------------------------------------------

def test_face_matcher_mean_distance_threshold_and_top_k():
    m = FaceMatcher({"a": [np.zeros(4), np.full(4, 0.2)], "b": [np.ones(4)]})
    label, dist = m.match(np.full(4, 0.1))
    assert label == "a" and dist == pytest.approx(0.2)                   # mean of 0.2 and 0.2
    assert m.match(np.full(4, 5.0))[0] == "unknown"
    assert [t[0] for t in m.top_k(np.full(4, 0.9), 2)] == ["b", "a"]
    assert FaceMatcher([np.zeros(3), np.ones(3)]).labels == ["person 1", "person 2"]
    assert face_distance([0, 3], [4, 0]) == 5.0
    with pytest.raises(ShapeError):
        face_distance(np.zeros(128), np.zeros(127))
    with pytest.raises(ShapeError):
        FaceMatcher({})



def test_face_matcher_cosine_metric_for_arcface_embeddings():
    """ArcFace embeddings are compared by angle: distance 1 - cos, blind to length, with ArcFace's threshold."""
    m = FaceMatcher({"a": [np.array([2.0, 0.0, 0.0])], "b": [np.array([0.0, 3.0, 0.0])]}, metric="cosine")
    assert m.threshold == pytest.approx(1 - 0.35)
    label, dist = m.match(np.array([10.0, 10.0 * np.tan(np.radians(30)), 0.0]))   # 30 degrees from "a"
    assert label == "a" and dist == pytest.approx(1 - np.cos(np.radians(30)))
    assert m.match(np.array([0.0, 0.0, 1.0])) == ("unknown", pytest.approx(1.0))  # orthogonal to both
    assert FaceMatcher({"a": [np.ones(3)]}).threshold == 0.6
    with pytest.raises(ConfigError, match="metric"):
        FaceMatcher({"a": [np.ones(3)]}, metric="manhattan")

# -- command line ------------------------------------------------------------------------------------------

def test_faces_cli_json_shape_and_annotated_output(faces_jpg, tmp_path, capsys):
    out = tmp_path / "annotated.png"
    assert main(["faces", str(faces_jpg), "--detector", "tiny", "--json", "--out", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["image", "width", "height", "faces"]
    assert (data["width"], data["height"]) == (710, 473) and len(data["faces"]) == 6
    face = data["faces"][0]
    assert list(face) == JSON_FACE_KEYS + ["box_in_image"]   # the CLI adds the clipped box
    assert len(face["landmarks"]) == 68 and len(face["descriptor"]) == 128
    assert face["gender"] in ("male", "female")
    assert list(face["expression"]) == ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
    with Image.open(out) as im:
        assert im.size == (710, 473)
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.png"]     # no temporary file left


def test_compare_cli(faces_jpg, shared_dir, capsys):
    assert main(["compare", str(faces_jpg), str(faces_jpg), "--detector", "tiny", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["same_person"] is True and data["distance"] == pytest.approx(0.0, abs=1e-6)
    white = shared_dir / "data" / "faceapi" / "test-images" / "white.png"
    assert main(["compare", str(faces_jpg), str(white), "--detector", "tiny"]) == 2
    assert "no face" in capsys.readouterr().err


def test_face_to_json_keys():
    f = Face(box=(1, 2, 3, 4), score=0.9, landmarks=np.zeros((68, 2), np.float32))
    assert list(f.to_json()) == JSON_FACE_KEYS


def test_a_path_is_decoded_once_and_the_detector_gets_pixels(tmp_path, monkeypatch):
    """detect() decodes a path with nnlite.image.load_image exactly once; the detector sees the RGB uint8 array."""
    import nnlite.vision.faces as faces_module
    from nnlite.image import load_image

    calls, seen = [], []
    monkeypatch.setattr(faces_module, "load_image", lambda src: calls.append(src) or load_image(src))

    class Detector:
        def detect(self, img, **options):
            seen.append(img)
            return []

    path = tmp_path / "grey.png"
    Image.fromarray(np.full((6, 9), 77, np.uint8)).save(path)
    pipe = FacePipeline(detector="tiny")
    pipe._nets["detector"] = Detector()
    assert pipe.detect(path) == []
    assert calls == [path] and len(seen) == 1
    assert seen[0].dtype == np.uint8 and seen[0].shape == (6, 9, 3) and (seen[0] == 77).all()
