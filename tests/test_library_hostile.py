"""`nnlite index` under hostile conditions: a read-only index, a full disk, an index under /proc,
hostile weights, two indexers on one database, paths that do not exist. Each failure is one line
on stderr with exit status 2, and nothing is left half-written."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnlite.cli import main
from nnlite.library.analyze import AnalyzerSpec
from nnlite.library.indexer import index_folder
from tests.test_library_crash import snapshot
from tests.test_library_fakes import FAKE, SLOW_FAKE, make_photo

REPO = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                **extra)


def nnlite(*args: str, preexec=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnlite", *args], cwd=REPO, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec, check=False)


def one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("nnlite index: error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def folder(root: Path, n: int, start: int = 0) -> Path:
    for i in range(start, start + n):
        make_photo(root / f"p{i:03d}.png", (200, 10 + i % 200, 10), person=1 + i % 4, variant=i, faces=1 + i % 3)
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def read_only(tmp_path):
    """An index of 3 photos made read-only (chmod; as root, which writes anyway, the immutable flag),
    and a folder with 2 photos more."""
    root = folder(tmp_path / "photos", 3)
    db = tmp_path / "lib.db"
    index_folder(root, db, spec=AnalyzerSpec.of(FAKE))
    folder(root, 2, start=3)
    if os.geteuid() != 0:
        os.chmod(db, 0o444)
        yield root, db
        return
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make a read-only file")
    try:
        yield root, db
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_read_only_index_is_refused_in_one_line(read_only):
    root, db = read_only
    before = sha(db)
    proc = nnlite("index", str(root), "--db", str(db), "--analyzer", FAKE, "--quiet")
    one_error_line(proc, str(db), "readonly")
    assert sha(db) == before and len(snapshot(db)) == 3


def test_a_write_refused_by_sqlite_rolls_back_and_names_the_file(tmp_path, monkeypatch, capsys):
    """The same failure inside one run, after the index opened fine (SQLite's query_only mode refuses
    writes exactly as a read-only file does)."""
    from nnlite.library import index as index_module
    root = folder(tmp_path / "photos", 2)
    db = tmp_path / "lib.db"
    index_folder(root, db, spec=AnalyzerSpec.of(FAKE))
    folder(root, 2, start=2)
    opened = index_module.LibraryIndex.__init__

    def read_only_after_open(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        self.conn.execute("PRAGMA query_only=1")

    monkeypatch.setattr(index_module.LibraryIndex, "__init__", read_only_after_open)
    assert main(["index", str(root), "--db", str(db), "--analyzer", FAKE, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(db) in err[0] and "readonly" in err[0]
    monkeypatch.undo()
    assert len(snapshot(db)) == 2


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_full_disk_stops_cleanly_and_the_next_run_completes(tmp_path):
    root = folder(tmp_path / "photos", 4)
    db = tmp_path / "lib.db"
    index_folder(root, db, spec=AnalyzerSpec.of(FAKE))
    folder(root, 60, start=4)
    # every file the indexer writes may grow to 96 KiB: the write-ahead log fills up after a few photos
    proc = nnlite("index", str(root), "--db", str(db), "--analyzer", FAKE, "--quiet",
                  preexec=_limit_file_size(96 * 1024))
    one_error_line(proc, str(db), "full")
    stored = snapshot(db)   # integrity ok, every stored photo whole
    assert 4 <= len(stored) < 64
    report = index_folder(root, db, spec=AnalyzerSpec.of(FAKE))
    assert report.skipped == len(stored) and len(snapshot(db)) == 64


@pytest.mark.parametrize("where", ["/proc/nnlite-test.db", "/proc/self/nnlite-test.db", "/proc"])
def test_an_index_under_proc_is_refused(tmp_path, where):
    root = folder(tmp_path / "photos", 1)
    proc = nnlite("index", str(root), "--db", where, "--analyzer", FAKE, "--quiet")
    one_error_line(proc, where)
    assert not Path(where + ".lock").exists()


def test_missing_folder_for_the_index_is_refused_not_created(tmp_path):
    root = folder(tmp_path / "photos", 1)
    proc = nnlite("index", str(root), "--db", str(tmp_path / "missing" / "dir" / "x.db"), "--analyzer", FAKE)
    one_error_line(proc, "does not exist")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_hostile_weights_stop_the_run_in_one_line_and_write_nothing(tmp_path, workers):
    weights = tmp_path / "weights"
    shutil.copytree(REPO / "nnlite" / "weights", weights, symlinks=True,
                    copy_function=lambda src, dst: os.symlink(os.path.abspath(src), dst))
    manifest = weights / "faceapi" / "ssd_mobilenetv1_model-weights_manifest.json"
    table = json.loads(manifest.read_text())
    table[0]["paths"] = ["../../../../../../etc/passwd"]   # a shard outside the weights folder
    manifest.unlink()
    manifest.write_text(json.dumps(table))
    root = tmp_path / "photos"
    make_photo(root / "a.png")
    make_photo(root / "b.png")
    db = tmp_path / "lib.db"
    proc = nnlite("index", str(root), "--db", str(db), "--quiet", "--workers", workers,
                  env=_env(NNLITE_WEIGHTS=str(weights)), timeout=300)
    one_error_line(proc, "ssd_mobilenetv1")
    assert not db.exists() and not Path(f"{db}-wal").exists()


def test_two_indexers_on_one_database_never_analyse_a_photo_twice(tmp_path):
    n = 16
    root = folder(tmp_path / "photos", n)
    db, log = tmp_path / "lib.db", tmp_path / "analysed.log"
    env = _env(NNLITE_FAKE_DELAY="0.1", NNLITE_FAKE_LOG=str(log))
    args = [sys.executable, "-m", "nnlite", "index", str(root), "--db", str(db), "--quiet", "--json",
            "--analyzer", SLOW_FAKE]
    first = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.Popen(args + ["--workers", "2"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    (out1, err1), (out2, err2) = first.communicate(timeout=120), second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    reports = [json.loads(out1), json.loads(out2)]
    assert sorted(r["analyzed"] for r in reports) == [0, n] and sum(r["skipped"] for r in reports) == n
    assert len(log.read_text().splitlines()) == n   # each photo analysed once in all
    assert "waiting for it to finish" in err1 + err2
    assert len(snapshot(db)) == n


def test_a_folder_without_images_says_so_and_creates_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no photos here")
    db = tmp_path / "lib.db"
    assert main(["index", str(empty), "--db", str(db), "--analyzer", FAKE, "--quiet"]) == 1
    assert f"no images found in {empty}" in capsys.readouterr().err
    assert not db.exists()


def test_people_rejects_a_nan_threshold(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["people", "--db", str(tmp_path / "x.db"), "--threshold", "nan"])
    assert exit_.value.code == 2 and "--threshold" in capsys.readouterr().err
