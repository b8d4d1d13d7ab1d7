"""The whole pipeline against the real face-api.js (an external reference, recorded once).

tests/data/faceapi_node_reference.json holds what ../shared/tools/faceapi-node/peer.js (npm
@vladmandic/face-api 1.7.15 on the tfjs wasm backend, decoded RGB passed as a tensor) printed for two
photos. Regenerate it with that tool's README (list faces.jpg and scenes/bbt1.jpg, `node peer.js list.json
out.json`) and keep {"image", "faces"} per photo. CI does not run Node: the file is the reference.

Measured when recorded: same boxes (< 0.01 px), landmarks < 0.01 px, descriptor L2 ~0.001, ages within
0.1 year; the tolerances below leave room for float differences only (wasm vs NumPy+BLAS).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnlite.vision.faces import FacePipeline

REFERENCE = Path(__file__).parent / "data" / "faceapi_node_reference.json"


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline(detector="ssd", min_score=0.5, align="facecrop")


@pytest.mark.parametrize("index", [0, 1])
def test_pipeline_matches_real_faceapi(pipeline, shared_dir, index):
    entry = json.loads(REFERENCE.read_text())["images"][index]
    ours = pipeline.detect(shared_dir / entry["image"])
    assert len(ours) == len(entry["faces"])
    for ref in entry["faces"]:
        face = min(ours, key=lambda f: float(np.abs(np.subtract(f.box, ref["box"])).sum()))
        assert np.abs(np.subtract(face.box, ref["box"])).max() < 0.5
        assert abs(face.score - ref["score"]) < 1e-3
        assert np.linalg.norm(face.landmarks - np.array(ref["landmarks"]), axis=1).max() < 0.5
        assert np.linalg.norm(face.descriptor - np.array(ref["descriptor"])) < 0.01
        assert abs(face.age - ref["age"]) < 0.5
        assert face.gender == ref["gender"] and abs(face.gender_probability - ref["gender_probability"]) < 0.01
        for label, p in ref["expression"].items():
            assert abs(face.expression[label] - p) < 0.01, label
