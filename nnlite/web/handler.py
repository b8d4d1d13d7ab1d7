"""The web demo's HTTP requests: a fixed route table, guards, and JSON for every answer but images.

Guards, in the order they run:
- ``Host`` must name this server (DNS rebinding): an IP literal, ``localhost``, the bound name or a
  name given with ``--allow-host``.
- A POST must carry a content type that a cross-site page cannot send without a CORS preflight
  (which this server never grants): ``image/*`` or ``application/octet-stream`` for an upload,
  ``application/json`` for a face search. A cross-site ``Origin`` or ``Sec-Fetch-Site`` is refused too.
- The body needs a plain ``Content-Length`` within the limit (no chunked uploads).
Static files are a fixed set read from nnlite/web/static (no path from the URL reaches the file
system); library images are reached only by their index id (see app.py, files.py).
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .app import HttpError, LibraryApp

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
STATIC = {"/": "index.html", "/static/app.js": "app.js", "/static/views.js": "views.js",
          "/static/style.css": "style.css"}
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           b'fill="#1d2330"/><rect x="3" y="4" width="10" height="8" fill="none" stroke="#2fd07a" '
           b'stroke-width="1.5"/></svg>')
DRAIN_LIMIT = 64 * 1024 * 1024   # read and drop oversized uploads up to this, so the client sees the 413
MAX_JSON_BODY = 64 * 1024        # a face search is 128 numbers
# no inline script or style anywhere: the page's own files, images from here or from a picked file
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
UPLOAD_TYPES = re.compile(r"(image/[a-z0-9.+-]+|application/octet-stream)\s*(;.*)?", re.IGNORECASE)
JSON_TYPE = re.compile(r"application/json\s*(;.*)?", re.IGNORECASE)

# (method, pattern, handler name), filled by @route on each handler below; patterns match the URL path only
ROUTES: list[tuple[str, str, str]] = []


def route(method: str, pattern: str):
    """Register the decorated Handler method as the answer to ``method`` on paths matching ``pattern``;
    the pattern's groups (ids) are passed to it as ints."""
    def register(handler):
        ROUTES.append((method, pattern, handler.__name__))
        return handler
    return register


