"""The window's mask: files, the ``<stem>_mask.png`` beside an image, a dataset's box, and what
the masks panel paints; plus the image tools (query / brush / box).

The mask itself lives in the session (:class:`inspector.core.session.Session`, both
geometries); this controller decides which mask an image gets and keeps the masks panel, the
image view's outline and SMM in step with ``session.events.mask``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inspector.core.imageio import ImageReadError, read_mask

from .workers import user_message

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowMasks"]

TOOL_HINTS = {
    "query": "Query tool: click a patch to see its attention",
    "brush": "Brush: left drag paints the mask, right drag erases; SMM updates live",
    "box": "Box: drag a rectangle to use it as the mask",
}


class WindowMasks:
    """Mask choice and mask tools of one window (``window.masks``)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.session = window.session
        self.pending: Path | None = None  # a mask dropped with its image, used once it is in
        self._syncing = False  # the window is pushing its mask into the masks panel
        self.session.events.mask.connect(self._on_mask)

    def _panel(self):
        return self.w.panels.get("masks")

    # -- the session's mask changed ------------------------------------------------------------
    def _on_mask(self, mask: np.ndarray | None) -> None:
        """Outline, SMM of the map on screen (the map itself does not change), the masks
        panel, and the compare view (which follows the mask)."""
        self.w.image_view.set_mask(mask)
        self.w.render.show_smm(self.session.rescore())
        self.sync_panel()
        self.w.maskChanged.emit()
        self.w.views.schedule_explorer()

    # -- choosing a mask -----------------------------------------------------------------------
    def open_mask(self, path: str | Path) -> bool:
        path = Path(path)
        try:
            mask = read_mask(path)
        except (ImageReadError, OSError, ValueError) as exc:
            self.w.show_error(f"Cannot open mask {path.name}: {user_message(exc)}")
            return False
        if not self._use(mask, path):
            return False
        self.w.remember(path)
        self.w.statusBar().showMessage(f"Mask {path.name}: {int(mask.sum())} object pixels", 5000)
        return True

    def set_mask_array(self, mask: np.ndarray | None) -> bool:
        if mask is None:
            self.session.clear_mask()
            return True
        return self._use(np.asarray(mask, dtype=bool), None)

    def _use(self, mask: np.ndarray, path: Path | None, quiet: bool = False) -> bool:
        why = self.session.set_mask(mask, path)
        if why is not None:
            if not quiet:
                self.w.show_error(why)
            return False
        self.w.schedule_refresh()
        return True

    def image_changed(self, path: Path, new_image: bool) -> None:
        """An image came in: a new one gets its own mask, the same one (through another model)
        keeps the user's mask, re-aligned to the new geometry."""
        if new_image:
            self._mask_for_new_image(path)
        elif self.pending is not None:
            # The open image dropped again with a mask: that mask replaces the old one (or
            # open_mask says why it cannot).
            pending, self.pending = self.pending, None
            self.session.realign_mask()
            self.open_mask(pending)
        else:
            self.session.realign_mask()
            panel, image = self._panel(), self.session.image
            shown = None if panel is None or image is None else panel.image_size()
            if shown is not None and shown != image.display.shape[:2]:
                self._give_panel_image()  # another size or crop: paint on the new display

    def _mask_for_new_image(self, path: Path) -> None:
        """A new image drops the old mask; a dropped mask, a ``<stem>_mask.png`` beside it, or
        the dataset's box is used."""
        pending, self.pending = self.pending, None
        self.session.clear_mask()
        candidates = [pending] if pending else []
        candidates += [path.with_name(f"{path.stem}_mask{s}") for s in (".png", path.suffix)]
        for cand in candidates:
            if cand is not None and cand.is_file():
                try:
                    mask = read_mask(cand)
                except (ImageReadError, OSError, ValueError) as exc:
                    if cand is pending:
                        self.w.show_error(f"Cannot open mask {cand.name}: {user_message(exc)}")
                    continue
                # Not quiet: a dropped mask, or a <stem>_mask.png, of another size is said
                # to be unused instead of vanishing.
                if self._use(mask, cand):
                    break
        truth = self.session.ground_truth
        if self.session.mask_original is None and truth is not None and truth.image == path:
            self._use(truth.mask, None, quiet=True)  # the dataset's box
        self._give_panel_image()

    # -- the masks panel ----------------------------------------------------------------------
    def _give_panel_image(self) -> None:
        panel, image = self._panel(), self.session.image
        if panel is not None and image is not None:
            try:
                panel.set_image(image.display, self.session.mask)
            except Exception as exc:  # noqa: BLE001 - another panel must not break ours
                self.w.show_error(f"Masks panel: {user_message(exc)}")

    def on_panel_mask(self, mask: object) -> None:
        """A mask from the masks panel (brush, box, file, Mask R-CNN), in display geometry
        (S, S), or None. Only the outline and the metrics change: the map is not recomputed."""
        if self._syncing:
            return  # our own mask echoed back
        s = self.session
        if mask is None:
            if s.mask is not None:
                s.clear_mask()
            return
        m = np.asarray(mask, dtype=bool)
        if s.mask is not None and m.shape == s.mask.shape and np.array_equal(m, s.mask):
            return
        if s.image is not None and m.shape == s.image.display.shape[:2]:
            s.set_display_mask(m)
        else:
            self.set_mask_array(m)

    def sync_panel(self) -> None:
        """Show the window's mask (a file, the one beside the image) in the masks panel, so
        that painting starts from it."""
        panel, image = self._panel(), self.session.image
        if panel is None or self._syncing or image is None:
            return
        if panel.image_size() != image.display.shape[:2]:
            return  # the panel gets this image (and mask) from _give_panel_image
        current, m = panel.mask(), self.session.mask
        if (current is None and m is None) or (
            current is not None and m is not None and np.array_equal(current, m)
        ):
            return
        self._syncing = True
        try:
            path = self.session.mask_path
            panel.set_mask(m, f"file {path.name}" if path else "window")
        finally:
            self._syncing = False

    # -- tools --------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        self.w.image_view.set_tool(tool)
        for key, act in self.w.tool_actions.items():
            if act.isChecked() != (key == tool):
                act.setChecked(key == tool)
        panel = self._panel()
        if panel is not None and panel.tool() != tool:
            panel.set_tool(tool)
        if tool != "query" and "masks" in self.w.extra_docks:
            self.w.extra_docks["masks"].show()
            self.w.extra_docks["masks"].raise_()  # the metrics are what a painter watches
        self.w.views.update_query_box()
        self.w.statusBar().showMessage(TOOL_HINTS[tool], 5000)

    def on_brushed(self, points: object, erase: bool) -> None:
        panel = self._panel()
        if panel is None or self.session.image is None:
            self.w.show_error("Open a checkpoint and an image before painting a mask")
            return
        panel.paint_points(points, erase=erase)

    def on_box_drawn(self, x0: int, y0: int, x1: int, y1: int) -> None:
        panel = self._panel()
        if panel is None or self.session.image is None:
            self.w.show_error("Open a checkpoint and an image before drawing a mask")
            return
        panel.set_box(x0, y0, x1, y1)

    def on_image_clicked(self, x: int, y: int) -> None:
        """Clicking a patch makes it the query token (method ``attention`` if needed)."""
        patch = self.session.patch_at(x, y)
        if patch is None:
            return
        r, c, q = patch
        if not self.w.controls.settings().map.uses("query"):  # e.g. last-layer CLS attention
            self.w.controls.set_method("attention")
        self.w.controls.set_query(q)
        self.w.statusBar().showMessage(
            f"Query: patch ({r}, {c}), token {q}. Esc: class token", 5000
        )
