"""Mask sources: files, boxes, and Mask R-CNN with randomly initialised weights (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.core.masks import MaskError, MaskRCNNSegmenter, box_mask, mask_from_file

# Small and fast: a 64x64 image kept at 64 by torchvision's resize, few proposals and detections.
FAST = dict(
    min_size=64,
    max_size=64,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    box_detections_per_img=5,
)


def test_box_mask_inclusive_corners_and_clipping():
    m = box_mask((4, 5), 1, 0, 3, 1)  # columns 1..3, rows 0..1
    expected = np.zeros((4, 5), bool)
    expected[0:2, 1:4] = True
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == bool and m.shape == (4, 5)
    assert box_mask((4, 5), 2, 2, 2, 2).sum() == 1  # a single pixel
    assert box_mask((4, 5), -3, -3, 10, 10).all()  # clipped to the image
    assert not box_mask((4, 5), 7, 7, 9, 9).any()  # entirely outside
    with pytest.raises(MaskError, match="x0 <= x1"):
        box_mask((4, 5), 3, 0, 1, 1)
    with pytest.raises(MaskError, match="integer"):
        box_mask((4, 5), 0.5, 0, 1, 1)
    with pytest.raises(MaskError, match="size"):
        box_mask((0, 5), 0, 0, 1, 1)


def test_mask_from_file_nonzero_is_object_and_nearest_resize(tmp_path):
    grey = np.zeros((4, 4), np.uint8)
    grey[:2, :2] = 7  # any non-zero value is object
    Image.fromarray(grey).save(tmp_path / "grey.png")
    m = mask_from_file(tmp_path / "grey.png", (8, 8))
    expected = np.zeros((8, 8), bool)
    expected[:4, :4] = True
    np.testing.assert_array_equal(m, expected)
    rgb = np.zeros((3, 3, 3), np.uint8)
    rgb[1, 2, 2] = 1  # a single non-zero blue value
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    m = mask_from_file(tmp_path / "rgb.png", (3, 3))
    assert m.sum() == 1 and m[1, 2]
    with pytest.raises(MaskError, match="not found"):
        mask_from_file(tmp_path / "missing.png", (8, 8))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path_factory.mktemp("mrcnn") / "random_maskrcnn.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.mark.slow  # a ResNet-50 Mask R-CNN on CPU: a few seconds
def test_maskrcnn_union_matches_independent_thresholding(weights_file, image):
    seg = MaskRCNNSegmenter(weights_file, score_threshold=0.0, mask_threshold=0.5, **FAST)
    assert seg.num_classes == 3  # read from the file, not assumed to be COCO's 91
    res = seg.segment(image)
    # Independent path: run the loaded torchvision model directly and threshold here.
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        raw = seg.model([x])[0]
    assert len(raw["scores"]) == 5  # random heads: plenty of detections over score 0
    masks = raw["masks"][:, 0].numpy() > 0.5  # (K, 64, 64)
    np.testing.assert_array_equal(res.mask, masks.any(axis=0))
    assert res.mask.shape == (64, 64) and res.mask.dtype == bool
    assert [d[0] for d in res.detections] == raw["labels"].tolist()
    np.testing.assert_allclose([d[1] for d in res.detections], raw["scores"].numpy())
    np.testing.assert_allclose([d[2] for d in res.detections], raw["boxes"].numpy())
    scores = [d[1] for d in res.detections]
    assert scores == sorted(scores, reverse=True)
    one = seg.segment(image, instance=1)
    np.testing.assert_array_equal(one.mask, masks[1])
    with pytest.raises(MaskError, match="out of range"):
        seg.segment(image, instance=5)
    # A higher score threshold keeps a prefix of the same detections.
    cut = float(raw["scores"][2])
    seg.score_threshold = cut
    high = seg.segment(image)
    assert len(high.detections) == int((raw["scores"] >= cut).sum())
    np.testing.assert_array_equal(high.mask, masks[: len(high.detections)].any(axis=0))
    with pytest.raises(MaskError, match="uint8"):
        seg.segment(image.astype(np.float32))
    assert seg.label_name(2) == "class 2"


@pytest.mark.slow  # a ResNet-50 Mask R-CNN on CPU: a few seconds
def test_maskrcnn_no_detection_gives_empty_mask(weights_file, image):
    seg = MaskRCNNSegmenter(
        weights_file, score_threshold=0.0, **{**FAST, "box_detections_per_img": 0}
    )
    res = seg.segment(image)
    assert res.detections == []
    assert res.mask.shape == (64, 64) and not res.mask.any()
    with pytest.raises(MaskError, match="out of range"):
        seg.segment(image, instance=0)


@pytest.mark.slow  # a ResNet-50 Mask R-CNN on CPU: a few seconds
def test_maskrcnn_bad_files(tmp_path, weights_file):
    with pytest.raises(MaskError, match="not found"):
        MaskRCNNSegmenter(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch file")
    with pytest.raises(MaskError, match="cannot load"):
        MaskRCNNSegmenter(junk)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(MaskError, match="not a Mask R-CNN"):
        MaskRCNNSegmenter(other)
    with pytest.raises(MaskError, match="does not match"):  # v1 weights into the v2 layout
        MaskRCNNSegmenter(weights_file, variant="maskrcnn_resnet50_fpn_v2", **FAST)
    with pytest.raises(MaskError, match="variant"):
        MaskRCNNSegmenter(weights_file, variant="fasterrcnn")
    with pytest.raises(MaskError, match="score_threshold"):
        MaskRCNNSegmenter(weights_file, score_threshold=2.0)
