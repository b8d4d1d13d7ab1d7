"""nnlite's bundled pretrained MobileNetV2 as the Go talk's SavedModel: the README's "save with TensorFlow, run
with nnlite" recipe with a model that gives real answers.

The network is torchvision's MobileNetV2 rebuilt in Keras from ``nnlite/weights/imagenet/mobilenet_v2-b0353104.pth``
(``tools/imagenet_tf/mobilenet_v2.py``), wrapped so that it reads what a Go program has at hand: input
``input_1``, a (None, 224, 224, 3) float32 RGB image 0..255 (torchvision's mean/std normalisation is inside the
graph), output ``predictions`` (``predictions/Softmax`` in the TF1 graph), 1000 ImageNet probabilities.

    python -m tools.go_talk_model myModel                 # TF1 style, tag myTag (the talk's Builder call)
    python -m tools.go_talk_model myModel-k3 --keras3     # Keras 3 model.export (signature serving_default)

Each run then loads what it saved in TensorFlow and prints the top class of the bundled cat photo (resized to
224 x 224 with Pillow's bilinear filter, as ``nnlite savedmodel --feed input_1=IMAGE`` does). Needs the test
extra (TensorFlow, tf_keras); run from a checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CAT = REPO / "nnlite" / "data" / "samples" / "chelsea.png"
TAG = "myTag"
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0     # torchvision's ImageNet statistics, 0..255 scale
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


def pretrained_mobilenet_v2(keras):
    """The Keras model (``keras``: Keras 3 or tf_keras): ``input_1`` 0..255 RGB -> ``predictions`` softmax."""
    from tools.imagenet_tf.mobilenet_v2 import build
    core, _ = build(keras)
    inp = keras.Input((224, 224, 3), name="input_1")
    # (x - mean) / std as one affine layer with fixed weights: a plain op in every export (no Lambda code)
    norm = keras.layers.DepthwiseConv2D(1, use_bias=True, name="normalize")
    x = norm(inp)
    norm.set_weights([(1.0 / STD).reshape(1, 1, 3, 1), -MEAN / STD])
    x = core(x)
    out = keras.layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inp, out, name="mobilenet_v2_go_talk")


def cat_batch(path: Path = CAT) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR), np.float32)[None]


def top_label(probs: np.ndarray) -> tuple[str, float]:
    from nnlite.vision.labels import imagenet_labels
    i = int(np.argmax(probs[0]))
    return imagenet_labels().names[i], float(probs[0, i])


def save_tf1(out: Path) -> tuple[str, float]:
    """The README's recipe: TF1 graph mode, tf.keras = tf_keras, the Builder under tag myTag."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"      # before TensorFlow is imported
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    model = pretrained_mobilenet_v2(tf.keras)
    sess = tf.compat.v1.keras.backend.get_session()
    builder = tf.compat.v1.saved_model.Builder(str(out))
    builder.add_meta_graph_and_variables(sess, [TAG])
    builder.save()
    assert (model.input.op.name, model.output.op.name) == ("input_1", "predictions/Softmax")
    with tf.Graph().as_default() as g, tf.compat.v1.Session(graph=g) as s:
        tf.compat.v1.saved_model.loader.load(s, [TAG], str(out))
        probs = s.run("predictions/Softmax:0", {"input_1:0": cat_batch()})
    return top_label(probs)


def save_keras3(out: Path) -> tuple[str, float]:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import keras
    import tensorflow as tf
    model = pretrained_mobilenet_v2(keras)
    model.export(str(out), format="tf_saved_model", verbose=False)
    fn = tf.saved_model.load(str(out)).signatures["serving_default"]
    (in_key,) = fn.structured_input_signature[1].keys()
    (out_key,) = fn.structured_outputs.keys()
    return top_label(fn(**{in_key: tf.constant(cat_batch())})[out_key].numpy())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="SavedModel folder to write (must not exist)")
    parser.add_argument("--keras3", action="store_true", help="Keras 3 model.export instead of the TF1 Builder")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists; choose a new folder")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    label, p = (save_keras3 if args.keras3 else save_tf1)(args.out)
    print(f"{args.out}: TensorFlow says {CAT.name} is {label} ({p:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
