"""The library index: one SQLite file.

Crash safety comes from SQLite itself: WAL journal, and every image (its row, labels and faces)
written in one transaction, so a killed indexer leaves each image either fully stored or absent.
``synchronous=NORMAL`` in WAL mode survives a killed process (only a power cut may drop the last
commits, never corrupt the file).

Schema (``PRAGMA user_version`` = SCHEMA_VERSION):
  images(id, path UNIQUE, sha256, size, mtime_ns, width, height, model, error, n_faces, indexed_at)
  labels(image_id, rank, label, wnid, class_index, score)        rank 0 = best
  faces(id, image_id, x, y, w, h, score, landmarks BLOB (68, 2) float32, descriptor BLOB (128,) float32,
        age, gender, gender_probability, expression JSON)
Face ids only grow (AUTOINCREMENT), which lets a cached descriptor matrix append new faces cheaply.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LibraryError
from ..paths import home_dir
from .analyze import ImageRecord

SCHEMA_VERSION = 1
DESCRIPTOR_SIZE = 128

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, width INTEGER, height INTEGER, model TEXT, error TEXT,
    n_faces INTEGER NOT NULL DEFAULT 0, indexed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE, rank INTEGER NOT NULL,
    label TEXT NOT NULL, wnid TEXT, class_index INTEGER, score REAL NOT NULL,
    PRIMARY KEY (image_id, rank));
CREATE INDEX IF NOT EXISTS labels_wnid ON labels(wnid);
CREATE INDEX IF NOT EXISTS labels_label ON labels(label COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL, score REAL NOT NULL,
    landmarks BLOB, descriptor BLOB NOT NULL, age REAL, gender TEXT, gender_probability REAL,
    expression TEXT);
CREATE INDEX IF NOT EXISTS faces_image ON faces(image_id);
"""


def default_db() -> Path:
    """``$NNLITE_DB``, else ``library.db`` in nnlite's per-user folder."""
    return Path(os.environ.get("NNLITE_DB", home_dir() / "library.db"))


@dataclass(frozen=True)
class KnownFile:
    size: int
    mtime_ns: int
    sha256: str | None
    error: str | None


