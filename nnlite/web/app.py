"""What the web demo answers, independent of HTTP: each method returns a JSON-ready dict or raises
:class:`HttpError`. The routes (nnlite/web/handler.py) and the API doc (nnlite/web/API.md) map onto it.

Files are only ever reached through an image id from the index, and only when they are still the
file that was indexed (see files.py). Work that decodes pixels (uploads, thumbnails) runs under one
semaphore of ``max_analyses`` slots, so memory is bounded by slots x the decoded-pixel limit. Every
decode is :func:`nnlite.image.load_image`'s, once per request; the analyzer gets the pixels.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections import OrderedDict

import numpy as np

from ..errors import ImageError, LibraryError, NnliteError
from ..image import DEFAULT_MAX_PIXELS, image_size, load_image
from ..library.analyze import AnalyzerSpec, get_analyzer
from ..library.index import LibraryIndex
from ..library.people import DEFAULT_THRESHOLD, people
from ..library.search import FaceIndexCache, face_search, keyword_search, similar_faces
from ..library.words import suggestions
from . import queries
from .files import VerifiedReader
from .http_error import HttpError

__all__ = ["HttpError", "LibraryApp"]

MAX_UPLOAD = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000          # decoded pixels of an upload: 40 MP = 120 MB of RGB
MAX_ANALYSES = 2                 # decodes/analyses at once (the models use every core anyway)
SLOT_WAIT = 60.0                 # seconds a request waits for a free slot before 503
MATCH_THRESHOLD = 0.6            # face-api.js: below this distance, the same person
THUMB_SIZES = (96, 160, 256, 512, 1024)


class LibraryApp:
    """The demo's state: the index (read-only), the face matrix cache, a thumbnail cache, the analyzer."""

    def __init__(self, db, spec: AnalyzerSpec | None = None, max_upload: int = MAX_UPLOAD,
                 max_pixels: int = MAX_PIXELS, max_analyses: int = MAX_ANALYSES):
        self.library = LibraryIndex(db, readonly=True)
        self.spec, self.max_upload, self.max_pixels = spec or AnalyzerSpec(), max_upload, max_pixels
        self.faces = FaceIndexCache()
        self.db_lock = threading.RLock()   # one SQLite connection shared by the server's threads
        self.slots = threading.BoundedSemaphore(max_analyses)
        self.reader = VerifiedReader()
        self.thumbs: OrderedDict = OrderedDict()
        self.thumbs_lock = threading.Lock()

    def close(self) -> None:
        self.library.close()

    # -- queries -----------------------------------------------------------------------------------

    def status(self) -> dict:
        with self.db_lock:
            stats = self.library.stats()
        return {**stats, "db": str(self.library.path), "match_threshold": MATCH_THRESHOLD,
                "max_upload": self.max_upload, "max_pixels": self.max_pixels}

    def photos(self, offset: int, limit: int) -> dict:
        _check("offset", offset, 0, 10**9)
        _check("limit", limit, 1, 500)
        with self.db_lock:
            page = queries.photos(self.library, offset, limit)
        page["images"] = [_with_urls(p) for p in page["images"]]
        return page

    def unreadable(self) -> dict:
        with self.db_lock:
            return {"images": queries.unreadable(self.library)}

    def labels(self, top: int) -> dict:
        _check("top", top, 1, 100)
        with self.db_lock:   # words that find something here: face words (person, group, ...) then labels
            found = suggestions(self.library, top)
        return {"labels": [{"label": s["word"], "count": s["count"], "kind": s["kind"]} for s in found]}

    def search(self, query: str, limit: int) -> dict:
        _check("limit", limit, 1, 500)
        if not query.strip():
            raise HttpError(400, "empty query: give ?q=WORD")
        if len(query) > 200:
            raise HttpError(400, "query too long (200 characters at most)")
        with self.db_lock:
            results = keyword_search(self.library, query, limit=limit)
        return {"query": query, "results": [_with_urls(r) for r in results]}

    def image(self, image_id: int) -> dict:
        with self.db_lock:
            found = self.library.image(image_id)
            points = queries.landmarks(self.library, image_id) if found else {}
        if found is None:
            raise HttpError(404, f"no image {image_id} in the index")
        for face in found["faces"]:
            face["landmarks"] = points.get(face["id"], [])
        return _with_urls(found)

    def similar(self, face_id: int, top: int, threshold: float | None) -> dict:
        _check_face_query(top, threshold)
        with self.db_lock:   # the clicked face first, then the others nearest first (duplicates after it)
            try:
                results = similar_faces(self.library, face_id, top=top, threshold=threshold, cache=self.faces)
            except LibraryError:
                raise HttpError(404, f"no face {face_id} in the index") from None
        return {"match_threshold": MATCH_THRESHOLD, "results": [_with_urls(r) for r in results]}

    def face_search(self, descriptor, top: int, threshold: float | None) -> dict:
        if not isinstance(descriptor, list) or len(descriptor) != 128 or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in descriptor):
            raise HttpError(400, "descriptor must be a list of 128 numbers")
        return self._nearest(np.asarray(descriptor, np.float32), top, threshold)

    def _nearest(self, query: np.ndarray, top: int, threshold: float | None) -> dict:
        _check_face_query(top, threshold)
        with self.db_lock:
            try:
                results = face_search(self.library, query, top=top, threshold=threshold, cache=self.faces)
            except NnliteError as exc:
                raise HttpError(400, str(exc)) from None
        return {"match_threshold": MATCH_THRESHOLD, "results": [_with_urls(r) for r in results]}

    def people(self, threshold: float = DEFAULT_THRESHOLD, min_faces: int = 2) -> dict:
        if not (math.isfinite(threshold) and threshold > 0):   # also NaN: a 400, not the clustering's 500
            raise HttpError(400, f"threshold must be a number > 0, got {threshold}")
        _check("min_faces", min_faces, 1, 10**6)
        with self.db_lock:
            groups = people(self.library, threshold=threshold, min_faces=min_faces)
        return {"people": [{"faces": [_with_urls(f) for f in g["faces"]]} for g in groups]}

    # -- files -------------------------------------------------------------------------------------

    def file(self, image_id: int) -> tuple[bytes, str]:
        """The original file of an indexed image (only if unchanged since indexing), and its type."""
        data, path = self._verified(image_id)
        return data, _content_type(path)

    def thumbnail(self, image_id: int, size: int, face_id: int | None = None) -> tuple[bytes, str]:
        """JPEG of the whole image, or of one face with a margin, fitted in size x size (cached)."""
        _check("size", size, 1, 4096)
        size = min(THUMB_SIZES, key=lambda s: (s < size, abs(s - size)))   # a few sizes keep the cache useful
        data, _ = self._verified(image_id)   # every time: a cached thumbnail of a swapped file is not served
        key = (image_id, size, face_id)
        with self.thumbs_lock:
            if key in self.thumbs:
                self.thumbs.move_to_end(key)
                return self.thumbs[key], "image/jpeg"
        jpeg = self._render_thumbnail(image_id, data, size, face_id)
        with self.thumbs_lock:
            self.thumbs[key] = jpeg
            while len(self.thumbs) > 512:
                self.thumbs.popitem(last=False)
        return jpeg, "image/jpeg"

    def _render_thumbnail(self, image_id: int, data: bytes, size: int, face_id: int | None) -> bytes:
        from PIL import Image
        box = None
        if face_id is not None:
            box = next((f["box"] for f in self.image(image_id)["faces"] if f["id"] == face_id), None)
            if box is None:
                raise HttpError(404, f"image {image_id} has no face {face_id}")
        with self._slot():
            try:
                # same orientation as the indexed boxes; the indexer's own pixel limit, not the upload one;
                # a whole-photo JPEG thumbnail may decode at reduced scale (a face crop needs full pixels)
                picture = Image.fromarray(self._decode(data, DEFAULT_MAX_PIXELS,
                                                       reduce_to=size if box is None else None))
            except HttpError:
                raise HttpError(404, f"image {image_id} cannot be read any more") from None
            if box is not None:
                x, y, w, h = box
                m = 0.25 * max(w, h)   # some hair and chin around the detector's tight box
                picture = picture.crop((int(max(x - m, 0)), int(max(y - m, 0)),
                                        int(min(x + w + m, picture.width)), int(min(y + h + m, picture.height))))
            picture.thumbnail((size, size))
            out = io.BytesIO()
            picture.save(out, format="JPEG", quality=85)
        return out.getvalue()

    def _verified(self, image_id: int) -> tuple[bytes, str]:
        with self.db_lock:
            record = queries.file_record(self.library, image_id)
        if record is None:
            raise HttpError(404, f"no image {image_id} in the index")
        path, size, sha256, error = record
        return self.reader.read(image_id, path, size, sha256, error), path

    # -- uploads -----------------------------------------------------------------------------------

    def analyze(self, data: bytes) -> dict:
        """Labels and faces of an uploaded photo (not stored). Descriptors are returned so the page
        can ask for the same person in the library."""
        if not data:
            raise HttpError(400, "empty upload: send the image file as the request body")
        _check_header_pixels(data, self.max_pixels)   # before waiting for a slot: refuse bombs at once
        with self._slot():
            pixels = self._decode(data)
            analysis = get_analyzer(self.spec).analyze(pixels)
        return {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "model": analysis.model,
                "labels": [{"label": l.label, "wnid": l.wnid, "score": l.score} for l in analysis.labels],
                "faces": [{"box": list(f.box), "score": f.score, "age": f.age, "gender": f.gender,
                           "gender_probability": f.gender_probability, "expression": f.expression,
                           "landmarks": np.asarray(f.landmarks, np.float32).round(1).tolist(),
                           "descriptor": [round(float(v), 6) for v in f.descriptor]} for f in analysis.faces]}

    def _decode(self, data: bytes, max_pixels: int | None = None, reduce_to: int | None = None) -> np.ndarray:
        max_pixels = max_pixels or self.max_pixels
        try:
            return load_image(data, max_pixels=max_pixels, reduce_to=reduce_to)
        except ImageError as exc:
            if "max_pixels" in str(exc):
                raise HttpError(413, f"image has more than {max_pixels} pixels "
                                     f"(the server's --max-megapixels)") from None
            raise HttpError(400, f"not a readable image: {exc}") from None

    def _slot(self):
        return _Slot(self.slots)


