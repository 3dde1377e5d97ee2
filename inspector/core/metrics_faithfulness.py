"""Faithfulness of a saliency map (deletion / insertion) and the model-randomisation sanity check.

* :func:`deletion_insertion` — Petsiuk, Das and Saenko 2018, "RISE: Randomized Input Sampling for
  Explanation of Black-box Models", section 4.2 (causal metrics).
* :func:`cascading_randomisation` — Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
  cascading model-parameter randomisation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr
from torch import nn

from inspector.core.metrics import MetricError, _as_map, upsample_bilinear
from inspector.core.postprocess import is_constant

__all__ = [
    "deletion_insertion",
    "randomisation_order",
    "reinitialise",
    "cascading_randomisation",
]


def _pixel_order(saliency, size: tuple[int, int]) -> np.ndarray:
    """Rank of every pixel (0 = most salient) of the map upsampled to ``size``, ``(H*W,)`` int."""
    s = upsample_bilinear(saliency, size).ravel()
    order = np.argsort(-s, kind="stable")  # ties: row-major order, deterministic
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of each channel (scipy, reflect padding), same dtype / device as ``image``."""
    arr = image.detach().cpu().to(torch.float64).numpy()  # (C, H, W)
    out = gaussian_filter(arr, sigma=(0.0, sigma, sigma), mode="reflect")
    return torch.from_numpy(out).to(dtype=image.dtype, device=image.device)


def _scores(
    predict: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    class_index: int | None,
) -> torch.Tensor:
    with torch.no_grad():
        probs = predict(batch)
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or probs.shape[0] != batch.shape[0]:
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise MetricError(f"predict must return (B, num_classes) probabilities, got {shape}")
    if class_index is None:
        return probs
    if not 0 <= class_index < probs.shape[1]:
        raise MetricError(f"class_index {class_index} out of range for {probs.shape[1]} classes")
    return probs[:, class_index].detach().to("cpu", torch.float64)


