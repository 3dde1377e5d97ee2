"""The window's widgets and where they sit: the image (and the compare view) in central tabs,
the method panel, predictions and masks on the right, the head/layer grid, training and tokens
on the left, the status bar; default dock sizes and the saved layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QFrame, QLabel, QScrollArea, QSplitter, QTabWidget

from .attention_grid import AttentionGrid
from .controls import ControlsPanel
from .dock_widths import DockWidths
from .map_frame import MapFrame
from .predictions import PredictionsPanel
from .thumbnails import ThumbnailStrip

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowLayout", "build_widgets"]

EXPLORER_WIDTH = 300  # px: the head/layer grid's default dock width
CONTROLS_WIDTH = 320  # px: the method / predictions / masks column
LAYOUT_VERSION = 3  # bump when the docks change, so an old saved layout is ignored


def _scrolled(widget, *, horizontal: bool = True) -> QScrollArea:
    """A tall panel in a scroll area never sets the window's minimum height."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    if not horizontal:
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(widget)
    return scroll


def build_widgets(w: MainWindow) -> None:
    """Create the central tabs, the three core docks and the status bar on ``w``."""
    w.map_frame = MapFrame()
    w.image_view = w.map_frame.image_view
    w.strip = ThumbnailStrip()
    w.strip.setVisible(False)
    centre = QSplitter(Qt.Orientation.Vertical)
    centre.addWidget(w.map_frame)
    centre.addWidget(w.strip)
    centre.setStretchFactor(0, 1)
    centre.setCollapsible(0, False)
    # The compare view is a central tab beside the image: it needs the room (issue 11).
    w.central_tabs = QTabWidget()
    w.central_tabs.setDocumentMode(True)
    w.central_tabs.addTab(centre, "Image")
    w.setCentralWidget(w.central_tabs)

    w.controls = ControlsPanel()
    w.predictions = PredictionsPanel()
    w.predictions.setMinimumHeight(w.predictions.rows_height(5))  # the top 5, never scrolled
    w.explorer = AttentionGrid()
    right, left = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea
    controls_scroll = _scrolled(w.controls, horizontal=False)
    bar = controls_scroll.style().pixelMetric(
        controls_scroll.style().PixelMetric.PM_ScrollBarExtent
    )
    controls_scroll.setMinimumWidth(w.controls.minimumSizeHint().width() + bar)
    w.controls_dock = w.add_dock("Method", controls_scroll, right)
    w.predictions_dock = w.add_dock("Predictions", w.predictions, right)
    w.explorer_dock = w.add_dock("Heads × layers", w.explorer, left)
    # Tabs of the left area each keep their own width (the image keeps the middle).
    w.dock_widths = DockWidths(w)
    w.dock_widths.track(w.explorer_dock, lambda: EXPLORER_WIDTH)
    w.extra_docks: dict[str, QDockWidget] = {}  # the panels' docks (window_panels.py)

    w.model_label = QLabel("No checkpoint")
    w.image_label = QLabel("No image")
    w.smm_label = QLabel("")
    w.timing_label = QLabel("")
    for label in (w.model_label, w.image_label, w.smm_label, w.timing_label):
        label.setContentsMargins(6, 0, 6, 0)
        w.statusBar().addPermanentWidget(label)
    # Labels that change on every render get a fixed size: a fixed-size widget's new text
    # repaints the label only, instead of laying out the whole status bar again.
    for label, widest in ((w.smm_label, "SMM 0.000 "), (w.timing_label, "map 9999.9 ms")):
        width = label.fontMetrics().horizontalAdvance(widest) + 14
        label.setFixedSize(width, label.sizeHint().height())
    w.smm_label.setToolTip("SMM: IoU between the saliency above the threshold and the mask")


class WindowLayout:
    """Default dock sizes, and the layout saved with the window (``window.layout_sizes``)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self._spare_pending = False

    def restore(self) -> None:
        store = self.w.settings_store
        geometry, state = store.value("window/geometry"), store.value("window/state")
        self.w.restored_geometry = False
        if isinstance(geometry, QByteArray):
            self.w.restored_geometry = self.w.restoreGeometry(geometry)
        if not (isinstance(state, QByteArray) and self.w.restoreState(state, LAYOUT_VERSION)):
            # Dock sizes only stick once the window has its real size: after the first show.
            QTimer.singleShot(0, self.default_sizes)

    def save(self) -> None:
        store = self.w.settings_store
        store.setValue("window/geometry", self.w.saveGeometry())
        store.setValue("window/state", self.w.saveState(LAYOUT_VERSION))
        store.sync()

    def predictions_height(self) -> int:
        """The top-5 rows in full, and on a tall screen what the method panel's content leaves
        (so neither shows a grey void); at most 45% of the window otherwise."""
        w = self.w
        dock = w.predictions_dock
        title = dock.height() - dock.widget().height() if dock.isVisible() else 0
        title = title if 0 < title < 60 else dock.fontMetrics().height() + 10  # the title bar
        rows = w.predictions.rows_height(5) + title
        column = w.controls_dock.height() + dock.height() if dock.isVisible() else w.height()
        method = w.controls.sizeHint().height() + title + 30  # + its Method/Prompts tab bar
        return max(rows, min(column - method, int(w.height() * 0.45)))

    def masks_height(self) -> int:
        """All of the masks panel when the screen allows; the method panel above keeps at
        least 37% of the window (at 720 px: its first seven rows)."""
        panel, dock = self.w.panels["masks"], self.w.extra_docks["masks"]
        column = self.w.controls_dock.height() + dock.height()  # the two share it
        return min(panel.sizeHint().height() + 40, column - int(self.w.height() * 0.37))

    def training_width(self) -> int:
        """The training dock's first width: the left area's, plus what the centre cannot use
        (bands beside a square image), at least the form with 400 px of curves beside it, at
        most 60% of the window. A fixed 60% left a 1920 px window's image 360 px wide in a
        1100 px tall centre."""
        w = self.w
        panel = w.panels["training"]
        least = panel.form_widget.sizeHint().width() + 400
        width = w.explorer_dock.width() + w.map_frame.spare_width()
        return int(min(max(least, width), 0.6 * w.width()))

    def give_spare_width(self) -> None:
        """Widen the head/layer dock by the bands the first image leaves beside it (a square
        image in a wide centre), up to 40% of the window: the grid and its enlarged cell use
        them. Once, on a first start (no saved layout), when that image is shown."""
        w = self.w
        if not self._spare_pending or w.image_view.aspect() is None:
            return
        self._spare_pending = False
        spare = w.map_frame.spare_width()
        if spare > 8 and w.explorer_dock.isVisible() and not w.explorer_dock.isFloating():
            width = min(w.explorer_dock.width() + spare, int(0.4 * w.width()))
            w.resizeDocks([w.explorer_dock], [width], Qt.Orientation.Horizontal)

    def default_sizes(self) -> None:
        """Default proportions: the image gets the middle; explorer and controls the sides,
        and the explorer whatever width the image leaves unused."""
        w = self.w
        self._spare_pending = True  # once these sizes are laid out and the image is in
        QTimer.singleShot(0, self.give_spare_width)
        w.image_view.shapeChanged.connect(lambda: QTimer.singleShot(0, self.give_spare_width))
        horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        w.resizeDocks(
            [w.explorer_dock, w.controls_dock], [EXPLORER_WIDTH, CONTROLS_WIDTH], horizontal
        )
        w.resizeDocks(
            [w.controls_dock, w.predictions_dock],
            [max(1, w.height() - self.predictions_height()), self.predictions_height()],
            vertical,
        )
