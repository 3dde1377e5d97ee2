"""Atomic writes and the vit-inspector checkpoint format: round trip, safety, clear errors."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import stat
import warnings

import numpy as np
import pytest
import torch

import inspector
from inspector.core import checkpoint as ckpt_mod
from inspector.core.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from inspector.core.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    safe_torch_load,
    save_checkpoint,
)
from inspector.core.config import Preprocess, TrainConfig, ViTConfig
from inspector.core.model import VisionTransformer

# ----------------------------------------------------------------------------------------
# atomic.py
# ----------------------------------------------------------------------------------------


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_creates_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "a.bin"
    assert atomic_write_bytes(path, b"first") == path
    assert path.read_bytes() == b"first"
    with pytest.raises(FileExistsError, match=r"a\.bin exists; pass overwrite=True / --overwrite"):
        atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"first"
    atomic_write_bytes(path, b"second", overwrite=True)
    assert path.read_bytes() == b"second"
    atomic_write_text(tmp_path / "t.txt", "line\nzwei ü\n")
    assert (tmp_path / "t.txt").read_bytes() == "line\nzwei ü\n".encode()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_atomic_failure_midway_keeps_old_file_and_no_temp(tmp_path, exc_type):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old contents")
    with pytest.raises(exc_type), atomic_path(path, overwrite=True) as tmp:
        assert tmp.parent == tmp_path  # same folder, so os.replace is a rename
        with open(tmp, "wb") as fh:
            fh.write(b"half of the new")
        raise exc_type("disk on fire")
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_atomic_failure_without_old_file_leaves_nothing(tmp_path):
    path = tmp_path / "new.bin"
    with pytest.raises(ValueError), atomic_path(path) as tmp:
        tmp.write_bytes(b"partial")
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_refuses_before_writing_and_when_created_meanwhile(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("keep")
    with pytest.raises(FileExistsError), atomic_path(path):
        pytest.fail("the body must not run when the file exists")
    # Another process creates the file while we write: still no silent overwrite.
    other = tmp_path / "y.txt"
    with pytest.raises(FileExistsError), atomic_path(other) as tmp:
        tmp.write_text("mine")
        other.write_text("theirs")
    assert other.read_text() == "theirs"
    assert _leftovers(tmp_path) == []


def test_atomic_missing_folder_and_umask_permissions(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "f.bin", b"x")
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "perm.bin", b"x")
    finally:
        os.umask(old)
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / "perm.bin").stat().st_mode) == 0o644


# ----------------------------------------------------------------------------------------
# checkpoint.py
# ----------------------------------------------------------------------------------------
CFG = ViTConfig(image_size=16, patch_size=4, num_classes=3, hidden_size=8, depth=2, num_heads=2)
PRE = Preprocess(image_size=16, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
NAMES = ["cat", "dog", "newt"]


def _model(cfg: ViTConfig = CFG, seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer(cfg)
    with torch.no_grad():  # make every parameter non-trivial (LayerNorms start at 1/0)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _ckpt(cfg: ViTConfig = CFG) -> Checkpoint:
    return Checkpoint.from_model(
        _model(cfg),
        class_names=NAMES[: cfg.num_classes],
        preprocess=Preprocess(image_size=cfg.image_size),
    )


def test_round_trip_every_field_and_identical_logits(tmp_path):
    model = _model()
    history = [
        {"epoch": 1, "train_loss": 1.25, "val_acc": 0.5, "per_class": [0.1, 0.2, 0.3]},
        {"epoch": 2, "train_loss": np.float32(0.75), "val_acc": 0.625, "per_class": [1, 2, 3]},
    ]
    train_cfg = TrainConfig(epochs=2, batch_size=4)
    ckpt = Checkpoint.from_model(
        model,
        class_names=NAMES,
        preprocess=PRE,
        train_config=train_cfg.to_dict(),
        history=history,
        provenance={"dataset": {"name": "synthetic", "n": 30}, "seed": 7},
    )
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    assert path == tmp_path / "m.pt" and _leftovers(tmp_path) == []
    back = load_checkpoint(path)

    assert back.config == CFG
    assert back.class_names == NAMES
    assert back.preprocess == PRE
    assert back.train_config == train_cfg.to_dict()
    assert TrainConfig.from_dict(back.train_config) == train_cfg
    assert back.history[0] == history[0]
    assert back.history[1] == {
        "epoch": 2,
        "train_loss": 0.75,
        "val_acc": 0.625,
        "per_class": [1, 2, 3],
    }
    assert type(back.history[1]["train_loss"]) is float  # numpy scalar stored as a Python float
    assert back.provenance == ckpt.provenance
    prov = back.provenance
    assert prov["dataset"] == {"name": "synthetic", "n": 30} and prov["seed"] == 7
    assert prov["code_version"] == inspector.__version__
    assert prov["torch_version"] == torch.__version__
    assert "git_commit" in prov
    created = dt.datetime.fromisoformat(prov["created_utc"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 600

    ref_sd = model.state_dict()
    assert back.state_dict.keys() == ref_sd.keys()
    for k, v in ref_sd.items():
        assert torch.equal(back.state_dict[k], v), k
        assert back.state_dict[k].device.type == "cpu" and back.state_dict[k].is_contiguous()

    rebuilt = back.build_model()
    assert not rebuilt.training
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
        ours, theirs = rebuilt.forward_with_attention(x), model.forward_with_attention(x)
        assert torch.equal(ours.logits, theirs.logits)
        pairs = zip(ours.attentions, theirs.attentions, strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)


def test_file_is_plain_weights_only_torch(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _ckpt())
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT_NAME == "vit-inspector"
    assert raw["format_version"] == FORMAT_VERSION == 1
    assert raw["config"] == CFG.to_dict()
    assert set(raw) == {
        "format",
        "format_version",
        "config",
        "config_digest",
        "state_dict",
        "class_names",
        "preprocess",
        "train_config",
        "history",
        "provenance",
    }


def test_snapshot_is_independent_of_later_training():
    model = _model()
    ckpt = Checkpoint.from_model(model, class_names=NAMES, preprocess=PRE)
    before = ckpt.state_dict["head.weight"].clone()
    with torch.no_grad():
        model.head.weight.add_(1.0)
    assert torch.equal(ckpt.state_dict["head.weight"], before)


class _RunsCommand:
    """Unpickling this calls os.system(cmd): the classic malicious checkpoint."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_malicious_torch_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = _ckpt().to_payload()
    payload["provenance"] = {"note": _RunsCommand(f"touch {marker}")}
    torch.save(payload, evil)
    with pytest.raises(CheckpointError, match="refused to load") as info:
        load_checkpoint(evil)
    msg = str(info.value)
    assert "pickled Python objects" in msg and "could run code" in msg
    assert "save a state_dict instead" in msg and "system" in msg
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_raw_pickle_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as fh:
        pickle.dump({"state_dict": _RunsCommand(f"touch {marker}")}, fh, protocol=protocol)
    with pytest.raises(CheckpointError, match="refused to load") as info:
        load_checkpoint(evil)
    assert "could run code" in str(info.value)
    assert not marker.exists()


