"""Batch export: every image of a folder -> figure PNG (settings in its metadata), ``.npy``,
``_raw.npy`` and ``.json``, as the single export.

The job runs on a :class:`~inspector.gui.workers.BackgroundRunner` of its own (the app's one
worker idiom, docs/ARCHITECTURE.md section 3; its own thread, so the window stays live and its
maps keep coming while a folder is written): for each image it calls
the core's one per-image pipeline, as the window does (:func:`inspector.core.explain.load_image`,
:func:`inspector.core.pipeline.explain_one`: map, overlay, SMM with the image's
``<stem>_mask.png`` aligned like every other mask) and writes the files with
:func:`inspector.gui.export_dialog.export_overlay` (atomic, never replacing a file unless asked).
Cancel is a ``threading.Event`` checked between images.

Public API:

* ``plan_batch(images, out_dir, settings) -> list[BatchItem]`` - the file names (method and
  settings in the name, as :func:`~inspector.gui.export_dialog.suggested_name`).
* ``existing_targets(items) -> list[Path]`` - what would be replaced.
* ``BatchExport(loaded, items, settings, checkpoint, overwrite=False, options=FigureOptions())``
  - ``options`` are the single export's figure options (size, colour bar, outline; the outline
  is each image's own ``<stem>_mask.png``); ``start()``,
  ``cancel()``, ``wait(timeout_ms)``, ``is_running()``; signals ``progress(done, total, name)``
  (``worker.progress`` is the same signal emitted on the worker thread)
  and ``finished(BatchResult)``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from inspector.core.export import map_file_paths, mask_record
from inspector.core.figure import DEFAULT_SIZE

from .controls import ViewSettings
from .export_dialog import ExportError, export_overlay, suggested_name
from .workers import BackgroundRunner, user_message

__all__ = [
    "BatchExport",
    "BatchItem",
    "BatchResult",
    "FigureOptions",
    "existing_targets",
    "plan_batch",
]


@dataclass(frozen=True)
class BatchItem:
    """One image and the two files it becomes."""

    source: Path
    png: Path

    @property
    def npy(self) -> Path:
        return self.png.with_suffix(".npy")

    @property
    def files(self) -> list[Path]:
        """The figure, the map, the raw map and the JSON (:func:`map_file_paths`)."""
        return list(map_file_paths(self.png).values())


@dataclass
class BatchResult:
    """How a batch ended: ``finished`` or ``cancelled``, the files written, one line per
    image that failed."""

    status: str
    written: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    total: int = 0


def plan_batch(images: list[Path], out_dir: Path, settings: ViewSettings) -> list[BatchItem]:
    """The files a batch will write: ``out_dir / <stem>_<method>_<settings>.png`` (+ ``.npy``).

    Raises:
        ExportError: no images, or two images with the same stem (their files would collide).
    """
    if not images:
        raise ExportError("No images to export: open a folder of images first")
    items = [BatchItem(Path(p), Path(out_dir) / suggested_name(Path(p), settings)) for p in images]
    names = [i.png.name for i in items]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ExportError(f"Several images would be written as {clashes[0]} (same file stem)")
    return items


def existing_targets(items: list[BatchItem]) -> list[Path]:
    return [p for item in items for p in item.files if p.exists()]


@dataclass(frozen=True)
class FigureOptions:
    """The figure options of the export dialog, for every image of the batch."""

    size: int = DEFAULT_SIZE  # the image's side in pixels (0: the model's input size)
    colorbar: bool = True
    outline: bool = True  # outline each image's own mask, when it has one


class _Progress(QObject):
    """``progress(done, total, name)`` emitted on the worker thread, after each image."""

    progress = Signal(int, int, str)


class _BatchJob:
    """The loop over the images; runs on the batch's worker thread."""

    def __init__(
        self,
        loaded: Any,
        items: list[BatchItem],
        settings: ViewSettings,
        checkpoint: str | None,
        overwrite: bool,
        options: FigureOptions,
        stop: threading.Event,
        progress: _Progress,
    ) -> None:
        self.loaded, self.items, self.settings = loaded, items, settings
        self.checkpoint, self.overwrite, self.stop = checkpoint, overwrite, stop
        self.options, self.progress = options, progress

    def __call__(self) -> BatchResult:
        result = BatchResult("finished", total=len(self.items))
        for i, item in enumerate(self.items):
            if self.stop.is_set():
                result.status = "cancelled"
                break
            try:
                result.written += self._export_one(item)
            except Exception as exc:  # noqa: BLE001 - one bad image must not stop the rest
                result.errors.append(f"{item.source.name}: {user_message(exc)}")
            self.progress.progress.emit(i + 1, len(self.items), item.source.name)
        return result

    def _export_one(self, item: BatchItem) -> list[Path]:
        from inspector.core.explain import load_image
        from inspector.core.imageio import read_mask
        from inspector.core.pipeline import explain_one

        s, loaded = self.settings, self.loaded
        prepared = load_image(item.source, loaded)
        mask_file = item.source.with_name(f"{item.source.stem}_mask.png")
        mask = read_mask(mask_file) if mask_file.is_file() else None
        # The core's one per-image pipeline: the same mask alignment (and refusal of a mask of
        # another size) as the CLI and the window.
        result = explain_one(
            loaded,
            prepared,
            s.explain_settings(),
            mask=mask,
            mask_source=str(mask_file) if mask is not None else None,
        )
        c = result.capture.predicted_class
        meta = {
            "settings": s.to_metadata(),
            "checkpoint": self.checkpoint,
            "image": str(item.source),
            "mask": mask_record("file", result.mask, mask_file) if mask is not None else None,
            "smm": result.smm,
            "predicted_class": c,
            "predicted_name": loaded.class_names[c],
            "probability": float(result.capture.probabilities[c]),
            "flags": result.flags,
            "batch": True,
        }
        return export_overlay(
            item.png,
            result,
            meta,
            smoothing=s.smoothing,
            colormap=s.colormap,
            mask=result.mask,
            size=self.options.size,
            colorbar=self.options.colorbar,
            outline=self.options.outline,
            overwrite=self.overwrite,
        )


