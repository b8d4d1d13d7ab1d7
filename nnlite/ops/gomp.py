"""The parallel drivers' fan-out through libgomp's ``GOMP_parallel`` directly, where Numba runs on libgomp.

:mod:`nnlite.ops.drivers` starts every parallel region through one compiled function, ``fan_out(piece,
block, total, pieces)``: run ``piece(block, start, stop)`` on ``pieces`` ranges covering [0, total) on
Numba's threads and return how many raised. Numba's ``prange`` version schedules its loop through its
threading layer's generic ``parallel_for`` (a schedule array, a gufunc call per thread, the layer's
bookkeeping), which costs a few microseconds per region, a measurable share of a model of a few hundred
small layers. Where that layer is OpenMP on GNU libgomp, this module makes the same function from a few
lines of LLVM IR that hand a worker straight to ``GOMP_parallel``: each thread of the team takes the
pieces ``thread, thread + team, ...`` (a team smaller than asked for, nested inside another region say,
still runs every piece), and the caller's thread is one of them, as with ``prange``. The pieces, their
ranges and so the bits are the same either way.

libgomp's entry points are looked up through Numba's own OpenMP module (so they are those of the libgomp
its layer is linked with, whatever other OpenMP runtimes the process holds) and handed to the compiled
fan-out at each call, in a small array: so the fan-out is an ordinary cached Numba function (a warm start
loads it; it never brings LLVM's compiler in). Anywhere else (Numba's TBB or workqueue layer, an OpenMP
layer built on another vendor's runtime) :func:`entry_points` is None and the drivers keep ``prange``.
In a child forked after the parent ran a region, libgomp's threads do not exist: the drivers go back to
``prange`` there (:mod:`nnlite.ops.drivers`), whose layer reports the unsafe fork and stops the child
instead of waiting for them.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .jit import locked

_state: dict = {}
_lock = threading.Lock()
_I32, _I64 = ir.IntType(32), ir.IntType(64)
_I8P = ir.IntType(8).as_pointer()
# the block a region's threads share: piece, block, total, pieces, failed, omp_get_thread_num, omp_get_num_threads
_BLOCK = ir.LiteralStructType([_I64] * 7)


def entry_points() -> np.ndarray | None:
    """[GOMP_parallel, omp_get_thread_num, omp_get_num_threads, most threads]: the first three's addresses in
    the process's libgomp, and Numba's launch-time thread count, which caps a region's team (more pieces than
    that run several to a thread, as ``prange`` runs them), for :func:`fan_out`'s ``points`` (keep the array
    alive while it is used); None where the fan-out must not be used (see the module docstring). Call after
    Numba's threading layer has started."""
    with _lock:
        if "points" not in _state:
            _state["points"] = _find_entry_points()
        return _state["points"]


def _find_entry_points() -> np.ndarray | None:
    import numba
    try:
        if numba.threading_layer() != "omp":
            return None
        from numba.np.ufunc import omppool
    except (ValueError, ImportError):  # no layer started yet, or none built
        return None
    if getattr(omppool, "openmp_vendor", None) != "GNU":
        return None
    try:  # symbols looked up through Numba's own OpenMP module: the libgomp it is linked with
        lib = ctypes.CDLL(omppool.__file__)
        names = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")
        found = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in names]
    except (OSError, AttributeError):
        return None
    return np.array([*found, max(1, numba.config.NUMBA_NUM_THREADS)], np.int64)


def _field(builder, block, k):
    return builder.gep(block, [ir.Constant(_I32, 0), ir.Constant(_I32, k)])


def _worker(module: ir.Module) -> ir.Function:
    """``void worker(i8* block)``: this thread's pieces, ``thread, thread + team, ...``; adds how many
    raised to the block's count. One per module."""
    existing = module.globals.get("nnlite_gomp_worker")
    if existing is not None:
        return existing
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [_I8P]), name="nnlite_gomp_worker")
    fn.linkage = "linkonce_odr"
    entry, head, body, done = (fn.append_basic_block(n) for n in ("entry", "head", "body", "done"))
    b = ir.IRBuilder(entry)
    block = b.bitcast(fn.args[0], _BLOCK.as_pointer())
    piece, shared, total, pieces, _, thread_num, num_threads = (b.load(_field(b, block, k)) for k in range(7))
    omp_fn = ir.FunctionType(_I32, []).as_pointer()
    me = b.sext(b.call(b.inttoptr(thread_num, omp_fn), []), _I64)
    team = b.sext(b.call(b.inttoptr(num_threads, omp_fn), []), _I64)
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(_I64)
    i.add_incoming(me, entry)
    b.cbranch(b.icmp_signed("<", i, pieces), body, done)
    b.position_at_end(body)
    start = b.sdiv(b.mul(total, i), pieces)
    stop = b.sdiv(b.mul(total, b.add(i, ir.Constant(_I64, 1))), pieces)
    piece_fn = ir.FunctionType(_I64, [_I8P, _I64, _I64]).as_pointer()
    failed = b.call(b.inttoptr(piece, piece_fn), [b.inttoptr(shared, _I8P), start, stop])
    b.atomic_rmw("add", _field(b, block, 4), failed, "monotonic")
    i.add_incoming(b.add(i, team), body)
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()
    return fn


@intrinsic
def _region(typingctx, piece, block, total, pieces, points):
    """GOMP_parallel(worker, {piece, block, total, pieces, ...}, min(pieces, most threads), 0) with libgomp's
    entry points at address ``points`` (:func:`entry_points`); how many pieces raised."""
    def codegen(context, builder, sig, llargs):
        worker = _worker(builder.module)
        entry = builder.inttoptr(llargs[4], _I64.as_pointer())
        gomp_parallel, thread_num, num_threads, most = (builder.load(builder.gep(entry, [ir.Constant(_I64, k)]))
                                                        for k in range(4))
        team = builder.select(builder.icmp_signed("<", llargs[3], most), llargs[3], most)
        shared = builder.alloca(_BLOCK)
        for k, value in enumerate((*llargs[:4], ir.Constant(_I64, 0), thread_num, num_threads)):
            builder.store(value, _field(builder, shared, k))
        parallel_fn = ir.FunctionType(ir.VoidType(), [worker.type, _I8P, _I32, _I32]).as_pointer()
        builder.call(builder.inttoptr(gomp_parallel, parallel_fn),
                     [worker, builder.bitcast(shared, _I8P), builder.trunc(team, _I32), ir.Constant(_I32, 0)])
        return builder.load(_field(builder, shared, 4))
    return types.int64(types.int64, types.int64, types.int64, types.int64, types.int64), codegen


@locked
@njit(cache=True, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def fan_out(piece, block, total, pieces, points):
    # the drivers' fan-out on libgomp: how many pieces raised
    return _region(piece, block, total, pieces, points)
