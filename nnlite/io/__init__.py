"""Weight-file readers: each turns one on-disk format into plain ``{name: np.ndarray}`` data.

Every malformed input raises :class:`nnlite.errors.WeightsError` naming the file and what was expected.
``load_weights`` picks the reader from the file's first bytes (its magic number), falling back on the
extension only to tell a tfjs manifest (JSON) apart.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightsError
from ._common import read_bytes, require_nonempty
from ._safe_pickle import load_pickled_arrays
from .keras_h5 import KerasWeights, LayerNotFoundError, load_keras_h5
from .npz import load_npz
from .tfjs import load_tfjs
from .torch_pth import load_torch_pth

__all__ = ["load_weights", "load_tfjs", "load_torch_pth", "load_pickled_arrays", "load_keras_h5", "load_npz",
           "KerasWeights", "LayerNotFoundError"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_LEGACY_TORCH_HEAD = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickle of torch's magic number


def load_weights(path: str | Path):
    """Read any supported weights file, choosing the format from its content.

    HDF5 -> :func:`load_keras_h5` (a :class:`KerasWeights`); zip holding ``*/data.pkl`` -> :func:`load_torch_pth`;
    other zip -> :func:`load_npz`; a pickle starting with torch's legacy magic -> :func:`load_torch_pth`; any
    other pickle -> :func:`load_pickled_arrays`; JSON (``[`` first) -> :func:`load_tfjs`.
    """
    path = Path(path)
    head = read_bytes(path, what="weights file", limit=64)
    require_nonempty(head, path)
    if head.startswith(_HDF5_MAGIC):
        return load_keras_h5(path)
    if head.startswith(b"PK\x03\x04"):
        return load_torch_pth(path) if _zip_has_data_pkl(path) else load_npz(path)
    if head.startswith(_LEGACY_TORCH_HEAD):
        return load_torch_pth(path)
    if head.startswith(b"\x80"):
        return load_pickled_arrays(path)
    if head.lstrip().startswith(b"[") or path.suffix == ".json":
        return load_tfjs(path)
    raise WeightsError(f"{path}: unknown weights format (expected HDF5, zip/npz, PyTorch, pickle or a tfjs "
                       f"JSON manifest; first bytes {head[:8]!r})")


def _zip_has_data_pkl(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/data.pkl") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False  # load_npz will report the damage
