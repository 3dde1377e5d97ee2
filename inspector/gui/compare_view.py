"""Compare view: several checkpoints side by side on the same image and map settings.

Public API (for the main window):

``CompareView(parent=None)``
    * ``set_models(paths)``, ``add_model(path)``, ``remove_model(path)``, ``models()``.
    * ``set_image(image (H, W, 3) uint8 | None)`` - each model prepares it with its own
      preprocessing (resize / crop) and captures it once.
    * ``set_settings(settings: MapSettings, smoothing="none")``, ``set_threshold(t)``,
      ``set_mask(mask (S, S) bool | None)``, ``set_colormap(name)``, ``set_opacity(o)``,
      ``set_scaling(rule)`` - maps, overlays and SMM are recomputed from the cached captures
      (no model is run again). Under the ``compare`` rule every tile is coloured by one shared
      range (:func:`inspector.core.colorscale.tile_scales`) and one colour bar stands beside
      the tiles; otherwise each tile has its own range and its own bar.
    * ``updated()`` signal after new results are shown; ``busy_changed(bool)``.
    * ``results() -> list[CellResult]`` - what each cell shows (prediction, SMM, map, overlay).
    * ``export_png(path, overwrite=False) -> Path`` - the composed view (``grab()``), written
      atomically; an existing file is refused unless ``overwrite=True``.
    * ``wait_idle(timeout_ms) -> bool`` - wait for the worker (tests, window close).

Tiles are square (:func:`inspector.gui.compare_tiles.tile_layout` picks the columns that give
the largest squares; many models scroll), captions wrap instead of clipping, and the header
names the method, its settings and the target class.

Loading, capturing and map computation run on a worker thread (one job at a time; requests that
arrive meanwhile are coalesced into one follow-up job, so the newest settings always win).
Numbers come from :mod:`inspector.core.explain`, :mod:`inspector.core.metrics` and
:mod:`inspector.core.postprocess`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEventLoop, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from inspector.paths import DEFAULT_CHECKPOINT

from .color_bar import ColorBar
from .compare_tiles import MAX_COLUMNS, Tile, tile_layout
from .workers import BackgroundRunner

__all__ = ["MAX_COLUMNS", "CellResult", "CompareView", "cell_title", "dialog_folder"]
# File names that say nothing about the model (training outputs, Hugging Face folders): the
# cell title then names the folders instead.
_GENERIC_STEMS = {"last", "best", "model", "pytorch_model", "checkpoint"}


def cell_title(path: str | os.PathLike) -> str:
    """A short, distinguishing title: the file name, or for a generic one such as a study's
    ``runs/<model>/seed-<s>/last.pt`` the folders that tell models apart
    (``<model> seed-<s>``)."""
    p = Path(path)
    if p.stem not in _GENERIC_STEMS:
        return p.name
    if p.parent.name.startswith("seed-") and p.parent.parent.name:
        return f"{p.parent.parent.name} {p.parent.name}"
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def dialog_folder(current_checkpoint: str | os.PathLike | None) -> str:
    """Where "Compare checkpoints…" opens: the open checkpoint's folder, else the project's
    ``checkpoints/`` (never an image folder: that is where no checkpoints are)."""
    if current_checkpoint is not None and Path(current_checkpoint).parent.is_dir():
        return str(Path(current_checkpoint).parent)
    folder = DEFAULT_CHECKPOINT.parent
    return str(folder if folder.is_dir() else Path.cwd())


@dataclass
class CellResult:
    """What one cell shows (computed on the worker; plain numpy and Python values).

    Attributes:
        path: the checkpoint.
        name: file name shown as the title.
        error: one-line problem (unreadable checkpoint, class out of range...), else "".
        class_index, class_name, probability: the top-1 prediction.
        grid: ``(rows, cols)`` patch-grid map in [0, 1].
        map01: ``(S, S)`` map at the model's input resolution in [0, 1].
        overlay: ``(S, S, 3)`` uint8 colour-mapped map over the model's display image.
        smm: SMM against the mask at the threshold; None when undefined or no mask.
        scale: the values the tile's colours stand for (its own range, or the shared one).
        target_class, target_name: the class the map explains (gradient methods).
    """

    path: str
    name: str
    error: str = ""
    class_index: int = -1
    class_name: str = ""
    probability: float = float("nan")
    grid: np.ndarray | None = None
    map01: np.ndarray | None = None
    overlay: np.ndarray | None = None
    smm: float | None = None
    has_mask: bool = False
    scale: Any = None  # inspector.core.colorscale.Scale
    target_class: int = -1
    target_name: str = ""


@dataclass(eq=False)
class _Entry:
    """One model and its caches; mutated only by the (single) worker job."""

    path: str
    loaded: Any = None  # inspector.core.explain.LoadedModel
    error: str = ""
    image_gen: int = -1
    prepared: Any = None  # PreparedImage for image_gen
    capture: Any = None  # Capture for image_gen
    captures_made: int = 0


@dataclass(frozen=True)
class _Request:
    entries: tuple[_Entry, ...]
    models_gen: int
    image: np.ndarray | None
    image_gen: int
    settings: Any
    smoothing: str
    mask: np.ndarray | None
    threshold: float
    cmap: str
    opacity: float
    scaling: str = "per-map"


def _compute(req: _Request) -> tuple[int, int, list[CellResult]]:
    """The worker job: load, prepare and capture as needed, then map, overlay and SMM; then
    the tiles' colour ranges under the scaling rule (the shared one recolours the overlays)."""
    from inspector.core.colorscale import map_values, recolour, tile_scales
    from inspector.core.explain import capture_image, open_model, prepare
    from inspector.core.pipeline import ExplainSettings, explain_one

    results = []
    values: list[np.ndarray | None] = []  # (S, S) each tile's map in the method's units
    displays: list[np.ndarray | None] = []
    for entry in req.entries:
        res = CellResult(path=entry.path, name=cell_title(entry.path))
        results.append(res)
        values.append(None)
        displays.append(None)
        try:
            if entry.loaded is None and not entry.error:
                entry.loaded = open_model(entry.path)
            if entry.error:
                raise ValueError(entry.error)
            if req.image is None:
                continue
            loaded = entry.loaded
            if entry.image_gen != req.image_gen:
                entry.prepared = prepare(req.image, loaded)
                entry.capture = capture_image(loaded, entry.prepared)
                entry.image_gen = req.image_gen
                entry.captures_made += 1
            cap, display = entry.capture, entry.prepared.display
            # The window's mask is in its display geometry: it applies where this model sees
            # the same pixels (same input size and crop); elsewhere the cell has no SMM.
            same = req.mask is not None and req.mask.shape == display.shape[:2]
            mask = req.mask if same else None
            result = explain_one(
                loaded,
                entry.prepared,
                ExplainSettings(
                    map=req.settings,
                    smoothing=req.smoothing,
                    threshold=req.threshold,
                    colormap=req.cmap,
                    opacity=req.opacity,
                ),
                mask=mask,
                aligned=True,
                capture=cap,
                top_k=1,
            )
            (top,) = result.predictions
            res.class_index, res.probability = top["class"], top["probability"]
            res.class_name = top["name"]
            res.grid, res.map01, res.overlay = result.grid, result.full, result.overlay
            names = loaded.class_names
            res.target_class = result.target_class
            c = result.target_class
            res.target_name = names[c] if 0 <= c < len(names) else f"class {c}"
            size = result.full.shape[0]
            values[-1] = map_values(
                result.raw_grid, size, size // result.raw_grid.shape[0], req.smoothing
            )
            displays[-1] = display
            if mask is not None:
                res.has_mask = True
                res.smm = result.smm
        except Exception as exc:  # noqa: BLE001 - one broken model must not hide the others
            if entry.loaded is None:
                entry.error = str(exc) or type(exc).__name__  # do not retry a broken file
            res.error = str(exc) or type(exc).__name__
    scales = tile_scales(values, req.scaling)
    for res, v, d, sc in zip(results, values, displays, scales, strict=True):
        res.scale = sc
        if v is not None and req.scaling == "compare":
            res.overlay = recolour(d, v, sc, req.cmap, req.opacity)
    return req.models_gen, req.image_gen, results


