"""The one per-image pipeline: image -> capture -> map -> metrics -> what a view or a file needs.

``explain_one`` is the only place where a saliency map of one image is made: the CLI
(``explain``, ``evaluate``), the GUI's render path, batch export, the compare view and the study
figures all call it, so they cannot drift apart (docs/ARCHITECTURE.md section 2).

Masks have one alignment, :func:`align_mask`: a mask belongs to its image, so a mask whose size
differs from the image's is refused with both sizes named (never stretched), and an accepted mask
goes through the model's own preprocessing geometry (resize, centre crop), so mask pixel (r, c)
lies on display pixel (r, c).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .capture import Capture
from .explain import LoadedModel, PreparedImage, capture_image
from .metrics import localisation_metrics
from .postprocess import COLORMAPS, full_map, overlay
from .preprocess import MaskSizeError
from .preprocess import align_mask as _align
from .preprocess import unalign_mask as _unalign
from .saliency import MapSettings, compute_map

__all__ = [
    "SMOOTHINGS",
    "ExplainResult",
    "ExplainSettings",
    "MaskSizeError",
    "align_mask",
    "degenerate_flags",
    "explain_one",
    "full_map",
]

SMOOTHINGS: tuple[str, ...] = ("none", "paper")


@dataclass(frozen=True)
class ExplainSettings:
    """Everything that turns a capture into a picture and a score.

    Attributes:
        map: the saliency method and its knobs.
        smoothing: ``none`` (bilinear upsampling) or ``paper`` (seed 003's bilinear, median of
            radius P/2 and Gaussian of sigma P/4).
        threshold: SMM's saliency threshold in [0, 1] (the paper's 0.3).
        colormap: a name in :data:`~inspector.core.postprocess.COLORMAPS`.
        opacity: the overlay's opacity in [0, 1].
        show_overlay: draw the map over the image (False: the image alone).
        pointing_tolerance: the pointing game's tolerance in pixels of the model's input;
            None: 15 px at 224 px, scaled (:func:`~inspector.core.metrics.pointing_tolerance`).
    """

    map: MapSettings = field(default_factory=MapSettings)
    smoothing: str = "none"
    threshold: float = 0.3
    colormap: str = "viridis"
    opacity: float = 0.5
    show_overlay: bool = True
    pointing_tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {self.smoothing!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"the SMM threshold must be in [0, 1], got {self.threshold}")
        if self.colormap not in COLORMAPS:
            raise ValueError(
                f"unknown colormap {self.colormap!r}; choose from: {', '.join(sorted(COLORMAPS))}"
            )
        if not 0.0 <= float(self.opacity) <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")

    def replace(self, **changes: Any) -> ExplainSettings:
        return dataclasses.replace(self, **changes)

    def to_metadata(self) -> dict[str, Any]:
        """The settings a file records: the method's own (only those it reads) and the rest."""
        return {
            **self.map.used_dict(),
            "smoothing": self.smoothing,
            "threshold": self.threshold,
            "colormap": self.colormap,
            "opacity": self.opacity,
        }


@dataclass
class ExplainResult:
    """One image explained: every array a view draws and every number a file records.

    Attributes:
        capture: the forward pass (reuse it for the next setting: sliders never re-run the model).
        grid: ``(rows, cols)`` float32 in [0, 1], the patch-grid map divided by its maximum.
        raw_grid: ``(rows, cols)`` float32, the method's unnormalised values.
        full: ``(S, S)`` float32 in [0, 1], upsampled (and smoothed) to the model's input.
        overlay: ``(S, S, 3)`` uint8, the map over the image (the image alone when the
            overlay is hidden).
        display: ``(S, S, 3)`` uint8, the image as the model sees it.
        mask: ``(S, S)`` bool aligned mask, or None.
        predictions: the top-k ``{"class", "name", "probability"}``, best first.
        target_class: the class gradient methods explain (the predicted one by default).
        metrics: localisation metrics (SMM, pointing game, ...) when a mask is given.
        flags: notices for a degenerate map (all zero, constant, non-finite), with the reason.
        metadata: what a file needs: settings (used only), target, predictions, mask source.
    """

    capture: Capture
    grid: np.ndarray
    raw_grid: np.ndarray
    full: np.ndarray
    overlay: np.ndarray
    display: np.ndarray
    mask: np.ndarray | None
    predictions: list[dict[str, Any]]
    target_class: int
    metrics: dict[str, Any] | None
    flags: list[str]
    metadata: dict[str, Any]

    @property
    def smm(self) -> float | None:
        return None if self.metrics is None else self.metrics.get("smm")


def align_mask(mask: np.ndarray, image_shape: tuple[int, int], loaded: LoadedModel) -> np.ndarray:
    """:func:`~inspector.core.preprocess.align_mask` with the model's preprocessing: a mask of
    the original image ``(H, W)`` -> ``(S, S)`` bool on the display; refuses another size."""
    return _align(mask, image_shape, loaded.checkpoint.preprocess)


def unalign_mask(
    display_mask: np.ndarray, image_shape: tuple[int, int], loaded: LoadedModel
) -> np.ndarray:
    """:func:`~inspector.core.preprocess.unalign_mask` with the model's preprocessing: a mask
    drawn on the display ``(S, S)`` -> ``(H, W)`` bool on the original image."""
    return _unalign(display_mask, image_shape, loaded.checkpoint.preprocess)


