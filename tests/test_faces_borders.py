"""Faces that reach past the image borders, against the real face-api.js (recorded in Node).

tests/data/faceapi_border_reference.json holds what face-api.js (npm @vladmandic/face-api 1.7.15, tfjs wasm,
tensor input) found on the scenes tools/faceapi_border_reference.py makes from ../shared's identity photos:
a portrait cut by 40 px at each border and at each corner, a centred control, and the bundled cat sample.
Regenerate with that tool. At the left and top borders face-api.js clamps the descriptor's square to x or y = 0
and caps its side by the detection crop; a descriptor that ignores this lands 0.3-0.6 away instead of ~0.001.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnlite.cli import main
from nnlite.paths import data_dir
from nnlite.vision import align
from nnlite.vision.faces import FacePipeline
from tools.faceapi_border_reference import PLACES, border_scenes, cat_sample

REFERENCE = json.loads((Path(__file__).parent / "data" / "faceapi_border_reference.json").read_text())
ENTRIES = {e["name"]: e for e in REFERENCE["images"]}


@pytest.fixture(scope="module")
def scenes(shared_dir):
    return {**border_scenes(shared_dir), "chelsea": cat_sample()}


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline(detector="ssd", min_score=0.5, align="facecrop", attributes=False)


def test_reference_covers_every_border_and_corner():
    assert set(ENTRIES) == set(PLACES) | {"chelsea"}
    assert all(len(e["faces"]) == 1 for e in ENTRIES.values())


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_border_faces_match_real_faceapi(scenes, pipeline, name):
    ref = ENTRIES[name]["faces"][0]
    ours = pipeline.detect(scenes[name])
    assert len(ours) == 1
    face = ours[0]
    assert np.abs(np.subtract(face.box, ref["box"])).max() < 0.05
    assert abs(face.score - ref["score"]) < 1e-3
    assert np.linalg.norm(face.landmarks - np.array(ref["landmarks"]), axis=1).max() < 0.05
    assert np.linalg.norm(face.descriptor - np.array(ref["descriptor"])) < 0.01


def test_dlib_box_is_capped_by_the_detection_crop_only_at_left_and_top():
    pts = np.zeros((68, 2))
    pts[36:42] = (20.0, 50.0)
    pts[42:48] = (60.0, 50.0)
    pts[48:68] = (40.0, 90.0)          # eye-to-mouth 44.7 -> side floor(44.7 / 0.45) = 99
    assert align.dlib_box(pts) == (0.0, 20.0, 99.0, 99.0)                  # x clamped to 0
    assert align.dlib_box(pts, crop_size=(300, 70)) == (0.0, 20.0, 70.0, 99.0)
    far = pts + 200.0                  # nowhere near a border: the cap never bites
    assert align.dlib_box(far, crop_size=(10, 10)) == align.dlib_box(far)


def test_crop_clips_before_flooring_like_extract_face_tensors():
    img = np.zeros((300, 451, 3), np.uint8)
    # the cat's box: floor-then-clip would give 299 rows, clip-then-floor (face-api.js's tensor route) 298
    assert align.crop(img, (0.0, 1.383, 373.588, 374.142)).shape == (298, 373, 3)
    assert align.crop(img, (-0.6, 2.5, 10.2, 4.0)).shape == (4, 9, 3)


def test_box_in_image_clips_the_reported_box():
    assert align.box_in_image((0.0, 1.5, 373.5, 374.0), 451, 300) == (0.0, 1.5, 373.5, 298.5)
    assert align.box_in_image((-10.0, -5.0, 30.0, 20.0), 100, 100) == (0.0, 0.0, 20.0, 15.0)
    assert align.box_in_image((10.0, 10.0, 5.0, 5.0), 100, 100) == (10.0, 10.0, 5.0, 5.0)


def test_cat_face_box_is_kept_as_faceapi_reports_it_and_clipped_for_show(capsys):
    ref = ENTRIES["chelsea"]["faces"][0]["box"]
    assert ref[1] + ref[3] > 300                     # face-api.js's own box runs past the bottom too
    cat = str(data_dir() / "samples" / "chelsea.png")
    assert main(["faces", cat, "--json"]) == 0
    face = json.loads(capsys.readouterr().out)["faces"][0]
    np.testing.assert_allclose(face["box"], ref, atol=0.05)
    np.testing.assert_allclose(face["box_in_image"], [ref[0], ref[1], ref[2], 300 - ref[1]], atol=0.05)
    assert main(["faces", cat]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert "box [0, 1, 374, 299]" in line and "detector's box [0, 1, 374, 374] runs past the image" in line
    assert main(["faces", str(data_dir() / "samples" / "faces.jpg"), "--detector", "tiny"]) == 0
    assert "runs past" not in capsys.readouterr().out         # boxes inside the image are left alone
