"""PNASNet-5 Large: nnlite on a TensorFlow-written tensor bundle vs timm's ``pnasnet5large`` on the same weights.

``tools/pnasnet_seeded.py`` regenerates the seeded weights under their TF-slim names; TensorFlow's own bundle
writer (SaveV2) saves them as a TF-Hub module's ``variables/`` folder; nnlite's bundle reader loads them into
the architecture file. The expected logits come from timm (PyTorch) on the same weights and the same photos,
computed once by ``tools/pnasnet_reference.py`` and committed with the seed and versions
(``tests/data/pnasnet_timm_logits.npz``): relative L2 <= 1e-5 per photo and the same top-5.

Sizes: 64 and 67 (the reduction cells pad even and odd inputs differently) and, marked slow, 331 (the
module's size), which also runs the registered classifier end to end.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nnlite.cli import main
from nnlite.errors import WeightsError
from nnlite.graph import relative_error
from nnlite.models.imagenet import pnasnet_large
from tools.pnasnet_reference import FIXTURE
from tools.pnasnet_seeded import PHOTOS, SEED, photo_batch, photo_path, seeded_weights, write_bundle

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def reference(shared_dir) -> dict:  # its photos include one from ../shared
    data = np.load(FIXTURE)
    meta = json.loads(str(data["meta"]))
    assert meta["seed"] == SEED and meta["photos"] == list(PHOTOS), "fixture made for other weights or photos"
    return {"meta": meta, **{k: data[k] for k in data.files if k.startswith("logits_")}}


@pytest.fixture(scope="module")
def module_dir(tf, tmp_path_factory):
    """A folder laid out like the TF-Hub module's variables: variables/variables.{index,data-00000-of-00001}."""
    root = tmp_path_factory.mktemp("pnasnet_module")
    (root / "variables").mkdir()
    write_bundle(seeded_weights(SEED), root / "variables" / "variables")
    return root


def inputs(reference, size: int) -> np.ndarray:
    x, digests = photo_batch(size)
    assert digests == reference["meta"]["sha256"][str(size)], \
        "the photos resize differently here than where the fixture was made (Pillow version?)"
    return x


def check(logits: np.ndarray, expected: np.ndarray) -> None:
    assert logits.shape == expected.shape == (len(PHOTOS), 1001)
    errors = [relative_error(a, b) for a, b in zip(logits, expected)]
    assert max(errors) <= TOLERANCE, f"relative L2 errors per photo {errors}"
    for a, b in zip(logits, expected):
        assert list(np.argsort(-a, kind="stable")[:5]) == list(np.argsort(-b, kind="stable")[:5])
    # the check has teeth: the photos do not all get the same answer, and the logits are spread
    assert len({tuple(np.argsort(-b)[:5]) for b in expected}) == len(expected)
    assert expected.std(axis=1).min() > 0.1


@pytest.mark.parametrize("size", [64, 67])
def test_small_sizes_match_timm(module_dir, reference, size):
    model = pnasnet_large.load_model(module_dir, input_size=size)
    check(model(inputs(reference, size)), reference[f"logits_{size}"])


def test_a_truncated_data_shard_names_the_variable(module_dir, tmp_path):
    (tmp_path / "variables").mkdir()
    shutil.copy(module_dir / "variables" / "variables.index", tmp_path / "variables")
    with open(module_dir / "variables" / "variables.data-00000-of-00001", "rb") as f:
        (tmp_path / "variables" / "variables.data-00000-of-00001").write_bytes(f.read(1 << 20))
    with pytest.raises(WeightsError, match=r"variable '.*' cannot be read: .*past the end of the shard"):
        pnasnet_large.load_model(tmp_path, input_size=64)


@pytest.mark.slow
def test_331_matches_timm_and_classifies_like_the_others(module_dir, reference, monkeypatch, tmp_path, capsys):
    # loaded the user's way: the module in the models cache, through the registry
    import nnlite
    cache = tmp_path / "home" / "models"
    cache.mkdir(parents=True)
    (cache / "pnasnet_large").symlink_to(module_dir, target_is_directory=True)
    monkeypatch.setenv("NNLITE_HOME", str(tmp_path / "home"))
    clf = nnlite.load("pnasnet_large")
    expected = reference["logits_331"]
    x = inputs(reference, 331)
    check(clf.model(x), expected)

    # the classifier's output: background dropped, the 1000 ImageNet classes, as the other classifiers
    photo = (x[0] * 255).round().astype(np.uint8)          # already 331x331: preprocessing gives x[0] back
    assert np.array_equal(clf.prepare(photo), x[0])
    best = clf.classify(photo).best(10)
    shifted = np.argsort(-expected[0], kind="stable")[:10] - 1       # TF-slim index 0 is the background
    assert [p.index for p in best] == list(shifted)
    assert all(p.label and p.wnid.startswith("n") and 0 < p.score < 1 for p in best)

    # the command line: classify a photo file, and the layer table with the network's multiply-adds
    photo_file = photo_path(PHOTOS[0])
    assert main(["classify", str(photo_file), "--model", "pnasnet_large", "--json", "--top", "5"]) == 0
    answer = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["index"] for p in answer] == [p.index for p in clf.classify(photo_file).best(5)]
    del clf
    assert main(["inspect", "pnasnet_large"]) == 0
    table = capsys.readouterr().out
    assert "cell_11/comb_iter_4/left/separable_3x3_2" in table and "(None, 1001)" in table
    macs = int(table.rsplit("Total MACs (batch 1):", 1)[1].strip().replace(",", ""))
    assert 24.9e9 < macs < 25.1e9                      # timm's model card: 25.0 GMACs at 331
