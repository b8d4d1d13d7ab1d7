"""Two depthwise -> 1x1 pairs in a row whose first 1x1 conv widens the map (a step of :mod:`nnlite.plan`).

MobileNetV1's layers (SSD's backbone) are such pairs one after another: depthwise, 1x1 conv, depthwise, 1x1
conv. As two :class:`nnlite.plan.PairStep` calls, the first pair's 1x1 conv writes its whole map and the second
pair reads it back; where it widens the channels of a large map (SSD at 512x512: 256x256x32 -> 64, 16 MB),
that map has left the caches by the time it is read. Regrouped as the first depthwise alone, then an
inverted-residual block (the first 1x1 conv, the second depthwise and 1x1 conv: :mod:`nnlite.ops.inverted`
keeps the widened rows in L2, band by band), the map written is the depthwise's, of the narrower input width.

Whether to regroup depends on the map's size, known only when the step is prepared for an input shape:
:func:`worth_regrouping` says yes when the widened map exceeds a quarter of the last-level cache and the
block runs as its banded kernel. The same arithmetic in the same order either way: the same bits.
benchmarks/RESULTS.md (round 13) has the measurements: faster on the 16 MB case above, the same or a little
slower on maps of 2-4 MB, hence the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .plan import InvertedStep, PairStep, Step, _fusable_expand, readers_of


@dataclass
class ChainStep(Step):
    """``first`` then ``second``, two PairSteps where the second alone reads the first's output: as they are,
    or regrouped (see the module docstring). ``layer``, ``out`` and ``extra`` are the second's, ``inputs``
    the first's. ``block``: the regrouped form's inverted-residual step."""
    first: PairStep | None = None
    second: PairStep | None = None
    block: InvertedStep | None = None

    def run(self, *xs: np.ndarray) -> np.ndarray:
        return self.second(self.first(*xs))

    def prepare(self, *xs: np.ndarray):
        from .ops.prepare import chain, like
        if len(xs) != 1:
            return None
        head = self.first.prepare(*xs)
        if head is None:
            return None
        if worth_regrouping(head.out_shape, self.block):
            depthwise = self.first.first.prepare(*xs)
            regrouped = depthwise and chain(depthwise, self.block.prepare(like(depthwise)))
            if regrouped is not None:
                return regrouped
        return chain(head, self.second.prepare(like(head)))


def worth_regrouping(widened_shape: tuple, block: InvertedStep) -> bool:
    """True when the first pair's output (``widened_shape``) is over a quarter of the last-level cache and
    ``block`` would run as the banded kernel on the first depthwise's output (not its layers one by one)."""
    from .ops import inverted, machine
    caches = machine.caches()
    if 4 * int(np.prod(widened_shape)) <= (caches.l3 or caches.l2) // 4:
        return False
    expand, depthwise, pointwise = (s.layer.weights["kernel"] for s in (block.expand, block.pair.first, block))
    attrs = {**block.pair.first.layer.attrs, **block.pair.first.extra}
    n, h, w, _ = widened_shape
    return inverted.fused((n, h, w, np.shape(expand)[2]), np.shape(expand), np.shape(depthwise), np.shape(pointwise),
                          attrs.get("stride", 1), attrs.get("padding", "valid"), attrs.get("dilation", 1))


def fuse_chains(steps: list[Step], outputs: Sequence[str]) -> list[Step]:
    """Each PairStep whose 1x1 conv widens the map and whose output only the PairStep right after it reads,
    with that one, as a :class:`ChainStep`."""
    readers = readers_of(steps)
    out: list[Step] = []
    for step in steps:
        prev = out[-1] if out else None
        if (type(step) is PairStep and type(prev) is PairStep and step.inputs == (prev.out,)
                and readers.get(prev.out) == 1 and prev.out not in outputs and _widens(prev)):
            expand = Step(prev.layer, prev.out, (prev.first.out,), prev.extra)
            if _fusable_expand(expand):
                block = InvertedStep(step.layer, step.out, expand.inputs, step.extra, expand=expand, pair=step)
                out[-1] = ChainStep(step.layer, step.out, prev.inputs, step.extra, first=prev, second=step,
                                    block=block)
                continue
        out.append(step)
    return out


def _widens(pair: PairStep) -> bool:
    kernel = np.shape(pair.layer.weights["kernel"])
    return kernel[3] > kernel[2]
