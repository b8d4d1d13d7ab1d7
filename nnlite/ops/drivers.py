"""One parallel loop for every kernel: it calls the kernel by its machine-code address.

A kernel works on a range of units (output rows, channel panels): ``kernel(*args, start, stop)``. To run it
on Numba's threads, :func:`driver` gives a callable with the convention of :func:`nnlite.ops.parallel.split`,
``drive(*args, total, pieces)``, that splits [0, total) into ``pieces`` contiguous ranges in a ``prange``.

Why not a ``parallel=True`` twin of each kernel, calling it directly: Numba links a callee's code into its
caller, and optimises and compiles the whole linked module again for every caller. A direct driver
(and the parfor function Numba makes from its loop body) recompiled the kernel with all the tiles it calls,
twice, which was most of a model's first-run compile time. Here there is one ``parallel=True`` function,
:func:`_fan_out`, compiled once: its loop calls a small "piece" function by address with a pointer to a block
holding the kernel's address and arguments. Each kernel has a serial entry, a specialisation of :func:`_run`
for its argument types, that stores the block on its stack, makes the piece function (a few lines of LLVM IR
that unpack the block and call the kernel by address) and calls the fan-out by address. Nothing is
linked, so the kernel is compiled once, as for a serial call, and each entry is small.

Two fan-outs, one chosen per process at the first launch (:func:`_choose_fan_out`): where Numba's
threading layer is GNU OpenMP, :func:`nnlite.ops.gomp.fan_out` hands the pieces to libgomp's
``GOMP_parallel`` directly, a few microseconds less per region than Numba's ``prange`` scheduling (measured
in benchmarks/RESULTS.md, round 11); anywhere else, and in a child forked after the choice, :func:`_fan_out`.
Same pieces, same ranges, the same bits (tested both ways).

Safety: the pointer is the kernel's compiled code for exact argument types. The entry is specialised on
the types of the arguments it receives and carries a key of those types, computed when it is compiled;
the caller passes the key of the types the pointer was compiled for, and on a mismatch the entry runs
nothing and the caller binds the right specialisation (:meth:`Driver._bind`) and calls again. A piece
whose kernel raised (Numba's own checks, e.g. an integer division by zero) makes the caller run the kernel
serially, which raises the same error with its message.
"""

from __future__ import annotations

import hashlib
import os
import threading

import numba
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.ufunc import parallel as _numba_parallel

from ..errors import ModelError
from ..limits import env_switch
from . import gomp
from .jit import locked

_RANGE = (types.int64, types.int64)  # the kernel's last two parameters: start, stop


