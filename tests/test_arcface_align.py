"""ArcFace alignment: five points from 68 landmarks, the similarity transform onto InsightFace's 112x112
template and the crop, checked against InsightFace's recipe re-implemented here with scikit-image
(``SimilarityTransform.estimate(points, template)``, then an inverse-mapped bilinear warp with zeros
outside); and the recogniser-aware comparison of descriptors."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import SimilarityTransform, warp

from nnlite.errors import ModelError, ShapeError
from nnlite.vision import arcface
from nnlite.vision.recognizers import compare

# InsightFace's published 112x112 ArcFace reference points, typed in here from its documentation.
INSIGHTFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]])


def landmark_set(rng) -> np.ndarray:
    """68 points of a plausible face: the template blown up, rotated, shifted, plus noise."""
    pts = rng.uniform(20, 90, (68, 2))
    base = INSIGHTFACE_TEMPLATE
    pts[36:42] = base[0] + rng.normal(0, 3, (6, 2))
    pts[42:48] = base[1] + rng.normal(0, 3, (6, 2))
    pts[30], pts[48], pts[54] = base[2], base[3], base[4]
    angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.8, 4.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (pts @ rot.T) * scale + rng.uniform(0, 200, 2) + rng.normal(0, 1.5, (68, 2))


def test_template_is_insightfaces():
    np.testing.assert_array_equal(arcface.TEMPLATE_112, INSIGHTFACE_TEMPLATE)


def test_five_points_are_eye_centres_nose_tip_and_mouth_corners():
    lm = np.arange(136, dtype=np.float64).reshape(68, 2)
    five = arcface.five_points(lm)
    np.testing.assert_allclose(five[0], lm[36:42].mean(0))
    np.testing.assert_allclose(five[1], lm[42:48].mean(0))
    np.testing.assert_array_equal(five[2:], lm[[30, 48, 54]])
    with pytest.raises(ShapeError):
        arcface.five_points(np.zeros((5, 2)))


@pytest.mark.parametrize("seed", range(8))
def test_similarity_transform_matches_insightface_recipe(seed):
    rng = np.random.default_rng(seed)
    five = arcface.five_points(landmark_set(rng))
    tform = SimilarityTransform.from_estimate(five, INSIGHTFACE_TEMPLATE)
    np.testing.assert_allclose(arcface.similarity_transform(five, INSIGHTFACE_TEMPLATE), tform.params[:2],
                               rtol=1e-9, atol=1e-9)


def test_similarity_transform_recovers_an_exact_similarity_and_never_reflects():
    m = arcface.similarity_transform(INSIGHTFACE_TEMPLATE * 2 + 5, INSIGHTFACE_TEMPLATE)
    np.testing.assert_allclose(m, [[0.5, 0, -2.5], [0, 0.5, -2.5]], atol=1e-12)
    mirrored = INSIGHTFACE_TEMPLATE * [-1, 1]
    assert np.linalg.det(arcface.similarity_transform(mirrored, INSIGHTFACE_TEMPLATE)[:, :2]) > 0


@pytest.mark.parametrize("seed", range(4))
def test_aligned_crop_matches_skimage_warp(seed):
    rng = np.random.default_rng(100 + seed)
    img = rng.uniform(0, 255, (240, 260, 3)).astype(np.float32)
    lm = landmark_set(rng) * 0.5 + 30
    tform = SimilarityTransform.from_estimate(arcface.five_points(lm), INSIGHTFACE_TEMPLATE)
    want = warp(img.astype(np.float64), tform.inverse, output_shape=(112, 112), order=1, mode="constant",
                cval=0.0, preserve_range=True)
    got = arcface.align(img, lm)
    assert got.shape == (112, 112, 3) and got.dtype == np.float32
    inside = want.any(axis=2)  # skimage and nnlite may round the border pixels differently
    np.testing.assert_allclose(got[inside], want[inside], rtol=1e-4, atol=1e-2)
    assert inside.mean() > 0.2


def test_compare_uses_each_recognizers_metric_and_refuses_mixing():
    a = np.zeros(512, np.float32)
    a[0] = 1
    b = np.zeros(512, np.float32)
    b[0], b[1] = 0.8, 0.6
    c = compare(a, b, "arcface", "arcface")
    assert c.metric == "cosine similarity" and c.value == pytest.approx(0.8) and c.same_person
    assert not compare(a, np.roll(a, 1), "arcface", "arcface").same_person
    d = compare(np.zeros(128), np.full(128, 0.01), "faceapi", "faceapi")
    assert d.metric == "euclidean distance" and d.value == pytest.approx(0.01 * np.sqrt(128)) and d.same_person
    with pytest.raises(ModelError, match="different recognisers"):
        compare(np.zeros(128), a, "faceapi", "arcface")
    with pytest.raises(ModelError, match="unknown face recogniser"):
        compare(a, a, "dlib", "dlib")
    with pytest.raises(ShapeError):
        compare(np.zeros(128), a, "arcface", "arcface")
