"""The cascading model-parameter randomisation sanity check, over real images and methods.

Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim 2018, "Sanity Checks for Saliency Maps"
(NeurIPS), section 3.1 "cascading randomization". On a copy of the model the layers are
re-initialised one at a time from the top, cumulatively: the head, then the final norm (when
it has parameters), the last block, the one before, ... down to the embeddings (patch
projection and learned tokens; :func:`~inspector.core.metrics_faithfulness.
randomisation_order`, :func:`~inspector.core.metrics_faithfulness.reinitialise`). After each
step the map of every image is recomputed with the same method, settings and target class
(the class the *trained* model predicts, unless one is given), and compared with the trained
model's map ``m_0``:

* Spearman's rank correlation ``rho = corr(rank(m_0), rank(m_k))`` over the pixels of the
  image-resolution maps (``scipy.stats.spearmanr``; None when a map is constant);
* SSIM (Wang et al. 2004, :func:`inspector.core.ssim.ssim`) of the two maps, both in [0, 1]
  (``L = 1``).

A method whose maps stay similar (rho and SSIM near 1) while the weights they explain are
destroyed does not depend on what the model learnt: it fails the check. The first record,
``original``, recomputes the map on the untouched copy, so it is 1 and 1 for any deterministic
method.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .explain import LoadedModel, PreparedImage, Smoothing, capture_image
from .metrics_faithfulness import _spearman, randomisation_order, reinitialise
from .pipeline import ExplainSettings, explain_one
from .postprocess import colorize
from .saliency import MapSettings
from .ssim import ssim

__all__ = ["SanityResult", "cascade_layers", "cascading_sanity", "sanity_figure"]

ORIGINAL = "original"
Progress = Callable[[int, str], None]


@dataclass
class SanityResult:
    """Per step and image, the map and its scores against the trained model's map.

    Attributes:
        layers: step names, ``original`` first, then the cascade (cumulative).
        records: one dict per (step, image): ``step``, ``layer``, ``image``, ``name``,
            ``spearman`` (None when a map is constant), ``ssim``.
        maps: ``(steps, images, S, S)`` float32 in [0, 1], the image-resolution maps.
        target_classes: the class every gradient map of each image is taken for.
        settings: method settings, smoothing and seed, for the files.
        stopped: True when the stop flag ended the cascade early (the steps done are kept).
    """

    layers: list[str]
    records: list[dict[str, Any]]
    maps: np.ndarray
    target_classes: list[int]
    settings: dict[str, Any]
    stopped: bool = False
    names: list[str] = field(default_factory=list)

    def per_layer(self) -> list[dict[str, Any]]:
        """Mean Spearman and SSIM over the images, per step (None when none is defined)."""
        out = []
        for step, layer in enumerate(self.layers):
            rows = [r for r in self.records if r["step"] == step]
            rho = [r["spearman"] for r in rows if r["spearman"] is not None]
            out.append(
                {
                    "step": step,
                    "layer": layer,
                    "spearman": float(np.mean(rho)) if rho else None,
                    "ssim": float(np.mean([r["ssim"] for r in rows])),
                    "images": len(rows),
                }
            )
        return out


def cascade_layers(model: torch.nn.Module) -> list[str]:
    """The step names :func:`cascading_sanity` reports for ``model``, ``original`` first."""
    return [ORIGINAL] + [name for name, _, _ in randomisation_order(model)]


def cascading_sanity(
    loaded: LoadedModel,
    images: Sequence[PreparedImage],
    settings: MapSettings,
    *,
    smoothing: Smoothing = "none",
    seed: int = 0,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> SanityResult:
    """Run the cascade for ``images`` (module docstring for the protocol and the scores).

    Args:
        loaded: the trained model; it is not modified (the cascade runs on a deep copy).
        images: prepared images (:func:`~inspector.core.explain.load_image`).
        settings: the method and its knobs; ``class_index=None`` is replaced per image by the
            trained model's prediction, so every step explains the same class.
        smoothing: as for a single map.
        seed: seed of the re-initialisation (a forked RNG: the global one is left as it was).
        progress: ``progress(steps_done, text)`` after each step.
        stop: when set, the cascade ends before its next step; the result has ``stopped``.
    """
    if not images:
        raise ValueError("the sanity check needs at least one image")
    stop = stop or threading.Event()
    work = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model).eval())

    def maps_now(per_image: list[MapSettings]) -> list[np.ndarray]:
        out = []
        for image, s in zip(images, per_image, strict=True):
            cap = capture_image(work, image)  # autograd on: gradient methods need it
            drawing = ExplainSettings(map=s, smoothing=smoothing, show_overlay=False)
            result = explain_one(work, image, drawing, capture=cap)  # the one pipeline
            out.append(result.full)  # (S, S) float32 in [0, 1]
        return out

    targets = []
    for image in images:
        cap = capture_image(work, image)
        targets.append(cap.resolve_class(settings.class_index))
    per_image = [settings.replace(class_index=c) for c in targets]
    reference = maps_now(per_image)
    layers, maps, records = [], [], []

    def record(name: str, current: list[np.ndarray]) -> None:
        step = len(layers)
        layers.append(name)
        maps.append(np.stack(current))
        for i, (ref, now) in enumerate(zip(reference, current, strict=True)):
            records.append(
                {
                    "step": step,
                    "layer": name,
                    "image": i,
                    "name": _name(images[i], i),
                    "spearman": _spearman(ref, now),
                    "ssim": ssim(ref, now, data_range=1.0),
                }
            )
        if progress:
            progress(step + 1, name)

    record(ORIGINAL, maps_now(per_image))
    stopped = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, modules, bare in randomisation_order(work.model):
            if stop.is_set():
                stopped = True
                break
            reinitialise(work.model, modules, bare)
            record(name, maps_now(per_image))
    return SanityResult(
        layers=layers,
        records=records,
        maps=np.stack(maps).astype(np.float32),
        target_classes=targets,
        settings={**settings.to_dict(), "smoothing": smoothing, "seed": seed},
        stopped=stopped,
        names=[_name(im, i) for i, im in enumerate(images)],
    )


def _name(image: PreparedImage, index: int) -> str:
    return image.path.name if image.path is not None else f"image {index}"


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def sanity_figure(
    result: SanityResult,
    displays: Sequence[np.ndarray],
    *,
    tile: int = 96,
    cmap: str = "jet",
) -> np.ndarray:
    """One row per image: the input, then the map after each step, each labelled with the
    step's layer name, Spearman's rho and SSIM. ``(H, W, 3)`` uint8.

    Args:
        result: from :func:`cascading_sanity`.
        displays: ``(S, S, 3)`` uint8 per image, as the model sees it.
        tile: side of each picture in pixels.
        cmap: colour map of the saliency maps.
    """
    if len(displays) != result.maps.shape[1]:
        raise ValueError(f"{len(displays)} pictures for {result.maps.shape[1]} images")
    font, small = _font(12), _font(11)
    head, foot, pad = 18, 30, 6
    cols = 1 + len(result.layers)
    width = pad + cols * (tile + pad)
    height = pad + len(displays) * (head + tile + foot + pad)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    scores = {(r["step"], r["image"]): r for r in result.records}

    def paste(rgb: np.ndarray, col: int, row: int, title: str, lines: Sequence[str]) -> None:
        x = pad + col * (tile + pad)
        y = pad + row * (head + tile + foot + pad)
        draw.text((x, y + 2), title, fill="black", font=font)
        pic = Image.fromarray(np.ascontiguousarray(rgb[..., :3])).resize(
            (tile, tile), Image.Resampling.BILINEAR
        )
        img.paste(pic, (x, y + head))
        for k, line in enumerate(lines):
            draw.text((x, y + head + tile + 2 + 13 * k), line, fill="black", font=small)

    for i, display in enumerate(displays):
        paste(display, 0, i, result.names[i][:14] if result.names else "input", ["input"])
        for step, layer in enumerate(result.layers):
            r = scores[(step, i)]
            rho = "n/a" if r["spearman"] is None else f"{r['spearman']:.3f}"
            paste(
                colorize(result.maps[step, i], cmap),
                step + 1,
                i,
                layer,
                [f"rho {rho}", f"SSIM {r['ssim']:.3f}"],
            )
    return np.asarray(img)
