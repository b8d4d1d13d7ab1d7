"""From fetches to a straight-line program: lazy selection, constant folding, dead-branch pruning.

Only the nodes the fetches depend on (data inputs) are looked at. Walking them in dependency order, each
output becomes either *known* (a value computed now, at load) or *dynamic* (depends on a feed):

* ``Const``, variables (read from the bundle) and every pure op whose inputs are all known are folded, so
  weight reads, batch-norm arithmetic and shape computations cost nothing per run.
* ``Switch`` with a known predicate forwards its data to one output and marks the other DEAD; an op with
  a DEAD input is DEAD (never run); ``Merge`` takes its single live input. A TF1 Keras graph's
  learning-phase flag (``PlaceholderWithDefault``, default False) therefore prunes every training branch
  unless it is fed. With a fed predicate the same rules run at run time.
* Identity-like ops become aliases. ``PlaceholderWithDefault`` is its default unless fed.
* Functional ``If`` / ``StatelessIf`` (TF2 control flow): the walk plans the condition first; a known one
  inlines the taken branch in place (see :mod:`.functional`), a fed one becomes a run-time choice.

The dynamic remainder is handed to :mod:`.fuse` (batch norm, bias and scale folded into convolution
weights) and then to :mod:`.lower`, which declares it as an :class:`nnlite.graph.Model` (a
:class:`~.lower.Program` holds that model and where each fetch comes from).
"""

from __future__ import annotations

import numpy as np

from ..errors import GraphFormatError, NnliteError, ShapeError, UnsupportedOpError
from . import functional, fuse
from .lower import ALL_DEAD, DEAD, Program, lower
from .tensors import to_array
from .tf_ops import KERNELS, make_kernel

ALIAS_OPS = {"Identity", "Snapshot", "StopGradient", "PreventGradient", "_Outputs", "IdentityN"}
VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable"}


class PNode:
    """A dynamic node of the program: ``ins`` are refs, ("k", value) or ("d", (node, port))."""

    __slots__ = ("name", "op", "node", "ins")

    def __init__(self, name, op, node, ins):
        self.name, self.op, self.node, self.ins = name, op, node, ins


def build(graph, fetches: list[tuple[str, int]], feeds: dict, variables, drop_dead: bool = False) -> Program:
    """Plan ``fetches`` (endpoints) given ``feeds`` (node name -> Node). ``variables`` binds variable
    nodes to values. ``drop_dead``: leave out fetches on branches not taken instead of failing."""
    known, alias, dyn, unsupported = {}, {}, {}, {}

    def ref(name, port):
        if name in known:
            outs = known[name]
            if outs is not ALL_DEAD and port >= len(outs):
                raise GraphFormatError(f"{graph.path}: input {name}:{port} names output {port} of {name!r}, "
                                       f"which has {len(outs)} output(s)")
            return ("k", outs[port])
        return alias.get((name, port), ("d", (name, port)))

    taken = {}  # If node -> its taken branch's output endpoints, when the condition is known

    def decide(node):  # an If whose condition has been visited: what the walk must visit next
        cond = ref(*node.inputs[0])
        if cond[0] == "k" and cond[1] is not DEAD:
            taken[node.name] = functional.inline_taken(graph, node, cond[1])
            return taken[node.name]
        return node.inputs

    for node in _postorder(graph, [n for n, _ in fetches], decide):
        if node.name in taken:
            for i, ep in enumerate(taken[node.name]):
                alias[(node.name, i)] = ref(*ep)
            continue
        ins = [ref(s, p) for s, p in node.inputs]
        _visit(graph, node, ins, feeds, variables, known, alias, dyn, unsupported)
    if unsupported:
        raise unsupported_error(graph.path, unsupported)
    outputs = [ref(n, p) for n, p in fetches]
    for (name, port), r in zip(fetches, outputs):
        if r[0] == "k" and r[1] is DEAD and not drop_dead:
            raise GraphFormatError(f"{graph.path}: fetch {name}:{port} lies on a branch that is not taken "
                                   "with these feeds (Switch/Merge)")
    outputs = [r for r in outputs if not (r[0] == "k" and r[1] is DEAD)]
    # Fusion counts consumers, so first drop what the outputs do not need (e.g. the gradient-only
    # outputs of an inlined If branch, walked because the If's outputs are walked together).
    dyn = _needed(dyn, outputs)
    resolve = fuse.fuse(graph, dyn, {r[1] for r in outputs if r[0] == "d"})
    outputs = [resolve(r) for r in outputs]
    return lower(graph, list(_needed(dyn, outputs).values()), feeds, outputs)


def unsupported_error(path, unsupported: dict) -> UnsupportedOpError:
    listing = ", ".join(f"{op} (e.g. node {name!r})" for op, name in sorted(unsupported.items()))
    return UnsupportedOpError(f"{path}: {len(unsupported)} operation type(s) not supported by nnlite: {listing}")


