"""TensorFlow.js weights manifests: a JSON list of groups, each naming binary shard files.

Layout (the format tfjs writes and face-api.js ships)::

    [ {"paths": ["model.bin", ...],                  # shards, relative to the manifest
       "weights": [ {"name": "conv0/filters", "shape": [3, 3, 3, 32], "dtype": "float32",
                     "quantization": {"dtype": "uint8", "scale": 0.01, "min": -1.2}}, ... ]}, ... ]

Rules implemented here:
- The shards of one group are concatenated; the group's entries lie one after another in that byte
  stream, in manifest order, with no padding. Groups are independent streams.
- An entry's byte length is ``prod(shape) * itemsize`` where the itemsize is that of the *stored* dtype:
  the quantization dtype when present (uint8: 1, uint16: 2, float16: 2), else the entry dtype
  (float32 / int32: 4, bool: 1).
- Dequantization: uint8/uint16 -> ``min + scale * q`` (computed in float64, then cast); float16 is read as
  IEEE half and widened. Values are little-endian, as tfjs writes them.
- float32 entries come back as float32 arrays; int32 entries (e.g. constants in the SSD manifest) as
  int32 arrays (quantized ones rounded); bool as bool. The caller can simply ignore what it does not use.
- The summed entry lengths must equal the summed shard sizes exactly, otherwise the manifest and shards do
  not belong together (or a shard is truncated): a WeightsError names the files and both byte counts.
  Sizes are compared before a shard is read, so a manifest cannot ask for more memory than its shards hold.
- Shard paths are plain relative names inside the manifest's folder: absolute paths, ``..`` and links
  that lead out of the folder are refused before anything is opened.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..limits import MAX_RANK
from ._common import read_bytes, require_nonempty

# Stored item sizes and their little-endian NumPy dtypes.
_PLAIN_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "|b1"}
_QUANT_DTYPES = {"uint8": "|u1", "uint16": "<u2", "float16": "<f2"}


def load_tfjs(manifest_path: str | Path) -> dict[str, np.ndarray]:
    """Read a tfjs weights manifest and its shards into ``{name: array}`` (shapes from the manifest)."""
    manifest_path = Path(manifest_path)
    groups = _read_manifest(manifest_path)
    weights: dict[str, np.ndarray] = {}
    for index, group in enumerate(groups):
        stream, shard_names = _read_group_shards(manifest_path, group, index)
        weights.update(_decode_group(manifest_path, group["weights"], stream, shard_names))
    return weights


def _read_manifest(path: Path) -> list[dict]:
    """Parse and structurally check the manifest JSON; every flaw is a WeightsError naming the file."""
    raw = read_bytes(path, what="tfjs weights manifest")
    require_nonempty(raw, path, what="tfjs weights manifest")
    try:
        groups = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, huge ints
        raise WeightsError(f"tfjs weights manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(groups, list) or not groups:
        raise WeightsError(f"tfjs weights manifest {path}: expected a non-empty JSON list of groups, "
                           f"found {type(groups).__name__}")
    for index, group in enumerate(groups):
        _check_group(path, group, index)
    names = [name for group in groups for name in group["paths"]]
    if len(set(names)) != len(names):  # one small shard listed many times would multiply its size
        raise WeightsError(f"tfjs weights manifest {path}: a shard is listed more than once "
                           f"({sorted({n for n in names if names.count(n) > 1})[:3]})")
    return groups


def _check_group(path: Path, group, index: int) -> None:
    where = f"tfjs weights manifest {path}, group {index}"
    if not isinstance(group, dict):
        raise WeightsError(f"{where}: expected an object, found {type(group).__name__}")
    paths, entries = group.get("paths"), group.get("weights")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise WeightsError(f"{where}: expected 'paths' = non-empty list of shard file names, found {paths!r}")
    if not isinstance(entries, list):
        raise WeightsError(f"{where}: expected 'weights' = list of entries, found {type(entries).__name__}")
    for entry in entries:
        _check_entry(where, entry)


def _check_entry(where: str, entry) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise WeightsError(f"{where}: expected weight entries with a 'name', found {entry!r:.120}")
    name, shape = entry["name"], entry.get("shape")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(type(d) is int and 0 <= d < 1 << 62 for d in shape)):
        raise WeightsError(f"{where}, weight {name!r}: expected 'shape' = list of at most {MAX_RANK} "
                           f"non-negative ints, found {shape!r:.120}")
    if entry.get("dtype") not in _PLAIN_DTYPES:
        raise WeightsError(f"{where}, weight {name!r}: unsupported dtype {entry.get('dtype')!r} "
                           f"(expected one of {sorted(_PLAIN_DTYPES)})")
    quant = entry.get("quantization")
    if quant is None:
        return
    if not isinstance(quant, dict) or quant.get("dtype") not in _QUANT_DTYPES:
        raise WeightsError(f"{where}, weight {name!r}: unsupported quantization {quant!r} "
                           f"(expected dtype one of {sorted(_QUANT_DTYPES)})")
    if quant["dtype"] != "float16":
        for key in ("scale", "min"):
            if type(quant.get(key)) not in (int, float) or not math.isfinite(quant[key]):
                raise WeightsError(f"{where}, weight {name!r}: quantization needs a numeric {key!r}, "
                                   f"found {quant.get(key)!r}")


def _read_group_shards(manifest_path: Path, group: dict, index: int) -> tuple[bytes, list[str]]:
    """Concatenate the group's shard files once their total size matches the manifest's entries."""
    shards = [_shard_path(manifest_path, name, index) for name in group["paths"]]
    sizes = []
    for shard in shards:
        try:
            sizes.append(shard.stat().st_size)
        except OSError as exc:
            raise WeightsError(f"cannot read tfjs shard {shard} (listed in {manifest_path}, group {index}): "
                               f"{exc.strerror or exc}") from None
    expected, found = sum(_entry_nbytes(entry) for entry in group["weights"]), sum(sizes)
    if expected != found:
        listing = ", ".join(f"{n}: {size} bytes" for n, size in zip(group["paths"], sizes))
        problem = "truncated or missing data" if found < expected else "extra data"
        raise WeightsError(f"tfjs weights manifest {manifest_path}, group {index}: entries need {expected} "
                           f"bytes but the shards hold {found} ({listing}) - {problem}; "
                           f"manifest and shards do not match")
    stream = b"".join(read_bytes(shard, what="tfjs shard") for shard in shards)
    if len(stream) != expected:  # a shard changed while being read
        raise WeightsError(f"tfjs weights manifest {manifest_path}, group {index}: shards changed while "
                           f"being read ({len(stream)} bytes, expected {expected})")
    return stream, list(group["paths"])


def _shard_path(manifest_path: Path, name: str, index: int) -> Path:
    """``name`` inside the manifest's folder; anything that leads out of it is refused unopened."""
    where = f"tfjs weights manifest {manifest_path}, group {index}"
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":") \
            or "\0" in name:
        raise WeightsError(f"{where}: shard path {name!r} must be a relative name inside the manifest's folder")
    folder = manifest_path.parent
    shard = folder / name
    real_folder, real_shard = os.path.realpath(folder), os.path.realpath(shard)
    if os.path.commonpath([real_folder, real_shard]) != real_folder:
        raise WeightsError(f"{where}: shard {name!r} leads out of the manifest's folder (to {real_shard})")
    if not shard.is_file():
        raise WeightsError(f"tfjs shard {shard} (listed in {manifest_path}, group {index}) not found")
    return shard


