"""Seeded fuzzing of nnlite's file loaders: mutate small valid files, load them in bounded child processes.

Each *target* is one loader with one or more valid seed inputs (:mod:`tests.fuzz_targets`). Case ``i`` of
target ``T`` draws its mutation from ``random.Random(f"{T}:{i}")``, so any case can be replayed alone::

    python -m tests.fuzz_harness replay TARGET I      # load case I in this process, show the outcome
    python -m tests.fuzz_harness run [N [T1,T2]]      # N cases per target (or the named ones), print a summary

Cases run in batches inside worker processes (a fresh process per case would be slow), each worker under
an address-space cap (``RLIMIT_AS``), with ``NNLITE_MAX_EXPAND_BYTES`` lowered so no allowed expansion
approaches the RSS limit. The worker reports every case's outcome, time and the process's peak RSS; the
driver kills a worker whose case runs past the time limit and records the case as a hang, records a worker
that dies as a crash (with the case's number), and starts a new worker at the next case.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.fuzz_targets import ROOT, SELFTEST, TARGETS, Target, load_case, mutate

CASE_TIMEOUT_S = 10.0
RSS_LIMIT_BYTES = 1 << 30
ADDRESS_SPACE_CAP = 2 << 30   # measured: a worker that loaded and ran a SavedModel (numba JIT) peaks at 0.47 GB virtual
WORKER_ENV = {"NNLITE_MAX_EXPAND_BYTES": str(256 << 20), "NNLITE_HDF5_TIMEOUT": "3",
              "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------- worker

def _outcome(exc: BaseException | None) -> str:
    from nnlite.errors import NnliteError
    if exc is None:
        return "ok"
    if isinstance(exc, NnliteError):
        return "typed"
    tb = traceback.extract_tb(exc.__traceback__)[-1]
    return f"untyped {type(exc).__name__} at {Path(tb.filename).name}:{tb.lineno}: {str(exc)[:160]}"


def _write_case(folder: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_case(target: Target, seeds, index: int, folder: Path) -> tuple[str, str]:
    files, what = mutate(target, seeds, index)
    _write_case(folder, files)
    try:
        load_case(target.name, folder)
        return "ok", what
    except Exception as exc:  # noqa: BLE001 - classifying every exception is the point
        return _outcome(exc), what


def _peak_rss() -> int:
    """This process's peak RSS in bytes since it started (VmHWM). Not getrusage's ru_maxrss: Linux keeps that
    across exec, so a worker started from a big process (a whole test session) would inherit its peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(target_name: str, start: int, stop: int) -> None:
    """Run cases ``start..stop-1``, one JSON line per case on stdout: before (``begin``) and after."""
    target = SELFTEST if target_name == SELFTEST.name else TARGETS[target_name]
    seeds = target.seeds()
    _load_warmup(target, seeds)
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="nnlite-fuzz-") as tmp:
        folder = Path(tmp) / "case"
        for index in range(start, stop):
            out.write(json.dumps({"begin": index}) + "\n")
            out.flush()
            t0 = time.perf_counter()
            outcome, what = run_case(target, seeds, index, folder)
            elapsed = time.perf_counter() - t0
            rss = max(_peak_rss(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
            out.write(json.dumps({"case": index, "outcome": outcome, "what": what, "s": elapsed, "rss": rss}) + "\n")
            out.flush()


def _load_warmup(target: Target, seeds) -> None:
    """Load each seed unmutated once: imports and JIT happen here, not in the first case's time."""
    with tempfile.TemporaryDirectory(prefix="nnlite-fuzz-seed-") as tmp:
        for seed in seeds:
            _write_case(Path(tmp) / "seed", seed)
            load_case(target.name, Path(tmp) / "seed")


# ---------------------------------------------------------------------------------------- driver

@dataclass
class Report:
    target: str
    cases: int = 0
    ok: int = 0
    typed: int = 0
    untyped: list = field(default_factory=list)   # (case, what, outcome)
    hangs: list = field(default_factory=list)     # (case, what)
    crashes: list = field(default_factory=list)   # (case, what, how)
    over_rss: list = field(default_factory=list)  # (case, what, rss)
    max_s: float = 0.0
    max_rss: int = 0
    slowest: list = field(default_factory=list)   # (s, case, what, outcome), the 3 slowest

    def problems(self) -> list:
        return self.untyped + self.hangs + self.crashes + self.over_rss


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


def _spawn(target: str, start: int, stop: int) -> subprocess.Popen:
    env = {**os.environ, **WORKER_ENV, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.fuzz_harness", "worker", target, str(start), str(stop)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limit_address_space)


def _what(target: str, index: int) -> str:
    t = SELFTEST if target == SELFTEST.name else TARGETS[target]
    return mutate(t, t.seeds(), index)[1]


def drive(target: str, start: int, stop: int, report: Report, case_timeout: float = CASE_TIMEOUT_S,
          rss_limit: int = RSS_LIMIT_BYTES) -> None:
    """Run cases in workers; a hang or a dead worker is recorded and a new worker resumes after it."""
    next_case = start
    while next_case < stop:
        proc = _spawn(target, next_case, stop)
        current, deadline, buffer = None, time.monotonic() + 120, b""  # 120 s: start-up and warm-up
        fd = proc.stdout.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # the current case (or start-up) ran out of time
                proc.kill()
                proc.wait()
                if current is None:
                    raise RuntimeError(f"fuzz worker for {target} did not start: {proc.stderr.read()[-2000:]!r}")
                report.cases += 1
                report.hangs.append((current, _what(target, current)))
                next_case = current + 1
                break
            chunk = os.read(fd, 65536)
            if not chunk:  # worker ended
                code = proc.wait()
                if current is not None:  # died during a case
                    report.cases += 1
                    err = proc.stderr.read().decode(errors="replace")[-300:]
                    report.crashes.append((current, _what(target, current), f"exit {code}: {err}"))
                    next_case = current + 1
                elif code != 0:
                    raise RuntimeError(f"fuzz worker for {target} failed: {proc.stderr.read()[-2000:]!r}")
                else:
                    next_case = stop
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                msg = json.loads(line)
                if "begin" in msg:
                    current, deadline = msg["begin"], time.monotonic() + case_timeout
                    continue
                current = None
                deadline = time.monotonic() + case_timeout
                _record(report, msg, rss_limit)
        proc.stdout.close()
        proc.stderr.close()


def _record(report: Report, msg: dict, rss_limit: int) -> None:
    report.cases += 1
    report.max_s, report.max_rss = max(report.max_s, msg["s"]), max(report.max_rss, msg["rss"])
    report.slowest = sorted(report.slowest + [(msg["s"], msg["case"], msg["what"], msg["outcome"])])[-3:]
    if msg["outcome"] == "ok":
        report.ok += 1
    elif msg["outcome"] == "typed":
        report.typed += 1
    else:
        report.untyped.append((msg["case"], msg["what"], msg["outcome"]))
    if msg["s"] > CASE_TIMEOUT_S:
        report.hangs.append((msg["case"], msg["what"]))
    if msg["rss"] > rss_limit and not any(r[0] < msg["case"] for r in report.over_rss):
        report.over_rss.append((msg["case"], msg["what"], msg["rss"]))


def fuzz(cases_per_target: int, targets=None, workers: int = 2, batches: int = 2) -> dict[str, Report]:
    """Run ``cases_per_target`` cases of every target, ``workers`` processes at a time."""
    targets = list(targets or TARGETS)
    reports = {t: Report(t) for t in targets}
    jobs = []
    for t in targets:
        bounds = np.linspace(0, cases_per_target, batches + 1).astype(int)
        jobs += [(t, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    parts: dict[str, list[Report]] = {t: [] for t in targets}

    def job(args):
        t, a, b = args
        part = Report(t)
        drive(t, a, b, part)
        parts[t].append(part)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(job, jobs))
    for t, items in parts.items():
        r = reports[t]
        for p in items:
            r.cases, r.ok, r.typed = r.cases + p.cases, r.ok + p.ok, r.typed + p.typed
            r.untyped += p.untyped
            r.hangs += p.hangs
            r.crashes += p.crashes
            r.over_rss += p.over_rss
            r.max_s, r.max_rss = max(r.max_s, p.max_s), max(r.max_rss, p.max_rss)
            r.slowest = sorted(r.slowest + p.slowest)[-3:]
    return reports


def summary(reports: dict[str, Report], verbose: bool = False) -> str:
    lines = [f"{'target':<12}{'cases':>7}{'ok':>6}{'typed':>7}{'untyped':>8}{'hangs':>6}{'crash':>6}"
             f"{'max s':>8}{'max RSS MB':>11}"]
    for r in reports.values():
        lines.append(f"{r.target:<12}{r.cases:>7}{r.ok:>6}{r.typed:>7}{len(r.untyped):>8}{len(r.hangs):>6}"
                     f"{len(r.crashes):>6}{r.max_s:>8.2f}{r.max_rss / 2**20:>11.0f}")
        if verbose:
            lines += [f"    slow: case {c} ({w}) {s:.2f} s: {o}" for s, c, w, o in reversed(r.slowest)]
        for problem in r.problems()[:10]:
            lines.append(f"    case {problem[0]}: {problem[1:]}")
    return "\n".join(lines)


def replay(target_name: str, index: int) -> str:
    target = TARGETS[target_name]
    with tempfile.TemporaryDirectory() as tmp:
        outcome, what = run_case(target, target.seeds(), index, Path(tmp) / "case")
    return f"{target_name} case {index} ({what}): {outcome}"


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif command == "replay":
        print(replay(sys.argv[2], int(sys.argv[3])))
    elif command == "run":
        count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
        chosen = sys.argv[3].split(",") if len(sys.argv) > 3 else None
        t0 = time.perf_counter()
        result = fuzz(count, chosen)
        print(summary(result, verbose=True))
        print(f"{sum(r.cases for r in result.values())} cases in {time.perf_counter() - t0:.0f} s")
