"""Revocation: CRL files inside contexts, and OCSP/CRL checks of a server's chain.

What is checked where
---------------------
* **CRL files** (``crls=`` of :func:`mtls.client_context` and of a profile) are
  checked by OpenSSL *during* the handshake (``VERIFY_CRL_CHECK_LEAF``, or
  ``VERIFY_CRL_CHECK_CHAIN`` for every certificate of the chain). Before a CRL is
  installed it must be readable, current (its nextUpdate not passed) and signed
  by a certificate of the truststore it is used with; otherwise :class:`CRLError`
  (:mod:`mtls._crl`, with the issuer and signature checks both halves use).
  They reach OpenSSL through memory: ``load_verify_locations(cadata=...)`` takes
  certificates only (verified: a PEM CRL in ``cadata`` is refused with "no start
  line"), so the PEM goes into a ``memfd`` that OpenSSL opens as ``cafile``.
* **Online checks** (:class:`RevocationPolicy`, WSO2's ``CertificateRevocationVerifier``)
  run *after* the handshake and before the first request byte: the context is
  built with ``sslsocket_class`` / ``sslobject_class`` set (both documented,
  per-instance attributes of ``ssl.SSLContext``) to subclasses whose
  ``do_handshake`` asks :meth:`RevocationChecker.check_connection` once the
  handshake has succeeded. Every client that uses the context (httpx sync and
  async, requests/urllib3, aiohttp, ``mtls probe``, plain ``wrap_socket``) runs
  the check; no integration grows its own. gRPC does its TLS in its own core
  (BoringSSL) and is not covered.
* **The chain.** The chain OpenSSL verified, leaf to anchor (:func:`peer_chain`:
  ``get_verified_chain()`` on Python 3.13+, the same call on the connection's
  ``_ssl`` object on 3.11 and 3.12): every certificate up to the trust anchor is
  checked (``full_chain``), each against the issuer that verified it. Where an
  ``ssl`` module offers neither, only the leaf is known, and its issuer is looked
  up among the context's anchors (issuer name, authority key identifier and
  signature checked); otherwise its status is "undetermined", which hard-fail
  refuses. Anchors themselves are not checked (Java's PKIX does not either), with
  one exception: an end-entity anchor that another anchor issued (a backend's own
  certificate imported beside its CA, as the seed does) is checked against that CA,
  so that pinning a certificate does not exempt it from revocation (an intermediate
  CA kept beside its root is not: Java does not ask about anchors).

Fetching (:mod:`mtls._fetch`): ``http://`` only (OCSP and CRLs are signed;
``https`` would need its own revocation check), no redirects followed, no proxy, a
total deadline of ``timeout`` seconds per fetch, responses bounded (``MAX_OCSP_BYTES``,
``MAX_CRL_BYTES``). Results are cached by (issuer, serial) for the response's
validity (at most ``cache_delay``) in a bounded LRU cache; a status that could
not be determined is asked again only after ``retry_failed_after``. Concurrent
handshakes for one certificate wait for a single fetch.
"""

from __future__ import annotations

import _ssl  # the C module behind ssl: see peer_chain
import collections
import concurrent.futures
import contextvars
import dataclasses
import datetime as _dt
import functools
import hashlib
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# cryptography imports this on the first ECDSA, Ed448 or ML-DSA verification: at a
# handshake, in a process at its descriptor limit, that import failed with a bare
# OSError naming cryptography's file (h211). Imported with the module instead.
import cryptography.hazmat.backends.openssl.backend  # noqa: F401
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
)

from . import _dates, _x509
from ._answers import (
    CLOCK_SKEW,
    answer_times,
    check_crl,
    crl_scope,
    current_until,
    listed,
    load_ocsp,
    ocsp_critical,
    ocsp_request,
    ocsp_single,
    ocsp_unsigned,
    unhandled_critical,
    why_stale,
)
from ._config import normalize_host
from ._crl import (
    MAX_CRL_BYTES,
    CRLSet,
    _anchor_set,
    _Anchors,
    _extension,
    _issued,
    _now,
    _pairs,
    crl_next_update,
    crl_number,
    crl_revoked_on,
    crl_this_update,
    later_list,
)
from ._errors import (
    CertificateRevokedError,
    CRLError,
    RevocationError,
    RevocationUnknownError,
    safe_text,
)
from ._fetch import FetchError, fetch
from ._fetch import without_userinfo as _without_userinfo
from ._fork import renew_attributes_after_fork
from ._log import first_time, log
from ._types import Mode, Status, hex_serial
from ._workers import DaemonWorkers

#: Largest OCSP response read: 64 KiB (a real one is 1 to 4 KiB, with its responder certificate).
MAX_OCSP_BYTES = 64 * 1024
#: Largest ``cache_size`` of a policy: a million statuses (WSO2 keeps 50 by default).
MAX_CACHE_SIZE = 1_000_000
#: Longest ``cache_delay``, ``retry_failed_after``, ``timeout`` and ``check_timeout`` of a
#: policy: a year.
MAX_SECONDS = 366 * 24 * 3600.0


