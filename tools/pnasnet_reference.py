"""Reference logits of PNASNet-5 Large from timm's ``pnasnet5large`` (PyTorch) on the seeded weights of
``tools/pnasnet_seeded.py``, written as the small fixture ``tests/data/pnasnet_timm_logits.npz`` that the
parity tests compare nnlite with (torch and timm are not installed where the tests run).

timm's port uses TF 'SAME' padding (``pad_type='same'``), batch-norm epsilon 1e-3 and takes the class count
as an argument (1001 here, TF-slim's classifier with the background class). Its names map onto TF-slim's:
``cell_0.comb_iter_0_left.separable_1.depthwise_conv2d`` <- ``cell_0/comb_iter_0/left/separable_5x5_1/
depthwise_weights``, ``conv_1x1`` <- ``1x1`` + ``beginning_bn``, ``conv_prev_1x1`` <- ``prev_1x1`` + ``prev_bn``
or the factorized reduction (``path_1.conv`` <- ``path1_conv``, ...), ``last_linear`` <- ``final_layer/FC``;
kernels go from HWIO to OIHW. Every timm parameter and buffer (but the batch counters) is filled exactly once,
and every seeded variable is used, or the tool stops.

Run with the torch venv: ``/work/venv-torch/bin/python -m tools.pnasnet_reference [--sizes 331 64 67]``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from tools.pnasnet_seeded import BN, COMBS, PHOTOS, REPO, SEED, photo_batch, seeded_weights

FIXTURE = REPO / "tests" / "data" / "pnasnet_timm_logits.npz"
TORCH_BN = ("weight", "bias", "running_mean", "running_var")


def timm_names() -> dict[str, str]:
    """timm state-dict key -> TF-slim variable name (kernels still to be transposed)."""
    m: dict[str, str] = {}

    def bn(t, s):
        for a, b in zip(TORCH_BN, BN):
            m[f"{t}.{a}"] = f"{s}/{b}"

    def conv_bn(t_conv, t_bn, s_conv, s_bn):
        m[f"{t_conv}.weight"] = f"{s_conv}/weights"
        bn(t_bn, s_bn)

    def sep(t, s, k):
        for n in (1, 2):
            m[f"{t}.separable_{n}.depthwise_conv2d.weight"] = f"{s}/separable_{k}x{k}_{n}/depthwise_weights"
            m[f"{t}.separable_{n}.pointwise_conv2d.weight"] = f"{s}/separable_{k}x{k}_{n}/pointwise_weights"
            bn(f"{t}.bn_sep_{n}", f"{s}/bn_sep_{k}x{k}_{n}")

    conv_bn("conv_0.conv", "conv_0.bn", "conv0", "conv0_bn")
    cells = ["cell_stem_0", "cell_stem_1"] + [f"cell_{i}" for i in range(12)]
    factorized = {"cell_stem_1", "cell_0", "cell_5", "cell_9"}
    for c in cells:
        conv_bn(f"{c}.conv_1x1.conv", f"{c}.conv_1x1.bn", f"{c}/1x1", f"{c}/beginning_bn")
        if c in factorized:
            m[f"{c}.conv_prev_1x1.path_1.conv.weight"] = f"{c}/path1_conv/weights"
            m[f"{c}.conv_prev_1x1.path_2.conv.weight"] = f"{c}/path2_conv/weights"
            bn(f"{c}.conv_prev_1x1.final_path_bn", f"{c}/final_path_bn")
        elif c != "cell_stem_0":
            conv_bn(f"{c}.conv_prev_1x1.conv", f"{c}.conv_prev_1x1.bn", f"{c}/prev_1x1", f"{c}/prev_bn")
        for i, (k, right) in enumerate(COMBS):
            sep(f"{c}.comb_iter_{i}_left", f"{c}/comb_iter_{i}/left", k)
            if isinstance(right, int):
                sep(f"{c}.comb_iter_{i}_right", f"{c}/comb_iter_{i}/right", right)
        if c == "cell_stem_0":
            conv_bn(f"{c}.comb_iter_0_right.conv", f"{c}.comb_iter_0_right.bn",
                    f"{c}/comb_iter_0/right/1x1", f"{c}/comb_iter_0/right/bn_1")
        if c in ("cell_stem_0", "cell_stem_1", "cell_4", "cell_8"):
            conv_bn(f"{c}.comb_iter_4_right.conv", f"{c}.comb_iter_4_right.bn",
                    f"{c}/comb_iter_4/right/1x1", f"{c}/comb_iter_4/right/bn_1")
    m["last_linear.weight"] = "final_layer/FC/weights"
    m["last_linear.bias"] = "final_layer/FC/biases"
    return m


def to_torch(name: str, a: np.ndarray) -> np.ndarray:
    if a.ndim == 4:
        return a.transpose(2, 3, 0, 1) if "depthwise" in name else a.transpose(3, 2, 0, 1)   # -> OIHW
    return a.T if a.ndim == 2 else a


def timm_model(weights: dict[str, np.ndarray]):
    """timm's pnasnet5large (1001 classes, eval mode) holding ``weights``."""
    import timm
    import torch
    model = timm.create_model("pnasnet5large", pretrained=False, num_classes=1001).eval()
    state = model.state_dict()
    names = timm_names()
    targets = {k for k in state if not k.endswith("num_batches_tracked")}
    if set(names) != targets:
        raise SystemExit(f"name map and timm differ: missing {sorted(targets - set(names))[:5]}, "
                         f"extra {sorted(set(names) - targets)[:5]}")
    if sorted(names.values()) != sorted(weights):
        raise SystemExit(f"name map and seeded variables differ: {sorted(set(weights) ^ set(names.values()))[:5]}")
    new = {}
    for key, var in names.items():
        value = torch.from_numpy(np.ascontiguousarray(to_torch(var, weights[var])))
        if tuple(value.shape) != tuple(state[key].shape):
            raise SystemExit(f"{key} <- {var}: shape {tuple(value.shape)} != timm's {tuple(state[key].shape)}")
        new[key] = value
    model.load_state_dict(new, strict=False)
    return model


def logits(model, x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) in [0, 1] -> (N, 1001): the module's scaling to [-1, 1], then timm (NCHW, float32)."""
    import torch
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(((x - np.float32(0.5)) * np.float32(2)).transpose(0, 3, 1, 2)))
        return model(t).numpy().astype(np.float32)


def main(argv=None) -> None:
    import timm
    import torch
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[331, 64, 67])
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = timm_model(seeded_weights(SEED))
    out, meta = {}, {"seed": SEED, "photos": list(PHOTOS), "tool": "tools/pnasnet_reference.py",
                     "timm": timm.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), "input": "Pillow bilinear resize, /255, "
                     "then (x - 0.5) * 2 as the TF-Hub module; NCHW float32 on CPU", "sha256": {}}
    for size in args.sizes:
        x, digests = photo_batch(size)
        out[f"logits_{size}"] = logits(model, x)
        meta["sha256"][str(size)] = digests
        top = np.argsort(-out[f"logits_{size}"], axis=1)[:, :5]
        print(size, "std", out[f"logits_{size}"].std(axis=1).round(2), "top5", top.tolist())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, meta=np.array(json.dumps(meta)), **out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
