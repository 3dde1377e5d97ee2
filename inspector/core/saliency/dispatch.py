"""One entry point for every method: :func:`compute_map` looks the method up in the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _readout as readout
from . import registry
from ._common import SaliencyError
from .settings import MapSettings

if TYPE_CHECKING:  # only for type hints; saliency stays a pure function of tensors
    from ..capture import Capture


def compute_map(
    capture: Capture,
    method: str | None = None,
    settings: MapSettings | None = None,
    *,
    rescale: bool = True,
) -> np.ndarray:
    """The patch-grid map ``(rows, cols)`` float32 for a capture; in [0, 1] with ``rescale``.

    Pure function of the capture's cached tensors. The head-fused matrices (the step that
    reads every head: ~20 ms for ViT-B here) are memoised on the capture per fusion (and per
    class and target for gradient methods), together with their entries sorted per layer, so
    moving the discard slider costs only a threshold lookup, the discard, the normalisation
    and the vector chain (~1 ms for ViT-B). Gradient methods ask the capture for
    ``d y_c / d A``, which it computes once per (class, target) and caches.

    Args:
        capture: a :class:`~inspector.core.capture.Capture`.
        method: a registered method name; overrides ``settings.method`` when given.
        settings: the other knobs; default :class:`MapSettings()`.
        rescale: divide by the maximum (default; an all-zero map stays zero), or return the
            method's raw values (attention probabilities, rollout weights, relevance).

    Raises:
        SaliencyError: unknown method or an index out of range.
    """
    settings = settings or MapSettings()
    if method is not None and method != settings.method:
        settings = settings.replace(method=method)
    info = registry.get(settings.method)
    # Issue 12: library models. Swin refuses rollout with its reason; a model whose output is
    # not the class token (SigLIP's attention pool, mean pooling, registers only) reads its
    # maps out for that output row when the query is the default (token 0).
    refusal = getattr(getattr(capture, "adapter", None), "rollout_refusal", None)
    if refusal and "rollout" in settings.method:
        raise SaliencyError(refusal)
    if readout.uses_readout(capture) and settings.query == 0 and info.reads_output_row:
        if settings.method not in readout.READOUT_METHODS:
            raise SaliencyError(
                f"{info.label} reads the class token, which this model does not classify from "
                f"({capture.token_layout.describe()})"
            )
        return readout.readout_map(
            capture,
            settings.method,
            layer=settings.layer,
            head=settings.head,
            fusion=settings.fusion,
            discard_ratio=settings.discard_ratio,
            residual=settings.residual,
            class_index=settings.class_index,
            target=settings.target,
            start_layer=settings.start_layer,
            rescale=rescale,
        )
    return info.compute(capture, settings, rescale)
