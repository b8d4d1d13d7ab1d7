"""The first-run helper: a second process compiles the kernels a model needs while this one starts on them.

Numba compiles one function at a time in a process, and a model's first run after installing spends most
of its time compiling. Its kernels do not link each other in (they call by address: :mod:`nnlite.ops.bound`,
:mod:`nnlite.ops.drivers`), so they can be compiled in any order, by any process, into the shared disk
cache. When a model is loaded (:func:`expect`) and the cache lacks its kernels, a helper process
(``python -m nnlite.ops.precompile NAME...``) compiles the model's kernels, listed in :data:`PLAN_FILE`,
from the last one the model calls to the first, while this process works from the first one on. Each
process takes a function's file lock (:func:`nnlite.ops.jit.locked`) to look it up and compile it, so
one that reaches a function the other is compiling waits and then loads it from the cache; where the two
meet, the rest is already cached.

The plan lists, per model name, the compilations a first run of that model starts itself (not the
helpers they compile inside): the function's module and name and its argument types as Numba writes
them (``tools/precompile_plan.py`` records it). Working from the last entry back splits the work by
itself: each process goes on until it meets what the other compiled. A stale entry (a kernel whose
arguments changed) costs the helper one useless compilation, never a wrong result: the cache is keyed
by the exact types.

On a warm start (every function of the plan has a cache index) no helper starts, but loading each cached
function at its first call is still Python work (benchmarks/RESULTS.md measures it). :func:`expect` then
starts a thread that loads the plan's functions (:func:`preload`; a signature the cache lacks is skipped,
never compiled) while this process reads the model's weights. Where that reading waits outside the GIL (a
Keras file's structure is read by a child process, :mod:`nnlite.io._guard`), the loads come free. Where
reading is Python work (a PyTorch file's pickle), the two take turns on the GIL and the start is no faster.

A first run of one command (``nnlite classify``, ``faces``, ``compare``: :func:`one_shot`) is tiered: when the
cache lacks the "simd" engine's kernels of the model, the command runs on the "blas" engine
(:mod:`nnlite.ops.engine`), whose kernels are fewer and smaller (about half the compile time, measured in
benchmarks/RESULTS.md, round 28), with a helper on *its* plan (``blas:NAME`` entries). When the command has
succeeded, it starts a background process (:mod:`nnlite.ops.background`: at a lower priority, not tied to this
one) that compiles the "simd" plan into the cache; later runs use the fast kernels. Both engines give results
equal to float32 rounding (each is tested against the frameworks). A long-lived process (a library user,
``nnlite serve``) is not tiered: it compiles the fast kernels at once, with the helper. ``NNLITE_TIERED=0``
turns tiering off.

The helper stops when this process ends (it reads its stdin, a pipe from this process, until the end),
finishing the function at hand for at most :data:`GRACE_S` seconds, and after :data:`TIMEOUT_S` at the
latest. It is not started with one core, on a machine whose running tasks already fill its cores, without a
writable cache, inside a helper, or when ``NNLITE_PRECOMPILE=0``.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import ConfigError
from ..limits import env_switch
from . import background

PLAN_FILE = Path(__file__).with_name("precompile_plan.json")
ENV = "NNLITE_PRECOMPILE"
TIER_ENV = "NNLITE_TIERED"
HELPER_ENV = "NNLITE_PRECOMPILE_HELPER"   # set in the helper's environment: a helper starts no helper
GRACE_S = 3.0      # after this process ends, the helper's last compilation may run this long
TIMEOUT_S = 300.0  # the helper's whole life, at most

_state: dict = {"helper": None, "plan": None, "one_shot": False, "background": None}
_lock = threading.Lock()


def enabled() -> bool:
    """``NNLITE_PRECOMPILE``: unset, empty or 1 starts helpers; 0 does not."""
    return env_switch(ENV) and not os.environ.get(HELPER_ENV)


def holds_a_core(stat: str) -> bool:
    """True for a thread whose /proc stat line says it is running or ready to run at a normal priority
    (niceness below 10: nnlite's background compile and a helper whose command ended yield the cores)."""
    fields = stat.rsplit(")", 1)[-1].split()
    return len(fields) > 16 and fields[0] == "R" and int(fields[16]) < 10


def running_tasks(scans: int = 3) -> float:
    """Threads holding a core now (:func:`holds_a_core`), this one included: the least of a few scans of
    /proc (a short-lived process seen once is not a busy core; a busy loop is seen every time). Where there
    is no /proc, the 1-minute load average (which stays high for a minute after a first command: the next
    command's helper would not start on idle cores)."""
    counts = []
    for _ in range(scans):
        count = 0
        for path in glob.glob("/proc/[0-9]*/task/[0-9]*/stat"):
            try:
                with open(path) as f:
                    count += holds_a_core(f.read())
            except (OSError, ValueError):   # a thread that ended meanwhile
                continue
        counts.append(count)
    return float(min(counts)) if min(counts) > 0 else os.getloadavg()[0]


def spare_cores() -> int:
    """Cores this process may use, minus the one it compiles on; none when the threads holding a core now
    (:func:`running_tasks`) fill them (a helper would then take time slices from this process instead of an
    idle core: on a machine kept busy it made the first run slower, benchmarks/RESULTS.md)."""
    from .threads import available_cores
    usable = available_cores()
    try:
        if running_tasks() >= usable:
            return 0
    except (AttributeError, OSError):   # no load figure here: assume idle cores
        pass
    return usable - 1


def plan(path: Path | str = PLAN_FILE) -> dict[str, list]:
    """{model name: [[module, function, argument types], ...]} in the order a first run compiles them;
    empty if the file is missing or unreadable."""
    if path == PLAN_FILE and _state["plan"] is not None:
        return _state["plan"]
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        found = {}
    if not isinstance(found, dict):
        found = {}
    if path == PLAN_FILE:
        _state["plan"] = found
    return found


def entries(names, table: dict) -> list[tuple[str, str, str]]:
    """The plan entries of ``names``, in order, each once: (module, function, argument types)."""
    seen, out = set(), []
    for name in names:
        for entry in table.get(name, ()):
            if isinstance(entry, list) and len(entry) == 3 and all(isinstance(e, str) for e in entry):
                if tuple(entry) not in seen:
                    seen.add(tuple(entry))
                    out.append(tuple(entry))
    return out


def decode(text: str) -> tuple:
    """Argument types from their text as Numba writes a tuple of them (``repr``), e.g.
    ``(Array(float32, 1, 'C', False, aligned=True), int64)``."""
    from numba.core import types
    if "__" in text:   # no attribute paths out of the namespace below
        raise ConfigError(f"not a tuple of Numba types: {text!r}")
    space = {k: v for k, v in vars(types).items() if not k.startswith("_")}
    space.update({"bool": types.boolean, "__builtins__": {}})
    found = eval(text, space)  # noqa: S307  (text from nnlite's own plan file; names limited to Numba's types)
    if not isinstance(found, tuple) or not all(isinstance(t, types.Type) for t in found):
        raise ConfigError(f"not a tuple of Numba types: {text!r}")
    return found


def encode(argtypes) -> str | None:
    """The text :func:`decode` reads back to ``argtypes``, or None where it would not."""
    text = repr(tuple(argtypes))
    try:
        return text if decode(text) == tuple(argtypes) else None
    except Exception:  # noqa: BLE001  (a type whose repr is not an expression: not planned)
        return None


def dispatcher_of(module: str, name: str):
    """The Numba dispatcher ``module.name`` (an ``nnlite.`` module only)."""
    if not module.startswith("nnlite."):
        raise ConfigError(f"not an nnlite module: {module}")
    found = getattr(importlib.import_module(module), name)
    if not hasattr(found, "compile") or not hasattr(found, "overloads"):
        raise ConfigError(f"{module}.{name} is not a Numba dispatcher")
    return found


def _index_files(todo) -> list[Path] | None:
    """The cache index file of each entry's function, or None if one has no disk cache."""
    from .jit import lock_path
    out = []
    for module, name, _ in todo:
        path = lock_path(dispatcher_of(module, name))
        if path is None:
            return None
        out.append(Path(path[:-len(".lock")]))
    return out


def one_shot() -> None:
    """Mark this process as running one command and exiting (the ``ONE_SHOT`` commands of :mod:`nnlite.cli`):
    a first run may then be tiered (module docstring)."""
    _state["one_shot"] = True


def _index_or_none(todo) -> list[Path] | None:
    try:
        return _index_files(todo)
    except (ImportError, AttributeError, ValueError):
        return None


def _tiered(names) -> Path | None:
    """The cache folder when this first run should run on the "blas" engine and compile the "simd" plan in the
    background (module docstring), else None."""
    from . import engine
    if not _state["one_shot"] or not env_switch(TIER_ENV) or os.environ.get("NNLITE_GEMM", "").strip():
        return None
    if engine._current is not None or engine.choose() != "simd":
        return None
    todo = entries(names, plan())
    index = _index_or_none(todo) if todo else None
    if index is None or all(p.exists() for p in index) or not os.access(index[0].parent, os.W_OK):
        return None
    return index[0].parent


def _plan_names(names) -> tuple[str, ...]:
    """The plan names of ``names`` for this process's engine ("blas:" entries for the "blas" engine), tiering a
    one-shot first run on the way."""
    from . import engine
    folder = _tiered(names)
    if folder is not None and engine.select("blas"):
        from . import compile_notice
        compile_notice.LISTENER.text = compile_notice.TIERED_MESSAGE
        left = background.stop(folder)   # it would hold locks this run waits for, at its low priority
        _state["background"] = (tuple(dict.fromkeys(left + tuple(names))), folder)
    return tuple(names) if engine.current() == "simd" else tuple(f"blas:{name}" for name in names)


def expect(*names: str) -> subprocess.Popen | None:
    """This process is about to run the models ``names``: start a helper on their kernels unless the
    cache holds them all (every function has an index file), or a helper cannot help (module docstring).
    When the cache holds them, a thread of this process loads them ahead (:func:`preload`). The first call
    of a one-shot process may choose the "blas" engine for it (tiering, module docstring)."""
    from . import engine, threads
    if not enabled() or (engine._current or engine.choose()) == "numpy":   # nothing to compile
        return None
    with _lock:
        if _state["helper"] is not None:
            return None
        names = _plan_names(names)
        todo = entries(names, plan())
        index = _index_or_none(todo) if todo else None
        if not todo or threads.available_cores() < 2:
            return None
        if index is not None and all(p.exists() for p in index):   # a warm cache: load ahead, in a thread
            threading.Thread(target=preload, args=(todo,), name="nnlite-preload", daemon=True).start()
            return None
        if index is None or not os.access(index[0].parent, os.W_OK):
            return None
        if spare_cores() < 1:
            return None
        helper = _state["helper"] = start(names)
        if helper is not None:   # reaped when it ends, so a long-lived process keeps no zombie
            threading.Thread(target=helper.wait, name="nnlite-precompile-reaper", daemon=True).start()
        return helper


def background_compile() -> subprocess.Popen | None:
    """After a tiered first run's command succeeded (the CLI calls this as it exits): start the background
    compile of the fast kernels it left out (:func:`nnlite.ops.background.start`); None where there is nothing
    to do."""
    pending, _state["background"] = _state["background"], None
    return None if pending is None else background.start(*pending)


def helper_env(env: dict | None) -> dict:
    package_root = str(Path(__file__).resolve().parents[2])   # the same nnlite as this process's
    env = dict(os.environ if env is None else env)
    env.update({HELPER_ENV: "1", "NNLITE_QUIET_COMPILE": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))})
    return env


