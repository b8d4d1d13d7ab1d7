"""A pickle reader that can only build what it was told about.

``pickle`` runs code: every GLOBAL / STACK_GLOBAL / INST / EXT opcode names a callable that the loader
imports and later calls (``os.system`` is one ``REDUCE`` away). :class:`SafeUnpickler` overrides
``find_class`` - the single door through which all of those opcodes obtain callables - and answers only
from an explicit allow list of ``(module, name) -> replacement``. Anything else is refused with a
WeightsError *before* it is imported, so nothing from the file is ever executed.

The replacements are our own small functions or harmless builtins (``collections.OrderedDict``); they
never come from importing the module the pickle names, so no torch is needed and no torch code runs.

Bounds: before unpickling, the opcodes are scanned once and every memo index must be smaller than the
pickle's opcode count (CPython's unpickler sizes its memo table by the largest index, so a 1 KB pickle
naming index 174 M would allocate gigabytes). After unpickling, :func:`walk` visits the result with cycle
detection, a depth limit and a node budget, so a list that contains itself or a 60-level DAG of shared
lists (2**60 paths from 426 bytes) is a WeightsError instead of a hang.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightsError
from ._common import read_bytes, require_nonempty

Allowed = dict[tuple[str, str], Any]

MAX_DEPTH = 100        # nesting of containers (weights files nest a handful of levels)
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler whose globals come only from ``allowed``; ``persistent_load`` is supplied by the caller."""

    def __init__(self, file, *, allowed: Allowed, source: str | Path,
                 persistent_load: Callable[[Any], Any] | None = None):
        super().__init__(file, encoding="latin1")  # latin1 keeps Python-2 era byte strings intact
        self._allowed, self._source, self._persistent = allowed, source, persistent_load

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise WeightsError(f"{self._source}: refusing to load pickle global {module}.{name} "
                               f"(not on the allow list of a weights file; it could run code)") from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise WeightsError(f"{self._source}: unexpected persistent reference {pid!r:.80} in a plain pickle")
        return self._persistent(pid)


def safe_load(file, *, allowed: Allowed, source: str | Path,
              persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """Unpickle one object from ``file``; any failure becomes a WeightsError naming ``source``."""
    _scan(file, source)
    try:
        return SafeUnpickler(file, allowed=allowed, source=source, persistent_load=persistent_load).load()
    except WeightsError as exc:  # raised by an allow-listed stand-in: make sure it names the file
        if str(source) in str(exc):
            raise
        raise WeightsError(f"{source}: {exc}") from None
    except EOFError:
        raise WeightsError(f"{source}: pickle data ends early (file truncated?)") from None
    except MemoryError:
        raise WeightsError(f"{source}: not enough memory to unpickle (damaged or hostile pickle?)") from None
    except Exception as exc:  # UnpicklingError, ValueError, TypeError ... all mean "not a valid pickle"
        raise WeightsError(f"{source}: not a valid pickle of weights ({type(exc).__name__}: {exc})") from None


def _scan(file, source) -> None:
    """Check one pickle's opcodes (from ``file``'s position, which is restored) before it is unpickled."""
    start = file.tell()
    count, memo_refs = 0, []
    try:
        for opcode, arg, pos in pickletools.genops(file):
            count += 1
            if opcode.name in _MEMO_PUTS or opcode.name in _MEMO_GETS:
                memo_refs.append((arg, pos))
    except Exception as exc:  # ValueError: unknown opcode, truncated argument ...
        raise WeightsError(f"{source}: not a valid pickle of weights ({exc})") from None
    finally:
        file.seek(start)
    for index, pos in memo_refs:
        if not isinstance(index, int) or not 0 <= index < count:
            raise WeightsError(f"{source}: pickle memo index {index!r:.20} at byte {pos} is out of range "
                               f"(the pickle has {count} opcodes)")


def walk(obj, source, max_nodes: int, descend: tuple = (dict, list, tuple)) -> Iterator[tuple[tuple, Any]]:
    """Yield ``(key path, leaf)`` for every leaf under ``obj``, descending into ``descend`` containers.

    A container inside itself is a WeightsError (a cycle), as are nesting deeper than ``MAX_DEPTH`` and
    more than ``max_nodes`` visits: a tree unpickled from N bytes has fewer than N nodes, so more visits
    mean shared containers reached by many paths (a DAG of 60 levels has 2**60 paths).
    """
    on_path: set[int] = set()
    visits = 0
    stack: list = [(obj, None, 0, False)]  # (item, (parent link, key) or None, depth, leaving)
    while stack:
        item, link, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            continue
        visits += 1
        if visits > max_nodes:
            raise WeightsError(f"{source}: pickle reaches more than {max_nodes:,} objects, more than its bytes "
                               f"can hold as a tree (shared containers reached by many paths)")
        if not isinstance(item, descend):
            yield _keys(link), item
            continue
        if id(item) in on_path:
            raise WeightsError(f"{source}: pickle holds a container inside itself (at {_path_text(_keys(link))})")
        if depth >= MAX_DEPTH:
            raise WeightsError(f"{source}: pickle nests containers more than {MAX_DEPTH} deep")
        on_path.add(id(item))
        stack.append((item, link, depth, True))
        children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
        stack.extend((value, (link, key), depth + 1, False) for key, value in reversed(children))


def _keys(link) -> tuple:
    keys = []
    while link is not None:
        link, key = link
        keys.append(key)
    return tuple(reversed(keys))


def _path_text(keys: tuple) -> str:
    return "/".join(f"{k!r:.40}" for k in keys) or "the top"


# ------------------------------------------------------------------ NumPy arrays inside pickles

def _safe_dtype(spec, align=False, copy=False):
    """np.dtype, minus object dtypes: an object array would unpickle arbitrary nested objects."""
    dtype = np.dtype(spec, align, copy)
    if dtype.hasobject:
        raise WeightsError(f"refusing object dtype {dtype} in a weights pickle")
    return dtype


def _safe_reconstruct(cls, shape, dtype_code):
    """numpy's ndarray pickle constructor, restricted to plain ndarrays (no subclasses)."""
    if cls is not np.ndarray:
        raise WeightsError(f"refusing to rebuild array subclass {cls!r} from a weights pickle")
    if shape != (0,):  # NumPy pickles an empty placeholder; BUILD then sets the real shape and bytes
        raise WeightsError(f"refusing array placeholder of shape {shape!r:.60} in a weights pickle")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _safe_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise WeightsError(f"refusing numpy scalar of dtype {dtype!r} in a weights pickle")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1_bytes(text, encoding="latin1"):
    """``_codecs.encode``, as protocol-2 pickles written by Python 3 spell a bytes object; text only."""
    if not isinstance(text, str) or encoding.replace("-", "") != "latin1":
        raise WeightsError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}) in a weights pickle")
    return text.encode("latin1")


