"""Record nnlite/ops/precompile_plan.json: the compilations each model's first run starts, in order.

    python tools/precompile_plan.py mobilenet_v2 [more model names] [faces:ssd:full:faceapi]

Each model (or the face pipeline, ``faces:DETECTOR:LANDMARKS:RECOGNIZER``) runs once in a child process on
a new, empty Numba cache, with a listener on Numba's compile events; the functions a first run compiles
itself (not those compiled inside another's compilation) are kept with their argument types, as
:mod:`nnlite.ops.precompile` reads them. Each name is recorded twice: with the default engine ("simd" on the
machines it is recorded on) under its name, and with ``NNLITE_GEMM=blas`` under ``blas:NAME`` (what a tiered
first run and a CPU without AVX2 compile). The names given replace their entries in the file; the others stay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "nnlite" / "data" / "samples" / "chelsea.png"
FACES = REPO / "nnlite" / "data" / "samples" / "faces.jpg"


def _child(name: str) -> None:
    from numba.core import event

    import nnlite
    from nnlite.ops import precompile
    depth, rows = [0], []

    class Listener(event.Listener):
        def on_start(self, ev):
            depth[0] += 1

        def on_end(self, ev):
            depth[0] -= 1
            fn = getattr(ev.data.get("dispatcher"), "py_func", None)
            module = getattr(fn, "__module__", "")
            text = precompile.encode(ev.data.get("args", ()))
            if not depth[0] and module.startswith("nnlite.") and text is not None and "<" not in fn.__qualname__:
                rows.append([module, fn.__qualname__, text])

    event.register("numba:compile", Listener())
    if name.startswith("faces:"):   # the face pipeline with these options (nnlite.vision.faces names its plan so)
        from nnlite.vision.faces import FacePipeline
        detector, landmarks, recognizer = name.split(":")[1:]
        FacePipeline(detector=detector, landmarks=landmarks, recognizer=recognizer).detect(str(FACES))
    else:
        nnlite.load(name).classify(str(SAMPLE))
    print(json.dumps(rows))


def record(name: str, engine: str | None = None) -> list:
    with tempfile.TemporaryDirectory(prefix="nnlite-plan-") as empty:
        env = dict(os.environ, NUMBA_CACHE_DIR=empty, NNLITE_PRECOMPILE="0", NNLITE_QUIET_COMPILE="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        env.pop("NNLITE_GEMM", None)
        if engine is not None:
            env["NNLITE_GEMM"] = engine
        done = subprocess.run([sys.executable, __file__, "--child", name], env=env, capture_output=True,
                              text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(names: list[str]) -> None:
    from nnlite.ops.precompile import PLAN_FILE, plan
    table = dict(plan())
    for name in names:
        for key, engine in ((name, None), (f"blas:{name}", "blas")):
            table[key] = record(name, engine)
            print(f"{key}: {len(table[key])} compilations")
    lines = [f"{json.dumps(name)}: [\n" + ",\n".join(json.dumps(entry) for entry in table[name]) + "\n]"
             for name in sorted(table)]
    PLAN_FILE.write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2])
    else:
        main(sys.argv[1:])
