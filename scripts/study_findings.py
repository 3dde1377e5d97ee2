"""Print the evidence behind docs/REPRODUCTION.md from finished study reports, as Markdown.

    python scripts/study_findings.py docs/results/tiny-imagenet-10 \
        [--faithful docs/results/tiny-imagenet-10-paper-faithful]

0. Our table beside the paper's (each of our cells: mean ± std over seeds).
1. Every model against the baseline, per metric: the difference of the means over seeds and
   Welch's t-test p-value (scipy; undefined with one seed). Few seeds make p-values coarse: they
   say whether a difference stands out from seed-to-seed noise, nothing more.
2. With ``--faithful``: the models of the double-softmax study beside the same models trained
   with logits and a plain cross-entropy (same seeds), with the final training loss, to show
   whether the paper's collapses to chance (0.100) come from the double softmax.
3. With ``--baselines``: SMM of maps that ignore the image (centred squares), scored on the
   study's own test masks with the study's threshold - what SMM gives for free on these masks.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

METRICS = (("accuracy", "test acc"), ("f1", "F1"), ("roc_auc", "ROC AUC"), ("smm", "SMM"))


def load_runs(folder: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    report = json.loads((folder / "report.json").read_text())
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in report["runs"]:
        runs.setdefault(run["preset"], []).append(run)
    return report, runs


def values(runs: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([r[key] for r in runs if r.get(key) is not None], dtype=np.float64)


def fmt(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def versus_paper(report: dict[str, Any]) -> list[str]:
    from inspector.core.study import COLUMNS, PAPER_RESULTS, format_cell

    # Recall and precision are in the report; the comparison keeps the columns that differ.
    shown = [(i, k, t) for i, (k, t) in enumerate(COLUMNS) if k not in ("recall", "precision")]
    lines = [
        "| model | " + " | ".join(f"{t} ours / paper" for _, _, t in shown) + " |",
        "|---" * (len(shown) + 1) + "|",
    ]
    for row in report["rows"]:
        paper = PAPER_RESULTS.get(row["model"])
        cells = [
            f"{format_cell(row[k])} / {paper[i]:.3f}" if paper else format_cell(row[k])
            for i, k, _ in shown
        ]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return lines


def against_baseline(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    base = runs["baseline"]
    lines = [
        "| model | " + " | ".join(f"Δ {t} (p)" for _, t in METRICS) + " |",
        "|---" * (len(METRICS) + 1) + "|",
    ]
    for name, model_runs in runs.items():
        if name == "baseline":
            continue
        cells = []
        for key, _ in METRICS:
            a, b = values(model_runs, key), values(base, key)
            if a.size == 0 or b.size == 0:
                cells.append("n/a")
                continue
            diff = a.mean() - b.mean()
            p = (
                stats.ttest_ind(a, b, equal_var=False).pvalue
                if a.size > 1 and b.size > 1 and (a.std() > 0 or b.std() > 0)
                else float("nan")
            )
            cells.append(f"{diff:+.3f} ({fmt(p)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def final_train_loss(folder: Path, name: str, seed: int) -> float:
    history = folder / "runs" / name / f"seed-{seed}" / "history.json"
    try:
        return float(json.loads(history.read_text())[-1]["train_loss"])
    except (OSError, ValueError, KeyError, IndexError):
        return float("nan")


def double_softmax(
    plain_dir: Path,
    plain: dict[str, list[dict[str, Any]]],
    faithful_dir: Path,
    faithful: dict[str, list[dict[str, Any]]],
) -> list[str]:
    lines = [
        "| model | loss | seed | train acc | test acc | ROC AUC | SMM | final train loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f_runs in faithful.items():
        for label, folder, runs in (
            ("logits + CE", plain_dir, plain.get(name, [])),
            ("double softmax", faithful_dir, f_runs),
        ):
            seeds = {r["seed"] for r in f_runs}
            for r in (r for r in runs if r["seed"] in seeds):
                lines.append(
                    f"| {name} | {label} | {r['seed']} | {fmt(r.get('train_acc'))} | "
                    f"{fmt(r.get('accuracy'))} | {fmt(r.get('roc_auc'))} | "
                    f"{fmt(r.get('smm'))} | "
                    f"{fmt(final_train_loss(folder, name, r['seed']))} |"
                )
    return lines


def image_free_baselines(report: dict[str, Any]) -> list[str]:
    """SMM of centred squares of several sizes against the study's test masks."""
    from inspector.core.metrics import smm
    from inspector.core.study import StudySpec, load_study_data

    study = dict(report["study"])
    spec = StudySpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in study.items()})
    test = load_study_data(spec).test
    if test.masks is None:
        return ["(the test split has no masks)"]
    masks = test.masks.numpy().astype(bool)
    size = masks.shape[-1]
    yy, xx = np.mgrid[0:size, 0:size]
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    lines = [
        f"Test masks cover {coverage.mean():.3f} of the image on average "
        f"(median {np.median(coverage):.3f}).",
        "",
        "| image-free map (1 inside, 0 outside) | SMM |",
        "|---|---|",
    ]
    for frac in (0.75, 0.5, 0.25):
        side = int(round(size * frac))
        lo = (size - side) // 2
        square = ((yy >= lo) & (yy < lo + side) & (xx >= lo) & (xx < lo + side)).astype(float)
        scores = [smm(square, m, spec.threshold) for m in masks]
        defined = [v for v in scores if v is not None and math.isfinite(v)]
        lines.append(
            f"| centred square, side {side} px ({side * side / size**2:.0%} of the "
            f"image) | {np.mean(defined):.3f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder or its published report")
    parser.add_argument("--faithful", type=Path, help="the --paper-faithful study folder")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="SMM of image-free maps on the study's test masks (loads the data)",
    )
    args = parser.parse_args(argv)
    report, runs = load_runs(args.study)
    print(f"## Ours beside the paper ({args.study})\n")
    print("\n".join(versus_paper(report)))
    print(f"\n## Against the baseline ({args.study}, seeds {report['study']['seeds']})\n")
    print("\n".join(against_baseline(runs)))
    if args.faithful:
        _, faithful = load_runs(args.faithful)
        print(f"\n## Double softmax ({args.faithful}) against logits + cross-entropy\n")
        print("\n".join(double_softmax(args.study, runs, args.faithful, faithful)))
    if args.baselines:
        print("\n## SMM of maps that ignore the image\n")
        print("\n".join(image_free_baselines(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
