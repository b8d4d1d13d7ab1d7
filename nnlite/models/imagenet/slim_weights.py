"""Reading TF-slim variables by name (a TF-Hub module's ``variables/`` bundle or a slim checkpoint).

TF-slim names every variable after the scope that made it, and a TF1 Hub module keeps those names in its
tensor bundle (``variables/variables.index`` + ``variables.data-*``), so a model file asks for
``cell_0/comb_iter_0/left/separable_5x5_1/depthwise_weights`` and gets that array, shape-checked:

- ``slim.conv2d`` without biases: ``<scope>/weights`` (kh, kw, cin, cout)
- ``slim.separable_conv2d``: ``<scope>/depthwise_weights`` (kh, kw, cin, 1), ``<scope>/pointwise_weights``
  (1, 1, cin, cout)
- ``slim.batch_norm`` (scale and centre): ``<scope>/gamma``, ``beta``, ``moving_mean``, ``moving_variance`` (c,)
- ``slim.fully_connected``: ``<scope>/weights`` (in, out), ``<scope>/biases`` (out,)

Batch norms are folded into the convolution before them as the weights are read, into the array just read
(each read returns its own memory), so the loaded model holds one copy of the weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from ... import ops
from ...errors import GraphFormatError, WeightsError, WeightsMissingError

BN_PARTS = ("gamma", "beta", "moving_mean", "moving_variance")


class TensorSource(Protocol):
    def keys(self) -> Iterable[str]: ...
    def read(self, key: str) -> np.ndarray: ...


class ArraySource:
    """Tensors held in memory (a dict name -> array): tests and tools build models from these."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self.arrays = arrays

    def keys(self) -> list[str]:
        return list(self.arrays)

    def read(self, key: str) -> np.ndarray:
        return np.array(self.arrays[key], np.float32)   # a copy: folding writes into it


class BundleSource:
    """A TensorFlow tensor bundle read tensor by tensor (CRC-checked by :class:`TensorBundle`).

    The bundle maps its data shard into memory; pages read stay resident while the map lives and count in the
    process's RSS, so a 350 MB model would peak at twice its size while loading. The map is dropped after every
    ``RELEASE_BYTES`` read (the bundle reopens it on the next read), which keeps the peak near the weights' size.
    """

    RELEASE_BYTES = 4 << 20

    def __init__(self, prefix: Path):
        from ...savedmodel.bundle import TensorBundle  # the protobuf tables load only for bundle files
        self.bundle = TensorBundle(prefix)
        self._since_release = 0

    def keys(self) -> list[str]:
        return self.bundle.keys()

    def read(self, key: str) -> np.ndarray:
        value = self.bundle.read(key)
        self._since_release += value.nbytes
        if self._since_release >= self.RELEASE_BYTES:
            self.bundle._shards.clear()   # private to TensorBundle: see the class docstring
            self._since_release = 0
        return value


def bundle_prefix(path: str | Path) -> Path:
    """The tensor-bundle prefix of ``path``: a TF-Hub module or SavedModel directory (``variables/variables``),
    a ``variables/`` directory, a checkpoint's ``.index`` file, or the prefix itself (``.../model.ckpt``)."""
    path = Path(path)
    for candidate in (path / "variables" / "variables", path / "variables", path.with_suffix("") if
                      path.suffix == ".index" else None, path):
        if candidate is not None and Path(str(candidate) + ".index").is_file():
            return candidate
    raise WeightsMissingError(f"{path}: no TensorFlow variables found (expected a TF-Hub module directory "
                              "with variables/variables.index, or a checkpoint prefix with a .index file)")


