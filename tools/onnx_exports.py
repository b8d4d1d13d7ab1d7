"""ONNX exports of nnlite's ImageNet classifiers, for the ONNX parity tests.

* ``keras``: a Keras application (seeded, batch-norm-calibrated weights, as ``tools.export_savedmodels``
  makes them) converted by tf2onnx -- runs in CI (TensorFlow and tf2onnx are test dependencies).
* ``torch``: torchvision's MobileNetV2 with nnlite's bundled weights (``weights/imagenet``), exported by
  ``torch.onnx`` -- needs the PyTorch environment, so CI does not regenerate it.

    python -m tools.onnx_exports keras --arch mobilenet_v2 --opset 11 --out mnv2_keras.onnx
    /work/venv-torch/bin/python -m tools.onnx_exports torch --opset 17 --out mnv2_torch.onnx
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
    import tensorflow as tf
    import tf2onnx

    from tools.export_savedmodels import ARCHS, _build_keras, calibrate_batch_norm, random_weights
    size = size or ARCHS[arch][1]
    keras.utils.set_random_seed(SEED)
    model = _build_keras(keras, arch, size)
    model.set_weights(random_weights(model, SEED))
    x = np.random.default_rng(SEED).uniform(-1, 1, (4, size, size, 3)).astype(np.float32)
    calibrate_batch_norm(model, x, SEED)
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="input"),)

    @tf.function(input_signature=spec)
    def forward(t):
        return {"probs": model(t, training=False)}

    tmp = out.with_name(out.name + ".tmp")
    tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset, output_path=str(tmp))
    tmp.replace(out)
    return out


def torch_export(opset: int, out: Path) -> Path:
    """torchvision MobileNetV2 with the bundled ImageNet weights; input "input" (N, 3, 224, 224)."""
    import torch
    import torchvision
    model = torchvision.models.mobilenet_v2()
    state = torch.load(REPO / "weights" / "imagenet" / "mobilenet_v2-b0353104.pth", map_location="cpu")
    model.load_state_dict(state)
    model.eval()
    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, (x,), str(out), input_names=["input"], output_names=["logits"],
                      opset_version=opset, dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", choices=("keras", "torch"))
    p.add_argument("--arch", default="mobilenet_v2")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    path = keras_export(a.arch, a.opset, a.out, a.size) if a.source == "keras" else torch_export(a.opset, a.out)
    print(path)


if __name__ == "__main__":
    main()
