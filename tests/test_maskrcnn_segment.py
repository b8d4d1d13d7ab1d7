"""Mask R-CNN's user side without TensorFlow: weights files in matterport's layout (all-zero weights
written here by h5py, so no instance reaches the 0.7 score), images of every kind, the COCO RLE
encoder against an independent decoder (and pycocotools where installed), the CLI, and bad files."""

import json

import h5py
import numpy as np
import pytest
from PIL import Image

from nnlite.cli import main
from nnlite.errors import ModelError, WeightsError
from nnlite.models.maskrcnn.config import COCO_CLASSES, MaskRCNNConfig
from nnlite.models.maskrcnn.model import load_model
from nnlite.vision.segment import Segmenter, rle_encode


def matterport_layers():
    """(group, [(weight name, shape)]) of mask_rcnn_coco.h5, spelled out from matterport's model.py."""
    def conv(name, k, cin, cout):
        return (name, [(f"{name}/kernel:0", (k, k, cin, cout)), (f"{name}/bias:0", (cout,))])

    def bn(name, c):
        return (name, [(f"{name}/{v}:0", (c,)) for v in ("gamma", "beta", "moving_mean", "moving_variance")])
    out = [conv("conv1", 7, 3, 64), bn("bn_conv1", 64)]
    cin = 64
    for stage, f, blocks in ((2, 64, 3), (3, 128, 4), (4, 256, 23), (5, 512, 3)):
        for b in range(blocks):
            n = f"{stage}{chr(97 + b)}"
            out += [conv(f"res{n}_branch2a", 1, cin, f), bn(f"bn{n}_branch2a", f), conv(f"res{n}_branch2b", 3, f, f),
                    bn(f"bn{n}_branch2b", f), conv(f"res{n}_branch2c", 1, f, 4 * f), bn(f"bn{n}_branch2c", 4 * f)]
            if b == 0:
                out += [conv(f"res{n}_branch1", 1, cin, 4 * f), bn(f"bn{n}_branch1", 4 * f)]
            cin = 4 * f
    out += [conv("fpn_c5p5", 1, 2048, 256), conv("fpn_c4p4", 1, 1024, 256), conv("fpn_c3p3", 1, 512, 256),
            conv("fpn_c2p2", 1, 256, 256)] + [conv(f"fpn_p{i}", 3, 256, 256) for i in range(2, 6)]
    rpn = [conv("rpn_conv_shared", 3, 256, 512), conv("rpn_class_raw", 1, 512, 6), conv("rpn_bbox_pred", 1, 512, 12)]
    out.append(("rpn_model", [w for _, ws in rpn for w in ws]))
    out += [conv("mrcnn_class_conv1", 7, 256, 1024), bn("mrcnn_class_bn1", 1024),
            conv("mrcnn_class_conv2", 1, 1024, 1024), bn("mrcnn_class_bn2", 1024),
            ("mrcnn_class_logits", [("mrcnn_class_logits/kernel:0", (1024, 81)), ("mrcnn_class_logits/bias:0", (81,))]),
            ("mrcnn_bbox_fc", [("mrcnn_bbox_fc/kernel:0", (1024, 324)), ("mrcnn_bbox_fc/bias:0", (324,))])]
    for i in range(1, 5):
        out += [conv(f"mrcnn_mask_conv{i}", 3, 256, 256), bn(f"mrcnn_mask_bn{i}", 256)]
    out += [("mrcnn_mask_deconv", [("mrcnn_mask_deconv/kernel:0", (2, 2, 256, 256)),
                                   ("mrcnn_mask_deconv/bias:0", (256,))]), conv("mrcnn_mask", 1, 256, 81)]
    return out


def write_h5(path, layers):
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n, _ in layers]
        for name, weights in layers:
            g = f.create_group(name)
            g.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for w, shape in weights:
                value = np.ones(shape, np.float32) if "variance" in w or "gamma" in w else np.zeros(shape, np.float32)
                g.create_dataset(w, data=value)


@pytest.fixture(scope="module")
def zero_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mrcnn") / "mask_rcnn_coco.h5"
    write_h5(path, matterport_layers())
    return path


@pytest.fixture(scope="module")
def segmenter(zero_file):
    return Segmenter(load_model(zero_file, MaskRCNNConfig(image_max_dim=64)))


def test_official_layout_loads_and_finds_nothing(segmenter):
    """Zero weights: every class has probability 1/81, below 0.7: an empty list."""
    assert segmenter.segment(np.full((40, 60, 3), 128, np.uint8)) == []
    assert len(COCO_CLASSES) == 81 and COCO_CLASSES[1] == "person" and COCO_CLASSES[80] == "toothbrush"


@pytest.mark.parametrize("image", [
    np.zeros((30, 50), np.uint8),                                  # greyscale
    np.zeros((30, 50, 4), np.uint8),                               # RGBA
    np.zeros((30, 50, 3), np.uint16) + 4000,                       # 16-bit
    np.zeros((1, 1, 3), np.uint8),                                 # tiny
    np.zeros((700, 90, 3), np.uint8),                              # tall and thin
])
def test_any_image_kind_runs(segmenter, image):
    assert segmenter.segment(image) == []


