"""Run every speed benchmark and write benchmarks/RESULTS.md and benchmarks/results.png.

    .venv/bin/python -m benchmarks.run                      # all models, NNLITE_NUM_THREADS or all cores
    .venv/bin/python -m benchmarks.run --threads 2 --also 1 2:blas --seconds 1.0
    .venv/bin/python -m benchmarks.run --quick              # a few models, batch 1, ~2 min: a quick look
    .venv/bin/python -m benchmarks.run --busy               # also: slowdown with all cores but one kept busy
    .venv/bin/python -m benchmarks.run --busy-only          # only that (benchmarks/busy.py), ~3 min

Steps, each in its own process so thread settings reach BLAS at load time and one engine's memory does
not count against another's: (1) numpy float32 matmul GFLOP/s; (2) the pytest-benchmark suites
(test_latency.py, test_pipeline.py) -> JSON; (3) cold start + peak memory per engine for a few models;
(4) per-layer profiles of the nnlite models. First run only: the TF SavedModels, ONNX files and Keras
random-weight files are exported into .cache/bench (a few minutes); later runs reuse them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import common, report

OUT_MD = common.REPO / "benchmarks" / "RESULTS.md"
OUT_PNG = common.REPO / "benchmarks" / "results.png"
COLD_MODELS = ("face_landmark_68_tiny", "face_recognition", "ssd_mobilenetv1", "mobilenet_v2", "resnet50")
RAW = common.CACHE / "results.json"
PROFILE_MODELS = ("face_recognition", "ssd_mobilenetv1", "mobilenet_v2", "resnet50", "xception")


_CORETYPE: dict = {"value": None}   # OPENBLAS_CORETYPE of the configuration being measured (None: inherited)
_ENGINE: dict = {"value": None}   # NNLITE_GEMM of the configuration being measured (None: nnlite's choice)
ENGINES = ("simd", "blas")


def parse_config(spec: str) -> tuple[int, str | None, str | None]:
    """"THREADS[:CORETYPE][:ENGINE]" -> (threads, OPENBLAS_CORETYPE, NNLITE_GEMM), e.g. "2:blas", "2:SkylakeX"."""
    threads, *rest = spec.split(":")
    engine = next((r for r in rest if r in ENGINES), None)
    coretype = next((r for r in rest if r not in ENGINES), None)
    return int(threads), coretype, engine


def _env(threads: int, seconds: float) -> dict:
    env = dict(os.environ, NNLITE_NUM_THREADS=str(threads), NNLITE_BENCH_SECONDS=str(seconds),
               TF_CPP_MIN_LOG_LEVEL="2", NNLITE_HOME=str(common.CACHE / "home"))
    if _CORETYPE["value"]:
        env["OPENBLAS_CORETYPE"] = _CORETYPE["value"]
    if _ENGINE["value"]:
        env["NNLITE_GEMM"] = _ENGINE["value"]
    return env


def _run(cmd: list[str], env: dict, timeout: float, ok=(0,)) -> str:
    print("+", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, cwd=common.REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode not in ok:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    return done.stdout


def matmul_rate(threads: int) -> dict:
    out = _run([sys.executable, "-m", "benchmarks.matmul_rate"], _env(threads, 0), 600)
    return json.loads(out.strip().splitlines()[-1])


def latency(threads: int, seconds: float, models: list[str], pipeline: bool, failures: list,
            batches: str = "1,8", tag: str = "") -> dict:
    """{(model, batch, engine): {min, median, rounds, macs, err, first}}: test_latency.py's records (engines in
    turns) and test_pipeline.py's pytest-benchmark JSON."""
    stem = f"{threads}t-{_CORETYPE['value'] or 'env'}-{_ENGINE['value'] or 'auto'}{tag}"
    turns, path = common.CACHE / f"latency-turns-{stem}.json", common.CACHE / f"latency-{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = _env(threads, seconds)
    env["NNLITE_BENCH_MODELS"] = ",".join(models)
    env["NNLITE_BENCH_BATCHES"] = batches
    env["NNLITE_BENCH_LATENCY_JSON"] = str(turns)
    files = ["benchmarks/test_latency.py"] + (["benchmarks/test_pipeline.py"] if pipeline else [])
    path.unlink(missing_ok=True)
    turns.unlink(missing_ok=True)
    out = _run([sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "-rfE",
                f"--benchmark-json={path}"], env, 3600, ok=(0, 1))     # 1: some test failed, the rest is kept
    failures.extend(line for line in out.splitlines() if line.startswith(("FAILED", "ERROR")))
    records = json.loads(turns.read_text()) if turns.is_file() else []
    for b in json.loads(path.read_text())["benchmarks"] if path.is_file() else []:   # the face pipeline
        info = b["extra_info"]
        records.append({**info, **{k: b["stats"][k] for k in ("min", "median", "rounds")},
                        "rel_err_vs_nnlite": info.get("max_descriptor_distance_vs_nnlite")})
    return {(r["model"], r["batch"], r["engine"]): {"min": r["min"], "median": r["median"], "rounds": r["rounds"],
                                                    "macs": r["macs"], "err": r["rel_err_vs_nnlite"],
                                                    "first": r["first_call_s"], "trips": r.get("guard_trips")}
            for r in records}


