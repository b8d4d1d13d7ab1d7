"""Numba's runtime from nnlite's cached machine code (nnlite.ops.runtime): compiled and written once, then
loaded by every later process, and compiled again when the file is damaged."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

SCRIPT = '''
import numpy as np
from nnlite.ops import runtime
from nnlite.ops.jit import kernel


@kernel
def ramp(n):
    a = np.empty(n, np.float64)  # an allocation: the runtime's reference counting runs
    for i in range(n):
        a[i] = i
    b = a[::-1].copy()
    return a.sum() + b[0]


print(ramp(10), runtime.state["source"])
'''

MOVED = """
from nnlite.ops import runtime


def moved(target_context):
    raise AttributeError("an internal Numba moved")


runtime._compile = moved
""" + SCRIPT


def _run(script, cache) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), NNLITE_PRECOMPILE="0")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_the_runtime_is_compiled_once_then_loaded_and_compiled_again_when_its_file_is_damaged(tmp_path):
    script, cache = tmp_path / "ramp.py", tmp_path / "cache"
    script.write_text(SCRIPT)
    assert _run(script, cache) == "54.0 compiled"
    (path,) = glob.glob(str(cache / "**" / "nnlite-nrt-*.nbc"), recursive=True)
    assert _run(script, cache) == "54.0 cache"
    assert _run(script, cache) == "54.0 cache"
    from nnlite.ops.runtime import MAGIC
    whole = open(path, "rb").read()
    for at in (len(MAGIC), len(whole) - 10):   # the digest, then the pickled library: either no longer matches
        data = bytearray(whole)
        data[at] ^= 0xFF
        open(path, "wb").write(bytes(data))
        assert _run(script, cache) == "54.0 compiled"
        assert _run(script, cache) == "54.0 cache"   # written again, whole
    assert not glob.glob(str(cache / "**" / ".nrt-*"), recursive=True)   # no temporary file left behind


def test_numba_sets_its_runtime_up_itself_where_its_internals_moved(tmp_path):
    script = tmp_path / "moved.py"
    script.write_text(MOVED)
    assert _run(script, tmp_path / "cache") == "54.0 numba"
    assert not glob.glob(str(tmp_path / "cache" / "**" / "nnlite-nrt-*"), recursive=True)
