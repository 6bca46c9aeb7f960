"""Settled reads of watched files: what one check of the engine reads, and what it saw.

Thread-free: the engine (:mod:`mtls._engine`) creates one :class:`Reading` per check
and commits it when the check publishes. The rules (settled bytes only, seen is what
was built) are described in the engine's theory of operation.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._files import InputRefused, read_input

_MISSING: tuple[int, ...] = (-1,)
_NONE_MOVED: frozenset[Path] = frozenset()


def stat_keys(named: Iterable[tuple[Path, str]]) -> list[tuple[int, ...]]:
    """What a check compares of each ``(path, name)``: its size, mtime, ctime, inode
    and device (``_MISSING``: no such file, or a name the system cannot be asked
    about), in one loop: what a check in which nothing changed costs beyond the stats."""
    keys: list[tuple[int, ...]] = []
    append, stat = keys.append, os.stat
    for _, name in named:
        try:
            st = stat(name)  # follows symlinks: a ..data swap changes the inode we see
        except (OSError, ValueError):  # ValueError: a name the system cannot be asked about
            append(_MISSING)
        else:
            append((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev))
    return keys


def _written_key(key: tuple[int, ...]) -> tuple[int, ...]:
    """What a write moves of a stat key (size, mtime, inode, device): its ctime left
    out, which a ``chmod`` moves too (one between a settle's two reads held a file as
    still being written, h243)."""
    return key[:2] + key[3:] if len(key) == 5 else key


def stat_key(path: Path) -> tuple[int, ...]:
    """:func:`stat_keys` of one path."""
    return stat_keys(((path, os.fspath(path)),))[0]


_SECOND_NS = 1_000_000_000
# File times come from the kernel's coarse clock, up to a tick (4 ms at HZ=250, 10 ms
# at HZ=100) behind time.time_ns(): a change is taken to be that much later.
_TICK_NS = 10_000_000


#: Seconds (at least three settle delays) an emptied file is taken for one still being
#: written, from when a check first found it so (see :meth:`Reading._emptied`).
EMPTIED_GRACE = 2.0
_EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


# What a racy entry records as its mtime: no stat gives it (below any 64-bit time).
_RACY_MTIME = -(2**64)

#: Seconds (this process's monotonic clock) a file keeps being read again for one racy
#: stat: longer than any granule (two seconds), so a change time that stays "recent"
#: past it is ahead of this clock (set by hand where ctime follows mtime, as on
#: squashfs, vfat and some FUSE mounts, or a file server's clock ahead of this one),
#: and the stat is trusted, as before (h175: a squashfs image with times 30 days ahead
#: was read twice at every check).
RACY_AT_MOST = 3.0


def _racy(key: tuple[int, ...], read_ns: int) -> bool:
    """Whether a file whose stat was ``key`` when its bytes were read at ``read_ns``
    (``time.time_ns()`` before that stat) could change later without its stat moving.

    Every change sets the change time (ctime) to the kernel's coarse clock, which
    user space cannot set: a later change moves it, unless it lands within the same
    granule (a clock tick; the same second on a file system that keeps whole seconds),
    where a write of the same size keeps mtime, ctime and size, and a rename can bring
    back the same inode number (ext4 hands a freed one straight back). Such a stat
    proves nothing until its ctime's granule has passed, as git's "racily clean" index
    entries (h173: three renames within one second on ext4 with 128-byte inodes left a
    withdrawn CA trusted, and ``status()`` healthy, for good). The mtime does not count:
    one set ahead (``touch -d``) is no change time. A ctime ahead of this clock (where
    ctime follows a set mtime, or a server's clock is ahead) is racy for at most
    :data:`RACY_AT_MOST` seconds (:meth:`FileReader.record`)."""
    if key == _MISSING:
        return False
    whole = key[1] % _SECOND_NS == 0 and key[2] % _SECOND_NS == 0
    return key[2] + (2 * _SECOND_NS if whole else _TICK_NS) >= read_ns


def _changed_at_ns(key: tuple[int, ...]) -> int | None:
    """The latest time the file's content or inode may have changed (None: no such file).

    Times are rounded up to what the file system can tell: one that keeps whole
    seconds (ext3, some NFS servers) shows a write at 12.7 s as 12.0 s, and FAT keeps
    even seconds, so a file whose mtime and ctime are both whole seconds may have
    changed up to two seconds later.
    """
    if key == _MISSING:
        return None
    # ctime cannot be set by user space, and moves with every write, chmod or rename;
    # an mtime set into the future (touch -d) makes the file look fresh, never old.
    changed = max(key[1], key[2])
    if key[1] % _SECOND_NS == 0 and key[2] % _SECOND_NS == 0:
        return changed + 2 * _SECOND_NS
    return changed + _TICK_NS


class Interrupted(Exception):
    """``close()`` was called during a check: stop at this safe point, publish nothing."""


class Unstable(Exception):
    """A file changed between two reads of one check: it is still being written."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is still being written")
        self.path = path


