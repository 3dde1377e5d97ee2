"""The inspection session: what one window inspects (model, image, settings, mask, target and
the last result), Qt-free, in napari's style (docs/ARCHITECTURE.md section 2).

Widgets do not keep their own copies of this state: they change the session and subscribe to
its events (``session.events.<field>.connect(callback)``; psygnal's evented dataclass emits when
a field is assigned a value that differs from the old one). The window's controllers run the
heavy work (loading, capture, gradients) on worker threads and assign the results here on the
GUI thread, so every callback runs on the GUI thread, in the order the fields are assigned.

The mask lives in two geometries:

* ``mask_original`` ``(H, W)`` bool: the original image's, what a file or a dataset box gives
  and what outlives a model change;
* ``mask`` ``(S, S)`` bool: the model's display geometry (resize + crop), what SMM scores and
  the view outlines, re-aligned from ``mask_original`` whenever the preprocessing changes. A mask
  painted on the display is shown exactly as drawn while the preprocessing it was drawn for is
  the model's (``painted``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import evented

from inspector.core.capture import Capture
from inspector.core.data.errors import DatasetError
from inspector.core.data.ground_truth import image_ground_truth
from inspector.core.explain import LoadedModel, PreparedImage
from inspector.core.metrics import smm
from inspector.core.pipeline import align_mask, unalign_mask
from inspector.core.view_settings import ViewSettings

__all__ = ["RenderResult", "Session", "Truth"]


@dataclass(frozen=True)
class Truth:
    """A dataset annotation (Tiny ImageNet box and label) tied to the image it belongs to."""

    gt: Any  # inspector.core.data.ground_truth.GroundTruth
    image: Path

    @property
    def mask(self) -> np.ndarray:
        return self.gt.mask

    @property
    def annotation(self) -> Any:
        return self.gt.annotation


@dataclass
class RenderResult:
    """What the last redraw produced (the numbers behind the pixels on screen)."""

    settings: ViewSettings
    grid: np.ndarray | None  # (rows, cols) in [0, 1]
    full: np.ndarray | None  # (S, S) in [0, 1]
    rgb: np.ndarray  # (S, S, 3) uint8, exactly what the view shows
    smm: float | None
    elapsed_ms: float
    cpu_ms: float = 0.0  # process CPU time of the same work (wall time includes waiting)
    explained: Any = None  # the pipeline's ExplainResult (raw map, for exports), or None


@evented
@dataclass(eq=False)
class Session:
    """The state one window inspects; assign fields, subscribe to ``events``."""

    model: LoadedModel | None = None
    image_path: Path | None = None
    image: PreparedImage | None = None  # prepared for ``model``
    raw_image: np.ndarray | None = None  # (H, W, 3) uint8, shown while no model is open
    capture: Capture | None = None  # the forward pass of ``image`` through ``model``
    settings: ViewSettings = field(default_factory=ViewSettings)
    mask_original: np.ndarray | None = None  # (H, W) bool
    mask: np.ndarray | None = None  # (S, S) bool, display geometry
    mask_path: Path | None = None  # the file the mask came from, if any
    painted: tuple[np.ndarray, Any] | None = None  # (mask, the preprocessing it was drawn for)
    ground_truth: Truth | None = None
    result: RenderResult | None = None  # the last redraw
    flags: tuple[str, ...] = ()  # degenerate-map notices of the last redraw
    scale: Any = None  # colorscale.Scale of the last map (the colour bar's values)

    # -- model and image ----------------------------------------------------------------------
    def set_model(self, loaded: LoadedModel) -> None:
        """A new model: the old capture no longer applies (the image is captured again)."""
        self.capture = None
        self.model = loaded

    def set_raw_image(self, path: Path, rgb: np.ndarray) -> None:
        """An image opened while no model is: shown as it is, nothing to explain."""
        self.image = self.capture = None
        self.raw_image = rgb
        self.image_path = path

    def set_captured(self, path: Path, prepared: PreparedImage, capture: Capture) -> None:
        """The image prepared for the model and its forward pass (capture last: its
        subscribers read the image and the ground truth)."""
        self.raw_image = None
        self.image = prepared
        self.image_path = path
        self.capture = capture

    def display(self) -> np.ndarray | None:
        """``(S, S, 3)`` what the view shows under the map: the prepared image, else the raw."""
        return self.image.display if self.image is not None else self.raw_image

    def original_shape(self) -> tuple[int, int] | None:
        if self.image is not None:
            return self.image.original.shape[:2]
        if self.raw_image is not None:
            return self.raw_image.shape[:2]
        return None

    @property
    def target(self) -> int | None:
        """The class the class-specific methods explain: the chosen one, else the predicted."""
        if self.capture is None:
            return None
        return self.capture.resolve_class(self.settings.map.class_index)

    # -- ground truth -------------------------------------------------------------------------
    def load_ground_truth(self, path: Path) -> str | None:
        """The dataset's annotation of ``path`` (Tiny ImageNet box and label) into
        ``ground_truth``; returns a message when the annotation files are broken."""
        shape = self.original_shape()
        if shape is None:
            return None
        try:
            gt = image_ground_truth(path, shape)
        except DatasetError as exc:
            self.ground_truth = None
            return f"Dataset annotation: {exc}"
        self.ground_truth = None if gt is None else Truth(gt, path)
        return None

    def true_class(self) -> int | None:
        """The ground truth's class index in the model's class names, or None."""
        truth = self.ground_truth
        if truth is None or self.model is None or truth.image != self.image_path:
            return None
        return truth.gt.class_index(self.model.class_names)

    # -- mask ---------------------------------------------------------------------------------
    def set_mask(self, mask: np.ndarray, path: Path | None = None) -> str | None:
        """Use an ``(H, W)`` mask in the original image's geometry; returns why not, or None."""
        shape = self.original_shape()
        if shape is None:
            return "Open an image before its mask"
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            return (
                f"The mask is {mask.shape[1]}×{mask.shape[0]} but the image is "
                f"{shape[1]}×{shape[0]}; mask not used"
            )
        self.mask_path, self.painted = path, None
        self.mask_original = mask
        self.realign_mask()
        return None

    def clear_mask(self) -> None:
        self.mask_original = self.mask_path = self.painted = None
        self.mask = None

    def set_display_mask(self, mask: np.ndarray) -> None:
        """A mask drawn on the display ``(S, S)``: kept on the original image too, so that it
        outlives this model (a checkpoint that resizes or crops differently re-aligns it)."""
        shape, loaded = self.original_shape(), self.model
        self.mask_original = (
            unalign_mask(mask, shape, loaded) if loaded is not None and shape else None
        )
        self.painted = (mask, loaded.checkpoint.preprocess if loaded is not None else None)
        self.mask_path = None
        self.mask = mask

    def realign_mask(self) -> None:
        """``mask`` from ``mask_original`` for the current model's geometry."""
        if self.mask_original is None:
            self.mask = None
        elif self.model is not None and self.image is not None:
            painted = self.painted
            if painted is not None and painted[1] == self.model.checkpoint.preprocess:
                self.mask = painted[0]  # the geometry it was drawn on: exactly as drawn
            else:
                self.mask = align_mask(self.mask_original, self.original_shape(), self.model)
        else:
            self.mask = self.mask_original

    def rescore(self) -> float | None:
        """SMM of the last map against the current mask (the map did not change)."""
        r = self.result
        if r is None or r.full is None:
            return None
        r.smm = smm(r.full, self.mask, r.settings.smm_threshold) if self.mask is not None else None
        return r.smm

    # -- positions on the display -------------------------------------------------------------
    def patch_at(self, x: int, y: int) -> tuple[int, int, int] | None:
        """``(row, col, token)`` of the patch under display pixel ``(x, y)``."""
        if self.capture is None or self.image is None:
            return None
        rows, cols = self.capture.grid_size
        s = self.image.display.shape
        r, c = min(rows - 1, y * rows // s[0]), min(cols - 1, x * cols // s[1])
        return r, c, self.capture.num_prefix_tokens + r * cols + c

    def patch_box(self, patch: tuple[int, int] | None) -> tuple[int, int, int, int] | None:
        """``(x, y, w, h)`` in display pixels of the patch ``(row, col)``."""
        if patch is None or self.capture is None or self.image is None:
            return None
        rows, cols = self.capture.grid_size
        ph, pw = self.image.display.shape[0] // rows, self.image.display.shape[1] // cols
        return patch[1] * pw, patch[0] * ph, pw, ph

    def readout(self, x: int, y: int) -> str | None:
        """The hover text at display pixel ``(x, y)``: position, RGB, saliency, patch, mask."""
        r = self.result
        base = r.rgb if r is not None else None
        if base is None or x < 0 or y < 0 or y >= base.shape[0] or x >= base.shape[1]:
            return None
        src = self.display()
        text = f"x {x}, y {y}"
        if src is not None and y < src.shape[0] and x < src.shape[1]:
            red, green, blue = (int(v) for v in src[y, x])
            text += f" · RGB {red} {green} {blue}"
        if r.full is not None and self.capture is not None:
            text += f" · saliency {float(r.full[y, x]):.3f}"
            patch = self.patch_at(x, y)
            if patch is not None:
                text += f" · patch ({patch[0]}, {patch[1]})"
        m = self.mask
        if m is not None and y < m.shape[0] and x < m.shape[1] and m[y, x]:
            text += " · in mask"
        return text
