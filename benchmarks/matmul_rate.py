"""The machine's float32 matrix-multiply rate through NumPy (its BLAS): the yardstick for GFLOP/s.

Prints one JSON object: GFLOP/s for square float32 ``numpy.matmul`` of each size (best of a few runs),
the BLAS thread count and kernel family. Run in its own process so ``NNLITE_NUM_THREADS`` reaches BLAS
at load time:  ``NNLITE_NUM_THREADS=2 .venv/bin/python -m benchmarks.matmul_rate``
"""

from __future__ import annotations

import json
import os
import time

import nnlite.ops as ops  # noqa: I001 - before NumPy, so the thread settings reach OpenBLAS

import numpy as np


def rate(n: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.random((n, n), np.float32)
    b = rng.random((n, n), np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def main() -> int:
    result = {f"gflops_{n}": rate(n, r) for n, r in ((1024, 10), (2048, 5), (4096, 2))}
    result.update({"gflops": max(result.values()), "blas_threads": ops.blas_num_threads(),
                   "blas_core": ops.blas_core(), "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE")})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
