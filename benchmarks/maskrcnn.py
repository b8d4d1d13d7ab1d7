"""Mask R-CNN latency and peak memory: nnlite against matterport's Keras model on TensorFlow, batch 1,
the same seeded weights file, each engine in its own process (so each peak RSS is its own).

    python -m benchmarks.maskrcnn WEIGHTS.h5 [--size 512 --size 1024] [--rounds 3] [--image PATH]

WEIGHTS.h5: matterport's mask_rcnn_coco.h5 or the seeded file the parity tests write
(``python -m tools.mrcnn_reference WEIGHTS.h5``). Prints one markdown row per size for
benchmarks/RESULTS.md, with nnlite's time split (backbone, RPN + proposals, heads, masks).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from benchmarks.common import run_child


def _worker(engine: str, weights: str, size: int, rounds: int, image_spec: str) -> dict:
    from tools.mrcnn_reference import read_image
    image = read_image(image_spec)
    times, split = [], {}
    if engine == "tf":
        from tools.mrcnn_reference import build
        net = build(size, weights)
        run = lambda: net.detect([image])
    else:
        from nnlite.models.maskrcnn.model import load_model
        from nnlite.vision.segment import Segmenter
        seg = Segmenter(load_model(weights).with_config(image_max_dim=size))
        run = lambda: seg.segment(image)
    run()                                               # warm-up: graph build / Numba compile
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if engine == "nnlite":
            split = {k: round(v * 1000) for k, v in seg.net.timings.items()}
    return {"best_ms": min(times) * 1000, "split_ms": split,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("--size", type=int, action="append")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--image", default="skimage:astronaut")
    p.add_argument("--worker", choices=["tf", "nnlite"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = args.size or [512, 1024]
    if args.worker:
        print(json.dumps(_worker(args.worker, args.weights, sizes[0], args.rounds, args.image)))
        return 0
    print("| IMAGE_MAX_DIM | nnlite ms | TF ms | nnlite/TF | nnlite peak RSS MB | TF peak RSS MB | RSS ratio | "
          "nnlite split ms (backbone, rpn+proposals, heads, masks) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        res = {}
        for engine in ("nnlite", "tf"):
            res[engine] = run_child("benchmarks.maskrcnn", args.weights, "--worker", engine, "--size", str(size),
                                    "--rounds", str(args.rounds), "--image", args.image)
        n, t = res["nnlite"], res["tf"]
        split = ", ".join(str(v) for v in n["split_ms"].values())
        print(f"| {size} | {n['best_ms']:.0f} | {t['best_ms']:.0f} | {n['best_ms'] / t['best_ms']:.2f} | "
              f"{n['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} | {n['peak_rss_mb'] / t['peak_rss_mb']:.2f} | "
              f"{split} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
