"""Model names -> their declarations (:class:`ModelSpec`), collected from the architecture files.

Each architecture file declares everything about its model in one ``SPEC`` (weights file, input size,
preprocessing recipe, labels, description, how to build it), as a Keras application file does; its
family package (``nnlite.models.imagenet``, ``nnlite.models.faceapi``) registers those when imported.
:func:`get` imports the families on first use, in order, stopping at the one that registers the
requested name. The registry only collects: it builds graphs and net objects, never vision pipelines
(``nnlite.load`` wraps a classifier's graph in :class:`nnlite.vision.classify.Classifier`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError

FAMILIES = ("nnlite.models.imagenet", "nnlite.models.faceapi", "nnlite.models.maskrcnn")


@dataclass(frozen=True)
class ModelSpec:
    name: str                             # what users type: nnlite.load("mobilenet_v2")
    family: str                           # "imagenet" or "faceapi"
    description: str
    input_size: tuple[int, int] | None    # (height, width); None where any size works
    preprocessing: str                    # human-readable, e.g. "torch: resize 256, crop 224, mean/std"
    build: Callable[[], Any]              # -> a graph.Model (task "classify") or a net object with ``.model``
    weights_present: Callable[[], bool]
    weights: str = ""                     # the weights file and where it comes from
    params: int | None = None             # parameter count, where known without loading
    task: str | None = None               # "classify": an image classifier (vision wraps it)
    preprocess: Callable[[], Callable] | None = None  # -> the recipe function (nnlite.preprocess)
    labels: str | None = None             # "imagenet": the 1000 ImageNet-1k classes
    output: str | None = None             # classifier output: "logits" or "probabilities"
    background_class: bool = False        # output 0 is a background class (TF-slim's 1001 outputs), dropped


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


def build(name: str) -> Any:
    """Build model ``name`` with its weights (a graph or a net object; see :attr:`ModelSpec.build`);
    raises WeightsMissingError naming how to get them."""
    return get(name).build()
