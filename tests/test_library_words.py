"""Words people type (face vocabulary with ImageNet labels), suggestions from what the library holds,
face search by photo, "similar to this face", recognizers kept apart, and the version-1 schema."""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pytest

from nnlite.cli import main
from nnlite.errors import LibraryError
from nnlite.library.analyze import ImageRecord
from nnlite.library.index import LibraryIndex
from nnlite.library.search import (
    FaceIndexCache,
    face_search,
    group_by_photo,
    register_recognizer,
    similar_faces,
)
from nnlite.library.words import keyword_search, parse_query, suggestions
from nnlite.vision.classify import Prediction
from nnlite.vision.faces import Face

DOG = ("golden_retriever", "n02099601", 207)
SHEPHERD = ("German_shepherd", "n02106662", 235)
CAT = ("tabby", "n02123045", 281)


def face(score=0.9, gender="female", gp=0.95, age=30.0, top="neutral", descriptor=None, recognizer="faceapi",
         box=(1.0, 2.0, 3.0, 4.0)):
    expression = {"neutral": 0.1, "happy": 0.1, "sad": 0.1, "surprised": 0.1}
    expression[top] = 0.7
    d = np.random.default_rng(int(score * 1000) + int(age)).normal(0, 0.1, 128) if descriptor is None else descriptor
    return Face(box, score, np.zeros((68, 2), np.float32), np.asarray(d, np.float32), age, gender, gp,
                expression, recognizer)


def photo(path, labels=(), faces=()):
    return ImageRecord(path, 10, 1, sha256="0" * 64, width=64, height=48, model="m",
                       labels=[Prediction(n, w, i, s) for (n, w, i), s in labels], faces=list(faces))


@pytest.fixture
def library(tmp_path):
    db = tmp_path / "lib.db"
    with LibraryIndex(db) as lib:
        lib.write(photo("/p/a_dog_woman.jpg", [(DOG, 0.9)], [face(0.95, "female", 0.95, 30, "happy")]))
        lib.write(photo("/p/b_dog.jpg", [(DOG, 0.8)]))
        lib.write(photo("/p/c_group.jpg", [(CAT, 0.7)], [
            face(0.9, "male", 0.9, 40), face(0.8, "female", 0.7, 8), face(0.7, "male", 0.85, 35, "surprised")]))
        lib.write(photo("/p/d_kid.jpg", [(CAT, 0.2)], [face(0.6, "male", 0.6, 5, "sad")]))
        lib.write(photo("/p/e_pair.jpg", [], [face(0.5, "male", 0.5), face(0.4, "male", 0.5)]))
        lib.write(photo("/p/f_shepherd.jpg", [(SHEPHERD, 0.6)]))
    with LibraryIndex(db, readonly=True) as lib:
        yield lib


def names(results):
    return [os.path.basename(r["path"])[0] for r in results]


@pytest.mark.parametrize("query, expected", [
    ("person", "acde"), ("people", "acde"), ("faces", "acde"), ("portrait", "acde"),
    ("woman", "a"), ("man", "c"), ("child", "cd"), ("kids", "cd"), ("baby", "cd"), ("group", "c"),
    ("happy", "a"), ("smiling", "a"), ("sad", "d"), ("surprised", "c"), ("angry", ""),
    ("dog", "abf"), ("dog person", "a"), ("Person  DOG", "a"), ("cat child", "cd"), ("golden retriever", "ab"),
    ("dog cat", ""), ("zebra", ""), ("zebra person", "")])
def test_words_select_the_right_photos(library, query, expected):
    assert sorted(names(keyword_search(library, query))) == sorted(expected)


def test_ranking_and_explanations(library):
    persons = keyword_search(library, "person")
    assert names(persons) == ["a", "c", "d", "e"]    # by the best face's detection score
    assert [r["score"] for r in persons] == pytest.approx([0.95, 0.9, 0.6, 0.5])
    dogs = keyword_search(library, "dog")
    assert names(dogs) == ["a", "b", "f"]
    assert [r["label"] for r in dogs] == ["golden_retriever"] * 2 + ["German_shepherd"]
    both = keyword_search(library, "dog woman")[0]
    assert both["label"] == "golden_retriever"
    assert both["score"] == pytest.approx(np.sqrt(0.9 * 0.95 * 0.95))    # geometric mean of the two terms
    assert {m["term"]: m["kind"] for m in both["matched"]} == {"dog": "label", "woman": "face"}
    group = keyword_search(library, "group")[0]
    assert group["matched"] == [{"term": "group", "kind": "face", "rule": "group", "faces": 3,
                                 "score": pytest.approx(0.7)}]
    assert keyword_search(library, "person", limit=2) == persons[:2]


