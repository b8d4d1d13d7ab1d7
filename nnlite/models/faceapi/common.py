"""What the face-api.js face nets (landmarks, recognition, age/gender, expression) share.

Input rule (face-api.js ``NetInput.toBatchTensor(size, centred=True)`` on its tensor path):

1. each image is made RGB uint8 (:func:`nnlite.image.as_rgb`: greyscale repeated, alpha dropped) and
   zero-padded to a square *centred* (:func:`nnlite.image.pad_to_square`): ``round_half_up(diff / 2)``
   rows/columns go after the image (bottom/right), the rest before it, so an odd difference puts the
   extra line bottom/right (face-api.js's padToSquare);
2. the square is bilinearly resized to ``size`` with the legacy TF1 / tfjs rule
   (``align_corners=False``, *no* half-pixel centres), unless it already has that size;
3. the batch is normalised per net: ``(x - mean_rgb) / divisor``.

The dense blocks of the landmark and expression nets live here too, since three nets use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ... import ops
from ...errors import ShapeError, WeightsError
from ...graph import GraphBuilder
from ...image import as_rgb, pad_to_square

# ImageNet-like per-channel means every face-api.js face net subtracts (RGB order).
MEAN_RGB = (122.782, 117.001, 104.298)


def to_square_tensor(image, size: int) -> np.ndarray:
    """One image -> (1, size, size, 3) float32: RGB by nnlite.image's one rule, centred pad to square
    (:func:`nnlite.image.pad_to_square`), then float32 and the tfjs bilinear resize."""
    square, _ = pad_to_square(as_rgb(image, name="face net input"), center=True)
    x = square[None].astype(np.float32)                             # (1, side, side, 3)
    if x.shape[1] != size:
        x = ops.for_engine("resize_bilinear")(x, size=(size, size), half_pixel_centers=False, align_corners=False)
    return x


def to_batch_tensor(images: Sequence, size: int, mean_rgb=MEAN_RGB, divisor: float = 255.0) -> np.ndarray:
    """A list of RGB images of any sizes -> the normalised (N, size, size, 3) net input."""
    if len(images) == 0:
        raise ShapeError("face net input: expected at least one image, found an empty list")
    batch = np.concatenate([to_square_tensor(img, size) for img in images], axis=0)
    return (batch - np.asarray(mean_rgb, np.float32)) / np.float32(divisor)


def image_sizes(images: Sequence) -> list[tuple[int, int]]:
    """(width, height) of each image, as the post-processing of the landmark nets needs them."""
    return [(int(np.shape(img)[1]), int(np.shape(img)[0])) for img in images]


def as_image_list(images) -> tuple[list, bool]:
    """Accept one image or a list of images; returns (list, was_single)."""
    if isinstance(images, (list, tuple)):
        return list(images), False
    return [images], True


# -- building blocks -----------------------------------------------------------------------------------


def separable(g: GraphBuilder, w: Mapping[str, np.ndarray], name: str, x: str, *, stride: int = 1,
              activation=None) -> str:
    """face-api.js's depthwiseSeparableConv: separable conv, 'same' padding, plus bias."""
    return g.layer("separable_conv2d", name, x,
                   depthwise_kernel=w[f"{name}/depthwise_filter"],   # (3, 3, cin, 1)
                   pointwise_kernel=w[f"{name}/pointwise_filter"],   # (1, 1, cin, cout)
                   bias=w[f"{name}/bias"],                           # (cout,)
                   stride=stride, padding="same", activation=activation)


def dense_block(g: GraphBuilder, w: Mapping[str, np.ndarray], name: str, x: str, *, n_convs: int,
                first: bool = False) -> str:
    """A densely connected block of 3 or 4 convolutions that halves the resolution.

    conv0 (a plain 3x3 conv in the first block, else separable; stride 2; ReLU) gives out0; each later
    conv k reads relu(out0 + ... + out{k-1}) and the block returns relu(out0 + ... + out{n-1}).
    """
    conv0 = f"{name}/conv0"
    if first:
        out = g.layer("conv2d", conv0, x, kernel=w[f"{conv0}/filters"],   # (3, 3, 3, 32)
                      bias=w[f"{conv0}/bias"], stride=2, padding="same", activation="relu")
    else:
        out = separable(g, w, conv0, x, stride=2, activation="relu")
    outs = [out]
    for k in range(1, n_convs):
        inp = outs[0] if k == 1 else g.layer("relu", f"{name}/relu{k}", g.layer("add", f"{name}/add{k}", *outs))
        outs.append(separable(g, w, f"{name}/conv{k}", inp))
    return g.layer("relu", f"{name}/relu", g.layer("add", f"{name}/add", *outs))


