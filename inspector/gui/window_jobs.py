"""The window's background jobs: opening a checkpoint, reading and capturing an image, the
gradients of a class-specific method. Each runs on the window's
:class:`~inspector.gui.workers.BackgroundRunner` and comes back with a request id; a stale
result (the user has moved on) is dropped, a fresh one is assigned to the session, whose
subscribers update the widgets (:mod:`inspector.gui.window_views`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from inspector.core.capture import Capture
from inspector.core.checkpoint import save_checkpoint
from inspector.core.explain import LoadedModel, capture_image, load_image, open_model
from inspector.core.imageio import read_image
from inspector.core.load_options import LoadOptions, needs_heads

from .workers import user_message

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowJobs"]


class WindowJobs:
    """Model, image and gradient jobs of one window (``window.jobs``)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.session = window.session
        self._jobs: dict[int, str] = {}  # request id -> what it was for
        # model request id -> (path, options), to ask again when the heads are unknown
        self._model_requests: dict[int, tuple[Path, LoadOptions | None]] = {}
        self.gradients_pending: set[tuple[int, str]] = set()
        self.requested_image: Path | None = None  # newest image asked for (may be loading)
        window.runner.finished.connect(self._on_finished)
        window.runner.failed.connect(self._on_failed)

    def loading_model(self) -> bool:
        """A checkpoint is being opened (its result will replace the model)."""
        return self.w.runner.latest("model") in self._jobs

    def busy(self) -> bool:
        return self.w.runner.busy() or bool(self.gradients_pending)

    # -- requests -----------------------------------------------------------------------------
    def open_checkpoint(self, path: str | Path, options: LoadOptions | None = None) -> int:
        path = Path(path)
        self.w.statusBar().showMessage(f"Loading {path.name}…")
        self.w.model_label.setText(f"Loading {path.name}…")
        rid = self.w.runner.submit(lambda: open_model(path, options=options), channel="model")
        self._jobs[rid] = "model"
        self._model_requests[rid] = (path, options)
        return rid

    def use_model(self, loaded: LoadedModel) -> None:
        self.w.runner.submit(lambda: None, channel="model")  # older model loads become stale
        self._set_model(loaded)

    def open_image(self, path: str | Path) -> int:
        path = Path(path)
        self.w.statusBar().showMessage(f"Opening {path.name}…")
        self.requested_image = path
        return self.start_capture(path)

    def start_capture(self, path: Path | None = None) -> int:
        """Queue (read + prepare + capture) of ``path`` or of the current image."""
        path = path or self.requested_image or self.session.image_path
        if path is None:
            return 0
        if self.loading_model():
            # A checkpoint is loading: its result starts the capture with the new model.
            self.w.image_view.set_message("Loading…")
            return 0
        loaded = self.session.model
        if loaded is None:
            rid = self.w.runner.submit(lambda: ("raw", path, read_image(path)), channel="image")
        else:

            def job():
                prepared = load_image(path, loaded)
                return ("capture", path, loaded, prepared, capture_image(loaded, prepared))

            rid = self.w.runner.submit(job, channel="image")
        self._jobs[rid] = "image"
        return rid

    def request_gradients(self, cap: Capture, c: int, target: str = "logit") -> None:
        if (c, target) in self.gradients_pending:
            return
        self.gradients_pending.add((c, target))
        self.w.statusBar().showMessage(f"Computing gradients of the {target} of class {c}…")
        rid = self.w.runner.submit(
            lambda: (cap, (c, target), cap.gradients(c, target)), channel=f"grad{c}{target}"
        )
        self._jobs[rid] = "gradients"

    def save_model_as(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        if self.session.model is None:
            self.w.show_error("Nothing to save: open a checkpoint first")
            return None
        path = Path(path)
        try:
            saved = save_checkpoint(path, self.session.model.checkpoint, overwrite=overwrite)
        except Exception as exc:  # noqa: BLE001 - any failure must be a message, not a crash
            self.w.show_error(f"Cannot save {path.name}: {user_message(exc)}")
            return None
        self.w.statusBar().showMessage(f"Saved {saved.name}", 6000)
        return saved

    # -- results ------------------------------------------------------------------------------
    def _on_finished(self, rid: int, result: object) -> None:
        kind = self._jobs.pop(rid, None)
        if kind == "model":
            self._model_requests.pop(rid, None)
            if self.w.runner.is_latest(rid, "model"):
                self._set_model(result)
        elif kind == "image":
            if self.w.runner.is_latest(rid, "image"):  # else an older image: the user moved on
                self._set_image(result)
        elif kind == "gradients":
            cap, c, _ = result
            self.gradients_pending.discard(c)
            if cap is self.session.capture:
                self.w.statusBar().clearMessage()
                self.w.schedule_refresh()

    def _on_failed(self, rid: int, message: str) -> None:
        kind = self._jobs.pop(rid, None)
        if kind == "gradients":
            self.gradients_pending.clear()
            self.w.show_error(f"Cannot compute gradients: {message}")
        elif kind == "model":
            loaded = self.session.model
            self.w.model_label.setText(loaded.name if loaded else "No checkpoint")
            request = self._model_requests.pop(rid, None)
            latest = self.w.runner.is_latest(rid, "model")
            if request is not None and latest and needs_heads(message) and not self.w.closing:
                options = self.w.ask_load_options(*request, reason=message)
                if options is not None:
                    self.open_checkpoint(request[0], options)  # the image waits for it
                    self.w.views.update_empty_state()
                    return
            self.w.show_error(f"Cannot open checkpoint: {message}")
            waiting = self.requested_image
            if latest and waiting is not None and waiting != self.session.image_path:
                self.start_capture()  # the image waited for this model: show it anyway
        elif kind == "image" and self.w.runner.is_latest(rid, "image"):
            self.requested_image = self.session.image_path  # keep showing the previous image
            self.w.show_error(f"Cannot open image: {message}")
        self.w.views.update_empty_state()

    def _set_model(self, loaded: LoadedModel) -> None:
        self.gradients_pending.clear()
        self.session.set_model(loaded)  # its subscribers show the model (window_views)
        if loaded.path is not None:
            self.w.remember(loaded.path)
        if self.requested_image is not None or self.session.image_path is not None:
            self.start_capture()
        self.w.views.update_empty_state()
        self.w.modelLoaded.emit(str(loaded.path))

    def _set_image(self, result: tuple) -> None:
        kind, path = result[0], result[1]
        s = self.session
        new_image = path != s.image_path
        if kind == "raw":
            s.set_raw_image(path, result[2])
        else:
            _, _, loaded, prepared, cap = result
            if loaded is not s.model:
                return  # captured with a model that was replaced meanwhile
            self.gradients_pending.clear()
            s.set_captured(path, prepared, cap)
        if new_image:
            self.w.remember(path)
        self.w.masks.image_changed(path, new_image)
        if new_image:
            self.w.image_view.fit()
        self.w.schedule_refresh()
        if kind == "capture":
            self.w.captureReady.emit()
