"""Open a library-family model: a plain timm state dict, a timm hub folder, or ``arch=NAME``;
a Hugging Face folder (:mod:`.hf`); an OpenCLIP state dict plus its model name (:mod:`.clip`).

The result, :class:`LibraryCheckpoint`, stands where our :class:`~inspector.core.checkpoint.
Checkpoint` stands for the rest of the app: ``class_names``, ``preprocess``, ``provenance``,
``config`` (the sizes the GUI and CLI show) and ``build_model(device)``, which here returns the
capture adapter around the library's module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from . import LibraryError
from .checkpoint import HEADLESS, LibraryCheckpoint, LibraryConfig, preprocess_from

__all__ = ["LibraryCheckpoint", "LibraryConfig", "is_library_source", "open_library"]


def _class_names(n: int, given: list[str] | None, labels: list[str] | None) -> list[str]:
    from ..interop.common import default_class_names

    if n == 0:
        return [HEADLESS]
    names = given or labels
    if names is not None:
        if len(names) != n:
            raise LibraryError(f"{len(names)} class names for a head of {n} outputs")
        return list(names)
    return default_class_names(n, "timm")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from ..interop.detect import read_file, unwrap_state_dict

    obj, _ = read_file(path)
    sd, _ = unwrap_state_dict(obj, path)
    return sd


def _hub_folder(folder: Path) -> tuple[dict[str, Any], Path]:
    cfg_path = folder / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LibraryError(f"cannot read {cfg_path}: {exc}") from exc
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        if (folder / name).is_file():
            return cfg, folder / name
    raise LibraryError(f"{folder} has a config.json but no model.safetensors or pytorch_model.bin")


def is_library_source(path: str | os.PathLike, arch: str | None = None) -> bool:
    """True for a folder, an explicit ``arch``, or a timm state dict our ViT cannot host."""
    p = Path(path)
    if arch or p.is_dir():
        return True
    from ..interop.common import InteropError
    from .timm_build import is_library_layout

    try:
        sd = _read_weights(p)
        return is_library_layout(sd) or "visual.conv1.weight" in sd

    except (InteropError, LibraryError):
        return False  # let the ordinary importer report the problem in its words


def _default_size(spec: Any, native: int | None) -> int | None:
    # DINOv2 is trained at 518 px but inspected at 224 (16x16 grid with patch 14).
    if "dinov2" in spec.arch and native == 518:
        spec.notes.append("DINOv2 runs at 224 px by default (--image-size 518 for its own size)")
        return 224
    return None


def open_timm(
    sd: Mapping[str, torch.Tensor],
    *,
    arch: str | None = None,
    heads: int | None = None,
    image_size: int | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
    class_names: list[str] | None = None,
    source: str = "",
) -> LibraryCheckpoint:
    """A timm model from its weights: the architecture named (``arch``) or inferred."""
    from .swin import SwinAdapter
    from .timm_build import TimmSpec, build_timm, infer_timm
    from .timm_vit import TimmViTAdapter

    if arch:
        # The named architecture is the template; the sizes still come from the weights
        # (a file may be a deeper/wider/smaller member of the family).
        try:
            spec = infer_timm(sd, heads=heads)
            spec.arch = arch
        except LibraryError:
            head = sd.get("head.weight", sd.get("head.fc.weight"))
            spec = TimmSpec(arch, {"num_classes": 0 if head is None else int(head.shape[0])})
        spec.swin = "swin" in arch
        spec.notes.append(f"timm architecture {arch} (given)")
    else:
        spec = infer_timm(sd, heads=heads)
    size = image_size or _default_size(spec, spec.kwargs.get("img_size"))
    model, side = build_timm(spec, sd, image_size=size)
    if spec.swin:
        adapter: Any = SwinAdapter(model, image_size=side)
        heads_n, width = adapter.num_heads, int(model.num_features)
    else:
        patch = int(model.patch_embed.proj.weight.shape[-1])
        adapter = TimmViTAdapter(model, patch_size=patch, image_size=side)
        heads_n, width = adapter.num_heads, adapter.hidden_size
    layout = adapter.token_layout
    pcfg = dict(model.pretrained_cfg or {})
    pcfg.update(pretrained_cfg or {})
    config = LibraryConfig(
        family="timm",
        arch=spec.arch,
        depth=adapter.num_layers,
        num_heads=heads_n,
        hidden_size=width,
        image_size=side,
        patch_size=adapter.patch_size,
        num_classes=max(1, adapter.num_classes),
        num_prefix_tokens=layout.num_prefix_tokens,
        grid=layout.grid,
    )
    labels = pcfg.get("label_names")
    return LibraryCheckpoint(
        config=config,
        adapter=adapter,
        class_names=_class_names(adapter.num_classes, class_names, labels),
        preprocess=preprocess_from(pcfg, side),
        token_layout=layout,
        provenance={
            "imported_from": f"timm:{spec.arch}",
            "source_file": source,
            "headless": adapter.headless,
            "token_layout": layout.describe(),
            "import_notes": list(spec.notes),
        },
    )


def open_library(
    path: str | os.PathLike,
    options: Any = None,
    *,
    heads: int | None = None,
    device: str | torch.device = "cpu",
) -> LibraryCheckpoint:
    """Open ``path`` (file or folder) as a library model, with :class:`~inspector.core.
    load_options.LoadOptions` applied (arch, heads, image size, class names, normalisation,
    resize policy).

    Raises:
        LibraryError: (a ``ValueError``) with a one-line message for the user.
    """
    from ..interop.common import InteropError
    from ..load_options import LoadOptions, _preprocess_with

    options = options or LoadOptions()
    p = Path(path)
    heads = heads if heads is not None else options.heads
    arch = getattr(options, "arch", None)
    names = options.resolved_class_names()
    try:
        if p.is_dir():
            cfg, weights = _hub_folder(p)
            if "architecture" in cfg:  # timm hub folder
                pcfg = dict(cfg.get("pretrained_cfg") or {})
                if cfg.get("label_names"):
                    pcfg["label_names"] = cfg["label_names"]
                ckpt = open_timm(
                    _read_weights(weights),
                    arch=arch or cfg["architecture"],
                    image_size=options.image_size,
                    pretrained_cfg=pcfg,
                    class_names=names,
                    source=str(weights),
                )
            else:
                from .hf import open_hf_folder

                ckpt = open_hf_folder(p, class_names=names, image_size=options.image_size)
        elif arch and arch.startswith("open_clip:"):
            from .clip import open_open_clip

            ckpt = open_open_clip(_read_weights(p), arch.split(":", 1)[1], source=str(p))
        else:
            sd = _read_weights(p)
            if "visual.conv1.weight" in sd and not arch:
                raise LibraryError(
                    f"{p} is an OpenCLIP state dict; give its model name with "
                    "--arch open_clip:NAME (e.g. open_clip:ViT-B-32)"
                )
            ckpt = open_timm(
                sd,
                arch=arch,
                heads=heads,
                image_size=options.image_size,
                class_names=names,
                source=str(p),
            )
    except InteropError as exc:
        raise LibraryError(str(exc)) from exc
    ckpt.preprocess = _preprocess_with(ckpt.preprocess, options)
    if not options.is_default:
        ckpt.provenance["load_options"] = options.to_dict()
    ckpt.build_model(device)
    return ckpt
