"""The paper's 14-model ablation study: what it is (:mod:`.spec`), how it runs (:mod:`.runner`),
how a run is scored (:mod:`.evaluate`), and what it writes (:mod:`.report`, :mod:`.figures`).

Layering inside the package, with no cycles: ``spec`` <- ``evaluate``, ``figures`` <- ``report``
<- ``runner``.
"""

from .evaluate import evaluate_run
from .report import COLUMNS, PAPER_RESULTS, aggregate, format_cell, write_report
from .runner import run_study
from .spec import (
    DIVERGED_FILE,
    EVAL_FILE,
    STUDY_FILE,
    AblationError,
    StudyEvent,
    StudyResult,
    StudySpec,
    load_study_data,
    run_dir,
    summarise,
)

__all__ = [
    "COLUMNS",
    "DIVERGED_FILE",
    "EVAL_FILE",
    "PAPER_RESULTS",
    "STUDY_FILE",
    "AblationError",
    "StudyEvent",
    "StudyResult",
    "StudySpec",
    "aggregate",
    "evaluate_run",
    "format_cell",
    "load_study_data",
    "run_dir",
    "run_study",
    "summarise",
    "write_report",
]
