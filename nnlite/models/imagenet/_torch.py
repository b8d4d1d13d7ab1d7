"""Reading PyTorch state dicts into NHWC layers: the conventions that differ from TensorFlow.

- Kernels are stored OIHW (cout, cin, kh, kw); nnlite wants HWIO (kh, kw, cin, cout). A depthwise
  kernel is (channels, 1, kh, kw) -> (kh, kw, channels, 1).
- PyTorch pads symmetrically by an explicit amount (``padding=(k - 1) // 2`` in torchvision), which
  differs from TF 'same' at stride 2, so layers here always get explicit (top, bottom, left, right).
- BatchNorm2d's default epsilon is 1e-5 (Keras uses 1e-3); it is folded into the convolution once, here.
- Linear weights are (out, in); dense wants (in, out).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ... import ops
from ...errors import WeightsError
from ...graph import GraphBuilder, Model
from ...io.torch_pth import load_torch_pth
from ._bundled import require

TORCH_BN_EPSILON = 1e-5


class StateDict:
    """A ``{key: array}`` state dict that names the model and the key when something is missing."""

    def __init__(self, tensors: dict[str, np.ndarray], model: str, source: str):
        self.tensors, self.model, self.source = tensors, model, source

    def get(self, key: str, shape: tuple | None = None) -> np.ndarray:
        if key not in self.tensors:
            raise WeightsError(f"{self.model}: {self.source} has no tensor {key!r}")
        t = np.asarray(self.tensors[key], np.float32)
        if shape is not None and t.shape != tuple(shape):
            raise WeightsError(f"{self.model}: {self.source} tensor {key!r} should have shape {tuple(shape)}, "
                               f"found {t.shape}")
        return t

    def batch_norm(self, key: str, channels: int) -> dict[str, np.ndarray]:
        """gamma/beta/mean/variance of BatchNorm2d ``key`` (weight, bias, running_mean, running_var)."""
        return {"gamma": self.get(f"{key}.weight", (channels,)), "beta": self.get(f"{key}.bias", (channels,)),
                "mean": self.get(f"{key}.running_mean", (channels,)),
                "variance": self.get(f"{key}.running_var", (channels,))}


def symmetric_padding(k: int) -> tuple[int, int, int, int]:
    """torchvision's ``(k - 1) // 2`` on every side, as (top, bottom, left, right)."""
    p = (k - 1) // 2
    return (p, p, p, p)


def conv_bn(g: GraphBuilder, sd: StateDict, conv: str, bn: str, x: str, *, cin: int, cout: int, k: int,
            stride: int = 1, depthwise: bool = False, activation: str | None = None,
            padding=None, epsilon: float = TORCH_BN_EPSILON, covers: tuple[str, ...] = ()) -> str:
    """Conv2d (no bias) + BatchNorm2d (+ activation) as one nnlite layer named after the conv's key.

    ``padding`` defaults to torchvision's symmetric ``(k - 1) // 2``."""
    if depthwise:
        w = sd.get(f"{conv}.weight", (cout, 1, k, k))          # (c, 1, kh, kw)
        kernel = w.transpose(2, 3, 0, 1)                         # (kh, kw, c, 1)
    else:
        w = sd.get(f"{conv}.weight", (cout, cin, k, k))        # (cout, cin, kh, kw)
        kernel = w.transpose(2, 3, 1, 0)                         # (kh, kw, cin, cout)
    kernel, bias = ops.fold_batch_norm(kernel, None, **sd.batch_norm(bn, cout), epsilon=epsilon,
                                       depthwise=depthwise)
    op = "depthwise_conv2d" if depthwise else "conv2d"
    pad = symmetric_padding(k) if padding is None else padding
    return g.layer(op, conv, x, kernel=np.ascontiguousarray(kernel), bias=bias, stride=stride, padding=pad,
                   activation=activation, covers=covers or (conv, bn))


def linear(g: GraphBuilder, sd: StateDict, key: str, x: str, *, cin: int, cout: int) -> str:
    """nn.Linear ``key``: weight (out, in) -> dense kernel (in, out)."""
    kernel = np.ascontiguousarray(sd.get(f"{key}.weight", (cout, cin)).T)   # (in, out)
    return g.layer("dense", key, x, kernel=kernel, bias=sd.get(f"{key}.bias", (cout,)))


def classifier_head(g: GraphBuilder, sd: StateDict, x: str, pool: str, fc: str, *, cin: int,
                    classes: int = 1000) -> Model:
    """Global average pool ``pool``, then nn.Linear ``fc`` to the class logits: the finished graph."""
    x = g.layer("global_avg_pool2d", pool, x)                                           # (cin,)
    return g.build([linear(g, sd, fc, x, cin=cin, cout=classes)])


def torch_loader(model: str, weights_file: str, build: Callable[[StateDict], Model]) -> Callable[..., Model]:
    """The ``load_model(path=None)`` of a model with PyTorch weights: ``build`` on the state dict at ``path``,
    by default the bundled ``weights/imagenet/<weights_file>``."""
    def load_model(path: str | Path | None = None) -> Model:
        path = Path(path) if path is not None else require(weights_file)
        return build(StateDict(load_torch_pth(path), model, str(path)))
    load_model.__doc__ = f"The {model} graph with its ImageNet weights (bundled unless ``path`` is given)."
    return load_model
