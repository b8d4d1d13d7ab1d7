"""benchmarks/RESULTS.md and benchmarks/results.png from one run's measurements (see benchmarks/run.py).

Latencies are the *fastest* of each measurement's rounds: on a shared machine other processes only ever
add time, so the minimum is the least noisy estimate of what the engine itself needs; medians are shown
beside them. Every ratio compares numbers taken in the same run, back to back.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks import common

TARGET_COLD, TARGET_RSS, TARGET_RESNET_SHARE = 0.15, 0.3, 0.5
TARGET_PEER = 1.0  # nnlite's latency over the faster of onnxruntime and OpenVINO
TARGET_PEER_NARROW = 1.5   # the same on a CPU without AVX-512 (issue 14, goal 1)
TARGET_WARM_VS_ORT, TARGET_RSS_OVER_ORT_MB = 1.0, 60   # goal 6: warm start / onnxruntime's, peak RSS - onnxruntime's


def best_peer(e: dict) -> dict | None:
    """The faster of onnxruntime and OpenVINO in one row (by best round), or None if neither ran."""
    ran = [e[k] for k in common.PEERS if e.get(k)]
    return min(ran, key=lambda r: r["min"]) if ran else None


def latency_table(lat: dict, batch: int, matmul: float) -> list[str]:
    rows = ["| model | GMAC/img | nnlite ms | TF ms | ORT ms | OpenVINO ms | TF Keras-export ms | nnlite/TF | target | "
            f"nnlite/best peer (<= {TARGET_PEER}) | nnlite GFLOP/s | % of matmul | max rel. err TF, ORT, OV |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for m in [*common.MODELS, "face_pipeline"]:
        e = {k: lat.get((m, batch, k)) for k in common.ENGINES}
        if not e["nnlite"]:
            continue
        n = e["nnlite"]
        ratio = _ratio(n, e["tf"])
        target = common.TARGETS.get(m) if batch == 1 else None
        verdict = "" if target is None or ratio is None else f"{target} {'met' if ratio <= target else 'missed'}"
        gflops = 2 * n["macs"] * batch / n["min"] / 1e9 if n["macs"] else None
        errs = ", ".join(_g(e[k]["err"]) if e[k] and e[k]["err"] is not None else "-" for k in ("tf", "ort", "ov"))
        peer = _ratio(n, best_peer(e))
        rows.append(f"| {m} | {_f(n['macs'] / 1e9, 3) if n['macs'] else '-'} | {_ms(n)} | {_ms(e['tf'])} | "
                    f"{_ms(e['ort'])} | {_ms(e['ov'])} | {_ms(e['tf_keras'])} | {_f(ratio)} | {verdict} | "
                    f"{_f(peer)} {_ok(peer <= TARGET_PEER) if peer is not None else ''} | {_f(gflops, 1)} | "
                    f"{_pct(gflops / matmul) if gflops and matmul else '-'} | {errs} |")
    tripped = [f"{m} ({n})" for m in common.MODELS if (n := (lat.get((m, batch, "nnlite")) or {}).get("trips"))]
    if tripped:
        rows += ["", "nnlite's busy guard tripped during its turns (it read the host as busy and ran on one thread "
                 "for a while; benchmarks/test_latency.py): " + ", ".join(tripped) + "."]
    return rows


def cold_table(cold: dict) -> list[str]:
    rows = ["| model | nnlite warm cache s (import + load + 1st) | nnlite in the test venv s | nnlite empty cache s "
            "| Numba compile s | TF s (import + load + 1st) | ORT s | nnlite/TF (<= 0.15) | "
            "peak RSS MB nnlite (test venv) / TF / ORT | RSS nnlite/TF (<= 0.3) |",
            "|---|---|---|---|---:|---|---|---:|---|---:|"]
    for m, c in cold.items():
        w, e, t, o = c["nnlite"], c["nnlite_empty"], c["tf"], c["ort"]
        v = c.get("nnlite_test_venv")  # older runs did not measure it
        r_cold, r_rss = w["total_s"] / t["total_s"], w["peak_rss_mb"] / t["peak_rss_mb"]
        rss = f"{w['peak_rss_mb']:.0f}" + (f" ({v['peak_rss_mb']:.0f})" if v else "")
        rows.append(f"| {m} | {_phases(w)} | {_phases(v) if v else '-'} | {_f(e['total_s'])} | "
                    f"{_f(e['total_s'] - w['total_s'])} | {_phases(t)} | {_f(o['total_s'])} | "
                    f"{_f(r_cold)} {_ok(r_cold <= TARGET_COLD)} | {rss} / {t['peak_rss_mb']:.0f} / "
                    f"{o['peak_rss_mb']:.0f} | {_f(r_rss)} {_ok(r_rss <= TARGET_RSS)} |")
    return rows


def _peer_ratios(lat: dict, batch: int) -> dict[str, float]:
    return {m: r for m in common.MODELS
            if (r := _ratio(lat.get((m, batch, "nnlite")),
                            best_peer({k: lat.get((m, batch, k)) for k in common.PEERS}))) is not None}


def has_avx512(machine: dict) -> bool:
    """Whether the run's machine (benchmarks.run's ``machine()``) has AVX-512, by the flags nnlite's kernels read;
    True where an older run did not record them (the stricter target)."""
    flags = machine.get("kernels", {}).get("flags")
    return True if flags is None else any(f.startswith("avx512") for f in flags)


def narrow_cpu_lines(lat: dict) -> list[str]:
    """Goal 1 as the issue sets it for a CPU without AVX-512: nnlite <= 1.5x the faster peer, per batch."""
    out = []
    for batch in (1, 8):
        ratios = _peer_ratios(lat, batch)
        if ratios:
            worst = max(ratios, key=ratios.get)
            bad = [m for m, r in ratios.items() if r > TARGET_PEER_NARROW]
            out.append(f"- batch {batch} on this CPU without AVX-512 (the issue's target there: <= "
                       f"{TARGET_PEER_NARROW} of the faster peer): **{'missed' if bad else 'met'}** "
                       f"(largest {ratios[worst]:.2f}, {worst})" + (f"; missed on {', '.join(bad)}" if bad else ""))
    return out


def warm_start_lines(cold: dict) -> list[str]:
    """Goal 6: nnlite's warm start (runtime venv) against onnxruntime's cold start, and peak RSS over it."""
    out = []
    for m, c in cold.items():
        w, o = c["nnlite"], c["ort"]
        ratio, extra = w["total_s"] / o["total_s"], w["peak_rss_mb"] - o["peak_rss_mb"]
        start_ok, rss_ok = ratio <= TARGET_WARM_VS_ORT, extra <= TARGET_RSS_OVER_ORT_MB
        out.append(f"- {m}: warm start nnlite/onnxruntime {ratio:.2f} (<= {TARGET_WARM_VS_ORT}) "
                   f"**{'met' if start_ok else 'missed'}**, peak RSS {extra:+.0f} MB over onnxruntime's "
                   f"(<= {TARGET_RSS_OVER_ORT_MB}) **{'met' if rss_ok else 'missed'}**")
    return out


def target_summary(lat: dict, cold: dict, matmul: float, avx512: bool = True) -> list[str]:
    """One line per issue target: met or missed, with the number. ``avx512``: whether the CPU has it (goal 1
    allows 1.5x the faster peer on one without)."""
    out = []
    for m, target in common.TARGETS.items():
        ratio = _ratio(lat.get((m, 1, "nnlite")), lat.get((m, 1, "tf")))
        if ratio is not None:
            out.append(f"- batch-1 nnlite/TF {m}: {ratio:.2f} (target <= {target}): "
                       f"**{'met' if ratio <= target else 'missed'}**")
    for batch in (1, 8):
        if not any(lat.get((m, batch, "nnlite")) for m in common.MODELS):
            continue
        bad = [m for m, r in _peer_ratios(lat, batch).items() if r > TARGET_PEER]
        out.append(f"- batch {batch}: no slower than the faster of onnxruntime and OpenVINO on every model: "
                   f"**{'met' if not bad else 'missed'}**" + (f" (missed on {', '.join(bad)})" if bad else ""))
    if not avx512:
        out += narrow_cpu_lines(lat)
    r50 = lat.get(("resnet50", 1, "nnlite"))
    if r50 and matmul:
        share = 2 * r50["macs"] / r50["min"] / 1e9 / matmul
        out.append(f"- ResNet50 batch 1 at >= 50 % of matmul GFLOP/s: {share:.0%} "
                   f"**{'met' if share >= TARGET_RESNET_SHARE else 'missed'}**")
    for m, c in cold.items():
        rc = c["nnlite"]["total_s"] / c["tf"]["total_s"]
        rr = c["nnlite"]["peak_rss_mb"] / c["tf"]["peak_rss_mb"]
        out.append(f"- {m}: cold start nnlite/TF {rc:.2f} (<= 0.15) **{'met' if rc <= TARGET_COLD else 'missed'}**, "
                   f"peak memory nnlite/TF {rr:.2f} (<= 0.3) **{'met' if rr <= TARGET_RSS else 'missed'}**")
    return out + warm_start_lines(cold)


def chart(lat: dict, path: Path, title: str) -> None:
    """Batch-1 latency per model and engine (log scale), and nnlite/TF against its target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = [m for m in [*common.MODELS, "face_pipeline"] if lat.get((m, 1, "nnlite"))]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 9), sharex=True)
    width = 0.2
    for i, (eng, colour) in enumerate((("nnlite", "#d95f02"), ("tf", "#1b9e77"), ("ort", "#7570b3"),
                                       ("ov", "#e7298a"))):
        vals = [lat[(m, 1, eng)]["min"] * 1e3 if lat.get((m, 1, eng)) else 0 for m in models]
        ax1.bar([j + (i - 1.5) * width for j in range(len(models))], vals, width, label=eng, color=colour)
    ax1.set_yscale("log")
    ax1.set_ylabel("batch-1 latency, ms (best of rounds)")
    ax1.legend()
    ax1.set_title(title)
    ratios = [_ratio(lat.get((m, 1, "nnlite")), lat.get((m, 1, "tf"))) or 0 for m in models]
    ax2.bar(range(len(models)), ratios, color="#d95f02", label="nnlite / TF")
    for j, m in enumerate(models):
        if m in common.TARGETS:
            ax2.hlines(common.TARGETS[m], j - 0.4, j + 0.4, colors="k", linestyles="dashed")
    ax2.axhline(1.0, color="grey", linewidth=0.8)
    ax2.set_ylabel("nnlite / TF (dashed: target; below 1: nnlite faster)")
    ax2.set_xticks(range(len(models)), models, rotation=35, ha="right")
    fig.tight_layout()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def _ratio(a, b):
    return a["min"] / b["min"] if a and b else None


def _ms(e) -> str:
    return f"{e['min'] * 1e3:.2f} ({e['median'] * 1e3:.1f})" if e else "-"


def _phases(c) -> str:
    return f"{c['total_s']:.2f} ({c['import_s']:.2f} + {c['load_s']:.2f} + {c['first_s']:.2f})"


def _f(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _g(v) -> str:
    return f"{v:.1e}"


def _pct(v) -> str:
    return f"{v:.0%}"


def _ok(flag: bool) -> str:
    return "met" if flag else "missed"
