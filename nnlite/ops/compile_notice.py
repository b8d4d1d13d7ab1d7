"""One line on stderr when a process starts compiling nnlite's kernels, so a cold first run is not taken for a hang.

Numba compiles each kernel for the CPU it runs on and caches the machine code (``cache=True``: in the
package's ``__pycache__`` folders, or ``$NUMBA_CACHE_DIR``). Numba announces a compilation only on a cache
miss (its ``numba:compile`` event fires after the disk cache was tried), so listening for that event costs
nothing on a warm start and sees exactly the runs that will be slow: a fresh install, a new CPU, a changed
kernel. ``NNLITE_QUIET_COMPILE=1`` silences the line.
"""

from __future__ import annotations

import os
import sys
import threading

from numba.core import event

from . import engine

# seconds of compiling, measured (benchmarks/RESULTS.md): with AVX-512 (Zen 4), ~2-3 s for the face nets after a
# classifier ran, ~4-5 s for a first classifier with the first-run helper (6 s without it or on a busy machine),
# 8-9 s for a first face pipeline ("First run (round 3)" to "Round 16"); on the one AVX2-only machine measured
# (Zen 3), 7.8-18.5 s for a first classifier with the helper, 13.6-17.9 s without it (rounds 20-22): the same 47
# compilations as on Zen 4, each taking about twice as long. README, "Speed", quotes them
FIRST_RUN_SECONDS = {True: "3-10", False: "8-18"}  # by engine.wide_registers()


def message(wide: bool) -> str:
    """The line, with the figure measured on machines of this register width (``wide``: AVX-512)."""
    return (f"nnlite: compiling kernels for this CPU, once: ~{FIRST_RUN_SECONDS[wide]} s "
            f"(longer on a busy machine; later runs reuse them)")


MESSAGE = message(engine.wide_registers() or not engine.vector_registers())
# a tiered first run (nnlite.ops.precompile): the "blas" engine's kernels now, the fast ones after it exits
TIERED_MESSAGE = ("nnlite: first run on this CPU: compiling the portable kernels now (a few seconds); the fast "
                  "ones compile in the background for later runs")


class _FirstCompile(event.Listener):
    def __init__(self):
        self.announced = False
        self._lock = threading.Lock()
        self.text = MESSAGE

    def on_start(self, ev) -> None:
        if self.announced:
            return
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not module.startswith("nnlite."):
            return
        with self._lock:
            if self.announced:
                return
            self.announced = True
        if os.environ.get("NNLITE_QUIET_COMPILE", "") not in ("", "0"):
            return
        try:
            print(self.text, file=sys.stderr, flush=True)
        except (OSError, ValueError):   # stderr closed: nothing to tell
            pass

    def on_end(self, ev) -> None:
        pass


LISTENER = _FirstCompile()
event.register("numba:compile", LISTENER)
