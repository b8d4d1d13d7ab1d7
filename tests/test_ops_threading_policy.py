"""When nnlite's parallel regions fall back to one thread on a busy machine, and that no threading choice
(thread count, busy guard, OpenMP wait policy) changes a single result bit.

The busy guard's decisions are driven with a fake clock and made-up region times: no test here times
anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnlite import ops
from nnlite.errors import ConfigError
from nnlite.ops import parallel, threads

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_guard(**kwargs):
    clock = FakeClock()
    settings = dict(window=4, span=0.0, ratio=1.0, hold=0.25, max_hold=1.0, trial=3) | kwargs
    return parallel.BusyGuard(clock=clock, **settings), clock


def test_guard_stays_parallel_while_regions_take_their_usual_time():
    guard, clock = make_guard()
    for i in range(200):
        guard.record("conv", 0.002 + (i % 7) * 1e-4)   # jitter: lost time far below the regions' best
        guard.record("pool", 0.0005)
        clock.now += 0.01
    assert not guard.serial() and guard.trips == 0


def test_guard_ignores_slow_regions_that_lose_less_than_their_best_time():
    guard, clock = make_guard()
    guard.record("conv", 0.002)
    for i in range(3, 100):
        guard.record("conv", 0.009 if i % 4 == 0 else 0.002)  # 7 ms lost per 4 x 2 ms best: below 1x
    assert guard.trips == 0 and not guard.serial()


def test_guard_runs_serially_once_a_window_loses_more_than_its_best_then_tries_threads_again():
    guard, clock = make_guard()
    for seconds in (0.002, 0.002, 0.002, 0.002):          # first window: sets the best, loses nothing
        guard.record("conv", seconds)
    for seconds in (0.002, 0.002, 0.002, 0.0065):         # loses 4.5 ms on 8 ms best: stays parallel
        guard.record("conv", seconds)
    assert not guard.serial()
    for seconds in (0.002, 0.002, 0.002, 0.011):          # loses 9 ms on 8 ms best: one thread from now
        guard.record("conv", seconds)
    assert guard.serial() and guard.trips == 1
    clock.now += 0.2
    assert guard.serial()
    clock.now += 0.06                                      # past the 0.25 s hold
    assert not guard.serial()


def test_guard_decides_on_a_span_of_work_so_one_late_region_of_a_small_model_does_not_hold_it():
    guard, clock = make_guard(window=32, span=0.01)
    regions = [("conv", i % 10) for i in range(10)]            # a small model: ten 40 us regions a run
    for key in regions:
        guard.record(key, 40e-6)
    for run in range(100):                                    # 40 ms of work, one 3 ms delay: stays parallel
        for i, key in enumerate(regions):
            guard.record(key, 3e-3 if run == 50 and i == 3 else 40e-6)
    assert guard.trips == 0 and not guard.serial()
    for run in range(30):                                     # 2 ms of work per 3 ms of waiting: one thread
        for i, key in enumerate(regions):
            guard.record(key, 3e-3 if i == 3 and run % 5 == 0 else 40e-6)
    assert guard.trips == 1 and guard.serial()


def test_each_region_is_compared_with_its_own_best():
    guard, _ = make_guard()
    guard.record(("conv", 1), 0.002)
    for _ in range(10):
        guard.record(("conv", 2), 0.05)   # another, larger region: never compared with conv 1
    assert guard.trips == 0


def test_guard_hold_doubles_when_threads_fail_again_soon_and_resets_after_a_calm_trial():
    guard, clock = make_guard()

    def trip():
        for _ in range(4):
            guard.record("conv", 0.02)

    for _ in range(4):
        guard.record("conv", 0.002)
    trip()
    assert guard.hold == 0.25
    clock.now += 0.3
    trip()                                # the next window: within `trial` (3) windows of the last trip
    assert guard.hold == 0.5 and guard.serial()
    clock.now += 0.6
    trip()
    assert guard.hold == 1.0              # capped at max_hold
    clock.now += 1.1
    trip()
    assert guard.hold == 1.0
    clock.now += 1.1
    for _ in range(20):                   # a calm trial: 5 windows
        guard.record("conv", 0.002)
    trip()
    assert guard.hold == 0.25 and guard.trips == 5


def test_guard_remembers_a_bounded_number_of_regions():
    guard, _ = make_guard()
    for size in range(parallel.BusyGuard.MAX_REGIONS + 10):
        guard.record(("resize", size), 0.001)
    assert len(guard.best) <= parallel.BusyGuard.MAX_REGIONS and ("resize", size) in guard.best


def test_disabled_guard_never_holds():
    guard, _ = make_guard()
    guard.enabled = False
    guard.record("conv", 0.002)
    for _ in range(11):
        guard.record("conv", 0.05)
    assert not guard.serial() and guard.trips == 0


def test_parts_is_one_while_the_guard_holds(monkeypatch):
    clock = FakeClock()
    guard = parallel.BusyGuard(clock=clock)
    monkeypatch.setattr(parallel, "guard", guard)
    before = ops.get_num_threads()
    ops.set_num_threads(2)
    try:
        import numba
        if numba.get_num_threads() < 2:
            pytest.skip("Numba was started with one thread")
        assert parallel.parts(1000, 1 << 30) == 2
        guard.until = clock.now + 1.0
        assert parallel.parts(1000, 1 << 30) == 1
        clock.now += 2.0
        assert parallel.parts(1000, 1 << 30) == 2
    finally:
        ops.set_num_threads(before)


def test_setting_the_thread_count_releases_a_holding_guard(monkeypatch):
    clock = FakeClock()
    guard = parallel.BusyGuard(clock=clock)
    monkeypatch.setattr(parallel, "guard", guard)
    before = ops.get_num_threads()
    try:
        guard.hold, guard.until = 1.0, clock.now + 1.0
        ops.set_num_threads(2)
        assert not guard.serial() and guard.hold == guard.base_hold
    finally:
        ops.set_num_threads(before)


def test_numba_threads_follows_each_python_threads_own_count():
    """parallel.numba_threads reads Numba's per-thread count (its fast getter), as numba.get_num_threads."""
    import threading

    import numba
    ops.conv2d(np.ones((1, 4, 4, 2), np.float32), np.ones((1, 1, 2, 2), np.float32))  # threading layer up
    before = numba.get_num_threads()
    seen = {}

    def other():  # a fresh Python thread starts with Numba's default count, whatever this one set
        seen["other"] = (parallel.numba_threads(), numba.get_num_threads())

    try:
        numba.set_num_threads(1)
        assert parallel.numba_threads() == 1
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        assert seen["other"][0] == seen["other"][1] == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)
    assert parallel.numba_threads() == before


