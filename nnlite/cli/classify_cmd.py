"""`nnlite classify IMAGE [IMAGE ...]`: the top ImageNet classes of photos.

Text output, per image: the path and model, then one ``label: score`` line per class. With
``--json`` the output is exactly one JSON object. For one image::

    {"image": "cat.png", "model": "mobilenet_v2",
     "predictions": [{"label": "Egyptian_cat", "wnid": "n02124075", "index": 285, "score": 0.7166}, ...]}

For several images, one object holding one such entry per image, in the order given::

    {"model": "mobilenet_v2", "results": [{"image": ..., "model": ..., "predictions": [...]}, ...]}

Any unreadable image stops the command before anything is printed (exit status 2, message on stderr).
"""

from __future__ import annotations

import argparse
import json

from ._types import positive_int

DEFAULT_MODEL = "mobilenet_v2"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="top ImageNet classes of images",
                       description="Classify images with an ImageNet model and print the most likely "
                                   "classes. Several images run as one batch.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s): JPEG, PNG, ...")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL}; "
                                                          "`nnlite models` lists them)")
    p.add_argument("--top", type=positive_int, default=5, metavar="K", help="how many classes (default 5)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (one image: {image, model, predictions}; several: "
                        "{model, results: [...]})")
    p.set_defaults(func=run)


def result_dict(image: str, model: str, predictions) -> dict:
    """The JSON entry for one image; scores rounded to 6 decimals."""
    return {"image": image, "model": model,
            "predictions": [{"label": p.label, "wnid": p.wnid, "index": p.index, "score": round(p.score, 6)}
                            for p in predictions]}


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..errors import ModelError

    classifier = load(args.model)
    if not hasattr(classifier, "classify_batch"):
        raise ModelError(f"model {args.model!r} is not an image classifier; `nnlite models` lists the "
                         f"imagenet family")
    all_preds = classifier.classify_batch(args.images)   # every image is read before anything prints
    results = [result_dict(path, args.model, preds.best(args.top)) for path, preds in zip(args.images, all_preds)]
    if args.json:
        doc = results[0] if len(results) == 1 else {"model": args.model, "results": results}
        print(json.dumps(doc))
        return 0
    for i, res in enumerate(results):
        if i:
            print()
        print(f"{res['image']} ({res['model']})")
        width = max(len(p["label"]) for p in res["predictions"])
        for p in res["predictions"]:
            print(f"  {p['label'] + ':':<{width + 1}} {p['score']:.4f}  ({p['wnid']}, {p['index']})")
    return 0
