"""Sums fused into the convolution that produces their last input (a step of :mod:`nnlite.plan`).

A residual add ``add(shortcut, y)`` reads two maps and writes one right after the separable convolution that
wrote y. A dense block (face-api.js's landmark and expression nets) sums every earlier output again before
each convolution: ``add(o0, o1)``, then ``add(o0, o1, o2)``, then ``add(o0, o1, o2, o3)``, 9 maps read and 3
written for the sums alone. :func:`fuse_sums` runs such adds inside the convolution's kernel (a separable
convolution's, a fused depthwise -> 1x1 pair's, or a convolution's on the tiled GEMM): each band or block of
its output, still in cache, becomes ``act(acc + y)`` (``accumulate`` of
:func:`nnlite.ops.separable.prepare_depthwise_pointwise` and :func:`nnlite.ops.conv.prepare_conv2d`), y itself
is never stored, and acc is the add's other input or, along a chain of adds
where each one's inputs are the previous one's plus one more, the previous sum, kept before its activation.
``add`` sums left to right, ``((o0 + o1) + o2) + o3``, so the running sums give the same bits (and
``a + b`` is ``b + a`` in floating point, so a two-input add may have y on either side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .plan import (
    _CONV_ATTRS,
    _CONV_WEIGHTS,
    _SEPARABLE_WEIGHTS,
    FUSABLE_ACTIVATIONS,
    PairStep,
    Step,
    _is_kernel,
    readers_of,
)


@dataclass
class SumStep(Step):
    """``add``'s output computed by ``producer``'s kernel as ``act(acc + y)``, y the producer's output (never
    stored). ``inputs``: the producer's inputs, then acc. ``total``: the name under which the sum before the
    activation is kept for the next add of a chain (the step then returns both, ``outs`` names them), or None.
    Runs the producer, then the add, where the fused kernel would not (another engine, a profiler's wrapper, a
    band kernel the layer does not take)."""
    producer: Step | None = None
    add: Step | None = None
    total: str | None = None

    def __post_init__(self):
        if self.total is not None:
            self.outs = (self.total, self.out)

    def run(self, *xs: np.ndarray):
        from . import ops
        *x, acc = xs
        y = self.producer(*x)
        attrs = {**self.add.layer.attrs, **self.add.extra}
        out = self.add.layer.fn(acc, y, **attrs)
        return out if self.total is None else (ops.add(acc, y), out)

    def fusable(self) -> bool:
        from . import ops
        p = self.producer
        return (self.add.layer.fn is ops.add and ops.engine.simd()
                and (p.fusable() if isinstance(p, PairStep) else p.layer.fn in (ops.separable_conv2d, ops.conv2d)))

    def prepare(self, *xs: np.ndarray):
        if not self.fusable() or len(xs) != 2:
            return None
        x, acc = xs
        attrs = {**self.add.layer.attrs, **self.add.extra}
        accumulate = (attrs.get("activation"), attrs.get("alpha", 0.2), self.total is not None)
        p = self.producer
        if isinstance(p, PairStep):
            from .ops.separable import prepare_depthwise_pointwise
            args, kwargs = p._arguments({**p.first.layer.attrs, **p.first.extra}, {**p.layer.attrs, **p.extra})
            call = prepare_depthwise_pointwise(x, *args, **kwargs, accumulate=accumulate)
        elif p.layer.op == "conv2d":
            from .ops.conv import prepare_conv2d
            call = prepare_conv2d(x, **p.layer.weights, **{**p.layer.attrs, **p.extra}, accumulate=accumulate)
        else:
            from .ops.separable import prepare_separable_conv2d
            call = prepare_separable_conv2d(x, **p.layer.weights, **{**p.layer.attrs, **p.extra},
                                            accumulate=accumulate)
        if call is None or acc.shape != call.out_shape or acc.dtype != np.float32 or not acc.flags.c_contiguous:
            return None
        return call


def _plain_add(s: Step) -> bool:
    attrs = {**s.layer.attrs, **s.extra}
    return (type(s) is Step and s.layer.op == "add" and _is_kernel(s.layer) and not s.layer.weights
            and s.layer.n_outputs == 1 and set(attrs) <= {"activation", "alpha"} and len(s.inputs) >= 2)


def _producer(p: Step | None, outputs: Sequence[str]) -> bool:
    """A separable_conv2d or conv2d kernel step, or a fused depthwise -> 1x1 pair: whose kernel can sum its
    output."""
    if p is None or p.out in outputs:
        return False
    if type(p) is PairStep:
        return True
    weights = {"separable_conv2d": _SEPARABLE_WEIGHTS, "conv2d": _CONV_WEIGHTS}.get(p.layer.op)
    return (type(p) is Step and weights is not None and _is_kernel(p.layer) and set(p.layer.weights) <= weights
            and set(p.layer.attrs) | set(p.extra) <= _CONV_ATTRS)


def fuse_sums(steps: list[Step], outputs: Sequence[str]) -> list[Step]:
    """The plan with chains of plain adds run as :class:`SumStep` s (see the module docstring). A chain is a
    two-input add, then the add whose inputs are its inputs and one more, and so on; each add's last input
    (for a lone two-input add, either) must come from a convolution step that nothing but the chain's adds
    reads, and each add must come after the one before it."""
    readers = readers_of(steps)
    made = {step.out: step for step in steps}
    where = {id(step): i for i, step in enumerate(steps)}
    adds = [s for s in steps if _plain_add(s)]
    by_inputs: dict[tuple, Step] = {}
    for a in adds:
        by_inputs.setdefault(a.inputs, a)
    child: dict[int, Step] = {}
    for a in adds:
        parent = by_inputs.get(a.inputs[:-1]) if len(a.inputs) >= 3 else None
        if parent is not None and id(parent) not in child and where[id(parent)] < where[id(a)]:
            child[id(parent)] = a
    new: dict[int, Step | None] = {}
    for a in adds:
        if len(a.inputs) != 2:
            continue
        chain = [a]
        while id(chain[-1]) in child:
            chain.append(child[id(chain[-1])])
        last = [add.inputs[-1] for add in chain]
        acc = a.inputs[0]
        if not all(_producer(made.get(y), outputs) and readers[y] == len(chain) - t for t, y in enumerate(last)):
            y, acc = a.inputs  # a lone add with the separable output first
            if not (_producer(made.get(y), outputs) and readers[y] == 1):
                continue
            chain, last = [a], [y]
        if any(id(made[y]) in new for y in last):
            continue
        for t, (add, y) in enumerate(zip(chain, last)):
            total = f"{add.out}:sum" if t < len(chain) - 1 else None
            new[id(made[y])] = None
            new[id(add)] = SumStep(add.layer, add.out, made[y].inputs + (acc,), add.extra, producer=made[y], add=add,
                                   total=total)
            acc = total
    return _activate_kept_sums([new.get(id(s), s) for s in steps if new.get(id(s), s) is not None])


def _activate_kept_sums(steps: list[Step]) -> list[Step]:
    """A residual stream's add is read by the next block's activation and by its add (Xception's blocks, the
    age and gender net's): the activation cannot fold into the add (two readers), so it ran over the sum again.
    A SumStep whose sum an activation step reads keeps the sum (``total``, under the add's name) and writes the
    activated sum too, in the same pass (the kernel's ``keep``), and the activation step goes."""
    made = {s.out: s for s in steps}
    gone: set[int] = set()
    for step in steps:
        s = made.get(step.inputs[0]) if len(step.inputs) == 1 else None
        attrs = {**s.add.layer.attrs, **s.add.extra} if isinstance(s, SumStep) else {}
        if (isinstance(s, SumStep) and s.total is None and attrs.get("activation") in (None, "linear")
                and type(step) is Step and step.layer.op in FUSABLE_ACTIVATIONS and _is_kernel(step.layer)
                and not step.extra and not step.layer.weights):
            s.add.extra = {**s.add.extra, "activation": step.layer.op}
            if step.layer.op == "leaky_relu":
                s.add.extra["alpha"] = step.layer.attrs.get("alpha", 0.2)
            s.total, s.out = s.out, step.out
            s.__post_init__()
            gone.add(id(step))
    return [s for s in steps if id(s) not in gone]
