"""ArcFace (InsightFace) face embeddings: five-point alignment onto the 112x112 template, then an ONNX
recogniser run by :mod:`nnlite.onnx`, L2-normalised.

Steps for one face with 68 landmarks (iBUG 68-point order, image coordinates):

1. five points: the two eye centres (mean of points 36-41 and 42-47), the nose tip (30) and the mouth
   corners (48, 54), in the order of InsightFace's template (image-left eye first);
2. the similarity transform (rotation, uniform scale, translation; no reflection) that maps them onto
   :data:`TEMPLATE_112` in the least-squares sense (Umeyama's closed form), and the 112x112 crop it
   defines (bilinear, zeros outside the image);
3. RGB pixels to ``(x - 127.5) / 127.5``, NCHW, the model, and the 512-d output divided by its L2 norm.

Embeddings of one person have a high cosine similarity; :data:`DEFAULT_COSINE_THRESHOLD` is the
default same-person cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError, ShapeError

# InsightFace's published five reference points (x, y) for its 112x112 ArcFace crops:
# left eye, right eye, nose tip, left mouth corner, right mouth corner (image left/right).
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)

# Same person when cosine similarity >= this. A common operating point for ArcFace embeddings on
# unconstrained photos; tune it on your own pairs where false matches are costly.
DEFAULT_COSINE_THRESHOLD = 0.35


def five_points(landmarks68) -> np.ndarray:
    """(5, 2): eye centres, nose tip, mouth corners from 68 landmarks (the template's order)."""
    p = np.asarray(landmarks68, np.float64)
    if p.shape != (68, 2):
        raise ShapeError(f"arcface: expected 68 landmarks (68, 2), found shape {p.shape}")
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def similarity_transform(src, dst) -> np.ndarray:
    """The 2x3 matrix M of the similarity (scale, rotation, translation) minimising
    sum ||M [src_i, 1] - dst_i||^2 -- Umeyama (1991), without reflections."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)                      # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:    # a reflection would fit better: forbid it
        fix[1, 1] = -1
    rot = u @ fix @ vt
    var = (s0 ** 2).sum() / len(src)
    if var == 0:
        raise ShapeError("arcface: the five landmarks coincide; cannot align the face")
    scale = float(np.trace(np.diag(sig) @ fix)) / var
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def warp_affine(img: np.ndarray, m: np.ndarray, size: int = 112) -> np.ndarray:
    """(size, size, 3) float32: output pixel (x, y) samples ``img`` bilinearly at M^-1 (x, y), pixel
    centres on integer coordinates, zeros outside the image."""
    a = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(a)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    src = np.asarray(img, np.float32)
    h, w = src.shape[:2]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    out = np.zeros((size, size, src.shape[2]), np.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            inside = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w))[..., None]
            out += np.where(inside, src[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], 0.0) * wy * wx
    return out.astype(np.float32)


def align(img: np.ndarray, landmarks68) -> np.ndarray:
    """The 112x112 ArcFace crop (float32 RGB 0..255) of the face with these 68 landmarks."""
    return warp_affine(img, similarity_transform(five_points(landmarks68), TEMPLATE_112), 112)


class ArcFaceRecognizer:
    """An ArcFace ONNX model (input (N, 3, 112, 112) RGB in -1..1, output (N, 512)) run by nnlite.onnx."""

    name = "arcface"

    def __init__(self, model_path):
        from .. import onnx
        if model_path is None:
            raise ModelError("arcface: pass the recogniser's .onnx file (--arcface-model PATH / arcface_model=)")
        self.path = Path(model_path)
        self.onnx = onnx.load(self.path)
        if len(self.onnx.inputs) != 1:
            raise ModelError(f"{self.path}: an ArcFace model has one input, this one has {len(self.onnx.inputs)}")
        spec = self.onnx.inputs[0]
        if len(spec.shape) != 4 or spec.shape[1] != 3 or tuple(spec.shape[2:]) not in ((112, 112), (None, None)):
            raise ModelError(f"{self.path}: expected an input (N, 3, 112, 112), found {spec.name} {spec.shape}")
        self.input_name = spec.name

    def embed(self, crops) -> np.ndarray:
        """(N, 512) unit-length embeddings of aligned 112x112 RGB crops (0..255)."""
        x = np.asarray(crops, np.float32)
        if x.ndim == 3:
            x = x[None]
        x = ((x - np.float32(127.5)) / np.float32(127.5)).transpose(0, 3, 1, 2)
        (y,) = self.onnx.run({self.input_name: np.ascontiguousarray(x)}, [self.onnx.outputs[0].name])
        y = y.reshape(len(x), -1).astype(np.float64)
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return (y / np.maximum(norms, 1e-12)).astype(np.float32)

    def describe(self, img: np.ndarray, landmarks: list) -> list[np.ndarray]:
        """One embedding per face (its 68 landmarks), from the aligned crops of ``img``."""
        if not landmarks:
            return []
        return list(self.embed(np.stack([align(img, lm) for lm in landmarks])))


def cosine_similarity(a, b) -> float:
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.size != b.size:
        raise ShapeError(f"cosine_similarity: descriptors differ in length ({a.size} vs {b.size})")
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den else 0.0
