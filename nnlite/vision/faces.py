"""The face pipeline: detect -> 68 landmarks -> aligned crop -> 128-d descriptor (+ age/gender, expression).

    >>> from nnlite.image import load_image
    >>> from nnlite.vision.faces import FacePipeline, FaceMatcher
    >>> faces = FacePipeline().detect(load_image("group.jpg"))   # list[Face], boxes in original pixels
    >>> FaceMatcher({"amy": [faces[0].descriptor]}).match(faces[1].descriptor)   # ("amy", 0.41) or ("unknown", d)

Steps per detected face, as face-api.js's ``detectAllFaces(...).withFaceLandmarks().withFaceDescriptors()``
on its tensor path:

1. crop the detection box (floored, clipped) and run the landmark net on it; landmarks are shifted back
   by the unfloored detection corner;
2. align, as face-api.js does (``"facecrop"``): the descriptor reads the dlib-style box around the eyes
   and mouth, age/gender and expression read the landmark bounding box padded by 20 %; both boxes are
   floored and clipped. ``"rotate"`` first rotates the image so the eyes are level, then takes the same
   two boxes of the rotated landmarks (:mod:`nnlite.vision.align`);
3. descriptor, age/gender and expression nets on those crops.

Two descriptors of one person are usually closer than 0.6 (face-api.js's default threshold).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, ModelError, ShapeError
from ..image import load_image
from . import align as _align
from .arcface import DEFAULT_COSINE_THRESHOLD

EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
DEFAULT_THRESHOLD = 0.6


@dataclass
class Face:
    """One face. ``box`` (x, y, w, h) and ``landmarks`` (68, 2) are in original-image pixels.

    The one face type: the pipeline returns it, and the photo library (:mod:`nnlite.library`) stores
    and returns it too (the library's index keeps every field but ``aligned_box``)."""
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray                       # (68, 2) float32
    descriptor: np.ndarray | None = None        # (128,) faceapi or (512,) arcface, float32
    age: float | None = None
    gender: str | None = None                   # "male" | "female"
    gender_probability: float | None = None
    expression: dict[str, float] | None = None  # the 7 labels of EXPRESSIONS -> probability
    recognizer: str = "faceapi"                 # which net made the descriptor (see nnlite.vision.recognizers)
    aligned_box: tuple[float, float, float, float] | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        """The ``nnlite faces --json`` shape of one face (plain Python numbers and lists)."""
        return {
            "box": [float(v) for v in self.box],
            "score": float(self.score),
            "landmarks": [[float(x), float(y)] for x, y in np.asarray(self.landmarks)],
            "recognizer": self.recognizer,
            "descriptor": None if self.descriptor is None else [float(v) for v in self.descriptor],
            "age": None if self.age is None else float(self.age),
            "gender": self.gender,
            "gender_probability": None if self.gender_probability is None else float(self.gender_probability),
            "expression": None if self.expression is None else {k: float(self.expression[k]) for k in EXPRESSIONS},
        }

    @property
    def area(self) -> float:
        return max(self.box[2], 0.0) * max(self.box[3], 0.0)


class FacePipeline:
    """Find every face in an image with its landmarks, descriptor and (optionally) age/gender/expression.

    detector: "ssd" (SsdMobilenetv1, 512 input) or "tiny" (TinyFaceDetector, ``input_size``, default 416);
    min_score: detection threshold (face-api.js default 0.5); align: "facecrop" | "rotate";
    landmarks: "full" | "tiny" landmark net; attributes: also run age/gender and expression nets.
    recognizer: "faceapi" (128-d, face-api.js) or "arcface" (512-d, the ONNX model ``arcface_model``,
    see :mod:`nnlite.vision.arcface`). The nets load once, on first use.
    """

    def __init__(self, detector: str = "ssd", min_score: float = 0.5, align: str = "facecrop",
                 landmarks: str = "full", attributes: bool = True, input_size: int = 416,
                 recognizer: str = "faceapi", arcface_model=None):
        _choice("detector", detector, ("ssd", "tiny"))
        _choice("recognizer", recognizer, ("faceapi", "arcface"))
        if recognizer == "arcface" and arcface_model is None:
            raise ModelError("face pipeline: recognizer 'arcface' needs arcface_model= (an ArcFace .onnx file)")
        self.recognizer, self.arcface_model = recognizer, arcface_model
        _choice("align", align, ("facecrop", "rotate"))
        _choice("landmarks", landmarks, ("full", "tiny"))
        if not isinstance(min_score, (int, float, np.number)) or not 0.0 < float(min_score) < 1.0:
            # the detectors need 0 < min_score < 1: fail here, before any net loads
            raise ModelError(f"face pipeline: min_score must be a number in (0, 1), found {min_score!r}")
        self.detector_name, self.min_score, self.align = detector, float(min_score), align
        self.landmarks_name, self.attributes, self.input_size = landmarks, bool(attributes), int(input_size)
        self._nets: dict[str, object] = {}
        from ..ops import precompile  # on a first run, a helper process compiles the nets' kernels alongside
        precompile.expect(f"faces:{detector}:{landmarks}:{recognizer}")

    # -- the nets, loaded lazily (each costs a weight-file read) ---------------------------------------
    def _net(self, key: str):
        if key not in self._nets:
            from ..models.faceapi import (
                age_gender,
                face_expression,
                face_landmark_68,
                face_landmark_68_tiny,
                face_recognition,
            )
            make = {
                "landmarks": lambda: (face_landmark_68.FaceLandmark68Net() if self.landmarks_name == "full"
                                      else face_landmark_68_tiny.FaceLandmark68TinyNet()),
                "recognition": face_recognition.FaceRecognitionNet,
                "age_gender": age_gender.AgeGenderNet,
                "expression": face_expression.FaceExpressionNet,
                "detector": self._make_detector,
                "arcface": self._make_arcface,
            }[key]
            self._nets[key] = make()
        return self._nets[key]

    def _make_arcface(self):
        from .arcface import ArcFaceRecognizer
        return ArcFaceRecognizer(self.arcface_model)

    def _make_detector(self):
        if self.detector_name == "ssd":
            from ..models.faceapi.ssd_mobilenetv1 import SsdMobilenetv1
            return SsdMobilenetv1()
        from ..models.faceapi.tiny_face_detector import TinyFaceDetector
        return TinyFaceDetector()

    def _detect_boxes(self, img: np.ndarray):
        det = self._net("detector")
        if self.detector_name == "ssd":
            return det.detect(img, min_score=self.min_score)
        return det.detect(img, input_size=self.input_size, min_score=self.min_score)

    # -- public API ------------------------------------------------------------------------------------
    # Pixels come in decoded: an RGB/greyscale/RGBA array. A path or bytes is accepted as a convenience and
    # decoded here, once, by nnlite.image.load_image; the nets below only ever see the uint8 RGB array.
    def detect(self, image) -> list[Face]:
        """Every face in ``image`` (an RGB/greyscale/RGBA array; or a path or bytes); [] when there is none."""
        img = load_image(image)
        detections = self._detect_boxes(img)
        return self._analyze(img, [d.box for d in detections], [d.score for d in detections])

    def detect_batch(self, images: Iterable) -> list[list[Face]]:
        """:meth:`detect` for each image, in order."""
        return [self.detect(image) for image in images]

    def analyze(self, image, boxes: Sequence, scores: Sequence[float] | None = None) -> list[Face]:
        """The pipeline after detection, on given boxes (x, y, w, h): e.g. the whole of a tight face crop."""
        return self._analyze(load_image(image), boxes, scores)

    def _analyze(self, img: np.ndarray, boxes: Sequence, scores: Sequence[float] | None) -> list[Face]:
        """:meth:`analyze` on an RGB uint8 (H, W, 3) array already through the one RGB rule."""
        boxes = [tuple(float(v) for v in b) for b in boxes]
        if not boxes:
            return []
        for b in boxes:
            if len(b) != 4 or not all(math.isfinite(v) for v in b):
                raise ShapeError(f"face pipeline: expected boxes (x, y, w, h) of finite numbers, found {b}")
        scores = [1.0] * len(boxes) if scores is None else [float(s) for s in scores]
        crops = [_align.crop(img, b) for b in boxes]
        local = self._net("landmarks").detect_landmarks(crops)              # list of (68, 2) crop pixels
        faces = []
        for box, score, pts in zip(boxes, scores, local):
            # shifted by the *unfloored* corner, as face-api.js does
            landmarks = (np.asarray(pts, np.float64) + np.array(box[:2])).astype(np.float32)
            faces.append(Face(box=box, score=score, landmarks=landmarks))
        desc_crops, attr_crops = zip(*(self._aligned_crops(img, f, c.shape[:2]) for f, c in zip(faces, crops)))
        if self.recognizer == "arcface":  # its own five-point alignment (nnlite.vision.arcface)
            descriptors = self._net("arcface").describe(img, [f.landmarks for f in faces])
        else:
            descriptors = self._net("recognition").compute_descriptor(list(desc_crops))
        for face, desc in zip(faces, descriptors):
            face.descriptor, face.recognizer = np.asarray(desc, np.float32), self.recognizer
        if self.attributes:
            for face, ag in zip(faces, self._net("age_gender").predict_age_gender(list(attr_crops))):
                face.age, face.gender, face.gender_probability = ag["age"], ag["gender"], ag["gender_probability"]
            for face, expr in zip(faces, self._net("expression").predict_expressions(list(attr_crops))):
                face.expression = expr
        return faces

    def _aligned_crops(self, img: np.ndarray, face: Face, crop_size) -> tuple[np.ndarray, np.ndarray]:
        """(descriptor crop, attribute crop), as face-api.js: dlib-style box for the descriptor, padded
        landmark box for age/gender and expression; "rotate" first levels the eyes."""
        if self.align == "rotate":
            desc, face.aligned_box = _align.rotated_crop(img, face.landmarks, box="dlib")
            attrs, _ = _align.rotated_crop(img, face.landmarks, box="landmarks")
            return desc, attrs
        face.aligned_box = _align.dlib_box(face.landmarks, crop_size)
        return _align.crop(img, face.aligned_box), _align.crop(img, _align.landmark_box(face.landmarks))


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ModelError(f"face pipeline: {what} must be one of {', '.join(allowed)}; found {value!r}")


# -- matching ------------------------------------------------------------------------------------------


def face_distance(a, b) -> float:
    """Euclidean distance between two descriptors of the same length."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ShapeError(f"face_distance: descriptors differ in length ({a.size} vs {b.size})")
    return float(np.linalg.norm(a - b))


class FaceMatcher:
    """Labelled reference descriptors; a query matches the label with the smallest *mean* distance to
    that label's descriptors (face-api.js's rule), or "unknown" when that distance is not below
    ``threshold``.

    ``labeled_descriptors``: ``{label: [descriptor, ...]}``, a list of ``(label, [descriptors])`` pairs,
    or a list of bare descriptors (labelled "person 1", "person 2", ... as face-api.js does).
    ``metric``: "euclidean" (face-api.js's 128-d descriptors; default threshold 0.6) or "cosine" (ArcFace
    embeddings: distance 1 - cosine similarity; default threshold 1 - ``arcface.DEFAULT_COSINE_THRESHOLD``).
    """

    def __init__(self, labeled_descriptors, threshold: float | None = None, metric: str = "euclidean"):
        if metric not in ("euclidean", "cosine"):
            raise ConfigError(f"FaceMatcher: metric must be 'euclidean' or 'cosine', found {metric!r}")
        if threshold is None:
            threshold = DEFAULT_THRESHOLD if metric == "euclidean" else 1.0 - DEFAULT_COSINE_THRESHOLD
        if not isinstance(threshold, (int, float, np.number)) or not math.isfinite(threshold) or threshold <= 0:
            raise ShapeError(f"FaceMatcher: threshold must be a number > 0, found {threshold!r}")
        self.threshold, self.metric = float(threshold), metric
        self.labels: list[str] = []
        self.descriptors: list[np.ndarray] = []          # per label: (n, D) float32
        items = labeled_descriptors.items() if isinstance(labeled_descriptors, Mapping) else labeled_descriptors
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                label, descs = item
            else:
                label, descs = f"person {i + 1}", [item]
            arr = _descriptor_rows(label, descs)
            self.labels.append(str(label))
            self.descriptors.append(arr)
        if not self.labels:
            raise ShapeError("FaceMatcher: expected at least one labelled descriptor, found none")
        if len({d.shape[1] for d in self.descriptors}) != 1:
            raise ShapeError("FaceMatcher: all descriptors must have the same length")
        # cosine: the references' unit rows, once (float64, as the query)
        self._unit = [d / np.maximum(np.linalg.norm(d.astype(np.float64), axis=1, keepdims=True), 1e-12)
                      for d in self.descriptors] if metric == "cosine" else []

    def distances(self, descriptor) -> list[tuple[str, float]]:
        """(label, mean distance by :attr:`metric`) for every label, in label order."""
        q = _descriptor_rows("query", descriptor)
        if q.shape[0] != 1:
            raise ShapeError(f"FaceMatcher: expected one query descriptor, found {q.shape[0]}")
        q = q[0].astype(np.float64)
        if q.size != self.descriptors[0].shape[1]:
            raise ShapeError(f"FaceMatcher: query has {q.size} values, references have "
                             f"{self.descriptors[0].shape[1]}")
        if self.metric == "cosine":
            unit = q / max(float(np.linalg.norm(q)), 1e-12)
            return [(label, float((1.0 - d @ unit).mean())) for label, d in zip(self.labels, self._unit)]
        return [(label, float(np.linalg.norm(d - q, axis=1).mean())) for label, d in zip(self.labels,
                                                                                       self.descriptors)]

    def match(self, descriptor) -> tuple[str, float]:
        """(best label, distance), or ("unknown", distance) when the best distance is >= the threshold."""
        label, dist = min(self.distances(descriptor), key=lambda t: t[1])
        return (label if dist < self.threshold else "unknown"), dist

    def top_k(self, descriptor, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` closest labels with their distances, closest first."""
        return sorted(self.distances(descriptor), key=lambda t: t[1])[:max(0, int(k))]

    def to_json(self) -> dict:
        """face-api.js's FaceMatcher JSON: distanceThreshold and labeledDescriptors [{label, descriptors}]."""
        return {"distanceThreshold": _js_number(self.threshold),
                "labeledDescriptors": [{"label": label, "descriptors": [[_js_number(v) for v in row] for row in d]}
                                       for label, d in zip(self.labels, self.descriptors)]}

    @classmethod
    def from_json(cls, data: Mapping) -> FaceMatcher:
        try:
            pairs = [(ld["label"], ld["descriptors"]) for ld in data["labeledDescriptors"]]
            return cls(pairs, float(data["distanceThreshold"]))
        except (KeyError, TypeError) as exc:
            raise ShapeError(f"FaceMatcher JSON: expected distanceThreshold and labeledDescriptors "
                             f"[{{label, descriptors}}], found {exc!r}") from None


def _descriptor_rows(label: str, descs) -> np.ndarray:
    """One label's descriptors -> (n, D) float32. ``descs`` is a list of 1-D descriptors or one (n, D)
    array; a single bare 1-D descriptor is taken as one row. Rows must be finite numbers of one length."""
    try:
        arr = np.asarray(descs, np.float32)
    except (TypeError, ValueError):   # ragged rows, strings, None
        raise ShapeError(f"FaceMatcher: {label!r} needs descriptors of numbers, all of one length; "
                         f"found {_describe(descs)}") from None
    if arr.ndim == 1 and arr.size > 1:
        arr = arr[None]   # one descriptor given without the enclosing list
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"FaceMatcher: {label!r} needs at least one 1-D descriptor, found shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ShapeError(f"FaceMatcher: {label!r} holds NaN or infinite values")
    return arr


def _describe(descs) -> str:
    items = descs if isinstance(descs, (list, tuple)) else [descs]
    return ", ".join(type(d).__name__ + (f" of length {len(d)}" if hasattr(d, "__len__") else "")
                     for d in items[:4]) + (", ..." if len(items) > 4 else "")


def _js_number(v) -> int | float:
    """A float as JavaScript's JSON writes it: whole numbers without a decimal point."""
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v
