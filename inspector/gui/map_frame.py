"""The centre of the window: the image view with its colour bar, the caption that names what the
map is, and a visible notice when the map is degenerate (all zero, constant, non-finite)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QLabel, QWidget

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
    """The map as a figure: the image view sized to the image's aspect ratio, the colour bar
    against its right edge and as tall as it, the caption right under both, the block centred
    in the frame; the notice across the top when there is one.

    Not a grid layout: a layout cell stretches the view to the frame's aspect ratio, which left
    dark bands beside a square image (at 1920x1080) or above and below it (a narrow centre),
    and the colour bar far from the image it scales."""

    GAP = 6  # px between the view and the colour bar, and above the caption

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image_view = ImageView(self)
        self.color_bar = ColorBar(Qt.Orientation.Vertical, self)
        self.caption = QLabel("", self)
        self.caption.setWordWrap(True)
        self.notice = QLabel("", self)
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet(
            "QLabel { background: #5a3b00; color: #ffd27a; padding: 4px; border-radius: 3px; }"
        )
        self.notice.setVisible(False)
        self.color_bar.setVisible(False)
        self.image_view.shapeChanged.connect(self._relayout)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(640, 600)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        # The image is the point of the window: docks (or an old saved layout) never squeeze
        # it below 260 px, with the colour bar beside it and two caption lines under it.
        bar = self.color_bar.sizeHint().width() + self.GAP
        return QSize(260 + bar, 260 + 2 * self.fontMetrics().lineSpacing() + 12)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._relayout()

    def spare_width(self) -> int:
        """How much narrower the frame could be with the image as large as now: the width of
        the bands beside an image (a square one in a wide centre), 0 when the image is
        width-bound. The window gives it to the docks (``WindowLayout``)."""
        view, bar, _caption, _notice = self._geometry()
        used = view.width() + (bar.width() + self.GAP if not self.color_bar.isHidden() else 0)
        return max(0, self.width() - 4 - used)

    def _geometry(self) -> tuple[QRect, QRect, QRect, QRect]:
        """(view, colour bar, caption, notice) rectangles for the frame's current size."""
        width, height = self.width() - 4, self.height() - 2  # a little air at the right/bottom
        top = 0
        notice = QRect()
        if not self.notice.isHidden():
            notice = QRect(0, 0, width, self.notice.heightForWidth(width))
            top = notice.height() + self.GAP
        bar_w = self.color_bar.sizeHint().width() + self.GAP if not self.color_bar.isHidden() else 0
        aspect = self.image_view.aspect()  # width / height, None without an image

        def fit(caption_h: int) -> tuple[int, int]:
            free_w, free_h = max(1, width - bar_w), max(1, height - top - caption_h - self.GAP)
            if aspect is None:
                return free_w, free_h
            w = min(free_w, round(free_h * aspect))
            return w, min(free_h, round(w / aspect))

        caption_h = self._caption_height(width)
        view_w, view_h = fit(caption_h)
        if (narrower := self._caption_height(view_w + bar_w)) > caption_h:
            caption_h = narrower  # the caption wraps to more lines under a narrow image
            view_w, view_h = fit(caption_h)
        block_w, block_h = view_w + bar_w, view_h + self.GAP + caption_h
        x = (width - block_w) // 2
        y = top + max(0, (height - top - block_h) // 2)
        view = QRect(x, y, view_w, view_h)
        bar = QRect(x + view_w + self.GAP, y, max(0, bar_w - self.GAP), view_h)
        caption = QRect(x, y + view_h + self.GAP, block_w, caption_h)
        return view, bar, caption, notice

    def _caption_height(self, width: int) -> int:
        if not self.caption.text():
            return 0
        return self.caption.heightForWidth(max(1, width))

    def _relayout(self) -> None:
        view, bar, caption, notice = self._geometry()
        self.image_view.setGeometry(view)
        self.color_bar.setGeometry(bar)
        self.caption.setGeometry(caption)
        self.notice.setGeometry(notice)

    def show_map(self, scale: Scale | None, colormap: str, caption: str, flags: list[str]) -> None:
        self.color_bar.set_scale(scale, colormap)
        self.color_bar.setVisible(scale is not None)
        self.caption.setText(caption)
        self.set_notice(flags)  # lays out again

    def set_notice(self, flags: list[str]) -> None:
        text = "; ".join(flags)
        self.notice.setText(f"⚠ {text}" if text else "")
        self.notice.setVisible(bool(text))
        self._relayout()

    def clear_map(self) -> None:
        self.show_map(None, self.color_bar.colormap, "", [])
