"""Search the library by face (keyword search lives in :mod:`.words`; re-exported here).

Descriptors of different recognizers live in different spaces: a query is only ever compared with
the library's faces of its own recognizer (:data:`RECOGNIZERS` says how each one measures distance),
and asking for a recognizer the library has no faces of is an error that names the ones it has.

Face search is exact nearest-neighbour search: :class:`~.face_index.FaceIndex` (re-exported here) scans
a 4-bit code of every descriptor with provable lower bounds on the distance and computes exact distances
only for the faces those bounds cannot rule out (its module docstring says how).
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import LibraryError
from ..vision.arcface import DEFAULT_COSINE_THRESHOLD
from .face_index import QUANTIZE_ABOVE, FaceIndex  # noqa: F401  (FaceIndex's home; re-exported)
from .face_rows import fingerprint, open_rows, rows_path, write_rows
from .index import DEFAULT_RECOGNIZER, DESCRIPTOR_SIZE, LibraryIndex
from .words import keyword_search  # noqa: F401  (the search API in one place)

MAP_ROWS_ABOVE = 2_000_000   # faces of one recognizer above which their float32 rows are memory-mapped

# recognizer -> (descriptor size, metric, same-person threshold). "euclidean": distance ||a - b||;
# "cosine": distance 1 - cos(a, b). face-api.js calls two faces the same person below 0.6; ArcFace when the
# cosine similarity is at least nnlite.vision.arcface.DEFAULT_COSINE_THRESHOLD (distance 1 - that).
RECOGNIZERS: dict[str, tuple[int, str, float]] = {
    DEFAULT_RECOGNIZER: (DESCRIPTOR_SIZE, "euclidean", 0.6),
    "arcface": (512, "cosine", 1.0 - DEFAULT_COSINE_THRESHOLD),
}


def register_recognizer(name: str, size: int, metric: str, threshold: float) -> None:
    """Teach face search another recognizer (e.g. a 512-d ArcFace: ``("arcface", 512, "cosine", t)``)."""
    if metric not in ("euclidean", "cosine"):
        raise LibraryError(f"recognizer {name!r}: metric must be 'euclidean' or 'cosine', found {metric!r}")
    RECOGNIZERS[name] = (int(size), metric, float(threshold))


def recognizer_info(name: str) -> tuple[int, str, float]:
    """(size, metric, threshold) of a recognizer; unknown names get Euclidean and face-api.js's 0.6."""
    return RECOGNIZERS.get(name, (0, "euclidean", 0.6))


def default_threshold(recognizer: str = DEFAULT_RECOGNIZER) -> float:
    return recognizer_info(recognizer)[2]


class FaceIndexCache:
    """One FaceIndex per library file, kept current cheaply: faces only get new, growing ids, so when
    the count grew by exactly the rows above the cached max id, those rows are appended; any other
    change (a re-indexed photo deleted faces) reloads the matrix. Above ``map_rows_above`` faces the
    descriptors are not held in RAM but memory-mapped from a rows file beside the library (see
    :mod:`.face_rows`), rewritten from SQLite whenever the faces change."""

    def __init__(self, map_rows_above: int = MAP_ROWS_ABOVE):
        self.lock = threading.Lock()
        self.map_rows_above = map_rows_above
        self.entries: dict[str, tuple[FaceIndex, tuple[int, int]]] = {}   # recognizer -> (index, version)

    @property
    def index(self) -> FaceIndex | None:
        entry = self.entries.get(DEFAULT_RECOGNIZER)
        return entry[0] if entry else None

    def get(self, library: LibraryIndex, recognizer: str = DEFAULT_RECOGNIZER) -> FaceIndex:
        with self.lock:
            version = library.face_version(recognizer)
            index, cached = self.entries.get(recognizer, (None, (0, 0)))
            if index is not None and version == cached:
                return index
            size, metric, _ = recognizer_info(recognizer)
            count, top = cached
            if index is not None and version[1] > top and version[0] <= self.map_rows_above:
                ids, matrix = library.descriptors(after_id=top, recognizer=recognizer)
                if count + len(ids) == version[0]:
                    self.entries[recognizer] = (index.append(ids, matrix), version)
                    return self.entries[recognizer][0]
            index = self._mapped(library, recognizer, version) if version[0] > self.map_rows_above else None
            if index is None:
                ids, matrix = library.descriptors(recognizer=recognizer)
                index = FaceIndex(ids, matrix, metric=metric, size=size or None)
            self.entries[recognizer] = (index, version)
            return index

    @staticmethod
    def _mapped(library: LibraryIndex, recognizer: str, version: tuple[int, int]) -> FaceIndex | None:
        """A FaceIndex over the memory-mapped rows file, (re)written first when missing or stale; None when
        it cannot be (no file to put it beside, an unwritable folder, faces changing meanwhile)."""
        size, metric, _ = recognizer_info(recognizer)
        if not size or not library.path.is_file():
            return None
        path, mark = rows_path(library, recognizer), fingerprint(library, recognizer)
        opened = open_rows(path, version, size, mark)
        if opened is None:
            try:
                if not write_rows(library, recognizer, path, version, size, mark):
                    return None
            except OSError:
                return None
            opened = open_rows(path, version, size, mark)
        return FaceIndex(*opened, metric=metric, size=size) if opened else None


