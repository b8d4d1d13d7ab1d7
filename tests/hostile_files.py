"""Hand-built hostile files: each one small, each one aimed at one way a loader can hang or blow up.

``python -m tests.hostile_files`` writes the small ones to ``tests/data/hostile/`` (committed);
``tests/test_hostile_files.py`` checks the committed bytes against these builders and builds the large
ones (20,000 nested protobuf messages, a zip bomb) in a temporary folder.
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np

from tests.protobuf_bytes import fld, varint

HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"


# ---------------------------------------------------------------------------------------- pickles

def self_list_pickle() -> bytes:
    """9 bytes: a list that contains itself (PROTO 2, EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP)."""
    return b"\x80\x02]q\x00h\x00a."


def dag_pickle(levels: int = 60) -> bytes:
    """A list of two references to the previous list, ``levels`` deep: 2**levels paths from ~500 bytes."""
    out = bytearray(b"\x80\x02]q\x00")  # level 0: an empty list, memo 0
    for k in range(1, levels + 1):
        out += b"](h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"eq" + bytes([k])  # [prev, prev] -> memo k
    return bytes(out + b".")


def huge_memo_pickle() -> bytes:
    """An int stored at memo index 174,000,000: CPython's unpickler would size its memo table to it."""
    return b"\x80\x02K\x01r" + struct.pack("<I", 174_000_000) + b"."


def _fake_torch():
    """Modules standing in for torch while pickling, so the standard Pickler writes torch's globals."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled by reference")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    torch._utils = utils
    return torch, utils


def stride0_pth() -> bytes:
    """A legacy .pth whose tensor is 40000 x 40000 float32 (6.4 GB) with strides (0, 0) over one stored float."""
    torch, utils = _fake_torch()
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        class Storage:
            pass

        storage = Storage()

        class Tensor:
            def __reduce__(self):
                return utils._rebuild_tensor_v2, (storage, 0, (40000, 40000), (0, 0), False, {})

        class P(pickle.Pickler):
            def persistent_id(self, obj):
                return ("storage", torch.FloatStorage, "0", "cpu", 1) if obj is storage else None

        def dump(obj, custom=False) -> bytes:
            buf = io.BytesIO()
            (P if custom else pickle.Pickler)(buf, protocol=2).dump(obj)
            return buf.getvalue()

        head = dump(0x1950A86A20F9469CFC6C) + dump(1001) + dump({"little_endian": True})
        body = dump({"big": Tensor()}, custom=True) + dump(["0"])
        return head + body + struct.pack("<q", 1) + np.float32(1.0).tobytes()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


# ---------------------------------------------------------------------------------------- npz

def npz_declaring_16gb() -> bytes:
    """An .npz whose one .npy header declares float32 (65536, 65536) = 16 GiB, backed by 16 bytes."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x00" * 16
    return _zip_one("w.npy", npy)


