"""Steady-state latency of every model at batch 1 and 8: nnlite vs TensorFlow, onnxruntime and OpenVINO, same run.

Engines of one (model, batch) run back to back, so machine load hits them alike. Each measurement: a pause of
:data:`SETTLE_S`, one warm-up call (Numba compiles, TF traces), then as many rounds as fit in
``NNLITE_BENCH_SECONDS`` (default 1.5 s; at least 3, at most 50). The pause lets the threads of the engine
measured before go idle: onnxruntime's spin for tens of milliseconds after a run (a 0.3 s idle right after one
still had 50 ms of CPU), and they took the second core from the next engine's first calls. nnlite's busy guard
(:class:`nnlite.ops.parallel.BusyGuard`) read that as a busy machine and could hold its kernels on one thread
for up to a second, into the next cases; nnlite is timed only once no such hold is on (the guard is read,
never reset). It still trips during a measurement when the host itself is busy: a small model is then timed
at about its one-thread speed. Each engine's output is compared with nnlite's; the relative
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
SETTLE_S = 0.2  # before each engine's warm-up: the previous engine's threads go idle


def settle(engine: str) -> None:
    """Wait :data:`SETTLE_S`, and for nnlite until its busy guard holds no one-thread spell (see the docstring)."""
    time.sleep(SETTLE_S)
    if engine == "nnlite":
        from nnlite.ops import parallel
        while parallel.guard.serial():
            time.sleep(0.05)


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
    settle(engine)
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
