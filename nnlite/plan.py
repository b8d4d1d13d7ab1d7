"""A model's execution plan: its layers as :meth:`nnlite.graph.Model.forward` runs them.

:func:`plan_steps` rewrites the declared layers into :class:`Step` calls without changing a single output bit:
activations fold into their producers, repeated weightless layers run once, and depthwise -> 1x1 conv pairs,
conv -> max pool and separable conv -> max pool pairs and 1x1 conv -> depthwise -> 1x1 conv blocks run as one
fused kernel each (:class:`PairStep`, :class:`ConvPoolStep`, :class:`SeparablePoolStep`,
:class:`InvertedStep`), adds run inside the separable convolution producing their input
(:class:`nnlite.plan_sums.SumStep`), convolutions write into the concat that reads them
(:class:`nnlite.plan_concat.ConcatStep`), and two pairs around a widened map may run regrouped
(:class:`nnlite.plan_chain.ChainStep`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .layer import Layer, revision
from .prepared import Prepared

FUSABLE_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "sigmoid", "swish")
ACTIVATION_PRODUCERS = ("conv2d", "depthwise_conv2d", "separable_conv2d", "dense", "add")  # take activation=


@dataclass
class Step:
    """One call of the execution plan: ``layer``'s kernel on ``inputs``, stored under ``out``."""
    layer: Layer
    out: str                      # the layer whose output this is (the fused activation's name)
    inputs: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # attribute overrides: a fused activation

    prepared: Prepared | None = field(default=None, repr=False, compare=False)  # see nnlite.prepared
    outs: ClassVar[tuple[str, ...] | None] = None  # set: the step returns a tuple, stored under these names

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        prepared = self.prepared
        if prepared is not None and prepared.fits(xs):
            return prepared.call(*xs)
        if all(type(x) is np.ndarray for x in xs):
            before = revision()
            call = self.prepare(*xs)
            if call is not None:
                self.prepared = Prepared(call, xs, before)
                return call(*xs)
        return self.run(*xs)

    def run(self, *xs: np.ndarray) -> np.ndarray:
        """The step's layers called as they are (no prepared call)."""
        layer = self.layer  # layer.fn read at call time, so a profiler's wrapper still sees the call
        if not self.extra:
            return layer.fn(*xs, **layer.weights, **layer.attrs)
        return layer.fn(*xs, **layer.weights, **{**layer.attrs, **self.extra})

    def prepare(self, *xs: np.ndarray):
        """The step as a function of inputs like ``xs`` alone (:mod:`nnlite.prepared`; ``.out_shape``: its
        output's shape), or None where its kernel has no prepared form or would not take these arguments as
        they are. Only the inputs' shapes and form are read."""
        preparer = _preparers().get(self.layer.fn)
        if preparer is None:
            return None
        return preparer(*xs, **self.layer.weights, **{**self.layer.attrs, **self.extra})


_PREPARERS: dict = {}


def _preparers() -> dict:
    """nnlite.ops kernel -> the function preparing its call (same arguments), for the kernels that have one."""
    if not _PREPARERS:
        from . import ops
        from .ops.activations import prepare_softmax
        from .ops.arrays import prepare_flatten
        from .ops.concatenate import prepare_concat
        from .ops.conv import prepare_conv2d, prepare_dense
        from .ops.depthwise import prepare_depthwise_conv2d
        from .ops.pooling import prepare_pool2d
        from .ops.separable import prepare_separable_conv2d
        from .ops.shape import prepare_add
        _PREPARERS.update({ops.conv2d: prepare_conv2d, ops.separable_conv2d: prepare_separable_conv2d,
                           ops.depthwise_conv2d: prepare_depthwise_conv2d, ops.add: prepare_add,
                           ops.concat: prepare_concat, ops.dense: prepare_dense, ops.softmax: prepare_softmax,
                           ops.flatten: prepare_flatten,
                           ops.max_pool2d: functools.partial(prepare_pool2d, is_max=True),
                           ops.avg_pool2d: functools.partial(prepare_pool2d, is_max=False)})
    return _PREPARERS


