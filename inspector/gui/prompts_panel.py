"""Text prompts for CLIP / SigLIP models: a prompt field and a prompt list.

With prompts, the window inspects the model through :func:`inspector.core.prompts.with_prompts`
(the same prompted adapter as ``vit-inspector explain --prompt``): its classes are the prompts,
so the predictions panel shows the zero-shot top-5 and the map of the prompt chosen here is
that prompt's image-text similarity map. Enter adds the typed prompt; Delete removes the
selected one; choosing one makes it the map's target.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from inspector.core.prompts import PromptedAdapter, with_prompts

__all__ = ["PromptsController", "PromptsPanel"]

MAX_PROMPTS = 64  # one gradient pass per prompt shown: a list, not a vocabulary


class PromptsPanel(QWidget):
    """Signals:
    promptsChanged(list): the prompts, in order (empty: back to the model's own outputs).
    promptChosen(int): the index of the prompt to map (-1: the best-scoring one).
    """

    promptsChanged = Signal(list)
    promptChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("a photo of a goldfish   (Enter adds)")
        self.edit.returnPressed.connect(self.add_typed)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_typed)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.add_button)
        self.list = QListWidget()
        self.list.setToolTip("Choose a prompt to map its similarity; Delete removes it")
        self.list.currentRowChanged.connect(self._on_row)
        self.clear_button = QPushButton("Clear prompts")
        self.clear_button.clicked.connect(self.clear_prompts)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addLayout(row)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.clear_button)
        self.set_available(False, "Open a CLIP or SigLIP model with a text tower for prompts.")

    # -- state -------------------------------------------------------------------------------
    def prompts(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def set_available(self, available: bool, reason: str = "") -> None:
        """Enable the field for a model with a text tower; otherwise say why not."""
        for w in (self.edit, self.add_button, self.list, self.clear_button):
            w.setEnabled(available)
        self.note.setText(
            "Target = the image-text similarity of the chosen prompt; the predictions show "
            "the zero-shot top-5 over the prompts."
            if available
            else reason
        )

    # -- user actions ------------------------------------------------------------------------
    def add_typed(self) -> None:
        text = " ".join(self.edit.text().split())
        if not text:
            return
        if text in self.prompts():
            self.note.setText(f"{text!r} is already in the list")
            return
        if self.list.count() >= MAX_PROMPTS:
            self.note.setText(f"At most {MAX_PROMPTS} prompts")
            return
        self.list.addItem(text)
        self.edit.clear()
        self.promptsChanged.emit(self.prompts())
        self.list.blockSignals(True)
        self.list.setCurrentRow(self.list.count() - 1)
        self.list.blockSignals(False)

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        self.list.takeItem(row)
        self.promptsChanged.emit(self.prompts())

    def clear_prompts(self) -> None:
        if self.list.count():
            self.list.clear()
            self.promptsChanged.emit([])

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.list.hasFocus():
            self.remove_selected()
            return
        super().keyPressEvent(event)

    def _on_row(self, row: int) -> None:
        self.promptChosen.emit(row)


class PromptsController(QObject):
    """Wires a :class:`PromptsPanel` to the main window (kept here, so that the window only
    creates it): the text embedding runs on the window's worker thread; the prompted model
    is put in place with ``window.use_model`` (the image is captured again with it); the
    chosen prompt becomes the target after every capture.

    Attributes:
        base: the model as opened (without prompts), or None.
    """

    def __init__(self, window: Any, panel: PromptsPanel) -> None:
        super().__init__(panel)
        self.window, self.panel = window, panel
        self.base: Any = None
        self._rid: int | None = None
        panel.promptsChanged.connect(self.apply)
        panel.promptChosen.connect(lambda _k: self._choose())
        window.modelLoaded.connect(lambda _p: self._on_model())
        window.captureReady.connect(self._choose)
        window.runner.finished.connect(self._on_finished)
        window.runner.failed.connect(self._on_failed)

    def _on_model(self) -> None:
        loaded = self.window.loaded
        if loaded is None or isinstance(loaded.model, PromptedAdapter):
            return  # our own prompted view of the base model
        self.base = loaded
        has_text = getattr(loaded.checkpoint, "text", None) is not None
        self.panel.set_available(
            has_text,
            "This model has no text tower: prompts need OpenCLIP (open with the architecture "
            "open_clip:NAME) or a Hugging Face CLIPModel / SiglipModel folder with its tokenizer.",
        )
        if has_text and self.panel.prompts():
            self.apply(self.panel.prompts())  # the list carries over to the new model

    def apply(self, prompts: list) -> None:
        """Inspect through these prompts (none: the base model again)."""
        base = self.base
        if base is None:
            return
        if not prompts:
            self._rid = None
            if self.window.loaded is not base:
                self.window.use_model(base)
            return
        prompts = list(prompts)
        self.window.statusBar().showMessage(f"Embedding {len(prompts)} prompt(s)…")
        self._rid = self.window.runner.submit(
            lambda: (base, with_prompts(base, prompts)), channel="prompts"
        )

    def _on_finished(self, rid: int, result: object) -> None:
        if rid != self._rid:
            return
        self._rid = None
        base, prompted = result  # type: ignore[misc]
        # A checkpoint the user opened meanwhile wins: use_model would make its load stale.
        loading = self.window.jobs.loading_model()
        if base is self.base and prompted.class_names == self.panel.prompts() and not loading:
            self.window.use_model(prompted)

    def _on_failed(self, rid: int, message: str) -> None:
        if rid == self._rid:
            self._rid = None
            self.window.show_error(f"Cannot use the prompts: {message}")

    def _choose(self) -> None:
        """The chosen prompt is the map's target (none chosen: the best-scoring one)."""
        loaded = self.window.loaded
        if loaded is None or not isinstance(loaded.model, PromptedAdapter):
            return
        k = self.panel.list.currentRow()
        if 0 <= k < len(loaded.class_names):
            self.window.controls.set_class_index(k, loaded.class_names[k])
        else:
            self.window.controls.set_class_index(None)
