"""TinyFaceDetector: face-api.js's small YOLO-style face detector (``tiny_face_detector_model``).

Architecture (layer names are the manifest keys; S = input size, a multiple of 32, default 416)::

    input (N, S, S, 3)     RGB, pad bottom/right to square, tfjs bilinear resize, (x - MEAN_RGB) / 256
    conv0   conv 3x3 'valid' + bias, leaky ReLU 0.1        -> (N, S-2, S-2, 16)
    pool0   max pool 2x2 / 2 'same'                         -> (N, S/2 - 1, ...)
    conv1..conv5   separable conv 3x3 (zero pad 1, depthwise, pointwise) + bias, leaky ReLU 0.1,
                   each followed by a max pool 2x2 'same' (stride 2 after conv1..conv4, stride 1 after conv5)
                                                            -> (N, S/32, S/32, 512)
    conv8   conv 1x1 + bias                                 -> (N, S/32, S/32, 25) = 5 anchors x 5 values

Decoding (face-api.js ``TinyYolov2Base.extractBoxes``), per cell (row, col) of the G x G grid (G = S / 32)
and anchor a with size (aw, ah) from :data:`ANCHORS` (in cells): values (tx, ty, tw, th, to) give
score = sigmoid(to), centre ((col + sigmoid(tx)) / G, (row + sigmoid(ty)) / G) and size
(exp(tw) * aw / G, exp(th) * ah / G), relative to the padded square. Boxes with score > min_score
(default 0.5) go through greedy NMS with IoU 0.4 (no cap on the count); survivors are mapped to image
pixels (see :mod:`nnlite.models.faceapi.detector_input`; unlike the SSD, boxes are not clipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np

from ...boxes import Detection, nms
from ...errors import ConfigError
from ...graph import GraphBuilder, Model
from ._spec import DETECT, face_net
from .common import NetWeights
from .detector_input import detector_input, square_to_image_scale

DEFAULT_INPUT_SIZE = 416
MIN_SCORE = 0.5
IOU_THRESHOLD = 0.4
LEAKY_ALPHA = 0.1
MEAN_RGB = (117.001, 114.697, 97.404)
DIVISOR = 256.0
# (width, height) of the 5 anchor boxes in grid cells (face-api.js tinyFaceDetector constants).
ANCHORS = np.array([(1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061),
                    (4.266906, 5.178857), (9.041765, 10.66308)])


def _separable(g: GraphBuilder, w: NetWeights, name: str, x: str) -> str:
    """face-api.js tinyYolov2 depthwiseSeparableConv: zero pad 1, 3x3 depthwise, 1x1 pointwise, bias, leaky."""
    return g.layer("separable_conv2d", name, x,
                   depthwise_kernel=w[f"{name}/depthwise_filter"],   # (3, 3, cin, 1)
                   pointwise_kernel=w[f"{name}/pointwise_filter"],   # (1, 1, cin, cout)
                   bias=w[f"{name}/bias"],                           # (cout,)
                   padding=(1, 1, 1, 1), activation="leaky_relu", alpha=LEAKY_ALPHA)


def build_model(w: NetWeights) -> Model:
    g = GraphBuilder("tiny_face_detector")
    x = g.input("input", (None, None, 3))                                  # (N, S, S, 3) normalised
    x = g.layer("conv2d", "conv0", x, kernel=w["conv0/filters"],          # (3, 3, 3, 16)
                bias=w["conv0/bias"], padding="valid", activation="leaky_relu", alpha=LEAKY_ALPHA)
    x = g.layer("max_pool2d", "pool0", x, pool_size=2, stride=2, padding="same")
    for k in range(1, 6):
        x = _separable(g, w, f"conv{k}", x)
        x = g.layer("max_pool2d", f"pool{k}", x, pool_size=2, stride=2 if k < 5 else 1, padding="same")
    x = g.layer("conv2d", "conv8", x, kernel=w["conv8/filters"],          # (1, 1, 512, 25)
                bias=w["conv8/bias"], padding="valid")
    return g.build([x])


def decode(raw: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """(G, G, 25) raw output -> boxes (K, 4) as (x, y, w, h) relative to the square, scores (K,) > min_score.

    Order is row, column, anchor (face-api.js's loop order), which fixes how NMS breaks exact ties.
    """
    grid = raw.shape[0]
    t = raw.reshape(grid, grid, len(ANCHORS), 5).astype(np.float64)        # (row, col, anchor, 5)
    score = 1.0 / (1.0 + np.exp(-t[..., 4]))
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    cx = (cols[..., None] + 1.0 / (1.0 + np.exp(-t[..., 0]))) / grid
    cy = (rows[..., None] + 1.0 / (1.0 + np.exp(-t[..., 1]))) / grid
    bw = np.exp(t[..., 2]) * ANCHORS[:, 0] / grid
    bh = np.exp(t[..., 3]) * ANCHORS[:, 1] / grid
    boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=-1).reshape(-1, 4)
    score = score.reshape(-1)
    keep = score > min_score
    return boxes[keep], score[keep]


class TinyFaceDetector:
    """The tiny face detector; ``detect(image, input_size=416)`` -> list of :class:`Detection`, best first."""

    net = "tiny_face_detector"

    def __init__(self, weights: Mapping[str, np.ndarray] | None = None):
        if weights is None:
            from .weights import load_net_weights
            weights = load_net_weights(self.net)
        w = NetWeights(self.net, weights)
        self.model = build_model(w)
        w.check_all_used()

    @staticmethod
    def _check_options(input_size: int, min_score: float) -> None:
        if not isinstance(input_size, (int, np.integer)) or input_size < 32 or input_size % 32:
            raise ConfigError(f"TinyFaceDetector: input_size must be a positive multiple of 32, found {input_size!r}")
        if not isinstance(min_score, Real) or not 0 < min_score < 1:
            raise ConfigError(f"TinyFaceDetector: min_score must be in (0, 1), found {min_score!r}")

    def preprocess(self, image, input_size: int = DEFAULT_INPUT_SIZE) -> tuple[np.ndarray, int, int]:
        """RGB image -> ((1, S, S, 3) normalised net input, width, height)."""
        x, width, height = detector_input(image, input_size, "TinyFaceDetector.detect")
        return (x - np.asarray(MEAN_RGB, np.float32)) / np.float32(DIVISOR), width, height

    def forward(self, image, input_size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
        """Raw (S/32, S/32, 25) output for one image."""
        self._check_options(input_size, MIN_SCORE)
        x, _, _ = self.preprocess(image, input_size)
        return self.model(x)[0]

    def detect(self, image, min_score: float = MIN_SCORE, input_size: int = DEFAULT_INPUT_SIZE,
               iou_threshold: float = IOU_THRESHOLD) -> list[Detection]:
        """Faces in ``image`` ((H, W, 3) uint8 RGB; greyscale/RGBA accepted), highest score first."""
        self._check_options(input_size, min_score)
        x, width, height = self.preprocess(image, input_size)
        raw = self.model(x)[0]
        return postprocess(raw, width, height, input_size, min_score=min_score, iou_threshold=iou_threshold)


def postprocess(raw: np.ndarray, width: int, height: int, input_size: int, *, min_score: float,
                iou_threshold: float) -> list[Detection]:
    """Decode, NMS, and map the kept boxes from the square to image pixels."""
    boxes, scores = decode(raw, min_score)
    keep = nms(boxes, scores, iou_threshold=iou_threshold)
    sx, sy = square_to_image_scale(width, height, input_size)
    return [Detection(box=(float(boxes[i, 0] * sx * width), float(boxes[i, 1] * sy * height),
                           float(boxes[i, 2] * sx * width), float(boxes[i, 3] * sy * height)),
                      score=float(scores[i]))
            for i in keep]


SPEC = face_net("tiny_face_detector", TinyFaceDetector, 416,
                DETECT.format("416 (any multiple of 32)", "(x - mean RGB) / 256"),
                "small face detector (YOLO-style anchors, separable convs; NMS IoU 0.4)", params=193_321)
