"""The per-image work of the indexer, as one pure function: :func:`analyze_file` (path -> ImageRecord).

Pure means: the result depends only on the file's bytes and the :class:`AnalyzerSpec`, and nothing
is written anywhere. That is what lets any engine map it: the in-process loop, a pool of worker
processes, or Dask; one writer then stores the records (see :mod:`.indexer`).

The file is decoded once, here, by :func:`nnlite.image.load_image`; analyzers receive RGB pixels. Labels
and faces are vision's own types (:class:`~nnlite.vision.classify.Prediction`,
:class:`~nnlite.vision.faces.Face`); the index (:mod:`.index`) converts them to rows.

An *analyzer* turns RGB pixels into labels and faces. The spec names it as "module:factory" plus
keyword arguments, so it pickles cheaply and each worker process builds (and caches) its own
copy of the models. The default, :class:`ModelAnalyzer`, runs an ImageNet classifier and the face
pipeline; tests name a deterministic fake instead.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import LibraryError, WeightsError
from ..image import load_image
from ..vision.classify import Prediction
from ..vision.faces import Face


@dataclass
class Analysis:
    """What an analyzer finds in one photo."""
    model: str                                # classifier name, e.g. "mobilenet_v2"
    labels: list[Prediction]                  # best first
    faces: list[Face]                         # each with its descriptor


@dataclass
class ImageRecord:
    """Everything the index stores about one file; ``error`` is set (and the rest empty) when it failed."""
    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    labels: list[Prediction] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    error: str | None = None


class Analyzer(Protocol):
    def analyze(self, pixels: np.ndarray) -> Analysis:
        """RGB uint8 (H, W, 3) -> labels and faces."""


@dataclass(frozen=True)
class AnalyzerSpec:
    """Names an analyzer: ``factory`` is "module:callable", called with ``options`` as keywords."""
    factory: str = "nnlite.library.analyze:ModelAnalyzer"
    options: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, factory: str | None = None, **options) -> AnalyzerSpec:
        return cls(factory or cls.factory, tuple(sorted(options.items())))


_ANALYZERS: dict[AnalyzerSpec, Analyzer] = {}
_ANALYZERS_LOCK = threading.Lock()


def get_analyzer(spec: AnalyzerSpec) -> Analyzer:
    """The analyzer a spec names, built once per process (models load once per worker)."""
    with _ANALYZERS_LOCK:
        if spec not in _ANALYZERS:
            module_name, _, attr = spec.factory.partition(":")
            try:
                factory = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise LibraryError(f"analyzer {spec.factory!r} not found: {exc}") from exc
            _ANALYZERS[spec] = factory(**dict(spec.options))
        return _ANALYZERS[spec]


def analyze_file(path: str, spec: AnalyzerSpec = AnalyzerSpec()) -> ImageRecord:
    """Read, hash, decode and analyze one file. Failures of this file become ``record.error``;
    a failure to build the analyzer itself (e.g. missing weights) raises, since it would fail every file."""
    analyzer = get_analyzer(spec)
    try:
        stat = os.stat(path)
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return ImageRecord(path, 0, 0, error=f"unreadable: {exc.strerror or exc}")
    record = ImageRecord(path, stat.st_size, stat.st_mtime_ns, sha256=hashlib.sha256(data).hexdigest())
    try:
        pixels = load_image(data)   # the one decode of this file
        record.height, record.width = pixels.shape[:2]
        analysis = analyzer.analyze(pixels)
    except WeightsError:   # bad or missing weights fail every photo alike: stop the run, say it once
        raise
    except Exception as exc:   # one bad photo (or one model bug on it) must not stop a library-wide run
        record.error = f"{type(exc).__name__}: {exc}"
        return record
    record.model, record.labels, record.faces = analysis.model, analysis.labels, analysis.faces
    return record


def file_sha256(path: str) -> str:
    """Content hash, read in 1 MiB chunks (used to tell a touched file from a changed one)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelAnalyzer:
    """The real analyzer: an ImageNet classifier (top ``top_k`` labels) and the face pipeline.

    ``crops=True`` is for folders of tight face crops (passport-style photos), where the detector
    lacks the context around a face: when it finds nothing, it looks again on a copy padded by half
    the image size on every side (edge pixels repeated); if that finds nothing either, the whole
    image is described as one face with score 0 (0 says: taken as a crop, not detected).
    """

    def __init__(self, model: str = "mobilenet_v2", top_k: int = 5, detector: str = "ssd",
                 min_face_score: float = 0.5, crops: bool = False, recognizer: str = "faceapi",
                 arcface_model: str | None = None):
        import nnlite

        from ..errors import ModelError
        from ..vision.faces import FacePipeline
        if int(top_k) < 1:
            raise ModelError(f"ModelAnalyzer: top_k must be at least 1, found {top_k}")
        self.classifier = nnlite.load(model)
        if not hasattr(self.classifier, "classify"):
            raise ModelError(f"ModelAnalyzer: model {model!r} is not an ImageNet classifier")
        self.faces = FacePipeline(detector=detector, min_score=min_face_score, recognizer=recognizer,
                                  arcface_model=arcface_model)
        describer = "arcface" if recognizer == "arcface" else "recognition"
        for net in ("detector", "landmarks", describer, "age_gender", "expression"):
            self.faces._net(net)   # load every weight file now: once per worker, and bad weights fail here
        self.top_k, self.crops = top_k, bool(crops)
        self.lock = threading.Lock()   # the web server calls one analyzer from many threads

    def analyze(self, pixels: np.ndarray) -> Analysis:
        with self.lock:
            predictions = self.classifier.classify(pixels).best(self.top_k)
            faces = self.faces.detect(pixels)
            if not faces and self.crops:
                faces = self._padded_detect(pixels) or self.faces.analyze(pixels, [_whole(pixels)], [0.0])
        return Analysis(self.classifier.name, predictions, [plain_face(f) for f in faces])

    def describe_crop(self, pixels: np.ndarray) -> Face:
        """The whole image as one face (no detection): a tight face crop used as a query."""
        with self.lock:
            return plain_face(self.faces.analyze(pixels, [_whole(pixels)], [1.0])[0])

    def _padded_detect(self, pixels: np.ndarray) -> list:
        """Detect on a padded copy; boxes and landmarks mapped back to the original's pixels (a box may
        reach past the original's edges, as the face does)."""
        h, w = pixels.shape[:2]
        # Not face-api.js's pad-to-square (nnlite.image.pad_to_square, inside the nets): this gives the
        # detector context around a tight crop, the same margin on every side with edge pixels repeated.
        pad = max(h, w) // 2
        padded = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        faces = self.faces.detect(padded)
        for face in faces:
            x, y, bw, bh = face.box
            face.box = (x - pad, y - pad, bw, bh)
            face.landmarks = np.asarray(face.landmarks, np.float32) - np.float32(pad)
        return faces


def _whole(pixels: np.ndarray) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(pixels.shape[1]), float(pixels.shape[0]))


def plain_face(face: Face) -> Face:
    """A copy of ``face`` in the library's form: plain Python numbers, float32 arrays, an expression dict
    (empty when the pipeline ran without attributes); JSON- and index-ready."""
    return Face(
        box=tuple(float(v) for v in face.box),
        score=float(face.score),
        landmarks=np.asarray(face.landmarks, np.float32).reshape(-1, 2),
        descriptor=np.asarray(face.descriptor, np.float32).reshape(-1),
        age=None if face.age is None else float(face.age),
        gender=face.gender,
        gender_probability=None if face.gender_probability is None else float(face.gender_probability),
        expression={str(k): float(v) for k, v in (face.expression or {}).items()},
        recognizer=str(getattr(face, "recognizer", None) or "faceapi"),
        aligned_box=face.aligned_box,
    )
