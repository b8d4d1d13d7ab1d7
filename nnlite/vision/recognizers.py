"""The face recognisers and how their descriptors compare.

* ``"faceapi"``: face-api.js's 128-d descriptor (a dlib ResNet port); same person when the euclidean
  distance is below 0.6 (face-api.js's threshold).
* ``"arcface"``: an InsightFace ArcFace model (ONNX), 512-d unit vectors; same person when the cosine
  similarity is at least :data:`nnlite.vision.arcface.DEFAULT_COSINE_THRESHOLD`.

Descriptors of different recognisers live in unrelated spaces: comparing them is an error, never a number.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ModelError, ShapeError
from .arcface import DEFAULT_COSINE_THRESHOLD, cosine_similarity

RECOGNIZERS = ("faceapi", "arcface")
METRIC = {"faceapi": "euclidean distance", "arcface": "cosine similarity"}
THRESHOLD = {"faceapi": 0.6, "arcface": DEFAULT_COSINE_THRESHOLD}
SIZE = {"faceapi": 128, "arcface": 512}


class Comparison(NamedTuple):
    recognizer: str
    metric: str         # "euclidean distance" (lower is closer) or "cosine similarity" (higher is closer)
    value: float
    threshold: float
    same_person: bool


def compare(a, b, recognizer_a: str = "faceapi", recognizer_b: str = "faceapi",
            threshold: float | None = None) -> Comparison:
    """Compare two descriptors with their recogniser's metric; refuses descriptors of two recognisers."""
    for r in (recognizer_a, recognizer_b):
        if r not in RECOGNIZERS:
            raise ModelError(f"unknown face recogniser {r!r} (known: {', '.join(RECOGNIZERS)})")
    if recognizer_a != recognizer_b:
        raise ModelError(f"cannot compare a {recognizer_a!r} descriptor with a {recognizer_b!r} descriptor: "
                         "they come from different recognisers (describe both faces with the same one)")
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.size != b.size:
        raise ShapeError(f"descriptors differ in length ({a.size} vs {b.size})")
    cut = THRESHOLD[recognizer_a] if threshold is None else float(threshold)
    if recognizer_a == "arcface":
        value = cosine_similarity(a, b)
        return Comparison(recognizer_a, METRIC[recognizer_a], value, cut, value >= cut)
    value = float(np.linalg.norm(a - b))
    return Comparison(recognizer_a, METRIC[recognizer_a], value, cut, value < cut)
