"""How nnlite compiles its Numba functions: :data:`kernel` for those Python calls, :data:`helper` for those
only other compiled functions call.

Both cache their machine code on disk (``cache=True``) and release the GIL. Neither gets Numba's C-callable
wrapper (nothing calls them through C: the parallel drivers of :mod:`nnlite.ops.drivers` call a kernel's
own entry point), and a helper gets no Python wrapper either. Wrappers are code that LLVM optimises and
compiles again in every module that links the function in, which made them a measurable part of the
first run's compile time (benchmarks/RESULTS.md).

:data:`inlined` is a helper that LLVM always inlines into its callers: for a small tile called once per few
dozen instructions with many arguments, where a call would cost a measurable part of the work. Unlike
Numba's own ``inline="always"`` (which copies the function into each caller's Numba IR, and made the
callers' first compile seconds longer), it is compiled once and inlined by LLVM.
"""

from __future__ import annotations

from numba import njit

kernel = njit(cache=True, nogil=True, no_cfunc_wrapper=True)
helper = njit(cache=True, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
inlined = njit(cache=True, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, forceinline=True)
