"""The inspector's main window: image + overlay in the centre, panels in docks.

The window is a thin shell (docs/ARCHITECTURE.md section 2). What it inspects lives in a
Qt-free :class:`~inspector.core.session.Session` (model, image, settings, mask, target, last
result) that the views subscribe to; the work is done by small controllers, each in its own
module:

* :mod:`~inspector.gui.window_jobs` - checkpoint, image and gradient jobs on the worker thread;
* :mod:`~inspector.gui.window_render` - the coalesced redraw through the core's pipeline;
* :mod:`~inspector.gui.window_views` - labels, predictions, grid, tokens, compare, hover;
* :mod:`~inspector.gui.window_masks` - which mask an image gets, the masks panel, the tools;
* :mod:`~inspector.gui.window_panels` - the panels' docks and their wiring;
* :mod:`~inspector.gui.window_export` - figure, grid and batch exports;
* :mod:`~inspector.gui.window_menus` and :mod:`~inspector.gui.window_layout` - menus, dialogs,
  widgets and dock sizes.

The public methods below are the window's API (tests, ``--screenshot``, benchmarks and the
menus all call them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QMessageBox, QWidget

from inspector.core.explain import LoadedModel
from inspector.core.imageio import IMAGE_SUFFIXES, natural_key
from inspector.core.load_options import LoadOptions
from inspector.core.session import RenderResult, Session
from inspector.core.view_settings import ViewSettings

from .batch_export import BatchExport
from .drops import classify_paths, looks_like_mask
from .settings_store import store, use_store
from .window_export import WindowExports
from .window_jobs import WindowJobs
from .window_layout import WindowLayout, build_widgets
from .window_masks import WindowMasks
from .window_menus import WindowMenus
from .window_panels import WindowPanels
from .window_render import WindowRender
from .window_views import WindowViews
from .workers import BackgroundRunner

__all__ = ["MainWindow", "RenderResult"]


class _FromSession:
    """A read-only window attribute that is the session's field (``window.mask``...)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, window: Any, owner: type | None = None) -> Any:
        return self if window is None else getattr(window.session, self.name)


