"""load_npz and load_weights (format chosen from the file's first bytes)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import h5py
import numpy as np
import pytest

from nnlite.errors import WeightsError
from nnlite.io import KerasWeights, load_npz, load_weights


def test_npz_roundtrip(tmp_path):
    rng = np.random.default_rng(4)
    arrays = {"conv1/kernel": rng.standard_normal((3, 3, 3, 8)).astype(np.float32), "steps": np.arange(3)}
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, **arrays)
        got = load_npz(path)
        assert list(got) == list(arrays)
        for name, want in arrays.items():
            assert got[name].dtype == want.dtype
            np.testing.assert_array_equal(got[name], want)


def test_npz_refuses_object_arrays(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightsError, match="objects.npz"):
        load_npz(path)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + bytes(30), bytes(range(256)) * 4, b"PK\x03\x04xx"])
def test_npz_malformed(tmp_path, content):
    path = tmp_path / "w.npz"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="w.npz"):
        load_npz(path)


def test_npz_truncated_and_single_npy(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, a=np.zeros(1000, np.float32))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(WeightsError, match="w.npz"):
        load_npz(path)
    single = tmp_path / "one.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(WeightsError, match="one.npz.*single .npy"):
        load_npz(single)


def test_load_weights_dispatch(tmp_path):
    np.savez(tmp_path / "a.npz", w=np.ones(2, np.float32))
    assert list(load_weights(tmp_path / "a.npz")) == ["w"]
    (tmp_path / "b.pkl").write_bytes(pickle.dumps({"w": np.ones(2)}, protocol=4))
    assert list(load_weights(tmp_path / "b.pkl")) == ["w"]
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_group("layers/dense/vars").create_dataset("0", data=np.ones(2, np.float32))
    assert isinstance(load_weights(tmp_path / "c.h5"), KerasWeights)
    (tmp_path / "d.bin").write_bytes(np.float32([1, 2]).tobytes())
    (tmp_path / "d.json").write_text(json.dumps([{"paths": ["d.bin"],
                                                  "weights": [{"name": "w", "shape": [2], "dtype": "float32"}]}]))
    assert load_weights(tmp_path / "d.json")["w"].tolist() == [1.0, 2.0]
    # a zip that holds '<name>/data.pkl' is a torch file: here one with a refused global
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(print, protocol=2))
    (tmp_path / "e.npz").write_bytes(buf.getvalue())
    with pytest.raises(WeightsError, match="e.npz.*refusing to load pickle global (__builtin__|builtins).print"):
        load_weights(tmp_path / "e.npz")


@pytest.mark.parametrize("content", [b"", b"GIF89a" + bytes(20), b"hello world"])
def test_load_weights_unknown(tmp_path, content):
    path = tmp_path / "mystery.weights"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="mystery.weights"):
        load_weights(path)
