"""FaceExpressionNet: 7 facial-expression probabilities (face-api.js ``face_expression_model``).

The feature extractor is the one of :mod:`.face_landmark_68` (its own weights)::

    input (N, 112, 112, 3)   RGB, centred pad to square, tfjs bilinear resize, (x - MEAN_RGB) / 255
    dense0 .. dense3, avg_pool 7x7 / 2, flatten                  -> (N, 256)
    fc       dense 256 -> 7, softmax                             -> probabilities in LABELS order
"""

from __future__ import annotations

from ...graph import GraphBuilder
from ._spec import CROP, face_net
from .common import FaceNet, NetWeights, as_image_list, dense_feature_extractor, fc

# face-api.js's output order of the softmax.
LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")


class FaceExpressionNet(FaceNet):
    net = "face_expression"
    input_size = 112
    divisor = 255.0

    def build(self, w: NetWeights, g: GraphBuilder, x: str):
        x = dense_feature_extractor(g, w, x, n_blocks=4, n_convs=4)      # (N, 256)
        x = fc(g, w, "fc", x)                                           # (N, 7) logits
        x = g.layer("softmax", "softmax", x)                            # (N, 7)
        return g.build([x])

    def predict_expressions(self, images):
        """{label: probability} for one image, or a list of dicts for a list of images."""
        images, single = as_image_list(images)
        probs = self.forward(images)
        out = [{label: float(p) for label, p in zip(LABELS, row)} for row in probs]
        return out[0] if single else out


SPEC = face_net("face_expression", FaceExpressionNet, 112, CROP.format(112, 255),
                "7 facial expressions (neutral, happy, sad, angry, fearful, disgusted, surprised)", params=323_687)
