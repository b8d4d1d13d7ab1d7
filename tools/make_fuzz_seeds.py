"""Write the small, valid files the loader fuzz test mutates (tests/data/fuzz_seeds/), with real writers.

Run twice, once per environment (torch is not a test dependency, so its files are committed):

    /work/venv-torch/bin/python tools/make_fuzz_seeds.py torch   # tiny.pth (zip), tiny_legacy.pth
    python tools/make_fuzz_seeds.py keras                         # three Keras .h5 layouts + a SavedModel

Weights are seeded (seed 0); the files are tiny (a 3x3 conv, a batch norm, a dense layer) so that a
mutated copy loads in milliseconds. Versions used are printed and recorded in the folder's README.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "fuzz_seeds"


def torch_seeds() -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3))
    state = net.state_dict()
    torch.save(state, OUT / "tiny.pth")
    torch.save(state, OUT / "tiny_legacy.pth", _use_new_zipfile_serialization=False)
    print("torch", torch.__version__)


def keras_seeds() -> None:
    import h5py
    import keras
    import tensorflow as tf
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="dense")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.save(OUT / "keras_legacy_model.h5")
    with h5py.File(OUT / "keras_legacy_weights.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    model.save_weights(OUT / "keras3.weights.h5")
    target = OUT / "savedmodel"
    shutil.rmtree(target, ignore_errors=True)
    model.export(target, verbose=False)
    shutil.rmtree(target / "assets", ignore_errors=True)
    (target / "fingerprint.pb").unlink(missing_ok=True)
    print("keras", keras.__version__, "tensorflow", tf.__version__)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    {"torch": torch_seeds, "keras": keras_seeds}[sys.argv[1]]()
