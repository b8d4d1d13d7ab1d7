"""The measuring tools the speed notes rest on: the memory read rate of benchmarks.face_search and the per-step
profile of benchmarks.step_gap. A tool that skips data or times the wrong thing would make RESULTS.md wrong."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.face_search import _total
from benchmarks.step_gap import group_nodes, step_layers, step_times
from nnlite.graph import GraphBuilder
from nnlite.plan import InvertedStep, PairStep


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_the_read_rate_sum_reads_every_value_once(parts):
    a = (np.arange(64 * 1001) % 5).astype(np.float32)   # small integers: every partial sum is exact
    a[64 * 500 + 3] = 1000.0                              # one value in the middle, away from the pieces' edges
    assert _total(a, parts) == a.astype(np.float64).sum()


def blocks_model(rng):
    """A 3x3 conv, an inverted residual block (1x1 expand -> depthwise -> 1x1 project, plus the shortcut add)
    and a depthwise -> 1x1 pair: the plan fuses the last two into one step each."""
    def rand(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)
    g = GraphBuilder("blocks")
    x = g.input("image", (12, 12, 3))
    a = g.layer("conv2d", "stem", x, kernel=rand(3, 3, 3, 8), bias=rand(8), padding="same", activation="relu")
    e = g.layer("conv2d", "expand", a, kernel=rand(1, 1, 8, 24), activation="relu6")
    d = g.layer("depthwise_conv2d", "dw", e, kernel=rand(3, 3, 24, 1), padding="same", activation="relu6")
    p = g.layer("conv2d", "project", d, kernel=rand(1, 1, 24, 8))
    s = g.layer("add", "shortcut", a, p)
    d2 = g.layer("depthwise_conv2d", "dw2", s, kernel=rand(3, 3, 8, 1), padding="same")
    out = g.layer("conv2d", "pw2", d2, kernel=rand(1, 1, 8, 16))
    return g.build([out])


def test_step_layers_lists_every_layer_a_fused_step_runs():
    model = blocks_model(np.random.default_rng(0))
    model(np.zeros((1, 12, 12, 3), np.float32))
    steps, _ = model._execution_plan()
    kinds = [type(s) for s in steps]
    assert InvertedStep in kinds and PairStep in kinds
    covered = [[layer.name for layer in step_layers(s)] for s in steps]
    assert covered == [["stem"], ["expand", "dw", "project", "shortcut"], ["dw2", "pw2"]]


def test_step_times_times_each_step_and_leaves_the_outputs_alone():
    rng = np.random.default_rng(1)
    model = blocks_model(rng)
    x = rng.standard_normal((1, 12, 12, 3)).astype(np.float32)
    want = model(x)
    steps, best, whole = step_times(model, x, repeats=3)
    assert len(best) == len(steps) == 3
    assert all(0 < b < 1 for b in best) and 0 < whole < 1
    assert np.array_equal(model(x), want)


def test_onnxruntime_nodes_go_to_the_steps_by_their_convolution_count():
    model = blocks_model(np.random.default_rng(0))
    model(np.zeros((1, 12, 12, 3), np.float32))
    steps, _ = model._execution_plan()
    nodes = [("c0", "Conv", 1.0, 0), ("pad", "Pad", 0.5, 0), ("c1", "FusedConv", 2.0, 0), ("c2", "Conv", 3.0, 0),
             ("c3", "Conv", 4.0, 0), ("c4", "Conv", 5.0, 0), ("c5", "Conv", 6.0, 0), ("extra", "Conv", 7.0, 0)]
    groups, others = group_nodes([step_layers(s) for s in steps], nodes)
    assert [[n[0] for n in g] for g in groups] == [["c0"], ["c1", "c2", "c3"], ["c4", "c5"]]
    assert [n[0] for n in others] == ["pad", "extra"]


def _lat(nnlite_ms: float, ort_ms: float, ov_ms: float) -> dict:
    return {"nnlite": {"min": nnlite_ms}, "ort": {"min": ort_ms}, "ov": {"min": ov_ms}}


def test_the_targets_judge_a_cpu_without_avx512_at_one_and_a_half_times_the_faster_peer():
    from benchmarks import common, report
    a, b = common.MODELS[:2]
    lat = {(m, 1, engine): row for m, ms in ((a, (13.0, 10.0, 12.0)), (b, (16.0, 11.0, 10.0)))
           for engine, row in _lat(*ms).items()}
    wide = report.target_summary(lat, {}, 0.0, avx512=True)
    assert any("batch 1: no slower" in line and "**missed**" in line for line in wide)
    assert not any("without AVX-512" in line for line in wide)
    narrow = [line for line in report.target_summary(lat, {}, 0.0, avx512=False) if "without AVX-512" in line]
    assert narrow == [f"- batch 1 on this CPU without AVX-512 (the issue's target there: <= 1.5 of the faster peer): "
                      f"**missed** (largest 1.60, {b}); missed on {b}"]


def test_the_targets_compare_a_warm_start_with_onnxruntimes_cold_start():
    from benchmarks import report
    run = {"total_s": 0.5, "peak_rss_mb": 150.0}
    cold = {"net": {"nnlite": run, "tf": {"total_s": 5.0, "peak_rss_mb": 600.0},
                    "ort": {"total_s": 0.4, "peak_rss_mb": 100.0}}}
    assert report.warm_start_lines(cold) == ["- net: warm start nnlite/onnxruntime 1.25 (<= 1.0) **missed**, peak RSS "
                                             "+50 MB over onnxruntime's (<= 60) **met**"]