def _safe_frombuffer(buffer, dtype, shape, order="C"):
    """numpy's protocol-5 array constructor (raw buffer + dtype + shape), plain dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(buffer, (bytes, bytearray)):
        raise WeightsError(f"refusing numpy buffer of dtype {dtype!r} in a weights pickle")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if order == "F" else "C").copy()


NUMPY_ALLOWED: Allowed = {
    ("_codecs", "encode"): _latin1_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
}
for _core in ("numpy.core", "numpy._core"):  # NumPy 1.x and 2.x spellings
    NUMPY_ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _safe_reconstruct
    NUMPY_ALLOWED[(f"{_core}.multiarray", "scalar")] = _safe_scalar
    NUMPY_ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _safe_frombuffer


def load_pickled_arrays(path: str | Path) -> Any:
    """Read a plain pickle of dicts/lists/tuples of NumPy arrays (e.g. ``{layer: [kernel, bias]}``).

    Only NumPy's own array/dtype/scalar reconstructors and ``OrderedDict`` are allowed; object arrays
    and every other global are refused with a WeightsError, so a hostile file cannot run code.
    The structure is returned as stored (containers and arrays), not flattened.
    """
    data = read_bytes(path, what="pickled weights file")
    require_nonempty(data, path, what="pickled weights file")
    if not data.startswith(b"\x80"):  # protocol >= 2 pickles start with PROTO; older ones aren't written by numpy
        raise WeightsError(f"{path} is not a pickle file (expected first byte 0x80, found {data[:4]!r})")
    obj = safe_load(io.BytesIO(data), allowed=NUMPY_ALLOWED, source=path)
    _check_arrays_present(obj, path, len(data))
    return obj


def _check_arrays_present(obj, path, size: int) -> None:
    """A weights pickle that holds no array at all (e.g. a pickled int) is the wrong file; the walk also
    refuses cycles and runaway sharing, so callers can walk the result freely."""
    found = False
    for _, leaf in walk(obj, path, size + 100):
        found = found or isinstance(leaf, np.ndarray)
    if not found:
        raise WeightsError(f"{path}: pickle holds no NumPy arrays (found {type(obj).__name__})")
