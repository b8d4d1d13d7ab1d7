"""timm's ``pnasnet5large`` with the seeded weights, exported to ONNX for the onnxruntime speed comparison.

Input ``x``: (N, 3, 331, 331) float32 in [-1, 1] (NCHW, after the module's scaling); output ``logits`` (N, 1001).
The export is TorchScript-based (``dynamo=False``), opset 17, with a free batch size. The file (about 345 MB)
goes to the benchmark cache, never into the repository.

Run with the torch venv: ``/work/venv-torch/bin/python -m tools.pnasnet_onnx OUT.onnx``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.pnasnet_reference import timm_model
from tools.pnasnet_seeded import SEED, seeded_weights


def export(out: Path, size: int = 331) -> Path:
    import torch
    model = timm_model(seeded_weights(SEED))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 3, size, size), str(out), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    print(export(args.out))


if __name__ == "__main__":
    main()
