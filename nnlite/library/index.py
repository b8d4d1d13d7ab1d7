"""The library index: one SQLite file.

Crash safety comes from SQLite itself: WAL journal, and every image (its row, labels and faces)
written in one transaction, so a killed indexer leaves each image either fully stored or absent.
``synchronous=NORMAL`` in WAL mode survives a killed process (only a power cut may drop the last
commits, never corrupt the file).

Schema (``PRAGMA user_version`` = SCHEMA_VERSION):
  images(id, path UNIQUE, sha256, size, mtime_ns, width, height, model, error, n_faces, indexed_at)
  labels(image_id, rank, label, wnid, class_index, score)        rank 0 = best
  faces(id, image_id, x, y, w, h, score, landmarks BLOB (68, 2) float32, descriptor BLOB (D,) float32,
        age, gender, gender_probability, expression JSON, recognizer)
Face ids only grow (AUTOINCREMENT), which lets a cached descriptor matrix append new faces cheaply.
Rows are written from vision's own types (an :class:`ImageRecord` holds
:class:`~nnlite.vision.classify.Prediction` labels and :class:`~nnlite.vision.faces.Face` faces): this
module is where they become columns, and reads return plain JSON-ready dicts.

``recognizer`` names the net that computed the descriptor ("faceapi": face-api.js's 128-d ResNet);
descriptors of different recognizers live in different spaces and are never compared (see
:mod:`.search`). Version 1 files (before the column existed) are migrated in place when opened for
writing; opened read-only, their faces read as "faceapi", which is what wrote them.

Every SQLite failure (a read-only file, a full disk, a path SQLite cannot create) becomes a
:class:`LibraryError` naming the file; the transaction in progress is rolled back, so a failed
write leaves the image as it was.
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

SCHEMA_VERSION = 2
DESCRIPTOR_SIZE = 128            # face-api.js descriptors; other recognizers bring their own size
DEFAULT_RECOGNIZER = "faceapi"

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
    expression TEXT, recognizer TEXT NOT NULL DEFAULT 'faceapi');
CREATE INDEX IF NOT EXISTS faces_image ON faces(image_id);
"""

