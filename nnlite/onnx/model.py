"""``load(path)`` -> an ONNX model run by tensor names, on nnlite's graph and NHWC kernels.

At load the file is decoded (nnlite's own protobuf reader), its nodes sorted (a cycle is an error) and
lowered once onto a :class:`nnlite.graph.Model` (:mod:`nnlite.onnx.lower`). Lowering runs each new layer
on a batch-1 probe, so every tensor's shape is known: shape arithmetic (Shape, Gather, Concat, ...)
folds into constants, and a node that cannot run on the shapes it gets is reported at load, by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import GraphFormatError, ModelError, NnliteError, UnsupportedOpError
from ..savedmodel.wire import decode
from . import schema  # noqa: F401  (registers the message tables)
from .tensors import DTYPE_NAMES, to_array

MAX_FILE_BYTES = 1 << 32


class TensorSpec(NamedTuple):
    name: str
    dtype: str
    shape: tuple  # None entries: free sizes


class Operation(NamedTuple):
    name: str
    type: str
    inputs: list
    outputs: list


def load(path, input_shapes: dict | None = None) -> OnnxModel:
    """Open an ``.onnx`` file; see :class:`OnnxModel`. ``input_shapes`` fixes free input sizes
    (``{"input": (1, 3, 224, 224)}``) where the file leaves more than the batch size open."""
    return OnnxModel(path, input_shapes)


def read_model(path: Path):
    """The decoded ModelProto; any damage is a GraphFormatError naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise GraphFormatError(f"{path}: {size} bytes is larger than an .onnx file can be (2 GiB protobuf "
                                   "limit); keep big weights in external data")
        buf = path.read_bytes()
    except IsADirectoryError:
        raise GraphFormatError(f"{path}: is a directory, not an .onnx file") from None
    except OSError as exc:
        raise GraphFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not buf:
        raise GraphFormatError(f"{path}: empty file")
    if buf[:1] != b"\x08":  # every ONNX writer puts ir_version (field 1, varint) first
        raise GraphFormatError(f"{path}: not an ONNX model (it does not start with the ir_version field; "
                               f"first bytes {buf[:8]!r})")
    try:
        model = decode(memoryview(buf), "onnx.ModelProto", path)
    except RecursionError:
        raise GraphFormatError(f"{path}: damaged protobuf: messages nested too deeply") from None
    if not model.has("graph") or not model.graph.node:
        raise GraphFormatError(f"{path}: the file holds no graph (truncated or not an ONNX model)")
    return model


