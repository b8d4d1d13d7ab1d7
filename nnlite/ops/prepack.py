"""Kernels packed once: convolution kernels into the GEMM's 32-channel panels where a layer reads more
weight than input, and batch-1 dense kernels into the matrix-vector product's column blocks.

The GEMM (:mod:`nnlite.ops.gemm`) and the fused depthwise -> 1x1 kernel (:mod:`nnlite.ops.separable`)
multiply by a kernel copied panel by panel into contiguous scratch. Copying a panel reads 128 bytes of
each kernel row, a strided walk that memory serves at a fraction of its streaming rate, so where a
layer's kernel is bigger than its input (the late layers of a network at batch 1: few pixels, many
channels) the copy costs as much as the arithmetic. Here each such kernel is packed once and kept while
the kernel array lives; the tiles then read it front to back. A batch-1 dense layer
(:mod:`nnlite.ops.gemv`) likewise reads its kernel in 64-column blocks, each laid out front to back.

Only a kernel that cannot change is packed: the array and every array it views are read-only (a model
makes its conv and dense kernels read-only when it plans its first run, see
:meth:`nnlite.graph.Model.forward`; assign a new array to change one). A writable kernel is packed on every
call, as before. The packed copy is the kernel's own values in another order, so results are bit-identical
either way. It costs memory: about the size of those kernels (most of a classifier's weights).
``NNLITE_PREPACK=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import weakref

import numpy as np

from ..limits import env_switch
from .jit import kernel
from .tiles import NR, pack_address, pack_all_at

NONE = np.empty(0, np.float32)  # what kernels taking a packed copy get when there is none
_cache: dict[int, list] = {}  # id(kernel) -> see _entry
_lock = threading.Lock()


@kernel
def _pack(b, k, n, packed, pack_at):
    pack_all_at(pack_at, b, k, n, packed)   # the packing loop by address: not compiled into this kernel again


def pack_matrix(b: np.ndarray, k: int, n: int, packed: np.ndarray) -> None:
    """b flat (k*n,), a (k, n) matrix, into ``packed`` in :func:`nnlite.ops.tiles.pack_all_at`'s 32-column
    panels."""
    _pack(b, k, n, packed, pack_address())


def frozen(array: np.ndarray) -> bool:
    """True when neither ``array`` nor any array it views can be written (through numpy)."""
    while isinstance(array, np.ndarray):
        if array.flags.writeable:
            return False
        array = array.base
    if array is None or isinstance(array, bytes):
        return True
    try:
        return memoryview(array).readonly
    except TypeError:
        return False


def freeze(array: np.ndarray) -> None:
    """Make ``array`` and the arrays it views read-only. A view of another object's writable buffer stays
    writable through that object, so :func:`frozen` still says no and such a kernel is packed per call."""
    while isinstance(array, np.ndarray):
        array.flags.writeable = False
        array = array.base


def freeze_kernels(layers) -> None:
    """Make the conv and dense kernels of a model's layers (:class:`nnlite.graph.Layer`) read-only, so they
    may be packed once."""
    for layer in layers:
        if layer.kernel and layer.op in ("conv2d", "separable_conv2d", "dense"):
            for key in ("kernel", "pointwise_kernel"):
                if isinstance(layer.weights.get(key), np.ndarray):
                    freeze(layer.weights[key])


def as_writable(array: np.ndarray) -> np.ndarray:
    """``array`` itself, or for a read-only one a writable-typed view of the same memory (cached while it
    lives) that the kernels, which never write to a kernel, can be compiled for once: Numba types a
    read-only array as another type, which would compile every kernel that reads one a second time."""
    if array.flags.writeable:
        return array
    return _entry(array)[1]


def _entry(array: np.ndarray) -> list:
    """The cache entry of ``array``: [weak reference, writable view, {layout name: packed copy}]."""
    key = id(array)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is array:
        return hit
    memory = (ctypes.c_char * array.nbytes).from_address(array.ctypes.data) if array.nbytes else bytearray()
    view = np.frombuffer(memory, array.dtype).reshape(array.shape)

    def forget(ref, key=key):
        with _lock:
            if _cache.get(key, (None,))[0] is ref:
                del _cache[key]

    entry = [weakref.ref(array, forget), view, {}]
    with _lock:
        _cache[key] = entry
    return entry


@functools.cache
def enabled() -> bool:
    """``NNLITE_PREPACK``: "1" (default when unset or empty) or "0" (pack on every call, no extra memory)."""
    return env_switch("NNLITE_PREPACK")


def once(kernel_array: np.ndarray, layout: str, make) -> np.ndarray | None:
    """``make(view)`` of a read-only ``kernel_array`` (``view``: :func:`as_writable`'s), made once per
    ``layout`` name and kept while the array lives; None when it is writable (or packing once is off)."""
    if not (enabled() and frozen(kernel_array)):
        return None
    entry = _entry(kernel_array)
    made = entry[2].get(layout)
    if made is None:
        made = entry[2][layout] = make(entry[1])
    return made


def panels(kernel_array: np.ndarray) -> np.ndarray | None:
    """``kernel_array`` (..., cin, cout) float32, C-contiguous, as (kh*kw*cin, cout) packed into 32-column
    panels (:func:`nnlite.ops.tiles.pack_all_at`'s layout), made once (see :func:`once`)."""
    return once(kernel_array, "panels", _panels)


def panels_now(kernel_array: np.ndarray) -> np.ndarray:
    """:func:`panels`, or for a writable kernel its panels packed now (a prepared call holding them is kept
    only while the kernel stays the same, as every prepared call)."""
    made = panels(kernel_array)
    return _panels(as_writable(kernel_array)) if made is None else made


def _panels(view: np.ndarray) -> np.ndarray:
    n = view.shape[-1]
    k = view.size // n
    packed = np.empty(-(-n // NR) * k * NR, np.float32)
    _pack(view.reshape(-1), k, n, packed, pack_address())
    return packed