def _is_kernel(layer: Layer) -> bool:
    """True when the layer was declared with an nnlite.ops kernel name (pure, with known keywords).
    Decided at declaration, so a profiler that later wraps ``layer.fn`` does not change the plan."""
    return layer.kernel


def readers_of(steps: Sequence[Step]) -> dict[str, int]:
    """How many steps read each tensor (a step reading it twice counts twice)."""
    readers: dict[str, int] = {}
    for step in steps:
        for src in step.inputs:
            readers[src] = readers.get(src, 0) + 1
    return readers


def plan_steps(layers: Sequence[Layer], outputs: Sequence[str]) -> list[Step]:
    """The layers as an execution plan, with rewrites that leave every output bit-identical.

    1. A weightless kernel layer identical to an earlier one (same op, inputs and attributes) is not run
       again; readers of its output read the earlier one's.
    2. An activation layer whose input is produced by a conv / dense / add layer (no activation of its
       own, read by nothing else, not a model output) is folded into that producer's ``activation=``:
       the kernel applies it while the output is still in cache (one pass over memory instead of two).
    3. A multiplier-1 depthwise_conv2d step read only by the 1x1 conv2d step right after it becomes one
       :class:`PairStep` (the depthwise output stays in cache; see there), a conv2d step read only by the
       max_pool2d step right after it one :class:`ConvPoolStep`, and a separable_conv2d step with its pool one
       :class:`SeparablePoolStep`. A 1x1 conv2d step read only by such a pair right after it joins it as
       one :class:`InvertedStep` (an inverted-residual block), and so does the add of the block's input
       right after it (its shortcut).
    4. A plain add whose last input comes from a separable step read by nothing else runs inside that
       step's kernel, and so does a dense block's chain of growing sums (:mod:`nnlite.plan_sums`).
    5. A channel concat of convolutions that nothing else reads has them write into its output
       (:mod:`nnlite.plan_concat`).
    6. Two PairSteps in a row whose first 1x1 conv widens the map, only the second reading it, become one
       :class:`nnlite.plan_chain.ChainStep` (regrouped around the widened map where it is large).
    """
    alias: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    steps: list[Step] = []
    for layer in layers:
        inputs = tuple(alias.get(src, src) for src in layer.inputs)
        if not layer.weights and layer.name not in outputs and _is_kernel(layer) and layer.n_outputs == 1:
            key = (layer.op, inputs, repr(sorted(layer.attrs.items())))
            if key in seen:
                alias[layer.name] = seen[key]
                continue
            seen[key] = layer.name
        steps.append(Step(layer, layer.name, inputs))
    readers = readers_of(steps)
    producer = {step.out: step for step in steps}
    fused: list[Step] = []
    for step in steps:
        p = producer.get(step.inputs[0]) if len(step.inputs) == 1 else None
        if (p is not None and step.layer.op in FUSABLE_ACTIVATIONS and _is_kernel(step.layer)
                and p.layer.op in ACTIVATION_PRODUCERS and _is_kernel(p.layer) and not p.extra
                and p.layer.attrs.get("activation") in (None, "linear") and readers[p.out] == 1
                and p.out not in outputs):
            p.extra = {"activation": step.layer.op}
            if step.layer.op == "leaky_relu":
                p.extra["alpha"] = step.layer.attrs.get("alpha", 0.2)
            p.out = step.out  # nothing between p and step reads p's old output (its only reader is step)
            continue
        fused.append(step)
    from .plan_chain import fuse_chains
    from .plan_concat import fuse_concats
    from .plan_sums import fuse_sums
    return fuse_chains(fuse_concats(fuse_sums(_pair_depthwise_pointwise(fused, outputs), outputs), outputs), outputs)


_CONV_ATTRS = {"stride", "padding", "dilation", "activation", "alpha"}
_CONV_WEIGHTS = {"kernel", "bias"}
_SEPARABLE_WEIGHTS = {"depthwise_kernel", "pointwise_kernel", "bias"}


def _unit(value) -> bool:
    return value in (1, (1, 1), [1, 1])


