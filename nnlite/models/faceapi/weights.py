"""Load the bundled face-api.js weights (``nnlite/weights/faceapi/<net>_model-weights_manifest.json`` + ``.bin``).

The files are the ``@vladmandic/face-api`` 1.7.15 ``model/`` folder, unchanged (see ``nnlite/weights/faceapi/NOTICE``);
most tensors are uint8-quantized and come back dequantized to float32 through :func:`nnlite.io.load_tfjs`.
Keys are the manifest names (``MobilenetV1/Conv2d_0/weights``, ``conv0/filters``, ...), which the net files use as
their layer names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import WeightsError, WeightsMissingError
from ...io.tfjs import load_tfjs
from ...paths import missing_weights_fix, weights_dir

NETS = ("ssd_mobilenetv1", "tiny_face_detector", "face_landmark_68", "face_landmark_68_tiny",
        "face_recognition", "age_gender", "face_expression")


def manifest_path(net: str) -> Path:
    """Where the manifest of ``net`` lives (it need not exist)."""
    if net not in NETS:
        raise WeightsError(f"unknown face-api.js net {net!r}; expected one of {', '.join(NETS)}")
    return weights_dir() / "faceapi" / f"{net}_model-weights_manifest.json"


def weights_present(net: str) -> bool:
    path = manifest_path(net)
    return path.is_file() and path.with_name(f"{net}_model.bin").is_file()


def load_net_weights(net: str) -> dict[str, np.ndarray]:
    """Return ``{manifest key: array}`` for one of :data:`NETS`; a missing file says how to re-create it."""
    path = manifest_path(net)
    if not path.is_file():
        raise WeightsMissingError(
            f"face-api.js weights for {net!r} not found: {path}; " + missing_weights_fix(
                "faceapi", "python tools/faceapi_weights.py vladmandic-face-api-1.7.15.tgz "
                "(archive from `npm pack @vladmandic/face-api@1.7.15`)"))
    return load_tfjs(path)
