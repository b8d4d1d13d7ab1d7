"""A process that has to compile nnlite's kernels says so once on stderr; a warm cache prints nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nnlite.ops import compile_notice

REPO = Path(__file__).resolve().parent.parent
SNIPPET = ("import numpy as np\n"
           "from nnlite.ops import max_pool2d\n"
           "x = np.random.default_rng(0).random((1, 6, 6, 2), dtype=np.float32)\n"
           "max_pool2d(x, pool_size=2)\n"
           "max_pool2d(x[:, :5], pool_size=3)\n")


def _run(cache: Path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(cache), "NNLITE_NUM_THREADS": "1", **env}
    if "NNLITE_QUIET_COMPILE" not in env:
        full.pop("NNLITE_QUIET_COMPILE", None)
    return subprocess.run([sys.executable, "-c", SNIPPET], env=full, capture_output=True, text=True, timeout=600)


def test_cold_cache_prints_one_line_and_warm_cache_none(tmp_path):
    cold = _run(tmp_path)
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.splitlines() == [compile_notice.MESSAGE]
    assert any(tmp_path.rglob("*.nbi"))                # the kernels did go into this cache
    warm = _run(tmp_path)
    assert warm.returncode == 0 and warm.stderr == ""


def test_quiet_variable_and_foreign_functions_print_nothing(capsys, monkeypatch):
    class Ev:
        def __init__(self, module):
            self.data = {"dispatcher": type("D", (), {"py_func": type("F", (), {"__module__": module})})()}
    listener = compile_notice._FirstCompile()
    listener.on_start(Ev("someone_else.kernels"))       # not nnlite's: no word
    assert capsys.readouterr().err == "" and not listener.announced
    monkeypatch.setenv("NNLITE_QUIET_COMPILE", "1")
    listener.on_start(Ev("nnlite.ops.gemm"))
    assert capsys.readouterr().err == "" and listener.announced
    listener2 = compile_notice._FirstCompile()
    monkeypatch.delenv("NNLITE_QUIET_COMPILE")
    listener2.on_start(Ev("nnlite.ops.gemm"))
    listener2.on_start(Ev("nnlite.ops.conv"))
    assert capsys.readouterr().err == compile_notice.MESSAGE + "\n"


def test_the_figure_is_the_one_measured_on_this_class_of_machine():
    """The AVX2-only machine measured took 8-18 s where the AVX-512 one took 3-10 (RESULTS.md)."""
    from nnlite.ops import engine
    assert "~3-10 s" in compile_notice.message(True) and "~8-18 s" in compile_notice.message(False)
    avx2_only = engine.vector_registers() == 8
    assert compile_notice.MESSAGE == compile_notice.message(not avx2_only)
