"""NumPy ``.npz`` archives (``np.savez``): ``{name: array}``, read with pickling disabled."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ._common import read_bytes, require_nonempty


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into memory, in archive order.

    ``allow_pickle=False``: an object array inside the archive (which would need unpickling) is refused
    with a WeightsError rather than loaded.
    """
    path = Path(path)
    require_nonempty(read_bytes(path, what="npz weights file", limit=4), path, what="npz weights file")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise WeightsError(f"{path}: expected an .npz archive of named arrays, found a single .npy array")
        with archive:
            return {name: archive[name] for name in archive.files}
    except WeightsError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        # np.load raises ValueError for non-NumPy data, and for object arrays when pickling is off
        raise WeightsError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None
