"""The first-run helper (nnlite.ops.precompile): its plan, when it starts, what it leaves in the cache."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from numba import types

from nnlite.errors import ConfigError
from nnlite.ops import precompile

REPO = Path(__file__).resolve().parents[1]
CHEAP = ("nnlite.ops.shape", "_add_into")   # a small kernel of the plan: about 0.2 s to compile


def _env(cache: Path, **extra) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), NNLITE_QUIET_COMPILE="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.pop(precompile.HELPER_ENV, None)
    return env


def _cheap_entry() -> list:
    for entries in precompile.plan().values():
        for entry in entries:
            if tuple(entry[:2]) == CHEAP:
                return entry
    pytest.fail(f"the plan has no entry for {CHEAP}")


@pytest.mark.parametrize("argtypes", [
    (types.float32[::1], types.int64, types.float32),
    (types.Array(types.float32, 4, "C"), types.Array(types.int64, 2, "A"), types.boolean),
    (types.Array(types.float32, 1, "C", readonly=True),),
    (types.int64, types.Tuple((types.float32[::1], types.int64, types.boolean)), types.UniTuple(types.int64, 2)),
])
def test_argument_types_read_back_from_their_text(argtypes):
    text = precompile.encode(argtypes)
    assert text is not None
    assert precompile.decode(text) == argtypes


@pytest.mark.parametrize("text", ["(1, 2)", "(__import__('os'),)", "int64", "(open('x'),)",
                                  "(int64.__class__,)"])
def test_decode_refuses_what_is_not_numba_types(text):
    with pytest.raises(Exception):  # noqa: B017  (a NameError or a ValueError: never evaluated as Python)
        precompile.decode(text)


def test_each_plan_entry_names_a_dispatcher_with_as_many_parameters_as_types():
    table = precompile.plan()
    assert "mobilenet_v2" in table
    for module, name, text in precompile.entries(list(table), table):
        dispatcher = precompile.dispatcher_of(module, name)
        params = inspect.signature(dispatcher.py_func).parameters
        assert len(precompile.decode(text)) == len(params), f"{module}.{name}: re-record the plan"


def test_entries_are_kept_in_order_once_and_malformed_ones_dropped():
    table = {"a": [["m", "f", "(int64,)"], ["m", "g", "(int64,)"], ["m", "f", "(int64,)"], ["bad"], "x"],
             "b": [["m", "g", "(int64,)"], ["m", "h", "(int64,)"]]}
    assert precompile.entries(["a", "b"], table) == [("m", "f", "(int64,)"), ("m", "g", "(int64,)"),
                                                     ("m", "h", "(int64,)")]
    assert precompile.entries(["unknown"], table) == []


def test_dispatcher_of_refuses_modules_outside_the_package():
    with pytest.raises(ValueError):
        precompile.dispatcher_of("os", "system")


@pytest.mark.parametrize("raw,on", [("", True), ("1", True), ("0", False), (" 0 ", False)])
def test_env_var_turns_the_helper_on_and_off(monkeypatch, raw, on):
    monkeypatch.delenv(precompile.HELPER_ENV, raising=False)
    monkeypatch.setenv(precompile.ENV, raw)
    assert precompile.enabled() is on


def test_bad_env_value_is_a_config_error(monkeypatch):
    monkeypatch.setenv(precompile.ENV, "yes")
    with pytest.raises(ConfigError, match=precompile.ENV):
        precompile.enabled()


def test_a_helper_never_starts_a_helper(monkeypatch):
    monkeypatch.delenv(precompile.ENV, raising=False)
    monkeypatch.setenv(precompile.HELPER_ENV, "1")
    assert not precompile.enabled()


@pytest.fixture
def fake_start(monkeypatch, tmp_path):
    """expect() with a one-entry plan whose index file lies in tmp_path; start() only recorded."""
    started = []
    index = tmp_path / "f.nbi"
    monkeypatch.delenv(precompile.ENV, raising=False)
    monkeypatch.delenv(precompile.HELPER_ENV, raising=False)
    monkeypatch.setitem(precompile._state, "plan", {"net": [["nnlite.ops.shape", "_add_into", "(int64,)"]]})
    monkeypatch.setitem(precompile._state, "helper", None)
    monkeypatch.setattr(precompile, "_index_files", lambda todo: [index])
    monkeypatch.setattr(precompile, "spare_cores", lambda: 1)
    helper = SimpleNamespace(wait=lambda: 0)
    monkeypatch.setattr(precompile, "start", lambda names: started.append(names) or helper)
    return started, index, helper


def test_expect_starts_a_helper_when_the_cache_lacks_the_models_kernels(fake_start):
    started, _, helper = fake_start
    assert precompile.expect("net") is helper
    assert started == [("net",)]
    assert precompile.expect("net") is None   # one helper per process
    assert len(started) == 1


@pytest.mark.parametrize("case", ["warm", "unknown model", "disabled", "one core", "read-only cache"])
def test_expect_starts_nothing_where_a_helper_cannot_help(fake_start, monkeypatch, case):
    started, index, _ = fake_start
    name = "net"
    if case == "warm":
        index.write_bytes(b"")
    elif case == "unknown model":
        name = "other"
    elif case == "disabled":
        monkeypatch.setenv(precompile.ENV, "0")
    elif case == "one core":
        monkeypatch.setattr(precompile, "spare_cores", lambda: 0)
    else:
        monkeypatch.setattr(precompile.os, "access", lambda path, mode: False)
    assert precompile.expect(name) is None
    assert started == []


_PROBE = """
import sys
from nnlite.ops import precompile
d = precompile.dispatcher_of(sys.argv[1], sys.argv[2])
d.compile(precompile.decode(sys.argv[3]))
print(sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()))
"""


def _probe(entry, cache: Path) -> tuple[int, int]:
    """(cache hits, cache misses) of a fresh process that compiles ``entry`` with ``cache``."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *entry], env=_env(cache, NNLITE_PRECOMPILE="0"),
                          capture_output=True, text=True, timeout=300, check=True)
    hits, misses = done.stdout.split()
    return int(hits), int(misses)


