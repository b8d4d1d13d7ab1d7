"""TensorFlow DataType codes, TensorShapeProto and TensorProto -> NumPy.

A TensorProto stores its values either as raw little-endian bytes (``tensor_content``) or in a typed
repeated field (``float_val``, ``int_val``, ...). With the repeated form a single value fills the whole
shape (TensorFlow's "splat" rule), and a shorter list is padded with its last value. Such a fill may not
produce more than :func:`nnlite.limits.max_expand_bytes` (``NNLITE_MAX_EXPAND_BYTES``, default 4 GiB): a
93-byte constant declaring [50000, 50000] is refused, not allocated.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GraphFormatError
from ..limits import MAX_RANK, check_expand

# DataType enum -> NumPy dtype (reference types, code + 100, map to the same dtype).
DTYPES = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 7: object,
    9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
}
NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
         9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 20: "resource",
         21: "variant", 22: "uint32", 23: "uint64"}
RESOURCE = 20


def dtype_of(code: int, where: str = "") -> type:
    code = code - 100 if code > 100 else code
    if code not in DTYPES:
        raise GraphFormatError(f"{where}: unsupported tensor dtype {NAMES.get(code, code)}")
    return DTYPES[code]


def dtype_name(code: int) -> str:
    code = code - 100 if code > 100 else code
    return NAMES.get(code, f"dtype{code}")


def shape_of(proto) -> tuple | None:
    """TensorShapeProto -> tuple (``None`` for an unknown dimension), or ``None`` for unknown rank."""
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def to_array(proto, where: str = "") -> np.ndarray:
    """Decode a TensorProto into a NumPy array (a copy, owned by the caller)."""
    dtype = dtype_of(proto.dtype, where)
    shape = shape_of(proto.tensor_shape) or ()
    if None in shape:
        raise GraphFormatError(f"{where}: constant tensor with unknown dimension {shape}")
    if len(shape) > MAX_RANK:
        raise GraphFormatError(f"{where}: constant tensor of rank {len(shape)} (at most {MAX_RANK})")
    count = math.prod(shape)
    if dtype is object:
        values = list(proto.string_val)
        return _fill(np.array(values + [b""] * (not values), dtype=object), shape, count, where)
    if proto.has("tensor_content"):
        raw = proto.tensor_content
        if len(raw) != count * np.dtype(dtype).itemsize:
            raise GraphFormatError(f"{where}: tensor_content has {len(raw)} bytes, shape {shape} "
                                   f"of {np.dtype(dtype).name} needs {count * np.dtype(dtype).itemsize}")
        return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    values = _typed_values(proto, dtype)
    if count == 0:
        return np.zeros(shape, dtype)
    if values.size == 0:
        _check_fill(count, values, dtype, shape, where)
        return np.zeros(shape, dtype)  # no values at all means zeros
    return _fill(values, shape, count, where)


def _typed_values(proto, dtype) -> np.ndarray:
    if dtype == np.float32:
        return np.asarray(proto.float_val, np.float32)
    if dtype == np.float64:
        return np.asarray(proto.double_val, np.float64)
    if dtype == np.float16:  # half_val holds the raw 16-bit patterns
        return np.asarray(proto.half_val, np.int64).astype(np.uint16).view(np.float16)
    if dtype == np.int64:
        return np.asarray(proto.int64_val, np.int64)
    if dtype == np.bool_:
        return np.asarray(proto.bool_val, np.bool_)
    if dtype == np.uint32:
        return np.asarray(proto.uint32_val, np.uint32)
    if dtype == np.uint64:
        return np.asarray(proto.uint64_val, np.uint64)
    return np.asarray(proto.int_val, np.int64).astype(dtype)  # int32, int16, int8, uint8, uint16


def _check_fill(count: int, values: np.ndarray, dtype, shape: tuple, where: str) -> None:
    itemsize = 8 if dtype is object else np.dtype(dtype).itemsize
    check_expand(count * itemsize, values.size * itemsize, GraphFormatError,
                 f"{where}: constant of shape {shape} filled from {values.size} value(s)")


def _fill(values: np.ndarray, shape: tuple, count: int, where: str) -> np.ndarray:
    if values.size > count:
        raise GraphFormatError(f"{where}: {values.size} values for a tensor of shape {shape}")
    if values.size < count:
        _check_fill(count, values, values.dtype, shape, where)
        values = np.concatenate([values, np.repeat(values[-1:], count - values.size)])
    return values.reshape(shape)
