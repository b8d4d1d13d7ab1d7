"""What every benchmark shares: the model list, real-photo inputs, thread settings and the three engines.

Engines run the *same network with the same weights*:
- ``nnlite``: the model's ``graph.Model``;
- ``tf``: that graph written as a TF SavedModel (benchmarks/tf_graph.py), called through its loaded
  ``serving_default`` signature;
- ``ort``: that SavedModel converted by tf2onnx, run by onnxruntime's CPU provider;
- ``ov``: the same ONNX file, run by OpenVINO's CPU plugin (latency hint, one stream, f32 precision);
- ``tf_keras``: where one exists, the independent Keras export of the same weights used by the parity
  tests (BN not folded) - what a TensorFlow user would actually load.
Every engine is given the same thread count: ``NNLITE_NUM_THREADS``, default all cores.

Weights: the bundled ones, and for NASNetMobile / Xception / ResNet50 (no pretrained file reachable
offline) Keras's architectures with seeded random weights from tools/keras_reference.py, placed where
``nnlite fetch`` would put a download (``$NNLITE_HOME/models``), so ``nnlite.load(name)`` finds them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NNLITE_BENCH_CACHE", REPO / ".cache" / "bench"))
SHARED = Path(os.environ.get("NNLITE_SHARED", REPO.parent / "shared"))
KERAS_RANDOM = ("nasnet_mobile", "xception", "resnet50")
FACE_NETS = ("face_landmark_68", "face_landmark_68_tiny", "face_recognition", "age_gender", "face_expression")
DETECTORS = ("ssd_mobilenetv1", "tiny_face_detector")
TINY_DETECTOR_SIZE = 416
# the order of the report: face nets, detectors, then ImageNet from small to large
MODELS = (*FACE_NETS, *DETECTORS, "squeezenet1_1", "mobilenet_v2", "efficientnet_lite0", "nasnet_mobile",
          "resnet50", "xception")
ENGINES = ("nnlite", "tf", "ort", "ov", "tf_keras")
PEERS = ("ort", "ov")  # the fastest CPU runtimes: nnlite's goal is to be no slower than the faster of them
TARGETS = {  # batch-1 nnlite/TF latency ratio the issue asks for
    **{m: 0.8 for m in (*FACE_NETS, *DETECTORS, "mobilenet_v2", "squeezenet1_1")},
    **{m: 1.2 for m in ("resnet50", "xception", "nasnet_mobile")},
}


def num_threads() -> int:
    raw = os.environ.get("NNLITE_NUM_THREADS", "").strip()
    return int(raw) if raw else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                 else os.cpu_count() or 1)


def bench_env() -> None:
    """Point nnlite at the bench weight cache and pin the thread count, before nnlite/NumPy load."""
    home = CACHE / "home"
    os.environ["NNLITE_HOME"] = str(home)
    os.environ.setdefault("NNLITE_NUM_THREADS", str(num_threads()))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import nnlite.ops  # noqa: F401  - sets BLAS variables before NumPy is imported


def ensure_keras_weights(names=KERAS_RANDOM) -> None:
    """Seeded random-weight Keras .h5 files for the models with no reachable pretrained file."""
    models = CACHE / "home" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (models / f"{name}.h5").is_file():
            continue
        from tools import keras_reference
        p = keras_reference.ensure_exported(CACHE / "keras", name)
        shutil.copyfile(p["h5"], models / f"{name}.h5.tmp")
        os.replace(models / f"{name}.h5.tmp", models / f"{name}.h5")


def load(name: str):
    """The user-facing object (Classifier, face net, detector); its graph is ``.model``."""
    import nnlite
    return nnlite.load(name)


def input_shape(name: str, model) -> tuple[int, int, int]:
    (shape,) = model.inputs.values()
    if None in shape:
        return (TINY_DETECTOR_SIZE, TINY_DETECTOR_SIZE, shape[-1])
    return tuple(shape)


def photos(name: str, n: int) -> list:
    """``n`` real RGB photos: face crops for the face nets, scenes and samples for everything else."""
    import numpy as np
    from PIL import Image
    if name in FACE_NETS:
        paths = sorted((SHARED / "data" / "faceapi" / "identities").glob("*/*1.png"))
    else:
        paths = [REPO / "nnlite" / "data" / "samples" / f for f in ("chelsea.png", "coffee.png", "faces.jpg")]
        paths += sorted((SHARED / "data" / "faceapi" / "scenes").glob("*.jpg"))
    out = []
    for i in range(n):
        with Image.open(paths[i % len(paths)]) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out



GROUP_PHOTOS = ("bbt1", "bbt2", "bbt3", "bbt4", "bbt5")   # ../shared/data/faceapi/scenes: 3-6 faces each


def group_photos() -> dict:
    """The group scenes the face-pipeline benchmarks share, by name, as RGB arrays (those present)."""
    import numpy as np
    from PIL import Image
    out = {}
    for name in GROUP_PHOTOS:
        path = SHARED / "data" / "faceapi" / "scenes" / f"{name}.jpg"
        if path.is_file():
            with Image.open(path) as im:
                out[name] = np.asarray(im.convert("RGB"))
    return out

def input_batch(name: str, shape: tuple, n: int):
    """(n, H, W, 3) float32 from real photos resized to the net input, scaled to [-1, 1].

    The exact per-model normalisation does not change the work done; real photos keep activations
    realistic (no denormals, realistic ReLU sparsity)."""
    import numpy as np
    from PIL import Image
    h, w, _ = shape
    out = [np.asarray(Image.fromarray(p).resize((w, h), Image.BILINEAR), np.float32) for p in photos(name, n)]
    return (np.stack(out) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def macs(model, shape) -> int:
    """Multiply-accumulates per example, from the model's own layer table."""
    return int(sum(r["macs"] for r in model.layer_table(input_shape=tuple(shape))))


