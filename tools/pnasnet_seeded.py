"""Seeded random weights for PNASNet-5 Large under their TF-slim variable names, and the photos the parity
checks feed it. NumPy and Pillow only: the reference tool (``tools/pnasnet_reference.py``, with timm) and the
parity tests (with TensorFlow, no torch) import this and get the same arrays bit for bit.

The variable list is written out here from TF-slim's PNASNet facts (scopes, filter counts), independently of
``nnlite.models.imagenet.pnasnet_large``: the reference tool checks it against timm's parameters (every timm
parameter filled exactly once, shapes equal), nnlite's loader checks it against what the model reads.

Each variable is drawn from its own generator, seeded by (SEED, crc32 of its name), so the values do not
depend on the order variables are listed in. Scales, chosen so activations neither die nor explode through
14 cells of sums and concatenations (batch norm here uses its moving statistics, so it does not renormalise):

- conv / pointwise weights: normal, std sqrt(2 / fan_in) (He); depthwise weights: normal, std 1 / k
- batch norm: gamma uniform [0.6, 1.0], beta and moving_mean normal std 0.01, moving_variance uniform
  [0.5, 1.5]: cell outputs then keep a standard deviation near 1 from the stem to the last cell (measured with
  timm on the photos: 0.6 at conv0, 0.7-1.1 through the cells); larger offsets (std 0.1) drown the image in
  the constant they add, smaller gains let the signal fade
- the last cell's betas: normal, mean -1, std 0.1, so the final ReLU passes the image-specific part of the
  features rather than a common positive mean (without it every photo got the same top-5)
- FC: weights normal std 10 / sqrt(fan_in) (logits with a spread of a few units), biases normal std 0.1
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np

SEED = 20261204
REPO = Path(__file__).resolve().parent.parent
BN = ("gamma", "beta", "moving_mean", "moving_variance")
# (scope, filters, stride); the cell input and the one before it follow from the previous rows
CELLS = [("cell_stem_0", 54, 2), ("cell_stem_1", 108, 2)] + [
    (f"cell_{i}", 216 * (2 if i >= 4 else 1) * (2 if i >= 8 else 1), 2 if i in (4, 8) else 1) for i in range(12)]
COMBS = ((5, "max"), (7, "max"), (5, 3), (3, "max"), (3, "none"))   # (left kernel, right op) per comb_iter


def variable_shapes() -> dict[str, tuple[int, ...]]:
    """Every variable of the inference graph (no auxiliary head), name -> shape, in TF-slim's naming."""
    v: dict[str, tuple[int, ...]] = {}

    def conv(scope, k, cin, cout):
        v[f"{scope}/weights"] = (k, k, cin, cout)

    def bn(scope, c):
        for part in BN:
            v[f"{scope}/{part}"] = (c,)

    def sep(scope, k, cin, cout):
        for n in (1, 2):
            v[f"{scope}/separable_{k}x{k}_{n}/depthwise_weights"] = (k, k, cin, 1)
            v[f"{scope}/separable_{k}x{k}_{n}/pointwise_weights"] = (1, 1, cin, cout)
            bn(f"{scope}/bn_sep_{k}x{k}_{n}", cout)
            cin = cout

    conv("conv0", 3, 3, 96)
    bn("conv0_bn", 96)
    # (channels, spatial size at 331) of the last two outputs; the size only decides factorized reduction
    net, prev = (96, 165), None
    for scope, f, stride in CELLS:
        if prev is None:
            h1 = net[0]                                    # the first stem cell reads the stem conv twice
        elif prev[1] != net[1]:
            conv(f"{scope}/path1_conv", 1, prev[0], f // 2)
            conv(f"{scope}/path2_conv", 1, prev[0], f - f // 2)
            bn(f"{scope}/final_path_bn", f)
            h1 = f
        else:
            conv(f"{scope}/prev_1x1", 1, prev[0], f)
            bn(f"{scope}/prev_bn", f)
            h1 = f
        conv(f"{scope}/1x1", 1, net[0], f)
        bn(f"{scope}/beginning_bn", f)
        for i, (k, right) in enumerate(COMBS):
            left_in = h1 if i in (0, 4) else f
            sep(f"{scope}/comb_iter_{i}/left", k, left_in, f)
            right_in = h1 if i == 0 else f
            if right == "max" and right_in != f:
                conv(f"{scope}/comb_iter_{i}/right/1x1", 1, right_in, f)
                bn(f"{scope}/comb_iter_{i}/right/bn_1", f)
            elif right == "none" and stride == 2:
                conv(f"{scope}/comb_iter_{i}/right/1x1", 1, f, f)
                bn(f"{scope}/comb_iter_{i}/right/bn_1", f)
            elif isinstance(right, int):
                sep(f"{scope}/comb_iter_{i}/right", right, f, f)
        net, prev = (5 * f, (net[1] + 1) // 2 if stride == 2 else net[1]), net
    v["final_layer/FC/weights"] = (net[0], 1001)
    v["final_layer/FC/biases"] = (1001,)
    return v


def _draw(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    leaf = name.rsplit("/", 1)[1]
    if leaf == "gamma":
        return rng.uniform(0.6, 1.0, shape)
    if leaf == "beta" and name.startswith("cell_11/"):
        return rng.normal(-1.0, 0.1, shape)
    if leaf in ("beta", "moving_mean"):
        return rng.normal(0.0, 0.01, shape)
    if leaf == "moving_variance":
        return rng.uniform(0.5, 1.5, shape)
    if leaf == "biases":
        return rng.normal(0.0, 0.1, shape)
    if leaf == "depthwise_weights":
        return rng.normal(0.0, 1.0 / shape[0], shape)
    if name == "final_layer/FC/weights":
        return rng.normal(0.0, 10.0 / np.sqrt(shape[0]), shape)
    fan_in = int(np.prod(shape[:-1]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def seeded_weights(seed: int = SEED) -> dict[str, np.ndarray]:
    """name -> float32 array for every variable of :func:`variable_shapes`."""
    return {name: _draw(name, shape, seed).astype(np.float32) for name, shape in variable_shapes().items()}


def perturbed(weights: dict[str, np.ndarray], name: str, scale: float = 0.5) -> dict[str, np.ndarray]:
    """A copy of ``weights`` whose variable ``name`` is multiplied by (1 + scale) (the rest shared, unchanged)."""
    out = dict(weights)
    out[name] = (weights[name] * np.float32(1 + scale)).astype(np.float32)
    return out


# -- inputs -------------------------------------------------------------------------------------------

PHOTOS = ("nnlite/data/samples/chelsea.png", "nnlite/data/samples/coffee.png",
          "nnlite/data/samples/faces.jpg", "shared/data/faceapi/scenes/bbt1.jpg")


def photo_path(rel: str) -> Path:
    """A photo of :data:`PHOTOS`: in the repo, or under the shared folder (``NNLITE_SHARED``, else ``../shared``)."""
    if rel.startswith("shared/"):
        import os
        shared = Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared"))
        return shared / rel[len("shared/"):]
    return REPO / rel


def photo_batch(size: int) -> tuple[np.ndarray, list[str]]:
    """The photos resized (Pillow bilinear) to ``size`` x ``size``: float32 (N, size, size, 3) in [0, 1] (the
    TF-Hub input convention), and the sha256 of each resized uint8 image (fixtures record them, so a
    different resize is reported as such rather than as a parity failure)."""
    from PIL import Image
    arrays, digests = [], []
    for rel in PHOTOS:
        with Image.open(photo_path(rel)) as im:
            a = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), np.uint8)
        arrays.append(a)
        digests.append(hashlib.sha256(a.tobytes()).hexdigest())
    return np.stack(arrays).astype(np.float32) / np.float32(255.0), digests


def write_bundle(weights: dict[str, np.ndarray], prefix: str | Path) -> None:
    """Write ``weights`` as a TensorFlow tensor bundle (``prefix.index`` + ``prefix.data-00000-of-00001``) with
    TensorFlow's own writer (the SaveV2 kernel that checkpoints and SavedModels use). Needs TensorFlow."""
    import tensorflow as tf
    names = sorted(weights)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(weights[n]) for n in names])
