"""Cold start and peak memory: each engine in a fresh process, from launch to first result.

``measure(engine, model)`` starts ``python -m benchmarks.coldstart --child ENGINE MODEL PATH`` and returns
the child's phases: interpreter launch + ``import`` (nnlite / tensorflow / onnxruntime), loading the
weights (nnlite: the original weight file; TF: the SavedModel; ort: the .onnx), the first batch-1
inference, then three more inferences and the process's peak resident memory
(``VmHWM`` of /proc/self/status: the high-water mark of the resident set). Input preparation (a real photo
resized with Pillow) is timed apart and left out of the totals.

Numba compiles each kernel the first time it is used and caches the machine code on disk. nnlite is run
twice: with a warm cache (``NUMBA_CACHE_DIR`` already filled by an earlier run: what users see from the
second start on) and with an empty one (the very first start after installation); the difference is the
compile cost, reported separately.

First run (``python -m benchmarks.coldstart --first-run [--repeat N] [--profile]``): what a user sees right
after installing, through the command line: ``nnlite classify`` on a sample photo and then ``nnlite faces``
on another, with Numba pointed at a new empty cache directory, each timed from launch to exit (wall and CPU
seconds), then both again on the filled cache. ``--profile`` adds each compiled function's seconds;
``--helper-ab`` runs each repetition without, then with nnlite's first-run helper process
(``NNLITE_PRECOMPILE`` 0 and 1, :mod:`nnlite.ops.precompile`); ``--tiered-ab`` without, then with a tiered first
run (``NNLITE_TIERED`` 0 and 1: the portable engine first, the fast kernels compiled in the background).

Interpreters: nnlite is measured in the test venv and in a venv holding only its runtime dependencies
(:func:`runtime_python`), which is what a user's ``pip install nnlite`` gives; the targets use the latter.

Bytecode: the children run with ``PYTHONDONTWRITEBYTECODE`` removed from their environment, so the repo's
modules are byte-compiled once (by the warm-up run) and read from ``__pycache__`` afterwards, as from an
installed wheel (pip compiles at install time, and TensorFlow's and onnxruntime's modules in site-packages
are already compiled). With the variable set, every nnlite start would recompile its modules from source, a
cost no installed user pays (0-20 ms measured here, more on a slow disk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_FLAG = "--child"


def _child(engine: str, name: str, path: str) -> dict:
    t0 = time.perf_counter()
    if engine == "nnlite":
        import nnlite
        import nnlite.ops  # noqa: F401  (kernels load here)
    elif engine == "tf":
        import tensorflow as tf
    else:
        import onnxruntime  # noqa: F401  (imported here so its import time is measured, not at first use)
    t_import = time.perf_counter()
    from benchmarks import common
    threads = common.num_threads()
    t1 = time.perf_counter()
    if engine == "nnlite":
        model = nnlite.load(name).model
        shape = common.input_shape(name, model)
        run = common.NnliteEngine(model)
    elif engine == "tf":
        common.configure_tf_threads(tf, threads)
        run = common.TFEngine(Path(path))
        shape = tuple(json.loads(os.environ["NNLITE_BENCH_SHAPE"]))
    else:
        run = common.OrtEngine(Path(path), threads)
        shape = tuple(json.loads(os.environ["NNLITE_BENCH_SHAPE"]))
    t_load = time.perf_counter()
    x = common.input_batch(name, shape, 1)
    t_prep = time.perf_counter()
    run(x)
    t_first = time.perf_counter()
    wall_first = time.time()
    for _ in range(3):
        run(x)
    t_steady = (time.perf_counter() - t_first) / 3
    rss_kb = _peak_rss_kb()
    return {"import_s": t_import - t0, "load_s": (t_load - t1), "first_s": t_first - t_prep,
            "prep_s": t_prep - t_load + (t1 - t_import), "steady_s": t_steady, "peak_rss_mb": rss_kb / 1024,
            "first_result_wall": wall_first}


def _peak_rss_kb() -> float:
    """This process's peak resident set (VmHWM). Not ``getrusage().ru_maxrss``: on Linux that keeps the
    peak of the forking parent across exec, so every child would report at least the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    import resource
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure(engine: str, name: str, path: str | Path = "", shape=None, numba_cache: str | Path | None = None,
            timeout: float = 300, python: str | Path | None = None, env: dict | None = None) -> dict:
    """Run one cold start in a subprocess; adds ``total_s`` = launch to first result (input prep excluded).
    ``python``: the interpreter to run it with (default this one), e.g. :func:`runtime_python`'s; ``env``: more
    environment (``NNLITE_GEMM=numpy``: nnlite's NumPy engine)."""
    from benchmarks import common
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NNLITE_HOME=str(common.CACHE / "home"), **(env or {}))
    if python is not None:  # a venv without nnlite installed: it runs from the checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.REPO), env.get("PYTHONPATH")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # as installed: modules read from __pycache__ (module docstring)
    if shape is not None:
        env["NNLITE_BENCH_SHAPE"] = json.dumps(list(shape))
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    cmd = [str(python or sys.executable), "-m", "benchmarks.coldstart", CHILD_FLAG, engine, name, str(path)]
    start = time.time()
    done = subprocess.run(cmd, cwd=common.REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"cold start {engine} {name} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["total_s"] = result.pop("first_result_wall") - start - result["prep_s"]
    return result


def measure_nnlite_both(name: str, warm_cache: Path, python: str | Path | None = None) -> tuple[dict, dict]:
    """(warm Numba cache, empty Numba cache); a first run fills the warm cache with this model's kernels."""
    warm_cache.mkdir(parents=True, exist_ok=True)
    measure("nnlite", name, numba_cache=warm_cache, python=python)
    warm = measure("nnlite", name, numba_cache=warm_cache, python=python)
    with tempfile.TemporaryDirectory(prefix="nnlite-numba-") as empty:
        cold = measure("nnlite", name, numba_cache=empty, python=python)
    return warm, cold


RUNTIME_PACKAGES = ("numpy", "numba", "llvmlite", "pillow", "h5py")


def runtime_python() -> Path:
    """A venv holding only nnlite's runtime dependencies, at this venv's versions: what ``pip install nnlite``
    gives a user. The test venv also holds SciPy (scikit-image needs it), and when SciPy is importable
    Numba imports ``scipy.linalg`` while it sets up its first compilation or cache load (0.13 s measured):
    a cost no plain nnlite install pays. Made once under the bench cache."""
    from importlib import metadata

    from benchmarks import common
    venv = common.CACHE / "runtime-venv"
    python = venv / "bin" / "python"
    pins = [f"{p}=={metadata.version(p)}" for p in RUNTIME_PACKAGES]
    stamp = venv / "pins.txt"
    if not python.exists() or not stamp.is_file() or stamp.read_text() != "\n".join(pins):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
        stamp.write_text("\n".join(pins))
    return python


FIRST_RUN = (("classify", "nnlite/data/samples/chelsea.png"), ("faces", "nnlite/data/samples/faces.jpg"))
PROFILE_FLAG = "--profiled-cli"


def _cli_run(argv: list[str], env: dict, profile: Path | None = None, python: str | Path | None = None) -> dict:
    """One ``python -m nnlite ARGV`` from launch to exit (the CLI exits right after printing its result):
    wall seconds and the child's CPU seconds (user + system, all its threads). With ``profile``, the child
    records each Numba compilation (:func:`_profiled_cli`) into that JSON file."""
    import resource
    cmd = [str(python or sys.executable), "-m"]
    cmd += ["benchmarks.coldstart", PROFILE_FLAG, str(profile), *argv] if profile else ["nnlite", *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "stderr": done.stderr.strip()}


def _profiled_cli(out: str, argv: list[str]) -> None:
    """Run the CLI in this process with a listener on Numba's compile events: for each compilation, the
    function, its thread CPU seconds without the compilations it started (``self_s``) and with them."""
    from numba.core import event
    stack, rows = [], []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append([time.thread_time(), 0.0])

        def on_end(self, ev):
            t0, nested = stack.pop()
            spent = time.thread_time() - t0
            if stack:
                stack[-1][1] += spent
            fn = getattr(ev.data.get("dispatcher"), "py_func", None)
            rows.append({"function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}",
                         "self_s": spent - nested, "total_s": spent})

    event.register("numba:compile", Listener())
    from nnlite.cli import main
    try:
        main(argv)
    finally:
        Path(out).write_text(json.dumps(rows))


AB_SWITCHES = {"helper": "NNLITE_PRECOMPILE", "tiered": "NNLITE_TIERED"}


def first_run(repeat: int = 1, profile: bool = False, python: str | Path | None = None,
              helper_ab: bool = False, tiered_ab: bool = False) -> list[dict]:
    """The first ``nnlite classify`` and then ``nnlite faces`` after installation: each repetition points
    Numba at a new, empty cache directory and runs the two commands (:data:`FIRST_RUN`) one after the other in
    it, then both again on the filled cache (what every later run costs). A tiered first run
    (:mod:`nnlite.ops.precompile`) leaves the fast kernels to a background process: the second command runs
    beside it, as it would for a user, and the warm runs wait for it to end (``background_s``: how long after
    the second command that took). With ``profile``, the cold runs also record per-function compile seconds
    (slower: the figures of a profiled run are not the timings). With ``helper_ab`` (``tiered_ab``), each
    repetition is run twice, with ``NNLITE_PRECOMPILE`` (``NNLITE_TIERED``) 0, then 1; the result's ``helper``
    (``tiered``) says which."""
    from nnlite.ops import background
    switch = "helper" if helper_ab else "tiered" if tiered_ab else None
    results = []
    for attempt in range(repeat * (2 if switch else 1)):
        with tempfile.TemporaryDirectory(prefix="nnlite-numba-") as empty:
            env = dict(os.environ, NUMBA_CACHE_DIR=empty)
            if switch:
                env[AB_SWITCHES[switch]] = str(attempt % 2)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env.pop("NNLITE_QUIET_COMPILE", None)
            run = {}
            for name, path in FIRST_RUN:
                run[name] = _cli_run([name, path], env, python=python)
            start = time.perf_counter()
            for lock in Path(empty).rglob(background.LOCK):
                background.wait(lock.parent)
            waited = time.perf_counter() - start
            for name, path in FIRST_RUN:
                run[name]["warm"] = _cli_run([name, path], env, python=python)
            if profile:
                with tempfile.TemporaryDirectory(prefix="nnlite-numba-") as cold:
                    env["NUMBA_CACHE_DIR"] = cold
                    for name, path in FIRST_RUN:
                        table = Path(cold) / f"{name}.json"
                        _cli_run([name, path], env, profile=table, python=python)
                        run[name]["compiled"] = json.loads(table.read_text())
                    for lock in Path(cold).rglob(background.LOCK):
                        background.wait(lock.parent)
            if switch:
                run[switch] = env[AB_SWITCHES[switch]]
            run["background_s"] = waited
            results.append(run)
    return results


def _print_first_run(results: list[dict], top: int) -> None:
    for i, run in enumerate(results):
        for switch, variable in AB_SWITCHES.items():
            if switch in run:
                print(f"[{i}] {switch} {'on' if run[switch] == '1' else 'off'} ({variable}={run[switch]})")
        for name, r in run.items():
            if not isinstance(r, dict):
                continue
            warm = r["warm"]
            print(f"[{i}] {name}: cold {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU; warm {warm['wall_s']:.2f} s "
                  f"wall, {warm['cpu_s']:.2f} s CPU; compile costs {r['wall_s'] - warm['wall_s']:.2f} s wall")
            notice = [line for line in r["stderr"].splitlines() if line.startswith("nnlite: ")]
            print(f"    notice: {notice[0] if notice else '(none)'}")
            rows = sorted(r.get("compiled", []), key=lambda row: -row["self_s"])
            if rows:
                print(f"    {len(rows)} compilations, {sum(row['self_s'] for row in rows):.2f} s CPU; top {top}:")
            for row in rows[:top]:
                print(f"    {row['self_s']:6.2f} s  (with nested {row['total_s']:6.2f} s)  {row['function']}")
        print(f"[{i}] background compile still running after the second command: {run['background_s']:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == CHILD_FLAG:
        print(json.dumps(_child(sys.argv[2], sys.argv[3], sys.argv[4])), flush=True)
    elif len(sys.argv) > 3 and sys.argv[1] == PROFILE_FLAG:
        _profiled_cli(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--first-run":
        import argparse
        parser = argparse.ArgumentParser(prog="python -m benchmarks.coldstart --first-run",
                                         description="First classify, then faces, on an empty Numba cache.")
        parser.add_argument("--repeat", type=int, default=1)
        parser.add_argument("--profile", action="store_true", help="also list each compiled function's seconds")
        parser.add_argument("--top", type=int, default=10)
        parser.add_argument("--json", help="write the results to this file")
        ab = parser.add_mutually_exclusive_group()
        ab.add_argument("--helper-ab", action="store_true",
                        help="run each repetition without, then with the first-run helper process")
        ab.add_argument("--tiered-ab", action="store_true",
                        help="run each repetition without, then with a tiered first run (NNLITE_TIERED)")
        opts = parser.parse_args(sys.argv[2:])
        found = first_run(opts.repeat, opts.profile, helper_ab=opts.helper_ab, tiered_ab=opts.tiered_ab)
        _print_first_run(found, opts.top)
        if opts.json:
            Path(opts.json).write_text(json.dumps(found, indent=1))
    else:
        print("usage: python -m benchmarks.coldstart --first-run [--repeat N] [--profile] (else: used by "
              "benchmarks/run.py)", file=sys.stderr)
        sys.exit(2)
