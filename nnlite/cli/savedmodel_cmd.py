"""``nnlite savedmodel PATH``: inspect and run a TensorFlow SavedModel or frozen graph without TensorFlow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import GraphFormatError
from ._feeds import SCALES, imagenet_top, print_outputs, read_feed, split_feed  # noqa: F401  (SCALES: --help)
from ._types import positive_int

EPILOG = """\
feeds:
  --feed NAME=FILE.npy   the array is fed exactly as stored (dtype cast to the input's dtype).
  --feed NAME=IMAGE      a .jpg/.png/... is decoded to RGB, resized (bilinear) to the input's static
                         height x width when the graph records one, given a batch axis, and fed as
                         float32 0..255 (--image-scale raw, the default: no other preprocessing).
                         --image-scale unit divides by 255; symmetric maps to -1..1 (x/127.5 - 1,
                         what Keras MobileNet/Xception/NASNet expect).
examples:
  nnlite savedmodel myModel --tags myTag --ops
  nnlite savedmodel myModel --tags myTag --run --feed input_1=cat.jpg --fetch predictions/Softmax --imagenet-top 3
  nnlite savedmodel exported --signature serving_default --run --feed keras_tensor=x.npy
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "savedmodel", help="inspect or run a TensorFlow SavedModel / frozen .pb without TensorFlow",
        description="List tags, signatures and operations of a SavedModel directory or frozen GraphDef "
                    ".pb, or run it by node names.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, help="SavedModel directory or frozen graph .pb file")
    p.add_argument("--tags", action="append", default=None,
                   help="meta graph tag (repeat or comma-separate for several; --tags '' for the empty set); "
                        "default: the only one, else 'serve', else the empty set (TF1 Hub modules)")
    p.add_argument("--ops", action="store_true", help="list every operation: name, type, shape, inputs")
    p.add_argument("--functions", action="store_true",
                   help="with --ops: also list the nodes inside function bodies (TF2 exports)")
    p.add_argument("--run", action="store_true", help="run the graph (needs --feed)")
    p.add_argument("--feed", action="append", default=[], metavar="NAME=FILE",
                   help="input to feed: a .npy array or an image (see below); repeatable")
    p.add_argument("--fetch", action="append", default=[], metavar="NAME",
                   help="tensor to fetch, e.g. predictions/Softmax or name:1; repeatable "
                        "(default: the signature's outputs)")
    p.add_argument("--signature", default=None,
                   help="feed/fetch by this signature's keys instead of node names")
    p.add_argument("--image-scale", choices=sorted(SCALES), default="raw",
                   help="pixel scaling of image feeds (default raw: float32 0..255)")
    p.add_argument("--imagenet-top", type=positive_int, default=None, metavar="K",
                   help="with --run: name the K largest values of each fetched (N, 1000) output by their "
                        "ImageNet-1k labels (a classifier's probabilities or logits)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object: with --run {"outputs": {NAME: nested lists}}; without, '
                        'the path, tags, signatures, inputs (and operations with --ops)')
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import savedmodel
    tags = None if args.tags is None else [t for item in args.tags for t in item.split(",") if t]
    model = savedmodel.load(args.path, tags=tags)
    if not args.run:
        if args.json:
            json.dump(_description(model, args), sys.stdout)
            sys.stdout.write("\n")
        else:
            _describe(model, args)
        return 0
    if not args.feed:
        raise GraphFormatError("--run needs at least one --feed NAME=FILE")
    fetches = args.fetch or None
    if fetches is None and args.signature is None:
        args.signature = _default_signature(model)
        if args.signature is None:
            raise GraphFormatError("--run needs --fetch NAME (the graph has no signature to take outputs from)")
    feeds = {}
    for item in args.feed:
        name, file = split_feed(item)
        if args.signature is not None:
            name = _key_for(model, args.signature, name)
        feeds[name] = read_feed(file, _static_hw(model, args.signature, name), args.image_scale)
    values = model.run(feeds, fetches, signature=args.signature)
    names = fetches or list(model.signatures[args.signature].outputs)
    top = {n: imagenet_top(n, v, args.imagenet_top) for n, v in zip(names, values)} if args.imagenet_top else None
    print_outputs(names, values, args.json, top)
    return 0


def _describe(model, args) -> None:
    print(f"path: {model.path}")
    frozen = not Path(model.path).is_dir()
    print(f"tags: {', '.join(model.tags) if model.tags else '(frozen graph: none)' if frozen else '(empty set)'}")
    if model.signatures:
        print("signatures:")
        for sig in model.signatures.values():
            print(f"  {sig.name} ({sig.method_name or 'no method'})")
            for kind, specs in (("in ", sig.inputs), ("out", sig.outputs)):
                for key, spec in specs.items():
                    print(f"    {kind} {key}: {spec.name} {spec.dtype} {_shape(spec.shape)}")
    else:
        print("signatures: none (run by node names; inputs: " + ", ".join(model.inputs) + ")")
    if args.ops:
        ops = model.operations(functions=args.functions)
        print(f"operations ({len(ops)}):")
        for op in ops:
            print(f"  {op.name}  {op.type}  {_shape(op.shape)}  <- {', '.join(op.inputs)}")


def _description(model, args) -> dict:
    """What ``_describe`` prints, as one JSON object (shapes as lists, ``null`` for unknown sizes)."""
    def spec(s) -> dict:
        return {"name": s.name, "dtype": s.dtype, "shape": None if s.shape is None else list(s.shape)}
    doc = {"path": str(model.path), "tags": list(model.tags),
           "signatures": {sig.name: {"method": sig.method_name or None,
                                     "inputs": {k: spec(v) for k, v in sig.inputs.items()},
                                     "outputs": {k: spec(v) for k, v in sig.outputs.items()}}
                          for sig in model.signatures.values()},
           "inputs": list(model.inputs)}
    if args.ops:
        doc["operations"] = [{"name": op.name, "type": op.type,
                              "shape": None if op.shape is None else list(op.shape), "inputs": list(op.inputs)}
                             for op in model.operations(functions=args.functions)]
    return doc


def _shape(shape) -> str:
    if shape is None:
        return "(?)"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _default_signature(model) -> str | None:
    real = [k for k in model.signatures if not k.startswith("__")]
    if "serving_default" in real:
        return "serving_default"
    return real[0] if len(real) == 1 else None


def _key_for(model, sig: str, name: str) -> str:
    """Accept a node name for a signature input too (``--feed keras_tensor=...``)."""
    if sig not in model.signatures:
        raise GraphFormatError(f"no signature {sig!r} (have: {sorted(model.signatures)})")
    inputs = model.signatures[sig].inputs
    if name in inputs:
        return name
    for key, spec in inputs.items():
        if spec.name.split(":")[0] == name.split(":")[0]:
            return key
    raise GraphFormatError(f"signature {sig!r} has inputs {sorted(inputs)}, not {name!r}")


def _static_hw(model, signature, name):
    shape = None
    if signature is not None:
        shape = model.signatures[signature].inputs[name].shape
    else:
        node = model.graph.nodes.get(name.split(":")[0])
        if node is not None:
            shape = model.graph.attr(node, "shape", None)
    if shape is not None and len(shape) == 4 and shape[1] and shape[2]:
        return int(shape[1]), int(shape[2])
    return None
