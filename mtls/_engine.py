"""The reload engine: one lock, one thread, one published snapshot.

Theory of operation
-------------------
An :class:`Engine` keeps one thing current: an immutable snapshot made from files (a
profile set's profiles and contexts; a server's identity and client trust). What the
snapshot is, and how it is made from the files, is its :class:`Plan`'s business; the
engine owns all of the concurrency: the lock, the checks, the thread, the
subscribers and ``close()``. All mutable state is one reference,
:attr:`Engine.snapshot`, replaced whole. Readers read that reference once and use
what they got: they never lock, never wait on a rebuild, and see either the whole
old snapshot or the whole new one.

Writers are serialised by ``Engine._lock``: the background thread's periodic check
and any :meth:`Engine.check` call take it, have the plan build a new snapshot off to
the side, and publish it with one assignment. Subscribers are told each applied
change in generation order, outside the lock (see :meth:`Engine.subscribe`).

A check is cheap when nothing changed: one ``os.stat`` per distinct watched file
(``snapshot.watched``: the profile file and every store), compared with the stat
recorded when its bytes were last used. Only files whose size, mtime, ctime or inode
moved are read and hashed; only when a hash differs is anything parsed or built.
``stat`` follows symlinks on every check, so a Kubernetes ``..data`` swap (new
inode, even with an older mtime) is seen. A snapshot with errors, or one whose check
caught a file mid-write (``snapshot.pending``), is checked in full next time.
Otherwise a check in which every stat is as recorded is the *quiet* check
(:meth:`Engine._quiet`): the stats under the lock, and nothing more (no
:class:`~mtls._reading.Reading`, nothing logged), then the watchers, which have
nothing to say either unless a certificate crossed a threshold.

Every read of a check goes through one :class:`~mtls._reading.Reading`, and two
rules make rotations safe from writers that change files while a check runs:

* **Settled bytes only.** Every byte string handed to a parser has been settled: the
  file had not moved since an earlier check settled it; or its stat held still
  across the read and its last change (ctime) is at least ``settle_delay`` old; or a
  second read one settle delay later matched (one wait for all files of a check).
  This applies to every read, including files that were missing or unchanged when the
  check began and change during it, and to the first load. A file whose reads
  differ is *unstable*: nothing is built from it and the next check looks again.
* **Seen is what was built.** Each file gets one verdict per check, and the stat
  recorded as seen (:class:`~mtls._reading.FileReader`) is the one taken *before*
  the bytes that were built were read, written only when the check publishes. A
  file that changes at any moment after that read has a different stat next check.

For a profile set (:class:`mtls._snapshot.ProfilesPlan`), contexts are cached by
content (store hashes, passwords, options): a profile whose inputs did not change
keeps its very same ``SSLContext``; identical material is one context however many
profiles use it. A check looks only at the profiles built from a file whose stat
moved (``Reading.moved``), and at those with an error; the snapshot's maps say which
(:class:`mtls._snapshot.Materials`), and are patched for what changed. A profile
whose new material fails to load or validate keeps its last good context and
reports the error; the next check retries it. A profile with no last good at all is
a ``Failed`` entry in the index: the hosts it names are refused
(``ProfileUnavailableError``), never served by a catch-all or default.

The thread (:class:`Timer`) survives any exception from a check, ``BaseException``
included, and reports it. ``close()`` sets the stop event: waits end at once, and a
running check raises :class:`~mtls._reading.Interrupted` at its next safe point
(each file read, profile and context build), so nothing is published or recorded
as seen; a parse already under way is not interruptible, so ``close()`` waits at
most :data:`CLOSE_TIMEOUT` for it. Problems are logged once each (:class:`Reports`).

Using the engine (a second consumer)
------------------------------------
Write a :class:`Plan` whose snapshots satisfy :class:`Published`, then::

    engine = Engine(plan, settle_delay=0.1, interval=60, name="mtls-server-x")
    engine.snapshot            # the current snapshot: read it once per use
    engine.check()             # check now (what the thread does every interval)
    engine.subscribe(cb)       # cb(old_generation, new_generation), in order
    engine.watch(fn)           # fn(snapshot) after every check (expiry, health):
                               # returns what it has to say (a function), or None
    engine.close()

The constructor makes the first snapshot (``plan.first``) and raises what it raises;
nothing runs in the background until it has succeeded.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import functools
import logging
import math
import sys
import threading
import time
import weakref
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from ._errors import MTLSError, bounded
from ._fork import renew_after_fork, renew_attributes_after_fork
from ._log import emit, held, holding, log
from ._reading import FileReader, Interrupted, Reading, Unstable
from ._secret import escaped as kept_escape
from ._secret import settled
from ._workers import start_unlocked

#: The longest ``close()`` waits for a check in progress (seconds); see its docstring.
CLOSE_TIMEOUT = 1.0
# When the interpreter's exit began closing what was left open: every close at exit
# shares one CLOSE_TIMEOUT from there (see close_finalized).
_EXIT_STARTED: list[float] = []


def close_finalized(engine: Engine[Any]) -> None:
    """``weakref.finalize``'s callback for an engine's owner (a profile set, a rotating
    server context), collected or left open at exit: :meth:`Engine.close`.

    At interpreter exit (``weakref.finalize`` runs what is left then, on the main
    thread, after it has ended), the engines' closes share one :data:`CLOSE_TIMEOUT`:
    each waited up to its own, one after another, so 30 sets whose callback was stuck
    held the exit 30 s (h184). Their threads are daemon threads, which the exit ends anyway.
    """
    main = threading.main_thread()
    if threading.current_thread() is not main or main.is_alive():
        # Not the exit: collected on a thread, or in the main thread while it runs (a
        # worker thread that goes on after the main thread's end sees it not alive:
        # only the main thread itself finalising is the exit; h187).
        engine.close()
        return
    if not _EXIT_STARTED:
        _EXIT_STARTED.append(time.monotonic())
    engine.close(max(0.0, _EXIT_STARTED[0] + CLOSE_TIMEOUT - time.monotonic()))


#: How often the first load tries again when it catches a file mid-write.
FIRST_ATTEMPTS = 3


class Problem(NamedTuple):
    """A problem to log once (see :class:`Reports`)."""

    message: str
    meanwhile: str  # what happens meanwhile
    exc: BaseException | None = None  # whose traceback to log with it
    # Who has it (profiles, as messages name them), when one problem can be several
    # things' (a truststore many profiles share, gone): one that leaves it is resolved
    # only if it has no other problem now, and a problem gone while all of them still
    # have one is regrouped, not resolved.
    about: frozenset[str] = frozenset()


#: A subscriber: called with (old_generation, new_generation).
Callback = Callable[[int, int], object]


class Published(Protocol):
    """What the engine needs of a snapshot (a frozen dataclass satisfies it)."""

    @property
    def generation(self) -> int:
        """0 for the first snapshot; one more for each applied change."""

    @property
    def watched(self) -> tuple[Path, ...]:
        """Every file the snapshot was made from (sorted, distinct)."""

    @property
    def pending(self) -> bool:
        """True when its check caught a file mid-write: the next check looks again."""

    @property
    def errors(self) -> Sequence[MTLSError]:
        """Its errors (a snapshot with errors is checked in full next time)."""


S = TypeVar("S", bound=Published)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[S]):
    """What one check of a :class:`Plan` returns.

    Attributes:
        snapshot: the next snapshot (the old one itself when nothing changed). Its
            ``pending`` says whether the check caught a file mid-write.
        changed: True when what a reader answers changed; then ``snapshot.generation``
            is the old one plus one and subscribers are told.
    """

    snapshot: S
    changed: bool


class Plan(Protocol[S]):
    """How snapshots are made from files: what an engine keeps current.

    Every method is called under the engine's lock, one at a time, with a
    :class:`~mtls._reading.Reading` through which every file must be read.
    """

    #: The thing kept current, for log lines (a profile file's path, say).
    where: str

    def first(self, reading: Reading, *, last: bool) -> S:
        """The first snapshot.

        Raises:
            Unstable: a file was caught mid-write (the engine tries again, up to
                :data:`FIRST_ATTEMPTS` times; on the ``last`` try, report it instead
                where keeping the rest is possible).
            MTLSError: the files do not give a snapshot at all.
        """

    def unsettled(self, exc: Unstable, attempts: int) -> MTLSError:
        """The error when every first attempt caught a file mid-write."""

    def check(self, reading: Reading, old: S) -> Outcome[S]:
        """The next snapshot. Files whose stat moved are already settled.

        Raises:
            Interrupted: ``reading.checkpoint()`` saw ``close()``.
        """

    def broken(self, old: S, exc: BaseException) -> S:
        """``old`` kept whole after ``check`` raised ``exc`` unexpectedly (a bug, or a
        secret resolver that raised anything): with an error saying so, and
        ``pending`` so that the next check looks at everything again."""

    def problems(self, snapshot: S) -> Mapping[Hashable, Problem]:
        """What is wrong in ``snapshot``, keyed so that each problem is logged once."""

    def configured(self, snapshot: S) -> Collection[str]:
        """What problems can be about (:attr:`Problem.about`) that ``snapshot`` still
        has: a problem of one no longer there was not fixed but removed, and its end
        says so. Called only when a problem about something ends."""


#: A watcher (:meth:`Engine.watch`): given the snapshot after a check, it returns what
#: it has to say, as a function to call with the check's logging held, or None.
Watcher = Callable[[S], Callable[[], object] | None]


def _watcher_raised(exc: BaseException) -> None:
    log.error("mtls: a reload watcher raised; carrying on", exc_info=exc)


#: What a caller's check re-raises after recording it (a tuple: built once).
_INTERRUPTS = (KeyboardInterrupt, SystemExit)

#: How long a check may run before status() calls it stalled (a file system call that
#: does not return: a hung NFS or FUSE mount holds the one check thread of a set).
STALLED_AFTER = 60.0


class Engine(Generic[S]):
    """Keeps a :class:`Plan`'s snapshot current: the lock, the checks, the thread,
    the subscribers and ``close()``. See the module's theory of operation.

    Args:
        plan: makes the snapshots.
        settle_delay: seconds between the two reads that confirm a changed file is
            complete (checked by the caller: see :func:`check_seconds`).
        interval: seconds between background checks; ``None``: no thread, call
            :meth:`check` yourself.
        name: the thread's name.
        on_publish: called with each snapshot as it is published (the first one
            too), under the lock, before anyone can read it from :attr:`snapshot`'s
            successor: for a consumer that keeps a reference of its own to part of
            the snapshot (the profile set's lookup map). Must be O(1) and not raise.

    Raises:
        MTLSError: whatever ``plan.first`` raises (nothing is left running).
        ValueError: ``interval`` out of range (:func:`check_seconds`).
    """

    def __init__(
        self,
        plan: Plan[S],
        *,
        settle_delay: float,
        interval: float | None,
        name: str,
        on_publish: Callable[[S], object] | None = None,
    ) -> None:
        self._plan = plan
        self._delay = settle_delay
        self._stop = threading.Event()
        self._reader = FileReader()
        self._lock = threading.Lock()
        # Whether this thread is in a check (see check: a signal handler's reload()).
        self._here = threading.local()
        self._notifier = Notifier(f"{name}-notify")
        self._relay = LogRelay(f"{name}-log")
        self._subscribers = Subscribers(self._notifier)
        # A delivery handed to the notifier and not started yet: it will deliver every
        # change queued meanwhile, so no second one is handed over (a subscriber that
        # never returns would otherwise have one task per change piling up behind it).
        self._delivery_queued = False
        self._delivery_flag = threading.Lock()
        renew_attributes_after_fork(self, "_delivery_flag")
        # A child starts with an empty notifier: nothing of the parent's is queued there.
        renew_attributes_after_fork(self, "_delivery_queued", new=bool)
        self._reports = Reports()
        self._timer: Timer | None = None
        # A tuple, replaced whole when one is added or removed: a check walks it as
        # it is, without a copy.
        self._watchers: tuple[Watcher[S], ...] = ()
        self._watchers_lock = threading.Lock()  # not the check's: a check may run for long
        renew_attributes_after_fork(self, "_watchers_lock")
        self._on_publish = on_publish
        first = self._first()
        # When the last check ended (time.time(); last_check makes it a datetime when
        # asked: every check sets it, status() reads it).
        self._last_check = time.time()
        #: When the check in progress took the lock (monotonic), ``None`` between
        #: checks: one that runs for minutes waits on a stat or a read that does not
        #: return (a hung network mount), which status() says.
        self.checking_since: float | None = None
        self._stall_logged: float | None = None  # the stalled check last logged
        self._stall_where = ""  # where status() said it (the resolved: line says it too)
        # The stalled check whose warning is handed to the relay, and the one that
        # returned before it was, whose resolved: line the warning's sayer owes.
        self._stall_announced: float | None = None
        self._stall_owed: float | None = None
        self._stall_lock = threading.Lock()
        renew_attributes_after_fork(self, "_stall_lock")
        if on_publish is not None:
            on_publish(first)
        self.snapshot: S = first
        self._reports.update(plan.problems(self.snapshot), plan.where)
        _settle(self.snapshot, sys.exception())
        if interval is not None:
            timer = Timer(name, interval, self._check_in_thread, self._stop)
            try:
                timer.start()
            except MTLSError:
                self.close()  # the notification and log threads it may have started
                raise
            self._timer = timer
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        """In a forked child: new locks and stop event (another thread may have held
        them at the fork), nothing recorded as seen (a check interrupted by the fork
        may have recorded files its snapshot never published: the next check hashes
        every file once and compares), and the reload thread running again."""
        self.checking_since = None  # a check another thread ran is not the child's
        stop = threading.Event()
        if self._stop.is_set():  # a flag read: no lock taken
            stop.set()
        self._stop = stop
        self._lock = threading.Lock()
        self._here = threading.local()  # a check under way at the fork is not the child's
        self._reader = FileReader()
        timer = self._timer
        if timer is not None:
            # Forked from the reload thread itself (a subscriber or a secret resolver
            # that forks), that thread goes on in the child: it ends at its next wake.
            timer.retired = True
        if timer is not None and not stop.is_set():
            self._timer = Timer(timer.name, timer.interval, self._check_in_thread, stop)
            try:
                self._timer.start()
            except MTLSError as exc:  # a fork hook raises to nobody: said, and no timer
                self._timer = None
                log.error("mtls: %s: %s", timer.name, exc)

    def _reading(self) -> Reading:
        return Reading(self._reader, self._delay, self._stop)

    def _first(self) -> S:
        # A file caught mid-write at start-up is read again (there is no last good to
        # keep meanwhile); after the last try it is an error like any other.
        for attempt in range(1, FIRST_ATTEMPTS + 1):
            reading = self._reading()
            try:
                snapshot = self._plan.first(reading, last=attempt == FIRST_ATTEMPTS)
            except Unstable as exc:
                if attempt == FIRST_ATTEMPTS:
                    raise self._plan.unsettled(exc, FIRST_ATTEMPTS) from None
                continue
            reading.commit()
            return snapshot
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ checks

    def check(self, *, force: bool = False, in_thread: bool = False) -> bool:
        """Check every watched file now and apply what changed (``force``: read and
        hash every file, whatever its ``stat`` says; ``in_thread``: the caller is the
        reload thread, which re-raises nothing and runs no subscriber).

        Safe from any thread, also while the background thread runs (checks are
        serialised). Never raises for bad files (the plan keeps the last good and
        reports). After :meth:`close` it does nothing and returns False.

        Returns:
            True if a change was applied (the generation grew by one).

        Raises:
            KeyboardInterrupt, SystemExit: raised by the plan (a secret resolver) or
                a subscriber during this call (recorded first, like any other failure).
        """
        here = self._here
        if getattr(here, "checking", False):
            # A signal handler that called reload() while this thread was checking
            # (Python runs handlers on the main thread, between two steps of whatever
            # it was doing) waited for a lock this thread held, for ever (h184, h187):
            # the check under way goes on instead, and applies what changed. (The
            # application's callbacks a check calls run unmarked: see _unmarked.)
            return False
        here.checking = True
        try:
            deadline: float | None = None  # a quiet check logs nothing: no wait bound yet
            changed = False
            if force or not self._quiet():
                # A caller waits for its records at most this long in all (check and
                # watchers).
                deadline = bound = time.monotonic() + CLOSE_TIMEOUT
                changed = self._full(in_thread, force, bound)
            if self._stop.is_set():
                return changed
            self._last_check = time.time()
            if self._watchers:
                self._watch(in_thread, deadline)
            return changed
        finally:
            here.checking = False

    def _unmarked(self, call: Callable[[], object]) -> None:
        """``call()``, the application's code a check runs on the caller's thread (its
        subscribers, what the watchers owe: ``on_health`` callbacks), with this thread
        unmarked as checking: a callback may call ``reload()``, which checks as any
        caller's does (no lock of this check is held while it runs)."""
        here = self._here
        here.checking = False
        try:
            call()
        finally:
            here.checking = True

    def _check_in_thread(self) -> bool:
        self._notifier.thread_ident = threading.get_ident()
        return self.check(in_thread=True)

    @property
    def notifier(self) -> Notifier:
        """Where application callbacks of background checks run (:class:`Notifier`)."""
        return self._notifier

    def _submit_delivery(self) -> None:
        with self._delivery_flag:
            if self._delivery_queued:
                return
            self._delivery_queued = True
        self._notifier.submit(self._deliver_queued)

    def _deliver_queued(self) -> None:
        with self._delivery_flag:
            self._delivery_queued = False  # a change from now on gets a delivery of its own
        self._subscribers.deliver(swallow_all=True)

    def _watch(self, in_thread: bool, deadline: float | None) -> None:
        """Run the watchers on the current snapshot, then what they owe (their log
        lines and callbacks: see :meth:`watch`) with this check's logging held."""
        snapshot = self.snapshot
        owed: list[Callable[[], object]] = []
        raised: BaseException | None = None
        for watcher in self._watchers:
            try:
                then = watcher(snapshot)
            except BaseException as exc:
                if not in_thread and isinstance(exc, _INTERRUPTS):
                    # The caller's Ctrl-C (or exit): raised to it, not logged as a
                    # watcher's fault it carries on from (h184).
                    raised = exc
                    break
                owed.append(functools.partial(_watcher_raised, exc))
                continue
            if then is not None:
                owed.append(then)
        if not owed:
            if raised is not None:
                raise raised
            return  # the common case: nothing to say, no logging held
        if deadline is None:
            deadline = time.monotonic() + CLOSE_TIMEOUT
        records: list[logging.LogRecord] = []
        try:
            with held(records):
                for then in owed:
                    # Every one is called: each watcher has judged already, and what it
                    # owes would never be said (an interrupt is raised once all are).
                    try:
                        self._unmarked(then)
                    except BaseException as exc:
                        if not in_thread and isinstance(exc, _INTERRUPTS):
                            raised = raised or exc  # the caller's, raised once all ran
                        else:
                            _watcher_raised(exc)
        finally:
            self._hand_over(records, in_thread, None, deadline)
        if raised is not None:
            raise raised

    def _quiet(self) -> bool:
        """The check in which nothing changed, whole: True when every watched file has
        the stat its bytes were last used with, and nothing is pending, failed or due
        (or the engine is closed); False when :meth:`_full` must look. One stat per
        file under the lock: no Reading is made, nothing can log."""
        with self._lock:
            if self._stop.is_set():
                return True  # closed: publish nothing more
            old = self.snapshot
            if old.pending or old.errors or _due(old):
                return False
            self.checking_since = time.monotonic()  # a stat on a hung mount is a stall
            try:
                return self._reader.unmoved(old.watched)
            except Exception:
                return False
            finally:
                self._check_ended()

    def _full(self, in_thread: bool, force: bool, deadline: float) -> bool:
        """A check that reads what moved: whether it applied a change. Raises what
        escaped the plan if it is an interrupt and the caller is not the reload thread."""
        # What the check logs is handled once the lock is released, and a background
        # check's on a thread of its own (LogRelay): a handler that blocks (a log
        # shipper that is down) holds back no check, and no reload() caller.
        records: list[logging.LogRecord] = []
        settle: Callable[[], None] | None = None
        try:
            with held(records):
                changed, escaped, settle = self._apply(force)
                if changed and in_thread:  # never on the reload thread: a callback may block
                    self._submit_delivery()
        finally:
            # The snapshot's errors are settled (their frames let go) once the records
            # that show their tracebacks are handled.
            self._hand_over(records, in_thread, settle, deadline)
        if changed and not in_thread:
            self._unmarked(functools.partial(self._subscribers.deliver, swallow_all=False))
        if escaped is not None and not in_thread and isinstance(escaped, _INTERRUPTS):
            raise escaped
        return changed

    @property
    def last_check(self) -> _dt.datetime:
        """When the last check ended (the first load, until one has): a reload thread
        that stops moving it is stuck (status() shows it)."""
        return _dt.datetime.fromtimestamp(self._last_check, _dt.UTC)

    def _hand_over(
        self,
        records: list[logging.LogRecord],
        in_thread: bool,
        then: Callable[[], None] | None,
        deadline: float,
    ) -> None:
        """Have ``records`` handled, then ``then`` run: on the relay for the reload
        thread; for a caller, on the relay too when the set has a reload thread (one
        queue keeps the checks' order), waited for until ``deadline`` (a blocked
        handler delays ``reload()`` no longer), else on its own thread."""
        if not records and then is None:
            return
        if in_thread:
            self._relay.submit(records, then)
        elif self._timer is not None:
            handled = self._relay.submit(records, then)
            if records:
                handled.wait(max(0.0, deadline - time.monotonic()))
        elif holding():
            # Inside another set's check on this thread (a callback of its): the
            # records go to that check's hand-over; the errors are settled later.
            emit(records)
        else:
            try:
                emit(records)
            finally:
                if then is not None:
                    then()

    def _apply(
        self, force: bool = False
    ) -> tuple[bool, BaseException | None, Callable[[], None] | None]:
        """One check under the lock: whether it applied a change, what escaped the
        plan (kept as its error; :meth:`_check` re-raises an interrupt), and what
        settles the new snapshot's errors once their records are handled."""
        plan = self._plan
        # What the caller was handling when it called reload(): an error of this check
        # chains to it, and keeping the error must not touch it (see _settle).
        outer = sys.exception()
        with self._lock:
            self.checking_since = time.monotonic()
            try:
                if self._stop.is_set():
                    return False, None, None  # closed: publish nothing more
                old = self.snapshot
                escaped: BaseException | None = None
                reading: Reading | None = self._reading()
                try:
                    assert reading is not None
                    moved = reading.survey(old.watched, force=force)
                    if not moved and not old.pending and not old.errors and not _due(old):
                        return False, None, None  # the common case: one stat per file, nothing read
                    # Every file whose stat moved is settled before anything is parsed (one
                    # settle delay for all): a file still being written is left for later.
                    reading.settle(moved)
                    outcome = plan.check(reading, old)
                except Interrupted:
                    # close() during the check: nothing half-built is published
                    return False, None, None
                except BaseException as exc:
                    # Keep the last good, say why, and look at everything again next time
                    # (nothing this check read is recorded as seen).
                    if self._stop.is_set():
                        return False, None, None
                    # Kept and logged: its frames' locals and a codec error's input go
                    # (what the caller was handling stays as it is).
                    exc = kept_escape(exc, outer)
                    outcome, reading, escaped = Outcome(plan.broken(old, exc), False), None, exc
                if self._stop.is_set():
                    return False, None, None
                if reading is not None:
                    reading.commit()  # exactly what was built is recorded as seen
                new = outcome.snapshot
                if self._on_publish is not None and new is not old:
                    self._on_publish(new)
                self.snapshot = new
                if new.watched is not old.watched:
                    self._reader.forget(new.watched)  # files nothing names any more
                self._reports.update(
                    plan.problems(new), plan.where, functools.partial(plan.configured, new)
                )
                if outcome.changed:
                    # Queued under the lock: queue order is generation order.
                    self._subscribers.queue(old.generation, new.generation)
            finally:
                self._check_ended()
        return outcome.changed, escaped, functools.partial(_settle, new, outer)

    def _check_ended(self) -> None:
        """The check in progress is over; one that status() said had stalled is said to
        have returned (h276: the stall's warning had no ``resolved:`` line, as every
        other failure has), through the relay, as the stall was said."""
        since, self.checking_since = self.checking_since, None
        if since is None:
            return
        with self._stall_lock:
            said = since == self._stall_logged
            if said and since != self._stall_announced:
                # Its warning is still on its way to the relay: said after it (h280).
                self._stall_owed = since
                return
        if said:
            self._say_returned(since)

    def _say_returned(self, since: float) -> None:
        """The ``resolved:`` line of the stalled check that began at ``since``."""
        if self._stop.is_set():
            return  # closed meanwhile: nothing is rotated any more (h277)
        records: list[logging.LogRecord] = []
        with held(records):
            log.warning(
                "%s: resolved: the check that had stalled returned after %.0f s; files "
                "are rotated again",
                self._stall_where,
                time.monotonic() - since,
            )
        self._relay.submit(records)

    def stalled_for(self) -> float | None:
        """Seconds the check in progress has run, when that is past :data:`STALLED_AFTER`
        (or five intervals, if longer): it waits on a stat or a read that does not
        return. ``None`` otherwise."""
        since = self.checking_since
        if since is None:
            return None
        ran = time.monotonic() - since
        interval = self._timer.interval if self._timer is not None else 0.0
        return ran if ran >= max(STALLED_AFTER, 5 * interval) else None

    def subscriber_errors(self) -> tuple[MTLSError, ...]:
        """What the subscribers that raised on the last delivered change raised."""
        return self._subscribers.failed

    def reported_errors(self, errors: Sequence[MTLSError], where: str) -> tuple[MTLSError, ...]:
        """A snapshot's ``errors`` as ``status()`` reports them: a stalled check's first
        (:meth:`stall_error`), then these, then the subscribers' that raised on the
        last change."""
        stalled = self.stall_error(where)
        return (*((stalled,) if stalled is not None else ()), *errors, *self._subscribers.failed)

    def stall_error(self, where: str) -> MTLSError | None:
        """The error status() puts first while a check is stalled (:meth:`stalled_for`)."""
        since = self.checking_since
        stalled = self.stalled_for()
        if stalled is None:
            return None
        error = MTLSError(
            f"{where}: the check in progress has run for {stalled:.0f} s: a stat or read "
            "of a watched file, or a secret resolver, does not return (a hung network "
            "mount? a vault that does not answer?); no file is rotated until it does, "
            "and the contexts in service stay"
        )
        with self._stall_lock:
            if self.checking_since != since or self._stop.is_set():
                # The check returned meanwhile, or the set closed: said now, its end
                # would never be (h277, h280).
                return None
            first = since is not None and since != self._stall_logged
            self._stall_logged = since
            self._stall_where = where
        if first:
            # Said once per stalled check, when the first status() (or metrics scrape)
            # finds it (the check's own thread is the one that waits), through the
            # relay, outside the lock: a log handler blocked on the same dead mount
            # (or run here, where no relay thread can start) holds up neither status()
            # nor the check (h281). Its resolved: line comes after it: owed to it when
            # the check returned meanwhile (_check_ended).
            records: list[logging.LogRecord] = []
            with held(records):
                log.warning("%s", error)
            self._relay.submit(records)
            with self._stall_lock:
                self._stall_announced = since
                owed = since is not None and self._stall_owed == since
            if owed and since is not None:
                self._say_returned(since)
        return error

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(old_generation, new_generation)`` after each applied change.

        Changes are delivered once each, in generation order, outside the engine's
        lock (a callback may call :meth:`check`), one callback at a time; one that
        raises is logged and does not stop the others. A change :meth:`check`
        applied is delivered before it returns, unless another thread is delivering
        an earlier change at that moment: then that thread delivers this one right
        after. A change the background thread applied is delivered on the
        notification thread (:class:`Notifier`): a callback that blocks holds back
        later notifications, never a check.

        Returns:
            A function that unsubscribes the callback.

        Raises:
            TypeError: ``callback`` is not callable (it failed only at the next change,
                as a log line on another thread).
        """
        check_callable(callback, "subscribe")
        self._subscribers.add(callback)
        return lambda: self._subscribers.remove(callback)

    def unsubscribe(self, callback: Callback) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        self._subscribers.remove(callback)

    def watch(self, watcher: Watcher[S]) -> Callable[[], None]:
        """Call ``watcher(snapshot)`` after every check, whether it changed anything or not.

        For state that moves with time rather than with files (certificates nearing
        expiry): the watcher runs on the thread that ran the check (the engine's own
        thread for periodic checks: no second thread), outside the lock, with the
        snapshot current after the check. It must not build anything, nor log (it is
        called without the check's logging held: a log handler that blocks would hold
        the thread, and whatever lock the watcher holds): what it has to say (log
        records it kept with :func:`~mtls._log.held`, lines, callbacks) it returns as
        a function, which the engine calls with the check's logging held (handed to
        the handlers as the check's own); ``None`` when there is nothing (every check
        in which nothing changed: no logging is held for it). One that raises is
        logged and the others still run. Not called after :meth:`close`.

        Returns:
            A function that stops the calls.
        """
        with self._watchers_lock:
            self._watchers = (*self._watchers, watcher)

        def stop() -> None:
            with self._watchers_lock:
                watchers = list(self._watchers)
                if watcher in watchers:
                    watchers.remove(watcher)
                    self._watchers = tuple(watchers)

        return stop

    # ------------------------------------------------------------------ lifecycle

    def close(self, within: float | None = None) -> None:
        """Stop the thread. Idempotent; :attr:`snapshot` stays readable.

        Returns at once when the thread is waiting for its next check, and within
        :data:`CLOSE_TIMEOUT` seconds when a check is running (it stops at its next
        safe point and publishes nothing), or a callback is running on the
        notification thread (what is queued behind it is not delivered); then waits
        up to :data:`CLOSE_TIMEOUT` seconds more for the log records of earlier checks
        to be handled (a blocked handler's wait no longer). ``within``: all of that
        waits this many seconds at most, together (see :func:`close_finalized`).
        :meth:`check` does nothing afterwards.
        """
        self._stop.set()  # from here on, no check publishes or queues anything
        end = None if within is None else time.monotonic() + within

        def wait() -> float:
            return CLOSE_TIMEOUT if end is None else max(0.0, end - time.monotonic())

        # A delivery under way ends with the callback it is in.
        self._subscribers.drop_queued()
        if self._timer is not None:
            self._timer.close(wait())
        self._subscribers.drop_queued()  # (what a check queued just before the stop)
        self._notifier.close(wait())
        self._relay.close(wait())

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._stop.is_set()

    @property
    def reloading(self) -> bool:
        """True while the background thread keeps the snapshot current."""
        return not self._stop.is_set() and self._timer is not None and self._timer.alive

    @property
    def interval(self) -> float | None:
        """Seconds between background checks (``None``: no thread)."""
        return self._timer.interval if self._timer is not None else None


class WeakSubscriber:
    """A subscriber that calls ``on_change(owner)`` without keeping ``owner`` alive.

    Once ``owner`` is garbage, :class:`Subscribers` drops it: at the next change, or
    when more subscribers arrive (so HTTP clients that are never closed, and stores
    that never change, do not pile up subscribers).
    """

    __slots__ = ("_on_change", "_owner")

    def __init__(self, owner: object, on_change: Callable[[Any], object]) -> None:
        self._owner = weakref.ref(owner)
        self._on_change = on_change

    def __call__(self, old: int, new: int) -> None:
        owner = self._owner()
        if owner is not None:
            self._on_change(owner)


def _alive(callbacks: list[Callback]) -> list[Callback]:
    """``callbacks`` without the weak subscribers whose owner is gone (a new list)."""
    return [c for c in callbacks if type(c) is not WeakSubscriber or c._owner() is not None]


#: Subscribers are checked for dead weak ones when their number reaches twice what
#: was alive at the last check (and at least this): adding stays O(1) amortised.
_PRUNE_FLOOR = 64
#: The changes :class:`Subscribers` queues.
_ADD, _REMOVE, _PRUNE = 0, 1, 2


class Subscribers:
    """Callbacks told of each applied change, in order, outside any engine lock.

    :meth:`queue` is called under the engine's lock (so the queue is in generation
    order); :meth:`deliver` after it is released. One thread delivers at a time, and
    it drains the queue: a change queued while another thread delivers is delivered
    by that thread, after the earlier ones, never before them.
    """

    def __init__(self, notifier: Notifier | None = None) -> None:
        self._notifier = notifier
        # Every change to the list (an add, a remove, a pruning) is queued here and
        # applied by one applier at a time, under the lock: re-entrant, because this
        # thread may come back in while it applies, from a garbage collection's
        # finalizer (on Python 3.12 and later one runs at the next periodic check,
        # which a trace function puts anywhere; a client's close() then waited for
        # this lock for ever, h192) or a signal handler (a reload() that delivers, a
        # client made). Such a call queues its change and returns: the applier it
        # interrupted applies it before it ends (h195: changing the list there lost
        # subscribers and raised IndexError).
        self._lock = threading.RLock()
        self._applying = False
        self._changes: collections.deque[tuple[int, Callback | None]] = collections.deque()
        # Replaced, never changed in place, except by append and remove (one C call
        # each): a copy taken without the lock is the list before or after a change.
        self._callbacks: list[Callback] = []
        self._prune_at = _PRUNE_FLOOR
        self._queue: collections.deque[tuple[int, int]] = collections.deque()
        self._delivering = threading.Lock()
        # The callbacks that raised on the last change delivered, with the errors
        # status() reports for them (replaced at each change: one that then succeeds,
        # or is unsubscribed, is no longer reported).
        self._failures: tuple[tuple[Callback, MTLSError], ...] = ()
        renew_attributes_after_fork(self, "_lock", new=threading.RLock)
        # Another thread's applying at the fork does not go on in the child: the
        # changes it left queued are applied by the child's next one.
        renew_attributes_after_fork(self, "_applying", new=bool)
        renew_attributes_after_fork(self, "_delivering")

    def add(self, callback: Callback) -> None:
        self._changes.append((_ADD, callback))
        self._apply()

    def remove(self, callback: Callback) -> None:
        self._changes.append((_REMOVE, callback))
        self._apply()
        self._failures = tuple(pair for pair in self._failures if pair[0] != callback)

    def _prune(self) -> None:
        """Drop the weak subscribers whose owner is gone (at each delivery)."""
        self._changes.append((_PRUNE, None))
        self._apply()

    def _apply(self) -> None:
        """Apply the queued changes, unless this thread is applying them already (it
        goes on with this one's before it ends)."""
        with self._lock:
            if self._applying:
                return
            while self._changes:
                self._applying = True
                try:
                    while self._changes:
                        kind, callback = self._changes.popleft()
                        if kind == _ADD:
                            if len(self._callbacks) >= self._prune_at:
                                self._callbacks = _alive(self._callbacks)
                                self._prune_at = max(_PRUNE_FLOOR, 2 * len(self._callbacks))
                            self._callbacks.append(callback)  # type: ignore[arg-type]
                        elif kind == _REMOVE:
                            with contextlib.suppress(ValueError):
                                self._callbacks.remove(callback)  # type: ignore[arg-type]
                        else:
                            self._callbacks = _alive(self._callbacks)
                finally:
                    self._applying = False
                # (loop: a change queued by a call that came in after the last one
                # was taken, and returned because this thread was applying)

    def __len__(self) -> int:
        with self._lock:
            return len(self._callbacks)

    @property
    def failed(self) -> tuple[MTLSError, ...]:
        """What the subscribers that raised on the last change delivered raised."""
        return tuple(error for _, error in self._failures)

    def queue(self, old: int, new: int) -> None:
        self._queue.append((old, new))

    def drop_queued(self) -> None:
        """Forget the changes not delivered yet (the engine is closing)."""
        self._queue.clear()

    def deliver(self, *, swallow_all: bool = False) -> None:
        """Deliver every queued change, unless another thread is delivering (it will).

        ``KeyboardInterrupt`` and ``SystemExit`` from a callback propagate (after the
        queue is drained) unless ``swallow_all``: the reload thread survives anything.
        """
        pending: BaseException | None = None
        while self._queue:
            # The lock released is the one acquired: a callback that forks renews
            # self._delivering in the child (mtls._fork) before this returns there.
            delivering = self._delivering
            if not delivering.acquire(blocking=False):
                break  # the thread delivering now drains what we queued
            try:
                while self._queue:
                    old, new = self._queue.popleft()
                    pending = self._notify(old, new, swallow_all) or pending
            finally:
                delivering.release()
            # Loop: a change queued after our last pop and before the release would
            # otherwise wait for the next change.
        if pending is not None:
            raise pending

    def _notify(self, old: int, new: int, swallow_all: bool) -> BaseException | None:
        self._prune()
        # A list's copy is one C call: it sees the list whole, before or after a change.
        callbacks = self._callbacks.copy()
        pending: BaseException | None = None
        notifier = self._notifier
        failed: list[tuple[Callback, MTLSError]] = []
        for callback in callbacks:
            try:
                if notifier is None:
                    callback(old, new)
                else:
                    with notifier.running(callback_name(callback)):
                        callback(old, new)
            except BaseException as exc:
                log.exception("mtls: a reload subscriber raised; the others still run")
                failed.append((callback, _subscriber_failed(callback, new, exc)))
                if not swallow_all and isinstance(exc, _INTERRUPTS):
                    pending = pending or exc
        self._failures = tuple(failed)
        return pending


def _subscriber_failed(callback: object, generation: int, exc: BaseException) -> MTLSError:
    """The error status() reports for a subscriber that raised: what it was to do after
    the change (close connections a withdrawn CA let in, rotate a server) is undone.
    Its message is the exception's type and at most 200 characters of its text (its
    start and end): a status document is served to health checks, and the whole is in
    the log."""
    try:
        said = bounded(str(exc), _SAID)
    except Exception:  # an exception whose __str__ raises still names its type
        said = ""
    return MTLSError(
        f"the reload subscriber {callback_name(callback)} raised on the change to "
        f"generation {generation} ({type(exc).__name__}{': ' + said if said else ''}): "
        "the new material is in service, but what the subscriber does after a change did "
        "not happen; reported until the next change is delivered, or it is unsubscribed "
        "(the log has the traceback)"
    )


_SAID = 200  # characters of a subscriber's exception text in status()


def _settle(snapshot: Published, outer: BaseException | None) -> None:
    """The snapshot's errors made fit to keep, once their problems are reported (the
    log line of an unexpected failure shows its traceback first): no frames, whose
    locals held the files the check read, and no context a ``from None`` hid; the
    chain is cut at ``outer``, the caller's own exception, which stays as it is."""
    for error in snapshot.errors:
        settled(error, outer)


def _due(snapshot: object) -> bool:
    """True once a snapshot's ``renew_at`` (optional: a CRL's nextUpdate) has passed."""
    renew_at = getattr(snapshot, "renew_at", None)
    return renew_at is not None and _dt.datetime.now(_dt.UTC) >= renew_at


def check_seconds(name: str, value: object, *, zero: bool) -> float:
    """``value`` as seconds for ``Event.wait``, or a ValueError naming the range.

    Raises:
        ValueError: not a number, not finite, below the range, or above
            ``threading.TIMEOUT_MAX`` (which ``Event.wait`` refuses with OverflowError).
    """
    limit = threading.TIMEOUT_MAX
    kind = "a number of seconds from 0" if zero else "a positive number of seconds"
    why = f"{name} must be {kind} up to {limit:.0f} (threading.TIMEOUT_MAX), not {value!r}" + (
        "" if zero else " (None: no reload thread; call reload() yourself)"
    )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(why)  # noqa: TRY004 - one error type for every bad interval
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        raise ValueError(why)
    if seconds > limit:
        raise ValueError(why)
    return seconds


#: A callback still running after this many seconds, when a check has more to hand
#: it, is named in a warning (once per callback run).
STUCK_AFTER = 60.0


class _OneThread:
    """The one daemon thread that works through a queue (:meth:`_run`), started when
    work comes and none is running, outside the owner's lock (:func:`start_unlocked`)."""

    _name: str
    _lock: threading.Lock
    _thread: threading.Thread | None
    _starting: bool
    _work: collections.deque[Any]
    _run: Callable[[], None]  # the thread's loop, the subclass's

    def _new_thread(self) -> threading.Thread | None:
        """The thread to start (the caller holds the lock), when none is
        running or being started."""
        if self._starting or (self._thread is not None and self._thread.is_alive()):
            return None
        self._starting = True
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        return self._thread

    def _start(self, thread: threading.Thread) -> bool:
        """Start ``thread`` (made by :meth:`_new_thread`) outside the lock
        (:func:`start_unlocked`); ``False`` where none can be started. Work handed over
        while it was being started, after it had found nothing left and ended, gets a
        thread of its own here (no one else would start one: it was "starting")."""
        while True:
            try:
                started = start_unlocked(thread)
            except BaseException:  # a KeyboardInterrupt inside start(): not "starting" for good
                with self._lock:
                    self._starting = False
                    if self._thread is thread and thread.ident is None:  # never started
                        self._thread = None
                raise
            with self._lock:
                self._starting = False
                if not started:
                    if self._thread is thread:
                        self._thread = None
                    return False
                again = self._new_thread() if self._work else None
            if again is None:
                return True
            thread = again


class Notifier(_OneThread):
    """Application callbacks of background checks, on a thread of their own.

    The reload thread never waits on application code: a subscriber or health
    callback that blocked (a webhook without a timeout, a lock held elsewhere) held
    back every later check, and with them every rotation and every refusal of a
    broken file. What a background check has to tell goes here instead, and runs in
    the order it came on one daemon thread, started on first use; checks go on
    while a callback runs, and what they hand over waits its turn. A callback still
    running after :data:`STUCK_AFTER` seconds when more arrives is named in a
    warning.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._work: collections.deque[Callable[[], object]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._running: tuple[float, str] | None = None  # (monotonic start, what) now
        self._warned: tuple[float, str] | None = None
        self.thread_ident: int | None = None  # the thread handing work over (the Timer's)
        self._worker: int | None = None  # the notification thread's
        self._closed = False
        self._starting = False  # a thread made, being started outside the lock
        renew_attributes_after_fork(self, "_lock")
        renew_attributes_after_fork(self, "_work", new=collections.deque)
        # A child has no notification thread: nothing of the parent's is running there.
        renew_attributes_after_fork(self, "_running", "_worker", "_thread", new=_nothing)
        renew_attributes_after_fork(self, "_starting", new=bool)

    def submit(self, task: Callable[[], object]) -> None:
        """Run ``task`` on the notification thread, after what is queued already.

        Where no thread can be started (at interpreter shutdown, or at the process's
        thread limit), what is queued runs here instead: late, never lost.
        """
        with self._lock:
            if self._closed:
                return
            self._work.append(task)
            thread = self._new_thread()
            running = self._running
        if thread is not None and not self._start(thread):
            self._run()
            return
        if running is not None and running != self._warned:
            since, what = running
            if time.monotonic() - since >= STUCK_AFTER:
                self._warned = running
                log.warning(
                    "%s: %s has been running for %.0f s: reload checks go on, but "
                    "notifications wait until it returns (hand long work to a thread "
                    "of your own)",
                    self._name,
                    what,
                    time.monotonic() - since,
                )

    def run_here_or_submit(self, task: Callable[[], object]) -> None:
        """``task`` now, unless this is the thread that hands work over: then queued."""
        if threading.get_ident() == self.thread_ident:
            self.submit(task)
        else:
            task()

    @contextlib.contextmanager
    def running(self, what: str) -> Iterator[None]:
        """Marks ``what`` (a callback's name) as running on the notification thread,
        for the warning above; elsewhere it marks nothing."""
        if threading.get_ident() != self._worker:
            yield
            return
        self._running = (time.monotonic(), what)
        try:
            yield
        finally:
            self._running = None

    def _run(self) -> None:
        self._worker = threading.get_ident()
        while True:
            with self._lock:
                if not self._work or self._closed:
                    if threading.current_thread() is self._thread:
                        self._thread = None
                    return
                task = self._work.popleft()
            with contextlib.suppress(BaseException):  # each task reports its own failures
                task()

    def close(self, timeout: float) -> None:
        """Deliver nothing more, and wait up to ``timeout`` seconds for a callback
        that is running (unless this is that callback's thread): after ``close()``
        returns, no callback starts."""
        with self._lock:
            self._closed = True
            self._work.clear()
            thread = self._thread
        _join_started(thread, timeout)


# Log records of background checks waiting for a handler that blocks: the oldest go
# first past this many checks' worth (a shipper down for days must not fill memory).
_RELAY_KEPT = 10_000


class LogRelay(_OneThread):
    """The log records of background checks, handled on a daemon thread of their own.

    Python's logging handles a record in the thread that makes it. A handler that
    blocked (a ``SysLogHandler`` over TCP to a collector that is down, an
    ``HTTPHandler`` without a timeout, a bounded queue that is full) blocked the
    reload thread inside a check, under the engine's lock: no rotation went in again,
    every ``reload()`` caller waited for good, and ``status()`` still said healthy.
    The reload thread hands its records over here instead, in order; a handler that
    blocks holds back only later records (said once on standard error: logging
    itself cannot say it).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._work: collections.deque[_Batch] = collections.deque()
        self._thread: threading.Thread | None = None
        self._since: float | None = None  # when the batch being handled was taken
        self._said = False
        self._dropping = False
        self._starting = False  # a thread made, being started outside the lock
        renew_attributes_after_fork(self, "_lock")
        renew_attributes_after_fork(self, "_work", new=collections.deque)
        renew_attributes_after_fork(self, "_thread", "_since", new=_nothing)
        renew_attributes_after_fork(self, "_starting", new=bool)

    def submit(
        self, records: list[logging.LogRecord], then: Callable[[], None] | None = None
    ) -> threading.Event:
        """Handle ``records`` on the relay's thread, after those handed over before,
        then run ``then``; the event is set once both are done.

        Where no thread can be started (at interpreter shutdown, or at the
        process's thread limit), they are handled here instead.
        """
        done = threading.Event()
        if not records:
            # Nothing to handle: the follow-up runs after what is queued (which may show
            # the same errors), now if nothing is, or not at all while a batch is being
            # handled (a later check settles the same errors). Empty batches never fill
            # the queue.
            with self._lock:
                idle = not self._work and self._since is None
                if self._work and then is not None:
                    self._work[-1].thens.append(then)
            if idle:
                _finish(_Batch([], [then] if then is not None else [], done), handle=False)
            return done
        dropped: _Batch | None = None
        with self._lock:
            if len(self._work) >= _RELAY_KEPT:
                dropped = self._work.popleft()
                if not self._dropping:
                    self._dropping = True
                    print(
                        f"mtls: {self._name}: {_RELAY_KEPT} checks' log records wait for a "
                        "blocked logging handler: the oldest are dropped from now on "
                        "(said once)",
                        file=sys.stderr,
                    )
            self._work.append(_Batch(records, [then] if then is not None else [], done))
            thread = self._new_thread()
            since = self._since
        if dropped is not None:
            _finish(dropped, handle=False)
        if thread is not None and not self._start(thread):
            self._run()
            return done
        if since is not None and not self._said and time.monotonic() - since >= STUCK_AFTER:
            self._said = True
            print(
                f"mtls: {self._name}: a logging handler has been handling one check's "
                f"records for {time.monotonic() - since:.0f} s: reload checks go on, their "
                "log records wait (said once)",
                file=sys.stderr,
            )
        return done

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._work:
                    if threading.current_thread() is self._thread:
                        self._thread = None
                    return
                batch = self._work.popleft()
                self._since = time.monotonic()
            try:
                _finish(batch, handle=True)
            finally:
                self._since = None

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the records handed over to be handled
        (what a blocked handler still holds back is handled when it returns)."""
        with self._lock:
            thread = self._thread
        _join_started(thread, timeout)


class _Batch:
    """A check's records, what to run once they are handled (settle its errors), and
    the event set then."""

    __slots__ = ("done", "records", "thens")

    def __init__(
        self,
        records: list[logging.LogRecord],
        thens: list[Callable[[], None]],
        done: threading.Event,
    ) -> None:
        self.records = records
        self.thens = thens
        self.done = done


def _finish(batch: _Batch, *, handle: bool) -> None:
    """Handle a batch's records (unless it is dropped), run its follow-ups, set its
    event: whatever happens (a handler that raises is set aside by emit)."""
    try:
        if handle:
            emit(batch.records)
    finally:
        try:
            for then in batch.thens:
                then()
        finally:
            batch.done.set()


def _join_started(thread: threading.Thread | None, timeout: float) -> None:
    """Wait up to ``timeout`` for ``thread``, unless it is this thread or has not been
    started: it is made under the owner's lock and started outside it, and a close()
    in between raised "cannot join thread before it is started" (h205). Not started,
    it finds the owner closed, or the work handed over, when it runs."""
    if thread is not None and thread is not threading.current_thread() and thread.ident:
        thread.join(timeout)


def _nothing() -> None:
    return None


def _no_thread(exc: BaseException) -> str:
    """Why the reload thread could not start, and what to do."""
    why = f"cannot start the reload thread ({exc})"
    if (3, 12, 0) <= sys.version_info[:3] < (3, 12, 3) and not threading.main_thread().is_alive():
        # cpython#113964 (fixed in 3.12.3): every thread started after the main thread
        # has finished is refused as if the interpreter were shutting down (h192).
        return (
            f"{why}: Python {sys.version.split()[0]} starts no thread once the main "
            "thread has finished (CPython issue 113964, fixed in 3.12.3): upgrade "
            "Python, or create the set before the main thread returns"
        )
    if "shutdown" not in str(exc):
        # pthread_create refused: the process's (or its cgroup's) limit on tasks (h211).
        return (
            f"{why}: the process is at its limit of threads (ulimit -u, systemd's "
            "TasksMax, the container's pids.max): raise it, or create it without "
            "reload_interval"
        )
    return f"{why}: create it before the interpreter shuts down, or without reload_interval"


def check_callable(callback: object, who: str) -> None:
    """A ``TypeError`` now for what could never be called back."""
    if not callable(callback):
        raise TypeError(f"{who}() takes a function, not {type(callback).__name__}")


def callback_name(callback: object) -> str:
    """A callback as a warning names it: its qualified name, or its type's (for an
    integration's weak subscriber, the method it calls: ``MTLSTransport._on_reload``)."""
    if isinstance(callback, WeakSubscriber):
        callback = callback._on_change
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    module = getattr(callback, "__module__", None)
    return f"{module}.{name}" if module else str(name)


class Timer:
    """The named daemon thread that calls ``check`` every ``interval`` seconds.

    Nothing short of interpreter shutdown ends it but :meth:`close` (or ``stop``
    being set): ``check`` reports its own failures, and anything that still escapes
    (a ``BaseException`` such as ``asyncio.CancelledError`` from a secret resolver)
    is logged here and the thread carries on.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        check: Callable[[], object],
        stop: threading.Event | None = None,
    ) -> None:
        self.interval = check_seconds("reload_interval", interval, zero=False)
        self.stop = stop if stop is not None else threading.Event()
        self.name = name
        self.retired = False  # set in a forked child, where a new Timer takes over
        self._check = check
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread.

        Raises:
            MTLSError: no thread can be started (interpreter shutdown, the process's
                thread limit, or Python 3.12.0 to 3.12.2 after the main thread has
                finished): a set asked to reload must not quietly never reload.
        """
        try:
            self._thread.start()
        except (RuntimeError, OSError) as exc:
            raise MTLSError(_no_thread(exc)) from exc

    def _run(self) -> None:
        # Event.wait, not time.sleep: close() ends the wait at once.
        while not self.stop.wait(self.interval) and not self.retired:
            try:
                self._check()
            except BaseException:  # the thread that keeps certificates fresh never dies
                with contextlib.suppress(BaseException):
                    log.exception("mtls: unexpected error during a reload check; carrying on")

    def close(self, timeout: float | None = None) -> None:
        self.stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class Reports:
    """Each distinct problem is logged once: when it appears, when it changes, and
    when it is resolved (at WARNING too, so whoever saw the warning sees its end),
    not at every check. ``status()`` shows it all the while."""

    def __init__(self) -> None:
        self._shown: dict[Hashable, Problem] = {}

    def update(
        self,
        current: Mapping[Hashable, Problem],
        where: str,
        configured: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        """``current``: problem key -> the problem as it is now; ``configured()``: what
        problems can be about that is still there (asked only when a problem about
        something ends: one whose profile was removed from the file is said to be no
        longer configured, not resolved as if fixed)."""
        present: Collection[str] | None = None
        for key, problem in current.items():
            shown = self._shown.get(key)
            # Said again when who has it changed too (one left a group, another joined:
            # a line that only counts them can read the same).
            if shown is None or shown.message != problem.message or shown.about != problem.about:
                message = problem.message
                log.warning(
                    "%s%s; %s", _prefix(where, message), message, problem.meanwhile,
                    exc_info=problem.exc,
                )  # fmt: skip
        still = frozenset().union(*(problem.about for problem in current.values()))
        for key, shown in self._shown.items():
            message = shown.message
            gone = shown.about - still
            if key in current and not gone:
                continue
            if not shown.about:
                log.warning("%sresolved: %s", _prefix(where, message), _first_line(message))
                continue
            if present is None:
                present = configured()
            removed = frozenset(name for name in gone if name not in present)
            whole = key not in current and gone == shown.about
            for names, how in ((gone - removed, "resolved"), (removed, "no longer configured")):
                if not names:
                    continue
                if whole and names == gone:  # all of them, one way
                    log.warning("%s%s: %s", _prefix(where, message), how, _first_line(message))
                    continue
                # Some of those it was about: the rest still have it, or ended otherwise.
                listed = sorted(names)
                more = f"; and {len(listed) - 3} more" if len(listed) > 3 else ""
                log.warning(
                    "%s%s for %s%s: %s",
                    _prefix(where, message),
                    how,
                    "; ".join(listed[:3]),
                    more,
                    _first_line(message),
                )
        self._shown = dict(current)


def _prefix(where: str, message: str) -> str:
    """``where: `` unless the message names its own place first (``where``, or an
    absolute path: a store's errors start with the file's path)."""
    return "" if message.startswith((where, "/")) else f"{where}: "


def _first_line(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."