class _Slot:
    """One of the decode/analysis slots, or 503 when none frees up within SLOT_WAIT seconds."""

    def __init__(self, semaphore: threading.BoundedSemaphore):
        self.semaphore = semaphore

    def __enter__(self):
        if not self.semaphore.acquire(timeout=SLOT_WAIT):
            raise HttpError(503, "the server is busy analysing other photos; try again in a minute")

    def __exit__(self, *exc):
        self.semaphore.release()


def _check_header_pixels(data: bytes, max_pixels: int) -> None:
    """Refuse an upload whose header declares more than max_pixels, without decoding it."""
    try:
        width, height = image_size(data)
    except ImageError:
        raise HttpError(400, "not a readable image: the file is not in a format the server reads (JPEG, PNG, "
                             "GIF, WebP, BMP, TIFF), or it is damaged") from None
    if width * height > max_pixels:
        raise HttpError(413, f"image of {width}x{height} = {width * height / 1e6:.1f} MP is over the "
                             f"limit of {max_pixels / 1e6:g} MP (the server's --max-megapixels)")


def _check_face_query(top: int, threshold: float | None) -> None:
    _check("top", top, 1, 200)
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise HttpError(400, f"threshold must be a number > 0, got {threshold}")


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise HttpError(400, f"{name} must be between {low} and {high}, got {value}")


def _with_urls(item: dict) -> dict:
    """Add the URLs the page needs to show an image or face from a result."""
    image_id = item.get("image_id", item.get("id"))
    out = dict(item)
    out["path"] = os.path.basename(item["path"])   # the page shows names; the server never takes paths
    out["image_url"] = f"/api/images/{image_id}/file"
    out["thumb_url"] = f"/api/images/{image_id}/thumb"
    if "face_id" in item:
        out["face_url"] = f"/api/images/{image_id}/thumb?face={item['face_id']}"
    return out


def _content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
            ".webp": "image/webp", ".bmp": "image/bmp", ".tif": "image/tiff",
            ".tiff": "image/tiff"}.get(ext, "application/octet-stream")
