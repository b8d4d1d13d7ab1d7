"""Fixtures for parity tests: TensorFlow (required, never skipped) and a per-run export cache.

TensorFlow SavedModels built from the same weights are cached under ``$NNLITE_PARITY_CACHE``
(default ``<repo>/.cache/parity``) so one test run exports each reference once. The cache is
git-ignored; CI starts from a clean clone, so nothing is reused across commits.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def parity_cache() -> Path:
    path = Path(os.environ.get("NNLITE_PARITY_CACHE", REPO / ".cache" / "parity"))
    path.mkdir(parents=True, exist_ok=True)
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
        pytest.fail(f"../shared not found at {path} (set NNLITE_SHARED); parity tests need its data")
    return path
