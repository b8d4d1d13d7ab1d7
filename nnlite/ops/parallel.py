"""Threads for nnlite's kernels: Numba ``prange`` drivers (the fast path) and a Python pool (BLAS chunks).

Numba kernels run on Numba's own threads: each kernel works on a range of output rows (or channel panels),
and its driver (made by :mod:`nnlite.ops.drivers`: one ``prange`` loop shared by every kernel, which calls
the kernel by address) splits the range into :func:`parts` pieces, one per thread, launched by
:func:`launch`. Numba's OpenMP layer starts a region in microseconds, so even a 14x14 layer can gain from 2
threads, where the Python pool below lost (submitting, waking a thread and handing over the GIL cost more
than the layer). Small jobs (:data:`MIN_WORK`) run serially without a launch.

A busy machine: every region ends at a barrier that all its threads must reach. When another process
holds the core one of them needs (and libgomp's idle threads, which spin, have used up their share of
it), each region waits for that thread's next time slice, and a model of dozens of layers becomes many
times slower. :class:`BusyGuard` times every launch against the best time seen for the same region
(driver and sizes); when recent regions lost more time waiting than one thread would have cost, every
region runs serially (the kernel on the calling thread, no launch) for a fraction of a second, after
which threads are tried again, with a longer hold each time the trial fails soon. One thread still
gets a whole core, so a busy machine costs about the gain of the other threads instead of a time slice
per layer. The guard only ever changes how many pieces a region is cut into, never the arithmetic.

The Python pool remains for work that is not a Numba kernel: the "blas" conv engine's NumPy matmul chunks
(:mod:`nnlite.ops.conv`), on CPUs without AVX-512. Why not OpenBLAS's own threads there: OpenBLAS and Numba
would each keep a pool whose idle threads spin while the other works, and on 2 cores they fight for the
CPU (measured under load: MobileNetV2 batch 1 became about 100x slower that way at 2 threads). Instead:

* OpenBLAS runs single-threaded inside each chunk (set by :mod:`nnlite.ops.threads`) and chunks run in
  parallel on Python threads (NumPy releases the GIL in matmul);
* scheduling is dynamic and the calling thread takes chunks too: if a worker is descheduled (a busy
  machine), the caller finishes the work and cancels the worker's not-yet-started job instead of waiting;
* idle workers sleep on a lock (no spinning), and small jobs run inline, where waking a thread costs more.

Both kinds of split partition the output (rows or channel panels) and never a sum, so each output value is
computed by the same arithmetic whatever the thread count: results are bit-identical across thread counts
(tested).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time

import numba
from numba.np.ufunc import parallel as _numba_parallel

from . import compile_notice, memory  # noqa: F401  (compile_notice: before any kernel can compile)

_state = {"threads": 1, "pool": None}
_lock = threading.Lock()

MIN_WORK = 1 << 15  # prange drivers: below this many output values (or ~4x that many multiply-adds), serial
POOL_MIN_WORK = 1 << 16  # the same for the Python pool, whose start costs more


def set_threads(n: int) -> None:
    """Use ``n`` threads (the caller plus n-1 workers) for every parallel kernel from now on."""
    with _lock:
        n = max(1, int(n))
        if n != _state["threads"]:
            old, _state["pool"] = _state["pool"], None
            _state["threads"] = n
            if old is not None:
                old.shutdown(wait=False)


def _forget_pool_after_fork() -> None:
    _state["pool"] = None  # a forked child has none of the parent's worker threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def threads() -> int:
    return _state["threads"]


def numba_threads() -> int:
    """``numba.get_num_threads()``, this Python thread's count for ``prange`` kernels. Once Numba's threading
    layer is up, its C getter is called directly: the public function takes two locks on every call
    (0.65 us against 0.09, twice per layer). Falls back to the public function if that internal moves."""
    getter = _getter[0]
    if getter is None and getattr(_numba_parallel, "_is_initialized", False):
        getter = _getter[0] = getattr(_numba_parallel, "_get_num_threads", None)
    if getter is not None:
        n = getter()
        if n > 0:
            return n
    return numba.get_num_threads()


_getter = [None]  # Numba's C getter of the thread count, once its threading layer is up


def parts(total: int, work: int) -> int:
    """Pieces a ``prange`` driver splits ``total`` units into: 1 (call the serial kernel, no launch) when
    ``work`` is below :data:`MIN_WORK` or one thread is set, else one per Numba thread, at most ``total``."""
    memory.tune_once()  # first kernel call: keep freed activation memory for reuse (see ops/memory.py)
    if work < MIN_WORK or total <= 1 or guard.serial():
        return 1
    return max(1, min(total, numba_threads()))


def split(kernel, driver, args: tuple, total: int, work: int) -> None:
    """``kernel(*args, 0, total)`` on units [0, total), serially or, when :func:`parts` says so, through
    its driver (:func:`nnlite.ops.drivers.driver`, or any callable ``driver(*args, total, pieces)``) in
    ``pieces``, timed for :data:`guard` as :func:`launch` times a region."""
    pieces = parts(total, work)
    if pieces == 1:  # a Driver's own way: its kernel may have no Python wrapper (nnlite.ops.jit.driven)
        serial = getattr(driver, "serial", None)
        if serial is None:
            kernel(*args, 0, total)
        else:
            serial(args, total)
        return
    run = getattr(driver, "run", None)  # a Driver takes its arguments as one tuple: not packed again
    if run is None:  # a driver of the convention alone, driver(*args, total, pieces)
        _timed(driver, (*args, total, pieces), (driver, total, work, pieces))
    else:
        _timed(run, (args, total, pieces), (driver, total, work, pieces))


_launch_lock = threading.Lock()
_layer_is_threadsafe = [False]


class BusyGuard:
    """Decides when parallel regions run on one thread. Once a window holds at least ``window`` regions
    whose best times add up to at least ``span`` seconds, it compares the time they lost (each region's time
    minus the best seen for the same region) with those best times: lost more than ``ratio`` times best means
    the threads ran the work slower than about one thread would, so every region runs serially for ``hold``
    seconds, then threads are tried again. A trip within ``trial`` windows of the last one doubles the hold
    (up to ``max_hold``); a calm trial resets it. ``clock`` is injectable (tests drive it by hand).

    Why a span of time as well as a count: a descheduled thread on a quiet machine (an interrupt, another
    tenant's burst) costs one region a few milliseconds, a few times a second. Over 32 regions of a small
    model (about a millisecond of work) that one delay outweighs the window and would hold every region on
    one thread for ``hold`` seconds. A busy machine loses about as much as it works in every stretch of
    a hundredth of a second, so the longer window still catches it, a few tens of milliseconds later."""

    MAX_REGIONS = 4096

    def __init__(self, clock=time.perf_counter, window: int = 32, span: float = 0.01, ratio: float = 1.0,
                 hold: float = 0.1, max_hold: float = 1.0, trial: int = 4):
        self.clock, self.window, self.span, self.ratio = clock, window, span, ratio
        self.base_hold, self.max_hold, self.trial = hold, max_hold, trial
        self.enabled = True
        self.best: dict = {}
        self.lost = self.spent = 0.0
        self.count, self.hold, self.until, self.since, self.trips = 0, hold, -math.inf, trial, 0

    def serial(self) -> bool:
        return self.until != -math.inf and self.enabled and self.clock() < self.until  # no clock until a trip

    def restart(self) -> None:
        """Threads from now on, a fresh window and the shortest hold (the best times are kept)."""
        self.lost = self.spent = 0.0
        self.count, self.hold, self.until, self.since = 0, self.base_hold, -math.inf, self.trial

    def record(self, key, seconds: float) -> None:
        """One region at several threads took ``seconds``; ``key`` names the region (driver and sizes)."""
        best = self.best.get(key)
        if best is None or seconds < best:
            if best is None and len(self.best) >= self.MAX_REGIONS:
                self.best.clear()  # inputs of ever new sizes (a server): start over rather than grow
            self.best[key] = best = seconds
        self.lost += seconds - best
        self.spent += best
        self.count += 1
        if self.count < self.window or self.spent < self.span:
            return
        self.since += 1
        if self.enabled and self.lost > self.ratio * self.spent:
            self.hold = min(self.hold * 2, self.max_hold) if self.since < self.trial else self.base_hold
            self.until = self.clock() + self.hold
            self.since = 0
            self.trips += 1
        self.lost = self.spent = 0.0
        self.count = 0


guard = BusyGuard()


def _region(driver, args: tuple):
    first = args[0]
    return driver, getattr(first, "size", None), args[-2] if isinstance(args[-2], int) else None, args[-1]


def launch(driver, *args, region=None):
    """Call a ``parallel=True`` Numba driver, timed for :data:`guard` under the name ``region`` (default:
    the driver and the sizes of its first and last arguments; :func:`split` adds the work, so that two
    layers on the same input, a 1x1 and a 3x3 conv say, are not taken for one). Numba's "workqueue"
    threading layer (used where neither OpenMP nor TBB is available) aborts the process if two Python
    threads launch at once, so launches are serialised until the first one shows that the layer in use
    is thread-safe."""
    return _timed(driver, args, region or _region(driver, args))


def _timed(call, args: tuple, region):
    """``call(*args)``, serialised while the threading layer may not be thread-safe (see :func:`launch`),
    its time reported to :data:`guard` under ``region``."""
    start = time.perf_counter()
    if _layer_is_threadsafe[0]:
        out = call(*args)
    else:
        with _launch_lock:
            out = call(*args)
            _layer_is_threadsafe[0] = numba.threading_layer() != "workqueue"
    guard.record(region, time.perf_counter() - start)
    return out


def _pool():
    from concurrent.futures import ThreadPoolExecutor  # only the "blas" engine needs it: not at import (8 ms)
    with _lock:
        if _state["pool"] is None:
            _state["pool"] = ThreadPoolExecutor(max_workers=_state["threads"] - 1, thread_name_prefix="nnlite")
        return _state["pool"]


def chunks(total: int, work: int, min_parts: int = 1, min_rows: int = 1) -> list[tuple[int, int]]:
    """Split rows [0, total) into contiguous (start, stop) ranges: about four per thread when ``work`` is
    large (enough to balance load), one when it is small, at least ``min_parts`` (a caller bounding each
    chunk's scratch memory) and, before that, at most one per ``min_rows`` rows (BLAS re-packs the whole
    right-hand matrix for every call, so a matmul chunk needs enough rows to pay for that)."""
    n = threads()
    parts = 1 if n == 1 or work < POOL_MIN_WORK else min(4 * n, total // max(min_rows, 1))
    parts = max(1, min(total, max(parts, min_parts)))
    bounds = [total * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def run(task, total: int, work: int, min_parts: int = 1, min_rows: int = 1) -> None:
    """Call ``task(start, stop)`` on row ranges covering [0, total), in parallel when ``work`` is large."""
    memory.tune_once()  # first kernel call: keep freed activation memory for reuse (see ops/memory.py)
    parts = chunks(total, work, min_parts, min_rows)
    if len(parts) <= 1 or threads() == 1:
        for a, b in parts:
            task(a, b)
        return
    counter = itertools.count()  # next() is atomic under the GIL: each chunk is taken exactly once

    def drain() -> None:
        for i in iter(counter.__next__, None):
            if i >= len(parts):
                return
            task(*parts[i])

    pool = _pool()
    jobs = [pool.submit(drain) for _ in range(min(threads() - 1, len(parts) - 1))]
    drain()
    for job in jobs:
        if not job.cancel():  # started: it may be inside a chunk, so wait for it
            job.result()


from . import threads as _threads  # noqa: E402  (after this module's names: configure() sets them)

_threads.configure()  # NNLITE_NUM_THREADS and the busy guard, before the first kernel runs