def _stored_dtype(entry: dict) -> np.dtype:
    quant = entry.get("quantization")
    return np.dtype(_QUANT_DTYPES[quant["dtype"]] if quant else _PLAIN_DTYPES[entry["dtype"]])


def _entry_nbytes(entry: dict) -> int:
    return math.prod(entry["shape"]) * _stored_dtype(entry).itemsize


def _decode_group(manifest_path: Path, entries: list[dict], stream: bytes,
                  shard_names: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        count = math.prod(entry["shape"])
        stored = np.frombuffer(stream, dtype=_stored_dtype(entry), count=count, offset=offset)
        offset += count * stored.itemsize
        name = entry["name"]
        if name in out:
            raise WeightsError(f"tfjs weights manifest {manifest_path}: weight {name!r} listed twice "
                               f"(shards {shard_names})")
        out[name] = _dequantize(stored, entry).reshape(entry["shape"])
    return out


def _dequantize(stored: np.ndarray, entry: dict) -> np.ndarray:
    """Turn the stored values into the entry's dtype (value = min + scale * q for integer quantization)."""
    quant, target = entry.get("quantization"), np.dtype(_PLAIN_DTYPES[entry["dtype"]])
    if quant is None:
        return stored.astype(target)  # a copy: the result does not pin the whole shard buffer
    if quant["dtype"] == "float16":
        values = stored.astype(np.float64)
    elif stored.dtype.kind == "u" and stored.size > 1 << 8 * stored.dtype.itemsize:  # each code's value once
        return _dequantize(np.arange(1 << 8 * stored.dtype.itemsize, dtype=stored.dtype), entry)[stored]
    else:
        values = float(quant["min"]) + float(quant["scale"]) * stored.astype(np.float64)
    if target.kind == "i":
        return np.rint(values).astype(target)
    return values.astype(target)
