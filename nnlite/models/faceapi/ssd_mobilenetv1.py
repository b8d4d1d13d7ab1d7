"""SsdMobilenetv1: the face-api.js SSD face detector (``ssd_mobilenetv1_model``), 512 x 512 input.

Architecture (layer names are the manifest keys)::

    input (N, 512, 512, 3)       RGB, pad bottom/right to square, tfjs bilinear resize, x * (2/255) - 1
    MobilenetV1/Conv2d_0_pointwise conv 3x3/2 'same' + offset, relu6               -> (N, 256, 256, 32)
    MobilenetV1/Conv2d_k, k=1..13: depthwise 3x3 'same' + batch norm + relu6 (stride 2 at k = 2, 4, 6, 12),
                                  then pointwise 1x1 + offset + relu6
        Conv2d_11_pointwise                                                      -> (N, 32, 32, 512)
        Conv2d_13_pointwise                                                      -> (N, 16, 16, 1024)
    Prediction/Conv2d_k_pointwise, k=0..7: conv (1x1 at even k, 3x3 at odd k, stride 2 at odd k) + offset,
                                  relu6                                          -> 8x8, 4x4, 2x2, 1x1
    Prediction/BoxPredictor_i    1x1 convs on 6 feature maps (conv11, conv13, Prediction 1, 3, 5, 7):
                                  4 box encodings and 3 class logits per anchor (3 anchors per cell on the
                                  32x32 map, 6 on the others)                   -> 5118 anchors
    Output                       decode against the anchors ``Output/extra_dim``; score = sigmoid(logit 1)

Box decoding (the anchors are (ymin, xmin, ymax, xmax) in the padded square, [0, 1]): with anchor size
(ha, wa) and centre (ya, xa), an encoding (ty, tx, th, tw) gives the centre (ty / 10 * ha + ya,
tx / 10 * wa + xa) and the half size (exp(th / 5) * ha / 2, exp(tw / 5) * wa / 2).

Detection (face-api.js ``locateFaces``): greedy NMS (IoU 0.5, at most 100 results, score > min_score,
default 0.5) on the decoded boxes, then each box is clipped to [0, 1] of the square and mapped to image
pixels (see :mod:`nnlite.models.faceapi.detector_input`). The depthwise batch norms
(epsilon 0.0010000000474974513, as the TF export) are folded into the depthwise kernels at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np

from ... import ops
from ...boxes import Detection, nms
from ...errors import ConfigError, ShapeError
from ...graph import GraphBuilder, Model
from ._spec import DETECT, face_net
from .common import NetWeights
from .detector_input import detector_input, square_to_image_scale

INPUT_SIZE = 512
BN_EPSILON = 0.0010000000474974513
IOU_THRESHOLD = 0.5
MAX_RESULTS = 100
MIN_SCORE = 0.5
DEPTHWISE_STRIDE_2 = (2, 4, 6, 12)          # MobilenetV1/Conv2d_k_depthwise with stride 2
ANCHORS_PER_PREDICTOR = (3072, 1536, 384, 96, 24, 6)

# Constants the TF export left in the manifest (shapes, slice bounds); checked or ignored, never weights.
_EXPORT_CONSTANTS = (
    "Prediction/BoxPredictor_0/stack_1/2", "Prediction/BoxPredictor_0/stack/3", "concat_1/axis",
    "Prediction/BoxPredictor_0/strided_slice/stack", "Prediction/BoxPredictor_0/strided_slice/stack_1",
    "Postprocessor/Slice/begin", "Postprocessor/Slice/size", "Postprocessor/stack/1")


def decode_boxes(encodings: np.ndarray, *, anchors: np.ndarray) -> np.ndarray:
    """(N, A, 4) encodings (ty, tx, th, tw) + (A, 4) anchors -> (N, A, 4) boxes (ymin, xmin, ymax, xmax)."""
    size = anchors[:, 2:] - anchors[:, :2]                   # (A, 2): (height, width)
    centre = anchors[:, :2] + size / np.float32(2)            # (A, 2): (y, x)
    mid = encodings[..., :2] / np.float32(10) * size + centre
    half = np.exp(encodings[..., 2:] / np.float32(5)) * size / np.float32(2)
    return np.concatenate([mid - half, mid + half], axis=-1).astype(np.float32)


def face_scores(class_logits: np.ndarray) -> np.ndarray:
    """(N, A, 3) class logits (background, face, unused) -> (N, A) face probability sigmoid(logit 1)."""
    return ops.for_engine("sigmoid")(class_logits[..., 1])


def _pointwise(g: GraphBuilder, w: NetWeights, name: str, x: str, stride: int) -> str:
    """face-api.js pointwiseConvLayer: conv 'same' + folded batch-norm offset, relu6."""
    return g.layer("conv2d", name, x, kernel=w[f"{name}/weights"],          # (k, k, cin, cout)
                   bias=w[f"{name}/convolution_bn_offset"],                  # (cout,)
                   stride=stride, padding="same", activation="relu6")


def _depthwise(g: GraphBuilder, w: NetWeights, name: str, x: str, stride: int) -> str:
    """Depthwise 3x3 'same' with its batch norm folded in, relu6."""
    kernel, bias = ops.fold_batch_norm(
        w[f"{name}/depthwise_weights"], None,                               # (3, 3, cin, 1)
        w[f"{name}/BatchNorm/gamma"], w[f"{name}/BatchNorm/beta"],
        w[f"{name}/BatchNorm/moving_mean"], w[f"{name}/BatchNorm/moving_variance"],
        epsilon=BN_EPSILON, depthwise=True)
    return g.layer("depthwise_conv2d", name, x, kernel=kernel, bias=bias, stride=stride, padding="same",
                   activation="relu6", covers=(name, f"{name}/BatchNorm", f"{name}/Relu6"))


def _box_predictor(g: GraphBuilder, w: NetWeights, index: int, x: str) -> tuple[str, str]:
    """1x1 convs -> (N, anchors, 4) box encodings and (N, anchors, 3) class logits."""
    outs = []
    for head, depth in (("BoxEncodingPredictor", 4), ("ClassPredictor", 3)):
        name = f"Prediction/BoxPredictor_{index}/{head}"
        y = g.layer("conv2d", name, x, kernel=w[f"{name}/weights"],        # (1, 1, cin, anchors * depth)
                    bias=w[f"{name}/biases"], padding="same")
        outs.append(g.layer("reshape", f"{name}/Reshape", y, shape=(-1, depth)))
    return outs[0], outs[1]


def build_model(w: NetWeights) -> Model:
    g = GraphBuilder("ssd_mobilenetv1")
    x = g.input("input", (INPUT_SIZE, INPUT_SIZE, 3))                      # RGB scaled to [-1, 1]
    x = _pointwise(g, w, "MobilenetV1/Conv2d_0_pointwise", x, stride=2)    # (N, 256, 256, 32)
    conv11 = None
    for k in range(1, 14):
        stride = 2 if k in DEPTHWISE_STRIDE_2 else 1
        x = _depthwise(g, w, f"MobilenetV1/Conv2d_{k}_depthwise", x, stride)
        x = _pointwise(g, w, f"MobilenetV1/Conv2d_{k}_pointwise", x, stride=1)
        if k == 11:
            conv11 = x                                                     # (N, 32, 32, 512)
    maps = [conv11, x]                                                     # x: (N, 16, 16, 1024)
    y = x
    for k in range(8):
        y = _pointwise(g, w, f"Prediction/Conv2d_{k}_pointwise", y, stride=1 + k % 2)
        if k % 2:
            maps.append(y)                                                 # 8x8, 4x4, 2x2, 1x1
    heads = [_box_predictor(g, w, i, m) for i, m in enumerate(maps)]
    encodings = g.layer("concat", "concat", *(h[0] for h in heads), axis=1)   # (N, 5118, 4)
    logits = g.layer("concat", "concat_1", *(h[1] for h in heads), axis=1)    # (N, 5118, 3)
    anchors = w["Output/extra_dim"][0]                                        # (5118, 4)
    boxes = g.layer(decode_boxes, "Output/boxes", encodings, anchors=anchors)
    scores = g.layer(face_scores, "Output/scores", logits)
    return g.build([boxes, scores])


def _check_export_constants(w: NetWeights) -> None:
    """The manifest's anchor counts must match the architecture (and marks the constants as read)."""
    for index, count in enumerate(ANCHORS_PER_PREDICTOR):
        key = f"Prediction/BoxPredictor_{index}/stack_1/1"
        if int(w[key]) != count:
            raise ShapeError(f"ssd_mobilenetv1: manifest {key} = {int(w[key])}, expected {count} anchors")
    total = int(w["Postprocessor/stack/1"])
    if total != sum(ANCHORS_PER_PREDICTOR) or w["Output/extra_dim"].shape != (1, total, 4):
        raise ShapeError(f"ssd_mobilenetv1: expected {sum(ANCHORS_PER_PREDICTOR)} anchors, manifest has "
                         f"{total} and Output/extra_dim of shape {w['Output/extra_dim'].shape}")
    if tuple(int(v) for v in w["Preprocessor/ResizeImage/size"]) != (INPUT_SIZE, INPUT_SIZE):
        raise ShapeError("ssd_mobilenetv1: manifest input size is not 512 x 512")
    for key in _EXPORT_CONSTANTS:
        w[key]