def busy(threads: int, seconds: float, models: list[str], failures: list) -> dict:
    """Batch-1 latency of nnlite, onnxruntime and OpenVINO, quiet and with ``cores - 1`` busy-loop processes
    beside them, phases alternating in one process (benchmarks/busy.py)."""
    try:
        out = _run([sys.executable, "-m", "benchmarks.busy", "--models", ",".join(models),
                    "--seconds", str(seconds / 2)], _env(threads, seconds), 1800)
    except SystemExit as exc:
        failures.append(f"busy machine: {exc}")
        return {}
    return json.loads(out.strip().splitlines()[-1])


def cold_starts(threads: int, models: list[str], failures: list) -> dict:
    os.environ.update(_env(threads, 0))   # the cold-start children inherit this process's environment
    from benchmarks import coldstart
    out = {}
    runtime = coldstart.runtime_python()
    for name in models:
        try:
            shape = _shape_of(name)
            warm, empty = coldstart.measure_nnlite_both(name, common.CACHE / "numba", python=runtime)
            test_venv = coldstart.measure("nnlite", name, numba_cache=common.CACHE / "numba")
            out[name] = {"nnlite": warm, "nnlite_empty": empty, "nnlite_test_venv": test_venv,
                         "tf": coldstart.measure("tf", name, common.CACHE / "tf" / name, shape=shape),
                         "ort": coldstart.measure("ort", name, common.CACHE / "onnx" / f"{name}.onnx", shape=shape)}
        except Exception as exc:  # noqa: BLE001 - reported in RESULTS.md, the other models still run
            failures.append(f"cold start {name}: {str(exc).strip().splitlines()[-1][:300]}")
            continue
        print(f"cold start {name}: nnlite {warm['total_s']:.2f} s, TF {out[name]['tf']['total_s']:.2f} s",
              flush=True)
    return out


def _shape_of(name: str) -> tuple:
    """The input shape the TF/ONNX exports were made with (the latency run wrote them)."""
    if name == "tiny_face_detector":
        return (common.TINY_DETECTOR_SIZE, common.TINY_DETECTOR_SIZE, 3)
    import nnlite
    (shape,) = nnlite.load(name).model.inputs.values()
    return tuple(shape)


def profiles(threads: int, models: list[str]) -> str:
    out = []
    for name in models:   # one process per model: a broken model must not lose the other profiles
        try:
            out.append(_run([sys.executable, "-m", "benchmarks.profile_layers", name, "--top", "6"],
                            _env(threads, 0), 900))
        except SystemExit as exc:
            out.append(f"{name}: profile failed ({exc})\n")
    return "".join(out)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for dist in ("numpy", "numba", "tensorflow-cpu", "onnxruntime", "openvino", "tf2onnx", "pytest-benchmark"):
        try:   # metadata only: importing tf2onnx would load TensorFlow into this small process
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "absent"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.REPO, capture_output=True,
                            text=True).stdout.strip()
    kernels = json.loads(_run([sys.executable, "-c", "import json; from nnlite.ops import machine; "
                                                     "print(json.dumps(machine.describe()))"], dict(os.environ), 300))
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "mem_mb": mem, "python": platform.python_version(),
            "versions": versions, "commit": commit, "host": platform.node(), "load": os.getloadavg(),
            "kernels": kernels}


def engine_choice(threads: int) -> str:
    """The conv engine nnlite picks on this machine with the configuration's environment."""
    code = "from nnlite.ops import engine; print(engine.current())"
    return _run([sys.executable, "-c", code], _env(threads, 0), 300).strip()