def test_face_words_never_fall_through_to_imagenet():
    terms = parse_query("man")
    assert terms == [{"term": "man", "kind": "face", "rule": "male", "meaning": terms[0]["meaning"]}]
    assert [t["kind"] for t in parse_query("dog person")] == ["face", "label"]
    assert parse_query("golden retriever")[0]["term"] == "golden retriever"
    assert [t["term"] for t in parse_query("dog cat")] == ["dog", "cat"]


def test_suggestions_come_from_the_library(library):
    found = suggestions(library, limit=50)
    words = [s["word"] for s in found]
    assert words[:7] == ["person", "woman", "man", "child", "group", "happy", "surprised"]
    assert "angry" not in words and "car" not in words and "zebra" not in words
    assert words.index("dog") < words.index("golden retriever")
    for s in found:   # every suggestion finds what it says (labels: at least its best-label photos)
        hits = len(keyword_search(library, s["word"]))
        assert hits == s["count"] if s["kind"] == "face" else hits >= s["count"] >= 1
    assert len(suggestions(library, limit=3)) == 3


def test_cli_words_json(library, capsys):
    assert main(["search", "dog", "person", "--db", str(library.path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "dog person" and [t["kind"] for t in out["terms"]] == ["face", "label"]
    assert out["terms"][0]["meaning"] == "at least one face"
    assert [os.path.basename(r["path"]) for r in out["results"]] == ["a_dog_woman.jpg"]
    assert main(["search", "woman", "--db", str(library.path)]) == 0
    assert "a_dog_woman.jpg" in capsys.readouterr().out


def test_similar_lists_the_clicked_face_first_then_duplicates(tmp_path):
    d = np.random.default_rng(1).normal(0, 0.1, (3, 128))
    with LibraryIndex(tmp_path / "lib.db") as lib:
        lib.write(photo("/p/copy.jpg", faces=[face(descriptor=d[0])]))        # the same photo twice:
        lib.write(photo("/p/original.jpg", faces=[face(descriptor=d[0])]))    # its face has the larger id
        lib.write(photo("/p/other.jpg", faces=[face(descriptor=d[0] + 0.01), face(descriptor=d[1])]))
        clicked = lib.faces_of(2)[0]["id"]
        results = similar_faces(lib, clicked, top=3)
        assert [os.path.basename(r["path"]) for r in results] == ["original.jpg", "copy.jpg", "other.jpg"]
        assert results[0]["face_id"] == clicked and [r["distance"] for r in results][:2] == [0.0, 0.0]
        assert len(similar_faces(lib, clicked, top=10, threshold=0.6)) == 3
        with pytest.raises(LibraryError, match="no face 99"):
            similar_faces(lib, 99)
        photos = group_by_photo(face_search(lib, d[0] + 0.01, top=10), threshold=0.6)
        assert [os.path.basename(p["path"]) for p in photos] == ["other.jpg", "copy.jpg", "original.jpg"]
        assert [len(p["faces"]) for p in photos] == [2, 1, 1] and photos[0]["faces"][1]["match"] is False


def test_recognizers_are_never_compared(tmp_path, monkeypatch):
    from nnlite.library import search
    monkeypatch.setattr(search, "RECOGNIZERS", dict(search.RECOGNIZERS))   # register_recognizer below is undone
    rng = np.random.default_rng(2)
    arc = rng.normal(0, 1, (4, 512)).astype(np.float32)
    with LibraryIndex(tmp_path / "arc.db") as lib:
        for i in range(4):
            lib.write(photo(f"/p/{i}.jpg", faces=[face(descriptor=arc[i], recognizer="arcface")]))
        with pytest.raises(LibraryError, match="'faceapi' recognizer.*'arcface'.*cannot be compared"):
            face_search(lib, np.zeros(128), top=3)
        register_recognizer("arcface", 512, "cosine", 0.5)
        query = arc[2] + 0.1 * rng.normal(0, 1, 512)
        hits = face_search(lib, query, top=4, recognizer="arcface", cache=FaceIndexCache())
        cosine = arc @ query / np.linalg.norm(arc, axis=1) / np.linalg.norm(query)
        assert os.path.basename(hits[0]["path"]) == "2.jpg"
        assert np.allclose([h["distance"] for h in hits], np.sort(1 - cosine), atol=1e-5)
        with pytest.raises(LibraryError, match="512 values"):
            face_search(lib, np.zeros(128), recognizer="arcface")
        lib.write(photo("/p/fa.jpg", faces=[face()]))   # both kinds in one library: each searched apart
        assert [h["path"] for h in face_search(lib, np.zeros(128), top=10)] == ["/p/fa.jpg"]
        assert lib.recognizers() == {"arcface": 4, "faceapi": 1}


V1_SCHEMA = """
CREATE TABLE images (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, width INTEGER, height INTEGER, model TEXT, error TEXT,
    n_faces INTEGER NOT NULL DEFAULT 0, indexed_at REAL NOT NULL);
CREATE TABLE labels (image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE, rank INTEGER NOT NULL,
    label TEXT NOT NULL, wnid TEXT, class_index INTEGER, score REAL NOT NULL, PRIMARY KEY (image_id, rank));
CREATE TABLE faces (id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL, score REAL NOT NULL,
    landmarks BLOB, descriptor BLOB NOT NULL, age REAL, gender TEXT, gender_probability REAL, expression TEXT);
PRAGMA user_version=1;
"""


def test_version_1_index_is_read_as_is_and_migrated_when_written(tmp_path):
    db = tmp_path / "v1.db"
    d = np.arange(128, dtype=np.float32) / 1000
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute("INSERT INTO images VALUES (1, '/p/old.jpg', NULL, 1, 1, 4, 4, 'm', NULL, 1, 0)")
        conn.execute("INSERT INTO faces (image_id, x, y, w, h, score, descriptor) VALUES (1, 0, 0, 2, 2, 0.9, ?)",
                     (d.tobytes(),))
    with LibraryIndex(db, readonly=True) as lib:
        assert lib.faces_of(1)[0]["recognizer"] == "faceapi"
        assert [h["path"] for h in face_search(lib, d, top=1)] == ["/p/old.jpg"]
    with LibraryIndex(db) as lib:
        assert lib.conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert lib.recognizers() == {"faceapi": 1} and face_search(lib, d, top=1)[0]["distance"] == 0.0


def test_people_thumbnails_and_face_search_text(tmp_path, capsys):
    from PIL import Image

    from tests.test_library_fakes import FAKE, make_photo
    root = tmp_path / "photos"
    for i in range(3):
        make_photo(root / f"a{i}.png", (200, 30, 30), person=1, variant=i, size=(64, 48))
    make_photo(root / "b.png", (30, 200, 30), person=2, variant=0)
    db, thumbs = str(tmp_path / "lib.db"), tmp_path / "thumbs"
    assert main(["index", str(root), "--db", db, "--analyzer", FAKE, "--quiet"]) == 0
    assert main(["people", "--db", db, "--thumbnails", str(thumbs), "--json"]) == 2   # the folder must exist
    assert "does not exist" in capsys.readouterr().err
    thumbs.mkdir()
    assert main(["people", "--db", db, "--thumbnails", str(thumbs), "--json"]) == 0
    person = json.loads(capsys.readouterr().out)["people"][0]
    assert person["count"] == 3 and person["representative"]["thumbnail"] == str(thumbs / "person-1.jpg")
    with Image.open(thumbs / "person-1.jpg") as im:
        assert im.format == "JPEG" and max(im.size) <= 160
    assert main(["people", "--db", db]) == 0
    assert "person 1: 3 faces, e.g. " in capsys.readouterr().out

    query = make_photo(tmp_path / "q.png", person=1, variant=9)
    assert main(["search", "--face", query, "--db", db, "--analyzer", FAKE, "--all"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all("beyond" not in line for line in lines[:3]) and "beyond 0.6" in lines[3]
    assert main(["search", "--face", query, "--db", db, "--analyzer", FAKE, "--crops", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["box"] == [0.0, 0.0, 48.0, 32.0] and len(out["photos"]) == 3
    assert main(["search", "cat", "--db", db, "--all"]) == 2
    assert "--all and --crops belong to --face" in capsys.readouterr().err


def test_people_cluster_one_recognizer(tmp_path):
    from nnlite.library.people import people
    rng = np.random.default_rng(4)
    arc = rng.normal(0, 0.01, (3, 512)) + rng.normal(0, 1, 512)   # one person, three arcface faces
    with LibraryIndex(tmp_path / "lib.db") as lib:
        for i in range(3):
            lib.write(photo(f"/p/arc{i}.jpg", faces=[face(descriptor=arc[i], recognizer="arcface")]))
        lib.write(photo("/p/fa.jpg", faces=[face(descriptor=d) for d in rng.normal(0, 0.1, (2, 128))]))   # far apart
        groups = people(lib, threshold=0.5)
        assert [g["count"] for g in groups] == [3] and all(f["path"].startswith("/p/arc") for f in groups[0]["faces"])
        assert people(lib, threshold=0.5, recognizer="faceapi") == []
        with pytest.raises(LibraryError, match="must be > 0"):
            people(lib, threshold=float("nan"))
