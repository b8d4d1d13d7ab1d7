"""NHWC float32 kernels: fast paths (NumPy BLAS + Numba) with naive twins in :mod:`nnlite.ops.reference`.

Layout: x is (N, H, W, C). Inputs are positional, weights and attributes keyword. ``padding`` is "valid",
TensorFlow "same" (extra row/column bottom/right) or explicit (top, bottom, left, right); ``activation`` is
None, "relu", "relu6", "leaky_relu" (``alpha``, default 0.2), "sigmoid" or "swish". See
:mod:`nnlite.ops.padding` for the padding rule and :mod:`nnlite.ops.reference` for every other rule.

Engines (:mod:`nnlite.ops.engine`): convolutions run on nnlite's own AVX-512 implicit GEMM
(:mod:`nnlite.ops.gemm`: register tiles from :mod:`nnlite.ops.microkernels`, shared packing and epilogue in
:mod:`nnlite.ops.tiles`, on the explicit SIMD vectors of :mod:`nnlite.ops.simd`) where the CPU has AVX-512,
else on im2col + NumPy's BLAS; ``NNLITE_GEMM=simd|blas|numpy`` overrides the choice ("numpy": every layer of a
model in NumPy alone, :mod:`nnlite.ops.numpy_engine`, for a process that runs one image). Results agree to float32
rounding either way (tested). Each kernel's module, and Numba with it, is imported at the kernel's first use, so a
process on the "numpy" engine never loads Numba.

Threads: ``NNLITE_NUM_THREADS`` (default all cores) sets how many threads run every kernel: Numba's
threads for the Numba kernels (:mod:`nnlite.ops.parallel`), nnlite's Python pool for the BLAS engine's
matmuls; NumPy's OpenBLAS is set to one thread (:mod:`nnlite.ops.threads` says why).
:func:`set_num_threads` changes it at run time.
"""

from __future__ import annotations

import importlib

from . import threads as _threads

_threads.apply_env_before_numpy()  # must run before the first NumPy import to reach OpenBLAS

from . import engine  # noqa: E402,F401
from .threads import blas_core, blas_num_threads, get_num_threads, set_num_threads  # noqa: E402

# Where each kernel lives. A kernel's module (and Numba, which it compiles with) is imported at its first use,
# not with this package: a process on the NumPy engine (nnlite.ops.numpy_engine) never imports Numba.
_HOMES = {
    "activations": ("ACTIVATIONS", "leaky_relu", "relu", "relu6", "sigmoid", "softmax", "swish"),
    "concatenate": ("concat",), "conv": ("conv2d", "dense"), "convpool": ("conv2d_max_pool",),
    "depthwise": ("depthwise_conv2d",), "inverted": ("inverted_residual",),
    "normalization": ("batch_norm", "bias_add", "fold_batch_norm"),
    "padding": ("resolve_padding", "resolve_padding_2d"),
    "pooling": ("avg_pool2d", "global_avg_pool2d", "max_pool2d"), "resize": ("resize_bilinear",),
    "resize_rules": ("resize_nearest",),
    "separable": ("depthwise_pointwise", "separable_conv2d"), "separable_pool": ("separable_max_pool",),
    "shape": ("add",), "arrays": ("crop2d", "flatten", "mean", "multiply", "reshape", "zero_pad2d"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "conv2d", "depthwise_conv2d", "separable_conv2d", "dense", "bias_add", "batch_norm", "fold_batch_norm",
    "relu", "relu6", "leaky_relu", "sigmoid", "swish", "softmax", "max_pool2d", "avg_pool2d",
    "global_avg_pool2d", "zero_pad2d", "crop2d", "add", "multiply", "concat", "mean", "reshape", "flatten",
    "resize_bilinear", "resize_nearest", "resolve_padding", "resolve_padding_2d", "ACTIVATIONS",
    "set_num_threads", "get_num_threads", "blas_num_threads", "blas_core", "engine",
    "depthwise_pointwise", "inverted_residual", "conv2d_max_pool", "separable_max_pool",
]

# The kernels above, each with a naive twin of the same name in nnlite.ops.reference (a test checks the pairing;
# the twins are test oracles, never called by production code).
KERNELS = tuple(name for name in __all__ if name not in (
    "resolve_padding", "resolve_padding_2d", "ACTIVATIONS", "set_num_threads", "get_num_threads",
    "blas_num_threads", "blas_core", "engine"))


def for_engine(name: str):
    """The kernel ``name`` as this process's engine runs it: its NumPy form on the "numpy" engine (without loading
    Numba), else the compiled kernel."""
    if engine.numpy():
        from .numpy_engine import KERNELS
        if name in KERNELS:
            return KERNELS[name]
    return globals()[name] if name in globals() else __getattr__(name)


def __getattr__(name: str):
    """A kernel named in ``__all__``, imported from its module on first use (PEP 562)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