MIGRATE_1_TO_2 = "ALTER TABLE faces ADD COLUMN recognizer TEXT NOT NULL DEFAULT 'faceapi';"


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
    """An open index file. Use as a context manager; ``readonly`` opens without creating anything.
    A new file is created only in an existing folder (a typo in a path must not create folders)."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.recognizer_column = "recognizer"
        try:
            if readonly:
                if not self.path.exists():
                    raise LibraryError(f"no library index at {self.path} (run `nnlite index DIR --db {path}`)")
                self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30,
                                            isolation_level=None, check_same_thread=False)
            else:
                if self.path.is_dir():
                    raise LibraryError(f"cannot use {self.path} as a library index: it is a folder")
                if not self.path.parent.is_dir():
                    raise LibraryError(f"cannot create library index {self.path}: folder {self.path.parent} "
                                       f"does not exist")
                self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                            check_same_thread=False)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._check_schema(readonly)
        except (sqlite3.Error, OSError) as exc:
            raise LibraryError(f"cannot open library index {self.path}: {_reason(exc)}") from exc

    def _check_schema(self, readonly: bool) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version in (0, 1) and not readonly:
            # IMMEDIATE, then read the version again: two indexers upgrading the same file at once
            # queue on the write lock and the second finds the work done
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            self.conn.execute(statement)
                elif version == 1:
                    self.conn.execute(MIGRATE_1_TO_2)
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        elif version == 1 and readonly:
            self.recognizer_column = f"'{DEFAULT_RECOGNIZER}'"   # what wrote every version-1 face
        elif version != SCHEMA_VERSION:
            raise LibraryError(f"{self.path}: index schema version {version}, this nnlite reads "
                               f"version {SCHEMA_VERSION} (re-index into a new --db file)")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> LibraryIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        return _Transaction(self.conn, self.path)

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
                " gender_probability, expression, recognizer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(image_id, *f.box, f.score, _blob(f.landmarks), _descriptor_blob(f.descriptor, record.path),
                  f.age, f.gender, f.gender_probability, json.dumps(f.expression or {}), f.recognizer)
                 for f in record.faces])
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
            f"SELECT id, x, y, w, h, score, age, gender, gender_probability, expression, {self.recognizer_column}"
            f" FROM faces WHERE image_id = ? ORDER BY id", (image_id,)).fetchall()
        return [{"id": r[0], "box": [r[1], r[2], r[3], r[4]], "score": r[5], "age": r[6], "gender": r[7],
                 "gender_probability": r[8], "expression": json.loads(r[9] or "{}"), "recognizer": r[10]}
                for r in rows]

    def path_of(self, image_id: int) -> str | None:
        row = self.conn.execute("SELECT path FROM images WHERE id = ?", (image_id,)).fetchone()
        return row[0] if row else None

    def face_version(self, recognizer: str = DEFAULT_RECOGNIZER) -> tuple[int, int]:
        """(count, max id) of one recognizer's faces: a cached matrix with the same pair is current."""
        n, top = self.conn.execute(f"SELECT count(*), coalesce(max(id), 0) FROM faces"
                                   f" WHERE {self.recognizer_column} = ?", (recognizer,)).fetchone()
        return int(n), int(top)

    def recognizers(self) -> dict[str, int]:
        """Recognizer name -> number of faces it described."""
        rows = self.conn.execute(f"SELECT {self.recognizer_column}, count(*) FROM faces"
                                 f" GROUP BY {self.recognizer_column}")
        return {r[0]: int(r[1]) for r in rows}

    def face(self, face_id: int) -> dict | None:
        """One face's image id, path, box, recognizer and descriptor (None when unknown)."""
        row = self.conn.execute(
            f"SELECT images.id, images.path, x, y, w, h, {self.recognizer_column}, descriptor FROM faces"
            f" JOIN images ON images.id = faces.image_id WHERE faces.id = ?", (int(face_id),)).fetchone()
        if row is None:
            return None
        return {"face_id": int(face_id), "image_id": row[0], "path": row[1], "box": list(row[2:6]),
                "recognizer": row[6], "descriptor": np.frombuffer(row[7], np.float32)}

    def descriptors(self, after_id: int = 0, recognizer: str = DEFAULT_RECOGNIZER,
                    limit: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Face ids (N,) int64 and descriptors (N, D) float32 of one recognizer's faces with id > after_id,
        by id, at most ``limit`` of them (-1: all). One query and one ``frombuffer`` over the joined blobs."""
        rows = self.conn.execute(f"SELECT id, descriptor FROM faces WHERE id > ? AND {self.recognizer_column} = ?"
                                 f" ORDER BY id LIMIT ?", (after_id, recognizer, limit)).fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
        size = len(rows[0][1]) // 4 if rows else DESCRIPTOR_SIZE
        blob = b"".join(r[1] for r in rows)
        if len(blob) != 4 * size * len(rows):
            raise LibraryError(f"{self.path}: {recognizer!r} face descriptors of different sizes in one index")
        return ids, np.frombuffer(blob, np.float32).reshape(len(rows), size)

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
    writers queue instead of failing half way. SQLite errors leave as LibraryError."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn, self.path = conn, path

    def __enter__(self):
        if not self.conn.in_transaction:
            self._run("BEGIN IMMEDIATE")
            self.owner = True
        else:
            self.owner = False

    def __exit__(self, exc_type, exc, tb):
        if not self.owner:
            return False
        if exc_type is None:
            self._run("COMMIT")
            return False
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass   # SQLite already rolled back (it does on SQLITE_FULL and I/O errors)
        if isinstance(exc, sqlite3.Error):
            raise LibraryError(f"cannot write library index {self.path}: {_reason(exc)}") from exc
        return False

    def _run(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
        except sqlite3.Error as exc:
            if sql == "COMMIT" and self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise LibraryError(f"cannot write library index {self.path}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """SQLite's message, with the usual cause spelled out."""
    text = str(exc) or type(exc).__name__
    if "readonly" in text:
        return f"{text} (the file or its folder is not writable)"
    if "disk is full" in text or "disk I/O" in text:
        return f"{text} (no space left on the device?)"
    if "unable to open" in text:
        return f"{text} (SQLite cannot create or open a database there)"
    return text


def _blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, np.float32).tobytes()


def _descriptor_blob(descriptor: np.ndarray, path: str) -> bytes:
    d = np.asarray(descriptor, np.float32).reshape(-1)
    if not 16 <= d.size <= 4096 or not np.all(np.isfinite(d)):
        raise LibraryError(f"{path}: a face descriptor must be 16..4096 finite floats, found {d.size} values")
    return d.tobytes()
