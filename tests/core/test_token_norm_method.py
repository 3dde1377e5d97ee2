"""``token-norm`` as a registered method: per-layer patch-token output norms of our ViT (and
every adapter that records its blocks), with the high-norm outliers flagged in ``explain``'s
JSON. The known answer is hand-built: one bright patch in a dark image, through a patch
embedding scaled up, is the only token whose residual stream is large."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.core.capture import capture
from inspector.core.checkpoint import Checkpoint, save_checkpoint
from inspector.core.config import Preprocess, ViTConfig
from inspector.core.model import VisionTransformer
from inspector.core.saliency import MapSettings, SaliencyError, compute_map, registry
from inspector.core.saliency.token_norm import capture_norm_profile, capture_outliers

PLANT = (1, 2)  # the bright patch (row, col) of the 4x4 grid


def _model() -> VisionTransformer:
    torch.manual_seed(3)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=16, depth=3, num_heads=2,
                    num_classes=3, pos_encoding="learned")  # fmt: skip
    model = VisionTransformer(cfg).eval()
    with torch.no_grad():
        model.patch_embed.proj.weight.mul_(20.0)
        model.patch_embed.proj.bias.zero_()
    return model


def _image() -> np.ndarray:
    """(32, 32, 3) uint8: dim noise, one bright patch at PLANT."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 12, (32, 32, 3)).astype(np.uint8)
    r, c = PLANT
    img[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = 255
    return img


def _input(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0  # mean 0, std 1


def _reference_norms(model: VisionTransformer, x: torch.Tensor) -> np.ndarray:
    """(L, T) block-output norms by the plain forward (block(x), not the capture path), f64."""
    out = []
    with torch.no_grad():
        h = model.embed(x)
        for block in model.blocks:
            h = block(h)
            out.append(h[0].double().norm(dim=-1).numpy())
    return np.stack(out)


def test_token_norm_is_registered_and_reads_no_output_row():
    info = registry.get("token-norm")
    assert info.uses == frozenset({"layer"}) and not info.reads_output_row
    assert not info.needs_gradients


def test_map_is_the_layer_norms_and_the_planted_patch_is_the_only_outlier():
    model = _model()
    x = _input(_image())
    cap = capture(model, x)
    ref = _reference_norms(model, x)  # (L, 1 + 16)
    for layer in range(3):
        raw = compute_map(cap, settings=MapSettings(method="token-norm", layer=layer),
                          rescale=False)  # fmt: skip
        np.testing.assert_allclose(raw, ref[layer, 1:].reshape(4, 4), rtol=1e-5)
        report = capture_outliers(cap, layer=layer)
        assert [(o["row"], o["col"]) for o in report["outliers"]] == [PLANT]
        assert report["outliers"][0]["token"] == 1 + PLANT[0] * 4 + PLANT[1]
        assert report["prefix_norms"][0]["kind"] == "class"
        assert report["prefix_norms"][0]["norm"] == pytest.approx(ref[layer, 0], rel=1e-5)
    # Without the bright patch nothing is flagged: the rule is not "always the maximum".
    calm = _image()
    calm[8:16, 16:24] = 6
    assert capture_outliers(capture(model, _input(calm)))["outliers"] == []
    rescaled = compute_map(cap, "token-norm")
    assert rescaled.max() == pytest.approx(1.0) and rescaled[PLANT] == pytest.approx(1.0)


def test_the_norm_profile_bounds_each_layer_by_the_outlier_rule():
    model = _model()
    x = _input(_image())
    cap = capture(model, x)
    ref = _reference_norms(model, x)[:, 1:]  # (L, 16) patch tokens, float64
    prof = capture_norm_profile(cap)
    np.testing.assert_allclose(prof.patches, ref, rtol=1e-5)
    for layer in range(3):
        patches = ref[layer]
        med = np.median(patches)
        mad = np.median(np.abs(patches - med)) * 1.4826
        assert prof.median[layer] == pytest.approx(med, rel=1e-5)
        assert prof.threshold[layer] == pytest.approx(med + 5 * mad, rel=1e-5)
        # The bound separates exactly the outliers the per-layer report lists.
        above = np.flatnonzero(prof.patches[layer] > prof.threshold[layer])
        listed = [o["row"] * 4 + o["col"] for o in capture_outliers(cap, layer=layer)["outliers"]]
        assert sorted(listed) == above.tolist() == [PLANT[0] * 4 + PLANT[1]]


def test_a_capture_without_norms_is_refused_with_the_reason():
    cap = capture(_model(), _input(_image()))
    cap.extras.pop("token_norms")
    with pytest.raises(SaliencyError, match="token outputs"):
        compute_map(cap, "token-norm")


def test_cli_explain_json_flags_the_outlier(tmp_path, capsys):
    from inspector.cli import main

    model = _model()
    ckpt = Checkpoint.from_model(
        model, class_names=["a", "b", "c"],
        preprocess=Preprocess(image_size=32, mean=(0.0,) * 3, std=(1.0,) * 3),
    )  # fmt: skip
    path = save_checkpoint(tmp_path / "planted.pt", ckpt)
    img = tmp_path / "bright.png"
    Image.fromarray(_image()).save(img)
    out = tmp_path / "out"
    argv = ["explain", "--checkpoint", str(path), "--image", str(img), "--out", str(out),
            "--method", "token-norm", "--layer", "1"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "bright.json").read_text())
    tn = record["token_norm"]
    assert tn["layer"] == 1 and "1.4826 * MAD" in tn["rule"]
    assert [(o["row"], o["col"]) for o in tn["outliers"]] == [PLANT]
    ref = _reference_norms(model, _input(_image()))
    assert tn["outliers"][0]["norm"] == pytest.approx(ref[1, 1 + PLANT[0] * 4 + PLANT[1]], rel=1e-5)
    raw = np.load(out / "bright_token-norm_raw.npy")
    np.testing.assert_allclose(raw, ref[1, 1:].reshape(4, 4), rtol=1e-5)
    assert "high-norm" in capsys.readouterr().out
