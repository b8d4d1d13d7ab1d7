"""The wheel carries the bundled weights, and a missing-weights error gives the fix for the situation at hand."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import nnlite
from nnlite import paths
from nnlite.errors import WeightsMissingError
from nnlite.models.faceapi.weights import load_net_weights

REPO = Path(__file__).resolve().parent.parent


def _listed_weight_files() -> list[str]:
    table = (REPO / "nnlite" / "weights" / "README.md").read_text()
    return re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)


def test_weights_readme_lists_every_bundled_file():
    on_disk = sorted(str(p.relative_to(paths.BUNDLED_WEIGHTS_DIR)) for p in paths.BUNDLED_WEIGHTS_DIR.rglob("*")
                     if p.is_file() and p.name not in ("README.md", "NOTICE"))
    assert sorted(_listed_weight_files()) == on_disk


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy so the checkout gets no build/ or egg-info (pip fetches the build backend pyproject names).
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(REPO / "nnlite", src / "nnlite", ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = list(out.glob("nnlite-*.whl"))
    assert len(found) == 1
    return found[0]


def test_wheel_holds_every_bundled_weight_and_its_provenance(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"nnlite/weights/{f}" for f in _listed_weight_files()}
    expected |= {"nnlite/weights/README.md", "nnlite/weights/faceapi/NOTICE", "nnlite/weights/imagenet/NOTICE",
                 "nnlite/data/samples/chelsea.png", "nnlite/data/samples/faces.jpg"}
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("weights/", "tests/", "tools/")) for n in names)


def test_missing_weights_under_nnlite_weights_say_so(monkeypatch, tmp_path):
    monkeypatch.setenv("NNLITE_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsMissingError, match=r"NNLITE_WEIGHTS is set to .* unset NNLITE_WEIGHTS"):
        nnlite.load("mobilenet_v2")


def test_missing_weights_in_a_checkout_name_git_and_the_tool(monkeypatch, tmp_path):
    monkeypatch.delenv("NNLITE_WEIGHTS", raising=False)
    monkeypatch.setattr(paths, "BUNDLED_WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsMissingError, match=r"source checkout.*git checkout -- nnlite/weights/imagenet.*"
                                                  r"convert_imagenet_weights"):
        nnlite.load("mobilenet_v2")
    with pytest.raises(WeightsMissingError, match=r"git checkout -- nnlite/weights/faceapi.*faceapi_weights.py"):
        load_net_weights("tiny_face_detector")


def test_missing_weights_in_an_installed_wheel_say_reinstall(monkeypatch, tmp_path):
    monkeypatch.delenv("NNLITE_WEIGHTS", raising=False)
    monkeypatch.setattr(paths, "BUNDLED_WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(paths, "REPO_DIR", tmp_path / "site-packages")   # no pyproject.toml beside the package
    with pytest.raises(WeightsMissingError, match=r"installed nnlite lacks.*pip install --force-reinstall") as err:
        nnlite.load("mobilenet_v2")
    assert "tools/" not in str(err.value) and "git" not in str(err.value)