def test_launch_reports_each_region_to_the_guard(monkeypatch):
    seen = []

    class Recorder:
        def record(self, key, seconds):
            seen.append((key, seconds))

    monkeypatch.setattr(parallel, "guard", Recorder())
    x = np.zeros(12, np.float32)
    parallel.launch(lambda a, total, pieces: a.fill(1.0), x, 12, 2)
    assert len(seen) == 1 and x.sum() == 12
    (driver, size, total, pieces), seconds = seen[0]
    assert (size, total, pieces) == (12, 12, 2) and seconds >= 0.0


def test_split_reports_each_region_to_the_guard_with_its_work(monkeypatch):
    from nnlite.ops import activations
    seen = []

    class Recorder:
        def record(self, key, seconds):
            seen.append((key, seconds))

        def serial(self):
            return False

    monkeypatch.setattr(parallel, "guard", Recorder())
    monkeypatch.setattr(parallel, "numba_threads", lambda: 2)
    x = np.arange(-6, 6, dtype=np.float32)
    y = np.empty_like(x)
    args = (y, x, activations.RELU, np.float32(0))
    parallel.split(activations._act_into, activations._act_into_parallel, args, 12, parallel.MIN_WORK)
    assert np.array_equal(y, np.maximum(x, 0))
    assert len(seen) == 1
    key, seconds = seen[0]
    assert key == (activations._act_into_parallel, 12, parallel.MIN_WORK, 2) and seconds >= 0.0
    parallel.split(activations._act_into, activations._act_into_parallel, args, 12, parallel.MIN_WORK - 1)
    assert len(seen) == 1  # below MIN_WORK: the kernel on this thread, no region


