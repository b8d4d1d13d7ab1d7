"""The web demo's HTTP layer: stdlib ``ThreadingHTTPServer``, a fixed route table, JSON errors.

Static files are a fixed set read from nnlite/web/static (no path from the URL reaches the file
system); library images are reached only by their index id (see app.py). Every error is JSON:
``{"error": message}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .app import HttpError, LibraryApp

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
STATIC = {"/": "index.html", "/static/app.js": "app.js", "/static/style.css": "style.css"}
DRAIN_LIMIT = 64 * 1024 * 1024   # read and drop oversized uploads up to this, so the client sees the 413

# (method, pattern) -> handler name; patterns match the URL path only
ROUTES = [
    ("GET", r"/api/status", "get_status"),
    ("GET", r"/api/search", "get_search"),
    ("GET", r"/api/people", "get_people"),
    ("GET", r"/api/images/([0-9]{1,18})", "get_image"),
    ("GET", r"/api/images/([0-9]{1,18})/file", "get_file"),
    ("GET", r"/api/images/([0-9]{1,18})/thumb", "get_thumb"),
    ("GET", r"/api/faces/([0-9]{1,18})/similar", "get_similar"),
    ("POST", r"/api/analyze", "post_analyze"),
    ("POST", r"/api/faces/search", "post_face_search"),
]


class Handler(BaseHTTPRequestHandler):
    app: LibraryApp            # set on the subclass made by make_server
    server_version = "nnlite"
    protocol_version = "HTTP/1.1"
    quiet = False

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if method == "GET" and url.path in STATIC:
                return self._static(STATIC[url.path])
            other_verb = False
            for verb, pattern, name in ROUTES:
                match = re.fullmatch(pattern, url.path)
                if match and verb == method:
                    return getattr(self, name)(*(int(g) for g in match.groups()))
                other_verb = other_verb or bool(match)
            if other_verb:
                raise HttpError(405, f"{url.path} does not take {method} (see nnlite/web/API.md)")
            raise HttpError(404, f"nothing at {url.path}")
        except HttpError as exc:
            self._json({"error": exc.message}, exc.status)
        except Exception as exc:   # a bug must still answer JSON, and not kill the server thread
            print(f"nnlite serve: {method} {url.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._json({"error": f"internal error: {type(exc).__name__}"}, 500)

    # -- routes --------------------------------------------------------------------------------------

    def get_status(self):
        self._json(self.app.status())

    def get_search(self):
        self._json(self.app.search(self.query.get("q", ""), self._int("limit", 50)))

    def get_people(self):
        self._json(self.app.people(self._float("threshold") or 0.5, self._int("min_faces", 2)))

    def get_image(self, image_id):
        self._json(self.app.image(image_id))

    def get_file(self, image_id):
        self._send(*self.app.file(image_id), cache=True)

    def get_thumb(self, image_id):
        face = self.query.get("face")
        if face is not None and not face.isdigit():
            raise HttpError(400, "face must be a face id (an integer)")
        self._send(*self.app.thumbnail(image_id, self._int("size", 256), int(face) if face else None),
                   cache=True)

    def get_similar(self, face_id):
        self._json(self.app.similar(face_id, self._int("top", 12), self._float("threshold")))

    def post_analyze(self):
        self._json(self.app.analyze(self._body()))

    def post_face_search(self):
        try:
            request = json.loads(self._body() or b"null")
        except ValueError:
            raise HttpError(400, "the body must be JSON: {\"descriptor\": [128 numbers], \"top\": 10}") from None
        if not isinstance(request, dict) or "descriptor" not in request:
            raise HttpError(400, "the body must be a JSON object with a \"descriptor\" list")
        threshold = request.get("threshold")
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise HttpError(400, "threshold must be a number")
        top = request.get("top", 12)
        if not isinstance(top, int):
            raise HttpError(400, "top must be an integer")
        self._json(self.app.face_search(request["descriptor"], top, threshold))

    # -- helpers -------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HttpError(411, "send the upload with a Content-Length header")
        length = int(length)
        if length > self.app.max_upload:
            self._drain(length)
            raise HttpError(413, f"upload of {length} bytes is over the limit of {self.app.max_upload} bytes")
        return self.rfile.read(length)

    def _drain(self, length: int) -> None:
        """Swallow an oversized body (up to DRAIN_LIMIT) so the client can read our 413; past that, hang up."""
        if length > DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def _int(self, name: str, default: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        if not re.fullmatch(r"-?\d+", raw):
            raise HttpError(400, f"{name} must be an integer, got {raw!r}")
        return int(raw)

    def _float(self, name: str) -> float | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return float(raw)
        except ValueError:
            raise HttpError(400, f"{name} must be a number, got {raw!r}") from None

    def _static(self, name: str) -> None:
        path = STATIC_DIR / name
        self._send(path.read_bytes(), STATIC_TYPES[path.suffix])

    def _json(self, payload: dict, status: int = 200) -> None:
        self._send(json.dumps(payload).encode(), "application/json", status)

    def _send(self, data: bytes, content_type: str, status: int = 200, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "private, max-age=300" if cache else "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)


def make_server(app: LibraryApp, host: str = "127.0.0.1", port: int = 8080, quiet: bool = False) -> ThreadingHTTPServer:
    """A server bound to (host, port) (port 0: any free port); call serve_forever() or use serve_in_thread."""
    handler = type("LibraryHandler", (Handler,), {"app": app, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
