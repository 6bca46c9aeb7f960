"""File-rotation helpers for tests of reload handling.

Certificates reach a running service in three ways, and each has its own
failure mode a reloader must survive:

* **Atomic replace** (:func:`replace_atomically`): a new file is renamed over the
  old one. Readers see the old bytes or the new bytes, never a mix; the inode
  changes, the path does not.
* **Kubernetes secret and ConfigMap volumes** (:func:`swap_symlinked_dir`): the
  kubelet's AtomicWriter keeps the files in a timestamped directory, points a
  ``..data`` symlink at it and exposes each file as a symlink through ``..data``.
  An update renames a new ``..data`` over the old one, so the visible path is the
  same symlink before and after: a watcher that ``lstat``\\ s it sees no change,
  and the new files may carry any modification time.
* **In-place writes** (:func:`write_in_two_halves`): ``cp`` or an editor truncates
  the file and writes it; a reader in between sees a truncated store.

None of these sleep: every wait is on an event the test controls.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from .._files import atomic_write, fsync_directory

DATA_LINK = "..data"
_DATA_TMP_LINK = "..data_tmp"


def _as_bytes(data: bytes | str) -> bytes:
    """``data`` as bytes: ``str`` as UTF-8, a bytes-like object as it is.

    Raises:
        TypeError: anything else (``bytes(5)`` is five NUL bytes, and a ``Path`` would
            have been written as its name: h171).
    """
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(
        f"the content to write is bytes or str, not {type(data).__name__}"
        + (" (a path: read the file's bytes first)" if isinstance(data, os.PathLike) else "")
        + (" (a store: its to_bytes(password))" if hasattr(data, "to_bytes") else "")
    )


def replace_atomically(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    mode: int | None = None,
    mtime: float | None = None,
) -> Path:
    """Replace ``path`` with ``data`` the way careful deploy tools do.

    The bytes go to a temporary file in the same directory, are flushed and
    fsynced, and the file is renamed over ``path`` with :func:`os.replace`. A
    concurrent reader sees the old content or the new, never a partial file.
    If ``path`` is a symlink, its target is replaced and the link stays. The new
    file gets ``mode`` exactly (a rename does not care whether the old file was
    writable, nor keeps its owner).

    Args:
        path: the file to create or replace.
        data: the new content (``str`` is written as UTF-8).
        mode: permission bits of the new file; defaults to those of the file
            being replaced, or 0600 for a new file.
        mtime: a modification time (seconds since the epoch) to set on the new
            file before it appears, for example an *older* one, to check that a
            watcher does not rely on modification times.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the directory is not writable, or the disk is full. ``path`` is
            then unchanged and no temporary file is left behind.
    """
    target = Path(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o600
    return atomic_write(target, _as_bytes(data), mode=mode, mtime=mtime, keep_existing=False)


def _check_name(name: str) -> None:
    if not name or "/" in name or os.sep in name or name.startswith("..") or name in (".",):
        raise ValueError(
            f"file name {name!r} must be a plain name: no directories, and not starting "
            "with '..' (reserved for the volume's own entries)"
        )


def _write_file(path: Path, data: bytes, mode: int, mtime: float | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)  # the umask applied at creation
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def swap_symlinked_dir(
    directory: str | os.PathLike[str],
    files: Mapping[str, bytes | str],
    *,
    mtime: float | None = None,
    mode: int = 0o644,
) -> Path:
    """Publish ``files`` in ``directory`` exactly as the kubelet updates a secret volume.

    The layout, after the first call::

        directory/
            ..2026_11_28_02_09_46.k3x9q1/   the current files (real files)
            ..data -> ..2026_11_28_02_09_46.k3x9q1
            tls.jks -> ..data/tls.jks        what the application opens

    Each call (Kubernetes' AtomicWriter, in order): writes every file into a new
    timestamped directory; points a new ``..data_tmp`` symlink at it; renames
    ``..data_tmp`` over ``..data`` (the atomic step: every visible path now
    resolves to the new files); creates the visible symlinks of new names and
    removes those of names no longer given; deletes the old timestamped
    directory. Visible symlinks that already exist are left untouched, so
    ``os.stat(path, follow_symlinks=False)`` of a visible path does not change.

    Args:
        directory: the volume's mount point; created if missing.
        files: file name to content. The complete new set, as in a secret:
            names missing from it disappear.
        mtime: a modification time (seconds since the epoch) to give the new
            files, for example an *older* one than the files they replace, to
            check that a watcher compares content rather than times.
        mode: permission bits of the files (the volume's ``defaultMode``).

    Returns:
        The new timestamped directory.

    Raises:
        ValueError: a name with a ``/``, or starting with ``..``.
        FileExistsError: a visible name exists in ``directory`` but is not the
            symlink this layout uses (a regular file, say).
        OSError: the directory is not writable. The visible files then still
            show the previous set.
    """
    root = Path(directory)
    if not isinstance(files, Mapping):
        raise TypeError(
            f"files is a mapping of file name to content ({{'tls.jks': data}}), not "
            f"{type(files).__name__}"
        )
    for name in files:
        _check_name(name)
    root.mkdir(parents=True, exist_ok=True)
    data_link = root / DATA_LINK
    for name in files:
        visible = root / name
        if os.path.lexists(visible) and (
            not visible.is_symlink() or os.readlink(visible) != f"{DATA_LINK}/{name}"
        ):
            raise FileExistsError(
                f"{visible} exists and is not a symlink to {DATA_LINK}/{name}: "
                "use an empty directory or one made by swap_symlinked_dir"
            )
    old_dir = os.readlink(data_link) if data_link.is_symlink() else None
    old_names = set(os.listdir(root / old_dir)) if old_dir else set()

    stamp = _dt.datetime.now(_dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=root))
    try:
        os.chmod(new_dir, 0o755)  # noqa: S103 - the kubelet's mode for the data directory
        for name, content in files.items():
            _write_file(new_dir / name, _as_bytes(content), mode, mtime)
        tmp_link = root / _DATA_TMP_LINK
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_link)  # left over from an interrupted swap
        os.symlink(new_dir.name, tmp_link)
        os.replace(tmp_link, data_link)  # the swap: rename(2) over the old link
    except BaseException:
        if not (data_link.is_symlink() and os.readlink(data_link) == new_dir.name):
            _remove_tree(new_dir)
        raise
    fsync_directory(root)
    for name in files:
        visible = root / name
        if not os.path.lexists(visible):
            os.symlink(f"{DATA_LINK}/{name}", visible)
    for name in old_names - set(files):
        visible = root / name
        if visible.is_symlink():
            os.unlink(visible)
    if old_dir and old_dir != new_dir.name:
        _remove_tree(root / old_dir)
    return new_dir


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def write_in_two_halves(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    pause: threading.Event | Callable[[], object],
    half_written: threading.Event | None = None,
    split: int | None = None,
    timeout: float = 10.0,
) -> None:
    """Write ``path`` in place, non-atomically, stopping half way until told to go on.

    This is what ``cp`` or an editor does to a store a service is watching: the
    file is truncated, then filled. The first half is written, flushed and
    fsynced, so any reader sees exactly those bytes until ``pause`` lets the
    second half through.

    Two ways to hold the writer in the middle, neither needing a sleep:

    * ``pause`` is a callable: it is called once the first half is on disk, and
      the rest is written when it returns. Observe the half-written file (or drive
      a reloader's check) inside it, on the same thread.
    * ``pause`` is a :class:`threading.Event`: run this function on another
      thread, pass ``half_written`` and wait for it, observe, then set ``pause``.

    Args:
        path: the file to write (created or truncated).
        data: the full content (``str`` is written as UTF-8).
        pause: the callable or event that holds the second half back.
        half_written: set once the first half is on disk.
        split: how many bytes the first part has; defaults to half (rounded down).
        timeout: the longest wait for an event ``pause``, in seconds.

    Raises:
        ValueError: ``split`` outside ``0..len(data)``.
        TimeoutError: an event ``pause`` was not set within ``timeout``.
        Exception: whatever a callable ``pause`` raises. After any exception the
            file is left holding only the first part.
    """
    content = _as_bytes(data)
    cut = len(content) // 2 if split is None else split
    if not 0 <= cut <= len(content):
        raise ValueError(f"split must be between 0 and {len(content)}, not {split}")
    if not (isinstance(pause, threading.Event) or callable(pause)):
        # Checked before the file is truncated (it was, and then the call failed: h171).
        raise TypeError(f"pause is a threading.Event or a callable, not {type(pause).__name__}")
    # A new file gets 0600, as replace_atomically's (key material is written here too);
    # an existing one keeps its mode, as cp's in-place write does.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as fh:
        fh.write(content[:cut])
        fh.flush()
        os.fsync(fh.fileno())
        if half_written is not None:
            half_written.set()
        if isinstance(pause, threading.Event):
            if not pause.wait(timeout):
                raise TimeoutError(
                    f"{os.fspath(path)}: pause was not set within {timeout} s; "
                    "the file holds only its first part"
                )
        else:
            pause()
        fh.write(content[cut:])
        fh.flush()
        os.fsync(fh.fileno())
