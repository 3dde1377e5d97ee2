"""Fuzzing the CLI's numeric and path arguments (issue 13): for any value, the command is a
clean run (rc 0, every promised file present) or a one-line error with a non-zero exit and
nothing written; never a traceback, and never partial output.

The values come from hypothesis: integers of any size and sign, floats with nan / inf / -0,
and strings that are not numbers; paths that are missing, folders, FIFOs, dangling links,
empty files and files of junk. Valid values are kept cheap (a few tiny epochs), because a
valid value means a real run.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from inspector.cli import main
from inspector.cli.errors import EXIT_FAILED, EXIT_USAGE
from inspector.core.checkpoint import Checkpoint, save_checkpoint
from inspector.core.config import Preprocess, preset
from inspector.core.data import make_synthetic
from inspector.core.model import VisionTransformer

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same cases in CI as here: a failure is reproducible
)

NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.integers(min_value=-3, max_value=12).map(str),  # the edges: 0, 1, -1, a layer count
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "0.999999999", "1.0", "", "abc",
                     "0x10", "1_000", "\u0661", " 3 ", "--1"]),
)  # fmt: skip


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (rc, stdout, stderr). argparse's own refusals raise
    SystemExit(2) after printing usage and one ``error:`` line; that is a clean refusal too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return rc, out.getvalue(), err.getvalue()


def _assert_clean(rc: int, stdout: str, stderr: str, out_dir: Path, promised: list[str]) -> None:
    assert "Traceback" not in stderr + stdout, stderr
    written = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    if rc == 0:
        missing = [name for name in promised if name not in written]
        assert not missing, (missing, written)
        return
    assert rc in (EXIT_USAGE, EXIT_FAILED), (rc, stderr)
    lines = stderr.strip().splitlines()
    # Ours ("vit-inspector: error: ...") and argparse's ("vit-inspector CMD: error: ...").
    assert len(lines) == 1 and lines[0].startswith("vit-inspector") and "error:" in lines[0], lines
    assert not [w for w in written if not w.startswith(".")], written  # nothing partial


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    model = VisionTransformer(preset("baseline")).eval()
    ckpt = Checkpoint.from_model(
        model, class_names=[f"class {i}" for i in range(10)], preprocess=Preprocess()
    )
    data = make_synthetic(seed=3, train_per_class=1, val_per_class=1, test_per_class=1)
    Image.fromarray(data.test.images[0].permute(1, 2, 0).numpy()).save(root / "shape.png")
    Image.fromarray(data.test.masks[0].numpy().astype(np.uint8) * 255).save(root / "mask.png")
    (root / "names.txt").write_text("\n".join(f"n{i}" for i in range(10)) + "\n")
    hostile = root / "hostile"
    hostile.mkdir()
    (hostile / "empty").write_bytes(b"")
    (hostile / "junk").write_bytes(os.urandom(300))
    (hostile / "folder").mkdir()
    os.mkfifo(hostile / "fifo")
    (hostile / "dangling").symlink_to(hostile / "nowhere")
    return {
        "ckpt": save_checkpoint(root / "model.pt", ckpt),
        "image": root / "shape.png",
        "mask": root / "mask.png",
        "names": root / "names.txt",
        "hostile": [
            str(hostile / n) for n in ("empty", "junk", "folder", "fifo", "dangling", "nowhere")
        ]
        + ["", "/dev/null"],
    }


EXPLAIN_NUMBERS = ["--discard", "--class", "--layer", "--head", "--query", "--start-layer",
                   "--threshold", "--opacity", "--image-size", "--heads"]  # fmt: skip


@FUZZ
@given(
    method=st.sampled_from(["attention", "rollout", "grad-rollout", "relevance", "cls-attention"]),
    values=st.dictionaries(st.sampled_from(EXPLAIN_NUMBERS), NUMBER_TEXT, min_size=1, max_size=3),
)
def test_explain_numbers_are_a_run_or_one_line(files, method, values):
    out = Path(tempfile.mkdtemp()) / "out"
    argv = ["explain", "--checkpoint", str(files["ckpt"]), "--image", str(files["image"])]
    argv += ["--mask", str(files["mask"]), "--method", method, "--device", "cpu"]
    argv += ["--out", str(out)]
    for flag, value in values.items():
        argv += [f"{flag}={value}"]  # '=' so that "-1" is a value, not an option
    rc, stdout, stderr = _run(argv)
    promised = [f"shape_{method}.png", f"shape_{method}.npy", "shape.json"]
    _assert_clean(rc, stdout, stderr, out, promised)


PATH_FLAGS = ["--checkpoint", "--image", "--mask", "--class-names", "--out"]


@FUZZ
@given(flag=st.sampled_from(PATH_FLAGS), which=st.integers(min_value=0, max_value=7))
def test_explain_paths_are_a_run_or_one_line(files, flag, which):
    out = Path(tempfile.mkdtemp()) / "out"
    paths = {
        "--checkpoint": str(files["ckpt"]),
        "--image": str(files["image"]),
        "--mask": str(files["mask"]),
        "--class-names": str(files["names"]),
        "--out": str(out),
    }
    paths[flag] = files["hostile"][which]
    argv = ["explain", "--device", "cpu"]
    for name, value in paths.items():
        argv += [f"{name}={value}"]
    rc, stdout, stderr = _run(argv)
    target = Path(paths["--out"])
    if flag == "--out":
        # A hostile --out is refused (or, for an empty folder, used); files around it stay.
        assert rc != 0 or target.is_dir(), (rc, stderr)
        assert "Traceback" not in stderr + stdout, stderr
        if rc != 0:
            assert len(stderr.strip().splitlines()) == 1, stderr
        return
    _assert_clean(rc, stdout, stderr, out, ["shape_rollout.png", "shape.json"])


TRAIN_NUMBERS = ["--lr", "--weight-decay", "--warmup", "--grad-clip", "--seed", "--batch-size"]
TRAIN_VALUE = st.one_of(
    NUMBER_TEXT,
    st.floats(min_value=0, max_value=1).map(repr),  # valid for all six: real runs
    st.integers(min_value=1, max_value=300).map(str),
)


@FUZZ
@given(
    values=st.dictionaries(st.sampled_from(TRAIN_NUMBERS), TRAIN_VALUE, min_size=1, max_size=3),
    epochs=st.sampled_from(["1", "1", "1", "2", "-1", "0", "nan", "2.5", ""]),
    per_class=st.sampled_from(["1", "1", "2", "2", "-2", "0", "1e3", "x"]),
    classes=st.sampled_from(["2", "3", "10", "-1", "0", "1", "11", "99999999999999999999"]),
)
def test_train_numbers_are_a_run_or_one_line(values, epochs, per_class, classes):
    out = Path(tempfile.mkdtemp()) / "run"
    argv = ["train", "--data", "synthetic", "--device", "cpu", "--out", str(out)]
    argv += [f"--epochs={epochs}", f"--train-per-class={per_class}", f"--classes={classes}"]
    for flag, value in values.items():
        argv += [f"{flag}={value}"]
    rc, stdout, stderr = _run(argv)
    if rc == EXIT_FAILED:
        # A diverged run (a learning rate of 1e300, say) is a clean failure: it says so, in
        # one line, and keeps what it had (no epoch: nothing but the folder).
        assert "Traceback" not in stderr + stdout and "non-finite" in stdout + stderr, stderr
        return
    _assert_clean(rc, stdout, stderr, out, ["run_state.pt", "last.pt", "best.pt", "history.json"])


@FUZZ
@given(
    values=st.dictionaries(
        st.sampled_from(["--threshold", "--discard", "--faithfulness", "--batch-size"]),
        st.one_of(NUMBER_TEXT, st.floats(0, 1).map(repr), st.integers(1, 4).map(str)),
        min_size=1,
        max_size=2,
    ),
    limit=st.sampled_from(["1", "2", "2", "-5", "0", "nan", "1e9"]),
)
def test_evaluate_numbers_are_a_run_or_one_line(files, values, limit):
    out = Path(tempfile.mkdtemp()) / "eval"
    argv = ["evaluate", "--checkpoint", str(files["ckpt"]), "--data", "synthetic"]
    argv += ["--split", "test", "--methods", "rollout", "--device", "cpu", "--out", str(out)]
    argv += [f"--limit={limit}"]
    for flag, value in values.items():
        argv += [f"{flag}={value}"]
    rc, stdout, stderr = _run(argv)
    _assert_clean(rc, stdout, stderr, out, ["summary.json"])


@FUZZ
@given(
    command=st.sampled_from(["convert", "sanity", "evaluate"]),
    flag=st.sampled_from(["--checkpoint", "--out"]),
    which=st.integers(min_value=0, max_value=7),
)
def test_other_commands_paths_are_a_run_or_one_line(files, command, flag, which):
    out = Path(tempfile.mkdtemp()) / "out"
    given_out = files["hostile"][which] if flag == "--out" else str(out)
    argv = [command, f"--checkpoint={files['ckpt']}", f"--out={given_out}"]
    if flag == "--checkpoint":
        argv[1] = f"--checkpoint={files['hostile'][which]}"
    if command == "sanity":
        argv += [f"--image={files['image']}", "--device=cpu"]
    elif command == "evaluate":
        argv += ["--data=synthetic", "--limit=1", "--methods=rollout", "--device=cpu"]
    else:
        argv[2] = f"--out={given_out if flag == '--out' else str(out) + '.pt'}"
    before = {p: os.path.getsize(p) for p in files["hostile"] if os.path.isfile(p)}
    rc, stdout, stderr = _run(argv)
    assert "Traceback" not in stderr + stdout, stderr
    if rc != 0:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "error:" in lines[0], lines
    # A hostile path is never written through: the files it names keep their bytes.
    assert before == {p: os.path.getsize(p) for p in before}
    if flag == "--checkpoint":
        assert rc != 0, (argv, stdout)
