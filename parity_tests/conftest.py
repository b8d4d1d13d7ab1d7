"""Fixtures for parity tests: TensorFlow (required, never skipped) and a per-run export cache.

TensorFlow SavedModels built from the same weights are cached under ``$NNLITE_PARITY_CACHE``
(default ``<repo>/.cache/parity``) so one test run exports each reference once. The default cache is
removed when the run that made it ends (``NNLITE_KEEP_PARITY_CACHE=1`` keeps it, for re-running parity tests
quickly; a cache named by ``NNLITE_PARITY_CACHE`` is always kept). It is git-ignored; CI starts clean, so
nothing is reused.
"""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


_CREATED: list[Path] = []  # the default cache, when this run made it (the one it removes at the end)


def parity_cache() -> Path:
    path = Path(os.environ.get("NNLITE_PARITY_CACHE", REPO / ".cache" / "parity"))
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        _CREATED.append(path)
    return path


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, or a loud failure: a parity test must never pass by being skipped."""
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf_module
    except ImportError as exc:  # pragma: no cover - exercised only on a broken install
        pytest.fail(f"TensorFlow is required for parity tests (pip install -e '.[test]'): {exc}")
    return tf_module


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return parity_cache()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared"))
    if not (path / "README.md").exists():
        from tests.conftest import missing_shared
        missing_shared(path)
    return path


def pytest_sessionfinish(session, exitstatus):
    """Remove the default export cache (about 2.4 GB) at the end of the run that made it, unless
    NNLITE_KEEP_PARITY_CACHE=1 or NNLITE_PARITY_CACHE names a cache of one's own. A run that found it there (a
    second pytest in the same checkout, even ``--collect-only``) leaves it to the run using it: removed under
    that run, it failed a reference export halfway."""
    if os.environ.get("NNLITE_KEEP_PARITY_CACHE", "") not in ("", "0") or os.environ.get("NNLITE_PARITY_CACHE"):
        return
    default = REPO / ".cache" / "parity"
    if default in _CREATED:
        shutil.rmtree(default, ignore_errors=True)
