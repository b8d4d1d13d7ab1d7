"""`nnlite inspect MODEL`: the layer table; with --image/--layer/--out, that layer's feature maps.

MODEL is a registered model name or the path of a TensorFlow SavedModel directory / frozen ``.pb``
(lowered onto the same layer graph; its layers are named as the graph's nodes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ImageError, ModelError
from ._types import output_file, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="print a model's layers; render one layer's feature maps",
                       description="Print a model's layer table (name, op, output shape, parameters, "
                                   "multiply-accumulates). With --image, --layer and --out, run the model "
                                   "on the image (with the model's own preprocessing) and save that "
                                   "layer's feature maps as a PNG grid.")
    p.add_argument("model", help="a model name (see `nnlite models`), a SavedModel directory, a frozen .pb or an "
                                 ".onnx file")
    p.add_argument("--image", help="image to run through the model")
    p.add_argument("--layer", help="layer whose output to render (a name from the table)")
    p.add_argument("--out", type=output_file, help="PNG file to write the feature-map grid to")
    p.add_argument("--max-maps", type=positive_int, default=64, help="at most this many channels (default 64)")
    p.add_argument("--tags", nargs="+", help="SavedModel: the meta graph's tag set (default: the only one, "
                                              "else 'serve')")
    p.add_argument("--input-shape", type=_shape,
                   help="per-example input shape for the table when the model leaves sizes free, e.g. 320,320,3")
    p.add_argument("--image-scale", choices=("raw", "unit", "symmetric"), default="raw",
                   help="SavedModel: pixel scaling of --image (as `nnlite savedmodel --feed`; default raw 0..255)")
    p.set_defaults(func=run)


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive sizes separated by commas, e.g. 224,224,3; got {text!r}")
    return dims


class _SavedModelView:
    """A SavedModel seen as a model object: its graph, and its image input fed as `nnlite savedmodel` does."""

    def __init__(self, path: str, tags, scale: str):
        from ..savedmodel import load as load_savedmodel
        self.saved = load_savedmodel(path, tags)
        self.model, self.scale = self.saved.model, scale

    def image_input(self, image_src):
        from ._feeds import read_feed
        from .savedmodel_cmd import _static_hw
        names = list(self.model.inputs)
        if len(names) != 1:
            raise ModelError(f"{self.model.name} has {len(names)} inputs {names}; feed them with "
                             "`nnlite savedmodel --run` instead")
        return read_feed(Path(image_src), _static_hw(self.saved, None, names[0]), self.scale)


def _open(args: argparse.Namespace):
    if Path(args.model).exists() and not args.model.lower().endswith(".onnx"):
        return _SavedModelView(args.model, args.tags, args.image_scale)
    from .. import load
    if args.model.lower().endswith(".onnx"):  # an ONNX file is inspected as the nnlite graph it becomes
        from .. import onnx
        return onnx.load(args.model)
    return load(args.model)


def run(args: argparse.Namespace) -> int:
    obj = _open(args)
    model = obj.model
    wants_maps = [args.image, args.layer, args.out]
    if not any(wants_maps):
        print(model.summary(input_shape=args.input_shape))
        return 0
    if not all(wants_maps):
        raise ModelError("feature maps need all three of --image, --layer and --out")
    if args.layer not in model:
        near = [layer.name for layer in model.layers if args.layer.lower() in layer.name.lower()][:10]
        hint = f"; similar names: {', '.join(near)}" if near else "; `nnlite inspect MODEL` lists the layers"
        raise ModelError(f"{model.name} has no layer {args.layer!r}{hint}")
    shows = render_layer(obj, args.image, args.layer, args.out, args.max_maps)
    print(f"wrote {args.out}: layer {args.layer}, {shows}")
    return 0


def render_layer(obj, image_src, layer: str, out: str, max_maps: int = 64) -> str:
    """Write the picture of ``layer``'s output to ``out``; return the sentence saying what it shows."""
    import numpy as np
    from PIL import Image

    from ..fsutil import atomic_path
    from ..image import load_image
    from ..viz import render_activation

    if isinstance(obj, _SavedModelView):
        x = obj.image_input(image_src)
    else:
        preprocess = getattr(obj, "preprocess", None)
        if preprocess is None:
            raise ModelError(f"model {obj.model.name} does not declare its preprocessing; cannot run it on an image")
        x = np.asarray(preprocess(load_image(image_src)), np.float32)
    acts = obj.model.trace(x[None] if x.ndim == 3 else x)
    grid, shows = render_activation(acts[layer], max_maps=max_maps)
    try:
        with atomic_path(out) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
    except OSError as exc:   # missing folder, no permission, a directory in the way
        raise ImageError(f"cannot write {out}: {exc.strerror or exc}") from None
    return shows
