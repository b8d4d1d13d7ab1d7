"""Where nnlite loses to onnxruntime, step by step of what ``model(x)`` really runs.

``benchmarks.layer_gap`` times each layer on its own, so a fused step of the execution plan (an inverted
residual block, a depthwise -> 1x1 pair, a conv with its residual add) runs there as separate, unprepared
layers: EfficientNet-Lite0's layers summed to 8.7 ms where its plan's steps take 7.6 ms. Here each step of
the plan (:mod:`nnlite.plan`) is timed as ``model(x)`` runs it: its prepared kernel, fused, on the same inputs.
onnxruntime's side is its own per-node profile of the same ONNX file (``benchmarks.layer_gap.ort_node_times``):
its convolution and dense nodes are handed to the steps in order, as many to a step as the step has such
layers (a separable conv counts two), and the pairing is shown only when the output sizes line up
(``layer_gap.lined_up``). Each side keeps its best time per step or node over the calls.

The steps' sum leaves out what ``model(x)`` does between them (a replay calls the prepared kernels
directly); the best whole call is printed beside it.

    .venv/bin/python -m benchmarks.step_gap efficientnet_lite0 [--threads 2] [--calls 300] [--top 15]
"""

from __future__ import annotations

import dataclasses
import time

from benchmarks.layer_gap import NNLITE_OPS, ORT_OPS, arguments, each_model, lined_up


def step_layers(step) -> list:
    """The layers a plan step runs, producers first: the step's own layer after those of the steps it fuses
    (any field holding a step, or a tuple of them)."""
    found, seen = [], set()

    def walk(s) -> None:
        for f in dataclasses.fields(s):
            value = getattr(s, f.name)
            for inner in value if isinstance(value, tuple) else (value,):
                if hasattr(inner, "layer") and dataclasses.is_dataclass(inner):
                    walk(inner)
        if id(s.layer) not in seen:
            seen.add(id(s.layer))
            found.append(s.layer)
    walk(step)
    return found


def step_times(model, x, repeats: int = 20) -> tuple[list, list[float], float]:
    """(steps, best seconds of each, best whole call) over ``repeats`` runs of the plan after a warm-up."""
    (name,) = model.inputs
    feed = {name: x}
    model(x)
    steps, _ = model._execution_plan()
    best = [float("inf")] * len(steps)

    def timed(i, step):
        def run(*xs):
            start = time.perf_counter()
            out = step(*xs)
            best[i] = min(best[i], time.perf_counter() - start)
            return out
        return run

    calls = [timed(i, s) for i, s in enumerate(steps)]
    whole = float("inf")
    for _ in range(repeats + 1):
        model._run_steps(steps, None, feed, calls)
        start = time.perf_counter()
        model(x)
        whole = min(whole, time.perf_counter() - start)
    return steps, best, whole


def group_nodes(layer_lists: list[list], nodes: list[tuple]) -> tuple[list[list[tuple]], list[tuple]]:
    """onnxruntime's convolution/dense nodes handed out in order, to each step as many as it has such layers;
    and the nodes left over (other ops, or convolutions beyond nnlite's count)."""
    convs = [n for n in nodes if n[1] in ORT_OPS]
    groups, at = [], 0
    for layers in layer_lists:
        count = sum(NNLITE_OPS.get(layer.op, 0) for layer in layers)
        groups.append(convs[at:at + count])
        at += count
    return groups, [n for n in nodes if n[1] not in ORT_OPS] + convs[at:]


def report(name: str, model, x, steps, best, whole, nodes, top: int) -> str:
    layer_lists = [step_layers(s) for s in steps]
    groups, others = group_nodes(layer_lists, nodes)
    table = {r["name"]: r for r in model.layer_table(input_shape=tuple(x.shape[1:]))}
    pairs = [({"shape": table[layer.name]["output_shape"]}, 0, 0, 0, node[3])
             for layers, group in zip(layer_lists, groups)
             for layer, node in zip([la for la in layers if la.op in NNLITE_OPS], group)]
    ours, theirs = sum(best), sum(n[2] for g in groups for n in g)
    out = [f"{name}: {len(steps)} steps, nnlite {ours * 1e3:.2f} ms summed (best whole call {whole * 1e3:.2f} ms); "
           f"onnxruntime's conv/dense nodes {theirs * 1e3:.2f} ms, its other nodes "
           f"{sum(n[2] for n in others) * 1e3:.2f} ms ({len(others)})"]
    rows = []
    for step, layers, group, seconds in zip(steps, layer_lists, groups, best):
        label = layers[0].name if len(layers) == 1 else f"{layers[0].name} .. {layers[-1].name}"
        rows.append((type(step).__name__, label, seconds, sum(n[2] for n in group), len(group),
                     tuple(table[step.layer.name]["output_shape"][1:])))
    if not lined_up(pairs):
        out.append("per-step pairs left out: onnxruntime ran this network's convolutions in another order")
        rows = [(*r[:3], 0.0, 0, r[5]) for r in rows]
    out.append(f"{'step':<14}{'layers':<52}{'nnlite us':>10}{'ORT us':>9}{'nodes':>6}{'ratio':>7}  output")
    shown = sorted(rows, key=lambda r: r[3] - r[2])[:top] if top else rows
    for kind, label, a, b, n, shape in shown:
        ratio = f"{a / b:>7.2f}" if b else f"{'-':>7}"
        out.append(f"{kind:<14}{label[:51]:<52}{a * 1e6:>10.0f}{b * 1e6:>9.0f}{n:>6}{ratio}  {shape}")
    return "\n".join(out)


def main(argv=None) -> int:
    args = arguments(argv, __doc__, 50, "nnlite runs of the plan (best kept per step)",
                     "largest gaps shown (0: every step, in order)")
    for name, model, x, nodes in each_model(args):
        steps, best, whole = step_times(model, x, args.repeats)
        print(report(name, model, x, steps, best, whole, nodes(), args.top), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
