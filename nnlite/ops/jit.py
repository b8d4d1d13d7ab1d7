"""How nnlite compiles its Numba functions: :data:`kernel` for those Python calls, :data:`driven` for those
only a parallel driver calls (:mod:`nnlite.ops.drivers`, serially too), :data:`helper` for those only other
compiled functions call.

All cache their machine code on disk (``cache=True``) and release the GIL. None gets Numba's C-callable
wrapper (nothing calls them through C: the parallel drivers call a kernel's own entry point), and only a
:data:`kernel` gets the Python one, which unboxes each argument: for a kernel of twenty arrays and numbers
it was as much code as the kernel's own loop (benchmarks/RESULTS.md, round 26). A small kernel that often
runs serially stays a :data:`kernel`: its driver calls it directly then, where a :data:`driven` one needs the
driver's own entry compiled for its argument types. Wrappers are code that LLVM optimises and compiles in
every module that links the function in, which made them a measurable part of the first run's compile time.

The Python wrappers that remain (a :data:`kernel`'s, and each driver entry's, :mod:`nnlite.ops.drivers`) are
compiled without LLVM's optimisation (:func:`_plain_wrappers`): they run once per call, and their unboxing is
calls into Numba's runtime that optimising hardly speeds up (a serial call measured the same), while optimising
them was a measurable part of a first run's LLVM time (benchmarks/RESULTS.md, round 27). Only nnlite's own
functions are concerned: other Numba code in the same process compiles as Numba does.

:data:`inlined` is a helper that LLVM always inlines into its callers: for a tile called with many arguments
inside a caller's loop, where the call, and tests of arguments that stay the same for the whole loop, would
cost a measurable part of the work (the small depthwise tiles; the GEMM's main tile in its panel loop). Unlike
Numba's own ``inline="always"`` (which copies the function into each caller's Numba IR, and made the
callers' first compile seconds longer), it is compiled once and inlined by LLVM.

Helpers and inlined tiles are compiled without Numba's reference counting (``_nrt=False``): they never
allocate, and every array they get belongs to a caller that outlives the call. With it, each call counted
its array arguments in and out with atomic calls into the runtime, which LLVM cannot remove even after
inlining: inside a loop of tiles those calls also made every vector register (a 3x3 depthwise tile's nine
weight vectors) go to the stack and back around each tile.

One process at a time per function (:func:`locked`): every nnlite dispatcher takes an exclusive lock on a
file beside the function's cache index while it looks a signature up in the disk cache and, on a miss,
compiles and saves it. Numba writes each cache file atomically, but a save rewrites the function's index
and then its data file, and two processes saving different signatures of one function at once can pair
an index entry with the other's data. Under the lock, a process that needs a function another one is
compiling (the first-run helper of :mod:`nnlite.ops.precompile`) waits, then loads it from the cache.
Where the lock file cannot be made (a read-only cache), it compiles unlocked, as Numba alone does.

Loading from the cache without Numba's registries (:class:`_QuickLoad`): before each cache lookup Numba
"refreshes" its typing and target contexts, which on the first lookup in a process imports and installs
every typing and lowering registry it has (the implementations of Python's and NumPy's functions for the
compiler). Loading cached machine code needs none of them but the runtime's symbols (initialised here),
and a compilation refreshes the contexts itself before it starts, so nnlite's dispatchers look up their
cache without the refresh: a warm start that only loads kernels never pays for it. The runtime itself is
loaded from machine code cached beside the kernels too (:mod:`nnlite.ops.runtime`).

A cached function is used only while the files it may have compiled in are as they were (:func:`sources_stamp`).
Numba keys each function's cache on its own file's time and size alone, yet a kernel carries the machine code
of every helper it calls or inlines, from other files: after an edit of the GEMM tiles (``microkernels.py``),
the GEMM kernel of ``gemm.py`` still loaded the old tiles from its cache, and so would an editable install
updated by ``git pull``. So each nnlite function's cache stamp also covers every Python file of
``nnlite/ops`` (the bottom layer, where every kernel's callees live) and of its own folder: a change to any
of them compiles those functions again, once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time

from numba import njit
from numba.core import callwrapper, sigutils
from numba.core.compiler_lock import global_compiler_lock

from . import compile_notice, runtime  # noqa: F401  (compile_notice: before any kernel can compile)

try:
    import fcntl
except ImportError:   # no flock (Windows): compile unlocked, as Numba alone does
    fcntl = None

LOCK_WAIT_S = 120.0   # longer than any one compilation: past it, a process compiles unlocked rather than hang


class _FileLock:
    """An exclusive ``flock`` on ``path`` for a ``with`` block, or nothing where the file cannot be opened.
    The kernel drops it when the process dies, so a killed process leaves no stale lock."""

    def __init__(self, path: str | None):
        self.path, self.fd = path, -1

    def __enter__(self):
        if self.path is not None:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
                locked = self._wait()
            except OSError:
                locked = False
            if not locked:   # no lock file, or waited too long: go on unlocked
                self._close()
        return self

    def _wait(self) -> bool:
        """True once the lock is held; False after LOCK_WAIT_S."""
        deadline, pause = time.monotonic() + LOCK_WAIT_S, 0.001
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.01)

    def __exit__(self, *exc):
        self._close()

    def _close(self):
        if self.fd >= 0:
            os.close(self.fd)   # closing the only descriptor releases the lock
            self.fd = -1


def lock_path(dispatcher) -> str | None:
    """The lock file of ``dispatcher``'s disk cache (its index file's name + ``.lock``); None if not cached."""
    index = getattr(getattr(getattr(dispatcher, "_cache", None), "_cache_file", None), "_index_path", None)
    return None if index is None or fcntl is None else index + ".lock"


class _QuickLoad:
    """A Numba function cache whose lookups skip the contexts' refresh (module docstring); everything else
    is the wrapped cache's."""

    def __init__(self, cache):
        self._inner = cache

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def load_overload(self, sig, target_context):
        runtime.initialize(target_context, self._inner)   # what loaded code needs of the refresh: the runtime
        with self._inner._guard_against_spurious_io_errors():
            found = self._inner._load_overload(sig, target_context)
            if found is not None:
                return found
        if getattr(_load_only, "on", False):   # a miss (or an I/O error the guard swallowed) in load_cached
            raise NotCached(sig)
        return None


