"""Run ONNX models with NumPy alone (no onnxruntime, no ``onnx`` package).

    m = nnlite.onnx.load("resnet.onnx")
    [m.name for m in m.inputs], [o.name for o in m.outputs]
    probs, = m.run({"input": x})              # x (N, C, H, W) as the file expects
    print(m.model.summary())                   # the nnlite graph it was lowered to

Modules: ``schema`` (message tables for nnlite's protobuf decoder), ``tensors`` (TensorProto and
external data), ``model`` (load, sort, run), ``lower`` (NCHW -> NHWC lowering onto
:class:`nnlite.graph.Model`), ``lower_nn`` / ``lower_array`` (one function per operator), ``arrays``
and ``resize`` (the generic array ops they run).
"""

from __future__ import annotations

from .model import OnnxModel, Operation, TensorSpec, load

__all__ = ["load", "OnnxModel", "TensorSpec", "Operation"]
