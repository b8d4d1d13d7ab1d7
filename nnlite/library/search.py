"""Search the library: by keyword (ImageNet labels and their WordNet ancestors) and by face.

Face search is exact nearest-neighbour search over descriptors held in memory, using

    ||q - d_i||^2 = ||d_i||^2 - 2 d_i . q + ||q||^2          (||d_i||^2 precomputed once)

Scanning the dot products is memory bound (N x 128 float32 = 512 MB at N = 1M), so large indexes
scan an int8 copy instead (128 MB, one scale for the whole matrix, a Numba kernel over both cores),
keep the best ``max(8 k, 128)`` candidates with ``argpartition``, and re-rank those exactly from the
float32 rows. The int8 error on a distance is about 0.01, far below the gap the candidate margin
covers, so the result is the exact top k (tests compare with brute force). Small indexes (below
QUANTIZE_ABOVE faces) use the float32 BLAS product directly. benchmarks/test_face_search.py measures
top-10 at 100k and 1M faces.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from ..errors import LibraryError
from .index import DESCRIPTOR_SIZE, LibraryIndex
from .wordnet import imagenet_wordnet


def keyword_search(library: LibraryIndex, query: str, *, limit: int = 50,
                   min_score: float = 0.0) -> list[dict]:
    """Images whose labels match ``query`` (see :meth:`WordNet.classes_matching`), best label score first.

    One result per image: its best matching label. Labels without a WordNet id (other classifiers)
    match by name, ignoring case.
    """
    wnids = imagenet_wordnet().classes_matching(query)
    marks = ",".join("?" * len(wnids))
    where = f"(labels.wnid IN ({marks}) OR labels.label = ? COLLATE NOCASE)" if wnids else \
        "labels.label = ? COLLATE NOCASE"
    # SQLite rule: with max(), the bare columns come from the row holding the maximum
    rows = library.conn.execute(
        f"SELECT images.id, images.path, labels.label, max(labels.score) AS best FROM labels"
        f" JOIN images ON images.id = labels.image_id WHERE {where} AND labels.score >= ?"
        f" GROUP BY images.id ORDER BY best DESC, images.path LIMIT ?",
        (*wnids, query.strip().replace(" ", "_"), min_score, limit)).fetchall()
    return [{"id": r[0], "path": r[1], "label": r[2], "score": r[3]} for r in rows]


QUANTIZE_ABOVE = 50_000


@numba.njit(parallel=True, cache=True, nogil=True)
def int8_dots(matrix, query, out):   # (N, 128) int8, (128,) int8 -> out (N,) int32
    for i in numba.prange(matrix.shape[0]):
        acc = 0
        for j in range(matrix.shape[1]):
            acc += np.int32(matrix[i, j]) * np.int32(query[j])
        out[i] = acc


def quantize(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric int8 with one scale: x ~ q / scale."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    scale = 127.0 / peak if peak > 0 else 1.0
    return np.clip(np.rint(x * scale), -127, 127).astype(np.int8), scale


class FaceIndex:
    """Nearest faces by Euclidean descriptor distance (see the module docstring for the method)."""

    def __init__(self, ids: np.ndarray, descriptors: np.ndarray, quantize_above: int = QUANTIZE_ABOVE):
        descriptors = np.ascontiguousarray(descriptors, np.float32)   # (N, 128)
        if descriptors.ndim != 2 or descriptors.shape[1] != DESCRIPTOR_SIZE:
            raise LibraryError(f"face descriptors must be (N, {DESCRIPTOR_SIZE}), found {descriptors.shape}")
        self.ids = np.asarray(ids, np.int64)                           # (N,)
        self.matrix = descriptors
        self.sq_norms = np.einsum("ij,ij->i", descriptors, descriptors)   # (N,)
        self.quantize_above = quantize_above
        self.int8, self.scale = quantize(descriptors) if len(descriptors) > quantize_above else (None, 1.0)
        # Numba's default thread pool must not be entered by two threads at once (web server)
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, ids: np.ndarray, descriptors: np.ndarray) -> "FaceIndex":
        if len(ids) == 0:
            return self
        return FaceIndex(np.concatenate([self.ids, ids]), np.concatenate([self.matrix, descriptors]),
                         self.quantize_above)

    def search(self, query: np.ndarray, k: int = 10, threshold: float | None = None) -> list[tuple[int, float]]:
        """(face id, distance) of the ``k`` nearest faces, nearest first; only distances <= threshold."""
        q = np.asarray(query, np.float32).reshape(-1)   # (128,)
        if q.size != DESCRIPTOR_SIZE or not np.all(np.isfinite(q)):
            raise LibraryError(f"a face query must be {DESCRIPTOR_SIZE} finite floats, found {q.size} values")
        n = len(self.ids)
        if n == 0 or k < 1:
            return []
        k = min(k, n)
        if self.int8 is None:
            partial = self.sq_norms - 2.0 * (self.matrix @ q)   # (N,) BLAS sgemv; + ||q||^2 is the same for all
            m = k
        else:
            partial = self._approximate(q)
            m = min(n, max(8 * k, 128))                        # candidates to re-rank exactly
        top = np.argpartition(partial, m - 1)[:m] if m < n else np.arange(n)
        exact = np.linalg.norm(self.matrix[top] - q, axis=1)   # (m,) recomputed without cancellation
        order = np.lexsort((self.ids[top], exact))[:k]         # nearest first, ties by face id
        results = [(int(self.ids[top[i]]), float(exact[i])) for i in order]
        return [r for r in results if threshold is None or r[1] <= threshold]

    def _approximate(self, q: np.ndarray) -> np.ndarray:
        """||d||^2 - 2 d.q with d and q in int8: (N,) float32."""
        q8, q_scale = quantize(q)
        dots = np.empty(len(self.ids), np.int32)
        with self.lock:
            int8_dots(self.int8, q8, dots)
        partial = dots.astype(np.float32)
        partial *= -2.0 / (self.scale * q_scale)
        partial += self.sq_norms
        return partial


class FaceIndexCache:
    """One FaceIndex per library file, kept current cheaply: faces only get new, growing ids, so when
    the count grew by exactly the rows above the cached max id, those rows are appended; any other
    change (a re-indexed photo deleted faces) reloads the matrix."""

    def __init__(self):
        self.lock = threading.Lock()
        self.index: FaceIndex | None = None
        self.version: tuple[int, int] = (0, 0)

    def get(self, library: LibraryIndex) -> FaceIndex:
        with self.lock:
            version = library.face_version()
            if self.index is None or version != self.version:
                count, top = self.version
                if self.index is not None and version[1] > top:
                    ids, matrix = library.descriptors(after_id=top)
                    if count + len(ids) == version[0]:
                        self.index, self.version = self.index.append(ids, matrix), version
                        return self.index
                self.index, self.version = FaceIndex(*library.descriptors()), version
            return self.index


def face_search(library: LibraryIndex, descriptor: np.ndarray, *, top: int = 10,
                threshold: float | None = None, cache: FaceIndexCache | None = None) -> list[dict]:
    """The library's faces nearest to ``descriptor``: [{"face_id", "image_id", "path", "box", "distance"}]."""
    index = (cache or FaceIndexCache()).get(library)
    hits = index.search(descriptor, top, threshold)
    where = library.face_locations([face_id for face_id, _ in hits])
    return [{"face_id": face_id, "image_id": where[face_id][0], "path": where[face_id][1],
             "box": where[face_id][2], "distance": distance}
            for face_id, distance in hits if face_id in where]
