"""Indexing throughput (images/s) of each engine on the same folder, with the real models:

  local, 1 worker      the writer analyses in its own process
  local, 2 workers     a pool of 2 spawned processes
  dask,  2 workers     a real dask.distributed cluster: `dask scheduler` + 2 `dask worker` processes on
                       127.0.0.1 (each `--nthreads 1`), reached through --scheduler

Each run indexes into a fresh database. Two rates are reported: over the whole run (start-up, model
loading and Numba's first calls included) and steady state (from the first stored photo to the last).

    python -m benchmarks.index_throughput [--folder DIR] [--limit N] [--out benchmarks/RESULTS-index.md]

The default folder is face-api.js's 5 group scenes and 40 identity crops from ../shared (symlinked into
a temporary folder, ``--limit`` photos of them). Figures from a shared or busy machine are provisional.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared"))


def sample_folder(tmp: Path, limit: int) -> Path:
    faceapi = SHARED / "data" / "faceapi"
    photos = sorted((faceapi / "scenes").glob("*.jpg")) + sorted((faceapi / "identities").glob("*/*.png"))
    folder = tmp / "photos"
    folder.mkdir()
    for src in photos[:limit]:
        os.symlink(src, folder / src.name)
    return folder


def timed_index(folder: Path, db: Path, *args: str) -> dict:
    """Run `nnlite index` in a fresh process; seconds overall and from the first stored photo."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nnlite", "index", str(folder), "--db", str(db), "--json",
                             "--quiet", *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = None
    while proc.poll() is None:
        if first is None and _stored(db) > 0:
            first = time.perf_counter()
        time.sleep(0.05)
    total = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"nnlite index {' '.join(args)} failed: {err.decode()}")
    report = json.loads(out)
    n = report["analyzed"]
    steady = (n - 1) / (start + total - first) if first and n > 1 and start + total > first else float("nan")
    return {"images": n, "seconds": total, "overall": n / total, "steady": steady}


def _stored(db: Path) -> int:
    import sqlite3
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.Error:
        return 0


def start_cluster(tmp: Path, workers: int = 2):
    env = dict(os.environ, PYTHONPATH=str(REPO), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    file = tmp / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
                                "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
              for _ in range(workers)]
    while not file.exists():
        time.sleep(0.1)
    address = json.loads(file.read_text())["address"]
    from distributed import Client
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(workers, timeout=120)
    return address, procs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, help="photos to index (default: ../shared's face-api.js photos)")
    parser.add_argument("--limit", type=int, default=45, help="photos of the default folder (default 45)")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = args.folder or sample_folder(tmp, args.limit)
        rows.append(("local, 1 worker", timed_index(folder, tmp / "l1.db", "--workers", "1")))
        rows.append(("local, 2 workers", timed_index(folder, tmp / "l2.db", "--workers", "2")))
        address, procs = start_cluster(tmp)
        try:
            rows.append(("dask cluster, 2 workers", timed_index(folder, tmp / "d2.db", "--engine", "dask",
                                                                "--scheduler", address)))
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
    title = (f"Indexing throughput, {rows[0][1]['images']} photos, real models (mobilenet_v2 + face pipeline); "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}.")
    lines = [title, "",
             "| engine | photos | seconds | images/s overall | images/s steady |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['images']} | {r['seconds']:.1f} | {r['overall']:.2f} | {r['steady']:.2f} |"
              for name, r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