class BatchExport(QObject):
    """One batch export job on a worker thread of its own.

    Signals:
        progress(done, total, name): after each image (on the GUI thread; ``worker.progress``
            is the same signal on the worker thread).
        finished(BatchResult): after the last image, a cancel or a failure.
    """

    progress = Signal(int, int, str)
    finished = Signal(object)

    def __init__(
        self,
        loaded: Any,
        items: list[BatchItem],
        settings: ViewSettings,
        checkpoint: str | None = None,
        *,
        overwrite: bool = False,
        options: FigureOptions | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if not overwrite:
            existing = existing_targets(items)
            if existing:
                raise ExportError(
                    f"{len(existing)} file(s) already exist in "
                    f"{existing[0].parent}, e.g. {existing[0].name}"
                )
        self.items = items
        self.options = options or FigureOptions()
        self.result: BatchResult | None = None
        self._stop = threading.Event()
        self.worker = _Progress(self)
        self.worker.progress.connect(self.progress)  # queued: emitted on the worker thread
        self._job = _BatchJob(
            loaded, items, settings, checkpoint, overwrite, self.options, self._stop, self.worker
        )
        self._runner = BackgroundRunner(self)
        self._runner.finished.connect(self._on_done)
        self._runner.failed.connect(self._on_failed)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._runner.submit(self._job, channel="batch")

    def cancel(self) -> None:
        """Stop before the next image (the files already written stay)."""
        self._stop.set()

    def is_running(self) -> bool:
        return self._runner.busy()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Wait for the job, delivering its signals meanwhile (window close); True when it has
        ended."""
        return self._runner.wait_all(timeout_ms)

    @Slot(int, object)
    def _on_done(self, _request: int, result: BatchResult) -> None:
        self._end(result)

    @Slot(int, str)
    def _on_failed(self, _request: int, message: str) -> None:
        self._end(BatchResult("failed", errors=[message], total=len(self.items)))

    def _end(self, result: BatchResult) -> None:
        if self.result is None:
            self.result = result
            self.finished.emit(result)
