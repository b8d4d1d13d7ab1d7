"""Reading Keras-applications weights by layer name, and folding batch norm into convolutions.

The Keras models (NASNetMobile, Xception, ResNet50) read their weights from a Keras ``.h5`` file through
:func:`nnlite.io.keras_h5.load_keras_h5`, which gives an ordered mapping ``layer name -> [arrays]`` in
Keras's stored order:

- ``Conv2D``: kernel (kh, kw, cin, cout), bias (cout,) when the layer has one
- ``SeparableConv2D``: depthwise_kernel (kh, kw, cin, 1), pointwise_kernel (1, 1, cin, cout), bias
- ``BatchNormalization``: gamma, beta, moving_mean, moving_variance (each (c,))
- ``Dense``: kernel (in, out), bias (out,)

Batch norm is folded into the convolution before it at load time (Keras computes
``(conv(x) - mean) / sqrt(var + eps) * gamma + beta``; folding gives the same affine map in one conv).
Each model says which epsilon its batch norms use (Keras default 1e-3; ResNet 1.001e-5).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ... import ops
from ...errors import WeightsError, WeightsMissingError
from ...fetch import REMOTE_WEIGHTS, cached_weights
from ...graph import Model
from ...paths import models_cache_dir


class KerasLayers:
    """The weights of one Keras model, looked up by layer name, with errors naming file and layer."""

    def __init__(self, weights: Mapping[str, Sequence[np.ndarray]], source: str | Path,
                 aliases: Mapping[str, str] | None = None):
        self.weights = weights
        self.source = str(source)
        self.aliases = dict(aliases or {})   # name this code uses -> another name some files use
        self.used: set[str] = set()          # file layers read so far
        self.released: set[str] = set()      # file layers whose arrays were folded into new ones and freed

    @classmethod
    def from_file(cls, path: str | Path, aliases: Mapping[str, str] | None = None) -> KerasLayers:
        from ...io.keras_h5 import load_keras_h5  # h5py is imported only when a Keras file is read
        return cls(load_keras_h5(path), path, aliases)

    # -- raw lookup ------------------------------------------------------------------------------
    def arrays(self, name: str, count: int | tuple[int, ...]) -> list[np.ndarray]:
        """The arrays stored under layer ``name``; ``count`` is how many that layer kind may have."""
        key = name if name in self.weights else self.aliases.get(name, name)
        if key in self.released:
            raise WeightsError(f"{self.source}: layer {key!r} was read after its arrays were released "
                               "(a loader bug: each convolution is folded once)")
        if key not in self.weights:
            also = f" (nor {key!r})" if key != name else ""
            raise WeightsError(f"{self.source}: layer {name!r}{also} not found; the file has "
                               f"{len(self.weights)} layers with weights, e.g. {list(self.weights)[:5]}")
        self.used.add(key)
        found = [np.asarray(a, np.float32) for a in self.weights[key]]
        allowed = (count,) if isinstance(count, int) else count
        if len(found) not in allowed:
            raise WeightsError(f"{self.source}: layer {key!r} has {len(found)} arrays, expected "
                               f"{' or '.join(map(str, allowed))}")
        return found

    def _own(self, name: str, array: np.ndarray) -> np.ndarray | None:
        """``array`` itself when folding may overwrite it: a writable float32 array that is the file's own
        (read from this file's layer ``name``, which is released right after); else None (fold into a copy)."""
        key = name if name in self.weights else self.aliases.get(name, name)
        mine = any(array is a for a in self.weights.get(key, ()))
        return array if mine and hasattr(self.weights, "release") and array.flags.writeable \
            and array.dtype == np.float32 else None

    def _release(self, name: str) -> None:
        """Free the file's arrays of layer ``name`` (already folded into new arrays): lower peak memory."""
        key = name if name in self.weights else self.aliases.get(name, name)
        if hasattr(self.weights, "release"):
            self.weights.release(key)
        self.released.add(key)

    def require_all_used(self, model: str) -> None:
        """A file with layers the model never read is another model's file (or a variant, such as
        a no-top file with extra heads): refuse it rather than silently ignore weights."""
        unused = [name for name in self.weights if name not in self.used]
        if unused:
            raise WeightsError(f"{self.source}: {len(unused)} layer(s) with weights are not part of {model}: "
                               f"{unused[:5]}{' ...' if len(unused) > 5 else ''}; is this {model}'s file?")

    def unnamed(self, prefix: str) -> list[str]:
        """Names of the layers Keras named automatically (``conv2d``, ``conv2d_1``, ... in Keras 3;
        ``conv2d_1``, ... in Keras 2), in numbering order, which is the order Keras created them in.

        The numbers depend on what else the saving session had built, so only their order is reliable
        (and not the file's group order: Keras 3 files list groups alphabetically, ``conv2d_10`` first).
        """
        pattern = re.compile(rf"^{re.escape(prefix)}(?:_(\d+))?$")
        numbered = [(int(m.group(1) or 0), name) for name in self.weights if (m := pattern.match(name))]
        return [name for _, name in sorted(numbered)]

    # -- layers ----------------------------------------------------------------------------------
    def batch_norm(self, name: str, channels: int) -> list[np.ndarray]:
        """gamma, beta, moving_mean, moving_variance of a BatchNormalization layer, each (channels,)."""
        stats = self.arrays(name, 4)
        for label, a in zip(("gamma", "beta", "moving_mean", "moving_variance"), stats):
            if a.shape != (channels,):
                raise WeightsError(f"{self.source}: batch norm {name!r} {label} has shape {a.shape}, "
                                   f"expected ({channels},) to match the layer before it")
        return stats

    def conv_bn(self, conv: str, bn: str | None, *, epsilon: float) -> dict[str, np.ndarray]:
        """``kernel`` (kh, kw, cin, cout) and ``bias`` (cout,) of Conv2D ``conv`` with ``bn`` folded in."""
        kernel, *bias = self.arrays(conv, (1, 2))
        if kernel.ndim != 4:
            raise WeightsError(f"{self.source}: conv {conv!r} kernel has shape {kernel.shape}, "
                               "expected (kh, kw, cin, cout)")
        bias = self._bias(conv, bias, kernel.shape[3])
        if bn is None:
            return {"kernel": kernel, "bias": bias} if bias is not None else {"kernel": kernel}
        stats = self.batch_norm(bn, kernel.shape[3])
        kernel, bias = ops.fold_batch_norm(kernel, bias, *stats, epsilon=epsilon, out=self._own(conv, kernel))
        self._release(conv)
        return {"kernel": kernel, "bias": bias}

    def separable_bn(self, conv: str, bn: str, *, epsilon: float) -> dict[str, np.ndarray]:
        """SeparableConv2D ``conv`` with ``bn`` folded into its pointwise half:
        ``depthwise_kernel`` (kh, kw, cin, 1), ``pointwise_kernel`` (1, 1, cin, cout), ``bias`` (cout,)."""
        depthwise, pointwise, *bias = self.arrays(conv, (2, 3))
        if depthwise.ndim != 4 or pointwise.shape[:2] != (1, 1) or pointwise.ndim != 4 \
                or pointwise.shape[2] != depthwise.shape[2] * depthwise.shape[3]:
            raise WeightsError(f"{self.source}: separable conv {conv!r} has depthwise {depthwise.shape} and "
                               f"pointwise {pointwise.shape}; expected (kh, kw, cin, m) and (1, 1, cin*m, cout)")
        bias = self._bias(conv, bias, pointwise.shape[3])
        stats = self.batch_norm(bn, pointwise.shape[3])
        pointwise, bias = ops.fold_batch_norm(pointwise, bias, *stats, epsilon=epsilon,
                                              out=self._own(conv, pointwise))
        self._release(conv)
        return {"depthwise_kernel": depthwise, "pointwise_kernel": pointwise, "bias": bias}

    def dense(self, name: str) -> dict[str, np.ndarray]:
        """``kernel`` (in, out) and ``bias`` (out,) of a Dense layer."""
        kernel, bias = self.arrays(name, 2)
        if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
            raise WeightsError(f"{self.source}: dense {name!r} has kernel {kernel.shape} and bias {bias.shape}; "
                               "expected (in, out) and (out,)")
        return {"kernel": kernel, "bias": bias}

    def _bias(self, layer: str, bias: list[np.ndarray], cout: int) -> np.ndarray | None:
        if not bias:
            return None
        if bias[0].shape != (cout,):
            raise WeightsError(f"{self.source}: layer {layer!r} bias has shape {bias[0].shape}, "
                               f"expected ({cout},)")
        return bias[0]


def split_batch_norm(stats: Sequence[np.ndarray], start: int, stop: int) -> list[np.ndarray]:
    """Channels ``start:stop`` of batch-norm statistics: a batch norm after a concatenation folds
    into each concatenated convolution with that convolution's share of the channels."""
    return [s[start:stop] for s in stats]


# -- finding the weights file ----------------------------------------------------------------------

def weights_file(model: str, path: str | Path | None = None) -> Path:
    """The weights file of ``model``: ``path`` when given, else the one in the models cache
    (see :func:`nnlite.fetch.cached_weights`); WeightsMissingError names ``nnlite fetch``."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise WeightsMissingError(f"{model}: weights file not found: {path}")
        return path
    found = cached_weights(model)
    if found is None:
        expected = models_cache_dir() / REMOTE_WEIGHTS[model].filename
        raise WeightsMissingError(
            f"{model}: weights not found (looked for {expected}). Download the official Keras file with "
            f"`nnlite fetch {model}` (needs internet), or set NNLITE_HOME to the folder holding models/.")
    return found


def keras_loader(model: str, build: Callable[[KerasLayers], Model],
                 aliases: Callable[[], Mapping[str, str]] | None = None) -> Callable[..., Model]:
    """The ``load_model(path=None)`` of a Keras-applications model: ``build`` on the layers of the .h5 file
    at ``path``, by default the one ``nnlite fetch MODEL`` saved (:func:`weights_file`); ``aliases`` gives
    other names some files use for layers."""
    def load_model(path: str | Path | None = None) -> Model:
        return build(KerasLayers.from_file(weights_file(model, path), aliases=aliases() if aliases else None))
    load_model.__doc__ = (f"{model} with the weights of a Keras .h5 file (default: the one ``nnlite fetch {model}`` "
                          "saves).")
    return load_model
