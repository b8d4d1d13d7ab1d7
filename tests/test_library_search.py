"""Face search index, its cache, people clustering and the WordNet table, checked against brute force
and against WordNet facts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numba
import numpy as np
import pytest

from nnlite.errors import LibraryError
from nnlite.library.analyze import ImageRecord
from nnlite.library.face_index import CHUNK
from nnlite.library.face_rows import rows_path
from nnlite.library.index import DEFAULT_RECOGNIZER, LibraryIndex
from nnlite.library.people import cluster
from nnlite.library.search import FaceIndex, FaceIndexCache
from nnlite.library.wordnet import imagenet_wordnet
from nnlite.vision.faces import Face
from nnlite.vision.labels import imagenet_labels

REPO = Path(__file__).resolve().parents[1]


def brute_force(matrix, query, k, cosine=False):
    """Row numbers and distances of the k nearest rows, in float64, ties by row number."""
    rows = matrix.astype(np.float64)
    query = np.asarray(query, np.float32).astype(np.float64)
    if cosine:
        rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        query = query / np.linalg.norm(query)
    d = np.linalg.norm(rows - query, axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return order.tolist(), (d[order] ** 2 / 2 if cosine else d[order])


def faces_of_people(n, dim=128, per_person=20, seed=0):
    """Descriptors like a recognizer's: people spread along a decaying spectrum of directions, each person's
    faces scattered around their centre (same-person distance ~0.45, different people ~1.1).
    Returns (faces (n, dim) float32, a function giving a new face of the person of row i, a stranger's face)."""
    rng = np.random.default_rng(seed)
    people = rng.normal(size=(max(1, n // per_person), dim)) * np.sqrt(0.6 / dim / np.linspace(0.2, 1.8, dim))
    turn, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    centres = people @ turn.T
    person = rng.integers(len(centres), size=n)
    spread = np.sqrt(0.1 / dim)
    faces = (centres[person] + rng.normal(0, spread, (n, dim))).astype(np.float32)

    def new_face(i):
        return (centres[person[i]] + rng.normal(0, spread, dim)).astype(np.float32)

    def stranger():
        return (rng.normal(size=dim) * np.sqrt(0.6 / dim / np.linspace(0.2, 1.8, dim)) @ turn.T
                + rng.normal(0, spread, dim)).astype(np.float32)
    return faces, new_face, stranger


@pytest.mark.parametrize("quantize_above", [0, 10**9], ids=["codes", "every-row"])
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


def test_face_index_computes_every_distance_for_descriptors_too_wide_for_the_codes():
    rng = np.random.default_rng(4)
    matrix = rng.normal(0, 0.02, (300, 4098)).astype(np.float32)   # over face_scan.MAX_SIZE dimensions
    index = FaceIndex(np.arange(300), matrix, quantize_above=0)
    assert index.coarse is None
    query = matrix[5] + rng.normal(0, 0.01, 4098).astype(np.float32)
    assert [h[0] for h in index.search(query, 3)] == brute_force(matrix, query, 3)[0]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_face_index_is_exact_on_faces_of_people(metric):
    faces, new_face, stranger = faces_of_people(30_000, seed=1)
    faces[100:103] = faces[50]   # the same photo indexed three more times: ties go by face id
    index = FaceIndex(np.arange(30_000), faces, quantize_above=0, metric=metric)
    queries = [new_face(i) for i in range(0, 30_000, 3001)] + [stranger() for _ in range(5)] + [faces[50]]
    for query in queries:
        for k in (1, 10, 100):
            hits = index.search(query, k)
            rows, distances = brute_force(faces, query, k, cosine=metric == "cosine")
            assert [h[0] for h in hits] == rows
            assert np.allclose([h[1] for h in hits], distances, rtol=1e-4, atol=1e-9)
    assert [h[0] for h in index.search(faces[50], 4)] == [50, 100, 101, 102]


def test_face_index_is_exact_on_uncorrelated_descriptors_of_512():
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(12_000, 512)).astype(np.float32)
    index = FaceIndex(np.arange(12_000), rows, quantize_above=0, metric="cosine")
    for _trial in range(4):
        query = rows[rng.integers(12_000)] + rng.normal(0, 0.5, 512).astype(np.float32)
        assert [h[0] for h in index.search(query, 10)] == brute_force(rows, query, 10, cosine=True)[0]


def test_face_index_computes_few_exact_distances_for_a_known_person():
    faces, new_face, _ = faces_of_people(60_000, seed=2)
    index = FaceIndex(np.arange(60_000), faces, quantize_above=0)
    for i in (5, 7000, 59_999):
        candidates = index._candidates(new_face(i), 10)
        assert 10 <= len(candidates) <= 600   # the bounds rule out >= 99 % of the faces


def test_face_index_reads_rows_from_a_memory_mapped_file(tmp_path):
    faces, new_face, stranger = faces_of_people(20_000, seed=3)
    path = tmp_path / "rows.f32"
    faces.tofile(path)
    mapped = np.memmap(path, np.float32, "r", shape=faces.shape)
    on_disk = FaceIndex(np.arange(20_000), mapped, quantize_above=0)
    in_ram = FaceIndex(np.arange(20_000), faces, quantize_above=0)
    assert isinstance(on_disk.matrix, np.memmap)
    for query in (new_face(3), new_face(19_000), stranger()):
        assert on_disk.search(query, 10) == in_ram.search(query, 10)
        assert [h[0] for h in on_disk.search(query, 10)] == brute_force(faces, query, 10)[0]


def test_face_index_append_reuses_the_grid_and_stays_exact_outside_it():
    faces, new_face, _ = faces_of_people(24_000, seed=4)
    index = FaceIndex(np.arange(20_000), faces[:20_000], quantize_above=0)
    outliers = faces[20_000:] * 3.0   # far outside the grid placed on the first rows: clipped codes
    grown = index.append(np.arange(20_000, 24_000), outliers)
    everything = np.concatenate([faces[:20_000], outliers])
    assert grown.grid is index.grid and len(grown) == 24_000 and len(index) == 20_000
    for query in (new_face(1), faces[20_001] * 3.0, new_face(21_000) * 3.0):
        assert [h[0] for h in grown.search(query, 10)] == brute_force(everything, query, 10)[0]


def test_face_index_gives_the_same_answer_on_one_and_two_threads():
    faces, new_face, stranger = faces_of_people(40_000, seed=5)
    index = FaceIndex(np.arange(40_000), faces, quantize_above=0)
    queries = [new_face(11), stranger()]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = [index.search(q, 10) for q in queries]
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = [index.search(q, 10) for q in queries]
    finally:
        numba.set_num_threads(before)
    assert one == two


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
        faces = [Face((0, 0, 1, 1), 1.0, np.zeros((68, 2)), rng.normal(0, 0.1, 128)) for _ in range(n)]
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


def test_face_index_cache_maps_large_libraries_from_a_rebuildable_rows_file(tmp_path):
    rng = np.random.default_rng(8)

    def photo(name, n):
        faces = [Face((0, 0, 1, 1), 1.0, np.zeros((68, 2)), rng.normal(0, 0.1, 128)) for _ in range(n)]
        return ImageRecord(name, 1, 1, faces=faces)

    def brute(library, query):
        ids, matrix = library.descriptors()
        return ids[brute_force(matrix, query, 5)[0]].tolist()

    with LibraryIndex(tmp_path / "lib.db") as library:
        for i in range(6):
            library.write(photo(f"/{i}.jpg", 7))
        query = rng.normal(0, 0.1, 128).astype(np.float32)
        index = FaceIndexCache(map_rows_above=10).get(library)
        path = rows_path(library, DEFAULT_RECOGNIZER)
        assert isinstance(index.matrix, np.memmap) and path.is_file()
        assert [h[0] for h in index.search(query, 5)] == brute(library, query)
        written = path.stat().st_mtime_ns
        again = FaceIndexCache(map_rows_above=10).get(library)   # a new process: the file is reused
        assert path.stat().st_mtime_ns == written and np.array_equal(again.ids, index.ids)

        cache = FaceIndexCache(map_rows_above=10)
        cache.get(library)
        library.write(photo("/new.jpg", 3))                       # stale: rewritten with the new faces
        grown = cache.get(library)
        assert len(grown) == 45 and isinstance(grown.matrix, np.memmap)
        assert [h[0] for h in grown.search(query, 5)] == brute(library, query)

        for damage in (b"", b"NNLROWS1" + bytes(100), path.read_bytes()[:-4]):   # empty, bad header, short
            path.write_bytes(damage)
            rebuilt = FaceIndexCache(map_rows_above=10).get(library)
            assert [h[0] for h in rebuilt.search(query, 5)] == brute(library, query)
        assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []
        kept = path.read_bytes()

    # the library deleted and indexed again with other faces of the same count and ids: not the old file
    (tmp_path / "lib.db").unlink()
    with LibraryIndex(tmp_path / "lib.db") as library:
        for i in range(6):
            library.write(photo(f"/{i}.jpg", 7))
        library.write(photo("/new.jpg", 3))
        assert library.face_version() == (45, int(grown.ids[-1]))
        fresh = FaceIndexCache(map_rows_above=10).get(library)
        assert [h[0] for h in fresh.search(query, 5)] == brute(library, query) and path.read_bytes() != kept


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


def test_face_index_bounds_match_the_grid_definition():
    """The scan's lower bounds against a float64 reconstruction from the grid (byte v of dimension j stands
    for lo_j + (v + 0.5) step_j; its high nibble h for lo_j + (16 h + 8) step_j): never above the true
    distance, and ||q - x_hat4|| - ||x - x_hat4|| less the allowance for rounding; each row's stored errors against
    the true reconstruction errors."""
    faces, new_face, _ = faces_of_people(9_000, seed=6)
    index = FaceIndex(np.arange(9_000), faces, quantize_above=0)
    grid = index.grid
    query = new_face(0)
    _, _, _, rows_kept, bounds, counts = index._scan(query, 10, limit=np.float32(np.inf))   # keep every row
    assert counts.sum() == 9_000
    bound = np.full(9_000, np.nan)
    for c, count in enumerate(counts):
        bound[rows_kept[c * CHUNK:c * CHUNK + count]] = bounds[c * CHUNK:c * CHUNK + count]
    codes = np.empty((9_000, 128), np.int64)
    codes[:, 0::2] = ((index.coarse & 15).astype(np.int64) << 4) | (index.fine & 15)
    codes[:, 1::2] = (index.coarse & 240).astype(np.int64) | (index.fine >> 4)
    x8 = grid.lo + (codes + 0.5) * grid.step
    x4 = grid.lo + ((codes >> 4) * 16 + 8) * grid.step
    rows, q = faces.astype(np.float64), query.astype(np.float64)
    err4, err8 = np.linalg.norm(rows - x4, axis=1), np.linalg.norm(rows - x8, axis=1)
    assert np.all(index.err4 >= err4) and np.all(index.err4 <= err4 + 1e-6)
    assert np.all(index.err8 >= err8) and np.all(index.err8 <= err8 + 1e-6)
    assert np.all(bound <= np.linalg.norm(rows - q, axis=1))
    coarse = np.linalg.norm(q - x4, axis=1)
    delta = grid.coarse_terms(q, index.norms_max)[3]   # the kernel's allowance for float32 rounding
    assert delta < 0.01
    assert np.all(bound <= coarse - err4 + 1e-6)
    assert np.all(bound >= np.sqrt(np.maximum(coarse ** 2 - delta, 0)) - err4 - 1e-3)
    unclipped = index.err8 <= np.sqrt(128) * grid.step.max() / 2   # rows with no value outside the grid
    assert unclipped.mean() > 0.8


def test_face_index_scan_keeps_every_row_within_the_limit_from_its_first_rows():
    """The limit taken from the first rows is no smaller than the true 10th distance and the full scan keeps
    every row whose true distance is within it, also when the first rows are all far from the query (the
    limit is then loose but still an upper bound, and the answer still exact); with representative first
    rows it keeps under 10 % of them."""
    faces, new_face, stranger = faces_of_people(40_000, seed=7)
    faces[:20_000] += 1.0   # the first rows: people far from every query
    index = FaceIndex(np.arange(40_000), faces, quantize_above=0)
    for query in (new_face(30_000), stranger(), new_face(39_000)):
        distances = np.sqrt(((faces.astype(np.float64) - query) ** 2).sum(1))
        limit, _, _, rows_kept, _, counts = index._scan(query, 10)
        assert limit >= np.sort(distances)[9]
        kept = np.concatenate([rows_kept[c * CHUNK:c * CHUNK + count] for c, count in enumerate(counts)])
        assert set(np.flatnonzero(distances <= limit)) <= set(kept.tolist())
        assert [h[0] for h in index.search(query, 10)] == brute_force(faces, query, 10)[0]
    usual = FaceIndex(np.arange(20_000), faces[20_000:], quantize_above=0)
    assert usual._scan(new_face(30_000), 10)[5].sum() < 2_000
