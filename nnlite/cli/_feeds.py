"""Feeding and printing tensors for the graph-running commands (``nnlite savedmodel``, ``nnlite onnx``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import GraphFormatError

SCALES = {"raw": (1.0, 0.0), "unit": (1 / 255.0, 0.0), "symmetric": (1 / 127.5, -1.0)}


def split_feed(item: str) -> tuple[str, Path]:
    name, sep, file = item.partition("=")
    if not sep or not name or not file:
        raise GraphFormatError(f"--feed {item!r}: expected NAME=FILE")
    return name, Path(file)


def read_feed(path: Path, hw: tuple[int, int] | None, scale: str) -> np.ndarray:
    """A ``.npy`` array as stored, or an image as a (1, H, W, 3) float32 batch: decoded by
    :func:`nnlite.image.load_image` (its RGB rules and errors), resized (Pillow bilinear) to ``hw``."""
    if path.suffix.lower() == ".npy":
        return _read_npy(path)
    from ..image import load_image, resize
    rgb = load_image(path)
    if hw is not None and rgb.shape[:2] != tuple(hw):
        rgb = resize(rgb, hw, method="bilinear")
    mul, add = SCALES[scale]
    return (rgb.astype(np.float32) * np.float32(mul) + np.float32(add))[None]


def _read_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise GraphFormatError(f"{path}: cannot read the .npy feed ({exc.strerror or exc})") from exc
    if magic != b"\x93NUMPY":
        raise GraphFormatError(f"{path}: not a NumPy .npy array file (no .npy header); save the feed with "
                               f"numpy.save, or give an image file")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise GraphFormatError(f"{path}: holds pickled Python objects, not a numeric array; "
                                   f"nnlite feeds plain numeric .npy arrays only") from exc
        raise GraphFormatError(f"{path}: not a readable .npy array ({exc})") from exc
    except OSError as exc:
        raise GraphFormatError(f"{path}: not a readable .npy array ({exc})") from exc


def imagenet_top(name: str, value: np.ndarray, k: int) -> list[list[dict]]:
    """Per row of an (N, 1000) output: its k largest entries with their ImageNet-1k labels."""
    from ..vision.labels import imagenet_labels
    labels = imagenet_labels()
    v = np.asarray(value)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != len(labels):
        raise GraphFormatError(f"--imagenet-top: output {name} has shape {tuple(np.shape(value))}, not "
                               f"(N, {len(labels)}) ImageNet-1k scores")
    rows = []
    for scores in v:
        order = np.argsort(-scores, kind="stable")[:k]
        rows.append([{"label": labels.names[i], "wnid": labels.wnids[i], "index": int(i),
                      "score": float(scores[i])} for i in order])
    return rows


def print_outputs(names, values, as_json: bool, top: dict | None = None) -> None:
    """Each output as JSON (one object) or as text; ``top``: per output, :func:`imagenet_top`'s rows."""
    if as_json:
        doc = {"outputs": {n: v.tolist() for n, v in zip(names, values)}}
        if top is not None:
            doc["imagenet_top"] = top
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return
    for n, v in zip(names, values):
        print(f"{n}: shape {tuple(v.shape)} {v.dtype}")
        if top is None:
            with np.printoptions(precision=6, threshold=20, edgeitems=5):
                print(v)
            continue
        for row, best in enumerate(top[n]):
            print(f"  [{row}]" if len(top[n]) > 1 else "", end="")
            width = max(len(b["label"]) for b in best) + 1
            for b in best:
                print(f"  {b['label'] + ':':<{width}} {b['score']:.4f}  ({b['wnid']}, {b['index']})")
