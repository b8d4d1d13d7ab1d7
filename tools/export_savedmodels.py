"""Export seeded random-weight Keras classifiers as TensorFlow SavedModels, for the savedmodel parity tests.

Three forms per architecture (MobileNetV2, ResNet50, Xception, NASNetMobile):

* ``keras3``: Keras 3 ``model.export(dir)`` -- the model lives in function-library bodies called through
  ``StatefulPartitionedCall``; signature ``serving_default``; tag ``serve``.
* ``tf1``: a TF1-style graph (tf_keras in ``tf.compat.v1`` graph mode, v1 control flow, so batch norm
  switches on the ``keras_learning_phase`` flag through ``Switch``/``Merge``), saved with
  ``tf.compat.v1.saved_model.Builder(...).add_meta_graph_and_variables(sess, ["myTag"])``; fetched by node
  names such as ``input_1`` / ``predictions/Softmax``.
* ``frozen``: the same TF1 graph with variables turned into constants, as one GraphDef ``.pb`` file.
* ``tf1v2``: the README's recipe exactly as a user runs it on TF 2 (about 10 s per architecture) --
  graph mode, ``tf.keras`` = tf_keras, TF 2's default control flow v2, so batch norm branches on the
  learning phase through functional ``If``/``StatelessIf`` nodes -- saved with the same Builder call. Its
  ``reference.npz`` also holds ``y_train``: TensorFlow's output with the learning phase fed True.

Weights are seeded random values. Batch-norm statistics are then calibrated in Keras 3 (one training-mode
pass with momentum 0 on the inputs, so each layer's moving mean/variance equals what it sees) and
perturbed by seeded noise: with raw random statistics a 50-layer residual net saturates its softmax to a
one-hot vector, which would make top-5 comparisons meaningless. The keras3 run saves the final weights
(``weights/<arch>.npz``) and the tf1 and tf1v2 runs load them, so every form holds the same numbers.
Each form also writes TensorFlow's own outputs for the given inputs (``reference.npz``, computed
by re-loading what was saved), so tests compare nnlite with TensorFlow on exactly those files.

Graph-mode TensorFlow is process-global, so every form runs in its own subprocess:
``python -m tools.export_savedmodels --form tf1 --archs mobilenet_v2 --out DIR --inputs X.npz``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

# name -> (keras.applications attribute, input side used by the parity run)
ARCHS = {
    "mobilenet_v2": ("MobileNetV2", 224),
    "resnet50": ("ResNet50", 96),
    "xception": ("Xception", 96),
    "nasnet_mobile": ("NASNetMobile", 96),
}
FORMS = ("keras3", "tf1", "frozen")
TF1V2_ARCHS = tuple(ARCHS)  # the control-flow-v2 form (see export_tf1v2); a subset saves CI time
TF1_TAG = "myTag"
SEED = 1234


def random_weights(model, seed: int) -> list[np.ndarray]:
    """Seeded values for every weight; BN statistics drawn so that activations keep a sane scale."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        shape = tuple(int(d) for d in w.shape)
        label = f"{getattr(w, 'path', '')} {w.name}"  # Keras 3: path 'Conv1/kernel'; tf_keras: name 'Conv1/kernel:0'
        if "moving_variance" in label:
            v = rng.uniform(0.5, 2.0, shape)
        elif "moving_mean" in label:
            v = rng.normal(0.0, 0.2, shape)
        elif "gamma" in label:
            v = rng.uniform(0.3, 0.7, shape)
        elif "beta" in label or "bias" in label:
            v = rng.normal(0.0, 0.1, shape)
        else:  # kernels: He-normal keeps activations from vanishing or exploding through deep stacks
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            if "depthwise" in label and len(shape) == 4:
                fan_in = shape[0] * shape[1]
            v = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        values.append(v.astype(np.float32))
    return values


def _build_keras(keras_module, arch: str, size: int):
    app = getattr(keras_module.applications, ARCHS[arch][0])
    return app(weights=None, input_shape=(size, size, 3), classes=1000)