class OnnxModel:
    """A loaded ONNX model: ``run(feeds, fetches)``, ``inputs``, ``outputs``, ``operations()``, ``model``."""

    def __init__(self, path, input_shapes: dict | None = None):
        from .lower import Lowering
        self.path = Path(path)
        proto = read_model(self.path)
        self.ir_version = proto.ir_version
        self.producer = f"{proto.producer_name} {proto.producer_version}".strip()
        self.opset = 1
        for imp in proto.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = int(imp.version)
            elif any(n.domain == imp.domain for n in proto.graph.node):
                raise UnsupportedOpError(f"{self.path}: operator set {imp.domain!r} is not supported")
        graph = proto.graph
        self._nodes = sort_nodes(graph, self.path)
        inits = {}
        for t in graph.initializer:
            inits[t.name] = to_array(t, self.path, f"initializer {t.name!r}")
        self.inputs = [_spec(v, self.path) for v in graph.input if v.name not in inits]
        self.outputs = [_spec(v, self.path) for v in graph.output]
        check_supported(self._nodes, self.path)
        low = Lowering(self.path, self.opset, graph.name or self.path.stem, inits, self.inputs,
                       [o.name for o in self.outputs], input_shapes or {})
        try:
            self.model = low.run(self._nodes)
        except NnliteError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError) as exc:
            node = low.node
            raise GraphFormatError(f"{self.path}: node {node.name or node.output[0]!r} ({node.op_type}): "
                                   f"{type(exc).__name__}: {exc}") from None
        self._values = low.values
        self._nchw_outputs = low.output_layers
        self._layer_tensors = low.layer_tensors

    def operations(self) -> list[Operation]:
        return [Operation(n.name, n.op_type, list(n.input), list(n.output)) for n in self._nodes]

    def run(self, feeds: dict, fetches=None) -> list[np.ndarray]:
        """Feed arrays by input name (NCHW as in the file); returns the fetched tensors in order
        (default: the graph outputs)."""
        names = [o.name for o in self.outputs] if fetches is None else list(fetches)
        unknown = [k for k in feeds if k not in self.model.inputs]
        if unknown:
            raise ModelError(f"{self.path}: no input named {unknown[0]!r} (inputs: {list(self.model.inputs)})")
        for n in names:
            if n not in self._values:
                raise ModelError(f"{self.path}: no tensor named {n!r} to fetch")
        feeds = {k: np.asarray(v) for k, v in feeds.items()}
        if all(n in self._nchw_outputs for n in names) and not any(self._values[n].layer is None for n in names):
            outs = self.model.forward(**feeds)
            outs = outs if isinstance(outs, tuple) else (outs,)
            by = dict(zip(self.model.outputs, outs))
            return [by[self._nchw_outputs[n]] for n in names]
        acts = self.model.trace(**feeds)
        out = []
        for n in names:
            v = self._values[n]
            if v.layer is None:
                out.append(np.array(v.const))
                continue
            a = acts[v.layer]
            out.append(np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if v.nhwc else a)
        return out

    def first_divergence(self, reference: dict, feeds: dict, tolerance: float = 1e-4):
        """The first layer whose output differs from ``reference`` (tensor name -> activation in the
        file's layout, e.g. onnxruntime's run with those tensors as outputs); see
        :meth:`nnlite.graph.Model.first_divergence`. None when every compared layer agrees."""
        by_layer = {}
        for layer in self.model.layers:
            names = self._layer_tensors.get(layer.name, [])
            wanted = [n for n in names if n in reference]
            if not wanted:
                continue
            name = wanted[-1]  # a folded batch norm's output is the layer's final value
            v = self._values[name]
            ref = np.asarray(reference[name])
            by_layer[layer.name] = np.ascontiguousarray(ref.transpose(0, 2, 3, 1)) if v.nhwc else ref
        return self.model.first_divergence(by_layer, tolerance=tolerance, **feeds)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, opset {self.opset}, {len(self._nodes)} nodes)"


def _spec(v, path) -> TensorSpec:
    tt = v.type.tensor_type
    dims = tuple(int(d.dim_value) if d.has("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
    return TensorSpec(v.name, DTYPE_NAMES.get(tt.elem_type, str(tt.elem_type)), dims)


def sort_nodes(graph, path) -> list:
    """Nodes in an order where each reads only tensors defined before it; a cycle is an error."""
    produced: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if out and out in produced:
                raise GraphFormatError(f"{path}: tensor {out!r} is produced by two nodes "
                                       f"({graph.node[produced[out]].name!r} and {node.name!r})")
            if out:
                produced[out] = i
    known = {t.name for t in graph.initializer} | {v.name for v in graph.input}
    waiting = {i: {s for s in node.input if s and s not in known} for i, node in enumerate(graph.node)}
    for i, deps in waiting.items():
        for s in deps:
            if s not in produced:
                node = graph.node[i]
                raise GraphFormatError(f"{path}: node {node.name or node.output[0]!r} ({node.op_type}) reads "
                                       f"{s!r}, which no node, input or initializer defines")
    readers: dict[int, list[int]] = {}
    for i, deps in waiting.items():
        for s in deps:
            readers.setdefault(produced[s], []).append(i)
    count = {i: len({produced[s] for s in deps}) for i, deps in waiting.items()}
    ready = [i for i in range(len(graph.node)) if count[i] == 0]
    order = []
    while ready:
        i = ready.pop(0)
        order.append(graph.node[i])
        for r in sorted(set(readers.get(i, ()))):
            count[r] -= 1
            if count[r] == 0:
                ready.append(r)
    if len(order) != len(graph.node):
        stuck = [graph.node[i] for i in range(len(graph.node)) if count[i] > 0]
        names = ", ".join(repr(n.name or n.output[0]) for n in stuck[:5])
        raise GraphFormatError(f"{path}: the graph has a cycle through node(s) {names}")
    return order


def check_supported(nodes, path) -> None:
    from .lower import LOWERINGS
    missing: dict[str, int] = {}
    for n in nodes:
        if n.op_type not in LOWERINGS or n.domain not in ("", "ai.onnx"):
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
            missing[key] = missing.get(key, 0) + 1
    if missing:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(missing.items()))
        err = UnsupportedOpError(f"{path}: unsupported ONNX operators: {listed}")
        err.ops = missing
        raise err


__all__ = ["OnnxModel", "Operation", "TensorSpec", "load"]
