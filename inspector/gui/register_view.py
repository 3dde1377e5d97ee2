"""The token panel beside the head/layer grid: register tokens' attention, and the high-norm
outlier tokens of the artefact view (Darcet et al. 2024).

It only draws what the core computed: :func:`inspector.core.registers.register_attention`
(each register's attention row over the patch grid, heads averaged, and the share the output
row puts on it) and :func:`inspector.core.saliency.token_norm.capture_outliers` (patch tokens
with a robust z-score above 5). Clicking an outlier makes it the query token of the maps.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.core.postprocess import colorize
from inspector.core.registers import RegisterAttention

__all__ = ["TokensPanel"]

THUMB = 96  # thumbnail side in pixels
PER_ROW = 4


def _pixmap(values: np.ndarray, colormap: str) -> QPixmap:
    """``(rows, cols)`` values -> a nearest-neighbour thumbnail, each map scaled to its max."""
    top = float(values.max()) if values.size else 0.0
    rgba = colorize(values / top if top > 0 else np.zeros_like(values), colormap)
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    img = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    return QPixmap.fromImage(img).scaled(
        THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class TokensPanel(QWidget):
    """Registers' attention thumbnails and the outlier list.

    Signals:
        tokenChosen(int): an outlier was activated; its token index.

    Attributes (what is on screen, for tests and exports): ``registers`` the last
    :class:`RegisterAttention` shown (None: none), ``outliers`` the last report's entries.
    """

    tokenChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registers: RegisterAttention | None = None
        self.outliers: list[dict] = []
        self.register_title = QLabel("Register tokens")
        self.register_title.setWordWrap(True)
        self._thumbs = QWidget()
        self._thumb_grid = QGridLayout(self._thumbs)
        self._thumb_grid.setContentsMargins(0, 0, 0, 0)
        self.thumb_labels: list[QLabel] = []
        self.outlier_title = QLabel("High-norm tokens")
        self.outlier_title.setWordWrap(True)
        self.outlier_list = QListWidget()
        self.outlier_list.setToolTip(
            "Patch tokens whose output norm is an outlier in this layer (robust z > 5): the "
            "artefacts registers absorb. Double-click or Enter: use as the query token."
        )
        self.outlier_list.itemActivated.connect(self._on_activated)
        layout = QVBoxLayout(self)
        layout.addWidget(self.register_title)
        layout.addWidget(self._thumbs)
        layout.addWidget(self.outlier_title)
        layout.addWidget(self.outlier_list, 1)
        self.clear()

    def clear(self) -> None:
        self.set_registers(None)
        self.set_outliers(None)

    def set_registers(self, data: RegisterAttention | None, colormap: str = "viridis") -> None:
        """Show each register's attention over the patches (None or no registers: a note)."""
        self.registers = data
        for lab in self.thumb_labels:
            self._thumb_grid.removeWidget(lab)
            lab.deleteLater()
        self.thumb_labels = []
        if data is None or not data.tokens:
            self.register_title.setText("Register tokens: none in this model")
            return
        self.register_title.setText(
            f"Register tokens, layer {data.layer}: each register's attention over the "
            f"patches (heads {data.fusion}); 'out' = attention the output puts on it"
        )
        for r, token in enumerate(data.tokens):
            pix = QLabel()
            pix.setPixmap(_pixmap(data.maps[r], colormap))
            out = data.from_output[r]
            out_text = "n/a" if not np.isfinite(out) else f"{out:.3f}"
            pix.setToolTip(
                f"register {r} (token {token}): {data.to_patches[r]:.3f} of its attention on "
                f"patches; output attention on it {out_text}"
            )
            cap = QLabel(f"reg {r} · out {out_text}")
            box = QWidget()
            v = QVBoxLayout(box)
            v.setContentsMargins(0, 0, 0, 0)
            v.addWidget(pix)
            v.addWidget(cap)
            self._thumb_grid.addWidget(box, r // PER_ROW, r % PER_ROW)
            self.thumb_labels.append(box)

    def set_outliers(self, report: dict | None, reason: str = "") -> None:
        """Show an outlier report (:func:`capture_outliers`); None: ``reason`` instead."""
        self.outlier_list.clear()
        self.outliers = [] if report is None else list(report["outliers"])
        if report is None:
            self.outlier_title.setText(f"High-norm tokens: {reason or 'no capture'}")
            return
        n = len(self.outliers)
        self.outlier_title.setText(
            f"High-norm tokens, layer {report['layer']}: {n} outlier{'s' if n != 1 else ''} "
            f"(patch median {report['patch_norm_median']:.3g})"
        )
        for o in self.outliers:
            item = QListWidgetItem(
                f"patch ({o['row']}, {o['col']}) · token {o['token']} · norm {o['norm']:.3g} "
                f"· z {o['z']:.1f}"
            )
            item.setData(Qt.ItemDataRole.UserRole, int(o["token"]))
            self.outlier_list.addItem(item)

    def _on_activated(self, item: QListWidgetItem) -> None:
        self.tokenChosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))
