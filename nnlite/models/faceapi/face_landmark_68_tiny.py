"""FaceLandmark68TinyNet: the small 68-point landmark net (face-api.js ``face_landmark_68_tiny_model``).

Same input rule and output as :mod:`.face_landmark_68` with a smaller feature extractor::

    input (N, 112, 112, 3)   RGB, centred pad to square, tfjs bilinear resize, (x - MEAN_RGB) / 255
    dense0   conv 3x3/2 + 2 separable convs, densely connected   -> (N, 56, 56, 32)
    dense1   3 separable convs (first one stride 2)              -> (N, 28, 28, 64)
    dense2                                                       -> (N, 14, 14, 128)
    avg_pool 14x14 / 2 'valid', flatten                          -> (N, 128)
    fc       dense 128 -> 136
"""

from __future__ import annotations

from ._spec import CROP, face_net
from .face_landmark_68 import FaceLandmark68Net


class FaceLandmark68TinyNet(FaceLandmark68Net):
    """3 dense blocks of 3 convs; post-processing identical to the full net."""

    net = "face_landmark_68_tiny"
    n_blocks, n_convs = 3, 3


SPEC = face_net("face_landmark_68_tiny", FaceLandmark68TinyNet, 112, CROP.format(112, 255),
                "68 facial landmarks, small and fast", params=77_224)