class Handler(BaseHTTPRequestHandler):
    app: LibraryApp            # set on the subclass made by make_server
    allowed_hosts: frozenset = frozenset({"localhost"})
    server_version = "nnlite"
    protocol_version = "HTTP/1.1"
    quiet = False
    disable_nagle_algorithm = True   # headers and body go out at once: no 40 ms delayed-ACK stalls

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _other(self):
        self.close_connection = True   # any body was not read
        self._json({"error": f"{self.command} is not supported: the API takes GET and POST "
                             f"(see nnlite/web/API.md)"}, 405, {"Allow": "GET, POST"})

    do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_TRACE = do_CONNECT = _other

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            self._check_host()
            self.query = {k: v[-1] for k, v in parse_qs(url.query, max_num_fields=20).items()}
            if method == "GET" and url.path in STATIC:
                return self._static(STATIC[url.path])
            if method == "GET" and url.path == "/favicon.ico":
                return self._send(FAVICON, "image/svg+xml", cache=True)
            other_verb = False
            for verb, pattern, name in ROUTES:
                match = re.fullmatch(pattern, url.path)
                if match and verb == method:
                    if method == "POST":
                        self._check_cross_site()
                    return getattr(self, name)(*(int(g) for g in match.groups()))
                other_verb = other_verb or bool(match)
            if other_verb:
                raise HttpError(405, f"{url.path} does not take {method} (see nnlite/web/API.md)", close=True)
            raise HttpError(404, f"nothing at {url.path}", close=method != "GET")
        except HttpError as exc:
            self.close_connection = self.close_connection or exc.close
            self._json({"error": exc.message}, exc.status)
        except (ConnectionError, TimeoutError):
            raise   # the client hung up or stalled: the server logs one line
        except ValueError as exc:   # parse_qs over max_num_fields and the like
            self.close_connection = True
            self._json({"error": f"bad request: {exc}"}, 400)
        except Exception as exc:  # noqa: BLE001 - a bug must still answer JSON, and not kill the server thread
            print(f"nnlite serve: {method} {url.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._json({"error": f"internal error: {type(exc).__name__}"}, 500)

    # -- guards --------------------------------------------------------------------------------------

    def _check_host(self) -> None:
        host = self.headers.get("Host")
        if host is None:
            raise HttpError(400, "a Host header is required", close=True)
        if not host_allowed(host, self.allowed_hosts):
            raise HttpError(421, f"this server does not answer for host {host[:100]!r} (start it with "
                                 f"--allow-host NAME to accept that name)", close=True)

    def _check_cross_site(self) -> None:
        origin = self.headers.get("Origin")
        if self.headers.get("Sec-Fetch-Site") == "cross-site" or \
                (origin is not None and urlsplit(origin).netloc.lower() != self.headers["Host"].lower()):
            raise HttpError(403, "cross-site requests are refused", close=True)

    # -- routes --------------------------------------------------------------------------------------

    @route("GET", r"/api/status")
    def get_status(self):
        self._json(self.app.status())

    @route("GET", r"/api/images")
    def get_photos(self):
        self._json(self.app.photos(self._int("offset", 0), self._int("limit", 60)))

    @route("GET", r"/api/unreadable")
    def get_unreadable(self):
        self._json(self.app.unreadable())

    @route("GET", r"/api/labels")
    def get_labels(self):
        self._json(self.app.labels(self._int("top", 12)))

    @route("GET", r"/api/search")
    def get_search(self):
        self._json(self.app.search(self.query.get("q", ""), self._int("limit", 50)))

    @route("GET", r"/api/people")
    def get_people(self):
        threshold = self._float("threshold")
        self._json(self.app.people(0.5 if threshold is None else threshold, self._int("min_faces", 2)))

    @route("GET", r"/api/images/([0-9]{1,18})")
    def get_image(self, image_id):
        self._json(self.app.image(image_id))

    @route("GET", r"/api/images/([0-9]{1,18})/file")
    def get_file(self, image_id):
        self._send(*self.app.file(image_id), cache=True)

    @route("GET", r"/api/images/([0-9]{1,18})/thumb")
    def get_thumb(self, image_id):
        face = self.query.get("face")
        if face is not None and not re.fullmatch(r"[0-9]{1,18}", face):
            raise HttpError(400, "face must be a face id (an integer)")
        self._send(*self.app.thumbnail(image_id, self._int("size", 256), int(face) if face else None),
                   cache=True)

    @route("GET", r"/api/faces/([0-9]{1,18})/similar")
    def get_similar(self, face_id):
        self._json(self.app.similar(face_id, self._int("top", 12), self._float("threshold")))

    @route("POST", r"/api/analyze")
    def post_analyze(self):
        self._content_type(UPLOAD_TYPES, "the image file's own type (image/jpeg, image/png, ...) or "
                                         "application/octet-stream")
        self._json(self.app.analyze(self._body(self.app.max_upload)))

    @route("POST", r"/api/faces/search")
    def post_face_search(self):
        self._content_type(JSON_TYPE, "application/json")
        try:
            request = json.loads(self._body(MAX_JSON_BODY) or b"null")
        except (ValueError, RecursionError):
            raise HttpError(400, "the body must be JSON: {\"descriptor\": [128 numbers], \"top\": 10}") from None
        if not isinstance(request, dict) or "descriptor" not in request:
            raise HttpError(400, "the body must be a JSON object with a \"descriptor\" list")
        threshold = request.get("threshold")
        if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)):
            raise HttpError(400, "threshold must be a number")
        top = request.get("top", 12)
        if not isinstance(top, int) or isinstance(top, bool):
            raise HttpError(400, "top must be an integer")
        self._json(self.app.face_search(request["descriptor"], top, threshold))

    # -- helpers -------------------------------------------------------------------------------------

    def _content_type(self, allowed: re.Pattern, wanted: str) -> None:
        kind = self.headers.get("Content-Type", "")
        if not allowed.fullmatch(kind.strip()):
            raise HttpError(415, f"Content-Type must be {wanted}, got {kind[:80]!r}", close=True)

    def _body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding") is not None:
            raise HttpError(411, "chunked uploads are not accepted: send the body with a Content-Length",
                            close=True)
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise HttpError(411, "send the body with a Content-Length header", close=True)
        if len(lengths) > 1 or not re.fullmatch(r"[0-9]{1,15}", lengths[0].strip()):
            raise HttpError(400, f"bad Content-Length {lengths[0][:40]!r}: expected one whole number of bytes",
                            close=True)
        length = int(lengths[0])
        if length > limit:
            self._drain(length)
            raise HttpError(413, f"body of {length} bytes is over the limit of {limit} bytes"
                                 + (" (the server's --max-upload-mb)" if limit == self.app.max_upload else ""))
        data = self.rfile.read(length)
        if len(data) < length:
            raise HttpError(400, f"the body ended after {len(data)} of {length} bytes", close=True)
        self.server.request_read(self)   # the request is in: the read deadline no longer applies
        return data

    def _drain(self, length: int) -> None:
        """Swallow an oversized body (up to DRAIN_LIMIT) so the client can read our 413; past that, hang up."""
        if length > DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                break
            length -= len(chunk)

    def _int(self, name: str, default: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        if not re.fullmatch(r"-?[0-9]{1,12}", raw):
            raise HttpError(400, f"{name} must be an integer, got {raw[:40]!r}")
        return int(raw)

    def _float(self, name: str) -> float | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return float(raw[:40])
        except ValueError:
            raise HttpError(400, f"{name} must be a number, got {raw[:40]!r}") from None

    def _static(self, name: str) -> None:
        path = STATIC_DIR / name
        self._send(path.read_bytes(), STATIC_TYPES[path.suffix])

    def _json(self, payload: dict, status: int = 200, headers: dict | None = None) -> None:
        self._send(json.dumps(payload).encode(), "application/json", status, headers=headers)

    def _send(self, data: bytes, content_type: str, status: int = 200, cache: bool = False,
              headers: dict | None = None) -> None:
        if self.server.busy():
            self.close_connection = True   # free this worker for the connections waiting
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(data)),
                            "Cache-Control": "private, max-age=300" if cache else "no-store",
                            **SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, header too long, unknown method) as JSON."""
        if code == 501:   # a method http.server has no do_X for
            code, message = 405, f"{self.command} is not supported: the API takes GET and POST"
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"   # a status line even before the request line parsed
        try:
            self._json({"error": message or explain or "bad request"}, code if 400 <= code < 600 else 400)
        except OSError:
            pass

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)


def host_allowed(host: str, names: frozenset) -> bool:
    """Is ``host`` (a Host header) an IP literal or one of ``names``? A rebinding attack needs a DNS
    name it controls, so literal addresses are safe to accept."""
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host
    else:
        name, _, port = host.partition(":")
        if port and not port.isdigit():
            return False
    name = name.rstrip(".")
    if name in names:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False