def dense_feature_extractor(g: GraphBuilder, w: Mapping[str, np.ndarray], x: str, *, n_blocks: int,
                            n_convs: int) -> str:
    """The 112x112 face feature extractor: ``n_blocks`` dense blocks, then the average pool to 1x1.

    4 blocks of 4 convs (112 -> 7, pool 7x7) for FaceLandmark68Net and FaceExpressionNet;
    3 blocks of 3 convs (112 -> 14, pool 14x14) for FaceLandmark68TinyNet.
    """
    for b in range(n_blocks):
        x = dense_block(g, w, f"dense{b}", x, n_convs=n_convs, first=(b == 0))
    pool = 112 >> n_blocks
    x = g.layer("avg_pool2d", "avg_pool", x, pool_size=pool, stride=2, padding="valid")   # (N, 1, 1, C)
    return g.layer("flatten", "flatten", x)                                                # (N, C)


def fc(g: GraphBuilder, w: Mapping[str, np.ndarray], name: str, x: str, activation=None) -> str:
    """Fully connected layer ``name`` reading ``name/weights`` (in, out) and ``name/bias`` (out,)."""
    return g.layer("dense", name, x, kernel=w[f"{name}/weights"], bias=w[f"{name}/bias"],
                   activation=activation)


class NetWeights(Mapping):
    """The manifest dictionary of one net; a missing key is a WeightsError naming the net and the key.

    It records which keys the model read, so :meth:`check_all_used` can catch a manifest whose names do
    not match the architecture (a renamed key would otherwise be silently ignored).
    """

    def __init__(self, net: str, weights: Mapping[str, np.ndarray]):
        self.net = net
        self._weights = dict(weights)
        self._used: set[str] = set()

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            value = self._weights[key]
        except KeyError:
            raise WeightsError(f"{self.net}: weight {key!r} not found in the manifest "
                               f"({len(self._weights)} entries)") from None
        self._used.add(key)
        return np.asarray(value, np.float32)

    def __iter__(self):
        return iter(self._weights)

    def __len__(self) -> int:
        return len(self._weights)

    def check_all_used(self) -> None:
        unused = sorted(set(self._weights) - self._used)
        if unused:
            raise WeightsError(f"{self.net}: {len(unused)} manifest weight(s) not used by the model, "
                               f"e.g. {unused[:3]}; the manifest does not match this architecture")


class FaceNet:
    """Base of the five face nets: load the manifest, build the graph, preprocess a list of images.

    Subclasses set ``net`` (manifest name), ``input_size``, ``divisor`` and implement ``build`` (the layers
    after the input).
    ``weights`` may be given directly (a ``{manifest key: array}`` dict) instead of the bundled file.
    """

    net: str = ""
    input_size: int = 112
    divisor: float = 255.0

    def __init__(self, weights: Mapping[str, np.ndarray] | None = None):
        if weights is None:
            from .weights import load_net_weights
            weights = load_net_weights(self.net)
        w = NetWeights(self.net, weights)
        g = GraphBuilder(self.net)
        self.model = self.build(w, g, g.input("input", (self.input_size, self.input_size, 3)))
        w.check_all_used()

    def build(self, w: NetWeights, g: GraphBuilder, x: str):  # pragma: no cover - every subclass overrides it
        """The net's layers after its (size, size, 3) RGB input ``x`` in builder ``g``; returns the Model."""
        raise NotImplementedError

    def preprocess(self, images) -> np.ndarray:
        """One image or a list -> the normalised (N, size, size, 3) input (see the module docstring)."""
        images, _ = as_image_list(images)
        return to_batch_tensor(images, self.input_size, divisor=self.divisor)

    def forward(self, images):
        """Raw net output(s) for one image or a list of images (any sizes, RGB)."""
        return self.model(self.preprocess(images))
