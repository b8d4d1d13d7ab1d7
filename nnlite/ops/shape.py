"""Elementwise add with broadcasting (the other shape layers, NumPy calls alone: :mod:`nnlite.ops.arrays`;
concat: :mod:`nnlite.ops.concatenate`).

add broadcasts (NumPy) into one output. add of same-shape float32 inputs (residual and dense-block sums) is a
Numba kernel instead: on every thread, up to four inputs in one pass, with the activation applied in the same
pass as the last sum.
"""

from __future__ import annotations

import numpy as np

from . import activations, bound, buffers, drivers, parallel, prepack
from .arrays import broadcast
from .jit import kernel

_F32 = np.dtype(np.float32)


def _plain(a) -> bool:
    return type(a) is np.ndarray and a.dtype is _F32 and a.flags.c_contiguous and a.ndim > 0


@kernel
def _add_into(y, a, b, c, d, more, code, alpha, sum_at, into_at, start, stop):
    # y[i] = act(((a[i] + b[i]) + c[i]) + d[i]) for i in [start, stop) (flat arrays; a may be y itself), c and d
    # only when ``more`` is 1 or 2 (else they are not read: pass any array), 4096 values at a time: each loop
    # vectorises, and the block is still in L1 for the next, so up to four inputs cost one pass over memory; the
    # activation is applied in the last sum's loop (nnlite.ops.activations.act_sum, act_sum_into, called at
    # the bound.address sum_at (when more is 0, else unused) and into_at (when more is not 0): not linked in, so
    # each is compiled once, and only where a model needs it)
    for s0 in range(start, stop, 4096):
        s1 = min(stop, s0 + 4096)
        block = y[s0:s1]
        ab, bb = a[s0:s1], b[s0:s1]
        if more == 0:
            bound.call(sum_at, "act_sum", (block, ab, bb, code, alpha))
            continue
        for i in range(s1 - s0):
            block[i] = ab[i] + bb[i]
        last = c[s0:s1] if more == 1 else d[s0:s1]
        if more == 2:
            cb = c[s0:s1]
            for i in range(s1 - s0):
                block[i] += cb[i]
        bound.call(into_at, "act_sum_into", (block, last, code, alpha))  # last + block: a + b is b + a


_add_into_parallel = drivers.driver(_add_into)


def _same_shape_add(arrays, code: int, alpha: float) -> np.ndarray:
    """Sum of same-shape C-contiguous float32 arrays, left to right, activation on the last step: one pass per
    four inputs (a residual or dense-block add, and its relu, in one kernel), on Numba's threads."""
    y = buffers.empty(arrays[0].shape)
    flat = y.reshape(-1)
    size = flat.shape[0]
    pieces = parallel.parts(size, size * len(arrays) // 2)
    flats = [prepack.as_writable(a).reshape(-1) for a in arrays]  # read-only: the type the sums are compiled for
    acc, rest = flats[0], flats[1:]
    while rest:  # the first pass takes up to 3 inputs after the first; each later one 3 more onto y
        group, rest = rest[:3], rest[3:]
        more = len(group) - 1
        b, c, d = group[0], group[min(1, more)], group[more]
        sum_at = bound.address("act_sum") if more == 0 else 0
        into_at = bound.address("act_sum_into") if more else 0
        args = (flat, acc, b, c, d, more, code if not rest else 0, np.float32(alpha), sum_at, into_at)
        if pieces == 1:
            _add_into(*args, 0, size)
        else:
            parallel.launch(_add_into_parallel, *args, size, pieces)
        acc = flat
    return y


def add(*xs, activation=None, alpha=0.2):
    """Elementwise sum with broadcasting, then ``activation`` in place (a residual add + relu in one call)."""
    code = activations.code_of(activation, "add")
    if len(xs) >= 2 and all(_plain(a) and a.shape == xs[0].shape for a in xs):
        return _same_shape_add(xs, code, alpha)
    arrays, shape = broadcast(xs, "add")
    y = np.empty(shape, np.float32)
    if len(arrays) == 1:
        y[...] = arrays[0]
    else:  # the first sum written straight into y: one memory pass fewer than copying arrays[0] first
        np.add(arrays[0], arrays[1], out=y)
    for a in arrays[2:]:
        np.add(y, a, out=y)
    if code:
        activations.bias_act_(y if y.ndim else y.reshape(1), None, code, alpha)  # 0-d: a (1,) view of y
    return y


def prepare_add(*xs, activation=None, alpha=0.2):
    """``add(*xs, ...)`` for inputs of these shapes as a function of the inputs alone (``.out_shape``: the
    output's shape): same-shape C-contiguous float32 inputs and a known activation, else None."""
    if not (activation is None or (isinstance(activation, str) and (activation == "linear"
                                                                     or activation in activations.CODES))):
        return None  # add() raises nnlite's error for it
    if len(xs) < 2 or not all(_plain(a) and a.shape == xs[0].shape for a in xs):
        return None
    code = activations.code_of(activation, "add")

    def summed(*arrays):
        return _same_shape_add(arrays, code, alpha)
    summed.out_shape = xs[0].shape
    return summed


