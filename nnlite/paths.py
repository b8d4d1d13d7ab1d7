"""Where nnlite finds its bundled weights and keeps its caches.

- Bundled weights: ``$NNLITE_WEIGHTS`` or the package's own ``nnlite/weights/`` folder (installed with the
  wheel, so ``pip install .`` and ``pip install nnlite-*.whl`` run without a checkout).
- Downloaded weights (``nnlite fetch``): ``$NNLITE_HOME/models`` (default ``~/.cache/nnlite/models``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
BUNDLED_WEIGHTS_DIR = PACKAGE_DIR / "weights"


def weights_dir() -> Path:
    """Folder of the weights bundled with nnlite."""
    override = os.environ.get("NNLITE_WEIGHTS")
    return Path(override) if override else BUNDLED_WEIGHTS_DIR


def in_checkout() -> bool:
    """True when nnlite runs from a source checkout (editable install or PYTHONPATH), not an installed wheel."""
    return (REPO_DIR / "pyproject.toml").is_file() and (REPO_DIR / "tools").is_dir()


def missing_weights_fix(subdir: str, rebuild_command: str) -> str:
    """The fix for absent bundled weights that applies to how this nnlite was set up.

    ``subdir`` is the folder under the weights root (``imagenet``, ``faceapi``); ``rebuild_command`` the tool
    that re-creates it in a checkout.
    """
    override = os.environ.get("NNLITE_WEIGHTS")
    if override:
        return (f"$NNLITE_WEIGHTS is set to {override}, which lacks {subdir}/: copy nnlite/weights/{subdir} "
                f"there, or unset NNLITE_WEIGHTS to use the copy bundled with nnlite ({BUNDLED_WEIGHTS_DIR})")
    if in_checkout():
        return (f"this is a source checkout ({REPO_DIR}): restore the files with "
                f"`git checkout -- nnlite/weights/{subdir}`, or re-create them with `{rebuild_command}`")
    return ("this installed nnlite lacks its bundled weights (a wheel built without package data?): "
            "reinstall it with `pip install --force-reinstall nnlite-*.whl` (or `pip install .` from a checkout), "
            "or set NNLITE_WEIGHTS to a folder holding imagenet/ and faceapi/")


def home_dir() -> Path:
    """Per-user folder for downloaded weights and other caches."""
    return Path(os.environ.get("NNLITE_HOME", Path.home() / ".cache" / "nnlite"))


def models_cache_dir() -> Path:
    """Where ``nnlite fetch`` stores downloaded model files."""
    return home_dir() / "models"


def data_dir() -> Path:
    """Data files shipped inside the package (labels, sample images)."""
    return PACKAGE_DIR / "data"