def type_key(argtypes) -> int:
    """A 63-bit key of a tuple of Numba types, the same in every process (their text, hashed)."""
    digest = hashlib.blake2b(repr(tuple(argtypes)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@intrinsic
def _key_of(typingctx, args):
    """The :func:`type_key` of the kernel signature ``args`` + (start, stop), as a constant."""
    key = type_key(tuple(args.types) + _RANGE)

    def codegen(context, builder, sig, llargs):
        return ir.Constant(ir.IntType(64), key)
    return types.int64(args), codegen


def _piece_function(context, module, args, block_type, name):
    """``i64 name(i8* block, i64 start, i64 stop)``: load (kernel address, args) from ``block`` and call the
    kernel on (*args, start, stop); returns 1 if it raised, else 0. One per kernel signature in a module."""
    i64 = ir.IntType(64)
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    fn = ir.Function(module, ir.FunctionType(i64, [ir.IntType(8).as_pointer(), i64, i64]), name=name)
    fn.linkage = "linkonce_odr"
    fn.attributes.add("noinline")   # a few loads and a call: not worth LLVM's passes (as Python wrappers, ops.jit)
    fn.attributes.add("optnone")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    block = builder.bitcast(fn.args[0], block_type.as_pointer())
    zero = ir.Constant(ir.IntType(32), 0)
    address = builder.load(builder.gep(block, [zero, zero]))
    packed = builder.load(builder.gep(block, [zero, ir.Constant(ir.IntType(32), 1)]))
    values = [builder.extract_value(packed, i) for i in range(len(args.types))] + [fn.args[1], fn.args[2]]
    argtypes = tuple(args.types) + _RANGE
    fnty = context.call_conv.get_function_type(types.none, argtypes)
    status, _ = context.call_conv.call_function(builder, builder.inttoptr(address, fnty.as_pointer()), types.none,
                                                argtypes, values)
    builder.ret(builder.zext(status.is_error, i64))
    return fn


@intrinsic
def _block(typingctx, address, args):
    """(block, piece): the address of a stack block holding (kernel address, args), and of the function that
    runs the kernel on a range from such a block (:func:`_piece_function`). The block lives until the
    calling function returns."""
    name = f"nnlite_piece_{type_key(tuple(args.types) + _RANGE):016x}"

    def codegen(context, builder, sig, llargs):
        i64 = ir.IntType(64)
        block_type = ir.LiteralStructType([i64, context.get_value_type(args)])
        slot = cgutils.alloca_once(builder, block_type)
        zero = ir.Constant(ir.IntType(32), 0)
        builder.store(llargs[0], builder.gep(slot, [zero, zero]))
        builder.store(llargs[1], builder.gep(slot, [zero, ir.Constant(ir.IntType(32), 1)]))
        piece = _piece_function(context, builder.module, args, block_type, name)
        return context.make_tuple(builder, sig.return_type, [builder.ptrtoint(slot, i64), builder.ptrtoint(piece, i64)])
    return types.UniTuple(types.int64, 2)(address, args), codegen


@intrinsic
def _call_piece(typingctx, piece, block, start, stop):
    """piece(block, start, stop) for a function made by :func:`_piece_function`: 1 if the kernel raised."""
    def codegen(context, builder, sig, llargs):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [ir.IntType(8).as_pointer(), i64, i64])
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        return builder.call(fn, [builder.inttoptr(llargs[1], ir.IntType(8).as_pointer()),
                                 context.cast(builder, llargs[2], sig.args[2], types.int64),
                                 context.cast(builder, llargs[3], sig.args[3], types.int64)])
    return types.int64(piece, block, start, stop), codegen


@locked
@njit(cache=True, nogil=True, parallel=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _fan_out(piece, block, total, pieces, points):
    # the one parallel loop, compiled once: piece i runs units [total*i/pieces, total*(i+1)/pieces); returns
    # how many pieces raised (``points``: unused, the other fan-out's, gomp.fan_out)
    failed = 0
    for i in prange(pieces):
        failed += _call_piece(piece, block, total * i // pieces, total * (i + 1) // pieces)
    return failed


_FAN_OUT_TYPES = (types.int64,) * 5
# the fan-out in use: (address, points), chosen at the first bind (Driver._bind); points: the address of
# gomp.entry_points()'s array for gomp.fan_out, 0 for _fan_out. (0, 0): not chosen yet (_run runs nothing)
_fan_out_at = [(0, 0)]
_forked = [False]  # this process is a child forked after the fan-out was chosen


def _choose_fan_out() -> tuple[int, int]:
    """The fan-out: libgomp's directly where Numba runs on it (:mod:`nnlite.ops.gomp`; not when
    ``NNLITE_GOMP_FAN_OUT=0``, nor in a forked child), else :func:`_fan_out`. Starts Numba's threading layer
    if needed."""
    launch_threads = getattr(_numba_parallel, "_launch_threads", None)
    if env_switch("NNLITE_GOMP_FAN_OUT") and launch_threads is not None and not _forked[0]:
        launch_threads()
        points = gomp.entry_points()
        if points is not None:
            return _native_address(gomp.fan_out, _FAN_OUT_TYPES), points.ctypes.data
    return _native_address(_fan_out, _FAN_OUT_TYPES), 0


def _prange_after_fork() -> None:
    # libgomp's threads are the parent's: a child chooses again, Numba's layer, which stops it with a message
    if _fan_out_at[0][1]:
        _fan_out_at[0] = (0, 0)
        _forked[0] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_prange_after_fork)


@intrinsic
def _call_fan_out(typingctx, where, piece, block, total, pieces, points):
    """fan_out(piece, block, total, pieces, points) at address ``where``: called, not linked into each caller."""
    def codegen(context, builder, sig, llargs):
        fnty = context.call_conv.get_function_type(types.int64, _FAN_OUT_TYPES)
        values = [context.cast(builder, v, t, types.int64) for v, t in zip(llargs[1:], sig.args[1:])]
        status, failed = context.call_conv.call_function(builder, builder.inttoptr(llargs[0], fnty.as_pointer()),
                                                         types.int64, _FAN_OUT_TYPES, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return failed
    return types.int64(where, piece, block, total, pieces, points), codegen


@locked
@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _run(address, key, args, total, pieces, fan_out, points):
    # -1 when ``key`` is not this specialisation's, or pieces > 1 and no fan-out is chosen (nothing ran); else
    # how many pieces raised. One piece runs on the calling thread, without a parallel region.
    if key != _key_of(args):
        return -1
    block, piece = _block(address, args)
    if pieces == 1:
        return _call_piece(piece, block, 0, total)
    if fan_out == 0:
        return -1
    return _call_fan_out(fan_out, piece, block, total, pieces, points)


def _native_address(dispatcher, argtypes) -> int:
    """The address of ``dispatcher``'s code for ``argtypes`` (compiled, or loaded from the cache, now)."""
    dispatcher.compile(argtypes)
    cres = dispatcher.overloads[argtypes]
    if dispatcher not in (_fan_out, gomp.fan_out) and cres.signature.return_type != types.none:
        raise ModelError(f"{dispatcher.py_func.__name__}: a driven kernel must return None")
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


class Driver:
    """``drive(*args, total, pieces)``: ``kernel(*args, a, b)`` on ``pieces`` ranges covering [0, total) on
    Numba's threads (one piece: on the calling thread). The kernel must be a ``@njit`` function returning
    None; it needs no Python wrapper (:data:`nnlite.ops.jit.driven`)."""

    def __init__(self, kernel):
        self.kernel = kernel
        self._bound = (0, -2)  # (address, key) of the last specialisation used
        self._by_key: dict[int, int] = {}
        self._lock = threading.Lock()
        self._twin = None
        # without Numba's Python wrapper (nnlite.ops.jit.driven): Python reaches it only through _run
        self._bare = bool(getattr(kernel, "targetoptions", {}).get("no_cpython_wrapper"))

    def __call__(self, *call):
        self.run(call[:-2], call[-2], call[-1])

    def run(self, args: tuple, total: int, pieces: int) -> None:
        """``drive(*args, total, pieces)`` with the kernel's arguments as one tuple."""
        address, key = self._bound
        failed = _run(address, key, args, total, pieces, *_fan_out_at[0])
        if failed < 0:
            address, key = self._bind(args, pieces > 1)
            failed = _run(address, key, args, total, pieces, *_fan_out_at[0])
        if failed:  # run it on this thread, where its error surfaces with its message
            self.callable()(*args, 0, total)

    def serial(self, args: tuple, total: int) -> None:
        """``kernel(*args, 0, total)`` on this thread: a direct call where the kernel has Numba's Python
        wrapper (no entry to compile for its types), else one piece through :meth:`run`."""
        if self._bare:
            self.run(args, total, 1)
        else:
            self.kernel(*args, 0, total)

    def callable(self):
        """The kernel, callable from Python: itself where it has Numba's Python wrapper, else a twin compiled
        with one on first need (only after a piece raised), and not cached: the kernel's cache holds its
        wrapper-less code under the same signatures."""
        if not self._bare:
            return self.kernel
        with self._lock:
            if self._twin is None:
                self._twin = numba.njit(nogil=True)(self.kernel.py_func)
            return self._twin

    def _bind(self, args, parallel: bool = True) -> tuple[int, int]:
        """The address and key of the kernel compiled for these arguments (compiled now if needed); for a
        parallel call, the fan-out chosen first if it is not yet."""
        argtypes = tuple(numba.typeof(a) for a in args) + _RANGE
        key = type_key(argtypes)
        with self._lock:
            if parallel and not _fan_out_at[0][0]:
                _fan_out_at[0] = _choose_fan_out()
            address = self._by_key.get(key)
            if address is None:
                address = _native_address(self.kernel, argtypes)
                self._by_key[key] = address
            self._bound = (address, key)
        return address, key


def driver(kernel) -> Driver:
    """The parallel driver of ``kernel`` (see :class:`Driver`)."""
    return Driver(kernel)
