"""ONNX ``TensorProto`` -> NumPy array, including tensors kept in external data files.

Every size is checked before anything is allocated: a tensor whose declared shape disagrees with its
data, or whose external file is missing, too short or outside the model's folder, is a
:class:`~nnlite.errors.GraphFormatError` naming the model file and the tensor.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import GraphFormatError

# TensorProto.DataType -> NumPy dtype (little-endian, as ONNX stores raw_data)
DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?", 10: "<f2",
          11: "<f8", 12: "<u4", 13: "<u8"}
DTYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
               9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}
MAX_ELEMENTS = 1 << 31  # larger than any real weight; stops a damaged dims field from asking for terabytes


def to_array(t, path: Path, what: str) -> np.ndarray:
    """The tensor's values with its declared shape; ``what`` names it in errors ("initializer 'w'")."""
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise GraphFormatError(f"{path}: {what} has a negative dimension {dims}")
    count = 1
    for d in dims:
        count *= d
    if count > MAX_ELEMENTS:
        raise GraphFormatError(f"{path}: {what} declares {count} elements (shape {dims}): too large")
    code = t.data_type
    if code not in DTYPES:
        raise GraphFormatError(f"{path}: {what} has data type {DTYPE_NAMES.get(code, code)}, which nnlite "
                               "does not read")
    dt = np.dtype(DTYPES[code])
    if t.data_location == 1 or t.external_data:
        raw = _external(t, path, what, count * dt.itemsize)
        data = np.frombuffer(raw, dt)
    elif t.has("raw_data"):
        if len(t.raw_data) != count * dt.itemsize:
            raise GraphFormatError(f"{path}: {what} declares shape {dims} ({count * dt.itemsize} bytes of "
                                   f"{dt.name}) but holds {len(t.raw_data)} bytes")
        data = np.frombuffer(t.raw_data, dt)
    else:
        data = _typed_field(t, code, dt)
        if data.size != count:
            raise GraphFormatError(f"{path}: {what} declares shape {dims} ({count} values) but holds "
                                   f"{data.size} values")
    return data.reshape(dims).astype(dt.newbyteorder("="), copy=True)


def _typed_field(t, code: int, dt: np.dtype) -> np.ndarray:
    if code == 1:
        return np.asarray(t.float_data, np.float32)
    if code == 11:
        return np.asarray(t.double_data, np.float64)
    if code == 7:
        return np.asarray(t.int64_data, np.int64)
    if code in (12, 13):
        return np.asarray(t.uint64_data, np.uint64).astype(dt)
    if code == 10:  # float16 bits are stored one per int32
        return np.asarray(t.int32_data, np.uint16).view(np.float16)
    return np.asarray(t.int32_data, np.int64).astype(dt)


def _external(t, path: Path, what: str, nbytes: int) -> bytes:
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    try:
        offset, length = int(info.get("offset", 0)), int(info.get("length", nbytes))
    except ValueError:
        raise GraphFormatError(f"{path}: {what}: external data offset/length are not numbers: {info}") from None
    if not location:
        raise GraphFormatError(f"{path}: {what} is marked external but names no location")
    folder = path.resolve().parent
    target = (folder / location).resolve()
    if Path(location).is_absolute() or (folder not in target.parents):
        raise GraphFormatError(f"{path}: {what}: external data {location!r} lies outside the model's folder "
                               f"{folder}")
    if length != nbytes or offset < 0:
        raise GraphFormatError(f"{path}: {what}: external data length {length} at offset {offset} does not "
                               f"match its declared size ({nbytes} bytes)")
    try:
        with open(target, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset + length > size:
                raise GraphFormatError(f"{path}: {what}: external file {location} holds {size} bytes, "
                                       f"needs {offset + length}")
            f.seek(offset)
            return f.read(length)
    except OSError as exc:
        raise GraphFormatError(f"{path}: {what}: cannot read external data {location!r} "
                               f"({exc.strerror or exc})") from None
