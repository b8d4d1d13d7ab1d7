"""Goal 6 of issue 14, a warm start against onnxruntime's cold start, for both of nnlite's ways to run a model.

``python -m benchmarks.warmstart [--models M ...] [--repeat N]``: for each model, N turns of three fresh processes,
each from launch to its first batch-1 result (:func:`benchmarks.coldstart.measure`; input preparation left out):
nnlite on its compiled kernels with a filled cache (what a library user or a long-lived process gets), nnlite on
its NumPy engine (``NNLITE_GEMM=numpy``: what a one-image command gets; Numba is never imported) and onnxruntime
on the same graph. nnlite runs in the venv of its runtime dependencies alone (:func:`coldstart.runtime_python`).
Prints the medians, each nnlite start over onnxruntime's (goal: at most 1.0) and the peak resident memories
(goal: at most onnxruntime's + 60 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchmarks import coldstart, common

MODELS = ("face_landmark_68_tiny", "face_recognition", "ssd_mobilenetv1", "mobilenet_v2", "resnet50")
WAYS = {"compiled": {}, "numpy": {"NNLITE_GEMM": "numpy"}}


def measure(name: str, repeat: int) -> dict[str, list[dict]]:
    os.environ.setdefault("NNLITE_HOME", str(common.CACHE / "home"))   # where the children find the weights
    import nnlite
    python = coldstart.runtime_python()
    warm = common.CACHE / "warmstart-numba"
    warm.mkdir(parents=True, exist_ok=True)
    coldstart.measure("nnlite", name, numba_cache=warm, python=python)   # fills the cache
    model = nnlite.load(name)
    model = getattr(model, "model", model)
    shape = common.input_shape(name, model)
    onnx = common.onnx_path(name, model, shape)
    runs: dict[str, list[dict]] = {way: [] for way in (*WAYS, "ort")}
    for _ in range(repeat):
        for way, env in WAYS.items():
            runs[way].append(coldstart.measure("nnlite", name, numba_cache=warm, python=python, env=env))
        runs["ort"].append(coldstart.measure("ort", name, onnx, shape=shape))
    return runs


def report(name: str, runs: dict[str, list[dict]]) -> None:
    med = {way: statistics.median(r["total_s"] for r in rs) for way, rs in runs.items()}
    rss = {way: statistics.median(r["peak_rss_mb"] for r in rs) for way, rs in runs.items()}
    for way, rs in runs.items():
        phases = " + ".join(f"{statistics.median(r[k] for r in rs):.2f}" for k in ("import_s", "load_s", "first_s"))
        ratio = "" if way == "ort" else f"; / onnxruntime {med[way] / med['ort']:.2f}"
        every = ", ".join(f"{r['total_s']:.2f}" for r in rs)
        print(f"{name:22s} {way:8s} {med[way]:.2f} s ({phases}; all {every})"
              f"{ratio}; peak RSS {rss[way]:.0f} MB ({rss[way] - rss['ort']:+.0f} over onnxruntime)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warmstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    import platform

    import llvmlite.binding as ll
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"{cpu}, LLVM {ll.get_host_cpu_name()}, {common.num_threads()} thread(s)")
    for name in opts.models:
        report(name, measure(name, opts.repeat))


if __name__ == "__main__":
    main()
