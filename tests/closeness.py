"""How close a fast kernel's float32 output must come to its float64 twin (nnlite.ops.reference).

Two measures:

* :func:`rel`, ``||fast - twin|| / ||twin||`` over the whole output. Fine for outputs of many values; but a
  randomly drawn output of one value can be a sum that cancels to almost nothing (21 terms near 1 adding up
  to 1.4e-5), and float32 rounds such a sum relative to its terms, not to the result.
* :func:`assert_within_rounding`, value by value: ``|fast - twin| <= TOL * (scale + |twin|)``, where scale is
  the size of the terms each output sums (:func:`term_scale`: the twin run on their absolute values, no
  activation). Rounding stays inside it however far the sum cancels, and any real error (a tap or channel
  missed or misplaced, a wrong bias or activation) is a whole term's size, far beyond it. The activations
  nnlite fuses move two values at most about as far apart as they were (relu, relu6 and leaky_relu with
  alpha < 1 never further; sigmoid a quarter as far; swish 1.1 times), and ``|twin|`` covers their own
  rounding.
"""

from __future__ import annotations

import numpy as np

TOL = 1e-5


def rel(a, b) -> float:
    """||a - b|| / ||b||, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"fast shape {a.shape} != reference {b.shape}"
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def term_scale(twin, *args, **kwargs) -> np.ndarray:
    """``twin(*args, **kwargs)`` on the absolute values of its array arguments with no activation: for a
    sum of products (a convolution, a dense layer, a pooling average, a bilinear resize, an add), each output
    value's sum of its terms' magnitudes."""
    args = [np.abs(a) if isinstance(a, np.ndarray) else a for a in args]
    kwargs = {key: None if key.endswith("activation") else value for key, value in kwargs.items()}
    return np.asarray(twin(*args, **kwargs), np.float64)


def assert_within_rounding(got, want, scale, tol: float = TOL) -> None:
    """Every value of ``got`` within ``tol * (scale + |want|)`` of ``want`` (see the module's docstring)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"fast shape {got.shape} != reference {want.shape}"
    error = np.abs(got - want)
    bound = tol * (np.asarray(scale, np.float64) + np.abs(want))
    if not np.all(error <= bound):  # NaN in either fails too
        ratio = np.where(np.isnan(error), np.inf, error / np.maximum(bound, 1e-300))
        worst = np.unravel_index(np.argmax(ratio), error.shape)
        raise AssertionError(f"value at {tuple(int(i) for i in worst)}: fast {got[worst]:.9g}, reference "
                             f"{want[worst]:.9g}, error {error[worst]:.3g} > bound {bound[worst]:.3g}")
