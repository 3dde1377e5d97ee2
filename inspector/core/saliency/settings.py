"""Every knob of a saliency map, in one frozen value (:class:`MapSettings`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import registry
from ._common import AGGREGATIONS, FUSIONS, SaliencyError, _check_choice, _check_discard
from .targets import TARGETS


@dataclass(frozen=True)
class MapSettings:
    """Every knob of a saliency map. Defaults are vit-explain's command-line defaults for
    rollout (max fusion, discard 0.9).

    Attributes:
        method: one of :data:`METHODS`.
        fusion: head fusion for ``attention`` (when ``head`` is None) and ``rollout``.
        discard_ratio: for ``rollout`` and ``grad-rollout``, in [0, 1).
        layer: layer for ``attention`` (negative from the end).
        head: head for ``attention``; ``None`` fuses the heads.
        query: query token (0 = class token) for every method except ``cls-attention``.
        start_layer: first layer for ``rollout``, ``grad-rollout`` and ``relevance``.
        legacy_normalisation: vit-explain's column-normalisation bug (rollout methods).
        residual: add the identity in rollout; ``None`` = follow the model ("auto").
        class_index: target class for gradient methods; ``None`` = the predicted class.
        aggregation: head aggregation for ``cls-attention``.
        target: the score whose gradient gradient methods use (:data:`TARGETS`): ``logit``
            (default; for a model whose forward ends in a softmax, the input to that softmax),
            ``probability`` (vit-explain's and the paper's maps) or ``log-probability``.
    """

    method: str = "rollout"
    fusion: str = "max"
    discard_ratio: float = 0.9
    layer: int = -1
    head: int | None = None
    query: int = 0
    start_layer: int = 0
    legacy_normalisation: bool = False
    residual: bool | None = None
    class_index: int | None = None
    aggregation: str = "mean"
    target: str = "logit"

    def __post_init__(self) -> None:
        registry.get(self.method)  # unknown method: a message naming the choices
        _check_choice(self.target, TARGETS, "gradient target")
        _check_choice(self.fusion, FUSIONS, "head fusion")
        _check_choice(self.aggregation, AGGREGATIONS, "head aggregation")
        _check_discard(self.discard_ratio)
        if self.start_layer < 0:
            raise SaliencyError(f"start_layer must be >= 0, got {self.start_layer}")

    def replace(self, **changes: Any) -> MapSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def info(self) -> registry.MethodInfo:
        return registry.get(self.method)

    @property
    def needs_gradients(self) -> bool:
        return self.info.needs_gradients

    def uses(self, name: str) -> bool:
        """Whether this method reads setting ``name`` (controls enable themselves by it)."""
        return name in self.info.uses

    def used_dict(self) -> dict[str, Any]:
        """The method and only the settings it reads: what metadata and captions record."""
        d = self.to_dict()
        used = set(self.info.uses)
        if "head" in used and self.head is not None:
            used.discard("fusion")  # one head shown: the heads are not fused
        return {"method": self.method, **{k: d[k] for k in sorted(used)}}
