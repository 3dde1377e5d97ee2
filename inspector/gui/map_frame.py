"""The centre of the window: the image view with its colour bar, the caption that names what the
map is, and a visible notice when the map is degenerate (all zero, constant, non-finite)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from inspector.core.colorscale import Scale
from inspector.core.saliency import MapSettings, registry

from .color_bar import ColorBar
from .image_view import ImageView

__all__ = ["MapFrame", "caption_text"]


def caption_text(m: MapSettings, target_name: str | None, predicted: bool) -> str:
    """``Attention rollout · fusion max · discard 0.90 · start layer 0 · target cat
    (predicted)``: the method's label and only the settings it reads."""
    info = registry.get(m.method)
    parts = [info.label]
    if m.uses("layer"):
        parts.append(f"layer {m.layer}")
    if m.uses("head"):
        parts.append("heads fused" if m.head is None else f"head {m.head}")
    if m.uses("fusion") and not (m.method == "attention" and m.head is not None):
        parts.append(f"fusion {m.fusion}")
    if m.uses("discard_ratio"):
        parts.append(f"discard {m.discard_ratio:.2f}")
    if m.uses("start_layer") and m.start_layer:
        parts.append(f"from layer {m.start_layer}")
    if m.uses("aggregation"):
        parts.append(f"aggregation {m.aggregation}")
    if info.needs_gradients:
        parts.append(f"{m.target} gradient")
    if target_name is not None:
        parts.append(f"target {target_name}" + (" (predicted)" if predicted else ""))
    return " · ".join(parts)


class MapFrame(QWidget):
    """Image view | colour bar, with the caption and the notice under them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image_view = ImageView()
        self.color_bar = ColorBar(Qt.Orientation.Vertical)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.notice.setStyleSheet(
            "QLabel { background: #5a3b00; color: #ffd27a; padding: 4px; border-radius: 3px; }"
        )
        self.notice.setVisible(False)
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 4, 2)
        lay.setHorizontalSpacing(6)
        lay.addWidget(self.notice, 0, 0, 1, 2)
        lay.addWidget(self.image_view, 1, 0)
        lay.addWidget(self.color_bar, 1, 1)
        lay.addWidget(self.caption, 2, 0, 1, 2)
        lay.setRowStretch(1, 1)
        lay.setColumnStretch(0, 1)

    def show_map(self, scale: Scale | None, colormap: str, caption: str, flags: list[str]) -> None:
        self.color_bar.set_scale(scale, colormap)
        self.color_bar.setVisible(scale is not None)
        self.caption.setText(caption)
        self.set_notice(flags)

    def set_notice(self, flags: list[str]) -> None:
        text = "; ".join(flags)
        self.notice.setText(f"⚠ {text}" if text else "")
        self.notice.setVisible(bool(text))

    def clear_map(self) -> None:
        self.show_map(None, self.color_bar.colormap, "", [])
