"""Per-layer time of an nnlite model: which layers dominate, and at what GFLOP/s each runs.

Profiles what ``model(x)`` runs: a layer fused into its producer by the execution plan (nnlite.plan.plan_steps)
is timed as part of that producer and not listed; a depthwise/1x1-conv pair that forward() runs as one
kernel (nnlite.plan.PairStep) runs as its two layers here, since their kernels are wrapped. Each layer's
kernel is wrapped in a timer for the duration of the profile (``graph.Model`` itself is not changed); the
model runs ``repeats`` times after one warm-up
and each layer keeps its fastest time, which is the least noisy figure on a shared machine.

    .venv/bin/python -m benchmarks.profile_layers mobilenet_v2 [--batch 1] [--top 15]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from benchmarks import common


def profile(model, x, repeats: int = 3) -> list[dict]:
    """Rows (name, op, best seconds, MACs per example, output shape) in execution order."""
    best: dict[str, float] = {}
    saved = {layer.name: layer.fn for layer in model.layers}

    def timed(layer, fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent = time.perf_counter() - start
            best[layer.name] = min(best.get(layer.name, spent), spent)
            return out
        return run

    table = {r["name"]: r for r in model.layer_table(input_shape=tuple(x.shape[1:]))}
    try:
        for layer in model.layers:
            layer.fn = timed(layer, saved[layer.name])
        for _ in range(repeats + 1):
            model(x)
    finally:
        for layer in model.layers:
            layer.fn = saved[layer.name]
    # layers forward() never calls (fused into their producer, or a repeat of an identical layer; see
    # nnlite.plan.plan_steps) are left out: their time is inside the producer's
    return [{"name": layer.name, "op": layer.op, "seconds": best[layer.name],
             "macs": table[layer.name]["macs"], "shape": table[layer.name]["output_shape"]}
            for layer in model.layers if layer.name in best]


def by_op(rows: list[dict]) -> list[tuple[str, float, int, int]]:
    """(op, seconds, MACs per example, layer count), slowest op first."""
    acc = defaultdict(lambda: [0.0, 0, 0])
    for r in rows:
        a = acc[r["op"]]
        a[0] += r["seconds"]
        a[1] += r["macs"]
        a[2] += 1
    return sorted(((op, s, m, n) for op, (s, m, n) in acc.items()), key=lambda t: -t[1])


def report(name: str, rows: list[dict], batch: int, top: int) -> str:
    total = sum(r["seconds"] for r in rows)
    lines = [f"{name} (batch {batch}): {total * 1e3:.1f} ms summed over {len(rows)} layer calls",
             f"{'op':<20}{'ms':>9}{'share':>8}{'GFLOP/s':>9}{'layers':>8}"]
    for op, s, m, n in by_op(rows):
        gflops = 2 * m * batch / s / 1e9 if s > 0 and m else 0.0
        lines.append(f"{op:<20}{s * 1e3:>9.2f}{s / total:>8.0%}{gflops:>9.1f}{n:>8}")
    lines.append(f"slowest {top} layers:")
    for r in sorted(rows, key=lambda r: -r["seconds"])[:top]:
        gflops = 2 * r["macs"] * batch / r["seconds"] / 1e9 if r["macs"] else 0.0
        lines.append(f"  {r['name']:<40}{r['op']:<18}{r['seconds'] * 1e3:>8.2f} ms {gflops:>7.1f} GFLOP/s "
                     f"{tuple(r['shape'][1:])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", choices=common.MODELS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    common.bench_env()
    for name in args.models:
        if name in common.KERAS_RANDOM:
            common.ensure_keras_weights([name])
        model = common.load(name).model
        x = common.input_batch(name, common.input_shape(name, model), args.batch)
        print(report(name, profile(model, x, args.repeats), args.batch, args.top), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
