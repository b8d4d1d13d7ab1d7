"""The machine's float32 matrix-multiply rate through NumPy (its BLAS): the yardstick for GFLOP/s.

Prints one JSON object: GFLOP/s for square float32 ``numpy.matmul`` of each size (best of a few runs),
the BLAS thread count and kernel family. Run in its own process: ``NNLITE_NUM_THREADS`` is copied into
``OPENBLAS_NUM_THREADS`` before NumPy loads OpenBLAS. nnlite.ops is imported only *after* measuring, to
name the BLAS kernels: importing it first would pin OpenBLAS to one thread (nnlite runs its own pool).

    NNLITE_NUM_THREADS=2 .venv/bin/python -m benchmarks.matmul_rate
"""

from __future__ import annotations

import json
import os
import time

if os.environ.get("NNLITE_NUM_THREADS"):   # before NumPy loads OpenBLAS
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["NNLITE_NUM_THREADS"]

import numpy as np  # noqa: E402


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
    from nnlite.ops import threads
    result.update({"gflops": max(result.values()),
                   "blas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")) or None,
                   "blas_core": threads.blas_core(), "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE")})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
