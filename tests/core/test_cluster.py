"""Ray: the study's runs as tasks, and a sharded evaluation, against one process.

A local Ray cluster with 2 CPUs is started for this module and shut down after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inspector.cli import main
from inspector.core.study import AblationError, StudySpec, run_study

ray = pytest.importorskip("ray", reason="the [cluster] extra (ray) is not installed")

TIMING = {"eval_seconds", "train_seconds", "reused", "settings"}


def _spec(**kw) -> StudySpec:
    base = dict(
        classes=3,
        presets=("baseline", "heads-2"),
        seeds=(0, 1),
        epochs=2,
        device="cpu",
        train_per_class=8,
        val_per_class=2,
        test_per_class=4,
        threads=1,
    )
    return StudySpec(**{**base, **kw})


def _numbers(out: Path) -> list[dict]:
    runs = json.loads((out / "report.json").read_text())["runs"]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in runs]


def test_without_a_cluster_the_cli_says_so_in_one_line(tmp_path, capsys):
    # First in the module: before the module's local cluster starts.
    # An address where no cluster listens: one line, no traceback.
    if ray.is_initialized():
        pytest.skip("a Ray session is open in this process")
    code = main(
        ["ablate", "--data", "synthetic", "--epochs", "1", "--only", "baseline", "--out",
         str(tmp_path), "--ray", "ray://127.0.0.1:1"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("vit-inspector: error: cannot start or reach the Ray cluster")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path_factory.mktemp("ray-home")))  # Ray's token file
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def one_process_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("jobs1")
    previous = torch.get_num_threads()
    try:
        result = run_study(_spec(), out)
    finally:
        torch.set_num_threads(previous)
    assert result.status == "finished"
    return out


@pytest.mark.slow
def test_ray_study_matches_jobs_1_and_resumes(cluster, one_process_study, tmp_path):
    result = run_study(_spec(), tmp_path, ray="local")  # uses the running cluster
    assert result.status == "finished"
    assert _numbers(tmp_path) == _numbers(one_process_study)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["baseline", "heads-2"]
    # Again: every run is reused from the study folder, the report is unchanged.
    again = run_study(_spec(), tmp_path, ray="local")
    assert all(r["reused"] for r in again.runs)
    assert _numbers(tmp_path) == _numbers(one_process_study)
    # The study.json check holds on Ray too.
    with pytest.raises(AblationError, match="other settings"):
        run_study(_spec(epochs=3), tmp_path, ray="local")


@pytest.mark.slow
def test_ray_evaluate_matches_one_process(cluster, one_process_study, tmp_path):
    from dataclasses import replace

    from inspector.core.cluster import evaluate_on_ray
    from inspector.core.data import load_dataset
    from inspector.core.evaluation import evaluate_saliency
    from inspector.core.explain import open_model
    from inspector.core.saliency import MapSettings

    ckpt = one_process_study / "runs" / "baseline" / "seed-0" / "last.pt"
    data = load_dataset("synthetic", classes=3, seed=0, test_per_class=8).split("test")
    data = data.subset(list(range(22)))  # 5 batches of 5, the last one short
    settings, methods = MapSettings(), ["rollout", "cls-attention"]
    torch.set_num_threads(1)  # the Ray workers' setting, so the float sums are the same
    try:
        no_masks = replace(data, masks=None)
        one = evaluate_saliency(open_model(ckpt), no_masks, methods, settings, batch_size=5)
    finally:
        torch.set_num_threads(2)
    par = evaluate_on_ray(ckpt, no_masks, methods, settings, batch_size=5, shards=2)
    assert par.rows == one.rows and len(par.rows) == 22
    s1, s2 = dict(one.summary), dict(par.summary)
    s1.pop("images_per_second"), s2.pop("images_per_second")
    assert s1 == s2
    # With masks: the per-image metrics and the dataset-level segmentation totals, merged
    # from the shards, equal one process's exactly.
    torch.set_num_threads(1)
    try:
        one = evaluate_saliency(open_model(ckpt), data, methods, settings, batch_size=5)
    finally:
        torch.set_num_threads(2)
    for shards in (2, 3):
        par = evaluate_on_ray(ckpt, data, methods, settings, batch_size=5, shards=shards)
        assert par.rows == one.rows and len(par.rows) == 22
        assert one.segmentation and list(one.segmentation) == methods
        assert par.segmentation == one.segmentation
        s1, s2 = dict(one.summary), dict(par.summary)
        s1.pop("images_per_second"), s2.pop("images_per_second")
        assert s1 == s2
        assert par.summary_markdown().split("\n", 1)[1] == one.summary_markdown().split("\n", 1)[1]


@pytest.mark.slow
def test_cli_evaluate_ray_with_masks_writes_the_files_of_one_process(
    cluster, one_process_study, tmp_path
):
    ckpt = one_process_study / "runs" / "baseline" / "seed-0" / "last.pt"
    common = ["evaluate", "--checkpoint", str(ckpt), "--data", "synthetic", "--classes", "3",
              "--split", "val", "--limit", "13", "--batch-size", "4", "--device", "cpu",
              "--methods", "rollout,cls-attention"]  # fmt: skip
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray workers' setting, so the float sums are the same
    try:
        assert main([*common, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(previous)
    assert main([*common, "--out", str(tmp_path / "ray"), "--ray"]) == 0
    one, par = tmp_path / "one", tmp_path / "ray"
    assert (par / "per_image.csv").read_text() == (one / "per_image.csv").read_text()
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, par))
    s1.pop("images_per_second"), s2.pop("images_per_second")
    assert s1["segmentation"]["rollout"]["images"] == 13
    assert s1 == s2