@pytest.mark.parametrize("raw,want", [("", True), ("1", True), ("0", False)])
def test_busy_guard_setting(monkeypatch, raw, want):
    monkeypatch.setenv("NNLITE_BUSY_GUARD", raw)
    assert threads.busy_guard_requested() is want


@pytest.mark.parametrize("name,raw", [("NNLITE_BUSY_GUARD", "yes"), ("NNLITE_NUM_THREADS", "zero"),
                                      ("NNLITE_NUM_THREADS", "0"), ("NNLITE_NUM_THREADS", "1.5")])
def test_bad_thread_settings_are_config_errors(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name):
        threads.busy_guard_requested() if name == "NNLITE_BUSY_GUARD" else threads.requested_threads()


def test_wait_policy_reports_the_environment(monkeypatch):
    for name in threads.WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert threads.wait_policy() == "libgomp default"
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert threads.wait_policy() == "environment: OMP_WAIT_POLICY=PASSIVE"


WORKLOAD = '''
import numpy as np
from nnlite import ops
from nnlite.ops import parallel, threads
r = lambda s, *shape: np.random.default_rng(s).standard_normal(shape).astype(np.float32)
x = r(0, 1, 56, 56, 32)
def run():
    return {
        "conv": ops.conv2d(x, r(1, 3, 3, 32, 48), r(2, 48), padding="same", activation="relu"),
        "conv_1x1": ops.conv2d(x, r(3, 1, 1, 32, 64), r(4, 64), activation="relu6"),
        "depthwise": ops.depthwise_conv2d(x, r(5, 3, 3, 32, 1), r(6, 32), stride=2, padding="same"),
        "add": ops.add(x, r(7, 1, 56, 56, 32), activation="relu"),
        "max_pool": ops.max_pool2d(x, pool_size=3, stride=2, padding="same"),
    }
outputs = run()
parallel.guard.until = float("inf")  # the guard holding: every region on one thread
outputs.update({"held_" + k: v for k, v in run().items()})
info = [ops.get_num_threads(), threads.wait_policy()]
'''


def _run_workload(tmp_path: Path, tag: str, env: dict) -> tuple[dict, list]:
    out = tmp_path / f"{tag}.npz"
    script = WORKLOAD + f"\nnp.savez({str(out)!r}, info=np.array(info), **outputs)\n"
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    for name in (*threads.WAIT_VARIABLES, "NUMBA_NUM_THREADS"):  # this process exported its own
        if name not in env:
            full.pop(name, None)
    done = subprocess.run([sys.executable, "-c", script], env=full, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = dict(np.load(out))
    return {k: v for k, v in got.items() if k != "info"}, list(got["info"])


def test_results_are_bit_identical_across_thread_counts_guard_and_wait_policies(tmp_path):
    one, info = _run_workload(tmp_path, "one", {"NNLITE_NUM_THREADS": "1"})
    assert info[0] == "1"
    runs = {"spin": {"NNLITE_NUM_THREADS": "2"},
            "passive": {"NNLITE_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
            "short_spin_no_guard": {"NNLITE_NUM_THREADS": "2", "GOMP_SPINCOUNT": "1000", "NNLITE_BUSY_GUARD": "0"}}
    for tag, env in runs.items():
        got, info = _run_workload(tmp_path, tag, env)
        assert info[0] == "2", (tag, info)
        for name in one:
            assert np.array_equal(got[name], one[name]), (tag, name)


def test_split_takes_any_driver_of_the_convention(monkeypatch):
    monkeypatch.setattr(parallel, "numba_threads", lambda: 2)
    calls = []

    def driver(y, total, pieces):  # not a drivers.Driver: called as driver(*args, total, pieces)
        calls.append((total, pieces))
        y[:total] = 1.0

    y = np.zeros(10, np.float32)
    parallel.split(lambda y, a, b: None, driver, (y,), 10, parallel.MIN_WORK)
    assert calls == [(10, 2)] and y.sum() == 10
