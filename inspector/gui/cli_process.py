"""The CLI run as a child process, its JSON events read on the GUI thread (issue 11).

Training in the window's own process shared the GIL with the event loop: the first job stalled
it for 255-379 ms while the training stack imported. Here the job is ``python -m inspector.cli
<command> ... --events json`` in a ``QProcess``: the child imports torch, loads the data and
trains; the GUI thread only reads a few short JSON lines a second when ``readyRead`` says they
are there (non-blocking, no thread). Cancel is SIGTERM (``QProcess.terminate``): the CLI's
handler (``inspector/cli/signals.py``) stops between steps, keeps the last completed epoch's
atomic files and exits 143. An error is the CLI's one line on stderr and a non-zero exit; a
crash shows its last stderr line, never a whole traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QObject, QProcess, QProcessEnvironment, Signal, Slot

import inspector

# The package's parent folder: the child imports this very checkout, installed or not.
_PACKAGE_ROOT = str(Path(inspector.__file__).resolve().parent.parent)
_ERROR_PREFIX = "vit-inspector: error: "
_STDERR_KEEP = 64 * 1024  # the tail of stderr kept for the error line
EXIT_TERMINATED = 143  # inspector.cli.errors.EXIT_TERMINATED (the GUI does not import the CLI)
# The child's scheduling niceness. With every core busy (the job's torch threads, other
# programs), the window must still get the CPU when it has an event to handle: at nice 10 the
# kernel gives the job about a tenth of the GUI thread's share while both want to run, and
# all of an idle core otherwise, so training is no slower while the window is idle.
CHILD_NICENESS = 10


def cli_command(args: list[str]) -> tuple[str, list[str]]:
    """Program and arguments that run ``vit-inspector ARGS`` with this interpreter."""
    return sys.executable, ["-m", "inspector.cli", *args]


def error_line(stderr: str) -> str:
    """The one line to show for a failed child: the CLI's own error line, else the last line
    of whatever it printed (an unexpected exception's ``Type: message``)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith(_ERROR_PREFIX):
            return line[len(_ERROR_PREFIX) :]
    if not lines:
        return ""
    last = lines[-1]
    if any(ln.startswith("Traceback (most recent call last)") for ln in lines):
        return f"unexpected error: {last}"
    return last


class CliProcess(QObject):
    """One ``vit-inspector`` command in a child process.

    Signals:
        event(dict): one JSON object the child wrote on stdout (its ``event`` key names it).
        text(str): a stdout line that is not JSON (shown in the log as is).
        ended(int, bool, str): exit code, whether the process crashed or was killed (no exit
            code of its own), and the one-line error from stderr ('' when none).
    """

    event = Signal(dict)
    text = Signal(str)
    ended = Signal(int, bool, str)

    def __init__(self, args: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.args = list(args)
        self.process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        path = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", _PACKAGE_ROOT + (os.pathsep + path if path else ""))
        env.insert("PYTHONUNBUFFERED", "1")
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.process.started.connect(self._lower_priority)
        self._stdout = QByteArray()
        self._stderr = ""
        self._ended = False
        self.exit_code: int | None = None
        self.crashed = False

    def start(self) -> None:
        program, arguments = cli_command(self.args)
        self.process.start(program, arguments)

    def is_running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def terminate(self) -> None:
        """SIGTERM: the CLI stops at its next safe point and exits 143."""
        if self.is_running():
            self.process.terminate()

    def kill(self) -> None:
        if self.is_running():
            self.process.kill()

    def wait(self, timeout_ms: int) -> bool:
        """Block until the child ended (window close only); its last events and ``ended``
        are delivered from inside this call. True when it has ended."""
        if self._ended:
            return True
        if self.is_running():
            self.process.waitForFinished(timeout_ms)
        if not self.is_running() and not self._ended:
            self._on_finished(self.process.exitCode(), self.process.exitStatus())
        return self._ended

    @Slot()
    def _lower_priority(self) -> None:
        # Right after exec: the child has one thread, and the threads torch starts later
        # inherit its niceness. Raising one's own child's niceness needs no privilege.
        if not hasattr(os, "setpriority"):
            return  # not POSIX: the job runs at normal priority
        # Already gone, or a sandbox that forbids it: not worth failing the job.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(self.process.processId()), CHILD_NICENESS)

    # ------------------------------------------------------------------ reading
    @Slot()
    def _read_stdout(self) -> None:
        self._stdout += self.process.readAllStandardOutput()
        while (cut := self._stdout.indexOf(b"\n")) >= 0:
            line = bytes(self._stdout.left(cut)).decode("utf-8", "replace").strip()
            self._stdout.remove(0, cut + 1)
            if line:
                self._dispatch(line)

    def _dispatch(self, line: str) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            self.text.emit(line)
            return
        if isinstance(data, dict) and "event" in data:
            self.event.emit(data)
        else:
            self.text.emit(line)

    @Slot()
    def _read_stderr(self) -> None:
        chunk = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        self._stderr = (self._stderr + chunk)[-_STDERR_KEEP:]

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if self._ended:
            return
        self._ended = True
        self._read_stdout()
        self._read_stderr()
        rest = bytes(self._stdout).decode("utf-8", "replace").strip()
        if rest:
            self._dispatch(rest)
        self.exit_code = code
        self.crashed = status == QProcess.ExitStatus.CrashExit
        self.ended.emit(code, self.crashed, error_line(self._stderr))

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._ended:
            self._ended = True
            self.exit_code, self.crashed = -1, True
            reason = self.process.errorString()
            self.ended.emit(-1, True, f"cannot start {sys.executable}: {reason}")


class CliJob(QObject):
    """What the training and the study jobs share: one :class:`CliProcess`, its log lines,
    cancel (SIGTERM), wait and kill, and the outcome when the child sent no ``result``.

    Subclasses handle ``event`` dicts in ``_on_event`` (a ``result`` event goes into
    ``_outcome``) and turn the end into their own ``done`` signal in ``_on_ended``.
    """

    log = Signal(str)

    def __init__(
        self, args: list[str], what: str, not_started: str, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.what = what  # "training", "study": names the process in messages
        self._not_started = not_started  # the message of a cancel before the work began
        self.process = CliProcess(args, self)
        self.process.event.connect(self._on_event)
        self.process.text.connect(self.log)
        self.process.ended.connect(self._on_ended)
        self._outcome: dict | None = None
        self._stop_requested = False

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        """SIGTERM: the child stops before its next step, keeping what it finished."""
        self._stop_requested = True
        self.process.terminate()

    def wait(self, timeout_ms: int) -> bool:
        return self.process.wait(timeout_ms)

    def kill(self) -> None:
        self.process.kill()

    def _on_event(self, e: dict) -> None:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _on_ended(self, code: int, crashed: bool, error: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def _ended_without_result(self, code: int, crashed: bool, error: str) -> tuple[str, str]:
        """(status, message) of a child that ended without its ``result`` line."""
        if code == 0 and not crashed:
            return "failed", f"the {self.what} process reported no result"
        if self._stop_requested and (crashed or code == EXIT_TERMINATED):
            # SIGTERM before the CLI's handler was installed (still importing): nothing
            # was written yet.
            return "stopped", self._not_started
        return "failed", error or f"the {self.what} process ended with exit status {code}"