class NotCached(Exception):
    """Raised through a dispatcher's ``compile`` by :func:`load_cached` on a cache miss."""


_load_only = threading.local()   # .on: this thread is in load_cached


def load_cached(dispatcher, sig) -> bool:
    """Load ``dispatcher``'s machine code for argument types ``sig`` from the disk cache, as its first call
    with them would, but never compile: False when the cache does not hold it."""
    if not isinstance(getattr(dispatcher, "_cache", None), _QuickLoad):
        return False
    _load_only.on = True
    try:
        dispatcher.compile(sig)
        return True
    except NotCached:
        return False
    finally:
        _load_only.on = False


@functools.cache
def sources_stamp(folder: str) -> str:
    """A digest of the name, size and modification time of every Python file in ``nnlite/ops`` and in
    ``folder``: the files a function defined in ``folder`` may have compiled in (module docstring)."""
    digest = hashlib.blake2b(digest_size=16)
    for where in sorted({os.path.dirname(os.path.abspath(__file__)), os.path.abspath(folder)}):
        try:
            names = sorted(n for n in os.listdir(where) if n.endswith(".py"))
        except OSError:
            names = []
        for name in names:
            try:
                st = os.stat(os.path.join(where, name))
            except OSError:
                continue
            digest.update(f"{os.path.basename(where)}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def locked(dispatcher):
    """``dispatcher``, whose cache lookups and compilations of new signatures hold its file lock, and whose
    cache lookups skip Numba's context refresh."""
    if not hasattr(dispatcher, "overloads"):   # NUMBA_DISABLE_JIT: a plain Python function
        return dispatcher
    cache = getattr(dispatcher, "_cache", None)
    index = getattr(cache, "_cache_file", None)
    if hasattr(index, "_source_stamp"):  # Numba's own stamp, and what the function may have compiled in
        folder = os.path.dirname(dispatcher.py_func.__code__.co_filename)
        index._source_stamp = (index._source_stamp, sources_stamp(folder))
    if hasattr(cache, "_load_overload") and hasattr(cache, "_guard_against_spurious_io_errors"):
        dispatcher._cache = _QuickLoad(cache)
    compile_unlocked = dispatcher.compile
    path = lock_path(dispatcher)

    def compile(sig):
        args, _ = sigutils.normalize_signature(sig)
        if path is None or tuple(args) in dispatcher.overloads:
            return compile_unlocked(sig)
        # the compiler lock first: Numba takes it inside, and other threads of this process wait on it, not on
        # the file lock (which would otherwise order two locks two ways)
        with global_compiler_lock, _FileLock(path):
            return compile_unlocked(sig)

    dispatcher.compile = compile
    return dispatcher


def _plain_wrappers() -> None:
    """Mark the Python wrappers Numba builds for nnlite's functions ``optnone`` (module docstring): LLVM then
    skips its passes on them and selects their instructions the quick way. Where Numba's wrapper builder is not
    where this expects it, wrappers compile as Numba compiles them."""
    build = getattr(callwrapper.PyCallWrapper, "build", None)
    if build is None or getattr(build, "nnlite_plain", False):
        return

    def plain_build(self):
        built = build(self)
        if str(getattr(getattr(self, "fndesc", None), "modname", "")).startswith("nnlite."):
            for fn in getattr(getattr(self, "module", None), "functions", ()):
                if not fn.is_declaration:
                    fn.attributes.add("noinline")   # LLVM's rule: an optnone function is never inlined
                    fn.attributes.add("optnone")
        return built

    plain_build.nnlite_plain = True
    callwrapper.PyCallWrapper.build = plain_build


_plain_wrappers()


def _locked_jit(**options):
    decorate = njit(**options)
    return lambda fn: locked(decorate(fn))


kernel = _locked_jit(cache=True, nogil=True, no_cfunc_wrapper=True)
driven = _locked_jit(cache=True, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
helper = _locked_jit(cache=True, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
inlined = _locked_jit(cache=True, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, forceinline=True,
                      _nrt=False)
