"""Detection boxes: the :class:`Detection` result type, intersection-over-union and non-max suppression.

Conventions (shared by every detector in nnlite):
- A box is ``(x, y, w, h)``: left, top, width, height as floats, in pixels of the *original* image
  (for ``Detection``) or in any common unit (for :func:`iou` / :func:`nms`, which are scale-free).
- IoU = intersection area / union area; a box with zero or negative area overlaps nothing (IoU 0),
  and two boxes that only touch along an edge or a corner have IoU 0.

:func:`nms` follows face-api.js's greedy non-max suppression: keep candidates whose score is *strictly*
above ``score_threshold``, visit them by descending score, and keep a box unless its IoU with a box already
kept is *strictly* greater than ``iou_threshold``; stop once ``max_results`` boxes are kept. Equal scores are
visited in index order (face-api.js's SSD rule; its Tiny detector visits ties in reverse index order, which
only matters for bit-identical scores).

Each function has a naive twin (``iou_naive``, ``nms_naive``: plain Python loops written straight from the
definition) that the tests compare with the vectorised versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, ShapeError


@dataclass(frozen=True)
class Detection:
    """One detected object: ``box`` = (x, y, w, h) in original-image pixels, ``score`` in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def x(self) -> float:
        return self.box[0]

    @property
    def y(self) -> float:
        return self.box[1]

    @property
    def width(self) -> float:
        return self.box[2]

    @property
    def height(self) -> float:
        return self.box[3]

    @property
    def right(self) -> float:
        return self.box[0] + self.box[2]

    @property
    def bottom(self) -> float:
        return self.box[1] + self.box[3]

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    def to_dict(self) -> dict:
        """``{"box": [x, y, w, h], "score": s}`` with plain Python floats (JSON-ready)."""
        return {"box": [float(v) for v in self.box], "score": float(self.score)}


# -- fast (vectorised) versions ------------------------------------------------------------------

def _numbers(values, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{what}: expected an array of numbers, found {type(values).__name__} ({exc})") from None


def _threshold(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or math.isnan(value):
        raise ConfigError(f"{what}: expected a number, found {value!r}")


def _count(value, what: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not float(value).is_integer() or value < 0):
        raise ConfigError(f"{what}: expected a whole number >= 0, found {value!r}")


def _as_boxes(boxes, what: str) -> np.ndarray:
    arr = _numbers(boxes, what)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ShapeError(f"{what}: expected boxes of shape (N, 4) as (x, y, w, h), found {arr.shape}")
    return arr


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) boxes (x, y, w, h) -> (N, M) float64."""
    a, b = _as_boxes(boxes_a, "iou_matrix"), _as_boxes(boxes_b, "iou_matrix")
    ax0, ay0, aw, ah = (a[:, i:i + 1] for i in range(4))     # (N, 1) each
    bx0, by0, bw, bh = (b[None, :, i] for i in range(4))     # (1, M) each
    inter_w = np.maximum(0.0, np.minimum(ax0 + aw, bx0 + bw) - np.maximum(ax0, bx0))
    inter_h = np.maximum(0.0, np.minimum(ay0 + ah, by0 + bh) - np.maximum(ay0, by0))
    inter = inter_w * inter_h
    area_a, area_b = aw * ah, bw * bh
    union = area_a + area_b - inter
    valid = (area_a > 0) & (area_b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(valid, inter / np.where(valid, union, 1.0), 0.0)
    return out


def iou(box_a, box_b) -> float:
    """IoU of two (x, y, w, h) boxes."""
    return float(iou_matrix(box_a, box_b)[0, 0])


def nms(boxes, scores, *, iou_threshold: float, score_threshold: float | None = None,
        max_results: int | None = None) -> list[int]:
    """Greedy non-max suppression (face-api.js rules, see the module docstring) -> kept indices, best first."""
    boxes = _as_boxes(boxes, "nms")
    scores = _numbers(scores, "nms").reshape(-1)
    _threshold(iou_threshold, "nms iou_threshold")
    if score_threshold is not None:
        _threshold(score_threshold, "nms score_threshold")
    if max_results is not None:
        _count(max_results, "nms max_results")
    if scores.shape[0] != boxes.shape[0]:
        raise ShapeError(f"nms: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
    candidates = np.arange(len(scores)) if score_threshold is None else np.flatnonzero(scores > score_threshold)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    limit = len(order) if max_results is None else min(int(max_results), len(order))
    suppressed = np.zeros(len(order), dtype=bool)
    ordered_boxes = boxes[order]
    kept: list[int] = []
    for pos in range(len(order)):
        if len(kept) >= limit:
            break
        if suppressed[pos]:
            continue
        kept.append(int(order[pos]))
        later = slice(pos + 1, None)
        suppressed[later] |= iou_matrix(ordered_boxes[pos], ordered_boxes[later])[0] > iou_threshold
    return kept


# -- naive twins (straight from the definitions; the tests' reference) --------------------------

def iou_naive(box_a, box_b) -> float:
    ax, ay, aw, ah = (float(v) for v in box_a)
    bx, by, bw, bh = (float(v) for v in box_b)
    if aw * ah <= 0 or bw * bh <= 0:
        return 0.0
    inter_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = inter_w * inter_h
    return inter / (aw * ah + bw * bh - inter)


def nms_naive(boxes, scores, *, iou_threshold: float, score_threshold: float | None = None,
              max_results: int | None = None) -> list[int]:
    threshold = -math.inf if score_threshold is None else score_threshold
    candidates = [i for i in range(len(scores)) if scores[i] > threshold]
    candidates.sort(key=lambda i: -float(scores[i]))   # stable: equal scores keep index order
    kept: list[int] = []
    for i in candidates:
        if max_results is not None and len(kept) >= max_results:
            break
        if all(iou_naive(boxes[i], boxes[j]) <= iou_threshold for j in kept):
            kept.append(i)
    return kept
