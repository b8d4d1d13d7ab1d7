"""Fixtures shared by the unit tests: where ../shared lives, and the "simd" conv engine."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The CLI commands the tests run (in this process and in children) use the engine they would use on a warm
# cache, whatever this run's cache holds: a tiered first run (nnlite.ops.precompile) would switch them to the
# "blas" engine and leave a background compile behind. tests/test_precompile.py tests tiering itself.
os.environ["NNLITE_TIERED"] = "0"

# The engine is chosen once per process. The one-image CLI commands choose the "numpy" engine when nothing has run
# yet (nnlite.cli); run in this process, the first such test would leave every later test on it. So this process
# fixes the CPU's engine now, and tests/test_numpy_engine.py runs the commands in children.
from nnlite.ops import engine  # noqa: E402

engine.current()


def shared_path() -> Path:
    return Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (test images, expected outputs, weight sources)."""
    path = shared_path()
    if not (path / "README.md").exists():
        missing_shared(path)
    return path


def missing_shared(path: Path) -> None:
    """Skip (one reason for every test that needs ../shared) on a developer's machine; fail under CI."""
    message = (f"../shared not found at {path}: tests that read face-api.js's photos and expected outputs need "
               f"it (see README, 'Two commands'; or set NNLITE_SHARED)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def direct_gemm(monkeypatch):
    """Every convolution on the direct GEMM (no Winograd F(2x2, 3x3), nnlite.ops.winograd): for the tests of
    the direct tiles' own paths."""
    from nnlite.ops import conv, gemm, winograd
    monkeypatch.setattr(winograd, "enabled", lambda: False)
    gemm.layout.cache_clear()
    conv._layout.cache_clear()
    yield
    gemm.layout.cache_clear()
    conv._layout.cache_clear()


@pytest.fixture
def simd_engine():
    """nnlite's own AVX-512 kernels for the test (the engine a test's bits are compared on)."""
    from nnlite.ops import engine
    with engine.use("simd"):
        yield "simd"
