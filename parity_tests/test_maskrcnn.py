"""Mask R-CNN in nnlite against matterport's own Keras implementation (``mrcnn``) on TensorFlow, both
running the same seeded weights file written by the reference model's ``save_weights``.

Each stage is fed the reference's input to it and compared with the reference's output.
The reference runs in a subprocess (``tools/mrcnn_reference.py``): its compatibility shim puts TensorFlow
in graph mode for the whole process. Tolerances: feature maps 1e-5 relative L2; RPN outputs and the
classifier's outputs on the real proposals 1e-4 (probabilities after a softmax of large logits); the
same detections in the same order with boxes within 0.5 px and scores within 1e-4; mask IoU >= 0.99.

The classifier is compared on the real proposals only: the zero-padding rows after them reach
matterport's classifier with features that are not those of a zero box (nnlite gives every padding row
the features of the box (0, 0, 0, 0) on P2); such rows can only become zero-area detections, which
unmolding drops. The detection layer is then fed matterport's own classifier outputs for all rows.
"""

import subprocess
import sys

import numpy as np
import pytest

from nnlite.boxes import iou_matrix
from nnlite.graph import relative_error
from nnlite.models.maskrcnn import molding
from nnlite.models.maskrcnn.model import load_model

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
IMAGES = ["skimage:astronaut", "skimage:coffee", "skimage:chelsea", "scenes/bbt1.jpg"]
SIZES = [256, 512]


def _specs(shared_dir):
    return [s if s.startswith("skimage:") else str(shared_dir / "data" / "faceapi" / s) for s in IMAGES]


def _reference(cache_dir, shared_dir, sizes, tag):
    out = cache_dir / f"mrcnn_reference_{tag}.npz"
    if not out.exists():
        cmd = [sys.executable, "-m", "tools.mrcnn_reference", str(cache_dir / "mrcnn_seeded_seed0.h5"),
               "--dump", str(out)] + [f"--size={s}" for s in sizes] + _specs(shared_dir)
        done = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, f"the matterport reference failed:\n{done.stderr[-3000:]}"
    return np.load(out)


@pytest.fixture(scope="module")
def reference(tf, cache_dir, shared_dir):
    return _reference(cache_dir, shared_dir, SIZES, "default")


@pytest.fixture(scope="module")
def nets(reference, cache_dir):
    return load_model(cache_dir / "mrcnn_seeded_seed0.h5")


