"""Image to model input, exactly as stored in a checkpoint's :class:`Preprocess`.

Two steps, kept apart because the GUI needs the first on its own:

1. :func:`prepare_image`: geometry only, uint8 in and out. ``resize`` maps the image to
   ``S x S`` (aspect ratio not kept); ``resize_crop`` (the ImageNet convention) resizes the
   short side to ``R = resize_size`` (default ``round(S / 0.875)``, i.e. 256 for 224) keeping
   the aspect ratio, then cuts the central ``S x S`` square. Resampling is PIL's
   (bilinear / bicubic, antialiased when shrinking), and sizes and crop offsets follow
   torchvision's ``Resize(R)`` + ``CenterCrop(S)`` on PIL images, so models trained with
   torchvision or timm see the same pixels. This array is what the GUI draws under the
   saliency overlay, so overlay pixel (r, c) is the input pixel (r, c).
2. :func:`normalise_uint8`: ``x = (u / 255 - mean) / std`` per channel, batched, any device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .config import Preprocess

__all__ = [
    "PreprocessError",
    "crop_box",
    "denormalise",
    "normalise_uint8",
    "prepare_image",
    "resized_size",
    "to_tensor",
]

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
CROP_FRACTION = 0.875  # the ImageNet convention: 224 / 256


class PreprocessError(ValueError):
    """An image or batch has the wrong type or shape, or the Preprocess is inconsistent."""


def _resize_size(pre: Preprocess) -> int:
    size = pre.resize_size if pre.resize_size is not None else round(pre.image_size / CROP_FRACTION)
    if size < pre.image_size:
        raise PreprocessError(
            f"resize_size {size} is smaller than the crop image_size {pre.image_size}"
        )
    return int(size)


def resized_size(height: int, width: int, pre: Preprocess) -> tuple[int, int]:
    """``(H', W')`` of the image after the resize step, before any crop.

    ``resize``: ``(S, S)``. ``resize_crop``: the short side becomes ``R`` and the long side
    ``int(R * long / short)`` (torchvision's rule, truncating).
    """
    if pre.policy == "resize":
        return pre.image_size, pre.image_size
    if pre.policy != "resize_crop":
        raise PreprocessError(
            f"unknown resize policy {pre.policy!r}; use 'resize' or 'resize_crop'"
        )
    r = _resize_size(pre)
    if height <= width:
        return r, int(r * width / height)
    return int(r * height / width), r


def crop_box(height: int, width: int, pre: Preprocess) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the centre crop inside the resized image.

    Offsets are torchvision's ``CenterCrop``: ``top = int(round((H' - S) / 2))``.
    """
    h2, w2 = resized_size(height, width, pre)
    s = pre.image_size
    top = int(round((h2 - s) / 2.0))
    left = int(round((w2 - s) / 2.0))
    return top, left, top + s, left + s


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise PreprocessError(f"expected a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise PreprocessError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise PreprocessError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")


def prepare_image(image: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """The image exactly as the model sees it, before normalisation.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, any size.
        preprocess: the model's input pipeline.

    Returns:
        ``(S, S, 3)`` uint8 with ``S = preprocess.image_size`` (a new array).

    Raises:
        PreprocessError: wrong type, dtype or shape; unknown policy or interpolation.
    """
    _check_image(image)
    if preprocess.interpolation not in _RESAMPLE:
        raise PreprocessError(
            f"unknown interpolation {preprocess.interpolation!r}; use one of {tuple(_RESAMPLE)}"
        )
    h, w = image.shape[:2]
    h2, w2 = resized_size(h, w, preprocess)
    if (h2, w2) == (h, w):
        resized = image  # no resampling: an image already at size passes through unchanged
    else:
        pil = Image.fromarray(np.ascontiguousarray(image))
        pil = pil.resize((w2, h2), resample=_RESAMPLE[preprocess.interpolation])  # PIL: (W, H)
        resized = np.asarray(pil, dtype=np.uint8)
    top, left, bottom, right = crop_box(h, w, preprocess)
    return np.array(resized[top:bottom, left:right], dtype=np.uint8, copy=True)


def unalign_mask(
    display_mask: np.ndarray, image_shape: tuple[int, int], preprocess: Preprocess
) -> np.ndarray:
    """The inverse of :func:`align_mask`: a mask drawn on the display -> the original image.

    A mask painted or boxed on what the model sees must outlive the model: another checkpoint
    may resize or crop differently, so the window keeps the mask in the original image's
    geometry and aligns it again. The display mask is put back where the centre crop took it
    from, inside the resized image (what the crop cut off is outside the mask: nothing was
    drawn there), resized to the original size bilinearly and cut at one half, as
    :func:`align_mask` does the other way. ``align_mask(unalign_mask(m))`` is ``m`` exactly
    when the image needed no resize, and up to the two resamplings' edge pixels otherwise.

    Args:
        display_mask: ``(S, S)`` bool with ``S = preprocess.image_size``.
        image_shape: ``(H, W)`` of the original image.
        preprocess: the model's preprocessing the display was made with.

    Returns:
        ``(H, W)`` bool.
    """
    m = np.asarray(display_mask)
    s = preprocess.image_size
    if m.shape != (s, s):
        raise ValueError(f"a display mask must be ({s}, {s}), got shape {m.shape}")
    h, w = int(image_shape[0]), int(image_shape[1])
    h2, w2 = resized_size(h, w, preprocess)
    top, left, bottom, right = crop_box(h, w, preprocess)
    canvas = np.zeros((h2, w2), np.uint8)  # the resized image's geometry
    canvas[top:bottom, left:right] = np.where(m > 0, 255, 0)
    if (h2, w2) == (h, w):
        return canvas >= 128
    pil = Image.fromarray(canvas).resize((w, h), resample=Image.Resampling.BILINEAR)
    return np.asarray(pil) >= 128


def normalise_uint8(
    batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """``(u / 255 - mean) / std`` per channel, on the batch's own device.

    Computed as ``u * (1 / (255 std)) - mean / std`` (one multiply-subtract per element).

    Args:
        batch: ``(N, C, H, W)`` uint8 tensor (CPU or GPU).
        mean: C channel means in [0, 1] units.
        std: C channel standard deviations (positive).

    Returns:
        ``(N, C, H, W)`` float32 on ``batch.device``.
    """
    if not isinstance(batch, torch.Tensor) or batch.dtype != torch.uint8 or batch.ndim != 4:
        desc = (
            f"{batch.dtype} tensor of shape {tuple(batch.shape)}"
            if isinstance(batch, torch.Tensor)
            else type(batch).__name__
        )
        raise PreprocessError(f"expected an (N, C, H, W) uint8 tensor, got a {desc}")
    c = batch.shape[1]
    if len(mean) != c or len(std) != c:
        raise PreprocessError(f"{c} channels but {len(mean)} means and {len(std)} stds")
    if any(s <= 0 for s in std):
        raise PreprocessError(f"std must be positive, got {tuple(std)}")
    std64 = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * std64)).float().to(batch.device).view(1, c, 1, 1)
    shift = (torch.tensor(mean, dtype=torch.float64) / std64).float()
    shift = shift.to(batch.device).view(1, c, 1, 1)
    return batch.to(torch.float32).mul_(scale).sub_(shift)  # (N, C, H, W)


def to_tensor(images: np.ndarray | torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """Images to the model's normalised input batch.

    Args:
        images: ``(H, W, 3)`` or ``(N, H, W, 3)`` uint8 numpy, or ``(N, 3, H, W)`` /
            ``(3, H, W)`` uint8 torch tensor (any device; the result stays on it).
        preprocess: the model's input pipeline (geometry as :func:`prepare_image`).

    Returns:
        ``(N, 3, S, S)`` float32.
    """
    s = preprocess.image_size
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim not in (3, 4) or images.shape[-3] != 3:
            raise PreprocessError(
                "expected an (N, 3, H, W) or (3, H, W) uint8 tensor, got a "
                f"{images.dtype} tensor of shape {tuple(images.shape)}"
            )
        batch = images if images.ndim == 4 else images[None]  # (N, 3, H, W)
        if preprocess.policy == "resize" and tuple(batch.shape[-2:]) == (s, s):
            return normalise_uint8(batch, preprocess.mean, preprocess.std)  # no resampling
        hwc = batch.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
        prepared = np.stack([prepare_image(im, preprocess) for im in hwc])
        out = torch.from_numpy(prepared).permute(0, 3, 1, 2).to(batch.device)
        return normalise_uint8(out, preprocess.mean, preprocess.std)
    if not isinstance(images, np.ndarray):
        raise PreprocessError(
            f"expected a numpy array or torch tensor of images, got {type(images).__name__}"
        )
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[0] < 1:
        raise PreprocessError(
            f"expected an (H, W, 3) or (N, H, W, 3) uint8 array, got shape {images.shape}"
        )
    prepared = np.stack([prepare_image(im, preprocess) for im in images])  # (N, S, S, 3)
    batch = torch.from_numpy(prepared).permute(0, 3, 1, 2)  # (N, 3, S, S)
    return normalise_uint8(batch, preprocess.mean, preprocess.std)


def denormalise(x: torch.Tensor, preprocess: Preprocess) -> np.ndarray:
    """Inverse of the normalisation, for display: ``round(clip((x std + mean) 255))``.

    Args:
        x: ``(N, 3, S, S)`` or ``(3, S, S)`` float tensor (any device).
        preprocess: the pipeline whose mean/std were used.

    Returns:
        ``(N, S, S, 3)`` or ``(S, S, 3)`` uint8 numpy array.
    """
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise PreprocessError("expected an (N, 3, H, W) or (3, H, W) float tensor")
    t = x.detach().to("cpu", torch.float64)
    mean = torch.tensor(preprocess.mean, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(preprocess.std, dtype=torch.float64).view(3, 1, 1)
    u = ((t * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return u.movedim(-3, -1).numpy().copy()


class MaskSizeError(ValueError):
    """A mask that does not belong to its image: its size differs from the image's."""


def align_mask(
    mask: np.ndarray, image_shape: tuple[int, int], preprocess: Preprocess
) -> np.ndarray:
    """The one mask alignment: a mask of the original image -> the model's input geometry.

    A mask belongs to its image, so one of another size is refused with both sizes named
    (never stretched); an accepted mask goes through the same resize / centre crop as the
    image (:func:`prepare_image`) and is cut at one half, so mask pixel (r, c) lies on display
    pixel (r, c).

    Args:
        mask: ``(H, W)`` bool (or 0/1) mask of the original image.
        image_shape: ``(H, W)`` of the original image the mask belongs to.
        preprocess: the model's preprocessing.

    Returns:
        ``(S, S)`` bool, on the display's pixels.

    Raises:
        MaskSizeError: the mask's size differs from the image's.
        ValueError: the mask is not two-dimensional.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {m.shape}")
    h, w = int(image_shape[0]), int(image_shape[1])
    if m.shape != (h, w):
        raise MaskSizeError(
            f"the mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h} (width x height); "
            "a mask must have its image's size"
        )
    u8 = np.where(m > 0, 255, 0).astype(np.uint8)
    out = prepare_image(np.repeat(u8[:, :, None], 3, axis=2), preprocess)
    return out[:, :, 0] >= 128
