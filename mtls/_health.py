"""Certificate health over time: expiry thresholds, health events, reload counts.

Thread-free apart from one lock. A profile set makes one :class:`Health` and hands
:meth:`Health.watch` to its engine (``Engine.watch``): the engine calls it after
every check, on the thread that ran the check (the reload thread for periodic
checks: no second thread). It reads the snapshot it is given and never builds
anything: the certificates come from each served material's lazily parsed chain
and anchors, parsed once per material.

Each certificate (keyed by its SHA-256 fingerprint) is announced once per threshold
it crosses, tightest first when it crosses several at once (a process started with
a certificate 5 days from its end warns once, for the 7-day threshold, then once
more at 1 day), and once when it has expired. A certificate no longer in use is
forgotten, so a rotated-in certificate starts afresh.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ._build import AnchorInfo, Served
from ._errors import MTLSError
from ._snapshot import Built, Snapshot
from ._status import ReloadCounts

__all__ = ["DEFAULT_EXPIRY_WARNINGS", "Health", "HealthEvent"]

log = logging.getLogger("mtls")

#: WSO2 has none; 30, 7 and 1 days are what certificate monitors commonly use.
DEFAULT_EXPIRY_WARNINGS: tuple[float, ...] = (30, 7, 1)

Role = Literal["identity", "chain", "anchor"]
_ROLES: tuple[Role, ...] = ("identity", "chain", "anchor")  # priority for a shared certificate
_RANK = {role: rank for rank, role in enumerate(_ROLES)}
_SHOWN_SERVERS = 3
_FAR = _dt.datetime.max.replace(tzinfo=_dt.UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthEvent:
    """A certificate in use crossed an expiry threshold, or expired.

    Delivered to :meth:`mtls.SSLProfileSet.on_health` callbacks (once per threshold per
    certificate) and returned by :meth:`mtls.SSLProfileSet.check_health`.

    Attributes:
        kind: ``"expiring"`` (a threshold was crossed) or ``"expired"``.
        role: ``"identity"`` (a client certificate a profile presents), ``"chain"``
            (an intermediate presented with it) or ``"anchor"`` (a truststore
            certificate a profile verifies servers with).
        servers: the servers of every profile that uses it (``*``: a catch-all
            profile or the set's default), sorted.
        subject: the certificate's subject (RFC 4514).
        serial: its serial number.
        not_after: when it expires.
        fingerprint: SHA-256 of its DER, hex.
        time_left: ``not_after`` minus the time of the check (negative: expired).
        days_left: whole days left (``time_left.days``: -1 the first day after expiry).
        threshold: the threshold crossed (``None`` for ``"expired"``).
        checked_at: when the check ran.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``serial`` in hex, times ISO 8601, spans in seconds."""
        return {
            "kind": self.kind,
            "role": self.role,
            "servers": list(self.servers),
            "subject": self.subject,
            "serial": f"{self.serial:x}" if self.serial is not None else None,
            "not_after": self.not_after.isoformat(),
            "fingerprint": self.fingerprint,
            "time_left_seconds": self.time_left.total_seconds(),
            "days_left": self.days_left,
            "threshold_seconds": (
                self.threshold.total_seconds() if self.threshold is not None else None
            ),
            "checked_at": self.checked_at.isoformat(),
        }


def expiry_thresholds(value: Iterable[float | _dt.timedelta]) -> tuple[_dt.timedelta, ...]:
    """The thresholds as spans, widest first, without duplicates.

    Numbers are days (``0.5`` is twelve hours); a :class:`datetime.timedelta` is used
    as it is (tests use seconds).

    Raises:
        ValueError: a threshold that is not a positive, finite number of days or a
            positive timedelta.
    """
    if isinstance(value, str | bytes):
        why = f"expiry_warnings must be a sequence of days, not {value!r}"
        raise ValueError(why)  # noqa: TRY004 - one error type for every bad threshold
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
                "expiry_warnings must be positive numbers of days (at most 36500) or "
                f"positive timedeltas, not {item!r}"
            )
        out.add(span)
    return tuple(sorted(out, reverse=True))


# Who uses a certificate: groups of profiles (a Built, or "*" for the default), shared
# between certificates and only read when an event names them.
_Users = Sequence[Sequence[Built | str]]


@dataclass(frozen=True, slots=True)
class _InUse:
    info: AnchorInfo
    not_after: _dt.datetime
    role: Role
    users: _Users

    @property
    def servers(self) -> tuple[str, ...]:
        """The ``host:port`` entries that use it, sorted (made when an event needs them)."""
        names: set[str] = set()
        for group in self.users:
            for item in group:
                if isinstance(item, str):
                    names.add(item)
                else:
                    names.update(item.profile.server_names)
        return tuple(sorted(names))


def certificates_in_use(snapshot: Snapshot) -> list[_InUse]:
    """Every certificate the snapshot serves or verifies with, once each (by fingerprint).

    Identities and their chains come from every served material; anchors from every
    truststore a loaded profile (or the default profile) verifies with. A profile
    that never loaded serves nothing and contributes nothing.

    The work is per distinct material and per distinct truststore, not per profile:
    10,000 profiles on 1,000 keystores and one truststore walk 1,000 chains and one
    anchor list (who uses a certificate is worked out only when an event names them).
    """
    by_served: dict[int, tuple[Served, list[Built | str]]] = {}
    items: list[Built] = list(snapshot.built)
    if isinstance(snapshot.default, Built):
        items.append(snapshot.default)
    for item in items:
        served = item.served
        entry = by_served.get(id(served))
        if entry is None:
            entry = by_served[id(served)] = (served, [])
        entry[1].append("*" if item is snapshot.default else item)
    found: dict[str, tuple[AnchorInfo, Role, Sequence[Sequence[Built | str]]]] = {}

    def add(info: AnchorInfo, role: Role, users: Sequence[Sequence[Built | str]]) -> None:
        if info.not_after is None or not info.fingerprint:
            return
        known = found.get(info.fingerprint)
        if known is None:  # kept as given (never mutated): no copy per certificate
            found[info.fingerprint] = (info, role, users)
            return
        best = role if _RANK[role] < _RANK[known[1]] else known[1]
        found[info.fingerprint] = (known[0], best, [*known[2], *users])

    # Anchor lists are shared by every material built on the same truststore content:
    # walk each list once, with every group that uses it.
    by_anchors: dict[int, tuple[Sequence[AnchorInfo], list[list[Built | str]]]] = {}
    for served, group in by_served.values():
        try:
            chain = served.chain()
        except MTLSError:  # the entry was usable when built; never stop the watch
            chain = ()
        for index, info in enumerate(chain):
            add(info, "identity" if index == 0 else "chain", (group,))
        anchors = served.anchors()
        shared = by_anchors.get(id(anchors))
        if shared is None:
            by_anchors[id(anchors)] = (anchors, [group])
        else:
            shared[1].append(group)
    for shared_anchors, groups in by_anchors.values():
        for info in shared_anchors:
            add(info, "anchor", groups)
    return [
        _InUse(info, info.not_after, role, users)
        for info, role, users in found.values()
        if info.not_after is not None
    ]


def _span(delta: _dt.timedelta) -> str:
    seconds = abs(delta.total_seconds())
    if seconds >= 86_400:
        days = int(seconds // 86_400)
        return f"{days} day{'' if days == 1 else 's'}"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.0f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _who(servers: tuple[str, ...]) -> str:
    shown = ", ".join(servers[:_SHOWN_SERVERS])
    more = len(servers) - _SHOWN_SERVERS
    return shown + (f" and {more} more" if more > 0 else "")


_WHAT = {"identity": "client certificate", "chain": "chain certificate", "anchor": "trust anchor"}


def _log(event: HealthEvent, where: str) -> None:
    what = f"{_WHAT[event.role]} {event.subject} (serial {event.serial or 0:x})"
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
            _span(event.time_left),
            event.not_after.isoformat(timespec="seconds"),
        )
        return
    assert event.threshold is not None
    log.warning(
        "%s: %s, %s, expires in %s, on %s (the %s warning): rotate it",
        where,
        what,
        usedby,
        _span(event.time_left),
        event.not_after.isoformat(timespec="seconds"),
        _span(event.threshold),
    )


HealthCallback = Callable[[HealthEvent], object]


class Health:
    """A profile set's expiry watch and reload counts (see the module docstring).

    Args:
        thresholds: as :func:`expiry_thresholds` returns them.
        where: the set's profile file (or ``"profiles"``), for log lines.
        clock: the current time (UTC); tests do not replace it: they issue
            certificates that expire in seconds.
    """

    def __init__(
        self,
        thresholds: tuple[_dt.timedelta, ...],
        where: str,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self.thresholds = thresholds
        self._where = where
        self._clock = clock
        self._lock = threading.Lock()
        self._callbacks: list[HealthCallback] = []
        # fingerprint -> level announced: k thresholds crossed (1..n), n + 1 expired
        self._announced: dict[str, int] = {}
        self._last_snapshot: Snapshot | None = None
        self._in_use: list[_InUse] = []
        # The earliest moment a certificate of _in_use crosses its next level: until
        # then, an evaluation of the same snapshot has nothing to do (one comparison).
        self._next = _FAR
        self._generation: int | None = None
        self._reloads = ReloadCounts()
        self._revocation: dict[str, int] = {}

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: HealthCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for each :class:`HealthEvent`; returns the unsubscriber."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    # ------------------------------------------------------------------ checks

    def watch(self, snapshot: Snapshot) -> None:
        """The engine's watcher: count the check's outcome, then :meth:`evaluate`."""
        with self._lock:
            grew = self._generation is not None and snapshot.generation != self._generation
            self._generation = snapshot.generation
            outcome = "failed" if snapshot.errors else "changed" if grew else "unchanged"
            counts = self._reloads
            self._reloads = replace(counts, **{outcome: getattr(counts, outcome) + 1})
        self.evaluate(snapshot)

    def start(self, snapshot: Snapshot) -> None:
        """Remember the first snapshot's generation (the first load is not a check)."""
        with self._lock:
            self._generation = snapshot.generation

    def evaluate(self, snapshot: Snapshot) -> tuple[HealthEvent, ...]:
        """Compare every certificate in use with the thresholds now; log and deliver
        what is new. Returns the events of this evaluation."""
        now = self._clock()
        events: list[HealthEvent] = []
        with self._lock:
            if snapshot is self._last_snapshot and now < self._next:
                return ()  # the common case: nothing can have crossed since last time
            if snapshot is not self._last_snapshot:
                self._in_use = certificates_in_use(snapshot)
                self._last_snapshot = snapshot
                live = {c.info.fingerprint for c in self._in_use}
                for gone in set(self._announced) - live:
                    del self._announced[gone]  # rotated out: a new one starts afresh
            upcoming = _FAR
            for cert in self._in_use:
                event = self._crossed(cert, now)
                if event is not None:
                    events.append(event)
                upcoming = min(upcoming, self._next_crossing(cert))
            self._next = upcoming
            callbacks = list(self._callbacks)
        for event in events:
            _log(event, self._where)
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    log.exception("mtls: a health callback raised; the others still run")
        return tuple(events)

    def _next_crossing(self, cert: _InUse) -> _dt.datetime:
        """When ``cert`` crosses its next level (a threshold not yet announced, or its end)."""
        level = self._announced.get(cert.info.fingerprint, 0)
        thresholds = self.thresholds
        if level < len(thresholds):
            return cert.not_after - thresholds[level]
        if level == len(thresholds):
            return cert.not_after
        return _FAR  # expired and announced: nothing more to say

    def _crossed(self, cert: _InUse, now: _dt.datetime) -> HealthEvent | None:
        left = cert.not_after - now
        thresholds = self.thresholds
        if left <= _dt.timedelta(0):
            level, threshold = len(thresholds) + 1, None
        else:
            level = sum(1 for t in thresholds if left <= t)
            threshold = thresholds[level - 1] if level else None
        fingerprint = cert.info.fingerprint
        if level <= self._announced.get(fingerprint, 0):
            return None
        self._announced[fingerprint] = level
        return HealthEvent(
            kind="expired" if level > len(thresholds) else "expiring",
            role=cert.role,
            servers=cert.servers,
            subject=cert.info.subject,
            serial=cert.info.serial,
            not_after=cert.not_after,
            fingerprint=fingerprint,
            time_left=left,
            days_left=left.days,
            threshold=threshold,
            checked_at=now,
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
        return self._reloads

    @property
    def revocation_checks(self) -> dict[str, int]:
        """Online revocation checks so far, by result (a copy)."""
        with self._lock:
            return dict(self._revocation)


# Public as mtls.HealthEvent: reprs, tracebacks and pickles say so however it was
# imported (mtls/__init__.py loads it on first use).
HealthEvent.__module__ = "mtls"
