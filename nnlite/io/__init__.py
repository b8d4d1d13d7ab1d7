"""Weight-file readers: each turns one on-disk format into plain ``{name: np.ndarray}`` data.

Every malformed input raises :class:`nnlite.errors.WeightsError` naming the file and what was expected.
"""

from __future__ import annotations

from .tfjs import load_tfjs

__all__ = ["load_tfjs"]
