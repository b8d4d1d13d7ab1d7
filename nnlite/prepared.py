"""Prepared steps: a plan step's kernel call with the work that depends only on its layers and its input's shape
done once.

Before a conv layer's kernel starts, its Python code checks that every argument is in final form, looks up
the layout cached for its shapes, chooses the thread split, finds the packed kernel and builds the kernel's
argument tuple: a few microseconds a layer, a tenth of the run of a model of many small layers (NASNet runs
about 400 steps; most layers of the face-api.js nets take tens of microseconds). The ops' ``prepare_*``
functions do that work once and return the rest as a function of the input alone; a :class:`Prepared`
keeps such a function with what it was made from, and a step (:mod:`nnlite.plan`) calls it while all of that
is unchanged: the input's shape and form, the thread count, the conv engine, and the layers (their ``fn``,
weight arrays and attribute values; any change to any layer counts, see :mod:`nnlite.layer`: an attribute
changed in place, a list say, is not noticed; assign a new value). Anything else prepares the step again at
its next call: assigning a new weight array or attribute value, a profiler wrapping ``layer.fn``,
``set_num_threads``, another engine. The prepared
function calls the same kernel with the same arguments: the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .layer import revision
from .ops import engine, parallel

_F32 = np.dtype(np.float32)


class Prepared:
    """``call(*xs)``, prepared for inputs like ``xs`` from the step's layers as they are now."""

    __slots__ = ("call", "shapes", "threads", "revision")

    def __init__(self, call: Callable[..., np.ndarray], xs: Sequence[np.ndarray], revision: int):
        self.call = call
        self.shapes = tuple(x.shape for x in xs)
        self.threads = parallel.numba_threads()
        self.revision = revision  # nnlite.layer.revision() before the call was prepared

    def fits(self, xs: tuple) -> bool:
        """True when ``call(*xs)`` is what the step would compute now."""
        if (revision() != self.revision or len(xs) != len(self.shapes) or parallel.numba_threads() != self.threads
                or not engine.simd()):
            return False
        for x, shape in zip(xs, self.shapes):
            if type(x) is not np.ndarray or x.shape != shape or x.dtype is not _F32 or not x.flags.c_contiguous:
                return False
        return True
