"""Fast bias add, inference batch norm and batch-norm folding.

Batch norm: y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, computed as one fused multiply-add
x * scale + shift per channel with scale and shift prepared in float64. Folding into the preceding conv
or dense is exact algebra (see :func:`nnlite.ops.reference.fold_batch_norm`); it runs once at load time.
The fast version gives bit-identical results (each product is still formed in float64 and rounded once to
float32) but streams the kernel through NumPy's small cast buffers instead of making two full float64 copies:
for ResNet50's 3x3x512x512 kernels that was 38 MB of temporaries per call and 0.2 s of its 0.3 s load.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from . import checks


def bias_add(x, bias):
    """x + bias on the last axis."""
    x = checks.floats(x, "bias_add", min_ndim=1)
    bias = checks.bias_vector(bias, x.shape[-1], "bias_add")
    from .activations import affine_act  # compiled: Numba loads with it, not with fold_batch_norm's loaders
    return affine_act(x, np.ones_like(bias), bias)


def batch_norm(x, gamma, beta, mean, variance, *, epsilon=1e-3):
    """Inference batch norm on the last axis; gamma None means 1, beta None means 0."""
    x = checks.floats(x, "batch_norm", min_ndim=1)
    c = x.shape[-1]
    g = checks.vector(gamma, c, "batch_norm", "gamma", 1.0).astype(np.float64)
    b = checks.vector(beta, c, "batch_norm", "beta", 0.0).astype(np.float64)
    m = checks.vector(mean, c, "batch_norm", "mean").astype(np.float64)
    v = checks.vector(variance, c, "batch_norm", "variance").astype(np.float64)
    scale = g / np.sqrt(v + epsilon)
    from .activations import affine_act
    return affine_act(x, scale.astype(np.float32), (b - m * scale).astype(np.float32))


def fold_batch_norm(kernel, bias, gamma, beta, mean, variance, *, epsilon, depthwise=False, out=None):
    """Fold inference batch norm into the preceding conv/dense: returns (kernel', bias') as float32.

    Same rule and same bits as :func:`nnlite.ops.reference.fold_batch_norm` (scale = gamma /
    sqrt(variance + epsilon) per output channel, depthwise output channel c*mult + m).
    ``out``: a float32 array of the kernel's shape to write kernel' into (it may be ``kernel`` itself: a
    loader folding a file's array in place saves allocating, and page-faulting, a second copy).
    """
    kernel = np.asarray(kernel)
    if kernel.dtype.kind not in "biuf" or kernel.ndim < (2 if depthwise else 1):
        raise ShapeError(f"fold_batch_norm: expected a numeric kernel of at least {2 if depthwise else 1} "
                         f"dimension(s), got dtype {kernel.dtype} and shape {kernel.shape}")
    scale, folded_bias = batch_norm_scale(kernel.shape, bias, gamma, beta, mean, variance, epsilon=epsilon,
                                          depthwise=depthwise)
    if out is None:
        out = np.empty(kernel.shape, np.float32)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == kernel.shape):
        raise ShapeError(f"fold_batch_norm: out must be a float32 array of shape {kernel.shape}")
    # the float64 loop with a float32 output: inputs widened and the product rounded in small buffers
    np.multiply(kernel, scale.reshape(kernel.shape[-2:]) if depthwise else scale, out=out, dtype=np.float64,
                casting="same_kind")
    return out, folded_bias


def batch_norm_scale(kernel_shape, bias, gamma, beta, mean, variance, *, epsilon, depthwise=False):
    """The per-output-channel (scale, folded bias) of :func:`fold_batch_norm`: scale float64, bias float32.
    Output channel c*mult + m for a depthwise kernel (kh, kw, cin, mult); gamma/beta None mean 1/0."""
    cout = kernel_shape[-2] * kernel_shape[-1] if depthwise else kernel_shape[-1]
    g = checks.vector(gamma, cout, "fold_batch_norm", "gamma", 1.0).astype(np.float64)
    bt = checks.vector(beta, cout, "fold_batch_norm", "beta", 0.0).astype(np.float64)
    m = checks.vector(mean, cout, "fold_batch_norm", "mean").astype(np.float64)
    v = checks.vector(variance, cout, "fold_batch_norm", "variance").astype(np.float64)
    b0 = np.zeros(cout) if bias is None else checks.vector(bias, cout, "fold_batch_norm", "bias").astype(np.float64)
    scale = g / np.sqrt(v + epsilon)
    return scale, ((b0 - m) * scale + bt).astype(np.float32)
