"""Prepared calls: an op's call worked out once for an input shape.

A ``prepare_*`` function (conv2d's, depthwise_conv2d's, the fused pair's and block's, add's) takes the op's
own arguments, with inputs of the shape and form the op will be called with, and returns a function of the
inputs alone that computes what the op would (the same kernel on the same arguments: the same bits), with
everything that depends only on the weights, the attributes and the shapes done once: argument checks,
layout, thread split, packed kernels. Its ``out_shape`` is the output's shape. It returns None where the op's
fast path would not take those arguments as they are (the op then checks and converts them itself).

The function reads the thread count and the conv engine when it is made and holds the weight arrays: a caller
keeps it only while those, and the input's shape, stay the same (:mod:`nnlite.prepared` does this for a
model's steps).
"""

from __future__ import annotations

import numpy as np

from . import buffers
from .activations import CODES


def chain(first, second):
    """``second(first(x))`` as one prepared function (``out_shape`` the second's); None if either is None."""
    if first is None or second is None:
        return None

    def chained(x):
        return second(first(x))
    chained.out_shape = second.out_shape
    return chained


def like(prepared) -> np.ndarray:
    """An input shaped as ``prepared``'s output, to prepare the next call with (only its shape and form are read)."""
    return np.empty(prepared.out_shape, np.float32)


def sum_of(accumulate):
    """``accumulate=(activation, alpha, keep)`` of a prepare function (a residual add run in its kernel) as
    (activation code, float32 alpha, keep), or None for an activation add does not know (add raises nnlite's
    error for it when it runs unfused)."""
    activation, alpha, keep = accumulate
    activation = None if activation == "linear" else activation
    if not (activation is None or (isinstance(activation, str) and activation in CODES)):
        return None
    return CODES[activation], np.float32(alpha), keep


def summing(out_shape, keep, run):
    """The ``f(x, acc)`` of an ``accumulate`` prepare function: ``run(x, acc, total, y)`` launches the kernel that
    writes act(acc + its output) into y and, unless ``total`` is empty, the sum before the activation into total;
    returns y, or (total, y) with ``keep``."""
    from .prepack import NONE

    def summed(x, acc):
        y = buffers.empty(out_shape)
        total = buffers.empty(out_shape) if keep else NONE
        run(x, acc, total, y)
        return (total, y) if keep else y
    summed.out_shape = tuple(out_shape)
    return summed


def writing_into(out_shape, run, offset):
    """The ``f(x, out)`` of an ``into=(channels, offset)`` prepare function: ``run(x, y)`` launches the kernel
    that writes its output rows ``channels`` values apart into y, the flat view of ``out`` from channel
    ``offset`` on. ``out_shape``: the layer's own output shape."""
    def written(x, out):
        run(x, out.reshape(-1)[offset:])
    written.out_shape = tuple(out_shape)
    return written
