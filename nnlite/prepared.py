"""Prepared steps: a plan step's kernel call with the work that depends only on its layers and its input's shape
done once.

Before a conv layer's kernel starts, its Python code checks that every argument is in final form, looks up
the layout cached for its shapes, chooses the thread split, finds the packed kernel and builds the kernel's
argument tuple: a few microseconds a layer, a tenth of the run of a model of many small layers (NASNet runs
about 400 steps; most layers of the face-api.js nets take tens of microseconds). The ops' ``prepare_*``
functions do that work once and return the rest as a function of the input alone; a :class:`Prepared`
keeps such a function with what it was made from, and a step (:mod:`nnlite.plan`) calls it while all of that
is unchanged: the input's shape and form, the thread count, the conv engine, and each layer's ``fn``, weight
arrays and attribute values (by identity: an attribute changed in place, a list say, is not noticed; assign
a new value). Anything else prepares the step again at its next call: assigning a new weight array or
attribute value, a profiler wrapping ``layer.fn``, ``set_num_threads``, another engine. The prepared
function calls the same kernel with the same arguments: the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .ops import engine, parallel

if TYPE_CHECKING:
    from .graph import Layer

_F32 = np.dtype(np.float32)
_MISSING = object()


class Prepared:
    """``call(*xs)``, prepared for inputs like ``xs`` from ``layers`` as they are now."""

    __slots__ = ("call", "shapes", "threads", "layers")

    def __init__(self, call: Callable[..., np.ndarray], xs: Sequence[np.ndarray], layers: Sequence[Layer]):
        self.call = call
        self.shapes = tuple(x.shape for x in xs)
        self.threads = parallel.numba_threads()
        self.layers = tuple((layer, layer.fn, tuple(layer.weights.items()), tuple(layer.attrs.items()))
                            for layer in layers)

    def fits(self, xs: tuple) -> bool:
        """True when ``call(*xs)`` is what the step would compute now."""
        if len(xs) != len(self.shapes) or parallel.numba_threads() != self.threads or not engine.simd():
            return False
        for x, shape in zip(xs, self.shapes):
            if type(x) is not np.ndarray or x.shape != shape or x.dtype is not _F32 or not x.flags.c_contiguous:
                return False
        for layer, fn, weights, attrs in self.layers:
            if layer.fn is not fn or len(layer.weights) != len(weights) or len(layer.attrs) != len(attrs):
                return False
            for key, value in weights:
                if layer.weights.get(key, _MISSING) is not value:
                    return False
            for key, value in attrs:  # by identity: a value assigned anew (an array too) prepares again
                if layer.attrs.get(key, _MISSING) is not value:
                    return False
        return True
