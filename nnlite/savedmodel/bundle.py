"""TensorFlow tensor bundles: ``variables/variables.index`` + ``variables.data-NNNNN-of-MMMMM`` shards.

``variables.index`` is a LevelDB-style sorted table:

* footer (last 48 bytes): BlockHandle of the meta-index block, BlockHandle of the index block (a handle is
  two varints, offset and size), zero padding to 40 bytes, then the 8-byte magic ``0xdb4775248b80fb57``.
* a block: entries, then ``uint32`` restart offsets and their ``uint32`` count; each block is followed by a
  5-byte trailer (compression type, masked CRC-32C of block + type byte). An entry is three varints
  (bytes shared with the previous key, unshared key bytes, value length), the unshared key bytes, the value.
* the index block maps the last key of each data block to that block's handle.

Values: the empty key holds a BundleHeaderProto (number of shards, endianness); every other key is a
tensor name with a BundleEntryProto (dtype, shape, shard_id, offset, size, masked crc32c of the bytes). String
tensors are stored as varint lengths, a 4-byte checksum of those lengths, then the bytes.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from ..errors import GraphFormatError
from ..limits import MAX_RANK
from . import schema  # noqa: F401  (registers the message tables)
from .crc32c import crc32c, unmask
from .tensors import dtype_name, dtype_of, shape_of
from .wire import damaged, decode, varint

MAGIC = 0xDB4775248B80FB57
FOOTER = 48


class TensorBundle:
    """Read tensors of a bundle by key: ``bundle.keys()``, ``bundle.read(key)`` (CRC-checked)."""

    def __init__(self, prefix: str | Path):
        self.prefix = str(prefix)
        self.index_path = Path(self.prefix + ".index")
        try:
            data = self.index_path.read_bytes()
        except OSError as exc:
            raise GraphFormatError(f"{self.index_path}: cannot read the variables index ({exc})") from exc
        table = read_table(data, self.index_path)
        header = decode(table.pop("", b""), "BundleHeaderProto", self.index_path)
        if header.endianness != 0:
            raise GraphFormatError(f"{self.index_path}: big-endian bundles are not supported")
        self.num_shards = max(header.num_shards, 1)
        self.entries = {}
        for key, raw in table.items():
            self.entries[key] = decode(raw, "BundleEntryProto", f"{self.index_path} (entry {key!r})")
        self._shards: dict[int, np.ndarray] = {}

    def keys(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def _shard(self, shard_id: int) -> np.ndarray:
        if shard_id not in self._shards:
            path = Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")
            try:
                self._shards[shard_id] = np.memmap(path, np.uint8, mode="r") if path.stat().st_size \
                    else np.zeros(0, np.uint8)
            except OSError as exc:
                raise GraphFormatError(f"{path}: cannot read the variables shard ({exc})") from exc
        return self._shards[shard_id]

    def read(self, key: str) -> np.ndarray:
        """The tensor stored under ``key`` as a NumPy array (own memory, writable)."""
        entry = self.entries.get(key)
        if entry is None:
            raise GraphFormatError(f"{self.index_path}: no tensor {key!r} in the variables bundle")
        shard = self._shard(entry.shard_id)
        where = f"{self.prefix}.data-{entry.shard_id:05d}-of-{self.num_shards:05d}"
        start, size = entry.offset, entry.size
        if start < 0 or size < 0 or start + size > shard.shape[0]:
            raise GraphFormatError(f"{where}: tensor {key!r} at bytes {start}..{start + size} lies past "
                                   f"the end of the shard ({shard.shape[0]} bytes)")
        raw = np.array(shard[start:start + size])
        shape = shape_of(entry.shape) or ()
        if None in shape or len(shape) > MAX_RANK:
            raise GraphFormatError(f"{self.index_path}: tensor {key!r} has an unusable shape {shape}")
        dtype = dtype_of(entry.dtype, f"{self.index_path} ({key})")
        if dtype is object:
            value, checked = _strings(raw.tobytes(), shape, where, start)
        else:
            value, checked = None, raw
        if entry.has("crc32c") and crc32c(checked) != unmask(entry.crc32c):
            raise GraphFormatError(f"{where}: checksum mismatch for tensor {key!r} at byte {start}")
        if value is not None:
            return value
        need = math.prod(shape) * np.dtype(dtype).itemsize
        if need != size:
            raise GraphFormatError(f"{where}: tensor {key!r} has {size} bytes, {dtype_name(entry.dtype)} "
                                   f"{shape} needs {need}")
        return raw.view(np.dtype(dtype).newbyteorder("<")).astype(dtype, copy=False).reshape(shape)


def _strings(raw: bytes, shape: tuple, where: str, base: int) -> tuple[np.ndarray, bytes]:
    """Decode a string tensor; also returns the bytes its CRC covers (lengths as uint32, not varints)."""
    count = math.prod(shape)
    if count > len(raw):  # every string needs at least one length byte
        raise damaged(where, base, f"string tensor of shape {shape} in {len(raw)} bytes")
    pos, lengths = 0, []
    for _ in range(count):
        n, pos = varint(raw, pos, len(raw), where)
        lengths.append(n)
    checked = [struct.pack(f"<{count}I", *lengths), raw[pos:pos + 4]]
    pos += 4  # masked checksum of the lengths
    out = []
    for n in lengths:
        if pos + n > len(raw):
            raise damaged(where, base + pos, "string tensor runs past its entry")
        out.append(raw[pos:pos + n])
        pos += n
    checked += out
    return np.array(out + [b""], dtype=object)[:-1].reshape(shape), b"".join(checked)


def read_table(data: bytes, path) -> dict[str, bytes]:
    """All key/value pairs of a LevelDB-style table held in ``data``."""
    if len(data) < FOOTER:
        raise damaged(path, len(data), f"file too short for a table footer ({len(data)} < {FOOTER} bytes)")
    foot = len(data) - FOOTER
    magic = struct.unpack_from("<Q", data, len(data) - 8)[0]
    if magic != MAGIC:
        raise damaged(path, len(data) - 8, f"bad table magic {magic:#x} (expected {MAGIC:#x})")
    pos = foot
    _meta_off, pos = varint(data, pos, len(data) - 8, path)
    _meta_size, pos = varint(data, pos, len(data) - 8, path)
    idx_off, pos = varint(data, pos, len(data) - 8, path)
    idx_size, pos = varint(data, pos, len(data) - 8, path)
    out: dict[str, bytes] = {}
    for _key, handle in _block(data, idx_off, idx_size, path, foot):
        off, p = varint(handle, 0, len(handle), path)
        size, _ = varint(handle, p, len(handle), path)
        for key, value in _block(data, off, size, path, foot):
            out[key.decode("utf-8", "replace")] = value
    return out


def _block(data: bytes, off: int, size: int, path, limit: int):
    """Yield ``(key, value)`` of the block at ``off`` after checking its bounds and CRC trailer."""
    if off < 0 or off + size + 5 > limit:
        raise damaged(path, off, f"block handle ({off}, {size}) points past the table data ({limit} bytes)")
    kind = data[off + size]
    if kind != 0:
        raise damaged(path, off + size, f"compressed table block (type {kind}) is not supported")
    stored = struct.unpack_from("<I", data, off + size + 1)[0]
    if crc32c(data[off:off + size + 1]) != unmask(stored):
        raise damaged(path, off, "table block checksum mismatch")
    end = off + size
    if size < 4:
        raise damaged(path, off, "table block too small")
    restarts = struct.unpack_from("<I", data, end - 4)[0]
    entries_end = end - 4 - 4 * restarts
    if entries_end < off:
        raise damaged(path, end - 4, f"{restarts} restart points do not fit in a {size}-byte block")
    pos, key = off, b""
    while pos < entries_end:
        at = pos
        shared, pos = varint(data, pos, entries_end, path)
        unshared, pos = varint(data, pos, entries_end, path)
        vlen, pos = varint(data, pos, entries_end, path)
        if shared > len(key) or pos + unshared + vlen > entries_end:
            raise damaged(path, at, "table entry runs past its block")
        key = key[:shared] + data[pos:pos + unshared]
        pos += unshared
        yield key, data[pos:pos + vlen]
        pos += vlen
