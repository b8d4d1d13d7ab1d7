"""The whole face pipeline per photo: nnlite against the real face-api.js in Node, same photos, same run.

Both do the same work on each photo: SsdMobilenetv1 detection (min score 0.5), 68 landmarks, the 128-d
descriptor, age/gender and the 7 expressions of every face. face-api.js is the maintained build in
``../shared/tools/faceapi-node`` on TensorFlow.js's wasm backend (its ``peer.js`` times each photo); nnlite
is ``FacePipeline(detector="ssd")``. Both get the decoded RGB pixels, so no decoding is timed. Each photo is
run ``--reps`` times in a row by each engine; the best time per photo counts (warm-up excluded).

    python -m benchmarks.faceapi_pipeline [--reps 5] [--threads 2]

The Node package is installed once (npm) into ``.cache/bench/faceapi-node``. The number of threads the wasm
backend uses is its own choice (Node gives it none by default), which the output reports as is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

TARGET = 0.5   # nnlite / face-api.js per photo


def node_package() -> Path:
    """The faceapi-node peer with its npm dependencies, installed once under .cache/bench."""
    src = common.SHARED / "tools" / "faceapi-node"
    dest = Path(__file__).resolve().parents[1] / ".cache" / "bench" / "faceapi-node"
    if not (dest / "node_modules" / "@vladmandic" / "face-api").is_dir():
        if not src.is_dir():
            sys.exit(f"faceapi_pipeline: {src} not found (the project's ../shared folder)")
        if shutil.which("npm") is None:
            sys.exit("faceapi_pipeline: npm not found (Node.js 18+ with npm is needed for the face-api.js peer)")
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "peer.js"):
            shutil.copy2(src / name, dest / name)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dest, check=True)
    return dest


def run_faceapi(photos: dict[str, np.ndarray], reps: int) -> tuple[dict[str, float], dict[str, int]]:
    """Best ms per photo and the number of faces face-api.js found in it."""
    pkg = node_package()
    with tempfile.TemporaryDirectory() as tmp:
        items = []
        for name, rgb in photos.items():
            raw = Path(tmp) / f"{name}.rgb"
            np.ascontiguousarray(rgb).tofile(raw)
            items += [{"name": name, "rgb": str(raw), "shape": list(rgb.shape)}] * (reps + 1)  # +1: warm-up
        (Path(tmp) / "list.json").write_text(json.dumps(items))
        subprocess.run(["node", "peer.js", str(Path(tmp) / "list.json"), str(Path(tmp) / "out.json")],
                       cwd=pkg, check=True)
        results = json.loads((Path(tmp) / "out.json").read_text())
    best: dict[str, float] = {}
    faces: dict[str, int] = {}
    seen: set[str] = set()
    for r in results:
        if r["name"] not in seen:      # the first run of each photo warms up the backend
            seen.add(r["name"])
            continue
        best[r["name"]] = min(best.get(r["name"], float("inf")), float(r["ms"]))
        faces[r["name"]] = len(r["faces"])
    return best, faces


def run_nnlite(photos: dict[str, np.ndarray], reps: int) -> tuple[dict[str, float], dict[str, int]]:
    from nnlite.vision.faces import FacePipeline
    pipe = FacePipeline(detector="ssd")
    best: dict[str, float] = {}
    faces: dict[str, int] = {}
    for name, rgb in photos.items():
        faces[name] = len(pipe.detect(rgb))       # warm-up (and the first compile, if any)
        for _ in range(reps):
            t0 = time.perf_counter()
            pipe.detect(rgb)
            best[name] = min(best.get(name, float("inf")), (time.perf_counter() - t0) * 1e3)
    return best, faces


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="timed runs per photo and engine (best counts)")
    ap.add_argument("--threads", type=int, default=None, help="nnlite's threads (default NNLITE_NUM_THREADS)")
    args = ap.parse_args(argv)
    if args.threads:
        os.environ["NNLITE_NUM_THREADS"] = str(args.threads)
    photos = common.group_photos()
    if not photos:
        sys.exit(f"faceapi_pipeline: no group photos under {common.SHARED / 'data' / 'faceapi' / 'scenes'}")
    js_ms, js_faces = run_faceapi(photos, args.reps)
    nl_ms, nl_faces = run_nnlite(photos, args.reps)
    import nnlite.ops as ops
    from nnlite.ops import machine
    d = machine.describe()
    print(f"Machine: {d['cpu']} (LLVM `{d['llvm_cpu']}`), {os.cpu_count()} cores, nnlite threads "
          f"{ops.get_num_threads()}; load average {os.getloadavg()[0]:.1f}; best of {args.reps} per photo\n")
    print("| photo | size | faces nnlite / face-api.js | nnlite ms | face-api.js ms | nnlite / face-api.js |")
    print("|---|---|---|---:|---:|---:|")
    for name, rgb in photos.items():
        ratio = nl_ms[name] / js_ms[name]
        print(f"| {name} | {rgb.shape[1]}x{rgb.shape[0]} | {nl_faces[name]} / {js_faces[name]} | "
              f"{nl_ms[name]:.1f} | {js_ms[name]:.1f} | {ratio:.2f} |")
    total = sum(nl_ms.values()) / sum(js_ms.values())
    print(f"\nall photos: nnlite / face-api.js = {total:.2f} (target <= {TARGET}): "
          f"{'met' if total <= TARGET else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
