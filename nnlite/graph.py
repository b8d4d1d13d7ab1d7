"""A model is a graph of named layers; every model in nnlite is one.

A model file builds its graph with :class:`GraphBuilder`, one line per layer, reading weights by the
names they have in the weights file::

    g = GraphBuilder("mobilenet_v2")
    x = g.input("input_1", (224, 224, 3))
    x = g.layer("conv2d", "Conv1", x, kernel=w["Conv1/kernel"], bias=b, stride=2, padding="same",
                activation="relu6", covers=("Conv1", "bn_Conv1", "Conv1_relu"))
    model = g.build(outputs=[x])

A layer's ``op`` is the name of a kernel in :mod:`nnlite.ops` (or any callable); its array keyword
arguments are its weights, the other keyword arguments its attributes. Because every model is the
same kind of object, three tools work for all of them: :meth:`Model.summary` (shapes, parameters,
multiply-accumulates), :meth:`Model.trace` (every intermediate by layer name) and
:meth:`Model.first_divergence` (the first layer that disagrees with a reference run).

A layer's ``op`` may also name a function of an ``nnlite.ops`` module (``"tensor.reshape"``: the
framework-neutral array ops importers use). A layer declared with ``n_outputs=k`` returns k arrays, read
by later layers as ``name``, ``name:1``, ... (TensorFlow's tensor naming). An input is a float32 image
batch unless declared otherwise: ``g.input("n", (), dtype=np.int64, batch=False)`` (:class:`InputSpec`).

``covers`` names the source-framework layers one nnlite layer computes when several were fused at
load time (a convolution with its batch norm and activation). The layer's output equals the *last*
covered layer's output, so a reference activation recorded under that name can be compared with it.

:meth:`Model.forward` runs an *execution plan* of the same layers (:mod:`nnlite.plan`): a standalone
activation layer is fused into the convolution / dense / add that produces its only input, a weightless
nnlite.ops layer repeated on the same input (NASNet applies relu to one tensor in several branches) runs
once, and a depthwise layer with the 1x1 conv after it (or a conv with the max pool after it) runs as one
kernel. All give bit-identical outputs. :meth:`Model.trace`, :meth:`Model.summary` and
:meth:`Model.first_divergence` run the layers exactly as declared, so every layer name stays visible.
``model.optimize = False`` makes forward run the declared layers too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, ModelError, ShapeError
from .layer import Declared, Layer, count_macs

if TYPE_CHECKING:
    from . import replay
    from .plan import Step


@dataclass
class Divergence:
    """The first layer whose output differs from a reference by more than the tolerance."""
    layer: str             # nnlite layer name
    reference_name: str    # the key in the reference activations
    rel_error: float       # ||ours - ref|| / ||ref||
    tolerance: float
    checked: list[tuple[str, float]] = field(default_factory=list)  # every (layer, error) compared up to here

    def __str__(self) -> str:
        return (f"first divergence at layer {self.layer!r} (reference {self.reference_name!r}): "
                f"relative error {self.rel_error:.3g} > {self.tolerance:.3g} "
                f"after {len(self.checked) - 1} matching layers")


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Scale-free error ||ours - ref|| / ||ref|| (computed in float64)."""
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    den = np.linalg.norm(ref)
    num = np.linalg.norm(ours - ref)
    return float(num / den) if den > 0 else float(num)


def resolve_op(op: str | Callable, lazy: bool = False) -> tuple[str, Callable | None]:
    """A kernel name in nnlite.ops (``"conv2d"``) or in one of its modules (``"tensor.reshape"``). ``lazy``: for
    a kernel of nnlite.ops itself, None instead of the function (a :class:`Layer` loads it at first use)."""
    if callable(op):
        return getattr(op, "__name__", "custom"), op
    import importlib

    from . import ops  # imported here so graph.py stays importable while ops load lazily
    module, _, attr = op.rpartition(".")
    if lazy and not module and attr in ops.KERNELS:
        return op, None
    try:
        owner = importlib.import_module(f"{ops.__name__}.{module}") if module else ops
    except ImportError:
        owner = None
    fn = getattr(owner, attr, None)
    if fn is None or not callable(fn):
        raise ModelError(f"unknown op {op!r}: not a kernel in nnlite.ops")
    return op, fn


def output_names(layer: Layer) -> list[str]:
    """The names a layer's outputs are read by: ``name``, then ``name:1``, ``name:2``, ..."""
    return [layer.name] + [f"{layer.name}:{i}" for i in range(1, layer.n_outputs)]


