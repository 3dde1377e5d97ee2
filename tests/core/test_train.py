"""The training loop: schedule, checkpoints, stop flag, divergence, exact resume."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from inspector.core.checkpoint import load_checkpoint
from inspector.core.config import TrainConfig, preset
from inspector.core.data import make_synthetic
from inspector.core.run_state import load_run_state, repair_derived, save_run_state
from inspector.core.train import (
    EpochEvent,
    StepEvent,
    TrainingError,
    evaluate,
    lr_factor,
    train,
)


@pytest.fixture(scope="module")
def small_data():
    return make_synthetic(seed=3, train_per_class=8, val_per_class=3, test_per_class=3)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, "seed": 1, "device": "cpu", **kw})


def test_lr_schedule_warms_up_linearly_then_decays_to_zero():
    total, warm = 100, 0.1  # 10 warm-up steps
    factors = [lr_factor(s, total, warm) for s in range(total)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx((100 - 55) / 90)
    assert factors[-1] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))


def test_training_writes_loadable_checkpoints_and_history(small_data, tmp_path):
    events = []
    result = train(preset("baseline"), _cfg(), small_data, tmp_path, callback=events.append)
    assert result.status == "finished"
    steps = [e for e in events if isinstance(e, StepEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert len(steps) == 2 * 3  # 80 images / 32 per batch = 3 steps per epoch
    assert [e.epoch for e in epochs] == [1, 2]
    assert steps[-1].global_step == steps[-1].total_steps == 6

    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    last = load_checkpoint(tmp_path / "last.pt")
    assert last.class_names == small_data.class_names
    assert last.train_config["epochs"] == 2
    assert [r["epoch"] for r in last.history] == [1, 2]

    # The stored validation accuracy is what an independent evaluation of the file gives.
    model = last.build_model()
    with torch.no_grad():
        x = (small_data.val.images.float() / 255 - 0.5) / 0.5
        acc = (model(x).argmax(-1) == small_data.val.labels).float().mean().item()
    assert history[-1]["val_accuracy"] == pytest.approx(acc)
    assert evaluate(model, small_data.val, last.preprocess)["accuracy"] == pytest.approx(acc)

    best = load_checkpoint(tmp_path / "best.pt")
    best_epoch = max(history, key=lambda r: r["val_accuracy"])["epoch"]
    assert best.provenance["epoch"] == best_epoch


def test_resumed_run_equals_uninterrupted_run(small_data, tmp_path):
    full = train(preset("baseline"), _cfg(epochs=3), small_data, tmp_path / "full")

    stop = threading.Event()

    def stop_after_first_epoch(event):
        if isinstance(event, EpochEvent) and event.epoch == 1:
            stop.set()

    part = train(
        preset("baseline"),
        _cfg(epochs=3),
        small_data,
        tmp_path / "part",
        callback=stop_after_first_epoch,
        stop=stop,
    )
    assert part.status == "stopped"
    assert load_checkpoint(tmp_path / "part" / "last.pt").provenance["epoch"] == 1
    resumed = train(preset("baseline"), _cfg(epochs=3), small_data, tmp_path / "part", resume=True)
    assert resumed.status == "finished"

    a = load_checkpoint(tmp_path / "full" / "last.pt").state_dict
    b = load_checkpoint(tmp_path / "part" / "last.pt").state_dict
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(full.history) == strip(resumed.history)


def test_stop_flag_is_honoured_before_the_next_step(small_data, tmp_path):
    stop = threading.Event()
    seen = []

    def on_event(event):
        if isinstance(event, StepEvent):
            seen.append(event.global_step)
            if event.global_step == 2:
                stop.set()

    result = train(preset("baseline"), _cfg(), small_data, tmp_path, callback=on_event, stop=stop)
    assert result.status == "stopped"
    assert seen == [1, 2]
    assert not (tmp_path / "last.pt").exists()  # no epoch was completed


def test_non_finite_loss_stops_with_a_clear_message(small_data, tmp_path):
    # AdamW with lr 1e30 scales the weights past float32's range within a few steps.
    result = train(
        preset("baseline"), _cfg(epochs=2, lr=1e30, grad_clip=None), small_data, tmp_path
    )
    assert result.status == "diverged"
    assert "non-finite" in result.message and "epoch 1" in result.message
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_divergence_after_a_good_epoch_keeps_that_epochs_checkpoint(small_data, tmp_path):
    train(preset("baseline"), _cfg(epochs=1), small_data, tmp_path)
    # Poison one weight of the run state (what a resume continues from): the resumed epoch 2
    # then has a NaN loss. The derived files are made to agree with it first.
    state = load_run_state(tmp_path)
    state.last.state_dict["head.weight"] = torch.full_like(
        state.last.state_dict["head.weight"], float("nan")
    )
    save_run_state(tmp_path, state)
    repair_derived(tmp_path, state)
    last_bytes = (tmp_path / "last.pt").read_bytes()
    best_bytes = (tmp_path / "best.pt").read_bytes()
    history = (tmp_path / "history.json").read_text()

    result = train(preset("baseline"), _cfg(epochs=2), small_data, tmp_path, resume=True)
    assert result.status == "diverged"
    assert "epoch 2" in result.message and "last good epoch (1)" in result.message
    assert (tmp_path / "last.pt").read_bytes() == last_bytes
    assert (tmp_path / "best.pt").read_bytes() == best_bytes
    assert (tmp_path / "history.json").read_text() == history


def test_existing_run_is_not_overwritten_silently(small_data, tmp_path):
    train(preset("baseline"), _cfg(epochs=1), small_data, tmp_path)
    with pytest.raises(TrainingError, match="already holds a training run"):
        train(preset("baseline"), _cfg(epochs=1), small_data, tmp_path)
    train(preset("baseline"), _cfg(epochs=1), small_data, tmp_path, overwrite=True)


def test_mismatched_classes_and_settings_are_clear_errors(small_data, tmp_path):
    with pytest.raises(TrainingError, match="5 classes but the dataset has 10"):
        train(preset("baseline", num_classes=5), _cfg(), small_data, tmp_path)
    train(preset("baseline"), _cfg(epochs=1), small_data, tmp_path)
    with pytest.raises(TrainingError, match="training settings differ"):
        train(preset("baseline"), _cfg(epochs=2, lr=0.5), small_data, tmp_path, resume=True)


def test_paper_faithful_double_softmax_still_trains_and_reports_probabilities(small_data, tmp_path):
    cfg = preset("baseline", output_softmax=True)
    result = train(cfg, _cfg(epochs=1), small_data, tmp_path)
    assert result.status == "finished"
    model = load_checkpoint(tmp_path / "last.pt").build_model()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 64))
    assert torch.allclose(out.sum(-1), torch.ones(2), atol=1e-5)


def test_fused_optimizer_takes_adamws_steps():
    # make_optimizer picks the fused CPU AdamW: its steps must be the textbook rule, checked
    # against a float64 recomputation of decoupled weight decay + bias-corrected moments.
    from inspector.core.model import VisionTransformer
    from inspector.core.train import make_optimizer

    torch.manual_seed(0)
    model = VisionTransformer(preset("baseline"))
    cfg = TrainConfig(lr=0.01, weight_decay=0.1, betas=(0.9, 0.999))
    opt = make_optimizer(model, cfg)
    assert opt.defaults.get("fused") is True
    params = list(model.parameters())
    ref = [p.detach().double().clone() for p in params]
    m1 = [torch.zeros_like(r) for r in ref]
    m2 = [torch.zeros_like(r) for r in ref]
    b1, b2 = cfg.betas
    for step in range(1, 4):
        grads = [torch.randn_like(p) for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        for i, g in enumerate(grads):
            g = g.double()
            ref[i] = ref[i] * (1 - cfg.lr * cfg.weight_decay)
            m1[i] = b1 * m1[i] + (1 - b1) * g
            m2[i] = b2 * m2[i] + (1 - b2) * g * g
            denom = (m2[i] / (1 - b2**step)).sqrt() + 1e-8
            ref[i] = ref[i] - cfg.lr * (m1[i] / (1 - b1**step)) / denom
        for p, r in zip(params, ref, strict=True):
            torch.testing.assert_close(p.detach().double(), r, atol=2e-6, rtol=1e-5)
