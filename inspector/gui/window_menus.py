"""The window's menus, tool bar, file dialogs and recent files.

Every action calls the window's public API (the same calls the tests and scripts make), so a
shortcut and a drop reach the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QToolBar

from inspector.core.imageio import IMAGE_SUFFIXES
from inspector.core.load_options import LoadOptions
from inspector.core.saliency import registry

from . import settings_store
from .load_dialog import LoadOptionsDialog

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowMenus"]

MAX_RECENT = 10
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.bin *.safetensors *.ckpt);;All files (*)"


class WindowMenus:
    """Menus, tool bar and file dialogs of one window (``window.menus``)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window

    def build_menus(self) -> None:
        mb = self.w.menuBar()
        file_menu = mb.addMenu("&File")
        self.action(
            file_menu,
            "Open &Image…",
            QKeySequence.StandardKey.Open,
            self.open_image_dialog,
            "Open an image (PNG, JPEG, BMP, WebP, TIFF)",
        )
        self.action(
            file_menu,
            "Open &Checkpoint…",
            "Ctrl+Shift+O",
            self.open_checkpoint_dialog,
            "Open a checkpoint (ours, timm, torchvision, Hugging Face, the paper's)",
        )
        self.action(
            file_menu,
            "Open &Mask…",
            "Ctrl+M",
            self.open_mask_dialog,
            "Open a mask image for SMM (non-zero = object)",
        )
        self.action(
            file_menu,
            "Open &Folder…",
            "Ctrl+Shift+F",
            self.open_folder_dialog,
            "Browse a folder of images (arrow keys move through it)",
        )
        self.action(
            file_menu,
            "Open Checkpoint with &Options…",
            None,
            self.open_checkpoint_options_dialog,
            "Open a checkpoint and say what its file cannot tell: heads, class names, "
            "normalisation, resize policy, input size",
        )
        self.w.recent_menu = file_menu.addMenu("Open &Recent")
        self.rebuild_recent_menu()
        file_menu.addSeparator()
        self.action(
            file_menu,
            "&Save Model As…",
            "Ctrl+Shift+S",
            self.save_model_dialog,
            "Save the open model in ViT Inspector's format, with its class names, "
            "preprocessing and where it came from",
        )
        self.action(
            file_menu,
            "&Export Overlay…",
            "Ctrl+E",
            self.w.exports.overlay_dialog,
            "Save the overlay PNG (settings in its metadata) and the raw map .npy",
        )
        self.action(
            file_menu,
            "Export &Grid…",
            "Ctrl+Shift+E",
            self.w.exports.grid_dialog,
            "Save the head/layer grid as PNG",
        )
        self.action(
            file_menu,
            "&Batch Export Folder…",
            "Ctrl+Alt+E",
            self.w.exports.batch_dialog,
            "Export every image of the open folder (overlay PNG + .npy) with the current settings",
        )
        file_menu.addSeparator()
        self.action(
            file_menu,
            "Com&pare Checkpoints…",
            "Ctrl+Shift+C",
            self.w.wiring.compare_dialog,
            "Show several checkpoints side by side on this image and settings",
        )
        self.action(
            file_menu,
            "Compare the Study's &Models (Tiny ImageNet-10)",
            None,
            self.w.wiring.compare_study_models,
            "The paper's 14 models as trained by our reproduction "
            "(checkpoints/tiny-imagenet-10), side by side on this image",
        )
        self.action(
            file_menu,
            "&Sanity Check (Cascading Randomisation)…",
            "Ctrl+Alt+S",
            self.w.wiring.sanity_dialog,
            "Re-initialise the layers from the top and watch this image's map degrade "
            "(Adebayo et al. 2018)",
        )
        file_menu.addSeparator()
        self.action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.w.close)

        view = mb.addMenu("&View")
        self.action(
            view,
            "Toggle &Overlay",
            "O",
            lambda: self.w.controls.show_overlay.toggle(),
            "Show or hide the overlay",
        )
        self.action(view, "&Fit Image", "F", self.w.image_view.fit)
        self.action(view, "Query: &Class Token", "Esc", lambda: self.w.controls.set_query(0))
        self.action(view, "Discard −0.05", "[", lambda: self.w.controls.step_discard(-5))
        self.action(view, "Discard +0.05", "]", lambda: self.w.controls.step_discard(5))
        self.action(view, "Previous Image", "PgUp", lambda: self.w.strip.step(-1))
        self.action(view, "Next Image", "PgDown", lambda: self.w.strip.step(+1))
        view.addSeparator()
        self.w.method_menu = methods = view.addMenu("&Method")
        self.w.method_actions: dict[str, QAction] = {}
        for i, info in enumerate(registry.methods()):
            # triggered(bool) fills the first parameter: the name must not be that parameter.
            self.w.method_actions[info.name] = self.action(
                methods,
                info.label,
                f"Ctrl+{i + 1}" if i < 9 else None,
                lambda _checked=False, m=info.name: self.w.controls.set_method(m),
                info.description,
            )
        view.addSeparator()
        panels = view.addMenu("&Panels")
        for dock in (
            self.w.controls_dock,
            self.w.predictions_dock,
            self.w.explorer_dock,
            *self.w.extra_docks.values(),
        ):
            panels.addAction(dock.toggleViewAction())

        help_menu = mb.addMenu("&Help")
        self.action(help_menu, "&About", None, self.about)

    def build_toolbar(self) -> None:
        """The image tools (query / brush / box) and the eraser, also in the masks panel."""
        bar = QToolBar("Tools", self.w)
        bar.setObjectName("toolbar-tools")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.w.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        group = QActionGroup(self.w)
        group.setExclusive(True)
        self.w.tool_actions: dict[str, QAction] = {}
        for key, text, shortcut, tip in (
            ("query", "Query", "Q", "Click a patch to see its attention (Q)"),
            ("brush", "Brush", "B", "Paint the mask: left drag paints, right drag erases (B)"),
            ("box", "Box", "X", "Drag a rectangle as the mask (X)"),
        ):
            act = QAction(text, self.w)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(shortcut))
            act.setToolTip(tip)
            act.setStatusTip(tip)
            act.triggered.connect(lambda _=False, k=key: self.w.set_tool(k))
            group.addAction(act)
            bar.addAction(act)
            self.w.tool_actions[key] = act
        self.w.tool_actions["query"].setChecked(True)
        bar.addSeparator()
        self.w.erase_action = QAction("Erase", self.w)
        self.w.erase_action.setCheckable(True)
        self.w.erase_action.setShortcut(QKeySequence("E"))
        self.w.erase_action.setToolTip("Brush removes pixels from the mask (E)")
        bar.addAction(self.w.erase_action)
        panel = self.w.panels.get("masks")
        if panel is not None and hasattr(panel, "erase_button"):
            self.w.erase_action.toggled.connect(panel.erase_button.setChecked)
            panel.erase_button.toggled.connect(self.w.erase_action.setChecked)
        else:
            self.w.erase_action.setEnabled(False)
        bar.addSeparator()
        fit = QAction("Fit", self.w)
        fit.setToolTip("Fit the image in the view (F)")
        fit.triggered.connect(self.w.image_view.fit)
        bar.addAction(fit)

    def action(self, menu, text: str, shortcut, slot, tip: str = "") -> QAction:
        act = QAction(text, self.w)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        act.triggered.connect(slot)
        menu.addAction(act)
        self.w.addAction(act)
        return act

    def about(self) -> None:
        QMessageBox.about(
            self.w,
            "ViT Inspector",
            "<b>ViT Inspector</b><br>Attention rollout, gradient rollout, relevance "
            "and last-layer CLS attention for Vision Transformers, with SMM.",
        )

    def open_image_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(
            self.w, "Open image", self.last_folder(), f"Images ({pattern});;All files (*)"
        )
        if path:
            self.w.open_paths([path])

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.w,
            "Open checkpoint",
            self.last_folder(),
            CHECKPOINT_FILTER,
        )
        if path:
            self.w.open_checkpoint(path)

    def open_checkpoint_options_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.w,
            "Open checkpoint with options",
            self.last_folder(),
            CHECKPOINT_FILTER,
        )
        if not path:
            return
        options = self.ask_load_options(Path(path), None)
        if options is not None:
            self.w.open_checkpoint(path, options)

    def ask_load_options(
        self, path: Path, initial: LoadOptions | None, reason: str = ""
    ) -> LoadOptions | None:
        """The load dialog for ``path``, pre-filled with ``initial``; None when cancelled."""
        return LoadOptionsDialog.ask(self.w, path=path, initial=initial, reason=reason)

    def save_model_dialog(self) -> None:
        if self.w.session.model is None:
            self.w.show_error("Nothing to save: open a checkpoint first")
            return
        stem = self.w.session.model.path.stem if self.w.session.model.path else "model"
        start = str(Path(self.last_folder()) / f"{stem}_inspector.pt")
        # Qt's save dialog asks before replacing an existing file: a yes is the overwrite.
        path, _ = QFileDialog.getSaveFileName(
            self.w, "Save model as", start, "ViT Inspector checkpoints (*.pt);;All files (*)"
        )
        if not path:
            return
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".pt")  # a new name: not confirmed, so never replaced
            self.w.save_model_as(target, overwrite=False)
        else:
            self.w.save_model_as(target, overwrite=True)

    def open_mask_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(
            self.w, "Open mask", self.last_folder(), f"Mask images ({pattern})"
        )
        if path:
            self.w.open_mask(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self.w, "Open folder", self.last_folder())
        if path:
            self.w.open_folder(path)

    def last_folder(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.cwd())

    def recent_files(self) -> list[str]:
        value = settings_store.store().value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def remember(self, path: Path) -> None:
        p = str(Path(path).resolve())
        recent = [r for r in self.recent_files() if r != p]
        settings_store.store().setValue("recent", [p, *recent][:MAX_RECENT])
        self.rebuild_recent_menu()

    def rebuild_recent_menu(self) -> None:
        self.w.recent_menu.clear()
        recent = self.recent_files()
        for p in recent:
            act = self.w.recent_menu.addAction(Path(p).name)
            act.setToolTip(p)
            act.setStatusTip(p)
            act.triggered.connect(lambda _=False, p=p: self.w.open_paths([p]))
        self.w.recent_menu.setEnabled(bool(recent))
