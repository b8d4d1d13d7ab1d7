"""What every face-api.js net declares alike: family, bundled weights, and its input rule's wording."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ..registry import ModelSpec
from .weights import weights_present

CROP = "RGB face crop, centred zero pad to square, bilinear resize {0} (tfjs rule), (x - mean RGB) / {1}"
DETECT = "RGB photo, zero pad bottom/right to square, bilinear resize {0} (tfjs rule), {1}"


def face_net(name: str, build: Callable[[], Any], size: int, preprocessing: str, description: str,
             params: int) -> ModelSpec:
    """A face-api.js net's declaration; ``params`` as the built graph counts them (the recognition net's
    scale layers are folded into its convolutions)."""
    return ModelSpec(name=name, family="faceapi", build=build, description=description, input_size=(size, size),
                     preprocessing=preprocessing, params=params, weights_present=partial(weights_present, name),
                     weights=f"bundled: weights/faceapi/{name}_model-weights_manifest.json + shards (face-api.js)")
