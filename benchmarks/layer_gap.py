"""Where nnlite loses to onnxruntime, layer by layer: each conv/dense layer's best time beside onnxruntime's.

nnlite's side is :func:`benchmarks.profile_layers.profile` (each layer's kernel timed, layers run one by
one as declared: a depthwise/1x1 pair that the execution plan fuses is timed as its two layers).
onnxruntime's side is its own profiler (``SessionOptions.enable_profiling``) on the same ONNX file that
``benchmarks.run`` times (benchmarks/tf_graph.py: the same layer graph and weights), each node's best
kernel time over the calls. onnxruntime rewrites the graph (its NCHWc layout, a conv fused with the
following activation and residual add), so the two are matched by order: the k-th convolution or dense
layer of nnlite against the k-th Conv/Gemm node onnxruntime ran (a separable conv counts as two), and the
pairs are listed only when every pair's output sizes agree (a branching network may run its branches in
another order there; the per-op totals hold either way). Every other node (layout reorders, pooling, adds
onnxruntime did not fuse) is listed as "other".

Neither side's dispatch between layers is in these sums; compare them with ``benchmarks.run``'s latencies.

    .venv/bin/python -m benchmarks.layer_gap mobilenet_v2 [--threads 2] [--calls 300] [--top 15]
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.profile_layers import profile

NNLITE_OPS = {"conv2d": 1, "depthwise_conv2d": 1, "separable_conv2d": 2, "dense": 1}  # ORT nodes per layer
ORT_OPS = ("Conv", "FusedConv", "Gemm", "MatMul", "FusedMatMul", "QLinearConv")


def ort_node_times(path: Path, x, threads: int, calls: int) -> list[tuple[str, str, float, int]]:
    """(node name, op type, best seconds, output bytes) of every node onnxruntime ran, in its execution
    order."""
    import numpy as np
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.asarray(x, np.float32)}
        for _ in range(calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    best: dict[str, float] = {}
    kinds: dict[str, tuple[str, int]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            name, args = e["name"][: -len("_kernel_time")], e.get("args", {})
            kinds.setdefault(name, (args.get("op_name", "?"), int(args.get("output_size", 0) or 0)))
            best[name] = min(best.get(name, float("inf")), e["dur"] * 1e-6)
    return [(name, kinds[name][0], seconds, kinds[name][1]) for name, seconds in best.items()]  # first-seen order


def lined_up(rows) -> bool:
    """True when every matched onnxruntime node wrote as many values as its nnlite layer (channels rounded
    up to onnxruntime's blocks of 8 or 16 allowed): pairing by order holds. Branching networks (ResNet's
    shortcut convolutions) may run in another order there."""
    for layer, _, _, _, out_bytes in rows:
        *pixels, c = layer["shape"][1:]
        n = int(np.prod(pixels, dtype=np.int64)) if pixels else 1
        if out_bytes and out_bytes // 4 not in {n * c, n * -(-c // 8) * 8, n * -(-c // 16) * 16}:
            return False
    return True


def pair_up(layers: list[dict], nodes: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Rows (layer, nnlite s, ORT s, ORT nodes, the last node's output bytes) for the conv/dense layers
    matched by order, and the ORT nodes left over (other ops, or convolutions beyond nnlite's count)."""
    convs = [n for n in nodes if n[1] in ORT_OPS]
    others = [n for n in nodes if n[1] not in ORT_OPS]
    rows, at = [], 0
    for layer in layers:
        count = NNLITE_OPS.get(layer["op"])
        if count is None:
            continue
        taken = convs[at:at + count]
        at += count
        rows.append((layer, layer["seconds"], sum(n[2] for n in taken), [n[0] for n in taken],
                     taken[-1][3] if taken else 0))
    return rows, others + convs[at:]


def report(name: str, layers: list[dict], nodes, top: int) -> str:
    rows, others = pair_up(layers, nodes)
    ours = sum(r[1] for r in rows)
    theirs = sum(r[2] for r in rows)
    rest_ours = sum(layer["seconds"] for layer in layers if layer["op"] not in NNLITE_OPS)
    rest_theirs = sum(n[2] for n in others)
    by_op = defaultdict(lambda: [0.0, 0.0, 0])
    for layer, a, b, _, _ in rows:
        acc = by_op[layer["op"]]
        acc[0], acc[1], acc[2] = acc[0] + a, acc[1] + b, acc[2] + 1
    out = [f"{name}: conv/dense layers nnlite {ours * 1e3:.2f} ms, onnxruntime {theirs * 1e3:.2f} ms "
           f"(ratio {ours / theirs:.2f}); other layers nnlite {rest_ours * 1e3:.2f} ms, other onnxruntime nodes "
           f"{rest_theirs * 1e3:.2f} ms ({len(others)})",
           f"{'op':<20}{'nnlite ms':>10}{'ORT ms':>9}{'ratio':>7}{'layers':>8}"]
    for op, (a, b, n) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        out.append(f"{op:<20}{a * 1e3:>10.2f}{b * 1e3:>9.2f}{a / b if b else float('nan'):>7.2f}{n:>8}")
    if not lined_up(rows):
        out.append("per-layer pairs left out: onnxruntime ran this network's convolutions in another order "
                   "(their output sizes do not line up); the totals above still hold")
        rows = []
    else:
        out.append(f"largest gaps (nnlite - onnxruntime), top {top}:")
    for layer, a, b, _, _ in sorted(rows, key=lambda r: r[2] - r[1])[:top]:
        out.append(f"  {layer['name']:<40}{layer['op']:<18}{a * 1e6:>8.0f} us {b * 1e6:>8.0f} us "
                   f"{tuple(layer['shape'][1:])}")
    out.append("other onnxruntime nodes: " + ", ".join(f"{kind} {s * 1e6:.0f} us" for _, kind, s, _ in others[:12]))
    return "\n".join(out)


def arguments(argv, doc: str, repeats: int, repeats_help: str, top_help: str = "largest gaps shown"):
    """The command line of this tool and of benchmarks.step_gap."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("models", nargs="+", choices=common.MODELS)
    parser.add_argument("--threads", type=int, default=None, help="default: NNLITE_NUM_THREADS, else all cores")
    parser.add_argument("--calls", type=int, default=300, help="onnxruntime calls profiled (best kept)")
    parser.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    parser.add_argument("--top", type=int, default=15, help=top_help)
    return parser.parse_args(argv)


def ort_nodes_of(name: str, model, shape, x, threads: int, calls: int) -> list[tuple]:
    """ort_node_times on the ONNX file of ``name`` (exported once, the same graph and weights as ``model``)."""
    return ort_node_times(common.onnx_path(name, model, shape), x, threads, calls)


def each_model(args):
    """(name, model, x, onnxruntime's node times as a function to call once nnlite is measured) for each model of
    the command line, with the thread count set for both."""
    common.bench_env()
    threads = args.threads or common.num_threads()
    from nnlite import ops
    ops.set_num_threads(threads)
    for name in args.models:
        if name in common.KERAS_RANDOM:
            common.ensure_keras_weights([name])
        model = common.load(name).model
        shape = common.input_shape(name, model)
        x = common.input_batch(name, shape, 1)
        yield name, model, x, functools.partial(ort_nodes_of, name, model, shape, x, threads, args.calls)


def main(argv=None) -> int:
    args = arguments(argv, __doc__, 20, "nnlite passes (best kept per layer)")
    for name, model, x, nodes in each_model(args):
        layers = profile(model, x, args.repeats)
        print(report(name, layers, nodes(), args.top), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
