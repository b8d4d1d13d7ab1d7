"""A small protocol-buffers wire-format decoder, driven by field tables (see ``schema.py``).

Wire format (what a ``.pb`` file is): a message is a run of fields; each field starts with a varint key
``field_number << 3 | wire_type``. Wire types: 0 varint, 1 fixed 8 bytes, 2 length-delimited (varint
length, then bytes: strings, sub-messages, packed repeated numbers), 5 fixed 4 bytes; 3/4 (groups) are not
used by TensorFlow's protos and 6/7 do not exist. A map field is a repeated sub-message with key = field 1
and value = field 2. Unknown fields are skipped, as protobuf does.

Every offset is absolute in the file's buffer, so a damaged file is reported as
``GraphFormatError("<file>: damaged protobuf at byte N: <what>")`` with ``.path`` and ``.offset`` set.
Messages nest at most :data:`nnlite.limits.MAX_PROTOBUF_DEPTH` deep (protobuf's own default), so a small
file of 20,000 nested messages is a damaged file, not a RecursionError.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import GraphFormatError
from ..limits import MAX_PROTOBUF_DEPTH

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

NUMERIC = {"int", "uint", "int32", "bool", "enum", "float", "double", "fixed32", "fixed64"}


def damaged(path, offset: int, what: str) -> GraphFormatError:
    """The typed error for a damaged file: names the file and the byte offset."""
    err = GraphFormatError(f"{path}: damaged protobuf at byte {offset}: {what}")
    err.path, err.offset = str(path), int(offset)
    return err


def varint(buf, pos: int, end: int, path) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; returns ``(value, next_pos)``."""
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise damaged(path, start, "truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise damaged(path, start, "varint longer than 10 bytes")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return _signed64(v)


class Msg:
    """A decoded message: fields by attribute; absent fields read as their proto default."""

    __slots__ = ("_type", "_f", "_at")

    def __init__(self, type_name: str, fields: dict | None = None, at: int = -1):
        self._type, self._f, self._at = type_name, fields if fields is not None else {}, at

    def __getattr__(self, name):
        fields = object.__getattribute__(self, "_f")
        if name in fields:
            return fields[name]
        return default_of(object.__getattribute__(self, "_type"), name)

    def has(self, name: str) -> bool:
        return name in self._f

    def __repr__(self) -> str:
        return f"{self._type}({self._f!r})"


SCHEMAS: dict[str, dict[int, tuple]] = {}  # filled by schema.py: type -> {field_no: (name, kind, repeated)}
_BY_NAME: dict[str, dict[str, tuple]] = {}


def register(type_name: str, fields: dict[int, tuple]) -> None:
    SCHEMAS[type_name] = fields
    _BY_NAME[type_name] = {spec[0]: spec for spec in fields.values()}


def default_of(type_name: str, name: str):
    spec = _BY_NAME[type_name].get(name)
    if spec is None:
        raise AttributeError(f"{type_name} has no field {name!r}")
    _, kind, repeated = spec
    if repeated:
        return {} if isinstance(kind, tuple) else []
    if kind in ("string",):
        return ""
    if kind in ("bytes",):
        return b""
    if kind == "bool":
        return False
    if kind in ("float", "double"):
        return 0.0
    if kind in NUMERIC:
        return 0
    return Msg(kind)


def fields_of(buf, start: int, end: int, path):
    """The fields of the message at ``buf[start:end]``, in order, as ``(offset, number, wire type, value)``:
    value is the varint for wire type 0, the ``(start, stop)`` span of the bytes for 2, and the offset of
    the 4 or 8 bytes for 5 and 1."""
    pos = start
    while pos < end:
        at = pos
        key, pos = varint(buf, pos, end, path)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise damaged(path, at, "field number 0")
        if wire == 0:
            value, pos = varint(buf, pos, end, path)
        elif wire == 2:
            length, pos = varint(buf, pos, end, path)
            if pos + length > end:
                raise damaged(path, at, f"length {length} runs past the end of its message ({end})")
            value, pos = (pos, pos + length), pos + length
        elif wire == 5 or wire == 1:
            size = 4 if wire == 5 else 8
            if pos + size > end:
                raise damaged(path, at, f"fixed{size * 8} field runs past the end")
            value, pos = pos, pos + size
        else:
            raise damaged(path, at, f"bad wire type {wire} (field {number})")
        yield at, number, wire, value


def decode(buf, type_name: str, path, start: int = 0, end: int | None = None, depth: int = 0) -> Msg:
    """Decode ``buf[start:end]`` as message ``type_name`` (``depth``: how deep it is nested)."""
    end = len(buf) if end is None else end
    if depth > MAX_PROTOBUF_DEPTH:
        raise damaged(path, start, f"messages nested more than {MAX_PROTOBUF_DEPTH} deep")
    schema = SCHEMAS[type_name]
    fields: dict = {}
    for at, number, wire, value in fields_of(buf, start, end, path):
        spec = schema.get(number)
        if spec is None:
            continue  # unknown field: skip, as protobuf does
        _store(fields, spec, wire, value, buf, path, at, depth)
    return Msg(type_name, fields, start)


def _store(fields: dict, spec: tuple, wire: int, value, buf, path, at: int, depth: int) -> None:
    name, kind, repeated = spec
    if isinstance(kind, tuple):  # map<key, value>: entry message with fields 1 and 2
        if wire != 2:
            raise damaged(path, at, f"map field {name!r} has wire type {wire}, expected 2")
        k, v = _map_entry(buf, value, kind, path, at, depth)
        fields.setdefault(name, {})[k] = v
        return
    if kind in NUMERIC and wire == 2:
        if not repeated:
            raise damaged(path, at, f"field {name!r}: packed encoding on a single value")
        fields.setdefault(name, []).extend(_packed(buf, value[0], value[1], kind, path))
        return
    v = _scalar(buf, kind, wire, value, path, at, name, depth)
    if repeated:
        fields.setdefault(name, []).append(v)
    else:
        fields[name] = v


def _scalar(buf, kind: str, wire: int, value, path, at: int, name: str, depth: int):
    expected = _WIRE.get(kind, 2)
    if wire != expected:
        raise damaged(path, at, f"field {name!r} ({kind}) has wire type {wire}, expected {expected}")
    if wire == 0:
        if kind == "int":
            return _signed64(value)
        if kind == "int32" or kind == "enum":
            return _signed32(value)
        if kind == "bool":
            return value != 0
        return value
    if wire == 5:
        return (_F32 if kind == "float" else _U32).unpack_from(buf, value)[0]
    if wire == 1:
        return (_F64 if kind == "double" else _U64).unpack_from(buf, value)[0]
    start, stop = value
    if kind == "bytes":
        return bytes(buf[start:stop])
    if kind == "string":
        return bytes(buf[start:stop]).decode("utf-8", "replace")
    return decode(buf, kind, path, start, stop, depth + 1)


_WIRE = {"int": 0, "uint": 0, "int32": 0, "bool": 0, "enum": 0, "float": 5, "fixed32": 5,
         "double": 1, "fixed64": 1}


def _packed(buf, start: int, stop: int, kind: str, path) -> list:
    """Packed repeated numbers. Floats go through NumPy (weights can be stored this way)."""
    if kind in ("float", "double", "fixed32", "fixed64"):
        dt = {"float": "<f4", "double": "<f8", "fixed32": "<u4", "fixed64": "<u8"}[kind]
        size = np.dtype(dt).itemsize
        if (stop - start) % size:
            raise damaged(path, start, f"packed {kind} block of {stop - start} bytes")
        return np.frombuffer(bytes(buf[start:stop]), dt).tolist()
    out = []
    pos = start
    while pos < stop:
        v, pos = varint(buf, pos, stop, path)
        if kind == "int":
            v = _signed64(v)
        elif kind in ("int32", "enum"):
            v = _signed32(v)
        elif kind == "bool":
            v = v != 0
        out.append(v)
    return out


def _map_entry(buf, span, kinds: tuple, path, at: int, depth: int):
    key_kind, value_kind = kinds
    key = value = None
    for fat, number, wire, raw in fields_of(buf, span[0], span[1], path):
        kind = key_kind if number == 1 else value_kind
        v = _scalar(buf, kind, wire, raw, path, fat, "map", depth + 1)
        if number == 1:
            key = v
        elif number == 2:
            value = v
    if key is None:
        key = "" if key_kind == "string" else 0
    if value is None:
        value = default_of_kind(value_kind)
    return key, value


def default_of_kind(kind: str):
    if kind == "string":
        return ""
    if kind == "bytes":
        return b""
    if kind in NUMERIC:
        return 0
    return Msg(kind)
