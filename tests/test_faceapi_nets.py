"""The five face nets as registry entries: load, parameter counts, typed errors on bad weights or input."""

from __future__ import annotations

import numpy as np
import pytest

import nnlite
from nnlite.errors import ImageError, ShapeError, WeightsError
from nnlite.models import registry
from nnlite.models.faceapi.face_expression import FaceExpressionNet
from nnlite.models.faceapi.weights import load_net_weights

NETS = ["face_landmark_68", "face_landmark_68_tiny", "face_recognition", "age_gender", "face_expression"]


@pytest.mark.parametrize("name", NETS)
def test_registered_nets_load_with_their_parameter_count(name):
    spec = registry.get(name)
    net = nnlite.load(name)
    assert spec.weights_present() and net.model.params == spec.params
    h, w = spec.input_size
    assert net.model.inputs["input"] == (h, w, 3)


def test_manifest_that_does_not_match_is_a_weights_error():
    weights = load_net_weights("face_expression")
    missing = dict(weights)
    del missing["dense2/conv1/bias"]
    with pytest.raises(WeightsError, match="dense2/conv1/bias"):
        FaceExpressionNet(missing)
    with pytest.raises(WeightsError, match="not used"):
        FaceExpressionNet({**weights, "extra/weights": np.zeros(3, np.float32)})


def test_bad_net_input_is_typed():
    net = FaceExpressionNet()
    with pytest.raises(ImageError):
        net.forward(np.zeros((4, 4, 2)))
    with pytest.raises(ShapeError):
        net.forward([])
    # greyscale and RGBA arrays are accepted as face-api.js's loaders would (3 equal channels / alpha dropped)
    grey = np.random.default_rng(1).integers(0, 255, (40, 30), np.uint8)
    np.testing.assert_allclose(net.forward(grey), net.forward(np.dstack([grey] * 3)), rtol=1e-6)
    rgba = np.dstack([grey] * 3 + [np.zeros_like(grey)])
    np.testing.assert_allclose(net.forward(rgba), net.forward(np.dstack([grey] * 3)), rtol=1e-6)
