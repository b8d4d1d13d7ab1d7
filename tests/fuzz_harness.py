"""Seeded fuzzing of nnlite's file loaders: mutate small valid files, load them in bounded child processes.

Each *target* is one loader with one or more valid seed inputs. Case ``i`` of target ``T`` draws its
mutation from ``random.Random(f"{T}:{i}")``, so any case can be replayed alone::

    python -m tests.fuzz_harness replay TARGET I      # load case I in this process, show the outcome
    python -m tests.fuzz_harness run [N [T1,T2]]      # N cases per target (or the named ones), print a summary

Cases run in batches inside worker processes (a fresh process per case would be slow), each worker under
an address-space cap (``RLIMIT_AS``), with ``NNLITE_MAX_EXPAND_BYTES`` lowered so no allowed expansion
approaches the RSS limit. The worker reports every case's outcome, time and the process's peak RSS; the
driver kills a worker whose case runs past the time limit and records the case as a hang, records a worker
that dies as a crash (with the case's number), and starts a new worker at the next case.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
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

from tests.fuzz_mutations import FIELD, GENERIC, flip

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "tests" / "data" / "fuzz_seeds"
CASE_TIMEOUT_S = 10.0
RSS_LIMIT_BYTES = 1 << 30
ADDRESS_SPACE_CAP = 2 << 30   # measured: a worker that loaded and ran a SavedModel (numba JIT) peaks at 0.47 GB virtual
WORKER_ENV = {"NNLITE_MAX_EXPAND_BYTES": str(256 << 20), "NNLITE_HDF5_TIMEOUT": "3",
              "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------- seeds

def _npz_seeds() -> list[dict[str, bytes]]:
    rng = np.random.default_rng(0)
    arrays = {"conv/kernel": rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
              "conv/bias": np.arange(4, dtype=np.int64), "fortran": np.asfortranarray(np.ones((3, 2)))}
    out = []
    for save in (np.savez, np.savez_compressed):
        buf = io.BytesIO()
        save(buf, **arrays)
        out.append({"w.npz": buf.getvalue()})
    return out


def _tfjs_seeds() -> list[dict[str, bytes]]:
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    quant = rng.integers(0, 255, size=(4,), dtype=np.uint8)
    half = rng.normal(size=(2, 2)).astype(np.float16)
    manifest = [
        {"paths": ["group1-shard1of1.bin"],
         "weights": [{"name": "conv/filters", "shape": [3, 3, 3, 4], "dtype": "float32"},
                     {"name": "conv/bias", "shape": [4], "dtype": "float32",
                      "quantization": {"dtype": "uint8", "scale": 0.01, "min": -1.2}}]},
        {"paths": ["group2-shard1of1.bin"],
         "weights": [{"name": "fc/weights", "shape": [2, 2], "dtype": "float32",
                      "quantization": {"dtype": "float16"}},
                     {"name": "fc/count", "shape": [], "dtype": "int32"}]},
    ]
    return [{"model-weights_manifest.json": json.dumps(manifest).encode(),
             "group1-shard1of1.bin": kernel.tobytes() + quant.tobytes(),
             "group2-shard1of1.bin": half.tobytes() + np.int32(7).tobytes()}]


def _pickle_seeds() -> list[dict[str, bytes]]:
    rng = np.random.default_rng(2)
    weights = {"conv1": [rng.normal(size=(3, 3, 3, 4)).astype(np.float32), np.zeros(4, np.float32)],
               "fire2/squeeze": [rng.normal(size=(1, 1, 4, 2)).astype(np.float32), np.ones(2, np.float32)]}
    return [{"w.pkl": pickle.dumps(weights, protocol=p)} for p in (2, 5)]


def _read_seed(*names: str) -> dict[str, bytes]:
    return {name: (SEEDS / name).read_bytes() for name in names}


def _frozen_seeds() -> list[dict[str, bytes]]:
    from tests.test_savedmodel import conv_graph, switch_graph
    return [{"graph.pb": conv_graph()}, {"graph.pb": switch_graph("PlaceholderWithDefault")}]


def _savedmodel_seed() -> dict[str, bytes]:
    names = ["saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"]
    return {name: (SEEDS / "savedmodel" / name).read_bytes() for name in names}


@dataclass(frozen=True)
class Target:
    name: str
    seeds: object                # () -> list of {relative path: bytes}
    mutable: tuple[str, ...]     # which files of a seed mutations may touch (suffix match)
    kind: str                    # drives field-aware mutations: zip, json, pickle, h5, protobuf, raw


def _load(target: str, folder: Path) -> None:
    """Run the loader of ``target`` on the files in ``folder``."""
    if target in ("npz", "pth_zip", "pth_legacy", "pickle", "keras_h5", "tfjs"):
        from nnlite.io import load_weights
        path = next(p for p in sorted(folder.iterdir()) if p.suffix in (".npz", ".pth", ".pkl", ".h5", ".json"))
        load_weights(path)
    elif target in ("savedmodel", "frozen_pb"):
        from nnlite.savedmodel import load
        model = load(folder if target == "savedmodel" else folder / "graph.pb")
        model.operations(functions=True)
    elif target == "_selftest":  # the harness's own test: each case misbehaves as its file says
        action = (folder / "case.txt").read_text()
        if action == "raise":
            raise ValueError("an untyped error")
        if action == "hang":
            time.sleep(3600)
        if action == "exit":
            os._exit(3)
        if action == "alloc":
            np.ones(128 << 17)  # 128 MiB, every page written
        if action == "typed":
            from nnlite.errors import WeightsError
            raise WeightsError("a typed error")
    elif target == "bundle":
        from nnlite.savedmodel.bundle import TensorBundle
        bundle = TensorBundle(folder / "variables" / "variables")
        for key in bundle.keys():
            bundle.read(key)
    else:
        raise ValueError(target)


def _selftest_seeds() -> list[dict[str, bytes]]:
    return [{"case.txt": b"ok"}]


SELFTEST_ACTIONS = {3: "raise", 5: "hang", 7: "exit", 8: "typed", 9: "alloc"}


TARGETS = {t.name: t for t in [
    Target("npz", _npz_seeds, (".npz",), "zip"),
    Target("tfjs", _tfjs_seeds, (".json", ".bin"), "json"),
    Target("pth_zip", lambda: [_read_seed("tiny.pth")], (".pth",), "zip"),
    Target("pth_legacy", lambda: [_read_seed("tiny_legacy.pth")], (".pth",), "pickle"),
    Target("pickle", _pickle_seeds, (".pkl",), "pickle"),
    Target("keras_h5", lambda: [_read_seed(n) for n in ("keras_legacy_weights.h5", "keras_legacy_model.h5",
                                                        "keras3.weights.h5")], (".h5",), "h5"),
    Target("savedmodel", lambda: [_savedmodel_seed()], (".pb", ".index", ".data-00000-of-00001"), "protobuf"),
    Target("frozen_pb", _frozen_seeds, (".pb",), "protobuf"),
    Target("bundle", lambda: [_savedmodel_seed()], (".index", ".data-00000-of-00001"), "protobuf"),
]}
SELFTEST = Target("_selftest", _selftest_seeds, (".txt",), "raw")


# ---------------------------------------------------------------------------------------- mutations
# ---------------------------------------------------------------------------------------- mutations

def mutate(target: Target, seeds: list[dict[str, bytes]], index: int) -> tuple[dict[str, bytes], str]:
    """Case ``index`` of ``target``: a seed with one file mutated, and a short description."""
    if target is SELFTEST:
        return {"case.txt": SELFTEST_ACTIONS.get(index, "ok").encode()}, SELFTEST_ACTIONS.get(index, "ok")
    rng = random.Random(f"{target.name}:{index}")
    files = dict(rng.choice(seeds))
    candidates = [n for n in files if n.endswith(target.mutable)]
    name = rng.choice(candidates)
    data = bytearray(files[name])
    steps = []
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
        field_aware = rng.random() < 0.45 and not (target.kind == "json" and name.endswith(".bin"))
        fn = FIELD[target.kind] if field_aware else rng.choice(GENERIC)
        if fn is FIELD["json"] and not name.endswith(".json"):
            fn = flip
        fn(rng, data)
        steps.append(getattr(fn, "__name__", "int_field").strip("_"))
    files[name] = bytes(data)
    return files, f"{name}: {'+'.join(steps)}"


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
        _load(target.name, folder)
        return "ok", what
    except Exception as exc:  # noqa: BLE001 - classifying every exception is the point
        return _outcome(exc), what


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
            rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
            out.write(json.dumps({"case": index, "outcome": outcome, "what": what, "s": elapsed, "rss": rss}) + "\n")
            out.flush()


def _load_warmup(target: Target, seeds) -> None:
    """Load each seed unmutated once: imports and JIT happen here, not in the first case's time."""
    with tempfile.TemporaryDirectory(prefix="nnlite-fuzz-seed-") as tmp:
        for seed in seeds:
            _write_case(Path(tmp) / "seed", seed)
            _load(target.name, Path(tmp) / "seed")


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
