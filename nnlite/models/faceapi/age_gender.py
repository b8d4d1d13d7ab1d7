"""AgeGenderNet: age (years) and gender from a face crop (face-api.js ``age_gender_model``).

Feature extractor: a tiny Xception with 2 middle blocks ("TinyXception")::

    input (N, 112, 112, 3)  RGB, centred pad to square, tfjs bilinear resize, (x - MEAN_RGB) / 256
    entry_flow/conv_in                conv 3x3/2 'same' + ReLU                     -> (N, 56, 56, 32)
    entry_flow/reduction_block_0      (no input ReLU)                              -> (N, 28, 28, 64)
    entry_flow/reduction_block_1                                                   -> (N, 14, 14, 128)
    middle_flow/main_block_0, _1      3 x (ReLU, separable conv) + residual        -> (N, 14, 14, 128)
    exit_flow/reduction_block                                                      -> (N, 7, 7, 256)
    exit_flow/separable_conv          separable conv + ReLU                        -> (N, 7, 7, 512)
    avg_pool 7x7 / 2 'valid', flatten                                              -> (N, 512)
    fc/age     dense 512 -> 1    (age in years, raw regression)
    fc/gender  dense 512 -> 2, softmax   (index 0 = male)

A reduction block: [ReLU] -> separable conv -> ReLU -> separable conv -> max pool 3x3/2 'same', plus a
1x1/2 "expansion" conv of the block input as the shortcut.
"""

from __future__ import annotations

from ...graph import GraphBuilder
from ._spec import CROP, face_net
from .common import FaceNet, NetWeights, as_image_list, separable


def reduction_block(g: GraphBuilder, w: NetWeights, name: str, x: str, *, activate_input: bool = True) -> str:
    out = g.layer("relu", f"{name}/relu_in", x) if activate_input else x
    out = separable(g, w, f"{name}/separable_conv0", out, activation="relu")    # ReLU of the next step fused
    out = separable(g, w, f"{name}/separable_conv1", out)
    out = g.layer("max_pool2d", f"{name}/max_pool", out, pool_size=3, stride=2, padding="same")
    shortcut = g.layer("conv2d", f"{name}/expansion_conv", x,
                       kernel=w[f"{name}/expansion_conv/filters"],   # (1, 1, cin, cout)
                       bias=w[f"{name}/expansion_conv/bias"], stride=2, padding="same")
    return g.layer("add", f"{name}/add", out, shortcut)


def main_block(g: GraphBuilder, w: NetWeights, name: str, x: str) -> str:
    out = g.layer("relu", f"{name}/relu_in", x)
    out = separable(g, w, f"{name}/separable_conv0", out, activation="relu")
    out = separable(g, w, f"{name}/separable_conv1", out, activation="relu")
    out = separable(g, w, f"{name}/separable_conv2", out)
    return g.layer("add", f"{name}/add", out, x)


class AgeGenderNet(FaceNet):
    net = "age_gender"
    input_size = 112
    divisor = 256.0
    n_main_blocks = 2

    def build(self, w: NetWeights, g: GraphBuilder, x: str):
        x = g.layer("conv2d", "entry_flow/conv_in", x, kernel=w["entry_flow/conv_in/filters"],  # (3, 3, 3, 32)
                    bias=w["entry_flow/conv_in/bias"], stride=2, padding="same", activation="relu")
        x = reduction_block(g, w, "entry_flow/reduction_block_0", x, activate_input=False)
        x = reduction_block(g, w, "entry_flow/reduction_block_1", x)
        for i in range(self.n_main_blocks):
            x = main_block(g, w, f"middle_flow/main_block_{i}", x)
        x = reduction_block(g, w, "exit_flow/reduction_block", x)
        x = separable(g, w, "exit_flow/separable_conv", x, activation="relu")       # (N, 7, 7, 512)
        x = g.layer("avg_pool2d", "avg_pool", x, pool_size=7, stride=2, padding="valid")
        x = g.layer("flatten", "flatten", x)                                        # (N, 512)
        age = g.layer("dense", "fc/age", x, kernel=w["fc/age/weights"], bias=w["fc/age/bias"])  # (N, 1)
        gender = g.layer("dense", "fc/gender", x, kernel=w["fc/gender/weights"],                # (N, 2)
                         bias=w["fc/gender/bias"])
        gender = g.layer("softmax", "fc/gender/softmax", gender)
        return g.build([age, gender])

    def predict_age_gender(self, images):
        """{"age", "gender", "gender_probability"} for one image, or a list for a list of images.

        gender is "male" when p(male) > 0.5; gender_probability is the chosen gender's probability.
        """
        images, single = as_image_list(images)
        age, gender = self.forward(images)
        out = []
        for a, (p_male, _) in zip(age[:, 0], gender):
            male = p_male > 0.5
            out.append({"age": float(a), "gender": "male" if male else "female",
                        "gender_probability": float(p_male if male else 1.0 - p_male)})
        return out[0] if single else out


SPEC = face_net("age_gender", AgeGenderNet, 112, CROP.format(112, 256),
                "age (years) and gender (tiny Xception)", params=421_731)
