"""SqueezeNet 1.1 in Keras from ``nnlite/weights/imagenet/squeezenet_weights.pkl`` ({layer: [kernel HWIO, bias]}).

Keras layer names cannot hold '/', so ``fire2/squeeze1x1`` becomes ``fire2_squeeze1x1``; ``names`` maps back.
"""

from __future__ import annotations

from nnlite.io._safe_pickle import load_pickled_arrays
from nnlite.models.imagenet._bundled import require

FIRES = [("fire2", 16, 64), ("fire3", 16, 64), ("fire4", 32, 128), ("fire5", 32, 128),
         ("fire6", 48, 192), ("fire7", 48, 192), ("fire8", 64, 256), ("fire9", 64, 256)]


def build(keras):
    L = keras.layers
    w = load_pickled_arrays(require("squeezenet_weights.pkl"))
    names: dict[str, str] = {}

    def conv(x, key, k, stride=1, padding="valid"):
        kernel, bias = w[key]                                 # (kh, kw, cin, cout), (cout,)
        layer = L.Conv2D(kernel.shape[-1], k, strides=stride, padding=padding, activation="relu",
                         name=key.replace("/", "_"))
        y = layer(x)
        layer.set_weights([kernel, bias])
        names[key] = layer.name
        return y

    inp = keras.Input((227, 227, 3), name="input")
    x = conv(inp, "conv1", 3, stride=2)
    x = L.MaxPooling2D(3, strides=2, name="maxpool1")(x)
    for name, _, _ in FIRES:
        if name in ("fire4", "fire6"):
            x = L.MaxPooling2D(3, strides=2, name={"fire4": "maxpool3", "fire6": "maxpool5"}[name])(x)
        s = conv(x, f"{name}/squeeze1x1", 1)
        # 3x3 expand pads 1 on each side: TF 'same' equals that at stride 1
        x = L.Concatenate(name=f"{name}_concat")([conv(s, f"{name}/expand1x1", 1),
                                                  conv(s, f"{name}/expand3x3", 3, padding="same")])
        names[f"{name}/concat"] = f"{name}_concat"
    x = conv(x, "conv10", 1)
    x = L.GlobalAveragePooling2D(name="avgpool10")(x)
    x = L.Softmax(name="softmax")(x)
    names["softmax"] = "softmax"
    return keras.Model(inp, x, name="squeezenet1_1"), names
