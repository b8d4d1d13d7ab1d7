"""nnlite's dispatchers hold a file lock per function while they look up and compile a new signature."""

from __future__ import annotations

import fcntl
import importlib
import os
import threading
import time

import numpy as np
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


_WARM_PROBE = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import jit_warm_probe as m
x = np.arange(6, dtype=np.float32)
print(m.total(x), sum(m.total.stats.cache_hits.values()), sum(m.total.stats.cache_misses.values()))
print("numba.np.polynomial.polynomial_core" in sys.modules)
import numba
later = numba.njit(lambda a: np.cumsum(a)[-1])   # a compilation after the registry-free load
print(later(x))
"""


def test_a_warm_process_loads_kernels_without_numbas_registries_and_can_still_compile(tmp_path):
    import subprocess
    import sys
    (tmp_path / "jit_warm_probe.py").write_text("import numpy as np\nfrom nnlite.ops.jit import kernel\n\n\n"
                                                "@kernel\ndef total(x):\n    return np.sum(x * x)\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", _WARM_PROBE, str(tmp_path)], env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    cold, warm = (run.stdout.split("\n") for run in runs)
    assert cold[0] == "55.0 0 1" and warm[0] == "55.0 1 0"   # 0+1+4+9+16+25; compiled, then loaded
    assert cold[1] == "True"     # a compilation installs every registry ...
    assert warm[1] == "False"    # ... a load does not
    assert warm[2] == "15.0"


_STAMP_PROBE = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import stamp_probe_caller as m
print(m.scaled(np.float32(5)), sum(m.scaled.stats.cache_hits.values()), sum(m.scaled.stats.cache_misses.values()))
"""


def test_a_kernel_compiles_again_when_a_file_it_may_have_compiled_in_changes(tmp_path):
    """Numba keys a function's cache on its own file: a kernel calling a helper of another file kept the old
    helper's code after an edit of that file. nnlite's stamp covers the folder (and nnlite/ops)."""
    import subprocess
    import sys
    callee = tmp_path / "stamp_probe_callee.py"
    callee.write_text("from nnlite.ops.jit import helper\n\n\n@helper\ndef times(x):\n    return x * 2\n")
    (tmp_path / "stamp_probe_caller.py").write_text(
        "from nnlite.ops.jit import kernel\nfrom stamp_probe_callee import times\n\n\n"
        "@kernel\ndef scaled(x):\n    return times(x) + 1\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NNLITE_PRECOMPILE="0")

    def run():
        done = subprocess.run([sys.executable, "-c", _STAMP_PROBE, str(tmp_path)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.split()

    assert run() == ["11.0", "0", "1"]   # compiled
    assert run() == ["11.0", "1", "0"]   # loaded
    callee.write_text(callee.read_text().replace("x * 2", "x * 30"))  # the caller's own file is unchanged
    assert run() == ["151.0", "0", "1"]  # compiled again, with the new helper
    assert run() == ["151.0", "1", "0"]


def test_the_sources_stamp_follows_every_python_file_of_the_folder(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = jit.sources_stamp.__wrapped__(str(tmp_path))
    assert jit.sources_stamp.__wrapped__(str(tmp_path)) == before
    (tmp_path / "notes.txt").write_text("not Python\n")
    assert jit.sources_stamp.__wrapped__(str(tmp_path)) == before
    (tmp_path / "b.py").write_text("y = 2\n")
    with_b = jit.sources_stamp.__wrapped__(str(tmp_path))
    assert with_b != before
    os.utime(tmp_path / "a.py", ns=(0, 0))  # the same size, another time
    assert jit.sources_stamp.__wrapped__(str(tmp_path)) not in (before, with_b)


def _wrapper_attributes(dispatcher, sig) -> set[str]:
    dispatcher.compile(sig)
    cres = dispatcher.overloads[tuple(sig)]
    fn = cres.library.get_function(cres.fndesc.llvm_cpython_wrapper_name)
    return {word for a in fn.attributes for word in a.decode().split()}


def test_python_wrappers_of_nnlite_functions_alone_are_compiled_unoptimised():
    from numba import njit

    from nnlite.ops import tiles
    ours = njit(nogil=True)(tiles.act_block.py_func)       # uncached: its module is still nnlite.ops.tiles
    sig = (types.float32[::1], *[types.int64] * 6, types.float32)
    assert {"optnone", "noinline"} <= _wrapper_attributes(ours, sig)

    def scaled(x, k):
        return x * k
    theirs = njit(scaled)                                     # anyone else's Numba code: as Numba compiles it
    assert "optnone" not in _wrapper_attributes(theirs, (types.float64, types.float64))
    assert theirs(1.5, 2.0) == 3.0

    y = np.array([-1.0, 2.0, -3.0, 4.0], np.float32)
    ours(y, 2, 0, 2, 0, 2, 1, np.float32(0))               # relu on a 2x2 block: the wrapper still unboxes right
    assert y.tolist() == [0.0, 2.0, 0.0, 4.0]
