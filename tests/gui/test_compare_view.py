"""Compare view: two tiny random checkpoints side by side (pytest-qt, offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from inspector.core import metrics  # noqa: E402
from inspector.core.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from inspector.core.config import Preprocess, ViTConfig  # noqa: E402
from inspector.core.model import VisionTransformer  # noqa: E402
from inspector.core.saliency import MapSettings  # noqa: E402
from inspector.gui.compare_view import CompareView  # noqa: E402

S = 32
K = 5


def _checkpoint(path, seed: int, prefix: str, **cfg) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer(
        ViTConfig(
            image_size=S, patch_size=8, hidden_size=16, depth=2, num_heads=2, num_classes=K, **cfg
        )
    )
    model.reset_parameters()
    ckpt = Checkpoint.from_model(
        model, class_names=[f"{prefix}{i}" for i in range(K)], preprocess=Preprocess(image_size=S)
    )
    save_checkpoint(path, ckpt)
    return model.eval()


@pytest.fixture
def models(tmp_path):
    a = _checkpoint(tmp_path / "a.pt", 0, "alpha")
    b = _checkpoint(tmp_path / "b.pt", 1, "beta", pos_encoding="learned")
    return [(tmp_path / "a.pt", a, "alpha"), (tmp_path / "b.pt", b, "beta")]


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (S, S, 3), dtype=np.uint8)


@pytest.fixture
def view(qtbot):
    w = CompareView()
    qtbot.addWidget(w)
    w.resize(700, 360)
    w.show()
    yield w
    w.wait_idle()


def _widget_pixels(widget) -> np.ndarray:
    qimg = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    ptr = qimg.constBits()
    arr = np.frombuffer(ptr, np.uint8).reshape(qimg.height(), qimg.bytesPerLine())
    return arr[:, : qimg.width() * 3].reshape(qimg.height(), qimg.width(), 3).copy()


def test_predictions_overlays_and_smm(view, qtbot, models, image):
    view.set_models([str(p) for p, _, _ in models])
    with qtbot.waitSignal(view.updated, timeout=30_000):
        view.set_image(image)
    assert view.wait_idle()
    results = view.results()
    # Independent prediction: the model's own forward on (x / 255 - 0.5) / 0.5.
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255.0
    x = ((x - 0.5) / 0.5).float()
    for res, (_, model, prefix) in zip(results, models, strict=True):
        assert not res.error
        with torch.no_grad():
            logits = model(x)[0]
        top = int(logits.argmax())
        assert res.class_name == f"{prefix}{top}"
        assert res.probability == pytest.approx(float(logits.double().softmax(-1)[top]), abs=1e-5)
        assert res.overlay.shape == (S, S, 3) and res.overlay.dtype == np.uint8
    for cell, res in zip(view.cells(), results, strict=True):
        assert res.class_name in cell.info.text()
    # Different models look at different places: the overlays differ, and so do the cells.
    assert np.any(results[0].overlay != results[1].overlay)
    pix = [_widget_pixels(c.plot) for c in view.cells()]
    assert pix[0].shape == pix[1].shape and np.any(pix[0] != pix[1])

    # A mask gives each model's SMM, equal to the core metric on the shown map.
    mask = np.zeros((S, S), bool)
    mask[8:24, 4:20] = True
    with qtbot.waitSignal(view.updated, timeout=30_000):
        view.set_mask(mask)
    view.wait_idle()
    for res, cell in zip(view.results(), view.cells(), strict=True):
        expected = metrics.smm(res.map01, mask, 0.3)
        assert res.smm == expected
        assert "SMM" in cell.info.text()


def test_settings_recompute_from_cached_capture(view, qtbot, models, image):
    view.set_models([str(p) for p, _, _ in models])
    view.set_image(image)
    view.wait_idle()
    before = [r.grid.copy() for r in view.results()]
    captures = [e.capture for e in view._entries]
    with qtbot.waitSignal(view.updated, timeout=30_000):
        view.set_settings(MapSettings(method="attention", layer=0, head=1), "none")
    view.wait_idle()
    after = view.results()
    assert [e.capture for e in view._entries] == captures  # same capture objects
    assert all(e.captures_made == 1 for e in view._entries)
    assert any(np.any(b != a.grid) for b, a in zip(before, after, strict=True))
    # Rapid changes coalesce; the newest setting wins.
    for ratio in (0.1, 0.3, 0.5, 0.7, 0.0):
        view.set_settings(MapSettings(method="rollout", discard_ratio=ratio), "paper")
    assert view.wait_idle()
    from inspector.core.saliency import compute_map

    e = view._entries[0]
    grid = compute_map(e.capture, settings=MapSettings(method="rollout", discard_ratio=0.0))
    np.testing.assert_array_equal(view.results()[0].grid, grid)


def test_broken_checkpoint_shows_error_others_work(view, qtbot, models, image, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    view.set_models([str(models[0][0])])
    view.add_model(bad)
    view.add_model(bad)  # added once only
    assert view.models() == [str(models[0][0]), str(bad)]
    with qtbot.waitSignal(view.updated, timeout=30_000):
        view.set_image(image)
    view.wait_idle()
    good, broken = view.results()
    assert not good.error and good.overlay is not None
    assert broken.error and broken.overlay is None
    assert "Traceback" not in view.cells()[1].info.text()
    view.remove_model(bad)
    assert view.models() == [str(models[0][0])]


def test_export_png(view, qtbot, models, image, tmp_path):
    view.set_models([str(p) for p, _, _ in models])
    with qtbot.waitSignal(view.updated, timeout=30_000):
        view.set_image(image)
    view.wait_idle()
    out = tmp_path / "compare.png"
    assert view.export_png(out) == out
    with Image.open(out) as im:
        assert im.format == "PNG"
        dpr = view.grab().devicePixelRatio()
        assert im.size == (round(view.width() * dpr), round(view.height() * dpr))
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 0  # not a blank image
    before = out.read_bytes()
    with pytest.raises(FileExistsError):
        view.export_png(out)
    assert out.read_bytes() == before
    view.export_png(out, overwrite=True)
    assert not list(tmp_path.glob(".*.tmp"))


def test_cells_wrap_to_the_view_width(view, qtbot, tmp_path):
    """Tiles are square and as large as the area allows: a wide view puts five in a row, a
    narrow one stacks them, and none sticks out of the view (no horizontal scrolling)."""
    paths = []
    for i in range(5):
        _checkpoint(tmp_path / f"m{i}.pt", i, f"m{i}-")
        paths.append(tmp_path / f"m{i}.pt")
    view.set_models(paths)

    def positions():
        return [view.grid.getItemPosition(view.grid.indexOf(c))[:2] for c in view.cells()]

    def check_fits():
        qtbot.waitUntil(lambda: view.grid_widget.width() > 0)
        for c in view.cells():
            assert c.plot.width() == c.plot.height() == view.tile_side()
            right = c.mapTo(view, c.rect().topRight()).x()
            assert right <= view.width(), (right, view.width())

    view.resize(420, 600)
    columns = max(p[1] for p in positions()) + 1
    assert 2 <= columns <= 3
    check_fits()
    view.resize(1300, 600)
    assert positions() == [(0, c) for c in range(5)]
    check_fits()
    view.resize(150, 600)
    assert positions() == [(r, 0) for r in range(5)]


def test_tile_layout_picks_the_largest_squares():
    from inspector.gui.compare_tiles import MIN_SIDE, tile_layout

    # Four tiles in a square area: 2 x 2 beats 1 x 4 and 4 x 1 (hand-computed sides).
    columns, side = tile_layout(4, 800, 800, text_height=0, spacing=0)
    assert columns == 2 and side == 400 - 10
    # A wide strip: all in one row, limited by the height.
    columns, side = tile_layout(3, 1200, 300, text_height=50, spacing=0)
    assert columns == 3 and side == 300 - 50 - 10
    # Too many for the area: the minimum size, and the view scrolls.
    columns, side = tile_layout(14, 300, 200, text_height=60)
    assert side >= MIN_SIDE and columns * (side + 10) <= 300 + 6
