"""Kill -9 a real `nnlite index` process mid-run: nothing committed is lost, the index stays
consistent, and the next run analyzes exactly the photos that were not yet stored."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnlite.library.analyze import AnalyzerSpec
from nnlite.library.indexer import index_folder
from tests.test_library_fakes import FAKE, SLOW_FAKE, make_photo

REPO = Path(__file__).resolve().parents[1]
N_PHOTOS = 24


def committed(db: Path) -> set[str]:
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return {r[0] for r in conn.execute("SELECT path FROM images")}
    except sqlite3.OperationalError:   # schema not created yet
        return set()


def snapshot(db: Path):
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # every stored image is whole: its face rows and its labels are there
        bad = conn.execute("SELECT path FROM images WHERE n_faces != (SELECT count(*) FROM faces"
                           " WHERE image_id = images.id) OR (SELECT count(*) FROM labels"
                           " WHERE image_id = images.id) = 0").fetchall()
        assert bad == []
        return sorted(conn.execute("SELECT path, sha256, n_faces FROM images").fetchall())


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_loses_nothing_committed_and_resumes(tmp_path, workers):
    root, db, log = tmp_path / "photos", tmp_path / "lib.db", tmp_path / "analyzed.log"
    for i in range(N_PHOTOS):
        make_photo(root / f"sub{i % 3}" / f"p{i:02d}.png", (200, 10 + i, 10), person=1 + i % 4, variant=i)
    env = dict(os.environ, NNLITE_FAKE_DELAY="0.1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "nnlite", "index", str(root), "--db", str(db), "--quiet",
                             "--analyzer", SLOW_FAKE, "--workers", str(workers)],
                            cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(committed(db)) < 5:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the indexer stored nothing within 60 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the writer and its workers, no chance to clean up
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = snapshot(db)
    assert 5 <= len(before) < N_PHOTOS, "the kill should land mid-run"

    os.environ["NNLITE_FAKE_LOG"] = str(log)
    try:
        report = index_folder(root, db, spec=AnalyzerSpec.of(FAKE))
    finally:
        del os.environ["NNLITE_FAKE_LOG"]
    assert report.skipped == len(before) and report.analyzed == N_PHOTOS - len(before)
    assert len(log.read_text().splitlines()) == N_PHOTOS - len(before)   # nothing stored was redone
    after = snapshot(db)
    assert set(before) <= set(after) and len(after) == N_PHOTOS

    clean = tmp_path / "clean.db"
    index_folder(root, clean, spec=AnalyzerSpec.of(FAKE))
    assert snapshot(clean) == after
