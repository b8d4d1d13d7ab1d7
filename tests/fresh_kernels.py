"""Kernels compiled afresh in a test: with their module's globals as the test has set them (monkeypatched
constants such as ``panels.HALVES``), not the disk cache's copy, and callable by address as nnlite's kernels
call each other (:mod:`nnlite.ops.bound`)."""

from __future__ import annotations

import numba

from nnlite.ops import bound


def fresh(fn):
    """``fn`` (a Numba dispatcher) compiled now, with the same options except the disk cache."""
    options = {k: v for k, v in fn.targetoptions.items() if k != "cache"}
    return numba.njit(**options)(fn.py_func)


def fresh_address(name: str, fn, argtypes: tuple) -> int:
    """Where kernels call :func:`fresh` ``fn``, declared in :mod:`nnlite.ops.bound` as ``name`` for ``argtypes``."""
    bound.declare(name, fresh(fn), argtypes)
    return bound.address(name)
