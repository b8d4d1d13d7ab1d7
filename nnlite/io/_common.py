"""Helpers shared by the weight loaders: read a file whole, or fail with a WeightsError naming it."""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightsError


def read_bytes(path: str | Path, *, what: str = "weights file", limit: int | None = None) -> bytes:
    """Return the content of ``path`` (its first ``limit`` bytes if given); a missing or unreadable file is
    a WeightsError naming it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return handle.read() if limit is None else handle.read(limit)
    except FileNotFoundError:
        raise WeightsError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise WeightsError(f"{what} is a directory, expected a file: {path}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def require_nonempty(data: bytes, path: str | Path, *, what: str = "weights file") -> None:
    """An empty file is never a valid weights file: say so instead of failing later on a parse."""
    if not data:
        raise WeightsError(f"{what} {path} is empty (0 bytes)")
