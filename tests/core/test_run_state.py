"""The run folder's rules (issue 13): what a resume accepts, repairs and refuses."""

from __future__ import annotations

import json

import pytest
import torch

from inspector.core.checkpoint import load_checkpoint
from inspector.core.config import TrainConfig, preset
from inspector.core.data import make_synthetic
from inspector.core.run_state import load_run_state
from inspector.core.study import StudySpec, run_dir, run_study
from inspector.core.train import EpochEvent, TrainingError, train


@pytest.fixture(scope="module")
def data():
    return make_synthetic(seed=3, train_per_class=4, val_per_class=1, test_per_class=0)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 16, "seed": 1, "device": "cpu", **kw})


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_a_kill_after_the_final_last_pt_is_repaired_on_resume(data, tmp_path):
    """Item 2: state committed for the last epoch, best.pt and history.json stale."""
    ref = train(preset("baseline"), _cfg(), data, tmp_path / "ref")
    run = tmp_path / "run"
    stale = {}

    def keep_epoch_1(event):  # the epoch's files are written before its event
        if isinstance(event, EpochEvent) and event.epoch == 1:
            stale.update(
                best=(run / "best.pt").read_bytes(), history=(run / "history.json").read_text()
            )

    train(preset("baseline"), _cfg(), data, run, callback=keep_epoch_1)
    stale_best, stale_history = stale["best"], stale["history"]
    assert load_checkpoint(run / "best.pt").provenance["epoch"] == 2  # else nothing to repair
    # Roll the derived files back to epoch 1, as a kill right after last.pt would leave them.
    (run / "best.pt").write_bytes(stale_best)
    (run / "history.json").write_text(stale_history)
    result = train(preset("baseline"), _cfg(), data, run, resume=True)
    assert result.status == "finished"
    history = json.loads((run / "history.json").read_text())
    assert _strip(history) == _strip(ref.history) and len(history) == 2
    want = load_checkpoint(tmp_path / "ref" / "best.pt")
    got = load_checkpoint(run / "best.pt")
    assert got.provenance["epoch"] == want.provenance["epoch"]
    assert all(torch.equal(got.state_dict[k], v) for k, v in want.state_dict.items())


def test_a_folder_holding_only_best_pt_is_never_replaced(data, tmp_path):
    """Item 3."""
    train(preset("baseline"), _cfg(epochs=1), data, tmp_path / "src")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "best.pt").write_bytes((tmp_path / "src" / "best.pt").read_bytes())
    before = (keep / "best.pt").read_bytes()
    with pytest.raises(TrainingError, match="already holds a training run .*best.pt"):
        train(preset("baseline"), _cfg(epochs=1), data, keep)
    with pytest.raises(TrainingError, match="no run_state.pt to resume from"):
        train(preset("baseline"), _cfg(epochs=1), data, keep, resume=True)
    assert (keep / "best.pt").read_bytes() == before
    assert sorted(p.name for p in keep.iterdir()) == ["best.pt"]


def test_resume_on_another_dataset_is_refused(data, tmp_path):
    """Item 4."""
    train(preset("baseline"), _cfg(epochs=1), data, tmp_path)
    other = make_synthetic(seed=4, train_per_class=4, val_per_class=1, test_per_class=0)
    with pytest.raises(TrainingError, match="another dataset.*seed=3.*seed=4"):
        train(preset("baseline"), _cfg(), other, tmp_path, resume=True)
    assert load_run_state(tmp_path).epoch == 1  # untouched


def test_temporaries_of_killed_writes_are_removed_on_the_next_start(data, tmp_path):
    """Item 6: only our own pattern, only for the run's files."""
    train(preset("baseline"), _cfg(epochs=1), data, tmp_path)
    stale = [tmp_path / ".last.pt.0123456789ab.tmp", tmp_path / ".run_state.pt.a1b2c3d4e5f6.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    other = tmp_path / ".notes.txt.0123456789ab.tmp"  # not a run file: left alone
    other.write_text("mine")
    train(preset("baseline"), _cfg(), data, tmp_path, resume=True)
    assert not any(p.exists() for p in stale)
    assert other.exists()


def test_overwrite_starts_again_and_forgets_the_old_state(data, tmp_path):
    train(preset("baseline"), _cfg(epochs=1), data, tmp_path)
    result = train(preset("baseline"), _cfg(epochs=1, lr=0.02), data, tmp_path, overwrite=True)
    assert result.status == "finished"
    assert load_run_state(tmp_path).last.train_config["lr"] == 0.02


def test_ablate_overwrite_retrains_over_a_study_of_other_settings(tmp_path):
    """Item 1, ablate: a rerun always has a way forward (``--overwrite``)."""
    spec = StudySpec(
        classes=2,
        presets=("baseline",),
        epochs=1,
        device="cpu",
        train_per_class=4,
        val_per_class=1,
        test_per_class=1,
        figure_images=2,
        threads=1,
    )
    assert run_study(spec, tmp_path).status == "finished"
    changed = StudySpec(**{**spec.__dict__, "epochs": 2, "paper_faithful": True})
    with pytest.raises(ValueError, match="other settings"):
        run_study(changed, tmp_path)
    result = run_study(changed, tmp_path, overwrite=True)
    assert result.status == "finished"
    state = load_run_state(run_dir(tmp_path, "baseline", 0))
    assert state.epoch == 2 and state.last.config.output_softmax
