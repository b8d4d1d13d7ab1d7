"""Build Keras-applications models with seeded random weights and export them for parity tests.

No pretrained NASNetMobile / Xception / ResNet50 file is reachable offline, so parity is checked on
the real architectures with random weights: ``keras.applications.X(weights=None)``, seeded, every
batch norm given non-trivial statistics (calibrated on a random batch so activations stay O(1) through
the depth, then perturbed so no layer is an identity), saved three ways:

- ``<name>.h5``          legacy weights-only layout (the published pretrained files' layout)
- ``<name>.weights.h5``  Keras 3 layout (``model.save_weights``)
- ``<name>_savedmodel/`` TF SavedModel (``model.export``) whose ``serve`` returns
                         ``[features, logits, probabilities]``: the global-average-pool vector, the
                         classifier's pre-softmax output and the model's own softmax output

The batch-norm calibration uses the images the caller passes (the parity test passes its photos, so
activations are O(1) on exactly the inputs compared), else smooth random images.

Usage: ``python -m tools.keras_reference OUT_DIR [--models resnet50 xception nasnet_mobile]``.
Needs TensorFlow (the ``test`` extra); never imported by the nnlite package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

SEED = 20240611
FORMAT_VERSION = 5   # bump when what is exported changes, so stale caches are rebuilt
MODELS = {           # nnlite name -> (keras.applications constructor, input size, preprocessing mode)
    "nasnet_mobile": ("NASNetMobile", 224, "tf"),
    "xception": ("Xception", 299, "tf"),
    "resnet50": ("ResNet50", 224, "caffe"),
}


def paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    out = Path(out_dir)
    return {"h5": out / f"{name}.h5", "keras3": out / f"{name}.weights.h5",
            "savedmodel": out / f"{name}_savedmodel", "done": out / f"{name}.done.json"}


def ensure_exported(out_dir: str | Path, name: str, calibration: np.ndarray | None = None) -> dict[str, Path]:
    """Export ``name`` into ``out_dir`` unless an export of this format and calibration is already there."""
    p = paths(out_dir, name)
    if p["done"].exists():
        done = json.loads(p["done"].read_text())
        if done.get("format") == FORMAT_VERSION and done.get("calibration") == _digest(calibration):
            return p
    export(out_dir, name, calibration=calibration)
    return p


def keras_model(name: str, seed: int = SEED, calibration: np.ndarray | None = None):
    """``keras.applications.X(weights=None)`` with seeded weights and non-trivial batch-norm statistics;
    ``calibration`` is a batch of preprocessed images (N, size, size, 3)."""
    import keras
    constructor, size, mode = MODELS[name]
    keras.utils.set_random_seed(seed)              # seeds Keras's own initializers too
    model = getattr(keras.applications, constructor)(weights=None)
    rng = np.random.default_rng(seed)
    _randomize_affine(model, rng)
    batch = _random_batch(rng, size, mode) if calibration is None else np.asarray(calibration, np.float32)
    _calibrate_batch_norms(model, batch)
    _perturb_statistics(model, rng)
    _spread_logits(model, batch, rng)
    return model


def keras_model_from_h5(name: str, h5: str | Path):
    """The Keras model again, with the weights of an exported ``.h5`` (for layer-by-layer debugging)."""
    import keras
    model = getattr(keras.applications, MODELS[name][0])(weights=None)
    model.load_weights(str(h5))
    return model


def export(out_dir: str | Path, name: str, seed: int = SEED, calibration: np.ndarray | None = None
           ) -> dict[str, Path]:
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    p = paths(out_dir, name)
    p["h5"].parent.mkdir(parents=True, exist_ok=True)
    p["done"].unlink(missing_ok=True)      # written last: a crash midway leaves no valid-looking export
    model = keras_model(name, seed, calibration)
    _write_atomically(p["h5"], lambda tmp: _save_legacy(h5py, legacy_h5_format, model, tmp))
    _write_atomically(p["keras3"], lambda tmp: model.save_weights(str(tmp)), suffix=".weights.h5")
    dense = model.get_layer("predictions")
    features = dense.input                              # the global-average-pool vector
    logits_layer = keras.layers.Dense(dense.units, name="logits")   # the same dense, without softmax
    logits = logits_layer(features)
    logits_layer.set_weights(dense.get_weights())
    served = keras.Model(model.input, [features, logits, model.output])
    tmp_dir = p["savedmodel"].with_name(p["savedmodel"].name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    served.export(str(tmp_dir), verbose=False)
    shutil.rmtree(p["savedmodel"], ignore_errors=True)
    os.replace(tmp_dir, p["savedmodel"])
    p["done"].write_text(json.dumps({"format": FORMAT_VERSION, "calibration": _digest(calibration),
                                     "seed": seed, "model": name,
                                     "keras": keras.__version__, "params": int(model.count_params())}))
    return p


def _digest(batch: np.ndarray | None) -> str | None:
    if batch is None:
        return None
    batch = np.ascontiguousarray(batch, np.float32)
    return hashlib.sha256(repr(batch.shape).encode() + batch.tobytes()).hexdigest()


def _save_legacy(h5py, legacy_h5_format, model, path: Path) -> None:
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _write_atomically(path: Path, write, suffix: str = ".h5") -> None:
    tmp = path.with_name(path.name + ".tmp" + suffix)
    write(tmp)
    os.replace(tmp, path)


def _randomize_affine(model, rng: np.random.Generator) -> None:
    """Batch-norm gamma/beta and every bias random (Keras starts them at 1 and 0)."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.6, 1.4, c).astype(np.float32))
            layer.beta.assign(rng.uniform(-0.3, 0.3, c).astype(np.float32))
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.uniform(-0.2, 0.2, layer.bias.shape).astype(np.float32))


