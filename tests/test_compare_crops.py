"""`nnlite compare --crops` on tight identity crops, which the detector does not find."""

import json

from nnlite.cli import main


def test_compare_crops_same_and_different(shared_dir, capsys):
    ids = shared_dir / "data" / "faceapi" / "identities"
    assert main(["compare", str(ids / "amy/amy1.png"), str(ids / "amy/amy2.png")]) == 2
    assert "--crops" in capsys.readouterr().err
    assert main(["compare", "--crops", "--json", str(ids / "amy/amy1.png"), str(ids / "amy/amy2.png")]) == 0
    same = json.loads(capsys.readouterr().out)
    assert main(["compare", "--crops", "--json", str(ids / "amy/amy1.png"), str(ids / "raj/raj2.png")]) == 0
    other = json.loads(capsys.readouterr().out)
    assert same["same_person"] and not other["same_person"]
    assert same["distance"] < 0.6 < other["distance"]
