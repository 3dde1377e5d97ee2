"""Copy a finished ablation study's report and models into the repository.

    python scripts/publish_study.py STUDY_DIR --report docs/results/NAME \
        [--checkpoints checkpoints/NAME] [--force]

The report (``report.md/.csv/.json``, ``saliency.png``, ``confusion/``, ``curves/``) goes to
``--report``; with ``--checkpoints`` every run's final model (``last.pt``, the one the report
scores) is copied as ``<model>.pt`` for the study's first seed and ``seed-<s>/<model>.pt`` for
the others, so the compare view opens one file per model. The training data are never copied.
Files are written atomically; existing files are refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inspector.core.atomic import atomic_write_bytes
from inspector.core.study import run_dir
from inspector.core.train import LAST

REPORT_FILES = ("report.md", "report.csv", "report.json", "saliency.png")
REPORT_FOLDERS = ("confusion", "curves")


def plan(study: Path, report: Path, checkpoints: Path | None) -> list[tuple[Path, Path]]:
    """(source, destination) pairs; raises SystemExit when the study is not finished."""
    meta_path = study / "report.json"
    if not meta_path.is_file():
        raise SystemExit(f"error: {study} has no report.json (is the study finished?)")
    meta = json.loads(meta_path.read_text())
    pairs = [(study / name, report / name) for name in REPORT_FILES]
    for folder in REPORT_FOLDERS:
        pairs += [(p, report / folder / p.name) for p in sorted((study / folder).glob("*.png"))]
    if checkpoints is not None:
        seeds = meta["study"]["seeds"]
        for name in meta["study"]["presets"]:
            for seed in seeds:
                sub = checkpoints if seed == seeds[0] else checkpoints / f"seed-{seed}"
                pairs.append((run_dir(study, name, seed) / LAST, sub / f"{name}.pt"))
    missing = [str(src) for src, _ in pairs if not src.is_file()]
    if missing:
        raise SystemExit(f"error: missing in the study: {', '.join(missing)}")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path)
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    pairs = plan(args.study, args.report, args.checkpoints)
    existing = [str(dst) for _, dst in pairs if dst.exists()]
    if existing and not args.force:
        print(
            f"error: {len(existing)} file(s) exist, e.g. {existing[0]}; use --force to "
            f"replace them",
            file=sys.stderr,
        )
        return 1
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dst, src.read_bytes(), overwrite=args.force)
    print(
        f"copied {len(pairs)} files to {args.report}"
        + (f" and {args.checkpoints}" if args.checkpoints else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
