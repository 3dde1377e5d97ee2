"""Capture once: one forward pass records logits and every layer's attention.

Every saliency map (see :mod:`inspector.core.saliency`) is a pure function of a :class:`Capture`,
so moving a slider (method, fusion, discard ratio, layer, head, query token) never re-runs the
model. The only model call after the capture is the gradient of a class score with respect to the
attention, ``dy_c/dA``, which gradient methods need; it is computed on demand with one extra
forward + backward pass and cached per class.

Models are reached through a small adapter interface, :class:`AttentionModel`, so that other
families (timm, torchvision, Hugging Face) can be plugged in by writing an adapter; our own
:class:`~inspector.core.model.VisionTransformer` is wrapped by :class:`ViTAdapter`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from .model import ModelOutput, VisionTransformer
from .token_layout import TokenLayout

__all__ = [
    "AttentionModel",
    "Capture",
    "CaptureError",
    "ViTAdapter",
    "capture",
    "capture_batch",
    "compute_gradients",
]


# The scores a gradient method can differentiate (Capture.gradients): logit, the class's
# pre-softmax score (for models whose forward ends in a softmax, the input to that softmax),
# which never saturates; probability, softmax(logits)[c], vit-explain's and the paper's choice,
# whose gradient underflows in float32 on confident models; log-probability,
# log softmax(logits)[c].
TARGETS: tuple[str, ...] = ("logit", "probability", "log-probability")


class CaptureError(ValueError):
    """Bad input to a capture (wrong tensor shape, class index out of range, bad adapter)."""


@runtime_checkable
class AttentionModel(Protocol):
    """What the capture needs from a model.

    Required:
        forward_with_attention(x): ``x`` ``(B, C, H, W)`` -> ``ModelOutput(logits (B, K),
            attentions)`` where ``attentions`` is a list, one per layer, of ``(B, heads, T, T)``
            attention probabilities (rows sum to 1) that stay in the autograd graph.
        num_prefix_tokens: tokens before the patch tokens (1 for the class token, 2 with a
            distillation token). Token 0 must be the class token.
        grid_size: ``(rows, cols)`` of the patch grid; patches are in row-major order.

    Optional (read with ``getattr``, defaults in brackets):
        residual [True]: whether blocks have residual connections; rollout's ``residual="auto"``
            adds the identity only when this is true.
        outputs_probabilities [False]: the model's output is already a softmax (the authors'
            "double softmax" models); then probabilities are not softmaxed again.
        device [device of the input]: where inputs must be moved before the forward pass.
    """

    num_prefix_tokens: int
    grid_size: tuple[int, int]

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput: ...


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Run in eval mode (no dropout) and restore the caller's mode afterwards, so that a
    capture taken during training does not switch the trainer's model out of train mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class ViTAdapter:
    """Adapter for our :class:`~inspector.core.model.VisionTransformer`.

    The forward pass always runs in eval mode (dropout off, so the gradient pass sees the same
    attention as the capture); the model's own mode is restored afterwards.
    """

    def __init__(self, model: VisionTransformer) -> None:
        if not isinstance(model, VisionTransformer):
            raise CaptureError(
                f"ViTAdapter wraps an inspector VisionTransformer, got {type(model).__name__}"
            )
        self.model = model
        cfg = model.cfg
        self.num_prefix_tokens: int = cfg.num_prefix_tokens
        self.grid_size: tuple[int, int] = (cfg.grid_size, cfg.grid_size)
        self.residual: bool = cfg.residual
        self.outputs_probabilities: bool = cfg.output_softmax
        self.num_classes: int = cfg.num_classes
        self.last_extras: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        """Also records ``last_extras["token_norms"]`` ``(B, L, T)``: each block output's L2
        norm per token (the token-norm view), from hooks held only for this call."""
        mids: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []

        def before_mlp(_m: nn.Module, args: tuple) -> None:
            mids.append(args[0])  # (B, T, D): the residual stream entering norm2

        def after_mlp(block: nn.Module):
            def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
                norms.append(block._add(mids[-1], out).detach().norm(dim=-1))  # (B, T)

            return hook

        handles = []
        for block in self.model.blocks:
            handles.append(block.norm2.register_forward_pre_hook(before_mlp))
            handles.append(block.mlp.register_forward_hook(after_mlp(block)))
        try:
            with _eval_mode(self.model):
                out = self.model.forward_with_attention(x)
        finally:
            for h in handles:
                h.remove()
        self.last_extras = {"token_norms": torch.stack(norms, dim=1)} if norms else {}
        return out


def as_adapter(model: AttentionModel | VisionTransformer) -> AttentionModel:
    """Wrap a bare :class:`VisionTransformer` in :class:`ViTAdapter`; pass adapters through."""
    if isinstance(model, VisionTransformer):
        return ViTAdapter(model)
    for name in ("forward_with_attention", "num_prefix_tokens", "grid_size"):
        if not hasattr(model, name):
            raise CaptureError(f"{type(model).__name__} is not an AttentionModel: no {name!r}")
    return model


@dataclass(eq=False)
class Capture:
    """One image's forward pass: logits, probabilities and all attention, on the CPU.

    Attributes:
        logits: ``(K,)`` float32, the model's output (pre-softmax unless the model outputs
            probabilities).
        probabilities: ``(K,)`` float32, softmax of the logits.
        attentions: ``(L, heads, T, T)`` float32, every layer's attention probabilities.
        predicted_class: argmax of the logits.
        num_prefix_tokens: tokens before the patch tokens (class token first).
        grid_size: ``(rows, cols)`` of the patch grid.
        residual: whether the model has residual connections (rollout's "auto").
        token_layout: which prefix token is which and how the model pools
            (:mod:`inspector.core.token_layout`); from the adapter's ``token_layout``, else
            class token first and ``num_prefix_tokens - 1`` further prefix tokens.
        extras: per-image tensors the adapter recorded beside the attention (its
            ``last_extras``): ``token_norms`` ``(L, T)``, ``pool_attention`` ``(T,)``,
            ``features`` ``(D,)``; our own ViT records ``token_norms``.
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    attentions: torch.Tensor
    predicted_class: int
    num_prefix_tokens: int
    grid_size: tuple[int, int]
    residual: bool
    # Kept so that gradients can be computed later without the caller's help.
    adapter: AttentionModel = field(repr=False)
    input: torch.Tensor = field(repr=False)  # (1, C, H, W) on the model's device
    token_layout: TokenLayout | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _gradients: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict, repr=False)
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    @property
    def num_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attentions.shape[1]

    @property
    def num_tokens(self) -> int:
        return self.attentions.shape[-1]

    @property
    def num_classes(self) -> int:
        return self.logits.shape[0]

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """Memoise a value derived from this capture (e.g. head-fused attention) under ``key``.

        Used by :func:`~inspector.core.saliency.compute_map` so that moving a slider recomputes
        only what depends on it. Values must be treated as read-only.
        """
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def top_k(self, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` most probable classes as ``(class_index, probability)``, best first."""
        k = max(0, min(int(k), self.num_classes))
        probs, idx = self.probabilities.topk(k)
        return [(int(i), float(p)) for i, p in zip(idx, probs, strict=True)]

    def resolve_class(self, class_index: int | None) -> int:
        """``None`` -> the predicted class; otherwise check the range and return it."""
        if class_index is None:
            return self.predicted_class
        c = int(class_index)
        if not 0 <= c < self.num_classes:
            raise CaptureError(
                f"class index {class_index} is out of range for a model with "
                f"{self.num_classes} classes (valid: 0..{self.num_classes - 1})"
            )
        return c

    def has_gradients(self, class_index: int | None = None, target: str = "logit") -> bool:
        return (self.resolve_class(class_index), target) in self._gradients

    def gradients(self, class_index: int | None = None, target: str = "logit") -> torch.Tensor:
        """``d y_c / d A`` for every layer, ``(L, heads, T, T)`` on the CPU (float32 for the
        logit; float64 for the probability targets, whose values can be below float32's range).

        ``y_c`` is chosen by ``target`` (:data:`~inspector.core.saliency.TARGETS`):

        * ``logit``: the class's pre-softmax score. For a model whose forward ends in a softmax
          (the authors' files), that is the input to that softmax, whose gradient does not
          vanish when the output saturates.
        * ``probability``: ``softmax(z)_c`` (vit-explain's and the paper's maps); its gradient
          is ``p_c (dz_c - sum_k p_k dz_k)``, which underflows in float32 on confident models.
        * ``log-probability``: ``log softmax(z)_c``.

        Computed with one forward + backward pass the first time a (class, target) is asked
        for, then served from a cache.

        Args:
            class_index: target class; ``None`` means the predicted class.
            target: ``logit``, ``probability`` or ``log-probability``.
        """
        c = self.resolve_class(class_index)
        _check_target(target)
        if (c, target) not in self._gradients:
            grads = _attention_gradients(self.adapter, self.input, [c], target)
            self._gradients[(c, target)] = grads[0]
        return self._gradients[(c, target)]


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise CaptureError(f"unknown gradient target {target!r}; choose from: {', '.join(TARGETS)}")


def _check_input(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise CaptureError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise CaptureError(f"input must be (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise CaptureError("input batch is empty")
    if not x.is_floating_point():
        raise CaptureError(
            f"input must be a preprocessed float tensor, got dtype {x.dtype} (convert uint8 "
            "images with the model's preprocessing first)"
        )
    return x


def _device(adapter: AttentionModel, x: torch.Tensor, device: torch.device | str | None):
    if device is not None:
        return torch.device(device)
    adapter_device = getattr(adapter, "device", None)
    return x.device if adapter_device is None else adapter_device


def _check_output(adapter: AttentionModel, out: ModelOutput, batch: int) -> None:
    logits, attns = out.logits, out.attentions
    if logits.ndim != 2 or logits.shape[0] != batch:
        raise CaptureError(
            f"adapter returned logits of shape {tuple(logits.shape)}, "
            f"expected ({batch}, num_classes)"
        )
    if len(attns) == 0:
        raise CaptureError("adapter returned no attention layers")
    rows, cols = adapter.grid_size
    T = adapter.num_prefix_tokens + rows * cols
    for i, a in enumerate(attns):
        if a.ndim != 4 or a.shape[0] != batch or a.shape[-2:] != (T, T):
            raise CaptureError(
                f"attention of layer {i} has shape {tuple(a.shape)}, expected ({batch}, heads, "
                f"{T}, {T}) for a {rows}x{cols} grid with {adapter.num_prefix_tokens} prefix "
                "token(s)"
            )


def capture_batch(
    model: AttentionModel | VisionTransformer,
    x: torch.Tensor,
    *,
    device: torch.device | str | None = None,
) -> list[Capture]:
    """One forward pass over a batch; one :class:`Capture` per image.

    Args:
        model: an :class:`AttentionModel` adapter or a bare ``VisionTransformer``.
        x: preprocessed images ``(B, C, H, W)`` (or one ``(C, H, W)``).
        device: where to run; default the adapter's device, else the input's.

    Returns:
        ``B`` captures; their tensors are CPU float32, each image's attention ``(L, h, T, T)``.
    """
    adapter = as_adapter(model)
    x = _check_input(x).to(_device(adapter, x, device))
    with torch.no_grad():
        out = adapter.forward_with_attention(x)
    _check_output(adapter, out, x.shape[0])
    logits = out.logits.detach().float().cpu()  # (B, K)
    if getattr(adapter, "outputs_probabilities", False):
        probs = logits.clone()
    else:
        probs = logits.softmax(dim=-1)
    attn = torch.stack([a.detach().float().cpu() for a in out.attentions], dim=1)  # (B,L,h,T,T)
    residual = bool(getattr(adapter, "residual", True))
    rows, cols = adapter.grid_size
    layout = getattr(adapter, "token_layout", None) or _default_layout(adapter)
    extras = {
        k: v.detach().float().cpu()
        for k, v in (getattr(adapter, "last_extras", None) or {}).items()
        if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == x.shape[0]
    }  # per image: (B, ...) -> sliced below
    return [
        Capture(
            logits=logits[i].clone(),
            probabilities=probs[i].clone(),
            attentions=attn[i].clone(),  # clone: do not keep the whole batch alive per image
            predicted_class=int(logits[i].argmax()),
            num_prefix_tokens=int(adapter.num_prefix_tokens),
            grid_size=(int(rows), int(cols)),
            residual=residual,
            adapter=adapter,
            input=x[i : i + 1].detach(),
            token_layout=layout,
            extras={k: v[i].clone() for k, v in extras.items()},
        )
        for i in range(x.shape[0])
    ]


def _default_layout(adapter: AttentionModel) -> TokenLayout:
    """Our own ViT's order: the class token, then a distillation token if there are two."""
    p = int(adapter.num_prefix_tokens)
    prefix = ("class", "distillation")[:p] if p <= 2 else ("class",) + ("register",) * (p - 1)
    pooling = "class" if p else "mean"
    return TokenLayout(prefix, tuple(int(g) for g in adapter.grid_size), pooling)


def capture(
    model: AttentionModel | VisionTransformer,
    x: torch.Tensor,
    *,
    device: torch.device | str | None = None,
) -> Capture:
    """Capture one image ``(1, C, H, W)`` or ``(C, H, W)``; see :func:`capture_batch`."""
    x = _check_input(x)
    if x.shape[0] != 1:
        raise CaptureError(
            f"capture() takes one image, got a batch of {x.shape[0]}; use capture_batch()"
        )
    return capture_batch(model, x, device=device)[0]


def _pre_softmax(out: ModelOutput, outputs_probabilities: bool) -> torch.Tensor:
    """The class scores ``z`` ``(B, K)`` before any softmax: what the ``logit`` target uses."""
    if out.pre_softmax is not None:
        return out.pre_softmax
    if outputs_probabilities:
        # A foreign model that outputs probabilities without its pre-softmax scores: log p
        # equals z up to a per-image constant, which no class score depends on differently.
        return out.logits.clamp_min(torch.finfo(out.logits.dtype).tiny).log()
    return out.logits


def _cotangents(z: torch.Tensor, classes: torch.Tensor, target: str) -> torch.Tensor:
    """``d y_c / d z`` per image, ``(B, K)`` float64, without cancellation.

    For ``probability``, ``d p_c / d z_k = p_c (delta_ck - p_k)``; on a saturated output
    ``1 - p_c`` is 0 in floating point while the true value is ``sum_{k != c} p_k``, so it is
    computed as that sum (in float64, from ``z``). ``log-probability`` is ``delta_ck - p_k``
    with the same care.
    """
    onehot = torch.zeros(z.shape, dtype=torch.float64, device=z.device)
    onehot.scatter_(1, classes[:, None], 1.0)
    if target == "logit":
        return onehot
    p = z.detach().double().softmax(dim=-1)  # (B, K)
    rest = (p * (1 - onehot)).sum(dim=-1, keepdim=True)  # sum over k != c: 1 - p_c, exactly
    dlogp = -p * (1 - onehot) + onehot * rest  # d log p_c / d z
    if target == "log-probability":
        return dlogp
    p_c = p.gather(1, classes[:, None])
    return p_c * dlogp


def _attention_gradients(
    adapter: AttentionModel, x: torch.Tensor, classes: Sequence[int], target: str = "logit"
) -> list[torch.Tensor]:
    """``d y_{c_i} / d A`` per image of a batch, each ``(L, heads, T, T)`` on the CPU.

    One backward pass from the pre-softmax scores ``z`` with the cotangent ``d y / d z``
    (:func:`_cotangents`). Each image's cotangent is scaled to a maximum of 1 for the float32
    backward pass and the gradient scaled back in float64, so the tiny gradients of a
    saturated softmax neither underflow nor lose precision; ``logit`` gradients stay float32.

    Images in a batch do not interact (LayerNorm is per token, no batch norm), so the gradient
    of ``sum_i y_i[c_i]`` with respect to image i's attention is image i's own gradient.
    """
    # The input requires grad so the attentions are in the graph even when the model's
    # parameters are frozen.
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = adapter.forward_with_attention(x)
        z = _pre_softmax(out, bool(getattr(adapter, "outputs_probabilities", False)))
        idx = torch.as_tensor(list(classes), device=z.device)
        cot = _cotangents(z, idx, target)  # (B, K) float64
        scale = cot.abs().amax(dim=-1, keepdim=True)  # (B, 1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        grads = torch.autograd.grad(
            z, out.attentions, grad_outputs=(cot / scale).to(z.dtype), allow_unused=True
        )
    layers = [
        torch.zeros_like(a) if g is None else g for a, g in zip(out.attentions, grads, strict=True)
    ]
    stacked = torch.stack([g.detach().cpu() for g in layers], dim=1)  # (B, L, h, T, T)
    if target == "logit":
        stacked = stacked.float()
    else:
        stacked = stacked.double() * scale.cpu()[:, :, None, None, None]
    return [stacked[i].clone() for i in range(stacked.shape[0])]


def compute_gradients(
    captures: Sequence[Capture],
    class_indices: Sequence[int | None] | None = None,
    *,
    batch_size: int = 64,
    target: str = "logit",
) -> list[torch.Tensor]:
    """Fill the gradient caches of many captures with batched backward passes.

    For dataset-level work: one forward + backward per ``batch_size`` images instead of one per
    image. Captures that already hold the gradient for their class are skipped. All captures in
    one call must share the same adapter.

    Args:
        captures: captures from :func:`capture_batch`.
        class_indices: target class per capture (``None`` entries = predicted class); default
            the predicted classes.
        batch_size: images per backward pass.
        target: the score differentiated (see :meth:`Capture.gradients`).

    Returns:
        Each capture's gradient ``(L, heads, T, T)``, in order.
    """
    _check_target(target)
    if class_indices is None:
        class_indices = [None] * len(captures)
    if len(class_indices) != len(captures):
        raise CaptureError(f"got {len(class_indices)} class indices for {len(captures)} captures")
    classes = [c.resolve_class(k) for c, k in zip(captures, class_indices, strict=True)]
    todo = [
        i
        for i, (cap, k) in enumerate(zip(captures, classes, strict=True))
        if (k, target) not in cap._gradients
    ]
    if todo and any(captures[i].adapter is not captures[todo[0]].adapter for i in todo):
        raise CaptureError("compute_gradients needs captures taken with the same adapter")
    for start in range(0, len(todo), max(1, batch_size)):
        chunk = todo[start : start + max(1, batch_size)]
        x = torch.cat([captures[i].input for i in chunk], dim=0)
        grads = _attention_gradients(
            captures[chunk[0]].adapter, x, [classes[i] for i in chunk], target
        )
        for i, g in zip(chunk, grads, strict=True):
            captures[i]._gradients[(classes[i], target)] = g
    return [cap._gradients[(k, target)] for cap, k in zip(captures, classes, strict=True)]
