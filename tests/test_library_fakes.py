"""Deterministic stand-ins for the models, so the library's own logic is tested fast and exactly.

Test photos carry their ground truth in their pixels:
  - each colour channel whose mean is >= 60 gives a label, brightest first: red = tabby (a cat),
    green = golden_retriever (a dog), blue = hotdog; score = the channel's mean / 255;
  - pixel (0, 0) = (person, variant, faces): ``faces`` faces of person ``person`` (0 = nobody);
    descriptor = the person's base vector + a small variant-specific offset (same person: distance ~0.3,
    different people: ~1.4).
"""

from __future__ import annotations

import os
import time

import numpy as np
from PIL import Image

from nnlite.library.analyze import Analysis
from nnlite.vision.classify import Prediction
from nnlite.vision.faces import Face

LABELS = [Prediction("tabby", "n02123045", 281, 0.0), Prediction("golden_retriever", "n02099601", 207, 0.0),
          Prediction("hotdog", "n07697537", 934, 0.0)]


def person_descriptor(person: int, variant: int) -> np.ndarray:
    base = np.random.default_rng(person).normal(0.0, 0.09, 128)
    offset = np.random.default_rng(1000 + 31 * person + variant).normal(0.0, 0.02, 128)
    return (base + offset).astype(np.float32)


def make_photo(path, colour=(200, 30, 30), person=0, variant=0, faces=1, size=(48, 32)) -> str:
    """Write a PNG whose fake analysis is known (see the module docstring)."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:] = colour
    pixels[0, 0] = (person, variant, faces if person else 0)
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return str(path)


class FakeAnalyzer:
    model = "fake_classifier"
    built = 0   # instances made in this process (a worker must build its analyzer once)

    def __init__(self, crops: bool = False):
        self.crops = crops
        type(self).built += 1

    def describe_crop(self, pixels: np.ndarray) -> Face:
        """The whole image as person (0, 0)'s face, as the real analyzer does for a tight crop."""
        person, variant, _ = (int(v) for v in pixels[0, 0])
        return Face(box=(0.0, 0.0, float(pixels.shape[1]), float(pixels.shape[0])), score=1.0,
                    landmarks=np.zeros((68, 2), np.float32), descriptor=person_descriptor(person, variant))

    def analyze(self, pixels: np.ndarray) -> Analysis:
        log = os.environ.get("NNLITE_FAKE_LOG")
        if log:   # lets a test see which photos were analyzed in a subprocess
            with open(log, "a") as f:
                f.write(f"{pixels[0, 0].tolist()} {pixels.shape}\n")
        means = pixels.reshape(-1, 3).mean(axis=0)
        order = np.argsort(-means, kind="stable")
        labels = [Prediction(LABELS[c].label, LABELS[c].wnid, LABELS[c].index, float(means[c] / 255))
                  for c in order if means[c] >= 60]
        person, variant, n_faces = (int(v) for v in pixels[0, 0])
        faces = [Face(box=(2.0 + 10 * i, 3.0, 8.0, 9.0), score=0.9 - 0.1 * i,
                      landmarks=np.full((68, 2), i, np.float32),
                      descriptor=person_descriptor(person, variant + 100 * i),
                      age=30.0 + person, gender="female" if person % 2 else "male",
                      gender_probability=0.8, expression={"neutral": 0.7, "happy": 0.3})
                 for i in range(n_faces if person else 0)]
        return Analysis(self.model, labels, faces)


class SlowFakeAnalyzer(FakeAnalyzer):
    """FakeAnalyzer taking ``NNLITE_FAKE_DELAY`` seconds per photo (default 0.15): time to kill it."""

    def analyze(self, pixels: np.ndarray) -> Analysis:
        time.sleep(float(os.environ.get("NNLITE_FAKE_DELAY", "0.15")))
        return super().analyze(pixels)


FAKE = "tests.test_library_fakes:FakeAnalyzer"
SLOW_FAKE = "tests.test_library_fakes:SlowFakeAnalyzer"
