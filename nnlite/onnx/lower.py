"""Lowering: ONNX nodes -> layers of one :class:`nnlite.graph.Model`, converting NCHW to NHWC once.

Every tensor is tracked as a :class:`Value`: a model layer (or input) holding it, or a constant folded
at load. Image tensors (rank 4) are kept NHWC inside the model (``nhwc=True``: the layer stores
(N, H, W, C) of the file's logical (N, C, H, W)), so convolutions, pools and resizes run on nnlite's
NHWC kernels; weights are transposed here, once. A transpose layer appears only where a model input
enters, where an output leaves, or where an op needs the file's element order (a Reshape/Flatten of a
map larger than 1x1).

Each new layer is run at once on a batch-1 probe, so shapes are always known: ``Shape`` becomes a
constant (its batch entry the symbol :data:`BATCH`), and constant sub-graphs fold at load. Op lowerings
live in :mod:`.lower_nn` (convolution, pooling, normalisation, resize, dense) and :mod:`.lower_array`
(elementwise, shape and layout ops); both register into :data:`LOWERINGS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import GraphFormatError, ShapeError, UnsupportedOpError
from ..graph import GraphBuilder
from . import arrays
from .schema import ATTR_FLOAT, ATTR_FLOATS, ATTR_INT, ATTR_INTS, ATTR_STRING, ATTR_STRINGS, ATTR_TENSOR, ATTR_TENSORS
from .tensors import to_array

LOWERINGS: dict[str, Callable] = {}
TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
STORED_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}  # logical NCHW axis -> stored NHWC axis


def lowering(*op_types: str):
    def register(fn):
        for t in op_types:
            LOWERINGS[t] = fn
        return fn
    return register


class _Batch:
    """The batch size inside a folded shape (``Shape`` of a tensor whose first size is free)."""

    def _refuse(self, *_):
        raise UnsupportedOpError("shape arithmetic on the batch size (only passing it through, e.g. to "
                                 "Reshape, is supported)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __floordiv__ = __truediv__ = _refuse
    __int__ = __index__ = __float__ = _refuse

    def __repr__(self) -> str:
        return "BATCH"


BATCH = _Batch()


@dataclass
class Value:
    layer: str | None            # model layer (or input) holding the tensor; None for a constant
    const: np.ndarray | None     # the folded value
    nhwc: bool = False           # stored (N, H, W, C) for the file's (N, C, H, W)
    shape: tuple = ()            # logical shape at the probe's batch size 1


def bind(fn: Callable, slots: tuple, name: str) -> Callable:
    """A layer callable: positional tensors fill the "x" slots, weights "in<k>" the others, "-" is None."""
    def op(*xs, **kw):
        it = iter(xs)
        args = [next(it) if s == "x" else (None if s == "-" else kw.pop(s)) for s in slots]
        return fn(*args, **kw)
    op.__name__ = name
    return op


class Lowering:
    def __init__(self, path, opset: int, name: str, inits: dict, inputs, outputs: list[str], input_shapes: dict):
        self.path, self.opset, self.outputs = path, opset, outputs
        self.g = GraphBuilder(name)
        self.values: dict[str, Value] = {k: Value(None, v, False, v.shape) for k, v in inits.items()}
        self.probes: dict[str, np.ndarray] = {}
        self.variants: dict[tuple[str, bool], str] = {}
        self.node = None
        self.dynamic_batch = False
        self.output_layers: dict[str, str] = {}
        self.layer_tensors: dict[str, list[str]] = {}  # layer -> the tensor names it holds
        self.left: dict[str, int] = {}
        rng = np.random.default_rng(0)
        for spec in inputs:
            shape = tuple(input_shapes.get(spec.name, spec.shape))
            if spec.dtype != "float32":
                raise UnsupportedOpError(f"{path}: input {spec.name!r} is {spec.dtype}; nnlite runs float32 inputs")
            if not shape:
                raise UnsupportedOpError(f"{path}: input {spec.name!r} has no recorded shape; pass input_shapes=")
            if shape[0] is None:
                self.dynamic_batch = True
            if any(s is None for s in shape[1:]):
                raise UnsupportedOpError(f"{path}: input {spec.name!r} has free sizes {spec.shape}; pass "
                                         f"input_shapes={{{spec.name!r}: (1, ...)}} to fix them")
            if any(s <= 0 for s in shape[1:]) or int(np.prod(shape[1:])) > 1 << 26:
                raise GraphFormatError(f"{path}: input {spec.name!r} has an impossible shape {shape}")
            self.g.input(spec.name, shape[1:])
            self.probes[spec.name] = (rng.standard_normal((1, *shape[1:])) * 0.5).astype(np.float32)
            self.values[spec.name] = Value(spec.name, None, False, (1, *shape[1:]))

    # -- driving ---------------------------------------------------------------------------------
    def run(self, nodes):
        readers: dict[str, int] = {}
        for n in nodes:
            for s in n.input:
                readers[s] = readers.get(s, 0) + 1
        self.readers, self.left = dict(readers), readers
        self.consumers: dict[str, list] = {}
        for n in nodes:
            for s in n.input:
                self.consumers.setdefault(s, []).append(n)
        self.pending_pads: dict[str, tuple[int, int, int, int]] = {}  # zero Pad merged into the next Conv
        for node in nodes:
            self.node = node
            LOWERINGS[node.op_type](self, node, self.attributes(node))
            for out in node.output[:1]:
                if out and out not in self.values:
                    raise GraphFormatError(f"{self.path}: node {self.where()} did not define {out!r}")
            for s in node.input:
                readers[s] -= 1
                if readers[s] == 0 and s not in self.outputs:
                    self._free(s)
        outs = []
        for name in self.outputs:
            v = self.values.get(name)
            if v is None:
                raise GraphFormatError(f"{self.path}: graph output {name!r} is not produced by any node")
            if v.layer is None:
                raise UnsupportedOpError(f"{self.path}: graph output {name!r} is a constant")
            layer = self.plain(name) if v.nhwc else v.layer
            self.output_layers[name] = layer
            outs.append(layer)
        return self.g.build(outputs=list(dict.fromkeys(outs)))

    def _free(self, tensor: str) -> None:
        v = self.values.get(tensor)
        if v is None or v.layer is None or v.layer in self.g._inputs:
            return
        if any(self.left.get(t, 0) > 0 or t in self.outputs for t in self.layer_tensors.get(v.layer, ())):
            return  # another name for the same layer's output (a folded batch norm, an Identity) is still read
        self.probes.pop(v.layer, None)
        for nhwc in (True, False):
            self.probes.pop(self.variants.get((v.layer, nhwc), ""), None)

    def where(self) -> str:
        n = self.node
        return f"{n.name or (n.output[0] if n.output else '?')!r} ({n.op_type})"

    def fail(self, what: str, unsupported: bool = True):
        cls = UnsupportedOpError if unsupported else GraphFormatError
        return cls(f"{self.path}: node {self.where()}: {what}")

    def attributes(self, node) -> dict:
        out = {}
        for a in node.attribute:
            t = a.type
            if t == ATTR_FLOAT or (t == 0 and a.has("f")):
                out[a.name] = float(a.f)
            elif t == ATTR_INT or (t == 0 and a.has("i")):
                out[a.name] = int(a.i)
            elif t == ATTR_STRING or (t == 0 and a.has("s")):
                out[a.name] = a.s.decode("utf-8", "replace")
            elif t == ATTR_TENSOR or (t == 0 and a.has("t")):
                out[a.name] = to_array(a.t, self.path, f"attribute {a.name!r} of node {self.where()}")
            elif t == ATTR_FLOATS:
                out[a.name] = [float(f) for f in a.floats]
            elif t == ATTR_INTS or (t == 0 and a.ints):
                out[a.name] = [int(i) for i in a.ints]
            elif t == ATTR_STRINGS:
                out[a.name] = [s.decode("utf-8", "replace") for s in a.strings]
            elif t == ATTR_TENSORS:
                raise self.fail(f"attribute {a.name!r} holds tensors")
            else:
                raise self.fail(f"attribute {a.name!r} has type {t} (sub-graphs are not supported)")
        return out

    # -- values ----------------------------------------------------------------------------------
    def value(self, tensor: str) -> Value | None:
        if not tensor:
            return None
        return self.values[tensor]

    def const(self, node, i: int, required: bool = False):
        """Input ``i`` as a constant (None when absent); a computed input is an unsupported case."""
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            if required:
                raise self.fail(f"input {i} is missing", unsupported=False)
            return None
        v = self.values[name]
        if v.layer is not None:
            raise self.fail(f"input {i} ({name!r}) must be a constant (it is computed at run time)")
        return v.const

    def set_const(self, tensor: str, array) -> None:
        array = np.asarray(array)
        self.values[tensor] = Value(None, array, False, array.shape)

    def alias(self, tensor: str, source: str) -> None:
        self.set_value(tensor, self.values[source])

    def set_value(self, tensor: str, v: Value) -> None:
        self.values[tensor] = v
        if v.layer is not None:
            self.layer_tensors.setdefault(v.layer, []).append(tensor)

    def fresh(self, base: str) -> str:
        name, k = base or "node", 1
        while name in self.g._layers or name in self.g._inputs:
            k += 1
            name = f"{base}_{k}"
        return name

    def emit(self, op, inputs: list[str], out: str | None, /, *, nhwc: bool, name: str | None = None,
             covers=(), **kw) -> str:
        """Add a layer reading layers ``inputs``, run it on the probe, record it as tensor ``out``."""
        lname = self.fresh(name or out or self.node.output[0])
        self.g.layer(op, lname, *inputs, covers=covers, **kw)
        layer = self.g._layers[lname]
        try:
            y = layer(*[self.probes[i] for i in inputs])
        except ShapeError as exc:
            raise GraphFormatError(f"{self.path}: node {self.where()}: {exc}") from None
        y = np.asarray(y)
        self.probes[lname] = y
        if out is not None:
            shape = (y.shape[0], y.shape[3], y.shape[1], y.shape[2]) if nhwc else y.shape
            self.set_value(out, Value(lname, None, nhwc, tuple(shape)))
        return lname

    def plain(self, tensor: str) -> str:
        """The layer holding ``tensor`` in the file's axis order."""
        v = self.values[tensor]
        if not v.nhwc:
            return v.layer
        return self._variant(v, False)

    def same_order(self, tensor: str) -> str:
        """A layer whose elements are in the file's order (reshape-ready): the NHWC layer itself when
        C == 1 or H == W == 1 (no transpose needed), else the NCHW variant."""
        v = self.values[tensor]
        if v.nhwc and (v.shape[1] == 1 or v.shape[2] * v.shape[3] == 1):
            return v.layer
        return self.plain(tensor)

    def nhwc(self, tensor: str) -> str:
        v = self.values[tensor]
        if v.layer is None:
            raise self.fail(f"a constant image input {tensor!r}")
        if v.nhwc:
            return v.layer
        if len(v.shape) != 4:
            raise self.fail(f"expects a 4-D (N, C, H, W) input, {tensor!r} has shape {v.shape}")
        return self._variant(v, True)

    def _variant(self, v: Value, to_nhwc: bool) -> str:
        key = (v.layer, to_nhwc)
        if key not in self.variants:
            perm = TO_NHWC if to_nhwc else TO_NCHW
            name = self.fresh(f"{v.layer}:{'nhwc' if to_nhwc else 'nchw'}")
            self.variants[key] = self.emit(arrays.transpose, [v.layer], None, nhwc=False, name=name, perm=perm)
        return self.variants[key]

    def generic(self, fn: Callable, node, op_name: str, *, ins=None, out=None, layout: str = "plain", **attrs):
        """Lower a node onto ``fn(*inputs, **attrs)``: folded when every input is constant; otherwise
        constants become the layer's weights. ``layout="any"``: elementwise, runs on NHWC tensors as they
        are (constants of rank <= 4 are permuted to match)."""
        ins = list(node.input) if ins is None else ins
        out = node.output[0] if out is None else out
        vals = [self.value(i) for i in ins]
        if all(v is None or v.layer is None for v in vals):
            try:
                self.set_const(out, fn(*[None if v is None else v.const for v in vals], **attrs))
            except (TypeError, ValueError, IndexError) as exc:
                raise self.fail(f"cannot fold constant inputs: {exc}", unsupported=False) from None
            return
        tensors = [v for v in vals if v is not None and v.layer is not None]
        consts = [v for v in vals if v is not None and v.layer is None]
        nhwc = (layout == "any" and any(v.nhwc for v in tensors) and all(len(v.shape) == 4 for v in tensors)
                and all(v.const.ndim <= 4 for v in consts))
        slots, layer_ins, weights = [], [], {}
        for k, (name, v) in enumerate(zip(ins, vals)):
            if v is None:
                slots.append("-")
            elif v.layer is None:
                c = v.const
                if c.dtype == object:
                    raise self.fail("uses the batch size as a value")
                if nhwc and c.ndim:
                    c = np.ascontiguousarray(c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(TO_NHWC))
                slots.append(f"in{k}")
                weights[f"in{k}"] = c
            else:
                slots.append("x")
                layer_ins.append(self.nhwc(name) if nhwc else self.plain(name))
        self.emit(bind(fn, tuple(slots), op_name), layer_ins, out, nhwc=nhwc, **weights, **attrs)


from . import lower_array, lower_nn  # noqa: E402,F401  (register their lowerings)
