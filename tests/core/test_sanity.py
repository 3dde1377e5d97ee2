"""The cascading-randomisation sanity check on a tiny random model and the shipped trained one."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from inspector.core.checkpoint import Checkpoint
from inspector.core.config import Preprocess, ViTConfig
from inspector.core.data import make_synthetic
from inspector.core.explain import (
    capture_image,
    from_checkpoint,
    open_model,
    prepare,
)
from inspector.core.metrics_faithfulness import randomisation_order, reinitialise
from inspector.core.model import VisionTransformer
from inspector.core.postprocess import full_map
from inspector.core.saliency import MapSettings, compute_map
from inspector.core.sanity import cascade_layers, cascading_sanity, sanity_figure
from inspector.core.ssim import ssim
from inspector.paths import REPO_ROOT

TRAINED = REPO_ROOT / "checkpoints" / "synthetic-baseline.pt"


def _tiny():
    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=32, patch_size=8, num_classes=4, hidden_size=16, depth=2, num_heads=2
    )
    ckpt = Checkpoint.from_model(
        VisionTransformer(cfg).eval(),
        class_names=list("abcd"),
        preprocess=Preprocess(image_size=32),
    )
    return from_checkpoint(ckpt)


def _images(loaded, n=2, size=None):
    size = size or loaded.checkpoint.config.image_size
    data = make_synthetic(
        seed=4, image_size=size, train_per_class=1, val_per_class=1, test_per_class=1
    ).test
    return [prepare(data.images[i].permute(1, 2, 0).numpy(), loaded) for i in range(n)]


def test_randomising_nothing_gives_one_and_one():
    loaded = _tiny()
    images = _images(loaded)
    stop = threading.Event()
    stop.set()  # stop before the first layer: only the untouched copy is scored
    for method in ("rollout", "relevance"):
        res = cascading_sanity(loaded, images, MapSettings(method=method), stop=stop)
        assert res.stopped and res.layers == ["original"]
        assert len(res.records) == len(images)
        for r in res.records:
            assert r["spearman"] == pytest.approx(1.0, abs=1e-12)
            assert r["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_cascade_order_scores_and_maps_are_consistent():
    loaded = _tiny()
    images = _images(loaded)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    rng = torch.random.get_rng_state()
    seen = []
    res = cascading_sanity(
        loaded,
        images,
        MapSettings(method="rollout"),
        seed=3,
        progress=lambda done, text: seen.append((done, text)),
    )
    assert (
        res.layers
        == cascade_layers(loaded.model)
        == [
            "original",
            "head",
            "blocks.1",
            "blocks.0",
            "embeddings",
        ]
    )
    assert seen == [(i + 1, name) for i, name in enumerate(res.layers)]
    assert res.maps.shape == (5, 2, 32, 32)
    # Rollout does not read the head: randomising it leaves the map as it was.
    head = [r for r in res.records if r["layer"] == "head"]
    assert all(
        r["spearman"] == pytest.approx(1.0) and r["ssim"] == pytest.approx(1.0) for r in head
    )
    # Every record is scipy's Spearman and our SSIM of the stored maps.
    for r in res.records:
        ref, now = res.maps[0, r["image"]], res.maps[r["step"], r["image"]]
        assert r["spearman"] == pytest.approx(spearmanr(ref.ravel(), now.ravel()).statistic)
        assert r["ssim"] == pytest.approx(ssim(ref, now))
    # The last map is that of a model re-initialised independently, step after step.
    work = copy.deepcopy(loaded.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        for _, modules, bare in randomisation_order(work):
            reinitialise(work, modules, bare)
    cfg = loaded.checkpoint.config
    other = type(loaded)(loaded.checkpoint, work, None, loaded.device)
    grid = compute_map(capture_image(other, images[1]), settings=MapSettings(method="rollout"))
    full = full_map(grid, cfg.image_size, cfg.patch_size)
    np.testing.assert_allclose(res.maps[-1, 1], full, atol=1e-6)
    # Untouched: the model and the global RNG.
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.random.get_rng_state(), rng)
    per = res.per_layer()
    assert [p["layer"] for p in per] == res.layers
    assert per[-1]["ssim"] == pytest.approx(
        np.mean([r["ssim"] for r in res.records if r["step"] == 4])
    )


def test_gradient_method_explains_the_trained_class_throughout():
    loaded = _tiny()
    images = _images(loaded, n=1)
    res = cascading_sanity(loaded, images, MapSettings(method="relevance"))
    assert res.target_classes == [capture_image(loaded, images[0]).predicted_class]
    # The head feeds the gradient: relevance changes as soon as the head is random.
    assert res.records[1]["layer"] == "head"
    assert res.records[1]["ssim"] < 1.0 - 1e-6


@pytest.mark.skipif(not TRAINED.exists(), reason=f"{TRAINED} not found")
@pytest.mark.parametrize("method", ["rollout", "relevance"])
def test_fully_random_model_decorrelates_on_the_trained_checkpoint(method):
    loaded = open_model(TRAINED)
    images = _images(loaded, n=3)
    res = cascading_sanity(loaded, images, MapSettings(method=method))
    per = res.per_layer()
    assert per[0]["spearman"] == pytest.approx(1.0) and per[0]["ssim"] == pytest.approx(1.0)
    last = per[-1]
    assert last["layer"] == "embeddings"
    # Measured on these three images: rollout ends at rho -0.22 / SSIM 0.13, relevance at
    # -0.13 / 0.13. A method that passes the check must lose most of its similarity.
    assert last["spearman"] < 0.5, last
    assert last["ssim"] < 0.5, last


def test_figure_has_one_row_per_image_and_a_tile_per_step():
    loaded = _tiny()
    images = _images(loaded)
    res = cascading_sanity(loaded, images, MapSettings(method="cls-attention"))
    fig = sanity_figure(res, [im.display for im in images], tile=40)
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    cols = 1 + len(res.layers)
    assert fig.shape[1] == 6 + cols * (40 + 6)
    assert fig.shape[0] == 6 + 2 * (18 + 40 + 30 + 6)
    with pytest.raises(ValueError, match="pictures"):
        sanity_figure(res, [images[0].display])


def test_no_image_is_an_error():
    with pytest.raises(ValueError, match="at least one image"):
        cascading_sanity(_tiny(), [], MapSettings())
