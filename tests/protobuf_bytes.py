"""A minimal protobuf encoder for hand-built test files (SavedModels, graphs, hostile inputs)."""

from __future__ import annotations


def varint(v: int) -> bytes:
    """Base-128 varint; a negative int is written as its 64-bit two's complement, as protobuf does."""
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def fld(no: int, value) -> bytes:
    """One field: an int is a varint (wire type 0), bytes/str length-delimited (wire type 2)."""
    if isinstance(value, int):
        return varint(no << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(no << 3 | 2) + varint(len(data)) + data
