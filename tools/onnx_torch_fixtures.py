"""Small PyTorch CNNs exported by torch.onnx, committed as test fixtures (tests/data/onnx/) so CI, which has
no PyTorch, still runs files written by PyTorch's exporters: the TorchScript exporter at opset 11 and
the torch.export-based (dynamo) exporter at opset 18.

The net is tiny (seeded weights, about 20 k parameters) but uses the patterns real exports contain:
conv + batch norm (folded by the exporter), ReLU6 as Clip, a depthwise inverted residual, Hardswish,
bilinear upsampling (Resize), max pooling with ceil_mode, a view keyed on ``x.size(0)`` (Shape -> Gather
-> Unsqueeze -> Concat -> Reshape), adaptive average pooling and a linear head.

    /work/venv-torch/bin/python -m tools.onnx_torch_fixtures        # rewrites tests/data/onnx/*.onnx
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "onnx"
SEED = 11


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.side = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Linear(16 + 8 * 4 * 4, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.dw(self.expand(x)))
        up = F.interpolate(self.pool(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        side = F.adaptive_avg_pool2d(self.side(up), 4).view(x.size(0), -1)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return torch.softmax(self.head(torch.cat([pooled, side], 1)), dim=1)


def seeded() -> Tiny:
    torch.manual_seed(SEED)
    model = Tiny()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so folding them is visible
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = seeded()
    x = torch.randn(2, 3, 32, 32)
    legacy = OUT / "tiny_torchscript_opset11.onnx"
    torch.onnx.export(model, (x,), str(legacy), input_names=["input"], output_names=["probs"], opset_version=11,
                      dynamic_axes={"input": {0: "N"}, "probs": {0: "N"}}, dynamo=False)
    dyn = OUT / "tiny_dynamo_opset18.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(model, (x,), str(dyn), input_names=["input"], output_names=["probs"], opset_version=18,
                      dynamic_shapes={"x": {0: batch}}, dynamo=True, external_data=False)
    for path in (legacy, dyn):
        print(path.name, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    print(f"torch {torch.__version__}, seed {SEED}")


if __name__ == "__main__":
    main()
