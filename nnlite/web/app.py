"""What the web demo answers, independent of HTTP: each method returns a JSON-ready dict or raises
:class:`HttpError`. The routes (nnlite/web/server.py) and the API doc (nnlite/web/API.md) map onto it.

Files are only ever reached through an image id from the index, so a request cannot name a path:
there is nothing to traverse.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict

import numpy as np

from ..errors import NnliteError
from ..library.analyze import AnalyzerSpec, decode, get_analyzer
from ..library.index import LibraryIndex
from ..library.people import DEFAULT_THRESHOLD, people
from ..library.search import FaceIndexCache, face_search, keyword_search

MAX_UPLOAD = 10 * 1024 * 1024
THUMB_SIZES = (96, 160, 256, 512)


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class LibraryApp:
    """The demo's state: the index (read-only), the face matrix cache, a thumbnail cache, the analyzer."""

    def __init__(self, db, spec: AnalyzerSpec = AnalyzerSpec(), max_upload: int = MAX_UPLOAD):
        self.library = LibraryIndex(db, readonly=True)
        self.spec, self.max_upload = spec, max_upload
        self.faces = FaceIndexCache()
        self.db_lock = threading.RLock()   # one SQLite connection shared by the server's threads
        self.thumbs: OrderedDict = OrderedDict()
        self.thumbs_lock = threading.Lock()

    def close(self) -> None:
        self.library.close()

    # -- queries -----------------------------------------------------------------------------------

    def status(self) -> dict:
        with self.db_lock:
            return {**self.library.stats(), "db": str(self.library.path)}

    def search(self, query: str, limit: int) -> dict:
        if not query.strip():
            raise HttpError(400, "empty query: give ?q=WORD")
        with self.db_lock:
            results = keyword_search(self.library, query, limit=_clamp(limit, 1, 500))
        return {"query": query, "results": [_with_urls(r) for r in results]}

    def image(self, image_id: int) -> dict:
        with self.db_lock:
            found = self.library.image(image_id)
        if found is None:
            raise HttpError(404, f"no image {image_id} in the index")
        return _with_urls(found)

    def similar(self, face_id: int, top: int, threshold: float | None) -> dict:
        with self.db_lock:
            ids, matrix = self.library.descriptors(after_id=face_id - 1)
        if not len(ids) or ids[0] != face_id:
            raise HttpError(404, f"no face {face_id} in the index")
        return self.face_search(matrix[0], top, threshold)

    def face_search(self, descriptor, top: int, threshold: float | None) -> dict:
        try:
            query = np.asarray(descriptor, np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise HttpError(400, "descriptor must be a list of 128 numbers") from None
        with self.db_lock:
            try:
                results = face_search(self.library, query, top=_clamp(top, 1, 200), threshold=threshold,
                                      cache=self.faces)
            except NnliteError as exc:
                raise HttpError(400, str(exc)) from None
        return {"results": [_with_urls(r) for r in results]}

    def people(self, threshold: float = DEFAULT_THRESHOLD, min_faces: int = 2) -> dict:
        if not threshold > 0:   # the client's mistake (also NaN): a 400, not the clustering's 500
            raise HttpError(400, f"threshold must be > 0, got {threshold}")
        with self.db_lock:
            groups = people(self.library, threshold=threshold, min_faces=min_faces)
        return {"people": [{"faces": [_with_urls(f) for f in g["faces"]]} for g in groups]}

    # -- files -------------------------------------------------------------------------------------

    def file(self, image_id: int) -> tuple[bytes, str]:
        """The original file of an indexed image, and its content type."""
        path = self._path(image_id)
        try:
            with open(path, "rb") as f:
                return f.read(), _content_type(path)
        except OSError:
            raise HttpError(404, f"image {image_id} is indexed but its file is gone") from None

    def thumbnail(self, image_id: int, size: int, face_id: int | None = None) -> tuple[bytes, str]:
        """JPEG of the whole image, or of one face with a margin, fitted in size x size (cached)."""
        size = min(THUMB_SIZES, key=lambda s: (s < size, abs(s - size)))   # a few sizes keep the cache useful
        key = (image_id, size, face_id)
        with self.thumbs_lock:
            if key in self.thumbs:
                self.thumbs.move_to_end(key)
                return self.thumbs[key], "image/jpeg"
        data = self._render_thumbnail(image_id, size, face_id)
        with self.thumbs_lock:
            self.thumbs[key] = data
            while len(self.thumbs) > 512:
                self.thumbs.popitem(last=False)
        return data, "image/jpeg"

    def _render_thumbnail(self, image_id: int, size: int, face_id: int | None) -> bytes:
        from PIL import Image
        from ..image import load_image
        path = self._path(image_id)
        try:
            picture = Image.fromarray(load_image(path))   # same orientation as the indexed boxes
        except (OSError, NnliteError):
            raise HttpError(404, f"image {image_id} cannot be read any more") from None
        if face_id is not None:
            box = next((f["box"] for f in self.image(image_id)["faces"] if f["id"] == face_id), None)
            if box is None:
                raise HttpError(404, f"image {image_id} has no face {face_id}")
            x, y, w, h = box
            m = 0.25 * max(w, h)   # some hair and chin around the detector's tight box
            picture = picture.crop((int(max(x - m, 0)), int(max(y - m, 0)),
                                    int(min(x + w + m, picture.width)), int(min(y + h + m, picture.height))))
        picture.thumbnail((size, size))
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=85)
        return out.getvalue()

    def _path(self, image_id: int) -> str:
        with self.db_lock:
            path = self.library.path_of(image_id)
        if path is None:
            raise HttpError(404, f"no image {image_id} in the index")
        return path

    # -- uploads -----------------------------------------------------------------------------------

    def analyze(self, data: bytes) -> dict:
        """Labels and faces of an uploaded photo (not stored). Descriptors are returned so the page
        can ask for the same person in the library."""
        if not data:
            raise HttpError(400, "empty upload: send the image file as the request body")
        try:
            pixels = decode(data)
        except NnliteError as exc:
            raise HttpError(400, f"not a readable image: {exc}") from None
        analysis = get_analyzer(self.spec).analyze(pixels)
        return {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "model": analysis.model,
                "labels": [{"label": l.label, "wnid": l.wnid, "score": l.score} for l in analysis.labels],
                "faces": [{"box": list(f.box), "score": f.score, "age": f.age, "gender": f.gender,
                           "gender_probability": f.gender_probability, "expression": f.expression,
                           "descriptor": [round(float(v), 6) for v in f.descriptor]} for f in analysis.faces]}


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


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def _content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
            ".webp": "image/webp", ".bmp": "image/bmp", ".tif": "image/tiff",
            ".tiff": "image/tiff"}.get(ext, "application/octet-stream")
