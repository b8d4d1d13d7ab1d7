"""The planned dynamic part of a TensorFlow graph, emitted as an :class:`nnlite.graph.Model`.

:func:`nnlite.savedmodel.fold.build` leaves, in dependency order, the nodes that depend on a feed (the
rest was folded to constants at load, and batch norm / bias arithmetic into convolution weights by
:mod:`.fuse`). :func:`lower` declares each of them with :class:`nnlite.graph.GraphBuilder`, exactly as a
hand-written model declares its layers, so the graph's one executor and execution plan (:mod:`nnlite.plan`:
activations run inside convolutions, depthwise -> 1x1 pairs as one kernel) and its tools (``summary``,
``trace``, ``first_divergence``, ``nnlite inspect``) serve SavedModels too:

* a placeholder is a model input (its dtype and static shape; a free first axis is the batch axis);
* every other node is a layer named as the node: the nnlite kernel :mod:`.tf_layers` maps it onto, or else
  the node's TensorFlow kernel (:mod:`.tf_ops`) wrapped as the layer's function. A node with several
  outputs is a layer with several outputs (``node``, ``node:1``, ...), as TensorFlow names its tensors.

Graphs whose ``Switch`` predicate is fed (TF1 control flow decided per run) propagate "dead tensors"
(:func:`control_flow`): a layer reading a tensor of the branch not taken produces dead tensors itself, and
``Merge`` forwards its live input; the plan does not fuse such layers.
"""

from __future__ import annotations

import numpy as np

from ..errors import GraphFormatError, NnliteError, ShapeError
from ..graph import GraphBuilder, Model, resolve_op
from .tensors import dtype_of
from .tf_layers import layer_for
from .tf_ops import make_kernel


class _Dead:
    def __repr__(self) -> str:
        return "DEAD"


DEAD = _Dead()


class _AllDead:
    def __getitem__(self, port):
        return DEAD


ALL_DEAD = _AllDead()
FEED_OPS = {"Placeholder", "PlaceholderWithDefault"}


def tensor_name(endpoint: tuple[str, int]) -> str:
    """(node, port) -> the graph's tensor name: ``node`` or ``node:port``."""
    name, port = endpoint
    return name if port == 0 else f"{name}:{port}"


class Program:
    """One (feeds, fetches) plan: the :class:`~nnlite.graph.Model` of its dynamic nodes, and where each
    fetch comes from (a model output, or a value known at load)."""

    def __init__(self, model: Model, outputs: list, labels: dict[str, str]):
        self.model, self.outputs, self.labels = model, outputs, labels
        self.feeds = list(model.inputs)

    @property
    def steps(self) -> list[tuple[str, str]]:
        """The model's execution plan as (output tensor, TensorFlow-level op) pairs; a convolution with
        its batch norm, bias and activation folded in is one ``_FusedConv`` step."""
        steps, _ = self.model._execution_plan()
        return [(s.out, self.labels.get(s.layer.name, s.layer.op)) for s in steps]

    def run(self, values: dict) -> list[np.ndarray]:
        env = {}
        if self.model.outputs:
            try:
                got = self.model.forward(*[values[n] for n in self.model.inputs])
            except ShapeError as exc:
                node = getattr(exc, "layer", None)
                if node is None or repr(node) in str(exc):
                    raise
                raise ShapeError(f"node {node!r} ({self.labels.get(node, '?')}): {exc}") from None
            env = dict(zip(self.model.outputs, got if len(self.model.outputs) > 1 else (got,)))
        results = []
        for ref in self.outputs:
            v = ref[1] if ref[0] == "k" else env[tensor_name(ref[1])]
            if v is DEAD:
                raise GraphFormatError("a fetched tensor lies on a branch that was not taken (Switch/Merge)")
            results.append(np.array(v) if ref[0] == "k" else v)
        return results


def control_flow(op: str, args: list):
    """Run-time Switch/Merge and dead-tensor propagation; None means 'run the kernel normally'."""
    if op == "Merge":
        for i, a in enumerate(args):
            if a is not DEAD:
                return (a, np.int32(i))
        return ALL_DEAD
    if any(a is DEAD for a in args):
        return ALL_DEAD
    if op == "Switch":
        return (DEAD, args[0]) if bool(np.asarray(args[1])) else (args[0], DEAD)
    return None


