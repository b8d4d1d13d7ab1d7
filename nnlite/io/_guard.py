"""Run a function that calls into a C library in a forked child, with a deadline.

A damaged HDF5 file can make the HDF5 library loop forever (or crash) inside one C call. Such a call holds
the GIL, so neither a watchdog thread nor Ctrl-C can stop it in the process that made it. Run in a child,
the call can be abandoned: the parent only waits on a pipe (which Ctrl-C interrupts), kills the child at
the deadline, and turns a timeout or a crash into a typed error. The child returns its result pickled;
it is this module's caller's own code that produces it, never data taken as-is from the file.

Where ``fork`` is not available (Windows) the function runs in-process, unguarded. The child is forked
from a process that may run other threads; it only runs ``fn`` (h5py here, which nnlite's own process
never calls, so no h5py lock can be held at the fork) and leaves with ``os._exit``.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import NnliteError

_CAN_FORK = hasattr(os, "fork")


def run_guarded(fn: Callable[..., Any], *args, timeout: float, error: type[NnliteError], what: str,
                hint: str = "") -> Any:
    """``fn(*args)`` computed in a child process; NnliteErrors it raises are re-raised here (same type)."""
    if not _CAN_FORK:
        return fn(*args)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python >= 3.12 warns on fork() with threads; the child only runs `fn`
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: never returns into the caller's code
        status = 1
        try:
            gc.disable()  # a collection would touch every inherited object, copying the parent's heap page by page
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C kills it even inside a C call
            try:
                reply = ("ok", fn(*args))
            except NnliteError as exc:
                reply = ("error", type(exc).__name__, str(exc))
            except Exception as exc:  # the library's own errors on a damaged file
                reply = ("error", "", f"{what}: {type(exc).__name__}: {exc}")
            payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks, done = [], False
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise error(f"{what}: gave up after {timeout:.0f} s (the file's structure is damaged or makes "
                            f"the library loop){hint}")
            ready, _, _ = select.select([read_end], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(read_end, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        done = True
    finally:
        os.close(read_end)
        if not done:  # timeout, Ctrl-C or any other exit: the child must not outlive us
            _kill(pid)
    if status != 0 or not chunks:
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.waitstatus_to_exitcode(status)}")
        raise error(f"{what}: the reader stopped unexpectedly ({how}); the file is probably damaged")
    reply = pickle.loads(b"".join(chunks))
    if reply[0] == "error":
        raise _error_type(reply[1], error)(reply[2])
    return reply[1]


def _error_type(name: str, default: type[NnliteError]) -> type[NnliteError]:
    from .. import errors
    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, NnliteError):
        return found
    return default


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
