"""Reading inputs within bounds, and atomic file replacement.

Every file mtls reads as input (stores, profile files, deployment.toml, certificates)
goes through :func:`read_input`: regular files only, and at most
:data:`MAX_INPUT_BYTES`. ``<Location>/dev/zero</Location>`` or a FIFO must never
read until memory runs out or block a reload forever.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

#: The largest input file mtls reads (stores, profile files, deployment.toml).
#: The JDK's own ``cacerts`` is about 0.2 MiB and a 10,000-profile file about 4 MiB;
#: 8 MiB is generous for any real store or profile file, and small enough that
#: no pure-Python parse of it can stall a reload for long.
MAX_INPUT_BYTES = 8 * 1024 * 1024


class InputRefused(OSError):
    """A file mtls will not read: not a regular file, or larger than the limit.

    An ``OSError`` so that every caller's existing "cannot read" translation applies;
    ``strerror`` says which limit and why.
    """


def read_input(path: str | os.PathLike[str], limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError: no such file.
        IsADirectoryError: it is a directory.
        InputRefused: a device, pipe or socket, or more than ``limit`` bytes.
        OSError: any other reason it cannot be read.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise InputRefused(
                errno.EINVAL,
                "not a regular file: devices, pipes and sockets are refused",
                os.fspath(path),
            )
        too_big = InputRefused(
            errno.EFBIG,
            f"larger than {limit // (1024 * 1024)} MiB, the limit for input files",
            os.fspath(path),
        )
        if st.st_size > limit:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew while we read
                raise too_big
        return b"".join(chunks)
    finally:
        os.close(fd)


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
