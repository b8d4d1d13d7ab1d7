"""``nnlite onnx PATH``: inspect and run an ONNX model without onnxruntime."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import GraphFormatError
from ._feeds import SCALES, print_outputs, read_feed, split_feed

EPILOG = """\
feeds:
  --feed NAME=FILE.npy   the array is fed exactly as stored (NCHW for image inputs, as the file expects).
  --feed NAME=IMAGE      a .jpg/.png/... is decoded to RGB, resized (bilinear) to the input's static
                         height x width, laid out as (1, 3, H, W) -- or (1, H, W, 3) when the input is
                         NHWC, as tf2onnx writes Keras models -- float32 0..255 (--image-scale raw, the
                         default); unit divides by 255, symmetric maps to -1..1 (x/127.5 - 1).
examples:
  nnlite onnx model.onnx --ops
  nnlite onnx model.onnx --run --feed input=cat.jpg --image-scale unit --json
  nnlite onnx arcface.onnx --run --feed input.1=face.npy --fetch 683
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "onnx", help="inspect or run an ONNX model without onnxruntime",
        description="List the inputs, outputs and operators of an .onnx file, or run it by tensor names.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, help=".onnx file (external data beside it is found automatically)")
    p.add_argument("--ops", action="store_true", help="list every node: name, operator, inputs -> outputs")
    p.add_argument("--run", action="store_true", help="run the model (needs --feed)")
    p.add_argument("--feed", action="append", default=[], metavar="NAME=FILE",
                   help="input to feed: a .npy array or an image (see below); repeatable")
    p.add_argument("--fetch", action="append", default=[], metavar="NAME",
                   help="tensor to fetch (repeatable; default: the graph outputs)")
    p.add_argument("--image-scale", choices=sorted(SCALES), default="raw",
                   help="pixel scaling of image feeds (default raw: float32 0..255)")
    p.add_argument("--json", action="store_true", help='print only {"outputs": {NAME: nested lists}}')
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import onnx
    model = onnx.load(args.path)
    if not args.run:
        _describe(model, args.ops)
        return 0
    if not args.feed:
        raise GraphFormatError("--run needs at least one --feed NAME=FILE")
    specs = {s.name: s for s in model.inputs}
    feeds = {}
    for item in args.feed:
        name, file = split_feed(item)
        if name not in specs:
            raise GraphFormatError(f"{args.path}: no input named {name!r} (inputs: {', '.join(specs)})")
        shape = specs[name].shape
        nhwc = len(shape) == 4 and shape[3] == 3 and shape[1] != 3  # tf2onnx keeps Keras's NHWC input
        hw = shape[1:3] if nhwc else shape[2:4]
        hw = tuple(hw) if len(shape) == 4 and all(hw) else None
        x = read_feed(file, hw, args.image_scale)
        if file.suffix.lower() != ".npy" and not nhwc:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # the image as (1, 3, H, W)
        feeds[name] = x
    names = args.fetch or [o.name for o in model.outputs]
    print_outputs(names, model.run(feeds, names), args.json)
    return 0


def _shape(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _describe(model, ops: bool) -> None:
    print(f"path: {model.path}")
    print(f"opset: {model.opset}  ir_version: {model.ir_version}  producer: {model.producer or '?'}")
    for kind, specs in (("input ", model.inputs), ("output", model.outputs)):
        for s in specs:
            print(f"  {kind} {s.name}: {s.dtype} {_shape(s.shape)}")
    counts: dict[str, int] = {}
    for op in model.operations():
        counts[op.type] = counts.get(op.type, 0) + 1
    print(f"operators ({sum(counts.values())} nodes): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"nnlite graph: {len(model.model.layers)} layers, {model.model.params:,} parameters")
    if ops:
        for op in model.operations():
            print(f"  {op.name or '-'}  {op.type}  {', '.join(op.inputs)} -> {', '.join(op.outputs)}")
