"""Widgets of the ablation-study job in the training panel: its settings and its results table.

``StudyBox`` holds what only a study needs (which of the paper's 14 models, how many seeds, how
many parallel jobs); the epochs, data, device, double softmax and output folder come from the
training panel's form. ``StudyTable`` shows the report's rows (mean ± std over seeds) with the
paper's value under each cell for the models the paper reports.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from inspector.core.config import PRESETS
from inspector.core.study import COLUMNS, PAPER_RESULTS, format_cell


class StudyBox(QGroupBox):
    """Settings of the study job and its Run button (the panel connects ``run_button``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Ablation study (the paper's 14 models)", parent)
        form = QFormLayout(self)
        self.models_list = QListWidget()
        self.models_list.setToolTip(
            "Models to train: the baseline and its one-change variants (MISSION.md section 1)"
        )
        for name in PRESETS:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.models_list.addItem(item)
        self.models_list.setMaximumHeight(110)
        form.addRow("Models", self.models_list)
        self.seeds_spin = QSpinBox()
        self.seeds_spin.setRange(1, 100)
        self.seeds_spin.setToolTip("Training seeds 0..N-1; every cell becomes mean ± std")
        form.addRow("Seeds", self.seeds_spin)
        self.jobs_spin = QSpinBox()
        self.jobs_spin.setRange(1, max(1, os.cpu_count() or 1) * 2)
        self.jobs_spin.setValue(min(2, os.cpu_count() or 1))
        self.jobs_spin.setToolTip("Models trained at once, each in its own process")
        form.addRow("Parallel jobs", self.jobs_spin)
        self.run_button = QPushButton("Run Study")
        self.run_button.setToolTip(
            "Train, evaluate and report every checked model with the paper's hyper-parameters "
            "(epochs, data, device, double softmax and output folder from the form above). "
            "Running it again on the same output folder resumes and reuses finished models."
        )
        form.addRow(self.run_button)

    def presets(self) -> list[str]:
        return [
            self.models_list.item(i).text()
            for i in range(self.models_list.count())
            if self.models_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_presets(self, names: list[str]) -> None:
        for i in range(self.models_list.count()):
            item = self.models_list.item(i)
            item.setCheckState(
                Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked
            )

    def set_enabled_for(self, running: bool) -> None:
        for w in (self.models_list, self.seeds_spin, self.jobs_spin, self.run_button):
            w.setEnabled(not running)


class StudyTable(QTableWidget):
    """The study's results: one row per model, the paper's columns; tooltips carry the
    paper's numbers (Tiny ImageNet) and any run notes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS) + 2, parent)
        self.setHorizontalHeaderLabels(["model", "seeds", *[title for _, title in COLUMNS]])
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)

    def show_rows(self, rows: list[dict[str, Any]]) -> None:
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            paper = PAPER_RESULTS.get(row["model"])
            cells = [row["model"], str(row["seeds"])]
            cells += [format_cell(row[key]) for key, _ in COLUMNS]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 2 and paper is not None:
                    item.setToolTip(f"paper: {paper[c - 2]:.3f}")
                elif c == 0 and row.get("notes"):
                    item.setToolTip(row["notes"])
                self.setItem(r, c, item)
        self.resizeColumnsToContents()

    def cell_text(self, row: int, column: str) -> str:
        """The text shown for ``column`` (a title: ``model``, ``test acc``, ``SMM``...)."""
        titles = [self.horizontalHeaderItem(c).text() for c in range(self.columnCount())]
        return self.item(row, titles.index(column)).text()
