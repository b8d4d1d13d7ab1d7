"""Draw face results on a photo with Pillow: boxes, the 68 landmarks and a label per face."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..fsutil import atomic_path

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
    """A copy of the RGB image with each face's box, landmarks and label."""
    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")
    pen = ImageDraw.Draw(out)
    width = max(1, round(max(out.size) / 400))               # lines stay visible on big photos
    r = width
    for face in faces:
        x, y, w, h = face.box
        pen.rectangle([x, y, x + w, y + h], outline=BOX_COLOUR, width=width)
        for px, py in np.asarray(face.landmarks):
            pen.ellipse([px - r, py - r, px + r, py + r], fill=POINT_COLOUR)
        text = face_label(face)
        left, top, right, bottom = pen.textbbox((x, y), text)
        ty = y - (bottom - top) - 2 if y - (bottom - top) - 2 >= 0 else y + h + 2
        pen.rectangle([x, ty, x + (right - left) + 4, ty + (bottom - top) + 2], fill=TEXT_BG)
        pen.text((x + 2, ty), text, fill=TEXT_FG)
    return out


def save_annotated(path: str | Path, image: np.ndarray, faces: Sequence) -> None:
    """Write the annotated image atomically (temporary file, then rename); format from the suffix."""
    picture = draw_faces(image, faces)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        picture.save(tmp, format=fmt)
