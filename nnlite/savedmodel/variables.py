"""Bind variable nodes of a graph to tensors of the checkpoint bundle.

* TF2 SavedModels (Keras 3 ``model.export``): a call node's trailing inputs are captured variable handles
  (``VarHandleOp``); the saved concrete function lists them as ``bound_inputs``, ids of the SavedModel's
  object graph. The same objects are found in the checkpoint's own object graph (bundle key
  ``_CHECKPOINTABLE_OBJECT_GRAPH``) by walking both graphs from the root along equal child names, and
  that node's ``VARIABLE_VALUE`` attribute gives the checkpoint key.
* TF1 graphs: the saver's restore ops say it directly: ``Assign(var, RestoreV2:i)`` with
  ``RestoreV2``'s ``tensor_names[i]`` as key. Otherwise the variable's name (or ``shared_name``) is tried.
"""

from __future__ import annotations

import numpy as np

from ..errors import GraphFormatError
from .wire import decode

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


class VarRef:
    """What a resource-variable handle evaluates to (while planning, or at run time when a handle
    flows through a Switch whose predicate is fed)."""

    __slots__ = ("name", "store")

    def __init__(self, name: str, store: Variables):
        self.name, self.store = name, store

    def value(self) -> np.ndarray:
        return self.store.value(self.name)

    def __repr__(self) -> str:
        return f"VarRef({self.name!r})"


class Variables:
    """Variable node name -> value, read from the bundle on first use."""

    def __init__(self, graph, bundle, keys: dict[str, str]):
        self.graph, self.bundle, self.keys = graph, bundle, keys
        self._cache: dict[str, np.ndarray] = {}

    def handle(self, node):
        """Known value of a variable node: a VarRef for resource handles, the tensor for TF1 ref vars."""
        return VarRef(node.name, self) if node.op == "VarHandleOp" else self.value(node.name)

    def read(self, ref, node) -> np.ndarray:
        if not isinstance(ref, VarRef):
            raise GraphFormatError(f"{self.graph.path}: node {node.name!r} reads a variable through a "
                                   f"non-handle value")
        return self.value(ref.name)

    def value(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.bundle.read(self._key(name))
        return self._cache[name]

    def _key(self, name: str) -> str:
        if self.bundle is None:
            raise GraphFormatError(f"{self.graph.path}: graph reads variable {name!r} but has no variables "
                                   "(a frozen graph should hold constants only)")
        if name in self.keys:
            return self.keys[name]
        node = self.graph.nodes.get(name)
        shared = self.graph.attr(node, "shared_name", b"") if node is not None else b""
        shared = shared.decode(errors="replace") if isinstance(shared, bytes) else ""
        for key in (name, shared, f"{name}/.ATTRIBUTES/VARIABLE_VALUE"):
            if key and key in self.bundle:
                return key
        raise GraphFormatError(f"{self.graph.path}: variable {name!r} has no value in {self.bundle.prefix}.index")


def bind(graph, meta_graph, bundle) -> dict[str, str]:
    """Variable node name -> checkpoint key, from the object graphs (TF2) and the restore ops (TF1)."""
    if bundle is None:
        return {}
    keys = _from_restore_ops(graph)
    if meta_graph is not None and meta_graph.object_graph_def.nodes and OBJECT_GRAPH_KEY in bundle:
        keys.update(_from_object_graph(graph, meta_graph.object_graph_def, bundle))
    return keys


def _follow(graph, ep):
    while True:
        node = graph.nodes.get(ep[0])
        if node is None or node.op not in ("Identity", "Snapshot") or not node.inputs:
            return ep
        ep = node.inputs[0]


def _from_restore_ops(graph) -> dict[str, str]:
    keys = {}
    for node in graph.nodes.values():
        if node.op not in ("Assign", "AssignVariableOp") or len(node.inputs) < 2:
            continue
        var, src = _follow(graph, node.inputs[0]), _follow(graph, node.inputs[1])
        restore = graph.nodes.get(src[0])
        if restore is None or restore.op != "RestoreV2" or len(restore.inputs) < 2:
            continue
        names = graph.nodes.get(_follow(graph, restore.inputs[1])[0])
        if names is None or names.op != "Const":
            continue
        values = graph.attr(names, "value")
        if src[1] < values.size:
            keys[var[0]] = values.reshape(-1)[src[1]].decode("utf-8", "replace")
    return keys


def _from_object_graph(graph, object_graph, bundle) -> dict[str, str]:
    raw = bundle.read(OBJECT_GRAPH_KEY).reshape(()).item()
    ckpt = decode(raw, "TrackableObjectGraph", f"{bundle.prefix} ({OBJECT_GRAPH_KEY})")
    saved_to_ckpt = {0: 0}
    queue = [0]
    while queue:  # walk both graphs from the root along equal child names
        sid = queue.pop()
        cid = saved_to_ckpt[sid]
        if cid >= len(ckpt.nodes) or sid >= len(object_graph.nodes):
            continue
        by_name = {c.local_name: c.node_id for c in ckpt.nodes[cid].children}
        for child in object_graph.nodes[sid].children:
            if child.node_id not in saved_to_ckpt and child.local_name in by_name:
                saved_to_ckpt[child.node_id] = by_name[child.local_name]
                queue.append(child.node_id)
    key_of = {}
    for sid, cid in saved_to_ckpt.items():
        for attr in ckpt.nodes[cid].attributes if cid < len(ckpt.nodes) else ():
            if attr.name == "VARIABLE_VALUE":
                key_of[sid] = attr.checkpoint_key
    keys = {}
    functions = object_graph.concrete_functions
    for node in list(graph.nodes.values()):
        if not graph.is_call(node):
            continue
        fname = graph.attr(node, "f").name if node.op.endswith("PartitionedCall") else node.op
        if fname not in functions:
            continue
        bound = functions[fname].bound_inputs
        first = len(node.inputs) - len(bound)
        for j, obj in enumerate(bound):
            src = node.inputs[first + j][0]
            if src in graph.nodes and graph.nodes[src].op == "VarHandleOp" and obj in key_of:
                keys[src] = key_of[obj]
    return keys