def _stages(ref, key, net, image):
    """Each stage fed the reference's input to that stage (seeded weights amplify float rounding, so an
    end-to-end run could differ through a proposal that moves by 1e-5), compared with its output."""
    from nnlite.models.maskrcnn import detect
    from nnlite.models.maskrcnn.networks import MASK_POOL_SIZE, NUM_CLASSES, POOL_SIZE
    cfg, shape = net.config, net.config.image_shape
    r = {name: ref[f"{key}/{name}"] for name in ("molded", "window", "rpn_class", "rpn_bbox", "rpn_rois",
                                                "mrcnn_class", "mrcnn_bbox", "detections", "mrcnn_mask")}
    molded_u8, window, scale = molding.resize_image(image, cfg)
    # preprocessing: the same resize up to float64 rounding before the cast to uint8 (one level at most)
    assert np.abs(molding.mold_image(molded_u8, cfg) - r["molded"]).max() <= 1.0 + 1e-4
    assert tuple(window) == tuple(r["window"])
    levels = net.model(r["molded"][np.newaxis])
    for i, level in enumerate(levels):
        err = relative_error(level[0], ref[f"{key}/fpn_p{i + 2}"])
        assert err <= 1e-5, f"P{i + 2}: relative error {err:.3g}"
    rpn_class, rpn_bbox = detect.rpn_outputs(net.rpn, [ref[f"{key}/fpn_p{i}"][np.newaxis] for i in range(2, 7)])
    for name, ours in (("rpn_class", rpn_class), ("rpn_bbox", rpn_bbox)):
        err = relative_error(ours, r[name])
        assert err <= 1e-4, f"{name}: relative error {err:.3g}"
    rois = detect.proposals(r["rpn_class"], r["rpn_bbox"], net.anchors(shape), cfg)
    np.testing.assert_allclose(rois, r["rpn_rois"], atol=1e-6, err_msg="proposals (same order) differ")
    pyramid = [ref[f"{key}/fpn_p{i}"][np.newaxis] for i in range(2, 6)]
    real = int(np.count_nonzero(np.any(r["rpn_rois"] != 0, axis=1)))
    probs, deltas = net.classifier(detect.pyramid_roi_align(r["rpn_rois"][:real], pyramid, shape, POOL_SIZE))
    for name, ours in (("mrcnn_class", probs), ("mrcnn_bbox", deltas.reshape(real, NUM_CLASSES, 4))):
        err = relative_error(ours, r[name][:real])
        assert err <= 1e-4, f"{name} on the {real} real proposals: relative error {err:.3g}"
    window_n = molding.norm_boxes(np.asarray(window, np.float32), shape)
    det = detect.refine_detections(r["rpn_rois"], r["mrcnn_class"], r["mrcnn_bbox"], window_n, cfg)
    count = int(np.count_nonzero(r["detections"][:, 4]))
    assert count == int(np.count_nonzero(det[:, 4])), "a different number of detections"
    np.testing.assert_array_equal(det[:count, 4], r["detections"][:count, 4], "classes (in rank order) differ")
    np.testing.assert_allclose(det[:count, 5], r["detections"][:count, 5], atol=1e-4, err_msg="scores differ")
    # normalised -> molded pixels (x (size - 1)) -> original pixels (/ scale): within half a pixel
    assert np.abs(det[:count, :4] - r["detections"][:count, :4]).max(initial=0) * (shape[0] - 1) / scale <= 0.5
    masks = net.mask_head(detect.pyramid_roi_align(r["detections"][:count, :4], pyramid, shape, MASK_POOL_SIZE))
    err = relative_error(masks, r["mrcnn_mask"][:count])
    assert err <= 1e-4, f"mrcnn_mask: relative error {err:.3g}"
    boxes = molding.unmold_boxes(r["detections"][:count, :4], window, shape, image.shape[:2])
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    np.testing.assert_array_equal(boxes[keep], ref[f"{key}/rois"])
    for i, j in enumerate(np.flatnonzero(keep)):
        mask = molding.unmold_mask(masks[j, :, :, int(det[j, 4])], boxes[j], image.shape)
        theirs = ref[f"{key}/masks"][:, :, i]
        union = np.logical_or(mask, theirs).sum()
        iou = np.logical_and(mask, theirs).sum() / union if union else 1.0
        assert iou >= 0.99, f"instance {i}: mask IoU {iou:.4f}"
    return int(keep.sum())


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("index", range(len(IMAGES)))
def test_matches_matterport(reference, nets, shared_dir, size, index):
    """Every stage of nnlite's Mask R-CNN equals matterport's on a real photo, down to the final masks."""
    from tools.mrcnn_reference import read_image
    image = read_image(_specs(shared_dir)[index])
    net = nets.with_config(image_max_dim=size)
    key = f"{size}/{index}"
    instances = _stages(reference, key, net, image)
    assert instances == len(reference[f"{key}/class_ids"])



