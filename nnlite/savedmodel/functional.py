"""Functional control flow ("control flow v2", TensorFlow 2's default): ``If`` / ``StatelessIf``.

An ``If`` node reads ``(cond, *args)`` and calls one of two library functions with ``args``: attribute
``then_branch`` when ``cond`` is true, ``else_branch`` otherwise; its outputs are that function's return
values. tf_keras builds one per batch-norm layer on the learning-phase flag (a ``PlaceholderWithDefault``
whose default is False), so in a saved graph the condition is almost always known at load:

* known condition (a constant, an unfed ``PlaceholderWithDefault``'s default, anything folded from them):
  the taken branch is inlined next to the ``If`` (nodes ``<if>/then_branch/...`` or
  ``<if>/else_branch/...``) and the plan reads the ``If``'s outputs from there, so its constants fold and
  its batch norm fuses into the convolution exactly as in a plain graph; the other branch is never read,
  so its ops need no support. The ``If`` node itself stays: another plan may feed the condition;
* condition computed from a feed (e.g. the learning phase fed True): both branches are planned as
  programs of their own (known arguments folded in) and the ``If`` picks one per run.

Truth of a condition (TensorFlow's rule): a scalar is its value (a string: non-empty); a tensor of any
other rank is true when it has at least one element.
"""

from __future__ import annotations

import numpy as np

from ..errors import GraphFormatError
from .graphdef import Node
from .tf_ops import kernel

IF_OPS = ("If", "StatelessIf")
BRANCHES = ("then_branch", "else_branch")


def truth(value) -> bool:
    a = np.asarray(value)
    if a.ndim == 0:
        item = a.item()
        return len(item) > 0 if isinstance(item, (bytes, str)) else bool(item)
    return a.size > 0


def branch_function(graph, node: Node, taken: bool):
    """The FunctionDef ``node`` runs when its condition is ``taken``."""
    func = graph.attr(node, BRANCHES[0 if taken else 1])
    return graph.function(func.name, node)


def inline_taken(graph, node: Node, cond) -> list[tuple[str, int]]:
    """Endpoints of the outputs of the branch a known ``cond`` selects, its body inlined on first use."""
    taken = truth(cond)
    label = BRANCHES[0 if taken else 1]
    done = node.attrs.setdefault("_inlined", {})  # label -> endpoints (plans of other feeds reuse them)
    if label not in done:
        done[label] = graph.inline(node, branch_function(graph, node, taken), node.inputs[1:],
                                   prefix=f"{node.name}/{label}/", rewrite=False)
    return done[label]


def runtime_if(graph, node: Node, ins: list, variables, pnode_type):
    """A program node for an ``If`` whose condition is only known at run time. ``ins`` are the planner's
    refs of ``(cond, *args)``; known arguments (weights, variable handles) are baked into the branch
    programs, dynamic ones stay inputs of the returned node."""
    args = ins[1:]
    dynamic = [i for i, r in enumerate(args) if r[0] == "d"]
    spec = {"if": node, "args": args, "dynamic": dynamic, "variables": variables, "graph": graph}
    inner = Node(node.name, "_If", [], [], {"_spec": spec})
    return pnode_type(node.name, "_If", inner, [ins[0]] + [args[i] for i in dynamic])


def branch_program(graph, node: Node, fdef, label: str, args: list, ports: list, variables):
    """Plan function ``fdef`` as its own program: arguments become ``_Known`` nodes (their values) or
    placeholders (fed per run); the fetched outputs are ``ports`` of the call."""
    from . import fold  # fold imports this module

    sub = graph.scope()
    base = f"{node.name}/{label}"
    feeds, inputs = {}, []
    for i, r in enumerate(args):
        name = f"{base}/_arg{i}"
        if r[0] == "k":
            sub.nodes[name] = Node(name, "_Known", [], [], {"_value": r[1]})
        else:
            sub.nodes[name] = feeds[name] = Node(name, "Placeholder", [], [], {})
        inputs.append((name, 0))
    call = Node(base, "_Branch", [], [], {})
    sub.nodes[base] = call
    sub.chains[base] = graph.chains.get(node.name, ())  # recursion through run-time branches is caught too
    sub.inline(call, fdef, inputs, prefix=base + "/")
    n_out = len(fdef.signature.output_arg)
    bad = [p for p in ports if p >= n_out]
    if bad:
        raise GraphFormatError(f"{graph.path}: output {node.name}:{bad[0]} does not exist; "
                               f"{fdef.signature.name} returns {n_out} value(s)")
    program = fold.build(sub, [(base, p) for p in ports], feeds, variables)
    return program, list(feeds)


@kernel("_If")
def _if(g, node):
    """Run-time ``If``: plan both branches for the outputs in use (``_ports``, set by the planner)."""
    spec = node.attrs["_spec"]
    src, graph, ports = spec["if"], spec["graph"], node.attrs.get("_ports", [])
    branches = []
    for taken in (True, False):
        fdef = branch_function(graph, src, taken)
        label = BRANCHES[0 if taken else 1]
        branches.append(branch_program(graph, src, fdef, label, spec["args"], ports, spec["variables"]))
    width = max(ports, default=-1) + 1

    def run(cond, *dyn):
        program, feeds = branches[0 if truth(cond) else 1]
        values = dict(zip(feeds, dyn))
        outs = [None] * width
        for port, value in zip(ports, program.run(values)):
            outs[port] = value
        return outs
    return run


@kernel("OptionalFromValue")
def _optional(g, node):
    """Gradient bookkeeping in tf_keras batch-norm branches (an optional holding its inputs); never on
    the path of a model output, but planned when every graph end is checked at load."""
    return lambda *xs: (tuple(xs),)