# --------------------------------------------------------------------------- policy


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RevocationPolicy:
    """How servers' certificates are checked online (WSO2's ``CertificateRevocationVerifier``).

    Attributes:
        mode: ``"hard"`` (the default): a certificate whose status cannot be
            determined is refused with :class:`RevocationUnknownError`. ``"soft"``:
            it is logged (a warning, once per ``retry_failed_after``) and allowed.
            A certificate positively revoked raises :class:`CertificateRevokedError`
            in both modes.
        full_chain: check every certificate up to the trust anchor, not only the
            leaf (WSO2's ``allow_full_cert_chain_validation``, default true), on
            every supported Python: the chain OpenSSL verified, each certificate
            against the issuer that verified it. Anchors are not checked (nor does
            Java's PKIX).
        cache_size: at most this many statuses are kept (WSO2's ``CacheSize``;
            WSO2 keeps 50 unless told, mtls 1024).
        cache_delay: seconds a status is kept at most, even when the response is
            valid longer (WSO2's ``CacheDelay``, in minutes there: 15 unless told,
            and never a day or more).
        retry_failed_after: seconds before a status that could not be determined
            is asked again (so a responder that is down costs one fetch per
            certificate per period, never one per request).
        timeout: total seconds one fetch (OCSP request or CRL download) may take.
        check_timeout: total seconds one connection's check may spend fetching, over
            every certificate of the chain and every URL each names: each fetch gets
            ``timeout`` or what is left, whichever is less, and the URLs left when it
            runs out are not asked (the status is undetermined: hard-fail refuses).
            Without it, a chain whose responders all hang would wait certificates x
            URLs x ``timeout``.
        ocsp: ask the OCSP responders named in the certificate (AIA) first.
        crl: fall back to the CRL distribution points.

    Raises:
        ValueError: an unknown mode, a ``cache_size`` that is not a whole number
            from 1 to :data:`MAX_CACHE_SIZE`, or a number of seconds that is not
            finite, positive and at most :data:`MAX_SECONDS`.
    """

    mode: Mode = "hard"
    full_chain: bool = True
    cache_size: int = 1024
    cache_delay: float = 15 * 60.0
    retry_failed_after: float = 60.0
    timeout: float = 5.0
    check_timeout: float = 10.0
    ocsp: bool = True
    crl: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("hard", "soft"):
            raise ValueError(f"mode must be 'hard' or 'soft', not {self.mode!r}")
        size: object = self.cache_size  # typed int; callers may pass anything
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_CACHE_SIZE:
            raise ValueError(
                f"cache_size must be a whole number from 1 to {MAX_CACHE_SIZE} "
                f"(MAX_CACHE_SIZE), not {self.cache_size!r}"
            )
        for name in ("cache_delay", "retry_failed_after", "timeout", "check_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= MAX_SECONDS
            ):
                raise ValueError(
                    f"{name} must be a positive number of seconds, at most {MAX_SECONDS:g} "
                    f"(MAX_SECONDS, a year), not {value!r}"
                )
        if not (self.ocsp or self.crl):
            raise ValueError("a revocation policy needs ocsp=True, crl=True or both")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CertificateStatus:
    """The revocation status of one certificate of a server's chain.

    Attributes:
        subject: the certificate's subject (RFC 4514).
        serial: its serial number.
        issuer: its issuer's subject.
        status: ``"good"``, ``"revoked"`` or ``"undetermined"``.
        source: where the answer came from (``OCSP http://...``, ``CRL http://...``).
        reason: the revocation reason (``keyCompromise``, ...), when revoked and given.
        revoked_at: when it was revoked.
        why: for ``undetermined`` (and for sources that did not answer before one
            did), one line per source tried.
        checked_at: when the answer was obtained.
        valid_until: until when it is kept in the cache.
    """

    subject: str
    serial: int
    issuer: str
    status: Status
    source: str | None = None
    reason: str | None = None
    revoked_at: _dt.datetime | None = None
    why: tuple[str, ...] = ()
    checked_at: _dt.datetime | None = None
    valid_until: _dt.datetime | None = None

    def __post_init__(self) -> None:
        # Names and URLs from a peer's certificate, and what responders said: control
        # characters escaped once here, for every message, log line and dict made of it.
        for name in ("subject", "issuer", "source"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, safe_text(value))
        object.__setattr__(self, "why", tuple(safe_text(line) for line in self.why))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601, the serial in hex)."""
        out = dataclasses.asdict(self)
        out["serial"] = hex_serial(self.serial)
        for name in ("revoked_at", "checked_at", "valid_until"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        out["why"] = list(self.why)
        return out

    def describe(self) -> str:
        """One line for people: what, and why."""
        head = f"{self.subject} (serial {hex_serial(self.serial)})"
        if self.status == "good":
            return f"{head}: good ({self.source})"
        if self.status == "revoked":
            when = revoked_when(self.revoked_at)
            return (
                f"{head}: REVOKED on {when}, reason {self.reason or 'unspecified'} ({self.source})"
            )
        return f"{head}: undetermined: {'; '.join(self.why)}"


def revoked_when(revoked_at: _dt.datetime | str | None) -> str:
    """When a certificate was revoked, for people: its time (ISO 8601), and for a
    revocation dated ahead that it is (h264: "was revoked on" a time still to come;
    refused now, as WSO2's verifier refuses it, where Java's PKIX takes it until then)."""
    if revoked_at is None:
        return "an unknown time"
    when = _dt.datetime.fromisoformat(revoked_at) if isinstance(revoked_at, str) else revoked_at
    if when > _now():
        return f"{when.isoformat()} (a time still to come: its CA dated it ahead; refused now)"
    return when.isoformat()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RevocationState:
    """A profile's online revocation checking, for status pages (``ProfileStatus.revocation``).

    Attributes:
        mode: ``"hard"`` or ``"soft"`` (see :class:`RevocationPolicy`).
        ocsp: OCSP responders are asked.
        crl: CRL distribution points are asked.
        statuses: the last statuses seen for the profile's hosts' chains that are
            still cached (nothing is fetched for a status page), leaf first per host;
            empty before the first connection.
    """

    mode: Mode
    ocsp: bool
    crl: bool
    statuses: tuple[CertificateStatus, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``mode``, ``ocsp``, ``crl``, ``statuses`` (each a
        :meth:`CertificateStatus.to_dict`)."""
        return {
            "mode": self.mode,
            "ocsp": self.ocsp,
            "crl": self.crl,
            "statuses": [status.to_dict() for status in self.statuses],
        }


class _CacheMiss(Exception):
    """A status asked with ``fetch=False`` is not in the cache."""


class _CheckBudget:
    """One check's budget: when it ends (monotonic ``at``), and whether a source was
    asked in it yet (one asked first had the whole budget, whatever ``timeout`` is)."""

    __slots__ = ("asked", "at")

    def __init__(self, at: float) -> None:
        self.at = at
        self.asked = False


class _Flight:
    """One certificate's status being asked (single flight): the check asking sets
    ``done`` once its status is cached, or once it found one it may not keep."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _NotAsked(FetchError):
    """A source the check's budget (``check_timeout``) was spent before."""


def _shown_time(when: _dt.datetime) -> str:
    """``when`` as a message names it (UTC, to the second)."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _self_signed(cert: x509.Certificate, der: bytes) -> bool:
    """Whether ``cert`` (``der``) is a root: issued in its own name, by its own key."""
    return _x509.same_name(cert.subject, cert.issuer) and _issued(der, der)


def _urls(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(OCSP responder URLs, CRL distribution point URLs) named by the certificate,
    without userinfo (:func:`_without_userinfo`)."""
    aia = _extension(cert, x509.AuthorityInformationAccess) or ()
    ocsp_urls = [
        _without_userinfo(desc.access_location.value)
        for desc in aia
        if desc.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(desc.access_location, x509.UniformResourceIdentifier)
    ]
    cdp = _extension(cert, x509.CRLDistributionPoints) or ()
    crl_urls = [
        _without_userinfo(name.value)
        for point in cdp
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    ]
    return ocsp_urls, crl_urls


@dataclasses.dataclass(slots=True)
class _Answer:
    status: Status
    source: str
    valid_until: _dt.datetime
    reason: str | None = None
    revoked_at: _dt.datetime | None = None
    #: Said among the status's ``why``: a revocation read from a list kept because its
    #: distribution point could not be reached (kept for ``retry_failed_after`` at most).
    note: str | None = None
    #: When the answer was issued (the response's or the list's thisUpdate).
    this_update: _dt.datetime | None = None
    #: The list's CRLNumber, for an answer from a CRL that has one.
    number: int | None = None


def _status_key(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[str, int]:
    """What a certificate's status is kept under: its issuer's certificate and serial."""
    return (
        hashlib.sha256(issuer.public_bytes(serialization.Encoding.DER)).hexdigest(),
        cert.serial_number,
    )


def _revocation_key(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, int]:
    """What a revocation is remembered under: the issuer's key and the serial, whichever
    certificate of that issuer the chain holds (renewed, cross-signed, its name
    encoded otherwise: h250, h253)."""
    try:
        key = issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm):  # a key cryptography cannot read
        key = issuer.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(key).digest(), cert.serial_number


def _live_now() -> Callable[[tuple[float, CertificateStatus]], bool]:
    """Whether a cache entry ``(monotonic deadline, status)`` is still good now. Kept
    until the first of two clocks says so: the monotonic one (a wall clock stepped back
    does not stretch an answer), and the answer's own end on the wall clock (the
    monotonic clock stands still while a machine is suspended or a VM paused: an
    answer eight hours stale was served)."""
    mono, wall = time.monotonic(), _dt.datetime.now(_dt.UTC)

    def live(entry: tuple[float, CertificateStatus]) -> bool:
        until = entry[1].valid_until
        return entry[0] > mono and (until is None or until > wall)

    return live


@dataclasses.dataclass(frozen=True, slots=True)
class _Revoked:
    """A revocation found: its status, the answer's thisUpdate and CRLNumber, and when
    it came."""

    status: CertificateStatus
    issued: _dt.datetime | None
    number: int | None
    came: _dt.datetime

    def undone_by(self, answer: _Answer) -> bool:
        """Whether a "good" ``answer`` was issued after the one that revoked: by the
        lists' CRLNumbers where both have one (a later list of the issuer that drops
        the entry: a lifted hold, a CA whose clock was set back, a mirror that served
        an old list first: h253); else by thisUpdate, the revoking answer's taken no
        earlier than the clock skew before it came (an answer dated back, as a
        response signed before a revocation dated back to a compromise, is no later
        than one replayed from before it: h250)."""
        if self.number is not None and answer.number is not None:
            return answer.number > self.number
        if answer.this_update is None:
            return False
        return answer.this_update > max(self.issued or self.came, self.came - CLOCK_SKEW)


