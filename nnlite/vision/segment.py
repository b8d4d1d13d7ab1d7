"""Instance segmentation: an image in, a list of instances (COCO label, score, box, boolean mask) out,
with matterport's Mask R-CNN (:mod:`nnlite.models.maskrcnn`); COCO run-length encoding of masks and an
annotated picture for the ``nnlite segment`` command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..image import load_image
from ..models.maskrcnn import molding
from ..models.maskrcnn.config import COCO_CLASSES
from ..models.maskrcnn.model import MaskRCNN


@dataclass
class Instance:
    label: str            # one of the 80 COCO classes
    class_id: int         # index in COCO_CLASSES (1..80)
    score: float
    box: tuple[int, int, int, int]   # (x, y, w, h) in original pixels
    mask: np.ndarray      # (H, W) bool, the image's size

    def to_json(self) -> dict:
        return {"label": self.label, "score": round(float(self.score), 4), "box": list(self.box),
                "mask": rle_encode(self.mask)}


class Segmenter:
    """``nnlite.load("mask_rcnn_coco")``: :meth:`segment` an image (path, bytes, PIL image or array)."""

    def __init__(self, net: MaskRCNN):
        self.net = net
        self.model = net.model            # ResNet-101 + FPN, for `nnlite inspect`

    @property
    def config(self):
        return self.net.config

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 -> the backbone's input (H, W, 3): resized, padded square, mean subtracted."""
        molded, _, _ = molding.resize_image(rgb, self.net.config)
        return molding.mold_image(molded, self.net.config)

    def with_config(self, **changes) -> Segmenter:
        return Segmenter(self.net.with_config(**changes))

    def segment(self, image, *, min_score: float | None = None) -> list[Instance]:
        """Instances best first; ``min_score`` (default: the config's 0.7) filters by score."""
        rgb = load_image(image)
        cfg = self.net.config
        if min_score is not None and min_score < cfg.detection_min_confidence:
            return self.with_config(detection_min_confidence=min_score).segment(rgb)
        molded, window, _ = molding.resize_image(rgb, cfg)
        out = self.net.run(molding.mold_image(molded, cfg), window)
        det = out["detections"]
        count = int(np.count_nonzero(det[:, 4]))
        boxes = molding.unmold_boxes(det[:count, :4], window, cfg.image_shape, rgb.shape[:2])
        instances = []
        for i in range(count):
            y1, x1, y2, x2 = (int(v) for v in boxes[i])
            score, class_id = float(det[i, 5]), int(det[i, 4])
            if (y2 - y1) * (x2 - x1) <= 0 or (min_score is not None and score < min_score):
                continue   # zero-area boxes are dropped, as matterport's unmold_detections does
            mask = molding.unmold_mask(out["mrcnn_mask"][i, :, :, class_id], boxes[i], rgb.shape, cfg.mask_threshold)
            instances.append(Instance(COCO_CLASSES[class_id], class_id, score, (x1, y1, x2 - x1, y2 - y1), mask))
        return instances


def rle_encode(mask: np.ndarray) -> dict:
    """COCO's compressed RLE of a boolean (H, W) mask: run lengths of 0s then 1s over the pixels in
    column-major order, written as pycocotools writes them (6 bits per character, offset 48, each count
    after the second stored as the difference from the count two before)."""
    h, w = mask.shape
    flat = np.asarray(mask, bool).reshape(-1, order="F")
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = list(np.diff(bounds))
    if flat.size and flat[0]:
        counts = [0] + counts          # the first run counts zeros
    chars = []
    for i, c in enumerate(int(c) for c in counts):
        x = c - int(counts[i - 2]) if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = not ((ch & 0x10) == 0 and x == 0 or (ch & 0x10) != 0 and x == -1)
            if more:
                ch |= 0x20
            chars.append(chr(ch + 48))
    return {"size": [int(h), int(w)], "counts": "".join(chars)}


PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def draw_instances(image: np.ndarray, instances: list[Instance], alpha: float = 0.45):
    """A PIL image: each mask tinted in its colour, its box and ``label score`` drawn on top."""
    from PIL import Image, ImageDraw
    out = image.astype(np.float32).copy()
    for k, inst in enumerate(instances):
        colour = np.array(PALETTE[k % len(PALETTE)], np.float32)
        out[inst.mask] = (1 - alpha) * out[inst.mask] + alpha * colour
    picture = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    for k, inst in enumerate(instances):
        x, y, w, h = inst.box
        pen.rectangle([x, y, x + w - 1, y + h - 1], outline=PALETTE[k % len(PALETTE)], width=2)
        pen.text((x + 3, max(y - 12, 0)), f"{inst.label} {inst.score:.2f}", fill=PALETTE[k % len(PALETTE)])
    return picture


def save_annotated(path: str | Path, image: np.ndarray, instances: list[Instance]) -> None:
    from ..fsutil import atomic_path
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        draw_instances(image, instances).save(tmp, format=fmt)
