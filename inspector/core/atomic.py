"""Atomic, no-clobber file writing used by everything that writes a file.

A file is first written to a temporary file in the *same folder* (so the final rename never
crosses a file system), flushed and ``fsync``-ed, then moved onto its name with
:func:`os.replace`, which is atomic on POSIX and Windows: a reader (or a crash) sees either
the old file or the complete new one, never a half-written file. On any failure the
temporary file is removed and the old file is left untouched.

An existing file is never replaced unless the caller passes ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "WriteError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_folder_writable",
    "clean_stale_temps",
    "refuse_overwrite",
]

# The temporary names _new_temp makes: ".<final name>.<12 hex digits>.tmp".
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")


class WriteError(OSError):
    """A file could not be written (disk full, read-only file system, ...): one clear line."""


def _writer_failure(dest: Path, exc: BaseException) -> BaseException:
    """A writer's failure as the error to raise: torch.save reports a full disk as a
    RuntimeError ("[enforce fail at inline_container.cc] ... file write failed"), which is an
    I/O failure, not a bug; say so in one line. Everything else is raised unchanged."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and (
        "PytorchStreamWriter" in text or "inline_container" in text
    ):
        try:
            free = shutil.disk_usage(dest.parent if str(dest.parent) else ".").free
        except OSError:
            free = -1
        hint = "the disk is full" if free == 0 else "is the disk full or read-only?"
        return WriteError(f"cannot write {dest}: the write failed ({hint})")
    return exc


def refuse_overwrite(path: str | os.PathLike, overwrite: bool) -> None:
    """Raise :class:`FileExistsError` when ``path`` exists and ``overwrite`` is False.

    Args:
        path: the destination file.
        overwrite: whether replacing an existing file is allowed.
    """
    p = Path(path)
    if not overwrite and (p.exists() or p.is_symlink()):
        raise FileExistsError(f"{p} exists; pass overwrite=True / --overwrite to replace it")


def _fsync_file(path: Path) -> None:
    # Re-open the temp file so that data written through any handle (ours, torch.save's,
    # PIL's) reaches the disk before the rename makes it visible under the final name.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Persist the rename itself. Not possible on Windows (directories cannot be opened);
    # best effort elsewhere.
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_temp(folder: Path, name: str) -> Path:
    """Create an empty, exclusive temporary file next to the destination.

    ``O_EXCL`` guarantees we never reuse someone else's file; mode 0o666 lets the process
    umask decide the final permissions (``tempfile.mkstemp`` would force 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file in {folder}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it atomically becomes ``path``.

    Usage::

        with atomic_path("model.pt", overwrite=False) as tmp:
            torch.save(obj, tmp)

    The temporary file already exists (empty) when yielded; writers may truncate or replace
    it. On normal exit it is fsync-ed and ``os.replace``-d onto ``path``; if the block
    raises, it is deleted and ``path`` (old file or none) is left as it was.

    Args:
        path: final destination. Its folder must exist.
        overwrite: allow replacing an existing ``path``. When False and ``path`` exists,
            :class:`FileExistsError` is raised before anything is written (and checked again
            just before the rename).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: the destination folder does not exist.
        IsADirectoryError: ``path`` is a folder.
    """
    dest = Path(path)
    if dest.is_dir():
        raise IsADirectoryError(f"{dest} is a folder, not a file")
    refuse_overwrite(dest, overwrite)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {dest}: folder {folder} does not exist")
    tmp = _new_temp(folder, dest.name)
    try:
        yield tmp
        _fsync_file(tmp)
        # A concurrent writer may have created the file while we were writing.
        refuse_overwrite(dest, overwrite)
        os.replace(tmp, dest)
    except BaseException as exc:
        # BaseException too: a KeyboardInterrupt must not leave a stray temp file.
        with contextlib.suppress(OSError):
            tmp.unlink()
        failure = _writer_failure(dest, exc)
        if failure is exc:
            raise
        raise failure from exc
    _fsync_dir(folder)


def clean_stale_temps(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Remove the temporary files that killed writes left in ``folder``.

    A process killed (SIGKILL, power loss) between creating a temporary file and renaming
    it leaves ``.<name>.<hex>.tmp`` behind; nothing else ever renames or removes it.

    Args:
        folder: the folder (a missing one is fine: nothing to clean).
        names: only temporaries of these final names (e.g. ``["last.pt"]``); None: all
            temporaries of :func:`atomic_path`'s pattern.

    Returns:
        The removed paths.
    """
    wanted = None if names is None else set(names)
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = _TEMP_NAME.match(entry.name)
        if not found or (wanted is not None and found.group("name") not in wanted):
            continue
        if entry.is_symlink() or not entry.is_file():
            continue  # never follow or remove what is not one of our plain files
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def check_folder_writable(folder: str | os.PathLike, *, needed_bytes: int = 0) -> None:
    """Fail now, not after the work, when ``folder`` cannot take the files.

    Creates and removes a temporary file (a read-only file system or a folder without write
    permission fails here) and compares the free space with ``needed_bytes``.

    Raises:
        WriteError: the folder cannot be written or has too little free space.
    """
    dest = Path(folder)
    try:
        _new_temp(dest, ".write-check").unlink()
    except OSError as exc:
        raise WriteError(
            f"cannot write into {dest}: {exc.strerror or exc.__class__.__name__}"
        ) from exc
    if needed_bytes > 0:
        try:
            free = shutil.disk_usage(dest).free
        except OSError:
            return
        if free < needed_bytes:
            raise WriteError(
                f"not enough free space in {dest}: about {_size(needed_bytes)} needed, "
                f"{_size(free)} free"
            )


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Args:
        path: destination file.
        data: the complete file contents.
        overwrite: allow replacing an existing file.

    Returns:
        The destination as a :class:`~pathlib.Path`.
    """
    dest = Path(path)
    with atomic_path(dest, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
    return dest


def atomic_write_text(
    path: str | os.PathLike, text: str, *, overwrite: bool = False, encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``path`` atomically; ``\\n`` is written as is (no newline translation).

    Args:
        path: destination file.
        text: the complete file contents.
        overwrite: allow replacing an existing file.
        encoding: text encoding.

    Returns:
        The destination as a :class:`~pathlib.Path`.
    """
    return atomic_write_bytes(path, text.encode(encoding), overwrite=overwrite)