def test_helper_compiles_into_the_given_cache_and_the_next_process_loads_it(tmp_path):
    entry = _cheap_entry()
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"net": [entry]}))
    assert _probe(entry, tmp_path / "control") == (0, 1)   # an empty cache: compiled
    helper = precompile.start(["net"], plan_file, env=_env(tmp_path / "cache"))
    assert helper is not None
    assert helper.wait(timeout=300) == 0   # it exits by itself when its plan is done
    assert any((tmp_path / "cache").rglob("*.nbc"))
    assert _probe(entry, tmp_path / "cache") == (1, 0)   # loaded, nothing compiled


def test_helper_stops_when_its_parent_goes(tmp_path):
    helper = precompile.start(["mobilenet_v2"], env=_env(tmp_path / "cache"))
    assert helper is not None
    time.sleep(0.5)
    helper.stdin.close()   # what the parent's exit does to the pipe
    start = time.monotonic()
    assert helper.wait(timeout=precompile.GRACE_S + 30) == 0
    # the whole plan takes several seconds more; an import (under a second) plus GRACE_S is the most it may take
    assert time.monotonic() - start < precompile.GRACE_S + 5


_PLAN_PROBE = """
import json, sys
import nnlite
from nnlite.ops import precompile
key = sys.argv[1]
name = key.removeprefix("blas:")   # the "blas" engine's plan: the parent sets NNLITE_GEMM=blas
if name.startswith("faces:"):
    from nnlite.vision.faces import FacePipeline
    detector, landmarks, recognizer = name.split(":")[1:]
    FacePipeline(detector=detector, landmarks=landmarks, recognizer=recognizer).detect(sys.argv[2])
else:  # as the first `nnlite classify` runs it (the recorder's run): the model, then the softmax of its logits
    nnlite.load(name).classify(sys.argv[3])
used = {}
for module, fn, _ in precompile.entries([key], precompile.plan()):
    d = precompile.dispatcher_of(module, fn)
    used[module + "." + fn] = sorted(precompile.encode(sig) for sig in d.signatures)
print(json.dumps(used))
"""


@pytest.mark.parametrize("name", ["mobilenet_v2", "faces:ssd:full:faceapi", "blas:mobilenet_v2",
                                  "blas:faces:ssd:full:faceapi"])
