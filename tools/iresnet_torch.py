"""IResNet-50/100 in PyTorch (the ArcFace backbone as the paper describes it; see ``tools/onnx_iresnet.py``
for the layer list), loaded with the same NumPy-seeded weights and exported with ``torch.onnx``.

Runs in the PyTorch environment only (torch is not a CI dependency). It checks, once, that the graph
``tools.onnx_iresnet`` builds without PyTorch computes what PyTorch's own export computes (both run by
onnxruntime), and that the export itself matches PyTorch::

    /work/venv-torch/bin/python -m tools.iresnet_torch --depth 50 --opset 17 --out /tmp/iresnet50_torch.onnx
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tools.onnx_iresnet import SEED, STAGES, WIDTHS, iresnet_weights, write


class Unit(nn.Module):
    """BN -> conv 3x3 -> BN -> PReLU -> conv 3x3 (stride) -> BN, plus the (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, depth: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for s, (units, cout) in enumerate(zip(STAGES[depth], WIDTHS), 1):
            setattr(self, f"layer{s}", nn.Sequential(*[Unit(cin if u == 0 else cout, cout, 2 if u == 0 else 1)
                                                       for u in range(units)]))
            cin = cout
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 7 * 7, 512)
        self.features = nn.BatchNorm1d(512, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.dropout(self.bn2(x)), 1)
        return self.features(self.fc(x))


def seeded(depth: int, seed: int = SEED) -> IResNet:
    model = IResNet(depth).eval()
    state = {k: torch.from_numpy(v) for k, v in iresnet_weights(depth, seed).items()}
    own = model.state_dict()
    missing = sorted(set(k for k in own if not k.endswith("num_batches_tracked")) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise SystemExit(f"weight names differ: missing {missing[:5]}, extra {extra[:5]}")
    model.load_state_dict(state, strict=False)
    return model


def main(argv=None) -> None:
    import onnxruntime as ort
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, choices=sorted(STAGES), default=50)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    model = seeded(a.depth)
    x = np.random.default_rng(7).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)
    with torch.no_grad():
        y_torch = model(torch.from_numpy(x)).numpy()
    torch.onnx.export(model, (torch.from_numpy(x[:1]),), str(a.out), input_names=["input"],
                      output_names=["embedding"], opset_version=a.opset, dynamic_axes={"input": {0: "N"}},
                      dynamo=False)
    run = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"input": x})[0]
    y_export = run(a.out)
    with tempfile.TemporaryDirectory() as tmp:
        y_built = run(write(a.depth, Path(tmp) / "built.onnx", a.opset))
    rel = lambda u, v: float(np.linalg.norm(u - v) / np.linalg.norm(v))  # noqa: E731
    print(f"torch {torch.__version__}, IResNet-{a.depth}, opset {a.opset}, seed {SEED}")
    print(f"torch export (onnxruntime) vs torch:           {rel(y_export, y_torch):.3g}")
    print(f"tools.onnx_iresnet (onnxruntime) vs torch:     {rel(y_built, y_torch):.3g}")
    print(f"tools.onnx_iresnet vs torch export (both ORT): {rel(y_built, y_export):.3g}")


if __name__ == "__main__":
    main()
