"""Where the bundled ImageNet weights live, and the error when they do not."""

from __future__ import annotations

from pathlib import Path

from ...errors import WeightsMissingError
from ...paths import missing_weights_fix, weights_dir

CONVERT_TOOL = "python tools/convert_imagenet_weights.py"


def bundled_path(filename: str) -> Path:
    """``<weights root>/imagenet/<filename>``; the file may be absent (see :func:`require`)."""
    return weights_dir() / "imagenet" / filename


def require(filename: str) -> Path:
    """The bundled weights file, or a WeightsMissingError saying how to re-create it."""
    path = bundled_path(filename)
    if not path.is_file():
        raise WeightsMissingError(f"bundled weights {path} are missing; "
                                  + missing_weights_fix("imagenet", f"{CONVERT_TOOL} (reads ../shared/weights-src)"))
    return path
