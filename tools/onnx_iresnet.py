"""IResNet (ArcFace's face-recognition backbone) as an ONNX file, built with the ``onnx`` package from
NumPy-seeded weights, so CI can regenerate it without PyTorch.

Architecture, from the ArcFace paper (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
Recognition", section 3.2 / fig. 7: the improved residual unit BN-Conv-BN-PReLU-Conv-BN and output
option E, BN-Dropout-FC-BN) for a 112x112 aligned face:

* stem: conv 3x3 (3 -> 64), BN, PReLU;
* four stages of 64, 128, 256, 512 channels, each starting with a stride-2 unit whose shortcut is a
  1x1 stride-2 conv + BN; units per stage (3, 4, 14, 3) for IResNet-50, (3, 13, 30, 3) for IResNet-100;
* unit: BN -> conv 3x3 -> BN -> PReLU -> conv 3x3 (stride) -> BN, plus the shortcut;
* head: BN -> Dropout -> Flatten (512 x 7 x 7) -> fully connected 512 -> BN: the 512-d embedding.

Weight names follow the usual PyTorch module names (``layer2.0.conv1.weight``), so
``tools/iresnet_torch.py`` loads the very same arrays into its PyTorch model and its export can be
checked against this file (both run by onnxruntime). Usage::

    python -m tools.onnx_iresnet --depth 50 --opset 17 --out iresnet50.onnx [--external]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

STAGES = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
WIDTHS = (64, 128, 256, 512)
SEED = 20261204


def _bn(w: dict, name: str, c: int, rng, gamma: float = 1.0) -> None:
    w[f"{name}.weight"] = (gamma * rng.uniform(0.5, 1.0, c)).astype(np.float32)
    w[f"{name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
    w[f"{name}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
    w[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)


def _conv(w: dict, name: str, cout: int, cin: int, k: int, rng) -> None:
    w[name] = (rng.standard_normal((cout, cin, k, k), np.float32) * np.float32(np.sqrt(2.0 / (cin * k * k))))


def iresnet_weights(depth: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Seeded weights by PyTorch module name. The last BN of each unit is scaled down (gamma ~0.2) so the
    residual sum stays in range through 100 units, as trained networks keep it."""
    rng = np.random.default_rng(seed + depth)
    w: dict[str, np.ndarray] = {}
    _conv(w, "conv1.weight", 64, 3, 3, rng)
    _bn(w, "bn1", 64, rng)
    w["prelu.weight"] = rng.uniform(0.1, 0.3, 64).astype(np.float32)
    cin = 64
    for s, (units, cout) in enumerate(zip(STAGES[depth], WIDTHS), 1):
        for u in range(units):
            p = f"layer{s}.{u}"
            _bn(w, f"{p}.bn1", cin, rng)
            _conv(w, f"{p}.conv1.weight", cout, cin, 3, rng)
            _bn(w, f"{p}.bn2", cout, rng)
            w[f"{p}.prelu.weight"] = rng.uniform(0.1, 0.3, cout).astype(np.float32)
            _conv(w, f"{p}.conv2.weight", cout, cout, 3, rng)
            _bn(w, f"{p}.bn3", cout, rng, gamma=0.2)
            if u == 0:
                _conv(w, f"{p}.downsample.0.weight", cout, cin, 1, rng)
                _bn(w, f"{p}.downsample.1", cout, rng)
            cin = cout
    _bn(w, "bn2", 512, rng)
    w["fc.weight"] = (rng.standard_normal((512, 512 * 49), np.float32) * np.float32(np.sqrt(1.0 / (512 * 49))))
    w["fc.bias"] = rng.normal(0, 0.01, 512).astype(np.float32)
    _bn(w, "features", 512, rng)
    return w


def build(depth: int, opset: int = 17, seed: int = SEED):
    """The IResNet as an ``onnx.ModelProto`` (input "input" (N, 3, 112, 112), output "embedding" (N, 512))."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = iresnet_weights(depth, seed)
    nodes = []

    def bn(x, name):
        out = f"{name}_out"
        nodes.append(helper.make_node("BatchNormalization", [x] + [f"{name}.{k}" for k in
                                      ("weight", "bias", "running_mean", "running_var")], [out], name=name,
                                      epsilon=1e-5))
        return out

    def conv(x, name, stride, pad):
        out = f"{name}_out"
        k = w[f"{name}.weight"].shape[-1]
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight"], [out], name=name, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[pad] * 4))
        return out

    def prelu(x, name):
        out = f"{name}_out"
        slope = f"{name}.slope"
        w[slope] = w.pop(f"{name}.weight").reshape(-1, 1, 1)  # (C, 1, 1): broadcasts over (N, C, H, W)
        nodes.append(helper.make_node("PRelu", [x, slope], [out], name=name))
        return out

    x = prelu(bn(conv("input", "conv1", 1, 1), "bn1"), "prelu")
    for s, units in enumerate(STAGES[depth], 1):
        for u in range(units):
            p = f"layer{s}.{u}"
            y = bn(x, f"{p}.bn1")
            y = prelu(bn(conv(y, f"{p}.conv1", 1, 1), f"{p}.bn2"), f"{p}.prelu")
            y = bn(conv(y, f"{p}.conv2", 2 if u == 0 else 1, 1), f"{p}.bn3")
            short = bn(conv(x, f"{p}.downsample.0", 2, 0), f"{p}.downsample.1") if u == 0 else x
            nodes.append(helper.make_node("Add", [y, short], [f"{p}_out"], name=f"{p}.add"))
            x = f"{p}_out"
    x = bn(x, "bn2")
    nodes.append(helper.make_node("Dropout", [x], ["dropout_out"], name="dropout"))
    nodes.append(helper.make_node("Flatten", ["dropout_out"], ["flat"], name="flatten", axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["fc_out"], name="fc", transB=1))
    nodes.append(helper.make_node("BatchNormalization", ["fc_out", "features.weight", "features.bias",
                                  "features.running_mean", "features.running_var"], ["embedding"],
                                  name="features", epsilon=1e-5))
    graph = helper.make_graph(
        nodes, f"iresnet{depth}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])],
        initializer=[numpy_helper.from_array(v, k) for k, v in w.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="nnlite tools.onnx_iresnet")
    model.ir_version = 6 if opset <= 11 else 8
    onnx.checker.check_model(model)
    return model


def write(depth: int, out: Path, opset: int = 17, external: bool = False, seed: int = SEED) -> Path:
    import onnx
    model = build(depth, opset, seed)
    out = Path(out)
    if external:  # weights in "<name>.data" beside the graph
        onnx.save_model(model, out, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=out.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, out)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, choices=sorted(STAGES), default=50)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--external", action="store_true", help="store the weights in a .data file beside it")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    print(write(a.depth, a.out, a.opset, a.external, a.seed))


if __name__ == "__main__":
    main()
