"""Fixtures of the speed benchmarks: one lazily built set of engines per model, shared by the session.

Only the model being measured is kept alive (with its TF and onnxruntime twins), so the whole suite fits
in memory on a small machine; exports are cached under ``.cache/bench`` (git-ignored) between runs.
"""

from __future__ import annotations

import pytest

from benchmarks import common

common.bench_env()


class Zoo:
    """name -> {"model": graph.Model, "obj": user object, "shape", "macs", engine name -> engine}."""

    def __init__(self):
        self.threads = common.num_threads()
        self.tf = common.tf_module()
        common.configure_tf_threads(self.tf, self.threads)
        import nnlite.ops
        nnlite.ops.set_num_threads(self.threads)
        self.current: dict | None = None

    def get(self, name: str) -> dict:
        if self.current is None or self.current["name"] != name:
            self.current = None                      # free the previous model's engines first
            if name in common.KERAS_RANDOM:
                common.ensure_keras_weights([name])
            obj = common.load(name)
            model = obj.model
            shape = common.input_shape(name, model)
            self.current = {"name": name, "obj": obj, "model": model, "shape": shape,
                            "macs": common.macs(model, shape), "nnlite": common.NnliteEngine(model)}
        return self.current

    def engine(self, name: str, kind: str):
        entry = self.get(name)
        if kind not in entry:
            model, shape = entry["model"], entry["shape"]
            if kind == "tf":
                entry[kind] = common.TFEngine(common.savedmodel_path(name, model, shape))
            elif kind == "ort":
                entry[kind] = common.OrtEngine(common.onnx_path(name, model, shape), self.threads)
            elif kind == "ov":
                entry[kind] = common.OvEngine(common.onnx_path(name, model, shape), self.threads)
            elif kind == "tf_keras":
                path = common.keras_savedmodel_path(name)
                entry[kind] = None if path is None else common.TFEngine(path)
        return entry[kind]


@pytest.fixture(scope="session")
def zoo() -> Zoo:
    return Zoo()
