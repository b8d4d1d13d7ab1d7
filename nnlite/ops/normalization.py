"""Fast bias add, inference batch norm and batch-norm folding.

Batch norm: y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, computed as one fused multiply-add
x * scale + shift per channel with scale and shift prepared in float64. Folding into the preceding conv
or dense is exact algebra (see :func:`nnlite.ops.reference.fold_batch_norm`); it runs once at load time,
so the reference implementation serves as the fast one too.
"""

from __future__ import annotations

import numpy as np

from . import checks
from .activations import affine_act
from .reference import fold_batch_norm  # noqa: F401  (load-time only: exact float64 algebra is fast enough)


def bias_add(x, bias):
    """x + bias on the last axis."""
    x = np.asarray(x, dtype=np.float32)
    bias = checks.bias_vector(bias, x.shape[-1], "bias_add")
    return affine_act(x, np.ones_like(bias), bias)


def batch_norm(x, gamma, beta, mean, variance, *, epsilon=1e-3):
    """Inference batch norm on the last axis; gamma None means 1, beta None means 0."""
    x = np.asarray(x, dtype=np.float32)
    c = x.shape[-1]
    g = checks.vector(gamma, c, "batch_norm", "gamma", 1.0).astype(np.float64)
    b = checks.vector(beta, c, "batch_norm", "beta", 0.0).astype(np.float64)
    m = checks.vector(mean, c, "batch_norm", "mean").astype(np.float64)
    v = checks.vector(variance, c, "batch_norm", "variance").astype(np.float64)
    scale = g / np.sqrt(v + epsilon)
    return affine_act(x, scale.astype(np.float32), (b - m * scale).astype(np.float32))