class RevocationChecker:
    """Checks servers' chains online (OCSP, then CRL), with one bounded cache.

    One checker serves every context of a profile set (and every connection made
    with them); it is thread-safe.

    Args:
        policy: how to check; the defaults are WSO2's.
    """

    def __init__(self, policy: RevocationPolicy | None = None) -> None:
        self.policy: RevocationPolicy = policy or RevocationPolicy()
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple[str, int], tuple[float, CertificateStatus]]
        self._cache = collections.OrderedDict()
        # (URL, issuer) -> (fresh until (monotonic), downloaded at (UTC), the list): used
        # as it is while fresh (cache_delay at most), then, when the distribution point
        # cannot give a new one, until its own nextUpdate to refuse what it lists
        # (docs/health.md, h247).
        self._crls: collections.OrderedDict[
            tuple[str, bytes], tuple[float, _dt.datetime, x509.CertificateRevocationList]
        ]
        self._crls = collections.OrderedDict()
        # Certificates found revoked, not on hold, and when the answer that said so was
        # issued (its thisUpdate): a revocation is final, and a certificate whose
        # sources all fail later is still refused, as is one an answer issued no later
        # calls good (a response or list replayed over plain http); only an answer
        # issued after it says otherwise (h247, h250). Keyed by the issuer's name and
        # key, not its certificate: a renewed or cross-signed issuer's certificate in
        # the chain must not make the certificate another (h250; bounded as the status
        # cache is).
        self._revoked: collections.OrderedDict[tuple[bytes, int], _Revoked]
        self._revoked = collections.OrderedDict()
        self._gates: dict[tuple[str, int], _Flight] = {}
        # Whether this thread's last source asked went to the network (a CRL already
        # downloaded answers without: it spends none of the check's budget).
        self._fetching = threading.local()
        # Sources that failed for a certificate on their own (not cut short by the
        # check's budget): (kind, URL, status key) -> (asked again from (monotonic),
        # then (UTC), why). A status left incomplete (a source not asked, the budget
        # spent on another certificate's) is not kept: the next check asks what was
        # not asked, and passes over what failed here lately (h179).
        self._failed: collections.OrderedDict[
            tuple[str, str, tuple[str, int]], tuple[float, _dt.datetime, str]
        ] = collections.OrderedDict()
        # A fetch under way in another thread at the fork holds its gate for good.
        renew_attributes_after_fork(self, "_lock")
        renew_attributes_after_fork(self, "_gates", new=dict)
        # Its threads do not exist in a child (a pool copied would wait for them).
        self._workers: DaemonWorkers | None = None
        renew_attributes_after_fork(self, "_workers", new=lambda: None)
        self._warned: set[tuple[int, str, _dt.datetime | None]] = set()
        # Certificates last found undetermined: an answer for one is logged once.
        self._undetermined: set[tuple[int, str]] = set()
        # The answers a refusal was logged for (once each).
        self._refused: set[tuple[int, str, _dt.datetime | None]] = set()
        # The statuses of the last chain checked, for status pages (bounded): by (host,
        # port), the port None where the connection does not know it (memory BIOs), and
        # by host alone (state() given names without ports).
        self._hosts: collections.OrderedDict[
            tuple[str, int | None], tuple[CertificateStatus, ...]
        ] = collections.OrderedDict()
        self._by_host: collections.OrderedDict[str, tuple[CertificateStatus, ...]]
        self._by_host = collections.OrderedDict()
        # Who counts results (a profile set's health counters), held weakly: a set
        # dropped without close() must not be kept alive by a checker it shared.
        self._listeners: list[weakref.WeakMethod[Callable[[str], None]]] = []
        # leaf DER -> the chain a full handshake verified for it (for resumed sessions)
        self._chains: collections.OrderedDict[tuple[bytes, bytes], tuple[bytes, ...]]
        self._chains = collections.OrderedDict()
        #: Network requests made so far (OCSP requests and CRL downloads).
        self.fetches: int = 0

    def __repr__(self) -> str:
        return f"RevocationChecker({self.policy!r}, cached={len(self._cache)})"

    # ------------------------------------------------------------------ public

    def statuses(
        self,
        chain: Sequence[bytes],
        anchors: Sequence[bytes] | _Anchors,
        *,
        fetch: bool = True,
        resumed: bool = False,
    ) -> tuple[CertificateStatus, ...]:
        """The status of each certificate of ``chain`` that is not an anchor; never raises.

        Args:
            chain: DER certificates, leaf first (the verified chain where known,
                else the leaf alone).
            anchors: the DER trust anchors the chain was verified against.
            fetch: ``False``: answer from the cache only (nothing is fetched).
            resumed: as in :meth:`check`.

        Returns:
            One status per certificate checked, leaf first (only the leaf unless
            ``full_chain``).

        Raises:
            _CacheMiss: ``fetch=False`` and a status is not in the cache.
        """
        ders = [bytes(der) for der in chain]
        # One budget for the whole chain: every fetch below draws on it.
        deadline = _CheckBudget(time.monotonic() + self.policy.check_timeout)
        known = _anchor_set(anchors)
        anchor_der = known.ders
        out: list[CertificateStatus] = []
        for index, der in enumerate(ders):
            if der in anchor_der:
                # Trusted directly: nothing above it is asked. An anchor that a CA of
                # the truststore issued (a backend's own certificate imported beside its
                # CA) is asked about itself, against that CA, as it would be had it not
                # been imported: pinning it must not exempt it from revocation.
                pinned = _issued_anchor(der, known)
                if pinned is not None:
                    out.append(self._status(pinned[0], pinned[1], fetch, deadline))
                break
            try:
                cert = _x509.load_cert(der)
            except ValueError as exc:
                # OpenSSL verified a certificate cryptography cannot read (a DER rule
                # it enforces and OpenSSL does not): its status cannot be asked, which
                # is undetermined (hard-fail refuses), never a certificate skipped.
                unreadable = _unreadable(der, exc)
                self._warn(unreadable)
                out.append(unreadable)
                break
            # The chain's certificates above it first, then the truststore's of that
            # name (indexed: a big truststore is not compared one by one).
            above = [
                p for p in _pairs(ders[index + 1 :]) if _x509.same_name(p[0].subject, cert.issuer)
            ]
            found = next(
                (
                    (c, c_der)
                    for c, c_der in (*above, *known.named(cert.issuer))
                    if _issued(der, c_der)
                ),
                None,
            )
            if found is None:
                unknown_issuer = CertificateStatus(
                    subject=cert.subject.rfc4514_string(),
                    serial=cert.serial_number,
                    issuer=cert.issuer.rfc4514_string(),
                    status="undetermined",
                    why=(
                        "the session was resumed, so no chain was verified, and the chain "
                        "its first handshake verified is no longer known (more than "
                        f"{_CHAINS_KEPT} servers since, or clear()): connect without "
                        "session= for a full handshake",
                    )
                    if resumed
                    else (
                        "its issuer is neither in the verified chain nor in the "
                        "truststore: add the issuing CA to the truststore",
                    ),
                    checked_at=_now(),
                )
                self._warn(unknown_issuer)
                out.append(unknown_issuer)
                break
            issuer, issuer_der = found
            out.append(self._status(cert, issuer, fetch, deadline))
            # A root (self-signed: its own key verifies it) is asked about by no one. A
            # CA's self-issued certificate signed by another key of that CA (a key
            # rollover's NewWithOld, RFC 4210 4.4; AD CS's cross certificates) is
            # not a root: it is asked about as any CA certificate of the chain (h179:
            # one revoked by its issuer's CRL passed, the chain ending at it).
            if not self.policy.full_chain or _self_signed(issuer, issuer_der):
                break
        return tuple(out)

    def check(
        self,
        chain: Sequence[bytes],
        anchors: Sequence[bytes] | _Anchors,
        *,
        host: str | None = None,
        port: int | None = None,
        fetch: bool = True,
        resumed: bool = False,
    ) -> tuple[CertificateStatus, ...]:
        """Check a chain as the policy says: raise for revoked (always) and undetermined (hard).

        Args:
            chain: DER certificates, leaf first.
            anchors: the DER trust anchors the chain was verified against.
            host: the server's name: its statuses are kept for :meth:`state`.
            port: the server's port, where known (kept with ``host``).
            fetch: ``False``: answer from the cache only.
            resumed: ``chain`` is the leaf of a resumed session whose verified chain
                is not known (an issuer not found says so, and how to get one).

        Returns:
            The statuses (as :meth:`statuses`).

        Raises:
            CertificateRevokedError: a certificate is revoked.
            RevocationUnknownError: a status could not be determined and the mode is hard.
        """
        found = self.statuses(chain, anchors, fetch=fetch, resumed=resumed)
        if host is not None:
            name = normalize_host(host)
            with self._lock:
                self._hosts[(name, port)] = found
                self._hosts.move_to_end((name, port))
                self._by_host[name] = found
                self._by_host.move_to_end(name)
                for record in (self._hosts, self._by_host):
                    while len(record) > self.policy.cache_size:
                        record.popitem(last=False)
        self._count(found)
        where = host or "the server"
        for status in found:
            if status.status == "revoked":
                when = revoked_when(status.revoked_at)
                raise self._refusing(
                    status,
                    CertificateRevokedError(
                        f"{where}: certificate {status.subject} (serial "
                        f"{hex_serial(status.serial)}) was revoked on {when}, reason "
                        f"{status.reason or 'unspecified'} ({status.source}): the connection "
                        "was closed before any request",
                        host=host,
                        subject=status.subject,
                        serial=status.serial,
                        revocation_reason=status.reason,
                        revoked_at=status.revoked_at,
                        source=status.source,
                    ),
                )
        for status in found:
            if status.status != "undetermined":
                continue
            text = (
                f"{where}: the revocation status of certificate {status.subject} (serial "
                f"{hex_serial(status.serial)}) could not be determined: {'; '.join(status.why)}"
            )
            if self.policy.mode == "hard":
                raise self._refusing(
                    status,
                    RevocationUnknownError(
                        f"{text}; refused (hard-fail: a soft-fail policy would log and allow "
                        "it; in code RevocationPolicy(mode='soft'))",
                        host=host,
                        subject=status.subject,
                        serial=status.serial,
                        why=status.why,
                    ),
                )
        return found

    def check_connection(
        self,
        conn: ssl.SSLSocket | ssl.SSLObject,
        anchors: Sequence[bytes] | _Anchors,
        *,
        fetch: bool = True,
    ) -> None:
        """Check the chain a finished handshake verified (see the module notes).

        Raises:
            CertificateRevokedError: as :meth:`check`.
            RevocationUnknownError: as :meth:`check`.
        """
        chain = peer_chain(conn)
        if not chain:
            return
        known = _anchor_set(anchors)
        # Per truststore: with cross-signed intermediates, the path one context
        # verified is not the one another would have. (By digest: the memo must not
        # keep the anchors of contexts long gone.)
        key = (known.digest, chain[0])
        resumed_unknown = False
        with self._lock:
            if conn.session_reused:
                # A resumed session verifies no chain (OpenSSL has only the leaf): the
                # chain verified for this leaf in an earlier handshake stands in, so an
                # intermediate-issued leaf is still asked about. Unknown: the leaf
                # alone, its issuer looked up among the anchors (else undetermined).
                kept = self._chains.get(key)
                resumed_unknown = kept is None
                chain = list(kept) if kept is not None else chain
            elif len(chain) > 1:
                self._chains[key] = tuple(chain)
                self._chains.move_to_end(key)
                while len(self._chains) > _CHAINS_KEPT:
                    self._chains.popitem(last=False)
        self.check(
            chain,
            known,
            host=conn.server_hostname,
            port=_peer_port(conn),
            fetch=fetch,
            resumed=resumed_unknown,
        )

    def cached(self) -> tuple[CertificateStatus, ...]:
        """The statuses in the cache that are still valid, least recently used first
        (for status pages and metrics: nothing is fetched)."""
        live = _live_now()
        with self._lock:
            return tuple(entry[1] for entry in self._cache.values() if live(entry))

    def state(self, hosts: Iterable[str | tuple[str, int]] = ()) -> RevocationState:
        """The policy and the still-cached statuses last seen for ``hosts``' chains.

        Args:
            hosts: host names (the last chain checked for the name, on any port), or
                ``(host, port)`` pairs: the last chain checked for that port, else for
                the name by a connection that did not know its port (over memory BIOs,
                as the async clients make them).

        Returns:
            A frozen record; nothing is fetched.
        """
        live = _live_now()
        with self._lock:
            valid = {entry[1] for entry in self._cache.values() if live(entry)}
            seen = []
            for wanted in dict.fromkeys(hosts):
                if isinstance(wanted, str):
                    seen.append(self._by_host.get(normalize_host(wanted), ()))
                    continue
                name = normalize_host(wanted[0])
                found = self._hosts.get((name, wanted[1]))
                seen.append(found if found is not None else self._hosts.get((name, None), ()))
        policy = self.policy
        return RevocationState(
            mode=policy.mode,
            ocsp=policy.ocsp,
            crl=policy.crl,
            statuses=tuple(
                dict.fromkeys(status for found in seen for status in found if status in valid)
            ),
        )

    def clear(self) -> None:
        """Forget every cached status and CRL."""
        with self._lock:
            self._cache.clear()
            self._crls.clear()
            self._revoked.clear()
            self._failed.clear()
            self._hosts.clear()
            self._by_host.clear()
            self._chains.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def __bool__(self) -> bool:
        """Always true: a checker is there whether or not its cache holds anything yet
        (``len()`` is the cache's size, 0 in a new process)."""
        return True

    def _listen(self, count: Callable[[str], None]) -> None:
        """Call ``count`` (a bound method, held weakly) with each status's result
        (``good``, ``revoked``, ``undetermined``) of every check from now on."""
        with self._lock:
            self._listeners.append(weakref.WeakMethod(count))

    def _count(self, found: Sequence[CertificateStatus]) -> None:
        if not self._listeners:
            return
        with self._lock:
            self._listeners = [ref for ref in self._listeners if ref() is not None]
            listeners = [ref() for ref in self._listeners]
        for count in listeners:
            if count is not None:
                for status in found:
                    count(status.status)

    # ------------------------------------------------------------------ cache

    def _status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        fetch: bool = True,
        deadline: _CheckBudget | None = None,
    ) -> CertificateStatus:
        key = _status_key(cert, issuer)
        hit = self._cached(key)
        if hit is not None:
            return hit
        if not fetch:
            raise _CacheMiss
        if deadline is None:
            deadline = _CheckBudget(time.monotonic() + self.policy.check_timeout)
        # One check at a time asks for a certificate, however many handshakes want it;
        # the others wait for its answer within their own budget (the wait is part of
        # their check: h228, a check waiting on another's fetch took 1.4 times its
        # check_timeout). A status the asking check may not keep (its budget cut its
        # sources short) is asked again by one of them, one at a time.
        while True:
            with self._lock:
                flight = self._gates.get(key)
                asking = flight is None
                if flight is None:
                    flight = self._gates[key] = _Flight()
            if asking:
                break
            if not flight.done.wait(max(0.0, deadline.at - time.monotonic())):
                status = self._waited_out(cert, issuer)
                self._warn(status)
                return status
            hit = self._cached(key)
            if hit is not None:
                return hit
            # Waiting spent part of its budget, as a fetch would have: a source it asks
            # next with what is left, cut short, is this check's shortfall, never held
            # against the source for retry_failed_after (h229: the next backend under
            # the same intermediate was refused for a minute, as in h179).
            deadline.asked = True
        try:
            status = self._ask(cert, issuer, deadline, key)
            assert status.valid_until is not None
            assert status.checked_at is not None
            keep = (status.valid_until - status.checked_at).total_seconds()
            with self._lock:
                if keep > 0:  # an incomplete status is valid until its check only
                    self._cache[key] = (time.monotonic() + keep, status)
                    self._cache.move_to_end(key)
                    while len(self._cache) > self.policy.cache_size:
                        self._cache.popitem(last=False)
        finally:
            # The flight ends with the answer in place (a check arriving between the
            # two found neither, and asked again), and only this check's: one that
            # removed another's let a third ask beside it (h228).
            with self._lock:
                if self._gates.get(key) is flight:
                    del self._gates[key]
            flight.done.set()
        self._warn(status)
        return status

    def _waited_out(self, cert: x509.Certificate, issuer: x509.Certificate) -> CertificateStatus:
        """The status of a certificate another check was still asking about when this
        check's budget ran out: undetermined, for this check only; revoked when it was
        found revoked before (h249: a check that waited let such one through)."""
        now = _now()
        with self._lock:
            known = self._revoked.get(_revocation_key(cert, issuer))
        if known is not None:
            return dataclasses.replace(known.status, checked_at=now, valid_until=now)
        return CertificateStatus(
            subject=cert.subject.rfc4514_string(),
            serial=cert.serial_number,
            issuer=issuer.subject.rfc4514_string(),
            status="undetermined",
            why=(
                "another check was still asking its sources when this check's "
                f"{self.policy.check_timeout:g} s (check_timeout) were spent",
            ),
            checked_at=now,
            valid_until=now,
        )

    def _warn(self, status: CertificateStatus) -> None:
        """What a status found says in the log, once per answer (cached answers are not
        logged again), whoever asked (:meth:`statuses` never refuses anything): under
        soft-fail, a status that could not be determined, at WARNING (allowed), once per
        retry period and once per certificate whose issuer is not known; in both modes,
        one ``resolved:`` line when a certificate found undetermined has an answer again
        (the responder is back). Refusals are logged by :meth:`check`, which makes them."""
        who = (status.serial, status.issuer)
        if status.status != "undetermined":
            with self._lock:
                was_unknown = who in self._undetermined
                self._undetermined.discard(who)
            if was_unknown:
                log.warning(
                    "resolved: the revocation status of %s (serial %s) is known again: %s (%s)",
                    status.subject,
                    hex_serial(status.serial),
                    status.status,
                    status.source,
                )
            return
        key = (status.serial, status.issuer, status.valid_until)
        with self._lock:
            if not first_time(self._warned, key, at_most=self.policy.cache_size):
                return
            if len(self._undetermined) >= self.policy.cache_size:
                self._undetermined.clear()
            self._undetermined.add(who)
        if self.policy.mode == "soft":
            log.warning(
                "revocation status of %s (serial %s) could not be determined: %s; "
                "allowed (soft-fail)",
                status.subject,
                hex_serial(status.serial),
                "; ".join(status.why),
            )

    def _refusing(self, status: CertificateStatus, error: RevocationError) -> RevocationError:
        """``error``, which :meth:`check` raises for ``status``, logged at ERROR once per
        answer: a backend refused for its certificate's status refuses every connection,
        and profiles stay healthy (their own material is fine)."""
        key = (status.serial, status.issuer, status.valid_until)
        with self._lock:
            if key in self._refused:
                return error
            if len(self._refused) >= self.policy.cache_size:
                self._refused.clear()
            self._refused.add(key)
        log.error("%s", error)
        return error

    def _submit(self, check: Callable[[], None]) -> concurrent.futures.Future[None]:
        """Run ``check`` on the checker's own worker threads (see :class:`OwedCheck`):
        daemon threads, so that a check waiting on a hung responder does not hold the
        interpreter's exit (a thread pool's are joined there, h184). Where no thread
        can be started and none runs to take it, it runs here.
        """
        with self._lock:
            if self._workers is None:
                self._workers = DaemonWorkers(OWED_CHECK_WORKERS, "mtls-revocation")
            workers = self._workers
        return workers.submit(check)

    def _fetch(self, url: str, body: bytes | None, limit: int, timeout: float) -> bytes:
        """:func:`mtls._fetch.fetch`, counted; ``timeout`` is what is left of the check's
        budget (none left: not asked).

        Raises:
            FetchError: the fetch failed, or the budget was spent.
        """
        if timeout <= 0:
            raise _NotAsked(
                f"{url}: not asked, the check's {self.policy.check_timeout:g} s "
                "(check_timeout) were spent before it"
            )
        self._fetching.made = True
        with self._lock:
            self.fetches += 1
        budget = self.policy.check_timeout
        if timeout < self.policy.timeout:
            return fetch(
                url, body, limit, timeout, budget=f"what was left of the check's {budget:g} s "
                "(check_timeout)",
            )  # fmt: skip
        return fetch(url, body, limit, timeout)

    def _cached(self, key: tuple[str, int]) -> CertificateStatus | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if not _live_now()(hit):
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return hit[1]

    # ------------------------------------------------------------------ asking

    def _ask(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        deadline: _CheckBudget | None,
        key: tuple[str, int],
    ) -> CertificateStatus:
        """The certificate's status, asked of its sources in turn within the check's
        budget (``deadline``). One that cannot be determined is kept for
        ``retry_failed_after`` only when every source was asked (or failed lately, and
        is not asked again before its time): a source the budget left unasked, or cut
        short, is the check's shortfall, not the certificate's; its status is valid
        for this check only (a hung responder of one backend spent the budget, and
        every backend under the same intermediate was refused, or passed under
        soft-fail with the intermediate revoked, for a minute: h179). A source that
        fails with all the time a fetch may have (``timeout``, or the whole check's
        when it asks first) is not asked again for this certificate before
        ``retry_failed_after``. A fetch this process could not make (no descriptor,
        memory or thread for it) is the check's shortfall too (h211: refused for
        ``retry_failed_after`` after the descriptors were back)."""
        policy = self.policy
        if deadline is None:
            deadline = _CheckBudget(time.monotonic() + policy.check_timeout)
        now = _now()
        ocsp_urls, crl_urls = _urls(cert)
        why: list[str] = []
        answer: _Answer | None = None
        sources = [
            *(("OCSP", self._ocsp, url) for url in (ocsp_urls if policy.ocsp else ())),
            *(("CRL", self._crl, url) for url in (crl_urls if policy.crl else ())),
        ]
        incomplete = False
        retry_at = now + _dt.timedelta(seconds=policy.retry_failed_after)
        for kind, ask, url in sources:  # OCSP first, then the CRLs, the first answer wins
            lately = self._failed_lately((kind, url, key))
            if lately is not None:
                retry_at = min(retry_at, lately[1])
                why.append(f"{kind} {lately[2]} (not asked again until {_shown_time(lately[1])})")
                continue
            # What is left of the check's budget (a CRL already downloaded still
            # answers when none is: only fetches need time).
            left = min(policy.timeout, deadline.at - time.monotonic())
            fair = left >= policy.timeout or not deadline.asked
            self._fetching.made = False
            try:
                answer = ask(cert, issuer, url, now, left)
            except _NotAsked as exc:
                why.append(f"{kind} {exc}")
                incomplete = True
                continue
            except FetchError as exc:
                why.append(f"{kind} {exc}")
                if exc.local:  # no descriptor, memory or thread here: not the source's
                    incomplete = True  # (h211: refused for a minute after they were back)
                elif fair or time.monotonic() < deadline.at:  # its own failure
                    self._remember_failed((kind, url, key), str(exc))
                else:
                    incomplete = True  # cut short by the budget: asked again next check
            except (
                ValueError,
                TypeError,
                UnsupportedAlgorithm,
                x509.DuplicateExtension,
                x509.InvalidVersion,
            ) as exc:
                # cryptography parses lazily: a damaged field surfaces here, not at load
                # (in words: cryptography's parse errors are Rust debug dumps)
                malformed = f"{url}: a malformed answer ({_x509.parse_error_text(str(exc))})"
                why.append(f"{kind} {malformed}")
                self._remember_failed((kind, url, key), malformed)
            else:
                if answer.note is not None:
                    why.append(f"{kind} {answer.note}")
                break
            finally:
                if self._fetching.made:
                    deadline.asked = True
        if not why and answer is None:
            names = [
                n
                for n, on, urls in (("OCSP", policy.ocsp, ocsp_urls), ("CRL", policy.crl, crl_urls))
                if on
            ]
            why.append(
                f"the certificate names no {' and no '.join(names)} location "
                "(AIA OCSP, CRL distribution points)"
            )
        subject, serial = cert.subject.rfc4514_string(), cert.serial_number
        issued_by = issuer.subject.rfc4514_string()
        revocation_key = _revocation_key(cert, issuer)
        with self._lock:
            known = self._revoked.get(revocation_key)
        if known is not None and (
            answer is None or (answer.status == "good" and not known.undone_by(answer))
        ):
            # No source answers now, or only with an answer issued no later than the
            # one that revoked it (replayed over plain http), and this certificate was
            # found revoked: a revocation is final (h247: soft-fail let it in once its
            # answer left the cache and its responder was down).
            revoked = known.status
            assert revoked.checked_at is not None
            set_aside = (
                f"; the 'good' answer of {answer.source}, issued "
                f"{_shown_time(answer.this_update)}, is no later, and set aside"
                if answer is not None and answer.this_update is not None
                else ""
            )
            issued = f" issued {_shown_time(known.issued)}" if known.issued else ""
            return dataclasses.replace(
                revoked,
                why=(
                    *why,
                    f"revoked, as {revoked.source} said on {_shown_time(revoked.checked_at)} "
                    f"in an answer{issued}{set_aside}: a revocation is final until an "
                    "answer issued later says otherwise",
                ),
                checked_at=now,
                valid_until=now if incomplete else retry_at,
            )
        if answer is None:
            return CertificateStatus(
                subject=subject,
                serial=serial,
                issuer=issued_by,
                status="undetermined",
                why=tuple(why),
                checked_at=now,
                valid_until=now if incomplete else retry_at,
            )
        longest = now + _dt.timedelta(seconds=policy.cache_delay)
        status = CertificateStatus(
            subject=subject,
            serial=serial,
            issuer=issued_by,
            checked_at=now,
            status=answer.status,
            source=answer.source,
            reason=answer.reason,
            revoked_at=answer.revoked_at,
            why=tuple(why),
            # A revocation read from a kept list (its distribution point down) is asked
            # for again as a failed source is; one made with a source left unasked,
            # at the next check.
            valid_until=(
                min(answer.valid_until, longest)
                if answer.note is None
                else (now if incomplete else min(answer.valid_until, retry_at))
            ),
        )
        with self._lock:
            if status.status == "revoked" and status.reason != "certificateHold":
                self._revoked[revocation_key] = _Revoked(
                    status, answer.this_update, answer.number, now
                )
                self._revoked.move_to_end(revocation_key)
                while len(self._revoked) > policy.cache_size:
                    self._revoked.popitem(last=False)
            elif status.status == "good":
                self._revoked.pop(revocation_key, None)  # issued later: its CA's word
        return status

    def _failed_lately(
        self, source: tuple[str, str, tuple[str, int]]
    ) -> tuple[float, _dt.datetime, str] | None:
        """When and why ``source`` (kind, URL, status key) failed, if it is not to be
        asked again yet."""
        with self._lock:
            failed = self._failed.get(source)
            if failed is None:
                return None
            if failed[0] <= time.monotonic():
                del self._failed[source]
                return None
            return failed

    def _remember_failed(self, source: tuple[str, str, tuple[str, int]], why: str) -> None:
        """``source`` failed on its own (with all the time a fetch may have, or before
        the budget ended): not asked again for this certificate for
        ``retry_failed_after`` (bounded as the status cache is)."""
        wait = self.policy.retry_failed_after
        until = (time.monotonic() + wait, _now() + _dt.timedelta(seconds=wait), why)
        with self._lock:
            self._failed[source] = until
            self._failed.move_to_end(source)
            while len(self._failed) > self.policy.cache_size:
                self._failed.popitem(last=False)

    def _ocsp(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        url: str,
        now: _dt.datetime,
        timeout: float,
    ) -> _Answer:
        wanted = ocsp_request(cert, issuer)
        request = wanted.public_bytes(serialization.Encoding.DER)
        data = self._fetch(url, request, MAX_OCSP_BYTES, timeout)
        try:
            response, signed = load_ocsp(data)
        except ValueError:
            raise FetchError(f"{url}: the answer is not an OCSP response") from None
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise FetchError(f"{url}: the responder answered {response.response_status.name}")
        unsigned = ocsp_unsigned(response, issuer, now, signed)
        if unsigned is not None:
            raise FetchError(
                f"{url}: the response is not signed by the issuer "
                f"{issuer.subject.rfc4514_string()} or a responder it authorized "
                f"(id-kp-OCSPSigning): {unsigned}"
            )
        single = ocsp_single(response, cert, wanted, url, now)
        critical = ocsp_critical(data)
        if critical is not None:
            raise FetchError(
                f"{url}: the response has a critical extension the check does not "
                f"process ({critical}): no answer, as in Java"
            )
        this_update, next_update = answer_times(single)
        until = current_until(this_update, next_update, now, self.policy.cache_delay)
        source = f"OCSP {url}"
        if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return _Answer("good", source, until, this_update=this_update)
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            try:
                reason = single.revocation_reason
            except ValueError:  # a reason cryptography cannot read (7): revoked all the same
                reason = None
            return _Answer(
                "revoked",
                source,
                until,
                reason=reason.value if reason is not None else None,
                revoked_at=_dates.utc_time(lambda: single.revocation_time_utc),
                this_update=this_update,
            )
        raise FetchError(f"{url}: the responder does not know this certificate (unknown)")

    def _crl(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        url: str,
        now: _dt.datetime,
        timeout: float,
    ) -> _Answer:
        crl, fetched, failed = self._download_crl(url, issuer, now, timeout)
        out_of_scope = crl_scope(crl, cert)
        if out_of_scope is not None:
            raise FetchError(f"{url}: {out_of_scope}")
        next_update = crl_next_update(crl)
        stale = why_stale(crl_this_update(crl), next_update, now, "CRL")
        if stale is not None:
            raise FetchError(f"{url}: {stale}")  # as Java's checker: no answer
        this_update = crl_this_update(crl)
        until = current_until(this_update, next_update, now, self.policy.cache_delay)
        source = f"CRL {url}"
        entry = listed(crl, cert.serial_number)
        note = None
        if failed is not None:
            if entry is None:
                raise failed  # a list kept is no answer that lets a certificate in
            note = (
                f"{failed}; the list downloaded on {_shown_time(fetched)}, still current "
                "(before its nextUpdate), lists it"
            )
        else:
            # A status from a list downloaded a while ago is kept until cache_delay
            # after the download, not after this check (h247: a revocation went unseen
            # for almost twice cache_delay).
            until = min(until, fetched + _dt.timedelta(seconds=self.policy.cache_delay))
        number = crl_number(crl)
        if entry is None:
            return _Answer("good", source, until, this_update=this_update, number=number)
        try:
            reason_ext = next(
                (e.value for e in entry.extensions if isinstance(e.value, x509.CRLReason)), None
            )
        except ValueError:
            # A reason cryptography cannot read (7, unassigned): listed, so revoked all
            # the same, as OpenSSL and Java take it, for no reason we can name.
            reason_ext = None
        return _Answer(
            "revoked",
            source,
            until,
            reason=reason_ext.reason.value if reason_ext is not None else None,
            revoked_at=crl_revoked_on(entry),
            note=note,
            this_update=this_update,
            number=number,
        )

    def _download_crl(
        self, url: str, issuer: x509.Certificate, now: _dt.datetime, timeout: float
    ) -> tuple[x509.CertificateRevocationList, _dt.datetime, FetchError | None]:
        """The list at ``url`` for ``issuer``, when it was downloaded, and, for a list
        kept because the distribution point could not be asked for a new one, why (else
        ``None``): such a list only refuses (:meth:`_crl`)."""
        # Keyed by (URL, issuer): two CAs may name one URL, and a list cached for one
        # must never answer for the other (its signer was checked against one issuer).
        key = (url, issuer.public_bytes(serialization.Encoding.DER))
        with self._lock:
            hit = self._crls.get(key)
            if hit is not None:
                self._crls.move_to_end(key)
        if hit is not None and hit[0] > time.monotonic():
            check_crl(hit[2], issuer, url)  # its dates are judged by the caller, at each use
            return hit[2], hit[1], None
        try:
            return self._downloaded(url, issuer, key, now, timeout)
        except FetchError as exc:
            kept = hit[2] if hit is not None else None
            if kept is None or why_stale(crl_this_update(kept), crl_next_update(kept), now, "CRL"):
                raise
            # The list downloaded before is still current (before its nextUpdate): it
            # refuses a certificate it lists (h247: hard-fail called such a one
            # undetermined, soft-fail let it in); asked for again after
            # retry_failed_after.
            assert hit is not None
            check_crl(kept, issuer, url)
            return kept, hit[1], exc

    def _downloaded(
        self,
        url: str,
        issuer: x509.Certificate,
        key: tuple[str, bytes],
        now: _dt.datetime,
        timeout: float,
    ) -> tuple[x509.CertificateRevocationList, _dt.datetime, None]:
        """Download the list at ``url`` for ``issuer``, check it, and keep it."""
        data = self._fetch(url, None, MAX_CRL_BYTES, timeout)
        try:
            crls = list(CRLSet.from_bytes(data, path=url))
        except CRLError:
            raise FetchError(f"{url}: the answer is not a CRL") from None
        if len(crls) > 1:
            # A distribution point serves one list (RFC 5280 4.2.1.13): of several, an
            # older one could be taken for the current one and pass a revoked certificate.
            raise FetchError(
                f"{url}: the answer holds {len(crls)} CRLs where a distribution point "
                "serves one: which is current cannot be told"
            )
        crl = crls[0]
        check_crl(crl, issuer, url)
        # Once per download (every entry is read: about 0.1 s for 100,000 of them).
        unknown = unhandled_critical(crl)
        if unknown is not None:
            raise FetchError(
                f"{url}: the CRL has a critical extension mtls does not process ({unknown}); "
                "RFC 5280 5.2 says not to use it (OpenSSL refuses it as a CRL file too)"
            )
        fetched = _now()
        with self._lock:
            kept = self._crls.get(key)
            # A list published before the one kept (by CRLNumber, else thisUpdate: a
            # replay, signed but superseded, or a lagging mirror) answers nothing the
            # kept one does not: the kept one answers while current, confirmed by this
            # download as the latest there is (fresh again: h253, every handshake
            # downloaded again), and is never replaced by it, nor by a list no longer
            # current (its dates are judged by the caller, which refuses it), or it no
            # longer refused what it lists when the point was blocked (h250).
            if kept is not None and later_list(kept[2], crl):
                if not why_stale(crl_this_update(kept[2]), crl_next_update(kept[2]), now, "CRL"):
                    crl = kept[2]
                    self._keep_crl(key, crl, fetched, now)
            elif not why_stale(crl_this_update(crl), crl_next_update(crl), now, "CRL"):
                self._keep_crl(key, crl, fetched, now)
        return crl, fetched, None

    def _keep_crl(
        self,
        key: tuple[str, bytes],
        crl: x509.CertificateRevocationList,
        fetched: _dt.datetime,
        now: _dt.datetime,
    ) -> None:
        """Keep ``crl`` (downloaded, or confirmed, at ``fetched``) fresh for cache_delay
        at most (bounded; the lock held)."""
        current = current_until(
            crl_this_update(crl), crl_next_update(crl), now, self.policy.cache_delay
        )
        keep = min(self.policy.cache_delay, (current - now).total_seconds())
        self._crls[key] = (time.monotonic() + keep, fetched, crl)
        self._crls.move_to_end(key)
        while len(self._crls) > _CRL_CACHE_SIZE:
            self._crls.popitem(last=False)