def _calibrate_batch_norms(model, batch: np.ndarray) -> None:
    """One training-mode pass with momentum 0 stores every batch norm's batch mean and variance as
    its moving statistics, so each layer sees normalised inputs at inference too (random weights
    would otherwise blow activations up or wash them out over a hundred layers)."""
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    saved = [bn.momentum for bn in norms]
    for bn in norms:
        bn.momentum = 0.0
    model(batch, training=True)
    for bn, momentum in zip(norms, saved):
        bn.momentum = momentum


def _perturb_statistics(model, rng: np.random.Generator) -> None:
    """Shift the means and scale the variances so no batch norm is exactly a standardisation."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
            std = np.sqrt(var)
            layer.moving_mean.assign((mean + rng.normal(0, 0.1, mean.shape) * std).astype(np.float32))
            layer.moving_variance.assign((var * rng.uniform(0.7, 1.4, var.shape)).astype(np.float32))


def _spread_logits(model, batch: np.ndarray, rng: np.random.Generator, target_std: float = 2.5,
                   min_gap: float = 0.01) -> None:
    """Draw the classifier's kernel so the logits vary by ``target_std`` on the calibration batch (the
    softmax then neither flat nor one-hot), and draw again while two of any image's six largest
    logits are within ``min_gap``: a top-5 comparison must not hinge on a tie that float32 rounding
    (errors near 1e-5 here) could flip."""
    import keras
    dense = model.get_layer("predictions")
    features = np.asarray(keras.Model(model.input, dense.input)(batch), np.float64)   # (n, c)
    bias = dense.bias.numpy().astype(np.float64)
    for _ in range(200):
        kernel = rng.standard_normal(dense.kernel.shape)                                # (c, 1000)
        kernel *= target_std / (features @ kernel).std()
        top6 = -np.sort(-(features @ kernel + bias), axis=1)[:, :6]
        if np.min(top6[:, :-1] - top6[:, 1:]) >= min_gap:
            dense.kernel.assign(kernel.astype(np.float32))
            return
    raise RuntimeError("could not draw a classifier without near-ties in the top 6")


def _random_batch(rng: np.random.Generator, size: int, mode: str) -> np.ndarray:
    """Four smooth random images, preprocessed like the model's photos (tf: [-1, 1]; caffe: minus mean)."""
    coarse = rng.uniform(0, 255, (4, size // 8 + 1, size // 8 + 1, 3))
    pixels = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :size, :size]
    pixels = np.clip(pixels + rng.normal(0, 20, pixels.shape), 0, 255).astype(np.float32)
    if mode == "tf":
        return pixels / 127.5 - 1.0
    return pixels[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    for name in args.models:
        p = export(args.out_dir, name)
        print(f"{name}: {p['h5']}, {p['keras3']}, {p['savedmodel']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
