"""A hostile environment (issue 13): full and read-only disks, FIFOs, SIGTERM.

Full / read-only file systems are real tmpfs mounts when the tests run as root and may mount;
otherwise a read-only folder (chmod, which binds a non-root user only) and a file-size limit
(``RLIMIT_FSIZE``: the kernel fails the write with EFBIG, through the same code paths as
ENOSPC) stand in for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.cli import main
from inspector.core.atomic import WriteError, atomic_path
from inspector.core.checkpoint import Checkpoint, save_checkpoint
from inspector.core.config import Preprocess, preset
from inspector.core.model import VisionTransformer

REPO = Path(__file__).resolve().parent.parent
POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX file systems and signals")


def one_line_error(capsys, rc: int) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert rc == 2, (rc, captured.err)
    assert len(err) == 1 and err[0].startswith("vit-inspector: error:"), err
    assert "Traceback" not in captured.err
    return err[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("env")
    torch.manual_seed(0)
    ckpt = Checkpoint.from_model(
        VisionTransformer(preset("baseline")),
        class_names=[f"c{i}" for i in range(10)],
        preprocess=Preprocess(),
    )
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "img.png")
    return {"ckpt": save_checkpoint(root / "model.pt", ckpt), "image": root / "img.png"}


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and sys.platform.startswith("linux")


@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def read_only(tmp_path):
    """A folder nothing can be written into."""
    if _can_mount():
        with _tmpfs(tmp_path / "ro", "ro,size=1m") as path:
            yield path
        return
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path):
    """A file system with no free space left (root: a filled 200 KB tmpfs)."""
    if not _can_mount():
        pytest.skip("needs root to mount a tmpfs (the file-size-limit test covers the rest)")
    with _tmpfs(tmp_path / "full", "size=200k") as path:
        with contextlib.suppress(OSError), open(path / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        yield path


def _commands(files, folder: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", "--data", "synthetic", "--epochs", "1", "--train-per-class", "2",
                  "--device", "cpu", "--out", str(folder / "run")],
        "explain": ["explain", "--checkpoint", str(files["ckpt"]), "--image", str(files["image"]),
                    "--device", "cpu", "--out", str(folder / "maps")],
        "convert": ["convert", "--checkpoint", str(files["ckpt"]), "--out", str(folder / "m.pt")],
        "evaluate": ["evaluate", "--checkpoint", str(files["ckpt"]), "--data", "synthetic",
                     "--limit", "2", "--methods", "rollout", "--device", "cpu",
                     "--out", str(folder / "eval")],
    }  # fmt: skip


@POSIX
@pytest.mark.parametrize("command", ["train", "explain", "convert", "evaluate"])
def test_read_only_file_system_is_one_line_before_the_work(files, read_only, capsys, command):
    if os.geteuid() == 0 and not _can_mount():
        pytest.skip("root ignores a read-only folder's permissions")
    rc = main(_commands(files, read_only)[command])
    line = one_line_error(capsys, rc)
    assert "cannot write" in line or "Read-only" in line or "ermission" in line, line
    assert "epoch 1/" not in capsys.readouterr().err  # refused before training, not after


@POSIX
@pytest.mark.parametrize("command", ["train", "explain", "convert", "evaluate"])
def test_full_disk_is_one_line_before_the_work(files, full_disk, capsys, command):
    rc = main(_commands(files, full_disk)[command])
    line = one_line_error(capsys, rc)
    assert "free space" in line or "No space" in line, line
    assert not [p for p in full_disk.rglob("*") if p.name != "filler" and p.is_file()]


@POSIX
def test_a_small_disk_refuses_training_before_the_first_epoch(tmp_path, capsys):
    if not _can_mount():
        pytest.skip("needs root to mount a tmpfs")
    with _tmpfs(tmp_path / "small", "size=200k") as small:
        rc = main(_commands({"ckpt": "-", "image": "-"}, small)["train"])
        line = one_line_error(capsys, rc)
        assert "not enough free space" in line


@POSIX
def test_torch_save_failing_mid_file_is_a_one_line_write_error(tmp_path):
    """torch.save reports a failed write as RuntimeError("... inline_container.cc ..."); the
    atomic writer turns it into a WriteError and removes its temporary file."""
    script = (
        "import resource, signal, sys, torch\n"
        "from inspector.core.atomic import WriteError, atomic_path\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "try:\n"
        f"    with atomic_path({str(tmp_path / 'big.pt')!r}) as tmp:\n"
        "        torch.save(torch.zeros(1_000_000), tmp)\n"
        "except WriteError as exc:\n"
        "    print('WriteError', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("WriteError cannot write"), done.stdout + done.stderr
    assert "\n" not in done.stdout.strip()
    assert list(tmp_path.iterdir()) == []  # neither big.pt nor a temporary file


def test_write_error_is_an_oserror_the_cli_prints_in_one_line():
    assert issubclass(WriteError, OSError)
    with pytest.raises(FileNotFoundError), atomic_path("/nonexistent-folder-xyz/f.txt"):
        pass


# ------------------------------------------------------------------------------ FIFOs (17)
@POSIX
def test_fifo_arguments_are_refused_without_blocking(files, tmp_path):
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cases = [
        ["explain", "--checkpoint", str(files["ckpt"]), "--image", str(files["image"]),
         "--class-names", str(fifo), "--out", str(tmp_path / "o")],
        ["convert", "--checkpoint", str(fifo), "--out", str(tmp_path / "m.pt")],
        ["explain", "--checkpoint", str(files["ckpt"]), "--image", str(fifo),
         "--out", str(tmp_path / "o")],
    ]  # fmt: skip
    for argv in cases:
        # A subprocess with a timeout: the bug was a read that never returns.
        done = subprocess.run(
            [sys.executable, "-m", "inspector.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(err) == 1, done.stderr
        assert "FIFO" in err[0]


# ----------------------------------------------------------------------------- SIGTERM (19)
@POSIX
def test_sigterm_stops_training_gracefully_with_143_and_a_resume_hint(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "inspector.cli", "train", "--data", "synthetic",
            "--epochs", "30", "--train-per-class", "2", "--batch-size", "8", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    lines = []
    for line in proc.stderr:  # wait until the first epoch is committed
        lines.append(line)
        if line.startswith("epoch 1/30"):
            proc.send_signal(signal.SIGTERM)
            break
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == 143, "".join(lines) + rest
    assert "SIGTERM" in rest and "--resume" in rest
    assert "Traceback" not in rest
    from inspector.core.run_state import load_run_state

    state = load_run_state(out)
    assert state is not None and 1 <= state.epoch < 30
    assert not list(out.glob(".*.tmp"))