def test_whole_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(_model(), path)  # the common mistake: torch.save(model) instead of its state
    with pytest.raises(CheckpointError, match="refused to load.*pickled Python objects"):
        load_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_not_a_checkpoint_files(tmp_path):
    from PIL import Image

    rand = tmp_path / "random.pt"
    rand.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    # The first byte of a random file could be 0x80 (pickle) or 'P' (zip); force neither.
    rand.write_bytes(b"\x17" + rand.read_bytes()[1:])
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n" * 20)
    png = tmp_path / "image.pt"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, format="PNG")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    safet = tmp_path / "weights.safetensors"  # the safetensors layout, written by hand
    safet.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\x80?")

    expectations = {
        rand: "unknown binary file",
        text: "a text file",
        png: "a PNG image",
        empty: "is empty",
        safet: "safetensors file",
    }
    for path, what in expectations.items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        msg = str(info.value)
        assert what in msg, msg
        assert str(path) in msg
        if path not in (empty, safet):
            assert "not a checkpoint" in msg
    with pytest.raises(CheckpointError, match="opened via the importer"):
        load_checkpoint(safet)


def test_other_zip_archives(tmp_path):
    import zipfile

    archive = tmp_path / "notes.pt"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "not weights")
    with pytest.raises(CheckpointError, match="zip archive but not one written by torch.save"):
        load_checkpoint(archive)
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated; we only need a file
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), scripted)
    with pytest.raises(CheckpointError, match="TorchScript archive.*never run"):
        load_checkpoint(scripted)


def test_truncated_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _ckpt())
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(cut)
    # torch's legacy (pre-zip) format, cut short, gets the same diagnosis.
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(50)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(legacy)