def test_huge_image_is_refused(segmenter, tmp_path):
    from nnlite.errors import ImageError
    from nnlite.image import load_image
    with pytest.raises(ImageError):
        load_image(np.zeros((20000, 20000, 3), np.uint8), max_pixels=10_000_000)


def test_cli_json_with_no_instance_exits_0(zero_file, tmp_path, capsys):
    img = tmp_path / "grey.png"
    Image.fromarray(np.full((48, 64), 90, np.uint8)).save(img)
    out = tmp_path / "annotated.png"
    code = main(["segment", str(img), "--weights", str(zero_file), "--max-dim", "64", "--json", "--out", str(out)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"image": str(img), "width": 64, "height": 48, "model": "mask_rcnn_coco", "instances": []}
    assert Image.open(out).size == (64, 48)


def test_cli_rejects_a_bad_max_dim(zero_file, tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert main(["segment", str(img), "--weights", str(zero_file), "--max-dim", "100"]) == 2
    assert "multiple of 64" in capsys.readouterr().err
    with pytest.raises(ModelError):
        MaskRCNNConfig(image_max_dim=100)


def test_not_a_mask_rcnn_file(tmp_path):
    path = tmp_path / "other.h5"
    write_h5(path, [("dense", [("dense/kernel:0", (3, 4)), ("dense/bias:0", (4,))])])
    with pytest.raises(WeightsError, match=r"other\.h5.*'conv1'"):
        load_model(path)


def test_a_missing_layer_is_named(tmp_path):
    path = tmp_path / "partial.h5"
    write_h5(path, [layer for layer in matterport_layers() if layer[0] != "mrcnn_mask_bn3"])
    with pytest.raises(WeightsError, match=r"partial\.h5.*'mrcnn_mask_bn3'"):
        load_model(path)


def test_truncated_file(zero_file, tmp_path):
    path = tmp_path / "truncated.h5"
    path.write_bytes(zero_file.read_bytes()[: 50_000_000])
    with pytest.raises(WeightsError, match="truncated.h5"):
        load_model(path)


def decode_rle(rle):
    """COCO compressed RLE -> bool (h, w), written from the format's description (6-bit groups, the
    sixth bit says "more", sign extension from bit 5, counts after the second are deltas)."""
    h, w = rle["size"]
    counts, s, i = [], rle["counts"], 0
    while i < len(s):
        value, shift, more = 0, 0, True
        while more:
            c = ord(s[i]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            i += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    flat = np.zeros(h * w, bool)
    pos, on = 0, False
    for c in counts:
        flat[pos:pos + c] = on
        pos, on = pos + c, not on
    assert pos == h * w
    return flat.reshape((h, w), order="F")


@pytest.mark.parametrize("seed", range(6))
def test_rle_round_trip(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, 2)
    mask = rng.random((h, w)) < [0.05, 0.5, 0.95, 0.0, 1.0, 0.3][seed]
    if seed == 5:
        mask[:] = False
        mask[2:20, 3:30] = True                                    # one long run: multi-group counts
    rle = rle_encode(mask)
    assert rle["size"] == [int(h), int(w)]
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_rle_matches_pycocotools():
    from pycocotools import (
        mask as mask_util,  # in the test extra: missing makes this fail, not skip
    )
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = np.zeros((50, 70), bool)
        y, x = rng.integers(0, 40, 2)
        mask[y:y + rng.integers(1, 30), x:x + rng.integers(1, 60)] = True
        mask ^= rng.random((50, 70)) < 0.02
        ref = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle_encode(mask)["counts"] == ref["counts"].decode()


def test_fetch_checks_the_layout(zero_file, tmp_path):
    """Without a published digest, fetch accepts a file only with Mask R-CNN's layer groups."""
    from nnlite.fetch import fetch
    got = fetch("mask_rcnn_coco", url=zero_file.as_uri(), dest_dir=tmp_path / "ok", progress=None)
    assert got.name == "mask_rcnn_coco.h5" and got.stat().st_size == zero_file.stat().st_size
    other = tmp_path / "other.h5"
    write_h5(other, [("dense", [("dense/kernel:0", (3, 4))])])
    with pytest.raises(WeightsError, match="mrcnn_mask"):
        fetch("mask_rcnn_coco", url=other.as_uri(), dest_dir=tmp_path / "bad", progress=None)
    assert not list((tmp_path / "bad").glob("*"))


def test_layer_table_names_the_h5_layers(segmenter):
    """`nnlite inspect` shows the backbone and FPN under matterport's layer names, with MACs."""
    rows = segmenter.model.layer_table((64, 64, 3))
    names = [r["name"] for r in rows]
    assert names[0] == "conv1" and "res4w_branch2c" in names and names[-1] == "fpn_p6"
    conv1 = rows[0]
    assert conv1["output_shape"] == (1, 32, 32, 64) and conv1["macs"] == 32 * 32 * 7 * 7 * 3 * 64
    assert [r["output_shape"][1] for r in rows if r["name"].startswith("fpn_p") and r["name"][-1].isdigit()
            and len(r["name"]) == 6] == [16, 8, 4, 2, 1]
    assert segmenter.preprocess(np.zeros((10, 20, 3), np.uint8)).shape == (64, 64, 3)
