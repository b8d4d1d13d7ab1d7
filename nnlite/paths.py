"""Where nnlite finds its bundled weights and keeps its caches.

- Bundled weights: ``$NNLITE_WEIGHTS`` or the repository's ``weights/`` folder next to the package.
- Downloaded weights (``nnlite fetch``): ``$NNLITE_HOME/models`` (default ``~/.cache/nnlite/models``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def weights_dir() -> Path:
    """Folder of the weights bundled with nnlite."""
    return Path(os.environ.get("NNLITE_WEIGHTS", REPO_DIR / "weights"))


def home_dir() -> Path:
    """Per-user folder for downloaded weights and other caches."""
    return Path(os.environ.get("NNLITE_HOME", Path.home() / ".cache" / "nnlite"))


def models_cache_dir() -> Path:
    """Where ``nnlite fetch`` stores downloaded model files."""
    return home_dir() / "models"


def data_dir() -> Path:
    """Data files shipped inside the package (labels, sample images)."""
    return PACKAGE_DIR / "data"
