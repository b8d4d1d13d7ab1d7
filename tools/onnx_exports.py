"""ONNX exports of nnlite's ImageNet classifiers, for the ONNX parity tests.

* ``keras``: a Keras application (seeded, batch-norm-calibrated weights, as ``tools.export_savedmodels``
  makes them) converted by tf2onnx -- runs in CI (TensorFlow and tf2onnx are test dependencies).
* ``bundled``: nnlite's bundled ImageNet models with their real weights, as Keras models
  (``tools/imagenet_tf``: squeezenet1_1, mobilenet_v2, efficientnet_lite0) converted by tf2onnx -- runs
  in CI.
* ``torch``: torchvision's MobileNetV2, or EfficientNet-Lite0 (a small PyTorch module below, written
  from the architecture table of ``nnlite/models/imagenet/efficientnet_lite0.py``, TF 'same' padding as
  explicit Pad nodes), with nnlite's bundled weights (``weights/imagenet``), exported by ``torch.onnx``
  -- needs the PyTorch environment, so CI does not regenerate it.

    python -m tools.onnx_exports keras --arch mobilenet_v2 --opset 11 --out mnv2_keras.onnx
    /work/venv-torch/bin/python -m tools.onnx_exports torch --opset 17 --out mnv2_torch.onnx
    /work/venv-torch/bin/python -m tools.onnx_exports torch --arch efficientnet_lite0 --out lite0.onnx
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEED = 1234


def keras_export(arch: str, opset: int, out: Path, size: int | None = None) -> Path:
    """tf2onnx conversion of a seeded Keras application; input "input" (N, size, size, 3) NHWC."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from tools.export_savedmodels import ARCHS, _build_keras, calibrate_batch_norm, random_weights
    size = size or ARCHS[arch][1]
    keras.utils.set_random_seed(SEED)
    model = _build_keras(keras, arch, size)
    model.set_weights(random_weights(model, SEED))
    x = np.random.default_rng(SEED).uniform(-1, 1, (4, size, size, 3)).astype(np.float32)
    calibrate_batch_norm(model, x, SEED)
    return _tf2onnx(model, (size, size, 3), "probs", opset, out)


def _tf2onnx(model, shape: tuple, output: str, opset: int, out: Path) -> Path:
    """A Keras model as ONNX through tf2onnx: input "input" (N, *shape), output ``output``; written to a
    temporary name first, so an interrupted export leaves no file behind."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)

    @tf.function(input_signature=spec)
    def forward(t):
        return {output: model(t, training=False)}

    tmp = out.with_name(out.name + ".tmp")
    tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset, output_path=str(tmp))
    tmp.replace(out)
    return out


def efficientnet_lite0_torch():
    """EfficientNet-Lite0 in PyTorch with the key names of the bundled state dict."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    # EfficientNet-B0's stages (repeats, kernel, first stride, expansion, channels), as in
    # nnlite/models/imagenet/efficientnet_lite0.py (not imported: the PyTorch environment has no Numba)
    blocks_table = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                    (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]

    def same_pad(x, k, s):  # TensorFlow 'same': the odd pixel goes bottom/right
        pads = []
        for n in (x.shape[3], x.shape[2]):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3)

    class Block(nn.Module):
        def __init__(self, cin, cout, k, stride, expand):
            super().__init__()
            hidden, self.k, self.stride = cin * expand, k, stride
            self.skip = stride == 1 and cin == cout
            if expand != 1:
                self._expand_conv, self._bn0 = nn.Conv2d(cin, hidden, 1, bias=False), bn(hidden)
            self._depthwise_conv = nn.Conv2d(hidden, hidden, k, stride, groups=hidden, bias=False)
            self._bn1 = bn(hidden)
            self._project_conv, self._bn2 = nn.Conv2d(hidden, cout, 1, bias=False), bn(cout)

        def forward(self, x):
            h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
            h = F.relu6(self._bn1(self._depthwise_conv(same_pad(h, self.k, self.stride))))
            h = self._bn2(self._project_conv(h))
            return h + x if self.skip else h

    class Lite0(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem, self._bn0 = nn.Conv2d(3, 32, 3, 2, bias=False), bn(32)
            blocks, cin = [], 32
            for repeats, k, s, e, c in blocks_table:
                for r in range(repeats):
                    blocks.append(Block(cin, c, k, s if r == 0 else 1, e))
                    cin = c
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = nn.Conv2d(320, 1280, 1, bias=False), bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x):
            x = F.relu6(self._bn0(self._conv_stem(same_pad(x, 3, 2))))
            for b in self._blocks:
                x = b(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return Lite0()


def bundled_export(name: str, opset: int, out: Path) -> Path:
    """tf2onnx conversion of a bundled model's Keras twin (real ImageNet weights); NHWC input "input"."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tools.imagenet_tf import build

    model, _ = build(name)
    return _tf2onnx(model, tuple(model.inputs[0].shape[1:]), "output", opset, out)


def torch_export(opset: int, out: Path, arch: str = "mobilenet_v2") -> Path:
    """torchvision MobileNetV2 or EfficientNet-Lite0 with the bundled ImageNet weights; input "input"
    (N, 3, 224, 224)."""
    import torch
    import torchvision
    if arch == "mobilenet_v2":
        model, file = torchvision.models.mobilenet_v2(), "mobilenet_v2-b0353104.pth"
    elif arch == "efficientnet_lite0":
        model, file = efficientnet_lite0_torch(), "efficientnet-lite0-57934424.pth"
    else:
        raise SystemExit(f"no torch model for {arch!r}")
    state = torch.load(REPO / "weights" / "imagenet" / file, map_location="cpu")
    model.load_state_dict(state)
    model.eval()
    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, (x,), str(out), input_names=["input"], output_names=["logits"],
                      opset_version=opset, dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", choices=("keras", "bundled", "torch"))
    p.add_argument("--arch", default="mobilenet_v2")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.source == "keras":
        path = keras_export(a.arch, a.opset, a.out, a.size)
    elif a.source == "bundled":
        path = bundled_export(a.arch, a.opset, a.out)
    else:
        path = torch_export(a.opset, a.out, a.arch)
    print(path)


if __name__ == "__main__":
    main()
