"""`nnlite segment IMAGE`: instances (COCO label, score, box, mask) found by Mask R-CNN.

Text output: one ``label score x y w h`` line per instance. ``--json``::

    {"image", "width", "height", "model": "mask_rcnn_coco",
     "instances": [{"label", "score", "box": [x, y, w, h], "mask": {"size": [h, w], "counts": "..."}}]}

with each mask in COCO's compressed run-length encoding (column-major, as pycocotools writes it).
``--out`` saves the image with translucent masks, boxes and labels. No instance: an empty list, exit 0.
"""

from __future__ import annotations

import argparse
import json

MODEL = "mask_rcnn_coco"


def _score(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="instance segmentation (Mask R-CNN, COCO classes)",
                       description="Find objects of the 80 COCO classes and their masks with matterport's "
                                   "Mask R-CNN (needs `nnlite fetch mask_rcnn_coco`).")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--min-score", type=_score, default=0.7, help="lowest score kept (default 0.7)")
    p.add_argument("--max-dim", type=int, default=1024, help="IMAGE_MAX_DIM, a multiple of 64 (default 1024)")
    p.add_argument("--weights", help="a mask_rcnn_coco.h5 file (default: the fetched one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", help="save an annotated picture here (PNG or JPEG)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..image import load_image
    from ..models.maskrcnn.config import MaskRCNNConfig
    from ..models.maskrcnn.model import load_model
    from ..vision.segment import Segmenter, save_annotated
    config = MaskRCNNConfig(image_max_dim=args.max_dim, detection_min_confidence=min(args.min_score, 0.7))
    rgb = load_image(args.image)
    seg = Segmenter(load_model(args.weights, config))
    instances = seg.segment(rgb, min_score=args.min_score)
    if args.out:
        save_annotated(args.out, rgb, instances)
    if args.json:
        print(json.dumps({"image": args.image, "width": rgb.shape[1], "height": rgb.shape[0], "model": MODEL,
                          "instances": [i.to_json() for i in instances]}))
    else:
        print(f"{args.image}: {len(instances)} instance(s) ({MODEL})")
        for i in instances:
            print(f"  {i.label} {i.score:.3f} box x={i.box[0]} y={i.box[1]} w={i.box[2]} h={i.box[3]}")
    return 0
