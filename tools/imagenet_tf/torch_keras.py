"""Keras layers fed from a PyTorch state dict: OIHW -> HWIO, real BatchNormalization, explicit padding."""

from __future__ import annotations

import numpy as np

from nnlite.io.torch_pth import load_torch_pth


def keras_name(key: str) -> str:
    """TF's export wants scope names that start with a letter, digit or '.': drop leading underscores."""
    return key.lstrip("_")


def state_dict(path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float32) for k, v in load_torch_pth(path).items() if v.dtype.kind == "f"}


class TorchToKeras:
    """Builds Keras layers named after the state-dict keys and records the names for parity reports."""

    def __init__(self, keras, sd: dict[str, np.ndarray], epsilon: float):
        self.keras, self.sd, self.epsilon = keras, sd, epsilon
        self.names: dict[str, str] = {}   # nnlite reference name -> keras layer name

    def _apply(self, layer, x, weights, ref: str | None = None):
        y = layer(x)
        layer.set_weights(weights)
        if ref:
            self.names[ref] = layer.name
        return y

    def conv(self, x, key: str, *, k: int, stride: int = 1, depthwise: bool = False, pad=None):
        """nn.Conv2d without bias. ``pad``: None = symmetric (k-1)//2 via ZeroPadding2D, or "same" (TF rule)."""
        L = self.keras.layers
        w = self.sd[f"{key}.weight"]                      # (cout, cin | 1, kh, kw)
        padding = "valid"
        if pad == "same":
            padding = "same"
        elif (k - 1) // 2:
            x = L.ZeroPadding2D((k - 1) // 2, name=keras_name(f"{key}.pad"))(x)
        if depthwise:
            layer = L.DepthwiseConv2D(k, strides=stride, padding=padding, use_bias=False, name=keras_name(key))
            return self._apply(layer, x, [w.transpose(2, 3, 0, 1)])   # (kh, kw, c, 1)
        layer = L.Conv2D(w.shape[0], k, strides=stride, padding=padding, use_bias=False, name=keras_name(key))
        return self._apply(layer, x, [w.transpose(2, 3, 1, 0)])       # (kh, kw, cin, cout)

    def bn(self, x, key: str, ref: str | None = None):
        layer = self.keras.layers.BatchNormalization(epsilon=self.epsilon, name=keras_name(key))
        weights = [self.sd[f"{key}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]
        return self._apply(layer, x, weights, ref)

    def relu6(self, x, name: str, ref: str | None = None):
        y = self.keras.layers.ReLU(max_value=6.0, name=keras_name(name))(x)
        if ref:
            self.names[ref] = keras_name(name)
        return y

    def linear(self, x, key: str):
        w = self.sd[f"{key}.weight"]                      # (out, in)
        layer = self.keras.layers.Dense(w.shape[0], name=keras_name(key))
        return self._apply(layer, x, [w.T, self.sd[f"{key}.bias"]], key)

    def add(self, a, b, name: str):
        self.names[name] = keras_name(name)
        return self.keras.layers.Add(name=keras_name(name))([a, b])