def degenerate_flags(raw_grid: np.ndarray, settings: MapSettings, capture: Capture) -> list[str]:
    """Notices for a map that shows nothing, each with its likely reason.

    * non-finite values: NaN or infinite weights, or an overflow in the model;
    * all zero: for gradient methods with the probability target, a saturated softmax whose
      gradient underflowed (use the logit target); otherwise attention that put no weight on
      any patch;
    * constant: attention collapsed to the same value everywhere (typical of models without
      residual connections or LayerNorm, whose tokens become identical).
    """
    g = np.asarray(raw_grid, dtype=np.float64)
    if not np.all(np.isfinite(g)):
        return [
            "non-finite map: the model produced NaN or infinite values (NaN weights or an overflow)"
        ]
    probs = capture.probabilities.numpy()
    saturated = bool(probs.size and float(probs.max()) > 1 - 1e-6)
    if not np.any(g):
        if settings.needs_gradients:
            why = (
                "the output softmax is saturated and the probability's gradient underflowed; "
                "use the logit target"
                if settings.target == "probability" or saturated
                else "the class score does not depend on the attention (collapsed attention)"
            )
        else:
            why = "the attention puts no weight on any patch (collapsed attention)"
        return [f"all-zero map: {why}"]
    if float(g.max() - g.min()) <= 1e-7 * max(1.0, float(np.abs(g).max())):
        return [
            "constant map: the attention is the same for every patch (collapsed attention, as "
            "in models without residual connections or LayerNorm)"
        ]
    return []


def _predictions(cap: Capture, names: list[str], k: int) -> list[dict[str, Any]]:
    out = []
    for c, p in cap.top_k(k):
        out.append(
            {
                "class": c,
                "name": names[c] if 0 <= c < len(names) else f"class {c}",
                "probability": p if np.isfinite(p) else None,
            }
        )
    return out


def explain_one(
    loaded: LoadedModel,
    image: PreparedImage,
    settings: ExplainSettings | None = None,
    *,
    mask: np.ndarray | None = None,
    aligned: bool = False,
    mask_source: str | None = None,
    capture: Capture | None = None,
    top_k: int = 5,
) -> ExplainResult:
    """Explain one image: capture (unless given), map, upsample, overlay, metrics, metadata.

    Args:
        loaded: the model and its metadata.
        image: the image as read and as the model sees it (:func:`~inspector.core.explain.
            load_image` or :func:`~inspector.core.explain.prepare`).
        settings: method, knobs and drawing; default :class:`ExplainSettings()`.
        mask: the object mask: of the original image ``(H, W)`` (aligned here with
            :func:`align_mask`), or already on the display ``(S, S)`` with ``aligned=True``
            (a mask painted on the display).
        aligned: ``mask`` is already in display geometry.
        mask_source: where the mask came from (a file, "painted", "dataset"), for metadata.
        capture: a capture of this image with this model, to reuse.
        top_k: predictions to report.

    Raises:
        MaskSizeError: the mask's size differs from the image's.
        SaliencyError, CaptureError: a setting out of range (layer, head, class...).
    """
    settings = settings or ExplainSettings()
    cap = capture if capture is not None else capture_image(loaded, image)
    display = image.display
    size = int(display.shape[0])
    aligned_mask = None
    if mask is not None:
        if aligned:
            aligned_mask = np.asarray(mask, dtype=bool)
            if aligned_mask.shape != display.shape[:2]:
                raise MaskSizeError(
                    f"the mask is {aligned_mask.shape[1]}x{aligned_mask.shape[0]} but the "
                    f"model's input is {display.shape[1]}x{display.shape[0]}"
                )
        else:
            aligned_mask = align_mask(mask, image.original.shape[:2], loaded)
    target = cap.resolve_class(settings.map.class_index)
    raw = compute_map(cap, settings=settings.map, rescale=False)  # (rows, cols)
    flags = degenerate_flags(raw, settings.map, cap)
    finite = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    top = float(finite.max()) if finite.size else 0.0
    # The methods' own rescaling: division by the maximum; no positive entry -> zeros.
    grid = (finite / np.float32(top)).astype(np.float32) if top > 0 else np.zeros_like(finite)
    patch = size // cap.grid_size[0]
    full = full_map(grid, size, patch, settings.smoothing)
    rgb = (
        overlay(display, full, cmap=settings.colormap, opacity=settings.opacity)
        if settings.show_overlay
        else display
    )
    metrics = (
        localisation_metrics(full, aligned_mask, settings.threshold, settings.pointing_tolerance)
        if aligned_mask is not None
        else None
    )
    predictions = _predictions(cap, loaded.class_names, top_k)
    names = loaded.class_names
    metadata: dict[str, Any] = {
        "settings": settings.to_metadata(),
        "checkpoint": str(loaded.path) if loaded.path else loaded.name,
        "image": str(image.path) if image.path else None,
        "target_class": target,
        "target_name": names[target] if 0 <= target < len(names) else f"class {target}",
        "predictions": predictions,
        "mask": mask_source if aligned_mask is not None else None,
        "flags": flags,
    }
    if metrics is not None:
        metadata["metrics"] = metrics
    if settings.map.method == "token-norm":  # the artefact view names its outlier tokens
        from .saliency.token_norm import capture_outliers

        metadata["token_norm"] = capture_outliers(cap, layer=settings.map.layer)
    return ExplainResult(
        capture=cap,
        grid=grid,
        raw_grid=raw.astype(np.float32),
        full=full,
        overlay=rgb,
        display=display,
        mask=aligned_mask,
        predictions=predictions,
        target_class=target,
        metrics=metrics,
        flags=flags,
        metadata=metadata,
    )
