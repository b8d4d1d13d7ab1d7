"""Face search index, its cache, people clustering and the WordNet table, checked against brute force
and against WordNet facts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nnlite.errors import LibraryError
from nnlite.library.analyze import FaceRecord, ImageRecord
from nnlite.library.index import LibraryIndex
from nnlite.library.people import cluster
from nnlite.library.search import FaceIndex, FaceIndexCache
from nnlite.library.wordnet import imagenet_wordnet
from nnlite.vision.labels import imagenet_labels

REPO = Path(__file__).resolve().parents[1]


def brute_force(matrix, query, k):
    d = np.linalg.norm(matrix.astype(np.float64) - query, axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return order.tolist(), d[order]


@pytest.mark.parametrize("quantize_above", [0, 10**9], ids=["int8+rerank", "float32"])
def test_face_index_matches_brute_force(quantize_above):
    rng = np.random.default_rng(3)
    matrix = rng.normal(0, 0.09, (20_000, 128)).astype(np.float32)
    index = FaceIndex(np.arange(20_000) + 100, matrix, quantize_above=quantize_above)
    for _trial in range(5):
        query = matrix[rng.integers(20_000)] + rng.normal(0, 0.05, 128).astype(np.float32)
        hits = index.search(query, 10)
        rows, distances = brute_force(matrix, query, 10)
        assert [h[0] - 100 for h in hits] == rows
        assert np.allclose([h[1] for h in hits], distances, rtol=1e-5)
    near = index.search(matrix[7], 10, threshold=0.5)
    assert [h[0] for h in near] == [107] and near[0][1] == 0.0


def test_face_index_rejects_bad_queries():
    index = FaceIndex(np.arange(3), np.zeros((3, 128), np.float32))
    with pytest.raises(LibraryError, match="128 finite floats"):
        index.search(np.zeros(127), 1)
    with pytest.raises(LibraryError, match="128 finite floats"):
        index.search(np.full(128, np.nan), 1)
    assert FaceIndex(np.arange(0), np.zeros((0, 128))).search(np.zeros(128), 5) == []


def test_face_index_cache_appends_new_faces_and_reloads_after_deletes(tmp_path):
    rng = np.random.default_rng(0)

    def photo(name, n):
        faces = [FaceRecord((0, 0, 1, 1), 1.0, np.zeros((68, 2)), rng.normal(0, 0.1, 128)) for _ in range(n)]
        return ImageRecord(name, 1, 1, faces=faces)

    cache = FaceIndexCache()
    with LibraryIndex(tmp_path / "lib.db") as library:
        library.write(photo("/a.jpg", 3))
        first = cache.get(library)
        library.write(photo("/b.jpg", 2))
        grown = cache.get(library)
        ids, matrix = library.descriptors()
        assert len(grown) == 5 and np.array_equal(grown.matrix, matrix) and np.array_equal(grown.ids, ids)
        assert len(first) == 3 and cache.get(library) is grown   # unchanged: reused as is
        library.write(photo("/a.jpg", 1))   # re-indexed: 3 faces deleted, 1 added
        reloaded = cache.get(library)
        assert len(reloaded) == 3 and np.array_equal(reloaded.ids, library.descriptors()[0])


def test_people_clusters_and_orders_by_size():
    rng = np.random.default_rng(5)
    centres = rng.normal(0, 0.09, (4, 128))
    sizes = [2, 6, 1, 4]
    rows = np.concatenate([c + rng.normal(0, 0.015, (n, 128)) for c, n in zip(centres, sizes)]).astype(np.float32)
    truth = np.repeat(np.arange(4), sizes)
    groups = cluster(rows)
    assert [len(g) for g in groups] == [6, 4, 2, 1]
    assert all(len(set(truth[g])) == 1 for g in groups)


def test_wordnet_ancestors_follow_wordnet():
    wn = imagenet_wordnet()
    labels = imagenet_labels()
    assert sorted(labels.wnids) == wn.classes and len(wn.classes) == 1000
    names = dict(zip(labels.wnids, labels.names))
    cats = {names[w] for w in wn.classes_matching("cat")}
    assert {"tabby", "Siamese_cat", "Egyptian_cat", "Persian_cat", "tiger_cat"} <= cats
    dogs = {names[w] for w in wn.classes_matching("dog")}
    assert {"beagle", "golden_retriever", "Chihuahua", "pug"} <= dogs and "hotdog" not in dogs
    # WordNet 3.0: tabby -> domestic_cat -> cat -> feline -> carnivore -> placental -> mammal
    chain = wn.ancestor_lemmas("n02123045")
    assert {"domestic_cat", "house_cat", "feline", "carnivore", "mammal", "animal"} <= chain
    assert wn.classes_matching("n02123045") == ["n02123045"]
    assert {names[w] for w in wn.classes_matching("golden Retriever")} == {"golden_retriever"}
    assert wn.classes_matching("") == [] and wn.classes_matching("xyzzy") == []


def test_wordnet_table_rebuilds_identically(tmp_path):
    """The committed table is what the tool builds from WordNet's database. Without the database
    this skips with the install line, except in CI (env CI set), where it must run."""
    if not Path("/usr/share/wordnet/data.noun").exists():
        message = "WordNet database missing: apt-get install wordnet-base"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run this check)")
        pytest.skip(message)
    from tools.build_wordnet_hypernyms import main
    assert main(["--out", str(tmp_path)]) == 0
    committed = REPO / "nnlite" / "data"
    assert json.loads((tmp_path / "wordnet_imagenet.json").read_text()) == \
        json.loads((committed / "wordnet_imagenet.json").read_text())
    assert (tmp_path / "LICENSE-WordNet.txt").read_text() == (committed / "LICENSE-WordNet.txt").read_text()
