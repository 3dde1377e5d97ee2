"""What the user asked to see: the map's settings plus how it is displayed, as one immutable
value. The window's method panel produces it; the session (:mod:`inspector.core.session`) holds
it; exports record it. Qt-free, so the CLI, tests and benchmarks build the same value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from inspector.core.pipeline import ExplainSettings
from inspector.core.saliency import MapSettings

__all__ = ["ViewSettings"]


@dataclass(frozen=True)
class ViewSettings:
    """What the user asked to see.

    Attributes:
        map: the saliency settings (method, fusion, discard ratio, layer, head, query...).
        smoothing: ``none`` (bilinear upsampling) or ``paper`` (seed 003's median + Gaussian).
        colormap: one of :data:`inspector.core.postprocess.COLORMAPS`.
        opacity: overlay opacity in [0, 1].
        show_overlay: draw the overlay at all.
        smm_threshold: SMM's saliency threshold in [0, 1] (0.3 in the paper).
        scaling: the colour bars' rule, one of :data:`inspector.core.colorscale.SCALINGS`.
    """

    map: MapSettings = field(default_factory=MapSettings)
    smoothing: str = "none"
    colormap: str = "viridis"
    opacity: float = 0.5
    show_overlay: bool = True
    smm_threshold: float = 0.3
    scaling: str = "per-map"

    def replace(self, **changes: Any) -> ViewSettings:
        return dataclasses.replace(self, **changes)

    def explain_settings(self) -> ExplainSettings:
        """The core pipeline's settings for what the user sees."""
        return ExplainSettings(
            map=self.map,
            smoothing=self.smoothing,
            threshold=self.smm_threshold,
            colormap=self.colormap,
            opacity=self.opacity,
            show_overlay=self.show_overlay,
        )

    def to_metadata(self) -> dict[str, Any]:
        """The settings the method uses and the display's, as plain values (PNG metadata)."""
        return {
            **self.map.used_dict(),
            "smoothing": self.smoothing,
            "colormap": self.colormap,
            "opacity": self.opacity,
            "show_overlay": self.show_overlay,
            "smm_threshold": self.smm_threshold,
        }
