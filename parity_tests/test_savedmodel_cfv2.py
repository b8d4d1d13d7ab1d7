"""Parity: the README's SavedModel recipe on TensorFlow 2 (control flow v2), run by nnlite.savedmodel.

tools/export_savedmodels.py form ``tf1v2``: tf_keras classifiers built in graph mode with TF 2's default
control flow, so every batch norm switches on the learning phase through functional ``If`` /
``StatelessIf`` nodes whose branches are library functions, saved with
``SavedModelBuilder.add_meta_graph_and_variables(sess, ["myTag"])``; same weights as the other forms.
nnlite must match TensorFlow (relative L2 <= 1e-5, identical top-5) by node names, through the CLI, and
with the learning phase fed True (the training branch: batch statistics instead of moving averages).

The training branch gets 1e-4: its batch normalisations (52 in MobileNetV2) divide by statistics of
the batch, so float rounding in those statistics is amplified layer after layer. nnlite accumulates them in float64 and
lands at ~4e-5 from TensorFlow; nnlite's own float32 and float64 accumulations differ by ~1.5e-4.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnlite.cli import main as cli_main
from nnlite.savedmodel import load
from parity_tests.test_savedmodel import PHOTOS, TOLERANCE, _compare, exports  # noqa: F401  (fixture)
from tools.export_savedmodels import ARCHS, TF1V2_ARCHS

TRAINING_TOLERANCE = 1e-4


def _case(exports, arch: str):  # noqa: F811
    folder = exports / "tf1v2" / arch
    meta = json.loads((folder / "meta.json").read_text())
    x = np.load(exports / "inputs.npz")[str(ARCHS[arch][1])]
    with np.load(folder / "reference.npz") as ref:
        return folder, meta, x, ref["y"], ref["y_train"]


@pytest.fixture
def case(exports):  # noqa: F811
    return _case(exports, "mobilenet_v2")


@pytest.mark.slow
@pytest.mark.parametrize("arch", TF1V2_ARCHS)
def test_control_flow_v2_graph_matches_tensorflow(exports, arch):  # noqa: F811
    folder, meta, x, ref, _ = _case(exports, arch)
    assert meta["input"] == "input_1" and meta["output"] == "predictions/Softmax"
    m = load(folder / "model", tags=["myTag"])
    types = {op.type for op in m.operations()}
    assert {"If", "StatelessIf", "PlaceholderWithDefault"} <= types and "Switch" not in types
    (y,) = m.run({"input_1": x}, ["predictions/Softmax"])
    _compare(y, ref, TOLERANCE[arch])
    # Speed: the inlined inference branches fuse exactly like the v1 graph's (batch norm folded into
    # each convolution, activations into their kernels), so both plans have the same steps.
    v1 = load(exports / "tf1" / arch / "model", tags=["myTag"])
    v1.run({"input_1": x}, ["predictions/Softmax"])
    steps = [[s[1] for s in p.steps] for p in (*m._programs.values(), *v1._programs.values())]
    assert steps[0] == steps[1]
    if arch == "mobilenet_v2":  # every batch norm follows a convolution there
        assert "FusedBatchNormV3" not in steps[0]


@pytest.mark.slow
@pytest.mark.parametrize("arch", TF1V2_ARCHS)
def test_learning_phase_fed_true_runs_the_training_branch(exports, arch):  # noqa: F811
    folder, meta, x, ref, ref_train = _case(exports, arch)
    assert float(np.linalg.norm(ref_train - ref) / np.linalg.norm(ref)) > 1e-2  # the branches differ
    m = load(folder / "model", tags=["myTag"])
    (y,) = m.run({"input_1": x, "keras_learning_phase": np.bool_(True)}, ["predictions/Softmax"])
    _compare(y, ref_train, TRAINING_TOLERANCE)
    (y,) = m.run({"input_1": x, "keras_learning_phase": np.bool_(False)}, ["predictions/Softmax"])
    _compare(y, ref, TOLERANCE[arch])


@pytest.mark.slow
def test_readme_command_line(case, shared_dir, capsys):
    folder, meta, x, ref, _ = case
    argv = ["savedmodel", str(folder / "model"), "--tags", "myTag", "--run", "--feed",
            f"input_1={shared_dir / PHOTOS[0]}", "--image-scale", "symmetric", "--fetch", "predictions/Softmax",
            "--json"]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    probs = np.array(out["outputs"]["predictions/Softmax"], np.float32)
    _compare(probs, ref[:1], 1e-5)  # the CLI's resize and scaling are the reference batch's
