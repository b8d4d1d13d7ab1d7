"""Face search at scale: top-10 latency, exactness and peak memory of FaceIndex over 1M and 10M synthetic
128-d descriptors, each size built and queried in its own process.

    python -m benchmarks.face_search [--sizes 1000000 10000000] [--kinds people random] [--dir .cache/facesearch]

Two kinds of data: ``people`` (faces of people: identities spread along a decaying spectrum of directions,
20 faces each scattered around their centre, same-person distance ~0.45, different people ~1.1, like
face-api.js descriptors) and ``random`` (independent N(0, 0.09) components: no structure, the worst case for
pruning by bounds). Half the queries are a new face of a known person (or a jittered row), half a stranger.
The descriptors are written chunk by chunk to a float32 file (10M = 5.1 GB, kept under --dir for reruns);
the true top 10 comes from a chunked brute-force scan in float64. The child process either loads the rows
into RAM (``ram``) or memory-maps the file (``file``: the float32 rows are read only for candidates), and
reports build time, query latency, exact top-10 matches and peak resident memory (VmHWM).
Opt-in: 10M needs ~11 GB of disk per kind and a few minutes; `pytest benchmarks/test_face_search.py` is
the quick one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

from benchmarks.common import run_child
from nnlite.ops.simd import vadd, vload, vstore_n, vzero

DIM, PER_PERSON, CHUNK, QUERIES = 128, 20, 1 << 18, 20


class People:
    """Faces of n // 20 people (see the module docstring); rows are generated in chunks from the seed."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.spread = np.sqrt(0.6 / DIM / np.linspace(0.2, 1.8, DIM))          # (D,) per direction
        self.turn = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0].astype(np.float32)
        self.centres = ((rng.normal(size=(max(1, n // PER_PERSON), DIM)) * self.spread) @ self.turn.T
                        ).astype(np.float32)                                   # (P, D)
        self.within = np.sqrt(0.1 / DIM)
        self.seed = seed

    def rows(self, start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, start))
        person = rng.integers(len(self.centres), size=stop - start)
        return self.centres[person] + rng.normal(0, self.within, (stop - start, DIM)).astype(np.float32)

    def queries(self, rng, rows) -> np.ndarray:
        known = self.centres[rng.integers(len(self.centres), size=QUERIES // 2)]
        strangers = (rng.normal(size=(QUERIES // 2, DIM)) * self.spread) @ self.turn.T
        return (np.concatenate([known, strangers]) + rng.normal(0, self.within, (QUERIES, DIM))).astype(np.float32)


class Random:
    """Independent N(0, 0.09) components: norm ~1 like face-api.js's descriptors, but no structure."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed = n, seed

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.random.default_rng((self.seed, start)).normal(0, 0.09, (stop - start, DIM)).astype(np.float32)

    def queries(self, rng, rows) -> np.ndarray:
        jittered = rows[np.sort(rng.integers(0, self.n, QUERIES // 2))] + rng.normal(0, 0.02, (QUERIES // 2, DIM))
        return np.concatenate([jittered, rng.normal(0, 0.09, (QUERIES // 2, DIM))]).astype(np.float32)


def prepare(kind: str, n: int, folder: Path) -> tuple[Path, Path]:
    """The rows file, and queries + true top-10 ids (.npz); written once, each through a temp file + rename."""
    rows_path, truth_path = folder / f"{kind}-{n}.f32", folder / f"{kind}-{n}-truth.npz"
    data = (People if kind == "people" else Random)(n)
    if not rows_path.exists():
        tmp = rows_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for start in range(0, n, CHUNK):
                data.rows(start, min(n, start + CHUNK)).tofile(f)
        os.replace(tmp, rows_path)
    if not truth_path.exists():
        rows = np.memmap(rows_path, np.float32, "r", shape=(n, DIM))
        queries = data.queries(np.random.default_rng(7), rows).astype(np.float32).astype(np.float64)   # (Q, D)
        best_d = np.full((QUERIES, 10), np.inf)
        best_i = np.zeros((QUERIES, 10), np.int64)
        for start in range(0, n, CHUNK):
            x = np.asarray(rows[start:start + CHUNK], np.float64)
            d = (x * x).sum(1)[None, :] - 2 * queries @ x.T + (queries * queries).sum(1)[:, None]   # (Q, c)
            near = np.argpartition(d, 9, axis=1)[:, :10]
            d = np.concatenate([best_d, np.take_along_axis(d, near, 1)], axis=1)
            i = np.concatenate([best_i, near + start], axis=1)
            keep = np.lexsort((i, d), axis=1)[:, :10]
            best_d, best_i = np.take_along_axis(d, keep, 1), np.take_along_axis(i, keep, 1)
        tmp = truth_path.with_suffix(".tmp.npz")
        np.savez(tmp, queries=queries.astype(np.float32), truth=best_i, kth=best_d[:, -1])
        os.replace(tmp, truth_path)
    return rows_path, truth_path


def child(rows_path: str, truth_path: str, n: int, mode: str, reps: int) -> dict:
    from nnlite.library.face_index import FaceIndex
    baseline = _status()["VmRSS"]
    saved = np.load(truth_path)
    queries, truth = saved["queries"], saved["truth"]
    rows = np.memmap(rows_path, np.float32, "r", shape=(n, DIM))
    if mode == "ram":
        rows = np.array(rows)
    start = time.perf_counter()
    index = FaceIndex(np.arange(n), rows, quantize_above=0)
    build = time.perf_counter() - start
    index.search(queries[0], 10)   # compile / warm up
    times, exact = [], 0
    for q, want in zip(queries, truth):
        for _ in range(reps):
            start = time.perf_counter()
            hits = index.search(q, 10)
            times.append(time.perf_counter() - start)
        exact += [h[0] for h in hits] == want.tolist()
    status = _status()   # before the diagnostics below, which read rows without releasing their pages
    candidates = [len(index._candidates(q, 10)) for q in queries]
    half = len(queries) // 2
    return {"build_s": build, "median_ms": 1e3 * float(np.median(times)), "min_ms": 1e3 * min(times),
            "p90_ms": 1e3 * float(np.percentile(times, 90)), "exact": f"{exact}/{len(queries)}",
            "candidates_known": int(np.median(candidates[:half])),
            "candidates_stranger": int(np.median(candidates[half:])),
            "vmhwm_mb": status["VmHWM"], "vmrss_mb": status["VmRSS"], "baseline_mb": baseline}


def _status() -> dict[str, int]:
    """VmRSS, VmHWM, ... of this process in MB."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return {k: int(v.split()[0]) // 1024 for k, v in (line.split(":", 1) for line in lines) if v.strip().endswith("kB")}


SCAN_BYTES = 72   # a face's bytes the coarse scan reads: 64 of 4-bit codes, its float32 norm and error bound


def _total(a, parts):
    """The sum of float32 ``a`` (a multiple of 64 values long), read in ``parts`` contiguous pieces in a ``prange``,
    64 values a step into four 16-lane vector sums. A plain ``acc += a[i]`` loop, even with fastmath, ran at
    about 6.5 GB/s on one Zen 3 core whether the array was in L2 or in memory: it measured its own additions,
    not the memory (benchmarks/RESULTS.md, round 23)."""
    sums = np.zeros(parts * 16, np.float32)
    steps = a.size // 64
    for p in numba.prange(parts):
        s0, s1, s2, s3 = vzero(), vzero(), vzero(), vzero()
        for i in range(steps * p // parts * 64, steps * (p + 1) // parts * 64, 64):
            s0, s1 = vadd(s0, vload(a, i)), vadd(s1, vload(a, i + 16))
            s2, s3 = vadd(s2, vload(a, i + 32)), vadd(s3, vload(a, i + 48))
        vstore_n(sums, p * 16, vadd(vadd(s0, s1), vadd(s2, s3)), 16)
    return sums.sum()


_total = numba.njit(parallel=True, nogil=True)(_total)   # compiled once, at the first call


def read_rate(threads: int, megabytes: int = 256, repeats: int = 10) -> float:
    """GB/s of a streaming float32 sum over ``megabytes`` (past any cache) on ``threads`` threads, best of
    ``repeats``: the memory read rate the coarse scan is bound by once its arithmetic is fast enough."""
    a = np.ones(megabytes << 18, np.float32)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        _total(a, threads)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            _total(a, threads)
            best = min(best, time.perf_counter() - start)
    finally:
        numba.set_num_threads(before)
    return a.nbytes / best / 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--kinds", nargs="+", default=["people", "random"], choices=["people", "random"])
    ap.add_argument("--modes", nargs="+", default=None, choices=["ram", "file"],
                    help="default: ram up to 2M faces, file above")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path(".cache/facesearch"))
    ap.add_argument("--child", nargs=4, metavar=("ROWS", "TRUTH", "N", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]), args.child[3], args.reps)))
        return 0
    import nnlite.ops.machine as machine
    print(machine.describe())
    threads = numba.get_num_threads()
    one, many = read_rate(1), read_rate(threads)
    floors = ", ".join(f"{n:,} faces {n * SCAN_BYTES / many / 1e6:.1f} ms" for n in args.sizes)
    print(f"memory read rate (a streaming sum over 256 MB): {one:.1f} GB/s on 1 thread, {many:.1f} GB/s on {threads}; "
          f"the coarse scan reads {SCAN_BYTES} bytes a face, so at {many:.1f} GB/s a query takes at least: {floors}")
    args.dir.mkdir(parents=True, exist_ok=True)
    print("| kind | faces | rows | build s | median ms | min ms | p90 ms | exact top-10 | candidates known / stranger "
          "| peak RSS MB (after imports) |\n|---|---:|---|---:|---:|---:|---:|---|---|---:|")
    for n in args.sizes:
        for kind in args.kinds:
            rows_path, truth_path = prepare(kind, n, args.dir)
            for mode in args.modes or ["ram" if n <= 2_000_000 else "file"]:
                r = run_child("benchmarks.face_search", "--reps", str(args.reps), "--child", str(rows_path),
                              str(truth_path), str(n), mode)
                print(f"| {kind} | {n:,} | {mode} | {r['build_s']:.1f} | {r['median_ms']:.2f} | {r['min_ms']:.2f} "
                      f"| {r['p90_ms']:.2f} | {r['exact']} | {r['candidates_known']} / {r['candidates_stranger']} "
                      f"| {r['vmhwm_mb']} ({r['baseline_mb']}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
