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
        object.__setattr__(self, name, value)
        _changed()

    @property
    def params(self) -> int:
        return int(sum(w.size for w in self.weights.values()))

    @property
    def output_name(self) -> str:
        """The name under which a reference framework records this layer's output."""
        return self.covers[-1] if self.covers else self.name

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.fn(*xs, **self.weights, **self.attrs)
