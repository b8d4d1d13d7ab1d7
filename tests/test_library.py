"""The photo library with a deterministic fake analyzer: index contents, incremental runs, engines,
keyword / face search, people, and the exact JSON shapes of the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import numpy as np
import pytest

from nnlite.cli import main
from nnlite.library.analyze import AnalyzerSpec, analyze_file
from nnlite.library.index import LibraryIndex
from nnlite.library.indexer import ProgressBar, index_folder
from nnlite.library.search import keyword_search
from tests.test_library_fakes import FAKE, make_photo, person_descriptor

SPEC = AnalyzerSpec.of(FAKE)
RED, GREEN, BLUE = (220, 20, 20), (20, 180, 20), (20, 20, 150)


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    make_photo(root / "cat.png", RED, person=1, variant=0, faces=1)
    make_photo(root / "trip" / "dog.png", GREEN, person=1, variant=1, faces=2, size=(64, 40))
    make_photo(root / "trip" / "deeper" / "snack.png", BLUE, person=2, variant=0)
    make_photo(root / "trip" / "cat2.png", (120, 10, 10), person=2, variant=1)
    make_photo(root / "nobody.png", RED)
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    return root


def index(root, db, **kw):
    return index_folder(root, db, spec=SPEC, **kw)


def rows(db, sql):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_index_stores_every_field(photos, tmp_path):
    db = tmp_path / "lib.db"
    report = index(photos, db)
    assert (report.found, report.analyzed, len(report.errors)) == (6, 6, 1)
    images = {os.path.relpath(r[0], photos): r[1:] for r in
              rows(db, "SELECT path, sha256, size, width, height, model, error, n_faces FROM images")}
    assert "notes.txt" not in images and len(images) == 6
    sha, size, width, height, model, error, n_faces = images["trip/dog.png"]
    data = (photos / "trip" / "dog.png").read_bytes()
    assert (sha, size, width, height) == (hashlib.sha256(data).hexdigest(), len(data), 64, 40)
    assert (model, error, n_faces) == ("fake_classifier", None, 2)
    assert images["broken.jpg"][5].startswith("ImageError") and images["broken.jpg"][6] == 0
    labels = rows(db, "SELECT label, wnid, score FROM labels JOIN images ON id = image_id"
                      " WHERE path LIKE '%/trip/dog.png' ORDER BY rank")
    assert labels[0][:2] == ("golden_retriever", "n02099601") and labels[0][2] == pytest.approx(180 / 255, 0.02)
    faces = rows(db, "SELECT x, y, w, h, score, landmarks, descriptor, age, gender, gender_probability,"
                     " expression FROM faces JOIN images ON images.id = image_id"
                     " WHERE path LIKE '%/trip/dog.png' ORDER BY faces.id")
    assert len(faces) == 2
    x, y, w, h, score, landmarks, descriptor, age, gender, gprob, expression = faces[1]
    assert (x, y, w, h, score) == (12.0, 3.0, 8.0, 9.0, pytest.approx(0.8))
    assert np.array_equal(np.frombuffer(landmarks, np.float32).reshape(68, 2), np.ones((68, 2)))
    assert np.array_equal(np.frombuffer(descriptor, np.float32), person_descriptor(1, 101))
    assert (age, gender, gprob, json.loads(expression)) == (31.0, "female", 0.8, {"neutral": 0.7, "happy": 0.3})


def test_incremental_runs_skip_touch_reanalyze_and_remove(photos, tmp_path):
    db = tmp_path / "lib.db"
    index(photos, db)
    again = index(photos, db)
    assert (again.analyzed, again.skipped) == (0, 6)
    cat = photos / "cat.png"
    os.utime(cat, ns=(1_000_000_000, 1_000_000_000))            # new mtime, same bytes
    make_photo(photos / "nobody.png", GREEN)                   # new bytes
    (photos / "trip" / "cat2.png").unlink()
    report = index(photos, db)
    assert (report.analyzed, report.touched, report.removed, report.skipped) == (1, 1, 1, 3)
    assert rows(db, "SELECT mtime_ns FROM images WHERE path LIKE '%/cat.png'") == [(1_000_000_000,)]
    assert rows(db, "SELECT label FROM labels JOIN images ON id = image_id WHERE path LIKE '%nobody.png'"
                    " AND rank = 0") == [("golden_retriever",)]
    assert rows(db, "SELECT count(*) FROM images") == [(5,)]
    assert rows(db, "SELECT count(*) FROM faces") == [(4,)]      # 5 minus the face of the deleted cat2.png
    retry = index(photos, db, retry_errors=True)
    assert (retry.analyzed, len(retry.errors)) == (1, 1)


def _content(db):
    """The index without ids and timestamps: what every engine must agree on."""
    return (rows(db, "SELECT path, sha256, size, mtime_ns, width, height, model, error, n_faces FROM images"
                     " ORDER BY path"),
            rows(db, "SELECT path, rank, label, wnid, class_index, score FROM labels JOIN images"
                     " ON id = image_id ORDER BY path, rank"),
            rows(db, "SELECT path, x, y, w, h, score, landmarks, descriptor, age, gender, expression FROM faces"
                     " JOIN images ON images.id = image_id ORDER BY path, x"))


@pytest.mark.parametrize("engine, workers", [("local", 2), ("dask", 1), ("dask", 2)])
def test_engines_write_the_same_index(photos, tmp_path, engine, workers):
    index(photos, tmp_path / "one.db")
    report = index(photos, tmp_path / "other.db", engine=engine, workers=workers)
    assert report.analyzed == 6
    assert _content(tmp_path / "one.db") == _content(tmp_path / "other.db")


def test_analyze_file_is_pure_and_records_unreadable_files(photos, tmp_path):
    a, b = analyze_file(str(photos / "cat.png"), SPEC), analyze_file(str(photos / "cat.png"), SPEC)
    assert a.labels == b.labels and np.array_equal(a.faces[0].descriptor, b.faces[0].descriptor)
    missing = analyze_file(str(tmp_path / "gone.png"), SPEC)
    assert missing.error.startswith("unreadable") and missing.sha256 is None


def test_keyword_search_uses_wordnet_ancestors_and_ranks_by_score(photos, tmp_path):
    db = tmp_path / "lib.db"
    index(photos, db)
    with LibraryIndex(db, readonly=True) as library:
        cats = keyword_search(library, "cat")
        assert [os.path.basename(r["path"]) for r in cats] == ["cat.png", "nobody.png", "cat2.png"]
        assert all(r["label"] == "tabby" for r in cats)
        assert [r["score"] for r in cats] == sorted((r["score"] for r in cats), reverse=True)
        dogs = keyword_search(library, "Dog")
        assert dogs[0]["label"] == "golden_retriever" and os.path.basename(dogs[0]["path"]) == "dog.png"
        assert "hotdog" not in {r["label"] for r in dogs}     # a hot dog is food, not a dog
        assert keyword_search(library, "zebra") == []


def test_cli_json_shapes(photos, tmp_path, capsys):
    db = str(tmp_path / "lib.db")
    assert main(["index", str(photos), "--db", db, "--analyzer", FAKE, "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["analyzed"] == 6

    assert main(["search", "cat", "--db", db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"query", "terms", "results"} and out["query"] == "cat"
    assert out["terms"] == [{"term": "cat", "kind": "label", "classes": out["terms"][0]["classes"]}]
    assert out["terms"][0]["classes"] >= 5
    assert all(set(r) == {"path", "label", "score", "matched"} for r in out["results"]) and len(out["results"]) == 3
    assert all(r["matched"][0]["label"] == "tabby" for r in out["results"])

    query = make_photo(tmp_path / "query.png", RED, person=1, variant=7)
    assert main(["search", "--face", query, "--db", db, "--json", "--analyzer", FAKE, "--all"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"query", "threshold", "results", "photos"} and out["threshold"] == 0.6
    assert all(set(r) == {"path", "box", "distance", "match"} for r in out["results"])
    distances = [r["distance"] for r in out["results"]]
    assert distances == sorted(distances) and len(distances) == 5
    assert [r["match"] for r in out["results"]] == [d <= 0.6 for d in distances]
    person1 = {"cat.png", "dog.png"}
    assert {os.path.basename(r["path"]) for r in out["results"][:3]} == person1
    expected = np.linalg.norm(person_descriptor(1, 0) - person_descriptor(1, 7))
    cat_hit = next(r for r in out["results"] if r["path"].endswith("/cat.png"))
    assert cat_hit["distance"] == pytest.approx(expected, rel=1e-5) and cat_hit["box"] == [2.0, 3.0, 8.0, 9.0]
    # grouped per photo: dog.png's two faces in one entry, photos ordered by their nearest face
    photos_out = out["photos"]
    assert [len(p["faces"]) for p in photos_out if p["path"].endswith("/dog.png")] == [2]
    assert [p["distance"] for p in photos_out] == sorted(p["distance"] for p in photos_out)
    assert len(photos_out) == 4 and sum(len(p["faces"]) for p in photos_out) == 5

    # default: the matcher's threshold leaves the other person out
    assert main(["search", "--face", query, "--db", db, "--json", "--analyzer", FAKE]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {os.path.basename(r["path"]) for r in out["results"]} == person1 and len(out["results"]) == 3
    assert all(r["match"] for r in out["results"])

    assert main(["search", "--face", query, "--db", db, "--json", "--analyzer", FAKE,
                 "--threshold", "0.6", "--top", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 2

    assert main(["people", "--db", db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"people"}
    groups = [sorted(os.path.basename(f["path"]) for f in p["faces"]) for p in out["people"]]
    assert groups == [["cat.png", "dog.png", "dog.png"], ["cat2.png", "snack.png"]]
    assert all(set(f) == {"path", "box"} for p in out["people"] for f in p["faces"])
    assert [p["count"] for p in out["people"]] == [3, 2]
    assert all(p["representative"] in p["faces"] for p in out["people"])


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["search", "cat", "--db", str(tmp_path / "none.db")]) == 2
    assert "no library index" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "nope"), "--db", str(tmp_path / "x.db"), "--analyzer", FAKE]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["search", "--db", str(tmp_path / "x.db")]) == 2
    assert "either a keyword" in capsys.readouterr().err


def test_progress_bar_shows_rate_and_eta():
    bar = ProgressBar(stream=None)
    line = bar.line(30, 120, 10.0)
    assert "30/120" in line and "25%" in line and "3.0 img/s" in line and "ETA 0:30" in line
    assert "ETA 1:00:00" in bar.line(1, 3601, 1.0)


def test_index_stores_vision_faces_and_predictions(tmp_path):
    """The library's records are vision's own Face and Prediction; a face the pipeline made without
    attributes (expression None) is stored with an empty expression."""
    from nnlite.library.analyze import ImageRecord
    from nnlite.vision.classify import Prediction
    from nnlite.vision.faces import Face
    face = Face((1.0, 2.0, 3.0, 4.0), 0.8, np.zeros((68, 2), np.float32), np.full(128, 0.1, np.float32))
    record = ImageRecord("/p/x.png", 5, 1, width=8, height=6, model="m", faces=[face],
                         labels=[Prediction("tabby", "n02123045", 281, 0.5)])
    with LibraryIndex(tmp_path / "lib.db") as lib:
        image = lib.image(lib.write(record))
    assert image["labels"] == [{"label": "tabby", "wnid": "n02123045", "score": 0.5}]
    assert [(f["box"], f["score"], f["expression"], f["recognizer"]) for f in image["faces"]] == \
        [([1.0, 2.0, 3.0, 4.0], 0.8, {}, "faceapi")]
