"""The SavedModel path against the hand-written model: batch-1 latency of the same network, same weights.

    python -m benchmarks.savedmodel_speed [MODEL ...] [--rounds N]     (default: mobilenet_v2 resnet50)

For each model: nnlite's hand-written graph, and the independent Keras SavedModel of the same weights
(the benchmarks' ``tf_keras`` export) loaded by ``nnlite.savedmodel`` and run through its serving
signature. Both run in this one process, alternating call by call (a busy machine slows both alike);
each figure is the best of ``N`` rounds. Prints the SavedModel / hand-written ratio and the relative L2
difference of their outputs. First run only: TensorFlow exports the SavedModels into ``.cache/bench``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import common


def _best_of(fns: list, x: np.ndarray, rounds: int) -> list[float]:
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn(x)
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def compare(name: str, rounds: int) -> dict:
    import nnlite.savedmodel
    if name in common.KERAS_RANDOM:
        common.ensure_keras_weights([name])
    model = common.load(name).model
    shape = common.input_shape(name, model)
    path = common.keras_savedmodel_path(name)
    saved = nnlite.savedmodel.load(path)
    (key,) = saved.signatures["serving_default"].inputs

    def hand(x):
        return model(x)

    x = common.input_batch(name, shape, 1)
    a = np.asarray(hand(x))
    outs = dict(zip(saved.signatures["serving_default"].outputs,
                    saved.run({key: x}, None, signature="serving_default")))
    # the signature output that is the hand-written model's (an export may add features, probabilities)
    rel, out_key = min((float(np.linalg.norm(a - v) / np.linalg.norm(v)), k) for k, v in outs.items()
                       if v.shape == a.shape)

    def imported(x):
        return saved.run({key: x}, [out_key], signature="serving_default")[0]

    imported(x)  # warm-up: Numba compiles, the plan for this fetch builds
    t_hand, t_saved = _best_of([hand, imported], x, rounds)
    return {"model": name, "hand_ms": t_hand * 1e3, "savedmodel_ms": t_saved * 1e3,
            "ratio": t_saved / t_hand, "rel_l2": rel}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=["mobilenet_v2", "resnet50"])
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args(argv)
    common.bench_env()
    import nnlite.ops
    nnlite.ops.set_num_threads(common.num_threads())
    for name in args.models:
        r = compare(name, args.rounds)
        print(f"{r['model']:14s} hand-written {r['hand_ms']:7.1f} ms   SavedModel {r['savedmodel_ms']:7.1f} ms   "
              f"ratio {r['ratio']:.3f}   output rel. L2 {r['rel_l2']:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
