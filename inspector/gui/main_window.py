"""The inspector's main window: image + overlay in the centre, panels in docks.

Data flow (docs/ARCHITECTURE.md section 2): opening a checkpoint or an image queues a job on the
:class:`~inspector.gui.workers.BackgroundRunner` thread (model loading, image preparation and the
one forward pass, :func:`inspector.core.explain.capture_image`). Results carry a request id and
stale ones are dropped. Every control change then only schedules a redraw: a zero-millisecond
single-shot timer coalesces all changes made in one event-loop turn, and the redraw computes the
map from the cached :class:`~inspector.core.capture.Capture` with the *newest* settings through
the core's one per-image pipeline (:func:`inspector.core.pipeline.explain_one`: map, overlay,
SMM, degenerate-map notices). The model runs again only for the gradients of a class-specific
method, once per (class, target), in the worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolBar,
    QWidget,
)

from inspector.core.capture import Capture
from inspector.core.checkpoint import save_checkpoint
from inspector.core.colorscale import map_values, scale_of
from inspector.core.data.errors import DatasetError
from inspector.core.data.ground_truth import image_ground_truth
from inspector.core.explain import (
    LoadedModel,
    PreparedImage,
    capture_image,
    explorer_maps,
    load_image,
    open_model,
)
from inspector.core.imageio import (
    IMAGE_SUFFIXES,
    ImageReadError,
    natural_key,
    read_image,
    read_mask,
)
from inspector.core.load_options import LoadOptions, needs_heads
from inspector.core.metrics import smm
from inspector.core.pipeline import align_mask, explain_one, unalign_mask
from inspector.core.saliency import registry

from .attention_grid import AttentionGrid
from .batch_export import BatchExport
from .controls import ControlsPanel, ViewSettings
from .dock_widths import DockWidths
from .drops import classify_paths
from .load_dialog import LoadOptionsDialog
from .map_frame import MapFrame, caption_text
from .predictions import PredictionsPanel
from .settings_store import store, use_store
from .thumbnails import ThumbnailStrip
from .window_export import WindowExports
from .workers import BackgroundRunner, user_message

__all__ = ["MainWindow", "RenderResult"]

MAX_RECENT = 10
EXPLORER_DEBOUNCE_MS = 60
EXPLORER_WIDTH = 300  # px: the head/layer grid's default dock width
CONTROLS_WIDTH = 320  # px: the method / predictions / masks column
LAYOUT_VERSION = 3  # bump when the docks change, so an old saved layout is ignored


class _Truth:
    """A dataset annotation tied to the image it belongs to."""

    def __init__(self, gt, image: Path) -> None:
        self.mask, self.annotation, self.image, self.gt = gt.mask, gt.annotation, image, gt


@dataclass
class RenderResult:
    """What the last redraw produced (the numbers behind the pixels on screen)."""

    settings: ViewSettings
    grid: np.ndarray | None  # (rows, cols) in [0, 1]
    full: np.ndarray | None  # (S, S) in [0, 1]
    rgb: np.ndarray  # (S, S, 3) uint8, exactly what the view shows
    smm: float | None
    elapsed_ms: float
    cpu_ms: float = 0.0  # process CPU time of the same work (wall time includes waiting)
    explained: Any = None  # the pipeline's ExplainResult (raw map, for exports), or None


class MainWindow(QMainWindow):
    """ViT Inspector's main window.

    Signals:
        modelLoaded(str): a checkpoint finished loading (its path).
        captureReady(): an image was captured with the current model.
        overlayUpdated(): the view shows a new composite (after any settings change).
        errorShown(str): a message was shown to the user.
    """

    modelLoaded = Signal(str)
    captureReady = Signal()
    overlayUpdated = Signal()
    errorShown = Signal(str)
    maskChanged = Signal()
    batchFinished = Signal(object)

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("ViT Inspector")
        self.setAcceptDrops(True)
        self.settings_store = use_store(settings) if settings is not None else store()
        self.runner = BackgroundRunner(self)
        self.exports = WindowExports(self)
        self.runner.finished.connect(self._on_job_finished)
        self.runner.failed.connect(self._on_job_failed)

        # State
        self.loaded: LoadedModel | None = None
        self.image: PreparedImage | None = None
        self.raw_image: np.ndarray | None = None  # shown while no model is loaded
        self.capture: Capture | None = None
        self.image_path: Path | None = None
        self.mask_original: np.ndarray | None = None  # (H, W) bool, original image geometry
        self.mask: np.ndarray | None = None  # (S, S) bool, display geometry
        self.map_flags: list[str] = []  # degenerate-map notices of the last render
        self.map_scale = None  # colorscale.Scale of the last map (the colour bar's values)
        self.mask_path: Path | None = None
        # A mask drawn on the display, with the preprocessing it was drawn for: shown exactly
        # while the geometry is the same, re-aligned from mask_original when it is not.
        self._painted: tuple[np.ndarray, object] | None = None
        self.ground_truth = None  # _Truth: the open image's dataset box and label, or None
        self.last_render: RenderResult | None = None
        self.render_count = 0
        self._jobs: dict[int, str] = {}  # request id -> what it was for
        # model request id -> (path, options), to ask again when the heads are unknown
        self._model_requests: dict[int, tuple[Path, LoadOptions | None]] = {}
        self._gradients_pending: set[int] = set()
        self._closing = False
        self._pending_mask: Path | None = None
        self._requested_image: Path | None = None  # newest image asked for (may be loading)
        self._syncing_mask = False  # the window is pushing its mask into the masks panel

        # Widgets
        self.map_frame = MapFrame()
        self.image_view = self.map_frame.image_view
        self.image_view.hovered.connect(self._on_hover)
        self.image_view.clicked.connect(self._on_image_clicked)
        self.image_view.brushed.connect(self._on_brushed)
        self.image_view.boxDrawn.connect(self._on_box_drawn)
        self.strip = ThumbnailStrip()
        self.strip.activated.connect(self._on_strip_activated)
        self.strip.setVisible(False)
        centre = QSplitter(Qt.Orientation.Vertical)
        centre.addWidget(self.map_frame)
        centre.addWidget(self.strip)
        centre.setStretchFactor(0, 1)
        centre.setCollapsible(0, False)
        # The image is the point of the window: docks (or an old saved layout) never squeeze it.
        self.image_view.setMinimumSize(260, 320)  # + the colour bar: ~320 px wide
        # The compare view is a central tab beside the image: it needs the room (issue 11).
        self.central_tabs = QTabWidget()
        self.central_tabs.setDocumentMode(True)
        self.central_tabs.addTab(centre, "Image")
        self.central_tabs.currentChanged.connect(
            lambda _i: hasattr(self, "_explorer_timer") and self._schedule_explorer()
        )
        self.setCentralWidget(self.central_tabs)

        self.controls = ControlsPanel()
        self.controls.changed.connect(self.schedule_refresh)
        self.predictions = PredictionsPanel()
        self.predictions.classChosen.connect(self._on_class_chosen)
        self.explorer = AttentionGrid()
        self.explorer.cellClicked.connect(self._on_explorer_clicked)
        self.explorer.hoverText.connect(lambda t: self.statusBar().showMessage(t, 4000))

        right = Qt.DockWidgetArea.RightDockWidgetArea
        # Scrolled when the screen is short (720 px): the panel never sets the window's height.
        controls_scroll = QScrollArea()
        controls_scroll.setWidgetResizable(True)
        controls_scroll.setFrameShape(QFrame.Shape.NoFrame)
        controls_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        controls_scroll.setWidget(self.controls)
        bar = controls_scroll.style().pixelMetric(
            controls_scroll.style().PixelMetric.PM_ScrollBarExtent
        )
        controls_scroll.setMinimumWidth(self.controls.minimumSizeHint().width() + bar)
        self.controls_dock = self._dock("Method", controls_scroll, right)
        self.predictions_dock = self._dock(
            "Predictions", self.predictions, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.explorer_dock = self._dock(
            "Heads × layers", self.explorer, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.explorer_dock.visibilityChanged.connect(lambda _v: self._schedule_explorer())
        # Tabs of the left area each keep their own width (the image keeps the middle).
        self.dock_widths = DockWidths(self)
        self.dock_widths.track(self.explorer_dock, lambda: EXPLORER_WIDTH)
        # Panels written alongside this window (masks, training, compare) plug in here.
        self.extra_docks: dict[str, QDockWidget] = {}
        self._install_panels()

        # Status bar
        self.model_label = QLabel("No checkpoint")
        self.image_label = QLabel("No image")
        self.smm_label = QLabel("")
        self.timing_label = QLabel("")
        for w in (self.model_label, self.image_label, self.smm_label, self.timing_label):
            w.setContentsMargins(6, 0, 6, 0)
            self.statusBar().addPermanentWidget(w)
        # Labels that change on every render get a fixed size: a fixed-size widget's new text
        # repaints the label only, instead of laying out the whole status bar again.
        for w, widest in ((self.smm_label, "SMM 0.000 "), (self.timing_label, "map 9999.9 ms")):
            w.setFixedSize(w.fontMetrics().horizontalAdvance(widest) + 14, w.sizeHint().height())
        self.smm_label.setToolTip("SMM: IoU between the saliency above the threshold and the mask")

        # Timers: zero-ms single shots coalesce every change made in one event-loop turn.
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        self._explorer_timer = QTimer(self)
        self._explorer_timer.setSingleShot(True)
        # The grid follows with a short debounce: while a slider is being dragged the overlay
        # updates every frame and the grid catches up when the hand rests.
        self._explorer_timer.setInterval(EXPLORER_DEBOUNCE_MS)
        self._explorer_timer.timeout.connect(self.refresh_explorer)
        self._explorer_key: tuple | None = None
        self._error_timer = QTimer(self)
        self._error_timer.setSingleShot(True)
        self._error_timer.setInterval(10_000)
        self._error_timer.timeout.connect(lambda: self.statusBar().setStyleSheet(""))

        self._build_menus()
        self._build_toolbar()
        self._restore_layout()
        self._update_empty_state()

    # =========================================================================================
    # Opening things
    # =========================================================================================
    def open_checkpoint(self, path: str | Path, options: LoadOptions | None = None) -> int:
        """Load a checkpoint in the background; the current image is captured again with it.

        Args:
            path: the checkpoint (ours or a foreign ViT's).
            options: what the file cannot tell (heads, class names, normalisation, ...);
                when loading fails only because the heads are unknown, the load dialog asks.

        Returns:
            The request id of the loading job.
        """
        path = Path(path)
        self.statusBar().showMessage(f"Loading {path.name}…")
        self.model_label.setText(f"Loading {path.name}…")
        rid = self.runner.submit(lambda: open_model(path, options=options), channel="model")
        self._jobs[rid] = "model"
        self._model_requests[rid] = (path, options)
        return rid

    def save_model_as(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        """Save the open model in our format (weights, class names, preprocessing, load options
        and import provenance), atomically. A failure is a message; returns None then."""
        if self.loaded is None:
            self.show_error("Nothing to save: open a checkpoint first")
            return None
        path = Path(path)
        try:
            saved = save_checkpoint(path, self.loaded.checkpoint, overwrite=overwrite)
        except Exception as exc:  # noqa: BLE001 - any failure must be a message, not a crash
            self.show_error(f"Cannot save {path.name}: {user_message(exc)}")
            return None
        self.statusBar().showMessage(f"Saved {saved.name}", 6000)
        return saved

    def use_model(self, loaded: LoadedModel) -> None:
        """Inspect an already built model (e.g. one just trained, or a benchmark's); the current
        image is captured again with it."""
        self.runner.submit(lambda: None, channel="model")  # older model loads become stale
        self._set_model(loaded)

    def open_image(self, path: str | Path) -> int:
        """Read, prepare and capture an image in the background (latest request wins)."""
        path = Path(path)
        self.statusBar().showMessage(f"Opening {path.name}…")
        self._requested_image = path
        return self._start_capture(path)

    def open_mask(self, path: str | Path) -> bool:
        """Use a mask image (any non-zero pixel = object) for the current image's SMM."""
        path = Path(path)
        try:
            mask = read_mask(path)
        except (ImageReadError, OSError, ValueError) as exc:
            self.show_error(f"Cannot open mask {path.name}: {user_message(exc)}")
            return False
        if not self._set_mask(mask, path):
            return False
        self._remember(path)
        self.statusBar().showMessage(f"Mask {path.name}: {int(mask.sum())} object pixels", 5000)
        return True

    def set_mask_array(self, mask: np.ndarray | None, source: str = "panel") -> bool:
        """Use an ``(H, W)`` bool mask in the original image's geometry (None removes it)."""
        if mask is None:
            self.mask_original = self.mask = self.mask_path = self._painted = None
            self._sync_panel_mask()
            self._mask_only_changed()
            return True
        return self._set_mask(np.asarray(mask, dtype=bool), None)

    def open_folder(self, folder: str | Path) -> int:
        """Show the folder's images as a strip of thumbnails and open the first one."""
        folder = Path(folder)
        images = sorted(
            (
                p
                for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not _looks_like_mask(p)
            ),
            key=natural_key,  # val_23 before val_1054
        )
        if not images:
            self.show_error(f"No images in {folder}")
            return 0
        self.set_image_list(images)
        return len(images)

    def set_image_list(self, images: list[Path]) -> None:
        self.strip.set_paths(images)
        self.strip.setVisible(len(images) > 1)
        self.strip.select(0)
        self.strip.setFocus()

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open what was dropped or chosen: checkpoints first, then images/folders, then masks."""
        kinds = classify_paths([Path(p) for p in paths])
        for bad in kinds.unsupported:
            self.show_error(
                f"Unsupported file: {bad.name} (not an image, mask, checkpoint or folder)"
            )
        if len(kinds.checkpoints) > 1:
            # Several checkpoints: compare them (and inspect the first if none is open yet).
            if self.loaded is None and self.runner.latest("model") not in self._jobs:
                self.open_checkpoint(kinds.checkpoints[0])
            self.compare_checkpoints(kinds.checkpoints)
        for ckpt in kinds.checkpoints[-1:] if len(kinds.checkpoints) == 1 else []:
            self.open_checkpoint(ckpt)
        if kinds.folders:
            self.open_folder(kinds.folders[0])
        elif len(kinds.images) > 1:
            self.set_image_list(kinds.images)
        elif kinds.images:
            self.open_image(kinds.images[0])
        for m in kinds.masks[-1:]:
            if kinds.images:
                self._pending_mask = m  # applied once the new image is in
            else:
                self.open_mask(m)

    # =========================================================================================
    # Waiting (tests, --screenshot)
    # =========================================================================================
    def is_idle(self) -> bool:
        return (
            not self.runner.busy()
            and not self._refresh_timer.isActive()
            and not self._gradients_pending
        )

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        """Process events until no job runs and the overlay is drawn; False on timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        app = QApplication.instance()
        while time.monotonic() < deadline:
            app.processEvents()
            if self.is_idle():
                if self._explorer_timer.isActive() or self._metrics_pending():
                    continue
                app.processEvents()
                if self.is_idle():
                    return True
            else:
                time.sleep(0.002)  # a job is running in the worker: don't spin the CPU flat out
        return False

    def _metrics_pending(self) -> bool:
        """The masks panel's metrics wait for the slider or brush to rest (debounced)."""
        view = getattr(self.panels.get("masks"), "metrics_view", None)
        return bool(view is not None and getattr(view, "pending", lambda: False)())

    # =========================================================================================
    # Rendering
    # =========================================================================================
    def schedule_refresh(self) -> None:
        """Ask for a redraw at the next event-loop turn (many calls -> one redraw)."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def current_settings(self) -> ViewSettings:
        return self.controls.settings()

    def refresh(self) -> None:
        """Compute the map for the newest settings from the cached capture and draw it."""
        self._refresh_timer.stop()
        s = self.controls.settings()
        base = self.image.display if self.image is not None else self.raw_image
        if base is None:
            self._update_empty_state()
            return
        self._update_query_box()
        if self.capture is None or self.loaded is None:
            self.map_frame.clear_map()
            self._show(RenderResult(s, None, None, base, None, 0.0))
            return
        cap = self.capture
        if s.map.needs_gradients:
            try:
                c = cap.resolve_class(s.map.class_index)
            except ValueError as exc:
                self.show_error(user_message(exc))
                return
            if not cap.has_gradients(c, s.map.target):
                self._request_gradients(cap, c, s.map.target)
                return
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            # The core's one per-image pipeline, on the cached capture: the same numbers as
            # `vit-inspector explain` for the same image, mask and settings.
            result = explain_one(
                self.loaded,
                self.image,
                s.explain_settings(),
                mask=self.mask,
                aligned=True,
                capture=cap,
            )
            grid, full, rgb, score = result.grid, result.full, result.overlay, result.smm
        except Exception as exc:  # noqa: BLE001 - a bad setting must not kill the window
            self.show_error(f"Cannot compute the map: {user_message(exc)}")
            return
        self.map_flags = result.flags
        if result.flags:
            self.statusBar().showMessage("Notice: " + "; ".join(result.flags))
        try:
            self._show_scale(s, result)
        except Exception as exc:  # noqa: BLE001 - the colour bar must not hide the map
            self.show_error(f"Cannot draw the colour scale: {user_message(exc)}")
        elapsed = (time.perf_counter() - t0) * 1000
        cpu = (time.process_time() - c0) * 1000
        self._show(RenderResult(s, grid, full, rgb, score, elapsed, cpu, explained=result))
        self._schedule_explorer()

    def _show_scale(self, s: ViewSettings, result) -> None:
        """Colour bar in the method's units (the view scales each map to its own min-max),
        caption naming what is shown, and the degenerate-map notice."""
        values = map_values(
            result.raw_grid,
            result.full.shape[0],
            result.full.shape[0] // result.raw_grid.shape[0],
            s.smoothing,
        )
        names = self.loaded.class_names
        c = result.target_class
        name = names[c] if 0 <= c < len(names) else f"class {c}"
        predicted = s.map.class_index is None or c == result.capture.predicted_class
        self.map_scale = scale_of([values])
        self.map_frame.show_map(
            self.map_scale,
            s.colormap,
            caption_text(s.map, name, predicted),
            result.flags,
        )

    def _show(self, result: RenderResult) -> None:
        self.image_view.set_rgb(result.rgb)
        self.last_render = result
        self.render_count += 1
        if result.full is not None:
            self.timing_label.setText(f"map {result.elapsed_ms:.1f} ms")
        self._show_smm(result.smm if result.full is not None else None)
        panel = self.panels.get("masks")
        if panel is not None and result.full is not None:
            panel.set_saliency(result.full)
            panel.set_threshold(result.settings.smm_threshold)
        if getattr(self, "_hover_xy", None) is not None:
            self._on_hover(*self._hover_xy)  # the value under the cursor changed with the map
        self.overlayUpdated.emit()

    def _show_smm(self, score: float | None) -> None:
        if self.mask is None or self.last_render is None or self.last_render.full is None:
            self.smm_label.setText("")
        else:
            self.smm_label.setText("SMM —" if score is None else f"SMM {score:.3f}")

    def _schedule_explorer(self) -> None:
        self._explorer_timer.start()  # (re)start: the newest request waits for a quiet moment

    def refresh_explorer(self) -> None:
        """Redraw the head/layer grid when what it shows changed (and it is visible); bring the
        compare view up to date."""
        self.sync_compare()
        self._refresh_tokens()
        if self.capture is None or not self.explorer_dock.isVisible():
            if self.capture is None:
                self.explorer.clear()
                self._explorer_key = None
            return
        vs = self.controls.settings()
        m = vs.map
        key = (
            id(self.capture),
            m.query,
            m.fusion,
            m.discard_ratio,
            m.legacy_normalisation,
            m.residual,
            vs.colormap,
            vs.scaling,
        )
        if key != self._explorer_key:
            try:
                data = explorer_maps(
                    self.capture,
                    query=m.query,
                    fusion=m.fusion,
                    discard_ratio=m.discard_ratio,
                    residual=m.residual,
                    legacy_normalisation=m.legacy_normalisation,
                )
            except Exception as exc:  # noqa: BLE001
                self.show_error(f"Cannot draw the explorer: {user_message(exc)}")
                return
            self.explorer.set_data(data, colormap=vs.colormap, scaling=vs.scaling)
            self._explorer_key = key
        self.explorer.set_selection(
            m.layer % self.capture.num_layers if m.method == "attention" else None,
            m.head if m.method == "attention" else None,
        )

    def _refresh_tokens(self) -> None:
        """The token panel (when shown): registers' attention in the current layer and the
        high-norm outliers (the token-norm layer), both computed by the core."""
        panel, dock = self.panels.get("tokens"), self.extra_docks.get("tokens")
        if panel is None or dock is None or not dock.isVisible():
            return
        if self.capture is None:
            panel.clear()
            return
        from inspector.core.registers import register_attention
        from inspector.core.saliency.token_norm import capture_outliers

        s = self.controls.settings()
        key = (id(self.capture), s.map.layer, s.colormap)
        if key == getattr(self, "_tokens_key", None):
            return
        self._tokens_key = key
        try:
            panel.set_registers(register_attention(self.capture, layer=s.map.layer), s.colormap)
        except Exception as exc:  # noqa: BLE001 - a panel must not break the window
            panel.set_registers(None)
            self.show_error(f"Cannot show the registers: {user_message(exc)}")
        try:
            panel.set_outliers(capture_outliers(self.capture, layer=s.map.layer))
        except Exception as exc:  # noqa: BLE001 - e.g. Swin records no token norms
            panel.set_outliers(None, user_message(exc))

    # =========================================================================================
    # Export (window_export.py)
    # =========================================================================================
    def export_overlay(self, path: str | Path, **options: Any) -> list[Path]:
        """The figure PNG, the map ``.npy``, the raw ``_raw.npy`` and the ``.json``
        (:meth:`WindowExports.export_overlay`)."""
        return self.exports.export_overlay(path, **options)

    def export_metadata(self) -> dict:
        return self.exports.export_metadata()

    def export_grid(self, path: str | Path, **options: Any) -> Path:
        return self.exports.export_grid(path, **options)

    def batch_export(self, out_dir: str | Path, **options: Any) -> BatchExport:
        return self.exports.batch_export(out_dir, **options)

    # =========================================================================================
    # Errors and messages
    # =========================================================================================
    def show_error(self, message: str) -> None:
        """One line in the status bar (red for a while); never a traceback."""
        self.statusBar().setStyleSheet("QStatusBar { color: #ff7b72; }")
        self.statusBar().showMessage(message, 10_000)
        self._error_timer.start()  # owned by the window: never fires after it is gone
        self.errorShown.emit(message)

    # =========================================================================================
    # Jobs
    # =========================================================================================
    def _start_capture(self, path: Path | None = None) -> int:
        """Queue (read + prepare + capture) of ``path`` or of the current image."""
        path = path or self._requested_image or self.image_path
        if path is None:
            return 0
        if self.runner.latest("model") in self._jobs:
            # A checkpoint is loading: its result starts the capture with the new model.
            self.image_view.set_message("Loading…")
            return 0
        loaded = self.loaded
        if loaded is None:
            rid = self.runner.submit(lambda: ("raw", path, read_image(path)), channel="image")
        else:

            def job():
                prepared = load_image(path, loaded)
                return ("capture", path, loaded, prepared, capture_image(loaded, prepared))

            rid = self.runner.submit(job, channel="image")
        self._jobs[rid] = "image"
        return rid

    def _request_gradients(self, cap: Capture, c: int, target: str = "logit") -> None:
        if (c, target) in self._gradients_pending:
            return
        self._gradients_pending.add((c, target))
        self.statusBar().showMessage(f"Computing gradients of the {target} of class {c}…")
        rid = self.runner.submit(
            lambda: (cap, (c, target), cap.gradients(c, target)), channel=f"grad{c}{target}"
        )
        self._jobs[rid] = "gradients"

    def _on_job_finished(self, rid: int, result: object) -> None:
        kind = self._jobs.pop(rid, None)
        if kind == "model":
            self._model_requests.pop(rid, None)
            if not self.runner.is_latest(rid, "model"):
                return
            self._set_model(result)
        elif kind == "image":
            if not self.runner.is_latest(rid, "image"):
                return  # an older image: the user has moved on
            self._set_image_result(result)
        elif kind == "gradients":
            cap, c, _ = result
            self._gradients_pending.discard(c)
            if cap is self.capture:
                self.statusBar().clearMessage()
                self.schedule_refresh()

    def _on_job_failed(self, rid: int, message: str) -> None:
        kind = self._jobs.pop(rid, None)
        if kind == "gradients":
            self._gradients_pending.clear()
            self.show_error(f"Cannot compute gradients: {message}")
        elif kind == "model":
            self.model_label.setText(self.loaded.name if self.loaded else "No checkpoint")
            request = self._model_requests.pop(rid, None)
            if (
                request is not None
                and self.runner.is_latest(rid, "model")
                and needs_heads(message)
                and not self._closing
            ):
                options = self.ask_load_options(*request, reason=message)
                if options is not None:
                    self.open_checkpoint(request[0], options)  # the image waits for it
                    self._update_empty_state()
                    return
            self.show_error(f"Cannot open checkpoint: {message}")
            if (
                self.runner.is_latest(rid, "model")
                and self._requested_image is not None
                and self._requested_image != self.image_path
            ):
                self._start_capture()  # the image waited for this model: show it anyway
        elif kind == "image" and self.runner.is_latest(rid, "image"):
            self._requested_image = self.image_path  # keep showing the previous image
            self.show_error(f"Cannot open image: {message}")
        self._update_empty_state()

    def _set_model(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        cfg = loaded.checkpoint.config
        self.capture = None
        self._gradients_pending.clear()
        self.controls.set_model_shape(
            cfg.depth, cfg.num_heads, cfg.num_prefix_tokens, (cfg.grid_size, cfg.grid_size)
        )
        self.controls.set_class_index(None)
        self.model_label.setText(
            f"{loaded.name} · {cfg.depth}×{cfg.num_heads} · {cfg.image_size}px/{cfg.patch_size}"
        )
        self.model_label.setToolTip(str(loaded.path))
        self.statusBar().showMessage(f"Opened {loaded.name}", 4000)
        if loaded.path is not None:
            self._remember(loaded.path)
        from .compare_view import cell_title  # runs/<run>/best.pt -> "<run>/best.pt"

        title = cell_title(loaded.path) if loaded.path is not None else loaded.name
        self.setWindowTitle(f"ViT Inspector — {title}")
        if self._requested_image is not None or self.image_path is not None:
            self._start_capture()
        self._update_empty_state()
        self.modelLoaded.emit(str(loaded.path))

    def _set_image_result(self, result: tuple) -> None:
        kind, path = result[0], result[1]
        new_image = path != self.image_path
        self.image_path = path
        if kind == "raw":
            self.raw_image, self.image, self.capture = result[2], None, None
            self.predictions.clear("Open a checkpoint to see predictions.")
        else:
            _, _, loaded, prepared, cap = result
            if loaded is not self.loaded:
                return  # captured with a model that was replaced meanwhile
            self.image, self.capture, self.raw_image = prepared, cap, None
            self._gradients_pending.clear()
            truth = self._ground_truth_for(path, prepared.original.shape[:2]) if new_image else None
            label = truth.class_index(loaded.class_names) if truth is not None else None
            self.predictions.set_predictions(
                cap.top_k(5),
                loaded.class_names,
                label,
                None if label is None else float(cap.probabilities[label]),
            )
            self.controls.set_class_index(None)
            c = cap.predicted_class
            self.statusBar().showMessage(
                f"Predicted {loaded.class_names[c]} ({float(cap.probabilities[c]) * 100:.1f}%)",
                6000,
            )
        self.image_label.setText(path.name)
        self.image_label.setToolTip(str(path))
        if new_image:
            self._remember(path)
            self._load_mask_for(path)
        elif self._pending_mask is not None:
            # The open image dropped again with a mask: that mask replaces the old one (or
            # open_mask says why it cannot).
            pending, self._pending_mask = self._pending_mask, None
            self._refresh_mask_geometry()
            self.open_mask(pending)
        else:
            self._refresh_mask_geometry()
            self._renew_masks_panel_image()
        self.image_view.fit() if new_image else None
        self.schedule_refresh()
        if kind == "capture":
            self.captureReady.emit()

    # =========================================================================================
    # Masks
    # =========================================================================================
    def _load_mask_for(self, path: Path) -> None:
        """A new image drops the old mask; a dropped mask or ``<stem>_mask.png`` beside it is
        used."""
        pending = self._pending_mask
        self._pending_mask = None
        self.mask_original = self.mask = self.mask_path = self._painted = None
        self.image_view.set_mask(None)
        candidates = [pending] if pending else []
        candidates += [path.with_name(f"{path.stem}_mask{s}") for s in (".png", path.suffix)]
        for cand in candidates:
            if cand is not None and cand.is_file():
                try:
                    mask = read_mask(cand)
                except (ImageReadError, OSError, ValueError) as exc:
                    if cand is pending:
                        self.show_error(f"Cannot open mask {cand.name}: {user_message(exc)}")
                    continue
                # Not quiet: a dropped mask, or a <stem>_mask.png, of another size is said
                # to be unused instead of vanishing.
                if self._set_mask(mask, cand):
                    break
        truth = self.ground_truth
        if (truth is None or truth.image != path) and self._original_shape() is not None:
            self._ground_truth_for(path, self._original_shape())  # an image without a model
            truth = self.ground_truth
        if self.mask_original is None and truth is not None and truth.image == path:
            self._set_mask(truth.mask, None, quiet=True)  # the dataset's box
        self._notify_masks_panel()

    def _ground_truth_for(self, path: Path, shape: tuple[int, int]):
        """The dataset's annotation of ``path`` (Tiny ImageNet box and label), or None."""
        try:
            gt = image_ground_truth(path, shape)
        except DatasetError as exc:
            self.show_error(f"Dataset annotation: {user_message(exc)}")
            gt = None
        self.ground_truth = None if gt is None else _Truth(gt, path)
        return gt

    def _set_mask(self, mask: np.ndarray, path: Path | None, quiet: bool = False) -> bool:
        shape = self._original_shape()
        if shape is None:
            self.show_error("Open an image before its mask")
            return False
        if mask.shape != shape:
            if not quiet:
                self.show_error(
                    f"The mask is {mask.shape[1]}×{mask.shape[0]} but the image is "
                    f"{shape[1]}×{shape[0]}; mask not used"
                )
            return False
        self.mask_original, self.mask_path, self._painted = mask, path, None
        self._refresh_mask_geometry()
        self.schedule_refresh()
        return True

    def _original_shape(self) -> tuple[int, int] | None:
        if self.image is not None:
            return self.image.original.shape[:2]
        if self.raw_image is not None:
            return self.raw_image.shape[:2]
        return None

    def _refresh_mask_geometry(self) -> None:
        if self.mask_original is None:
            self.mask = None
        elif self.loaded is not None and self.image is not None:
            painted = self._painted
            if painted is not None and painted[1] == self.loaded.checkpoint.preprocess:
                self.mask = painted[0]  # the geometry it was drawn on: exactly as drawn
            else:
                self.mask = align_mask(self.mask_original, self._original_shape(), self.loaded)
        else:
            self.mask = self.mask_original
        self.image_view.set_mask(self.mask)
        self._sync_panel_mask()
        self.maskChanged.emit()

    def _renew_masks_panel_image(self) -> None:
        """The same image through another model: the masks panel paints on the new display
        (another size, another crop), starting from the window's re-aligned mask."""
        panel = self.panels.get("masks")
        size = getattr(panel, "image_size", None) if panel else None
        if self.image is not None and size is not None and size() != self.image.display.shape[:2]:
            self._notify_masks_panel()
            self._sync_panel_mask()

    def _notify_masks_panel(self) -> None:
        panel = self.panels.get("masks")
        hook = getattr(panel, "set_image", None) if panel else None
        if hook is not None and self.image is not None:
            try:
                hook(self.image.display, self.mask)
            except Exception as exc:  # noqa: BLE001 - another panel must not break ours
                self.show_error(f"Masks panel: {user_message(exc)}")

    # =========================================================================================
    # Interaction
    # =========================================================================================
    def _on_hover(self, x: int, y: int) -> None:
        # Remembered so that the readout follows a control change under a resting cursor.
        self._hover_xy = (x, y) if x >= 0 else None
        if x < 0:
            return
        base = self.last_render.rgb if self.last_render else None
        if base is None or y >= base.shape[0] or x >= base.shape[1]:
            return
        src = self.image.display if self.image is not None else self.raw_image
        text = f"x {x}, y {y}"
        if src is not None and y < src.shape[0] and x < src.shape[1]:
            r, g, b = (int(v) for v in src[y, x])
            text += f" · RGB {r} {g} {b}"
        if self.last_render.full is not None and self.capture is not None:
            text += f" · saliency {float(self.last_render.full[y, x]):.3f}"
            rows, cols = self.capture.grid_size
            ph, pw = src.shape[0] // rows, src.shape[1] // cols
            text += f" · patch ({y // ph}, {x // pw})"
        if self.mask is not None and y < self.mask.shape[0] and x < self.mask.shape[1]:
            text += " · in mask" if self.mask[y, x] else ""
        self.statusBar().showMessage(text)

    def _on_image_clicked(self, x: int, y: int) -> None:
        """Clicking a patch makes it the query token (method ``attention`` if needed)."""
        if self.capture is None or self.image is None:
            return
        rows, cols = self.capture.grid_size
        s = self.image.display.shape
        r, c = min(rows - 1, y * rows // s[0]), min(cols - 1, x * cols // s[1])
        q = self.capture.num_prefix_tokens + r * cols + c
        if not self.controls.settings().map.uses("query"):  # e.g. last-layer CLS attention
            self.controls.set_method("attention")
        self.controls.set_query(q)
        self.statusBar().showMessage(f"Query: patch ({r}, {c}), token {q}. Esc: class token", 5000)

    def _update_query_box(self) -> None:
        q = self.controls.query_patch()
        if q is None or self.capture is None or self.image is None:
            self.image_view.set_query_box(None)
            return
        rows, cols = self.capture.grid_size
        ph, pw = self.image.display.shape[0] // rows, self.image.display.shape[1] // cols
        self.image_view.set_query_box((q[1] * pw, q[0] * ph, pw, ph))

    def _on_class_chosen(self, c: int) -> None:
        if c < 0 or self.loaded is None:
            self.controls.set_class_index(None)
            return
        self.controls.set_class_index(c, self.loaded.class_names[c])
        if not self.controls.settings().map.needs_gradients:
            self.statusBar().showMessage(
                f"Target {self.loaded.class_names[c]}: used by the gradient methods", 5000
            )

    def _on_explorer_clicked(self, layer: int, column: str, head: int) -> None:
        if column == "rollout":
            self.controls.set_layer_head(layer, None, method="rollout")
        elif column == "fused":
            self.controls.set_layer_head(layer, None)
        else:
            self.controls.set_layer_head(layer, head)

    def _on_strip_activated(self, path: Path) -> None:
        self.open_image(path)

    # =========================================================================================
    # Drag and drop
    # =========================================================================================
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)

    # =========================================================================================
    # Keys
    # =========================================================================================
    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        key = event.key()
        if key in (Qt.Key.Key_Right, Qt.Key.Key_Down) and self.strip.count():
            self.strip.step(+1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Up) and self.strip.count():
            self.strip.step(-1)
        elif key == Qt.Key.Key_Escape:
            self.controls.set_query(0)
        else:
            super().keyPressEvent(event)

    # =========================================================================================
    # Menus, docks, settings
    # =========================================================================================
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _install_panels(self) -> None:
        """The masks, training, tokens and prompts panels as docks, and the compare view as a
        central tab, imported and connected directly (a broken panel is a bug to see, not a
        panel to leave out silently).

        Masks sit in a tab beside the predictions (right); training and compare in tabs beside
        the explorer (left). Each is wrapped in a scroll area so that a tall panel never forces
        the window's minimum size.
        """
        from .compare_view import CompareView
        from .masks_panel import MasksPanel
        from .prompts_panel import PromptsPanel
        from .register_view import TokensPanel
        from .training_panel import TrainingPanel

        specs = (
            ("masks", MasksPanel, "Masks", self.predictions_dock),
            ("training", TrainingPanel, "Training", self.explorer_dock),
            ("compare", CompareView, "Compare", None),
            ("tokens", TokensPanel, "Tokens", self.explorer_dock),
            ("prompts", PromptsPanel, "Prompts", self.controls_dock),
        )
        self.panels: dict[str, QWidget] = {}
        for key, cls, title, beside in specs:
            widget = cls()
            if beside is None:  # the compare view: a central tab, not a dock
                self.central_tabs.addTab(widget, title)
                self.panels[key] = widget
                self._connect_panel(key, widget)
                continue
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(widget)
            dock = self._dock(title, scroll, self.dockWidgetArea(beside))
            self.tabifyDockWidget(beside, dock)
            self.extra_docks[key] = dock
            self.panels[key] = widget
            self._connect_panel(key, widget)
        self.predictions_dock.raise_()
        self.explorer_dock.raise_()
        self.controls_dock.raise_()

    def _connect_panel(self, key: str, widget: QWidget) -> None:
        """Wire the signals the other panels offer (by name, so either side can evolve)."""
        if key == "masks":
            if hasattr(widget, "mask_changed"):
                widget.mask_changed.connect(self._on_panel_mask)
            if hasattr(widget, "error"):
                widget.error.connect(self.show_error)
            if hasattr(widget, "tool_changed"):
                widget.tool_changed.connect(self.set_tool)
            if hasattr(widget, "radius_spin"):
                widget.radius_spin.valueChanged.connect(self.image_view.set_brush_radius)
                self.image_view.set_brush_radius(widget.radius_spin.value())
            if hasattr(widget, "metrics_view"):
                widget.metrics_view.defer_when_hidden = True  # no metrics for a hidden tab
        if key == "prompts":  # CLIP / SigLIP text prompts (issue 12): its controller wires it
            from .prompts_panel import PromptsController

            self.prompts_controller = PromptsController(self, widget)
        if key == "tokens":  # registers' attention and high-norm outliers (issue 12)
            widget.tokenChosen.connect(self.controls.set_query)
            self.extra_docks["tokens"].visibilityChanged.connect(
                lambda v: v and self._schedule_explorer()
            )
        if key == "training" and hasattr(widget, "finished"):
            widget.finished.connect(self._on_training_finished)
        if key == "masks":
            v = Qt.Orientation.Vertical  # under the method panel: its own height when raised
            masks, method = self.extra_docks[key], self.controls_dock
            # Never narrower than the panel and a vertical scroll bar: no horizontal scrolling.
            bar = masks.style().pixelMetric(masks.style().PixelMetric.PM_ScrollBarExtent)
            masks.widget().setMinimumWidth(widget.minimumSizeHint().width() + bar + 2)

            # All of the panel when the screen allows; the method panel keeps a strip.
            def masks_height(w=widget) -> int:
                return min(w.sizeHint().height() + 40, self.height() - 220)

            self.dock_widths.track(masks, masks_height, v, method)
            self.dock_widths.track(self.predictions_dock, self._predictions_height, v, method)
        if key == "training":
            # Curves and the study table need room: 60% of the window the first time.
            self.dock_widths.track(self.extra_docks[key], lambda: int(self.width() * 0.6))
        if key == "training" and hasattr(widget, "study_finished"):
            widget.study_finished.connect(self._on_study_finished)
        if key == "compare" and hasattr(widget, "checkpointsDropped"):
            widget.forward_drops = True
            widget.checkpointsDropped.connect(self.compare_checkpoints)

    def _on_training_finished(self, path: str) -> None:
        self.statusBar().showMessage(f"Training finished: opening {Path(path).name}", 6000)
        self.open_checkpoint(path)

    def _on_study_finished(self, paths: list) -> None:
        """A study finished: its models replace the compare view's, side by side on the
        current image (its table stays in the training panel)."""
        if not paths:
            return
        panel = self.panels.get("compare")
        if panel is not None:
            panel.set_models([])
        self.statusBar().showMessage(f"Comparing {len(paths)} study models", 6000)
        self.compare_checkpoints(paths)

    # =========================================================================================
    # Compare
    # =========================================================================================
    def compare_checkpoints(self, paths: list) -> None:
        """Add checkpoints to the compare view and show it; it follows this window's image,
        settings and mask."""
        panel = self.panels.get("compare")
        if panel is None:
            self.show_error("The compare view is not available")
            return
        for p in paths:
            panel.add_model(str(p))
        self.central_tabs.setCurrentWidget(panel)
        self._compare_key = None
        self.sync_compare()

    def sync_compare(self) -> None:
        """Hand the compare view the current image, settings and mask (only what changed, and
        only while it is visible and has models: it captures each image once per model)."""
        panel = self.panels.get("compare")
        if panel is None or not panel.models() or self.central_tabs.currentWidget() is not panel:
            return
        key = getattr(self, "_compare_key", None) or {}
        s = self.controls.settings()
        image = self.image.original if self.image is not None else self.raw_image
        if key.get("image") is not image:
            panel.set_image(image)
        if key.get("map") != (s.map, s.smoothing):
            panel.set_settings(s.map, s.smoothing)
        if key.get("threshold") != s.smm_threshold:
            panel.set_threshold(s.smm_threshold)
        if key.get("cmap") != s.colormap:
            panel.set_colormap(s.colormap)
        if key.get("opacity") != s.opacity:
            panel.set_opacity(s.opacity)
        if key.get("scaling") != s.scaling:
            panel.set_scaling(s.scaling)
        if key.get("mask") is not self.mask:
            panel.set_mask(self.mask)
        self._compare_key = {
            "image": image,
            "map": (s.map, s.smoothing),
            "threshold": s.smm_threshold,
            "cmap": s.colormap,
            "opacity": s.opacity,
            "scaling": s.scaling,
            "mask": self.mask,
        }

    def _sanity_dialog(self) -> None:
        if self.loaded is None or self.image is None:
            self.show_error("open a checkpoint and an image first: the check explains that image")
            return
        from .sanity_dialog import SanityDialog

        s = self.controls.settings()
        self.sanity = SanityDialog(
            self.loaded,
            self.image,
            s,
            checkpoint=self.loaded.path,
            cmap=s.colormap,
            model_runner=self.runner,
            parent=self,
        )
        self.sanity.show()
        self.sanity.start()

    def _compare_dialog(self) -> None:
        from .compare_view import dialog_folder

        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Compare checkpoints",
            dialog_folder(self.loaded.path if self.loaded is not None else None),
            "Checkpoints (*.pt *.pth *.bin *.safetensors *.ckpt);;All files (*)",
        )
        if paths:
            self.compare_checkpoints(paths)

    def _compare_study_models(self) -> None:
        from inspector.paths import STUDY_CHECKPOINTS, study_checkpoints

        paths = study_checkpoints()
        if not paths:
            self.show_error(f"No study models in {STUDY_CHECKPOINTS}")
            return
        self._on_study_finished([str(p) for p in paths])

    def _on_panel_mask(self, mask: object) -> None:
        """A mask from the masks panel (brush, box, file, Mask R-CNN), in display geometry
        (S, S), or None. Only the outline and the metrics change: the map is not recomputed."""
        if self._syncing_mask:
            return  # our own mask echoed back
        if mask is None:
            if self.mask is not None:
                self.mask_original = self.mask = self.mask_path = self._painted = None
                self._mask_only_changed()
            return
        m = np.asarray(mask, dtype=bool)
        if self.mask is not None and m.shape == self.mask.shape and np.array_equal(m, self.mask):
            return
        if self.image is not None and m.shape == self.image.display.shape[:2]:
            # Kept on the original image too, so that it outlives this model (a checkpoint
            # that resizes or crops differently gets it re-aligned).
            shape = self._original_shape()
            loaded = self.loaded
            self.mask_original = (
                unalign_mask(m, shape, loaded) if loaded is not None and shape else None
            )
            self._painted = (m, loaded.checkpoint.preprocess if loaded is not None else None)
            self.mask, self.mask_path = m, None
            self._mask_only_changed()
        else:
            self.set_mask_array(m)

    def _mask_only_changed(self) -> None:
        """The mask changed, the map did not: redraw the outline and rescore SMM."""
        self.image_view.set_mask(self.mask)
        r = self.last_render
        if r is not None and r.full is not None:
            r.smm = (
                smm(r.full, self.mask, r.settings.smm_threshold) if self.mask is not None else None
            )
            self._show_smm(r.smm)
        self.maskChanged.emit()
        self._schedule_explorer()  # the compare view follows the mask

    def _sync_panel_mask(self) -> None:
        """Show the window's mask (a file, the one beside the image) in the masks panel, so
        that painting starts from it."""
        panel = self.panels.get("masks")
        if panel is None or self._syncing_mask or self.image is None:
            return
        if getattr(panel, "image_size", lambda: None)() != self.image.display.shape[:2]:
            return  # the panel gets this image (and mask) from _notify_masks_panel
        current, m = panel.mask(), self.mask
        if (current is None and m is None) or (
            current is not None and m is not None and np.array_equal(current, m)
        ):
            return
        self._syncing_mask = True
        try:
            panel.set_mask(m, f"file {self.mask_path.name}" if self.mask_path else "window")
        finally:
            self._syncing_mask = False

    # =========================================================================================
    # Tools: query, brush, box
    # =========================================================================================
    def set_tool(self, tool: str) -> None:
        """The image view's tool: ``query`` (click a patch), ``brush`` or ``box`` (mask)."""
        self.image_view.set_tool(tool)
        for key, act in self.tool_actions.items():
            if act.isChecked() != (key == tool):
                act.setChecked(key == tool)
        panel = self.panels.get("masks")
        if panel is not None and hasattr(panel, "set_tool") and panel.tool() != tool:
            panel.set_tool(tool)
        if tool != "query" and "masks" in self.extra_docks:
            self.extra_docks["masks"].show()
            self.extra_docks["masks"].raise_()  # the metrics are what a painter watches
        self._update_query_box()
        hints = {
            "query": "Query tool: click a patch to see its attention",
            "brush": "Brush: left drag paints the mask, right drag erases; SMM updates live",
            "box": "Box: drag a rectangle to use it as the mask",
        }
        self.statusBar().showMessage(hints[tool], 5000)

    def _on_brushed(self, points: object, erase: bool) -> None:
        panel = self.panels.get("masks")
        if panel is None or self.image is None:
            self.show_error("Open a checkpoint and an image before painting a mask")
            return
        panel.paint_points(points, erase=erase)

    def _on_box_drawn(self, x0: int, y0: int, x1: int, y1: int) -> None:
        panel = self.panels.get("masks")
        if panel is None or self.image is None:
            self.show_error("Open a checkpoint and an image before drawing a mask")
            return
        panel.set_box(x0, y0, x1, y1)

    def _toggle_erase(self) -> None:
        panel = self.panels.get("masks")
        if panel is not None:
            panel.erase_button.toggle()

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        self._action(
            file_menu,
            "Open &Image…",
            QKeySequence.StandardKey.Open,
            self._open_image_dialog,
            "Open an image (PNG, JPEG, BMP, WebP, TIFF)",
        )
        self._action(
            file_menu,
            "Open &Checkpoint…",
            "Ctrl+Shift+O",
            self._open_checkpoint_dialog,
            "Open a checkpoint (ours, timm, torchvision, Hugging Face, the paper's)",
        )
        self._action(
            file_menu,
            "Open &Mask…",
            "Ctrl+M",
            self._open_mask_dialog,
            "Open a mask image for SMM (non-zero = object)",
        )
        self._action(
            file_menu,
            "Open &Folder…",
            "Ctrl+Shift+F",
            self._open_folder_dialog,
            "Browse a folder of images (arrow keys move through it)",
        )
        self._action(
            file_menu,
            "Open Checkpoint with &Options…",
            None,
            self._open_checkpoint_options_dialog,
            "Open a checkpoint and say what its file cannot tell: heads, class names, "
            "normalisation, resize policy, input size",
        )
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._rebuild_recent_menu()
        file_menu.addSeparator()
        self._action(
            file_menu,
            "&Save Model As…",
            "Ctrl+Shift+S",
            self._save_model_dialog,
            "Save the open model in ViT Inspector's format, with its class names, "
            "preprocessing and where it came from",
        )
        self._action(
            file_menu,
            "&Export Overlay…",
            "Ctrl+E",
            self.exports.overlay_dialog,
            "Save the overlay PNG (settings in its metadata) and the raw map .npy",
        )
        self._action(
            file_menu,
            "Export &Grid…",
            "Ctrl+Shift+E",
            self.exports.grid_dialog,
            "Save the head/layer grid as PNG",
        )
        self._action(
            file_menu,
            "&Batch Export Folder…",
            "Ctrl+Alt+E",
            self.exports.batch_dialog,
            "Export every image of the open folder (overlay PNG + .npy) with the current settings",
        )
        file_menu.addSeparator()
        self._action(
            file_menu,
            "Com&pare Checkpoints…",
            "Ctrl+Shift+C",
            self._compare_dialog,
            "Show several checkpoints side by side on this image and settings",
        )
        self._action(
            file_menu,
            "Compare the Study's &Models (Tiny ImageNet-10)",
            None,
            self._compare_study_models,
            "The paper's 14 models as trained by our reproduction "
            "(checkpoints/tiny-imagenet-10), side by side on this image",
        )
        self._action(
            file_menu,
            "&Sanity Check (Cascading Randomisation)…",
            "Ctrl+Alt+S",
            self._sanity_dialog,
            "Re-initialise the layers from the top and watch this image's map degrade "
            "(Adebayo et al. 2018)",
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)

        view = mb.addMenu("&View")
        self._action(
            view,
            "Toggle &Overlay",
            "O",
            lambda: self.controls.show_overlay.toggle(),
            "Show or hide the overlay",
        )
        self._action(view, "&Fit Image", "F", self.image_view.fit)
        self._action(view, "Query: &Class Token", "Esc", lambda: self.controls.set_query(0))
        self._action(view, "Discard −0.05", "[", lambda: self.controls.step_discard(-5))
        self._action(view, "Discard +0.05", "]", lambda: self.controls.step_discard(5))
        self._action(view, "Previous Image", "PgUp", lambda: self.strip.step(-1))
        self._action(view, "Next Image", "PgDown", lambda: self.strip.step(+1))
        view.addSeparator()
        self.method_menu = methods = view.addMenu("&Method")
        self.method_actions: dict[str, QAction] = {}
        for i, info in enumerate(registry.methods()):
            # triggered(bool) fills the first parameter: the name must not be that parameter.
            self.method_actions[info.name] = self._action(
                methods,
                info.label,
                f"Ctrl+{i + 1}" if i < 9 else None,
                lambda _checked=False, m=info.name: self.controls.set_method(m),
                info.description,
            )
        view.addSeparator()
        panels = view.addMenu("&Panels")
        for dock in (
            self.controls_dock,
            self.predictions_dock,
            self.explorer_dock,
            *self.extra_docks.values(),
        ):
            panels.addAction(dock.toggleViewAction())

        help_menu = mb.addMenu("&Help")
        self._action(help_menu, "&About", None, self._about)

    def _build_toolbar(self) -> None:
        """The image tools (query / brush / box) and the eraser, also in the masks panel."""
        bar = QToolBar("Tools", self)
        bar.setObjectName("toolbar-tools")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        group = QActionGroup(self)
        group.setExclusive(True)
        self.tool_actions: dict[str, QAction] = {}
        for key, text, shortcut, tip in (
            ("query", "Query", "Q", "Click a patch to see its attention (Q)"),
            ("brush", "Brush", "B", "Paint the mask: left drag paints, right drag erases (B)"),
            ("box", "Box", "X", "Drag a rectangle as the mask (X)"),
        ):
            act = QAction(text, self)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(shortcut))
            act.setToolTip(tip)
            act.setStatusTip(tip)
            act.triggered.connect(lambda _=False, k=key: self.set_tool(k))
            group.addAction(act)
            bar.addAction(act)
            self.tool_actions[key] = act
        self.tool_actions["query"].setChecked(True)
        bar.addSeparator()
        self.erase_action = QAction("Erase", self)
        self.erase_action.setCheckable(True)
        self.erase_action.setShortcut(QKeySequence("E"))
        self.erase_action.setToolTip("Brush removes pixels from the mask (E)")
        bar.addAction(self.erase_action)
        panel = self.panels.get("masks")
        if panel is not None and hasattr(panel, "erase_button"):
            self.erase_action.toggled.connect(panel.erase_button.setChecked)
            panel.erase_button.toggled.connect(self.erase_action.setChecked)
        else:
            self.erase_action.setEnabled(False)
        bar.addSeparator()
        fit = QAction("Fit", self)
        fit.setToolTip("Fit the image in the view (F)")
        fit.triggered.connect(self.image_view.fit)
        bar.addAction(fit)

    def _action(self, menu, text: str, shortcut, slot, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        act.triggered.connect(slot)
        menu.addAction(act)
        self.addAction(act)
        return act

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "ViT Inspector",
            "<b>ViT Inspector</b><br>Attention rollout, gradient rollout, relevance "
            "and last-layer CLS attention for Vision Transformers, with SMM.",
        )

    def _open_image_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(
            self, "Open image", self._last_folder(), f"Images ({pattern});;All files (*)"
        )
        if path:
            self.open_paths([path])

    def _open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open checkpoint",
            self._last_folder(),
            "Checkpoints (*.pt *.pth *.bin *.safetensors *.ckpt);;All files (*)",
        )
        if path:
            self.open_checkpoint(path)

    def _open_checkpoint_options_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open checkpoint with options",
            self._last_folder(),
            "Checkpoints (*.pt *.pth *.bin *.safetensors *.ckpt);;All files (*)",
        )
        if not path:
            return
        options = self.ask_load_options(Path(path), None)
        if options is not None:
            self.open_checkpoint(path, options)

    def ask_load_options(
        self, path: Path, initial: LoadOptions | None, reason: str = ""
    ) -> LoadOptions | None:
        """The load dialog for ``path``, pre-filled with ``initial``; None when cancelled."""
        return LoadOptionsDialog.ask(self, path=path, initial=initial, reason=reason)

    def _save_model_dialog(self) -> None:
        if self.loaded is None:
            self.show_error("Nothing to save: open a checkpoint first")
            return
        stem = self.loaded.path.stem if self.loaded.path else "model"
        start = str(Path(self._last_folder()) / f"{stem}_inspector.pt")
        # Qt's save dialog asks before replacing an existing file: a yes is the overwrite.
        path, _ = QFileDialog.getSaveFileName(
            self, "Save model as", start, "ViT Inspector checkpoints (*.pt);;All files (*)"
        )
        if not path:
            return
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".pt")  # a new name: not confirmed, so never replaced
            self.save_model_as(target, overwrite=False)
        else:
            self.save_model_as(target, overwrite=True)

    def _open_mask_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(
            self, "Open mask", self._last_folder(), f"Mask images ({pattern})"
        )
        if path:
            self.open_mask(path)

    def _open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open folder", self._last_folder())
        if path:
            self.open_folder(path)

    def _last_folder(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.cwd())

    def recent_files(self) -> list[str]:
        value = self.settings_store.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: Path) -> None:
        p = str(Path(path).resolve())
        recent = [r for r in self.recent_files() if r != p]
        self.settings_store.setValue("recent", [p, *recent][:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for p in recent:
            act = self.recent_menu.addAction(Path(p).name)
            act.setToolTip(p)
            act.setStatusTip(p)
            act.triggered.connect(lambda _=False, p=p: self.open_paths([p]))
        self.recent_menu.setEnabled(bool(recent))

    def _restore_layout(self) -> None:
        geometry = self.settings_store.value("window/geometry")
        state = self.settings_store.value("window/state")
        self.restored_geometry = False
        if isinstance(geometry, QByteArray):
            self.restored_geometry = self.restoreGeometry(geometry)
        if not (isinstance(state, QByteArray) and self.restoreState(state, LAYOUT_VERSION)):
            # Dock sizes only stick once the window has its real size: after the first show.
            QTimer.singleShot(0, self._default_dock_sizes)

    def _predictions_height(self) -> int:
        """The predictions' rows: what the method panel leaves (at least ~3 rows at 720)."""
        return max(110, self.height() - self.controls.sizeHint().height() - 160)

    def _default_dock_sizes(self) -> None:
        """Default proportions: the image gets the middle; explorer and controls the sides."""
        self.resizeDocks(
            [self.explorer_dock, self.controls_dock],
            [EXPLORER_WIDTH, CONTROLS_WIDTH],
            Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            [self.controls_dock, self.predictions_dock],
            [self.controls.sizeHint().height(), self._predictions_height()],
            Qt.Orientation.Vertical,
        )

    def _update_empty_state(self) -> None:
        if self.image is not None or self.raw_image is not None:
            self.image_view.set_message("")
            return
        self.image_view.set_rgb(None)
        if self.loaded is None and not self.runner.busy():
            self.image_view.set_message(
                "Drop a checkpoint and an image here\n(File ▸ Open Checkpoint… Ctrl+Shift+O)"
            )
        elif self.runner.busy():
            self.image_view.set_message("Loading…")
        else:
            self.image_view.set_message("Drop an image here (File ▸ Open Image… Ctrl+O)")
        self.predictions.clear(
            "No prediction yet: open a checkpoint and an image."
            if self.loaded is None
            else "Open an image to see predictions."
        )

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._closing = True
        training = self.panels.get("training")
        if training is not None and getattr(training, "is_running", lambda: False)():
            answer = QMessageBox.question(
                self,
                "Training is running",
                "A training job is running. Stop it (the last completed epoch's checkpoint is "
                "kept) and quit?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                self._closing = False
                return
            training.request_stop_and_wait(30_000)
        self.settings_store.setValue("window/geometry", self.saveGeometry())
        self.settings_store.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings_store.sync()
        if self.exports.batch is not None and self.exports.batch.is_running():
            self.exports.batch.cancel()  # files already written stay; the current one is atomic
            self.exports.batch.wait(30_000)
        for panel in self.panels.values():
            panel.close()  # lets each panel stop its own workers
        self.runner.shutdown(10_000)
        super().closeEvent(event)


def _looks_like_mask(path: Path) -> bool:
    from .drops import looks_like_mask

    return looks_like_mask(path)
