"""Token layouts: prefix tokens (class, distillation, registers) never enter the patch grid;
read-outs for the class row equal the existing maps; the mean row and the token-norm view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspector.core import saliency
from inspector.core.capture import capture
from inspector.core.config import ViTConfig
from inspector.core.model import VisionTransformer
from inspector.core.saliency._readout import readout_map
from inspector.core.token_layout import TokenLayout, TokenLayoutError, output_weights
from inspector.core.token_norm import token_norm_map

timm = pytest.importorskip("timm")


def _dinov2_reg_capture():
    from inspector.core.library.timm_vit import TimmViTAdapter

    torch.manual_seed(0)
    m = timm.create_model(
        "vit_small_patch14_reg4_dinov2", pretrained=False, depth=2, img_size=224, num_classes=5
    )
    adapter = TimmViTAdapter(m, patch_size=14, image_size=224)
    return capture(adapter, torch.randn(1, 3, 224, 224))


def test_register_tokens_never_enter_the_patch_grid():
    cap = _dinov2_reg_capture()
    layout = cap.token_layout
    assert layout.prefix == ("class", "register", "register", "register", "register")
    assert layout.register_indices == [1, 2, 3, 4] and layout.grid == (16, 16)
    base = readout_map(cap, "attention", rescale=False)
    # Mark every register column: a map reading them would change.
    marked = cap.attentions.clone()
    marked[..., 1:5] = 1e3
    cap2 = type(cap)(**{**cap.__dict__, "attentions": marked, "_memo": {}})
    np.testing.assert_array_equal(readout_map(cap2, "attention", rescale=False), base)
    expected = cap.attentions[-1].mean(0)[0, 5:].reshape(16, 16).numpy()  # patches only
    np.testing.assert_allclose(base, expected, rtol=1e-6)
    # Token norms: a huge register norm is reported apart, never in the grid or the outliers.
    norms = cap.extras["token_norms"].numpy().copy()  # (L, T)
    norms[:, 2] = 1e6
    view = token_norm_map(norms, layout)
    assert view.map.shape == (16, 16) and view.map.max() < 1e5
    assert all(o.token >= 5 for o in view.outliers) and view.prefix_norms[2] == 1e6


def test_distillation_token_never_enters_the_patch_grid():
    cfg = ViTConfig(
        image_size=32, patch_size=8, num_classes=3, hidden_size=32, depth=2, num_heads=2,
        distill_token=True,
    )  # fmt: skip
    torch.manual_seed(0)
    cap = capture(VisionTransformer(cfg).eval(), torch.randn(1, 3, 32, 32))
    assert cap.token_layout.prefix == ("class", "distillation")
    marked = cap.attentions.clone()
    marked[..., 1] = 1e3  # the distillation token's column
    cap2 = type(cap)(**{**cap.__dict__, "attentions": marked, "_memo": {}})
    np.testing.assert_array_equal(
        readout_map(cap2, "attention", rescale=False), readout_map(cap, "attention", rescale=False)
    )


@pytest.mark.parametrize("method", ["attention", "rollout", "grad-rollout", "relevance"])
def test_class_row_readout_equals_the_class_token_maps(method):
    cap = _dinov2_reg_capture()
    settings = saliency.MapSettings(method=method, discard_ratio=0.5 if "roll" in method else 0.0)
    expected = saliency.compute_map(cap, settings=settings)
    got = readout_map(
        cap, method, row="class", discard_ratio=settings.discard_ratio, fusion=settings.fusion
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_mean_row_is_the_mean_of_patch_rows():
    cap = _dinov2_reg_capture()
    a = cap.attentions[0].mean(0).double().numpy()  # (T, T)
    expected = a[5:, 5:].mean(0).reshape(16, 16)
    got = readout_map(cap, "attention", row="mean", layer=0, rescale=False)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_output_weights_refuse_what_the_model_lacks():
    gap = TokenLayout.standard((4, 4), class_token=False, registers=4, pooling="mean")
    w = output_weights(gap)
    assert w[:4].sum() == 0 and np.isclose(w[4:].sum(), 1.0)
    with pytest.raises(TokenLayoutError, match="no class token"):
        output_weights(gap, "class")
    with pytest.raises(TokenLayoutError, match="no attention-pool"):
        output_weights(gap, "attention-pool")


def test_token_norm_outliers_flag_a_planted_high_norm_patch():
    layout = TokenLayout.standard((4, 4), registers=1)
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(3, layout.num_tokens, 8))  # (L, T, D)
    outputs[2, layout.patch_index(1, 2)] *= 40.0
    view = token_norm_map(outputs, layout, layer=-1)
    np.testing.assert_allclose(view.map[1, 2], np.linalg.norm(outputs[2, 2 + 4 + 2]), rtol=1e-6)
    assert [(o.row, o.col) for o in view.outliers] == [(1, 2)]
    assert token_norm_map(outputs, layout, layer=0).outliers == []
