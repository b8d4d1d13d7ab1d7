"""A flat graph of nodes built from a GraphDef, with function calls inlined.

Tensor names: at the top level ``node`` / ``node:1`` / ``^node`` (control input); inside a function body
``arg`` (a function argument), ``node:output_arg:index`` or ``^node``. Both are resolved to endpoints
``(node name, flat output number)``.

TF2 exports keep the model in function-library bodies called through ``(Stateful)PartitionedCall`` (or a
node whose op is the function's name). Inlining replaces the body's nodes into the graph as
``<call node>/<inner node>`` and turns the call into an ``_Outputs`` node whose outputs are the body's
return values, so ``StatefulPartitionedCall:0`` keeps working and inner tensors can be fetched too.
"""

from __future__ import annotations

from ..errors import GraphFormatError
from ..limits import MAX_INLINE_DEPTH
from .opdefs import MISSING, OpInfo
from .tensors import shape_of, to_array
from .wire import Msg

CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


class Node:
    """One operation: ``inputs`` are data endpoints ``(node, port)``; ``control`` are node names."""

    __slots__ = ("name", "op", "inputs", "control", "attrs", "origin")

    def __init__(self, name: str, op: str, inputs: list, control: list, attrs: dict, origin: str = ""):
        self.name, self.op, self.inputs, self.control, self.attrs = name, op, inputs, control, attrs
        self.origin = origin  # function the node was inlined from ("" at the top level)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.op})"


def parse_endpoint(text: str) -> tuple[str, int]:
    """Top-level tensor name ``node`` / ``node:3`` -> ``("node", 3)``."""
    name, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return text, 0


def _check_call(where: str, chain: tuple[str, ...], call: Node, inputs: list, sig) -> None:
    """Refuse a call that would inline forever, nest too deep, or passes the wrong number of inputs."""
    fname = chain[-1]
    if fname in chain[:-1]:  # a body that calls itself would be inlined forever
        raise GraphFormatError(f"{where}: recursive call {' -> '.join(chain)} (recursion is not supported)")
    if len(chain) > MAX_INLINE_DEPTH:
        raise GraphFormatError(f"{where}: function calls nested more than {MAX_INLINE_DEPTH} deep")
    if len(inputs) != len(sig.input_arg):
        raise GraphFormatError(f"{where}: called by {call.name!r} with {len(inputs)} inputs, "
                               f"the function takes {len(sig.input_arg)}")


def attr_value(v: Msg):
    """AttrValue -> Python: bytes, int, float, bool, dtype code, shape tuple, ndarray, list or func."""
    if v.has("list"):
        lst = v.list
        for field in ("i", "f", "s", "b", "type"):
            if lst.has(field):
                return list(getattr(lst, field))
        if lst.has("shape"):
            return [shape_of(s) for s in lst.shape]
        if lst.has("tensor"):
            return [to_array(t) for t in lst.tensor]
        if lst.has("func"):
            return list(lst.func)
        return []
    for field in ("s", "i", "f", "b", "type", "func"):
        if v.has(field):
            return getattr(v, field)
    if v.has("shape"):
        return shape_of(v.shape)
    if v.has("tensor"):
        return to_array(v.tensor)
    if v.has("placeholder"):
        raise GraphFormatError(f"attribute placeholder ${v.placeholder} (polymorphic functions) is not supported")
    return None


