"""One layer of a model's graph (:class:`Layer`), and the revision number that tells prepared steps
whether any layer changed.

A plan step keeps the work that depends only on its layers and its input's shape (:mod:`nnlite.prepared`)
while the layers stay as they were. Checking that by comparing every weight and attribute of every layer
of the step, by identity, on every call cost about a microsecond per step (NASNet runs over 200 prepared
steps). Instead, every change made through a layer's attributes or its ``weights``/``attrs`` dicts (which
are :class:`TrackedDict`\\ s) adds one to a process-wide revision number, and a prepared step is used only
while that number is the one it was prepared at: a change to any layer of any model prepares every step
once more, at its next call. What no dict sees is not noticed, as before: an array modified in place, or
a mutable attribute value (a list) changed in place; assign a new value instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_revision = [0]


def revision() -> int:
    """The number of changes made to any layer so far (see the module docstring)."""
    return _revision[0]


def _changed() -> None:
    _revision[0] += 1


class TrackedDict(dict):
    """A dict that counts each of its changes in :func:`revision`."""

    __slots__ = ()

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        _changed()

    def __delitem__(self, key):
        super().__delitem__(key)
        _changed()

    def __ior__(self, other):
        result = super().__ior__(other)
        _changed()
        return result

    def _counted(name):  # noqa: N805  (builds a method at class creation)
        plain = getattr(dict, name)

        def method(self, *args, **kwargs):
            try:
                return plain(self, *args, **kwargs)
            finally:
                _changed()
        method.__name__ = name
        return method

    update = _counted("update")
    pop = _counted("pop")
    popitem = _counted("popitem")
    clear = _counted("clear")
    setdefault = _counted("setdefault")
    del _counted


@dataclass
class Layer:
    name: str                         # unique in the model; the weight-file key prefix where there is one
    op: str                           # kernel name in nnlite.ops, or the callable's name
    inputs: tuple[str, ...]           # names of the layers (or model inputs) this one reads
    weights: dict[str, np.ndarray]    # keyword name -> array, passed to the kernel (a TrackedDict)
    attrs: dict[str, Any]             # stride, padding, activation, ... (a TrackedDict)
    fn: Callable[..., np.ndarray]
    covers: tuple[str, ...] = ()      # source-framework layers fused into this one (output = last)
    kernel: bool = False              # op named an nnlite.ops kernel (pure; the execution plan may fuse it)
    n_outputs: int = 1                # >1: fn returns a sequence; output i>0 is read as "name:i"

    def __setattr__(self, name: str, value) -> None:
        if name in ("weights", "attrs") and type(value) is not TrackedDict:
            value = TrackedDict(value)
        if name == "fn" and value is None:  # an nnlite.ops kernel, imported at first use (__getattr__)
            self.__dict__.pop("fn", None)
        else:
            object.__setattr__(self, name, value)
        _changed()

    def __getattr__(self, name: str):
        """``fn`` of a layer declared by kernel name: the kernel, imported from nnlite.ops on first use, so that
        building a model loads no compiled code (the NumPy engine, nnlite.ops.numpy_engine, may never need it)."""
        if name != "fn":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        from .graph import resolve_op
        fn = resolve_op(self.op)[1]
        object.__setattr__(self, "fn", fn)
        return fn

    @property
    def params(self) -> int:
        return int(sum(w.size for w in self.weights.values()))

    @property
    def output_name(self) -> str:
        """The name under which a reference framework records this layer's output."""
        return self.covers[-1] if self.covers else self.name

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.fn(*xs, **self.weights, **self.attrs)


class Declared:
    """A declared layer as a step of the "numpy" engine (nnlite.ops.numpy_engine): its NumPy form ``fn`` where
    it has one, else the layer's own function."""

    outs = None

    def __init__(self, layer: Layer, fn: Callable | None):
        self.layer, self.out, self.inputs, self.fn = layer, layer.name, layer.inputs, fn

    def __call__(self, *xs: np.ndarray):
        layer = self.layer
        return (self.fn or layer.fn)(*xs, **layer.weights, **layer.attrs)


def count_macs(layer: Layer, out: np.ndarray) -> int:
    """Multiply-accumulates of one layer for one example (batch 1)."""
    w = layer.weights
    spatial = int(np.prod(out.shape[1:-1])) if getattr(out, "ndim", 0) >= 3 else 1
    if layer.op in ("conv2d", "depthwise_conv2d") and "kernel" in w:
        return spatial * int(w["kernel"].size)
    if layer.op == "separable_conv2d":
        return spatial * int(w["depthwise_kernel"].size + w["pointwise_kernel"].size)
    if layer.op == "dense" and "kernel" in w:
        rows = int(np.prod(out.shape[1:-1])) if out.ndim > 2 else 1
        return rows * int(w["kernel"].size)
    return 0
