"""PNASNet-5 Large as a TF1-Hub-format SavedModel: ``nnlite savedmodel`` vs TensorFlow on the same file.

``tools/pnasnet_tf.py`` writes the network with TensorFlow ops from the seeded weights, laid out as the TF-Hub
module is (empty tag set beside ``train``, signature ``default``: ``images`` in [0, 1] -> ``default`` logits,
reference variables). TensorFlow runs it through its TF1 loader; nnlite loads it without tags (the empty set is
picked) and runs the signature: logits relative L2 <= 1e-5 per photo, the same top-5. The CLI runs it too.
The exported size is 64 (67 would cost another export; the odd size is covered against timm).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnlite.savedmodel
from nnlite.cli import main
from nnlite.graph import relative_error
from tools.pnasnet_seeded import photo_batch

SIZE = 64
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def exported(tf, shared_dir, tmp_path_factory):  # its photos include one from ../shared
    """(SavedModel folder, photos (N, 64, 64, 3) in [0, 1], TensorFlow's logits)."""
    from tools.pnasnet_tf import export
    path = export(tmp_path_factory.mktemp("pnasnet_hub") / "module", SIZE)
    x = photo_batch(SIZE)[0]
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, [], str(path))
        sig = meta.signature_def["default"]
        logits = sess.run(sig.outputs["default"].name, {sig.inputs["images"].name: x})
    return path, x, logits


def test_nnlite_runs_the_module_signature_like_tensorflow(exported):
    path, x, expected = exported
    model = nnlite.savedmodel.load(path)                   # no tags: the TF1 Hub inference graph
    assert model.tags == [] and "default" in model.signatures
    logits, = model.run({"images": x}, ["default"], signature="default")
    errors = [relative_error(a, b) for a, b in zip(logits, expected)]
    assert max(errors) <= TOLERANCE, errors
    for a, b in zip(logits, expected):
        assert list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5])
    assert len({tuple(np.argsort(-b)[:5]) for b in expected}) == len(expected)   # the photos differ


def test_cli_runs_the_module(exported, tmp_path, capsys):
    path, x, expected = exported
    np.save(tmp_path / "x.npy", x[:1])
    assert main(["savedmodel", str(path), "--run", "--feed", f"images={tmp_path / 'x.npy'}",
                 "--fetch", "final_layer/FC/BiasAdd", "--json"]) == 0
    values = np.asarray(json.loads(capsys.readouterr().out)["outputs"]["final_layer/FC/BiasAdd"], np.float32)
    assert values.shape == (1, 1001)
    assert relative_error(values[0], expected[0]) <= TOLERANCE
