"""Replays: a model's plan run again on inputs like the last ones, calling its prepared calls directly.

At each call a plan step checks that its prepared call (:mod:`nnlite.prepared`) still fits: the layers'
revision, the thread count, the conv engine, then its inputs' shapes and form. In a model of small layers
those checks and the step's own call are a good part of the Python time of a run. Yet all but the inputs'
checks have one answer for every step of a run, and a prepared call's outputs have the same shapes and form
whenever its inputs do. So while a plan runs, a :class:`Recorder` notes for each step the prepared call
it used, where that call's inputs were the model's own or came from such calls (*trusted*), and the step
itself otherwise (a step with no prepared form, or after one whose outputs may vary: a Python layer,
detections). :meth:`nnlite.graph.Model.forward` keeps these calls per :func:`signature` of the model's
inputs, and the next run with the same signature calls them as they are: the same kernels on the same
arguments, so the same bits. Anything that would make a step prepare again changes the signature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .layer import revision
from .ops import engine, parallel

MAX_SIGNATURES = 4  # per model: a detector fed images of a few sizes keeps a replay for each


def signature(feed: Mapping[str, np.ndarray]) -> tuple:
    """What a replay is valid for: the layers' revision, the thread count, the conv engine, and each input's
    name, shape, dtype and layout."""
    return (revision(), parallel.numba_threads(), engine.simd(),
            *[(name, x.shape, x.dtype, x.flags.c_contiguous) for name, x in feed.items()])


class Recorder:
    """Notes, step by step, what a replay calls for it (see the module docstring)."""

    def __init__(self, feed: Mapping[str, np.ndarray]):
        self.trusted = set(feed)
        self.calls: list[Callable] = []

    def note(self, step, xs: list[np.ndarray]) -> None:
        """``step`` has just run on ``xs``."""
        p = step.prepared
        if p is not None and all(src in self.trusted for src in step.inputs) and p.fits(xs):
            self.calls.append(p.call)
            if step.outs is not None or step.layer.n_outputs == 1:
                self.trusted.update(step.outs if step.outs is not None else (step.out,))
        else:
            self.calls.append(step)


def keep(replays: dict, key: tuple, calls: list[Callable]) -> None:
    """Store ``calls`` under ``key``, first dropping replays that can no longer be valid (another revision,
    thread count or engine) and, past :data:`MAX_SIGNATURES`, all of them."""
    for old in [k for k in list(replays) if k[:3] != key[:3]]:
        replays.pop(old, None)  # (another thread running the model may have dropped it already)
    if len(replays) >= MAX_SIGNATURES:
        replays.clear()
    replays[key] = calls
