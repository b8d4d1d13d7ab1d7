"""Steady-state latency of every model at batch 1 and 8: nnlite vs TensorFlow, onnxruntime and OpenVINO, same run.

Engines of one (model, batch) run back to back, so machine load hits them alike. Each measurement: one
warm-up call (Numba compiles, TF traces), then as many rounds as fit in ``NNLITE_BENCH_SECONDS``
(default 1.5 s; at least 3, at most 50). Each engine's output is compared with nnlite's; the relative
error is stored with the timing (``extra_info``), so a fast but wrong engine is visible in the report.

Run: ``.venv/bin/python -m pytest benchmarks/test_latency.py`` (or ``python -m benchmarks.run`` for the
whole report). ``NNLITE_BENCH_MODELS=mobilenet_v2,resnet50`` restricts the models.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from benchmarks import common
from nnlite.graph import relative_error

BATCHES = tuple(int(b) for b in os.environ.get("NNLITE_BENCH_BATCHES", "1,8").split(",") if b)
SELECTED = [m for m in os.environ.get("NNLITE_BENCH_MODELS", ",".join(common.MODELS)).split(",") if m]
CASES = [(m, b, e) for m in SELECTED for b in BATCHES for e in common.ENGINES]
_reference: dict[tuple[str, int], list[np.ndarray]] = {}


def rounds_for(seconds_per_call: float) -> int:
    budget = float(os.environ.get("NNLITE_BENCH_SECONDS", "1.5"))
    return int(min(50, max(3, budget // max(seconds_per_call, 1e-6))))


@pytest.mark.parametrize("name,batch,engine", CASES, ids=[f"{m}-b{b}-{e}" for m, b, e in CASES])
def test_latency(benchmark, zoo, name, batch, engine):
    entry = zoo.get(name)
    run = zoo.engine(name, engine)
    if run is None:
        pytest.skip(f"no {engine} export exists for {name}")
    x = common.input_batch(name, entry["shape"], batch)
    start = time.perf_counter()
    out = run(x)                                                   # warm-up: compile / trace
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = run(x)
    second = time.perf_counter() - start
    if engine == "nnlite":
        _reference[(name, batch)] = out
    ref = _reference.get((name, batch))
    err = (max(relative_error(o, r) for o, r in zip(out, ref))
           if ref is not None and engine != "tf_keras" and len(out) == len(ref) else None)
    benchmark.group = f"{name} batch {batch}"
    benchmark.extra_info.update({"model": name, "batch": batch, "engine": engine, "macs": entry["macs"],
                                 "threads": zoo.threads, "first_call_s": first, "rel_err_vs_nnlite": err,
                                 "input_shape": list(entry["shape"])})
    benchmark.pedantic(run, args=(x,), rounds=rounds_for(second), iterations=1, warmup_rounds=0)
    if err is not None:
        assert err < 1e-3, f"{engine} disagrees with nnlite on {name}: relative error {err:.3g}"
