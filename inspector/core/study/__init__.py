"""The paper's 14-model ablation study: what it is (:mod:`.spec`), how it runs (:mod:`.runner`),
how a run is scored (:mod:`.evaluate`), and what it writes (:mod:`.report`, :mod:`.figures`).

Layering inside the package, with no cycles: ``spec`` <- ``evaluate``, ``figures`` <- ``report``
<- ``runner``.
"""

# The names are resolved on first use (PEP 562): ``evaluate`` pulls in scikit-learn and
# scipy.stats (~1.3 s), which the desktop app must not pay before its window shows.
import importlib
from typing import Any

_WHERE = {
    "evaluate_run": "evaluate",
    "COLUMNS": "report",
    "PAPER_RESULTS": "report",
    "aggregate": "report",
    "format_cell": "report",
    "write_report": "report",
    "run_study": "runner",
    "DIVERGED_FILE": "spec",
    "EVAL_FILE": "spec",
    "STUDY_FILE": "spec",
    "AblationError": "spec",
    "StudyEvent": "spec",
    "StudyResult": "spec",
    "StudySpec": "spec",
    "load_study_data": "spec",
    "run_dir": "spec",
    "summarise": "spec",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