def _fusable_pair(d: Step, p: Step) -> bool:
    """d a multiplier-1 depthwise_conv2d, p a 1x1 conv2d (stride 1, no padding) reading only d's output."""
    dk, pk = d.layer.weights.get("kernel"), p.layer.weights.get("kernel")
    pa = {**p.layer.attrs, **p.extra}
    return (d.layer.op == "depthwise_conv2d" and p.layer.op == "conv2d" and _is_kernel(d.layer)
            and _is_kernel(p.layer) and dk is not None and pk is not None and np.ndim(dk) == 4
            and np.shape(dk)[3] == 1 and np.ndim(pk) == 4 and np.shape(pk)[:2] == (1, 1)
            and set(d.layer.weights) <= _CONV_WEIGHTS and set(p.layer.weights) <= _CONV_WEIGHTS
            and set(d.layer.attrs) | set(d.extra) <= _CONV_ATTRS and set(pa) <= _CONV_ATTRS
            and _unit(pa.get("stride", 1)) and _unit(pa.get("dilation", 1))
            and pa.get("padding", "valid") in ("valid", "same", (0, 0, 0, 0)))


@dataclass
class FusedStep(Step):
    """Two steps run as one kernel: ``first``, and this step's layer, the only reader of ``first``'s output.
    The result is bit-identical to the two steps. Runs them one after the other instead when the conv
    engine is not "simd" or either layer's ``fn`` is no longer the kernel named in ``kernels`` (a profiler
    timing each layer replaces them)."""
    first: Step | None = None
    kernels = ("", "")  # the nnlite.ops names of the first and the second layer's kernel

    def run(self, *xs: np.ndarray) -> np.ndarray:
        if not self.fusable():
            return Step.run(self, self.first(*xs))
        return self.fused(xs[0], {**self.first.layer.attrs, **self.first.extra}, {**self.layer.attrs, **self.extra})

    def fusable(self) -> bool:
        """The simd engine, and both layers' ``fn`` still the kernels of ``kernels``."""
        from . import ops
        one, two = (getattr(ops, name) for name in self.kernels)
        return self.first.layer.fn is one and self.layer.fn is two and ops.engine.simd()

    def prepare(self, *xs: np.ndarray):
        return None  # runs as it is (ConvPoolStep); PairStep prepares its fused kernel

    def fused(self, x: np.ndarray, first_attrs: dict, attrs: dict) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


class PairStep(FusedStep):
    """A depthwise_conv2d step and the 1x1 conv2d step that alone reads it
    (:func:`nnlite.ops.separable.depthwise_pointwise`: the depthwise output never goes to memory)."""
    kernels = ("depthwise_conv2d", "conv2d")

    def fused(self, x: np.ndarray, da: dict, pa: dict) -> np.ndarray:
        from .ops.separable import depthwise_pointwise
        args, kwargs = self._arguments(da, pa)
        return depthwise_pointwise(x, *args, **kwargs)

    def prepare(self, *xs: np.ndarray):
        if not self.fusable() or len(xs) != 1:
            return None
        from .ops.separable import prepare_depthwise_pointwise
        da, pa = {**self.first.layer.attrs, **self.first.extra}, {**self.layer.attrs, **self.extra}
        args, kwargs = self._arguments(da, pa)
        return prepare_depthwise_pointwise(xs[0], *args, **kwargs)

    def _arguments(self, da: dict, pa: dict) -> tuple[tuple, dict]:
        d, p = self.first.layer, self.layer
        return ((d.weights["kernel"], d.weights.get("bias"), p.weights["kernel"], p.weights.get("bias")),
                dict(stride=da.get("stride", 1), padding=da.get("padding", "valid"), dilation=da.get("dilation", 1),
                     depthwise_activation=da.get("activation"), depthwise_alpha=da.get("alpha", 0.2),
                     activation=pa.get("activation"), alpha=pa.get("alpha", 0.2)))


_POOL_ATTRS = {"pool_size", "stride", "padding"}


