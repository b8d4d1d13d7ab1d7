"""A rebuildable file of one recognizer's face descriptors beside the library, memory-mapped by face search.

Large libraries do not keep the float32 descriptors in RAM (10M 128-d faces are 5.1 GB): FaceIndex reads
them only for a query's few candidates, so they can live in a file mapped into memory. SQLite stays the source
of truth; the file is a cache keyed by the recognizer's (face count, max face id) and a fingerprint of its
first and last descriptors (so a re-created library with the same counts is not mistaken for the old one):

    header  64 bytes   b"NNLROWS1", then int64 count, max id, descriptor size, fingerprint
    ids     (N,) int64 little-endian, by id
    rows    (N, D) float32 little-endian

It is written to a temporary file and renamed into place, so a reader never sees half a file; a missing,
stale, short or otherwise damaged file is rebuilt from SQLite, never an error.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import LibraryError
from .index import LibraryIndex

MAGIC, HEADER, CHUNK_ROWS = b"NNLROWS1", 64, 65_536


def rows_path(library: LibraryIndex, recognizer: str) -> Path:
    path = Path(library.path)
    return path.with_name(f"{path.name}.{recognizer}.rows")


def fingerprint(library: LibraryIndex, recognizer: str) -> int:
    """63 bits of a hash of the recognizer's first and last descriptors (by face id)."""
    first = library.descriptors(recognizer=recognizer, limit=1)[1]
    count, top = library.face_version(recognizer)
    last = library.face(top)["descriptor"] if count else np.zeros(0, np.float32)
    digest = hashlib.sha256(np.ascontiguousarray(first, "<f4").tobytes() + np.asarray(last, "<f4").tobytes())
    return int.from_bytes(digest.digest()[:8], "little") >> 1


def open_rows(path: Path, version: tuple[int, int], size: int, mark: int) -> tuple[np.ndarray, np.memmap] | None:
    """(ids, memory-mapped rows) when ``path`` holds exactly ``version`` (count, max id) of ``size``-d rows
    with fingerprint ``mark``."""
    count, top = version
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER)
        if len(head) != HEADER or head[:8] != MAGIC:
            return None
        if tuple(np.frombuffer(head, "<i8", 4, 8)) != (count, top, size, mark):
            return None
        if path.stat().st_size != HEADER + count * 8 + count * size * 4:
            return None
        ids = np.fromfile(path, "<i8", count, offset=HEADER).astype(np.int64)
        rows = np.memmap(path, "<f4", "r", offset=HEADER + count * 8, shape=(count, size)) if count else \
            np.zeros((0, size), np.float32)
        return ids, rows
    except (OSError, ValueError):
        return None


def write_rows(library: LibraryIndex, recognizer: str, path: Path, version: tuple[int, int], size: int,
               mark: int) -> bool:
    """Copy the recognizer's descriptors from SQLite into ``path`` (atomically). False when the faces changed
    while copying (the caller then reads them into RAM instead)."""
    count, top = version
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(bytes(HEADER))
            f.seek(HEADER + count * 8)
            ids, after = [], 0
            while True:
                chunk_ids, chunk = library.descriptors(after_id=after, recognizer=recognizer, limit=CHUNK_ROWS)
                if len(chunk_ids) == 0:
                    break
                if chunk.shape[1] != size:
                    raise LibraryError(f"{library.path}: {recognizer!r} descriptors have {chunk.shape[1]} values,"
                                       f" expected {size}")
                f.write(np.ascontiguousarray(chunk, "<f4").tobytes())
                ids.append(chunk_ids)
                after = int(chunk_ids[-1])
            ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
            if len(ids) != count or (count and int(ids[-1]) != top):
                return False
            f.seek(HEADER)
            f.write(ids.astype("<i8").tobytes())
            f.seek(0)
            f.write(MAGIC + np.array([count, top, size, mark], "<i8").tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)