def calibrate_batch_norm(model, x: np.ndarray, seed: int) -> None:
    """Moving statistics := what each BN layer sees on ``x`` (plus mirrored and shifted copies), then
    seeded noise. Variances are floored at a tenth of the layer's median: a channel that is almost
    constant on a few images would otherwise be scaled up by 1/sqrt(eps) and turn float32 rounding
    noise into visible output differences (TensorFlow's own code paths would then disagree)."""
    import keras
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.momentum = 0.0
    batch = np.concatenate([x, x[:, :, ::-1], np.roll(x, x.shape[1] // 3, axis=1),
                            np.roll(x, x.shape[2] // 3, axis=2)])
    model(batch, training=True)
    rng = np.random.default_rng(seed + 1)
    for layer in bns:
        mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
        var = np.maximum(var, 0.1 * np.median(var))
        layer.moving_mean.assign(mean + 0.1 * np.sqrt(var) * rng.normal(size=mean.shape).astype(np.float32))
        layer.moving_variance.assign(var * rng.uniform(0.8, 1.25, var.shape).astype(np.float32))
        layer.momentum = 0.99


def export_keras3(arch: str, size: int, out: Path, x: np.ndarray, weights_path: Path) -> None:
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(SEED)
    model = _build_keras(keras, arch, size)
    model.set_weights(random_weights(model, SEED))
    calibrate_batch_norm(model, x, SEED)
    tmp = weights_path.with_name(weights_path.stem + ".tmp.npz")
    np.savez(tmp, *model.get_weights())
    tmp.replace(weights_path)
    model.export(str(out / "model"), verbose=False)
    loaded = tf.saved_model.load(str(out / "model"))
    fn = loaded.signatures["serving_default"]
    (key,) = fn.structured_outputs.keys()
    (in_name,) = fn.structured_input_signature[1].keys()
    y = fn(**{in_name: tf.constant(x)})[key].numpy()
    np.savez(out / "reference.npz", y=y)
    meta = {"input": in_name, "output": key, "signature": "serving_default", "tags": ["serve"]}
    (out / "meta.json").write_text(json.dumps(meta))


def export_tf1(arch: str, size: int, out: Path, x: np.ndarray, frozen_out: Path, weights_path: Path) -> None:
    """Build in v1 graph mode (call ``_enter_graph_mode`` first), save with the Builder and frozen."""
    import tensorflow as tf
    import tf_keras
    from tf_keras.src import backend as kb
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(SEED)
        sess = tf.compat.v1.Session(graph=graph)
        kb.set_session(sess)
        model = _build_keras(tf_keras, arch, size)
        sess.run(tf.compat.v1.global_variables_initializer())
        with np.load(weights_path) as saved:
            model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
        in_name, out_name = model.input.op.name, model.output.op.name
        builder = tf.compat.v1.saved_model.Builder(str(out / "model"))
        builder.add_meta_graph_and_variables(sess, [TF1_TAG])
        builder.save()
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            sess, graph.as_graph_def(), [out_name])
        (frozen_out / "model.pb").write_bytes(frozen.SerializeToString())
        sess.close()
    meta = {"input": in_name, "output": out_name, "tags": [TF1_TAG]}
    for folder in (out, frozen_out):
        (folder / "meta.json").write_text(json.dumps(meta))
    # References come from re-loading the files, so they check what nnlite will read.
    with tf.Graph().as_default() as g, tf.compat.v1.Session(graph=g) as s:
        tf.compat.v1.saved_model.loader.load(s, [TF1_TAG], str(out / "model"))
        y = s.run(f"{out_name}:0", {f"{in_name}:0": x})
    np.savez(out / "reference.npz", y=y)
    with tf.Graph().as_default() as g, tf.compat.v1.Session(graph=g) as s:
        gd = tf.compat.v1.GraphDef()
        gd.ParseFromString((frozen_out / "model.pb").read_bytes())
        tf.import_graph_def(gd, name="")
        y = s.run(f"{out_name}:0", {f"{in_name}:0": x})
    np.savez(frozen_out / "reference.npz", y=y)


def export_tf1v2(arch: str, size: int, out: Path, x: np.ndarray, weights_path: Path) -> None:
    """The README's recipe (process started with TF_USE_LEGACY_KERAS=1, eager execution disabled, control
    flow left at TF 2's default), with the shared weights loaded before saving."""
    import tensorflow as tf
    tf.compat.v1.keras.backend.clear_session()
    model = _build_keras(tf.keras, arch, size)
    with np.load(weights_path) as saved:
        model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    sess = tf.compat.v1.keras.backend.get_session()
    builder = tf.compat.v1.saved_model.Builder(str(out / "model"))
    builder.add_meta_graph_and_variables(sess, [TF1_TAG])
    builder.save()
    in_name, out_name = model.input.op.name, model.output.op.name
    (out / "meta.json").write_text(json.dumps({"input": in_name, "output": out_name, "tags": [TF1_TAG]}))
    with tf.Graph().as_default() as g, tf.compat.v1.Session(graph=g) as s:
        tf.compat.v1.saved_model.loader.load(s, [TF1_TAG], str(out / "model"))
        y = s.run(f"{out_name}:0", {f"{in_name}:0": x})
        y_train = s.run(f"{out_name}:0", {f"{in_name}:0": x, "keras_learning_phase:0": True})
    np.savez(out / "reference.npz", y=y, y_train=y_train)


def _enter_graph_mode() -> None:
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.disable_control_flow_v2()  # Switch/Merge on the learning phase, as TF1 Keras graphs had


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def export_in_process(form: str, archs: list[str], out: Path, inputs: Path) -> None:
    """Export ``archs`` in one ``form`` group into ``out/<form>/<arch>`` (tf1 writes frozen too)."""
    data = np.load(inputs)
    if form == "tf1":
        _enter_graph_mode()
    elif form == "tf1v2":
        import tensorflow as tf
        tf.compat.v1.disable_eager_execution()  # and nothing else: the README's recipe
    (out / "weights").mkdir(parents=True, exist_ok=True)
    for arch in archs:
        x = data[str(ARCHS[arch][1])]
        weights = out / "weights" / f"{arch}.npz"
        if form == "keras3":
            tmp = _fresh(out / "keras3" / f".{arch}.tmp")
            export_keras3(arch, ARCHS[arch][1], tmp, x, weights)
            _publish(tmp, out / "keras3" / arch)
        elif form == "tf1v2":
            tmp = _fresh(out / "tf1v2" / f".{arch}.tmp")
            export_tf1v2(arch, ARCHS[arch][1], tmp, x, weights)
            _publish(tmp, out / "tf1v2" / arch)
        else:
            tmp = _fresh(out / "tf1" / f".{arch}.tmp")
            ftmp = _fresh(out / "frozen" / f".{arch}.tmp")
            export_tf1(arch, ARCHS[arch][1], tmp, x, ftmp, weights)
            _publish(tmp, out / "tf1" / arch)
            _publish(ftmp, out / "frozen" / arch)


def _publish(tmp: Path, final: Path) -> None:
    """Rename into place only when complete, so a killed export never leaves a half-written model."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def ensure_exports(out: Path, inputs: dict[int, np.ndarray], archs: list[str] | None = None) -> Path:
    """Export every missing (form, arch) under ``out`` in subprocesses; returns ``out``.

    ``inputs`` maps an input side (224, 96, ...) to the NHWC float32 batch every form is run on.
    """
    archs = list(archs or ARCHS)
    out.mkdir(parents=True, exist_ok=True)
    x_path = out / "inputs.npz"
    arrays = {str(k): v.astype(np.float32) for k, v in inputs.items()}
    if x_path.exists():
        with np.load(x_path) as old:
            same = set(old.files) == set(arrays) and all(np.array_equal(old[k], arrays[k]) for k in arrays)
        if not same:  # references were computed on other inputs: export again
            for form in FORMS + ("tf1v2", "weights"):
                shutil.rmtree(out / form, ignore_errors=True)
    np.savez(x_path, **arrays)
    repo = Path(__file__).resolve().parents[1]
    for form, check in (("keras3", "keras3"), ("tf1", "frozen"), ("tf1v2", "tf1v2")):
        wanted = [a for a in archs if form != "tf1v2" or a in TF1V2_ARCHS]
        missing = [a for a in wanted if not (out / check / a / "reference.npz").exists()
                   or not (out / form / a / "reference.npz").exists()
                   or not (out / "weights" / f"{a}.npz").exists()]
        if not missing:
            continue
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [sys.executable, "-m", "tools.export_savedmodels", "--form", form,
               "--archs", ",".join(missing), "--out", str(out), "--inputs", str(x_path)]
        subprocess.run(cmd, check=True, cwd=repo, env=env)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--form", choices=("keras3", "tf1", "tf1v2"), required=True,
                        help="keras3, tf1 (writes the Builder SavedModel and the frozen graph), or tf1v2 "
                             "(the README's recipe, control flow v2)")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, required=True,
                        help=".npz with one NHWC batch per input side, keyed by the side ('224', '96')")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.form == "tf1v2":  # before TensorFlow is imported: tf.keras = tf_keras, as in the README
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    export_in_process(args.form, args.archs.split(","), args.out, args.inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
