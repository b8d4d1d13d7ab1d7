"""Run TensorFlow SavedModels and frozen graphs with NumPy alone.

    m = nnlite.savedmodel.load("myModel", tags=["myTag"])    # a SavedModel directory or a frozen .pb
    for op in m.operations(): print(op.name, op.type, op.shape)
    probs, = m.run({"input_1": x}, ["predictions/Softmax"])
    m.signatures["serving_default"].inputs                   # Keras 3 model.export(): tag "serve"

    m.model.summary()                                        # an nnlite.graph.Model, layers named as nodes

Modules: ``wire``/``schema`` (protobuf decoding), ``bundle`` (variables index + shards), ``graphdef``
(the GraphDef's nodes, function inlining), ``fold`` (constant folding, dead-branch pruning),
``functional`` (TF2 ``If``/``StatelessIf``: taken branch inlined at load, or chosen per run), ``fuse``
(batch norm / bias / scale folded into convolution weights), ``tf_layers`` (which nnlite kernel a TF op
becomes), ``tf_ops`` / ``tf_array_ops`` (TF's own semantics for the rest and for constant folding),
``lower`` (the planned nodes declared as an :class:`nnlite.graph.Model`, whose plan runs them).
"""

from __future__ import annotations

from .model import Operation, SavedModel, Signature, TensorSpec, load

__all__ = ["load", "SavedModel", "Signature", "TensorSpec", "Operation"]