class CompareView(QWidget):
    """Checkpoints side by side: prediction, saliency overlay and SMM for each."""

    updated = Signal()
    busy_changed = Signal(bool)
    checkpointsDropped = Signal(list)  # paths dropped on the view (the window adds them)
    studyRequested = Signal()  # "Compare the study models" on the empty view
    chooseRequested = Signal()  # "Choose checkpoints…" on the empty view

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from inspector.core.saliency import MapSettings

        self.setAcceptDrops(True)
        self.forward_drops = False  # True: dropped checkpoints go to the window (it adds them)
        self._entries: list[_Entry] = []
        self._cells: list[Tile] = []
        self._columns = 0  # cells per row as last placed (0: not placed yet)
        self._models_gen = 0
        self._image: np.ndarray | None = None
        self._image_gen = 0
        self._settings = MapSettings()
        self._smoothing = "none"
        self._mask: np.ndarray | None = None
        self._threshold = 0.3
        self._cmap = "viridis"
        self._opacity = 0.5
        self._scaling = "per-map"
        self._target = ""  # the target class's name when every tile explains the same one
        self._side = 0  # px of a tile's square image as last placed
        self._running = False
        self._dirty = False
        self._runner = BackgroundRunner(self)
        self._runner.finished.connect(self._on_finished)
        self._runner.failed.connect(self._on_failed)

        lay = QVBoxLayout(self)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.header)
        self.grid_widget = QWidget()
        self.grid = QGridLayout(self.grid_widget)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.scroll = QScrollArea()  # many models: the tiles keep their size and scroll
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.grid_widget)
        # One bar beside the tiles when they share a range (the compare scaling rule).
        self.bar = ColorBar(Qt.Orientation.Vertical)
        self.bar.setVisible(False)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.scroll, 1)
        body.addWidget(self.bar)
        lay.addLayout(body, 1)
        # The empty view says what it is for and offers both ways in, centred where the
        # tiles will be (a line at the top-left left the whole tab empty).
        self.empty_label = QLabel(
            "Compare checkpoints side by side on this image, with the main view's method, "
            "settings, target and mask.\nDrop two or more checkpoints here, or:"
        )
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.study_button = QPushButton("Compare the paper's study models")
        self.study_button.clicked.connect(self.studyRequested)
        self.choose_button = QPushButton("Choose checkpoints…")
        self.choose_button.clicked.connect(self.chooseRequested)
        self.empty_state = QWidget()
        empty = QVBoxLayout(self.empty_state)
        empty.addStretch(1)
        empty.addWidget(self.empty_label)
        # One above the other: side by side they made the tab (and so the centre) at least
        # ~450 px wide, which squeezed the training dock at 1280 px.
        for button in (self.study_button, self.choose_button):
            empty.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        empty.addStretch(2)
        body.insertWidget(0, self.empty_state, 1)  # in the tiles' place
        self.scroll.setVisible(False)
        self._update_header()

    # ------------------------------------------------------------------ models
    def models(self) -> list[str]:
        return [e.path for e in self._entries]

    def set_models(self, paths: list[str | os.PathLike]) -> None:
        """Show exactly these checkpoints (already loaded ones are kept, not reloaded)."""
        old = {e.path: e for e in self._entries}
        self._entries = [old.get(str(p)) or _Entry(str(p)) for p in paths]
        self._rebuild_cells()

    def add_model(self, path: str | os.PathLike) -> None:
        if str(path) not in self.models():
            self.set_models([*self.models(), str(path)])

    def remove_model(self, path: str | os.PathLike) -> None:
        self.set_models([p for p in self.models() if p != str(path)])

    # ------------------------------------------------------------------ drops
    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        if self._dropped_checkpoints(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self.dragEnterEvent(event)

    def dropEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        paths = self._dropped_checkpoints(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        if self.forward_drops:
            self.checkpointsDropped.emit(paths)
        else:  # standalone
            for p in paths:
                self.add_model(p)

    @staticmethod
    def _dropped_checkpoints(event: Any) -> list[str]:
        from .drops import classify_paths

        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        files = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        return [str(p) for p in classify_paths(files).checkpoints]

    # ------------------------------------------------------------------ inputs
    def set_image(self, image: np.ndarray | None) -> None:
        """The image every model looks at (each applies its own preprocessing)."""
        self._image = None if image is None else np.array(image, dtype=np.uint8, copy=True)
        self._image_gen += 1
        self._schedule()

    def set_settings(self, settings: Any, smoothing: str = "none") -> None:
        """The map settings (an ``inspector.core.saliency.MapSettings``) and smoothing."""
        self._settings, self._smoothing = settings, smoothing
        self._update_header()
        self._schedule()

    def set_mask(self, mask: np.ndarray | None) -> None:
        self._mask = None if mask is None else np.asarray(mask, dtype=bool).copy()
        self._schedule()

    def set_threshold(self, threshold: float) -> None:
        self._threshold = float(threshold)
        self._update_header()
        self._schedule()

    def set_colormap(self, name: str) -> None:
        self._cmap = name
        self._schedule()

    def set_opacity(self, opacity: float) -> None:
        self._opacity = float(opacity)
        self._schedule()

    def set_scaling(self, rule: str) -> None:
        """One of :data:`inspector.core.colorscale.SCALINGS`: ``compare`` shares one range."""
        self._scaling = rule
        self._update_header()
        self._schedule()

    # ------------------------------------------------------------------ outputs
    def results(self) -> list[CellResult | None]:
        """The result each cell shows, in model order (None before the first)."""
        return [c.result for c in self._cells]

    def cells(self) -> list[QWidget]:
        return list(self._cells)

    def is_busy(self) -> bool:
        return self._running

    def wait_idle(self, timeout_ms: int = 60_000) -> bool:
        """Process events until no job is running or pending (True) or the timeout."""
        if not self._running:
            return True
        loop = QEventLoop()
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)

        def on_busy(busy: bool) -> None:
            if not busy:
                loop.quit()

        self.busy_changed.connect(on_busy)
        timer.start(timeout_ms)
        loop.exec()
        timer.stop()
        self.busy_changed.disconnect(on_busy)
        return not self._running

    def export_png(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the composed view (titles, overlays, predictions) as a PNG, atomically.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
            OSError: the PNG could not be written.
        """
        from inspector.core.atomic import atomic_path

        dest = Path(path)
        pixmap = self.grab()
        with atomic_path(dest, overwrite=overwrite) as tmp:
            # The temporary name ends in .tmp, so name the format explicitly.
            if not pixmap.save(str(tmp), "PNG"):
                raise OSError(f"could not write {dest}")
        return dest

    # ------------------------------------------------------------------ worker
    def _schedule(self) -> None:
        if not self._entries:
            return
        if self._running:
            self._dirty = True  # coalesce: one follow-up job with the newest state
            return
        self._submit()

    def _submit(self) -> None:
        self._dirty = False
        req = _Request(
            entries=tuple(self._entries),
            models_gen=self._models_gen,
            image=self._image,
            image_gen=self._image_gen,
            settings=self._settings,
            smoothing=self._smoothing,
            mask=self._mask,
            threshold=self._threshold,
            cmap=self._cmap,
            opacity=self._opacity,
            scaling=self._scaling,
        )
        if not self._running:
            self._running = True
            self.busy_changed.emit(True)
        self._runner.submit(lambda: _compute(req))

    @Slot(int, object)
    def _on_finished(self, _request_id: int, payload: object) -> None:
        models_gen, image_gen, results = payload
        if models_gen == self._models_gen and image_gen == self._image_gen:
            mask = self._mask
            shared = self._scaling == "compare"
            for cell, res in zip(self._cells, results, strict=True):
                cell.show_result(res, mask, self._cmap, bar=not shared)
            scales = [r.scale for r in results if r.scale is not None]
            self.bar.set_scale(scales[0] if shared and scales else None, self._cmap)
            self.bar.setVisible(shared and bool(scales))
            names = {r.target_name for r in results if r.overlay is not None and r.target_name}
            self._target = names.pop() if len(names) == 1 else ""
            self._update_header()
            self._place_cells()  # the shared bar may have appeared or gone
            self.updated.emit()
        self._job_done()

    @Slot(int, str)
    def _on_failed(self, _request_id: int, message: str) -> None:
        self.header.setText(f"⚠ {message}")
        self._job_done()

    def _job_done(self) -> None:
        if self._dirty and self._entries:
            self._submit()
            return
        self._running = False
        self.busy_changed.emit(False)

    # ------------------------------------------------------------------ layout
    def _rebuild_cells(self) -> None:
        self._models_gen += 1
        for cell in self._cells:
            self.grid.removeWidget(cell)
            cell.deleteLater()
        self._cells = [Tile(e.path, cell_title(e.path)) for e in self._entries]
        titles = [cell.title_text for cell in self._cells]
        for cell, title in zip(self._cells, titles, strict=True):
            if titles.count(title) > 1:  # e.g. model.pt of two runs: name the folders too
                cell.set_title("/".join(Path(cell.path).parts[-3:]))
        self.empty_state.setVisible(not self._cells)
        self.scroll.setVisible(bool(self._cells))
        self.bar.setVisible(False)
        self._columns = self._side = 0
        self._place_cells()
        self._update_header()
        self._schedule()

    def _update_header(self) -> None:
        s = self._settings
        parts = [f"method {s.info.label}"]
        if s.uses("fusion") and not (s.uses("head") and s.head is not None):
            parts.append(f"fusion {s.fusion}")
        if s.uses("discard_ratio"):
            parts.append(f"discard {s.discard_ratio:.2f}")
        if s.uses("layer"):
            parts.append(f"layer {s.layer}" + ("" if s.head is None else f" head {s.head}"))
        if s.uses("aggregation"):
            parts.append(f"aggregation {s.aggregation}")
        target = self._target
        if s.class_index is None:
            target = f"predicted class ({target})" if target else "each model's predicted class"
        else:
            target = f"class {s.class_index}" + (f" ({target})" if target else "")
        parts.append(f"target {target}" + (f", {s.target} gradient" if s.needs_gradients else ""))
        parts.append(f"smoothing {self._smoothing}")
        parts.append(f"SMM threshold {self._threshold:.2f}")
        parts.append(
            "colours: one range for all tiles"
            if self._scaling == "compare"
            else "colours: each tile its own range"
        )
        count = len(self._entries)
        models = "no models yet" if not count else f"{count} model" + ("s" * (count != 1))
        self.header.setText(f"{models} · " + " · ".join(parts))

    def _geometry(self) -> tuple[int, int]:
        """``(columns, side)`` for the area the tiles have now: the view less its margins, the
        header, the shared bar when shown, and a vertical scroll bar's width (kept free so that
        an overflowing view never needs a horizontal one)."""
        m = self.layout().contentsMargins()
        scrollbar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        width = self.width() - m.left() - m.right() - scrollbar - 2
        if self.bar.isVisible():
            width -= self.bar.sizeHint().width() + self.layout().spacing()
        header = self.header.heightForWidth(max(1, self.width() - m.left() - m.right()))
        height = self.height() - m.top() - m.bottom() - max(0, header) - self.layout().spacing()
        fm = self.fontMetrics()
        text = Tile.text_height(fm.height(), 16 + 2 * fm.height())
        return tile_layout(len(self._cells), width, height, text, self.grid.spacing())

    def columns(self) -> int:
        """Tiles per row for the current size (a narrow view stacks them)."""
        return self._geometry()[0]

    def tile_side(self) -> int:
        """Px of each tile's square image as placed."""
        return self._side

    def _place_cells(self) -> None:
        columns, side = self._geometry()
        if side != self._side:
            self._side = side
            for cell in self._cells:
                cell.set_side(side)
        if columns == self._columns:
            return
        self._columns = columns
        for cell in self._cells:
            self.grid.removeWidget(cell)
        for i, cell in enumerate(self._cells):
            self.grid.addWidget(cell, i // columns, i % columns)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        self._place_cells()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self._dirty = False
        self._runner.wait_all(30_000)
        super().closeEvent(event)
