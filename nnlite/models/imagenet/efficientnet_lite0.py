"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet"; the Lite variants of TensorFlow's reference code).

Lite0 is EfficientNet-B0 made friendly to integer hardware: ReLU6 instead of swish, no
squeeze-and-excitation, stem and head not scaled. Weights: the TensorFlow checkpoint ported to PyTorch
(``efficientnet-lite0-57934424.pth``, an EfficientNet-PyTorch style state dict); layer names are its key
prefixes (``_blocks.3._depthwise_conv``). Input 224 x 224 RGB, (x - 127) / 128.
Output: logits (the softmax is the classifier's).

    _conv_stem      conv 3x3/2, 32, BN, ReLU6
    _blocks.0..15   MBConv blocks, table ``BLOCKS`` (repeats, kernel, stride, expansion, channels):
                    1x1 expand (expansion > 1) -> depthwise k x k -> 1x1 linear projection;
                    + input when the stride is 1 and the channel count is unchanged
    _conv_head      conv 1x1, 1280, BN, ReLU6
    global average -> _fc dense 1000

Conventions of this port: kernels OIHW (converted in ``_torch``), but because the weights come from
TensorFlow the port pads like TF 'same' (extra row/column at the bottom/right) and its batch norms
use epsilon 1e-3, unlike torchvision.
"""

from __future__ import annotations

from functools import partial

from ...graph import GraphBuilder, Model
from ...preprocess import tf_crop_preprocess
from ._spec import bundled, classifier
from ._torch import StateDict, classifier_head, conv_bn, torch_loader

NAME = "efficientnet_lite0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INPUT_SIZE = (224, 224)
BN_EPSILON = 1e-3   # TensorFlow's, kept by the port

# (repeats, kernel, first stride, expansion, output channels) - EfficientNet-B0's stages
BLOCKS = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _mbconv(g: GraphBuilder, sd: StateDict, i: int, x: str, cin: int, cout: int, k: int, stride: int,
            expand: int) -> str:
    p = f"_blocks.{i}"
    hidden = cin * expand
    h = x
    if expand != 1:
        h = conv_bn(g, sd, f"{p}._expand_conv", f"{p}._bn0", h, cin=cin, cout=hidden, k=1, padding="same",
                    activation="relu6", epsilon=BN_EPSILON)
    h = conv_bn(g, sd, f"{p}._depthwise_conv", f"{p}._bn1", h, cin=hidden, cout=hidden, k=k, stride=stride,
                depthwise=True, padding="same", activation="relu6", epsilon=BN_EPSILON)
    h = conv_bn(g, sd, f"{p}._project_conv", f"{p}._bn2", h, cin=hidden, cout=cout, k=1, padding="same",
                epsilon=BN_EPSILON)                                                     # linear bottleneck
    if stride == 1 and cin == cout:
        h = g.layer("add", p, x, h)
    return h


def build(sd: StateDict) -> Model:
    g = GraphBuilder(NAME)
    x = g.input("input", (*INPUT_SIZE, 3))                                              # (224, 224, 3)
    x = conv_bn(g, sd, "_conv_stem", "_bn0", x, cin=3, cout=32, k=3, stride=2, padding="same",
                activation="relu6", epsilon=BN_EPSILON)                                 # (112, 112, 32)
    cin, i = 32, 0
    for repeats, k, s, e, c in BLOCKS:
        for r in range(repeats):
            x = _mbconv(g, sd, i, x, cin, c, k, s if r == 0 else 1, e)                  # ... (7, 7, 320)
            cin, i = c, i + 1
    x = conv_bn(g, sd, "_conv_head", "_bn1", x, cin=320, cout=1280, k=1, padding="same", activation="relu6",
                epsilon=BN_EPSILON)                                                     # (7, 7, 1280)
    return classifier_head(g, sd, x, "_avg_pooling", "_fc", cin=1280)                   # (1000,) logits


load_model = torch_loader(NAME, WEIGHTS_FILE, build)


SPEC = classifier(NAME, load_model, INPUT_SIZE, output="logits", params=4_631_000,
                  **bundled(WEIGHTS_FILE, "ported to PyTorch"),
                  description="EfficientNet-Lite0, TF ImageNet weights ported to PyTorch",
                  preprocess=partial(tf_crop_preprocess, 224, crop_padding=32, mean=127.0, std=128.0),
                  preprocessing="tf: centre crop 224/256 of shorter side, bicubic resize 224, (x - 127) / 128")