def lower(graph, order: list, feeds: dict, outputs: list) -> Program:
    """Declare the dynamic nodes ``order`` (planner nodes, dependency order) as layers of one Model whose
    outputs are the dynamic ``outputs`` refs."""
    used_ports: dict[str, set] = {}
    for ref in [r for p in order for r in p.ins] + list(outputs):
        if ref[0] == "d":
            used_ports.setdefault(ref[1][0], set()).add(ref[1][1])
    runtime_dead = any(p.op in ("Switch", "Merge") for p in order)
    b = GraphBuilder(str(graph.path))
    labels = {}
    for p in order:
        if p.op == "_Feed":
            if p.name not in feeds:
                raise GraphFormatError(f"{graph.path}: placeholder {p.name!r} must be fed")
            b.input(p.name, **_input_spec(graph, p.node))
            continue
        ports = sorted(used_ports.get(p.name, ()))
        n_out = max(ports, default=0) + 1
        if p.op == "_If":  # plans its branches for exactly the outputs in use
            p.node.attrs["_ports"] = ports
        spec = _layer_spec(graph, p)
        if spec is None:
            srcs = [tensor_name(r[1]) for r in p.ins if r[0] == "d"]
            b.layer(_tf_kernel(graph, p, n_out, runtime_dead), p.name, *srcs, n_outputs=n_out)
        else:
            op, data, kwargs, covers = spec
            if runtime_dead:  # the same kernel, passing dead tensors through (the plan leaves it alone)
                op = _dead_aware(op, n_out)
            b.layer(op, p.name, *[tensor_name(p.ins[i][1]) for i in data], covers=covers, n_outputs=n_out,
                    **kwargs)
        labels[p.name] = p.op
    fetched = list(dict.fromkeys(tensor_name(r[1]) for r in outputs if r[0] == "d"))
    return Program(b.build(fetched), outputs, labels)


def _input_spec(graph, node) -> dict:
    code = graph.attr(node, "dtype", None)
    dtype = dtype_of(code, f"{graph.path} (placeholder {node.name})") if code is not None else None
    shape = graph.attr(node, "shape", None) if node.op in FEED_OPS else None
    if dtype is object:
        dtype = None
    if shape and shape[0] is None:
        return {"shape": shape[1:], "dtype": dtype, "batch": True}
    return {"shape": shape, "dtype": dtype, "batch": False}


def _layer_spec(graph, p):
    """(op, per-run input indices, weights and attributes, covered nodes) or None."""
    if p.op in ("_FusedConv", "_FusedDense"):
        spec = p.node.attrs["_spec"]
        kw = {"kernel": spec["kernel"]}  # (kh, kw, cin, cout), depthwise (kh, kw, cin, mult), dense (cin, cout)
        if spec["bias"] is not None:
            kw["bias"] = spec["bias"]  # (cout,)
        if p.op == "_FusedDense":
            return "dense", [0], kw, tuple(spec["covers"])
        kw.update(stride=spec["stride"], padding=spec["padding"], dilation=spec["dilation"])
        return ("depthwise_conv2d" if spec["depthwise"] else "conv2d"), [0], kw, tuple(spec["covers"])
    if p.op == "_MaxPool":
        spec = p.node.attrs["_spec"]
        kw = {k: spec[k] for k in ("pool_size", "stride", "padding")}
        return "max_pool2d", [0], kw, tuple(spec["covers"])
    if p.op.startswith("_"):
        return None
    found = layer_for(graph, p.node, p.ins)
    return None if found is None else (*found, ())


def _dead_aware(op: str, n_out: int):
    _, fn = resolve_op(op)

    def call(*xs, **kwargs):
        if any(x is DEAD for x in xs):
            return (DEAD,) * n_out if n_out > 1 else DEAD
        return fn(*xs, **kwargs)

    call.__name__ = call.__qualname__ = op
    return call


_PER_RUN = object()


def _tf_kernel(graph, p, n_out: int, runtime_dead: bool):
    """The node's TensorFlow kernel as a layer function: known inputs bound, per-run ones positional."""
    fn = make_kernel(graph, p.node)
    pattern = [r[1] if r[0] == "k" else _PER_RUN for r in p.ins]
    name, op = p.name, p.op

    def call(*per_run):
        it = iter(per_run)
        args = [next(it) if v is _PER_RUN else v for v in pattern]
        outs = control_flow(op, args) if runtime_dead else None
        if outs is None:
            try:
                outs = fn(*args)
            except NnliteError as exc:
                raise type(exc)(f"node {name!r} ({op}): {exc}") from None
            except (ValueError, IndexError, TypeError) as exc:
                shapes = [getattr(a, "shape", None) for a in args]
                raise ShapeError(f"node {name!r} ({op}) failed on inputs of shapes {shapes}: {exc}") from None
        if outs is ALL_DEAD:
            outs = (DEAD,) * n_out
        return outs if n_out > 1 else outs[0]

    call.__name__ = call.__qualname__ = op
    return call
