"""Slowdown on a busy machine: batch-1 latency with ``cores - 1`` busy-loop processes beside the engines.

    .venv/bin/python -m benchmarks.busy --models mobilenet_v2,squeezenet1_1 --rounds 4

nnlite, onnxruntime and OpenVINO run the same model (the ONNX export ``benchmarks.run`` makes) with the
same thread count (``NNLITE_NUM_THREADS``, default all cores) in this one process. Quiet and busy phases
alternate ``--rounds`` times; in each phase the engines run back to back, each for ``--seconds``, so other
load on a shared machine hits both phases and every engine alike. The busy loops are plain Python
processes the scheduler may put on any core, as any other program would be. Latency = best call of all
rounds (other processes only ever add time), the median beside it; slowdown = busy / quiet of the same
engine. Each quiet phase starts 1 s after the busy loops stop (nnlite's busy guard may keep one thread
that long after load ends). The last line printed is a JSON object:
{model: {engine: {"quiet": ..., "busy": ...}}, "numba": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

from benchmarks import common

ENGINES = ("nnlite", "ort", "ov")


@contextmanager
def busy_loops(count: int):
    """``count`` busy-loop processes running for the duration of the block."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.2)  # let them start spinning
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        time.sleep(1.0)  # quiet again: nnlite's busy guard may hold one thread up to 1 s after load ends


def calls(run, x, seconds: float, least: int = 5, most: int = 200) -> list[float]:
    """Seconds per call of ``run(x)``: at least ``least`` calls, then until ``seconds`` have passed."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < least or (time.perf_counter() - start < seconds and len(times) < most):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return times


def engines(name: str, threads: int) -> tuple[dict, object]:
    obj = common.load(name)
    model = obj.model
    shape = common.input_shape(name, model)
    out = {"nnlite": common.NnliteEngine(model)}
    path = common.onnx_path(name, model, shape)
    for kind, make in (("ort", common.OrtEngine), ("ov", common.OvEngine)):
        try:
            out[kind] = make(path, threads)
        except ImportError:  # that runtime is not installed: its column stays empty
            pass
    return out, common.input_batch(name, shape, 1)


def measure(models: list[str], rounds: int, seconds: float, hogs: int, threads: int) -> dict:
    result: dict = {}
    for name in models:
        runs, x = engines(name, threads)
        for run in runs.values():  # warm-up: compile, allocate
            run(x)
            run(x)
        times: dict = {(e, phase): [] for e in runs for phase in ("quiet", "busy")}
        for _ in range(rounds):
            for e, run in runs.items():
                times[(e, "quiet")] += calls(run, x, seconds)
            with busy_loops(hogs):
                for e, run in runs.items():
                    times[(e, "busy")] += calls(run, x, seconds)
        result[name] = {e: {phase: {"min": min(times[(e, phase)]), "median": statistics.median(times[(e, phase)]),
                                    "calls": len(times[(e, phase)])} for phase in ("quiet", "busy")}
                        for e in runs}
        print(name, {e: round(v["busy"]["min"] / v["quiet"]["min"], 2) for e, v in result[name].items()},
              flush=True)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="mobilenet_v2,squeezenet1_1")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=0.5, help="per engine and phase, each round")
    args = p.parse_args(argv)
    common.bench_env()
    threads = common.num_threads()
    hogs = max(1, len(os.sched_getaffinity(0)) - 1)
    import numba

    from nnlite.ops import parallel
    from nnlite.ops import threads as nnlite_threads
    result = measure([m for m in args.models.split(",") if m], args.rounds, args.seconds, hogs, threads)
    result["numba"] = {"layer": numba.threading_layer(), "wait_policy": nnlite_threads.wait_policy(),
                       "threads": threads, "busy_loops": hogs, "guard": parallel.guard.enabled,
                       "guard_trips": parallel.guard.trips}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
