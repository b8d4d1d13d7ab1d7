"""The web demo serves the indexed photos and nothing else, and answers every bad request with a JSON
4xx: symbolic links and swapped files are refused, foreign Host names and cross-site POSTs are
refused, uploads are bounded in bytes and decoded pixels, and the usual security headers are sent."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from nnlite.library.analyze import AnalyzerSpec
from nnlite.library.indexer import index_folder
from nnlite.web.app import LibraryApp
from nnlite.web.handler import STATIC_DIR
from nnlite.web.server import make_server, serve_in_thread
from tests.test_library_fakes import FAKE, FakeAnalyzer, make_photo
from tests.test_web import exchange

COUNTING = "tests.test_web_guards:CountingAnalyzer"


class CountingAnalyzer(FakeAnalyzer):
    """FakeAnalyzer that records how many analyses ran at the same time."""
    lock = threading.Lock()
    running = peak = 0

    def analyze(self, pixels):
        cls = CountingAnalyzer
        with cls.lock:
            cls.running += 1
            cls.peak = max(cls.peak, cls.running)
        time.sleep(0.05)
        try:
            return super().analyze(pixels)
        finally:
            with cls.lock:
                cls.running -= 1


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("guards")
    root = base / "photos"
    make_photo(root / "cat.png", (220, 20, 20), person=1)
    make_photo(root / "big.png", (220, 20, 20), person=1, size=(400, 300))   # over the upload pixel limit
    make_photo(root / "swapped.png", (20, 180, 20), person=2)
    make_photo(root / "relinked.png", (20, 20, 180))
    make_photo(base / "outside.png", (200, 200, 20))
    (root / "evil.jpg").symlink_to("/etc/passwd")
    (root / "linked.png").symlink_to(base / "outside.png")
    db = base / "lib.db"
    index_folder(root, db, spec=AnalyzerSpec.of(FAKE))
    # after indexing: one file gets other content of the same size, one becomes a link to a secret
    make_photo(root / "swapped.png", (20, 181, 20), person=2)
    (root / "relinked.png").unlink()
    (root / "relinked.png").symlink_to("/etc/passwd")
    app = LibraryApp(db, AnalyzerSpec.of(COUNTING), max_upload=1 << 20, max_pixels=100_000, max_analyses=2)
    server = make_server(app, port=0, quiet=True)
    serve_in_thread(server)
    ids = {os.path.basename(p): i for i, p in app.library.conn.execute("SELECT id, path FROM images")}
    yield {"port": server.server_address[1], "ids": ids}
    server.shutdown()
    server.server_close()
    app.close()


def raw(site, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes."""
    with socket.create_connection(("127.0.0.1", site["port"]), timeout=10) as s:
        s.sendall(data)
        return b"".join(iter(lambda: s.recv(65536), b""))


def json_error(response, data, status):
    assert response.status == status, data
    assert response.getheader("Content-Type") == "application/json"
    message = json.loads(data)["error"]
    assert isinstance(message, str) and len(message) > 10
    return message


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but carries (almost) no data: a decompression bomb's header."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# -- files ---------------------------------------------------------------------------------------

def test_indexed_file_is_served(site):
    response, data = exchange(site, "GET", f"/api/images/{site['ids']['cat.png']}/file")
    assert response.status == 200 and data.startswith(b"\x89PNG")
    # the upload limit (100,000 pixels here) does not apply to the library's own photos
    response, data = exchange(site, "GET", f"/api/images/{site['ids']['big.png']}/thumb?size=512")
    assert response.status == 200 and response.getheader("Content-Type") == "image/jpeg"


@pytest.mark.parametrize("name, status", [("evil.jpg", 404), ("linked.png", 403), ("relinked.png", 403),
                                          ("swapped.png", 409)])
@pytest.mark.parametrize("suffix", ["/file", "/thumb", "/thumb?size=96"])
def test_links_and_changed_files_are_never_served(site, name, status, suffix):
    response, data = exchange(site, "GET", f"/api/images/{site['ids'][name]}{suffix}")
    json_error(response, data, status)
    assert b"root:" not in data


# -- who may ask ---------------------------------------------------------------------------------

@pytest.mark.parametrize("host, status", [("127.0.0.1", 200), ("localhost:8080", 200), ("[::1]:80", 200),
                                          ("LOCALHOST.", 200), ("10.1.2.3", 200), ("evil.example", 421),
                                          ("evil.example:8080", 421), ("localhost.evil.example", 421),
                                          ("localhost:x", 421), ("", 421)])
def test_host_header_must_name_this_server(site, host, status):
    response, data = exchange(site, "GET", "/api/status", headers={"Host": host})
    assert response.status == status, data
    assert response.getheader("Content-Type") == "application/json"


def test_request_without_host_is_refused(site):
    reply = raw(site, b"GET /api/status HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400") and b'"error"' in reply


@pytest.mark.parametrize("url, kind", [("/api/analyze", "text/plain"),
                                       ("/api/analyze", "application/x-www-form-urlencoded"),
                                       ("/api/analyze", "multipart/form-data; boundary=x"),
                                       ("/api/analyze", None),
                                       ("/api/faces/search", "text/plain;charset=UTF-8"),
                                       ("/api/faces/search", "image/png")])
def test_post_needs_a_content_type_that_cross_site_forms_cannot_send(site, url, kind):
    headers = {"Content-Type": kind} if kind else {}
    response, data = exchange(site, "POST", url, body=b"{}", headers=headers)
    assert "Content-Type" in json_error(response, data, 415)


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}])
def test_cross_site_post_is_refused(site, headers):
    response, data = exchange(site, "POST", "/api/faces/search", body=b'{"descriptor": []}',
                             headers={"Content-Type": "application/json", **headers})
    json_error(response, data, 403)


