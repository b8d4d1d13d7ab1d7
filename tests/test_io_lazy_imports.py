"""Cold start: reading one weights format, or picking one model, imports nothing it does not need.

Each check runs in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import subprocess
import sys


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_tfjs_reader_does_not_import_h5py_and_every_name_still_resolves():
    out = _fresh(
        "import sys, nnlite.io as io\n"
        "from nnlite.paths import weights_dir\n"
        "w = io.load_weights(weights_dir() / 'faceapi' / 'face_landmark_68_tiny_model-weights_manifest.json')\n"
        "print(len(w) > 0, 'h5py' in sys.modules)\n"
        "from nnlite.io import KerasWeights, LayerNotFoundError, load_npz, load_pickled_arrays\n"
        "print('h5py' in sys.modules, sorted(set(io.__all__) - set(dir(io))))\n")
    assert out.splitlines() == ["True False", "True []"]


def test_registry_imports_only_the_family_of_the_requested_model():
    out = _fresh(
        "import sys\n"
        "from nnlite.models import registry\n"
        "registry.get('mobilenet_v2')\n"
        "print('nnlite.models.faceapi' in sys.modules)\n"
        "print(registry.get('face_recognition').family, len(registry.specs()) >= 12)\n")
    assert out.splitlines() == ["False", "faceapi True"]