class ConvPoolStep(FusedStep):
    """A conv2d step and the max_pool2d step that alone reads it (:func:`nnlite.ops.convpool.conv2d_max_pool`:
    the conv output never goes to memory)."""
    kernels = ("conv2d", "max_pool2d")

    def fused(self, x: np.ndarray, ca: dict, pa: dict) -> np.ndarray:
        from .ops.convpool import conv2d_max_pool
        c = self.first.layer
        return conv2d_max_pool(x, c.weights["kernel"], c.weights.get("bias"), **ca, **_pool_arguments(pa))


class SeparablePoolStep(FusedStep):
    """A separable_conv2d step and the max_pool2d step that alone reads it
    (:func:`nnlite.ops.separable_pool.separable_max_pool`: the convolution's output never goes to memory)."""
    kernels = ("separable_conv2d", "max_pool2d")

    def fused(self, x: np.ndarray, sa: dict, pa: dict) -> np.ndarray:
        from .ops.separable_pool import separable_max_pool
        return separable_max_pool(x, **self.first.layer.weights, **sa, **_pool_arguments(pa))

    def prepare(self, *xs: np.ndarray):
        if not self.fusable() or len(xs) != 1:
            return None
        from .ops.separable_pool import prepare_separable_max_pool
        sa, pa = {**self.first.layer.attrs, **self.first.extra}, {**self.layer.attrs, **self.extra}
        return prepare_separable_max_pool(xs[0], **self.first.layer.weights, **sa, **_pool_arguments(pa))


def _pool_arguments(pa: dict) -> dict:
    return dict(pool_size=pa["pool_size"], pool_stride=pa.get("stride"), pool_padding=pa.get("padding", "valid"))


_POOLED = {"conv2d": ("kernel", _CONV_WEIGHTS), "separable_conv2d": ("depthwise_kernel", _SEPARABLE_WEIGHTS)}


def _fusable_conv_pool(c: Step, pool: Step) -> bool:
    """c a conv2d or separable_conv2d step, pool a max_pool2d step (without attribute overrides) reading only
    c's output."""
    kernel, weights = _POOLED.get(c.layer.op, ("", ()))
    return (type(c) is Step and kernel and pool.layer.op == "max_pool2d" and _is_kernel(c.layer)
            and _is_kernel(pool.layer) and np.ndim(c.layer.weights.get(kernel)) == 4
            and set(c.layer.weights) <= weights and set(c.layer.attrs) | set(c.extra) <= _CONV_ATTRS
            and "pool_size" in pool.layer.attrs and set(pool.layer.attrs) <= _POOL_ATTRS and not pool.extra)


@dataclass
class InvertedStep(Step):
    """A 1x1 conv2d step and the :class:`PairStep` that alone reads it: an inverted-residual block
    (:func:`nnlite.ops.inverted.inverted_residual`: the expanded map stays in L2 band by band). ``layer``,
    ``out`` and ``extra`` are the pair's; ``inputs`` the expanding conv's. ``residual``: the add step that
    alone reads the block's output and sums it with the block's input (its shortcut), then ``out`` is the
    add's. Runs the steps one after the other where the pair would (a profiler's wrapper, another engine) or
    the expansion or the add is not replaced."""
    expand: Step | None = None
    pair: PairStep | None = None
    residual: Step | None = None

    def run(self, *xs: np.ndarray) -> np.ndarray:
        if not self.fusable():
            y = self.pair(self.expand(*xs))
            if self.residual is None:
                return y
            values = {self.inputs[0]: xs[0], self.pair.out: y}
            return self.residual(*[values[src] for src in self.residual.inputs])
        from .ops.inverted import inverted_residual
        args, kwargs = self._arguments()
        return inverted_residual(xs[0], *args, **kwargs, residual=None if self.residual is None else xs[0])

    def fusable(self) -> bool:
        from . import ops
        return (self.expand.layer.fn is ops.conv2d and self.pair.first.layer.fn is ops.depthwise_conv2d
                and self.layer.fn is ops.conv2d and ops.engine.simd()
                and (self.residual is None or self.residual.layer.fn is ops.add))

    def prepare(self, *xs: np.ndarray):
        if not self.fusable() or len(xs) != 1:
            return None
        from .ops.inverted import prepare_inverted_residual
        x = xs[0]
        args, kwargs = self._arguments()
        block = prepare_inverted_residual(x, *args, **kwargs, shortcut=self.residual is not None)
        if block is None or self.residual is None:
            return block
        if block.out_shape != x.shape:  # the add would broadcast: not the fused shortcut
            return None

        def with_shortcut(x):  # the block's input added to its output
            return block(x, x)
        with_shortcut.out_shape = block.out_shape
        return with_shortcut

    def _arguments(self) -> tuple[tuple, dict]:
        e, d, p = self.expand.layer, self.pair.first.layer, self.layer
        ea, da, pa = ({**s.layer.attrs, **s.extra} for s in (self.expand, self.pair.first, self.pair))
        return ((e.weights["kernel"], e.weights.get("bias"), d.weights["kernel"], d.weights.get("bias"),
                 p.weights["kernel"], p.weights.get("bias")),
                dict(stride=da.get("stride", 1), padding=da.get("padding", "valid"), dilation=da.get("dilation", 1),
                     expand_activation=ea.get("activation"), expand_alpha=ea.get("alpha", 0.2),
                     depthwise_activation=da.get("activation"), depthwise_alpha=da.get("alpha", 0.2),
                     activation=pa.get("activation"), alpha=pa.get("alpha", 0.2)))


