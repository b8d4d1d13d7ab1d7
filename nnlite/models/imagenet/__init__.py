"""ImageNet classifiers (one file per architecture); importing this registers them.

Each architecture module offers ``load_model(path=None) -> graph.Model``. Registration pairs it with
its preprocessing recipe (from :mod:`nnlite.vision.classify`) into a ``Classifier``; modules are
imported only when a model is loaded, so ``nnlite models`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..registry import ModelSpec, register
from ._bundled import bundled_path


def classifier_spec(name: str, module: str, *, description: str, input_size: tuple[int, int],
                    preprocessing: str, make_preprocess: Callable[[], Callable], output: str,
                    weights_present: Callable[[], bool], params: int | None = None,
                    background_class: bool = False) -> ModelSpec:
    """A registry entry whose ``load()`` returns a :class:`nnlite.vision.classify.Classifier`.

    ``module`` is the architecture's module name in this package; ``make_preprocess()`` returns the
    uint8 (H, W, 3) -> float32 (h, w, 3) function; ``output`` is "logits" or "probabilities";
    ``background_class``: output 0 is a background class (TF-slim's 1001 outputs).
    """
    def load():
        from ...vision.classify import Classifier
        model = importlib.import_module(f"{__name__}.{module}").load_model()
        return Classifier(name, model, make_preprocess(), output=output, background_class=background_class)
    return ModelSpec(name=name, family="imagenet", description=description, input_size=input_size,
                     preprocessing=preprocessing, load=load, weights_present=weights_present, params=params)


def _bundled(filename: str) -> Callable[[], bool]:
    return lambda: bundled_path(filename).is_file()


def _torch_preprocess():
    from ...vision.classify import torch_preprocess
    return torch_preprocess(224, resize_to=256)


def _squeezenet_preprocess():
    from ...vision.classify import caffe_preprocess
    from .squeezenet import CAFFE_MEAN_BGR
    return caffe_preprocess((227, 227), CAFFE_MEAN_BGR)


def _efficientnet_preprocess():
    from ...vision.classify import tf_crop_preprocess
    return tf_crop_preprocess(224, crop_padding=32, mean=127.0, std=128.0)


register(classifier_spec(
    "mobilenet_v2", "mobilenet_v2", description="MobileNetV2 1.0, torchvision ImageNet weights (71.9% top-1)",
    input_size=(224, 224), preprocessing="torch: resize shorter side 256 (bilinear), centre crop 224, /255, "
    "ImageNet mean/std", make_preprocess=_torch_preprocess, output="logits",
    weights_present=_bundled("mobilenet_v2-b0353104.pth"), params=3_487_816))
register(classifier_spec(
    "squeezenet1_1", "squeezenet", description="SqueezeNet 1.1, Caffe ImageNet weights",
    input_size=(227, 227), preprocessing="caffe: resize to 227x227 (bilinear), BGR, minus mean "
    "(104.006, 116.669, 122.679)", make_preprocess=_squeezenet_preprocess, output="probabilities",
    weights_present=_bundled("squeezenet_weights.pkl"), params=1_235_496))
register(classifier_spec(
    "efficientnet_lite0", "efficientnet_lite0", description="EfficientNet-Lite0, TF ImageNet weights ported "
    "to PyTorch", input_size=(224, 224), preprocessing="tf: centre crop 224/256 of shorter side, bicubic "
    "resize 224, (x - 127) / 128", make_preprocess=_efficientnet_preprocess, output="logits",
    weights_present=_bundled("efficientnet-lite0-57934424.pth"), params=4_631_000))


# -- the Keras-applications models: weights downloaded with `nnlite fetch NAME` (Keras .h5, any layout) --

def _fetched(name: str) -> Callable[[], bool]:
    def present() -> bool:
        from ...fetch import cached_weights
        return cached_weights(name) is not None
    return present


def _keras_preprocess(mode: str, size: tuple[int, int]) -> Callable[[], Callable]:
    def make():
        from ...vision import classify
        return classify.tf_preprocess(size) if mode == "tf" else classify.caffe_preprocess(size)
    return make


register(classifier_spec(
    "nasnet_mobile", "nasnet_mobile", description="NASNet-A Mobile (4 @ 1056), Keras applications weights "
    "(nnlite fetch nasnet_mobile)", input_size=(224, 224), preprocessing="tf: resize to 224x224 (bilinear), "
    "x/127.5 - 1", make_preprocess=_keras_preprocess("tf", (224, 224)), output="logits",
    weights_present=_fetched("nasnet_mobile"), params=5_326_716))
register(classifier_spec(
    "xception", "xception", description="Xception, Keras applications weights (nnlite fetch xception)",
    input_size=(299, 299), preprocessing="tf: resize to 299x299 (bilinear), x/127.5 - 1",
    make_preprocess=_keras_preprocess("tf", (299, 299)), output="logits",
    weights_present=_fetched("xception"), params=22_910_480))
register(classifier_spec(
    "resnet50", "resnet50", description="ResNet50 (v1), Keras applications weights (nnlite fetch resnet50)",
    input_size=(224, 224), preprocessing="caffe: resize to 224x224 (bilinear), BGR, minus mean "
    "(103.939, 116.779, 123.68)", make_preprocess=_keras_preprocess("caffe", (224, 224)), output="logits",
    weights_present=_fetched("resnet50"), params=25_636_712))


# -- TF-Hub modules: `nnlite fetch NAME` downloads and unpacks the module; weights read from its variables/ --

def _unit_preprocess(size: tuple[int, int]) -> Callable[[], Callable]:
    def make():
        from ...vision.classify import unit_preprocess
        return unit_preprocess(size)
    return make


register(classifier_spec(
    "pnasnet_large", "pnasnet_large", description="PNASNet-5 Large, TF-Hub module google/imagenet/pnasnet_large/"
    "classification/2 (nnlite fetch pnasnet_large)", input_size=(331, 331), preprocessing="tf-hub: resize to "
    "331x331 (bilinear), x/255 (the module scales to [-1, 1] itself)",
    make_preprocess=_unit_preprocess((331, 331)), output="logits", weights_present=_fetched("pnasnet_large"),
    params=86_238_977, background_class=True))
