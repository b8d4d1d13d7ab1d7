"""Read-only views of the index that only the web page needs (the library package has no listing
API): a page of photos newest first, the unreadable files, the most frequent labels, landmarks.

Each takes the open :class:`~nnlite.library.index.LibraryIndex` (its schema is documented there).
"""

from __future__ import annotations

import os

import numpy as np

from ..library.index import LibraryIndex


def photos(library: LibraryIndex, offset: int, limit: int) -> dict:
    """Readable photos, newest file first (modification time), with their top label and face count."""
    total = library.conn.execute("SELECT count(*) FROM images WHERE error IS NULL").fetchone()[0]
    rows = library.conn.execute(
        "SELECT images.id, images.path, width, height, n_faces, labels.label, labels.score FROM images"
        " LEFT JOIN labels ON labels.image_id = images.id AND labels.rank = 0"
        " WHERE images.error IS NULL ORDER BY images.mtime_ns DESC, images.id DESC LIMIT ? OFFSET ?",
        (limit, offset)).fetchall()
    return {"total": total, "offset": offset,
            "images": [{"id": r[0], "path": os.path.basename(r[1]), "width": r[2], "height": r[3],
                        "faces": r[4], "label": r[5], "score": r[6]} for r in rows]}


def unreadable(library: LibraryIndex, limit: int = 1000) -> list[dict]:
    """Files the indexer could not read, with the reason it recorded."""
    rows = library.conn.execute("SELECT id, path, error FROM images WHERE error IS NOT NULL"
                                " ORDER BY path LIMIT ?", (limit,)).fetchall()
    return [{"id": r[0], "path": os.path.basename(r[1]), "error": r[2]} for r in rows]


def frequent_labels(library: LibraryIndex, top: int) -> list[dict]:
    """The labels most often ranked first, most frequent first: what a search box can suggest."""
    rows = library.conn.execute(
        "SELECT label, count(*) AS n FROM labels WHERE rank = 0 GROUP BY label ORDER BY n DESC, label"
        " LIMIT ?", (top,)).fetchall()
    return [{"label": r[0], "count": r[1]} for r in rows]


def landmarks(library: LibraryIndex, image_id: int) -> dict[int, list[list[float]]]:
    """face id -> its 68 landmarks [[x, y], ...] in the photo's pixels."""
    rows = library.conn.execute("SELECT id, landmarks FROM faces WHERE image_id = ?", (image_id,)).fetchall()
    out = {}
    for face_id, blob in rows:
        points = np.frombuffer(blob or b"", np.float32)
        out[face_id] = points.reshape(-1, 2).round(1).tolist() if points.size % 2 == 0 else []
    return out


def file_record(library: LibraryIndex, image_id: int) -> tuple[str, int, str | None, str | None] | None:
    """(path, size, sha256, error) as recorded at index time."""
    return library.conn.execute("SELECT path, size, sha256, error FROM images WHERE id = ?",
                                (image_id,)).fetchone()