def deletion_insertion(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    saliency,
    *,
    steps: int = 64,
    class_index: int | None = None,
    batch_size: int = 32,
    blur_sigma: float = 5.0,
) -> dict:
    """Deletion and insertion curves and their areas (RISE protocol, Petsiuk et al. 2018).

    Pixels are ranked by the saliency map (bilinearly upsampled to the image; ties broken in
    row-major order). For ``k = 0..steps`` the first ``n_k = round(k * H * W / steps)`` pixels are

    * **deleted**: set to 0 in every channel of the model's *input* (for a mean/std-normalised
      input, 0 is the dataset's mean colour, not black), starting from the image;
    * **inserted**: copied from the image into a blurred copy of it (Gaussian, ``blur_sigma``
      pixels, reflect padding; RISE used sigma 5), starting from the blurred copy.

    The score is the probability of ``class_index`` (by default the class the model predicts for
    the unmodified image). With ``x_k = n_k / (H W)`` the areas are the trapezoid rule
    ``AUC = sum_k (x_{k+1} - x_k) (p_k + p_{k+1}) / 2``, in [0, 1] because x spans [0, 1] and
    p is a probability. A faithful map has a low deletion AUC and a high insertion AUC.

    All ``2 (steps + 1)`` perturbed images go through ``predict`` in batches of ``batch_size``.

    Args:
        predict: maps a ``(B, C, H, W)`` batch to ``(B, num_classes)`` probabilities (it is called
            under ``torch.no_grad()``).
        image: ``(C, H, W)`` model input, already preprocessed.
        saliency: ``(h, w)`` map (patch grid or image size).
        steps: number of steps (the curves have ``steps + 1`` points).
        class_index: class to follow; None = the predicted class of ``image``.
        batch_size: images per ``predict`` call.
        blur_sigma: standard deviation of the insertion blur, in pixels.

    Returns:
        dict with ``deletion_auc``, ``insertion_auc`` (floats), ``deletion_curve``,
        ``insertion_curve``, ``fractions`` (``(steps + 1,)`` float64 arrays) and ``class_index``.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise MetricError(f"image must be a (C, H, W) tensor, got {getattr(image, 'shape', image)}")
    if int(steps) < 1 or int(batch_size) < 1:
        raise MetricError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    if not blur_sigma > 0:
        raise MetricError(f"blur_sigma must be positive, got {blur_sigma}")
    _as_map(saliency)  # validate early with a clear message
    _, H, W = image.shape
    n_pixels = H * W
    rank = torch.from_numpy(_pixel_order(saliency, (H, W)).reshape(H, W)).to(image.device)
    counts = np.rint(np.arange(steps + 1) * n_pixels / steps).astype(np.int64)  # n_k
    fractions = counts / n_pixels

    if class_index is None:
        class_index = int(_scores(predict, image[None], None)[0].argmax())
    class_index = int(class_index)
    blurred = _blur(image, float(blur_sigma))

    curves = {}
    for name in ("deletion", "insertion"):
        out = []
        for start in range(0, steps + 1, batch_size):
            n = torch.from_numpy(counts[start : start + batch_size]).to(image.device)
            changed = rank[None] < n[:, None, None]  # (b, H, W): the first n_k pixels
            changed = changed[:, None]  # (b, 1, H, W), broadcast over channels
            if name == "deletion":
                batch = torch.where(changed, image.new_zeros(()), image[None])
            else:
                batch = torch.where(changed, image[None], blurred[None])
            out.append(_scores(predict, batch, class_index))
        curves[name] = torch.cat(out).numpy()

    def auc(p: np.ndarray) -> float:
        return float(np.sum(np.diff(fractions) * (p[1:] + p[:-1]) / 2.0))

    return {
        "deletion_auc": auc(curves["deletion"]),
        "insertion_auc": auc(curves["insertion"]),
        "deletion_curve": curves["deletion"],
        "insertion_curve": curves["insertion"],
        "fractions": fractions,
        "class_index": class_index,
    }


def randomisation_order(model: nn.Module) -> list[tuple[str, list[nn.Module], list[str]]]:
    """The cascade for a :class:`~inspector.core.model.VisionTransformer`, from the top down.

    Returns ``(step name, modules to reset, bare parameter names)`` in order: ``head`` (with
    ``head_dist``), ``norm`` (the final LayerNorm, when it has parameters), ``blocks.{L-1}`` ...
    ``blocks.0``, then ``embeddings`` (patch projection, class / distillation tokens and a learned
    position table; a fixed sin/cos or integer table is a buffer and stays as it is).
    """
    steps: list[tuple[str, list[nn.Module], list[str]]] = []
    heads = [getattr(model, n, None) for n in ("head", "head_dist")]
    heads = [m for m in heads if m is not None]
    steps.append(("head", heads, []))
    norm = getattr(model, "norm", None)
    if norm is not None and any(True for _ in norm.parameters()):
        steps.append(("norm", [norm], []))
    blocks = list(model.blocks)
    for i in reversed(range(len(blocks))):
        steps.append((f"blocks.{i}", [blocks[i]], []))
    params = dict(model.named_parameters(recurse=False))
    bare = [n for n in ("cls_token", "dist_token", "pos_embed") if n in params]
    steps.append(("embeddings", [model.patch_embed], bare))
    return steps


def reinitialise(model: nn.Module, modules: list[nn.Module], bare: list[str]) -> None:
    """One step of the cascade, in place: every sub-module of ``modules`` with
    ``reset_parameters()`` back to PyTorch's default initialisation, and the bare parameters
    ``bare`` of ``model`` drawn from a truncated normal with std 0.02 (timm's ViT tokens).
    Draws come from the global torch RNG: fork and seed it around the cascade."""
    with torch.no_grad():
        for module in modules:
            for sub in module.modules():
                if sub is not model and hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
        for pname in bare:
            nn.init.trunc_normal_(getattr(model, pname), std=0.02)


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise MetricError(f"maps to correlate differ in size: {a.size} vs {b.size}")
    if is_constant(a) or is_constant(b):
        return None  # a rank correlation with a constant map is undefined
    return float(spearmanr(a, b).statistic)


def cascading_randomisation(
    model: nn.Module,
    x: torch.Tensor,
    map_fn: Callable[[nn.Module, torch.Tensor], np.ndarray],
    *,
    seed: int = 0,
) -> list[dict]:
    """Cascading model-parameter randomisation (Adebayo et al. 2018, section 3.1).

    On a deep copy of ``model`` (the original is untouched), the parameters are re-initialised
    step by step from the top (:func:`randomisation_order`); the randomisation accumulates, so the
    last step has every parameter random. After each step the map is recomputed and compared with
    the original map by Spearman's rank correlation over all map entries. A map that stays highly
    correlated while the model it explains is destroyed fails the sanity check.

    Re-initialisation follows Quantus' ``ModelParameterRandomisation`` (Hedström et al. 2023):
    every sub-module with ``reset_parameters()`` is reset to PyTorch's default initialisation
    (random fan-in uniform weights and biases for linear and convolution layers; LayerNorm back to
    ones and zeros), and bare token / position parameters are drawn from a truncated normal with
    std 0.02 (timm's ViT initialisation). Random draws use ``seed`` in a forked RNG, so the global
    torch RNG is left as it was.

    Args:
        model: a :class:`~inspector.core.model.VisionTransformer` (``head``, ``norm``, ``blocks``,
            ``patch_embed``, tokens).
        x: the input batch ``map_fn`` expects (typically ``(1, C, H, W)``).
        map_fn: ``(model, x) -> map`` (any shape, the same for every model).
        seed: seed of the random re-initialisation.

    Returns:
        One dict per step, in cascade order: ``layer_name`` (the step just randomised, cumulative)
        and ``spearman`` (float, or None when a map is constant).
    """
    work = copy.deepcopy(model).eval()
    # map_fn runs with autograd enabled: gradient-based maps need it.
    reference = np.asarray(map_fn(work, x), dtype=np.float64)
    results = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, modules, bare in randomisation_order(work):
            reinitialise(work, modules, bare)
            current = np.asarray(map_fn(work, x), dtype=np.float64)
            results.append({"layer_name": name, "spearman": _spearman(reference, current)})
    return results