_CRL_CACHE_SIZE = 64  # downloaded CRLs kept (each up to MAX_CRL_BYTES)
#: Worker threads of a checker for the checks event loops owe (made when first needed).
#: A check waiting on another's fetch of the same certificate holds one too: past this
#: many at once, checks queue (and their wait in the queue is not part of check_timeout).
OWED_CHECK_WORKERS = 64
_CHAINS_KEPT = 256  # verified chains kept for resumed sessions (a few KiB each)


def _issued_anchor(
    der: bytes, anchors: _Anchors
) -> tuple[x509.Certificate, x509.Certificate] | None:
    """``der`` (an anchor) and the other anchor that issued it (name and signature),
    or ``None``: self-issued, a CA certificate (an intermediate kept beside its root is
    an anchor, as Java has it, and is not asked about), unreadable, or its issuer is
    not among ``anchors``."""
    try:
        cert = _x509.load_cert(der)
    except ValueError:
        return None
    # No BasicConstraints, or extensions cryptography cannot read (OpenSSL may take
    # them): asked about, never passed over (undetermined at worst). Read through
    # _x509.extension: its warnings (a serial number that is not positive) are logged.
    constraints = _x509.extension(cert, x509.BasicConstraints, der)
    is_ca = bool(constraints is not None and constraints.ca)
    if is_ca or _x509.same_name(cert.issuer, cert.subject):
        return None
    issuer = next(
        (c for c, c_der in anchors.named(cert.issuer) if c_der != der and _issued(der, c_der)),
        None,
    )
    return None if issuer is None else (cert, issuer)


