"""tfjs weights manifests: real face-api.js files, synthetic multi-shard/multi-group/quantized ones, bad input."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nnlite.errors import WeightsError
from nnlite.io import load_tfjs

# ---------------------------------------------------------------- synthetic manifests


def _write(tmp: Path, groups: list[tuple[list[int], list[tuple[dict, bytes]]]]) -> Path:
    """groups: (shard split points, [(entry, stored bytes)]); writes shards + manifest, returns its path."""
    manifest = []
    for gi, (splits, entries) in enumerate(groups):
        stream = b"".join(data for _, data in entries)
        bounds = [0, *splits, len(stream)]
        paths = []
        for si in range(len(bounds) - 1):
            name = f"group{gi + 1}-shard{si + 1}of{len(bounds) - 1}"
            (tmp / name).write_bytes(stream[bounds[si]:bounds[si + 1]])
            paths.append(name)
        manifest.append({"paths": paths, "weights": [e for e, _ in entries]})
    path = tmp / "model-weights_manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def _float32(name, values):
    values = np.asarray(values, np.float32)
    return {"name": name, "shape": list(values.shape), "dtype": "float32"}, values.astype("<f4").tobytes()


def _quantized(name, q, dtype, scale, lo):
    q = np.asarray(q)
    entry = {"name": name, "shape": list(q.shape), "dtype": "float32",
             "quantization": {"dtype": dtype, "scale": scale, "min": lo}}
    return entry, q.astype("<u2" if dtype == "uint16" else "u1").tobytes()


@pytest.fixture
def synthetic(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    q8 = rng.integers(0, 256, size=(5, 7))
    q16 = rng.integers(0, 65536, size=(11,))
    half = rng.standard_normal((2, 3)).astype(np.float16)
    ints = np.array([512, -1, 7], np.int32)
    groups = [
        # group 1: float32 + uint8 split over three shards, cut mid-entry
        ([100, 200], [_float32("g1/a", a), _quantized("g1/q8", q8, "uint8", 0.02, -1.5)]),
        # group 2: int32 constant between quantized entries, float16, two shards
        ([9], [_quantized("g2/q16", q16, "uint16", 1e-4, 0.25),
               ({"name": "g2/ints", "shape": [3], "dtype": "int32"}, ints.astype("<i4").tobytes()),
               ({"name": "g2/half", "shape": [2, 3], "dtype": "float32",
                 "quantization": {"dtype": "float16"}}, half.astype("<f2").tobytes()),
               _float32("g2/scalar", np.float32(3.5))]),
    ]
    expected = {"g1/a": a, "g1/q8": (-1.5 + 0.02 * q8).astype(np.float32),
                "g2/q16": (0.25 + 1e-4 * q16).astype(np.float32), "g2/ints": ints,
                "g2/half": half.astype(np.float32), "g2/scalar": np.float32(3.5)}
    return _write(tmp_path, groups), expected


def test_synthetic_manifest_roundtrip(synthetic):
    path, expected = synthetic
    got = load_tfjs(path)
    assert list(got) == list(expected)
    for name, want in expected.items():
        assert got[name].shape == np.shape(want), name
        assert got[name].dtype == (np.int32 if name == "g2/ints" else np.float32), name
        np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_quantized_int32_entry_is_skipped_by_its_stored_length(tmp_path):
    # an int32 entry stored as uint8 takes 1 byte per value; the following float must still line up
    const = ({"name": "c", "shape": [2], "dtype": "int32",
              "quantization": {"dtype": "uint8", "scale": 1, "min": 1000}}, bytes([5, 6]))
    path = _write(tmp_path, [([], [const, _float32("w", [1.25, -2.0])])])
    got = load_tfjs(path)
    assert got["c"].tolist() == [1005, 1006]
    assert got["w"].tolist() == [1.25, -2.0]


# ---------------------------------------------------------------- malformed input


def _shard_names(path: Path) -> list[str]:
    return [p for g in json.loads(path.read_text()) for p in g["paths"]]


def test_truncated_shard(synthetic):
    path, _ = synthetic
    shard = path.parent / _shard_names(path)[-1]
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(WeightsError, match=r"group 1.*need (\d+) bytes but the shards hold") as info:
        load_tfjs(path)
    assert path.name in str(info.value) and shard.name in str(info.value)
    assert "truncated" in str(info.value)


def test_extra_bytes_in_shard(synthetic):
    path, _ = synthetic
    shard = path.parent / _shard_names(path)[0]
    shard.write_bytes(shard.read_bytes() + b"\0\0\0\0")
    with pytest.raises(WeightsError, match="extra data"):
        load_tfjs(path)


def test_missing_shard(synthetic):
    path, _ = synthetic
    missing = _shard_names(path)[1]
    (path.parent / missing).unlink()
    with pytest.raises(WeightsError, match=f"{missing}.*not found"):
        load_tfjs(path)


def test_manifest_shape_does_not_match_shards(synthetic):
    path, _ = synthetic
    manifest = json.loads(path.read_text())
    manifest[0]["weights"][0]["shape"] = [3, 3, 2, 5]  # 18 more float32 values: 288+35 -> 360+35
    path.write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=r"group 0: entries need 395 bytes but the shards hold 323"):
        load_tfjs(path)


@pytest.mark.parametrize("content", [
    b"", b"{not json", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", bytes(range(256)) * 4, b"{}", b"[]",
    b'[{"paths": [], "weights": []}]', b'[{"paths": ["x.bin"], "weights": [{"name": "w"}]}]',
    b'[{"paths": ["x.bin"], "weights": [{"name": "w", "shape": [2], "dtype": "complex64"}]}]',
    b'[{"paths": ["x.bin"], "weights": [{"name": "w", "shape": [2], "dtype": "float32",'
    b' "quantization": {"dtype": "uint8"}}]}]',
])
def test_malformed_manifest(tmp_path, content):
    path = tmp_path / "bad-weights_manifest.json"
    path.write_bytes(content)
    (tmp_path / "x.bin").write_bytes(b"\0" * 8)
    with pytest.raises(WeightsError, match="bad-weights_manifest.json"):
        load_tfjs(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(WeightsError, match="nope.json"):
        load_tfjs(tmp_path / "nope.json")


# ---------------------------------------------------------------- the face-api.js files


@pytest.fixture(scope="module")
def faceapi_models(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("faceapi")
    with tarfile.open(shared_dir / "weights-src" / "vladmandic-face-api-1.7.15.tgz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/model/") and m.isfile()]
        tar.extractall(out, members=members, filter="data")
    return out / "package" / "model"


def test_faceapi_manifests_all_load(faceapi_models):
    manifests = sorted(faceapi_models.glob("*-weights_manifest.json"))
    assert len(manifests) == 7
    for path in manifests:
        spec = json.loads(path.read_text())
        got = load_tfjs(path)
        entries = [e for g in spec for e in g["weights"]]
        assert list(got) == [e["name"] for e in entries], path.name
        for entry in entries:
            value = got[entry["name"]]
            assert list(value.shape) == entry["shape"], entry["name"]
            quant = entry.get("quantization")
            if quant and entry["dtype"] == "float32":
                lo, hi = quant["min"], quant["min"] + 255 * quant["scale"]
                assert lo - 1e-5 <= value.min() and value.max() <= hi + 1e-5, entry["name"]


def test_faceapi_ssd_constants(faceapi_models):
    got = load_tfjs(faceapi_models / "ssd_mobilenetv1_model-weights_manifest.json")
    # facts of the SSD MobileNetV1 face detector: 512x512 input, 5118 anchors over 6 feature maps
    assert got["Preprocessor/ResizeImage/size"].tolist() == [512, 512]
    assert int(got["Postprocessor/stack/1"]) == 5118
    assert got["MobilenetV1/Conv2d_0_pointwise/weights"].shape == (3, 3, 3, 32)
    assert got["MobilenetV1/Conv2d_0_pointwise/weights"].dtype == np.float32


def test_faceapi_first_entry_dequantized_by_hand(faceapi_models):
    # decode the first uint8 entry straight from the shard bytes and compare
    path = faceapi_models / "face_landmark_68_tiny_model-weights_manifest.json"
    spec = json.loads(path.read_text())[0]
    stream = (faceapi_models / spec["paths"][0]).read_bytes()
    first = spec["weights"][0]
    count = int(np.prod(first["shape"]))
    q = np.frombuffer(stream[:count], np.uint8)
    want = first["quantization"]["min"] + first["quantization"]["scale"] * q.astype(np.float64)
    got = load_tfjs(path)[first["name"]]
    assert count > 256   # more values than codes: the loader looks each code's value up in a table
    np.testing.assert_array_equal(got.ravel(), want.astype(np.float32))   # float64 arithmetic, rounded once
