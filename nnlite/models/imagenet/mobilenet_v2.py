"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

Weights: torchvision's ImageNet-1k checkpoint ``mobilenet_v2-b0353104.pth``, read as stored (legacy
``torch.save`` state dict, no torch needed); layer names are its key prefixes (``features.3.conv.1.0``).
Input 224 x 224 RGB, torchvision normalisation (see :func:`nnlite.preprocess.torch_preprocess`).
Output: logits (the softmax is the classifier's).

    features.0       conv 3x3/2, 32, BN, ReLU6
    features.1..17   inverted residual blocks, table ``BLOCKS`` (expand t, channels c, repeats n, stride s)
                     1x1 expand (t > 1) -> depthwise 3x3 -> 1x1 linear projection; + input when the
                     stride is 1 and the channel count is unchanged
    features.18      conv 1x1, 1280, BN, ReLU6
    global average -> classifier.1 dense 1000 (classifier.0 is dropout: nothing at inference)

PyTorch conventions (OIHW kernels, symmetric padding, BN epsilon 1e-5) are handled in ``_torch``.
"""

from __future__ import annotations

from functools import partial

from ...graph import GraphBuilder, Model
from ...preprocess import torch_preprocess
from ._spec import bundled, classifier
from ._torch import StateDict, classifier_head, conv_bn, torch_loader

NAME = "mobilenet_v2"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
INPUT_SIZE = (224, 224)

# (expansion t, output channels c, repeats n, first stride s) - Table 2 of the paper
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
          (6, 320, 1, 1)]


def _inverted_residual(g: GraphBuilder, sd: StateDict, i: int, x: str, cin: int, cout: int, t: int,
                       stride: int) -> str:
    p = f"features.{i}.conv"
    hidden = cin * t
    h, n = x, 0   # n: index of the next module inside the block's nn.Sequential
    if t != 1:
        h = conv_bn(g, sd, f"{p}.0.0", f"{p}.0.1", h, cin=cin, cout=hidden, k=1, activation="relu6",
                    covers=(f"{p}.0.0", f"{p}.0.1", f"{p}.0.2"))
        n = 1
    h = conv_bn(g, sd, f"{p}.{n}.0", f"{p}.{n}.1", h, cin=hidden, cout=hidden, k=3, stride=stride,
                depthwise=True, activation="relu6", covers=(f"{p}.{n}.0", f"{p}.{n}.1", f"{p}.{n}.2"))
    h = conv_bn(g, sd, f"{p}.{n + 1}", f"{p}.{n + 2}", h, cin=hidden, cout=cout, k=1)   # linear bottleneck
    if stride == 1 and cin == cout:
        h = g.layer("add", f"features.{i}", x, h)
    return h


def build(sd: StateDict) -> Model:
    g = GraphBuilder(NAME)
    x = g.input("input", (*INPUT_SIZE, 3))                                              # (224, 224, 3)
    x = conv_bn(g, sd, "features.0.0", "features.0.1", x, cin=3, cout=32, k=3, stride=2, activation="relu6",
                covers=("features.0.0", "features.0.1", "features.0.2"))                # (112, 112, 32)
    cin, i = 32, 1
    for t, c, n, s in BLOCKS:
        for r in range(n):
            x = _inverted_residual(g, sd, i, x, cin, c, t, s if r == 0 else 1)          # ... (7, 7, 320)
            cin, i = c, i + 1
    x = conv_bn(g, sd, "features.18.0", "features.18.1", x, cin=320, cout=1280, k=1, activation="relu6",
                covers=("features.18.0", "features.18.1", "features.18.2"))             # (7, 7, 1280)
    return classifier_head(g, sd, x, "pool", "classifier.1", cin=1280)                  # (1000,) logits


load_model = torch_loader(NAME, WEIGHTS_FILE, build)


SPEC = classifier(NAME, load_model, INPUT_SIZE, output="logits", params=3_487_816,
                  **bundled(WEIGHTS_FILE, "torchvision"),
                  description="MobileNetV2 1.0, torchvision ImageNet weights (71.9% top-1)",
                  preprocess=partial(torch_preprocess, 224, resize_to=256),
                  preprocessing="torch: resize shorter side 256 (bilinear), centre crop 224, /255, ImageNet mean/std")