def _fusable_shortcut(a: Step, block: Step, readers: dict[str, int], outputs: Sequence[str]) -> bool:
    """a a plain two-input add (no activation) of an InvertedStep's input and its output, its only reader."""
    attrs = {**a.layer.attrs, **a.extra}
    return (isinstance(block, InvertedStep) and block.residual is None and type(a) is Step and a.layer.op == "add"
            and _is_kernel(a.layer) and not a.layer.weights and set(attrs) <= {"activation", "alpha"}
            and attrs.get("activation") in (None, "linear") and len(a.inputs) == 2
            and set(a.inputs) == {block.inputs[0], block.out} and block.inputs[0] != block.out
            and readers.get(block.out) == 1 and block.out not in outputs)


def _fusable_expand(e: Step) -> bool:
    """e a plain 1x1 conv2d step (stride and dilation 1, no padding): the expansion of an inverted residual."""
    k = e.layer.weights.get("kernel")
    ea = {**e.layer.attrs, **e.extra}
    return (type(e) is Step and e.layer.op == "conv2d" and _is_kernel(e.layer) and k is not None and np.ndim(k) == 4
            and np.shape(k)[:2] == (1, 1) and set(e.layer.weights) <= _CONV_WEIGHTS and set(ea) <= _CONV_ATTRS
            and _unit(ea.get("stride", 1)) and _unit(ea.get("dilation", 1))
            and ea.get("padding", "valid") in ("valid", "same", (0, 0, 0, 0)))


def _pair_depthwise_pointwise(steps: list[Step], outputs: Sequence[str]) -> list[Step]:
    readers = readers_of(steps)
    producer = {step.out: step for step in steps}
    paired: set[int] = set()
    out: list[Step] = []
    for step in steps:
        d = producer.get(step.inputs[0]) if len(step.inputs) == 1 else None
        if (d is not None and id(d) not in paired and readers.get(d.out) == 1 and d.out not in outputs
                and out and out[-1] is d):
            if _fusable_pair(d, step):
                pair = PairStep(step.layer, step.out, d.inputs, step.extra, first=d)
                paired.add(id(d))
                e = producer.get(d.inputs[0])
                if (len(out) >= 2 and out[-2] is e and readers.get(e.out) == 1 and e.out not in outputs
                        and _fusable_expand(e)):
                    out[-2:] = [InvertedStep(step.layer, step.out, e.inputs, step.extra, expand=e, pair=pair)]
                else:
                    out[-1] = pair
                continue
            if _fusable_conv_pool(d, step):
                pooled = ConvPoolStep if d.layer.op == "conv2d" else SeparablePoolStep
                out[-1] = pooled(step.layer, step.out, d.inputs, step.extra, first=d)
                paired.add(id(d))
                continue
        if out and _fusable_shortcut(step, out[-1], readers, outputs):
            out[-1].residual, out[-1].out = step, step.out
            continue
        out.append(step)
    return out
