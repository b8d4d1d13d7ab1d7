"""EfficientNet-Lite0 in Keras from ``nnlite/weights/imagenet/efficientnet-lite0-57934424.pth``: TF 'same' padding and
batch-norm epsilon 1e-3, as the TensorFlow original (and the PyTorch port of its weights) compute it."""

from __future__ import annotations

from nnlite.models.imagenet._bundled import require

from .torch_keras import TorchToKeras, state_dict

# (repeats, kernel, first stride, expansion, channels): EfficientNet-B0's stages
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def build(keras):
    t = TorchToKeras(keras, state_dict(require("efficientnet-lite0-57934424.pth")), epsilon=1e-3)
    inp = keras.Input((224, 224, 3), name="input")
    x = t.conv(inp, "_conv_stem", k=3, stride=2, pad="same")
    x = t.relu6(t.bn(x, "_bn0"), "_stem_relu6", ref="_bn0")
    cin, i = 32, 0
    for n, k, s, e, c in STAGES:
        for r in range(n):
            stride, p = (s if r == 0 else 1), f"_blocks.{i}"
            h = x
            if e != 1:
                h = t.conv(h, f"{p}._expand_conv", k=1, pad="same")
                h = t.relu6(t.bn(h, f"{p}._bn0"), f"{p}._expand_relu6", ref=f"{p}._bn0")
            h = t.conv(h, f"{p}._depthwise_conv", k=k, stride=stride, depthwise=True, pad="same")
            h = t.relu6(t.bn(h, f"{p}._bn1"), f"{p}._depthwise_relu6", ref=f"{p}._bn1")
            h = t.bn(t.conv(h, f"{p}._project_conv", k=1, pad="same"), f"{p}._bn2", ref=f"{p}._bn2")
            x = t.add(x, h, p) if stride == 1 and cin == c else h
            cin, i = c, i + 1
    x = t.conv(x, "_conv_head", k=1, pad="same")
    x = t.relu6(t.bn(x, "_bn1"), "_head_relu6", ref="_bn1")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pooling")(x)
    x = t.linear(x, "_fc")
    return keras.Model(inp, x, name="efficientnet_lite0"), t.names
