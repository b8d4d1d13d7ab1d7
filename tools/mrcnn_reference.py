"""matterport's Mask R-CNN (package ``mrcnn-colab``, module ``mrcnn``) run on today's TensorFlow, as the
parity reference for :mod:`nnlite.models.maskrcnn`; and seeded weights in the official file's layout.

matterport wrote the model for TensorFlow 1.x and Keras 2.x. :func:`import_mrcnn` is the whole
compatibility shim; each of its lines says why it is needed. Nothing in ``mrcnn`` is edited.

Usage: write a seeded weights file with the reference model's own ``save_weights`` (when missing), then
record every output of the reference for some images at some sizes in one ``.npz``::

    python -m tools.mrcnn_reference seeded.h5 --dump out.npz --size 256 --size 512 skimage:astronaut a.jpg

The parity tests run this in a subprocess: the shim switches TensorFlow to graph mode for the whole
process, which other parity tests (eager) must not inherit.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np

SEED = 0
LOGIT_STD = 0.03


def import_mrcnn():
    """``mrcnn.model`` importable and runnable on TensorFlow 2 with tf-keras (the Keras 2 API)."""
    import tensorflow as tf
    import tf_keras
    # mrcnn does `import keras` and means Keras 2: tf-keras is that API, packaged for TensorFlow 2
    sys.modules["keras"] = tf_keras
    # `keras.engine.Layer` moved in Keras 2.2+; mrcnn only uses `KE.Layer` from it
    engine = types.ModuleType("keras.engine")
    engine.Layer = tf_keras.layers.Layer
    sys.modules["keras.engine"] = tf_keras.engine = engine   # `import keras.engine as KE` reads both
    # the custom layers loop over Python lists of tensors and call session-era ops: build a TF1-style graph
    tf.compat.v1.disable_eager_execution()
    from mrcnn import model
    # tf.log, tf.to_float, tf.sets.set_intersection, tf.sparse_tensor_to_dense exist under compat.v1 only
    model.tf = tf.compat.v1
    # TF1 knew the static shape (batch, proposal_count, 4) after ProposalLayer / PyramidROIAlign; TF2's ops
    # lose it through tf.pad, and the Reshape of `mrcnn_bbox` needs it: restore it from the layers' own
    # compute_output_shape (no numerical effect)
    for cls in (model.ProposalLayer, model.PyramidROIAlign):
        if not hasattr(cls.call, "restores_shape"):   # once per process
            cls.call = _with_static_shape(cls.call)
    return model


def _with_static_shape(call):
    def wrapped(self, inputs, *args, **kwargs):
        out = call(self, inputs, *args, **kwargs)
        out.set_shape(self.compute_output_shape([tuple(t.shape) for t in inputs]))
        return out
    wrapped.restores_shape = True
    return wrapped


def inference_config(image_max_dim: int = 1024, min_confidence: float = 0.7):
    """The inference config of matterport's COCO demo (``InferenceConfig`` of ``samples/coco``)."""
    from mrcnn.config import Config

    class CocoInference(Config):
        NAME = "coco"
        NUM_CLASSES = 1 + 80
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        IMAGE_MAX_DIM = image_max_dim
        DETECTION_MIN_CONFIDENCE = min_confidence
    return CocoInference()


def build(image_max_dim: int = 1024, weights: str | Path | None = None, log_dir: str = "/tmp/mrcnn_logs"):
    """The reference ``MaskRCNN`` in inference mode, with ``weights`` (a .h5 file) loaded when given."""
    model = import_mrcnn()
    net = model.MaskRCNN("inference", inference_config(image_max_dim), log_dir)
    if weights is not None:
        # Keras's own by-name .h5 loading (MaskRCNN.load_weights calls a Keras 2.0 helper that takes a layer list)
        net.keras_model.load_weights(str(weights), by_name=True)
    return net


def layers_with_weights(keras_model) -> list:
    """Every layer holding weights, nested models (``rpn_model``) expanded, in the model's layer order."""
    out = []
    for layer in keras_model.layers:
        if hasattr(layer, "layers"):
            out.extend(layers_with_weights(layer))
        elif layer.weights:
            out.append(layer)
    return out


