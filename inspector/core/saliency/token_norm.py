"""``token-norm``: the artefact view (Darcet et al. 2024, "Vision Transformers Need Registers").

The map is each patch token's output norm in one layer (``layer``, default the last block),
read from the capture's ``extras["token_norms"]`` ``(L, T)``: every adapter that records its
blocks' outputs provides it (our ViT, timm, Hugging Face; not Swin, whose tokens change
number between stages). The computation and the outlier rule are
:func:`inspector.core.token_norm.token_norm_map` (robust z-score over the layer's patch tokens
above 5: ``norm > median + 5 * 1.4826 * MAD``). Unlike every other method this one reads no
output row: the class token, the pool and the query play no part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..token_norm import OUTLIER_Z, NormProfile, TokenNormView, norm_profile, token_norm_map
from . import registry
from ._common import SaliencyError


def capture_token_norms(capture: Any) -> np.ndarray:
    """``(L, T)`` float64 block-output norms of a capture.

    Raises:
        SaliencyError: the model's adapter does not record its block outputs.
    """
    norms = getattr(capture, "extras", {}).get("token_norms")
    if norms is None:
        name = type(getattr(capture, "adapter", None)).__name__
        why = " (Swin's stages change the number of tokens)" if "Swin" in name else ""
        raise SaliencyError(
            f"token-norm needs each block's token outputs, which {name} does not record{why}"
        )
    return np.asarray(norms, dtype=np.float64)


def capture_norm_view(capture: Any, *, layer: int = -1, z: float = OUTLIER_Z) -> TokenNormView:
    """One layer's patch-token norms as a ``(rows, cols)`` grid, with its outliers.

    Raises:
        SaliencyError: the capture has no token norms, or ``layer`` is out of range.
    """
    try:
        return token_norm_map(capture_token_norms(capture), _layout(capture), layer=layer, z=z)
    except ValueError as exc:
        raise SaliencyError(str(exc)) from exc


def capture_norm_profile(capture: Any, *, z: float = OUTLIER_Z) -> NormProfile:
    """Every layer's patch-token norms with its median and outlier bound (the GUI's per-layer
    view of where the artefacts appear).

    Raises:
        SaliencyError: the capture has no token norms.
    """
    try:
        return norm_profile(capture_token_norms(capture), _layout(capture), z=z)
    except ValueError as exc:
        raise SaliencyError(str(exc)) from exc


def capture_outliers(
    capture: Any, *, layer: int = -1, z: float = OUTLIER_Z, view: TokenNormView | None = None
) -> dict:
    """What a file records about a capture's high-norm tokens (``explain --method token-norm``
    JSON, the GUI's list): the rule, the layer, its outliers and the prefix tokens' norms.
    ``view``: that layer's :func:`capture_norm_view` when the caller has it already.

    Raises:
        SaliencyError: the capture has no token norms (the adapter does not record them).
    """
    layout = _layout(capture)
    if view is None:
        view = capture_norm_view(capture, layer=layer, z=z)
    return {
        "rule": "robust z = (norm - median) / (1.4826 * MAD) over the layer's patch tokens "
        f"> {z:g}",
        "layer": view.layer,
        "outliers": [o.to_dict() for o in view.outliers],
        "prefix_norms": [
            {"token": i, "kind": layout.prefix[i], "norm": n} for i, n in view.prefix_norms.items()
        ],
        "patch_norm_median": float(np.median(view.map)),
    }


def _layout(capture: Any):
    from ._readout import _layout as layout_of

    return layout_of(capture)


def _compute(capture: Any, settings: Any, rescale: bool) -> np.ndarray:
    norms = capture_token_norms(capture)
    try:
        view = token_norm_map(norms, _layout(capture), layer=settings.layer)
    except ValueError as exc:
        raise SaliencyError(str(exc)) from exc
    grid = view.map  # (rows, cols) float32, the norms themselves
    if not rescale:
        return grid
    top = float(grid.max())
    return grid / np.float32(top) if top > 0 else np.zeros_like(grid)


INFO = registry.register(
    registry.MethodInfo(
        name="token-norm",
        label="Token norm (artefacts)",
        description="Each patch token's output norm in one block (Darcet et al. 2024); "
        "high-norm outliers (robust z > 5) are the artefacts registers remove.",
        uses=frozenset({"layer"}),
        needs_gradients=False,
        compute=_compute,
        order=60,
        reads_output_row=False,
    )
)
