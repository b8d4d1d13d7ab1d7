"""`nnlite classify` and `nnlite models`: output shapes, the --json contract, typed errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nnlite.cli import main
from nnlite.paths import data_dir

CHELSEA = str(data_dir() / "samples" / "chelsea.png")
COFFEE = str(data_dir() / "samples" / "coffee.png")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_for_one_image_is_exactly_one_object(capsys):
    code, out, err = _run(capsys, "classify", CHELSEA, "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)   # fails on anything but one JSON document
    assert set(doc) == {"image", "model", "predictions"}
    assert doc["image"] == CHELSEA and doc["model"] == "mobilenet_v2"
    assert len(doc["predictions"]) == 5
    first = doc["predictions"][0]
    assert set(first) == {"label", "wnid", "index", "score"}
    assert (first["label"], first["wnid"], first["index"]) == ("Egyptian_cat", "n02124075", 285)
    assert abs(first["score"] - 0.7166) <= 1e-3
    scores = [p["score"] for p in doc["predictions"]]
    assert scores == sorted(scores, reverse=True)


def test_json_for_several_images_keeps_their_order(capsys):
    code, out, _ = _run(capsys, "classify", COFFEE, CHELSEA, "--model", "squeezenet1_1", "--top", "2", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"model", "results"} and doc["model"] == "squeezenet1_1"
    assert [r["image"] for r in doc["results"]] == [COFFEE, CHELSEA]
    assert [r["predictions"][0]["label"] for r in doc["results"]] == ["espresso", "Egyptian_cat"]
    assert all(len(r["predictions"]) == 2 and r["model"] == "squeezenet1_1" for r in doc["results"])


def test_text_output_lists_top_k(capsys):
    code, out, _ = _run(capsys, "classify", COFFEE, "--top", "3")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == f"{COFFEE} (mobilenet_v2)" and len(lines) == 4
    assert lines[1].split()[0] == "espresso:"


def test_bad_image_is_a_typed_error_with_exit_2(capsys, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, out, err = _run(capsys, "classify", CHELSEA, str(bad), "--json")
    assert code == 2 and out == ""   # nothing printed for the good image either
    assert "broken.png" in err and "Traceback" not in err
    code, out, err = _run(capsys, "classify", str(tmp_path / "missing.jpg"))
    assert code == 2 and "missing.jpg" in err


def test_unknown_model_and_bad_top_are_refused(capsys):
    code, _, err = _run(capsys, "classify", CHELSEA, "--model", "alexnet")
    assert code == 2 and "alexnet" in err and "mobilenet_v2" in err
    with pytest.raises(SystemExit) as exc:
        main(["classify", CHELSEA, "--top", "0"])
    assert exc.value.code == 2


def test_models_lists_every_bundled_classifier(capsys):
    code, out, _ = _run(capsys, "models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    for name, size in (("mobilenet_v2", [224, 224]), ("squeezenet1_1", [227, 227]),
                       ("efficientnet_lite0", [224, 224])):
        assert rows[name]["input_size"] == size and rows[name]["weights_present"] is True
        assert rows[name]["params"] > 1_000_000 and rows[name]["preprocessing"]
    code, out, _ = _run(capsys, "models")
    assert code == 0 and "mobilenet_v2" in out and "present" in out


def test_command_line_entry_point_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nnlite", "classify", COFFEE, "--top", "1", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"][0]["label"] == "espresso"
