"""Hugging Face CLIP / SigLIP text towers for text prompts, with the tokenizer of the
checkpoint's own folder (``tokenizer.json`` / ``vocab.json`` + ``merges.txt`` / ``spiece.model``
beside ``config.json``; nothing is downloaded).

The scores are the models' own zero-shot logits (:mod:`inspector.core.prompts` forms them from
the image embedding): CLIP ``logit_scale.exp() * cos(image, text)``; SigLIP the same plus its
``logit_bias``. Tokenisation follows each family's published use: CLIP pads to the longest
prompt (its text tower pools at the end-of-text token, with the attention mask); SigLIP pads to
``max_length`` (its tower pools the last position and was trained on padded text).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import LibraryError

__all__ = ["TOKENIZER_FILES", "HFText", "hf_text_tower"]

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer.model")


class HFText:
    """Prompts -> text embeddings ``(K, E)`` (not normalised), plus the logit scale and bias."""

    def __init__(self, model: nn.Module, tokenizer: Any, kind: str) -> None:
        self.model, self.tokenizer, self.kind = model, tokenizer, kind
        self.logit_scale = float(model.logit_scale.detach().exp())
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = 0.0 if bias is None else float(bias.detach().reshape(-1)[0])
        tcfg = model.config.text_config
        self.max_length = int(
            min(getattr(tokenizer, "model_max_length", 10**6), tcfg.max_position_embeddings)
        )

    def tokenize(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The tokenizer's tensors for these prompts, padded as the family expects."""
        padding = "max_length" if self.kind == "siglip" else True
        return dict(
            self.tokenizer(
                list(prompts),
                padding=padding,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(prompts)
        if self.kind == "siglip":
            tokens.pop("attention_mask", None)  # SigLIP's tower is run without a mask
        device = next(self.model.parameters()).device
        keep = ("input_ids", "attention_mask")
        tokens = {k: v.to(device) for k, v in tokens.items() if k in keep}
        with torch.no_grad():
            out = self.model.get_text_features(**tokens)
        # transformers 5 returns the pooled (projected) output in a ModelOutput.
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return feats.float()


def hf_text_tower(model: nn.Module, folder: Path, kind: str) -> tuple[HFText | None, str]:
    """The text tower of a full CLIPModel / SiglipModel with the folder's tokenizer, or None
    and the reason (no text tower; no tokenizer files in the folder)."""
    if getattr(model, "text_model", None) is None:
        return None, "no text tower (a vision-only model)"
    from . import require

    transformers = require("transformers")
    # transformers 5 builds an *empty* tokenizer for a folder without one, which would
    # tokenize every prompt to unknowns: ask for the files themselves.
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None, f"no tokenizer files in {folder} (one of {', '.join(TOKENIZER_FILES)})"
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"no tokenizer in {folder} ({str(exc).splitlines()[0][:120]})"
    vocab = int(model.config.text_config.vocab_size)
    if not callable(tok) or not 2 < len(tok) <= vocab:
        raise LibraryError(
            f"{folder}: the tokenizer has {len(tok)} tokens for a text tower of {vocab}"
        )
    return HFText(model, tok, kind), ""