def _unreadable(der: bytes, exc: ValueError) -> CertificateStatus:
    """The undetermined status of a chain certificate cryptography cannot read."""
    try:
        serial = _x509.serial_number(der)
    except ValueError:
        serial = 0
    return CertificateStatus(
        subject=f"(a certificate cryptography cannot read, SHA-256 {_x509.sha256_hex(der)})",
        serial=serial,
        issuer="(unknown)",
        status="undetermined",
        why=(
            f"cryptography cannot read it ({exc}), so its revocation status cannot be "
            "asked: have its CA reissue it in valid DER",
        ),
        checked_at=_now(),
    )


# --------------------------------------------------------------------------- the hook


def peer_chain(conn: ssl.SSLSocket | ssl.SSLObject, *, verified: bool = True) -> list[bytes]:
    """The connection's chain, leaf first: the one OpenSSL verified, up to the anchor,
    or with ``verified=False`` the certificates the server sent (``mtls probe`` shows
    them even when verification failed).

    Python 3.13+ has ``get_verified_chain()`` / ``get_unverified_chain()``. 3.10 to 3.12
    have the same calls on the connection's ``_ssl`` object (``conn._sslobj``), which
    3.13's public methods wrap: they return ``_ssl.Certificate`` objects, read here as
    DER. Where neither exists, or the session was resumed (no chain is verified then),
    the leaf alone (``getpeercert(binary_form=True)``). Empty without a peer certificate.
    """
    name = "get_verified_chain" if verified else "get_unverified_chain"
    call = getattr(conn, name, None)  # 3.13+: DER bytes
    if call is None:
        call = getattr(getattr(conn, "_sslobj", None), name, None)
    if call is not None:
        try:
            found = [
                c if isinstance(c, bytes) else c.public_bytes(_DER_ENCODING) for c in call() or ()
            ]
        except (AttributeError, TypeError, ValueError, ssl.SSLError):
            found = []  # not the call 3.10-3.13 have: the leaf below
        if found:
            return found
        # None on a resumed session (no chain was verified in this handshake): the
        # leaf, which the session keeps, below.
    leaf = conn.getpeercert(binary_form=True)
    return [leaf] if leaf else []


