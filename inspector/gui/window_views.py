"""The window's views of the session: status labels, title, predictions and method panel follow
the model and the capture; the head/layer grid, the tokens panel and the compare view follow the
settings (debounced); the hover readout and the query box follow the cursor.

Each is a subscriber of :class:`inspector.core.session.Session` events, or is called by the
redraw (:mod:`inspector.gui.window_render`). The numbers come from the core
(``explorer_maps``, ``register_attention``, ``capture_outliers``, ``Session.readout``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from inspector.core.explain import LoadedModel, explorer_maps

from .predictions import PREDICTIONS_SHOWN
from .workers import user_message

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowViews"]

EXPLORER_DEBOUNCE_MS = 60


class WindowViews:
    """What one window shows besides the map (``window.views``)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.session = s = window.session
        # The grid follows with a short debounce: while a slider is being dragged the overlay
        # updates every frame and the grid catches up when the hand rests.
        self.explorer_timer = QTimer(window)
        self.explorer_timer.setSingleShot(True)
        self.explorer_timer.setInterval(EXPLORER_DEBOUNCE_MS)
        self.explorer_timer.timeout.connect(self.refresh_explorer)
        self._explorer_key: tuple | None = None
        self._tokens_key: tuple | None = None
        self._compare_key: dict | None = None
        self._hover_xy: tuple[int, int] | None = None
        s.events.model.connect(self._on_model)
        s.events.image_path.connect(self._on_image_path)
        s.events.capture.connect(self._on_capture)

    # -- session subscribers ------------------------------------------------------------------
    def _on_model(self, loaded: LoadedModel | None) -> None:
        if loaded is None:
            return
        cfg = loaded.checkpoint.config
        self.w.controls.set_model_shape(
            cfg.depth, cfg.num_heads, cfg.num_prefix_tokens, (cfg.grid_size, cfg.grid_size)
        )
        self.w.controls.set_class_index(None)
        self.w.model_label.setText(
            f"{loaded.name} · {cfg.depth}×{cfg.num_heads} · {cfg.image_size}px/{cfg.patch_size}"
        )
        self.w.model_label.setToolTip(str(loaded.path))
        self.w.statusBar().showMessage(f"Opened {loaded.name}", 4000)
        from .compare_view import cell_title  # runs/<run>/best.pt -> "<run>/best.pt"

        title = cell_title(loaded.path) if loaded.path is not None else loaded.name
        self.w.setWindowTitle(f"ViT Inspector — {title}")

    def _on_image_path(self, path) -> None:
        self.w.image_label.setText(path.name if path else "No image")
        self.w.image_label.setToolTip(str(path) if path else "")
        if path is not None and self.session.model is None:
            self.load_truth(path)  # the true label and box are known without a model

    def load_truth(self, path) -> None:
        why = self.session.load_ground_truth(path)
        if why is not None:
            self.w.show_error(why)

    def _on_capture(self, cap) -> None:
        s, loaded = self.session, self.session.model
        if cap is None:
            if s.raw_image is not None:
                self.w.predictions.clear("Open a checkpoint to see predictions.")
            return
        truth = s.ground_truth
        if truth is None or truth.image != s.image_path:
            self.load_truth(s.image_path)
        label = s.true_class()
        self.w.predictions.set_predictions(
            cap.top_k(PREDICTIONS_SHOWN),
            loaded.class_names,
            label,
            None if label is None else float(cap.probabilities[label]),
        )
        self.w.controls.set_class_index(None)
        c = cap.predicted_class
        self.w.statusBar().showMessage(
            f"Predicted {loaded.class_names[c]} ({float(cap.probabilities[c]) * 100:.1f}%)", 6000
        )

    def update_empty_state(self) -> None:
        if self.session.display() is not None:
            self.w.image_view.set_message("")
            return
        self.w.image_view.set_rgb(None)
        if self.session.model is None and not self.w.runner.busy():
            self.w.image_view.set_message(
                "Drop a checkpoint and an image here\n(File ▸ Open Checkpoint… Ctrl+Shift+O)"
            )
        elif self.w.runner.busy():
            self.w.image_view.set_message("Loading…")
        else:
            self.w.image_view.set_message("Drop an image here (File ▸ Open Image… Ctrl+O)")
        self.w.predictions.clear(
            "No prediction yet: open a checkpoint and an image."
            if self.session.model is None
            else "Open an image to see predictions."
        )

    # -- cursor -------------------------------------------------------------------------------
    def on_hover(self, x: int, y: int) -> None:
        # Remembered so that the readout follows a control change under a resting cursor.
        self._hover_xy = (x, y) if x >= 0 else None
        text = self.session.readout(x, y) if x >= 0 else None
        if text is not None:
            self.w.statusBar().showMessage(text)

    def refresh_readout(self) -> None:
        if self._hover_xy is not None:
            self.on_hover(*self._hover_xy)

    def update_query_box(self) -> None:
        self.w.image_view.set_query_box(self.session.patch_box(self.w.controls.query_patch()))

    # -- grid, tokens, compare ----------------------------------------------------------------
    def schedule_explorer(self, *_: object) -> None:
        self.explorer_timer.start()  # (re)start: the newest request waits for a quiet moment

    def refresh_explorer(self) -> None:
        """Redraw the head/layer grid when what it shows changed (and it is visible); bring the
        compare view and the tokens panel up to date."""
        self.sync_compare()
        self._refresh_tokens()
        cap = self.session.capture
        if cap is None or not self.w.explorer_dock.isVisible():
            if cap is None:
                self.w.explorer.clear()
                self._explorer_key = None
            return
        vs = self.w.controls.settings()
        m = vs.map
        fields = (m.query, m.fusion, m.discard_ratio, m.legacy_normalisation, m.residual)
        key = (id(cap), *fields, vs.colormap, vs.scaling)
        if key != self._explorer_key:
            try:
                data = explorer_maps(
                    cap,
                    query=m.query,
                    fusion=m.fusion,
                    discard_ratio=m.discard_ratio,
                    residual=m.residual,
                    legacy_normalisation=m.legacy_normalisation,
                )
            except Exception as exc:  # noqa: BLE001
                self.w.show_error(f"Cannot draw the explorer: {user_message(exc)}")
                return
            self.w.explorer.set_data(data, colormap=vs.colormap, scaling=vs.scaling)
            self._explorer_key = key
        attention = m.method == "attention"
        self.w.explorer.set_selection(
            m.layer % cap.num_layers if attention else None, m.head if attention else None
        )

    def _refresh_tokens(self) -> None:
        """The token panel (when shown): registers' attention in the current layer and the
        high-norm outliers (the token-norm layer), both computed by the core."""
        panel, dock = self.w.panels.get("tokens"), self.w.extra_docks.get("tokens")
        if panel is None or dock is None or not dock.isVisible():
            return
        cap = self.session.capture
        if cap is None:
            panel.clear()
            return
        from inspector.core.registers import register_attention
        from inspector.core.saliency.token_norm import (
            capture_norm_profile,
            capture_norm_view,
            capture_outliers,
        )

        s = self.w.controls.settings()
        key = (id(cap), s.map.layer, s.colormap)
        if key == self._tokens_key:
            return
        self._tokens_key = key
        try:
            panel.set_registers(register_attention(cap, layer=s.map.layer), s.colormap)
        except Exception as exc:  # noqa: BLE001 - a panel must not break the window
            panel.set_registers(None)
            self.w.show_error(f"Cannot show the registers: {user_message(exc)}")
        try:
            view = capture_norm_view(cap, layer=s.map.layer)
            report = capture_outliers(cap, layer=s.map.layer, view=view)
            panel.set_outliers(report, "", view.map, s.colormap, capture_norm_profile(cap))
        except Exception as exc:  # noqa: BLE001 - e.g. Swin records no token norms
            panel.set_outliers(None, user_message(exc))

    def forget_compare(self) -> None:
        self._compare_key = None

    def sync_compare(self) -> None:
        """Hand the compare view the current image, settings and mask (only what changed, and
        only while it is visible and has models: it captures each image once per model)."""
        panel = self.w.panels.get("compare")
        if panel is None or not panel.models() or self.w.central_tabs.currentWidget() is not panel:
            return
        key = self._compare_key or {}
        s = self.w.controls.settings()
        sess = self.session
        image = sess.image.original if sess.image is not None else sess.raw_image
        now = {
            "image": image,
            "map": (s.map, s.smoothing),
            "threshold": s.smm_threshold,
            "cmap": s.colormap,
            "opacity": s.opacity,
            "scaling": s.scaling,
            "mask": sess.mask,
        }
        if key.get("image") is not image:
            panel.set_image(image)
        if key.get("map") != now["map"]:
            panel.set_settings(s.map, s.smoothing)
        for name, setter in (
            ("threshold", panel.set_threshold),
            ("cmap", panel.set_colormap),
            ("opacity", panel.set_opacity),
            ("scaling", panel.set_scaling),
        ):
            if key.get(name) != now[name]:
                setter(now[name])
        if key.get("mask") is not sess.mask:
            panel.set_mask(sess.mask)
        self._compare_key = now