class SlimWeights:
    """The variables of one TF-slim model, looked up by name, with errors naming the file and variable."""

    def __init__(self, source: TensorSource, where: str):
        self.source = source
        self.where = where
        self.names = set(source.keys())
        self.used: set[str] = set()

    @classmethod
    def from_path(cls, path: str | Path) -> SlimWeights:
        prefix = bundle_prefix(path)
        try:
            return cls(BundleSource(prefix), str(prefix) + ".index")
        except GraphFormatError as exc:
            raise WeightsError(f"{prefix}: not a readable TensorFlow variables bundle: {exc}") from None

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Variable ``name`` as float32 of exactly ``shape``."""
        if name not in self.names:
            near = sorted(n for n in self.names if n.split("/")[0] == name.split("/")[0])[:4]
            raise WeightsError(f"{self.where}: variable {name!r} not found"
                               + (f" (the file has {near} ...)" if near else
                                  f"; the file has {len(self.names)} variables, is this the right model?"))
        try:
            value = self.source.read(name)
        except GraphFormatError as exc:
            raise WeightsError(f"{self.where}: variable {name!r} cannot be read: {exc}") from None
        if value.dtype != np.float32:
            raise WeightsError(f"{self.where}: variable {name!r} is {value.dtype}, expected float32")
        if value.shape != tuple(shape):
            raise WeightsError(f"{self.where}: variable {name!r} has shape {value.shape}, expected {tuple(shape)}")
        self.used.add(name)
        return value

    def batch_norm(self, scope: str, channels: int) -> list[np.ndarray]:
        """gamma, beta, moving_mean, moving_variance of ``slim.batch_norm`` ``scope``, each (channels,)."""
        return [self.array(f"{scope}/{part}", (channels,)) for part in BN_PARTS]

    def conv_bn(self, conv: str, bn: str, kh: int, cin: int, cout: int, *, epsilon: float,
                stats: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``kernel`` (kh, kh, cin, cout) and ``bias`` (cout,) of a bias-free conv with batch norm ``bn`` folded in
        (``stats``: that batch norm's statistics when they were read already, e.g. one share of a split one)."""
        kernel = self.array(f"{conv}/weights", (kh, kh, cin, cout))
        stats = self.batch_norm(bn, cout) if stats is None else stats
        kernel, bias = ops.fold_batch_norm(kernel, None, *stats, epsilon=epsilon, out=kernel)
        return {"kernel": kernel, "bias": bias}

    def separable_bn(self, conv: str, bn: str, k: int, cin: int, cout: int, *,
                     epsilon: float) -> dict[str, np.ndarray]:
        """``slim.separable_conv2d`` ``conv`` (depth multiplier 1) with batch norm ``bn`` folded into its
        pointwise half: depthwise_kernel (k, k, cin, 1), pointwise_kernel (1, 1, cin, cout), bias (cout,)."""
        depthwise = self.array(f"{conv}/depthwise_weights", (k, k, cin, 1))
        pointwise = self.array(f"{conv}/pointwise_weights", (1, 1, cin, cout))
        pointwise, bias = ops.fold_batch_norm(pointwise, None, *self.batch_norm(bn, cout), epsilon=epsilon,
                                              out=pointwise)
        return {"depthwise_kernel": depthwise, "pointwise_kernel": pointwise, "bias": bias}

    def dense(self, scope: str, cin: int, cout: int) -> dict[str, np.ndarray]:
        """``kernel`` (cin, cout) and ``bias`` (cout,) of ``slim.fully_connected`` ``scope``."""
        return {"kernel": self.array(f"{scope}/weights", (cin, cout)),
                "bias": self.array(f"{scope}/biases", (cout,))}

    def require_all_used(self, model: str, ignore: tuple[str, ...] = ()) -> None:
        """Refuse a file with variables the model never read (another model's, or a variant), except those
        under the ``ignore`` scopes (training-only parts such as an auxiliary head or the global step)."""
        unused = sorted(n for n in self.names - self.used
                        if not any(n == p or n.startswith(p + "/") for p in ignore))
        if unused:
            raise WeightsError(f"{self.where}: {len(unused)} variable(s) are not part of {model}: {unused[:5]}"
                               f"{' ...' if len(unused) > 5 else ''}; is this {model}'s file?")