class MainWindow(QMainWindow):
    """ViT Inspector's main window.

    Signals:
        modelLoaded(str): a checkpoint finished loading (its path).
        captureReady(): an image was captured with the current model.
        overlayUpdated(): the view shows a new composite (after any settings change).
        errorShown(str): a message was shown to the user.
        maskChanged(): the mask changed (file, panel, dataset, model change).
        batchFinished(BatchResult): a batch export ended.
    """

    modelLoaded = Signal(str)
    captureReady = Signal()
    overlayUpdated = Signal()
    errorShown = Signal(str)
    maskChanged = Signal()
    batchFinished = Signal(object)

    loaded = _FromSession("model")
    image = _FromSession("image")
    raw_image = _FromSession("raw_image")
    capture = _FromSession("capture")
    image_path = _FromSession("image_path")
    mask = _FromSession("mask")
    mask_original = _FromSession("mask_original")
    mask_path = _FromSession("mask_path")
    ground_truth = _FromSession("ground_truth")
    last_render = _FromSession("result")
    map_flags = _FromSession("flags")
    map_scale = _FromSession("scale")

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("ViT Inspector")
        self.setAcceptDrops(True)
        self.settings_store = use_store(settings) if settings is not None else store()
        self.session = Session()
        self.runner = BackgroundRunner(self)
        self.closing = False
        build_widgets(self)
        self.exports = WindowExports(self)
        self.jobs = WindowJobs(self)
        self.render = WindowRender(self)
        self.views = WindowViews(self)
        self.masks = WindowMasks(self)
        self.wiring = WindowPanels(self)
        self.menus = WindowMenus(self)
        self.layout_sizes = WindowLayout(self)

        self.image_view.hovered.connect(self.views.on_hover)
        self.image_view.clicked.connect(self.masks.on_image_clicked)
        self.image_view.brushed.connect(self.masks.on_brushed)
        self.image_view.boxDrawn.connect(self.masks.on_box_drawn)
        self.strip.activated.connect(self.open_image)
        self.central_tabs.currentChanged.connect(self.views.schedule_explorer)
        # The method panel's values become the session's settings; the redraw subscribes.
        self.controls.changed.connect(self._settings_changed)
        self.predictions.classChosen.connect(self.wiring.on_class_chosen)
        self.explorer.cellClicked.connect(self.wiring.on_explorer_clicked)
        self.explorer.hoverText.connect(lambda t: self.statusBar().showMessage(t, 4000))
        self.explorer_dock.visibilityChanged.connect(self.views.schedule_explorer)
        self.wiring.install_panels()

        self._error_timer = QTimer(self)
        self._error_timer.setSingleShot(True)
        self._error_timer.setInterval(10_000)
        self._error_timer.timeout.connect(lambda: self.statusBar().setStyleSheet(""))
        self.menus.build_menus()
        self.menus.build_toolbar()
        self.layout_sizes.restore()
        self.views.update_empty_state()

    def _settings_changed(self) -> None:
        self.session.settings = self.controls.settings()
        self.schedule_refresh()  # also when equal: a redraw was asked for

    def add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    @property
    def render_count(self) -> int:
        return self.render.count

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
        return self.jobs.open_checkpoint(path, options)

    def use_model(self, loaded: LoadedModel) -> None:
        """Inspect an already built model (e.g. one just trained, or a prompted one); the
        current image is captured again with it."""
        self.jobs.use_model(loaded)

    def save_model_as(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        """Save the open model in our format (weights, class names, preprocessing, load options
        and import provenance), atomically. A failure is a message; returns None then."""
        return self.jobs.save_model_as(path, overwrite=overwrite)

    def open_image(self, path: str | Path) -> int:
        """Read, prepare and capture an image in the background (latest request wins)."""
        return self.jobs.open_image(path)

    def open_mask(self, path: str | Path) -> bool:
        """Use a mask image (any non-zero pixel = object) for the current image's SMM."""
        return self.masks.open_mask(path)

    def set_mask_array(self, mask: np.ndarray | None) -> bool:
        """Use an ``(H, W)`` bool mask in the original image's geometry (None removes it)."""
        return self.masks.set_mask_array(mask)

    def open_folder(self, folder: str | Path) -> int:
        """Show the folder's images as a strip of thumbnails and open the first one."""
        folder = Path(folder)
        images = sorted(
            (
                p
                for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not looks_like_mask(p)
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
            if self.loaded is None and not self.jobs.loading_model():
                self.open_checkpoint(kinds.checkpoints[0])
            self.compare_checkpoints(kinds.checkpoints)
        elif kinds.checkpoints:
            self.open_checkpoint(kinds.checkpoints[0])
        if kinds.folders:
            self.open_folder(kinds.folders[0])
        elif len(kinds.images) > 1:
            self.set_image_list(kinds.images)
        elif kinds.images:
            self.open_image(kinds.images[0])
        for m in kinds.masks[-1:]:
            if kinds.images:
                self.masks.pending = m  # applied once the new image is in
            else:
                self.open_mask(m)

    def compare_checkpoints(self, paths: list) -> None:
        """Add checkpoints to the compare view and show it; it follows this window's image,
        settings and mask."""
        self.wiring.compare_checkpoints(paths)

    def ask_load_options(
        self, path: Path, initial: LoadOptions | None, reason: str = ""
    ) -> LoadOptions | None:
        """The load dialog for ``path``, pre-filled with ``initial``; None when cancelled."""
        return self.menus.ask_load_options(path, initial, reason)

    def recent_files(self) -> list[str]:
        return self.menus.recent_files()

    def remember(self, path: Path) -> None:
        self.menus.remember(path)

    # =========================================================================================
    # Drawing, waiting
    # =========================================================================================
    def current_settings(self) -> ViewSettings:
        return self.controls.settings()

    def schedule_refresh(self) -> None:
        """Ask for a redraw at the next event-loop turn (many calls -> one redraw)."""
        self.render.schedule()

    def refresh(self) -> None:
        """Compute the map for the newest settings from the cached capture and draw it."""
        self.render.refresh()

    def refresh_explorer(self) -> None:
        """Redraw the head/layer grid, the tokens panel and the compare view now."""
        self.views.refresh_explorer()

    def sync_compare(self) -> None:
        self.views.sync_compare()

    def set_tool(self, tool: str) -> None:
        """The image view's tool: ``query`` (click a patch), ``brush`` or ``box`` (mask)."""
        self.masks.set_tool(tool)

    def is_idle(self) -> bool:
        return not self.jobs.busy() and not self.render.timer.isActive()

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        """Process events until no job runs and the overlay is drawn; False on timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        app = QApplication.instance()
        while time.monotonic() < deadline:
            app.processEvents()
            if self.is_idle():
                if self.views.explorer_timer.isActive() or self._metrics_pending():
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
        return bool(view is not None and view.pending())

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
    # Messages, drops, keys, closing
    # =========================================================================================
    def show_error(self, message: str) -> None:
        """One line in the status bar (red for a while); never a traceback."""
        self.statusBar().setStyleSheet("QStatusBar { color: #ff7b72; }")
        self.statusBar().showMessage(message, 10_000)
        self._error_timer.start()  # owned by the window: never fires after it is gone
        self.errorShown.emit(message)

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

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.closing = True
        training = self.panels.get("training")
        if training is not None and training.is_running():
            answer = QMessageBox.question(
                self,
                "Training is running",
                "A training job is running. Stop it (the last completed epoch's checkpoint is "
                "kept) and quit?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                self.closing = False
                return
            training.request_stop_and_wait(30_000)
        self.layout_sizes.save()
        batch = self.exports.batch
        if batch is not None and batch.is_running():
            batch.cancel()  # files already written stay; the current one is atomic
            batch.wait(30_000)
        for panel in self.panels.values():
            panel.close()  # lets each panel stop its own workers
        self.runner.shutdown(10_000)
        super().closeEvent(event)
