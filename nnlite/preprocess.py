"""Preprocessing recipes: how a model's training pipeline turned a photo into its input tensor.

Each recipe is a function of the recipe's parameters that returns ``preprocess(image)``: RGB uint8
(H, W, 3) of any size -> float32 (h, w, 3), exactly as the model was trained. Resizing and normalisation
are :mod:`nnlite.image`'s; what is specific here is each recipe's order of steps. A model file names its
recipe (``preprocess=partial(torch_preprocess, 224, resize_to=256)``); classifiers and tools apply it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import ImageError
from .image import CAFFE_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD, normalize, resize

Preprocess = Callable[[np.ndarray], np.ndarray]   # uint8 (H, W, 3) RGB -> float32 (h, w, 3)



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


def tf_preprocess(size: tuple[int, int]) -> Preprocess:
    """Keras 'tf' recipe (Inception, Xception, NASNet, MobileNet): resize to ``size``, scale to [-1, 1]."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        return normalize(resize(image, size), "tf")   # (h, w, 3)
    preprocess.__doc__ = f"tf: resize to {size}, x/127.5 - 1"
    return preprocess


def unit_preprocess(size: tuple[int, int]) -> Preprocess:
    """TF-Hub image convention (the modules scale inside): resize to ``size``, RGB values in [0, 1]."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        return resize(image, size).astype(np.float32) / np.float32(255.0)   # (h, w, 3)
    preprocess.__doc__ = f"tf-hub: resize to {size}, x/255"
    return preprocess
