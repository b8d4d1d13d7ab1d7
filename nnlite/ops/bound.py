"""Calls from one compiled kernel to another through the callee's address, so the caller does not link it in.

Numba links a callee's code into its caller and optimises and compiles the linked module again, so a big
callee (the GEMM panel with its register tiles, the SIMD depthwise rows) was compiled once more inside
every kernel that calls it. A kernel that takes the callee's address as an argument and calls
``bound.call(address, "name", (args...))`` links nothing; the callee is compiled once.

Each callee is declared once here with the exact Numba types of its arguments (:func:`declare`); the call
fails to compile if the arguments at a call site have other types, and :func:`address` compiles the callee
for those declared types, so the code at the address always matches the call. The callee must return None;
an exception it raises propagates to the caller as from a direct call.
"""

from __future__ import annotations

import functools

from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

_DECLARED: dict[str, tuple] = {}  # name -> (dispatcher, argument types)


def declare(name: str, dispatcher, argtypes) -> None:
    """Let kernels call ``dispatcher`` as ``name`` with arguments of exactly ``argtypes``."""
    _DECLARED[name] = (dispatcher, tuple(argtypes))


@functools.cache
def address(name: str) -> int:
    """The machine-code address of the declared callee ``name`` (compiled, or loaded from the cache, now)."""
    dispatcher, argtypes = _DECLARED[name]
    dispatcher.compile(argtypes)
    cres = dispatcher.overloads[argtypes]
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


@intrinsic
def call(typingctx, where, name, args):
    """name(*args) through ``where``, the :func:`address` of ``name`` (a string constant)."""
    if not isinstance(name, types.StringLiteral) or not isinstance(args, types.BaseTuple):
        return None
    if name.literal_value not in _DECLARED:
        raise TypingError(f"bound.call: {name.literal_value!r} is not declared")
    argtypes = _DECLARED[name.literal_value][1]
    if tuple(types.unliteral(t) for t in args.types) != argtypes:  # a literal 0 is an int64 0
        raise TypingError(f"bound.call {name.literal_value}: arguments {args.types} are not the declared {argtypes}")

    def codegen(context, builder, sig, llargs):
        values = [context.cast(builder, builder.extract_value(llargs[2], i), args.types[i], argtypes[i])
                  for i in range(len(argtypes))]
        fnty = context.call_conv.get_function_type(types.none, argtypes)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        status, _ = context.call_conv.call_function(builder, fn, types.none, argtypes, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()
    return types.void(types.int64, name, args), codegen