#: How long a file may be caught mid-write at every check (and at least
#: :data:`NEVER_SETTLES_CHECKS` checks in a row) before that is an error (kept last
#: good, said in status() and once in the log) rather than a quiet retry.
NEVER_SETTLES_AFTER = 60.0
NEVER_SETTLES_CHECKS = 3


class NeverSettles(InputRefused):
    """A file that has differed between two reads a settle delay apart at every
    check for :data:`NEVER_SETTLES_AFTER` seconds: rewritten in place without end."""

    def __init__(self, path: Path) -> None:
        # The limit, not the time so far: a message that changed at every check was
        # logged at every check (the log says each error once, until it changes).
        super().__init__(
            errno.EBUSY,
            f"still being written for over {NEVER_SETTLES_AFTER:g} s (two reads a "
            "settle delay apart "
            "differed at every check): something rewrites it in place without end; it is "
            "installed once it stays still, and the last good serves meanwhile",
            os.fspath(path),
        )


class FileReader:
    """What the engine last *used* of each watched file: the stat taken before the
    bytes were read, and their hash (``None``: the file could not be read).

    Entries are written only by :meth:`Reading.commit`, at the end of a check that
    published a snapshot, and only for bytes that check settled and built from: so a
    file that changes at any moment after it was read has a different stat at the
    next check, and is looked at again.
    """

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, ...], str | None]] = {}
        # When each file caught mid-write was first caught, and how many checks in a
        # row caught it, until a check reads it whole or cannot read it at all.
        self._unstable_since: dict[Path, tuple[float, int]] = {}
        # When each file that held bytes was first found emptied in place (monotonic
        # time, not its mtime: a future mtime must not stretch the grace), and which
        # file (inode, device) it was.
        self._emptied: dict[Path, tuple[float, tuple[int, ...]]] = {}
        # When each file's stat (as recorded) was first found racy (monotonic time).
        self._racy_since: dict[Path, tuple[tuple[int, ...], float]] = {}
        self._paths: Iterable[Path] = ()
        self._named: tuple[tuple[Path, str], ...] = ()
        # Bumped whenever an entry of _seen changes: the recorded stats of the named
        # paths (see expected()) are reused while it stands.
        self._version = 0
        self._expected: (
            tuple[object, int, tuple[tuple[Path, str], ...], tuple[tuple[int, ...] | None, ...]]
            | None
        ) = None

    def named(self, paths: Iterable[Path]) -> tuple[tuple[Path, str], ...]:
        """Each of ``paths`` with the string ``os.stat`` takes, made once per tuple of
        paths (a snapshot's watched files stay one tuple from check to check): a Path
        passed to ``os.stat`` costs a Python call each time."""
        if paths is self._paths:
            return self._named
        named = tuple((path, os.fspath(path)) for path in paths)
        if isinstance(paths, tuple):  # kept only for what cannot change under it
            self._paths, self._named = paths, named
        return named

    def expected(
        self, paths: Iterable[Path]
    ) -> tuple[tuple[tuple[Path, str], ...], tuple[tuple[int, ...] | None, ...]]:
        """:meth:`named`, with each path's recorded stat (``None``: none recorded),
        worked out again only when an entry changed: a check in which nothing changed
        looks up no path (hashing a ``Path`` is a Python call)."""
        cached = self._expected
        if cached is not None and cached[0] is paths and cached[1] == self._version:
            return cached[2], cached[3]
        named = self.named(paths)
        seen = self._seen
        keys = tuple(None if (e := seen.get(path)) is None else e[0] for path, _ in named)
        if named is self._named:  # paths is the tuple named() keeps
            self._expected = (paths, self._version, named, keys)
        return named, keys

    def unmoved(self, paths: Iterable[Path]) -> bool:
        """Whether every one of ``paths`` has the stat recorded when its bytes were
        last used: the whole of a check in which nothing changed (a :class:`Reading`
        surveys them again when one moved)."""
        named, expected = self.expected(paths)
        return tuple(stat_keys(named)) == expected

    @property
    def entries(self) -> dict[Path, tuple[tuple[int, ...], str | None]]:
        """The recorded (stat, sha256) per file (read-only use)."""
        return self._seen

    def seen(self, path: Path) -> tuple[tuple[int, ...], str | None] | None:
        """The recorded (stat, sha256) of ``path``, if any."""
        return self._seen.get(path)

    def record(
        self, path: Path, key: tuple[int, ...], digest: str | None, *, racy: bool = False
    ) -> None:
        """Record what a check used of ``path``. ``racy``: its stat was taken before its
        change time's granule ended (:func:`_racy`), so a later write could leave the
        same stat: recorded so that no stat matches it (the inode and device kept),
        and the next check reads and hashes the file again."""
        if racy:
            now = time.monotonic()
            first = self._racy_since.get(path)
            if first is None or first[0] != key:
                self._racy_since[path] = (key, now)
            elif now - first[1] > RACY_AT_MOST:
                racy = False  # a change time ahead of this clock: see RACY_AT_MOST
        if racy:
            key = (key[0], _RACY_MTIME, *key[2:])
        else:
            self._racy_since.pop(path, None)
        self._seen[path] = (key, digest)
        self._version += 1

    def drop(self, path: Path) -> None:
        self._seen.pop(path, None)
        self._version += 1

    def forget(self, keep: Iterable[Path]) -> None:
        """Drop entries for files no longer watched."""
        self._version += 1
        wanted = set(keep)
        for path in list(self._seen):
            if path not in wanted:
                del self._seen[path]
        for path in list(self._unstable_since):
            if path not in wanted:
                del self._unstable_since[path]
        for path in list(self._emptied):
            if path not in wanted:
                del self._emptied[path]
        for path in list(self._racy_since):
            if path not in wanted:
                del self._racy_since[path]

    def emptied(self, path: Path, where: tuple[int, ...], fresh: bool, grace: float) -> bool:
        """Whether ``path``, found empty, is within its grace: first found so (``fresh``:
        it held bytes, and was emptied in place just now) less than ``grace`` seconds
        ago, the same file (``where``: inode, device)."""
        now = time.monotonic()
        first = self._emptied.get(path)
        if first is not None and first[1] == where:
            return now - first[0] < grace
        if not fresh:
            self._emptied.pop(path, None)
            return False
        self._emptied[path] = (now, where)
        return True

    def filled(self, path: Path) -> None:
        """``path`` was read with bytes: no longer emptied."""
        self._emptied.pop(path, None)

    def never_settles(self, path: Path) -> float | None:
        """``path`` caught mid-write once more: the seconds since it was first caught
        when that is an error (:data:`NEVER_SETTLES_AFTER`, in at least
        :data:`NEVER_SETTLES_CHECKS` checks in a row), else ``None``."""
        now = time.monotonic()
        since, count = self._unstable_since.get(path, (now, 0))
        self._unstable_since[path] = (since, count + 1)
        lasting = now - since
        return (
            lasting
            if lasting >= NEVER_SETTLES_AFTER and count + 1 >= NEVER_SETTLES_CHECKS
            else None
        )

    def settled(self, path: Path) -> None:
        """``path`` read whole, or not at all: not caught mid-write."""
        self._unstable_since.pop(path, None)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What one check knows of one file; each file gets exactly one per check."""

    key: tuple[int, ...]  # the stat taken before the bytes were read
    data: bytes | None = None  # None with error (unreadable) or for "unchanged" (read lazily)
    digest: str | None = None
    error: OSError | None = None
    unstable: bool = False
    unchanged: bool = False  # as recorded by an earlier check: nothing read yet
    read_ns: int = 0  # time.time_ns() before the stat ``key`` (0: its stat was recorded)


class Reading:
    """The files one check (or the first load) reads: every byte string it hands
    out has been **settled**, and each file has one answer for the whole check.

    A file is settled when its bytes are known to be complete: it has not moved
    since an earlier check settled it; or its stat did not move while it was read
    and its last change is at least ``settle_delay`` old; or a second read, one
    ``settle_delay`` later, gives the same bytes (one wait for all the files read
    together). A file whose two reads differ is *unstable*: it is still being
    written, nothing is built from it in this check, and the next check reads it
    again. Reads go through :func:`mtls._files.read_input` (regular files only, a
    size limit), so no file can block or exhaust a check.
    """

    def __init__(self, seen: FileReader, settle_delay: float, stop: threading.Event) -> None:
        self._seen = seen
        self._delay = settle_delay
        self._stop = stop
        self._verdicts: dict[Path, _Verdict] = {}
        self._stats: dict[Path, tuple[int, ...]] = {}  # taken by survey(), used once
        # A survey's stats, until _stat() first needs them as _stats (a check in
        # which nothing moved ends without making that dict).
        self._surveyed: tuple[tuple[tuple[Path, str], ...], list[tuple[int, ...]]] | None = None
        self._restats: dict[Path, tuple[int, ...]] = {}  # taken by known(), once each
        #: The files whose stat moved, as :meth:`survey` found them (``None``: no
        #: survey, so every file may have moved). A file not among them hashes as its
        #: bytes were last used: a check need not look at what was built from it.
        self.moved: frozenset[Path] | None = None

    def survey(self, paths: Iterable[Path], *, force: bool = False) -> list[Path]:
        """Stat each of ``paths`` once, and return those whose stat moved since their
        bytes were last used (or that were never used): how a full check begins (a
        check in which nothing changed stops at :meth:`FileReader.unmoved`). The
        stats taken stand for the rest of the check.
        ``force``: every path, as if all had moved (each is read and hashed: a file
        system whose stat does not show a change, such as a FUSE mount that fixes
        mtimes)."""
        named, expected = self._seen.expected(paths)
        keys = stat_keys(named)
        moved = [
            path
            for (path, _), was, key in zip(named, expected, keys, strict=True)
            if force or was != key
        ]
        self._surveyed = (named, keys)
        self.moved = frozenset(moved) if moved else _NONE_MOVED
        return moved

    def _stat(self, path: Path) -> tuple[int, ...] | None:
        """The survey's stat of ``path`` (``None``: not surveyed)."""
        return (self._stats if self._surveyed is None else self._surveyed_stats()).get(path)

    def _surveyed_stats(self) -> dict[Path, tuple[int, ...]]:
        """The survey's stats as a map, made when the check first needs one."""
        surveyed, self._surveyed = self._surveyed, None
        if surveyed is not None:
            named, keys = surveyed
            self._stats.update(zip((path for path, _ in named), keys, strict=True))
        return self._stats

    def checkpoint(self) -> None:
        """A safe point: raise :class:`Interrupted` if ``close()`` was called."""
        if self._stop.is_set():
            raise Interrupted

    def _quiet(self, key: tuple[int, ...]) -> bool:
        changed = _changed_at_ns(key)
        return changed is not None and changed <= time.time_ns() - int(self._delay * 1e9)

    def _emptied(self, path: Path, data: bytes, key: tuple[int, ...]) -> bool:
        """Whether ``path``, which held bytes, is empty within :data:`EMPTIED_GRACE` of
        being found emptied in place (the same inode, changed just now when first
        found): a writer (``cp`` over the file) between its truncate and its first
        write, held up longer than the settle delay (a busy machine). It is still
        being written, at this check and the next ones within the grace, not an empty
        file to refuse: refusing it logged "the file is empty" and turned the profile
        unhealthy. Empty for longer, it is what it is."""
        if data:
            self._seen.filled(path)
            return False
        seen = self._seen.seen(path)
        changed = _changed_at_ns(key)
        grace = max(EMPTIED_GRACE, 3 * self._delay)  # a check's own settle wait inside it
        fresh = (
            seen is not None
            and seen[1] not in (None, _EMPTY_DIGEST)  # it held bytes
            and seen[0][3:] == key[3:]  # the same file: a rename to an empty one is whole
            and changed is not None
            and (
                changed > time.time_ns() - int(grace * 1e9)
                # Its times are still those of its bytes: truncated just now, the size
                # shown before the times move (ext4 under keytool's or cp's write in
                # place, about 1 ms): a file last changed long ago was refused as
                # empty, "a write that did not finish", at WARNING (h233).
                or seen[0][1:3] == key[1:3]
            )
        )
        return self._seen.emptied(path, key[3:], fresh, grace)

    def settle(self, paths: Iterable[Path]) -> None:
        """Give each of ``paths`` its verdict, reading it (twice if need be)."""
        firsts: dict[Path, tuple[tuple[int, ...], int, str]] = {}
        for path in paths:
            if path in self._verdicts:
                continue
            self.checkpoint()
            read_ns = time.time_ns()
            before = stat_key(path)
            try:
                data = read_input(path)
            except OSError as exc:
                self._verdicts[path] = _Verdict(before, error=exc, read_ns=read_ns)
                self._seen.settled(path)
                continue
            digest = hashlib.sha256(data).hexdigest()
            still = stat_key(path) == before and not self._emptied(path, data, before)
            if still and (self._seen.seen(path) == (before, digest) or self._quiet(before)):
                self._verdicts[path] = _Verdict(before, data, digest, read_ns=read_ns)
                self._seen.settled(path)
            else:
                firsts[path] = (before, read_ns, digest)
        if not firsts:
            return
        _pause(self._stop, self._delay)
        for path, (before, read_ns, digest) in firsts.items():
            self.checkpoint()
            try:
                again = read_input(path)
            except OSError:
                again = None  # gone between the two reads: still changing
            same = again is not None and hashlib.sha256(again).hexdigest() == digest
            # And nothing wrote between the two reads: two writes of the file in place,
            # a settle delay apart, each caught at the same point (the first half of a
            # truststore bundle) gave the same bytes twice, and a cut-down bundle went
            # into service (h242: 16 of 20 trials).
            if same and _written_key(stat_key(path)) != _written_key(before):
                same = False
            if same and again is not None and not self._emptied(path, again, before):
                self._verdicts[path] = _Verdict(before, again, digest, read_ns=read_ns)
                self._seen.settled(path)
            elif self._seen.never_settles(path) is not None:
                self._verdicts[path] = _Verdict(before, error=NeverSettles(path))
            else:
                self._verdicts[path] = _Verdict(before, unstable=True)

    def _verdict(self, path: Path) -> _Verdict:
        verdict = self._verdicts.get(path)
        if verdict is None:
            seen = self._seen.seen(path)
            key = self._stat(path) or stat_key(path)
            if seen is not None and seen[0] == key:
                verdict = _Verdict(seen[0], digest=seen[1], unchanged=True)
                self._verdicts[path] = verdict
            else:
                self.settle([path])
                verdict = self._verdicts[path]
        return verdict

    def digest(self, path: Path) -> str | None:
        """The settled hash of ``path`` in this check (``None``: it cannot be read).

        Raises:
            Unstable: it is still being written.
            Interrupted: ``close()`` was called.
        """
        verdict = self._verdicts.get(path)
        if verdict is None:
            # Surveyed unchanged: the recorded hash, without a verdict object (a check
            # of 1,000 unchanged stores asks this 1,000 times). read() agrees: it
            # makes its verdict from the same survey stat.
            stats = self._stats if self._surveyed is None else self._surveyed_stats()
            key = stats.get(path)
            seen = self._seen.entries.get(path)
            if key is not None and seen is not None and seen[0] == key:
                return seen[1]
            verdict = self._verdict(path)
        if verdict.unstable:
            raise Unstable(path)
        return verdict.digest

    def known(self, path: Path) -> str | None:
        """The hash of ``path`` in this check if it is known without reading the file
        (surveyed unchanged, or already read), else ``None``: a build whose store is
        cached by content need not read the bytes again."""
        verdict = self._verdicts.get(path)
        if verdict is not None:
            if verdict.unstable or verdict.error is not None:
                return None
            # Read earlier in this check (its bytes settled then), or found unchanged
            # by the survey: then it must still be (read() compares the bytes again; a
            # stat costs less, and a file replaced since is read and found unstable).
            if verdict.data is None and self._restat(path) != verdict.key:
                return None
            return verdict.digest
        key = (self._stats if self._surveyed is None else self._surveyed_stats()).get(path)
        seen = self._seen.entries.get(path)
        if key is not None and seen is not None and seen[0] == key and self._restat(path) == key:
            return seen[1]
        return None

    def _restat(self, path: Path) -> tuple[int, ...]:
        """``path``'s stat, taken once per check after the survey (many profiles share
        a file): what confirms that a file the survey found unchanged still is."""
        key = self._restats.get(path)
        if key is None:
            key = self._restats[path] = stat_key(path)
        return key

    def quiet(self, path: Path) -> bool:
        """Whether ``path`` reads now without a settle wait: it has a verdict in this
        check, or its last change is at least ``settle_delay`` old."""
        return path in self._verdicts or self._quiet(stat_key(path))

    def read(self, path: Path) -> tuple[bytes, str]:
        """The settled bytes of ``path`` in this check, and their hash.

        Raises:
            OSError: it cannot be read (:class:`mtls._files.InputRefused` for a
                device, pipe or socket, or a file over the size limit).
            Unstable: it is still being written.
            Interrupted: ``close()`` was called.
        """
        verdict = self._verdict(path)
        if verdict.unstable:
            raise Unstable(path)
        if verdict.error is not None:
            raise verdict.error
        if verdict.data is None:  # "unchanged": read it now, and make sure it still is
            if verdict.digest is None:
                # Unreadable last time and the stat has not moved: read for the error.
                self._verdicts.pop(path)
                self.settle([path])
                return self.read(path)
            self.checkpoint()
            data = read_input(path)
            if hashlib.sha256(data).hexdigest() != verdict.digest:
                # Changed after this check declared it unchanged: this check cannot
                # use it consistently; the next one will (its stat moved).
                self._verdicts[path] = _Verdict(verdict.key, unstable=True)
                raise Unstable(path)
            verdict = _Verdict(verdict.key, data, verdict.digest)
            self._verdicts[path] = verdict
        assert verdict.data is not None
        assert verdict.digest is not None
        return verdict.data, verdict.digest

    @property
    def unstable(self) -> bool:
        """True if any file was caught mid-write: the next check must look again."""
        return any(v.unstable for v in self._verdicts.values())

    def commit(self) -> None:
        """Record what this check used (its snapshot was published)."""
        for path, verdict in self._verdicts.items():
            if verdict.unstable:
                self._seen.drop(path)  # looked at again next check
            elif not verdict.unchanged:
                racy = verdict.read_ns > 0 and _racy(verdict.key, verdict.read_ns)
                self._seen.record(path, verdict.key, verdict.digest, racy=racy)


def _pause(stop: threading.Event, delay: float) -> None:
    """Wait ``delay`` seconds, or until ``stop`` is set (``close()`` ends it at once).

    The main thread, where signals arrive, waits in short sleeps that read the event
    without taking its lock: a KeyboardInterrupt inside ``Event.wait`` can leave the
    event's lock held, and ``close()``, which sets the event, would then hang for
    good. Other threads (the reloader) wait on the event itself.
    """
    if threading.current_thread() is not threading.main_thread():
        stop.wait(delay)
        return
    deadline = time.monotonic() + delay
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.005))