def sizes(shape, what: str, error: type[Exception] = ModelError) -> tuple:
    """``shape`` as a tuple of sizes >= 0, None standing for a free size; ``error`` naming ``what`` otherwise."""
    def size(s) -> bool:
        return s is None or (isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0)
    if isinstance(shape, str) or not isinstance(shape, (Sequence, np.ndarray)) or not all(map(size, shape)):
        raise error(f"{what}: expected a shape (a sequence of sizes >= 0, None for a free size), found {shape!r}")
    return tuple(shape)


@dataclass(frozen=True)
class InputSpec:
    """A model input: per-example ``shape`` (``batch``) or the whole shape; None entries are free sizes,
    ``shape=None`` a free rank. ``dtype`` None keeps what the caller passes (shape vectors, flags)."""
    shape: tuple | None
    dtype: Any = np.float32
    batch: bool = True


class GraphBuilder:
    """Collects layers in the order they are declared (which is a valid execution order)."""

    def __init__(self, name: str):
        self.name = name
        self._inputs: dict[str, InputSpec] = {}
        self._layers: dict[str, Layer] = {}
        self._tensors: set[str] = set()   # every readable name: inputs, layers, "layer:i"

    def input(self, name: str, shape: Sequence[int | None] | None, *, dtype: Any = np.float32,
              batch: bool = True) -> str:
        """Declare a model input of per-example shape ``shape`` (H, W, C); None for a free size.
        ``batch=False``: ``shape`` is the whole shape (a scalar flag, a shape vector); ``shape=None``:
        any rank. ``dtype`` (float32 unless told) is what the input is converted to; None keeps it."""
        self._check_new(name)
        shape = None if shape is None else sizes(shape, f"{self.name}: input {name!r}")
        self._inputs[name] = InputSpec(shape, dtype, batch)
        self._tensors.add(name)
        return name

    def layer(self, op: str | Callable, name: str, *inputs: str, covers: Sequence[str] = (),
              n_outputs: int = 1, **kwargs: Any) -> str:
        """Add a layer; array keyword arguments become its weights, the rest its attributes. A layer
        with ``n_outputs > 1`` returns a sequence; its outputs are read as ``name``, ``name:1``, ..."""
        self._check_new(name)
        for src in inputs:
            if src not in self._tensors:
                raise ModelError(f"{self.name}: layer {name!r} reads {src!r}, which is not defined before it")
        op_name, fn = resolve_op(op, lazy=True)
        weights = {k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}
        attrs = {k: v for k, v in kwargs.items() if not isinstance(v, np.ndarray)}
        layer = Layer(name, op_name, tuple(inputs), weights, attrs, fn, tuple(covers),
                      kernel=isinstance(op, str), n_outputs=int(n_outputs))
        self._layers[name] = layer
        self._tensors.update(output_names(layer))
        return name

    def build(self, outputs: Sequence[str]) -> Model:
        for out in outputs:
            if out not in self._tensors:
                raise ModelError(f"{self.name}: output {out!r} is not a layer")
        return Model(self.name, self._inputs, list(self._layers.values()), list(outputs))

    def _check_new(self, name: str) -> None:
        if name in self._layers or name in self._inputs:
            raise ModelError(f"{self.name}: layer name {name!r} is used twice")


