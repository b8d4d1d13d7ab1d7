"""Numba's runtime (NRT) from cached machine code: a warm start loads it instead of compiling it.

Every compiled kernel that allocates (``np.empty`` in a kernel) calls the runtime's reference counting,
which Numba builds in each process from a small LLVM module, optimised and compiled on the first use.
That one compilation brings in LLVM's optimiser and code generator: on a warm start that only loads
cached kernels, it was most of the resident memory nnlite had above onnxruntime's (LLVM's code pages, read
in; benchmarks/RESULTS.md, round 7). So :func:`initialize` keeps the module's machine code beside the
kernels' cache (``nnlite-nrt-<key>.nbc``; the key covers Numba's and llvmlite's versions and the CPU the
code is for, as Numba's own cache index does) and loads it as Numba loads a cached kernel, which needs
neither.

The file is nnlite's: a digest of its contents comes first, and a file that does not match it, or that
cannot be read or loaded, is ignored: the runtime is compiled as Numba does it, and the file written
again (atomically, where the cache directory is writable). Where Numba's internals this relies on are
missing (another Numba version), Numba initialises its runtime itself.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile

import llvmlite
import numba
from llvmlite import binding as ll
from numba.core import config
from numba.core.compiler_lock import global_compiler_lock
from numba.core.runtime import nrtdynmod, rtsys

MAGIC = b"NNLITE-NRT1\n"
state = {"source": None}   # where this process's runtime came from: "cache", "compiled" or "numba"


def cache_file(cache_dir: str, codegen) -> str:
    """The runtime's cache file in ``cache_dir`` for ``codegen``'s target."""
    key = repr((numba.__version__, llvmlite.__version__, codegen.magic_tuple(), sys.version_info[:2]))
    return os.path.join(cache_dir, f"nnlite-nrt-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}.nbc")


def initialize(target_context, cache=None) -> None:
    """Numba's ``rtsys.initialize(target_context)``, from the cache file beside ``cache``'s (a Numba
    function cache) where there is one."""
    if getattr(rtsys, "_init", True):
        return
    cache_dir = getattr(cache, "_cache_path", None)
    if cache_dir is None or not _internals_present():
        rtsys.initialize(target_context)
        state["source"] = "numba"
        return
    with global_compiler_lock:
        if rtsys._init:
            return
        codegen = target_context.codegen()
        path = cache_file(cache_dir, codegen)
        _register_symbols()
        library = _load(path, codegen)
        if library is None:
            try:
                library = _compile(target_context)
            except Exception:   # noqa: BLE001 - Numba's internals moved: let Numba set its runtime up itself
                rtsys.initialize(target_context)
                state["source"] = "numba"
                return
            _save(path, library)
        rtsys._library = library
        rtsys._init = True


def _internals_present() -> bool:
    from numba.core.runtime import _nrt_python
    return (hasattr(rtsys, "_init") and hasattr(nrtdynmod, "create_nrt_module")
            and isinstance(getattr(_nrt_python, "c_helpers", None), dict))


def _register_symbols() -> None:
    """The runtime's C functions, under the names compiled code calls them by (as Numba registers them)."""
    from numba.core.runtime import _nrt_python
    if config.NRT_STATS:
        _nrt_python.memsys_enable_stats()
    for name, address in _nrt_python.c_helpers.items():
        ll.add_symbol(name if name.startswith("_") else "NRT_" + name, address)


def _load(path: str, codegen):
    """The runtime library from ``path``, or None when there is no valid file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head, digest, payload = data[:len(MAGIC)], data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
    if head != MAGIC or hashlib.sha256(payload).digest() != digest:
        return None
    try:
        library = codegen.unserialize_library(pickle.loads(payload))
    except Exception:   # noqa: BLE001 - a file another version wrote: compile instead
        return None
    state["source"] = "cache"
    return library


def _compile(target_context):
    """Numba's runtime module compiled as Numba compiles it, with its machine code kept for the file."""
    module, library = nrtdynmod.create_nrt_module(target_context)
    library.enable_object_caching()
    library.add_ir_module(module)
    library.finalize()
    state["source"] = "compiled"
    return library


def _save(path: str, library) -> None:
    try:
        payload = pickle.dumps(library.serialize_using_object_code(), protocol=pickle.HIGHEST_PROTOCOL)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".nrt-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:   # a read-only cache: compiled again next time, as Numba does
        pass
