"""Image classification: photo in, ranked ImageNet labels out.

    >>> clf = nnlite.load("mobilenet_v2")            # a Classifier
    >>> clf.classify("chelsea.png").best(3)
    [Prediction(label='Egyptian_cat', wnid='n02124075', index=285, score=0.7166...), ...]

A :class:`Classifier` is three things: a preprocessing function (RGB uint8 photo of any size ->
float32 (h, w, 3) tensor, exactly as the model was trained), a :class:`nnlite.graph.Model` and the
class labels. The preprocessing functions of the common training recipes live here too
(:func:`torch_preprocess`, :func:`caffe_preprocess`, :func:`tf_crop_preprocess`, :func:`tf_preprocess`), so
each registered model only names its recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import ImageError, ModelError, ShapeError
from ..graph import Model
from ..image import CAFFE_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD, load_image, normalize, resize
from .labels import Labels, imagenet_labels

Preprocess = Callable[[np.ndarray], np.ndarray]   # uint8 (H, W, 3) RGB -> float32 (h, w, 3)


@dataclass(frozen=True)
class Prediction:
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
            raise ValueError(f"best(k) needs k >= 1, got {k}")
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

    @property
    def input_size(self) -> tuple[int, int] | None:
        shape = next(iter(self.model.inputs.values()))   # (h, w, 3)
        return (shape[0], shape[1]) if shape[0] is not None else None

    def prepare(self, image) -> np.ndarray:
        """Load one image (path, bytes or array) and preprocess it: float32 (h, w, 3)."""
        return self.preprocess(_load_rgb(image))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on preprocessed inputs (N, h, w, 3) -> probabilities (N, classes)."""
        out = np.asarray(self.model(batch), np.float32)
        out = out.reshape(out.shape[0], -1)
        if self.output == "logits":
            from .. import ops
            out = ops.softmax(out, axis=-1)
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


# -- loading ----------------------------------------------------------------------------------------

def _load_rgb(image) -> np.ndarray:
    """Any accepted image source (path, bytes, file object, PIL image, array) -> RGB uint8 (H, W, 3);
    the rules (EXIF, modes, size guard) are :func:`nnlite.image.load_image`'s."""
    return load_image(image)


# -- preprocessing recipes --------------------------------------------------------------------------
# Resizing and normalisation are nnlite.image's; what is specific here is each recipe's order of steps.

def resize_shorter(image: np.ndarray, shorter: int, method: str = "bilinear") -> np.ndarray:
    """Scale (Pillow filter, antialiased like torchvision on PIL images) so the shorter side is ``shorter``;
    the longer side is truncated like torchvision (``int(shorter * long / short)``)."""
    h, w = image.shape[:2]
    size = (shorter, int(shorter * w / h)) if h <= w else (int(shorter * h / w), shorter)
    return image if size == (h, w) else resize(image, size, method=method)


def torch_center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """torchvision's CenterCrop: top = round((H - h) / 2) with Python's round-half-to-even, which differs
    from :func:`nnlite.image.center_crop`'s (H - h) // 2 for some odd margins (35 -> 18, not 17)."""
    h, w = image.shape[:2]
    ch, cw = size
    if ch > h or cw > w:
        raise ImageError(f"cannot centre-crop {size} from an image of {(h, w)}")
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return image[top:top + ch, left:left + cw]


def torch_preprocess(size: int = 224, resize_to: int = 256,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Preprocess:
    """torchvision's ImageNet eval recipe: shorter side -> ``resize_to`` (PIL bilinear), centre crop
    ``size``, scale to [0, 1], subtract ``mean`` and divide by ``std`` per RGB channel."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        crop = torch_center_crop(resize_shorter(image, resize_to), (size, size))
        return normalize(crop, "torch", mean=mean, std=std)   # (size, size, 3)
    preprocess.__doc__ = f"torch: resize {resize_to}, centre crop {size}, /255, ImageNet mean/std"
    return preprocess


def caffe_preprocess(size: tuple[int, int], mean_bgr: Sequence[float] = CAFFE_MEAN_BGR) -> Preprocess:
    """Caffe recipe: resize the whole image to ``size`` (PIL bilinear), RGB -> BGR, subtract the per-channel
    BGR mean on [0, 255] pixels; no scaling."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        return normalize(resize(image, size), "caffe", mean=mean_bgr)   # (h, w, 3) BGR
    preprocess.__doc__ = f"caffe: resize to {size}, BGR, minus mean {tuple(mean_bgr)}"
    return preprocess


def tf_crop_preprocess(size: int = 224, crop_padding: int = 32, mean: float = 127.0,
                       std: float = 128.0) -> Preprocess:
    """TensorFlow reference recipe of EfficientNet(-Lite): centre crop ``size / (size + crop_padding)`` of the
    shorter side (offsets rounded up, as TF), bicubic resize to ``size``, then (x - mean) / std."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        crop = int(size / (size + crop_padding) * min(h, w))
        top, left = (h - crop + 1) // 2, (w - crop + 1) // 2
        x = resize(np.ascontiguousarray(image[top:top + crop, left:left + crop]), size, method="bicubic")
        return normalize(x, "torch", mean=(mean / 255,) * 3, std=(std / 255,) * 3)   # (size, size, 3)
    preprocess.__doc__ = f"tf crop: {size}/{size + crop_padding} of shorter side, bicubic {size}, (x-{mean:g})/{std:g}"
    return preprocess


def unit_preprocess(size: tuple[int, int]) -> Preprocess:
    """TF-Hub image convention (the modules scale inside): resize to ``size``, RGB values in [0, 1]."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        return resize(image, size).astype(np.float32) / np.float32(255.0)   # (h, w, 3)
    preprocess.__doc__ = f"tf-hub: resize to {size}, x/255"
    return preprocess


def tf_preprocess(size: tuple[int, int]) -> Preprocess:
    """Keras 'tf' recipe (Inception, Xception, NASNet, MobileNet): resize to ``size``, scale to [-1, 1]."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        return normalize(resize(image, size), "tf")   # (h, w, 3)
    preprocess.__doc__ = f"tf: resize to {size}, x/127.5 - 1"
    return preprocess
