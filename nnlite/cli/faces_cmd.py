"""`nnlite faces IMAGE`: every face in a photo with its landmarks, descriptor, age, gender and expression.

With ``--json`` the output is exactly one JSON object (boxes and landmarks in original-image pixels)::

    {"image": path, "width": W, "height": H,
     "faces": [{"box": [x, y, w, h], "box_in_image": [x, y, w, h], "score": s, "landmarks": [[x, y] x 68],
                "recognizer": "faceapi"|"arcface", "descriptor": [128 or 512 floats],
                "age": a, "gender": "male"|"female", "gender_probability": p,
                "expression": {"neutral": p, "happy": p, "sad": p, "angry": p, "fearful": p,
                               "disgusted": p, "surprised": p}}]}

``box`` is the detector's box as face-api.js reports it, which may run past a border; ``box_in_image`` is its
part inside the image (what face-api.js crops and draws), which the text output shows.
``--out annotated.png`` also writes the photo with boxes, landmarks and labels (written atomically).
"""

from __future__ import annotations

import argparse
import json

from ._types import open_unit_float, output_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("faces", help="find faces: boxes, landmarks, descriptors, age/gender, expression",
                       description="Detect every face in a photo and describe it with the face-api.js nets.")
    p.add_argument("image", metavar="IMAGE", help="image file (JPEG, PNG, ...)")
    p.add_argument("--detector", choices=("ssd", "tiny"), default="ssd",
                   help="SsdMobilenetv1 (default, more accurate) or TinyFaceDetector (faster)")
    p.add_argument("--min-score", type=open_unit_float, default=0.5, metavar="S",
                   help="detection threshold, between 0 and 1 (default 0.5)")
    p.add_argument("--align", choices=("facecrop", "rotate"), default="facecrop",
                   help="face-api.js's crops (default) or rotate the eyes level first")
    add_recognizer_args(p)
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.add_argument("--out", metavar="PNG", type=output_file,
                   help="also write the photo with boxes, landmarks and labels")
    p.set_defaults(func=run)


def add_recognizer_args(p) -> None:
    """--recognizer / --arcface-model, shared with `nnlite compare`."""
    p.add_argument("--recognizer", choices=("faceapi", "arcface"), default="faceapi",
                   help="descriptor net: face-api.js's 128-d (default) or an ArcFace 512-d ONNX model")
    p.add_argument("--arcface-model", metavar="PATH.onnx", default=None,
                   help="the ArcFace .onnx file (input 1x3x112x112, output 512-d), with --recognizer arcface")


def recognizer_kwargs(args) -> dict:
    from ..errors import ModelError
    if args.recognizer == "arcface" and not args.arcface_model:
        raise ModelError("--recognizer arcface needs --arcface-model PATH.onnx")
    return {"recognizer": args.recognizer, "arcface_model": args.arcface_model}


def analyzer_recognizer(args) -> dict:
    """The photo library's analyzer options for --recognizer/--arcface-model (none for the default)."""
    import os
    kwargs = recognizer_kwargs(args)
    if kwargs["recognizer"] == "faceapi":
        return {}
    return {"recognizer": "arcface", "arcface_model": os.path.abspath(kwargs["arcface_model"])}


def faces_json(image: str, pixels, faces) -> dict:
    from ..vision.align import box_in_image
    height, width = pixels.shape[:2]
    return {"image": image, "width": int(width), "height": int(height),
            "faces": [{**f.to_json(), "box_in_image": [float(v) for v in box_in_image(f.box, width, height)]}
                      for f in faces]}


def run(args: argparse.Namespace) -> int:
    from ..image import load_image
    from ..vision.align import box_in_image
    from ..vision.faces import FacePipeline
    pixels = load_image(args.image)   # the one decode; the pipeline and the drawing take these pixels
    pipeline = FacePipeline(detector=args.detector, min_score=args.min_score, align=args.align,
                            **recognizer_kwargs(args))
    faces = pipeline.detect(pixels)
    if args.out:
        from ..vision.draw import save_annotated
        save_annotated(args.out, pixels, faces)
    if args.json:
        print(json.dumps(faces_json(args.image, pixels, faces)))
        return 0
    print(f"{args.image}: {pixels.shape[1]}x{pixels.shape[0]}, {len(faces)} face(s)")
    for i, f in enumerate(faces, 1):
        height, width = pixels.shape[:2]
        bx, by, bw, bh = f.box
        x, y, w, h = (bx, by, bw, bh) if bx >= 0 and by >= 0 and bx + bw <= width and by + bh <= height else \
            box_in_image(f.box, width, height)
        past = "" if (x, y, w, h) == (bx, by, bw, bh) else \
            " (detector's box [" + ", ".join(f"{v:.0f}" for v in f.box) + "] runs past the image)"
        top = max(f.expression, key=f.expression.get)
        print(f"  face {i}: box [{x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}] score {f.score:.2f}  {f.gender} "
              f"({f.gender_probability:.2f}) age {f.age:.0f}  {top} ({f.expression[top]:.2f}){past}")
    if args.out:
        print(f"annotated image written to {args.out}")
    return 0
