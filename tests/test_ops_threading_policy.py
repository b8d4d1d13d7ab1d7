"""How nnlite's threads wait between parallel regions, and that no threading choice changes a result bit.

nnlite exports ``OMP_WAIT_POLICY=PASSIVE`` for Numba's OpenMP layer before Numba starts its threads,
unless the environment chose a wait policy; a bad ``NNLITE_NUM_THREADS`` is a ConfigError.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnlite import ops
from nnlite.errors import ConfigError
from nnlite.ops import threads

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_policy(monkeypatch):
    """threads' wait-policy state and environment as in a process where Numba has not started threads."""
    for name in threads.WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_wait", {"set_by_nnlite": False})
    monkeypatch.setattr(threads, "_numba_threads_started", lambda: False)
    return monkeypatch


def test_passive_wait_is_exported_when_the_environment_has_no_policy(fresh_policy):
    threads.apply_wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "GOMP_SPINCOUNT" not in os.environ
    assert threads.wait_policy() == "passive"


@pytest.mark.parametrize("name,value", [("OMP_WAIT_POLICY", "active"), ("GOMP_SPINCOUNT", "100000")])
def test_a_wait_policy_from_the_environment_is_kept(fresh_policy, name, value):
    fresh_policy.setenv(name, value)
    threads.apply_wait_policy()
    assert dict((k, os.environ[k]) for k in threads.WAIT_VARIABLES if k in os.environ) == {name: value}
    assert threads.wait_policy() == f"environment: {name}={value}"


def test_no_policy_is_exported_once_numba_threads_run(fresh_policy):
    fresh_policy.setattr(threads, "_numba_threads_started", lambda: True)
    threads.apply_wait_policy()
    assert not any(k in os.environ for k in threads.WAIT_VARIABLES)
    assert threads.wait_policy() == "libgomp default"


def test_numba_threads_started_reads_numba_state():
    ops.relu(np.ones(4, np.float32))
    import numba
    numba.get_num_threads()  # starts Numba's threads if nothing did yet
    assert threads._numba_threads_started() is True


@pytest.mark.parametrize("raw", ["zero", "0", "-2", "1.5"])
def test_bad_thread_count_is_a_config_error(monkeypatch, raw):
    monkeypatch.setenv("NNLITE_NUM_THREADS", raw)
    with pytest.raises(ConfigError, match="NNLITE_NUM_THREADS"):
        threads.requested_threads()


WORKLOAD = '''
import os, sys
import numpy as np
from nnlite import ops
from nnlite.ops import threads
r = lambda s, *shape: np.random.default_rng(s).standard_normal(shape).astype(np.float32)
x = r(0, 1, 56, 56, 32)
outputs = {
    "conv": ops.conv2d(x, r(1, 3, 3, 32, 48), r(2, 48), padding="same", activation="relu"),
    "conv_1x1": ops.conv2d(x, r(3, 1, 1, 32, 64), r(4, 64), activation="relu6"),
    "depthwise": ops.depthwise_conv2d(x, r(5, 3, 3, 32, 1), r(6, 32), stride=2, padding="same"),
    "add": ops.add(x, r(7, 1, 56, 56, 32), activation="relu"),
    "max_pool": ops.max_pool2d(x, pool_size=3, stride=2, padding="same"),
}
import numba
info = [ops.get_num_threads(), numba.threading_layer(), threads.wait_policy()]
'''


def _run_workload(tmp_path: Path, tag: str, env: dict) -> tuple[dict, list]:
    out = tmp_path / f"{tag}.npz"
    script = WORKLOAD + f"\nnp.savez({str(out)!r}, info=np.array(info), **outputs)\n"
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    for name in (*threads.WAIT_VARIABLES, "NUMBA_NUM_THREADS"):  # this process exported its own
        if name not in env:
            full.pop(name, None)
    done = subprocess.run([sys.executable, "-c", script], env=full, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = dict(np.load(out))
    return {k: v for k, v in got.items() if k != "info"}, list(got["info"])


def test_results_are_bit_identical_across_thread_counts_and_wait_policies(tmp_path):
    one, info = _run_workload(tmp_path, "one", {"NNLITE_NUM_THREADS": "1"})
    assert info[0] == "1"
    runs = {"passive": {"NNLITE_NUM_THREADS": "2"},
            "spinning": {"NNLITE_NUM_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"},
            "short_spin": {"NNLITE_NUM_THREADS": "2", "GOMP_SPINCOUNT": "1000"}}
    for tag, env in runs.items():
        got, info = _run_workload(tmp_path, tag, env)
        assert info[0] == env["NNLITE_NUM_THREADS"], (tag, info)
        expected_policy = "passive" if tag == "passive" else "environment: "
        assert info[2].startswith(expected_policy), (tag, info)
        for name, want in one.items():
            assert np.array_equal(got[name], want), (tag, name)
