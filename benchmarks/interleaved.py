"""nnlite against onnxruntime and OpenVINO in turns: latency where the machine's speed changes by the minute.

    python -m benchmarks.interleaved [--models a,b] [--turns 10] [--slice 0.25] [--threads 2] [--batch 1]

On a shared VM the second vCPU can add nothing for seconds to minutes at a time (benchmarks/RESULTS.md, round
7): a 1-second measurement per engine, as ``benchmarks.run`` takes, then compares one engine in a slow stretch
with another in a fast one. Here the three engines of a model take turns of ``--slice`` seconds, ``--turns``
times, in one process; each keeps its best call, and the per-turn ratios' median says whether the turns agree.
``--batch N`` times calls on N images (default 1). Prints a Markdown table: best ms per engine, nnlite / the
faster peer by best calls and by the median of turns.
Needs the ONNX exports ``benchmarks.run`` makes into ``.cache/bench/onnx`` (made here if missing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks import common

ENGINES = ("nnlite", "ort", "ov")


def _best(fn, x, seconds: float) -> float:
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - start)
    return best


def compare(name: str, turns: int, slice_s: float, threads: int, batch: int = 1) -> dict:
    """{engine: best seconds, "ratio": by best calls, "median_ratio": median of the turns' ratios}."""
    model = common.load(name).model
    shape = common.input_shape(name, model)
    x = common.input_batch(name, shape, batch)
    onnx = common.onnx_path(name, model, shape)
    runs = {"nnlite": common.NnliteEngine(model), "ort": common.OrtEngine(onnx, threads),
            "ov": common.OvEngine(onnx, threads)}
    for fn in runs.values():
        for _ in range(5):   # warm-up: compile, first-call allocations
            fn(x)
    per_turn: dict[str, list[float]] = {e: [] for e in ENGINES}
    for _ in range(turns):
        for e in ENGINES:
            per_turn[e].append(_best(runs[e], x, slice_s))
    best = {e: min(per_turn[e]) for e in ENGINES}
    ratios = [per_turn["nnlite"][i] / min(per_turn["ort"][i], per_turn["ov"][i]) for i in range(turns)]
    return {**best, "ratio": best["nnlite"] / min(best["ort"], best["ov"]), "median_ratio": statistics.median(ratios)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.interleaved", description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(m for m in common.MODELS if m != "xception"))
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--slice", type=float, default=0.25, help="seconds per engine per turn")
    p.add_argument("--threads", type=int, default=common.num_threads())
    p.add_argument("--batch", type=int, default=1, help="images per call")
    args = p.parse_args(argv)
    os.environ["NNLITE_NUM_THREADS"] = str(args.threads)   # nnlite's threads too, not only the peers'
    common.bench_env()
    print(f"batch {args.batch}, {args.threads} threads, {args.turns} turns of {args.slice} s per engine")
    print("| model | nnlite ms | ORT ms | OpenVINO ms | nnlite / faster peer (best calls) | median of turns |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        r = compare(name, args.turns, args.slice, args.threads, args.batch)
        print(f"| {name} | {r['nnlite'] * 1e3:.2f} | {r['ort'] * 1e3:.2f} | {r['ov'] * 1e3:.2f} | {r['ratio']:.2f} | "
              f"{r['median_ratio']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
