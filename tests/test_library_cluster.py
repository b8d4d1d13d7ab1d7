"""Indexing on a real dask.distributed cluster: a scheduler and two workers started as separate
processes on 127.0.0.1. The cluster must write the same index as the local engine, row by row; a
worker killed with SIGKILL mid-run must cost nothing (every photo stored once, none missing); the
real models run on the workers too."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnlite.errors import LibraryError
from nnlite.library.analyze import AnalyzerSpec
from nnlite.library.indexer import index_folder
from tests.test_library import _content
from tests.test_library_crash import committed, snapshot
from tests.test_library_fakes import FAKE, SLOW_FAKE, make_photo

pytest.importorskip("distributed", reason="the cluster engine needs dask[distributed] (the test extra has it)")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared"))


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **extra)


class Cluster:
    """`dask scheduler` + N `dask worker` processes (no nanny: a killed worker stays dead)."""

    def __init__(self, tmp: Path, workers: int = 2, **env):
        self.file = tmp / "scheduler.json"
        self.env = _env(**env)
        self.scheduler = self._start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", str(self.file))
        self.workers = [self._start("distributed.cli.dask_worker", "--scheduler-file", str(self.file),
                                    "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                    "--name", f"w{i}")
                        for i in range(workers)]
        try:
            self.address = self._scheduler_address()
            assert self.address.startswith("tcp://127.0.0.1:")
            from distributed import Client
            with Client(self.address, timeout="30s") as client:
                client.wait_for_workers(workers, timeout=60)
                self.worker_pids = client.run(os.getpid)   # worker address -> pid
        except BaseException:
            self.close()  # no scheduler or worker outlives a failed start
            raise

    def _scheduler_address(self) -> str:
        # the scheduler writes its file in place: it can exist, empty or half written, before it holds the address
        deadline = time.monotonic() + 60
        while True:
            try:
                return json.loads(self.file.read_text())["address"]
            except (FileNotFoundError, ValueError, KeyError):
                assert time.monotonic() < deadline and self.scheduler.poll() is None, "the scheduler did not start"
                time.sleep(0.1)

    def _start(self, module: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def _analyzers_built() -> int:
    from tests.test_library_fakes import FakeAnalyzer
    return FakeAnalyzer.built


def photo_folder(root: Path, n: int) -> Path:
    for i in range(n):
        make_photo(root / f"sub{i % 3}" / f"p{i:02d}.png", (200, 10 + i, 10 + 3 * i), person=1 + i % 4,
                   variant=i, faces=1 + i % 2)
    return root


def test_cluster_index_equals_local_row_by_row(tmp_path, cluster, monkeypatch):
    root = photo_folder(tmp_path / "photos", 12)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    os.symlink(tmp_path / "nowhere.png", root / "dangling.png")   # listed here, unreadable on the worker
    local, remote = tmp_path / "local.db", tmp_path / "remote.db"
    index_folder(root, local, spec=AnalyzerSpec.of(FAKE))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)   # the cluster named by the environment
    report = index_folder(root, remote, spec=AnalyzerSpec.of(FAKE), engine="dask")
    assert (report.found, report.analyzed, len(report.errors)) == (14, 14, 2)
    images, labels, faces = _content(remote)
    assert (images, labels, faces) != ([], [], []) and len(faces) == 18
    local_content = _content(local)
    # the dangling link's error names the worker; otherwise every row is the local engine's
    strip = [tuple(r[:7]) + (r[7] and r[7].split(" (on worker")[0],) + tuple(r[8:]) for r in images]
    assert strip == [tuple(r) for r in local_content[0]] and (labels, faces) == local_content[1:]
    from distributed import Client
    with Client(cluster.address, timeout="30s") as client:   # each worker built its analyzer once
        built = client.run(_analyzers_built)
    assert sorted(built) == sorted(cluster.worker_pids) and set(built.values()) <= {0, 1} and sum(built.values()) >= 1
    dangling = next(r for r in images if r[0].endswith("dangling.png"))
    assert dangling[7].startswith("unreadable") and "on worker tcp://127.0.0.1:" in dangling[7]
    assert "same path" in dangling[7]


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path, cluster):
    n = 30
    root = photo_folder(tmp_path / "photos", n)
    db = tmp_path / "lib.db"
    proc = subprocess.Popen([sys.executable, "-m", "nnlite", "index", str(root), "--db", str(db), "--quiet",
                             "--json", "--analyzer", SLOW_FAKE, "--engine", "dask", "--scheduler", cluster.address],
                            cwd=REPO, env=_env(NNLITE_FAKE_DELAY="0.2"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(committed(db)) < 6:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the cluster stored nothing within 60 s"
            time.sleep(0.02)
        victim = cluster.workers[0]
        os.killpg(victim.pid, signal.SIGKILL)   # mid-task: its running and held tasks are lost with it
        victim.wait()
        assert len(committed(db)) < n, "the kill should land mid-run"
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["analyzed"] == n and report["errors"] == []   # each photo written exactly once
    after = snapshot(db)
    assert len(after) == n and len({path for path, _, _ in after}) == n
    clean = tmp_path / "clean.db"
    index_folder(root, clean, spec=AnalyzerSpec.of(FAKE))
    assert _content(db) == _content(clean)


def test_local_cluster_and_missing_distributed(tmp_path, monkeypatch):
    root = photo_folder(tmp_path / "photos", 5)
    index_folder(root, tmp_path / "local.db", spec=AnalyzerSpec.of(FAKE))
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    report = index_folder(root, tmp_path / "lc.db", spec=AnalyzerSpec.of(FAKE), engine="dask", workers=2)
    assert report.analyzed == 5 and _content(tmp_path / "lc.db") == _content(tmp_path / "local.db")
    monkeypatch.setitem(sys.modules, "distributed", None)   # as if the extra were not installed
    with pytest.raises(LibraryError, match=r"nnlite\[dask\]"):
        index_folder(root, tmp_path / "none.db", spec=AnalyzerSpec.of(FAKE), engine="dask")
    assert not (tmp_path / "none.db").exists()
    monkeypatch.delitem(sys.modules, "distributed")
    monkeypatch.setattr("nnlite.library.cluster.CONNECT_TIMEOUT", "1s")
    with pytest.raises(LibraryError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        index_folder(root, tmp_path / "none.db", spec=AnalyzerSpec.of(FAKE), engine="dask",
                     scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "none.db").exists()
    for address in ["nonsense", "tcp://host:port", "tcp://[bad"]:
        with pytest.raises(LibraryError, match="not a Dask scheduler address"):
            index_folder(root, tmp_path / "none.db", spec=AnalyzerSpec.of(FAKE), engine="dask", scheduler=address)
    with pytest.raises(LibraryError, match="needs --engine dask"):
        index_folder(root, tmp_path / "none.db", spec=AnalyzerSpec.of(FAKE), scheduler="tcp://127.0.0.1:8786")


@pytest.mark.slow
@pytest.mark.usefixtures("shared_dir")  # reads ../shared: skipped without it, failed under CI
def test_cluster_runs_the_real_models(tmp_path, cluster):
    """Three real photos through the real models on the workers, against the local engine."""
    root = tmp_path / "photos"
    root.mkdir()
    for src in ["scenes/bbt1.jpg", "identities/amy/amy1.png", "identities/raj/raj2.png"]:
        os.symlink(SHARED / "data" / "faceapi" / src, root / Path(src).name)
    spec = AnalyzerSpec.of(None, model="mobilenet_v2", top_k=3)
    local, remote = tmp_path / "local.db", tmp_path / "remote.db"
    index_folder(root, local, spec=spec)
    report = index_folder(root, remote, spec=spec, engine="dask", scheduler=cluster.address)
    assert report.analyzed == 3 and report.errors == [] and report.faces >= 5

    def rows(db, sql):
        with sqlite3.connect(db) as conn:
            return conn.execute(sql).fetchall()

    labels = "SELECT path, rank, label, score FROM labels JOIN images ON id = image_id ORDER BY path, rank"
    a, b = rows(local, labels), rows(remote, labels)
    assert [r[:3] for r in a] == [r[:3] for r in b] and np.allclose([r[3] for r in a], [r[3] for r in b], atol=1e-4)
    faces = ("SELECT path, x, y, w, h, descriptor, age FROM faces JOIN images ON images.id = image_id"
             " ORDER BY path, x")
    a, b = rows(local, faces), rows(remote, faces)
    assert [r[0] for r in a] == [r[0] for r in b]
    assert np.allclose([r[1:5] for r in a], [r[1:5] for r in b], atol=1e-2)
    for ra, rb in zip(a, b):
        assert np.allclose(np.frombuffer(ra[5], np.float32), np.frombuffer(rb[5], np.float32), atol=1e-4)
