"""Padding, stride and window arithmetic shared by every spatial kernel (fast and reference).

Padding specs (``padding=`` keyword of conv/pool kernels):

* ``"valid"``: no padding; ``out = (in - eff) // stride + 1`` with ``eff = (k - 1) * dilation + 1``.
* ``"same"``: the TensorFlow rule. ``out = ceil(in / stride)``;
  ``total = max((out - 1) * stride + eff - in, 0)``; ``before = total // 2``; ``after = total - before``.
  So when ``total`` is odd (typical at stride 2 on even inputs) the extra row/column goes to the
  bottom/right, unlike PyTorch/Caffe symmetric padding.
* ``(top, bottom, left, right)`` ints: explicit padding, as PyTorch/Caffe weights need.
"""

from __future__ import annotations

from ..errors import ModelError, ShapeError


def pair(value, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(2, 1)`` -> ``(2, 1)``; anything else is a ModelError naming ``name``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ModelError(f"{name}: expected an int or a pair of ints, found {value!r}")
        a, b = value
    else:
        a = b = value
    try:
        a, b = int(a), int(b)
    except (TypeError, ValueError):
        raise ModelError(f"{name}: expected an int or a pair of ints, found {value!r}") from None
    if a < 1 or b < 1:
        raise ModelError(f"{name}: expected positive values, found {value!r}")
    return a, b


def four(value, name: str) -> tuple[int, int, int, int]:
    """Normalise ``p``, ``((t, b), (l, r))`` or ``(t, b, l, r)`` to ``(t, b, l, r)`` non-negative ints."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (tuple, list)) for v in value):
        value = (*value[0], *value[1])
    if not isinstance(value, (tuple, list)):
        value = (value,) * 4
    if len(value) != 4:
        raise ModelError(f"{name}: expected (top, bottom, left, right), found {value!r}")
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ModelError(f"{name}: expected (top, bottom, left, right) ints, found {value!r}") from None
    if min(out) < 0:
        raise ModelError(f"{name}: expected non-negative values, found {value!r}")
    return out  # type: ignore[return-value]


def resolve_padding(in_size: int, k: int, stride: int, dilation: int, padding) -> tuple[int, int, int]:
    """One axis: ``(before, after, out)`` for ``"valid"``, TF ``"same"`` or an explicit ``(before, after)``.

    Raises ShapeError when the (padded) input is smaller than the dilated window.
    """
    eff = (k - 1) * dilation + 1
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            before = after = 0
        elif mode == "same":
            out = -(-in_size // stride)  # ceil(in / stride)
            total = max((out - 1) * stride + eff - in_size, 0)
            before = total // 2  # TF: the odd extra row/column goes after (bottom/right)
            after = total - before
        else:
            raise ModelError(f"padding: expected 'valid', 'same' or (top, bottom, left, right), found {padding!r}")
    else:
        before, after = (int(v) for v in padding)
    padded = in_size + before + after
    if padded < eff:
        raise ShapeError(f"input of size {in_size} (padded to {padded}) is smaller than the window "
                         f"{k} (dilated to {eff}); expected at least {eff}")
    return before, after, (padded - eff) // stride + 1


def resolve_padding_2d(h: int, w: int, kh: int, kw: int, stride, dilation, padding):
    """Both axes: ``((top, bottom, oh), (left, right, ow))`` from a padding spec (see module docstring)."""
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    if isinstance(padding, str):
        ph = pw = padding
    else:
        t, b, l, r = four(padding, "padding")
        ph, pw = (t, b), (l, r)
    return resolve_padding(h, kh, sh, dh, ph), resolve_padding(w, kw, sw, dw, pw)
