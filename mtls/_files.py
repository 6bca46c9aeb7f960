"""Atomic file replacement, shared by store writes and the testing rotation helpers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_mode() -> int:
    """0666 less the process umask: what ``open(path, "w")`` would create."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(
    path: str | os.PathLike[str], data: bytes, *, mode: int, mtime: float | None = None
) -> Path:
    """Replace ``path`` with ``data``: a temporary file in the same directory, fsync, rename.

    A concurrent reader sees the old content or the new, never a partial file. On
    failure ``path`` is unchanged and no temporary file is left.

    Raises:
        OSError: the directory is not writable, or the disk is full.
    """
    target = Path(path)
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)  # before any byte is written: a key file is never readable
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)
    return target
