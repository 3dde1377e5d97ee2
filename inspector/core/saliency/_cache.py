"""Arrays derived from a capture, memoised on it (fused heads, their sorted entries)."""

from __future__ import annotations

from typing import Any

import numpy as np


def cached(capture: Any, key: tuple, compute: Any) -> np.ndarray:
    """A derived array memoised on the capture (read-only, so no caller can corrupt it)."""

    def make() -> np.ndarray:
        arr = compute()
        arr.flags.writeable = False
        return arr

    return capture.cached(key, make)


def sorted_rows(capture: Any, key: tuple, fused: np.ndarray) -> np.ndarray:
    """Each layer's fused matrix flattened and sorted ascending, ``[L, T*T]``, memoised beside
    the fused matrices: the discard threshold for any ratio is then ``sorted[:, k - 1]``
    (sorting costs ~3 ms once for ViT-B; every slider move after that saves the selection)."""
    L = fused.shape[0]
    return cached(
        capture,
        ("sorted", *key),
        lambda: np.sort(np.ascontiguousarray(fused).reshape(L, -1), axis=-1),
    )