def _postorder(graph, roots: list[str], decide):
    """Nodes the roots depend on, each after its data inputs (iterative: graphs can be thousands deep).
    A generator: the caller visits each node before the walk goes on, so once an ``If``'s condition
    has been visited, ``decide(node)`` says what the ``If`` depends on: its taken branch's outputs
    (a known condition) or its own inputs."""
    seen = set()
    for root in roots:
        if root in seen:
            continue
        stack = [(root, 0)]  # 0: first reached, 1: If condition visited, 2: inputs visited
        while stack:
            name, state = stack.pop()
            if state == 2:
                yield graph.nodes[name]
                continue
            node = graph.nodes.get(name)
            if state == 1:
                deps = decide(node)
            else:
                if name in seen:
                    continue
                if node is None:
                    raise GraphFormatError(f"{graph.path}: no operation named {name!r}")
                seen.add(name)
                if graph.is_call(node):
                    graph.inline(node)
                elif node.op in functional.IF_OPS and node.inputs:
                    stack.append((name, 1))
                    if node.inputs[0][0] not in seen:
                        stack.append((node.inputs[0][0], 0))
                    continue
                deps = node.inputs
            stack.append((name, 2))
            stack.extend((s, 0) for s, _ in reversed(deps) if s not in seen)


def _visit(graph, node, ins, feeds, variables, known, alias, dyn, unsupported) -> None:
    if _visit_source(graph, node, ins, feeds, variables, known, alias, dyn):
        return
    if _visit_control_flow(node, ins, known, alias, dyn):
        return
    name, op = node.name, node.op
    if op in ALIAS_OPS:
        for i, r in enumerate(ins):
            alias[(name, i)] = r
        return
    if op == "ReadVariableOp" and ins[0][0] == "k":
        known[name] = (variables.read(ins[0][1], node),)
        return
    if op == "Switch":  # predicate depends on a feed: decided at run time
        dyn[name] = PNode(name, op, node, ins)
        return
    if op in functional.IF_OPS:  # a known condition was inlined by the walk; this one depends on a feed
        dyn[name] = functional.runtime_if(graph, node, ins, variables, PNode)
        return
    if op not in KERNELS or op.startswith("_"):
        unsupported.setdefault(op, name)
        return
    if all(r[0] == "k" for r in ins):
        known[name] = _fold(graph, node, [r[1] for r in ins])
        return
    dyn[name] = PNode(name, op, node, ins)


def _visit_source(graph, node, ins, feeds, variables, known, alias, dyn) -> bool:
    """Feeds, placeholders, variables and constants: nodes whose value computes nothing from their inputs.
    True when ``node`` was one of them (and is now recorded)."""
    name, op = node.name, node.op
    if name in feeds or op == "Placeholder":
        dyn[name] = PNode(name, "_Feed", node, [])
    elif op == "PlaceholderWithDefault":
        alias[(name, 0)] = ins[0]
    elif op in VARIABLE_OPS:
        known[name] = (variables.handle(node),)
    elif op == "Const":
        if "value" not in node.attrs:
            raise GraphFormatError(f"{graph.path}: Const node {name!r} has no 'value' attribute")
        known[name] = (to_array(node.attrs["value"].tensor, f"{graph.path} (node {name})"),)
    elif op == "_Known":  # a run-time branch's argument that was known when the branch was planned
        known[name] = (node.attrs["_value"],)
    elif op == "NoOp":
        known[name] = ()
    else:
        return False
    return True


def _visit_control_flow(node, ins, known, alias, dyn) -> bool:
    """TF1 control flow decided at load: a Switch with a known predicate routes its input to one output and
    marks the other dead; a node fed by a dead output is dead too, except a Merge, which forwards its one
    live input (several live inputs leave it to run time). True when ``node`` was settled here."""
    name, op = node.name, node.op
    if op != "Merge" and any(r[0] == "k" and r[1] is DEAD for r in ins):
        known[name] = ALL_DEAD
    elif op == "Merge":
        live = [(i, r) for i, r in enumerate(ins) if not (r[0] == "k" and r[1] is DEAD)]
        if not live:
            known[name] = ALL_DEAD
        elif len(live) == 1:
            alias[(name, 0)], alias[(name, 1)] = live[0][1], ("k", np.int32(live[0][0]))
        else:
            dyn[name] = PNode(name, op, node, ins)
    elif op == "Switch" and ins[1][0] == "k":
        live = 1 if bool(np.asarray(ins[1][1])) else 0
        alias[(name, live)], alias[(name, 1 - live)] = ins[0], ("k", DEAD)
    else:
        return False
    return True


def _fold(graph, node, args: list) -> tuple:
    try:
        return tuple(make_kernel(graph, node)(*args))
    except NnliteError as exc:
        raise type(exc)(f"{graph.path}: node {node.name!r} ({node.op}): {exc}") from None
    except (ValueError, IndexError, TypeError) as exc:
        shapes = [getattr(a, "shape", None) for a in args]
        raise ShapeError(f"{graph.path}: node {node.name!r} ({node.op}) failed on constant inputs of "
                         f"shapes {shapes}: {exc}") from None
    except MemoryError:  # e.g. a Fill or Tile whose constant shape asks for more than the machine has
        raise GraphFormatError(f"{graph.path}: node {node.name!r} ({node.op}): not enough memory to fold "
                               f"it at load") from None


def _needed(dyn: dict, outputs: list) -> dict:
    """The dynamic nodes ``outputs`` depend on, in ``dyn``'s (dependency) order."""
    needed, stack = set(), [r[1][0] for r in outputs if r[0] == "d"]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(r[1][0] for r in dyn[name].ins if r[0] == "d")
    return {name: p for name, p in dyn.items() if name in needed}
