"""The fast kernels a tiered first run left out, compiled by a process of their own after it.

A one-shot command whose model's "simd" kernels are not cached runs on the "blas" engine
(:mod:`nnlite.ops.precompile`); when it has succeeded, :func:`start` launches ``python -m nnlite.ops.precompile
--background NAME...``: the "simd" plan of those models, compiled into the same cache at niceness 10 (it yields
the cores to foreground work), in a session of its own (it outlives the command and a terminal's hangup), for at
most :data:`nnlite.ops.precompile.TIMEOUT_S`.

- It holds a shared lock on :data:`LOCK` in the cache folder, inherited from the process that started it, until
  it ends: :func:`wait` waits for it (benchmarks, tests).
- :data:`STATE` beside it names its pid and models. The next tiered first run stops it (:func:`stop`) and takes
  its models over: at its low priority it would hold the lock of a function that run needs (nnlite's compile
  locks are per function, :mod:`nnlite.ops.jit`) for as long as that run keeps the cores busy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

LOCK = "nnlite-background.lock"   # in the cache folder: held (shared) while a background compile runs
STATE = "nnlite-background.json"   # beside it: the last one's pid and names (stop)


def start(names, folder: Path, plan_file: Path | str | None = None, env: dict | None = None) -> subprocess.Popen | None:
    """Start the background compile of the plan of ``names`` (module docstring), holding a shared lock on
    ``folder``/:data:`LOCK` until it ends; None if it cannot be started."""
    from . import precompile
    plan_file = precompile.PLAN_FILE if plan_file is None else plan_file
    try:
        import fcntl
        fd = os.open(Path(folder) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        child = subprocess.Popen(precompile.helper_cmd(names, plan_file, "--background"),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=precompile.helper_env(env), pass_fds=(fd,), start_new_session=True)
    except OSError:
        return None
    finally:
        os.close(fd)   # the child's copy keeps the lock
    state = Path(folder) / STATE
    try:
        scratch = state.with_name(f"{state.name}.{os.getpid()}.tmp")
        scratch.write_text(json.dumps({"pid": child.pid, "names": list(names)}))
        os.replace(scratch, state)
    except OSError:
        pass
    return child


def stop(folder: Path) -> tuple[str, ...]:
    """Stop the background compile started on ``folder`` if it still runs, and return the names it was given
    (a first run takes them over). Numba writes each cache file whole (a new file renamed into place), and a
    file lock ends with its process, so stopping it loses at most the function at hand. Why stop it: at its
    low priority it would hold the lock of a function this run needs for as long as this run keeps the cores."""
    try:
        found = json.loads((Path(folder) / STATE).read_text())
        pid, names = int(found["pid"]), tuple(str(name) for name in found["names"])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError, KeyError, TypeError):   # none, gone, or no /proc to check the pid with
        return ()
    if b"nnlite.ops.precompile" not in argv or b"--background" not in argv:   # the pid was reused
        return ()
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return ()
    return names


def wait(folder: Path | str, timeout: float | None = None) -> bool:
    """Wait until no background compile holds ``folder``'s lock, at most ``timeout`` seconds (default: the
    longest a background compile lives); True if none does (or none ever ran)."""
    import fcntl

    from . import precompile
    timeout = precompile.TIMEOUT_S + precompile.GRACE_S if timeout is None else timeout
    path = Path(folder) / LOCK
    if not path.exists():
        return True
    deadline = time.monotonic() + timeout
    with open(path, "rb") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)


def yield_cores() -> None:
    """Niceness 10 for every thread of this process (Linux sets it per thread; threads started later inherit
    their starter's)."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, max(10, os.getpriority(os.PRIO_PROCESS, tid)))
        except (AttributeError, OSError):
            pass
