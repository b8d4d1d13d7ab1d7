"""FaceRecognitionNet: a 128-d face descriptor (face-api.js ``face_recognition_model``, a port of dlib's
ResNet-34-like face recognition net). Two faces of one person are usually closer than 0.6 (Euclidean).

    input (N, 150, 150, 3)  RGB, centred pad to square, tfjs bilinear resize, (x - MEAN_RGB) / 256
    conv32_down      conv 7x7/2 'valid' + scale + ReLU                          -> (N, 72, 72, 32)
    max_pool         3x3/2 'valid'                                              -> (N, 35, 35, 32)
    conv32_1..3      residual blocks                                            -> (N, 35, 35, 32)
    conv64_down      residual down block                                        -> (N, 17, 17, 64)
    conv64_1..3                                                                 -> (N, 17, 17, 64)
    conv128_down, conv128_1..2                                                  -> (N, 8, 8, 128)
    conv256_down, conv256_1..2                                                  -> (N, 4, 4, 256)
    conv256_down_out                                                            -> (N, 2, 2, 256)
    global average, fc 256 -> 128 (no bias)                                     -> (N, 128)

Every conv is followed by a per-channel "scale" layer (x * weights + biases); it is folded into the
conv kernel and bias at load time. A residual block: conv 3x3 + ReLU, conv 3x3, add the input, ReLU.
A down block: conv 3x3/2 'valid' + ReLU, conv 3x3 'same'; the shortcut is a 2x2/2 average pool of the
input, with zero channels appended where the channels double; when the conv branch comes out one pixel smaller
(odd sizes) it gets a zero row at the bottom and a zero column at the right.
"""

from __future__ import annotations

import numpy as np

from ... import ops
from ...graph import GraphBuilder
from ._spec import CROP, face_net
from .common import FaceNet, NetWeights, as_image_list


def append_zero_channels(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N, H, W, 2C): the shortcut of a down block, padded with C zero channels."""
    return np.concatenate([x, np.zeros_like(x)], axis=-1)


def conv_scale(g: GraphBuilder, w: NetWeights, name: str, x: str, *, stride: int = 1, padding="same",
               activation=None) -> str:
    """conv + bias + per-channel scale, folded into one conv (scale: x * weights + biases)."""
    kernel, bias = ops.fold_batch_norm(
        w[f"{name}/conv/filters"], w[f"{name}/conv/bias"],          # (kh, kw, cin, cout), (cout,)
        w[f"{name}/scale/weights"], w[f"{name}/scale/biases"],      # (cout,), (cout,)
        np.zeros_like(w[f"{name}/scale/biases"]), np.ones_like(w[f"{name}/scale/weights"]), epsilon=0.0)
    return g.layer("conv2d", name, x, kernel=kernel, bias=bias, stride=stride, padding=padding,
                   activation=activation, covers=(f"{name}/conv", f"{name}/scale"))


def residual(g: GraphBuilder, w: NetWeights, name: str, x: str) -> str:
    out = conv_scale(g, w, f"{name}/conv1", x, activation="relu")
    out = conv_scale(g, w, f"{name}/conv2", out)
    return g.layer("relu", f"{name}/relu", g.layer("add", f"{name}/add", out, x))


def residual_down(g: GraphBuilder, w: NetWeights, name: str, x: str, size: int) -> tuple[str, int]:
    """A down block on a (size x size) input; returns the output and its size."""
    out = conv_scale(g, w, f"{name}/conv1", x, stride=2, padding="valid", activation="relu")
    out = conv_scale(g, w, f"{name}/conv2", out)
    conv_size, pooled_size = (size - 3) // 2 + 1, size // 2
    if conv_size != pooled_size:               # odd sizes: the conv branch is one pixel short
        out = g.layer("zero_pad2d", f"{name}/pad", out, padding=(0, 1, 0, 1))
    pooled = g.layer("avg_pool2d", f"{name}/avg_pool", x, pool_size=2, stride=2, padding="valid")
    cin, cout = w[f"{name}/conv1/conv/filters"].shape[2:]        # (3, 3, cin, cout)
    if cin != cout:                            # channels double: zero channels complete the shortcut
        pooled = g.layer(append_zero_channels, f"{name}/zero_channels", pooled)
    return g.layer("relu", f"{name}/relu", g.layer("add", f"{name}/add", pooled, out)), pooled_size


class FaceRecognitionNet(FaceNet):
    net = "face_recognition"
    input_size = 150
    divisor = 256.0

    def build(self, w: NetWeights, g: GraphBuilder, x: str):
        x = conv_scale(g, w, "conv32_down", x, stride=2, padding="valid", activation="relu")  # 72x72
        x = g.layer("max_pool2d", "max_pool", x, pool_size=3, stride=2, padding="valid")      # 35x35
        size = 35
        for stage in ("32", "64", "128", "256"):
            n_plain = {"32": 3, "64": 3, "128": 2, "256": 2}[stage]
            if stage != "32":
                x, size = residual_down(g, w, f"conv{stage}_down", x, size)
            for i in range(1, n_plain + 1):
                x = residual(g, w, f"conv{stage}_{i}", x)
        x, size = residual_down(g, w, "conv256_down_out", x, size)                           # 2x2x256
        x = g.layer("global_avg_pool2d", "global_avg", x)                                    # (N, 256)
        x = g.layer("dense", "fc", x, kernel=w["fc"])                                        # (256, 128)
        return g.build([x])

    def compute_descriptor(self, images):
        """(128,) float32 descriptor for one image, or a list of them for a list of images."""
        images, single = as_image_list(images)
        out = np.asarray(self.forward(images), np.float32)
        return out[0] if single else list(out)


SPEC = face_net("face_recognition", FaceRecognitionNet, 150, CROP.format(150, 256),
                "128-d face descriptor (ResNet; same person if distance < 0.6)", params=5_607_488)
