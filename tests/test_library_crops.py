"""Folders of tight face crops with the real models: `index --crops` finds a face in crops the detector
misses (padded retry, then the whole image), and `search --face --crops` searches with a crop."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nnlite.cli import main
from nnlite.library.index import LibraryIndex

REPO = Path(__file__).resolve().parents[1]
IDENTITIES = Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared")) / "data" / "faceapi" / "identities"
# amy1, amy3: no face on the crop itself, one on a padded copy; stuart4: none even padded
CROPS = ["amy/amy1.png", "amy/amy3.png", "stuart/stuart4.png"]


@pytest.mark.slow
@pytest.mark.usefixtures("shared_dir")  # reads ../shared: skipped without it, failed under CI
def test_index_and_search_folders_of_face_crops(tmp_path, capsys):
    root = tmp_path / "crops"
    root.mkdir()
    for name in CROPS:
        os.symlink(IDENTITIES / name, root / Path(name).name)
    plain, crops = str(tmp_path / "plain.db"), str(tmp_path / "crops.db")
    assert main(["index", str(root), "--db", plain, "--quiet", "--json", "--top-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == 0     # the detector alone misses all three
    assert main(["index", str(root), "--db", crops, "--quiet", "--json", "--top-k", "1", "--crops"]) == 0
    capsys.readouterr()
    with LibraryIndex(crops, readonly=True) as library:
        faces = {os.path.basename(library.path_of(i)): library.faces_of(i)
                 for i, in library.conn.execute("SELECT id FROM images")}
    assert all(len(f) >= 1 for f in faces.values())
    assert faces["amy1.png"][0]["score"] >= 0.5 and faces["amy3.png"][0]["score"] >= 0.5   # detected, padded
    assert [f["score"] for f in faces["stuart4.png"]] == [0.0]                             # the whole crop
    assert main(["search", "--face", str(IDENTITIES / "amy/amy2.png"), "--db", crops, "--json"]) == 2
    assert "try --crops" in capsys.readouterr().err
    assert main(["search", "--face", str(IDENTITIES / "amy/amy2.png"), "--db", crops, "--json", "--crops",
                 "--all"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["box"] == [0.0, 0.0, 150.0, 150.0]
    order = [os.path.basename(p["path"]) for p in out["photos"]]
    assert len(order) == 3 and order[-1] == "stuart4.png"    # amy's two crops are nearer than another person
