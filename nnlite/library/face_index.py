"""Exact nearest-face search over a compact code with provable distance bounds.

Every descriptor dimension j is quantized to 8 bits on its own grid, ``v = floor((x_j - lo_j) / h_j)``
clipped to 0..255, and the byte is stored as two nibble planes:

    coarse (N, D/2) uint8   the high nibble of every dimension (two dimensions a byte): 4 bits, scanned always
    fine   (N, D/2) uint8   the low nibble: with the coarse one the full 8-bit code, read only for survivors

Each row also keeps the exact length of its reconstruction errors, ``err = ||x - x_hat||`` for the 4-bit and
the 8-bit reconstruction. The triangle inequality then bounds the true distance from below:

    ||q - x||  >=  ||q - x_hat|| - ||x - x_hat||

A query (1) scans the first FIRST rows' codes and takes the exact distances of the 3 k of smallest coarse
distance ``||q - x_hat4||`` (computed as a dot product of the nibbles with per-query weights, see
Grid.coarse_terms): their k-th is an upper bound ``tau`` on the true k-th distance; (2) scans all rows in one
parallel region, keeping only the rows whose coarse bound is <= tau (a few %) while each chunk keeps its k
rows of smallest coarse distance; (3) lowers tau to the k-th exact distance of the 3 k best of those; (4)
re-checks the kept rows whose coarse bound is <= tau with their 8-bit code; (5) computes exact distances
(float64) for the rows that survive that tighter bound too, and returns the k nearest (ties by face id). A row
is skipped only when a lower bound on its distance exceeds a distance already achieved by k rows, so the
result is the exact top k, never an approximation. The bounds are lowered by a bound on float32's rounding
in the kernels (relative 1e-4, plus an absolute term per query).

The scan reads D/2 bytes a row (64 MB for 1M 128-d faces), the bounds need no training beyond the
per-dimension grid, and rows appended later reuse the grid (a row outside it is clipped, which only widens
its own error term). The float32 rows are read only for the few candidates, so they may be a
``numpy.memmap`` of a file instead of RAM. Small indexes, and descriptors of over 4096
dimensions (``face_scan.MAX_SIZE``), skip the codes and compute every distance.
"""

from __future__ import annotations

import mmap
import os
import threading

import numpy as np

from ..errors import LibraryError
from .face_scan import CHUNK, MAX_SIZE, SLACK, exact_distances, exact_distances_parallel, refine, scan_coarse_parallel
from .nibbles import quantize

QUANTIZE_ABOVE = 50_000
GATHER = 4096         # at most this many rows of a file-mapped matrix are read with pread
FIRST = 16_384        # rows scanned first, for an upper bound on the k-th distance
SAMPLE = 32_768       # rows used to place the per-dimension grid
BUILD = 16_384        # rows encoded at a time (float64 temporaries: a few MB each)


