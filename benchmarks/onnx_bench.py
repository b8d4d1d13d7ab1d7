"""ONNX files run by nnlite.onnx against onnxruntime, back to back in one process (batch 1 and 8), plus
the hand-written nnlite model of the same network where there is one.

    python -m benchmarks.onnx_bench --threads 2 --seconds 1 --out /tmp/onnx_rows.md

Files: IResNet-50 at 112x112 (tools/onnx_iresnet.py), MobileNetV2 converted from Keras by tf2onnx
(tools/onnx_exports.py keras) and, when present in ``.cache/onnx-torch/``, torch.onnx's MobileNetV2 with
the bundled weights (tools/onnx_exports.py torch, PyTorch environment). Prints Markdown table rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench-onnx"


def best_ms(fn, seconds: float) -> float:
    fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def files() -> list[tuple[str, Path, str | None]]:
    """(label, path, hand-written nnlite model name or None)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    ir = CACHE / "iresnet50.onnx"
    if not ir.exists():
        from tools.onnx_iresnet import write
        write(50, ir, 17)
    out.append(("IResNet-50 112x112 (opset 17)", ir, None))
    keras = CACHE / "mobilenet_v2_keras.onnx"
    if not keras.exists():
        import subprocess
        import sys
        subprocess.run([sys.executable, "-m", "tools.onnx_exports", "keras", "--opset", "13", "--out", str(keras)],
                       check=True, cwd=REPO)
    out.append(("MobileNetV2 224 tf2onnx (opset 13)", keras, "mobilenet_v2"))
    torch_file = REPO / ".cache" / "onnx-torch" / "mobilenet_v2_torch_opset17.onnx"
    if torch_file.exists():
        out.append(("MobileNetV2 224 torch.onnx (opset 17)", torch_file, "mobilenet_v2"))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    os.environ["NNLITE_NUM_THREADS"] = str(a.threads)
    import onnxruntime as ort

    import nnlite
    import nnlite.onnx
    rows = [f"CPU {platform.processor() or platform.machine()}, {a.threads} threads, load average "
            f"{os.getloadavg()[0]:.1f} at start (shared machine: provisional)", "",
            "| model | batch | nnlite ONNX ms | ORT ms | nnlite/ORT (goal <= 1.2) | hand-written nnlite ms | "
            "ONNX/hand-written (goal <= 1.1) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, path, hand in files():
        m = nnlite.onnx.load(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = a.threads, 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        spec = m.inputs[0]
        hand_model = nnlite.load(hand).model if hand else None
        for batch in (1, 8):
            x = np.random.default_rng(0).uniform(-1, 1, (batch, *spec.shape[1:])).astype(np.float32)
            ours = best_ms(lambda m=m, name=spec.name, x=x: m.run({name: x}), a.seconds)
            theirs = best_ms(lambda sess=sess, name=spec.name, x=x: sess.run(None, {name: x}), a.seconds)
            hand_ms = "-"
            ratio_hand = "-"
            if hand_model is not None:
                xh = x if spec.shape[-1] == 3 else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
                h = best_ms(lambda hand_model=hand_model, xh=xh: hand_model.forward(xh), a.seconds)
                hand_ms, ratio_hand = f"{h:.1f}", f"{ours / h:.2f}"
            rows.append(f"| {label} | {batch} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} | {hand_ms} | "
                        f"{ratio_hand} |")
            print(rows[-1], flush=True)
    text = "\n".join(rows) + "\n"
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
