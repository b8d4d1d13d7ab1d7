"""Image classification: photo in, ranked ImageNet labels out.

    >>> clf = nnlite.load("mobilenet_v2")            # a Classifier
    >>> clf.classify("chelsea.png").best(3)
    [Prediction(label='Egyptian_cat', wnid='n02124075', index=285, score=0.7166...), ...]

A :class:`Classifier` is three things: a preprocessing function (RGB uint8 photo of any size ->
float32 (h, w, 3) tensor, exactly as the model was trained), a :class:`nnlite.graph.Model` and the
class labels. The preprocessing recipes are image operations and live below the models, in
:mod:`nnlite.preprocess` (re-exported here, their former home); each model file names its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ImageError, ModelError, ShapeError
from ..graph import Model
from ..image import load_image, resize  # noqa: F401  (resize: re-exported, as before)
from ..preprocess import (  # noqa: F401
    Preprocess,
    caffe_preprocess,
    resize_shorter,
    tf_crop_preprocess,
    tf_preprocess,
    torch_center_crop,
    torch_preprocess,
    unit_preprocess,
)
from .labels import Labels, imagenet_labels


@dataclass(frozen=True)
class Prediction:
    """One ranked class of one image; the photo library stores these as an image's labels."""
    label: str      # e.g. "Egyptian_cat"
    wnid: str       # WordNet id, e.g. "n02124075"
    index: int      # output index, 0..999
    score: float    # probability in [0, 1]

    def as_dict(self) -> dict:
        return {"label": self.label, "wnid": self.wnid, "index": self.index, "score": self.score}


class Predictions:
    """The class probabilities of one image; :meth:`best` ranks them."""

    def __init__(self, probabilities: np.ndarray, labels: Labels):
        probabilities = np.asarray(probabilities, np.float32).reshape(-1)   # (classes,)
        if probabilities.size != len(labels):
            raise ShapeError(f"classifier output has {probabilities.size} classes, "
                             f"but the labels table has {len(labels)}")
        self.probabilities = probabilities
        self.labels = labels

    def best(self, k: int = 5) -> list[Prediction]:
        """The ``k`` most probable classes, highest score first (ties: lower index first)."""
        if k < 1:
            raise ConfigError(f"best(k) needs k >= 1, got {k}")
        # stable sort on -p keeps index order among equal scores, so the ranking is deterministic
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [Prediction(self.labels.names[i], self.labels.wnids[i], int(i), float(self.probabilities[i]))
                for i in order]

    def __getitem__(self, name_or_wnid: str) -> float:
        """Probability of one class, by label or WordNet id: ``preds["tabby"]``."""
        return float(self.probabilities[self.labels.index_of(name_or_wnid)])

    def __repr__(self) -> str:
        top = ", ".join(f"{p.label}: {p.score:.4f}" for p in self.best(3))
        return f"Predictions({top}, ...)"


class Classifier:
    """A model that maps a photo to class probabilities.

    ``output`` says what the graph's output is: "probabilities" (it ends in a softmax) or
    "logits" (softmax is applied here). ``background_class``: output 0 is a background class before the
    labels' classes (TF-slim's 1001-way classifiers); it takes part in the softmax, then is dropped.
    """

    def __init__(self, name: str, model: Model, preprocess: Preprocess, labels: Labels | None = None,
                 output: str = "probabilities", batch_size: int = 16, background_class: bool = False):
        if output not in ("probabilities", "logits"):
            raise ModelError(f"{name}: output must be 'probabilities' or 'logits', got {output!r}")
        self.name = name
        self.model = model
        self.preprocess = preprocess
        self.labels = labels if labels is not None else imagenet_labels()
        self.output = output
        self.batch_size = batch_size
        self.background_class = background_class

    @classmethod
    def from_spec(cls, spec, model: Model) -> Classifier:
        """The classifier a model file declares (``nnlite.models.registry.ModelSpec``): its recipe,
        labels and output kind around its built graph."""
        if spec.preprocess is None:
            raise ModelError(f"{spec.name}: the model declares no preprocessing recipe")
        labels = imagenet_labels() if spec.labels in (None, "imagenet") else None
        if labels is None:
            raise ModelError(f"{spec.name}: unknown label set {spec.labels!r}")
        return cls(spec.name, model, spec.preprocess(), labels=labels, output=spec.output or "probabilities",
                   background_class=spec.background_class)

    @property
    def input_size(self) -> tuple[int, int] | None:
        shape = next(iter(self.model.inputs.values()))   # (h, w, 3)
        return (shape[0], shape[1]) if shape[0] is not None else None

    def prepare(self, image) -> np.ndarray:
        """Preprocess one image: float32 (h, w, 3). ``image`` is pixels (an array, coerced by the one RGB
        rule) or a path, bytes, file object or PIL image, decoded here once by :func:`nnlite.image.load_image`
        (its rules: EXIF, modes, size guard)."""
        return self.preprocess(load_image(image))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on preprocessed inputs (N, h, w, 3) -> probabilities (N, classes)."""
        out = np.asarray(self.model(batch), np.float32)
        out = out.reshape(out.shape[0], -1)
        if self.output == "logits":
            from .. import ops
            out = ops.for_engine("softmax")(out, axis=-1)
        return out[:, 1:] if self.background_class else out

    def classify(self, image) -> Predictions:
        """Class probabilities of one image (path, bytes, or RGB uint8 array (H, W, 3))."""
        return Predictions(self.probabilities(self.prepare(image)[None])[0], self.labels)

    def classify_batch(self, images: Iterable) -> list[Predictions]:
        """Classify several images; they run through the model ``batch_size`` at a time.
        ``images`` is a sequence of sources (or an (N, H, W, C) array); one path is not a sequence."""
        one_image = isinstance(images, np.ndarray) and images.ndim < 4
        if one_image or isinstance(images, (str, bytes, bytearray, Path)):
            raise ImageError(f"classify_batch: expected a sequence of images, found one "
                             f"{type(images).__name__}; use classify() for a single image")
        results: list[Predictions] = []
        chunk: list[np.ndarray] = []
        for image in images:
            chunk.append(self.prepare(image))
            if len(chunk) == self.batch_size:
                results += self._run_chunk(chunk)
                chunk = []
        if chunk:
            results += self._run_chunk(chunk)
        return results

    def _run_chunk(self, chunk: list[np.ndarray]) -> list[Predictions]:
        probs = self.probabilities(np.stack(chunk))   # (n, classes)
        return [Predictions(p, self.labels) for p in probs]

    def __repr__(self) -> str:
        return f"Classifier({self.name!r}, input {self.input_size}, {self.model.params:,} params)"