def _zip_one(name: str, data: bytes) -> bytes:
    """A deflated one-member zip with a fixed timestamp (the bytes are reproducible)."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(info, data)
    return buf.getvalue()


def npz_bomb(nbytes: int) -> bytes:
    """A valid .npz holding ``nbytes`` of zeros, deflated (about 1000x smaller)."""
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({nbytes},), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        info = zipfile.ZipInfo("bomb.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(head)
            zeros = bytes(1 << 20)
            for _ in range(nbytes >> 20):
                member.write(zeros)
            member.write(bytes(nbytes & ((1 << 20) - 1)))
    return buf.getvalue()


def npz_unsupported_method() -> bytes:
    """An .npz whose member claims compression method 14 (LZMA's number, but bzip2/lzma are not accepted)."""
    npy = io.BytesIO()
    np.save(npy, np.ones(3, np.float32))
    data = bytearray(_zip_one("w.npy", npy.getvalue()))
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(sig)
        data[at + off:at + off + 2] = struct.pack("<H", 99)
    return bytes(data)


# ---------------------------------------------------------------------------------------- tfjs

def tfjs_manifest(paths, shape=(2,), dtype="float32") -> bytes:
    return json.dumps([{"paths": list(paths), "weights": [{"name": "w", "shape": list(shape), "dtype": dtype}]}]
                      ).encode()


# ---------------------------------------------------------------------------------------- protobuf

def _node(name, op, inputs=(), **attrs) -> bytes:
    out = fld(1, name) + fld(2, op) + b"".join(fld(3, i) for i in inputs)
    return out + b"".join(fld(5, fld(1, k) + fld(2, v)) for k, v in attrs.items())


def _placeholder(name) -> bytes:
    return _node(name, "Placeholder", dtype=fld(6, 1), shape=fld(7, fld(2, fld(1, 1))))


@functools.lru_cache(maxsize=2)
def nested_protobuf(depth: int = 20_000) -> bytes:
    """A GraphDef whose one node's attribute nests AttrValue.func -> NameAttrList.attr -> AttrValue ...
    ``depth`` times (each level is only prefix bytes, so it is built outside-in in linear time)."""
    tag = {1: varint(1 << 3 | 2), 2: varint(2 << 3 | 2), 10: varint(10 << 3 | 2)}
    name_f, name_a = tag[1] + varint(1) + b"f", tag[1] + varint(1) + b"a"
    lengths, inner = [], 0  # lengths[k]: size of level k's AttrValue, innermost first
    for _ in range(depth):
        entry = len(name_a) + len(tag[2]) + len(varint(inner)) + inner
        attr_list = len(name_f) + len(tag[2]) + len(varint(entry)) + entry
        inner = len(tag[10]) + len(varint(attr_list)) + attr_list
        lengths.append((entry, attr_list, inner))
    prefixes = []
    for k in range(depth - 1, -1, -1):
        entry, attr_list, _ = lengths[k]
        value_len = lengths[k - 1][2] if k else 0
        prefixes.append(tag[10] + varint(attr_list) + name_f + tag[2] + varint(entry) + name_a + tag[2]
                        + varint(value_len))
    value = b"".join(prefixes)
    return fld(1, _node("n", "NoOp") + fld(5, fld(1, "x") + fld(2, value)))


def _nested_protobuf_slow(depth: int) -> bytes:
    """The same file built the obvious way (quadratic): the test compares the two at a small depth."""
    value = b""
    for _ in range(depth):
        value = fld(10, fld(1, "f") + fld(2, fld(1, "a") + fld(2, value)))
    return fld(1, _node("n", "NoOp") + fld(5, fld(1, "x") + fld(2, value)))


def self_calling_graph() -> bytes:
    """A graph calling function f, whose body calls f again."""
    sig = fld(1, "f") + fld(2, fld(1, "x") + fld(3, 1)) + fld(3, fld(1, "y") + fld(3, 1))
    fdef = fld(1, sig) + fld(3, _node("c", "f", ["x"])) + fld(4, fld(1, "y") + fld(2, "c:y:0"))
    return fld(1, _placeholder("x")) + fld(1, _node("call", "f", ["x"])) + fld(2, fld(1, fdef))


def const_splat_graph(dims=(50_000, 50_000)) -> bytes:
    """A Const float32 of shape ``dims`` with a single float_val: TensorFlow's splat rule fills the shape."""
    shape = b"".join(fld(2, fld(1, d)) for d in dims)
    tensor = fld(1, 1) + fld(2, shape) + varint(5 << 3 | 5) + struct.pack("<f", 1.0)
    return fld(1, _node("big", "Const", value=fld(8, tensor), dtype=fld(6, 1))) + fld(1, _node("out", "Identity",
                                                                                             ["big"], T=fld(6, 1)))


def const_without_value_graph() -> bytes:
    return fld(1, _placeholder("x")) + fld(1, _node("c", "Const")) + fld(1, _node("a", "AddV2", ["x", "c"]))


def const_port_graph() -> bytes:
    tensor = fld(1, 1) + fld(2, fld(2, fld(1, 1))) + varint(5 << 3 | 5) + struct.pack("<f", 1.0)
    return (fld(1, _placeholder("x")) + fld(1, _node("c", "Const", value=fld(8, tensor), dtype=fld(6, 1)))
            + fld(1, _node("a", "AddV2", ["x", "c:7"])))


def bad_tensor_name_graph() -> bytes:
    """A function body reading ``i:abc``: a port that is not a number."""
    sig = fld(1, "g") + fld(2, fld(1, "x") + fld(3, 1)) + fld(3, fld(1, "y") + fld(3, 1))
    body = _node("i", "Identity", ["x"], T=fld(6, 1))
    fdef = fld(1, sig) + fld(3, body) + fld(4, fld(1, "y") + fld(2, "i:abc"))
    return fld(1, _placeholder("x")) + fld(1, _node("call", "g", ["x"])) + fld(2, fld(1, fdef))


def map_as_varint_graph() -> bytes:
    """A NodeDef whose attr map field (5) is sent as a varint instead of an entry message."""
    return fld(1, fld(1, "n") + fld(2, "NoOp") + fld(5, 7))


# ---------------------------------------------------------------------------------------- HDF5

def h5_attribute_loop() -> bytes:
    """The Keras 3 fuzz seed with one byte changed (offset 2168: 4 -> 60): reading the attributes of
    ``layers/batch_normalization/vars`` then loops forever inside the HDF5 library (found by the fuzz
    test, case keras_h5:526; h5py 3 / HDF5 1.14)."""
    data = bytearray((HOSTILE.parent / "fuzz_seeds" / "keras3.weights.h5").read_bytes())
    assert data[2168] == 4
    data[2168] = 60
    return bytes(data)


SMALL = {
    "self_list.pkl": self_list_pickle,
    "dag_2_60.pkl": dag_pickle,
    "huge_memo.pkl": huge_memo_pickle,
    "stride0.pth": stride0_pth,
    "declares_16gb.npz": npz_declaring_16gb,
    "method99.npz": npz_unsupported_method,
    "tfjs_parent/model-weights_manifest.json": lambda: tfjs_manifest(["../secret.bin"]),
    "tfjs_absolute/model-weights_manifest.json": lambda: tfjs_manifest(["/etc/passwd"]),
    "tfjs_huge_dim/model-weights_manifest.json": lambda: tfjs_manifest(["w.bin"], (2**64, 1)),
    "tfjs_wraps_to_zero/model-weights_manifest.json": lambda: tfjs_manifest(["w.bin"], (2**32, 2**30)),
    "self_calling.pb": self_calling_graph,
    "const_splat.pb": const_splat_graph,
    "const_without_value.pb": const_without_value_graph,
    "const_port7.pb": const_port_graph,
    "bad_tensor_name.pb": bad_tensor_name_graph,
    "map_as_varint.pb": map_as_varint_graph,
    "attribute_loop.h5": h5_attribute_loop,
}


def write_small(folder: Path = HOSTILE) -> None:
    for name, build in SMALL.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build())
    for name in ("tfjs_huge_dim", "tfjs_wraps_to_zero"):
        (folder / name / "w.bin").write_bytes(b"\x00" * 8)


if __name__ == "__main__":
    write_small()
    print("\n".join(f"{p.relative_to(HOSTILE)}: {p.stat().st_size} bytes" for p in sorted(HOSTILE.rglob("*"))
                    if p.is_file()))
