"""Keras HDF5 weight files (read with h5py), in the three layouts Keras has written.

1. **Legacy weights-only** (the published Keras-2 pretrained files, ``model.save_weights("x.h5")`` in Keras 2):
   the root has a ``layer_names`` attribute; each layer is a group with a ``weight_names`` attribute
   (``conv1/kernel:0`` in Keras 2, ``conv1/kernel`` in Keras 3's legacy writer), and each weight name is a
   dataset path inside that group.
2. **Legacy full model** (``model.save("x.h5")``): the same, under the group ``model_weights``.
3. **Keras 3** ``.weights.h5``: ``layers/<storage name>/vars/0..n``; the storage name is Keras's snake-case class
   name (``conv2d_3``), the real layer name is the ``name`` attribute of ``vars`` when present (Keras >= 3.x
   writes it). Nested models appear as ``layers/functional/layers/...`` (older Keras 3:
   ``_layer_checkpoint_dependencies``); every group that holds a ``vars`` group is treated as one layer.

The result is a :class:`KerasWeights`: an ordered mapping ``layer name -> [arrays]`` in the stored order of
each layer's variables (Conv2D: kernel, bias; BatchNormalization: gamma, beta, moving_mean, moving_variance;
SeparableConv2D: depthwise_kernel, pointwise_kernel, bias). Layers without weights are left out. Layer order is
``layer_names`` order for the legacy layouts and h5py's (alphabetical) group order for Keras 3, which records no
layer order. A legacy group holding a nested model (weight names with several owners, ``b_conv/kernel``,
``b_bn/gamma``) is expanded into one entry per inner layer.

Damaged files: a few changed bytes can make the HDF5 library loop forever or crash inside one C call,
which neither a thread nor Ctrl-C can interrupt. So h5py never runs in the calling process: a forked
child (:mod:`._guard`, deadline ``NNLITE_HDF5_TIMEOUT``) walks the file's structure and checks each weight
dataset (plain numeric type, storage actually written, declared size backed by its stored bytes). It
returns where each contiguous dataset's bytes lie, and the parent reads them with plain file reads;
only chunked or compact datasets (which Keras does not write) have their values read by the child.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np

from ..errors import WeightsError
from ..limits import MAX_RANK, check_expand, hdf5_timeout
from ._common import read_bytes, require_nonempty
from ._guard import run_guarded

_CHILD_CONTAINERS = ("layers", "_layer_checkpoint_dependencies")


class LayerNotFoundError(WeightsError, KeyError):
    """A layer name missing from a weights file (also a KeyError, so ``in`` and ``.get`` work)."""

    __str__ = Exception.__str__


class KerasWeights(Mapping):
    """Ordered ``layer name -> list[np.ndarray]`` read from one Keras .h5 file; ``layout`` says which kind."""

    def __init__(self, path: Path, layout: str, layers: dict[str, list[np.ndarray]],
                 names: dict[str, list[str] | None]):
        self.path, self.layout = path, layout
        self._layers, self._names = layers, names

    def __getitem__(self, layer: str) -> list[np.ndarray]:
        try:
            return self._layers[layer]
        except KeyError:
            near = difflib.get_close_matches(str(layer), list(self._layers), n=3)
            hint = f"; closest: {', '.join(near)}" if near else ""
            raise LayerNotFoundError(f"{self.path}: no weights for layer {layer!r} "
                                     f"({len(self._layers)} layers in the file{hint})") from None

    def __contains__(self, layer) -> bool:  # direct: the miss message (with near matches) is not needed here
        return layer in self._layers

    def get(self, layer, default=None):
        return self._layers.get(layer, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def release(self, layer: str) -> None:
        """Drop ``layer``'s arrays (the name stays listed): a loader that has folded them into new arrays
        calls this so the file's copy is freed during loading, not after (ResNet50: 100 MB less peak)."""
        if layer in self._layers:
            self._layers[layer] = []

    def weight_names(self, layer: str) -> list[str] | None:
        """Short variable names (``kernel``, ``moving_mean``) of ``layer``, or None where the file has none
        (Keras 3 ``.weights.h5`` stores variables only by position)."""
        self[layer]  # a missing layer raises LayerNotFoundError
        return self._names[layer]

    def named(self, layer: str) -> dict[str, np.ndarray]:
        """``{short name: array}`` for one layer of a legacy file; WeightsError where names are unknown."""
        names = self.weight_names(layer)
        if names is None:
            raise WeightsError(f"{self.path}: layer {layer!r} has unnamed variables ({self.layout} layout); "
                               f"use the positional list")
        return dict(zip(names, self[layer]))

    def __repr__(self) -> str:
        return f"KerasWeights({str(self.path)!r}, layout={self.layout!r}, {len(self)} layers)"


