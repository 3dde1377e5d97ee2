"""Why does a model stay at chance? Measure how much its hidden states still depend on the input.

    python scripts/diagnose_collapse.py --data ../shared/data/tiny-imagenet-10 \
        STUDY/runs/baseline/seed-0/last.pt STUDY/runs/no-residual/seed-0/last.pt

For each checkpoint, on the test split, and for a freshly initialised model of the same
configuration (seed 0, as training starts), after every block:

* token diversity: mean over images of ``||X - mean_t X|| / ||X||`` for the tokens ``X (T, D)``
  of one image; 0 means every token is the same vector (the rank collapse of attention without
  skip connections, Dong et al. 2021);
* image diversity of the class token: ``||C - mean_n C|| / ||C||`` for the class-token states
  ``C (N, D)`` of all images; 0 means the class token no longer depends on the image, so the
  classifier cannot either;

then the image diversity of what the head sees (after the final norm), and the gradient norm of
the cross-entropy with respect to the patch embedding on one training batch of 128.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from inspector.core.checkpoint import load_checkpoint
from inspector.core.data import load_dataset
from inspector.core.model import build_model
from inspector.core.preprocess import normalise_uint8


def _ratio(x: torch.Tensor, dim: int) -> float:
    return float((x - x.mean(dim=dim, keepdim=True)).norm() / x.norm().clamp_min(1e-30))


@torch.no_grad()
def diversity(
    model: torch.nn.Module, images: torch.Tensor
) -> tuple[list[float], list[float], float]:
    """Per block: token diversity and class-token image diversity; then the head's input."""
    model.eval()
    x = model.embed(images)  # (N, T, D)
    tokens, cls = [], []
    for block in model.blocks:
        x = block(x)
        per_image = (x - x.mean(dim=1, keepdim=True)).flatten(1).norm(dim=1)
        tokens.append(float((per_image / x.flatten(1).norm(dim=1).clamp_min(1e-30)).mean()))
        cls.append(_ratio(x[:, 0], dim=0))
    head_in = model.norm(x)[:, 0]
    return tokens, cls, _ratio(head_in, dim=0)


def embed_grad_norm(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(images)
    loss = (
        F.nll_loss(out.clamp_min(1e-12).log(), labels)
        if model.cfg.output_softmax
        else F.cross_entropy(out, labels)
    )
    loss.backward()
    weight = next(p for n, p in model.named_parameters() if n.startswith("patch_embed"))
    return float(weight.grad.norm())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="synthetic or a Tiny ImageNet folder")
    args = parser.parse_args(argv)
    data = load_dataset(args.data, classes=10, seed=0)
    torch.manual_seed(0)
    batch = torch.randperm(len(data.train))[:128]
    print(
        "| model | state | token diversity per block | class-token image diversity per "
        "block | head input image diversity | patch-embedding grad norm |"
    )
    print("|---|---|---|---|---|---|")
    for path in args.checkpoints:
        ckpt = load_checkpoint(path)
        name = path.parent.parent.name if path.stem == "last" else path.stem
        mean, std = ckpt.preprocess.mean, ckpt.preprocess.std
        test = normalise_uint8(data.test.images, mean, std)
        train = normalise_uint8(data.train.images[batch], mean, std)
        labels = data.train.labels[batch]
        torch.manual_seed(0)
        fresh = build_model(ckpt.config)
        for state, model in (("initialised", fresh), ("trained", ckpt.build_model())):
            tok, cls, head = diversity(model, test)
            grad = embed_grad_norm(model, train, labels)
            print(
                f"| {name} | {state} | {' '.join(f'{v:.3f}' for v in tok)} | "
                f"{' '.join(f'{v:.3f}' for v in cls)} | {head:.3g} | {grad:.3g} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
