"""Model names -> how to build them, their input size, preprocessing and where their weights live.

Each model family (``nnlite.models.imagenet``, ``nnlite.models.faceapi``) calls :func:`register`
for each of its models when imported; :func:`load` imports the families on first use, in order, stopping at
the one that registers the requested name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ModelError

FAMILIES = ("nnlite.models.imagenet", "nnlite.models.faceapi", "nnlite.models.maskrcnn")


@dataclass(frozen=True)
class ModelSpec:
    name: str                             # what users type: nnlite.load("mobilenet_v2")
    family: str                           # "imagenet" or "faceapi"
    description: str
    input_size: tuple[int, int] | None    # (height, width); None where any size works
    preprocessing: str                    # human-readable, e.g. "torch: resize 256, crop 224, mean/std"
    load: Callable[[], Any]               # -> the user-facing object; it has a ``.model`` (graph.Model)
    weights_present: Callable[[], bool]
    params: int | None = None             # parameter count, where known without loading


_SPECS: dict[str, ModelSpec] = {}
_loaded_families: set[str] = set()


def register(spec: ModelSpec) -> None:
    if spec.name in _SPECS:
        raise ModelError(f"model name {spec.name!r} registered twice")
    _SPECS[spec.name] = spec


def _ensure_families(until: str | None = None) -> None:
    """Import the families in order; with ``until``, stop as soon as that model name is registered, so
    loading one model never imports the other family's modules (a shorter cold start)."""
    for module in FAMILIES:
        if until is not None and until in _SPECS:
            return
        if module not in _loaded_families:
            _loaded_families.add(module)
            importlib.import_module(module)


def specs() -> list[ModelSpec]:
    _ensure_families()
    return list(_SPECS.values())


def get(name: str) -> ModelSpec:
    _ensure_families(until=name)
    try:
        return _SPECS[name]
    except KeyError:
        _ensure_families()   # unknown name: every family has registered by now, for the list below
        known = ", ".join(sorted(_SPECS)) or "(none)"
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None


def load(name: str) -> Any:
    """Build model ``name`` with its weights; raises WeightsMissingError naming how to get them."""
    return get(name).load()
