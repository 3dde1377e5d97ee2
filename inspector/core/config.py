"""Configuration dataclasses: the ViT architecture (every ablation switch) and training.

Both are plain dataclasses of JSON-able values so that they can be stored inside every
checkpoint and read back without unpickling anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

PosEncoding = Literal["sincos", "learned", "integer", "none"]
Activation = Literal["gelu", "gelu_tanh", "relu"]

POS_ENCODINGS: Final = ("sincos", "learned", "integer", "none")
ACTIVATIONS: Final = ("gelu", "gelu_tanh", "relu")


class ConfigError(ValueError):
    """A configuration value is out of range or inconsistent."""


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a Vision Transformer.

    Defaults are the seed paper's baseline (docs/ARCHITECTURE.md section 5): 64x64 RGB input, 8x8
    patches, sine/cosine positions, 4 pre-norm blocks of 4 heads at hidden size 8, no
    attention output projection and no final LayerNorm. The fields after ``dropout`` exist
    so that timm / torchvision / Hugging Face ViTs can be imported into the same class.
    """

    image_size: int = 64
    patch_size: int = 8
    in_channels: int = 3
    num_classes: int = 10
    hidden_size: int = 8
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    activation: Activation = "gelu"
    pos_encoding: PosEncoding = "sincos"
    residual: bool = True
    layernorm: bool = True
    dropout: float = 0.0
    attn_dropout: float = 0.0
    # --- switches for foreign ViTs ---
    qkv_bias: bool = True
    attn_out_proj: bool = False
    final_norm: bool = False
    layer_norm_eps: float = 1e-5
    distill_token: bool = False  # DeiT-distilled: a second prefix token with its own head
    # The authors' code applied a softmax inside the model (then cross-entropy on top);
    # kept as a switch so the ablation runner can reproduce that "double softmax".
    output_softmax: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "image_size",
            "patch_size",
            "in_channels",
            "num_classes",
            "hidden_size",
            "depth",
            "num_heads",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if problems:
            raise ConfigError("; ".join(problems))
        if self.image_size % self.patch_size:
            problems.append(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.hidden_size % self.num_heads:
            problems.append(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.pos_encoding not in POS_ENCODINGS:
            problems.append(
                f"pos_encoding must be one of {POS_ENCODINGS}, got {self.pos_encoding!r}"
            )
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.mlp_ratio <= 0:
            problems.append(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if problems:
            raise ConfigError("; ".join(problems))

    # Derived sizes --------------------------------------------------------------------
    @property
    def grid_size(self) -> int:
        """Patches per image side."""
        return self.image_size // self.patch_size

    @property
    def approx_parameters(self) -> int:
        """The parameter count from the sizes alone (biases and norms included), so a model
        too large for the machine is refused before anything is allocated."""
        d, t = self.hidden_size, self.num_patches + self.num_prefix_tokens
        mlp = int(d * self.mlp_ratio)
        block = 3 * d * d + 3 * d + 2 * d * mlp + mlp + d + 4 * d
        block += d * d + d if self.attn_out_proj else 0
        embed = self.in_channels * self.patch_size**2 * d + d + t * d
        return self.depth * block + embed + (d + 1) * self.num_classes + 2 * d

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patch tokens: the class token, plus DeiT's distillation token."""
        return 2 if self.distill_token else 1

    @property
    def num_tokens(self) -> int:
        return self.num_patches + self.num_prefix_tokens

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_dim(self) -> int:
        return int(round(self.hidden_size * self.mlp_ratio))

    # Serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViTConfig:
        """Build from a stored dict; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown ViTConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ViTConfig:
        return dataclasses.replace(self, **changes)


# The paper's baseline and its 13 one-change ablations (docs/ARCHITECTURE.md section 5).
_PRESET_CHANGES: Final[dict[str, dict[str, Any]]] = {
    "baseline": {},
    "pos-learned": {"pos_encoding": "learned"},
    "pos-integer": {"pos_encoding": "integer"},
    "blocks-1": {"depth": 1},
    "blocks-2": {"depth": 2},
    "blocks-8": {"depth": 8},
    "heads-1": {"num_heads": 1},
    "heads-2": {"num_heads": 2},
    "heads-8": {"num_heads": 8},
    "hidden-4": {"hidden_size": 4},
    "hidden-16": {"hidden_size": 16},
    "hidden-32": {"hidden_size": 32},
    "no-residual": {"residual": False},
    "no-layernorm": {"layernorm": False},
}
PRESETS: Final[tuple[str, ...]] = tuple(_PRESET_CHANGES)


def preset(name: str, **overrides: Any) -> ViTConfig:
    """The named paper model, optionally with further changes (e.g. ``num_classes``).

    ``hidden-4`` with 8 heads would not divide; the paper's variants change one thing
    from the baseline, so this never happens for the 14 presets themselves.
    """
    if name not in _PRESET_CHANGES:
        raise ConfigError(f"unknown preset {name!r}; choose from: {', '.join(PRESETS)}")
    return ViTConfig(**{**_PRESET_CHANGES[name], **overrides})


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; defaults are the paper's (docs/ARCHITECTURE.md section 5)."""

    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    # "adamw" decouples weight decay as the original ViT paper did; "adam" adds it to the
    # gradient (torch.optim.Adam's weight_decay), for users reproducing older code.
    optimizer: Literal["adamw", "adam"] = "adamw"
    warmup_fraction: float = 0.1  # linear warm-up over this share of all steps, then linear decay
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    label_smoothing: float = 0.0
    augment: bool = False  # random horizontal flips

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            problems.append(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.optimizer not in ("adamw", "adam"):
            problems.append(f"optimizer must be 'adamw' or 'adam', got {self.optimizer!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(
                f"grad_clip must be positive or None (no clipping), got {self.grad_clip}"
            )
        if problems:
            raise ConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input tensor (stored in every checkpoint).

    Images are resized to ``image_size`` (``resize``) or resized on the short side to
    ``resize_size`` then centre-cropped (``resize_crop``, the ImageNet convention), scaled
    to [0, 1], then normalised per channel with ``mean`` / ``std``.
    """

    image_size: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    policy: Literal["resize", "resize_crop"] = "resize"
    resize_size: int | None = None
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)


__all__ = [
    "ACTIVATIONS",
    "POS_ENCODINGS",
    "PRESETS",
    "ConfigError",
    "Preprocess",
    "TrainConfig",
    "ViTConfig",
    "preset",
]
