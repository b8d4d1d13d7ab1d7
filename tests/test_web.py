"""The web demo's HTTP API against a real server thread (fake analyzer): answers, JSON errors, upload
limits, and that no URL reaches a file outside the index."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket

import numpy as np
import pytest
from PIL import Image

from nnlite.library.analyze import AnalyzerSpec
from nnlite.library.indexer import index_folder
from nnlite.web.app import LibraryApp
from nnlite.web.server import make_server, serve_in_thread
from tests.test_library_fakes import FAKE, make_photo, person_descriptor

LIMIT = 4096


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("web")
    root = base / "photos"
    make_photo(root / "cat.png", (220, 20, 20), person=1, variant=0)
    make_photo(root / "trip" / "dog.png", (20, 180, 20), person=1, variant=1, faces=2)
    make_photo(root / "snack.png", (20, 20, 150), person=2, variant=0)
    for age, name in enumerate(["trip/dog.png", "cat.png", "snack.png"]):   # snack newest, dog oldest
        os.utime(root / name, ns=(1_700_000_000_000_000_000 + age * 10**9,) * 2)
    (base / "secret.txt").write_text("outside the index")
    db = base / "lib.db"
    index_folder(root, db, spec=AnalyzerSpec.of(FAKE))
    app = LibraryApp(db, AnalyzerSpec.of(FAKE), max_upload=LIMIT)
    server = make_server(app, port=0, quiet=True)
    serve_in_thread(server)
    yield {"port": server.server_address[1], "root": root}
    server.shutdown()
    server.server_close()
    app.close()


def exchange(site, method, url, body=None, headers=None):
    """One request on a fresh connection: (the response, its body)."""
    conn = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=10)
    conn.request(method, url, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def request(site, method, url, body=None, headers=None):
    response, data = exchange(site, method, url, body, headers)
    return response.status, response.getheader("Content-Type"), data


TYPES = {"/api/analyze": "image/png", "/api/faces/search": "application/json"}


def get_json(site, url, status=200, method="GET", body=None, headers=None):
    if method == "POST" and headers is None:
        headers = {"Content-Type": TYPES.get(url, "application/json")}
    code, kind, data = request(site, method, url, body, headers)
    assert (code, kind) == (status, "application/json"), data
    return json.loads(data)


def png_bytes(**kw) -> bytes:
    path = io.BytesIO()
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:] = (200, 30, 30)
    pixels[0, 0] = (kw.get("person", 1), kw.get("variant", 5), 1)
    Image.fromarray(pixels).save(path, format="PNG")
    return path.getvalue()


def test_page_and_status(site):
    code, kind, page = request(site, "GET", "/")
    assert code == 200 and kind.startswith("text/html") and b"/static/app.js" in page
    for url in ("/static/app.js", "/static/views.js", "/static/style.css", "/favicon.ico"):
        assert request(site, "GET", url)[0] == 200
    status = get_json(site, "/api/status")
    assert (status["images"], status["faces"], status["errors"]) == (3, 4, 0)


def test_search_image_file_and_thumbnails(site):
    answer = get_json(site, "/api/search?q=cat")
    assert answer["query"] == "cat" and [r["path"] for r in answer["results"]] == ["cat.png"]
    hit = answer["results"][0]
    info = get_json(site, f"/api/images/{hit['id']}")
    assert info["labels"][0]["label"] == "tabby" and len(info["faces"]) == 1
    code, kind, data = request(site, "GET", hit["image_url"])
    assert (code, kind, data) == (200, "image/png", (site["root"] / "cat.png").read_bytes())
    for url in (hit["thumb_url"] + "?size=100", f"{hit['thumb_url']}?face={info['faces'][0]['id']}"):
        code, kind, data = request(site, "GET", url)
        assert (code, kind) == (200, "image/jpeg") and Image.open(io.BytesIO(data)).size[0] > 0
    assert "error" in get_json(site, "/api/search?q=", 400)


def test_same_person_by_face_id_and_by_descriptor(site):
    cat = get_json(site, "/api/search?q=cat")["results"][0]
    face_id = get_json(site, f"/api/images/{cat['id']}")["faces"][0]["id"]
    similar = get_json(site, f"/api/faces/{face_id}/similar?top=3")["results"]
    assert similar[0]["face_id"] == face_id and similar[0]["distance"] == pytest.approx(0, abs=1e-6)
    assert [r["path"] for r in similar] == ["cat.png", "dog.png", "dog.png"]
    query = person_descriptor(2, 9).tolist()
    found = get_json(site, "/api/faces/search", method="POST", body=json.dumps({"descriptor": query, "top": 1}))
    assert [r["path"] for r in found["results"]] == ["snack.png"] and "face_url" in found["results"][0]


def test_analyze_upload(site):
    answer = get_json(site, "/api/analyze", method="POST", body=png_bytes())
    assert (answer["width"], answer["height"], answer["model"]) == (30, 20, "fake_classifier")
    assert answer["labels"][0]["label"] == "tabby" and len(answer["faces"]) == 1
    assert np.allclose(answer["faces"][0]["descriptor"], person_descriptor(1, 5), atol=1e-6)


@pytest.mark.parametrize("method, url, body, status", [
    ("POST", "/api/analyze", b"x" * (LIMIT + 1), 413),
    ("POST", "/api/analyze", b"definitely not an image", 400),
    ("POST", "/api/analyze", b"", 400),
    ("POST", "/api/faces/search", b"{not json", 400),
    ("POST", "/api/faces/search", b'{"descriptor": [1, 2, 3]}', 400),
    ("POST", "/api/faces/search", b'{"descriptor": "abc"}', 400),
    ("GET", "/api/images/999999", None, 404),
    ("GET", "/api/faces/999999/similar", None, 404),
    ("GET", "/api/search?q=cat&limit=ten", None, 400),
    ("GET", "/api/analyze", None, 405),
])
def test_bad_requests_get_clear_json_errors(site, method, url, body, status):
    answer = get_json(site, url, status, method, body)
    assert isinstance(answer["error"], str) and len(answer["error"]) > 10


def test_missing_content_length_is_411(site):
    with socket.create_connection(("127.0.0.1", site["port"]), timeout=10) as s:
        s.sendall(b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                  b"Connection: close\r\n\r\n")
        reply = b"".join(iter(lambda: s.recv(4096), b""))
    assert reply.startswith(b"HTTP/1.1 411") and b'"error"' in reply


@pytest.mark.parametrize("url", [
    "/../secret.txt", "/static/../app.py", "/static/%2e%2e/server.py", "/static/..%2f..%2fsecret.txt",
    "/api/images/1/../../../secret.txt", "/api/images/..%2f..%2fsecret.txt/file", "//etc/passwd",
    "/etc/passwd", "/api/images/1/file/../../../../etc/passwd", "/static/app.js/../../app.py",
    "/api/images/-1/file", "/api/images/1e3/file", "/static/", "/static/index.html",
])
def test_no_path_reaches_files_outside_the_index(site, url):
    code, kind, data = request(site, "GET", url)
    assert (code, kind) == (404, "application/json")
    assert b"outside the index" not in data and b"root:" not in data and b"import" not in data


def test_library_pages_newest_first(site):
    first = get_json(site, "/api/images?limit=2")
    rest = get_json(site, "/api/images?offset=2&limit=2")
    assert first["total"] == rest["total"] == 3 and len(first["images"]) == 2 and len(rest["images"]) == 1
    listed = first["images"] + rest["images"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in site["root"].rglob("*.png")}
    assert [i["path"] for i in listed] == sorted(mtimes, key=lambda n: -mtimes[n])
    dog = next(i for i in listed if i["path"] == "dog.png")
    assert (dog["label"], dog["faces"], dog["thumb_url"]) == ("golden_retriever", 2, f"/api/images/{dog['id']}/thumb")


def test_labels_unreadable_and_landmarks(site):
    labels = get_json(site, "/api/labels?top=12")["labels"]
    words = {(l["label"], l["count"], l["kind"]) for l in labels}
    person = next(l for l in labels if l["label"] == "person")   # the library has faces: words people type first
    assert person["kind"] == "face" and person["count"] == len(get_json(site, "/api/search?q=person")["results"])
    assert {w for w in words if w[2] == "label"} >= {("tabby", 1, "label"), ("hotdog", 1, "label")}
    assert labels[0]["kind"] == "face" and all(l["count"] > 0 for l in labels)
    assert get_json(site, "/api/unreadable") == {"images": []}
    dog = next(i for i in get_json(site, "/api/images")["images"] if i["path"] == "dog.png")
    faces = get_json(site, f"/api/images/{dog['id']}")["faces"]
    assert [f["landmarks"][0] for f in faces] == [[0.0, 0.0], [1.0, 1.0]] and len(faces[0]["landmarks"]) == 68
    status = get_json(site, "/api/status")
    assert (status["match_threshold"], status["max_upload"]) == (0.6, LIMIT)


def test_jpeg_thumbnails_follow_exif_orientation(tmp_path):
    """Whole-photo thumbnails of JPEGs are decoded at reduced scale; they must still be upright like
    the indexed boxes (EXIF orientation 6: stored landscape, shown portrait)."""
    root = tmp_path / "photos"
    root.mkdir()
    stored = Image.new("RGB", (300, 200), (200, 30, 30))
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(root / "turned.jpg", format="JPEG", exif=exif)
    index_folder(root, tmp_path / "lib.db", spec=AnalyzerSpec.of(FAKE))
    app = LibraryApp(tmp_path / "lib.db", AnalyzerSpec.of(FAKE))
    try:
        info = app.photos(0, 10)["images"][0]
        assert (info["width"], info["height"]) == (200, 300)
        for size in (96, 256, 1024):
            data, kind = app.thumbnail(info["id"], size)
            width, height = Image.open(io.BytesIO(data)).size
            assert kind == "image/jpeg" and height > width and max(width, height) == min(size, 300)
    finally:
        app.close()
