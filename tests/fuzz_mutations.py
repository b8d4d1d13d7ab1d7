"""Mutations for the loader fuzz test (tests/fuzz_harness.py): generic byte-level ones (flips, truncation,
insertion, deletion, boundary integers) and field-aware ones per format (zip headers and .npy shapes, tfjs
manifest fields, pickle opcode arguments, HDF5 addresses, protobuf varints). Each takes a ``random.Random``
and the file's bytes (a bytearray, changed in place)."""

from __future__ import annotations

import json

from tests.protobuf_bytes import varint

_BIG = [0, 1, 2, 7, 255, 256, 65535, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**64 - 1]


def flip(rng, data: bytearray) -> None:
    for _ in range(rng.randint(1, 4)):
        if data:
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256) if rng.random() < 0.5 else data[i] ^ (1 << rng.randrange(8))


def truncate(rng, data: bytearray) -> None:
    del data[rng.randrange(len(data) + 1):]


def insert(rng, data: bytearray) -> None:
    i = rng.randrange(len(data) + 1)
    data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))


def delete(rng, data: bytearray) -> None:
    if data:
        i = rng.randrange(len(data))
        del data[i:i + rng.randint(1, 64)]


def int_field(rng, data: bytearray, width: int) -> None:
    """Overwrite a little-endian integer field at a random place with a boundary value."""
    if len(data) >= width:
        i = rng.randrange(len(data) - width + 1)
        value = rng.choice(_BIG) & ((1 << (8 * width)) - 1)
        data[i:i + width] = value.to_bytes(width, "little")


def zip_fields(rng, data: bytearray) -> None:
    """Change a header field of a zip entry: method, flags, sizes, or the .npy header's shape text."""
    heads = [i for i in range(len(data) - 4) if data[i:i + 2] == b"PK" and data[i + 2:i + 4] in (b"\x01\x02",
                                                                                                    b"\x03\x04")]
    shape_at = data.find(b"'shape': (")
    if shape_at >= 0 and rng.random() < 0.3:
        end = data.find(b")", shape_at)
        dims = rng.choice([b"40000, 40000", b"-1,", b"2**64", b"", b"0, 99999999999", b"1" * 30])
        data[shape_at + 10:end] = dims.ljust(end - shape_at - 10)[:max(end - shape_at - 10, len(dims))]
        return
    if not heads:
        return flip(rng, data)
    at = rng.choice(heads)
    central = data[at + 2:at + 4] == b"\x01\x02"
    offsets = {"flags": (8 if central else 6, 2), "method": (10 if central else 8, 2),
               "csize": (20 if central else 18, 4), "usize": (24 if central else 22, 4),
               "namelen": (28 if central else 26, 2)}
    name = rng.choice(list(offsets))
    off, width = offsets[name]
    if at + off + width <= len(data):
        value = rng.choice([0, 1, 8, 9, 12, 14, 99] if name == "method" else _BIG) & ((1 << (8 * width)) - 1)
        data[at + off:at + off + width] = value.to_bytes(width, "little")


def json_fields(rng, data: bytearray) -> None:
    try:
        doc = json.loads(bytes(data))
        group = rng.choice(doc)
        entry = rng.choice(group["weights"]) if group["weights"] else {}
    except (ValueError, TypeError, IndexError, KeyError):
        return flip(rng, data)
    choice = rng.randrange(7)
    if choice == 0:
        entry["shape"] = [rng.choice(_BIG + [-1, 2**64, 2**70]) for _ in range(rng.randint(0, 4))]
    elif choice == 1:
        group["paths"] = [rng.choice(["../x.bin", "/etc/passwd", "..", "a/../../b", "/dev/zero", "", "C:\\x",
                                      group["paths"][0], "missing.bin"])]
    elif choice == 2:
        entry["dtype"] = rng.choice(["float32", "int32", "bool", "string", "complex64", 5, None])
    elif choice == 3:
        entry["quantization"] = rng.choice([{"dtype": "uint8"}, {"dtype": "uint16", "scale": 1e308, "min": -1e308},
                                            {"dtype": "float16"}, "x", {"dtype": "uint8", "scale": "a", "min": 0}])
    elif choice == 4:
        entry.pop(rng.choice(["name", "shape", "dtype"]), None)
    elif choice == 5:
        group["paths"] = group["paths"] * rng.randint(2, 5)
    else:
        doc = [doc] * rng.randint(1, 3) if rng.random() < 0.5 else {"x": doc}
    data[:] = json.dumps(doc).encode()


def pickle_fields(rng, data: bytearray) -> None:
    """Overwrite the argument of a random integer-carrying opcode (memo indices, ints, lengths)."""
    import pickletools
    sites = []
    try:
        for op, _arg, pos in pickletools.genops(bytes(data)):
            if op.arg is not None and op.arg.n in (1, 2, 4, 8) and pos is not None:
                sites.append((pos + 1, op.arg.n))
    except Exception:
        pass
    if not sites:
        return flip(rng, data)
    pos, width = rng.choice(sites)
    data[pos:pos + width] = (rng.choice(_BIG) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def h5_fields(rng, data: bytearray) -> None:
    """Damage HDF5 metadata: addresses and sizes (8-byte fields) or bytes in the first 4 KB."""
    if rng.random() < 0.5:
        i = rng.randrange(min(len(data), 4096) or 1)
        data[i:i + 1] = bytes([rng.randrange(256)])
    elif len(data) >= 8:
        i = rng.randrange(0, min(len(data), 8192) - 7)
        data[i:i + 8] = (rng.choice(_BIG) & (2**64 - 1)).to_bytes(8, "little")


def protobuf_fields(rng, data: bytearray) -> None:
    """Replace a varint somewhere with a boundary value (lengths, dims, enums), or nest a message deeply."""
    if not data:
        return
    i = rng.randrange(len(data))
    j = i
    while j < len(data) and data[j] & 0x80 and j - i < 9:
        j += 1
    data[i:j + 1] = varint(rng.choice(_BIG + [rng.randrange(1 << 20)]))


FIELD = {"zip": zip_fields, "json": json_fields, "pickle": pickle_fields, "h5": h5_fields,
          "protobuf": protobuf_fields, "raw": flip}
GENERIC = [flip, flip, truncate, insert, delete, lambda r, d: int_field(r, d, r.choice([2, 4, 8]))]
