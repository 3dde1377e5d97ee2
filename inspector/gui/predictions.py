"""Top-k predictions with probabilities; choosing a row (or any class in the list under the
table) sets the target of class-specific maps; the true class, when the image's dataset gives
one, is marked with a check and named with its probability."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["PREDICTIONS_SHOWN", "PredictionsPanel"]

# Rows of the table: every class of a 10-class model, the top 10 of ImageNet's 1000; the dock
# shows the first five at any window size (the rest scroll at 1280 x 720).
PREDICTIONS_SHOWN = 10


class PredictionsPanel(QWidget):
    """A table of the ``k`` most probable classes.

    Signals:
        classChosen(int): class index the user picked as the target (-1 = the predicted one).
    """

    classChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["#", "Class", "Probability"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(2, 110)
        self.table.setToolTip(
            "Click a class to make it the target of gradient rollout and "
            "relevance; click it again to go back to the predicted class"
        )
        # Any class as the target, not only the top k.
        self.any_class = QComboBox()
        self.any_class.setToolTip("Target any class of the model (gradient methods)")
        self.any_class.addItem("Target: the predicted class")
        self.any_class.activated.connect(self._on_any_class)
        self.truth = QLabel("")
        self.truth.setWordWrap(True)
        self.empty = QLabel("No prediction yet: open a checkpoint and an image.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: gray;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.empty)
        lay.addWidget(self.table)
        lay.addWidget(self.any_class)
        lay.addWidget(self.truth)
        self.table.setVisible(False)
        self.truth.setVisible(False)
        self._classes: list[int] = []
        self._target: int | None = None
        self.table.cellClicked.connect(self._on_clicked)

    def set_predictions(
        self,
        top: list[tuple[int, float]],
        names: list[str],
        true_label: int | None = None,
        true_probability: float | None = None,
    ) -> None:
        """Show ``[(class_index, probability), ...]``, best first; mark ``true_label``."""
        self._set_class_list(names, true_label)
        if true_label is not None and 0 <= true_label < len(names):
            p = "" if true_probability is None else f" · p = {true_probability * 100:.1f}%"
            self.truth.setText(f"True class: {names[true_label]} ✓{p}")
            self.truth.setVisible(True)
        else:
            self.truth.setText("")
            self.truth.setVisible(False)
        self._classes = [c for c, _ in top]
        self._target = None
        self.table.setRowCount(len(top))
        for row, (c, p) in enumerate(top):
            name = names[c] if 0 <= c < len(names) else str(c)
            rank = QTableWidgetItem(str(row + 1))
            rank.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            label = QTableWidgetItem(f"{name}" + ("  ✓" if c == true_label else ""))
            label.setToolTip(f"class {c}: {name}")
            self.table.setItem(row, 0, rank)
            self.table.setItem(row, 1, label)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            finite = math.isfinite(p)  # a broken model can give NaN: show it, do not crash
            bar.setValue(round(p * 1000) if finite else 0)
            bar.setFormat(f"{p * 100:.1f}%" if finite else "n/a")
            bar.setTextVisible(True)
            self.table.setCellWidget(row, 2, bar)
        self.table.clearSelection()
        self.table.setVisible(bool(top))
        self.empty.setVisible(not top)

    def rows_height(self, rows: int = 5) -> int:
        """The panel's height that shows ``rows`` rows of the table (header, class chooser and
        margins included): what the window gives it by default."""
        table = self.table
        row = table.verticalHeader().defaultSectionSize()
        header = table.horizontalHeader().sizeHint().height()
        frame = 2 * table.frameWidth()
        margins = self.layout().contentsMargins()
        spacing = self.layout().spacing()
        extra = margins.top() + margins.bottom() + 2 * spacing + self.any_class.sizeHint().height()
        if self.truth.isVisibleTo(self):  # "True class: ..." under the chooser
            extra += self.truth.sizeHint().height() + spacing
        return header + rows * row + frame + extra + 2

    def clear(self, message: str = "No prediction yet: open a checkpoint and an image.") -> None:
        self.truth.setVisible(False)
        self.table.setRowCount(0)
        self._classes = []
        self.table.setVisible(False)
        self.empty.setText(message)
        self.empty.setVisible(True)

    def classes(self) -> list[int]:
        return list(self._classes)

    def select_row(self, row: int) -> None:
        """Pick row ``row`` as target, as a click would."""
        self._on_clicked(row, 1)

    def _on_clicked(self, row: int, _column: int) -> None:
        if not 0 <= row < len(self._classes):
            return
        c = self._classes[row]
        if self._target == c or row == 0:
            # Clicking the chosen class again (or the top one) goes back to "predicted".
            self._target = None
            self.table.clearSelection()
            self.classChosen.emit(-1)
            return
        self._target = c
        self.table.selectRow(row)
        self.classChosen.emit(c)

    def _set_class_list(self, names: list[str], true_label: int | None) -> None:
        items = [f"{i}: {n}" + ("  ✓ true" if i == true_label else "") for i, n in enumerate(names)]
        current = [self.any_class.itemText(i + 1) for i in range(self.any_class.count() - 1)]
        if items != current:
            self.any_class.blockSignals(True)
            while self.any_class.count() > 1:
                self.any_class.removeItem(1)
            self.any_class.addItems(items)
            self.any_class.blockSignals(False)
        self.any_class.setCurrentIndex(0)

    def choose_class(self, c: int) -> None:
        """Pick class ``c`` (any of the model's) as the target, as choosing it in the list
        would (-1: the predicted class)."""
        self.any_class.setCurrentIndex(c + 1)
        self._on_any_class(c + 1)

    def _on_any_class(self, index: int) -> None:
        c = index - 1
        self._target = c if c >= 0 else None
        self.table.clearSelection()
        if c in self._classes:
            self.table.selectRow(self._classes.index(c))
        self.classChosen.emit(c)
