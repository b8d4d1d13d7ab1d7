"""The face-api.js nets (one file per net); importing this registers them."""

from __future__ import annotations

import importlib

from ..registry import ModelSpec, register
from .weights import weights_present


def _face_net(name: str, module: str, cls: str, size: int, preprocessing: str, description: str,
              params: int | None = None) -> ModelSpec:
    """A registry entry whose loader imports the net's module only when the model is loaded."""
    def load():
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return ModelSpec(name=name, family="faceapi", description=description, input_size=(size, size),
                     preprocessing=preprocessing, load=load, weights_present=lambda: weights_present(name),
                     params=params)


_CROP = "RGB face crop, centred zero pad to square, bilinear resize {0} (tfjs rule), (x - mean RGB) / {1}"
# params: as the built graph counts them (the recognition net's scale layers are folded into its convs)
register(_face_net("face_landmark_68", "face_landmark_68", "FaceLandmark68Net", 112, _CROP.format(112, 255),
                   "68 facial landmarks (dense blocks of separable convs)", 356_840))
register(_face_net("face_landmark_68_tiny", "face_landmark_68_tiny", "FaceLandmark68TinyNet", 112,
                   _CROP.format(112, 255), "68 facial landmarks, small and fast", 77_224))
register(_face_net("face_recognition", "face_recognition", "FaceRecognitionNet", 150, _CROP.format(150, 256),
                   "128-d face descriptor (ResNet; same person if distance < 0.6)", 5_607_488))
register(_face_net("age_gender", "age_gender", "AgeGenderNet", 112, _CROP.format(112, 256),
                   "age (years) and gender (tiny Xception)", 421_731))
register(_face_net("face_expression", "face_expression", "FaceExpressionNet", 112, _CROP.format(112, 255),
                   "7 facial expressions (neutral, happy, sad, angry, fearful, disgusted, surprised)", 323_687))

_DETECT = "RGB photo, zero pad bottom/right to square, bilinear resize {0} (tfjs rule), {1}"
register(_face_net("ssd_mobilenetv1", "ssd_mobilenetv1", "SsdMobilenetv1", 512,
                   _DETECT.format(512, "x / 127.5 - 1"),
                   "face detector (SSD, MobileNetV1 backbone; boxes + scores, NMS IoU 0.5)", 5_540_639))
register(_face_net("tiny_face_detector", "tiny_face_detector", "TinyFaceDetector", 416,
                   _DETECT.format("416 (any multiple of 32)", "(x - mean RGB) / 256"),
                   "small face detector (YOLO-style anchors, separable convs; NMS IoU 0.4)", 193_321))
