"""A tiered first run (nnlite.ops.precompile): a one-shot command on a cache without the fast kernels runs on the
"blas" engine and leaves their compilation to a background process; later runs use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nnlite.cli import NUMPY_IMAGES
from nnlite.ops import background, compile_notice, engine, precompile

REPO = Path(__file__).resolve().parents[1]
CAT = REPO / "nnlite" / "data" / "samples" / "chelsea.png"
CHEAP = ["nnlite.ops.shape", "_add_into"]   # a small kernel of the plan: about 0.2 s to compile


def _env(cache: Path, **extra) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    for name in (precompile.HELPER_ENV, "NNLITE_GEMM", "NNLITE_QUIET_COMPILE"):
        env.pop(name, None)
    return env


@pytest.fixture
def one_shot(monkeypatch, tmp_path):
    """A one-shot process with a two-engine plan whose index files lie in tmp_path; start() and atexit only
    recorded; no engine chosen yet, and the CPU's choice "simd"."""
    started = []
    index = tmp_path / "f.nbi"
    for name in (precompile.ENV, precompile.HELPER_ENV, "NNLITE_GEMM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(precompile.TIER_ENV, "1")
    monkeypatch.setitem(precompile._state, "plan", {"net": [["nnlite.ops.shape", "_add_into", "(int64,)"]],
                                                    "blas:net": [["nnlite.ops.shape", "act_sum", "(int64,)"]]})
    for key, value in (("helper", None), ("one_shot", True), ("background", None)):
        monkeypatch.setitem(precompile._state, key, value)
    monkeypatch.setattr(precompile, "_index_files", lambda todo: [index])
    monkeypatch.setattr(precompile, "spare_cores", lambda: 1)
    monkeypatch.setattr(precompile, "start", lambda names: started.append(names) or SimpleNamespace(wait=lambda: 0))
    monkeypatch.setattr(precompile, "preload", lambda todo: None)
    monkeypatch.setattr(engine, "_current", None)
    monkeypatch.setattr(engine, "choose", lambda: "simd")
    monkeypatch.setattr(compile_notice.LISTENER, "text", compile_notice.MESSAGE)
    return SimpleNamespace(started=started, index=index, folder=tmp_path)


def test_a_first_one_shot_run_goes_blas_and_compiles_the_fast_plan_after_it(one_shot, monkeypatch):
    precompile.expect("net")
    assert engine.current() == "blas"
    assert one_shot.started == [("blas:net",)]   # the helper works on the blas engine's plan
    assert compile_notice.LISTENER.text == compile_notice.TIERED_MESSAGE
    assert precompile._state["background"] == (("net",), one_shot.folder)   # the simd plan, after the command
    launched = []
    monkeypatch.setattr(background, "start", lambda *args: launched.append(args) or "proc")
    assert precompile.background_compile() == "proc"
    assert launched == [(("net",), one_shot.folder)]
    assert precompile.background_compile() is None   # once


@pytest.mark.parametrize("case", ["warm", "not one-shot", "turned off", "engine set", "engine chosen",
                                  "CPU without simd"])
def test_no_tier_where_the_fast_kernels_are_cached_or_not_wanted(one_shot, monkeypatch, case):
    if case == "warm":
        one_shot.index.write_bytes(b"")
    elif case == "not one-shot":
        monkeypatch.setitem(precompile._state, "one_shot", False)
    elif case == "turned off":
        monkeypatch.setenv(precompile.TIER_ENV, "0")
    elif case == "engine set":
        monkeypatch.setenv("NNLITE_GEMM", "simd")
    elif case == "engine chosen":
        monkeypatch.setattr(engine, "_current", "simd")
    else:
        monkeypatch.setattr(engine, "choose", lambda: "blas")
    precompile.expect("net")
    assert precompile._state["background"] is None and precompile.background_compile() is None
    assert compile_notice.LISTENER.text == compile_notice.MESSAGE
    expected = "blas" if case == "CPU without simd" else "simd"
    assert engine.current() == expected
    # the helper follows the engine: a CPU without simd compiles the blas plan (nothing starts on a warm cache)
    assert one_shot.started == ([] if case == "warm" else [("net",) if expected == "simd" else ("blas:net",)])


def _cheap_entry() -> list:
    for entries in precompile.plan().values():
        for entry in entries:
            if entry[:2] == CHEAP:
                return entry
    pytest.fail(f"the plan has no entry for {CHEAP}")


_PARENT = """
import os, sys
from pathlib import Path
from nnlite.ops import background
helper = background.start(["net"], Path(sys.argv[1]), sys.argv[2])
print(helper.pid, flush=True)
os._exit(0)
"""


def _niceness_reaches(pid: int, level: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if int(stat.read().rsplit(")", 1)[1].split()[16]) >= level:
                return True
        time.sleep(0.005)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_background_compile_outlives_its_parent_holds_the_lock_and_fills_the_cache(tmp_path):
    entry, folder = _cheap_entry(), tmp_path / "lock"
    folder.mkdir()
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"net": [entry]}))
    done = subprocess.run([sys.executable, "-c", _PARENT, str(folder), str(plan_file)],
                          env=_env(tmp_path / "cache"), capture_output=True, text=True, timeout=60, check=True)
    pid = int(done.stdout.split()[0])
    assert not background.wait(folder, timeout=0)   # its parent is gone; it still runs, locked
    assert os.getsid(pid) == pid   # a session of its own: a terminal's hangup does not reach it
    assert _niceness_reaches(pid, 10)   # once imported, it yields the cores to foreground work
    assert background.wait(folder, timeout=300)
    assert any(p.name.startswith("shape._add_into") and p.suffix == ".nbi" for p in (tmp_path / "cache").rglob("*"))


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_a_first_run_stops_a_running_background_compile_and_takes_its_models_over(tmp_path):
    folder = tmp_path / "lock"
    folder.mkdir()
    plan_file = tmp_path / "plan.json"   # enough work to be still running when stopped
    plan_file.write_text(json.dumps({"net": [e for entries in precompile.plan().values() for e in entries][:40]}))
    child = background.start(["net", "other"], folder, plan_file, env=_env(tmp_path / "cache"))
    assert child is not None
    deadline = time.monotonic() + 30   # until it runs Python (between fork and exec it shows this command line)
    while b"--background" not in Path(f"/proc/{child.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert background.stop(folder) == ("net", "other")
    assert child.wait(timeout=30) != 0   # ended by the signal, not by finishing its plan
    assert background.wait(folder, timeout=5)   # its lock went with it
    assert background.stop(folder) == ()   # nothing left to stop


def test_stop_leaves_alone_a_process_that_reuses_the_recorded_pid(tmp_path):
    (tmp_path / background.STATE).write_text(json.dumps({"pid": os.getpid(), "names": ["net"]}))
    assert background.stop(tmp_path) == ()   # this pytest process is no background compile: still alive
    assert background.stop(tmp_path / "missing") == ()


def test_wait_without_a_lock_file_returns_at_once(tmp_path):
    start = time.monotonic()
    assert background.wait(tmp_path, timeout=10)
    assert time.monotonic() - start < 1


def _classify(cache: Path) -> subprocess.CompletedProcess:
    """Three images: with one or two, the command runs on the NumPy engine and compiles nothing (nnlite.cli)."""
    images = [str(CAT)] * (NUMPY_IMAGES + 1)
    return subprocess.run([sys.executable, "-m", "nnlite", "classify", *images], env=_env(cache, NNLITE_TIERED="1"),
                          capture_output=True, text=True, timeout=600, cwd=REPO)


def _top(stdout: str) -> tuple[str, float]:
    label, value = stdout.splitlines()[1].split()[:2]
    return label, float(value)


def test_a_first_classify_runs_tiered_and_the_next_one_on_the_fast_kernels(tmp_path):
    """End to end on an empty cache: the first `nnlite classify` says it is tiered and prints the same top class
    as the next one, which finds the fast kernels compiled by the background process and compiles nothing."""
    cache = tmp_path / "cache"
    first = _classify(cache)
    assert first.returncode == 0, first.stderr[-2000:]
    assert compile_notice.TIERED_MESSAGE in first.stderr.splitlines()
    locks = list(cache.rglob(background.LOCK))
    assert len(locks) == 1
    assert background.wait(locks[0].parent, timeout=600)
    todo = precompile.entries(["mobilenet_v2"], precompile.plan())
    names = {f"{module.rsplit('.', 1)[1]}.{fn}" for module, fn, _ in todo}
    cached = {p.name.split("-")[0] for p in cache.rglob("*.nbi")}
    assert names <= cached, f"the background compile left out {sorted(names - cached)}"
    second = _classify(cache)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "nnlite:" not in second.stderr   # nothing compiled: no notice of either kind
    (label1, p1), (label2, p2) = _top(first.stdout), _top(second.stdout)
    assert label1 == label2 == "Egyptian_cat:" and abs(p1 - p2) < 1e-3
