"""FaceLandmark68Net: 68 facial landmarks from a face crop (face-api.js ``face_landmark_68_model``).

Architecture (the manifest keys are the layer names)::

    input (N, 112, 112, 3)   RGB, centred pad to square, tfjs bilinear resize, (x - MEAN_RGB) / 255
    dense0   conv 3x3/2 + 3 separable convs, densely connected   -> (N, 56, 56, 32)
    dense1   4 separable convs (first one stride 2)              -> (N, 28, 28, 64)
    dense2                                                       -> (N, 14, 14, 128)
    dense3                                                       -> (N, 7, 7, 256)
    avg_pool 7x7 / 2 'valid', flatten                            -> (N, 256)
    fc       dense 256 -> 136                                    -> (x0, y0, x1, y1, ...) in [0, 1]

The 136 outputs are relative to the *padded square*; :func:`unpad_landmarks` maps them back to the
unpadded image (face-api.js's post-processing), and :meth:`FaceLandmark68Net.detect_landmarks`
multiplies by the image size to give pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import ShapeError
from ...graph import GraphBuilder
from ._spec import CROP, face_net
from .common import FaceNet, NetWeights, as_image_list, dense_feature_extractor, fc, image_sizes


def unpad_landmarks(raw: np.ndarray, input_size: int, sizes: Sequence[tuple[float, float]]) -> np.ndarray:
    """Raw (N, 136) outputs -> (N, 68, 2) positions relative to each original (width, height).

    The image was scaled by s = input_size / max(w, h) to (w', h') and the narrower side padded by
    |w' - h'| / 2 on each side; so x_rel = (x * input_size - pad_x) / w' and likewise for y.
    """
    raw = np.asarray(raw, np.float64)
    if raw.ndim != 2 or raw.shape[1] != 136 or len(sizes) != raw.shape[0]:
        raise ShapeError(f"landmark post-processing: expected (N, 136) outputs and N image sizes, "
                         f"found {raw.shape} and {len(sizes)} sizes")
    pts = raw.reshape(-1, 68, 2) * input_size
    out = np.empty_like(pts)
    for i, (w, h) in enumerate(sizes):
        scale = input_size / max(w, h)
        ws, hs = w * scale, h * scale
        pad_x = abs(ws - hs) / 2 if ws < hs else 0.0
        pad_y = abs(ws - hs) / 2 if hs < ws else 0.0
        out[i, :, 0] = (pts[i, :, 0] - pad_x) / ws
        out[i, :, 1] = (pts[i, :, 1] - pad_y) / hs
    return out


class FaceLandmark68Net(FaceNet):
    """The full 68-point landmark net (4 dense blocks of 4 convs)."""

    net = "face_landmark_68"
    input_size = 112
    divisor = 255.0
    n_blocks, n_convs = 4, 4

    def build(self, w: NetWeights, g: GraphBuilder, x: str):
        x = dense_feature_extractor(g, w, x, n_blocks=self.n_blocks, n_convs=self.n_convs)  # (N, C)
        x = fc(g, w, "fc", x)                                                                # (N, 136)
        return g.build([x])

    def detect_landmarks(self, images):
        """(68, 2) landmark pixels for one image, or a list of them for a list of images."""
        images, single = as_image_list(images)
        raw = self.forward(images)                                                         # (N, 136)
        sizes = image_sizes(images)
        rel = unpad_landmarks(raw, self.input_size, sizes)                                 # (N, 68, 2)
        pts = [(rel[i] * np.array(sizes[i], np.float64)).astype(np.float32) for i in range(len(images))]
        return pts[0] if single else pts


SPEC = face_net("face_landmark_68", FaceLandmark68Net, 112, CROP.format(112, 255),
                "68 facial landmarks (dense blocks of separable convs)", params=356_840)
