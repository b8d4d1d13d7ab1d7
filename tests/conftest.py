"""Fixtures shared by the unit tests: where ../shared lives."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_path() -> Path:
    return Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (test images, expected outputs, weight sources)."""
    path = shared_path()
    if not (path / "README.md").exists():
        pytest.fail(f"../shared not found at {path} (set NNLITE_SHARED); these tests need its data")
    return path
