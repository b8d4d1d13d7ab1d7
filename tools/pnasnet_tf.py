"""PNASNet-5 Large as a TF1-Hub-format SavedModel built with TensorFlow ops: the second reference.

The talk's Go program ran the TF-Hub module as a SavedModel (empty tag set, ``default`` signature). That file
cannot be downloaded here, so this tool writes one laid out the same way from the seeded weights of
``tools/pnasnet_seeded.py``: a TF1 graph of TF-slim's ops (Conv2D, DepthwiseConv2dNative, FusedBatchNormV3 in
inference mode, MaxPool/AvgPool, Pad, StridedSlice, ConcatV2, Mean, MatMul, BiasAdd; reference variables
read through ``<name>/read``, as TF1 modules were written), variables named as in the module, images in [0, 1]
scaled to [-1, 1] inside, and signature ``default``: ``images`` (N, 331, 331, 3) -> ``default`` (N, 1001) logits.
A meta graph tagged ``train`` (the module's fine-tuning graph; here the same inference graph) sits beside it,
and ``tfhub_module.pb`` marks the folder as a TF1 Hub module.

The ops are TF-slim's, written out again here (not imported: TF-slim needs TF1's contrib), so this is an
independent description of the network; ``parity_tests/test_pnasnet_savedmodel.py`` runs it in TensorFlow and
in ``nnlite savedmodel``. Usage: ``python -m tools.pnasnet_tf OUT_DIR [--size 331]``. Needs TensorFlow.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from tools.pnasnet_seeded import BN, CELLS, COMBS, SEED, seeded_weights

EPSILON = 1e-3


class SlimGraph:
    """TF1 ops named by TF-slim scopes; ``var(name)`` makes the reference variable the weights load into."""

    def __init__(self, tf, weights: dict[str, np.ndarray]):
        self.tf, self.weights, self.variables = tf, weights, []

    def var(self, name: str):
        v1 = self.tf.compat.v1
        value = self.weights[name]
        var = v1.get_variable(name, shape=value.shape, dtype=self.tf.float32, use_resource=False,
                              initializer=v1.zeros_initializer(), trainable=True)
        self.variables.append((var, value))
        return var

    def conv(self, x, scope, stride=1, padding="SAME"):
        return self.tf.nn.conv2d(x, self.var(f"{scope}/weights"), [1, stride, stride, 1], padding, name=scope)

    def bn(self, x, scope):
        v1 = self.tf.compat.v1
        gamma, beta, mean, var = (self.var(f"{scope}/{p}") for p in BN)
        y, *_ = v1.nn.fused_batch_norm(x, gamma, beta, mean, var, epsilon=EPSILON, is_training=False,
                                       name=f"{scope}/FusedBatchNormV3")
        return y

    def sep(self, x, scope, k, stride):
        tf = self.tf
        for n in (1, 2):
            s = f"{scope}/separable_{k}x{k}_{n}"
            x = tf.nn.relu(x)
            x = tf.nn.depthwise_conv2d(x, self.var(f"{s}/depthwise_weights"), [1, stride, stride, 1], "SAME",
                                       name=f"{s}/depthwise")
            x = tf.nn.conv2d(x, self.var(f"{s}/pointwise_weights"), [1, 1, 1, 1], "VALID", name=f"{s}/pointwise")
            x = self.bn(x, f"{scope}/bn_sep_{k}x{k}_{n}")
            stride = 1
        return x

    def factorized_reduction(self, x, scope):
        tf = self.tf
        p1 = tf.nn.avg_pool2d(x, 1, 2, "VALID", name=f"{scope}/path1_pool")
        p1 = self.conv(p1, f"{scope}/path1_conv")
        p2 = tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        p2 = tf.nn.avg_pool2d(p2, 1, 2, "VALID", name=f"{scope}/path2_pool")
        p2 = self.conv(p2, f"{scope}/path2_conv")
        return self.bn(tf.concat([p1, p2], 3), f"{scope}/final_path_bn")

    def cell(self, net, prev, scope, filters, stride):
        tf = self.tf
        if prev is None:
            h1 = net
        elif prev.shape[2] != net.shape[2]:
            h1 = self.factorized_reduction(tf.nn.relu(prev), scope)
        else:
            h1 = self.bn(self.conv(tf.nn.relu(prev), f"{scope}/prev_1x1"), f"{scope}/prev_bn")
        h0 = self.bn(self.conv(tf.nn.relu(net), f"{scope}/1x1"), f"{scope}/beginning_bn")
        combs = []
        for i, (k, right) in enumerate(COMBS):
            s = f"{scope}/comb_iter_{i}"
            left_in = h1 if i in (0, 4) else combs[2] if i == 3 else h0
            left = self.sep(left_in, f"{s}/left", k, 1 if i == 3 else stride)
            right_in = h1 if i == 0 else h0
            if right == "max":
                r = tf.nn.max_pool2d(right_in, 3, stride, "SAME", name=f"{s}/right/max_pool")
                if right_in.shape[3] != filters:
                    r = self.bn(self.conv(r, f"{s}/right/1x1"), f"{s}/right/bn_1")
            elif right == "none":
                r = right_in if stride == 1 else \
                    self.bn(self.conv(tf.nn.relu(right_in), f"{s}/right/1x1", stride), f"{s}/right/bn_1")
            else:
                r = self.sep(right_in, f"{s}/right", right, stride)
            combs.append(tf.add(left, r, name=f"{s}/combine/add"))
        return tf.concat(combs, 3, name=f"{scope}/cell_output/concat")

    def network(self, images):
        tf = self.tf
        x = (images - 0.5) * 2.0                                    # the module's [0, 1] -> [-1, 1]
        net = self.bn(self.conv(x, "conv0", 2, "VALID"), "conv0_bn")
        prev = None
        for scope, filters, stride in CELLS:
            net, prev = self.cell(net, prev, scope, filters, stride), net
        x = tf.reduce_mean(tf.nn.relu(net), [1, 2], name="final_layer/global_pool")
        return tf.nn.bias_add(tf.matmul(x, self.var("final_layer/FC/weights")), self.var("final_layer/FC/biases"),
                              name="final_layer/FC/BiasAdd")


def export(out: Path, size: int = 331, seed: int = SEED) -> Path:
    """Write the SavedModel folder ``out`` (replaced if present) and return it."""
    import tensorflow as tf
    v1 = tf.compat.v1
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, (None, size, size, 3), name="images")
        net = SlimGraph(tf, seeded_weights(seed))
        logits = net.network(images)
        with v1.Session(graph=graph) as sess:
            # every variable's initial value fed at once: one run (a run per variable costs minutes)
            sess.run([var.initializer for var, _ in net.variables],
                     {var.initial_value: value for var, value in net.variables})
            net.weights, net.variables = None, []
            sig = v1.saved_model.signature_def_utils.predict_signature_def({"images": images}, {"default": logits})
            builder = v1.saved_model.Builder(str(out))
            builder.add_meta_graph_and_variables(sess, [], signature_def_map={"default": sig},
                                                 strip_default_attrs=True)
            builder.add_meta_graph(["train"], signature_def_map={"default": sig}, strip_default_attrs=True)
            builder.save()
    (out / "tfhub_module.pb").write_bytes(b"\x08\x01")   # ModuleDef{format: 1}: the TF1 Hub format marker
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=331)
    args = parser.parse_args(argv)
    print(export(args.out, args.size))


if __name__ == "__main__":
    main()
