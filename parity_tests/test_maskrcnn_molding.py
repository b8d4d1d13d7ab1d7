"""Mask R-CNN's image preparation and anchors in nnlite (NumPy only) against matterport's own
``mrcnn.utils`` (scikit-image resizing, anchor generation, mask pasting)."""

import numpy as np
import pytest

from nnlite.models.maskrcnn import detect, molding
from nnlite.models.maskrcnn.config import MaskRCNNConfig


@pytest.fixture(scope="module")
def utils(tf):
    from mrcnn import utils as mrcnn_utils
    return mrcnn_utils


@pytest.mark.parametrize("shape", [(300, 451, 3), (512, 200, 3), (33, 47, 3), (1, 1, 3)])
@pytest.mark.parametrize("max_dim", [256, 1024])
def test_resize_image_matches_mrcnn(utils, shape, max_dim):
    """Same window and scale; pixels equal except where float64 rounding sits on an integer before the
    cast to uint8 (at most one level, in very few pixels)."""
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.uint8)
    cfg = MaskRCNNConfig(image_max_dim=max_dim)
    ours, window, scale = molding.resize_image(image, cfg)
    want, want_window, want_scale, _, _ = utils.resize_image(image, min_dim=800, max_dim=max_dim, mode="square")
    assert tuple(window) == tuple(want_window) and scale == pytest.approx(want_scale)
    diff = np.abs(ours.astype(int) - want.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * diff.size


@pytest.mark.parametrize("size", [64, 256, 1024])
def test_anchors_match_mrcnn(utils, size):
    cfg = MaskRCNNConfig(image_max_dim=size)
    shapes = np.array([[int(np.ceil(size / s))] * 2 for s in cfg.backbone_strides])
    want = utils.generate_pyramid_anchors(cfg.anchor_scales, list(cfg.anchor_ratios), shapes,
                                          list(cfg.backbone_strides), cfg.anchor_stride)
    np.testing.assert_array_equal(detect.anchors(cfg, (size, size)), utils.norm_boxes(want, (size, size)))


def test_unmold_mask_matches_mrcnn(utils):
    rng = np.random.default_rng(0)
    for box in ([10, 20, 70, 41], [0, 0, 5, 3], [3, 4, 60, 90], [0, 0, 1, 1]):
        mask = rng.random((28, 28)).astype(np.float32)
        np.testing.assert_array_equal(molding.unmold_mask(mask, np.array(box), (80, 100, 3)),
                                      utils.unmold_mask(mask, np.array(box), (80, 100, 3)))
