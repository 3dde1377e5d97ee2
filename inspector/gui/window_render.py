"""The window's redraw: the map for the newest settings from the cached capture, through the
core's one per-image pipeline (:func:`inspector.core.pipeline.explain_one`: map, overlay, SMM,
degenerate-map notices), with its colour bar and caption.

Every change (a control, a mask file, a capture) only schedules a redraw: a zero-millisecond
single-shot timer coalesces all changes made in one event-loop turn, so a slider dragged quickly
gives one map per turn, computed with the newest settings. The model runs again only for the
gradients of a class-specific method, once per (class, target), on the worker thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from inspector.core.colorscale import map_values, scale_of
from inspector.core.pipeline import explain_one
from inspector.core.session import RenderResult
from inspector.core.view_settings import ViewSettings

from .map_frame import caption_text
from .workers import user_message

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowRender"]


class WindowRender:
    """The map on screen of one window (``window.render``)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.session = window.session
        self.count = 0  # redraws so far (tests and benchmarks count them)
        self.timer = QTimer(window)
        self.timer.setSingleShot(True)
        self.timer.setInterval(0)
        self.timer.timeout.connect(self.refresh)
        for event in ("settings", "capture", "raw_image"):
            getattr(self.session.events, event).connect(self.schedule)

    def schedule(self, *_: object) -> None:
        """Ask for a redraw at the next event-loop turn (many calls -> one redraw)."""
        if not self.timer.isActive():
            self.timer.start()

    def refresh(self) -> None:
        """Compute the map for the newest settings from the cached capture and draw it."""
        self.timer.stop()
        sess = self.session
        s = self.w.controls.settings()
        with sess.events.settings.blocked():  # the session follows the panel, no second redraw
            sess.settings = s
        base = sess.display()
        if base is None:
            self.w.views.update_empty_state()
            return
        self.w.views.update_query_box()
        cap = sess.capture
        if cap is None or sess.model is None:
            self.w.map_frame.clear_map()
            self.show(RenderResult(s, None, None, base, None, 0.0))
            return
        if s.map.needs_gradients:
            try:
                c = cap.resolve_class(s.map.class_index)
            except ValueError as exc:
                self.w.show_error(user_message(exc))
                return
            if not cap.has_gradients(c, s.map.target):
                self.w.jobs.request_gradients(cap, c, s.map.target)
                return
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            # The core's one per-image pipeline, on the cached capture: the same numbers as
            # `vit-inspector explain` for the same image, mask and settings.
            result = explain_one(
                sess.model,
                sess.image,
                s.explain_settings(),
                mask=sess.mask,
                aligned=True,
                capture=cap,
            )
        except Exception as exc:  # noqa: BLE001 - a bad setting must not kill the window
            self.w.show_error(f"Cannot compute the map: {user_message(exc)}")
            return
        sess.flags = tuple(result.flags)
        if result.flags:
            self.w.statusBar().showMessage("Notice: " + "; ".join(result.flags))
        try:
            self._show_scale(s, result)
        except Exception as exc:  # noqa: BLE001 - the colour bar must not hide the map
            self.w.show_error(f"Cannot draw the colour scale: {user_message(exc)}")
        elapsed = (time.perf_counter() - t0) * 1000
        cpu = (time.process_time() - c0) * 1000
        rendered = RenderResult(
            s, result.grid, result.full, result.overlay, result.smm, elapsed, cpu, result
        )
        self.show(rendered)
        self.w.views.schedule_explorer()

    def _show_scale(self, s: ViewSettings, result) -> None:
        """Colour bar in the method's units (the view scales each map to its own min-max),
        caption naming what is shown, and the degenerate-map notice."""
        full, raw = result.full, result.raw_grid
        values = map_values(raw, full.shape[0], full.shape[0] // raw.shape[0], s.smoothing)
        names = self.session.model.class_names
        c = result.target_class
        name = names[c] if 0 <= c < len(names) else f"class {c}"
        predicted = s.map.class_index is None or c == result.capture.predicted_class
        self.session.scale = scale_of([values])
        caption = caption_text(s.map, name, predicted)
        self.w.map_frame.show_map(self.session.scale, s.colormap, caption, result.flags)

    def show(self, result: RenderResult) -> None:
        self.w.image_view.set_rgb(result.rgb)
        self.session.result = result
        self.count += 1
        if result.full is not None:
            self.w.timing_label.setText(f"map {result.elapsed_ms:.1f} ms")
        self.show_smm(result.smm if result.full is not None else None)
        panel = self.w.panels.get("masks")
        if panel is not None and result.full is not None:
            panel.set_saliency(result.full)
            panel.set_threshold(result.settings.smm_threshold)
        self.w.views.refresh_readout()  # the value under the cursor changed with the map
        self.w.overlayUpdated.emit()

    def show_smm(self, score: float | None) -> None:
        r = self.session.result
        if self.session.mask is None or r is None or r.full is None:
            self.w.smm_label.setText("")
        else:
            self.w.smm_label.setText("SMM —" if score is None else f"SMM {score:.3f}")