class SsdMobilenetv1:
    """The SSD face detector; ``detect(image)`` -> list of :class:`Detection` in image pixels, best first."""

    net = "ssd_mobilenetv1"
    input_size = INPUT_SIZE

    def __init__(self, weights: Mapping[str, np.ndarray] | None = None):
        if weights is None:
            from .weights import load_net_weights
            weights = load_net_weights(self.net)
        w = NetWeights(self.net, weights)
        _check_export_constants(w)
        self.scale = np.float32(w["Preprocessor/mul/x"])     # 0.007843137718737125 = 2 / 255
        self.offset = np.float32(w["Preprocessor/sub/y"])    # 1
        self.model = build_model(w)
        w.check_all_used()

    def preprocess(self, image) -> tuple[np.ndarray, int, int]:
        """RGB image -> ((1, 512, 512, 3) net input in [-1, 1], width, height)."""
        x, width, height = detector_input(image, INPUT_SIZE, "SsdMobilenetv1.detect")
        return x * self.scale - self.offset, width, height

    def forward(self, image) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for one image: (5118, 4) boxes (ymin, xmin, ymax, xmax) in the square, (5118,) scores."""
        x, _, _ = self.preprocess(image)
        boxes, scores = self.model(x)
        return boxes[0], scores[0]

    def detect(self, image, min_score: float = MIN_SCORE, max_results: int = MAX_RESULTS,
               iou_threshold: float = IOU_THRESHOLD) -> list[Detection]:
        """Faces in ``image`` ((H, W, 3) uint8 RGB; greyscale/RGBA accepted), highest score first."""
        whole = isinstance(max_results, Real) and max_results >= 1 and float(max_results).is_integer()
        if not (isinstance(min_score, Real) and 0 < min_score < 1 and whole):
            raise ConfigError(f"SsdMobilenetv1: expected 0 < min_score < 1 and a whole max_results >= 1, found "
                              f"min_score={min_score!r}, max_results={max_results!r}")
        x, width, height = self.preprocess(image)
        boxes, scores = (out[0] for out in self.model(x))
        return postprocess(boxes, scores, width, height, min_score=min_score, max_results=max_results,
                           iou_threshold=iou_threshold)


def postprocess(boxes: np.ndarray, scores: np.ndarray, width: int, height: int, *, min_score: float,
                max_results: int, iou_threshold: float) -> list[Detection]:
    """NMS on raw (A, 4) square boxes and (A,) scores, then clip to the square and map to image pixels."""
    b = boxes.astype(np.float64)
    xywh = np.stack([b[:, 1], b[:, 0], b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]], axis=1)
    keep = nms(xywh, scores, iou_threshold=iou_threshold, score_threshold=min_score, max_results=max_results)
    sx, sy = square_to_image_scale(width, height, INPUT_SIZE)
    out = []
    for i in keep:
        top, bottom = max(0.0, b[i, 0]) * sy, min(1.0, b[i, 2]) * sy
        left, right = max(0.0, b[i, 1]) * sx, min(1.0, b[i, 3]) * sx
        box = (left * width, top * height, (right - left) * width, (bottom - top) * height)
        out.append(Detection(box=tuple(float(v) for v in box), score=float(scores[i])))
    return out


SPEC = face_net("ssd_mobilenetv1", SsdMobilenetv1, 512, DETECT.format(512, "x / 127.5 - 1"),
                "face detector (SSD, MobileNetV1 backbone; boxes + scores, NMS IoU 0.5)", params=5_540_639)
