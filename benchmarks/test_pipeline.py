"""The whole face pipeline on real group photos: detect (SSD) -> landmarks -> align -> descriptor + age/gender
+ expression, with nnlite, TensorFlow or onnxruntime doing the network part.

The pipeline code (pre/post-processing, NMS, alignment: NumPy) is the same for all three; only each net's
``graph.Model`` is swapped for the engine running the same graph (benchmarks/tf_graph.py). "batch 1" is one
photo, "batch 8" is eight photos through ``detect_batch``. The faces found must be the same with every engine.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks import common
from benchmarks.test_latency import rounds_for

NETS = {"detector": "ssd_mobilenetv1", "landmarks": "face_landmark_68", "recognition": "face_recognition",
        "age_gender": "age_gender", "expression": "face_expression"}
_reference: dict[int, list] = {}


def _photos(n: int) -> list[np.ndarray]:
    photos = list(common.group_photos().values())
    return [photos[i % len(photos)] for i in range(n)]


def _pipeline(engine: str, zoo):
    from nnlite.vision.faces import FacePipeline
    pipe = FacePipeline(detector="ssd")
    for key, name in NETS.items():
        net = pipe._net(key)                    # loads the nnlite net (and its weights) once
        if engine == "nnlite":
            continue
        shape = common.input_shape(name, net.model)
        if engine == "tf":
            run = common.TFEngine(common.savedmodel_path(name, net.model, shape))
        else:
            run = common.OrtEngine(common.onnx_path(name, net.model, shape), zoo.threads)
        net.model = common.GraphAdapter(run)
    return pipe


def _summary(faces_per_photo) -> list:
    return [[(np.round(f.box, 1), f.descriptor) for f in faces] for faces in faces_per_photo]


@pytest.mark.parametrize("batch", (1, 8))
@pytest.mark.parametrize("engine", ("nnlite", "tf", "ort"))
def test_face_pipeline(benchmark, zoo, engine, batch):
    pipe = _pipeline(engine, zoo)
    photos = _photos(batch)
    start = time.perf_counter()
    found = pipe.detect_batch(photos)                           # warm-up
    first = time.perf_counter() - start
    if engine == "nnlite":
        _reference[batch] = found
    ref = _reference.get(batch)
    worst = 0.0
    if ref is not None:
        assert [len(f) for f in found] == [len(f) for f in ref], f"{engine} finds other faces than nnlite"
        for faces, ref_faces in zip(found, ref):
            for f, r in zip(faces, ref_faces):
                worst = max(worst, float(np.linalg.norm(f.descriptor - r.descriptor)))
    benchmark.group = f"face pipeline batch {batch}"
    benchmark.extra_info.update({"model": "face_pipeline", "batch": batch, "engine": engine, "threads": zoo.threads,
                                 "first_call_s": first, "faces": sum(len(f) for f in found),
                                 "max_descriptor_distance_vs_nnlite": worst,
                                 "macs": 0})   # depends on the faces found: no GFLOP/s figure
    benchmark.pedantic(pipe.detect_batch, args=(photos,), rounds=rounds_for(first), iterations=1)
    assert worst < 1e-3