def test_same_origin_post_is_accepted(site):
    body = json.dumps({"descriptor": [0.0] * 128, "top": 1})
    response, data = exchange(site, "POST", "/api/faces/search", body=body,
                             headers={"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin",
                                      "Origin": f"http://127.0.0.1:{site['port']}"})
    assert response.status == 200 and len(json.loads(data)["results"]) == 1


# -- headers and the page ------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/", "/static/app.js", "/api/status", "/api/images/999", "/nowhere"])
def test_security_headers(site, url):
    response, _ = exchange(site, "GET", url)
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    csp = response.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
    assert response.getheader("X-Frame-Options") == "DENY"


def test_page_has_no_inline_script_or_style():
    """The CSP forbids inline code, so the page must not rely on any."""
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\ssrc=)", html) and "<style" not in html
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)
    for js in STATIC_DIR.glob("*.js"):
        text = js.read_text()
        assert "innerHTML" not in text and "setAttribute(\"style\"" not in text and "eval(" not in text


# -- malformed requests: JSON 4xx, never HTML or 500 ---------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE", "BREW"])
def test_other_methods_are_json_405(site, method):
    response, data = exchange(site, method, "/api/status")
    assert response.status == 405 and response.getheader("Content-Type") == "application/json"
    if method != "HEAD":
        assert "GET and POST" in json.loads(data)["error"]


@pytest.mark.parametrize("head, status", [
    (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
    (b"Content-Length: \xc2\xb2\r\n\r\nxx", 400),
    (b"Content-Length: -5\r\n\r\n", 400),
    (b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    (b"Content-Length: 10\r\n\r\nabc", 400),     # the body ends early (client closes its side)
])
def test_bad_bodies_get_one_json_answer_and_a_closed_connection(site, head, status):
    with socket.create_connection(("127.0.0.1", site["port"]), timeout=10) as s:
        s.sendall(b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n" + head)
        s.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 %d" % status), reply[:200]
    assert reply.count(b"HTTP/1.1") == 1 and b"application/json" in reply and b"<html" not in reply.lower()


@pytest.mark.parametrize("data, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /api/status HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", 505),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
])
def test_malformed_requests_are_json(site, data, status):
    reply = raw(site, data)
    assert reply.startswith((b"HTTP/1.1 %d" % status, b"HTTP/1.0 %d" % status)), reply[:200]
    assert b"application/json" in reply and b"<html" not in reply.lower()


def test_deeply_nested_json_is_400(site):
    response, data = exchange(site, "POST", "/api/faces/search", body=b"[" * 50000 + b"]" * 50000,
                             headers={"Content-Type": "application/json"})
    json_error(response, data, 413)   # over the 64 KiB a face search needs
    response, data = exchange(site, "POST", "/api/faces/search", body=b"[" * 30000,
                             headers={"Content-Type": "application/json"})
    json_error(response, data, 400)


@pytest.mark.parametrize("url", ["/api/search?q=cat&limit=-1", "/api/search?q=cat&limit=0",
                                 "/api/search?q=cat&limit=100000", "/api/faces/1/similar?top=0",
                                 "/api/faces/1/similar?top=-3", "/api/faces/1/similar?threshold=nan",
                                 "/api/faces/1/similar?threshold=-1", "/api/people?threshold=inf",
                                 "/api/people?min_faces=0", "/api/images?limit=-1", "/api/images?offset=-1",
                                 "/api/labels?top=0", "/api/images/1/thumb?size=0",
                                 "/api/images/1/thumb?face=-1", "/api/search?q=cat&limit=1%00"])
def test_out_of_range_parameters_are_400(site, url):
    response, data = exchange(site, "GET", url)
    json_error(response, data, 400)


@pytest.mark.parametrize("body", [{"descriptor": [0] * 128, "top": 0}, {"descriptor": [0] * 128, "top": True},
                                  {"descriptor": [True] * 128}, {"descriptor": [0] * 127},
                                  {"descriptor": [0] * 128, "threshold": "x"}, [1, 2]])
def test_bad_face_search_bodies_are_400(site, body):
    response, data = exchange(site, "POST", "/api/faces/search", body=json.dumps(body),
                             headers={"Content-Type": "application/json"})
    json_error(response, data, 400)


# -- upload limits -------------------------------------------------------------------------------

def test_upload_pixel_limit_is_checked_before_decoding(site):
    started = time.perf_counter()
    response, data = exchange(site, "POST", "/api/analyze", body=png_header(8000, 8000),
                             headers={"Content-Type": "image/png"})
    assert "64.0 MP" in json_error(response, data, 413) and time.perf_counter() - started < 2


def test_upload_over_byte_limit_is_413(site):
    response, data = exchange(site, "POST", "/api/analyze", body=b"x" * ((1 << 20) + 1),
                             headers={"Content-Type": "image/png"})
    assert "--max-upload-mb" in json_error(response, data, 413)


def test_analyses_run_at_most_max_analyses_at_once(site, tmp_path):
    photo = Path(make_photo(tmp_path / "p.png", (200, 30, 30), person=1)).read_bytes()
    answers = []

    def upload():
        response, _ = exchange(site, "POST", "/api/analyze", body=photo, headers={"Content-Type": "image/png"})
        answers.append(response.status)

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 8 and CountingAnalyzer.peak == 2