class Model:
    """A built graph: run it, trace it, summarise it, compare it with a reference run."""

    def __init__(self, name: str, inputs: Mapping[str, InputSpec | tuple], layers: list[Layer],
                 outputs: list[str]):
        self.name = name
        self.input_specs = {n: s if isinstance(s, InputSpec) else InputSpec(tuple(s)) for n, s in inputs.items()}
        self.inputs = {n: s.shape for n, s in self.input_specs.items()}  # name -> shape (per example)
        self.layers = layers
        self.outputs = outputs
        self._by_name = {layer.name: layer for layer in layers}
        self.optimize = True  # forward() runs the fused execution plan (see plan_steps)
        self._plan: tuple[list[Step], list[tuple[str, ...]]] | None = None
        self._replays: dict[tuple, list] = {}  # input signature -> each step's call (nnlite.replay)

    def __getitem__(self, name: str) -> Layer:
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelError(f"{self.name} has no layer {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    # -- running ---------------------------------------------------------------------------------
    def _feed(self, args: tuple, kwargs: dict) -> dict[str, np.ndarray]:
        names = list(self.inputs)
        if args and kwargs:
            raise ModelError(f"{self.name}: pass inputs positionally or by name, not both")
        if args:
            if len(args) != len(names):
                raise ModelError(f"{self.name} takes {len(names)} input(s) {names}, got {len(args)}")
            kwargs = dict(zip(names, args))
        missing = [n for n in names if n not in kwargs]
        if missing:
            raise ModelError(f"{self.name}: missing input(s) {missing}")
        feed = {}
        for n in names:
            try:
                x = np.asarray(kwargs[n])
            except ValueError as exc:   # a ragged nested list
                raise ShapeError(f"{self.name}: input {n!r} is not an array ({exc})") from None
            spec = self.input_specs[n]
            want, got = spec.shape, (x.shape[1:] if spec.batch else x.shape)
            if want is not None and ((spec.batch and x.ndim == 0) or len(got) != len(want)
                                     or any(w is not None and w != s for w, s in zip(want, got))):
                shown = ", ".join(map(str, ("N",) * spec.batch + want))
                raise ShapeError(f"{self.name}: input {n!r} expects shape ({shown}), got {x.shape}")
            try:
                feed[n] = x.astype(spec.dtype, copy=False) if spec.dtype is not None and x.dtype != spec.dtype else x
            except (TypeError, ValueError):
                raise ShapeError(f"{self.name}: input {n!r} should hold numbers ({np.dtype(spec.dtype).name}), "
                                 f"found {x.dtype} values") from None
            if not feed[n].flags.writeable:  # the kernels take writable arrays (Numba types read-only ones apart)
                feed[n] = feed[n].copy()
        return feed

    def _run(self, feed: dict[str, np.ndarray], keep_all: bool) -> dict[str, np.ndarray]:
        """Every declared layer in order (trace, summary); intermediates freed unless ``keep_all``. On the
        "numpy" engine (nnlite.ops.engine) each layer with a NumPy form runs it (nnlite.ops.numpy_engine)."""
        from .ops import engine
        if engine.numpy():
            from .ops.numpy_engine import KERNELS
            steps = [Declared(layer, KERNELS.get(layer.op) if layer.kernel else None) for layer in self.layers]
        else:
            from .plan import Step
            steps = [Step(layer, layer.name, layer.inputs) for layer in self.layers]
        return self._run_steps(steps, None if keep_all else self._free_lists(steps), feed)

    def _execution_plan(self) -> tuple[list[Step], list[tuple[str, ...]]]:
        """The plan's steps, and for each the tensors no later step reads (freed after it)."""
        if self._plan is None:
            from .ops import prepack
            from .plan import plan_steps
            prepack.freeze_kernels(self.layers)  # the GEMM may pack them once: read-only from now on
            steps = plan_steps(self.layers, self.outputs)
            self._plan = (steps, self._free_lists(steps))
        return self._plan

    def _free_lists(self, steps: list[Step]) -> list[tuple[str, ...]]:
        last = {src: i for i, step in enumerate(steps) for src in step.inputs}  # each tensor's last reader
        frees: list[list[str]] = [[] for _ in steps]
        for src, i in last.items():
            if src not in self.outputs:
                frees[i].append(src)
        return [tuple(f) for f in frees]

    def _run_plan(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The execution plan on ``feed``, replayed where it ran on inputs like these before (nnlite.replay)."""
        from . import replay
        steps, frees = self._execution_plan()
        key = replay.signature(feed)
        calls = self._replays.get(key)
        if calls is not None:
            return self._run_steps(steps, frees, feed, calls)
        recorder = replay.Recorder(feed)
        values = self._run_steps(steps, frees, feed, recorder=recorder)
        if replay.signature(feed) == key:  # no layer changed meanwhile
            replay.keep(self._replays, key, recorder.calls)
        return values

    def _run_steps(self, steps: list[Step | Declared], frees: list[tuple[str, ...]] | None, feed: dict[str, np.ndarray],
                   calls: list | None = None, recorder: replay.Recorder | None = None) -> dict[str, np.ndarray]:
        """Run ``steps`` on ``feed``; after step i, delete the tensors ``frees[i]`` (None: keep every one).
        ``calls``: what to call for each step instead of the step; ``recorder`` notes each step's run."""
        values = dict(feed)
        for i, step in enumerate(steps):
            try:
                xs = [values[src] for src in step.inputs]
                out = (step if calls is None else calls[i])(*xs)
                if recorder is not None:
                    recorder.note(step, xs)
                if step.outs is not None:  # a plan step returning several tensors (nnlite.plan_sums)
                    values.update(zip(step.outs, out))
                elif step.layer.n_outputs == 1:
                    values[step.out] = out
                else:
                    values.update(zip(output_names(step.layer), out))
            except ShapeError as exc:
                if getattr(exc, "layer", None) is None:
                    exc.layer = step.layer.name  # which layer failed, for callers that name it their own way
                raise
            except (ValueError, IndexError) as exc:
                layer = step.layer
                shapes = [values[src].shape for src in step.inputs]
                raise ShapeError(f"{self.name}: layer {layer.name!r} ({layer.op}) failed on input shapes "
                                 f"{shapes}: {exc}") from exc
            if frees is not None:
                for src in frees[i]:
                    del values[src]
        return values

    def forward(self, *args: np.ndarray, **kwargs: np.ndarray):
        """Run the model; returns the output array, or a tuple when the model has several outputs. From
        the first run on, conv and dense kernels are read-only (ops/prepack.py): assign new arrays to change them."""
        feed = self._feed(args, kwargs)
        from .ops import engine
        if self.optimize and not engine.numpy():
            values = self._run_plan(feed)
        else:
            values = self._run(feed, keep_all=False)
        outs = tuple(values[o] for o in self.outputs)
        return outs[0] if len(outs) == 1 else outs

    __call__ = forward

    def trace(self, *args: np.ndarray, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Every intermediate activation, keyed by layer name, in execution order (inputs first)."""
        return self._run(self._feed(args, kwargs), keep_all=True)

    # -- inspecting ------------------------------------------------------------------------------
    def _example_input(self, input_shape) -> dict[str, np.ndarray]:
        feed = {}
        for n, spec in self.input_specs.items():
            shape = spec.shape
            shape = input_shape.get(n, shape) if isinstance(input_shape, Mapping) else (input_shape or shape)
            shape = None if shape is None else sizes(shape, f"{self.name}: input_shape for {n!r}", ShapeError)
            if shape is None or any(s is None for s in shape):
                raise ShapeError(f"{self.name}: input {n!r} has a free size {shape}; pass input_shape=")
            feed[n] = np.zeros((1, *shape) if spec.batch else tuple(shape), spec.dtype or np.float32)
        return feed

    def layer_table(self, input_shape=None) -> list[dict]:
        """One row per layer: name, op, output shape, parameter count, multiply-accumulates (batch 1)."""
        values = self._run(self._example_input(input_shape), keep_all=True)
        rows = []
        for layer in self.layers:
            out = values[layer.name]
            rows.append({"name": layer.name, "op": layer.op, "inputs": layer.inputs,
                         "output_shape": tuple(out.shape) if hasattr(out, "shape") else (),
                         "params": layer.params, "macs": count_macs(layer, out)})
        return rows

    def summary(self, input_shape=None) -> str:
        """A Keras-like table of the layers (batch 1) and the totals."""
        rows = self.layer_table(input_shape)
        head = ("Layer", "Op", "Output shape", "Params", "MACs")
        lines = [[r["name"], r["op"], str(_batch_free(r["output_shape"])), f"{r['params']:,}", f"{r['macs']:,}"]
                 for r in rows]
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths)))
        rule = "-" * len(fmt(head))
        total_p = sum(r["params"] for r in rows)
        total_m = sum(r["macs"] for r in rows)
        inputs = ", ".join(f"{n} {_shown(s)}" for n, s in self.input_specs.items())
        return "\n".join([f'Model "{self.name}"  inputs: {inputs}', rule, fmt(head), rule,
                          *(fmt(line) for line in lines), rule,
                          f"Total params: {total_p:,}    Total MACs (batch 1): {total_m:,}"])

    def first_divergence(self, reference: Mapping[str, np.ndarray], *args, tolerance: float = 1e-4,
                         **kwargs) -> Divergence | None:
        """Run the model and compare, in execution order, every layer whose output the reference has.

        ``reference`` maps source-framework layer names (or nnlite layer names) to activations from the
        same input. Returns the first layer whose relative error exceeds ``tolerance``, or None.
        """
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{self.name}: first_divergence tolerance must be a number, found {tolerance!r}")
        values = self.trace(*args, **kwargs)
        checked: list[tuple[str, float]] = []
        for layer in self.layers:
            key = layer.output_name if layer.output_name in reference else layer.name
            if key not in reference:
                continue
            err = relative_error(values[layer.name], reference[key])
            checked.append((layer.name, err))
            if not err <= tolerance:
                return Divergence(layer.name, key, err, tolerance, checked)
        return None


def _batch_free(shape: tuple) -> tuple:
    """An activation's shape with the batch axis shown free; vectors and scalars (shape plumbing) as they are."""
    return (None,) + shape[1:] if len(shape) >= 2 else shape


def _shown(spec: InputSpec) -> str:
    if spec.shape is None:
        return "(any shape)"
    return str(((None,) if spec.batch else ()) + spec.shape)
