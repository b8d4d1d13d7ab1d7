"""The README's Go-talk recipe end to end on a model with real answers: tools/go_talk_model.py saves nnlite's
bundled pretrained MobileNetV2 with TensorFlow (TF1 Builder under tag myTag, and Keras 3 export), TensorFlow
reloads it and names the cat, and ``nnlite savedmodel --run`` on the saved folder names it too, with the same
probabilities."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from nnlite.cli import main
from nnlite.paths import data_dir

from .conftest import REPO

CAT = str(data_dir() / "samples" / "chelsea.png")


def _export(cache_dir, name: str, *flags: str):
    """Export once per cache (the tool refuses an existing folder); returns (folder, TensorFlow's line)."""
    out = cache_dir / f"go_talk_{name}"
    log = cache_dir / f"go_talk_{name}.txt"
    if not log.is_file():
        import shutil
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run([sys.executable, "-m", "tools.go_talk_model", str(out), *flags], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        log.write_text(done.stdout)
    return out, log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("form, flags, run_args", [
    ("tf1", (), ["--tags", "myTag", "--feed", f"input_1={CAT}", "--fetch", "predictions/Softmax"]),
    ("keras3", ("--keras3",), ["--feed", f"input_1={CAT}"]),
])
def test_recipe_names_the_cat_in_tensorflow_and_nnlite(tf, cache_dir, capsys, form, flags, run_args):
    folder, tf_line = _export(cache_dir, form, *flags)
    said = re.search(r"TensorFlow says chelsea.png is (\w+) \((0\.\d+)\)", tf_line)
    assert said and said.group(1) == "Egyptian_cat", tf_line
    assert main(["savedmodel", str(folder), "--run", *run_args, "--imagenet-top", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (name, top), = doc["imagenet_top"].items()
    assert top[0][0]["label"] == "Egyptian_cat"
    assert abs(top[0][0]["score"] - float(said.group(2))) < 1e-3
    probs = np.array(doc["outputs"][name])
    assert probs.shape == (1, 1000) and abs(probs.sum() - 1) < 1e-4
    assert main(["savedmodel", str(folder), "--run", *run_args, "--imagenet-top", "1"]) == 0
    assert "Egyptian_cat:" in capsys.readouterr().out