def helper_cmd(names, plan_file, *flags: str) -> list[str]:
    return [sys.executable, "-m", "nnlite.ops.precompile", *flags, "--plan", str(plan_file), *names]


def preload(todo) -> int:
    """Load the machine code of plan entries ``todo`` from the disk cache, in the order the model calls them,
    never compiling (a stale entry is skipped); how many were loaded. Run in a thread while the model's
    weights are read: the loads then cost the first call nothing."""
    from .jit import load_cached
    done = 0
    for module, name, text in todo:
        try:
            done += load_cached(dispatcher_of(module, name), decode(text))
        except Exception:  # noqa: BLE001  (the model's own first call loads or compiles what it needs)
            continue
    return done


def start(names, plan_file: Path | str = PLAN_FILE, env: dict | None = None) -> subprocess.Popen | None:
    """``python -m nnlite.ops.precompile NAME...``, reading its stdin from this process (its end ends the
    helper); None if it cannot be started."""
    try:
        return subprocess.Popen(helper_cmd(names, plan_file), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=helper_env(env))
    except OSError:
        return None


def _watch(stop: threading.Event) -> None:
    """Helper side: the parent's end of stdin (it ended) stops the work; GRACE_S later, the process."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()
    background.yield_cores()   # the command it helped has ended: its last compilation yields to the next one
    time.sleep(GRACE_S)
    os._exit(0)


def run_helper(names, plan_file: Path | str = PLAN_FILE, stop: threading.Event | None = None) -> int:
    """Compile the plan entries of ``names``, last first, until done or ``stop``; returns how many were
    compiled or loaded. An entry that fails (stale: a kernel that changed) is skipped."""
    deadline = time.monotonic() + TIMEOUT_S
    done = 0
    for module, name, text in reversed(entries(names, plan(plan_file))):
        if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
            break
        try:
            dispatcher_of(module, name).compile(decode(text))
            done += 1
        except Exception:  # noqa: BLE001  (a stale entry: the model's own run compiles what it needs)
            continue
    return done


def _main(argv: list[str]) -> int:
    detached = argv[:1] == ["--background"]
    argv = argv[1:] if detached else argv
    plan_file = PLAN_FILE
    if argv[:1] == ["--plan"]:
        plan_file, argv = Path(argv[1]), argv[2:]
    stop = threading.Event()
    if detached:   # not tied to the process that started it; yields the cores to foreground work
        background.yield_cores()
    else:
        threading.Thread(target=_watch, args=(stop,), daemon=True).start()
    limit = threading.Timer(TIMEOUT_S + GRACE_S, os._exit, (0,))
    limit.daemon = True
    limit.start()
    try:
        run_helper(argv, plan_file, stop)
    finally:
        os._exit(0)   # whatever happened: no thread keeps the helper alive


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
