"""The window's panels: masks, training, tokens and prompts as docks, the compare view as a
central tab, imported and connected directly; and what happens when they report back (a
trained model is opened, a study's models are compared, a class or a grid cell is chosen).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QFrame, QScrollArea, QWidget

from .compare_view import CompareView, dialog_folder
from .masks_panel import MasksPanel
from .prompts_panel import PromptsController, PromptsPanel
from .register_view import TokensPanel
from .training_panel import TrainingPanel
from .window_menus import CHECKPOINT_FILTER

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowPanels"]


class WindowPanels:
    """The panels of one window and their wiring (``window.wiring``)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window

    def install_panels(self) -> None:
        """The masks, training, tokens and prompts panels as docks, and the compare view as a
        central tab, imported and connected directly (a broken panel is a bug to see, not a
        panel to leave out silently).

        Masks sit in a tab beside the predictions (right); training and compare in tabs beside
        the explorer (left). Each is wrapped in a scroll area so that a tall panel never forces
        the window's minimum size.
        """
        specs = (
            ("masks", MasksPanel, "Masks", self.w.predictions_dock),
            ("training", TrainingPanel, "Training", self.w.explorer_dock),
            ("compare", CompareView, "Compare", None),
            ("tokens", TokensPanel, "Tokens", self.w.explorer_dock),
            ("prompts", PromptsPanel, "Prompts", self.w.controls_dock),
        )
        self.w.panels = {}  # key -> the panel widget
        for key, cls, title, beside in specs:
            widget = cls()
            if beside is None:  # the compare view: a central tab, not a dock
                self.w.central_tabs.addTab(widget, title)
                self.w.panels[key] = widget
                self.connect_panel(key, widget)
                continue
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(widget)
            dock = self.w.add_dock(title, scroll, self.w.dockWidgetArea(beside))
            self.w.tabifyDockWidget(beside, dock)
            self.w.extra_docks[key] = dock
            self.w.panels[key] = widget
            self.connect_panel(key, widget)
        self.w.predictions_dock.raise_()
        self.w.explorer_dock.raise_()
        self.w.controls_dock.raise_()

    def connect_panel(self, key: str, widget: QWidget) -> None:
        """Wire the signals the other panels offer (by name, so either side can evolve)."""
        if key == "masks":
            if hasattr(widget, "mask_changed"):
                widget.mask_changed.connect(self.w.masks.on_panel_mask)
            if hasattr(widget, "error"):
                widget.error.connect(self.w.show_error)
            if hasattr(widget, "tool_changed"):
                widget.tool_changed.connect(self.w.set_tool)
            if hasattr(widget, "radius_spin"):
                widget.radius_spin.valueChanged.connect(self.w.image_view.set_brush_radius)
                self.w.image_view.set_brush_radius(widget.radius_spin.value())
            if hasattr(widget, "metrics_view"):
                widget.metrics_view.defer_when_hidden = True  # no metrics for a hidden tab
        if key == "prompts":  # CLIP / SigLIP text prompts (issue 12): its controller wires it
            self.w.prompts_controller = PromptsController(self.w, widget)
        if key == "tokens":  # registers' attention and high-norm outliers (issue 12)
            widget.tokenChosen.connect(self.w.controls.set_query)
            self.w.extra_docks["tokens"].visibilityChanged.connect(
                lambda v: v and self.w.views.schedule_explorer()
            )
        if key == "training" and hasattr(widget, "finished"):
            widget.finished.connect(self.on_training_finished)
        if key == "masks":
            v = Qt.Orientation.Vertical  # under the method panel: its own height when raised
            masks, method = self.w.extra_docks[key], self.w.controls_dock
            # Never narrower than the panel and a vertical scroll bar: no horizontal scrolling.
            bar = masks.style().pixelMetric(masks.style().PixelMetric.PM_ScrollBarExtent)
            masks.widget().setMinimumWidth(widget.minimumSizeHint().width() + bar + 2)

            self.w.dock_widths.track(masks, self.w.layout_sizes.masks_height, v, method)
            self.w.dock_widths.track(
                self.w.predictions_dock, self.w.layout_sizes.predictions_height, v, method
            )
        if key == "training":
            # Curves and the study table need room; the image keeps what it can fill.
            self.w.dock_widths.track(self.w.extra_docks[key], self.w.layout_sizes.training_width)
        if key == "training" and hasattr(widget, "study_finished"):
            widget.study_finished.connect(self.on_study_finished)
        if key == "compare" and hasattr(widget, "checkpointsDropped"):
            widget.forward_drops = True
            widget.checkpointsDropped.connect(self.compare_checkpoints)
            widget.studyRequested.connect(self.compare_study_models)
            widget.chooseRequested.connect(self.compare_dialog)
            from inspector.paths import STUDY_CHECKPOINTS, study_checkpoints

            found = len(study_checkpoints())
            widget.study_button.setEnabled(found > 0)
            where = f"in {STUDY_CHECKPOINTS}"
            widget.study_button.setToolTip(f"{found} models {where}" if found else f"none {where}")

    def on_training_finished(self, path: str) -> None:
        self.w.statusBar().showMessage(f"Training finished: opening {Path(path).name}", 6000)
        self.w.open_checkpoint(path)

    def on_study_finished(self, paths: list) -> None:
        """A study finished: its models replace the compare view's, side by side on the
        current image (its table stays in the training panel)."""
        if not paths:
            return
        panel = self.w.panels.get("compare")
        if panel is not None:
            panel.set_models([])
        self.w.statusBar().showMessage(f"Comparing {len(paths)} study models", 6000)
        self.compare_checkpoints(paths)

    def compare_checkpoints(self, paths: list) -> None:
        """Add checkpoints to the compare view and show it; it follows this window's image,
        settings and mask."""
        panel = self.w.panels.get("compare")
        if panel is None:
            self.w.show_error("The compare view is not available")
            return
        for p in paths:
            panel.add_model(str(p))
        self.w.central_tabs.setCurrentWidget(panel)
        self.w.views.forget_compare()
        self.w.views.sync_compare()

    def sanity_dialog(self) -> None:
        if self.w.session.model is None or self.w.session.image is None:
            self.w.show_error("open a checkpoint and an image first: the check explains that image")
            return
        from .sanity_dialog import SanityDialog

        s = self.w.controls.settings()
        self.w.sanity = SanityDialog(
            self.w.session.model,
            self.w.session.image,
            s,
            checkpoint=self.w.session.model.path,
            cmap=s.colormap,
            model_runner=self.w.runner,
            parent=self.w,
        )
        self.w.sanity.show()
        self.w.sanity.start()

    def compare_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self.w,
            "Compare checkpoints",
            dialog_folder(self.w.session.model.path if self.w.session.model is not None else None),
            CHECKPOINT_FILTER,
        )
        if paths:
            self.compare_checkpoints(paths)

    def compare_study_models(self) -> None:
        from inspector.paths import STUDY_CHECKPOINTS, study_checkpoints

        paths = study_checkpoints()
        if not paths:
            self.w.show_error(f"No study models in {STUDY_CHECKPOINTS}")
            return
        self.on_study_finished([str(p) for p in paths])

    def on_class_chosen(self, c: int) -> None:
        if c < 0 or self.w.session.model is None:
            self.w.controls.set_class_index(None)
            return
        self.w.controls.set_class_index(c, self.w.session.model.class_names[c])
        if not self.w.controls.settings().map.needs_gradients:
            self.w.statusBar().showMessage(
                f"Target {self.w.session.model.class_names[c]}: used by the gradient methods", 5000
            )

    def on_explorer_clicked(self, layer: int, column: str, head: int) -> None:
        if column == "rollout":
            self.w.controls.set_layer_head(layer, None, method="rollout")
        elif column == "fused":
            self.w.controls.set_layer_head(layer, None)
        else:
            self.w.controls.set_layer_head(layer, head)