def numba_layer(threads: int) -> str:
    code = ("import nnlite.ops as o, numpy as np, numba\nfrom nnlite.ops import drivers\n"
            "o.relu(np.ones((1, 256, 256, 16), np.float32))\n"
            "fan = 'libgomp GOMP_parallel' if drivers._fan_out_at[0][1] else 'prange'\n"
            "try:\n    print(f'{numba.threading_layer()} layer, regions started by {fan}')\n"
            "except ValueError:\n    print('none launched')")
    return _run([sys.executable, "-c", code], _env(threads, 0), 300).strip()


def _kernel_lines(k: dict | None) -> list[str]:
    """What nnlite.ops.machine saw and chose on this machine (older runs did not record it)."""
    if not k:
        return []
    mib = lambda n: f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"  # noqa: E731
    c, b = k["caches"], k["blocking"]
    return [f"- LLVM CPU name `{k['llvm_cpu']}`; flags {', '.join(k['flags']) or 'none of note'}; caches L1d "
            f"{mib(c['l1d'])}, L2 {mib(c['l2'])}, L3 {mib(c['l3'])}",
            f"- kernel choices (nnlite/ops/machine.py): engine {k['engine']}; "
            f"conv->pool band {mib(b['convpool_band'])}, depthwise->1x1 band {mib(b['separable_band'])}, "
            f"fused 1x1 kernels up to {mib(b['fuse_max_weights'])}, "
            f"im2col chunk {mib(b['im2col_chunk'])}"
            + (f", panel split up to {mib(b['panel_split_input'])} of input" if "panel_split_input" in b else "")
            + (f", row blocks of {mib(b['row_block_input'])} of input" if "row_block_input" in b else "")
            + (f"; {k['tiles']}" if "tiles" in k else "")]


def busy_lines(result: dict) -> list[str]:
    """The busy-machine table: per engine quiet and busy ms (best call; median in brackets) and slowdown."""
    info, engines = result.get("numba", {}), ("nnlite", "ort", "ov")
    guard = (f"busy guard on ({info.get('guard_trips', '?')} trips)" if info.get("guard") else "busy guard off")
    rows = [f"{info.get('busy_loops', '?')} busy-loop process(es) beside {info.get('threads', '?')} engine "
            f"threads; nnlite on Numba's {info.get('layer', '?')} layer, OpenMP wait policy "
            f"{info.get('wait_policy', '?')}, {guard}. ms = best call (median in brackets); slowdown = busy / "
            "quiet of the same engine, best calls (medians in brackets); last column: nnlite's slowdown / "
            "onnxruntime's, best calls (medians in brackets: a busy machine's cost shows in the typical call; a "
            "best call is one the busy loop left alone).", "",
            "| model | " + " | ".join(f"{e} quiet ms | {e} busy ms | {e} slowdown" for e in engines)
            + " | nnlite / ort slowdown |", "|---|" + "---:|" * (3 * len(engines) + 1)]
    for m, by_engine in ((m, b) for m, b in result.items() if m != "numba"):
        cells, slow, typical = [], {}, {}
        for e in engines:
            r = by_engine.get(e)
            if r is None:
                cells += ["-", "-", "-"]
                continue
            slow[e], typical[e] = r["busy"]["min"] / r["quiet"]["min"], r["busy"]["median"] / r["quiet"]["median"]
            cells += [f"{r[p]['min'] * 1e3:.2f} ({r[p]['median'] * 1e3:.1f})" for p in ("quiet", "busy")]
            cells.append(f"{slow[e]:.2f} ({typical[e]:.2f})")
        cells.append(f"{slow['nnlite'] / slow['ort']:.2f} ({typical['nnlite'] / typical['ort']:.2f})"
                     if {"nnlite", "ort"} <= slow.keys() else "-")
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return rows