# -- engines -------------------------------------------------------------------------------------------

def tf_module():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return tf


def configure_tf_threads(tf, n: int) -> None:
    """Same thread count as nnlite; must run before TensorFlow creates its runtime."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # already initialised in this process: keep what is set
        pass


def savedmodel_path(name: str, model, shape) -> Path:
    from . import tf_graph
    return tf_graph.export_savedmodel(model, shape, CACHE / "tf" / name)


def onnx_path(name: str, model, shape) -> Path:
    from . import tf_graph
    return tf_graph.export_onnx(savedmodel_path(name, model, shape), CACHE / "onnx" / f"{name}.onnx")


def keras_savedmodel_path(name: str) -> Path | None:
    """The independent Keras export of the same weights, where the repo's tools make one."""
    if name in KERAS_RANDOM:
        from tools import keras_reference
        return keras_reference.ensure_exported(CACHE / "keras", name)["savedmodel"]
    from tools import imagenet_tf
    if name in imagenet_tf.MODULES:
        return imagenet_tf.export_savedmodel(name, CACHE / "keras")
    return None


class NnliteEngine:
    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        out = self.model(x)
        return list(out) if isinstance(out, tuple) else [out]


class TFEngine:
    """A loaded SavedModel signature; outputs converted to NumPy, as a user would."""

    def __init__(self, path: Path, n_outputs: int | None = None, signature: str = "serving_default"):
        tf = tf_module()
        self._tf = tf
        self.loaded = tf.saved_model.load(str(path))          # keep: owns the variables
        self.fn = self.loaded.signatures[signature]
        (self.arg,) = self.fn.structured_input_signature[1].keys()
        self.keys = sorted(self.fn.structured_outputs.keys())[:n_outputs]

    def __call__(self, x):
        out = self.fn(**{self.arg: self._tf.constant(x)})
        return [out[k].numpy() for k in self.keys]


class OrtEngine:
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.arg = self.sess.get_inputs()[0].name
        self.names = sorted(o.name for o in self.sess.get_outputs())

    def __call__(self, x):
        return self.sess.run(self.names, {self.arg: x})


class OvEngine:
    """OpenVINO on the ONNX file: one compiled model, one infer request, outputs in ORT's (sorted) order."""

    def __init__(self, path: Path, threads: int):
        import openvino as ov
        core = ov.Core()
        # f32 like every other engine: on CPUs with bf16 (avx512_bf16, AMX) OpenVINO otherwise computes in bf16
        self.compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                              "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                                                              "INFERENCE_PRECISION_HINT": "f32"})
        self.request = self.compiled.create_infer_request()
        # ORT's order: the ONNX output names, sorted (get_any_name may give another of a tensor's names)
        import onnx
        names = sorted(o.name for o in onnx.load(str(path), load_external_data=False).graph.output)
        self.outputs = [self.compiled.output(name) for name in names]

    def __call__(self, x):
        import numpy as np
        result = self.request.infer([x])
        return [np.asarray(result[o]) for o in self.outputs]


class GraphAdapter:
    """Makes an engine look like a ``graph.Model`` call (array, or tuple for several outputs), so a
    pipeline can run unchanged with TF or onnxruntime doing the network part."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self, x):
        outs = self.engine(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


def run_child(module: str, *args: str, env: dict | None = None, timeout: float | None = None) -> dict:
    """``python -m module *args`` in a fresh process (its own memory peak, its own Numba state), from the
    repository root; returns the JSON object on the last line of its output. A failure raises with its stderr."""
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