def test_the_plan_lists_the_signatures_a_run_uses(name):
    """The plan is recorded by tools/precompile_plan.py; a kernel whose arguments changed since makes it stale
    (the helper would compile signatures nobody uses). Runs on the usual cache: cheap once it is warm. The
    "blas:" entries are the "blas" engine's (a tiered first run's)."""
    env = dict(os.environ, NNLITE_PRECOMPILE="0", NNLITE_QUIET_COMPILE="1")
    env.pop("NNLITE_GEMM", None)
    if name.startswith("blas:"):
        env["NNLITE_GEMM"] = "blas"
    faces, cat = (str(REPO / "nnlite" / "data" / "samples" / f) for f in ("faces.jpg", "chelsea.png"))
    done = subprocess.run([sys.executable, "-c", _PLAN_PROBE, name, faces, cat], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    used = json.loads(done.stdout.strip().splitlines()[-1])
    planned: dict[str, list] = {}
    for module, fn, text in precompile.entries([name], precompile.plan()):
        planned.setdefault(f"{module}.{fn}", []).append(text)
    assert planned, f"no plan for {name}"
    assert {k: sorted(v) for k, v in planned.items()} == used, "stale plan: run tools/precompile_plan.py"


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its new parent, counts as gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_no_helper_outlives_a_parent_that_exits_abruptly(tmp_path):
    parent = ("import os, sys\nfrom nnlite.ops import precompile\n"
              "helper = precompile.start(['mobilenet_v2'])\nprint(helper.pid, flush=True)\nos._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", parent], env=_env(tmp_path / "cache"), capture_output=True,
                          text=True, timeout=60, check=True)
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + precompile.GRACE_S + 10   # its import, then GRACE_S at most
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_no_helper_when_the_running_tasks_already_fill_the_cores(monkeypatch):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.setattr(precompile, "running_tasks", lambda: float(cores))
    assert precompile.spare_cores() == 0
    monkeypatch.setattr(precompile, "running_tasks", lambda: cores - 0.5)
    assert precompile.spare_cores() == cores - 1


def _stat(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_busy_loop_holds_a_core_and_a_niced_one_does_not():
    loop = [sys.executable, "-c", "while True: pass"]
    busy = subprocess.Popen(loop)
    niced = subprocess.Popen(loop, preexec_fn=lambda: os.nice(10))   # noqa: PLW1509  (no threads in this child)
    try:
        time.sleep(0.3)
        assert precompile.running_tasks() >= 2   # this thread, reading, and the plain loop
        seen = [(precompile.holds_a_core(_stat(busy.pid)), precompile.holds_a_core(_stat(niced.pid)))
                for _ in range(50)]
        assert any(b for b, _ in seen) and not any(n for _, n in seen)
        assert not precompile.holds_a_core(_stat(os.getppid()))   # asleep, waiting for this test run
    finally:
        for p in (busy, niced):
            p.kill()
            p.wait()


_LOAD_PROBE = """
import sys
from nnlite.ops import jit, precompile
d = precompile.dispatcher_of(sys.argv[1], sys.argv[2])
sig = precompile.decode(sys.argv[3])
loaded = jit.load_cached(d, sig)
print(int(loaded), len(d.signatures), sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()))
"""


def test_load_cached_loads_what_the_cache_holds_and_never_compiles(tmp_path):
    entry = _cheap_entry()

    def probe():
        done = subprocess.run([sys.executable, "-c", _LOAD_PROBE, *entry], env=_env(tmp_path, NNLITE_PRECOMPILE="0"),
                              capture_output=True, text=True, timeout=300, check=True)
        return tuple(int(v) for v in done.stdout.split())

    assert probe() == (0, 0, 0, 0)   # an empty cache: nothing loaded, nothing compiled
    assert not [p.name for p in tmp_path.rglob("*_add_into*") if p.suffix in (".nbi", ".nbc")]
    assert _probe(entry, tmp_path) == (0, 1)   # compiled into the cache
    assert probe() == (1, 1, 1, 0)   # loaded from it


def test_expect_loads_a_warm_models_kernels_in_a_thread(fake_start, monkeypatch):
    started, index, _ = fake_start
    index.write_bytes(b"")
    loaded = []
    monkeypatch.setattr(precompile, "preload", loaded.append)
    assert precompile.expect("net") is None
    deadline = time.monotonic() + 10
    while not loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loaded == [[("nnlite.ops.shape", "_add_into", "(int64,)")]]
    assert started == []
