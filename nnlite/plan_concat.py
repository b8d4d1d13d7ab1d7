"""Channel concatenations written in place by the convolutions producing their inputs (a step of :mod:`nnlite.plan`).

SqueezeNet's fire modules end with ``concat(expand1x1(s), expand3x3(s))``: two convolutions write their maps,
then the concat reads both and writes a third, twice their size. By then the first map has left L2 (the
second convolution ran in between), so the copy goes through L3 and memory: in the model, 1.6 MB took 130 us,
against 50 us with its inputs in cache. :func:`fuse_concats` has each convolution write its output straight
into its channels of the concat's output instead (``into=`` of :func:`nnlite.ops.conv.prepare_conv2d`: the
tiles store each output row ``channels`` values apart), so the concat copies nothing. The values are the
convolutions' own, so the output is the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .ops import buffers
from .plan import _CONV_ATTRS, _CONV_WEIGHTS, Step, _is_kernel, readers_of


@dataclass
class ConcatStep(Step):
    """A concat along channels whose every input is a convolution ``parts`` that nothing else reads: the
    parts write into the concat's output (see the module docstring). ``inputs``: the parts' inputs, each
    named once. Runs the parts, then the concat, where that would not happen (another engine, a profiler's
    wrapper, an input or kernel the tiles do not take as it is)."""
    parts: tuple[Step, ...] = ()

    def run(self, *xs: np.ndarray) -> np.ndarray:
        values = dict(zip(self.inputs, xs))
        return Step.run(self, *[p(*[values[src] for src in p.inputs]) for p in self.parts])

    def prepare(self, *xs: np.ndarray):
        from . import ops
        from .ops.conv import prepare_conv2d
        if (self.layer.fn is not ops.concat or any(p.layer.fn is not ops.conv2d for p in self.parts)
                or self.layer.attrs.get("axis", -1) not in (-1, 3)):
            return None
        where = {name: i for i, name in enumerate(self.inputs)}
        widths = [np.shape(p.layer.weights["kernel"])[-1] for p in self.parts]
        channels = sum(widths)
        calls = []
        for p, offset in zip(self.parts, np.cumsum([0, *widths[:-1]])):
            call = prepare_conv2d(xs[where[p.inputs[0]]], **p.layer.weights, **{**p.layer.attrs, **p.extra},
                                  into=(channels, int(offset)))
            if call is None:
                return None
            calls.append((call, where[p.inputs[0]]))
        shape = calls[0][0].out_shape[:3]
        if any(call.out_shape[:3] != shape for call, _ in calls):
            return None  # the concat raises its error
        out_shape = (*shape, channels)

        def concatenated(*xs):
            y = buffers.empty(out_shape)
            for call, i in calls:
                call(xs[i], y)
            return y
        concatenated.out_shape = out_shape
        return concatenated


def _conv(p: Step | None) -> bool:
    """A plain conv2d kernel step on one input."""
    return (type(p) is Step and p.layer.op == "conv2d" and _is_kernel(p.layer) and len(p.inputs) == 1
            and set(p.layer.weights) <= _CONV_WEIGHTS and "kernel" in p.layer.weights
            and np.ndim(p.layer.weights["kernel"]) == 4 and set(p.layer.attrs) | set(p.extra) <= _CONV_ATTRS)


def fuse_concats(steps: list[Step], outputs: Sequence[str]) -> list[Step]:
    """The plan with each concat (along the last axis) of two or more convolution steps that only it reads run
    as one :class:`ConcatStep`, where the concat was: the convolutions move there (their inputs were made
    earlier, and nothing else waits for their outputs)."""
    readers = readers_of(steps)
    made = {step.out: step for step in steps}
    moved: set[int] = set()
    new: dict[int, Step] = {}
    for s in steps:
        if not (type(s) is Step and s.layer.op == "concat" and _is_kernel(s.layer) and not s.layer.weights
                and not s.extra and set(s.layer.attrs) <= {"axis"} and s.layer.attrs.get("axis", -1) in (-1, 3)
                and len(s.inputs) >= 2):
            continue
        parts = [made.get(src) for src in s.inputs]
        if not all(_conv(p) and readers[p.out] == 1 and p.out not in outputs and id(p) not in moved for p in parts):
            continue
        inputs = tuple(dict.fromkeys(p.inputs[0] for p in parts))
        new[id(s)] = ConcatStep(s.layer, s.out, inputs, parts=tuple(parts))
        moved.update(id(p) for p in parts)
    return [new.get(id(s), s) for s in steps if id(s) not in moved]