#: The port an async integration dials, for a connection over memory BIOs (which
#: knows none): set around its request, and read when the handshake is checked, so
#: that status() shows the statuses under the profile of that port, not under every
#: profile of the host (h247: a good backend showed another port's revoked one).
DIALLED_PORT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "mtls_dialled_port", default=None
)


def _peer_port(conn: ssl.SSLSocket | ssl.SSLObject) -> int | None:
    """The server's port of a socket connection; over memory BIOs, the one the
    integration said it dials (:data:`DIALLED_PORT`), else ``None``."""
    try:
        return int(conn.getpeername()[1])  # type: ignore[union-attr]
    except (AttributeError, OSError, IndexError, TypeError, ValueError):
        return getattr(conn, "_mtls_port", None)


# What _ssl.Certificate.public_bytes takes for DER (3.10+).
_DER_ENCODING: int = getattr(_ssl, "ENCODING_DER", 2)


def install(ctx: ssl.SSLContext, checker: RevocationChecker, anchors: Sequence[bytes]) -> None:
    """Make every connection ``ctx`` makes run ``checker`` after its handshake.

    Sets ``ctx.sslsocket_class`` and ``ctx.sslobject_class`` (documented
    per-instance attributes) once, before the context is handed out.
    """
    # Made per context, never cached globally: the classes hold the checker and the
    # anchors, which must die with the last context that uses them.
    sock_class, object_class = _classes(
        checker, _Anchors(anchors), ctx.sslsocket_class, ctx.sslobject_class
    )
    ctx.sslsocket_class = sock_class
    ctx.sslobject_class = object_class


