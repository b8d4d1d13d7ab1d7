"""nnlite.ops.memory: the glibc malloc tuning is opt-out, skipped when the user tunes malloc, and harmless."""

from __future__ import annotations

import subprocess
import sys

from nnlite.ops import memory

PROBE = "from nnlite.ops import memory; print(memory.tune_malloc())"


def _probe(env_extra: dict) -> str:
    import os
    env = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") and k.endswith("_"))}
    env.update(env_extra)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_opt_out_and_user_settings_are_respected():
    assert _probe({"NNLITE_MALLOC_TUNING": "0"}) == "False"
    assert _probe({"MALLOC_ARENA_MAX_": "2"}) == "False"


def test_tuning_applies_on_glibc():
    import platform
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert _probe({}) == "True"
    memory.tune_once()
    memory.tune_once()                    # idempotent: the second call does nothing
    assert memory._done[0]
