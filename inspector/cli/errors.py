"""The CLI's user-facing errors: one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_FAILED = 1


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's input, not our bug: shown as one line."""
    from ..core.checkpoint import CheckpointError
    from ..core.cluster import ClusterError
    from ..core.config import ConfigError
    from ..core.data import DatasetError
    from ..core.train import TrainingError

    return (
        CLIError,
        ConfigError,
        CheckpointError,
        ClusterError,
        DatasetError,
        TrainingError,
        FileExistsError,
        FileNotFoundError,
        PermissionError,
        ValueError,
    )