@dataclasses.dataclass(frozen=True, slots=True)
class OwedCheck:
    """The check a memory-BIO connection owes (see :func:`pending_check`).

    Calling it runs the check in the calling thread. :meth:`in_worker` runs it on the
    checker's own worker threads (at most :data:`OWED_CHECK_WORKERS`), never on the
    event loop's default executor or anyio's thread limiter, which the application's
    own blocking work shares: a hung responder delays the connections waiting for its
    answer, and others only when more checks than that wait at once.
    """

    run: Callable[[], None]
    checker: RevocationChecker

    def __call__(self) -> None:
        self.run()

    async def in_worker(self) -> None:
        """Run the check on the checker's threads; the running asyncio loop waits
        without blocking. Cancelled, the wait ends at once: a fetch under way goes on
        in its thread and its answer is cached for the next connection.

        Raises:
            CertificateRevokedError: as :meth:`RevocationChecker.check`.
            RevocationUnknownError: as :meth:`RevocationChecker.check`.
        """
        import asyncio  # noqa: PLC0415 - only the async integrations come here
        import contextvars  # noqa: PLC0415

        # In the caller's context (request ids, trace ids its log lines carry), as
        # anyio.to_thread and run_in_executor callers expect.
        run = functools.partial(contextvars.copy_context().run, self.run)
        await asyncio.wrap_future(self.checker._submit(run))