class Grid:
    """Per-dimension 8-bit grid: byte v stands for lo + (v + 0.5) * step; its high nibble alone for the
    middle of 16 such steps."""

    def __init__(self, sample: np.ndarray):   # (n, D) float32, D even
        lo = np.percentile(sample, 0.05, axis=0).astype(np.float64)
        hi = np.percentile(sample, 99.95, axis=0).astype(np.float64)
        self.lo, self.step = lo, np.maximum(hi - lo, 1e-6) / 256.0   # (D,), (D,)

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """x (n, D) -> coarse, fine (n, D/2) uint8, the 4- and 8-bit errors (n,) float32 (rounded up) and
        the norms (n,) float32 of Grid.coarse_terms."""
        v = np.clip(np.floor((x - self.lo) / self.step), 0, 255).astype(np.uint8)   # (n, D)
        high, low = v >> 4, v & 15
        coarse = (high[:, 0::2] | (high[:, 1::2] << 4)).astype(np.uint8)
        fine = (low[:, 0::2] | (low[:, 1::2] << 4)).astype(np.uint8)
        x4 = self.lo + (high.astype(np.float64) * 16 + 8) * self.step
        x8 = self.lo + (v + 0.5) * self.step
        norms = (((high - 7.5) * 16 * self.step) ** 2).sum(1).astype(np.float32)
        return coarse, fine, _up(np.linalg.norm(x - x4, axis=1)), _up(np.linalg.norm(x - x8, axis=1)), norms

    def coarse_terms(self, q: np.ndarray, norms_max: float) -> tuple:
        """Terms of scan_coarse. With the grid's middle m = lo + 128 step, u = q - m, t = 16 step and h the
        high nibbles, x_hat4 = m + t (h - 7.5), so

            ||q - x_hat4||^2 = (||u||^2 + 15 u.t) + ||t (h - 7.5)||^2 - 2 (u t).h
                               offset (per query)   norms (per row)       a dot product with the nibbles

        The dot product runs in integers (nibbles.nibble_dot) on the weights -2 u t rounded to 16 bits:
        returns (weights, scale, offset, delta), delta bounding (with a wide margin) float32's rounding in
        the sum plus, exactly, what the weights' rounding can change it by (nibbles.quantize)."""
        u, t = q - self.lo - 128 * self.step, 16 * self.step
        w = -2 * u * t
        weights, scale, error = quantize(w[0::2], w[1::2])
        offset = float(u @ u + 15 * (u @ t))
        size = float(15 * np.abs(w).sum()) + abs(offset) + norms_max
        return weights, np.float64(scale), np.float32(offset), np.float32(3e-5 * size + error)

    def rounding(self, q: np.ndarray) -> float:
        """A bound (with a wide margin) on float32's absolute rounding in a kernel's ||q - x_hat||."""
        return 1e-6 * float(np.linalg.norm(np.abs(q) + np.abs(self.lo) + 256 * self.step))

    def fine_terms(self, q: np.ndarray) -> tuple[np.ndarray, ...]:
        """(a_even, a_odd, step_even, step_odd) with q_j - x_hat8_j = a_j - step_j * code_j."""
        a, step = q - self.lo - 0.5 * self.step, self.step
        a, step = a.astype(np.float32), step.astype(np.float32)
        return a[0::2].copy(), a[1::2].copy(), step[0::2].copy(), step[1::2].copy()


def _up(x: np.ndarray) -> np.ndarray:
    return np.nextafter(x.astype(np.float32), np.float32(np.inf))


