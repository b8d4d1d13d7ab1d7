"""PyTorch ``torch.save`` state dicts, read without importing torch.

Two container formats exist:

- **legacy** (torch < 1.6, and ``_use_new_zipfile_serialization=False``): five things written back to back -
  pickle(magic number 0x1950a86a20f9469cfc6c), pickle(protocol 1001), pickle(sys info: endianness, type
  sizes), pickle(the object, with tensors' storages as persistent ids), pickle(list of storage keys);
  then, for each key in that list, an int64 element count followed by the raw storage bytes.
- **zip** (torch >= 1.6): ``<prefix>/data.pkl`` (the object) and ``<prefix>/data/<key>`` (raw storage bytes,
  little-endian unless ``<prefix>/byteorder`` says ``big``).

In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` where
``storage`` is a persistent id ``('storage', torch.FloatStorage, key, location, numel[, view])``. Offsets,
sizes and strides count elements, not bytes. Everything goes through :mod:`._safe_pickle`: only the globals
listed in ``_TORCH_ALLOWED`` are accepted, and they map to local stand-ins - torch code never runs.

The result is a flat ``{key: np.ndarray}`` in the file's order, tensors in their stored dtype and PyTorch
layout (conv kernels OIHW); nested dicts (``{"state_dict": {...}}``) are flattened with ``.`` and non-tensor
values (epoch counters, strings) are dropped.
"""

from __future__ import annotations

import collections
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..limits import MAX_RANK, check_expand
from ._common import read_bytes, require_nonempty
from ._safe_pickle import load_pickled_arrays, safe_load, walk
from ._zip import BoundedZip

