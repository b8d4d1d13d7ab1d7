"""The one parallel driver: a kernel run in pieces through it equals the kernel run once over the whole range,
through either fan-out (libgomp's directly, nnlite.ops.gomp, where Numba runs on libgomp; Numba's prange)."""

from __future__ import annotations

import os
import signal
import time

import numba
import numpy as np
import pytest
from numba import njit, types

from nnlite.ops import drivers, gomp


@njit(nogil=True)
def _scaled_rows(x, y, scale, width, r0, r1):
    # y[r] = x[r] * scale + r for rows [r0, r1) of width values; a zero width divides by zero
    for r in range(r0, r1):
        extra = r // width * width + r % width
        for j in range(width):
            y[r * width + j] = x[r * width + j] * scale + extra


# the same kernel as nnlite.ops.jit.driven compiles its kernels: no Python wrapper, only the driver calls it
_bare_rows = njit(nogil=True, no_cpython_wrapper=True)(_scaled_rows.py_func)


@pytest.fixture(params=["chosen", "prange"])
def fan_out(request):
    """Each test through the fan-out the drivers chose, then through Numba's prange one."""
    x = np.ones(4, np.float32)
    drivers.driver(_scaled_rows)(x, np.zeros_like(x), np.float32(1), 2, 2, 2)  # both fan-outs known from here
    chosen = drivers._fan_out_at[0]
    if request.param == "prange":
        drivers._fan_out_at[0] = (drivers._native_address(drivers._fan_out, drivers._FAN_OUT_TYPES), 0)
    yield request.param
    drivers._fan_out_at[0] = chosen


def test_the_libgomp_fan_out_is_used_exactly_where_numba_runs_on_libgomp(fan_out):
    if fan_out != "chosen":
        return
    points = gomp.entry_points()
    if numba.threading_layer() == "omp" and _openmp_vendor() == "GNU":
        assert points is not None and points.shape == (4,) and points.all()
        assert points[3] == numba.config.NUMBA_NUM_THREADS  # the most threads a region asks libgomp for
        assert drivers._fan_out_at[0] == (drivers._native_address(gomp.fan_out, drivers._FAN_OUT_TYPES),
                                          points.ctypes.data)
    else:
        assert points is None and drivers._fan_out_at[0] == _prange()


def _openmp_vendor():
    from numba.np.ufunc import omppool
    return omppool.openmp_vendor


def _prange():
    return drivers._native_address(drivers._fan_out, drivers._FAN_OUT_TYPES), 0


def test_the_environment_switch_keeps_prange(monkeypatch, fan_out):
    monkeypatch.setenv("NNLITE_GOMP_FAN_OUT", "0")
    assert drivers._choose_fan_out() == _prange()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_goes_back_to_prange(fan_out):
    before = drivers._fan_out_at[0]
    gomp_in_use = before[1] != 0
    pid = os.fork()
    if pid == 0:  # libgomp's fan-out: chosen again at the next bind, as prange's (nothing runs here: Numba's
        # layer would stop the child); prange's: kept
        if gomp_in_use:
            ok = drivers._fan_out_at[0] == (0, 0) and drivers._choose_fan_out() == _prange()
        else:
            ok = drivers._fan_out_at[0] == before
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert drivers._fan_out_at[0] == before and not drivers._forked[0]


@pytest.mark.parametrize("kernel", [_scaled_rows, _bare_rows], ids=["with a Python wrapper", "without"])
def test_pieces_give_the_bits_of_one_serial_call(fan_out, kernel):
    rng = np.random.default_rng(3)
    rows, width = 37, 5
    x = rng.standard_normal(rows * width).astype(np.float32)
    want = np.zeros_like(x)
    _scaled_rows(x, want, np.float32(1.5), width, 0, rows)
    drive = drivers.driver(kernel)
    for pieces in (1, 2, 3, 8, rows):  # more pieces than threads: each thread runs several
        got = np.full_like(x, np.nan)
        drive(x, got, np.float32(1.5), width, rows, pieces)
        assert np.array_equal(got, want), pieces


def test_other_argument_types_bind_their_own_specialisation(fan_out):
    drive = drivers.driver(_scaled_rows)
    x32 = np.arange(12, dtype=np.float32)
    x64 = np.arange(12, dtype=np.float64)
    for x in (x32, x64, x32):
        want, got = np.zeros_like(x), np.zeros_like(x)
        _scaled_rows(x, want, x.dtype.type(2), 3, 0, 4)
        drive(x, got, x.dtype.type(2), 3, 4, 2)
        assert np.array_equal(got, want) and got.dtype == x.dtype
    assert len(drive._by_key) == 2


def test_an_error_in_a_piece_is_raised_with_its_message(fan_out):
    x = np.ones(8, np.float32)
    with pytest.raises(ZeroDivisionError):
        drivers.driver(_scaled_rows)(x, np.zeros_like(x), np.float32(1), 0, 4, 2)


def test_an_error_in_a_kernel_without_a_python_wrapper_is_raised_with_its_message(fan_out):
    x = np.ones(8, np.float32)
    drive = drivers.driver(_bare_rows)
    for pieces in (1, 2):
        with pytest.raises(ZeroDivisionError, match="division by zero"):
            drive(x, np.zeros_like(x), np.float32(1), 0, 4, pieces)
    twin = drive.callable()
    assert twin is not _bare_rows and drive.callable() is twin
    assert drivers.driver(_scaled_rows).callable() is _scaled_rows


def test_one_piece_runs_on_the_calling_thread_without_a_fan_out():
    x = np.arange(12, dtype=np.float32)
    want, got = np.zeros_like(x), np.zeros_like(x)
    _scaled_rows(x, want, np.float32(3), 4, 0, 3)
    drive = drivers.driver(_bare_rows)
    args = (x, got, np.float32(3), 4)
    address, key = drive._bind(args, parallel=False)
    assert drivers._run(address, key, args, 3, 1, 0, 0) == 0 and np.array_equal(got, want)
    assert drivers._run(address, key, args, 3, 2, 0, 0) == -1  # more pieces need the fan-out


def test_one_piece_calls_a_kernel_with_a_python_wrapper_directly_and_a_bare_one_through_its_entry():
    x = np.arange(12, dtype=np.float32)
    want = np.zeros_like(x)
    _scaled_rows(x, want, np.float32(2), 3, 0, 4)
    for kernel, binds in ((_scaled_rows, 0), (_bare_rows, 1)):
        drive, got = drivers.driver(kernel), np.zeros_like(x)
        drive.serial((x, got, np.float32(2), 3), 4)
        assert np.array_equal(got, want) and len(drive._by_key) == binds, kernel


def test_type_key_depends_only_on_the_types():
    a = (types.float32[::1], types.int64, types.int64)
    assert drivers.type_key(a) == drivers.type_key(tuple(a))
    assert drivers.type_key(a) != drivers.type_key((types.float64[::1], types.int64, types.int64))
    assert 0 <= drivers.type_key(a) < 2 ** 63


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_that_starts_a_region_after_the_fork_does_not_hang():
    # libgomp's threads do not exist in the child: Numba's layer stops it with a message, or it runs; never a wait
    x = np.ones(1 << 20, np.float32)
    drive = drivers.driver(_scaled_rows)
    drive(x, np.zeros_like(x), np.float32(1), 1024, 1024, 2)  # the parent has run a region
    pid = os.fork()
    if pid == 0:
        try:
            drive(x, np.zeros_like(x), np.float32(1), 1024, 1024, 2)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung in its first parallel region")
