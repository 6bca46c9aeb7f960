"""Health records: what :meth:`mtls.SSLProfileSet.status` returns.

Frozen, typed, made from one snapshot (never by building anything), with
``to_dict()`` for JSON. Never a secret: no password, no key, no file content.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import MTLSError, displayable
from ._types import hex_serial

if TYPE_CHECKING:
    from ._build import AnchorInfo
    from ._revocation import RevocationState

__all__ = [
    "AnchorStatus",
    "FileStatus",
    "IdentityStatus",
    "ProfileSetStatus",
    "ProfileStatus",
    "ReloadCounts",
]


def _iso(when: _dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _days_left(not_after: _dt.datetime | None, now: _dt.datetime) -> int | None:
    return None if not_after is None else (not_after - now).days


@dataclass(frozen=True, kw_only=True, slots=True)
class ReloadCounts:
    """Reload checks since the set was made, by outcome.

    Attributes:
        changed: checks that applied a change (the generation grew), also when
            another file was refused in the same check.
        unchanged: checks that found nothing to apply and no errors.
        failed: checks that ended with errors (the last good stays; a broken file
            counts at every retry until it is fixed).
    """

    changed: int = 0
    unchanged: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        """JSON-ready: ``changed``, ``unchanged``, ``failed``."""
        return {"changed": self.changed, "unchanged": self.unchanged, "failed": self.failed}


@dataclass(frozen=True, kw_only=True, slots=True)
class FileStatus:
    """A file a profile was built from.

    Attributes:
        role: ``keystore``, ``truststore`` or ``crl``.
        path: the path as configured (a path made from placeholders is shown as written).
        sha256: the hash of the bytes that were built from.
        next_update: a CRL's ``nextUpdate`` (``None`` for stores): after it, OpenSSL
            refuses every handshake the list checks, until a newer list is in place.
    """

    role: str
    path: str
    sha256: str
    next_update: _dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``role``, ``path``, ``sha256``, ``next_update``."""
        return {
            "role": self.role,
            "path": displayable(self.path),
            "sha256": self.sha256,
            "next_update": _iso(self.next_update),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class IdentityStatus:
    """The client certificate a profile presents.

    Attributes:
        subject: its subject (RFC 4514), ``None`` when it cannot be parsed.
        serial: its serial number.
        not_after: when it expires.
        days_left: whole days from the status time to ``not_after`` (negative: expired).
        fingerprint: SHA-256 of its DER, hex (what :class:`mtls.HealthEvent` names).
        chain: the certificates presented with it (intermediates), in order; their
            ``alias`` is the key entry's.
        not_before: when it becomes valid (servers refuse it before; a first load
            serves it anyway, having nothing else, and logs a warning).
        alias: the key entry's alias in its keystore (``None`` when unknown).
    """

    subject: str | None
    serial: int | None
    not_after: _dt.datetime | None
    days_left: int | None
    fingerprint: str | None = None
    chain: tuple[AnchorStatus, ...] = ()
    not_before: _dt.datetime | None = None
    alias: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``serial`` as a hex string (it can exceed JSON's integers)."""
        return {
            "subject": self.subject,
            "serial": hex_serial(self.serial) if self.serial is not None else None,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "days_left": self.days_left,
            "fingerprint": self.fingerprint,
            "chain": [c.to_dict() for c in self.chain],
            "alias": self.alias,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class AnchorStatus:
    """A trust anchor of a profile's truststore.

    Attributes:
        alias: its alias in the truststore.
        subject: its subject.
        not_after: when it expires.
        days_left: whole days from the status time to ``not_after``.
        serial: its serial number.
        fingerprint: SHA-256 of its DER, hex.
        not_before: when it becomes valid (peers refuse it, or a chain through it,
            before).
    """

    alias: str
    subject: str | None
    not_after: _dt.datetime | None
    days_left: int | None
    serial: int | None = None
    fingerprint: str | None = None
    not_before: _dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``alias``, ``subject``, ``serial`` (hex), ``not_before``,
        ``not_after``, ``days_left``, ``fingerprint``."""
        return {
            "alias": self.alias,
            "subject": self.subject,
            "serial": hex_serial(self.serial) if self.serial is not None else None,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "days_left": self.days_left,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileStatus:
    """One profile (or the default) as it is served.

    Attributes:
        servers: its ``host:port`` entries (``*`` for a catch-all or the default).
        client_id: its client identifier, when it has one.
        loaded: False for a profile that never loaded (its hosts are refused).
        files: the files its context was built from.
        identity: the client certificate it presents (``None``: none, or not loaded).
        anchors: its truststore's anchors that expire soonest, soonest first (at most
            :data:`ProfileSetStatus.ANCHORS_SHOWN`).
        last_good_load: when its current context was built.
        refused: why peers refuse its handshakes now although everything loaded: its
            client certificate out of its dates or not meant for client
            authentication (an extended key usage without ``clientAuth``), or no
            anchor of its truststore in date (``None``: none of these). A first load
            serves such material, having nothing else; ``mtls check`` fails on it
            too. (A CA of the presented chain out of date is not counted: a peer
            that trusts an in-date certificate of the same CA verifies through
            that one.)
        error: its error at the last check (it keeps its last good context, or, when
            not ``loaded``, why it never loaded).
        revocation: revocation checking state (``None``: not enabled).
        withheld: the ``host:port`` entries (``host:port/client`` for a client's
            lookup) it refuses until its keystore file gives an identity: it serves a
            kept identity the file no longer holds, and these did not have it before the
            profile file's last edit (hosts the edit added or took from another
            profile, and lookups that reach it only because the edit removed the
            profile that answered them; see reloading.md).
    """

    servers: tuple[str, ...]
    client_id: str | None
    loaded: bool
    files: tuple[FileStatus, ...] = ()
    identity: IdentityStatus | None = None
    anchors: tuple[AnchorStatus, ...] = ()
    last_good_load: _dt.datetime | None = None
    error: MTLSError | None = None
    revocation: RevocationState | None = None
    refused: str | None = None
    withheld: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        """Loaded, no error at the last check, and nothing peers refuse now (:attr:`refused`)."""
        return self.loaded and self.error is None and self.refused is None

    @property
    def subject(self) -> str | None:
        """The client certificate's subject (``identity.subject``)."""
        return self.identity.subject if self.identity is not None else None

    @property
    def not_after(self) -> _dt.datetime | None:
        """The client certificate's expiry (``identity.not_after``)."""
        return self.identity.not_after if self.identity is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready. Keys: ``servers``, ``client_id``, ``loaded``, ``files``,
        ``subject``, ``not_after``, ``identity``, ``anchors``, ``last_good_load``,
        ``error`` (the message, with the profile named), ``refused``, ``healthy``,
        ``revocation``, ``withheld``."""
        return {
            "servers": list(self.servers),
            "client_id": self.client_id,
            "loaded": self.loaded,
            "files": [f.to_dict() for f in self.files],
            "subject": self.subject,
            "not_after": _iso(self.not_after),
            "identity": self.identity.to_dict() if self.identity is not None else None,
            "anchors": [a.to_dict() for a in self.anchors],
            "last_good_load": _iso(self.last_good_load),
            "error": str(self.error) if self.error is not None else None,
            "refused": self.refused,
            "healthy": self.healthy,
            "revocation": self.revocation.to_dict() if self.revocation is not None else None,
            "withheld": list(self.withheld),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileSetStatus:
    """A profile set's health, from one snapshot.

    Attributes:
        generation: grows by one per applied change.
        reloading: the background thread is running.
        path: the profile file (``None`` for profiles made in code).
        hostname_verifier: the set's mode.
        checked_at: when this status was made.
        last_reload: when the last change was applied (or the set first loaded).
        last_check: when the last check ended, whether it changed anything or not
            (the first load, until one has). With ``reloading``, a value more than a
            few intervals old means the reload thread is stuck.
        errors: every error of the last check: the profile file's first, then the
            profiles' (each also on its :class:`ProfileStatus`).
        config_error: the profile file's error (its last good profiles stay).
        default: the default profile, when the default is a profile.
        profiles: every profile, those that never loaded included (``loaded=False``).
        reloads: reload checks since the set was made, by outcome.
        revocation_checks: online revocation checks by result (``good``,
            ``revoked``, ...), as ``(result, count)`` pairs; empty when not enabled.
        expiry_warnings: the expiry thresholds the set warns at, widest first.
        crl_warnings: the thresholds it warns at before a CRL's ``nextUpdate``;
            ``None``: each list's own (half-way from when its next list is due).
        closed: :meth:`SSLProfileSet.close` was called: its contexts are still
            handed out, and nothing is checked or rotated any more (not
            :attr:`healthy`).
    """

    ANCHORS_SHOWN = 3

    generation: int
    reloading: bool
    path: str | None
    hostname_verifier: str
    checked_at: _dt.datetime
    last_reload: _dt.datetime
    errors: tuple[MTLSError, ...]
    config_error: MTLSError | None
    default: ProfileStatus | None
    profiles: tuple[ProfileStatus, ...]
    reloads: ReloadCounts = ReloadCounts()
    revocation_checks: tuple[tuple[str, int], ...] = ()
    expiry_warnings: tuple[_dt.timedelta, ...] = ()
    last_check: _dt.datetime | None = None
    crl_warnings: tuple[_dt.timedelta, ...] | None = None
    closed: bool = False

    @property
    def healthy(self) -> bool:
        """No errors, and no profile (or default) whose handshakes peers refuse now
        (:attr:`ProfileStatus.refused`: a client certificate expired, no anchor in
        date), and the set not closed (:attr:`closed`: it is checked no more, and a
        health endpoint stayed green for a set that would never rotate again, h246):
        what a health endpoint should report."""
        if self.errors or self.closed:
            return False
        every = (*self.profiles, *((self.default,) if self.default is not None else ()))
        return all(entry.refused is None for entry in every)

    @property
    def last_error(self) -> MTLSError | None:
        """The first of :attr:`errors` (``None`` when there is none; see :attr:`healthy`)."""
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready. Keys: ``generation``, ``healthy``, ``reloading``, ``path``,
        ``closed``, ``hostname_verifier``, ``checked_at``, ``last_reload``, ``last_check``,
        ``last_error``,
        ``errors``, ``config_error``, ``default`` and ``profiles`` (each as
        :meth:`ProfileStatus.to_dict`), ``reloads`` (:meth:`ReloadCounts.to_dict`),
        ``revocation_checks`` (result -> count), ``expiry_warnings`` (seconds) and
        ``crl_warnings`` (seconds, or ``None``). Errors are their messages."""
        return {
            "generation": self.generation,
            "healthy": self.healthy,
            "reloading": self.reloading,
            "closed": self.closed,
            "path": displayable(self.path) if self.path is not None else None,
            "hostname_verifier": self.hostname_verifier,
            "checked_at": self.checked_at.isoformat(),
            "last_reload": self.last_reload.isoformat(),
            "last_check": _iso(self.last_check),
            "last_error": str(self.last_error) if self.last_error is not None else None,
            "errors": [str(e) for e in self.errors],
            "config_error": str(self.config_error) if self.config_error is not None else None,
            "default": self.default.to_dict() if self.default is not None else None,
            "profiles": [p.to_dict() for p in self.profiles],
            "reloads": self.reloads.to_dict(),
            "revocation_checks": dict(self.revocation_checks),
            "expiry_warnings": [t.total_seconds() for t in self.expiry_warnings],
            "crl_warnings": (
                None
                if self.crl_warnings is None
                else [t.total_seconds() for t in self.crl_warnings]
            ),
        }


def identity(
    subject: str | None,
    serial: int | None,
    not_after: _dt.datetime | None,
    now: _dt.datetime,
    *,
    fingerprint: str | None = None,
    chain: tuple[AnchorStatus, ...] = (),
    not_before: _dt.datetime | None = None,
    alias: str | None = None,
) -> IdentityStatus | None:
    """The identity record, or ``None`` when there is no client certificate."""
    if subject is None and serial is None and not_after is None:
        return None
    return IdentityStatus(
        subject=subject,
        serial=serial,
        not_after=not_after,
        days_left=_days_left(not_after, now),
        fingerprint=fingerprint,
        chain=chain,
        not_before=not_before,
        alias=alias,
    )


def anchor_dates(
    read: Sequence[AnchorInfo], anchors_der: Sequence[bytes]
) -> list[tuple[_dt.datetime | None, _dt.datetime | None]]:
    """Every anchor's ``(not_before, not_after)`` for :func:`refusal`: those cryptography
    read (``read``), and for each it could not, no dates (in date: OpenSSL may use it),
    or, when OpenSSL cannot verify its dates (:func:`mtls._dates.unverifiable_dates`), an
    end long past: it trusts nothing."""
    from . import _dates, _x509  # noqa: PLC0415 - only when some anchor was not read

    dates = [(info.not_before, info.not_after) for info in read]
    if len(anchors_der) > len(read):
        known = {info.fingerprint for info in read}
        for der in anchors_der:
            if _x509.sha256_hex(der) not in known:
                dead = _dates.unverifiable_dates(der) is not None
                dates.append((None, _LONG_PAST if dead else None))
    return dates


_LONG_PAST = _dt.datetime.min.replace(tzinfo=_dt.UTC)


def refusal(
    identity: IdentityStatus | None,
    anchors: Sequence[tuple[_dt.datetime | None, _dt.datetime | None]] | None,
    now: _dt.datetime,
    role: str = "client",
    presented: bytes | None = None,
) -> str | None:
    """Why peers refuse handshakes with this material now (:attr:`ProfileStatus.refused`),
    or ``None``: the ``role`` certificate presented (``identity``; ``presented``, its
    DER, when known) out of its dates, with dates no parser reads (a leap second: a
    first load serves it, there being nothing else, h202) or with an extended key
    usage that forbids the role (:func:`mtls._purpose.peers_refuse`: a first load serves
    it with a warning, h225), or no anchor in date
    (``anchors``: every anchor's ``(not_before, not_after)``, as :func:`anchor_dates`
    gives them; ``None``: no truststore). An anchor whose dates are unknown counts as
    in date."""
    peers = "servers" if role == "client" else "clients"
    if identity is not None:
        who = f"the {role} certificate ({identity.subject})"
        if presented is not None:
            from . import _purpose  # noqa: PLC0415 - status() only

            found = _purpose.peers_refuse(presented, role)
            if found is not None:
                return f"{who}: {found[0]}: {found[1]}"
        starts, ends = identity.not_before, identity.not_after
        if starts is not None and ends is not None and starts > ends:
            return (
                f"{who} is never valid: its notBefore ({_iso(starts)}) is after its "
                f"notAfter ({_iso(ends)}): {peers} refuse it"
            )
        if identity.not_after is not None and identity.not_after < now:
            return f"{who} expired on {_iso(identity.not_after)}: {peers} refuse it"
        if identity.not_before is not None and identity.not_before > now:
            return f"{who} is not valid until {_iso(identity.not_before)}: {peers} refuse it"
        # A CA of the chain out of its dates is not a sure refusal: a peer that trusts
        # an in-date certificate of the same CA (a cross-signed root, the expired copy
        # left in the chain) verifies through that one. The expiry watch says it.
    if anchors and all(
        (start is not None and start > now) or (end is not None and end < now)
        for start, end in anchors
    ):
        return (
            f"none of the truststore's {len(anchors)} anchors is in date: it verifies no "
            f"{'server' if role == 'client' else 'client'}"
        )
    return None


def anchor(
    alias: str,
    subject: str | None,
    not_after: _dt.datetime | None,
    now: _dt.datetime,
    *,
    serial: int | None = None,
    fingerprint: str | None = None,
    not_before: _dt.datetime | None = None,
) -> AnchorStatus:
    """The anchor record, with its days left at ``now``."""
    return AnchorStatus(
        alias=alias,
        subject=subject,
        not_after=not_after,
        days_left=_days_left(not_after, now),
        serial=serial,
        fingerprint=fingerprint,
        not_before=not_before,
    )


# Public as mtls.X: reprs, tracebacks and pickles say so however they were
# imported (mtls/__init__.py loads them on first use).
for _public in (
    AnchorStatus,
    FileStatus,
    IdentityStatus,
    ProfileSetStatus,
    ProfileStatus,
    ReloadCounts,
):
    _public.__module__ = "mtls"
del _public