class FaceIndex:
    """Nearest faces by Euclidean descriptor distance, exact (see the module docstring for the method).
    ``metric="cosine"`` compares unit-length rows and reports 1 - cos = ||a - b||^2 / 2 (same order).
    ``descriptors`` may be a ``numpy.memmap``: it is read in chunks to build the codes and then only for
    candidate rows, so the float32 rows need not fit in RAM."""

    def __init__(self, ids: np.ndarray, descriptors: np.ndarray, quantize_above: int = QUANTIZE_ABOVE,
                 metric: str = "euclidean", size: int | None = None, *, grid: Grid | None = None):
        if not isinstance(descriptors, np.ndarray) or descriptors.dtype != np.float32:
            descriptors = np.asarray(descriptors, np.float32)
        if descriptors.ndim == 2 and len(descriptors) == 0:
            descriptors = descriptors.reshape(0, size or descriptors.shape[1])
        size = size or (descriptors.shape[1] if descriptors.ndim == 2 else 0)
        if descriptors.ndim != 2 or descriptors.shape[1] != size or len(ids) != len(descriptors):
            raise LibraryError(f"face descriptors must be (N, {size}) with N ids, found {descriptors.shape}"
                               f" and {len(ids)} ids")
        self.metric, self.size, self.quantize_above = metric, size, quantize_above
        self.ids = np.asarray(ids, np.int64)   # (N,)
        self.matrix = np.ascontiguousarray(descriptors) if not isinstance(descriptors, np.memmap) else descriptors
        self.grid = grid
        self.coarse = self.fine = self.err4 = self.err8 = self.norms = None
        if len(self.ids) > quantize_above and size % 2 == 0 and size <= MAX_SIZE:
            self._encode()
        # Numba's default thread pool must not be entered by two threads at once (web server)
        self.lock = threading.Lock()

    def _rows(self, which) -> np.ndarray:
        x = np.asarray(self.matrix[which], np.float64)   # (n, D)
        if self.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    def _encode(self, start: int = 0) -> None:
        n, half = len(self.ids), self.size // 2
        if self.grid is None:   # 64 evenly spread runs of rows (a memmap pages in only these)
            runs = []
            for s in np.linspace(0, max(0, n - SAMPLE // 64), 64).astype(np.int64):
                runs.append(self._rows(slice(s, s + SAMPLE // 64)))
                self._release()
            self.grid = Grid(np.concatenate(runs))
        parts = [np.empty((n, half), np.uint8), np.empty((n, half), np.uint8)]
        parts += [np.empty(n, np.float32) for _ in range(3)]
        if start:
            for part, old in zip(parts, (self.coarse, self.fine, self.err4, self.err8, self.norms)):
                part[:start] = old
        for s in range(start, n, BUILD):
            for part, new in zip(parts, self.grid.encode(self._rows(slice(s, s + BUILD)))):
                part[s:s + len(new)] = new
            self._release()
        self.coarse, self.fine, self.err4, self.err8, self.norms = parts
        self.norms_max = float(self.norms.max())
        self.cand_i = np.empty(n, np.int32)         # per-query scratch (candidates of each chunk), kept
        self.cand_b = np.empty(n, np.float32)       # to avoid page faults

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(matrix, row numbers in it) holding the given rows. A few rows of a file-mapped matrix are read with
        pread instead of through the mapping: a page fault there can map a whole large page-cache folio (MBs),
        which a query touching a few hundred scattered rows would briefly add to this process's RSS."""
        mapped = isinstance(self.matrix, np.memmap) and isinstance(self.matrix.base, mmap.mmap)
        if not mapped or len(rows) > GATHER or not self.matrix.flags.c_contiguous:
            return np.asarray(self.matrix), rows
        width = self.matrix.shape[1] * 4
        with open(self.matrix.filename, "rb") as f:
            data = b"".join(os.pread(f.fileno(), width, self.matrix.offset + int(i) * width) for i in rows)
        return np.frombuffer(bytearray(data), self.matrix.dtype).reshape(len(rows), -1), np.arange(len(rows))

    def _release(self) -> None:
        """Unmap the pages of a memory-mapped matrix read so far (they stay in the OS's file cache), so that
        neither building the codes nor many queries leave the file counted in this process's resident memory."""
        mapping = self.matrix.base if isinstance(self.matrix, np.memmap) else None
        if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, ids: np.ndarray, descriptors: np.ndarray) -> FaceIndex:
        """A new index with more rows; the codes of the existing rows and their grid are reused."""
        if len(ids) == 0:
            return self
        grown = FaceIndex.__new__(FaceIndex)
        grown.__dict__.update(self.__dict__)
        grown.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        grown.matrix = np.concatenate([self.matrix, np.asarray(descriptors, np.float32).reshape(-1, self.size)])
        grown.lock = threading.Lock()
        if grown.coarse is not None:
            grown._encode(len(self.ids))
        elif len(grown.ids) > self.quantize_above and self.size % 2 == 0 and self.size <= MAX_SIZE:
            grown._encode()
        return grown

    def search(self, query: np.ndarray, k: int = 10, threshold: float | None = None) -> list[tuple[int, float]]:
        """(face id, distance) of the ``k`` nearest faces, nearest first; only distances <= threshold."""
        q = np.asarray(query, np.float32).reshape(-1)   # (D,)
        if q.size != self.size or not np.all(np.isfinite(q)):
            raise LibraryError(f"a face query must be {self.size} finite floats, found {q.size} values")
        if self.metric == "cosine":
            q = q / np.float32(max(float(np.linalg.norm(q)), 1e-12))
        n = len(self.ids)
        if n == 0 or k < 1:
            return []
        k = min(k, n)
        with self.lock:
            rows = self._candidates(q, k) if self.coarse is not None else np.arange(n)
            d2 = np.empty(len(rows), np.float64)
            exact = exact_distances_parallel if len(rows) > 4096 else exact_distances
            matrix, which = self._gather(rows)
            exact(matrix, q, which, self.metric == "cosine", d2)
            self._release()   # a memory-mapped matrix: the candidates' pages leave this process's RSS
        if len(rows) > k:   # keep everything tied with the k-th so ties go by face id
            keep = d2 <= np.partition(d2, k - 1)[k - 1]
            rows, d2 = rows[keep], d2[keep]
        order = np.lexsort((self.ids[rows], d2))[:k]
        results = [(int(self.ids[rows[i]]), float(d2[i] / 2.0 if self.metric == "cosine" else np.sqrt(d2[i])))
                   for i in order]
        return [r for r in results if threshold is None or r[1] <= threshold]

    def _scan(self, q: np.ndarray, k: int, limit: np.float32 | None = None) -> tuple[np.ndarray, ...]:
        """The coarse scan for query q: (limit, best_d, best_i, cand_i, cand_b, counts) of scan_coarse. Unless
        given, the limit is an upper bound on the k-th distance from the first FIRST rows (the exact distances
        of their 3 k best coarse rows), so the full scan keeps only rows whose bound is below it (a few %)."""
        n, terms = len(self.ids), self.grid.coarse_terms(q, self.norms_max)
        if limit is None:
            first, m = min(n, FIRST), min(3 * k, n)
            chunks = -(-first // CHUNK)
            best_d, best_i = np.empty((chunks, m), np.float32), np.empty((chunks, m), np.int64)
            scan_coarse_parallel(self.coarse[:first], *terms[:2], self.norms, *terms[2:], self.err4, np.float32(np.inf),
                                 best_d, best_i, self.cand_i, self.cand_b, np.empty(chunks, np.int64))
            guesses = best_i.ravel()[np.argsort(best_d.ravel(), kind="stable")[:m]]
            limit = self._limit(q, guesses[guesses >= 0], k)
        chunks = -(-n // CHUNK)
        best_d, best_i = np.empty((chunks, k), np.float32), np.empty((chunks, k), np.int64)
        counts = np.empty(chunks, np.int64)
        scan_coarse_parallel(self.coarse, *terms[:2], self.norms, *terms[2:], self.err4, limit, best_d, best_i,
                             self.cand_i, self.cand_b, counts)
        return limit, best_d, best_i, self.cand_i, self.cand_b, counts

    def _limit(self, q: np.ndarray, rows: np.ndarray, k: int) -> np.float32:
        """An upper bound on the k-th true distance: the k-th smallest exact distance among ``rows``, widened
        by SLACK and by float32's absolute rounding in the kernels."""
        d2 = np.empty(len(rows), np.float64)
        matrix, which = self._gather(rows)
        exact_distances(matrix, q, which, self.metric == "cosine", d2)
        return np.float32(np.sqrt(np.partition(d2, k - 1)[k - 1]) * (1 + SLACK) + self.grid.rounding(q))

    def _candidates(self, q: np.ndarray, k: int) -> np.ndarray:
        """Row numbers that may be among the k nearest (always a superset of them), by the bounds above."""
        limit, best_d, best_i, cand_i, cand_b, counts = self._scan(q, k)
        flat_d, flat_i = best_d.ravel(), best_i.ravel()
        guesses = flat_i[np.argsort(flat_d, kind="stable")[:3 * k]]   # the 3 k best coarse rows of all
        limit = min(limit, self._limit(q, guesses[guesses >= 0], k))
        out = np.empty(int(counts.sum()), np.int64)
        found, _ = refine(self.coarse, self.fine, *self.grid.fine_terms(q), self.err8, cand_i, cand_b, counts,
                       limit, out)
        return out[:found]