def test_foreign_torch_files(tmp_path):
    sd_path = tmp_path / "plain.pth"
    torch.save(_model().state_dict(), sd_path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(sd_path)
    msg = str(info.value)
    assert "not a vit-inspector checkpoint" in msg and "plain state_dict" in msg
    assert "importer" in msg and "cls_token" in msg
    # ... but the safe loader itself reads it (for the importers).
    assert safe_torch_load(sd_path).keys() == _model().state_dict().keys()

    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": _model().state_dict(), "epoch": 3}, wrapped)
    with pytest.raises(
        CheckpointError, match="not a vit-inspector checkpoint.*top-level keys: model, epoch"
    ):
        load_checkpoint(wrapped)
    a_list = tmp_path / "list.pt"
    torch.save([torch.ones(2)], a_list)
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        load_checkpoint(a_list)


def _save_payload(path, **changes):
    payload = _ckpt().to_payload()
    payload.update(changes)
    torch.save(payload, path)
    return path


def test_unsupported_format_version(tmp_path):
    path = _save_payload(tmp_path / "v2.pt", format_version=2)
    with pytest.raises(CheckpointError, match="format version 2.*reads version 1.*newer"):
        load_checkpoint(path)


def test_invalid_config_includes_config_error_text(tmp_path):
    bad = {**CFG.to_dict(), "num_heads": 3}
    path = _save_payload(tmp_path / "bad.pt", config=bad)
    with pytest.raises(CheckpointError, match="invalid model config") as info:
        load_checkpoint(path)
    assert "hidden_size 8 is not divisible by num_heads 3" in str(info.value)

    unknown = {**CFG.to_dict(), "flux_capacitor": True}
    path = _save_payload(tmp_path / "unknown.pt", config=unknown)
    with pytest.raises(CheckpointError, match="unknown ViTConfig field.*flux_capacitor"):
        load_checkpoint(path)


def test_config_weight_mismatch_names_key_and_both_shapes(tmp_path):
    # Config says hidden 16, weights are hidden 8.
    path = _save_payload(tmp_path / "mm.pt", config=CFG.replace(hidden_size=16).to_dict())
    with pytest.raises(CheckpointError, match="do not match") as info:
        load_checkpoint(path)
    msg = str(info.value)
    # qkv: (3 * 8, 8) in the file vs (3 * 16, 16) from the config.
    assert "blocks.0.attn.qkv.weight: weights (24, 8) vs config (48, 16)" in msg
    assert "cls_token: weights (1, 1, 8) vs config (1, 1, 16)" in msg

    # The same check guards Checkpoint.build_model for in-memory checkpoints.
    ckpt = _ckpt()
    ckpt.config = CFG.replace(depth=3, distill_token=True)
    with pytest.raises(CheckpointError) as info:
        ckpt.build_model()
    msg = str(info.value)
    assert "missing keys:" in msg and "blocks.2.attn.qkv.weight" in msg and "dist_token" in msg

    ckpt = _ckpt()
    ckpt.state_dict["extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match="unexpected keys: extra.weight"):
        ckpt.build_model()


def test_inconsistent_metadata_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="2 class names for a model with num_classes=3"):
        Checkpoint.from_model(_model(), class_names=["a", "b"], preprocess=PRE)
    with pytest.raises(CheckpointError, match="preprocess.image_size 32"):
        Checkpoint.from_model(_model(), class_names=NAMES, preprocess=Preprocess(image_size=32))
    with pytest.raises(CheckpointError, match=r"history\[0\]\['when'\].*cannot store a object"):
        Checkpoint.from_model(
            _model(), class_names=NAMES, preprocess=PRE, history=[{"when": object()}]
        )
    path = _save_payload(tmp_path / "names.pt", class_names=["only-one"])
    with pytest.raises(CheckpointError, match="1 class names"):
        load_checkpoint(path)


def test_save_refuses_to_overwrite(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _ckpt())
    original = path.read_bytes()
    other = Checkpoint.from_model(_model(seed=5), class_names=NAMES, preprocess=PRE)
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_checkpoint(path, other)
    assert path.read_bytes() == original
    save_checkpoint(path, other, overwrite=True)
    assert torch.equal(
        load_checkpoint(path).state_dict["head.weight"], other.state_dict["head.weight"]
    )


def test_failed_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", _ckpt())
    original = path.read_bytes()
    real_save = torch.save

    def save_then_crash(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # a complete temp file ...
        with open(f, "r+b") as fh:  # ... then the disk fills up halfway through
            fh.truncate(100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", save_then_crash)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, _ckpt(), overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    load_checkpoint(path).build_model()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_saves_and_loads_on_cpu(tmp_path):  # pragma: no cover - GPU machines only
    model = _model().cuda()
    path = save_checkpoint(
        tmp_path / "gpu.pt", Checkpoint.from_model(model, class_names=NAMES, preprocess=PRE)
    )
    back = load_checkpoint(path, map_location="cpu")
    assert all(v.device.type == "cpu" for v in back.state_dict.values())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back.build_model()(x), model(x.cuda()).cpu())
    on_gpu = load_checkpoint(path, map_location="cuda").build_model("cuda")
    assert next(on_gpu.parameters()).device.type == "cuda"
