"""What every ImageNet classifier declares alike: family, task, labels, and where its weights come from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import ModelSpec
from ._bundled import bundled_path


def classifier(name: str, build: Callable[[], Any], input_size: tuple[int, int], *, output: str,
               **declared: Any) -> ModelSpec:
    """An ImageNet-1k classifier's declaration; ``declared`` holds the rest of :class:`ModelSpec`'s fields."""
    return ModelSpec(name=name, family="imagenet", task="classify", labels="imagenet", build=build,
                     input_size=input_size, output=output, **declared)


def bundled(filename: str, origin: str) -> dict:
    """Weights shipped in ``weights/imagenet/``."""
    return {"weights": f"bundled: weights/imagenet/{filename} ({origin})",
            "weights_present": lambda: bundled_path(filename).is_file()}


def fetched(name: str, filename: str) -> dict:
    """The official Keras file that ``nnlite fetch NAME`` downloads."""
    def present() -> bool:
        from ...fetch import cached_weights
        return cached_weights(name) is not None
    return {"weights": f"{filename}, the official Keras file (nnlite fetch {name})", "weights_present": present}
