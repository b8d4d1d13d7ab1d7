"""Face crops: the detection crop, face-api.js's landmark-box alignment and a rotation-corrected alignment.

Conventions: a box is (x, y, w, h) floats in pixels of the original image; an image is an RGB uint8
array (H, W, 3); landmarks are a (68, 2) float array of (x, y) pixels (iBUG 68-point order: 36-41 the
eye on the image's left, 42-47 the other eye).

- :func:`crop` follows face-api.js's ``extractFaceTensors`` (its route for tensor input, the usual one in
  Node): the box is clipped at the image border, then floored, so crops never leave the image. (Its canvas
  route, ``extractFaces``, floors before clipping: at a border its crop can be one pixel larger.)
- :func:`landmark_box` is face-api.js's ``FaceLandmarks.align()``: the tight bounding box of the 68 points,
  grown by ``padding`` (20 %) of its width and height, half on each side.
- :func:`dlib_box` is face-api.js's ``align(null, {useDlibAlignment: true})``, the crop its descriptor
  route uses: a square of side floor(mean eye-to-mouth distance / 0.45) whose point (0.5, 0.43) of the
  side lies on the mean of the two eye centres and the mouth centre (x and y clamped at 0; at the left or
  top border the side is then capped by the detection crop's size, as face-api.js does).
- :func:`rotated_crop` (``align="rotate"``): rotate the image about the midpoint between the eye centres so
  that the eyes are level, then take the same padded landmark box in the rotated frame. Pixels from
  outside the image are black. It is what face-api.js users ask for: tilted faces match badly.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..errors import ShapeError

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
# face-api.js's dlib alignment constants: where the reference point sits in the square, and its size
DLIB_REL_X, DLIB_REL_Y, DLIB_REL_SCALE = 0.5, 0.43, 0.45


def clip_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """face-api.js's ``box.clipAtImageBorders(width, height)`` (clip, then floor), at least 1x1 in the image."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = max(x, 0.0), max(y, 0.0)
    cw = min(x + w - cx, width - cx)
    ch = min(y + h - cy, height - cy)
    cx, cy, cw, ch = (math.floor(v) for v in (cx, cy, cw, ch))
    # face-api.js would fail on an empty crop; a box entirely outside the image keeps one border pixel
    cx, cy = min(cx, width - 1), min(cy, height - 1)
    return cx, cy, max(int(cw), 1), max(int(ch), 1)


def box_in_image(box, width: int, height: int) -> tuple[float, float, float, float]:
    """The part of ``box`` inside the image, unrounded: face-api.js's ``clipAtImageBorders`` before its floor.
    Detectors report boxes that may run past a border (face-api.js does too); this is the region that is
    drawn and read."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))
    return cx, cy, max(0.0, min(x + w, width) - cx), max(0.0, min(y + h, height) - cy)


def crop(image: np.ndarray, box) -> np.ndarray:
    """The (h, w, 3) region of ``image`` under ``box`` (floored, clipped at the borders)."""
    height, width = image.shape[:2]
    x, y, w, h = clip_box(box, width, height)
    return image[y:y + h, x:x + w]


def landmark_box(landmarks: np.ndarray, padding: float = 0.2) -> tuple[float, float, float, float]:
    """Bounding box of the points grown by ``padding`` x its size (half per side), as face-api.js aligns."""
    pts = _points(landmarks)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    w, h = x1 - x0, y1 - y0
    return (float(x0 - w * padding / 2), float(y0 - h * padding / 2), float(w * (1 + padding)),
            float(h * (1 + padding)))


def dlib_box(landmarks: np.ndarray, crop_size: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
    """face-api.js's dlib-style face box (x, y, w, h), integer-valued; see the module docstring.

    ``crop_size``: (height, width) of the detection crop the landmarks were found in. face-api.js caps the
    square's width at crop width + x and its height at crop height + y; that cap bites only where x or y was
    clamped to 0 (a face at the left or top border), and there it narrows the crop the descriptor reads.
    """
    pts = _points(landmarks)
    if pts.shape[0] != 68:
        raise ShapeError(f"dlib alignment: expected 68 landmark points, found {pts.shape[0]}")
    eyes_mouth = np.stack([pts[LEFT_EYE].mean(0), pts[RIGHT_EYE].mean(0), pts[MOUTH].mean(0)])
    eye_to_mouth = np.linalg.norm(eyes_mouth[2] - eyes_mouth[:2], axis=1).mean()
    size = math.floor(eye_to_mouth / DLIB_REL_SCALE)
    ref = eyes_mouth.mean(axis=0)
    x = math.floor(max(0.0, ref[0] - DLIB_REL_X * size))
    y = math.floor(max(0.0, ref[1] - DLIB_REL_Y * size))
    w = h = size
    if crop_size is not None:
        w, h = min(size, crop_size[1] + x), min(size, crop_size[0] + y)
    return float(x), float(y), float(w), float(h)


def eye_angle(landmarks: np.ndarray) -> float:
    """Angle (radians, image coordinates: y down) of the line from one eye centre to the other."""
    pts = _points(landmarks)
    left, right = pts[LEFT_EYE].mean(axis=0), pts[RIGHT_EYE].mean(axis=0)
    return float(math.atan2(right[1] - left[1], right[0] - left[0]))


def rotate_points(landmarks: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotate the points about the eye midpoint so the eyes are level: (points, angle, centre)."""
    pts = _points(landmarks)
    angle = eye_angle(pts)
    centre = (pts[LEFT_EYE].mean(axis=0) + pts[RIGHT_EYE].mean(axis=0)) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    rel = pts - centre                       # p' = R(-angle) (p - c) + c
    return np.stack([cos * rel[:, 0] + sin * rel[:, 1], -sin * rel[:, 0] + cos * rel[:, 1]], 1) + centre, \
        angle, centre


def rotated_crop(image: np.ndarray, landmarks: np.ndarray, box: str = "landmarks"
                 ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Rotate the image so the eyes are level, then crop ``box`` of the rotated points.

    ``box``: "landmarks" (:func:`landmark_box`) or "dlib" (:func:`dlib_box`). Returns (crop (h, w, 3)
    uint8, the box in the rotated frame). One bilinear resampling (Pillow's affine transform) does both
    the rotation and the crop; pixels from outside the image are black.
    """
    rotated, angle, centre = rotate_points(landmarks)
    bx, by, bw, bh = dlib_box(rotated) if box == "dlib" else landmark_box(rotated)
    out_w, out_h = max(1, int(round(bw))), max(1, int(round(bh)))
    # Pillow maps output pixel (u, v) to the source point (a u + b v + c, d u + e v + f):
    # source = R(angle) ((bx + u, by + v) - centre) + centre
    cos, sin = math.cos(angle), math.sin(angle)
    ox, oy = bx - centre[0], by - centre[1]
    coeffs = (cos, -sin, cos * ox - sin * oy + centre[0],
              sin, cos, sin * ox + cos * oy + centre[1])
    src = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    out = src.transform((out_w, out_h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                        fillcolor=(0, 0, 0))
    return np.asarray(out), (bx, by, bw, bh)


def _points(landmarks) -> np.ndarray:
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 48:
        raise ShapeError(f"face alignment: expected (68, 2) landmark points, found shape {pts.shape}")
    return pts
