"""Feeding and printing tensors for the graph-running commands (``nnlite savedmodel``, ``nnlite onnx``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import GraphFormatError, ImageError

SCALES = {"raw": (1.0, 0.0), "unit": (1 / 255.0, 0.0), "symmetric": (1 / 127.5, -1.0)}


def split_feed(item: str) -> tuple[str, Path]:
    name, sep, file = item.partition("=")
    if not sep or not name or not file:
        raise GraphFormatError(f"--feed {item!r}: expected NAME=FILE")
    return name, Path(file)


def read_feed(path: Path, hw: tuple[int, int] | None, scale: str) -> np.ndarray:
    """A ``.npy`` array as stored, or an image as a (1, H, W, 3) float32 batch (resized to ``hw``)."""
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise GraphFormatError(f"{path}: cannot read the .npy feed ({exc})") from exc
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if hw is not None and im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.BILINEAR)
            x = np.asarray(im, np.float32)
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageError(f"{path}: cannot read the image feed ({exc})") from exc
    mul, add = SCALES[scale]
    return (x * np.float32(mul) + np.float32(add))[None]


def print_outputs(names, values, as_json: bool) -> None:
    if as_json:
        json.dump({"outputs": {n: v.tolist() for n, v in zip(names, values)}}, sys.stdout)
        sys.stdout.write("\n")
        return
    for n, v in zip(names, values):
        print(f"{n}: shape {tuple(v.shape)} {v.dtype}")
        with np.printoptions(precision=6, threshold=20, edgeitems=5):
            print(v)
