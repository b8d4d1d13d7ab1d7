"""NumPy ``.npz`` archives (``np.savez``): ``{name: array}``, read with pickling disabled.

Each member is a ``.npy`` file. Its header (dtype, shape, order) is parsed first and the array size it
implies must equal the member's declared size before any data is inflated (see :mod:`._zip`), so a small
archive cannot ask for gigabytes.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..limits import MAX_RANK
from ._common import read_bytes, require_nonempty
from ._zip import BoundedZip

_NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 16  # NumPy itself refuses larger .npy headers


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into memory, in archive order.

    Object arrays (which would need unpickling) are refused with a WeightsError rather than loaded.
    """
    path = Path(path)
    data = read_bytes(path, what="npz weights file")
    require_nonempty(data, path, what="npz weights file")
    if data.startswith(_NPY_MAGIC):
        raise WeightsError(f"{path}: expected an .npz archive of named arrays, found a single .npy array")
    if not data.startswith(b"PK"):
        raise WeightsError(f"{path}: not a readable .npz archive (not a zip file; first bytes {data[:8]!r})")
    archive = BoundedZip(path, data, "npz archive")
    out: dict[str, np.ndarray] = {}
    for member in archive.names():
        if member.endswith("/"):
            continue
        key = member[:-4] if member.endswith(".npy") else member
        if key in out:
            raise WeightsError(f"{path}: array {key!r} appears twice in the archive")
        out[key] = _read_npy(archive, member, path)
    return out


def _read_npy(archive: BoundedZip, member: str, path: Path) -> np.ndarray:
    where = f"{path}: array {member}"
    size = archive.member_size(member)
    with archive.open(member) as stream:
        try:
            head = _read_exact(stream, 10, where)
            if head[:6] != _NPY_MAGIC:
                raise WeightsError(f"{where} is not a .npy file (first bytes {head[:8]!r})")
            major = head[6]
            if major == 1:
                hlen, start = int.from_bytes(head[8:10], "little"), 10
            elif major in (2, 3):
                hlen, start = int.from_bytes(head[8:10] + _read_exact(stream, 2, where), "little"), 12
            else:
                raise WeightsError(f"{where}: unsupported .npy format version {major}")
            if hlen > _MAX_HEADER:
                raise WeightsError(f"{where}: .npy header of {hlen:,} bytes (at most {_MAX_HEADER:,})")
            dtype, shape, fortran = _parse_header(_read_exact(stream, hlen, where), where, major)
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            if start + hlen + nbytes != size:
                raise WeightsError(f"{where}: header says {dtype} {shape} ({nbytes:,} bytes), the member "
                                   f"holds {max(size - start - hlen, 0):,} data bytes")
            array = np.empty(count, dtype)
            view = memoryview(array.view(np.uint8))
            got = 0
            while got < nbytes:
                n = stream.readinto(view[got:])
                if not n:
                    raise WeightsError(f"{where}: data ends after {got:,} of {nbytes:,} bytes")
                got += n
        except WeightsError:
            raise
        except MemoryError:
            raise WeightsError(f"{where}: not enough memory for {size:,} bytes") from None
        except Exception as exc:  # zlib.error, BadZipFile (CRC mismatch), EOFError ...
            raise WeightsError(f"{where} is damaged ({type(exc).__name__}: {exc})") from None
    return array.reshape(shape, order="F" if fortran else "C")


def _read_exact(stream, n: int, where: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise WeightsError(f"{where}: .npy header ends early")
    return data


def _parse_header(raw: bytes, where: str, major: int) -> tuple[np.dtype, tuple[int, ...], bool]:
    """The header is a Python dict literal: ``{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}``."""
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise WeightsError(f"{where}: unreadable .npy header {raw[:60]!r}") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise WeightsError(f"{where}: .npy header is not the usual dict: {raw[:80]!r}")
    shape, fortran = header["shape"], header["fortran_order"]
    if (not isinstance(shape, tuple) or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape) or not isinstance(fortran, bool)):
        raise WeightsError(f"{where}: bad shape or order in .npy header: {raw[:80]!r}")
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (TypeError, ValueError, KeyError, IndexError):
        raise WeightsError(f"{where}: unreadable dtype {header['descr']!r:.60} in .npy header") from None
    if dtype.hasobject:
        raise WeightsError(f"{where}: object arrays are refused (loading them would unpickle code)")
    if dtype.itemsize == 0 and math.prod(shape):
        raise WeightsError(f"{where}: zero-size dtype {dtype}")
    return dtype, shape, fortran