def write(results: dict, path: Path = OUT_MD) -> None:
    m, runs = results["machine"], results["runs"]
    main = runs[0]
    lines = [
        "# nnlite speed results", "",
        f"Written by `.venv/bin/python -m benchmarks.run {' '.join(results['argv'])}` on {results['date']} "
        f"({results['minutes']:.1f} min). Chart: [results.png](results.png).", "",
        "## Machine", "",
        f"- CPU: {m['cpu']}, {m['cores']} cores available, {m['mem_mb']} MB RAM; host `{m['host']}`",
        *_kernel_lines(m.get("kernels")),
        f"- load average at start {m['load'][0]:.1f}, at end {results['load_end'][0]:.1f} "
        "(the machine is **shared** with other engineers' test runs: expect noise; every ratio compares "
        "engines measured back to back in the same run)",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; nnlite at commit {m['commit']} plus the working tree",
        f"- nnlite's conv engine: **{main.get('engine', 'blas')}** in the main configuration (\"simd\": its own "
        "implicit GEMM on 16-lane vectors, nnlite/ops/gemm.py, tiles sized for AVX-512 or AVX2; \"blas\": im2col + "
        "NumPy's OpenBLAS matmul); threads: "
        f"Numba's {results['numba_layer']} (nnlite/ops/drivers.py, nnlite/ops/parallel.py)",
        f"- BLAS (dense layers, the \"blas\" engine, the matmul rate): OpenBLAS {main['matmul']['blas_core']} "
        f"kernels (OPENBLAS_CORETYPE={main['matmul']['openblas_coretype_env']}), pinned to 1 thread",
        "",
        "Latency = best call (other processes only ever add time); the median is in brackets. The engines of a "
        "model take turns (benchmarks/test_latency.py: three turns each, order rotating), so a slow stretch of the "
        "host hits them alike; the face pipeline's engines run one after another. "
        "TF and ORT run the same layer graph as nnlite with the same weights (benchmarks/tf_graph.py); "
        "'TF Keras-export' is the independent Keras SavedModel of the same weights used by the parity tests. "
        "The last column is each engine's largest relative L2 difference from nnlite's output.", ""]
    for run in runs:
        lines += [f"## {run['threads']} thread(s), conv engine {run.get('engine', 'blas')}, OpenBLAS "
                  f"{run['matmul']['blas_core']} kernels", "",
                  f"numpy float32 matmul: **{run['matmul']['gflops']:.0f} GFLOP/s** "
                  f"(1024: {run['matmul']['gflops_1024']:.0f}, 2048: {run['matmul']['gflops_2048']:.0f}, "
                  f"4096: {run['matmul']['gflops_4096']:.0f})", ""]
        for batch in (1, 8):
            lines += [f"### Steady-state latency, batch {batch}", "",
                      *report.latency_table(run["latency"], batch, run["matmul"]["gflops"]), ""]
        if run.get("failures"):
            lines += ["### Failed measurements (an engine raised or disagreed with nnlite)", "",
                      *(f"- `{f}`" for f in run["failures"]), ""]
        lines += ["### Targets", "", *report.target_summary(run["latency"], run.get("cold", {}),
                                                             run["matmul"]["gflops"], report.has_avx512(m)), ""]
        if run.get("busy"):
            lines += ["### A busy machine: batch 1 with all cores but one running a busy loop", "",
                      *busy_lines(run["busy"]), ""]
        if run.get("cold"):
            lines += ["### Cold start (fresh process, launch to first batch-1 result) and peak memory", "",
                      *report.cold_table(run["cold"]), "",
                      "Numba compile = empty-cache start minus warm-cache start: paid once per installation "
                      "(kernels are cached on disk, `cache=True`).", ""]
        if run.get("profile"):
            lines += ["### Where nnlite's time goes (per-layer profile, batch 1)", "", "```",
                      run["profile"].rstrip(), "```", ""]
    lines += ["## Notes", "", *results.get("notes", []), ""]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=common.num_threads())
    p.add_argument("--coretype", help="OPENBLAS_CORETYPE for nnlite's BLAS (default: as the environment has it)")
    p.add_argument("--also", nargs="*", default=[], metavar="THREADS[:CORETYPE]",
                   help="extra configurations for the latency tables, THREADS[:CORETYPE][:ENGINE], e.g. 1 "
                        "2:blas 2:SkylakeX:blas (cold start and profile: main configuration only)")
    p.add_argument("--seconds", type=float, default=1.0, help="timing budget per (model, batch, engine)")
    p.add_argument("--models", default=",".join(common.MODELS))
    p.add_argument("--cold-models", default=",".join(COLD_MODELS))
    p.add_argument("--profile-models", default=",".join(PROFILE_MODELS))
    p.add_argument("--no-pipeline", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="a quick look (about 2 minutes once exports are cached): MobileNetV2, SqueezeNet 1.1 and "
                        "TinyFaceDetector at batch 1, no cold start, profile or pipeline; writes "
                        ".cache/bench/RESULTS-quick.md (printed), not RESULTS.md")
    p.add_argument("--busy", action="store_true",
                   help="also measure batch 1 with all cores but one kept busy (the --busy-models)")
    p.add_argument("--busy-only", action="store_true",
                   help="measure only the busy-machine table (no other step); writes .cache/bench/RESULTS-busy.md")
    p.add_argument("--busy-models", default="mobilenet_v2,squeezenet1_1")
    p.add_argument("--notes", type=Path, help="a Markdown file appended under Notes (analysis of this run)")
    p.add_argument("--rewrite", action="store_true",
                   help="measure nothing: rewrite RESULTS.md and the chart from the last run (e.g. new --notes)")
    args = p.parse_args(argv)
    if args.rewrite:
        return rewrite(args.notes)
    if args.busy_only:
        return busy_only(args)
    start = time.time()
    if args.quick:
        args.models, args.cold_models, args.profile_models = "squeezenet1_1,mobilenet_v2,tiny_face_detector", "", ""
        args.no_pipeline, args.also, args.seconds = True, [], min(args.seconds, 0.4)
    models = [x for x in args.models.split(",") if x]
    results = {"argv": argv, "machine": machine(), "runs": [],
               "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
               "numba_layer": numba_layer(args.threads)}
    configs = [(args.threads, args.coretype, None)] + [parse_config(c) for c in args.also]
    for i, (threads, coretype, engine) in enumerate(configs):
        _CORETYPE["value"], _ENGINE["value"] = coretype, engine
        run = {"threads": threads, "engine": engine or engine_choice(threads), "matmul": matmul_rate(threads),
               "failures": []}
        run["latency"] = latency(threads, args.seconds, models, not args.no_pipeline, run["failures"],
                                 batches="1" if args.quick else "1,8")
        if i == 0 and args.busy:
            run["busy"] = busy(threads, args.seconds, [m for m in args.busy_models.split(",") if m],
                               run["failures"])
        if i == 0:
            run["cold"] = cold_starts(threads, [x for x in args.cold_models.split(",") if x in models],
                                      run["failures"])
            run["profile"] = profiles(threads, [x for x in args.profile_models.split(",") if x in models])
        results["runs"].append(run)
    results["minutes"] = (time.time() - start) / 60
    results["load_end"] = os.getloadavg()
    if args.notes and args.notes.is_file():
        results["notes"] = args.notes.read_text().splitlines()
    flat = lambda lat: {"|".join(map(str, k)): v for k, v in lat.items()}  # noqa: E731
    RAW.write_text(json.dumps({**results, "runs": [{**r, "latency": flat(r["latency"])} for r in results["runs"]]},
                              indent=1, default=str))
    publish(results, quick=args.quick)
    return 0