__all__ = ["load_torch_pth", "load_pickled_arrays"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class name -> little-endian NumPy dtype of one element (bfloat16 is widened later).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "|i1",
    "ByteStorage": "|u1", "BoolStorage": "|b1",
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only its element dtype matters here."""
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass(frozen=True)
class _StorageRef:
    """A persistent-id storage reference; its bytes may only be known after the object pickle (legacy)."""
    key: str
    storage_type: _StorageType
    numel: int
    view: tuple[str, int, int] | None = None  # (view key, element offset, element count), legacy only


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _StorageRef):
        raise WeightsError(f"tensor built on {type(storage).__name__}, expected a storage reference")
    if (type(storage_offset) is not int or not isinstance(size, tuple) or not isinstance(stride, tuple)
            or len(size) > MAX_RANK or not all(type(n) is int for n in size + stride)):
        raise WeightsError(f"tensor with malformed offset {storage_offset!r:.40}, size {size!r:.60} or "
                           f"stride {stride!r:.60}")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data  # a Parameter is its tensor for inference


def _torch_allowed() -> dict:
    allowed = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
               ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
               ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter}
    allowed.update({("torch", name): _StorageType(name) for name in _STORAGE_DTYPES})
    return allowed


_TORCH_ALLOWED = _torch_allowed()


def load_torch_pth(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``torch.save``-d state dict (legacy or zip container) into ``{key: np.ndarray}``."""
    path = Path(path)
    data = read_bytes(path, what="PyTorch weights file")
    require_nonempty(data, path, what="PyTorch weights file")
    if data.startswith(b"PK\x03\x04"):
        obj, storages = _read_zip(path, data)
    elif data.startswith(b"\x80"):
        obj, storages = _read_legacy(path, data)
    else:
        raise WeightsError(f"{path} is not a PyTorch file: expected a zip archive or a legacy pickle "
                           f"(first bytes 'PK' or 0x80), found {data[:8]!r}")
    out: dict[str, np.ndarray] = {}
    _flatten(obj, "", out, storages, path, len(data))
    if not out:
        raise WeightsError(f"{path}: no tensors found (top-level object is a {type(obj).__name__})")
    return out


# ------------------------------------------------------------------ legacy container

def _read_legacy(path: Path, data: bytes) -> tuple[object, dict[str, np.ndarray]]:
    stream = io.BytesIO(data)
    header = [safe_load(stream, allowed={}, source=path) for _ in range(3)]
    magic, protocol, sys_info = header
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise WeightsError(f"{path}: not a legacy torch.save file (expected magic {LEGACY_MAGIC:#x} and "
                           f"protocol {LEGACY_PROTOCOL}, found {magic!r} and {protocol!r})")
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    refs: dict[str, _StorageRef] = {}
    obj = safe_load(stream, allowed=_TORCH_ALLOWED, source=path,
                    persistent_load=lambda pid: _remember(refs, _storage_ref(pid, path)))
    keys = safe_load(stream, allowed={}, source=path)
    if not isinstance(keys, list) or any(not isinstance(k, str) or k not in refs for k in keys):
        raise WeightsError(f"{path}: storage key list does not match the tensors' storages")
    storages = {}
    for key in keys:
        storages[key] = _read_legacy_storage(stream, data, refs[key], little, path)
    return obj, storages


def _remember(refs: dict, ref: _StorageRef) -> _StorageRef:
    refs.setdefault(ref.key, ref)
    return ref


def _read_legacy_storage(stream: io.BytesIO, data: bytes, ref: _StorageRef, little: bool,
                         path: Path) -> np.ndarray:
    """One storage record: int64 element count, then that many elements (``data``: the stream's bytes)."""
    head = stream.read(8)
    if len(head) != 8:
        raise WeightsError(f"{path}: file ends before storage {ref.key} (truncated?)")
    numel = int(np.frombuffer(head, "<i8" if little else ">i8")[0])
    if numel != ref.numel:
        raise WeightsError(f"{path}: storage {ref.key} holds {numel} elements, the pickle expected {ref.numel}")
    dtype = ref.storage_type.dtype.newbyteorder("<" if little else ">")
    start, nbytes = stream.tell(), numel * dtype.itemsize
    if len(data) - start < nbytes:
        raise WeightsError(f"{path}: storage {ref.key} expected {nbytes} bytes, found "
                           f"{max(len(data) - start, 0)} (file truncated)")
    stream.seek(start + nbytes)
    # a view of the file's bytes, not a read() copy: _materialize makes the one copy each tensor keeps
    return np.frombuffer(data, dtype, count=numel, offset=start)


# ------------------------------------------------------------------ zip container

def _read_zip(path: Path, data: bytes) -> tuple[object, dict[str, np.ndarray]]:
    archive = BoundedZip(path, data, "PyTorch zip archive")
    names = archive.names()
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise WeightsError(f"{path}: expected one '<name>/data.pkl' in the zip, found {pkl or 'none'}")
    prefix = pkl[0][: -len("data.pkl")]
    little = prefix + "byteorder" not in names or archive.read(prefix + "byteorder") != b"big"
    refs: dict[str, _StorageRef] = {}
    obj = safe_load(io.BytesIO(archive.read(pkl[0])), allowed=_TORCH_ALLOWED, source=path,
                    persistent_load=lambda pid: _remember(refs, _storage_ref(pid, path)))
    storages = {}
    for key, ref in refs.items():
        member = f"{prefix}data/{key}"
        dtype = ref.storage_type.dtype.newbyteorder("<" if little else ">")
        need = ref.numel * dtype.itemsize
        if member not in names:
            raise WeightsError(f"{path}: zip member {member} missing")
        if archive.member_size(member) < need:  # checked before the member is read
            raise WeightsError(f"{path}: storage {key} expected {need} bytes, "
                               f"found {archive.member_size(member)}")
        storages[key] = np.frombuffer(archive.read(member), dtype, count=ref.numel)
    return obj, storages


# ------------------------------------------------------------------ shared: storage refs -> arrays

def _storage_ref(pid, path: Path) -> _StorageRef:
    """Parse ``('storage', type, key, location, numel[, view])`` into a _StorageRef."""
    ok = isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
    if not ok or not isinstance(pid[1], _StorageType) or type(pid[4]) is not int or pid[4] < 0:
        raise WeightsError(f"{path}: unexpected persistent id {pid!r:.120} (expected a torch storage reference)")
    view = pid[5] if len(pid) == 6 else None
    if view is not None and not (isinstance(view, tuple) and len(view) == 3 and type(view[1]) is int
                                 and type(view[2]) is int and view[1] >= 0 and view[2] >= 0):
        raise WeightsError(f"{path}: malformed storage view {view!r:.80}")
    return _StorageRef(str(pid[2]), pid[1], pid[4], view)


def _materialize(tensor: _TensorRef, storages: dict[str, np.ndarray], path: Path, name: str) -> np.ndarray:
    ref = tensor.storage
    flat = storages.get(ref.key)
    if flat is None:
        raise WeightsError(f"{path}: tensor {name!r} refers to storage {ref.key}, which the file does not hold")
    if ref.view is not None:  # legacy storage views: a slice of the root storage
        _, start, count = ref.view
        flat = flat[start:start + count]
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if len(size) != len(stride) or min(stride, default=0) < 0 or min(size, default=0) < 0 or offset < 0:
        raise WeightsError(f"{path}: tensor {name!r} has inconsistent size {size} / stride {stride} / "
                           f"offset {offset}")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= flat.size:
        raise WeightsError(f"{path}: tensor {name!r} (size {size}, offset {offset}) needs {last + 1} "
                           f"elements, its storage holds {flat.size}")
    itemsize = flat.dtype.itemsize
    # overlapping strides (stride 0) let a few stored bytes stand for many: capped like any expansion
    check_expand(math.prod(size) * itemsize, flat.nbytes, WeightsError, f"{path}: tensor {name!r} {size}")
    view = np.lib.stride_tricks.as_strided(flat[offset:] if all(size) else flat[:0], size,
                                           tuple(s * itemsize for s in stride), writeable=False)
    array = np.array(view, dtype=flat.dtype.newbyteorder("="))  # contiguous, native byte order copy
    if ref.storage_type.name == "BFloat16Storage":  # bfloat16 = the top half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _flatten(obj, prefix: str, out: dict, storages: dict, path: Path, size: int) -> None:
    """Nested dicts -> ``{"a.b.c": array}``; walk() refuses cycles and runaway sharing."""
    for keys, leaf in walk(obj, path, size + 100, descend=(dict,)):
        name = ".".join(str(k) for k in keys) or prefix
        if isinstance(leaf, _TensorRef):
            out[name] = _materialize(leaf, storages, path, name)
        elif isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biuf":
            out[name] = leaf
