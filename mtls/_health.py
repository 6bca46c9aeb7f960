"""Certificate health over time: expiry thresholds, health events, reload counts.

Thread-free apart from one lock. A profile set makes one :class:`Health` and hands
:meth:`Health.watch` to its engine (``Engine.watch``): the engine calls it after
every check, on the thread that ran the check (the reload thread for periodic
checks: no second thread). It reads the snapshot it is given and never builds
anything: the certificates come from each served material's lazily parsed chain
and anchors, parsed once per material, and are kept from one snapshot to the next
(:class:`InUse`): a reload that rotated one material walks that material's chain.

Each certificate (keyed by its SHA-256 fingerprint) is announced once per threshold
it crosses, tightest first when it crosses several at once (a process started with
a certificate 5 days from its end warns once, for the 7-day threshold, then once
more at 1 day), and once when it has expired. A certificate no longer in use is
forgotten, so a rotated-in certificate starts afresh.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from . import _dates
from ._build import AnchorInfo, Served
from ._engine import Notifier, callback_name, check_callable
from ._errors import MTLSError
from ._fork import renew_attributes_after_fork
from ._log import emit, held, log
from ._snapshot import Built, Snapshot
from ._status import ReloadCounts
from ._types import hex_serial, span

__all__ = ["DEFAULT_EXPIRY_WARNINGS", "Health", "HealthEvent"]


#: WSO2 has none; 30, 7 and 1 days are what certificate monitors commonly use.
DEFAULT_EXPIRY_WARNINGS: tuple[float, ...] = (30, 7, 1)

Role = Literal["identity", "chain", "anchor", "crl"]
_ROLES: tuple[Role, ...] = ("identity", "chain", "anchor", "crl")  # priority where shared
_RANK = {role: rank for rank, role in enumerate(_ROLES)}
_SHOWN_SERVERS = 3
_FAR = _dt.datetime.max.replace(tzinfo=_dt.UTC)
_FAR_TS = _FAR.timestamp()  # the same, as time.time() counts


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthEvent:
    """A certificate (or CRL) in use crossed an expiry threshold, or expired.

    Delivered to :meth:`mtls.SSLProfileSet.on_health` callbacks (once per threshold per
    certificate) and returned by :meth:`mtls.SSLProfileSet.check_health`.

    Attributes:
        kind: ``"expiring"`` (a threshold was crossed) or ``"expired"``.
        role: ``"identity"`` (a client certificate a profile presents), ``"chain"``
            (an intermediate presented with it), ``"anchor"`` (a truststore
            certificate a profile verifies servers with) or ``"crl"`` (a revocation
            list a profile checks servers with: past its ``nextUpdate`` every
            handshake it checks is refused; see ``crl_warnings``).
        servers: the servers of every profile that uses it (``*``: a catch-all
            profile or the set's default), sorted.
        subject: the certificate's subject (RFC 4514); a CRL's issuer.
        serial: its serial number; a CRL's number (``None`` without one).
        not_after: when it expires; a CRL's ``nextUpdate``.
        fingerprint: SHA-256 of its DER, hex.
        time_left: ``not_after`` minus the time of the check (negative: expired).
        days_left: whole days left (``time_left.days``: -1 the first day after expiry).
        threshold: the threshold crossed (``None`` for ``"expired"``).
        checked_at: when the check ran.
        files: the files a CRL is read from (the same list may be in several);
            empty for certificates.
    """

    kind: Literal["expiring", "expired"]
    role: Role
    servers: tuple[str, ...]
    subject: str | None
    serial: int | None
    not_after: _dt.datetime
    fingerprint: str
    time_left: _dt.timedelta
    days_left: int
    threshold: _dt.timedelta | None
    checked_at: _dt.datetime
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``serial`` in hex, times ISO 8601, spans in seconds."""
        return {
            "kind": self.kind,
            "role": self.role,
            "servers": list(self.servers),
            "subject": self.subject,
            "serial": hex_serial(self.serial) if self.serial is not None else None,
            "not_after": self.not_after.isoformat(),
            "fingerprint": self.fingerprint,
            "time_left_seconds": self.time_left.total_seconds(),
            "days_left": self.days_left,
            "threshold_seconds": (
                self.threshold.total_seconds() if self.threshold is not None else None
            ),
            "checked_at": self.checked_at.isoformat(),
            "files": list(self.files),
        }


def _deliver(
    events: tuple[HealthEvent, ...],
    callbacks: list[HealthCallback],
    notifier: Notifier | None,
    one_at_a_time: threading.RLock,
) -> None:
    """Each event to each callback; one that raises is logged, the others still run."""
    with one_at_a_time:
        _deliver_each(events, callbacks, notifier)


def _deliver_each(
    events: tuple[HealthEvent, ...],
    callbacks: list[HealthCallback],
    notifier: Notifier | None,
) -> None:
    for event in events:
        for callback in callbacks:
            try:
                if notifier is None:
                    callback(event)
                else:
                    with notifier.running(callback_name(callback)):
                        callback(event)
            except BaseException:  # SystemExit too: the others run, and it is said
                log.exception("mtls: a health callback raised; the others still run")


def expiry_watch(value: Iterable[float | _dt.timedelta]) -> _dates.ExpiryThresholds:
    """``expiry_warnings`` as a set or a rotating server watches them: the default
    thresholds (however given: ``(30, 7, 1)`` written out too, h195) judged by each
    certificate's validity, others as given (:class:`mtls._dates.ExpiryThresholds`).

    Raises:
        ValueError, TypeError: as :func:`expiry_thresholds`.
    """
    spans = expiry_thresholds(value)
    relative = spans == expiry_thresholds(DEFAULT_EXPIRY_WARNINGS)
    return _dates.ExpiryThresholds(spans, relative=relative)


def expiry_thresholds(
    value: Iterable[float | _dt.timedelta], name: str = "expiry_warnings"
) -> tuple[_dt.timedelta, ...]:
    """The thresholds as spans, widest first, without duplicates.

    Numbers are days (``0.5`` is twelve hours); a :class:`datetime.timedelta` is used
    as it is (tests use seconds).

    Raises:
        ValueError: a threshold that is not a positive, finite number of days or a
            positive timedelta.
    """
    given: object = value
    if isinstance(given, str | bytes | int | float | _dt.timedelta):
        why = (
            f"{name} must be a sequence of days, not {given!r}: "
            f"{name}=({given!r},) for one threshold"
        )
        if isinstance(given, str | bytes):
            raise ValueError(why)  # noqa: TRY004 - as every bad threshold in a sequence is
        raise TypeError(why)  # a number alone: a TypeError, as "not iterable" was
    out: set[_dt.timedelta] = set()
    for item in value:
        raw: object = item  # checked as it came: a bool or a string is refused too
        if isinstance(raw, _dt.timedelta):
            span = raw
        elif (
            isinstance(raw, int | float)
            and not isinstance(raw, bool)
            and math.isfinite(raw)
            and raw <= 36_500
        ):
            span = _dt.timedelta(days=raw)
        else:
            span = _dt.timedelta(0)
        if span <= _dt.timedelta(0):
            raise ValueError(
                f"{name} must be positive numbers of days (at most 36500) or "
                f"positive timedeltas, not {item!r}"
            )
        out.add(span)
    return tuple(sorted(out, reverse=True))


# Where a certificate is used: a material's chain ("chain", id(Served)), its CRLs ("crl",
# id(Served)) or a truststore's anchor list ("anchors", id(the list)), each with the role
# the certificate has there.
_Source = tuple[str, int]


@dataclass(slots=True)
class _Cert:
    """One certificate (or CRL) in use, and every place it is used."""

    info: AnchorInfo
    not_after: _dt.datetime
    sources: dict[_Source, Role]

    @property
    def role(self) -> Role:
        """Its most telling role where it has several (identity, then chain, then anchor)."""
        return min(self.sources.values(), key=_RANK.__getitem__)


class InUse:
    """Every certificate a snapshot serves or verifies with, once each (by fingerprint),
    kept up to date from one snapshot to the next at the cost of what changed.

    Identities and their chains come from every served material; anchors from every
    truststore a loaded profile (or the default profile) verifies with. A profile
    that never loaded serves nothing and contributes nothing.

    :meth:`update` compares the snapshot's materials with those it last saw (two
    dictionaries' keys, compared in C) and walks only the chains and anchor lists of
    the materials that came or went: a reload that rotated one keystore among 1,000
    walks one chain. Anchor lists are shared by every material built on the same
    truststore content: each list is walked once, when its first user comes. Who
    uses a certificate (:meth:`servers`) is worked out only when an event names it.
    """

    def __init__(self) -> None:
        self.certs: dict[str, _Cert] = {}
        # What the certificates above were taken from: id(Served) -> Served.
        self._materials: dict[int, Served] = {}
        # id(anchor list) -> (the list, the materials that verify with it).
        self._anchors: dict[int, tuple[Sequence[AnchorInfo], set[int]]] = {}

    def update(self, snapshot: Snapshot) -> tuple[list[_Cert], list[str]]:
        """Take ``snapshot``'s materials in.

        Returns:
            The certificates now in use that were not before, and the fingerprints of
            those no longer in use.
        """
        materials = dict(snapshot.materials.served)
        if isinstance(snapshot.default, Built):
            materials[id(snapshot.default.served)] = snapshot.default.served
        old = self._materials
        came, gone = materials.keys() - old.keys(), old.keys() - materials.keys()
        self._materials = materials
        added: dict[str, _Cert] = {}
        removed: list[str] = []
        for key in gone:
            self._remove(key, old[key], removed)
        for key in came:
            self._add(key, materials[key], added)
        # A certificate that went with one material and came with another is still in use.
        return [c for f, c in added.items() if f in self.certs], [
            f for f in removed if f not in self.certs
        ]

    def _add(self, key: int, served: Served, added: dict[str, _Cert]) -> None:
        for index, info in enumerate(_chain(served)):
            self._use(info, ("chain", key), "identity" if index == 0 else "chain", added)
        for info in served.crl_infos:
            self._use(info, ("crl", key), "crl", added)
        anchors = served.anchors()
        shared = self._anchors.get(id(anchors))
        if shared is None:
            self._anchors[id(anchors)] = (anchors, {key})
            for info in anchors:
                self._use(info, ("anchors", id(anchors)), "anchor", added)
        else:
            shared[1].add(key)

    def _remove(self, key: int, served: Served, removed: list[str]) -> None:
        for info in _chain(served):
            self._drop(info, ("chain", key), removed)
        for info in served.crl_infos:
            self._drop(info, ("crl", key), removed)
        anchors = served.anchors()
        shared = self._anchors.get(id(anchors))
        if shared is not None:
            shared[1].discard(key)
            if not shared[1]:
                del self._anchors[id(anchors)]
                for info in anchors:
                    self._drop(info, ("anchors", id(anchors)), removed)

    def _use(self, info: AnchorInfo, source: _Source, role: Role, added: dict[str, _Cert]) -> None:
        made = certificate_in_use(self.certs, info, role, source)
        if made is not None:
            added[info.fingerprint] = made

    def _drop(self, info: AnchorInfo, source: _Source, removed: list[str]) -> None:
        cert = self.certs.get(info.fingerprint)
        if cert is None:
            return
        cert.sources.pop(source, None)
        if not cert.sources:
            del self.certs[info.fingerprint]
            removed.append(info.fingerprint)

    def servers(self, cert: _Cert, snapshot: Snapshot) -> tuple[str, ...]:
        """The ``host:port`` entries that use ``cert`` in ``snapshot``, sorted (``*``:
        a catch-all profile or the set's default)."""
        keys: set[int] = set()
        for kind, key in cert.sources:
            if kind != "anchors":  # a material's chain or CRLs
                keys.add(key)
            else:
                keys.update(self._anchors[key][1])
        users = snapshot.materials.users
        items = snapshot.items
        default = snapshot.default
        names: set[str] = set()
        for key in keys:
            for position in users.get(key, ()):
                names.update(items[position].profile.server_names)
            if isinstance(default, Built) and id(default.served) == key:
                names.add("*")
        return tuple(sorted(names))

    def files(self, cert: _Cert) -> tuple[str, ...]:
        """The files a CRL in use is read from, sorted (the same list may be in several)."""
        found: set[str] = set()
        for kind, key in cert.sources:
            served = self._materials.get(key) if kind == "crl" else None
            if served is not None:
                found.update(
                    info.alias
                    for info in served.crl_infos
                    if info.fingerprint == cert.info.fingerprint and info.alias
                )
        return tuple(sorted(found))

    def records(self, snapshot: Snapshot) -> list[InUseRecord]:
        """Every certificate in use as (fingerprint, role, not_after, servers), sorted."""
        return sorted(
            (fp, cert.role, cert.not_after, self.servers(cert, snapshot))
            for fp, cert in self.certs.items()
        )


#: One certificate in use, as :class:`CertificatesInUse` keeps them.
InUseCert = _Cert


def certificate_in_use(
    certs: dict[str, _Cert], info: AnchorInfo, role: Role, source: _Source | None = None
) -> _Cert | None:
    """Add ``info`` to ``certs`` as used in ``role`` from ``source`` (by default, one
    source per role); the higher-ranked role wins where one source gives two. One
    without a date or fingerprint cannot be watched. Returns the entry when it is
    new."""
    if info.not_after is None or not info.fingerprint:
        return None
    cert = certs.get(info.fingerprint)
    made = cert is None
    if cert is None:
        cert = certs[info.fingerprint] = _Cert(info, info.not_after, {})
    key = source if source is not None else (role, 0)
    best = cert.sources.get(key)
    if best is None or _RANK[role] < _RANK[best]:
        cert.sources[key] = role
    return cert if made else None


def _chain(served: Served) -> Sequence[AnchorInfo]:
    try:
        return served.chain()
    except MTLSError:  # the entry was usable when built; never stop the watch
        return ()


InUseRecord = tuple[str, Role, _dt.datetime, tuple[str, ...]]


def certificates_in_use(snapshot: Snapshot) -> list[InUseRecord]:
    """Every certificate ``snapshot`` uses, computed afresh: (fingerprint, role,
    not_after, servers) each, sorted. What :class:`InUse` keeps up to date; tests
    compare the two."""
    fresh = InUse()
    fresh.update(snapshot)
    return fresh.records(snapshot)


def _who(servers: tuple[str, ...]) -> str:
    shown = ", ".join(servers[:_SHOWN_SERVERS])
    more = len(servers) - _SHOWN_SERVERS
    return shown + (f" and {more} more" if more > 0 else "")


_WHAT = {"identity": "client certificate", "chain": "chain certificate", "anchor": "trust anchor"}


def _log(event: HealthEvent, where: str, identity: str = "client certificate") -> None:
    if event.role == "crl":
        _log_crl(event, where)
        return
    role = identity if event.role == "identity" else _WHAT[event.role]
    what = f"{role} {event.subject} (serial {hex_serial(event.serial or 0)})"
    usedby = f"used by {_who(event.servers)}"
    if event.kind == "expired":
        # An expired identity (or its chain) is refused by every server: an error.
        # An expired anchor only stops verifying what it issued: a warning.
        level = logging.WARNING if event.role == "anchor" else logging.ERROR
        log.log(
            level,
            "%s: %s, %s, expired %s ago, on %s: replace it",
            where,
            what,
            usedby,
            span(event.time_left),
            event.not_after.isoformat(timespec="seconds"),
        )
        return
    assert event.threshold is not None
    log.warning(
        "%s: %s, %s, expires in %s, on %s (the %s warning): rotate it",
        where,
        what,
        usedby,
        span(event.time_left),
        event.not_after.isoformat(timespec="seconds"),
        span(event.threshold),
    )


def _span_exact(delta: _dt.timedelta) -> str:
    """:func:`span`, with the hours of a part day kept ("1 day 18 h"): a CRL's
    threshold is a fraction of its validity, seldom whole days."""
    whole = span(delta)
    hours = int(abs(delta.total_seconds()) % 86_400 // 3_600)
    return f"{whole} {hours} h" if abs(delta) >= _dt.timedelta(days=1) and hours else whole


def _log_crl(event: HealthEvent, where: str) -> None:
    number = f", number {event.serial}" if event.serial is not None else ""  # as openssl
    what = f"the CRL of {event.subject}{number} ({', '.join(event.files) or 'no file'})"
    usedby = f"checked by {_who(event.servers)}"
    when = event.not_after.isoformat(timespec="seconds")
    if event.kind == "expired":
        log.error(
            "%s: %s, %s, expired %s ago, on %s (nextUpdate): every handshake it checks "
            "is refused: put a current list from the CA in place",
            where,
            what,
            usedby,
            span(event.time_left),
            when,
        )
        return
    assert event.threshold is not None
    log.warning(
        "%s: %s, %s, expires in %s, on %s (nextUpdate; the %s warning): every handshake "
        "it checks will be refused then: put a newer list from the CA in place",
        where,
        what,
        usedby,
        _span_exact(event.time_left),
        when,
        _span_exact(event.threshold),
    )


HealthCallback = Callable[[HealthEvent], object]


class Checked(Protocol):
    """What a watched snapshot has: a profile set's, or a rotating server's."""

    @property
    def generation(self) -> int: ...

    @property
    def errors(self) -> Sequence[MTLSError]: ...


S = TypeVar("S", bound=Checked)
S_contra = TypeVar("S_contra", bound=Checked, contravariant=True)


class CertificatesInUse(Protocol[S_contra]):
    """What :class:`Health` asks of the certificates a snapshot uses (:class:`InUse`
    for a profile set's)."""

    @property
    def certs(self) -> dict[str, _Cert]: ...

    def update(self, snapshot: S_contra) -> tuple[list[_Cert], list[str]]: ...

    def servers(self, cert: _Cert, snapshot: S_contra) -> tuple[str, ...]: ...

    def files(self, cert: _Cert) -> tuple[str, ...]: ...


def _said_then_raised(records: list[logging.LogRecord], exc: BaseException) -> None:
    """Emit ``records``, then raise ``exc``: a watch whose judging failed after logging."""
    emit(records)
    raise exc


class Health(Generic[S]):
    """An expiry watch and reload counts (see the module docstring): a profile set's,
    or a rotating server's.

    Args:
        expiry: the thresholds (as :func:`expiry_thresholds` returns them), and
            whether each certificate is judged by those within half its validity
            (the defaults: :func:`mtls._dates.telling_thresholds`) or by all of them
            (as a user gave them).
        where: the set's profile file (or ``"profiles"``), for log lines.
        in_use: the certificates each snapshot uses.
        clock: the current time (UTC); ``None``: the wall clock, read as
            ``time.time()`` (the watch runs after every check). Tests set ``_clock``
            to step a clock back and forth.
    """

    def __init__(
        self,
        expiry: _dates.ExpiryThresholds,
        where: str,
        in_use: CertificatesInUse[S],
        clock: Callable[[], _dt.datetime] | None = None,
        crl_thresholds: tuple[_dt.timedelta, ...] | None = None,
    ) -> None:
        self.expiry = expiry
        self.thresholds = expiry.spans
        #: A CRL's thresholds: ``None``, one per list, half-way from when its next list
        #: is due (its NextCRLPublish, as AD CS writes it, else half its validity) to
        #: its nextUpdate: a 7-day list warns with 1.75 days left, a 24-hour one with 6
        #: hours, a weekly AD CS list (valid 12 hours longer) with 6 hours.
        self.crl_thresholds = crl_thresholds
        self._where = where
        # What log lines call the presented certificate: a client's, except for the
        # set under gRPC's server_credentials, which presents a server's.
        self.identity = "client certificate"
        #: Where an anchor's lines name, when not ``where``: a rotating server's
        #: truststore (its anchors were said under the keystore's path, h259).
        self.anchors_where: str | None = None
        self._clock = clock
        # Re-entrant: a signal handler (run on the main thread between two steps of
        # whatever it was doing) that asks status() while that thread judges here
        # waited for this lock for ever (h184). A judging it starts then is skipped
        # (see _judging): the next check judges.
        self._lock = threading.RLock()
        self._judging = False
        # Callbacks one at a time, whichever thread delivers (the notification
        # thread's events, and those reload() or check_health() find meanwhile).
        # (Re-entrant: a callback may call check_health().)
        self._delivering = threading.RLock()
        renew_attributes_after_fork(self, "_lock", new=threading.RLock)
        # Another thread's judging at the fork does not go on in the child (h187).
        renew_attributes_after_fork(self, "_judging", new=bool)
        renew_attributes_after_fork(self, "_delivering", new=threading.RLock)
        self._callbacks: list[HealthCallback] = []
        #: Where callbacks run when a check on the reload thread evaluates (set by the
        #: owner of the engine): never on that thread. ``None``: in the caller's.
        self.notifier: Notifier | None = None
        # fingerprint -> level announced: k thresholds crossed (1..n), n + 1 expired
        self._announced: dict[str, int] = {}
        self._last_snapshot: S | None = None
        self._in_use = in_use
        # The earliest moment a certificate in use crosses its next level: until then,
        # only certificates that came with a new snapshot can have anything to say
        # (as time.time() counts: the common check compares it with a float).
        self._next_ts = _FAR_TS
        self._last_ts: float | None = None  # time.time() at the last evaluation
        self._generation: int | None = None
        # Checks by outcome (changed, unchanged, failed): counted in place, every check.
        self._counts = [0, 0, 0]
        self._revocation: dict[str, int] = {}

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: HealthCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for each :class:`HealthEvent`; returns the unsubscriber.

        Raises:
            TypeError: ``callback`` is not callable.
        """
        check_callable(callback, "on_health")
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    # ------------------------------------------------------------------ checks

    def watch(self, snapshot: S) -> Callable[[], None] | None:
        """The engine's watcher: count the check's outcome, then judge as :meth:`evaluate`
        does. Returns what says what the judging found (its log records, the events'
        lines and callbacks; ``None``: nothing, every check in which nothing changed),
        which the engine calls with its logging held."""
        records: list[logging.LogRecord] = []
        try:
            with self._lock:  # one turn of the lock for both: this runs after every check
                if self._judging:  # this thread's own judging, interrupted: see __init__
                    return None
                grew = self._generation is not None and snapshot.generation != self._generation
                self._generation = snapshot.generation
                # A check that applied something is "changed", even when another file was
                # refused (judged apart): "failed" is a check that applied nothing.
                self._counts[0 if grew else 2 if snapshot.errors else 1] += 1
                events = self._judge_marked(snapshot, records)
                if not events and not records:
                    return None
                callbacks = list(self._callbacks) if events else []
        except BaseException as exc:
            if not records:
                raise
            # What was logged before judging failed (the anchors are not read again
            # for this snapshot) is said first; the engine then logs the failure.
            return functools.partial(_said_then_raised, records, exc)
        return functools.partial(self._say, records, events, callbacks)

    def _say(
        self,
        records: list[logging.LogRecord],
        events: list[HealthEvent],
        callbacks: list[HealthCallback],
    ) -> None:
        """What one judging found, said outside the lock: the records it made (the
        first read of a new truststore's anchors warns of one cryptography cannot
        parse), then the events."""
        emit(records)  # with the caller's held records, when it holds them
        self._announce(events, callbacks)

    def _judge_marked(self, snapshot: S, records: list[logging.LogRecord]) -> list[HealthEvent]:
        """:meth:`_judge`, marked as under way (under the lock)."""
        self._judging = True
        try:
            return self._judge(snapshot, records)
        finally:
            self._judging = False

    def start(self, snapshot: S) -> None:
        """Remember the first snapshot's generation (the first load is not a check)."""
        with self._lock:
            self._generation = snapshot.generation

    def evaluate(self, snapshot: S) -> tuple[HealthEvent, ...]:
        """Compare the certificates in use with the thresholds now; log and deliver
        what is new. Returns the events of this evaluation.

        Costs what changed: a new snapshot's materials are compared with the last
        one's, and only the certificates that came with it are looked at, unless one
        already in use is due to cross its next level (then all of them are).
        """
        records: list[logging.LogRecord] = []
        try:
            with self._lock:
                if self._judging:  # this thread's own judging, interrupted: see __init__
                    return ()
                events = self._judge_marked(snapshot, records)
                callbacks = list(self._callbacks)
        finally:
            emit(records)  # outside the lock; said even when judging failed
        self._announce(events, callbacks)
        return tuple(events)

    def _judge(self, snapshot: S, records: list[logging.LogRecord]) -> list[HealthEvent]:
        """:meth:`evaluate`'s comparison, under the lock: the events it finds. What it
        logs meanwhile is put in ``records`` (handled by the caller once the lock is
        released: a log handler that blocks must not hold it)."""
        # Read under the lock: a time read before another evaluation's would look like
        # a clock that stepped back, and lower what that one just announced.
        clock = self._clock
        now = None if clock is None else clock()
        now_ts = time.time() if now is None else now.timestamp()
        last = self._last_snapshot
        last_ts, self._last_ts = self._last_ts, now_ts
        # A wall clock stepped back (it had run ahead: a false "expired" was said)
        # makes every certificate's level be judged again, and lowered.
        stepped_back = last_ts is not None and now_ts < last_ts
        if snapshot is last and now_ts < self._next_ts and not stepped_back:
            return []  # the common case (every no-op check): nothing new, nothing due
        with held(records):
            return self._judged(snapshot, last, now, now_ts, stepped_back)

    def _judged(
        self,
        snapshot: S,
        last: S | None,
        now: _dt.datetime | None,
        now_ts: float,
        stepped_back: bool,
    ) -> list[HealthEvent]:
        """:meth:`_judge` past its common case (something new, or something due)."""
        if now is None:
            now = _dt.datetime.fromtimestamp(now_ts, _dt.UTC)
        events: list[HealthEvent] = []
        fresh: Iterable[_Cert] = ()
        if last is not None and snapshot.generation < last.generation:
            # Read before a newer one was evaluated (check_health() and a check's
            # watcher run outside the engine's lock): never roll the watch back,
            # which would forget what was announced and announce it again.
            snapshot = last
        if snapshot is not last:
            fresh, gone = self._in_use.update(snapshot)
            self._last_snapshot = snapshot
            for fingerprint in gone:
                self._announced.pop(fingerprint, None)  # rotated out: starts afresh
        if now_ts >= self._next_ts or stepped_back:
            fresh, self._next_ts = self._in_use.certs.values(), _FAR_TS
        for cert in fresh:
            event = self._crossed(cert, now, snapshot)
            if event is not None:
                events.append(event)
            self._next_ts = min(self._next_ts, self._next_crossing(cert).timestamp())
        return events

    def _announce(self, events: list[HealthEvent], callbacks: list[HealthCallback]) -> None:
        """Log ``events`` and deliver them to ``callbacks`` (outside the lock)."""
        for event in events:
            where = (self.anchors_where if event.role == "anchor" else None) or self._where
            _log(event, where, self.identity)
        if events and callbacks:
            notifier = self.notifier
            deliver = functools.partial(
                _deliver, tuple(events), callbacks, notifier, self._delivering
            )
            if notifier is None:
                deliver()
            else:  # on the reload thread: handed to the notification thread
                notifier.run_here_or_submit(deliver)

    def _thresholds(self, cert: _Cert) -> tuple[_dt.timedelta, ...]:
        """The thresholds ``cert`` is judged by: the watch's; a CRL's
        (:meth:`crl_thresholds`) are its own."""
        if cert.role != "crl":
            # The defaults: those that say something of its validity (a one-hour
            # certificate is within 1 day from its start): see _dates.telling_thresholds.
            return self.expiry.of(cert.info.not_before, cert.not_after)
        if self.crl_thresholds is not None:
            return self.crl_thresholds
        due = cert.info.renew_by
        if due is None or due >= cert.not_after:
            return ()
        return ((cert.not_after - due) / 2,)

    def _next_crossing(self, cert: _Cert) -> _dt.datetime:
        """When ``cert`` crosses its next level (a threshold not yet announced, or its end)."""
        level = self._announced.get(cert.info.fingerprint, 0)
        thresholds = self._thresholds(cert)
        if level < len(thresholds):
            return cert.not_after - thresholds[level]
        if level == len(thresholds):
            return cert.not_after
        return _FAR  # expired and announced: nothing more to say

    def _crossed(self, cert: _Cert, now: _dt.datetime, snapshot: S) -> HealthEvent | None:
        left = cert.not_after - now
        thresholds = self._thresholds(cert)
        if left <= _dt.timedelta(0):
            level, threshold = len(thresholds) + 1, None
        else:
            level = sum(1 for t in thresholds if left <= t)
            threshold = thresholds[level - 1] if level else None
        fingerprint = cert.info.fingerprint
        announced = self._announced.get(fingerprint, 0)
        if level < announced:
            # Only a wall clock stepped back lowers a level: what was said ahead of
            # time (a jump forward) is said again when it is true.
            self._announced[fingerprint] = level
            return None
        if level == announced:
            return None
        self._announced[fingerprint] = level
        return HealthEvent(
            kind="expired" if level > len(thresholds) else "expiring",
            role=cert.role,
            servers=self._in_use.servers(cert, snapshot),
            subject=cert.info.subject,
            serial=cert.info.serial,
            not_after=cert.not_after,
            fingerprint=fingerprint,
            time_left=left,
            days_left=left.days,
            threshold=threshold,
            checked_at=now,
            files=self._in_use.files(cert) if cert.role == "crl" else (),
        )

    # ------------------------------------------------------------------ counters

    def count_revocation(self, result: str) -> None:
        """Count one online revocation check by result (``good``, ``revoked``,
        ``unknown``...): the hook the revocation checker calls."""
        with self._lock:
            self._revocation[result] = self._revocation.get(result, 0) + 1

    @property
    def reloads(self) -> ReloadCounts:
        """Reload checks so far, by outcome."""
        with self._lock:
            changed, unchanged, failed = self._counts
        return ReloadCounts(changed=changed, unchanged=unchanged, failed=failed)

    @property
    def revocation_checks(self) -> dict[str, int]:
        """Online revocation checks so far, by result (a copy)."""
        with self._lock:
            return dict(self._revocation)


# Public as mtls.HealthEvent: reprs, tracebacks and pickles say so however it was
# imported (mtls/__init__.py loads it on first use).
HealthEvent.__module__ = "mtls"
