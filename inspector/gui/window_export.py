"""The window's exports: the figure PNG with its maps and metadata, the head/layer grid PNG and
the batch export of a folder, with their dialogs.

Everything here reads what the window shows (its session's model, image, mask and last render)
and writes through :mod:`inspector.gui.export_dialog` and :mod:`inspector.gui.batch_export`
(atomic writes, never replacing a file unless the user said so).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QProgressDialog

from inspector.core.figure import DEFAULT_SIZE

from .batch_export import BatchExport, FigureOptions, plan_batch
from .export_dialog import ExportDialog, ExportError, export_overlay, mask_source, suggested_name

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowExports"]


class WindowExports:
    """Exports of one window (``window.exports``); the window's public export methods call these."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.batch: BatchExport | None = None

    def export_overlay(
        self,
        path: str | Path,
        *,
        overwrite: bool = False,
        size: int = DEFAULT_SIZE,
        colorbar: bool = True,
        outline: bool = True,
    ) -> list[Path]:
        """Write the figure PNG (``size`` px, mask outline, colour bar; settings in its
        metadata), the map ``.npy``, the raw map ``_raw.npy`` and the ``.json`` beside it.

        Raises:
            ExportError: nothing to export, or a file exists and ``overwrite`` is False.
        """
        r = self.w.last_render
        if r is None or r.full is None or r.explained is None:
            raise ExportError("Nothing to export yet: open a checkpoint and an image first")
        return export_overlay(
            Path(path),
            r.explained,
            self.export_metadata(),
            smoothing=r.settings.smoothing,
            colormap=r.settings.colormap,
            mask=self.w.mask,
            size=size,
            colorbar=colorbar,
            outline=outline,
            overwrite=overwrite,
        )

    def export_metadata(self) -> dict:
        r = self.w.last_render
        panel = self.w.panels.get("masks")
        meta = {
            "settings": r.settings.to_metadata() if r else {},
            "checkpoint": str(self.w.loaded.path) if self.w.loaded and self.w.loaded.path else None,
            "image": str(self.w.image_path) if self.w.image_path else None,
            # The mask's source: its file, or one made in the app (painted, box, dataset...).
            "mask": mask_source(
                self.w.mask,
                self.w.mask_path,
                panel.source() if hasattr(panel, "source") else "",
                self.w.ground_truth.annotation if self.w.ground_truth else None,
            ),
            "smm": r.smm if r else None,
            "flags": list(self.w.map_flags),
        }
        if self.w.capture is not None and self.w.loaded is not None:
            c = self.w.capture.predicted_class
            meta["predicted_class"] = c
            meta["predicted_name"] = self.w.loaded.class_names[c]
            meta["probability"] = float(self.w.capture.probabilities[c])
            if r is not None and r.settings.map.needs_gradients:
                target = self.w.capture.resolve_class(r.settings.map.class_index)
                meta["target_class"] = target
                meta["target_name"] = self.w.loaded.class_names[target]
        return meta

    def overlay_dialog(self) -> None:
        if self.w.last_render is None or self.w.last_render.full is None:
            self.w.show_error("Nothing to export yet: open a checkpoint and an image first")
            return
        start = self.w.settings_store.value("export/folder", str(Path.home()))
        dialog = ExportDialog(
            self.export_overlay,
            start,
            suggested_name(self.w.image_path, self.w.last_render.settings),
            has_mask=self.w.mask is not None,
            parent=self.w,
        )
        self._open_export_dialog(dialog)

    def _open_export_dialog(
        self, dialog: ExportDialog, then: Callable[[list], None] | None = None
    ) -> None:
        """Open ``dialog`` (window-modal); once it has exported, remember its folder and call
        ``then(written)`` (default: name the files written in the status bar)."""

        def done(written: list) -> None:
            self.w.settings_store.setValue("export/folder", str(dialog.target().parent))
            if then is not None:
                then(written)
            else:
                self.w.statusBar().showMessage(
                    "Wrote " + ", ".join(Path(p).name for p in written), 6000
                )

        dialog.exported.connect(done)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.w.export_dialog = dialog  # for tests and to keep it alive while open
        dialog.open()

    def export_grid(self, path: str | Path, *, overwrite: bool = False, scale: int = 6) -> Path:
        """Write the head/layer grid PNG (settings in its metadata).

        Raises:
            ExportError: the grid is empty, or the file exists and ``overwrite`` is False.
        """
        self.w.refresh_explorer()  # draw what the settings say now, not the debounced grid
        if self.w.explorer.is_empty():
            raise ExportError("The head/layer grid is empty: open a checkpoint and an image first")
        path = Path(path)
        if path.exists() and not overwrite:
            raise ExportError(f"{path.name} already exists in {path.parent}")
        try:
            return self.w.explorer.export_png(
                path, self.export_metadata(), overwrite=overwrite, scale=scale
            )
        except FileExistsError:
            raise ExportError(f"{path.name} already exists in {path.parent}") from None
        except OSError as exc:
            raise ExportError(f"Cannot write {path.name}: {exc.strerror or exc}") from None

    # -- batch --------------------------------------------------------------------------------
    def batch_images(self) -> list[Path]:
        """The images a batch export covers: the open folder's, else the current image."""
        if self.w.strip.count():
            return list(self.w.strip.paths())
        return [self.w.image_path] if self.w.image_path is not None else []

    def batch_export(
        self,
        out_dir: str | Path,
        *,
        overwrite: bool = False,
        size: int = DEFAULT_SIZE,
        colorbar: bool = True,
        outline: bool = True,
    ) -> BatchExport:
        """Export every image of the open folder with the current settings, on a worker thread
        (``batchFinished(BatchResult)`` at the end). ``size``, ``colorbar`` and ``outline``
        are the single export's figure options; ``outline`` draws each image's own mask.

        Raises:
            ExportError: no model, no images, a batch already running, or files exist and
                ``overwrite`` is False (nothing is written then).
        """
        if self.w.loaded is None:
            raise ExportError("Open a checkpoint first")
        if self.batch is not None and self.batch.is_running():
            raise ExportError("A batch export is already running")
        out_dir = Path(out_dir)
        if not out_dir.is_dir():
            raise ExportError(f"Folder {out_dir} does not exist")
        items = plan_batch(self.batch_images(), out_dir, self.w.controls.settings())
        ckpt = str(self.w.loaded.path) if self.w.loaded.path else None
        job = BatchExport(
            self.w.loaded,
            items,
            self.w.controls.settings(),
            ckpt,
            overwrite=overwrite,
            options=FigureOptions(size=size, colorbar=colorbar, outline=outline),
            parent=self.w,
        )
        job.progress.connect(
            lambda d, t, n: self.w.statusBar().showMessage(f"Batch export: {d}/{t} ({n})")
        )
        job.finished.connect(self._on_batch_finished)
        self.batch = job
        job.start()
        return job

    def _on_batch_finished(self, result) -> None:
        n = len(result.written) // 4  # four files per image
        text = f"Batch export {result.status}: {n} of {result.total} image(s) written"
        if result.errors:
            self.w.show_error(f"{text}; {len(result.errors)} failed: {result.errors[0]}")
        else:
            self.w.statusBar().showMessage(text, 8000)
        self.w.batchFinished.emit(result)

    def batch_dialog(self) -> None:
        """The export dialog for a folder: folder (created on request), figure size, colour bar
        and outline; existing files are offered for replacement; then a progress dialog with
        Cancel while the batch runs."""
        images = self.batch_images()
        if self.w.loaded is None or not images:
            self.w.show_error(
                "Batch export needs a checkpoint and a folder of images (File ▸ Open Folder…)"
            )
            return
        start = self.w.settings_store.value("export/folder", str(Path.home()))
        example = plan_batch(images[:1], Path("."), self.w.controls.settings())[0].png.name

        def export(path: Path, *, overwrite: bool, **figure: object) -> list[Path]:
            self.batch_export(path.parent, overwrite=overwrite, **figure)
            return []  # written by the job; the progress dialog follows it

        dialog = ExportDialog(
            export,
            start,
            "batch.png",
            title=f"Export {len(images)} image(s)",
            has_mask=True,
            files_note=(
                f"{len(images)} image(s), each as its own figure PNG, .npy, _raw.npy and .json, "
                f"named after the image and the settings (e.g. {example})"
            ),
            parent=self.w,
        )
        dialog.outline_box.setText("Outline each image's mask (<image>_mask.png)")
        dialog.outline_box.setToolTip("Images without a mask file are exported without outline")
        self._open_export_dialog(dialog, lambda _: self._progress_dialog(self.batch, len(images)))

    def _progress_dialog(self, job: BatchExport, total: int) -> None:
        dialog = QProgressDialog(f"Exporting {total} image(s)…", "Cancel", 0, total, self.w)
        dialog.setWindowTitle("Batch export")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(job.cancel)
        job.progress.connect(lambda d, _t, _n: dialog.setValue(d))
        job.finished.connect(lambda _r: dialog.reset())

    def grid_dialog(self) -> None:
        if self.w.explorer.is_empty():
            self.w.show_error("The head/layer grid is empty: open a checkpoint and an image first")
            return
        start = self.w.settings_store.value("export/folder", str(Path.home()))
        stem = self.w.image_path.stem if self.w.image_path else "grid"

        def export(path: Path, *, overwrite: bool, size: int, **_figure: object) -> list[Path]:
            return [self.export_grid(path, overwrite=overwrite, scale=size)]

        dialog = ExportDialog(
            export,
            start,
            f"{stem}_grid.png",
            title="Export head/layer grid",
            size_label="Cell enlargement (×)",
            size=6,
            size_range=(1, 32),
            figure_options=False,
            parent=self.w,
        )
        self._open_export_dialog(dialog)
