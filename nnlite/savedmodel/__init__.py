"""Run TensorFlow SavedModels and frozen graphs with NumPy alone.

    m = nnlite.savedmodel.load("myModel", tags=["myTag"])    # a SavedModel directory or a frozen .pb
    for op in m.operations(): print(op.name, op.type, op.shape)
    probs, = m.run({"input_1": x}, ["predictions/Softmax"])
    m.signatures["serving_default"].inputs                   # Keras 3 model.export(): tag "serve"

Modules: ``wire``/``schema`` (protobuf decoding), ``bundle`` (variables index + shards), ``graph``
(function inlining), ``plan`` (constant folding, dead-branch pruning), ``functional`` (TF2
``If``/``StatelessIf``: taken branch inlined at load, or chosen per run), ``fuse`` (conv + batch-norm +
bias + activation fusion), ``kernels`` (TensorFlow ops on nnlite.ops).
"""

from __future__ import annotations

from .model import Operation, SavedModel, Signature, TensorSpec, load

__all__ = ["load", "SavedModel", "Signature", "TensorSpec", "Operation"]
