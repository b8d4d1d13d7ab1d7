"""The bundled ImageNet classifiers rebuilt in Keras (TensorFlow) from the same weight files, for parity tests.

Each module ``tools/imagenet_tf/<model>.py`` has ``build(keras) -> (keras.Model, names)``: the network as
the source framework computes it - real BatchNormalization layers with the source's epsilon (nothing
folded), explicit ``ZeroPadding2D`` where PyTorch pads symmetrically, TF 'same' only where the source
used it - and ``names``, mapping each nnlite reference name (a layer's ``output_name``) to the Keras layer
that computes the same activation, for :meth:`nnlite.graph.Model.first_divergence`.

:func:`export_savedmodel` writes the Keras model as a TF SavedModel into the parity cache once per run;
:func:`reference_activations` gives the named intermediates when a parity check fails. TensorFlow is a
test-only dependency: nothing here is imported by nnlite.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import numpy as np

MODULES = {"mobilenet_v2": "mobilenet_v2", "squeezenet1_1": "squeezenet", "efficientnet_lite0": "efficientnet_lite0"}


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    return keras


def build(name: str):
    """(keras.Model, {nnlite reference name: keras layer name}) for a bundled model."""
    return importlib.import_module(f"{__name__}.{MODULES[name]}").build(_keras())


def export_savedmodel(name: str, cache_dir: Path) -> Path:
    """``cache_dir/imagenet_<name>``: the Keras model exported as a TF SavedModel (endpoint ``serve``).

    Written once per cache directory, to a temporary folder renamed at the end, so an interrupted export
    never leaves a half-written model that a later run would trust.
    """
    path = Path(cache_dir) / f"imagenet_{name}"
    if (path / "saved_model.pb").is_file():
        return path
    model, _ = build(name)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format="tf_saved_model", verbose=False)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def reference_activations(name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every named intermediate of the Keras model on ``x`` (N, h, w, 3), keyed by nnlite reference name."""
    keras = _keras()
    model, names = build(name)
    probe = keras.Model(model.inputs, [model.get_layer(k).output for k in names.values()])
    outs = probe([x], training=False)
    return {ref: np.asarray(out) for ref, out in zip(names, outs)}
