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
import re
import secrets
import stat
import sys
from itertools import pairwise
from pathlib import Path

from ._log import log

#: The largest input file mtls reads (stores, profile files, deployment.toml).
#: The JDK's own ``cacerts`` is about 0.2 MiB and a 10,000-profile file about 4 MiB;
#: 8 MiB is generous for any real store or profile file, and small enough that
#: no pure-Python parse of it can stall a reload for long.
MAX_INPUT_BYTES = 8 * 1024 * 1024


class InputRefused(OSError):
    """A file mtls will not read: not a regular file, or larger than the limit.

    An ``OSError`` so that every caller's existing "cannot read" translation applies;
    ``strerror`` says which limit and why, ``fix`` (when set) what to do instead.
    """

    fix: str | None = None


def read_input(path: str | os.PathLike[str], limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError: no such file.
        IsADirectoryError: it is a directory.
        InputRefused: a device, pipe or socket, or more than ``limit`` bytes.
        OSError: any other reason it cannot be read.
    """
    # Judged before it is opened too: opening a device has effects of its own (a
    # terminal becomes the controlling one of a process that has none, a watchdog
    # arms), and a socket cannot be opened at all (ENXIO, a misleading reason).
    try:
        mode = os.stat(path).st_mode
    except ValueError as exc:  # UnicodeEncodeError, or a NUL: no file has such a name
        raise unnameable(path, exc) from None
    _refuse_irregular(mode, path)
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer;
    # O_NOCTTY: whatever was swapped in since the stat never becomes our terminal.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        return _read_open(fd, path, limit)
    except OSError as exc:
        # A read's error names no file (os.read has only the descriptor): every
        # message built from it said "Input/output error" alone (h173).
        if exc.filename is None:
            exc.filename = os.fspath(path)
        raise
    finally:
        os.close(fd)


def _read_open(fd: int, path: str | os.PathLike[str], limit: int) -> bytes:
    """:func:`read_input` of the file open at ``fd``."""
    st = os.fstat(fd)
    _refuse_irregular(st.st_mode, path)
    size = st.st_size
    if size > limit:
        raise _too_big(path, limit)
    # One read asks for a byte more than the file had: exactly its size back is the
    # whole file (one read, no buffer larger than the file). A file that grew or
    # shrank meanwhile, or reports no size (/proc), is read on to its end.
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    chunks = [data]
    total = len(data)
    while total <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise _too_big(path, limit)  # grew while we read


# 60 or more characters of the base64 alphabets (standard and URL-safe) in a row.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=_-]{60,}")


def looks_like_store_text(text: str) -> bool:
    """Whether a "path" is a store's or a key's text rather than a file's name: PEM, or
    a run of base64 (a DER key, a PKCS#12 file, as an environment or CI variable holds
    them) with capitals, small letters and digits and few slashes, as no directory
    name has (a hex digest has no capitals; a path has a slash every few letters).
    Such text is never shown: it may hold a private key."""
    if "-----BEGIN " in text:
        return True
    for run in _BASE64_RUN.findall(text):
        if (
            run.count("/") * 20 <= len(run)
            and any(c.isupper() for c in run)
            and any(c.islower() for c in run)
            and any(c.isdigit() for c in run)
            and not _name_like(run)
        ):
            return True
    return False


def _name_like(run: str) -> bool:
    """Whether a base64-looking run reads as a path of file names
    (``Acme-Payments-Gateway-Production-mTLS-Client-2024-Q3.p12``, refused as text by
    the CLI and in profiles, h263): none of standard base64's ``+`` and ``=``, no part
    between slashes longer than a file name may be, and words, not noise: the
    character class (capital, small letter, digit) changes at most 3 times in 10
    characters (about 1 in 10 in names, "ClientIdentity2026"; about 2 in 3 in base64,
    "eDdYAOguVtI9"); a word of hex in one case (a UUID's, a digest's) changes nothing
    (h268: half the names holding a UUID were refused). Measured on random base64 and
    base64url of 32 to 1,200 bytes (about 18,000 runs, the separators ``-`` and ``_``
    included): none read as a name (h267 found 1 in 100 short base64url secrets read
    so by a rule on word lengths)."""
    if any(c in run for c in "+="):
        return False
    parts = run.split("/")
    if any(len(part) >= 256 for part in parts):  # 255: the longest file name
        return False
    words = [word for part in parts for word in re.split(r"[-_]", part) if word]
    changes = sum(
        _char_class(a) != _char_class(b)
        for word in words
        if not _HEX_WORD.fullmatch(word)  # a UUID's, a digest's: one word of hex (h268)
        for a, b in pairwise(word)
    )
    return changes * 10 <= 3 * sum(len(word) for word in words)


_HEX_WORD = re.compile(r"[0-9a-f]+|[0-9A-F]+")


def _char_class(c: str) -> int:
    return 0 if c.isupper() else 1 if c.islower() else 2


def _refuse_irregular(mode: int, path: str | os.PathLike[str]) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
    refused = InputRefused(
        errno.EINVAL,
        "not a regular file: devices, pipes and sockets are refused",
        os.fspath(path),
    )
    refused.fix = "point to a regular file (copy what the pipe or device gives into one)"
    raise refused


def utf8_text(data: bytes, encoding: str = "utf-8") -> str | None:
    """``data`` decoded, or ``None`` when it is not text in ``encoding``.

    For bytes that may hold secrets (a deployment.toml, a vault password file, a
    decrypted value): the ``UnicodeDecodeError`` holds all of them, and raised from
    its handler, an error would carry it as ``__context__`` (``from None`` only hides
    it from printed tracebacks). Callers raise their own error outside the handler.
    """
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def cannot_read_fix(exc: OSError, path: str | os.PathLike[str] | None = None) -> str | None:
    """The fix for a file that cannot be read where the file is not the cause, or is
    not what it seems; ``None`` when the path or its permissions are to check.

    Out of file descriptors (EMFILE, ENFILE) is about the process or the system, not
    the file. A missing file whose name is a symbolic link is a link to a target that
    does not exist (``ls`` shows the name; "no such file" alone misleads).
    """
    if exc.errno == errno.EMFILE:
        limit = ""
        with contextlib.suppress(ImportError, OSError, ValueError):
            import resource  # noqa: PLC0415 - POSIX only, and only on this path

            limit = f" ({resource.getrlimit(resource.RLIMIT_NOFILE)[0]})"
        return (
            f"this process has as many files open as its limit allows{limit}: raise the "
            "limit (ulimit -n; LimitNOFILE= for a systemd service) or find what holds "
            "files open"
        )
    if exc.errno == errno.ENFILE:
        return (
            "the system has as many files open as it allows (fs.file-max): find what "
            "holds them open"
        )
    if isinstance(exc, InputRefused) and exc.fix is not None:
        return exc.fix
    if exc.errno == errno.EIO:  # not the path nor its permissions (h175)
        return (
            "the disk or file system failed to read it: check the device and the mount "
            "(the kernel log says more), or copy the file elsewhere"
        )
    if exc.errno == errno.ENOENT and path is not None:
        with contextlib.suppress(OSError, ValueError):
            if os.path.islink(path):
                return (
                    f"it is a symbolic link to {os.readlink(path)}, which does not exist: "
                    "point the link at the file, or restore it"
                )
    return None


def unnameable(path: str | os.PathLike[str], exc: ValueError) -> InputRefused:
    """A path the system cannot be asked about: a character the file system encoding
    cannot write (a non-UTF-8 locale: ``LANG=C`` without Python's UTF-8 mode), or a
    NUL. What Java says is "file not found"; this says why."""
    if isinstance(exc, UnicodeEncodeError):
        refused = InputRefused(
            errno.EILSEQ,
            f"its name cannot be written in this process's file system encoding "
            f"({sys.getfilesystemencoding()})",
            os.fspath(path),
        )
        refused.fix = (
            "run Python in UTF-8 (a UTF-8 locale such as LANG=C.UTF-8, or PYTHONUTF8=1), "
            "or rename the file"
        )
        return refused
    refused = InputRefused(errno.EINVAL, "a file name cannot hold a NUL character", os.fspath(path))
    refused.fix = "remove the NUL character from the path"
    return refused


def _too_big(path: str | os.PathLike[str], limit: int) -> InputRefused:
    refused = InputRefused(
        errno.EFBIG,
        f"larger than {limit // (1024 * 1024)} MiB, the limit for input files",
        os.fspath(path),
    )
    # Not "check the path and its permissions" (h246: said of a 200 MB profile file).
    refused.fix = (
        "no store or profile file is this large: check that the path names the file "
        "meant; split a CA bundle, or remove what it repeats"
    )
    return refused


_NAME_MAX = 255  # bytes in one path component (Linux, macOS, and most file systems)
_TEMPORARY_EXTRA = len(".") + len(".") + 12 + len(".tmp")


def _create_temporary(directory: Path, name: str, mode: int) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` in ``directory``, created with ``mode``.

    Like :func:`tempfile.mkstemp` (O_EXCL, random names), except that the creation
    mode is ours: ``mkstemp`` always creates 0600.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    # A name of up to 255 bytes is a file name everywhere: the temporary one adds 18,
    # so a long store name is cut to leave them room.
    # Cut between characters: some file systems (APFS) refuse names that are not UTF-8.
    stem = os.fsencode(name)[: _NAME_MAX - _TEMPORARY_EXTRA].decode("utf-8", "ignore")
    for _ in range(100):
        tmp = directory / f".{stem}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", os.fspath(directory))


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


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int | None,
    mtime: float | None = None,
    keep_existing: bool = True,
    keep_group: bool = True,
) -> Path:
    """Replace ``path`` with ``data``: a temporary file in the same directory, fsync, rename.

    A concurrent reader sees the old content or the new, never a partial file. On
    failure ``path`` is unchanged and no temporary file is left. A symbolic link is
    written through (its target is replaced; the link stays).

    ``mode`` is set on the descriptor before any byte is written. ``None`` means what
    ``open(path, "w")`` would create: the temporary file is created 0666 and the
    kernel applies the process umask to it. The umask is never read or changed: it
    is process-wide, and setting it even for a moment (the only portable way to read
    it) gives files other threads create meanwhile the wrong mode.

    A regular file already at ``path`` keeps its owner, group and mode, as keytool's
    in-place write keeps them (a group-readable store its service reads, rewritten by
    ``sudo``), except that with ``mode`` given (a private store) no permission beyond
    ``mode`` and the group's is kept: the world never gains access. They are set on
    the descriptor before any byte is written; the owner only where the process may
    (root, or a group it is in), with a warning when it may not, and then the group's
    bits are not carried over to another group. A POSIX ACL is copied (else the
    group bits, which are then its mask, are not kept). No set-id or sticky bit is
    kept. Hard links to the old file keep the old content: the new one is another
    file. As keytool's write would be, a file this process may not write is refused,
    and so is a link another user left in a sticky, world-writable directory (the
    kernel's ``protected_symlinks`` rule, which a rename would get round).

    ``keep_group=False`` (an unencrypted private key) keeps none of the group's bits
    either: the file has ``mode`` at most, whoever could read the old one.

    ``keep_existing=False`` replaces a file already there as a deploy tool's rename
    does: with ``mode`` exactly, whatever the old file's owner, mode or ACL were, and
    whether or not it was writable (what :func:`mtls.testing.replace_atomically`
    simulates).

    Raises:
        OSError: the directory is not writable, the disk is full, the file is
            read-only to this process, or the link is refused.
    """
    try:
        if b"\0" in os.fsencode(path):
            raise ValueError("NUL")
    except ValueError as exc:  # UnicodeEncodeError too: no file can have this name here
        refused = unnameable(path, exc)
        fix = cannot_read_fix(refused)
        raise WriteRefused(
            refused.errno, f"{refused.strerror}: {fix}; nothing was written", os.fspath(path)
        ) from None
    target = Path(path)
    if target.is_symlink():
        _refuse_planted_link(target)
        # Written through, as open() writes: the link stays a link (a store mounted
        # from a secret, a file another path points at).
        target = Path(os.path.realpath(target))
    directory = target.parent
    try:
        old = os.stat(target)
    except OSError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode) and not stat.S_ISDIR(old.st_mode):
        # A rename would put a file where a device, pipe or socket was (as root:
        # /dev/null replaced); every reader refuses such a path too.
        raise _refused_class(OSError)(
            errno.EINVAL,
            "not a regular file (a device, pipe or socket): give a file path; nothing was written",
            os.fspath(target),
        )
    if old is not None and (not keep_existing or not stat.S_ISREG(old.st_mode)):
        old = None
    if old is not None and not os.access(target, os.W_OK):
        if _on_read_only_mount(target):  # not the file's owner or mode (h173)
            raise write_refused(OSError(errno.EROFS, "read-only file system"), target)
        raise write_refused(PermissionError(errno.EACCES, "read-only"), target, read_only=True)
    acl = _acl(target) if old is not None else None
    try:
        fd, tmp = _create_temporary(directory, target.name, 0o666 if mode is None else 0o600)
    except OSError as exc:
        raise write_refused(exc, target) from None
    try:
        if old is not None:
            same_group = _keep_owner(fd, old, target) and keep_group
            os.fchmod(fd, _kept_mode(old, same_group, mode))
            if acl is not None and (not keep_group or not _set_acl(fd, acl)):
                # The group bits were the ACL's mask, not the group's: kept as for a
                # group the file could not keep.
                os.fchmod(fd, _kept_mode(old, False, mode))
        elif mode is not None:
            os.fchmod(fd, mode)  # before any byte is written: a key file is never readable
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_refused(exc, target) from None
        raise
    fsync_directory(directory)
    return target


_ACL = "system.posix_acl_access"


def _acl(path: Path) -> bytes | None:
    """The file's POSIX access ACL (its xattr), or None when it has none."""
    try:
        return os.getxattr(path, _ACL) if hasattr(os, "getxattr") else None
    except OSError:  # ENODATA: none; ENOTSUP: no ACLs on this file system
        return None


def _set_acl(fd: int, acl: bytes) -> bool:
    try:
        os.setxattr(fd, _ACL, acl)
    except OSError:
        return False
    return True


def _refuse_planted_link(link: Path) -> None:
    """The kernel's ``protected_symlinks`` rule: a link in a sticky, world-writable
    directory is followed only when its owner is the follower or the directory's."""
    try:
        owner = os.lstat(link).st_uid
        parent = os.stat(link.parent)
    except OSError:
        return
    shared = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
    if shared and owner not in (os.geteuid(), parent.st_uid):
        raise WriteRefused(
            errno.EACCES,
            f"a symbolic link that another user (uid {owner}) left in the shared, "
            f"world-writable directory {link.parent}: not followed, as the kernel does not "
            "follow it either: remove the link, or write to its target's own path",
            os.fspath(link),
        )


def _kept_mode(old: os.stat_result, same_group: bool, mode: int | None) -> int:
    """The old file's permissions for the new one: no set-id or sticky bit; a group the
    file could not keep gets no write (and, for a private store, no read) permission,
    since the old group's bits would now apply to another group; a private store
    (``mode`` given) never keeps more than ``mode`` and its group's bits."""
    kept = stat.S_IMODE(old.st_mode) & 0o777
    if not same_group:
        kept &= ~(0o070 if mode is not None else 0o020)
    return kept if mode is None else kept & (mode | 0o070)


def _keep_owner(fd: int, old: os.stat_result, target: Path) -> bool:
    """Give the new file the old one's owner and group where the process may; True if
    it has the old group (the file's own, as created: a setgid directory gives its)."""
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) == (old.st_uid, old.st_gid):
        return True
    if not hasattr(os, "fchown"):  # not POSIX: no owners to keep
        return now.st_gid == old.st_gid
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        with contextlib.suppress(PermissionError):  # not root: the group, if a member
            os.fchown(fd, -1, old.st_gid)
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) != (old.st_uid, old.st_gid):
        log.warning(
            "%s: rewritten with this process's owner and group (uid %d, gid %d), not "
            "the old file's (uid %d, gid %d), which only root may give it: check "
            "that its readers can still open it",
            target,
            now.st_uid,
            now.st_gid,
            old.st_uid,
            old.st_gid,
        )
    return now.st_gid == old.st_gid


def _on_read_only_mount(path: Path) -> bool:
    """Whether ``path`` is on a file system mounted read-only (``statvfs``)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # AttributeError: no statvfs on this system
        return False


class WriteRefused(OSError):
    """A file mtls could not write: ``filename`` is the file asked for (never the
    temporary file beside it), ``strerror`` says why and what to do; nothing was
    written, and a file already there is unchanged."""


def write_refused(exc: OSError, target: Path, *, read_only: bool = False) -> WriteRefused:
    """``exc`` as the :class:`WriteRefused` of its kind, saying why ``target`` was not
    written and what to do."""
    directory = target.parent
    where = os.fspath(directory) or "."
    if read_only:  # keytool's open() for writing is refused the same way
        return _refused_class(type(exc))(
            errno.EACCES,
            "the file is read-only to this process: check its owner and mode; nothing was written",
            os.fspath(target),
        )
    reasons = {
        errno.EACCES: f"cannot write in {where}: permission denied: check the directory's "
        "owner and mode",
        errno.EPERM: f"cannot write in {where}: not permitted: check the directory's owner, "
        "mode and attributes",
        errno.ENOENT: f"the directory {where} does not exist: create it first",
        errno.ENOTDIR: f"{where} is not a directory: give a path in a directory",
        errno.EISDIR: "is a directory: give a file path",
        errno.ENOSPC: f"no space left on the device of {where}",
        errno.EDQUOT: f"disk quota exceeded on the device of {where}",
        errno.EFBIG: "larger than the file size limit of this process (ulimit -f)",
        errno.EROFS: f"{where} is on a read-only file system",
    }
    if exc.errno == errno.ENOENT and os.path.isdir(directory):
        # The directory is there and will not take a new file (/proc, /sys, a FUSE
        # mount that creates none): "does not exist" sent the user looking for it.
        reasons[errno.ENOENT] = (
            f"{where} takes no new file ({exc.strerror}): write the store somewhere else"
        )
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return _refused_class(type(exc))(
        exc.errno or 0, f"{reason}; nothing was written", os.fspath(target)
    )


_REFUSED: dict[type[OSError], type[WriteRefused]] = {}


def _refused_class(kind: type[OSError]) -> type[WriteRefused]:
    """A :class:`WriteRefused` that is still what was raised (``PermissionError``,
    ``FileNotFoundError``, ...), so that callers catching those keep catching it."""
    if issubclass(kind, WriteRefused) or kind is OSError:
        return WriteRefused
    made = _REFUSED.get(kind)
    if made is None:
        made = _REFUSED.setdefault(
            kind, type(f"WriteRefused{kind.__name__}", (WriteRefused, kind), {})
        )
    return made
