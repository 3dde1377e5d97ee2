"""The one safe way to read a ``torch.save`` file: ``weights_only=True``, never a pickled object.

Every reader of torch files (our checkpoints, the importers' foreign state dicts) goes through
:func:`safe_torch_load`, so the refusal of code-carrying pickles and the messages for files that
are not torch files at all (images, text, safetensors, TorchScript, truncated zips) exist once.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "PickledObjectError", "first_line", "safe_torch_load"]

# torch.save's legacy (non-zip) format starts with a protocol-2 pickle of this magic number.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class CheckpointError(Exception):
    """A checkpoint cannot be saved or loaded; the message names the file and the problem."""


class PickledObjectError(CheckpointError):
    """The file holds pickled Python objects (a whole ``nn.Module``, a custom class): refused.

    Attributes:
        needs: the class the pickle asked for (``"torch.nn.modules.linear.Linear"``), if known.
    """

    def __init__(self, message: str, needs: str | None = None) -> None:
        super().__init__(message)
        self.needs = needs


def _describe_foreign(head: bytes) -> str:
    """A short guess of what a non-torch file is, from its first bytes."""
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head[:4] in (b"GIF8", b"II*\x00", b"MM\x00*") or head.startswith(b"BM"):
        return "an image"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy file"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 (Keras) file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "an unknown binary file"
    return "a text file"


def _is_safetensors(head: bytes) -> bool:
    # 8-byte little-endian header length, then a JSON object.
    return len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 10**9


def _is_raw_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _check_torch_zip(p: Path) -> None:
    """Tell a torch.save zip from other zip files (TorchScript, .docx, .npz, ...)."""
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{p} is truncated or corrupt: {exc}") from exc
    if any(n.endswith("/constants.pkl") or "/code/__torch__/" in n for n in names):
        raise CheckpointError(
            f"{p} is a TorchScript archive (torch.jit.save), not a vit-inspector checkpoint; "
            "it holds compiled code, which is never run here; save the model's state_dict "
            "instead"
        )
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise CheckpointError(
            f"{p} is not a checkpoint: it is a zip archive but not one written by torch.save "
            "(no data.pkl inside)"
        )


def safe_torch_load(
    path: str | os.PathLike, *, map_location: Any = "cpu", mmap: bool = False
) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into a clear error.

    Never executes code from the file: only tensors and plain Python containers are
    unpickled. Usable by the importers for foreign ``.pt``/``.pth`` files too.

    Args:
        path: a file written by ``torch.save``.
        map_location: where tensors go (default CPU, so CUDA-saved files load anywhere).
        mmap: memory-map the tensors (zip-format files; legacy files are read as usual).

    Returns:
        Whatever the file holds (a dict for checkpoints and state dicts).

    Raises:
        CheckpointError: missing, empty, not a torch file (text, image, random bytes, plain
            pickle, safetensors), truncated or corrupt.
        PickledObjectError: the file holds pickled Python objects (refused, never run).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint file not found: {p}")
    if not p.is_file():
        raise CheckpointError(f"not a file: {p}")
    with open(p, "rb") as fh:
        head = fh.read(64)
    if not head:
        raise CheckpointError(f"{p} is empty (0 bytes): not a checkpoint")

    if head.startswith(b"PK\x03\x04"):  # torch.save's zip format
        if not zipfile.is_zipfile(p):
            raise CheckpointError(
                f"{p} is truncated or corrupt: the zip archive's directory is missing "
                "(was the file cut short while copying or saving?)"
            )
        _check_torch_zip(p)
    elif head.startswith(_TORCH_LEGACY_MAGIC):
        pass  # torch's legacy pickle-based format; torch.load checks it safely
    elif _is_raw_pickle(head):
        raise CheckpointError(
            f"refused to load {p}: it is a plain Python pickle, not a PyTorch file; pickled "
            "Python objects could run code when loaded; save a state_dict with torch.save "
            "instead"
        )
    elif _is_safetensors(head):
        raise CheckpointError(
            f"{p} is a safetensors file, not a vit-inspector checkpoint; foreign weights are "
            "opened via the importer (inspector.core.interop)"
        )
    else:
        raise CheckpointError(
            f"{p} is not a checkpoint: it looks like {_describe_foreign(head)}, not a file "
            "written by torch.save"
        )

    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the error path says more.
            warnings.simplefilter("ignore", UserWarning)
            # mmap (zip format only) maps tensors instead of reading them: a 330 MB ViT-B
            # opens in milliseconds.
            use_mmap = mmap and head.startswith(b"PK\x03\x04")
            return torch.load(p, map_location=map_location, weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global[: ]+([\w.]+)", text)
        if found or "Unsupported" in text or "weights_only" in text.lower():
            what = f" (it needs {found.group(1)})" if found else ""
            raise PickledObjectError(
                f"refused to load {p}: the file contains pickled Python objects{what}, which "
                "could run code when loaded; save a state_dict instead (tensors, numbers, "
                "strings, lists and dicts only)",
                needs=found.group(1) if found else None,
            ) from exc
        raise CheckpointError(f"{p} is corrupt or not a checkpoint: {first_line(text)}") from exc
    except (EOFError, OSError, RuntimeError, ValueError, KeyError, IndexError) as exc:
        # zip member CRC errors, a legacy file cut short (EOFError), bad storage offsets.
        raise CheckpointError(
            f"{p} is truncated or corrupt and cannot be read: "
            f"{type(exc).__name__}: {first_line(str(exc))}"
        ) from exc


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else "(no detail)"