def load_keras_h5(path: str | Path) -> KerasWeights:
    """Open a Keras .h5 / .weights.h5 file and read every layer's weights into memory."""
    path = Path(path)
    require_nonempty(read_bytes(path, what="Keras weights file", limit=8), path, what="Keras weights file")
    size = path.stat().st_size
    timeout = hdf5_timeout() + size / 50e6  # the child reads chunked data: allow for large files
    layout, refs, names = run_guarded(_describe, path, size, timeout=timeout, error=WeightsError,
                                      what=f"{path}: reading the HDF5 file",
                                      hint=" (NNLITE_HDF5_TIMEOUT sets the limit)")
    try:
        with path.open("rb") as handle:
            layers = {key: [_materialize(handle, ref, path) for ref in items] for key, items in refs.items()}
    except OSError as exc:
        raise WeightsError(f"cannot read Keras weights file {path}: {exc.strerror or exc}") from None
    return KerasWeights(path, layout, layers, names)


def _materialize(handle, ref: tuple, path: Path) -> np.ndarray:
    """A dataset reference from the child -> an array: ``("raw", offset, shape, dtype)`` is read from the
    file here, ``("array", array)`` came with the child's answer."""
    if ref[0] == "array":
        return ref[1]
    _, offset, shape, dtype_str = ref
    dtype = np.dtype(dtype_str)
    array = np.empty(math.prod(shape), dtype)
    handle.seek(offset)
    if handle.readinto(memoryview(array.view(np.uint8))) != array.nbytes:
        raise WeightsError(f"{path}: a dataset at byte {offset} runs past the end of the file")
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(shape)


# ------------------------------------------------------------------ in the child process (h5py)

def _describe(path: Path, size: int):
    """Layout, ``{layer: [dataset refs]}`` and ``{layer: [short names] | None}``; h5py's own errors become
    WeightsErrors naming the file."""
    try:
        with h5py.File(path, "r") as root:
            return _read_layout(path, root, size)
    except WeightsError:
        raise
    except Exception as exc:  # OSError (unreadable, truncated, not HDF5), KeyError, RuntimeError, ValueError ...
        raise WeightsError(f"{path}: not a readable HDF5 weights file ({type(exc).__name__}: {exc})") from None


def _read_layout(path: Path, root: h5py.File, size: int):
    if "layer_names" in root.attrs:
        return ("legacy-weights", *_read_legacy(path, root, size))
    if isinstance(root.get("model_weights"), h5py.Group):
        return ("legacy-model", *_read_legacy(path, root["model_weights"], size))
    if isinstance(root.get("layers"), h5py.Group) or isinstance(root.get("vars"), h5py.Group):
        return ("keras3", *_read_keras3(path, root, size))
    raise WeightsError(f"{path}: HDF5 file is not a Keras weights file (expected a 'layer_names' attribute, "
                       f"a 'model_weights' group or a 'layers' group; found {sorted(root.keys())[:8]})")


# ------------------------------------------------------------------ legacy (Keras 2 style) layouts

