"""Saliency maps as pure functions of captured attention (and its gradients).

Notation (docs/ARCHITECTURE.md section 6): per layer ``l`` the attention probabilities
``A_l`` have shape ``[heads, T, T]`` (rows sum to 1); token 0 is the class token, the first
``num_prefix_tokens`` tokens are prefix tokens (class, then DeiT's distillation token), the
rest is the patch grid in row-major order. Every function takes the stacked attention ``attn``
of one image, ``[L, heads, T, T]`` (torch or numpy), and returns the patch-grid map
``(gh, gw)`` as a float32 numpy array, scaled so that its maximum is 1 (``rescale=True``, the
default; an all-zero map stays zero, so every map is finite and in [0, 1]).

Methods live one per module and register themselves (:mod:`.registry`); this package imports
every module it holds, so adding a method is adding one file:

* ``attention``  -- raw attention of one layer / head: :mod:`.attention`.
* ``rollout``    -- attention rollout (Abnar and Zuidema 2020, as in jacobgil/vit-explain):
  :mod:`.rollout`.
* ``grad-rollout`` -- gradient-weighted rollout (jacobgil/vit-explain): :mod:`.grad_rollout`.
* ``relevance``  -- generic attention relevance (Chefer, Gur and Wolf 2021b): :mod:`.relevance`.
* ``cls-attention`` -- last-layer class-token attention (Calderaro et al. 2023, seed 003):
  :mod:`.cls_attention`.

Speed: rollout-type maps only need one row of ``R = Ã_L ··· Ã_s``, so the row is propagated as
a vector through the layers, last layer first (``v = e_q; v <- v Ã_l`` for l = L..s), which is
O(L T^2) instead of O(L T^3); the discard threshold uses a selection (``np.partition``), not a
sort, and :func:`compute_map` memoises each fused matrix's entries sorted once, so that for a
new discard ratio the threshold is a lookup (ViT-B, discard 0.9: ~1 ms per map on 2 cores).
"""

from __future__ import annotations

import importlib
import pkgutil

from . import registry
from ._common import (
    AGGREGATIONS,
    FUSIONS,
    SaliencyError,
    discard_lowest,
    fuse_heads,
)

# Import every method module (each registers itself): the modules whose names do not start
# with "_" and that are not the package's own machinery.
_MACHINERY = {"registry", "settings", "targets", "dispatch"}
for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name not in _MACHINERY:
        importlib.import_module(f"{__name__}.{_mod.name}")

from .attention import attention_map  # noqa: E402
from .cls_attention import cls_attention  # noqa: E402
from .dispatch import compute_map  # noqa: E402
from .grad_rollout import grad_fuse, grad_rollout, grad_rollout_layers  # noqa: E402
from .relevance import (  # noqa: E402
    relevance,
    relevance_from_fused,
    relevance_fuse,
    relevance_matrix,
)
from .rollout import rollout, rollout_fused, rollout_layers, rollout_matrix  # noqa: E402
from .settings import MapSettings  # noqa: E402
from .targets import TARGETS  # noqa: E402

# The registered names in menu order; read the registry itself for labels and settings.
METHODS: tuple[str, ...] = registry.names()

__all__ = [
    "AGGREGATIONS",
    "FUSIONS",
    "METHODS",
    "TARGETS",
    "MapSettings",
    "SaliencyError",
    "attention_map",
    "cls_attention",
    "compute_map",
    "discard_lowest",
    "fuse_heads",
    "grad_fuse",
    "grad_rollout",
    "grad_rollout_layers",
    "registry",
    "relevance",
    "relevance_from_fused",
    "relevance_fuse",
    "relevance_matrix",
    "rollout",
    "rollout_fused",
    "rollout_layers",
    "rollout_matrix",
]