def check_recognizer(library: LibraryIndex, recognizer: str, descriptor_size: int | None = None) -> None:
    """Refuse a query whose descriptors cannot be compared with the library's faces."""
    have = library.recognizers()
    if have and recognizer not in have:
        raise LibraryError(
            f"the query face was described by the {recognizer!r} recognizer, but this library's faces were "
            f"described by {', '.join(repr(r) for r in sorted(have))}; descriptors of different recognizers "
            f"cannot be compared (search with the same recognizer, or re-index)")
    size = recognizer_info(recognizer)[0]
    if descriptor_size is not None and size and descriptor_size != size:
        raise LibraryError(f"a {recognizer!r} face descriptor has {size} values, this query has {descriptor_size}")


def face_search(library: LibraryIndex, descriptor: np.ndarray, *, top: int = 10,
                threshold: float | None = None, cache: FaceIndexCache | None = None,
                recognizer: str = DEFAULT_RECOGNIZER) -> list[dict]:
    """The library's faces nearest to ``descriptor`` (of ``recognizer``), nearest first:
    [{"face_id", "image_id", "path", "box", "distance"}]; only distances <= ``threshold`` when given."""
    check_recognizer(library, recognizer, np.asarray(descriptor).size)
    index = (cache or FaceIndexCache()).get(library, recognizer)
    hits = index.search(descriptor, top, threshold)
    return _located(library, hits)


def _located(library: LibraryIndex, hits: list[tuple[int, float]]) -> list[dict]:
    where = library.face_locations([face_id for face_id, _ in hits])
    return [{"face_id": face_id, "image_id": where[face_id][0], "path": where[face_id][1],
             "box": where[face_id][2], "distance": distance}
            for face_id, distance in hits if face_id in where]


def similar_faces(library: LibraryIndex, face_id: int, *, top: int = 10, threshold: float | None = None,
                  cache: FaceIndexCache | None = None) -> list[dict]:
    """"More of this person" for a face of the library: the face itself first (distance 0), then the
    others nearest first, so an exact duplicate photo (also distance 0) comes after the clicked face.
    Raises LibraryError for an unknown face id."""
    face = library.face(face_id)
    if face is None:
        raise LibraryError(f"no face {face_id} in the index")
    index = (cache or FaceIndexCache()).get(library, face["recognizer"])
    hits = [h for h in index.search(face["descriptor"], top + 1, threshold) if h[0] != face_id][:max(top - 1, 0)]
    return _located(library, [(int(face_id), 0.0)] + hits)[:top]


def group_by_photo(results: list[dict], threshold: float | None = None) -> list[dict]:
    """Face hits grouped by photo, photos ordered by their nearest face:
    [{"image_id", "path", "distance", "match", "faces": [{"face_id", "box", "distance", "match"}]}];
    ``match`` is distance <= threshold (always True without a threshold)."""
    photos: dict[int, dict] = {}
    for hit in results:
        match = threshold is None or hit["distance"] <= threshold
        photo = photos.setdefault(hit["image_id"], {"image_id": hit["image_id"], "path": hit["path"],
                                                    "distance": hit["distance"], "match": match, "faces": []})
        photo["faces"].append({"face_id": hit["face_id"], "box": hit["box"], "distance": hit["distance"],
                               "match": match})
    return list(photos.values())   # results come nearest first, so the first face of each photo is its best


def query_face(image, spec=None, *, crops: bool = False):
    """The face to search for in ``image`` (a path, bytes or RGB array): the whole image when ``crops``
    (a tight face crop, no detection), else its most confident detected face. A vision Face."""
    from ..image import load_image
    from .analyze import AnalyzerSpec, get_analyzer
    spec = spec or AnalyzerSpec()
    name = image if isinstance(image, str) else "the query image"
    pixels = image if isinstance(image, np.ndarray) else load_image(image)   # errors name the file
    analyzer = get_analyzer(spec)
    if crops:
        if not hasattr(analyzer, "describe_crop"):
            raise LibraryError(f"this analyzer cannot describe a face crop: {spec.factory}")
        return analyzer.describe_crop(pixels)
    faces = analyzer.analyze(pixels).faces
    if not faces:
        raise LibraryError(f"no face found in {name} (if it is a tight face crop, try --crops)")
    return max(faces, key=lambda face: face.score)


def search_by_face(library: LibraryIndex, image, spec=None, *, crops: bool = False, top: int = 10,
                   threshold: float | None = None, everything: bool = False,
                   cache: FaceIndexCache | None = None) -> dict:
    """"Who is this?": the library's faces of the person in ``image``.
    {"query": Face, "threshold", "results": [hit + "match"], "photos": group_by_photo(...)};
    ``threshold`` defaults to the recognizer's; faces beyond it are left out unless ``everything``."""
    query = query_face(image, spec, crops=crops)
    threshold = threshold or default_threshold(query.recognizer)
    results = face_search(library, query.descriptor, top=top, threshold=None if everything else threshold,
                          cache=cache, recognizer=query.recognizer)
    for hit in results:
        hit["match"] = hit["distance"] <= threshold
    return {"query": query, "threshold": threshold, "results": results,
            "photos": group_by_photo(results, threshold)}
