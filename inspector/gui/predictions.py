"""Top-k predictions with probabilities; choosing a row sets the target of class-specific maps."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["PredictionsPanel"]


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
        self.empty = QLabel("No prediction yet: open a checkpoint and an image.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: gray;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.empty)
        lay.addWidget(self.table)
        self.table.setVisible(False)
        self._classes: list[int] = []
        self._target: int | None = None
        self.table.cellClicked.connect(self._on_clicked)

    def set_predictions(
        self, top: list[tuple[int, float]], names: list[str], true_label: int | None = None
    ) -> None:
        """Show ``[(class_index, probability), ...]``, best first."""
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

    def clear(self, message: str = "No prediction yet: open a checkpoint and an image.") -> None:
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
