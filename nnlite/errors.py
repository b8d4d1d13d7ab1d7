"""One small exception hierarchy: every error nnlite raises on purpose is an ``NnliteError``.

Messages name the file or layer and say what was expected and what was found, so a user
can act on them without reading a traceback.
"""


class NnliteError(Exception):
    """Base class of every error nnlite raises on purpose."""


class ConfigError(NnliteError, ValueError):
    """A setting is invalid: an environment variable (``NNLITE_*``) or an option value."""


class WeightsError(NnliteError):
    """A weights file (tfjs manifest/shard, .h5, .npz, .pth) is missing, malformed or does not fit the model."""


class WeightsMissingError(WeightsError):
    """A model's weights are not on this machine (e.g. not yet fetched)."""


class ImageError(NnliteError):
    """An image cannot be read, is corrupt, too large, or has an unsupported mode."""


class ShapeError(NnliteError):
    """A tensor has a shape a layer or model cannot accept, or is not an array of numbers at all."""


class ModelError(NnliteError):
    """A model name is unknown or a model graph is built inconsistently."""


class GraphFormatError(NnliteError):
    """A SavedModel / GraphDef / protobuf file is damaged or uses something nnlite does not support."""


class UnsupportedOpError(GraphFormatError):
    """A graph uses operations nnlite does not implement."""


class LibraryError(NnliteError):
    """The photo library index cannot be opened, read or written."""
