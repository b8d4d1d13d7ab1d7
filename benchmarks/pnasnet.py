"""PNASNet-5 Large at 331x331: nnlite vs TensorFlow (reference 2, the TF1-Hub-format SavedModel) vs onnxruntime
(timm's export), batch 1 and 8, same seeded weights, same thread count; and nnlite's peak RSS while loading.

    .venv/bin/python -m benchmarks.pnasnet [--threads 2] [--reps 3]

Inputs it makes once under ``.cache/bench/pnasnet/``: the seeded weights as a TF tensor bundle (a module's
``variables/``), the SavedModel (``tools/pnasnet_tf.py``); the ONNX file comes from the torch venv
(``/work/venv-torch/bin/python -m tools.pnasnet_onnx .cache/bench/pnasnet/pnasnet5large.onnx``; the ORT column
is left empty without it). Every engine runs in its own process (each holds 345 MB of weights plus batch-8
activations). Prints markdown rows for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import run_child

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench" / "pnasnet"
SIZE = 331


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class PeakRss:
    """The highest RSS seen while the block runs (sampled every millisecond)."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), False
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def prepare() -> None:
    from tools.pnasnet_seeded import seeded_weights, write_bundle
    from tools.pnasnet_tf import export
    if not (CACHE / "module" / "variables" / "variables.index").is_file():
        (CACHE / "module" / "variables").mkdir(parents=True, exist_ok=True)
        write_bundle(seeded_weights(), CACHE / "module" / "variables" / "variables")
    if not (CACHE / "savedmodel" / "saved_model.pb").is_file():
        export(CACHE / "savedmodel", SIZE)


def batch(n: int) -> np.ndarray:
    from tools.pnasnet_seeded import photo_batch
    x = photo_batch(SIZE)[0]
    return np.concatenate([x] * ((n + len(x) - 1) // len(x)))[:n]


def engine(name: str, threads: int, reps: int) -> dict:
    """Load one engine, time batch 1 and 8 (one warm-up, then ``reps`` runs); runs in its own process."""
    out: dict = {}
    if name == "nnlite":
        os.environ["NNLITE_NUM_THREADS"] = str(threads)
        import nnlite.graph  # noqa: F401 - imports before the baseline, so the RSS growth is the weights'
        import nnlite.savedmodel.bundle  # noqa: F401
        from nnlite.models.imagenet import pnasnet_large
        base, t = rss_mb(), time.perf_counter()
        with PeakRss() as peak:
            model = pnasnet_large.load_model(CACHE / "module")
        out.update(load_s=time.perf_counter() - t, load_peak_growth_mb=peak.peak - base,
                   after_load_growth_mb=rss_mb() - base,
                   weights_mb=sum(layer.params for layer in model.layers) * 4 / 1e6,
                   file_mb=(CACHE / "module" / "variables" / "variables.data-00000-of-00001").stat().st_size / 1e6)
        run = model
    elif name == "tf":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        v1 = tf.compat.v1
        config = v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        sess = v1.Session(graph=tf.Graph(), config=config)
        with sess.graph.as_default():
            sig = v1.saved_model.loader.load(sess, [], str(CACHE / "savedmodel")).signature_def["default"]
        feed, fetch = sig.inputs["images"].name, sig.outputs["default"].name
        run = lambda x: sess.run(fetch, {feed: x})   # noqa: E731
    else:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(CACHE / "pnasnet5large.onnx"), options, providers=["CPUExecutionProvider"])
        run = lambda x: session.run(None, {"x": ((x - 0.5) * 2).transpose(0, 3, 1, 2).copy()})[0]   # noqa: E731
    for n in (1, 8):
        x = batch(n)
        y = run(x)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t)
        out[f"b{n}_ms"] = [1e3 * min(times), 1e3 * float(np.median(times))]
        np.save(CACHE / f"logits_{name}_b{n}.npy", np.asarray(y, np.float32))
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("NNLITE_NUM_THREADS", os.cpu_count())))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--engine", choices=("nnlite", "tf", "ort"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine:
        print(json.dumps(engine(args.engine, args.threads, args.reps)))
        return
    prepare()
    results = {}
    for name in ("nnlite", "tf", "ort"):
        if name == "ort" and not (CACHE / "pnasnet5large.onnx").is_file():
            continue
        results[name] = run_child("benchmarks.pnasnet", "--engine", name, "--threads", str(args.threads),
                                  "--reps", str(args.reps))
    from nnlite.graph import relative_error
    ref = np.load(CACHE / "logits_nnlite_b8.npy")
    errors = {k: max(relative_error(a, b) for a, b in zip(ref, np.load(CACHE / f"logits_{k}_b8.npy")))
              for k in results if k != "nnlite"}
    print(f"{cpu_model()}, {args.threads} threads, min (median) of {args.reps} runs after one warm-up")
    print("| batch | nnlite ms | TF ms | ORT ms | nnlite/TF | nnlite/ORT | max rel. err TF, ORT |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for n in (1, 8):
        def cell(k, n=n):
            return f"{results[k][f'b{n}_ms'][0]:.0f} ({results[k][f'b{n}_ms'][1]:.0f})" if k in results else "-"

        def ratio(k, n=n):
            return f"{results['nnlite'][f'b{n}_ms'][0] / results[k][f'b{n}_ms'][0]:.2f}" if k in results else "-"

        print(f"| {n} | {cell('nnlite')} | {cell('tf')} | {cell('ort')} | {ratio('tf')} | {ratio('ort')} | "
              f"{errors.get('tf', float('nan')):.1e}, {errors.get('ort', float('nan')):.1e} |")
    r = results["nnlite"]
    print(f"nnlite load: {r['load_s']:.2f} s; RSS growth peak {r['load_peak_growth_mb']:.0f} MB, after load "
          f"{r['after_load_growth_mb']:.0f} MB; weights {r['weights_mb']:.0f} MB folded ({r['file_mb']:.0f} MB file): "
          f"peak / file = {r['load_peak_growth_mb'] / r['file_mb']:.2f}")


if __name__ == "__main__":
    main()