def pending_check(ssl_object: object) -> OwedCheck | None:
    """The online check a memory-BIO connection (``ssl.SSLObject``) still owes, or ``None``.

    The event loop's thread never waits on a fetch: after the handshake, an
    ``SSLObject`` of a checked context consults only the cache. On a miss the
    check is owed; the async integrations run the returned function in a worker
    thread after connecting and before the first request byte (it raises
    :class:`CertificateRevokedError` / :class:`RevocationUnknownError`). Until it
    has passed, nothing the server sends is given to the application, and the
    first write runs it (blocking) if nobody did.
    """
    if getattr(ssl_object, "_mtls_pending", False):
        check: Callable[[], None] = ssl_object._mtls_check  # type: ignore[attr-defined]
        return OwedCheck(check, ssl_object._mtls_checker)  # type: ignore[attr-defined]
    return None


def _classes(
    checker: RevocationChecker,
    anchors: _Anchors,
    sock_base: type[ssl.SSLSocket],
    object_base: type[ssl.SSLObject],
) -> tuple[type[ssl.SSLSocket], type[ssl.SSLObject]]:
    # Subclasses of the context's own classes, their arguments passed through: gevent's
    # patched context constructs its own SSLSocket, whose do_handshake takes no
    # ``block`` (every checked connection failed with a TypeError under gevent).
    class RevocationCheckedSocket(sock_base):  # type: ignore[valid-type,misc]
        """A socket that checks the server's chain for revocation after the handshake,
        and before the first read or write when the handshake was implicit
        (``do_handshake_on_connect=False``)."""

        _mtls_checked = False

        def do_handshake(self, *args: Any, **kwargs: Any) -> None:
            super().do_handshake(*args, **kwargs)
            if self._mtls_checked:
                return
            try:
                checker.check_connection(self, anchors)
            except BaseException:
                # A handshake run on connect (wrap_socket's default, every HTTP client):
                # the stdlib closes the socket only on OSError and ValueError, which a
                # RevocationError is not: never leave a connection to a refused server
                # open. A caller that drives the handshake itself (tornado, with the
                # socket registered in its loop) closes it: closed under it, its next
                # connection failed ("fd added twice", h266's finding on the server
                # side, met here too). Until then every read or write is refused.
                if self.do_handshake_on_connect:
                    self.close()
                raise
            self._mtls_checked = True

        def _mtls_before_io(self) -> None:
            # An implicit handshake happens inside OpenSSL's first read or write,
            # past do_handshake: finish it here (a no-op once done) so the check runs.
            if not self._mtls_checked:
                self.do_handshake()

        def read(self, *args: Any, **kwargs: Any) -> Any:
            self._mtls_before_io()
            return super().read(*args, **kwargs)

        def write(self, *args: Any, **kwargs: Any) -> Any:
            self._mtls_before_io()
            return super().write(*args, **kwargs)

        def send(self, *args: Any, **kwargs: Any) -> Any:
            self._mtls_before_io()
            return super().send(*args, **kwargs)

        # sendall and sendfile call send; recv and recv_into call read.

    class RevocationCheckedObject(object_base):  # type: ignore[valid-type,misc]
        """The memory-BIO twin (asyncio, anyio): the event loop's thread only consults
        the cache; a miss leaves the check owed (see :func:`pending_check`)."""

        _mtls_pending = True
        _mtls_refused: RevocationError | None = None
        _mtls_checker = checker
        _mtls_port: int | None = None

        def do_handshake(self) -> None:
            super().do_handshake()
            if not self._mtls_pending:
                return
            if self._mtls_port is None:
                self._mtls_port = DIALLED_PORT.get()
            try:
                checker.check_connection(self, anchors, fetch=False)
            except _CacheMiss:
                return  # the check is owed: run where the caller can wait for it
            except RevocationError as exc:
                # A refusal from the cache (counted once, there): raised where the
                # caller can take it (the integration's check, or the first write),
                # not inside the event loop's protocol callback.
                self._mtls_refused = exc
                return
            self._mtls_pending = False

        def _mtls_check(self) -> None:
            if self._mtls_pending:
                if self._mtls_refused is not None:
                    raise self._mtls_refused
                checker.check_connection(self, anchors)
                self._mtls_pending = False

        def read(self, len: int = 1024, buffer: Any = None) -> Any:
            if self._mtls_pending:
                if self.version() is None:  # an implicit handshake
                    self.do_handshake()
                if self._mtls_pending:
                    # What OpenSSL reads after a handshake alone (TLS 1.3 session
                    # tickets) raises SSLWantReadError here, and leaves the owed check
                    # to the integration's worker. Application data first (a server
                    # that speaks first: SMTP, FTP, a banner) would wait for a write
                    # that never comes: the check runs now, before the data reaches
                    # the application (as on a first write, this blocks an event loop).
                    data = super().read(len, buffer)
                    if data:
                        self._mtls_check()
                    return data
            return super().read(len, buffer)

        def write(self, data: Any) -> int:
            if self._mtls_pending:
                if self.version() is None:  # an implicit handshake
                    self.do_handshake()
                # Nobody ran the owed check in a worker: run it here, before the
                # first byte (this blocks an event loop: the integrations avoid it).
                self._mtls_check()
            written: int = super().write(data)
            return written

    return RevocationCheckedSocket, RevocationCheckedObject


def revocation_checker(
    value: RevocationPolicy | RevocationChecker | None,
) -> RevocationChecker | None:
    """A checker from what users pass (a policy makes a new checker with its own cache)."""
    if value is None or isinstance(value, RevocationChecker):
        return value
    if isinstance(value, RevocationPolicy):
        return RevocationChecker(value)
    raise TypeError(f"revocation must be a RevocationPolicy or RevocationChecker, not {value!r}")


# Public as mtls.X: reprs, tracebacks and pickles say so however they were
# imported (mtls/__init__.py loads them on first use).
for _public in (CertificateStatus, RevocationChecker, RevocationPolicy, RevocationState):
    _public.__module__ = "mtls"
del _public