@pytest.mark.slow
def test_end_to_end_segments_match_matterport(reference, nets, shared_dir):
    """The whole ``Segmenter.segment`` (resize, mold, all four nets, unmold) on each photo, against matterport's
    own end-to-end result. Seeded random weights give up to 100 detections of nearly equal scores, so a float
    rounding that moves one proposal by 1e-5 can change which of two near-ties survives non-max suppression:
    instances are matched as a set (same class, box IoU >= 0.9, score within 1e-3), not in rank order. The
    staged test above checks every stage exactly; this one checks the glue between them."""
    from nnlite.vision.segment import Segmenter
    from tools.mrcnn_reference import read_image
    matched = total = 0
    mask_ious = []
    for size in SIZES:
        for index, spec in enumerate(_specs(shared_dir)):
            key = f"{size}/{index}"
            rois, classes, scores, masks = (reference[f"{key}/{n}"] for n in ("rois", "class_ids", "scores", "masks"))
            ours = Segmenter(nets.with_config(image_max_dim=size)).segment(read_image(spec))
            assert abs(len(ours) - len(rois)) <= max(2, len(rois) // 20), f"{key}: {len(ours)} vs {len(rois)}"
            theirs = np.stack([rois[:, 1], rois[:, 0], rois[:, 3] - rois[:, 1], rois[:, 2] - rois[:, 0]], axis=1)
            ious = iou_matrix(np.reshape([i.box for i in ours], (-1, 4)), theirs.reshape(-1, 4))  # (x, y, w, h)
            free, hits = set(range(len(ours))), 0
            for j in range(len(rois)):
                candidates = [(ious[k, j], k) for k in free if ours[k].class_id == classes[j]
                              and abs(ours[k].score - scores[j]) <= 1e-3]
                iou, k = max(candidates, default=(0.0, -1))
                if iou >= 0.9:
                    free.discard(k)
                    hits += 1
                    union = np.logical_or(ours[k].mask, masks[:, :, j]).sum()
                    mask_ious.append(np.logical_and(ours[k].mask, masks[:, :, j]).sum() / union if union else 1.0)
            assert hits >= 0.85 * len(rois), f"{key}: only {hits} of matterport's {len(rois)} instances found"
            matched, total = matched + hits, total + len(rois)
    assert total > 100 and matched >= 0.9 * total, f"{matched} of {total} instances matched"
    assert np.mean(np.asarray(mask_ious) >= 0.95) >= 0.95, "masks of matched instances differ"


def test_seeded_file_has_the_official_layer_names(reference, cache_dir):
    """The reference's save_weights writes the groups of matterport's mask_rcnn_coco.h5: ResNet-101 in
    Caffe names, the FPN, the nested rpn_model, the classifier and mask heads."""
    import h5py
    with h5py.File(cache_dir / "mrcnn_seeded_seed0.h5", "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        with_weights = {n for n in names if len(f[n].attrs.get("weight_names", []))}
        rpn = sorted({(w.decode() if isinstance(w, bytes) else w).split("/")[0]
                      for w in f["rpn_model"].attrs["weight_names"]})
    stage4 = [f"res4{chr(97 + i)}_branch2a" for i in range(23)]
    expected = {"conv1", "bn_conv1", "res2a_branch1", "bn2a_branch1", *stage4, "res5c_branch2c",
                "fpn_c5p5", "fpn_c2p2", "fpn_p2", "fpn_p5", "rpn_model", "mrcnn_class_conv1", "mrcnn_class_bn2",
                "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask_conv4", "mrcnn_mask_bn4", "mrcnn_mask_deconv",
                "mrcnn_mask"}
    assert expected <= with_weights
    assert "res4x_branch2a" not in with_weights and len(with_weights) == 233
    assert rpn == ["rpn_bbox_pred", "rpn_class_raw", "rpn_conv_shared"]


@pytest.mark.long
@pytest.mark.parametrize("index", [0, 3])
def test_matches_matterport_at_full_size(tf, cache_dir, shared_dir, index):
    """The same stage-by-stage parity at matterport's default IMAGE_MAX_DIM 1024."""
    from tools.mrcnn_reference import read_image
    ref = _reference(cache_dir, shared_dir, [1024], "1024")
    net = load_model(cache_dir / "mrcnn_seeded_seed0.h5").with_config(image_max_dim=1024)
    image = read_image(_specs(shared_dir)[index])
    assert _stages(ref, f"1024/{index}", net, image) == len(ref[f"1024/{index}/class_ids"])
