"""``nnlite fetch``: downloads land atomically in the models cache, bad downloads leave nothing behind.

Everything is served locally (file:// URLs and an http.server on 127.0.0.1); the real Keras URLs are
never contacted.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from nnlite.cli import main
from nnlite.errors import WeightsError
from nnlite.fetch import REMOTE_WEIGHTS, cached_weights, fetch

OFFICIAL = REMOTE_WEIGHTS["resnet50"].filename


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NNLITE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def h5_file(tmp_path) -> tuple[Path, str]:
    """A small, real HDF5 file (about 400 kB) and its MD5."""
    path = tmp_path / "src" / "weights.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f.create_dataset("w", data=np.random.default_rng(0).standard_normal(100_000).astype(np.float32))
    return path, hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def leftovers(home: Path) -> list[str]:
    models = home / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_file_url_download_lands_in_the_cache_with_progress(home, h5_file):
    src, md5 = h5_file
    progress = io.StringIO()
    path = fetch("resnet50", url=src.as_uri(), md5=md5, progress=progress)
    assert path == home / "models" / OFFICIAL
    assert path.read_bytes() == src.read_bytes()
    assert leftovers(home) == [OFFICIAL]               # no temporary file left
    assert "weights.h5" in progress.getvalue() and "MB" in progress.getvalue()
    assert cached_weights("resnet50") == path


def test_wrong_digest_leaves_no_file(home, h5_file):
    src, _ = h5_file
    with pytest.raises(WeightsError, match="MD5"):
        fetch("resnet50", url=src.as_uri(), progress=None)   # the official MD5 cannot match this file
    assert leftovers(home) == []


def test_a_file_that_is_not_hdf5_is_refused(home, tmp_path):
    page = tmp_path / "error.html"
    page.write_text("<html>Access denied</html>")
    with pytest.raises(WeightsError, match="HDF5"):
        fetch("xception", url=page.as_uri(), md5="", progress=None)
    assert leftovers(home) == []


def test_existing_file_is_kept_unless_forced(home, h5_file):
    src, md5 = h5_file
    target = home / "models" / OFFICIAL
    target.parent.mkdir(parents=True)
    target.write_bytes(b"already here")
    assert fetch("resnet50", url=src.as_uri(), md5=md5, progress=None).read_bytes() == b"already here"
    assert fetch("resnet50", url=src.as_uri(), md5=md5, force=True, progress=None).read_bytes() \
        == src.read_bytes()


def test_offline_or_missing_source_is_a_clear_error(home, tmp_path):
    with pytest.raises(WeightsError, match="cannot download .*--url"):
        fetch("resnet50", url=(tmp_path / "nothing.h5").as_uri(), progress=None)
    assert leftovers(home) == []


def test_unknown_model_lists_the_known_ones(home):
    with pytest.raises(WeightsError, match="nasnet_mobile, pnasnet_large, resnet50, xception"):
        fetch("vgg16")


class _Server:
    """http.server on 127.0.0.1 serving ``body``, announcing ``length`` bytes (a lie makes a truncation)."""

    def __init__(self, body: bytes, length: int | None = None, status: int = 200):
        outer = self
        self.body, self.length, self.status = body, len(body) if length is None else length, status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):   # noqa: N802 - http.server's naming
                self.send_response(outer.status)
                self.send_header("Content-Length", str(outer.length if outer.status == 200 else 0))
                self.end_headers()
                if outer.status == 200:
                    self.wfile.write(outer.body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/NASNet-mobile.h5"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_download(home, h5_file):
    src, md5 = h5_file
    with _Server(src.read_bytes()) as url:
        path = fetch("nasnet_mobile", url=url, md5=md5, progress=None)
    assert path.read_bytes() == src.read_bytes()


def test_http_truncated_download_leaves_no_file(home, h5_file):
    src, md5 = h5_file
    body = src.read_bytes()
    with _Server(body[: len(body) // 2], length=len(body)) as url:
        with pytest.raises(WeightsError, match="truncated"):
            fetch("nasnet_mobile", url=url, md5=md5, progress=None)
    assert leftovers(home) == []


def test_http_error_status_is_reported(home):
    with _Server(b"", status=404) as url:
        with pytest.raises(WeightsError, match="HTTP 404"):
            fetch("nasnet_mobile", url=url, progress=None)
    assert leftovers(home) == []


def test_cli_fetch(home, h5_file, capsys):
    src, md5 = h5_file
    assert main(["fetch", "xception", "--url", src.as_uri(), "--md5", md5]) == 0
    saved = home / "models" / REMOTE_WEIGHTS["xception"].filename
    assert capsys.readouterr().out.strip() == str(saved)
    assert main(["fetch", "xception", "--url", src.as_uri(), "--md5", "0" * 32, "--force"]) == 2
    assert "MD5" in capsys.readouterr().err
    assert saved.read_bytes() == src.read_bytes()       # the failed forced download kept the good file
