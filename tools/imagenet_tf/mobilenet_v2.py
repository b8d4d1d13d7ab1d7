"""torchvision's MobileNetV2 in Keras, from ``nnlite/weights/imagenet/mobilenet_v2-b0353104.pth``
(see the package doc)."""

from __future__ import annotations

from nnlite.models.imagenet._bundled import require

from .torch_keras import TorchToKeras, state_dict

# (expansion, channels, repeats, first stride): Table 2 of the MobileNetV2 paper
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]


def _conv_bn_relu6(t: TorchToKeras, x, prefix: str, *, k: int, stride: int = 1, depthwise: bool = False):
    """torchvision's Conv2dNormActivation: modules .0 conv, .1 BN, .2 ReLU6."""
    x = t.conv(x, f"{prefix}.0", k=k, stride=stride, depthwise=depthwise)
    x = t.bn(x, f"{prefix}.1")
    return t.relu6(x, f"{prefix}.2", ref=f"{prefix}.2")


def build(keras):
    t = TorchToKeras(keras, state_dict(require("mobilenet_v2-b0353104.pth")), epsilon=1e-5)
    inp = keras.Input((224, 224, 3), name="input")
    x = _conv_bn_relu6(t, inp, "features.0", k=3, stride=2)
    cin, i = 32, 1
    for e, c, n, s in SETTINGS:
        for r in range(n):
            stride, p = (s if r == 0 else 1), f"features.{i}.conv"
            h, j = x, 0
            if e != 1:
                h, j = _conv_bn_relu6(t, h, f"{p}.0", k=1), 1
            h = _conv_bn_relu6(t, h, f"{p}.{j}", k=3, stride=stride, depthwise=True)
            h = t.conv(h, f"{p}.{j + 1}", k=1)
            h = t.bn(h, f"{p}.{j + 2}", ref=f"{p}.{j + 2}")
            x = t.add(x, h, f"features.{i}") if stride == 1 and cin == c else h
            cin, i = c, i + 1
    x = _conv_bn_relu6(t, x, "features.18", k=1)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = t.linear(x, "classifier.1")
    return keras.Model(inp, x, name="mobilenet_v2"), t.names