def _decode(values) -> list[str]:
    """h5py returns string attributes as bytes or str arrays depending on the writer."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def _short_name(weight_name: str) -> str:
    last = weight_name.rsplit("/", 1)[-1]
    return last[:-2] if last.endswith(":0") else last


def _owner(weight_name: str) -> str | None:
    parts = weight_name.split("/")
    return parts[-2] if len(parts) >= 2 else None


def _read_legacy(path: Path, group: h5py.Group, size: int):
    layers: dict[str, list] = {}
    names: dict[str, list[str] | None] = {}
    for layer in _decode(group.attrs["layer_names"]):
        layer_group = group.get(layer)
        if not isinstance(layer_group, h5py.Group):
            raise WeightsError(f"{path}: layer {layer!r} is listed in layer_names but has no group")
        weight_names = _decode(layer_group.attrs.get("weight_names", []))
        if not weight_names:
            continue
        arrays = [_dataset(path, layer_group, layer, wn, size) for wn in weight_names]
        for key, items in _split_nested(layer, weight_names, arrays).items():
            if key in layers:
                raise WeightsError(f"{path}: layer {key!r} appears twice")
            layers[key] = [a for _, a in items]
            names[key] = [_short_name(wn) for wn, _ in items]
    return layers, names


_FILTERS = {1, 2, 3, 4, 5, 6, 32000}  # deflate, shuffle, fletcher32, szip, nbit, scale-offset, lzf


def _dataset(path: Path, group: h5py.Group, layer: str, weight_name: str, size: int) -> tuple:
    """Check one weight dataset and say where its values are (see :func:`_materialize`)."""
    node = group.get(weight_name)
    where = f"{path}: layer {layer!r}, weight {weight_name!r}"
    if not isinstance(node, h5py.Dataset):
        raise WeightsError(f"{path}: layer {layer!r} lists weight {weight_name!r} but the file has no such dataset")
    shape, dtype = node.shape, node.dtype
    if shape is None or len(shape) > MAX_RANK or dtype.kind not in "biuf" or dtype.itemsize == 0:
        raise WeightsError(f"{where}: unsupported dataset (shape {shape}, type {dtype}); expected numbers")
    nbytes = math.prod(shape) * dtype.itemsize
    offset, stored = node.id.get_offset(), node.id.get_storage_size()
    if offset is not None:  # contiguous, allocated in this file (chunked, compact, external: None)
        if stored != nbytes or offset + nbytes > size:
            raise WeightsError(f"{where}: {dtype} {shape} needs {nbytes:,} bytes, the file stores {stored:,} "
                               f"at byte {offset} of {size:,}")
        return ("raw", offset, shape, dtype.str)
    plist = node.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL or plist.get_external_count():
        raise WeightsError(f"{where}: values stored in other files (virtual or external dataset) are refused")
    if nbytes and not stored:
        raise WeightsError(f"{where}: dataset {dtype} {shape} was never written (no stored bytes)")
    filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
    if not filters <= _FILTERS:
        raise WeightsError(f"{where}: unknown HDF5 filter(s) {sorted(filters - _FILTERS)}")
    check_expand(nbytes, stored, WeightsError, where)  # fill values, compression
    return ("array", np.ascontiguousarray(node[()]).reshape(shape))


def _split_nested(layer: str, weight_names: list[str], arrays: list) -> dict[str, list]:
    """One entry per owner when a group holds a nested model's weights, else one entry for the layer."""
    owners = [_owner(wn) for wn in weight_names]
    if len(set(owners)) <= 1 or None in owners:
        return {layer: list(zip(weight_names, arrays))}
    split: dict[str, list] = {}
    for owner, wn, array in zip(owners, weight_names, arrays):
        split.setdefault(owner, []).append((wn, array))
    shorts = [[_short_name(wn) for wn, _ in items] for items in split.values()]
    if any(len(set(s)) != len(s) for s in shorts):  # e.g. a wrapper with two 'kernel's per owner: keep whole
        return {layer: list(zip(weight_names, arrays))}
    return split


# ------------------------------------------------------------------ Keras 3 .weights.h5

def _read_keras3(path: Path, root: h5py.File, size: int):
    layers: dict[str, list] = {}
    _walk_keras3(path, root, "", layers, size, set(), top=True)
    return layers, {name: None for name in layers}


def _walk_keras3(path: Path, group: h5py.Group, parent: str, layers: dict, size: int, seen: set, *,
                 top: bool = False, depth: int = 0) -> None:
    """Visit a layer group: its own ``vars`` first, then every child layer group (depth first). Hard links
    can make groups a cyclic graph: each group is visited once."""
    if depth > 64:
        raise WeightsError(f"{path}: layer groups nested more than 64 deep at {group.name}")
    if group.id in seen:
        raise WeightsError(f"{path}: group {group.name} is reached twice (linked into itself or shared)")
    seen.add(group.id)
    vars_group = group.get("vars")
    name = parent
    if isinstance(vars_group, h5py.Group):
        stored = _decode(vars_group.attrs["name"]) if "name" in vars_group.attrs else []
        name = stored[0] if stored else group.name.strip("/")
        arrays = _keras3_vars(path, vars_group, name, size)
        if arrays:
            key = name if name not in layers else f"{parent}/{name}"
            if key in layers:
                raise WeightsError(f"{path}: layer {key!r} appears twice")
            layers[key] = arrays
    for child_name, child in group.items():
        if child_name == "vars" or not isinstance(child, h5py.Group) or (top and child_name == "optimizer"):
            continue
        if child_name in _CHILD_CONTAINERS:
            for sub in child.values():
                if isinstance(sub, h5py.Group):
                    _walk_keras3(path, sub, name, layers, size, seen, depth=depth + 1)
        elif not top:  # sub-layers held as attributes (e.g. an attention layer's query_dense)
            _walk_keras3(path, child, name, layers, size, seen, depth=depth + 1)


def _keras3_vars(path: Path, vars_group: h5py.Group, layer: str, size: int) -> list:
    """Datasets ``0..n-1`` in numeric order (h5py lists them as strings: '10' before '2')."""
    keys = list(vars_group.keys())
    if not all(k.isdigit() for k in keys) or sorted(map(int, keys)) != list(range(len(keys))):
        raise WeightsError(f"{path}: layer {layer!r} has variables {keys[:8]}, expected 0..{len(keys) - 1}")
    return [_dataset(path, vars_group, layer, str(i), size) for i in range(len(keys))]
