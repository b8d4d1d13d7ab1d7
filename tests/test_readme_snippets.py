"""README's Python snippet runs as pasted from the checkout's root, and prints what its comments promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _python_blocks(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_python_snippet_runs_as_pasted():
    snippet = _python_blocks("Python")[0]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("[Prediction(label='Egyptian_cat', wnid='n02124075', index=285, score=0.71")
    assert re.search(r"^\('unknown', 0\.\d+\)$|^\('first', 0\.\d+\)$", out, flags=re.M)
    assert "(1, 112, 112, 32)\n" in out and out.rstrip().endswith("None")
