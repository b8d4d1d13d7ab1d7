"""`nnlite compare IMAGE1 IMAGE2`: are the most prominent faces of two photos the same person?

The most prominent face is the one with the largest box. Same person when the descriptor distance is
below 0.6 (face-api.js's threshold), or, with ``--recognizer arcface --arcface-model PATH.onnx``, when the
cosine similarity of the ArcFace embeddings is at least 0.35. With ``--json``, exactly one JSON object::

    {"image1": path, "image2": path, "box1": [x, y, w, h], "box2": [x, y, w, h], "recognizer": "faceapi",
     "distance": d, "threshold": 0.6, "same_person": true|false}

(with arcface: ``"recognizer": "arcface", "similarity": s, "threshold": 0.35``).

A photo without a face is an error (exit status 2). Tight face crops (passport-style photos) often
defeat the detector: ``--crops`` skips detection and describes each whole image as one face, as
face-api.js does when handed a crop.
"""

from __future__ import annotations

import argparse
import json

from ..errors import NnliteError
from .faces_cmd import add_recognizer_args, recognizer_kwargs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="are the main faces of two photos the same person?",
                       description="Compare the largest face of each photo by descriptor distance.")
    p.add_argument("image1", metavar="IMAGE1")
    p.add_argument("image2", metavar="IMAGE2")
    p.add_argument("--detector", choices=("ssd", "tiny"), default="ssd", help="face detector (default ssd)")
    p.add_argument("--align", choices=("facecrop", "rotate"), default="facecrop", help="alignment")
    p.add_argument("--crops", action="store_true",
                   help="the images are already face crops: skip detection, use each whole image")
    add_recognizer_args(p)
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.set_defaults(func=run)


def main_face(pipeline, image: str, crops: bool = False):
    from ..image import load_image
    pixels = load_image(image)   # decoded once, here
    if crops:
        h, w = pixels.shape[:2]
        return pipeline.analyze(pixels, [(0.0, 0.0, float(w), float(h))], [1.0])[0]
    faces = pipeline.detect(pixels)
    if not faces:
        raise NnliteError(f"no face found in {image} (if it is a tight face crop, try --crops)")
    return max(faces, key=lambda f: f.area)


def run(args: argparse.Namespace) -> int:
    from ..vision.faces import FacePipeline
    from ..vision.recognizers import compare
    pipeline = FacePipeline(detector=args.detector, align=args.align, attributes=False, **recognizer_kwargs(args))
    a, b = main_face(pipeline, args.image1, args.crops), main_face(pipeline, args.image2, args.crops)
    c = compare(a.descriptor, b.descriptor, a.recognizer, b.recognizer)
    key = "similarity" if c.recognizer == "arcface" else "distance"
    if args.json:
        print(json.dumps({"image1": args.image1, "image2": args.image2, "box1": list(a.box), "box2": list(b.box),
                          "recognizer": c.recognizer, key: c.value, "threshold": c.threshold,
                          "same_person": bool(c.same_person)}))
    else:
        print(f"{c.metric} {c.value:.3f}: {'same person' if c.same_person else 'different people'} "
              f"(threshold {c.threshold})")
    return 0
