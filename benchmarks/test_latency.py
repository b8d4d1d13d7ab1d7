"""Steady-state latency of every model at batch 1 and 8: nnlite vs TensorFlow, onnxruntime and OpenVINO, same run.

The engines of one (model, batch) take turns: each is warmed up (Numba compiles, TF traces; its output compared
with nnlite's), then :data:`TURNS` times in a row every engine runs for its share of ``NNLITE_BENCH_SECONDS``
(default 1.5 s per engine; at least 3 calls, at most 50, over all turns), the order rotating from turn to turn.
On a shared VM the second vCPU can be taken by a neighbour for seconds to minutes: one measurement per engine
in a row then compares one engine in a slow stretch with another in a fast one (round 18 of
benchmarks/RESULTS.md: onnxruntime's MobileNetV2 at 2 threads went from 3.6 to 6.1 ms within minutes). In turns,
every engine meets the same stretches. Latency = the best call over all turns (other processes only ever add
time), with the median of all calls beside it. nnlite's record counts the busy guard's trips during its turns.

Before each engine's turn: a pause of :data:`SETTLE_S`. onnxruntime's threads spin for tens of milliseconds after
a run (a 0.3 s idle right after one still had 50 ms of CPU) and took the second core from the next engine's first
calls; nnlite's busy guard (:class:`nnlite.ops.parallel.BusyGuard`) could read that as a busy machine, so nnlite
is also timed only once no one-thread hold is on (the guard is read, never reset).

Results go to the JSON file named by ``NNLITE_BENCH_LATENCY_JSON`` (``python -m benchmarks.run`` reads it), one
record per (model, batch, engine): best and median seconds, calls, the first call's seconds, the relative error
against nnlite; each case also prints a line. Run: ``.venv/bin/python -m pytest benchmarks/test_latency.py -s``
(or ``python -m benchmarks.run`` for the whole report). ``NNLITE_BENCH_MODELS=mobilenet_v2,resnet50``
restricts the models.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest

from benchmarks import common
from nnlite.graph import relative_error

BATCHES = tuple(int(b) for b in os.environ.get("NNLITE_BENCH_BATCHES", "1,8").split(",") if b)
SELECTED = [m for m in os.environ.get("NNLITE_BENCH_MODELS", ",".join(common.MODELS)).split(",") if m]
CASES = [(m, b) for m in SELECTED for b in BATCHES]
SETTLE_S = 0.2  # before each engine's turn: the previous engine's threads go idle
TURNS = 3       # turns of every engine per case


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


def in_turns(runs: dict, x, calls: dict, turns: int = TURNS) -> tuple[dict[str, list[float]], int]:
    """Seconds of each call of ``runs[engine](x)``: ``calls[engine]`` calls per engine, spread over ``turns``
    turns in which every engine runs once, each turn's order rotated by one; and how many times nnlite's busy
    guard tripped during nnlite's turns (its kernels then ran on one thread for a while)."""
    from nnlite.ops import parallel
    times: dict[str, list[float]] = {e: [] for e in runs}
    order, trips = list(runs), 0
    for turn in range(turns):
        for engine in order[turn % len(order):] + order[:turn % len(order)]:
            share = calls[engine] * (turn + 1) // turns - calls[engine] * turn // turns
            if share == 0:
                continue
            settle(engine)
            before = parallel.guard.trips
            for _ in range(share):
                start = time.perf_counter()
                runs[engine](x)
                times[engine].append(time.perf_counter() - start)
            trips += parallel.guard.trips - before if engine == "nnlite" else 0
    return times, trips


def _record(path: str | None, records: list[dict]) -> None:
    if not path:
        return
    out = Path(path)
    kept = json.loads(out.read_text()) if out.is_file() else []
    out.write_text(json.dumps(kept + records, indent=1))


@pytest.mark.parametrize("name,batch", CASES, ids=[f"{m}-b{b}" for m, b in CASES])
def test_latency(zoo, name, batch):
    entry = zoo.get(name)
    x = common.input_batch(name, entry["shape"], batch)
    runs, first, calls, errors, failed = {}, {}, {}, {}, {}
    reference = None
    for engine in common.ENGINES:        # warm-up (compile / trace) and outputs; an engine that raises is left out
        try:
            run = zoo.engine(name, engine)
            if run is None:              # tf_keras: only where an export exists
                continue
            settle(engine)
            start = time.perf_counter()
            out = run(x)
            first[engine] = time.perf_counter() - start
            start = time.perf_counter()
            out = run(x)
            calls[engine] = rounds_for(time.perf_counter() - start)
        except Exception as exc:  # reported below, after the other engines are timed
            if engine == "nnlite":
                raise
            failed[engine] = f"{type(exc).__name__}: {exc}"
            continue
        runs[engine] = run
        reference = out if engine == "nnlite" else reference
        errors[engine] = (max(relative_error(o, r) for o, r in zip(out, reference))
                          if engine != "tf_keras" and len(out) == len(reference) else None)
    times, trips = in_turns(runs, x, calls)
    records = [{"model": name, "batch": batch, "engine": e, "min": min(t), "median": statistics.median(t),
                "rounds": len(t), "turns": TURNS, "macs": entry["macs"], "threads": zoo.threads,
                "first_call_s": first[e], "rel_err_vs_nnlite": errors[e], "input_shape": list(entry["shape"]),
                **({"guard_trips": trips} if e == "nnlite" else {})}
               for e, t in times.items()]
    _record(os.environ.get("NNLITE_BENCH_LATENCY_JSON"), records)
    print(f"\n{name} batch {batch}: " + ", ".join(f"{r['engine']} {r['min'] * 1e3:.3f} ms" for r in records))
    wrong = {e: err for e, err in errors.items() if err is not None and err >= 1e-3}
    assert not wrong, f"engines disagree with nnlite on {name}: relative errors {wrong}"
    assert not failed, f"engines raised on {name}: {failed}"
