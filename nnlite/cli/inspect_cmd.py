"""`nnlite inspect MODEL`: the layer table; with --image/--layer/--out, that layer's feature maps."""

from __future__ import annotations

import argparse

from ..errors import ImageError, ModelError
from ._types import output_file, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="print a model's layers; render one layer's feature maps",
                       description="Print a model's layer table (name, op, output shape, parameters, "
                                   "multiply-accumulates). With --image, --layer and --out, run the model "
                                   "on the image (with the model's own preprocessing) and save that "
                                   "layer's feature maps as a PNG grid.")
    p.add_argument("model", help="a model name (see `nnlite models`) or an .onnx file")
    p.add_argument("--image", help="image to run through the model")
    p.add_argument("--layer", help="layer whose output to render (a name from the table)")
    p.add_argument("--out", type=output_file, help="PNG file to write the feature-map grid to")
    p.add_argument("--max-maps", type=positive_int, default=64, help="at most this many channels (default 64)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import load
    if args.model.lower().endswith(".onnx"):  # an ONNX file is inspected as the nnlite graph it becomes
        from .. import onnx
        obj = onnx.load(args.model)
    else:
        obj = load(args.model)
    model = obj.model
    wants_maps = [args.image, args.layer, args.out]
    if not any(wants_maps):
        print(model.summary())
        return 0
    if not all(wants_maps):
        raise ModelError("feature maps need all three of --image, --layer and --out")
    if args.layer not in model:
        near = [layer.name for layer in model.layers if args.layer.lower() in layer.name.lower()][:10]
        hint = f"; similar names: {', '.join(near)}" if near else "; `nnlite inspect MODEL` lists the layers"
        raise ModelError(f"{model.name} has no layer {args.layer!r}{hint}")
    render_layer(obj, args.image, args.layer, args.out, args.max_maps)
    print(f"wrote {args.out}")
    return 0


def render_layer(obj, image_src, layer: str, out: str, max_maps: int = 64) -> None:
    import numpy as np
    from PIL import Image

    from ..fsutil import atomic_path
    from ..image import load_image
    from ..viz import feature_map_grid

    preprocess = getattr(obj, "preprocess", None)
    if preprocess is None:
        raise ModelError(f"model {obj.model.name} does not declare its preprocessing; cannot run it on an image")
    x = np.asarray(preprocess(load_image(image_src)), np.float32)
    acts = obj.model.trace(x[None] if x.ndim == 3 else x)
    grid = feature_map_grid(acts[layer], max_maps=max_maps)
    try:
        with atomic_path(out) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
    except OSError as exc:   # missing folder, no permission, a directory in the way
        raise ImageError(f"cannot write {out}: {exc.strerror or exc}") from None
