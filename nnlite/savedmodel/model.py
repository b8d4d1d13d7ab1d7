"""``load(path, tags)`` -> a model you run by node names or by signature, without TensorFlow.

A path is a SavedModel directory (``saved_model.pb`` + ``variables/``) or a frozen GraphDef ``.pb``.
The meta graph is chosen by its exact tag set (``tags=None``: the only one, else the one tagged ``serve``,
else the empty tag set: TF1 Hub modules keep inference there, beside a ``train`` graph).
At load the graph's inference part is planned once (variables read, constants folded, batch norm folded
into convolutions, training branches pruned) and lowered onto an :class:`nnlite.graph.Model`
(``SavedModel.model``: ``summary()``, ``trace()``, ``first_divergence()``, ``nnlite inspect PATH``), so
unsupported operations are reported immediately.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import GraphFormatError, ModelError, ShapeError
from . import fold, schema  # noqa: F401  (schema registers the message tables)
from .bundle import TensorBundle
from .graphdef import Graph, parse_endpoint
from .opdefs import OpInfo
from .tensors import dtype_name, dtype_of, shape_of
from .variables import Variables, bind
from .wire import decode

# Ops that only save, restore or initialise state; graph ends made of them are not model outputs.
BOOKKEEPING = {"Assign", "AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp", "VarIsInitializedOp",
               "IsVariableInitialized", "SaveV2", "Save", "SaveSlices", "RestoreV2", "MergeV2Checkpoints",
               "NoOp", "VarHandleOp", "VariableV2", "Placeholder", "Const", "ShardedFilename", "StringJoin"}


class TensorSpec(NamedTuple):
    name: str            # graph tensor name, e.g. "serving_default_keras_tensor:0"
    dtype: str
    shape: tuple | None  # None: unknown rank; None entries: unknown dimensions


class Signature(NamedTuple):
    name: str
    inputs: dict         # key -> TensorSpec
    outputs: dict        # key -> TensorSpec
    method_name: str


class Operation(NamedTuple):
    name: str
    type: str
    inputs: list         # tensor names ("node", "node:1", "^control")
    shape: tuple | None  # first output's shape where the file records it


def load(path, tags=None) -> SavedModel:
    """Open a SavedModel directory or frozen ``.pb``; see :class:`SavedModel`."""
    return SavedModel(path, tags)


class SavedModel:
    """A loaded graph: ``run(feeds, fetches)``, ``operations()``, ``signatures``, ``tags``."""

    def __init__(self, path, tags=None):
        self.path = Path(path)
        meta, graph_def, pb = _read(self.path, tags)
        self.meta_graph = meta
        self.tags = list(meta.meta_info_def.tags) if meta is not None else []
        info = OpInfo(meta.meta_info_def.stripped_op_list if meta is not None else None)
        self.graph = Graph(graph_def, info, str(pb))
        bundle = None
        if meta is not None and Path(str(self.path / "variables" / "variables") + ".index").exists():
            bundle = TensorBundle(self.path / "variables" / "variables")
        self.variables = Variables(self.graph, bundle, bind(self.graph, meta, bundle))
        self.signatures = _signatures(meta)
        self._top = list(self.graph.nodes)  # top-level names, before inlining adds function bodies
        self._programs: dict = {}
        self._default = None  # the program planned at load: signature outputs, else the graph's ends
        self._check()

    # -- public API -------------------------------------------------------------------------------
    def run(self, feeds: dict, fetches, signature: str | None = None) -> list[np.ndarray]:
        """Run the graph. ``feeds``: {node or tensor name: array}; ``fetches``: a name or a list of names
        (``"predictions/Softmax"``, ``"name:1"``). With ``signature``, keys are the signature's input and
        output keys instead (``fetches=None``: all outputs in the signature's order). Returns a list."""
        if isinstance(fetches, str):
            fetches = [fetches]
        if signature is not None:
            feeds, fetches = self._from_signature(signature, feeds, fetches)
        if not fetches:
            raise GraphFormatError(f"{self.graph.path}: nothing to fetch")
        values = {}
        for key, value in feeds.items():
            name, port = parse_endpoint(key)
            node = self.graph.nodes.get(name)
            if node is None:
                raise GraphFormatError(f"{self.graph.path}: cannot feed {key!r}: no such operation")
            values[name] = _feed_value(self.graph, node, value)
        return self._program(values, [self._endpoint(f) for f in fetches]).run(values)

    def _program(self, fed, ends: list):
        """The plan (a lowered Model) for feeding the node names ``fed`` and fetching ``ends``; cached."""
        cache_key = (tuple(sorted(fed)), tuple(ends))
        program = self._programs.get(cache_key)
        if program is None:
            program = fold.build(self.graph, ends, {n: self.graph.nodes[n] for n in fed}, self.variables)
            self._programs[cache_key] = program
        return program

    def operations(self, functions: bool = False) -> list[Operation]:
        """Every operation of the graph (top level; with ``functions=True`` also the inlined
        function-body nodes planned so far), with type, inputs and shape where recorded."""
        names = list(self.graph.nodes) if functions else self._top
        ops = []
        for name in names:
            node = self.graph.nodes[name]
            op, data = node.attrs.get("_op", node.op), node.attrs.get("_inputs", node.inputs)  # inlined calls
            inputs = [s if p == 0 else f"{s}:{p}" for s, p in data] + [f"^{c}" for c in node.control]
            ops.append(Operation(name, op, inputs, _shape_hint(self.graph, node)))
        return ops

    @property
    def model(self):
        """The graph as an :class:`nnlite.graph.Model` (layers named as the nodes; a convolution's layer
        ``covers`` the batch norm / bias nodes folded into it): the ``serving_default`` signature (or the
        only one), else every end of the graph."""
        real = sorted(k for k in self.signatures if not k.startswith("__"))
        name = "serving_default" if "serving_default" in real else (real[0] if len(real) == 1 else None)
        if name is not None:
            sig = self.signatures[name]
            fed = [parse_endpoint(t.name)[0] for t in sig.inputs.values()]
            return self._program(fed, [self._endpoint(t.name) for t in sig.outputs.values()]).model
        if self._default is None:
            raise ModelError(f"{self.graph.path}: the graph has no outputs to build a model of")
        return self._default.model

    @property
    def inputs(self) -> list[str]:
        """Top-level placeholders that feed the model (not those that only initialise variables)."""
        feeding = set()
        for name in self._top:
            node = self.graph.nodes[name]
            if node.op not in BOOKKEEPING:
                feeding.update(s for s, _ in node.inputs)
        return [n for n in self._top if self.graph.nodes[n].op == "Placeholder" and n in feeding]

    # -- internals --------------------------------------------------------------------------------
    def _endpoint(self, text: str) -> tuple[str, int]:
        name, port = parse_endpoint(text)
        if name not in self.graph.nodes:
            raise GraphFormatError(f"{self.graph.path}: cannot fetch {text!r}: no such operation "
                                   "(list them with operations() or `nnlite savedmodel PATH --ops`)")
        return name, port

    def _from_signature(self, name: str, feeds: dict, fetches):
        sig = self.signatures.get(name)
        if sig is None:
            raise GraphFormatError(f"{self.graph.path}: no signature {name!r} (have: {sorted(self.signatures)})")
        unknown = set(feeds) - set(sig.inputs)
        if unknown:
            raise GraphFormatError(f"signature {name!r} has inputs {sorted(sig.inputs)}, not {sorted(unknown)}")
        keys = list(sig.outputs) if fetches is None else list(fetches)
        for k in keys:
            if k not in sig.outputs:
                raise GraphFormatError(f"signature {name!r} has outputs {sorted(sig.outputs)}, not {k!r}")
        return {sig.inputs[k].name: v for k, v in feeds.items()}, [sig.outputs[k].name for k in keys]

    def _check(self) -> None:
        """Plan the inference part now, so unsupported ops and damaged weights surface at load."""
        ends, feeds = [], {}
        real = {k: s for k, s in self.signatures.items() if not k.startswith("__")}
        for sig in real.values():
            ends += [parse_endpoint(t.name) for t in sig.outputs.values()]
            feeds.update({parse_endpoint(t.name)[0]: None for t in sig.inputs.values()})
        if not real:
            ends = [(n, 0) for n in _sinks(self.graph, self.meta_graph)]
            feeds = {n: None for n in self.inputs}
        ends = [e for e in ends if e[0] in self.graph.nodes]
        if ends:
            feed_nodes = {n: self.graph.nodes[n] for n in feeds if n in self.graph.nodes}
            program = fold.build(self.graph, ends, feed_nodes, self.variables, drop_dead=not real)
            self._default = program
            if real:
                self._programs[(tuple(sorted(feed_nodes)), tuple(ends))] = program


def _read(path: Path, tags):
    if path.is_dir():
        pb = path / "saved_model.pb"
        if not pb.exists():
            hint = " (text .pbtxt SavedModels are not supported)" if (path / "saved_model.pbtxt").exists() else ""
            raise GraphFormatError(f"{path}: not a SavedModel directory: no saved_model.pb{hint}")
        model = _decode(pb, "SavedModel")
        meta = _pick(model.meta_graphs, tags, pb)
        return meta, meta.graph_def, pb
    if path.name == "saved_model.pb":
        return _read(path.parent, tags)
    return None, _decode(path, "GraphDef"), path


def _decode(path: Path, kind: str):
    """Decode a binary protobuf; what fails to decode is named for what it is not (and what it looks like)."""
    data = _bytes(path)
    what = "a SavedModel (binary saved_model.pb)" if kind == "SavedModel" else "a frozen GraphDef (binary .pb)"
    if not data:
        raise GraphFormatError(f"{path}: empty file, not {what}")
    try:
        return decode(data, kind, path)
    except GraphFormatError as exc:
        head = data[:4096]
        if b"\0" not in head and sum(32 <= b < 127 or b in b"\t\r\n" for b in head) > 0.95 * len(head):
            named = GraphFormatError(f"{path}: a text file, not {what} (text .pbtxt graphs are not supported)")
        else:
            named = GraphFormatError(f"{path}: not {what}: {str(exc).removeprefix(f'{path}: ')}")
        named.__dict__.update(exc.__dict__)   # keeps the byte offset the decoder recorded
        raise named from exc


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GraphFormatError(f"{path}: cannot read ({exc})") from exc


def _pick(metas: list, tags, pb):
    if not metas:
        raise GraphFormatError(f"{pb}: the SavedModel holds no meta graph")
    sets = [set(m.meta_info_def.tags) for m in metas]
    if tags is None:
        if len(metas) == 1:
            return metas[0]
        for want in ({"serve"}, set()):
            for m, s in zip(metas, sets):
                if s == want:
                    return m
        raise GraphFormatError(f"{pb}: several meta graphs, tag sets {[sorted(s) for s in sets]}; choose with tags=")
    want = {tags} if isinstance(tags, str) else set(tags)
    for m, s in zip(metas, sets):
        if s == want:
            return m
    raise GraphFormatError(f"{pb}: no meta graph tagged {sorted(want)}; available: {[sorted(s) for s in sets]}")


def _spec(info) -> TensorSpec:
    return TensorSpec(info.name, dtype_name(info.dtype), shape_of(info.tensor_shape))


def _signatures(meta) -> dict:
    if meta is None:
        return {}
    return {name: Signature(name, {k: _spec(v) for k, v in sorted(sd.inputs.items())},
                            {k: _spec(v) for k, v in sorted(sd.outputs.items())}, sd.method_name)
            for name, sd in sorted(meta.signature_def.items())}


def _sinks(graph, meta) -> list[str]:
    """Nodes no one reads (data or control) that are not save/restore/init bookkeeping."""
    used = set()
    for node in graph.nodes.values():
        used.update(s for s, _ in node.inputs)
        used.update(node.control)
    skip = set()
    if meta is not None and meta.has("saver_def"):
        sd = meta.saver_def
        skip = {parse_endpoint(t)[0] for t in (sd.save_tensor_name, sd.restore_op_name, sd.filename_tensor_name)}
    return [n for n, node in graph.nodes.items()
            if n not in used and n not in skip and node.op not in BOOKKEEPING and not n.startswith("save/")]


def _feed_value(graph, node, value) -> np.ndarray:
    arr = np.asarray(value)
    want = graph.attr(node, "dtype", None)
    if want is not None:
        dt = dtype_of(want, f"{graph.path} (placeholder {node.name})")
        if dt is not object and arr.dtype != dt:
            arr = arr.astype(dt)
    shape = graph.attr(node, "shape", None)
    if shape is not None and (len(shape) != arr.ndim
                              or any(d is not None and d != a for d, a in zip(shape, arr.shape))):
        expected = tuple("?" if d is None else d for d in shape)
        raise ShapeError(f"{graph.path}: input {node.name!r} expects shape {expected}, found {arr.shape}")
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)  # (keeps 0-d scalars 0-d)


def _shape_hint(graph, node):
    shapes = graph.attr(node, "_output_shapes", None)
    if shapes:
        return shapes[0]
    if node.op in ("Placeholder", "PlaceholderWithDefault"):
        return graph.attr(node, "shape", None)
    if node.op == "Const" and "value" in node.attrs:
        return shape_of(node.attrs["value"].tensor.tensor_shape)
    return None
