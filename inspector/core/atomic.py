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
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "refuse_overwrite"]


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
    except BaseException:
        # BaseException too: a KeyboardInterrupt must not leave a stray temp file.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder)


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