def seed_weights(keras_model, seed: int = SEED) -> None:
    """Deterministic weights shaped so the seeded model behaves like a trained one where parity needs it.

    - convolutions: He-normal (std sqrt(2 / fan_in)), so activations keep their scale through 101 layers;
      biases N(0, 0.01);
    - batch norms: gamma U(0.5, 1), beta N(0, 0.1), moving mean N(0, 0.1), moving variance U(0.5, 1.5);
      the last batch norm of each residual branch (``bn*_branch2c``) has gamma U(0.1, 0.3), so the sum of 33
      residual blocks does not grow without bound;
    - ``mrcnn_class_logits``: std LOGIT_STD / sqrt(fan_in) with background bias +1. The 1024 features
      reaching it are large (the frozen batch norms do not normalise random activations), so LOGIT_STD was
      measured, not derived: at 1.0 every top probability is 1.0 in float32 (ties), at 0.01 none passes 0.7;
      0.03 spreads the top class probability over about 0.3-0.99 with tens of ROIs above 0.7 per photo;
    - box deltas (``rpn_bbox_pred``, ``mrcnn_bbox_fc``): std 0.5 / sqrt(fan_in), refinements of a few
      percent like a trained model's; ``mrcnn_mask``: std 2 / sqrt(fan_in), so mask probabilities spread
      around the 0.5 threshold.
    Continuous random values make exact score ties (NMS, top-k) rare; the ties that remain (ROIs lying in
    the zero padding of a non-square photo see identical features) are broken by index in both.
    """
    import tf_keras
    rng = np.random.default_rng(seed)
    assignments = []
    for layer in layers_with_weights(keras_model):
        name = layer.name
        for w in layer.weights:
            shape = tuple(int(s) for s in w.shape)
            kind = w.name.split("/")[-1].split(":")[0]
            if kind in ("kernel", "depthwise_kernel"):
                fan_in = int(np.prod(shape[:-1])) if "deconv" not in name else int(np.prod(shape[:2]) * shape[3])
                std = np.sqrt(2.0 / fan_in)
                if name == "mrcnn_class_logits":
                    std = LOGIT_STD / np.sqrt(fan_in)
                elif name in ("rpn_bbox_pred", "mrcnn_bbox_fc"):
                    std = 0.5 / np.sqrt(fan_in)
                elif name == "mrcnn_mask":
                    std = 2.0 / np.sqrt(fan_in)
                v = rng.normal(0.0, std, shape)
            elif kind == "bias":
                v = rng.normal(0.0, 0.01, shape)
                if name == "mrcnn_class_logits":
                    v[0] += 1.0
            elif kind == "gamma":
                low, high = (0.1, 0.3) if name.endswith("branch2c") else (0.5, 1.0)
                v = rng.uniform(low, high, shape)
            elif kind in ("beta", "moving_mean"):
                v = rng.normal(0.0, 0.1, shape)
            elif kind == "moving_variance":
                v = rng.uniform(0.5, 1.5, shape)
            else:
                raise ValueError(f"unexpected weight {w.name} in layer {name}")
            assignments.append((w, v.astype(np.float32)))
    tf_keras.backend.batch_set_value(assignments)   # one session run, not one per layer


def run(net, image: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the reference for one RGB uint8 image: molded input, RPN outputs, proposals,
    classifier outputs, detections, masks, the FPN levels P2..P6 and the unmolded final result."""
    import tf_keras as K
    molded, metas, windows = net.mold_inputs([image])
    anchors = net.get_anchors(molded[0].shape)[np.newaxis]
    km = net.keras_model
    names = ["detections", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "rpn_rois", "rpn_class", "rpn_bbox"]
    levels = [f"fpn_p{i}" for i in range(2, 7)]
    fn = K.backend.function(km.inputs, list(km.outputs) + [km.get_layer(n).output for n in levels])
    values = fn([molded, metas, anchors])
    out = {n: np.asarray(v[0]) for n, v in zip(names + levels, values)}
    out.update(molded=molded[0], image_meta=metas[0], window=windows[0], anchors=anchors[0])
    rois, class_ids, scores, masks = net.unmold_detections(out["detections"], out["mrcnn_mask"], image.shape,
                                                           molded[0].shape, windows[0])
    out.update(rois=rois, class_ids=class_ids, scores=scores, masks=masks)
    # mask probabilities of the detections only (the zero rows after them are 25 MB of nothing to compare)
    out["mrcnn_mask"] = out["mrcnn_mask"][:int(np.count_nonzero(out["detections"][:, 4]))]
    return out


def write_seeded_weights(path: str | Path, seed: int = SEED, image_max_dim: int = 256):
    """Build the reference, seed it, save with its own ``save_weights``; returns the reference model."""
    net = build(image_max_dim)
    seed_weights(net.keras_model, seed)
    net.keras_model.save_weights(str(path))
    return net


def read_image(spec: str) -> np.ndarray:
    """``skimage:NAME`` (a scikit-image sample) or a file path -> RGB uint8, as matterport's demo reads it."""
    import skimage.color
    import skimage.data
    import skimage.io
    image = getattr(skimage.data, spec.split(":", 1)[1])() if spec.startswith("skimage:") else skimage.io.imread(spec)
    if image.ndim == 2:
        image = skimage.color.gray2rgb(image)
    return image[..., :3]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="the .h5 file: written (seeded) when missing, else loaded")
    parser.add_argument("images", nargs="*", help="skimage:NAME or image paths to run the reference on")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--dump", help="write every reference output to this .npz")
    parser.add_argument("--size", type=int, action="append", help="IMAGE_MAX_DIM (repeatable)")
    args = parser.parse_intermixed_args(argv)
    sizes = args.size or [1024]
    if Path(args.weights).exists():
        net = build(sizes[0], args.weights)
    else:
        tmp = Path(args.weights).with_suffix(".partial.h5")
        net = write_seeded_weights(tmp, args.seed, sizes[0])
        tmp.rename(args.weights)
    arrays = {}
    for size in sizes:
        # the Keras graph takes any multiple of 64; only molding reads these two settings
        net.config.IMAGE_MAX_DIM = size
        net.config.IMAGE_SHAPE = np.array([size, size, 3])
        for i, spec in enumerate(args.images):
            for key, value in run(net, read_image(spec)).items():
                arrays[f"{size}/{i}/{key}"] = np.asarray(value)
    if args.dump:
        np.savez(args.dump, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