class Graph:
    """Nodes by name (insertion order kept), the function library and op information."""

    def __init__(self, graph_def, info: OpInfo, path: str):
        self.path, self.info = path, info
        self.functions = {f.signature.name: f for f in graph_def.library.function}
        self.nodes: dict[str, Node] = {}
        self.chains: dict[str, tuple] = {}  # inlined node -> functions it was inlined through (outermost first)
        for nd in graph_def.node:
            inputs, control = [], []
            for text in nd.input:
                if text.startswith("^"):
                    control.append(text[1:])
                else:
                    inputs.append(parse_endpoint(text))
            if nd.name in self.nodes:
                raise GraphFormatError(f"{path}: two nodes are named {nd.name!r}")
            self.nodes[nd.name] = Node(nd.name, nd.op, inputs, control, dict(nd.attr))
        for node in self.nodes.values():
            for src, _ in node.inputs:
                if src not in self.nodes:
                    raise GraphFormatError(f"{path}: node {node.name!r} reads {src!r}, which is not in the graph")

    # -- attributes -------------------------------------------------------------------------------
    def attr(self, node: Node, name: str, default=MISSING):
        v = node.attrs.get(name)
        if v is None:
            d = self.info.default(node.op, name)
            if d is MISSING:
                if default is not MISSING:
                    return default
                raise GraphFormatError(f"{self.path}: node {node.name!r} ({node.op}) has no attribute {name!r} "
                                       "and nnlite knows no default for it")
            return attr_value(d) if isinstance(d, Msg) else d
        return attr_value(v)

    def is_call(self, node: Node) -> bool:
        return node.op in CALL_OPS or node.op in self.functions

    def callee(self, node: Node):
        fname = self.attr(node, "f").name if node.op in CALL_OPS else node.op
        return self.function(fname, node)

    # -- inlining ---------------------------------------------------------------------------------
    def function(self, fname: str, user: Node):
        """The library's FunctionDef ``fname``, used by node ``user``."""
        if fname not in self.functions:
            raise GraphFormatError(f"{self.path}: node {user.name!r} calls {fname!r}, which is not in the "
                                   "function library")
        return self.functions[fname]

    def scope(self) -> Graph:
        """An empty graph sharing this one's function library and op information (run-time branches)."""
        sub = Graph.__new__(Graph)
        sub.path, sub.info, sub.functions, sub.nodes = self.path, self.info, self.functions, {}
        sub.chains = self.chains
        return sub

    def inline(self, call: Node, fdef=None, inputs: list | None = None, prefix: str | None = None,
               rewrite: bool = True) -> list[tuple[str, int]]:
        """Add the body of ``call``'s function to the graph (calls among the new nodes are inlined by
        the caller's walk when reached) and return the endpoints of its return values. With
        ``rewrite`` the call itself becomes an ``_Outputs`` pass-through of them. ``fdef`` / ``inputs``
        / ``prefix`` default to the callee, the call's data inputs and ``<call name>/`` (an ``If``
        passes one branch and keeps its node: which branch runs may depend on the feeds)."""
        fdef = self.callee(call) if fdef is None else fdef
        inputs = call.inputs if inputs is None else inputs
        sig = fdef.signature
        fname = sig.name
        where = f"{self.path} (function {fname})"
        chain = self.chains.get(call.name, ()) + (fname,)
        _check_call(where, chain, call, inputs, sig)
        args = {a.name: ep for a, ep in zip(sig.input_arg, inputs)}
        prefix = call.name + "/" if prefix is None else prefix
        inner = {nd.name: nd for nd in fdef.node_def}

        def resolve(text: str) -> tuple[str, int]:
            return self._body_endpoint(text, args, inner, prefix, where)

        for nd in fdef.node_def:
            inputs, control = [], []
            for text in nd.input:
                if text.startswith("^"):
                    if text[1:] in inner:
                        control.append(prefix + text[1:])
                else:
                    inputs.append(resolve(text))
            name = prefix + nd.name
            if name in self.nodes:
                raise GraphFormatError(f"{where}: inlined node name {name!r} clashes with an existing node")
            node = Node(name, nd.op, inputs, control, dict(nd.attr), origin=fname)
            self.nodes[name] = node
            self.chains[name] = chain
        outs = []
        for arg in sig.output_arg:
            if arg.name not in fdef.ret:
                raise GraphFormatError(f"{where}: output {arg.name!r} has no return value")
            outs.append(resolve(fdef.ret[arg.name]))
        if rewrite:  # keep what the file said (for operations()), then pass the body's outputs through
            call.attrs = {**call.attrs, "_op": call.op, "_inputs": list(call.inputs)}
            call.op, call.inputs = "_Outputs", outs
        return outs

    def _body_endpoint(self, text: str, args: dict, inner: dict, prefix: str, where: str) -> tuple[str, int]:
        """The endpoint in this graph of a function body's tensor ``text`` ("arg", "node", "node:index" or
        "node:output_name:index"), the body's nodes ``inner`` being inlined under ``prefix``."""
        if text in args:
            return args[text]
        parts = text.split(":")
        if parts[0] not in inner:
            raise GraphFormatError(f"{where}: tensor {text!r} names no node or argument")
        if len(parts) == 1:
            return prefix + parts[0], 0
        src = inner[parts[0]]
        if len(parts) > 3 or not parts[-1].isdigit():
            raise GraphFormatError(f"{where}: malformed tensor name {text!r} (expected node:output:index)")
        if len(parts) == 2:
            return prefix + parts[0], int(parts[1])
        port = self.info.output_port(src.op, src.attr, parts[1], int(parts[2]), where, self.functions)
        return prefix + parts[0], port

    def inline_reachable(self, roots: list[str]) -> None:
        """Inline every call node that ``roots`` depend on (data inputs), depth first."""
        seen, stack = set(), list(roots)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            node = self.nodes.get(name)
            if node is None:
                raise GraphFormatError(f"{self.path}: no operation named {name!r}")
            if self.is_call(node):
                self.inline(node)
            stack.extend(src for src, _ in node.inputs)
