"""SqueezeNet 1.1 (Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters").

Weights: the Caffe ImageNet-1k model as a pickle ``{layer: [kernel (kh, kw, cin, cout), bias (cout,)]}``
(``nnlite/weights/imagenet/squeezenet_weights.pkl``); layer names below are its keys. Input 227 x 227 BGR
minus the Caffe mean (see :func:`nnlite.preprocess.caffe_preprocess`).

    conv1 3x3/2 valid + ReLU -> maxpool 3x3/2 -> fire2, fire3 -> maxpool -> fire4, fire5 -> maxpool
    -> fire6 .. fire9 -> conv10 1x1 (1000) + ReLU -> global average -> softmax

A fire module squeezes with 1x1 convolutions, then expands with parallel 1x1 and 3x3 convolutions
whose outputs are concatenated (expand1x1 channels first). Pools use floor ("valid") sizes, as the
Keras port of these weights does: 227 -> 113 -> 56 -> 27 -> 13.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ...errors import WeightsError
from ...graph import GraphBuilder, Model
from ...io._safe_pickle import load_pickled_arrays
from ...preprocess import caffe_preprocess
from ._bundled import require
from ._spec import bundled, classifier

NAME = "squeezenet1_1"
WEIGHTS_FILE = "squeezenet_weights.pkl"
INPUT_SIZE = (227, 227)
CAFFE_MEAN_BGR = (104.006, 116.669, 122.679)   # the Caffe model's mean pixel, BGR order

# (name, squeeze channels, expand channels per branch), with a max pool before fire4 and fire6
FIRES = [("fire2", 16, 64), ("fire3", 16, 64), ("fire4", 32, 128), ("fire5", 32, 128),
         ("fire6", 48, 192), ("fire7", 48, 192), ("fire8", 64, 256), ("fire9", 64, 256)]
POOL_BEFORE = {"fire4": "maxpool3", "fire6": "maxpool5"}


def load_weights(path: str | Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the pickle (safely: arrays only) -> {layer: (kernel (kh, kw, cin, cout), bias (cout,))}."""
    path = Path(path) if path is not None else require(WEIGHTS_FILE)
    raw = load_pickled_arrays(path)
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: expected a dict of layer -> [kernel, bias], found {type(raw).__name__}")
    weights = {}
    for name, pair in raw.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise WeightsError(f"{path}: layer {name!r} should hold [kernel, bias], found {type(pair).__name__}")
        weights[name] = (np.asarray(pair[0], np.float32), np.asarray(pair[1], np.float32))
    return weights


def _conv(g: GraphBuilder, w: dict, name: str, x: str, kh: int, cin: int, cout: int, **attrs) -> str:
    """One convolution + ReLU reading ``w[name]``; checks the stored shapes against the architecture."""
    if name not in w:
        raise WeightsError(f"{NAME}: weights have no layer {name!r}")
    kernel, bias = w[name]   # (kh, kw, cin, cout), (cout,)
    if kernel.shape != (kh, kh, cin, cout) or bias.shape != (cout,):
        raise WeightsError(f"{NAME}: layer {name!r} expects kernel {(kh, kh, cin, cout)} and bias {(cout,)}, "
                           f"found {kernel.shape} and {bias.shape}")
    return g.layer("conv2d", name, x, kernel=kernel, bias=bias, activation="relu", **attrs)


def _fire(g: GraphBuilder, w: dict, name: str, x: str, cin: int, squeeze: int, expand: int) -> str:
    s = _conv(g, w, f"{name}/squeeze1x1", x, 1, cin, squeeze)
    e1 = _conv(g, w, f"{name}/expand1x1", s, 1, squeeze, expand)
    e3 = _conv(g, w, f"{name}/expand3x3", s, 3, squeeze, expand, padding=(1, 1, 1, 1))
    return g.layer("concat", f"{name}/concat", e1, e3, axis=-1)


def build(w: dict[str, tuple[np.ndarray, np.ndarray]]) -> Model:
    g = GraphBuilder(NAME)
    x = g.input("input", (*INPUT_SIZE, 3))                                      # (227, 227, 3) BGR
    x = _conv(g, w, "conv1", x, 3, 3, 64, stride=2)                             # (113, 113, 64)
    x = g.layer("max_pool2d", "maxpool1", x, pool_size=3, stride=2)             # (56, 56, 64)
    cin = 64
    for name, squeeze, expand in FIRES:
        if name in POOL_BEFORE:
            x = g.layer("max_pool2d", POOL_BEFORE[name], x, pool_size=3, stride=2)   # (27 | 13, ., .)
        x = _fire(g, w, name, x, cin, squeeze, expand)
        cin = 2 * expand
    x = _conv(g, w, "conv10", x, 1, cin, 1000)                                  # (13, 13, 1000)
    x = g.layer("global_avg_pool2d", "avgpool10", x)                            # (1000,)
    x = g.layer("softmax", "softmax", x)
    return g.build([x])


def load_model(path: str | Path | None = None) -> Model:
    """The SqueezeNet 1.1 graph with its ImageNet weights (bundled unless ``path`` is given)."""
    return build(load_weights(path))


SPEC = classifier(NAME, load_model, INPUT_SIZE, output="probabilities", params=1_235_496,
                  **bundled(WEIGHTS_FILE, "Caffe weights, pickled arrays"),
                  description="SqueezeNet 1.1, Caffe ImageNet weights",
                  preprocess=partial(caffe_preprocess, INPUT_SIZE, CAFFE_MEAN_BGR),
                  preprocessing="caffe: resize to 227x227 (bilinear), BGR, minus mean (104.006, 116.669, 122.679)")
