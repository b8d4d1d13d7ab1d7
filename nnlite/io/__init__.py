"""Weight-file readers: each turns one on-disk format into plain ``{name: np.ndarray}`` data.

Every malformed input raises :class:`nnlite.errors.WeightsError` naming the file and what was expected.
``load_weights`` picks the reader from the file's first bytes (its magic number), falling back on the
extension only to tell a tfjs manifest (JSON) apart.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import WeightsError
from ._common import read_bytes, require_nonempty

__all__ = ["load_weights", "load_tfjs", "load_torch_pth", "load_pickled_arrays", "load_keras_h5", "load_npz",
           "KerasWeights", "LayerNotFoundError"]

# The readers are imported on first use (PEP 562): loading a tfjs or .pth model then never imports h5py
# (about 35 ms and several MB of a cold start).
_LAZY = {"load_pickled_arrays": "_safe_pickle", "KerasWeights": "keras_h5", "LayerNotFoundError": "keras_h5",
         "load_keras_h5": "keras_h5", "load_npz": "npz", "load_tfjs": "tfjs", "load_torch_pth": "torch_pth"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

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
        return __getattr__("load_keras_h5")(path)
    if head.startswith(b"PK\x03\x04"):
        return __getattr__("load_torch_pth" if _zip_has_data_pkl(path) else "load_npz")(path)
    if head.startswith(_LEGACY_TORCH_HEAD):
        return __getattr__("load_torch_pth")(path)
    if head.startswith(b"\x80"):
        return __getattr__("load_pickled_arrays")(path)
    if head.lstrip().startswith(b"[") or path.suffix == ".json":
        return __getattr__("load_tfjs")(path)
    raise WeightsError(f"{path}: unknown weights format (expected HDF5, zip/npz, PyTorch, pickle or a tfjs "
                       f"JSON manifest; first bytes {head[:8]!r})")


def _zip_has_data_pkl(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/data.pkl") for n in archive.namelist())
    except Exception:  # BadZipFile, NotImplementedError, ValueError ...: load_npz reports the damage
        return False
