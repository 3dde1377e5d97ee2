"""The ablation study: report numbers against a direct evaluation, resume, jobs, atomicity."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from inspector.core.capture import capture
from inspector.core.checkpoint import CheckpointError, load_checkpoint
from inspector.core.explain import from_checkpoint
from inspector.core.export import read_png_metadata
from inspector.core.metrics import smm
from inspector.core.postprocess import normalise, overlay, upsample
from inspector.core.saliency import MapSettings, compute_map
from inspector.core.study import AblationError, StudySpec, format_cell, run_dir, run_study
from inspector.core.study.figures import figure_indices, saliency_figure
from inspector.core.study.report import commit_files

PRESETS = ("baseline", "heads-2")
TIMING = {"eval_seconds", "train_seconds", "reused", "settings"}


def _spec(**kw) -> StudySpec:
    base = dict(
        classes=3,
        presets=PRESETS,
        epochs=2,
        device="cpu",
        train_per_class=8,
        val_per_class=2,
        test_per_class=2,
        threads=1,
    )
    return StudySpec(**{**base, **kw})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One uninterrupted tiny study, shared (read-only) by the tests below."""
    out = tmp_path_factory.mktemp("study")
    events = []
    result = run_study(_spec(), out, callback=events.append)
    return out, result, events


def _numbers(out: Path) -> list[dict]:
    runs = json.loads((out / "report.json").read_text())["runs"]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in runs]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _one_thread():
    """Tiny models on a busy 2-core machine run several times faster on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _direct(out: Path, preset: str, spec: StudySpec, threshold: float) -> dict:
    """Evaluate ``last.pt`` independently of the study code: a hand-normalised forward,
    scikit-learn metrics, and SMM of maps computed here."""
    with _one_thread():
        return _direct_eval(out, preset, spec, threshold)


def _direct_eval(out: Path, preset: str, spec: StudySpec, threshold: float) -> dict:
    data = _test_split(spec)
    ckpt = load_checkpoint(run_dir(out, preset, 0) / "last.pt")
    model = ckpt.build_model().eval()
    mean = torch.tensor(ckpt.preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(ckpt.preprocess.std).view(1, 3, 1, 1)
    x = (data.images.double() / 255.0 - mean) / std  # (N, 3, 64, 64)
    with torch.no_grad():
        out_ = model(x.float()).double()
    probs = out_ if ckpt.config.output_softmax else out_.softmax(-1)
    probs = (probs / probs.sum(-1, keepdim=True)).numpy()
    y = data.labels.numpy()
    pred = probs.argmax(1)
    p, r, f1, _ = precision_recall_fscore_support(
        y, pred, average="macro", zero_division=0, labels=[0, 1, 2]
    )
    settings = MapSettings(method="rollout", fusion="min", discard_ratio=0.0)
    smms = []
    for i in range(len(data)):
        grid = compute_map(capture(model, x[i : i + 1].float()), settings=settings)
        smms.append(smm(grid, data.masks[i].numpy(), threshold))
    history = json.loads((run_dir(out, preset, 0) / "history.json").read_text())
    return {
        "train_acc": history[-1]["train_acc"],
        "accuracy": accuracy_score(y, pred),
        "precision": p,
        "recall": r,
        "f1": f1,
        "roc_auc": roc_auc_score(y, probs, multi_class="ovr", average="macro"),
        "confusion": confusion_matrix(y, pred, labels=[0, 1, 2]).tolist(),
        "smm": float(np.mean([s for s in smms if s is not None])),
        "smm_per_image": smms,
    }


_DATA: dict = {}


def _test_split(spec: StudySpec):
    from inspector.core.study import load_study_data

    if spec.training_identity().__repr__() not in _DATA:
        _DATA[spec.training_identity().__repr__()] = load_study_data(spec).test
    return _DATA[spec.training_identity().__repr__()]


# --------------------------------------------------------------------------------- results
def test_report_numbers_match_a_direct_evaluation_of_the_saved_models(study):
    out, result, _ = study
    assert result.status == "finished"
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    csv_rows = {
        r["model"]: r for r in csv.DictReader(io.StringIO((out / "report.csv").read_text()))
    }
    for preset in PRESETS:
        want = _direct(out, preset, _spec(), 0.3)
        (run,) = [r for r in report["runs"] if r["preset"] == preset]
        (row,) = [r for r in report["rows"] if r["model"] == preset]
        assert run["confusion"] == want["confusion"]
        # The study scores float32 maps, the reference float64 ones: a pixel within rounding of
        # the threshold may flip, changing one image's IoU by 1 / |S ∪ M| (< 0.005 here).
        got_smm, want_smm = np.array(run["smm_per_image"]), np.array(want["smm_per_image"])
        assert np.abs(got_smm - want_smm).max() < 5e-3
        assert np.sum(np.abs(got_smm - want_smm) < 1e-9) >= len(want_smm) - 2
        for key in ("train_acc", "accuracy", "precision", "recall", "f1", "roc_auc", "smm"):
            tol = 5e-3 if key == "smm" else 1e-6
            assert run[key] == pytest.approx(want[key], abs=tol), key
            assert row[key]["mean"] == pytest.approx(run[key], abs=1e-12), key
            assert row[key]["std"] is None  # one seed
            assert float(csv_rows[preset][f"{key}_mean"]) == pytest.approx(run[key], abs=1e-12)
        assert run["smm"] == pytest.approx(np.mean(got_smm), abs=1e-12)
        line = next(t for t in md.splitlines() if t.startswith(f"| {preset} |"))
        assert f"{want['accuracy']:.3f}" in line and f"{run['smm']:.3f}" in line
    # The settings are stated in the report.
    assert "method `rollout`, head fusion `min`, discard ratio 0.0, threshold 0.3" in md
    assert "`last.pt`" in md and "double softmax: off" in md


def test_progress_events_cover_the_whole_study(study):
    _, _, events = study
    fractions = [e.fraction for e in events]
    assert all(a <= b + 1e-12 for a, b in zip(fractions, fractions[1:], strict=False))
    assert events[-1].kind == "done" and fractions[-1] == 1.0
    assert events[0].kind == "start" and events[0].fraction == 0.0
    assert [(e.preset, e.index, e.total) for e in events if e.kind == "model_done"] == [
        ("baseline", 1, 2),
        ("heads-2", 2, 2),
    ]
    assert [(e.preset, e.epoch) for e in events if e.kind == "epoch"] == [
        ("baseline", 1),
        ("baseline", 2),
        ("heads-2", 1),
        ("heads-2", 2),
    ]


def test_figures_show_each_model_on_the_same_images(study):
    out, _, _ = study
    spec = _spec()
    test = _test_split(spec)
    report = json.loads((out / "report.json").read_text())
    idx = report["figure_indices"]
    assert [int(test.labels[i]) for i in idx] == [0, 1, 2, 0, 1, 2]  # one per class first
    assert len(set(idx)) == 6
    fig = np.asarray(Image.open(out / "saliency.png").convert("RGB"))
    # Rebuild the heads-2 cell of the third image from the model file and find it in place.
    loaded = from_checkpoint(load_checkpoint(run_dir(out, "heads-2", 0) / "last.pt"))
    display = test.images[idx[2]].permute(1, 2, 0).numpy()
    x = (torch.from_numpy(display).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    cap = capture(loaded.model, x)
    full = normalise(upsample(compute_map(cap, settings=spec.map_settings()), (64, 64)))
    cell = np.kron(overlay(display, full), np.ones((2, 2, 1), dtype=np.uint8))  # 128 px
    # Layout of saliency_figure: 120 px labels, 40 px header, 128 px cells + 16 + 6 px.
    y, x0 = 40 + 2 * (128 + 16 + 6), 120 + 2 * (128 + 6)
    # Equal but where float rounding between the two input paths moves a map value across a
    # colormap-table step (jet: up to 4 levels a step, halved by the 50% opacity, plus the
    # blend's rounding); a cell of another model or image differs by tens of levels.
    diff = np.abs(fig[y : y + 128, x0 : x0 + 128].astype(int) - cell.astype(int))
    assert diff.max() <= 6 and diff.mean() < 0.05
    other = np.abs(fig[y - 150 : y - 150 + 128, x0 : x0 + 128].astype(int) - cell.astype(int))
    assert other.mean() > 5  # the baseline row above is a different picture
    assert fig.shape == (40 + 3 * 150 + 24, 120 + 6 * 134 + 6, 3)
    assert read_png_metadata(out / "saliency.png")["study"]["presets"] == list(PRESETS)
    for preset in PRESETS:
        for folder in ("confusion", "curves"):
            with Image.open(out / folder / f"{preset}.png") as im:
                assert im.size[0] > 100 and im.size[1] > 100


def test_saliency_figure_places_each_model_row_below_the_images():
    # A hand-built case: 2 images, one model; the figure must have one row per model.
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    from inspector.core.data.types import ImageDataset

    test = ImageDataset(
        images, torch.tensor([0, 1]), torch.zeros(2, 16, 16, dtype=torch.bool), ["a", "b"]
    )
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    fig = saliency_figure(test, [0, 1], {"m": [(red, 0), (red, 0)]}, {"m": [0.5, None]}, "t")
    assert fig.shape == (40 + 2 * (32 + 22) + 24, 120 + 2 * 38 + 6, 3)
    assert np.all(fig[40 + 54 : 40 + 54 + 32, 120:152] == (255, 0, 0))


def test_figure_indices_take_one_image_per_class_in_order():
    labels = torch.tensor([2, 0, 0, 1, 2, 0])
    assert figure_indices(labels, 4, 3) == [1, 3, 0, 2]  # class 0, 1, 2, then class 0 again
    assert figure_indices(labels, 10, 3) == [1, 3, 0, 2, 4, 5]  # runs out: all 6, no repeats


def test_cells_are_mean_and_sample_std_over_seeds():
    from inspector.core.study import summarise

    stat = summarise([0.5, 0.7, None])
    assert stat["mean"] == pytest.approx(0.6)
    assert stat["std"] == pytest.approx(np.sqrt(((0.1) ** 2 * 2) / 1))  # ddof = 1
    assert stat["n"] == 2
    assert format_cell(stat) == "0.600 ± 0.141"
    assert format_cell(summarise([None])) == "n/a"


# ----------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("stop_at", ["first-epoch", "first-model"])
def test_interrupted_study_resumes_to_the_same_report(study, tmp_path, stop_at):
    out_ref = study[0]
    stop = threading.Event()

    def on_event(e):
        if stop_at == "first-epoch" and e.kind == "epoch" and e.preset == "baseline":
            stop.set()
        if stop_at == "first-model" and e.kind == "model_done":
            stop.set()

    first = run_study(_spec(), tmp_path, callback=on_event, stop=stop)
    assert first.status == "stopped"
    assert not (tmp_path / "report.md").exists()
    baseline = run_dir(tmp_path, "baseline", 0)
    history = json.loads((baseline / "history.json").read_text())
    assert len(history) == (1 if stop_at == "first-epoch" else 2)
    sha_before = _sha(baseline / "last.pt")

    events = []
    second = run_study(_spec(), tmp_path, callback=events.append)
    assert second.status == "finished"
    assert _numbers(tmp_path) == _numbers(out_ref)
    reused = {r["preset"]: r["reused"] for r in second.runs}
    if stop_at == "first-model":
        assert reused == {"baseline": True, "heads-2": False}
        assert _sha(baseline / "last.pt") == sha_before  # not retrained
        assert all(e.preset != "baseline" for e in events if e.kind == "epoch")
    else:
        assert [e.epoch for e in events if e.kind == "epoch" and e.preset == "baseline"] == [2]


def test_new_saliency_settings_reevaluate_without_retraining(study, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    shas = {p: _sha(run_dir(out, p, 0) / "last.pt") for p in PRESETS}
    events = []
    result = run_study(_spec(threshold=0.5), out, callback=events.append)
    assert result.status == "finished"
    assert not [e for e in events if e.kind in ("epoch", "step")]
    for preset in PRESETS:
        assert _sha(run_dir(out, preset, 0) / "last.pt") == shas[preset]
        want = _direct(out, preset, _spec(), 0.5)
        (run,) = [r for r in result.runs if r["preset"] == preset]
        assert run["smm"] == pytest.approx(want["smm"], abs=5e-3)  # float32 vs float64 maps
        assert run["smm"] != pytest.approx(_direct(out, preset, _spec(), 0.3)["smm"], abs=1e-3)
        entries = json.loads((run_dir(out, preset, 0) / "eval.json").read_text())["entries"]
        assert sorted(e["settings"]["threshold"] for e in entries.values()) == [0.3, 0.5]
    assert "threshold 0.5" in (out / "report.md").read_text()
    # Back to the first settings: served from the cache (same recorded evaluation time).
    again = run_study(_spec(), out)
    old = {r["preset"]: r["eval_seconds"] for r in study[1].runs}
    assert {r["preset"]: r["eval_seconds"] for r in again.runs} == pytest.approx(old, abs=1e-9)


def test_a_failing_run_leaves_the_good_report_in_place(study, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    names = [
        "report.md",
        "report.csv",
        "report.json",
        "saliency.png",
        "confusion/baseline.png",
        "curves/heads-2.png",
    ]
    before = {n: (out / n).read_bytes() for n in names}
    last = run_dir(out, "heads-2", 0) / "last.pt"
    last.write_bytes(last.read_bytes()[:200])  # a truncated checkpoint
    with pytest.raises(CheckpointError):
        run_study(_spec(threshold=0.5), out)  # new settings: it must re-evaluate
    assert {n: (out / n).read_bytes() for n in names} == before
    assert not list(out.rglob("*.tmp"))


def test_commit_files_replaces_all_or_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "c").mkdir()  # a folder where a file should go: the commit must fail
    with pytest.raises(IsADirectoryError):
        commit_files(
            {tmp_path / "a.txt": b"new a", tmp_path / "b.txt": b"new b", tmp_path / "c": b"x"}
        )
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert not (tmp_path / "b.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c"]
    commit_files({tmp_path / "a.txt": b"new a", tmp_path / "sub" / "b.txt": b"new b"})
    assert (tmp_path / "a.txt").read_text() == "new a"
    assert (tmp_path / "sub" / "b.txt").read_text() == "new b"


def test_a_folder_of_another_study_is_refused(study):
    out = study[0]
    before = (out / "study.json").read_bytes()
    with pytest.raises(AblationError, match="classes"):
        run_study(_spec(classes=4), out)
    with pytest.raises(AblationError, match="paper_faithful"):
        run_study(_spec(paper_faithful=True), out)
    assert (out / "study.json").read_bytes() == before


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"presets": ("baseline", "heads-3")}, "heads-3"),
        ({"presets": ()}, "non-empty"),
        ({"seeds": (0, 0)}, "seeds"),
        ({"threshold": 1.5}, "threshold"),
        ({"discard_ratio": 1.0}, "discard"),
        ({"method": "gradcam"}, "gradcam"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_specs_are_clear_errors(changes, message):
    with pytest.raises(AblationError, match=message):
        _spec(**changes)


def test_split_sizes_beyond_the_training_split_are_synthetic_only(tmp_path):
    with pytest.raises(AblationError, match="synthetic"):
        _spec(data=str(tmp_path))
    _spec(data=str(tmp_path), val_per_class=None, test_per_class=None)  # train size: fine


def test_a_bad_data_path_leaves_no_study_folder_behind(tmp_path):
    from inspector.core.data import DatasetError

    with pytest.raises(DatasetError):
        run_study(
            _spec(data=str(tmp_path / "missing"), val_per_class=None, test_per_class=None),
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_tiny_imagenet_is_named_as_such(tmp_path):
    """A study needs the dataset's masks: an image folder is not read as one (train_per_class
    used to reach the image-folder loader as an unexpected keyword)."""
    from inspector.core.data import DatasetError

    (tmp_path / "data" / "cats").mkdir(parents=True)
    with pytest.raises(DatasetError, match="wnids.txt"):
        run_study(
            _spec(data=str(tmp_path / "data"), val_per_class=None, test_per_class=None),
            tmp_path / "out",
        )


# ------------------------------------------------------------------------------------- jobs
@pytest.mark.slow
def test_two_jobs_give_the_same_numbers_as_one(study, tmp_path):
    events = []
    result = run_study(_spec(jobs=2), tmp_path, callback=events.append)
    assert result.status == "finished"
    assert _numbers(tmp_path) == _numbers(study[0])
    assert sorted((e.preset, e.epoch) for e in events if e.kind == "epoch") == [
        ("baseline", 1),
        ("baseline", 2),
        ("heads-2", 1),
        ("heads-2", 2),
    ]
    assert events[-1].kind == "done" and events[-1].fraction == 1.0
