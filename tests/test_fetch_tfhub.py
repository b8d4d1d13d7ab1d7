"""``nnlite fetch pnasnet_large``: a TF-Hub module archive (.tar.gz) lands unpacked in the models cache, and a
hostile or broken archive leaves nothing behind.

Archives are built here and served as file:// URLs or by an http.server on 127.0.0.1; tfhub.dev is never
contacted.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from nnlite.archive import unpack
from nnlite.cli import main
from nnlite.errors import WeightsError
from nnlite.fetch import cached_weights, fetch, module_dir
from tests.test_fetch import _Server

MODULE = {"saved_model.pb": b"graph", "tfhub_module.pb": b"\x08\x01",
          "variables/variables.index": b"index", "variables/variables.data-00000-of-00001": b"\0" * 4096}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NNLITE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def make_archive(path: Path, files: dict[str, bytes], prefix: str = "./", extra=None) -> Path:
    """A .tar.gz holding ``files`` (as the hub serves it: members under ``./``) and ``extra`` raw members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or ():
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def leftovers(home: Path) -> list[str]:
    models = home / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_module_archive_is_unpacked_into_the_cache(home, tmp_path):
    src = make_archive(tmp_path / "src" / "module.tar.gz", MODULE)
    path = fetch("pnasnet_large", url=src.as_uri(), progress=None)
    assert path == home / "models" / "pnasnet_large" == module_dir("pnasnet_large") == cached_weights("pnasnet_large")
    for name, data in MODULE.items():
        assert (path / name).read_bytes() == data
    assert leftovers(home) == ["pnasnet_large"]                 # no archive or temporary folder left
    record = json.loads((path / "nnlite-fetch.json").read_text())
    assert record == {"url": src.as_uri(), "archive_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
                      "licence": "CC-BY-3.0 (TF-Hub module)"}


def test_http_download_and_forced_refetch(home, tmp_path):
    old = make_archive(tmp_path / "a.tar.gz", MODULE, prefix="")
    new_files = {**MODULE, "variables/variables.index": b"new index"}
    new = make_archive(tmp_path / "b.tar.gz", new_files)
    with _Server(old.read_bytes()) as url:
        path = fetch("pnasnet_large", url=url, progress=None)
    assert (path / "variables" / "variables.index").read_bytes() == b"index"
    assert fetch("pnasnet_large", url=new.as_uri(), progress=None) == path          # kept unless forced
    assert (path / "variables" / "variables.index").read_bytes() == b"index"
    fetch("pnasnet_large", url=new.as_uri(), progress=None, force=True)
    assert (path / "variables" / "variables.index").read_bytes() == b"new index"
    assert leftovers(home) == ["pnasnet_large"]


def hostile(name: str, kind=tarfile.REGTYPE, size: int = 3, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize("member, message", [
    (hostile("../../evil.txt"), "outside the target"),
    (hostile("./variables/../../evil.txt"), "outside the target"),
    (hostile("/etc/evil.txt"), "absolute path"),
    (hostile("./variables/link", tarfile.SYMTYPE, link="/etc/passwd"), "link or special file"),
    (hostile("./variables/hard", tarfile.LNKTYPE, link="saved_model.pb"), "link or special file"),
    (hostile("./fifo", tarfile.FIFOTYPE), "link or special file"),
])
def test_hostile_members_are_refused_and_nothing_is_left(home, tmp_path, member, message):
    src = make_archive(tmp_path / "src" / "module.tar.gz", MODULE, extra=[member])
    with pytest.raises(WeightsError, match=message):
        fetch("pnasnet_large", url=src.as_uri(), progress=None)
    assert leftovers(home) == []
    assert not (tmp_path / "evil.txt").exists() and not (home / "evil.txt").exists()


def test_size_and_member_caps(tmp_path):
    src = make_archive(tmp_path / "module.tar.gz", MODULE)
    (tmp_path / "out").mkdir()
    with pytest.raises(WeightsError, match="unpacks to more than"):
        unpack(src, tmp_path / "out", "test", max_bytes=1000)
    with pytest.raises(WeightsError, match="more than 3 members"):
        unpack(src, tmp_path / "out2", "test", max_members=3)


def test_an_archive_without_a_module_is_refused(home, tmp_path):
    src = make_archive(tmp_path / "src" / "other.tar.gz", {"README.md": b"hello"})
    with pytest.raises(WeightsError, match="not a TF-Hub module"):
        fetch("pnasnet_large", url=src.as_uri(), progress=None)
    assert leftovers(home) == []


@pytest.mark.parametrize("body, message", [(b"<html>Access denied</html>", "gzip-compressed"),
                                           (b"\x1f\x8b\x08\x00garbage", "cannot unpack")])
def test_not_an_archive_or_a_broken_one(home, tmp_path, body, message):
    src = tmp_path / "page.tar.gz"
    src.write_bytes(body)
    with pytest.raises(WeightsError, match=message):
        fetch("pnasnet_large", url=src.as_uri(), progress=None)
    assert leftovers(home) == []


def test_truncated_download_leaves_nothing(home, tmp_path):
    body = make_archive(tmp_path / "m.tar.gz", MODULE).read_bytes()
    with _Server(body[: len(body) // 2], length=len(body)) as url:
        with pytest.raises(WeightsError, match="truncated"):
            fetch("pnasnet_large", url=url, progress=None)
    assert leftovers(home) == []


def test_cli_fetch_pnasnet(home, tmp_path, capsys):
    src = make_archive(tmp_path / "src" / "module.tar.gz", MODULE)
    assert main(["fetch", "pnasnet_large", "--url", src.as_uri()]) == 0
    assert capsys.readouterr().out.strip() == str(home / "models" / "pnasnet_large")
    assert main(["models", "--json"]) == 0
    assert '"pnasnet_large"' in capsys.readouterr().out
