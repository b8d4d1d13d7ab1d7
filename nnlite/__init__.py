"""nnlite: neural-network inference in NumPy + Numba, without TensorFlow.

    >>> import nnlite
    >>> model = nnlite.load("mobilenet_v2")
    >>> model.classify("cat.png").best(3)
"""

from .errors import (
    ConfigError,
    GraphFormatError,
    ImageError,
    LibraryError,
    ModelError,
    NnliteError,
    ShapeError,
    UnsupportedOpError,
    WeightsError,
    WeightsMissingError,
)

__version__ = "0.1.0"

__all__ = ["load", "NnliteError", "ConfigError", "WeightsError", "WeightsMissingError", "ImageError", "ShapeError",
           "ModelError", "GraphFormatError", "UnsupportedOpError", "LibraryError", "__version__"]


def load(name: str):
    """Load a registered model by name (``nnlite models`` lists them)."""
    from .models import registry
    from .ops import precompile
    spec = registry.get(name)
    precompile.expect(name)   # on a first run, a helper process compiles the model's kernels alongside
    built = spec.build()
    if spec.task == "classify":   # the registry declares it; the pipeline that runs it lives in vision
        from .vision.classify import Classifier
        return Classifier.from_spec(spec, built)
    if spec.task == "segment":
        from .vision.segment import Segmenter
        return Segmenter(built)
    return built

