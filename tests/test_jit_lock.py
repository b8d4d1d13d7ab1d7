"""nnlite's dispatchers hold a file lock per function while they look up and compile a new signature."""

from __future__ import annotations

import fcntl
import importlib
import os
import threading
import time

from numba import types

from nnlite.ops import jit


def _probe_module(tmp_path, monkeypatch, name: str):
    (tmp_path / f"{name}.py").write_text("from nnlite.ops.jit import kernel\n\n\n@kernel\ndef twice(x):\n"
                                         "    return x * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)


def test_lock_file_lies_beside_the_functions_cache_index(tmp_path, monkeypatch):
    twice = _probe_module(tmp_path, monkeypatch, "jitlock_probe_path").twice
    path = jit.lock_path(twice)
    assert path.endswith(".nbi.lock") and "twice" in os.path.basename(path)
    assert twice(4) == 8
    assert os.path.exists(path) and os.path.exists(path[:-len(".lock")])


def test_compilation_waits_while_another_holds_the_functions_lock(tmp_path, monkeypatch):
    twice = _probe_module(tmp_path, monkeypatch, "jitlock_probe_wait").twice
    fd = os.open(jit.lock_path(twice), os.O_RDWR | os.O_CREAT)   # another open file: as another process's
    fcntl.flock(fd, fcntl.LOCK_EX)
    worker = threading.Thread(target=twice.compile, args=((types.int64,),))
    try:
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and not twice.overloads   # waiting, nothing compiled
    finally:
        os.close(fd)
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert twice(21) == 42


def test_a_lock_file_that_cannot_be_made_is_no_lock(tmp_path):
    with jit._FileLock(str(tmp_path / "missing" / "f.nbi.lock")) as held:
        assert held.fd == -1
