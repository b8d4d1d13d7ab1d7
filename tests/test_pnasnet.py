"""PNASNet-5 Large's architecture file: TF-slim variable names, weight checks, the layer table, the background
class, and ``first_divergence`` naming the cell a perturbed weight belongs to.

The weights are the seeded ones of ``tools/pnasnet_seeded.py`` held in memory; numerical parity with timm is
``parity_tests/test_pnasnet_timm.py``'s job.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlite.errors import WeightsError, WeightsMissingError
from nnlite.graph import GraphBuilder
from nnlite.models.imagenet import pnasnet_large
from nnlite.models.imagenet.slim_weights import ArraySource, SlimWeights, bundle_prefix
from nnlite.vision.classify import Classifier
from tools.pnasnet_seeded import perturbed, photo_batch, seeded_weights, variable_shapes

SIZE = 64


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return seeded_weights()


def build(arrays, size=SIZE):
    return pnasnet_large.build(SlimWeights(ArraySource(arrays), "seeded"), size)


def test_the_model_reads_exactly_the_module_variables(weights):
    w = SlimWeights(ArraySource(weights), "seeded")
    model = pnasnet_large.build(w, SIZE)
    assert w.used == set(variable_shapes())
    assert sum(a.size for a in weights.values()) == pnasnet_large.MODULE_PARAMS
    # layer names are the slim scopes holding the weights
    names = {layer.name for layer in model.layers}
    assert {"conv0", "cell_stem_0/comb_iter_0/right/1x1", "cell_0/path1_conv", "cell_1/prev_1x1",
            "cell_4/comb_iter_4/right/1x1", "cell_11/comb_iter_3/left/separable_3x3_2", "final_layer/FC"} <= names
    assert model["cell_0/comb_iter_1/left/separable_7x7_1"].covers == (
        "cell_0/comb_iter_1/left/separable_7x7_1", "cell_0/comb_iter_1/left/bn_sep_7x7_1")


def test_layer_table_shapes_and_macs(weights):
    rows = {r["name"]: r for r in build(weights, 67).layer_table()}
    assert rows["conv0"]["output_shape"] == (1, 33, 33, 96)
    assert rows["cell_stem_0/cell_output"]["output_shape"] == (1, 17, 17, 270)   # odd sizes round up
    assert rows["cell_stem_1/cell_output"]["output_shape"] == (1, 9, 9, 540)
    assert rows["cell_3/cell_output"]["output_shape"] == (1, 9, 9, 1080)
    assert rows["cell_4/cell_output"]["output_shape"] == (1, 5, 5, 2160)
    assert rows["cell_11/cell_output"]["output_shape"] == (1, 3, 3, 4320)
    assert rows["final_layer/FC"]["output_shape"] == (1, 1001)
    # MACs of a separable conv: depthwise k*k*cin + pointwise cin*cout per output pixel
    assert rows["cell_stem_0/comb_iter_0/left/separable_5x5_1"]["macs"] == 17 * 17 * (5 * 5 * 96 + 96 * 54)


def test_missing_variable_is_named(weights):
    arrays = dict(weights)
    del arrays["cell_7/comb_iter_2/right/bn_sep_3x3_2/moving_variance"]
    with pytest.raises(WeightsError, match=r"seeded: variable 'cell_7/comb_iter_2/right/bn_sep_3x3_2/"
                                           r"moving_variance' not found"):
        build(arrays)


def test_wrong_shape_is_named(weights):
    arrays = dict(weights)
    arrays["cell_2/1x1/weights"] = np.zeros((1, 1, 1080, 215), np.float32)
    with pytest.raises(WeightsError, match=r"'cell_2/1x1/weights' has shape \(1, 1, 1080, 215\), "
                                           r"expected \(1, 1, 1080, 216\)"):
        build(arrays)


def test_foreign_variables_are_refused_training_only_ones_ignored(weights):
    arrays = dict(weights)
    arrays["aux_7/aux_logits/FC/weights"] = np.zeros((768, 1001), np.float32)
    arrays["global_step"] = np.zeros((), np.float32)
    build(arrays)
    arrays["cell_12/1x1/weights"] = np.zeros((1, 1, 4320, 864), np.float32)
    with pytest.raises(WeightsError, match=r"1 variable\(s\) are not part of pnasnet_large: \['cell_12/1x1/weights'\]"):
        build(arrays)


def test_bundle_prefix_accepts_module_variables_folder_and_checkpoint(tmp_path):
    (tmp_path / "m" / "variables").mkdir(parents=True)
    (tmp_path / "m" / "variables" / "variables.index").write_bytes(b"")
    (tmp_path / "model.ckpt.index").write_bytes(b"")
    assert bundle_prefix(tmp_path / "m") == tmp_path / "m" / "variables" / "variables"
    assert bundle_prefix(tmp_path / "m" / "variables") == tmp_path / "m" / "variables" / "variables"
    assert bundle_prefix(tmp_path / "model.ckpt") == tmp_path / "model.ckpt"
    assert bundle_prefix(tmp_path / "model.ckpt.index") == tmp_path / "model.ckpt"
    with pytest.raises(WeightsMissingError, match="no TensorFlow variables found"):
        bundle_prefix(tmp_path)


def test_damaged_bundle_is_a_weights_error(tmp_path):
    (tmp_path / "variables").mkdir()
    (tmp_path / "variables" / "variables.index").write_bytes(b"not a table" * 10)
    with pytest.raises(WeightsError, match="not a readable TensorFlow variables bundle"):
        pnasnet_large.load_model(tmp_path)


def test_missing_module_names_nnlite_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLITE_HOME", str(tmp_path))
    with pytest.raises(WeightsMissingError, match="nnlite fetch pnasnet_large"):
        pnasnet_large.load_model()


@pytest.mark.usefixtures("shared_dir")  # reads ../shared: skipped without it, failed under CI
def test_first_divergence_names_the_cell_of_a_perturbed_weight(weights):
    x = photo_batch(SIZE)[0][:1]
    reference = build(weights).trace(x)        # the unperturbed run: its logits are checked against timm
    target = "cell_5/comb_iter_2/left/separable_5x5_1/pointwise_weights"
    found = build(perturbed(weights, target)).first_divergence(reference, x, tolerance=1e-5)
    assert found is not None
    assert found.layer == "cell_5/comb_iter_2/left/separable_5x5_1"
    matched = [name for name, _ in found.checked[:-1]]     # compared and found equal before it
    assert {"conv0", "cell_4/cell_output", "cell_5/final_path", "cell_5/comb_iter_1/combine"} <= set(matched)
    assert not any(name.startswith(("cell_6", "final_layer")) for name in matched)
    assert build(weights).first_divergence(reference, x, tolerance=1e-5) is None


def test_background_class_is_dropped_after_the_softmax():
    g = GraphBuilder("toy")
    x = g.input("x", (1001,))
    model = g.build([g.layer("relu", "out", x)])
    logits = np.zeros(1001, np.float32)
    logits[0], logits[286] = 5.0, 4.0            # background first, then TF-slim's class 286 = nnlite's 285
    clf = Classifier("toy", model, lambda a: a, output="logits", background_class=True)
    probs = clf.probabilities(logits[None])
    assert probs.shape == (1, 1000)
    assert np.argmax(probs) == 285
    expected = np.exp(4.0) / (np.exp(5.0) + np.exp(4.0) + 999)   # the background keeps its share of the mass
    assert probs[0, 285] == pytest.approx(expected, rel=1e-5)