class LibraryIndex:
    """An open index file. Use as a context manager; ``readonly`` opens without creating anything."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        try:
            if readonly:
                if not self.path.exists():
                    raise LibraryError(f"no library index at {self.path} (run `nnlite index DIR --db {path}`)")
                self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30,
                                            isolation_level=None, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                            check_same_thread=False)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._check_schema(readonly)
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"cannot open library index {self.path}: {exc}") from exc

    def _check_schema(self, readonly: bool) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and not readonly:
            # IF NOT EXISTS + IMMEDIATE: two indexers creating the same file at once both succeed
            self.conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};COMMIT;")
        elif version != SCHEMA_VERSION:
            raise LibraryError(f"{self.path}: index schema version {version}, this nnlite reads "
                               f"version {SCHEMA_VERSION} (re-index into a new --db file)")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "LibraryIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        return _Transaction(self.conn)

    # -- writes --------------------------------------------------------------------------------------

    def write(self, record: ImageRecord) -> int:
        """Store one image (replacing any earlier row for its path) in one transaction; returns its id."""
        with self.transaction():
            self.conn.execute("DELETE FROM images WHERE path = ?", (record.path,))
            cur = self.conn.execute(
                "INSERT INTO images (path, sha256, size, mtime_ns, width, height, model, error, n_faces,"
                " indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.path, record.sha256, record.size, record.mtime_ns, record.width, record.height,
                 record.model, record.error, len(record.faces), time.time()))
            image_id = cur.lastrowid
            self.conn.executemany(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?)",
                [(image_id, rank, l.label, l.wnid, l.index, l.score) for rank, l in enumerate(record.labels)])
            self.conn.executemany(
                "INSERT INTO faces (image_id, x, y, w, h, score, landmarks, descriptor, age, gender,"
                " gender_probability, expression) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(image_id, *f.box, f.score, _blob(f.landmarks), _descriptor_blob(f.descriptor, record.path),
                  f.age, f.gender, f.gender_probability, json.dumps(f.expression)) for f in record.faces])
        return image_id

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """The file's stat changed but its content did not: remember the new stat."""
        with self.transaction():
            self.conn.execute("UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))

    def remove(self, paths: list[str]) -> None:
        with self.transaction():
            self.conn.executemany("DELETE FROM images WHERE path = ?", [(p,) for p in paths])

    # -- reads ---------------------------------------------------------------------------------------

    def known_under(self, root: str) -> dict[str, KnownFile]:
        """Indexed files under folder ``root`` (an absolute path), by path."""
        prefix = root.rstrip("/") + "/"
        rows = self.conn.execute(
            "SELECT path, size, mtime_ns, sha256, error FROM images WHERE substr(path, 1, ?) = ?",
            (len(prefix), prefix))
        return {r[0]: KnownFile(r[1], r[2], r[3], r[4]) for r in rows}

    def stats(self) -> dict:
        images, errors = self.conn.execute(
            "SELECT count(*), count(error) FROM images").fetchone()
        faces = self.conn.execute("SELECT count(*) FROM faces").fetchone()[0]
        return {"images": images, "errors": errors, "faces": faces}

    def image(self, image_id: int) -> dict | None:
        """One image with its labels and faces, as JSON-ready dicts (None when unknown)."""
        row = self.conn.execute("SELECT id, path, width, height, model, error, sha256 FROM images WHERE id = ?",
                                (image_id,)).fetchone()
        if row is None:
            return None
        labels = self.conn.execute("SELECT label, wnid, score FROM labels WHERE image_id = ? ORDER BY rank",
                                   (image_id,)).fetchall()
        return {"id": row[0], "path": row[1], "width": row[2], "height": row[3], "model": row[4],
                "error": row[5], "sha256": row[6],
                "labels": [{"label": l, "wnid": w, "score": s} for l, w, s in labels],
                "faces": self.faces_of(image_id)}

    def faces_of(self, image_id: int) -> list[dict]:
        rows = self.conn.execute(
            "SELECT id, x, y, w, h, score, age, gender, gender_probability, expression FROM faces"
            " WHERE image_id = ? ORDER BY id", (image_id,)).fetchall()
        return [{"id": r[0], "box": [r[1], r[2], r[3], r[4]], "score": r[5], "age": r[6], "gender": r[7],
                 "gender_probability": r[8], "expression": json.loads(r[9] or "{}")} for r in rows]

    def path_of(self, image_id: int) -> str | None:
        row = self.conn.execute("SELECT path FROM images WHERE id = ?", (image_id,)).fetchone()
        return row[0] if row else None

    def face_version(self) -> tuple[int, int]:
        """(count, max id) of faces: a cached matrix with the same pair is current."""
        n, top = self.conn.execute("SELECT count(*), coalesce(max(id), 0) FROM faces").fetchone()
        return int(n), int(top)

    def descriptors(self, after_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Face ids (N,) int64 and descriptors (N, 128) float32 of faces with id > after_id, by id.
        One query and one ``frombuffer`` over the joined blobs: no per-row NumPy work."""
        rows = self.conn.execute("SELECT id, descriptor FROM faces WHERE id > ? ORDER BY id",
                                 (after_id,)).fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), DESCRIPTOR_SIZE)
        return ids, matrix

    def face_locations(self, face_ids) -> dict[int, tuple[int, str, list[float]]]:
        """face id -> (image id, path, box) for a handful of faces."""
        ids = [int(i) for i in face_ids]
        out: dict[int, tuple[int, str, list[float]]] = {}
        for start in range(0, len(ids), 500):   # stay under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            rows = self.conn.execute(
                "SELECT faces.id, images.id, images.path, x, y, w, h FROM faces JOIN images"
                f" ON images.id = faces.image_id WHERE faces.id IN ({','.join('?' * len(chunk))})", chunk)
            out.update({r[0]: (r[1], r[2], [r[3], r[4], r[5], r[6]]) for r in rows})
        return out


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): takes the write lock up front, so two
    writers queue instead of failing half way."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.owner = True
        else:
            self.owner = False

    def __exit__(self, exc_type, exc, tb):
        if not self.owner:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def _blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, np.float32).tobytes()


def _descriptor_blob(descriptor: np.ndarray, path: str) -> bytes:
    d = np.asarray(descriptor, np.float32).reshape(-1)
    if d.size != DESCRIPTOR_SIZE or not np.all(np.isfinite(d)):
        raise LibraryError(f"{path}: face descriptor must be {DESCRIPTOR_SIZE} finite floats, found "
                           f"{d.size} values")
    return d.tobytes()