def rewrite(notes: Path | None) -> int:
    results = json.loads(RAW.read_text())
    for r in results["runs"]:
        r["latency"] = {(m, int(b), e): v for (m, b, e), v in ((k.split("|"), v) for k, v in r["latency"].items())}
    if notes and notes.is_file():
        results["notes"] = notes.read_text().splitlines()
    publish(results)
    return 0


def busy_only(args) -> int:
    """``--busy-only``: the busy-machine table alone, printed and written to .cache/bench/RESULTS-busy.md."""
    failures: list = []
    m = machine()
    result = busy(args.threads, args.seconds, [x for x in args.busy_models.split(",") if x], failures)
    k = m["kernels"]
    lines = ["### A busy machine: batch 1 with all cores but one running a busy loop", "",
             f"`python -m benchmarks.run {' '.join(sys.argv[1:])}` on "
             f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {m['cpu']} (LLVM `{k['llvm_cpu']}`), "
             f"{m['cores']} cores, load average {m['load'][0]:.1f} at start; nnlite at commit {m['commit']}", "",
             *(busy_lines(result) if result else []), *(f"- failed: {f}" for f in failures), ""]
    path = common.CACHE / "RESULTS-busy.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(path.read_text(), flush=True)
    return 1 if failures else 0


def publish(results: dict, quick: bool = False) -> None:
    if quick:
        path = common.CACHE / "RESULTS-quick.md"  # a quick look, not a result to keep
        write(results, path)
        print(path.read_text(), flush=True)
        return
    write(results)
    main = results["runs"][0]
    report.chart(main["latency"], OUT_PNG, f"nnlite vs TF vs onnxruntime, batch 1, {main['threads']} thread(s) - "
                 f"{results['machine']['cpu']}, {results['machine']['cores']} cores, {results['date']}")
    print(f"wrote {OUT_MD} and {OUT_PNG} ({results['minutes']:.1f} min of measuring)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
