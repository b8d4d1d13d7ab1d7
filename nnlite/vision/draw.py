"""Draw face results on a photo with Pillow: boxes, the 68 landmarks and a label per face."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import ImageError
from ..fsutil import atomic_path
from .align import box_in_image

BOX_COLOUR = (0, 220, 90)
POINT_COLOUR = (255, 60, 60)
TEXT_BG = (0, 0, 0)
TEXT_FG = (255, 255, 255)


def face_label(face) -> str:
    """Short caption: score, then age/gender and top expression when known."""
    parts = [f"{face.score:.2f}"]
    if face.age is not None:
        parts.append(f"{face.gender} {face.age:.0f}")
    if face.expression:
        parts.append(max(face.expression, key=face.expression.get))
    return " ".join(parts)


def draw_faces(image: np.ndarray, faces: Sequence) -> Image.Image:
    """A copy of the RGB image with each face's box, landmarks and label.

    Sizes follow the photo so the drawing reads the same at any resolution: line width and caption
    height grow with the longer side, landmark dots with each face (68 points must not merge on a small
    face). Captions sit above the box (below it at the top edge) and are kept inside the picture."""
    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")
    pen = ImageDraw.Draw(out)
    longer = max(out.size)
    width = max(1, round(longer / 400))                      # lines stay visible on big photos
    font = _font(max(11, round(longer / 55)))
    for face in faces:
        x, y, w, h = box_in_image(face.box, *out.size)   # a box past the border stays a closed rectangle
        pen.rectangle([x, y, min(x + w, out.size[0] - 1), min(y + h, out.size[1] - 1)], outline=BOX_COLOUR,
                      width=width)
        r = max(1.5, min(w, h) / 60)                         # dot radius: about 1/30 of the face
        for px, py in np.asarray(face.landmarks):
            pen.ellipse([px - r, py - r, px + r, py + r], fill=POINT_COLOUR)
        _caption(pen, out.size, (x, y, w, h), face_label(face), font, pad=max(2, width))
    return out


def _font(size: int):
    """Pillow's bundled scalable font at ``size`` px (its small bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):   # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def _caption(pen: ImageDraw.ImageDraw, image_size, box, text: str, font, pad: int) -> None:
    """White text on a black band just above the box (below it when there is no room), inside the image."""
    x, y, w, h = box
    left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    tx = min(max(x, 0), max(image_size[0] - tw, 0))
    ty = y - th if y - th >= 0 else min(y + h, image_size[1] - th)
    ty = max(ty, 0)
    pen.rectangle([tx, ty, tx + tw, ty + th], fill=TEXT_BG)
    pen.text((tx + pad - left, ty + pad - top), text, fill=TEXT_FG, font=font)


def save_annotated(path: str | Path, image: np.ndarray, faces: Sequence) -> None:
    """Write the annotated image atomically (temporary file, then rename); format from the suffix."""
    picture = draw_faces(image, faces)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    try:
        with atomic_path(path) as tmp:
            picture.save(tmp, format=fmt)
    except OSError as exc:   # missing folder, no permission, a directory in the way
        raise ImageError(f"cannot write annotated image {path}: {exc.strerror or exc}") from None
