"""Stores and contexts for profiles: where a :class:`~mtls.StoreConfig` meets the bytes.

Thread-free. The :class:`Builder` loads stores through the one loading path
(:func:`mtls._stores.load_store`) for the reload engine's checks, reading through the check's
:class:`~mtls._reading.Reading` (settled bytes only) and caching by content: the same
bytes with the same passwords are parsed once, and identical material and options
give one context, however many profiles use it.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import functools
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from . import _dates, _der, _purpose, _x509
from ._config import SSLProfile, StoreConfig, material_definition, trust_for
from ._context import (
    EXPIRY_WARNINGS,
    MAX_TRUST_ANCHORS,
    AnchorsAhead,
    WarnExpiry,
    build_client_context,
    store_at_fault,
)
from ._crl import (
    CRLSet,
    _extension,
    crl_next_update,
    crl_this_update,
    unreadable_crl,
)
from ._errors import (
    CRLError,
    KeyEntryError,
    MTLSError,
    by_content,
    together,
    with_more,
)
from ._files import MAX_INPUT_BYTES
from ._fork import renew_attributes_after_fork
from ._keyload import GIL_FREE_ANCHOR_BYTES, memfd_available
from ._log import STORE_JAVA_NOTE, log
from ._material import TLSMaterial, tls_material
from ._reading import Interrupted, Reading, Unstable
from ._refusals import (
    WARNED_AT_MOST,
    anchor_refusal,
    chain_refusal,
    lost_issuer_refusal,
    purpose_refusal,
    say_usage_warning,
    self_signed_refusal,
    validity_refusal,
)
from ._revocation import RevocationChecker
from ._secret import escaped as kept_escape
from ._stores import Keystore, StoreRole, Truststore, load_store, store_open_error
from ._types import HostnameVerifier

Files = tuple[tuple[str, str, str], ...]  # (role, path, sha256) of each file a profile used


# --------------------------------------------------------------------------- served material


@dataclass(frozen=True, slots=True)
class AnchorInfo:
    """One certificate (a trust anchor, or one of the identity's chain), as status
    reports and the expiry watch (:mod:`mtls._health`) show it."""

    alias: str
    subject: str | None
    not_after: _dt.datetime | None
    serial: int | None = None
    fingerprint: str = ""  # SHA-256 of the DER, hex: what the expiry watch keys on
    not_before: _dt.datetime | None = None
    # A CRL's: when the next list is due (its NextCRLPublish, else half its validity).
    renew_by: _dt.datetime | None = None


# Said of an alias from deployment.toml that names no key entry: WSO2's sender reads
# none (ClientConnFactoryBuilder gives the whole keystore to Java's key manager).
_NO_SENDER_ALIAS = (
    " (the alias is from deployment.toml: WSO2's sender reads no key alias and lets "
    "Java's key manager pick the key, so this is an mtls setting: name one of these key "
    "entries, or remove the alias when the store has only one)"
)
_PICKS = (
    ": WSO2's sender lets Java's key manager pick, per handshake, a key whose issuer "
    "the backend accepts; Python's ssl module cannot, so mtls presents the one you name "
    "(mtls probe URL --keystore FILE --alias ALIAS shows whether a backend takes an "
    "entry, and which CAs it asks for)"
)


def _cert_info(alias: str, cert: x509.Certificate, der: bytes) -> AnchorInfo:
    """``cert``'s AnchorInfo; ``der``: its bytes, as stored."""
    return AnchorInfo(
        alias,
        _x509.subject_text(cert),
        _dates.not_after(cert),
        _x509.serial_number(der),
        _x509.sha256_hex(der),
        _dates.not_before(cert),
    )


def _anchor_infos(truststore: Truststore | None) -> tuple[AnchorInfo, ...]:
    if truststore is None:
        return ()
    out = [_cert_info(alias, cert, der) for alias, der, cert in truststore._parsed_anchors()]
    far = _dt.datetime.max.replace(tzinfo=_dt.UTC)
    return tuple(sorted(out, key=lambda a: a.not_after or far))


#: Microsoft's NextCRLPublish (AD CS adds it): when the CA publishes the next list.
_NEXT_CRL_PUBLISH = x509.ObjectIdentifier("1.3.6.1.4.1.311.21.4")


def _next_publish(crl: x509.CertificateRevocationList) -> _dt.datetime | None:
    """A list's NextCRLPublish time (a DER UTCTime or GeneralizedTime), or ``None``."""
    try:
        raw = crl.extensions.get_extension_for_oid(_NEXT_CRL_PUBLISH).value
        return _dates.der_time(_der.read_tlv(getattr(raw, "value", b"")))
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None


def _crl_infos(one: CRLSet, data: bytes, digest: str) -> tuple[AnchorInfo, ...]:
    """Each list of one CRL file (``one``, read from ``data``) as the expiry watch sees
    it: its file (``alias``), issuer (``subject``), CRL number (``serial``), SHA-256
    (the file's own digest for a DER file), ``thisUpdate`` (``not_before``),
    ``nextUpdate`` (``not_after``), and when the next list is due (``renew_by``: its
    NextCRLPublish where the CA says, else half-way through its validity)."""
    out: list[AnchorInfo] = []
    der_file = b"-----BEGIN" not in data  # as CRLSet.from_bytes tells them apart
    for crl, path in one.lists():
        number = _extension(crl, x509.CRLNumber)
        start, end = crl_this_update(crl), crl_next_update(crl)
        due = _next_publish(crl)
        if end is not None and (due is None or not start < due < end):
            # (A thisUpdate of year 0 says nothing of when the next list is due.)
            due = None if start == _dates.YEAR_ZERO else start + (end - start) / 2
        out.append(
            AnchorInfo(
                path or "",
                crl.issuer.rfc4514_string(),
                end,
                number.crl_number if number is not None else None,
                digest if der_file else crl.fingerprint(hashes.SHA256()).hex(),
                start,
                due,
            )
        )
    return tuple(out)


def not_valid_yet(chain: Sequence[AnchorInfo]) -> list[tuple[int, AnchorInfo]]:
    """The certificates of a presented chain (:func:`_chain_infos`; 0: the leaf) whose
    start is ahead: a first load serves them (nothing else), and peers refuse them
    until then."""
    now = _dt.datetime.now(_dt.UTC)
    return [
        (index, link)
        for index, link in enumerate(chain)
        if link.not_before is not None and link.not_before > now
    ]


def _chain_infos(keystore: Keystore | None, alias: str | None) -> tuple[AnchorInfo, ...]:
    """The presented chain, leaf first (a certificate cryptography refuses, which
    OpenSSL serves, with what our own walk of its DER reads)."""
    if keystore is None:
        return ()
    chosen, _, chain = keystore.key_entry(alias)
    out: list[AnchorInfo] = []
    for der in chain:
        try:
            out.append(_cert_info(chosen, _x509.load_cert(der), der))
        except ValueError:
            subject, start, end, serial = _x509.lenient_leaf_info(der)
            out.append(AnchorInfo(chosen, subject, end, serial, _x509.sha256_hex(der), start))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Served:
    """What a profile is served with; shared by every profile built from the same material."""

    context: ssl.SSLContext
    localhost_context: ssl.SSLContext | None  # DefaultAndLocalhost: no name check for these
    files: Files
    subject: str | None
    not_after: _dt.datetime | None
    loaded_at: _dt.datetime
    # Builds another context from the same stores, never one handed out already
    # (True: the localhost variant, no name check; False: the set's hostname mode).
    make: Callable[[bool], ssl.SSLContext] = field(repr=False, compare=False)
    # The same material as PEM, for TLS stacks that take no SSLContext (gRPC): made on
    # first use (and kept), so sets nobody asks for PEM pay nothing for it.
    material: Callable[[], TLSMaterial] = field(repr=False, compare=False)
    serial: int | None = None
    # The truststore's anchors, soonest expiry first, parsed on first use (status()
    # asks; lookups never do).
    anchors: Callable[[], tuple[AnchorInfo, ...]] = field(
        default=lambda: (), repr=False, compare=False
    )
    # The presented chain, leaf first, parsed on first use (the expiry watch asks).
    chain: Callable[[], tuple[AnchorInfo, ...]] = field(
        default=lambda: (), repr=False, compare=False
    )
    # The CRLs its contexts check, one per list (see _crl_infos): the expiry watch's (a
    # list past its nextUpdate fails every handshake it checks).
    crl_infos: tuple[AnchorInfo, ...] = field(default=(), repr=False, compare=False)
    # ALPN variants, made on first use and kept with the material they were made from:
    # (localhost, protocols) -> context; read without a lock, never handed out before
    # complete. A rotation retires the whole Served, variants included.
    variants: dict[tuple[bool, tuple[str, ...]], ssl.SSLContext] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Variants being built, per (process, variant): a concurrent.futures.Future each,
    # on a thread's lookup (with_alpn) or off an event loop
    # (mtls.integrations._pools.build_once): concurrent first requests wait for one
    # build, not one each.
    pending: dict[tuple[int, tuple[bool, tuple[str, ...]]], Any] = field(
        default_factory=dict, repr=False, compare=False
    )
    # The files again, as (role, path, sha256) with the Path made once: what a check
    # compares, and what tells a check which materials a moved file concerns.
    inputs: tuple[tuple[str, Path, str], ...] = field(default=(), repr=False, compare=False)
    # The keystore the context was made from: a replacement refused as not valid (yet)
    # is set aside and this identity serves on with whatever else changed.
    keystore: Keystore | None = field(default=None, repr=False, compare=False)
    # The truststore it was made from, likewise: a replacement that would verify nothing
    # is set aside and this trust serves on beside a new keystore.
    truststore: Truststore | None = field(default=None, repr=False, compare=False)
    # When the presented certificate becomes valid (status() shows one that is not yet).
    not_before: _dt.datetime | None = field(default=None, compare=False)
    # The profile definitions (config.material_definition) this material was built or
    # handed out for: what lets a profile whose servers were edited keep it as its
    # last good. Filled by build() as profiles are given it (never replaced).
    definitions: set[tuple[object, ...]] = field(default_factory=set, repr=False, compare=False)

    def presented(self) -> bytes | None:
        """The DER of the certificate it presents (``None``: no identity, or one its
        keystore no longer gives)."""
        if self.keystore is None or self.subject is None:
            return None
        try:
            chain = self.chain()
            return self.keystore.key_entry(chain[0].alias if chain else None)[2][0]
        except MTLSError:
            return None

    def peers_accept(self, role: str, now: _dt.datetime) -> bool:
        """Whether peers take its certificate as a ``role`` certificate now: in its
        dates, with times peers read and a purpose that allows the role
        (:func:`mtls._purpose.peers_refuse`); ``True`` without a certificate."""
        if (self.not_before is not None and self.not_before > now) or (
            self.not_after is not None and self.not_after < now
        ):
            return False
        der = self.presented()
        return der is None or _purpose.peers_refuse(der, role) is None

    def with_alpn(
        self, base: ssl.SSLContext, alpn: tuple[str, ...], *, build: bool = True
    ) -> ssl.SSLContext:
        """A context of its own offering ``alpn``, from the same stores as ``base``.

        Built once, kept: a built one is read without a lock. The first call for a list
        builds it (about one context's cost: with a big truststore, a second or more);
        calls meanwhile, on other threads or the async integrations' builders, wait for
        that build rather than each making one (32 threads' first requests read a
        5,000-anchor truststore 32 times, 47 s, h168), and raise what it raised.

        Raises:
            NotBuilt: ``build=False`` and it is not built yet (an event loop's caller
                then builds it on a worker thread).
        """
        key = (base is self.localhost_context, alpn)
        hit = self.variants.get(key)
        if hit is not None:
            return hit
        if not build:
            raise NotBuilt(self, base, alpn)
        pending = (os.getpid(), key)  # a forked child's builds are its own
        while True:  # until built here, or by the build waited for
            outcome = self._wait_or_build(key, pending, base, alpn)
            if isinstance(outcome, ssl.SSLContext):
                return outcome
            try:
                outcome.result()  # the build under way: its context, or its error
            except BuildAbandoned:
                continue  # its thread was interrupted: built here (or by another waiter)
            return self.variants.get(key) or self.build_variant(base, alpn)

    def _wait_or_build(
        self,
        key: tuple[bool, tuple[str, ...]],
        pending: tuple[int, tuple[bool, tuple[str, ...]]],
        base: ssl.SSLContext,
        alpn: tuple[str, ...],
    ) -> ssl.SSLContext | concurrent.futures.Future[None]:
        """The variant built (here, its build recorded in :attr:`pending` for others to
        wait for) or found built; or the build under way to wait for. Whatever
        interrupts this thread once its build is recorded (a signal between two
        bytecodes) ends the build first, and takes the record out after: no build is
        left recorded and never ended, for others to wait for forever (h170); a record
        of a build that has ended is no build under way (replaced here)."""
        mine: concurrent.futures.Future[None] = concurrent.futures.Future()
        recorded = False
        try:
            with PENDING.lock:
                running = self.pending.get(pending)
                if running is not None and not running.done():
                    return running  # type: ignore[no-any-return]
                hit = self.variants.get(key)
                if hit is not None:
                    return hit
                recorded = True  # before the record: interrupted after it, ended below
                self.pending[pending] = mine
            ctx = self.build_variant(base, alpn)
        except BaseException as exc:
            if recorded:
                # The store's fault is every waiter's; this thread's interruption is not.
                mine.set_exception(exc if isinstance(exc, Exception) else BuildAbandoned())
                self._unrecord(pending, mine)
            raise
        mine.set_result(None)
        self._unrecord(pending, mine)
        return ctx

    def _unrecord(
        self,
        pending: tuple[int, tuple[bool, tuple[str, ...]]],
        mine: concurrent.futures.Future[None],
    ) -> None:
        with PENDING.lock:
            if self.pending.get(pending) is mine:
                del self.pending[pending]

    def build_variant(self, base: ssl.SSLContext, alpn: tuple[str, ...]) -> ssl.SSLContext:
        """Build the ``alpn`` variant of ``base`` and keep it (the first kept wins),
        whatever else is building it: :meth:`with_alpn` is the one to call (one build
        at a time); this is what a build in its name runs."""
        local = base is self.localhost_context
        if not all(isinstance(name, str) for name in alpn):
            raise TypeError(f'alpn: protocol names are str ("h2"), not {list(alpn)!r}')
        ctx = self.make(local)
        try:
            ctx.set_alpn_protocols(list(alpn))  # before anyone else sees it
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(
                f"alpn: each protocol is a name of 1 to 255 bytes, not {list(alpn)!r}"
            ) from exc
        return self.variants.setdefault((local, alpn), ctx)


class _Pending:
    """The one lock over every :attr:`Served.pending` (a lookup's thread's builds, and
    mtls.integrations._pools.build_once's: one lock, or one side's iteration races the
    other's writes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


PENDING = _Pending()
renew_attributes_after_fork(PENDING, "lock")  # one held at a fork is never released there


class BuildAbandoned(Exception):
    """A build others waited for ended without a context and without an error of its
    own (Ctrl-C or SIGTERM in its thread, which is that thread's alone): a waiter
    builds the context itself."""


class NotBuilt(Exception):
    """A lookup that must not build (on an event loop's thread) found that the context
    it would return is not built yet: ``served.with_alpn(base, alpn)`` builds it."""

    def __init__(self, served: Served, base: ssl.SSLContext, alpn: tuple[str, ...]) -> None:
        super().__init__("the context is not built yet")
        self.served = served
        self.base = base
        self.alpn = alpn

    @property
    def key(self) -> tuple[bool, tuple[str, ...]]:
        """The variant's key in ``served.variants``."""
        return (self.base is self.served.localhost_context, self.alpn)

    def build(self) -> ssl.SSLContext:
        """Build (or find) the context, on the caller's thread: the build the async
        integrations' builders run in :attr:`Served.pending`'s name (never waiting on
        that entry: it is their own)."""
        return self.served.variants.get(self.key) or self.served.build_variant(self.base, self.alpn)


# --------------------------------------------------------------------------- the builder


class KeptIdentity(Exception):
    """A build that set a refused replacement aside and applied the rest: ``served``
    is the identity in service with what else changed (a truststore, CRLs), or a new
    identity with the truststore in service (one that would verify nothing was
    refused); ``error`` says what was not installed."""

    def __init__(self, served: Served, error: MTLSError) -> None:
        super().__init__(str(error))
        self.served = served
        self.error = error


class _Unusable(Exception):
    """A new store loaded but cannot be used: a keystore with no usable key entry or a
    key OpenSSL refuses, a truststore with a certificate OpenSSL will not take.
    :meth:`Builder.build` builds again with that store as in service, as if it had not
    loaded (the other store's change still goes in)."""

    def __init__(self, role: StoreRole, error: MTLSError) -> None:
        super().__init__(str(error))
        self.role = role
        self.error = error


@dataclass(frozen=True, slots=True)
class Options:
    """Set-wide options that shape every context."""

    hostname_verifier: HostnameVerifier
    default_truststore: StoreConfig | None
    settle_delay: float
    path: str | None  # the profile file, for messages
    revocation: RevocationChecker | None = None  # the set's online check (one cache)
    # What the keystore's certificate is presented as: "client" (a profile set's),
    # or "server" (gRPC's server_credentials): what its key usages must allow.
    identity: Literal["client", "server"] = "client"
    # How close to its end a context build warns of the identity (the set's expiry
    # thresholds, as _context.WarnExpiry takes them); None: expiry_warnings=(), never.
    expiry_warning: WarnExpiry = EXPIRY_WARNINGS


_Leaf = tuple[str | None, _dt.datetime | None, _dt.datetime | None, int | None]

#: A material's contexts: the set's, the localhost variant (DefaultAndLocalhost), and the
#: ALPN variants and variant builds in flight (see :attr:`Served.variants`).
_Contexts = tuple[
    ssl.SSLContext,
    ssl.SSLContext | None,
    dict[tuple[bool, tuple[str, ...]], ssl.SSLContext],
    dict[tuple[int, tuple[bool, tuple[str, ...]]], Any],
]


def _rechoose_due(store: Keystore | Truststore) -> bool:
    """Whether the bytes ``store`` was read from give a key another certificate now
    (:attr:`Keystore._rechoose_at` has passed)."""
    when = store._rechoose_at
    return when is not None and when <= _dt.datetime.now(_dt.UTC)


class Builder:
    """Builds :class:`Served` material for profiles, with content-keyed caches of
    stores and contexts that live from one check to the next.

    Each check calls :meth:`begin` with its reading, then :meth:`build` for the
    profiles it rebuilds, then :meth:`end` with every material the new snapshot
    serves, which drops what neither the check nor the snapshot uses.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        # content-keyed caches: (role, sha256, passwords, type) -> (store, fingerprint)
        self._stores: dict[tuple[Any, ...], tuple[Keystore | Truststore, str]] = {}
        self._failed: dict[tuple[Any, ...], MTLSError] = {}  # same key: same error, no re-parse
        self._leaves: dict[tuple[str, str | None], _Leaf] = {}
        # What was warned of once: (keystore fingerprint, alias) at a first load,
        # (certificate fingerprint, role, "usage") for a usage some peers refuse, and
        # (truststore, its anchors' fingerprint, "withdrawal") for a trust withdrawal.
        self._early_warned: set[tuple[str | None, ...]] = set()
        # Certificate records by store content, parsed on first use and shared by every
        # Served made from that store (a 144-anchor truststore behind 1,000 keystores is
        # parsed once, not 1,000 times): (role, fingerprint, alias) -> records.
        self._infos: dict[tuple[str, str, str | None], Callable[[], tuple[AnchorInfo, ...]]] = {}
        # ctx_key -> the contexts (the set's, the localhost variant) and their ALPN
        # variants (and the variant builds in flight): every Served of that material
        # hands out the same objects, whatever profile or file it is for.
        self._contexts: dict[tuple[Any, ...], _Contexts] = {}
        # id(context) -> its key in _contexts: what end() keeps, without a scan.
        self._key_of: dict[int, tuple[Any, ...]] = {}
        self._used_stores: set[tuple[Any, ...]] = set()
        self._used_contexts: set[tuple[Any, ...]] = set()
        self._reading: Reading | None = None
        # One Path object per distinct file (those of watched()): the check's lookups
        # by path then match by identity instead of comparing equal Paths.
        self._paths: dict[Path, Path] = {}
        # One Served per material in a check: 1,000 profiles on the same stores share it.
        self._served: dict[tuple[Any, ...], Served] = {}
        # What build() returned in this check, by the configurations it was given: by
        # identity (profiles made in code share their StoreConfig objects), then by
        # value (a profile file gives each profile its own, equal, objects).
        self._by_id: dict[tuple[Any, ...], Served | KeptIdentity] = {}
        self._by_value: dict[tuple[Any, ...], Served | KeptIdentity] = {}
        # CRL file digest -> its earliest nextUpdate (inputs_moved rebuilds a profile
        # whose list expired); bounded, oldest first out.
        self._crl_expiry: dict[str, _dt.datetime | None] = {}
        # Keystore file digest -> when its bytes give a key another certificate
        # (Keystore._rechoose_at): inputs_moved rebuilds its profiles then; bounded,
        # oldest first out, as _crl_expiry.
        self._rechoose: dict[str, _dt.datetime] = {}
        # Those due when the check began: every material read from them is rebuilt in
        # it (the first to read a file again moves its moment on, h243).
        self._rechoose_now: frozenset[str] = frozenset()
        # The checked CRL sets, by the files' contents and the truststore's (see _crls).
        self._crl_checked: dict[tuple[Any, ...], Any] = {}
        # A first load's big truststore, its anchors being loaded on a thread while the
        # profile file is parsed (anchors_ahead); taken by the first build of them.
        self._ahead: AnchorsAhead | None = None

    @property
    def reading(self) -> Reading:
        assert self._reading is not None, "begin() first"
        return self._reading

    def begin(self, reading: Reading) -> None:
        """Start a check that reads through ``reading``: stores and contexts it does
        not use by :meth:`end` are dropped."""
        self._used_stores = set()
        self._used_contexts = set()
        self._served = {}
        self._by_id = {}
        self._by_value = {}
        self._reading = reading
        self._ahead = None
        now = _dt.datetime.now(_dt.UTC)
        self._rechoose_now = frozenset(d for d, when in self._rechoose.items() if when <= now)

    def end(self, live: Iterable[Served]) -> None:
        """Drop cache entries the new snapshot does not use.

        Args:
            live: every material the new snapshot serves (carried over or built): their
                contexts stay cached, so that a profile built later from the same
                content shares them.
        """
        used = self._used_contexts
        key_of = self._key_of
        crl_digests: set[str] = set()
        for served in live:
            key = key_of.get(id(served.context))
            if key is not None:
                used.add(key)
            crl_digests.update(digest for kind, _, digest in served.inputs if kind == "crl")
        # Checked CRL sets (with their watch records) of contents no material uses now:
        # a list rotated hourly must not keep every old one (each can be megabytes).
        for crl_key in [k for k in self._crl_checked if any(d not in crl_digests for _, d in k[0])]:
            del self._crl_checked[crl_key]
        for key in set(self._stores) - self._used_stores:
            del self._stores[key]
        for key in [k for k in self._failed if k not in self._used_stores]:
            del self._failed[key]
        for failed in self._failed.values():
            # Raised again at the next check: its frames (the check's locals, the file's
            # bytes, the material in service) are not kept meanwhile (h218).
            failed.__traceback__ = None
        for key in set(self._contexts) - used:
            del key_of[id(self._contexts.pop(key)[0])]
        live_stores = {fp for _, fp in self._stores.values()}
        live_stores.update(key[1] for key in self._stores)  # their files' digests
        for leaf_key in [k for k in self._leaves if k[0] not in live_stores]:
            del self._leaves[leaf_key]
        for info_key in [k for k in self._infos if k[1] not in live_stores]:
            del self._infos[info_key]
        if len(self._early_warned) > WARNED_AT_MOST:
            # One key per certificate ever rotated in (a usage warning each): bounded
            # as the process-wide warn-once sets are; what is still true may be said again.
            self._early_warned.clear()
        self._reading = None
        self._served, self._by_id, self._by_value = {}, {}, {}
        self.drop_ahead()

    def drop_ahead(self) -> None:
        """End what :meth:`anchors_ahead` started, taken or not (waits for its thread)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.close()

    def anchors_ahead(self, profile: SSLProfile) -> None:
        """At a first load, as soon as the profile file's first profile is parsed:
        load its truststore now (kept for the build, as any store is), and when it is
        big enough for OpenSSL to read with the GIL released, start loading its
        anchors into a context on a thread (:class:`AnchorsAhead`), so that the rest
        of the file is parsed meanwhile. Reads no file that would need a settle wait
        (one written between that look and the read still costs it), and raises only
        :class:`Interrupted` (``close()``): anything else in the way leaves the build
        to do it all, and to report it, as without. :meth:`drop_ahead` ends it."""
        config = trust_for(profile, self.options.default_truststore)
        if self._ahead is not None or config is None or self._reading is None:
            return  # (none: nothing verified, no anchors to load)
        try:
            location = config.location
            if (
                os.stat(location).st_size <= GIL_FREE_ANCHOR_BYTES
                or not memfd_available()
                or not self.reading.quiet(location)
            ):
                return
            truststore, _ = self._load(config, False, [])
        except Interrupted:
            raise
        except Exception:  # the build meets it again, and reports it
            return
        if not isinstance(truststore, Truststore):
            return
        anchors = truststore.anchors_der
        if sum(map(len, anchors)) > GIL_FREE_ANCHOR_BYTES and len(anchors) <= MAX_TRUST_ANCHORS:
            try:
                self._ahead = AnchorsAhead(anchors)
            except (OSError, RuntimeError):
                return  # no descriptor, memory or thread to spare: the build loads them

    def _load(
        self, config: StoreConfig, keystore: bool, files: list[tuple[str, Path, str]]
    ) -> tuple[Keystore | Truststore, str]:
        role: StoreRole = "keystore" if keystore else "truststore"
        location = self._paths.get(config.location, config.location)
        # Everything that decides how the bytes are read is in the key (allow_unprotected
        # too: one profile's opt-out must never let another's PEM through), and the path:
        # a store and its errors name the file they were read from (a copy of another
        # profile's file with a wrong <KeyAlias> was said to be that file, h218).
        how = (config.password, config.key_password, config.type, config.allow_unprotected)
        data: bytes | None = None
        # A file the survey found unchanged has its hash without a read: a store
        # cached by content is not read again (a rebuild of 1,000 profiles after a
        # shared truststore moved read each of their keystores).
        digest = self.reading.known(location)
        if digest is None or (
            (role, digest, *how, config.location) not in self._stores
            and (role, digest, *how, config.location) not in self._failed
        ):
            try:
                data, digest = self.reading.read(location)
            except OSError as exc:
                # One translation for every way a store is opened (KeystoreNotFoundError
                # when missing); never chained: the OSError names a placeholder's value.
                raise store_open_error(config, role, exc) from None
        files.append((role, location, digest))
        key = (role, digest, *how, config.location)
        self._used_stores.add(key)
        failed = self._failed.get(key)
        if failed is not None:
            # The same bytes with the same passwords failed before: say so again without
            # paying for the parse (a hostile PKCS#12 can cost seconds of KDF per try).
            raise failed.with_traceback(None)
        cached = self._stores.get(key)
        if cached is not None and _rechoose_due(cached[0]):
            # The same bytes give the key another certificate now (its own expired,
            # a renewal staged in the file became valid): read them again.
            cached = None
            if data is None:
                data, digest = self.reading.read(location)
        if cached is None:
            assert data is not None  # read above: the key was not cached
            try:
                store = load_store(config, role, data=data, purpose=self.options.identity)
            except MTLSError as exc:
                self._failed[key] = by_content(exc)  # the same bytes fail the same
                raise
            cached = (store, store.fingerprint)
            self._stores[key] = cached
            self._say_java_notes(config, store, digest)
            self._rechoose.pop(digest, None)
            if store._rechoose_at is not None:
                # Kept across checks (the store cache is not): bounded, oldest out.
                self._rechoose[digest] = store._rechoose_at
                while len(self._rechoose) > _CRL_EXPIRY_KEPT:
                    del self._rechoose[next(iter(self._rechoose))]
        return cached

    def _say_java_notes(
        self, config: StoreConfig, store: Keystore | Truststore, digest: str
    ) -> None:
        """Warn, once per file content, of what WSO2's gateway (Java) reads otherwise in a
        store a profile file or deployment.toml names (a PKCS#12 truststore without
        Java's trust attribute: no anchor in Java; PBMAC1; a cipher the JDK refuses): only
        ``mtls check`` said so, and a set that worked here failed in the gateway (h254).
        Not for profiles made in code, which WSO2 never reads."""
        notes = store._java_notes
        said = ("java-notes", str(config.location), digest)
        if not notes or self.options.path is None or said in self._early_warned:
            return
        self._early_warned.add(said)
        for note in notes:
            log.warning(
                "%s: %s: %s",
                self.options.path,
                config.shown_location,
                note,
                extra=STORE_JAVA_NOTE,
            )

    def _leaf(self, profile: SSLProfile, keystore: Keystore, key_fp: str) -> _Leaf:
        alias = profile.keystore.alias if profile.keystore else None
        leaf_info = self._leaves.get((key_fp, alias))
        if leaf_info is not None:
            return leaf_info
        try:
            _, _, chain = keystore.key_entry(alias)
        except KeyEntryError as exc:
            written = profile.keystore.written_alias if profile.keystore else None
            origin = profile.keystore.origin if profile.keystore else None
            if written is None and origin is not None:
                # From deployment.toml, where WSO2's sender reads no alias at all.
                if alias is not None:
                    raise by_content(with_more(exc, _NO_SENDER_ALIAS)) from None
                if len(keystore.key_aliases) > 1:
                    raise by_content(
                        with_more(exc, f" (in deployment.toml: an alias beside {origin}){_PICKS}")
                    ) from None
            if written is None and alias is None and len(keystore.key_aliases) > 1:
                # A profile file's <KeyStore>, or a StoreConfig made in code.
                raise by_content(
                    with_more(
                        exc,
                        " (StoreConfig(alias=...)), or in a profile file "
                        f"<KeyAlias>{keystore.key_aliases[0]}</KeyAlias> in the <KeyStore> "
                        f"(an mtls extension){_PICKS}",
                    )
                ) from None
            if written is None:
                by_content(exc)  # the store holds no such entry
                raise
            # The alias came from a placeholder: name it as written, not its value, and
            # as the setting it is (deployment.toml's alias was called a <KeyAlias>, h282).
            shown = profile.keystore.shown_location if profile.keystore else ""
            if origin is None:
                raise by_content(
                    KeyEntryError(
                        f"{shown}: <KeyAlias>{written}</KeyAlias> names no usable key "
                        "entry: check the variable or property it names",
                        path=exc.path,
                    )
                ) from None
            entries = ", ".join(repr(a) for a in keystore.key_aliases) or "none"
            raise by_content(
                KeyEntryError(
                    f'{shown}: alias = "{written}" beside {origin} names no usable key '
                    f"entry (key entries: {entries}): check the variable or property it "
                    f"names{_NO_SENDER_ALIAS}",
                    path=exc.path,
                )
            ) from None
        try:
            leaf = _x509.load_cert(chain[0])
            leaf_info = (
                _x509.subject_text(leaf),
                _dates.not_before(leaf),
                _dates.not_after(leaf),
                _x509.serial_number(leaf),
            )
        except ValueError:
            # OpenSSL takes it, cryptography does not (JDK 17 writes DSA certificates
            # with trailing bytes in the signature algorithm; old CAs wrote validity
            # times without seconds): serve it, with what our own walk of its DER reads
            # (an expired one is refused like any other).
            leaf_info = _x509.lenient_leaf_info(chain[0])
        self._leaves[(key_fp, alias)] = leaf_info
        return leaf_info

    def build(
        self,
        profile: SSLProfile,
        *,
        replacing: bool,
        serving: Served | None = None,
        lent: bool = False,
    ) -> Served:
        """Load a profile's stores and build (or reuse) its contexts.

        Profiles with the same stores and options get the very same :class:`Served`
        within a check, at the cost of a lookup. ``serving``: the profile's material in
        service, when this build would replace it. ``lent``: ``serving`` is another
        profile's (this one is new, and shares its keystore). It stands in only to
        refuse a certificate not valid yet; a store that does not load, or a
        truststore refused, fails this profile: it never had material to keep.

        A replacement certificate peers would refuse (expired, not valid yet) is not
        installed; the certificate in service is never judged again. When the keystore
        is refused and something else changed (the truststore, CRLs), the identity in
        service is built with the rest: :class:`KeptIdentity` carries that material
        and the refusal (a pre-staged certificate must not hold back a trust change).

        Raises:
            MTLSError: a store does not load, or the material fails validation.
            KeptIdentity: the keystore was refused, the rest applied (see above).
            Unstable: a file changed between two reads; try again next check.
            Interrupted: ``close()`` was called.
        """
        # novalidatecert applies only without a truststore: a given TrustStore wins (WSO2).
        verify = not (profile.novalidatecert and profile.truststore is None)
        trust_config = trust_for(profile, self.options.default_truststore)
        crls = (profile.crls, profile.crl_check)
        in_service = None if serving is None else self._key_of.get(id(serving.context))
        # What else tells definitions apart rides along, so that each definition given
        # this material passes below once per check and is recorded on it.
        by_id = (
            id(profile.keystore),
            id(trust_config),
            verify,
            replacing,
            crls,
            in_service,
            profile.novalidatecert,
            profile.client_id,
            profile.truststore is None,
            lent,
        )
        found = self._by_id.get(by_id)
        if found is None:
            by_value = (profile.keystore, trust_config, verify, replacing, crls, in_service, lent)
            found = self._by_value.get(by_value)
            if found is None:
                unusable: dict[StoreRole, MTLSError] = {}
                while True:  # at most three passes: each store is found unusable once
                    try:
                        found = self._build(
                            profile,
                            trust_config,
                            verify,
                            replacing=replacing,
                            serving=serving,
                            unusable=unusable,
                            lent=lent,
                        )
                    except _Unusable as exc:
                        if exc.role in unusable:  # cannot happen; never loop on it
                            raise exc.error from None
                        unusable[exc.role] = exc.error
                        continue
                    except KeptIdentity as kept:
                        found = kept  # shared like a Served: built (and CRLs read) once
                    except (
                        MTLSError,
                        Unstable,
                        Interrupted,
                        # The process's, not this profile's: the whole check fails and
                        # is retried, as before (h267).
                        MemoryError,
                        concurrent.futures.CancelledError,
                    ):
                        raise
                    except Exception as exc:
                        # What no check foresaw (a dependency's own error on a file
                        # nobody has met): this profile's error, never the whole
                        # check's: a set whose reload failed as a whole rotated no other
                        # profile either (h265). Made fit to keep first, as the engine
                        # keeps a failed check's: its frames' locals cleared, a codec
                        # error's input (a password?) dropped before it is put in words.
                        kept_escape(exc)
                        # Once per profile and error while it lasts (it is retried at
                        # every check): the profile's error says it each time.
                        said = ("unexpected", str(profile), type(exc).__name__, str(exc))
                        if said not in self._early_warned:
                            self._early_warned.add(said)
                            log.error(
                                "%s: unexpected %s while building the contexts of %s "
                                "(please report it, with this traceback)",
                                self.options.path or "profiles",
                                type(exc).__name__,
                                profile,
                                exc_info=exc,
                            )
                        raise MTLSError(
                            f"unexpected {type(exc).__name__} while building this "
                            f"profile's contexts: {exc} (in a running set it keeps its "
                            "last good material; please report it: the traceback is "
                            "logged)"
                        ).with_traceback(None) from exc
                    break
                self._by_value[by_value] = found
            # Both configurations are held by the check's profiles: their ids stay theirs.
            self._by_id[by_id] = found
            if not isinstance(found, KeptIdentity):
                # Material made for this definition. A kept identity is not: it presents
                # the certificate in service, which this definition no longer names.
                found.definitions.add(material_definition(profile))
        if isinstance(found, KeptIdentity):
            raise found.with_traceback(None)
        return found

    def _build(
        self,
        profile: SSLProfile,
        trust_config: StoreConfig | None,
        verify: bool,
        *,
        replacing: bool,
        serving: Served | None = None,
        unusable: Mapping[StoreRole, MTLSError] | None = None,
        lent: bool = False,
    ) -> Served:
        files: list[tuple[str, Path, str]] = []  # (role, path, sha256)
        alias = profile.keystore.alias if profile.keystore else None
        in_service = None if serving is None else self._key_of.get(id(serving.context))
        refusal: MTLSError | None = None
        kept_shown: str | None = None  # the kept keystore's path as its material shows it
        keystore: Keystore | Truststore | None = None
        key_fp: str | None = None
        can_keep = (
            replacing
            and serving is not None
            and serving.keystore is not None
            and in_service is not None
            and in_service[1] == alias
            and not lent  # another profile's identity is judged, never lent on failure
        )
        if profile.keystore:
            try:
                keystore, key_fp = self._load(profile.keystore, True, files)
                if unusable and "keystore" in unusable:
                    raise unusable["keystore"]  # it loaded, failed further on: as if not
            except MTLSError as exc:
                # A replacement that does not load (gone, damaged, another password) is
                # judged apart, as one peers would refuse: the identity in service goes
                # on with whatever else changed (a trust withdrawal must not wait).
                if not can_keep:
                    raise
                assert serving is not None
                assert in_service is not None
                refusal = exc
                keystore, key_fp = serving.keystore, in_service[0]
                kept_shown = next((f[1] for f in serving.files if f[0] == "keystore"), None)
                # The file in service, in place of the refused one _load recorded.
                files[:] = [f for f in files if f[0] != "keystore"]
                files.append(next(i for i in serving.inputs if i[0] == "keystore"))
        truststore: Keystore | Truststore | None = None
        trust_fp: str | None = None
        trust_refusal: MTLSError | None = None

        def trust_gives_way() -> bool:
            """Whether a refused new truststore gives way to the one in service: when
            the identity is new (read as it stands when asked), it goes in with the
            trust in service; when nothing else is new, the refusal stands."""
            return (
                replacing
                and not lent
                and serving is not None
                and serving.truststore is not None
                and in_service is not None
                and in_service[:2] != (key_fp, alias)
            )

        if trust_config:
            try:
                truststore, trust_fp = self._load(trust_config, False, files)
                if unusable and "truststore" in unusable:
                    raise unusable["truststore"]  # as if it had not loaded
            except MTLSError as exc:
                # The other way round: a new identity goes in with the trust in service.
                if not trust_gives_way():
                    if refusal is None:
                        raise
                    raise _reported(refusal, exc) from None  # both refused: say both
                assert serving is not None
                assert in_service is not None
                trust_refusal = exc
                truststore, trust_fp = serving.truststore, in_service[2]
                files[:] = [f for f in files if f[0] != "truststore"]
                files.append(next(i for i in serving.inputs if i[0] == "truststore"))
        assert keystore is None or isinstance(keystore, Keystore)
        assert truststore is None or isinstance(truststore, Truststore)
        subject, not_before, not_after, serial = None, None, None, None
        new_key = refusal is None and (in_service is None or in_service[:2] != (key_fp, alias))
        if keystore is not None and key_fp is not None:
            try:
                subject, not_before, not_after, serial = self._leaf(profile, keystore, key_fp)
            except MTLSError as exc:
                if new_key and can_keep:
                    raise _Unusable("keystore", exc) from None
                raise
            if not replacing:
                self._warn_first_load(
                    profile, keystore, key_fp, alias, subject=subject, not_before=not_before
                )
            # Every replacement is checked, cached leaf or not; the identity in service
            # is not (one that expired while served keeps serving, and says so).
            if replacing and (in_service is None or in_service[:2] != (key_fp, alias)):
                where = profile.keystore.shown_location if profile.keystore else ""
                chain = keystore.key_entry(alias)[2]
                served_chain = (
                    serving.keystore.key_entry(alias)[2]
                    if serving is not None and serving.keystore is not None and can_keep
                    else None
                )
                refused = (
                    validity_refusal(subject, not_before, not_after, where)
                    or chain_refusal(chain, where)
                    or lost_issuer_refusal(  # only PEM is written a certificate at a time
                        chain, served_chain if keystore.store_type == "PEM" else None, where
                    )
                    or self_signed_refusal(chain, served_chain, where)
                    or purpose_refusal(chain[0], subject, where, self.options.identity)
                )
                if refused is None:
                    self._warn_key_usage(where, chain[0], subject)
                else:
                    if (
                        serving is None
                        or serving.keystore is None
                        or in_service is None
                        or in_service[1] != alias
                    ):
                        raise refused[0]  # not cached: the next check looks again
                    refusal = refused[0]
                    keystore, key_fp = serving.keystore, in_service[0]
                    kept_shown = next((f[1] for f in serving.files if f[0] == "keystore"), None)
                    subject, not_after, serial = serving.subject, serving.not_after, serving.serial
                    not_before = serving.not_before
                    files[0] = next((i for i in serving.inputs if i[0] == "keystore"), files[0])
        if not replacing and verify and truststore is not None and trust_config is not None:
            self._warn_anchors_out_of_date(truststore, trust_config.shown_location, trust_fp)
        if (
            replacing
            and verify
            and truststore is not None
            and trust_config is not None
            and (in_service is None or in_service[2] != trust_fp)  # new: judged once
        ):
            trust_refused = anchor_refusal(
                truststore,
                trust_config.shown_location,
                # Its own trust in service: a lent identity is a sibling's, not its trust.
                serving.truststore if serving is not None and not lent else None,
                self._early_warned,
            )
            if trust_refused is not None:
                if not trust_gives_way():
                    raise _reported(refusal, trust_refused[0])
                # Judged apart: the new identity goes in, with the trust in service.
                assert serving is not None
                assert in_service is not None
                trust_refusal = trust_refused[0]
                truststore, trust_fp = serving.truststore, in_service[2]
                kept = next(i for i in serving.inputs if i[0] == "truststore")
                files[:] = [kept if f[0] == "truststore" else f for f in files]
        mode = self.options.hostname_verifier
        if (
            refusal is not None
            and serving is not None
            and self._rest_unchanged(profile, serving, (trust_fp, verify, mode))
        ):
            # Nothing else changed: what is in service stays.
            raise KeptIdentity(serving, _reported(refusal, trust_refusal))
        # A new truststore goes in even when a CRL file vouches for a CA it withdrew:
        # that list is left out (reported), never the withdrawal held back by it.
        trust_replaced = (
            in_service is not None and truststore is not None and (in_service[2] != trust_fp)
        )
        crls, crl_key, crls_left_out, crl_infos = self._crls(
            profile, files, truststore, trust_fp, trust_replaced=replacing and trust_replaced
        )
        ctx_key = (key_fp, alias, trust_fp, verify, mode, crl_key)
        self.reading.checkpoint()  # a safe point before building a context
        self._used_contexts.add(ctx_key)

        def make(local: bool, anchored: ssl.SSLContext | None = None) -> ssl.SSLContext:
            ctx = build_client_context(
                keystore,
                truststore,
                alias=alias,
                hostname_verifier="AllowAll" if local else mode,
                verify=verify,
                crls=crls or None,
                crl_check=profile.crl_check,
                revocation=self.options.revocation,
                anchored=anchored,
                # At the set's thresholds (expiry_warnings=() turns it off), as its watch.
                warn_expiry=self.options.expiry_warning,
            )
            if crls is not None and not crls:
                # Every list was left out (their CAs withdrawn): CRL checking stays on,
                # with no list, so every handshake fails closed until one is given.
                ctx.verify_flags |= _CRL_FLAGS[profile.crl_check]
            return ctx

        # A new truststore OpenSSL refuses gives way as one that does not load (above).
        can_keep_trust = in_service is not None and in_service[2] != trust_fp and trust_gives_way()
        pair = self._contexts.get(ctx_key)
        if pair is None:
            if not verify:
                log.warning(
                    '%s: %s has novalidatecert="true" and no TrustStore: the backend\'s '
                    "certificate is NOT verified",
                    self.options.path or "profiles",
                    profile,
                )
            ahead = self._ahead
            anchored = (
                ahead.take(truststore.anchors_der)
                if ahead is not None and truststore is not None and verify
                else None
            )
            try:
                main = make(False, anchored)
            except MTLSError as exc:
                # Judged apart when the other store changed too (a broken keystore must
                # not hold back a trust withdrawal, nor a truststore a new identity).
                at_fault = store_at_fault(exc)
                if at_fault is not None:
                    by_content(exc)  # OpenSSL refused what the store holds
                if at_fault == "keystore" and new_key and can_keep:
                    raise _Unusable("keystore", exc) from None
                if at_fault == "truststore" and can_keep_trust:
                    raise _Unusable("truststore", exc) from None
                if refusal is not None and at_fault == "truststore":
                    raise _reported(refusal, exc) from None  # the keystore set aside too
                raise
            local = make(True) if mode == "DefaultAndLocalhost" and verify else None
            pair = (main, local, {}, {})
            self._contexts[ctx_key] = pair
            self._key_of[id(main)] = ctx_key
        served_key = (ctx_key, tuple(files))  # the same material read from the same files
        served = self._served.get(served_key)
        if served is None:
            pem = functools.cache(
                functools.partial(
                    tls_material,
                    keystore,
                    truststore,
                    alias,
                    verify=verify,
                    hostname_verifier=mode,
                    subject=subject,
                )
            )
            # Paths as configured: one made from placeholders is shown as written, never
            # as its value (status(), metrics and logs read these).
            shown = {c.location: c.shown_location for c in (profile.keystore, trust_config) if c}
            if kept_shown is not None:
                shown[files[0][1]] = kept_shown
            served = Served(
                pair[0],
                pair[1],
                tuple((role, shown.get(path, str(path)), digest) for role, path, digest in files),
                subject,
                not_after,
                _dt.datetime.now(_dt.UTC),
                make,
                pem,
                serial,
                # By the file's bytes, not the anchors' fingerprint: two truststores of the
                # same certificates under other aliases show their own (h218).
                self._info(
                    "anchors",
                    next((d for r, _, d in files if r == "truststore"), trust_fp),
                    None,
                    lambda: _anchor_infos(truststore),
                ),
                chain=self._info("chain", key_fp, alias, lambda: _chain_infos(keystore, alias)),
                crl_infos=crl_infos,
                inputs=tuple(files),
                keystore=keystore,
                truststore=truststore,
                not_before=not_before,
                # The material's, not this Served's: an edit that changes no material
                # (a profile renamed, a store moved to a copy of the same bytes) hands
                # out the very variants clients hold and pool by, not new ones (which
                # cost a build each and left the clients' old pools open, no generation
                # having changed to retire them).
                variants=pair[2],
                pending=pair[3],
            )
            self._served[served_key] = served
            if serving is not None and serving.variants is not served.variants:
                # The ALPN variants the material in service was asked for, made here on
                # the reload's thread before the snapshot is published: the first lookup
                # after a rotation, often on an event loop, then builds nothing (with a
                # 146-anchor truststore each variant is a 21 ms stall of that loop).
                # A warm-up, never a veto: a variant that fails here (its base was just
                # built from the same inputs) is built by the first lookup instead.
                for for_localhost, protocols in list(serving.variants):
                    base = served.localhost_context if for_localhost else served.context
                    try:
                        if base is not None:
                            served.with_alpn(base, protocols)
                    except Exception:
                        log.debug(
                            "ALPN variant %s of %s left to its first lookup",
                            protocols,
                            served.subject,
                            exc_info=True,
                        )
        if refusal is not None or trust_refusal is not None:
            # What was refused set aside, the rest applied: reported, not installed.
            error = _reported(refusal, trust_refusal)
            if crls_left_out is not None:
                error = together(error, crls_left_out, "CRL file")
            raise KeptIdentity(served, error)
        if crls_left_out is not None:
            # The new truststore is in service; the lists it left without a signer are
            # reported (and, like every CRL problem, looked at again at each check).
            raise KeptIdentity(served, crls_left_out)
        return served

    def _warn_first_load(
        self,
        profile: SSLProfile,
        keystore: Keystore,
        key_fp: str,
        alias: str | None,
        *,
        subject: str | None,
        not_before: _dt.datetime | None,
    ) -> None:
        """A first load has nothing else to serve, so a certificate peers refuse for
        now (not valid yet) or for good (its extended key usage forbids its role) is
        served (a replacement would be set aside): said once per certificate."""
        key = (key_fp, alias)
        if key in self._early_warned:
            return
        where = profile.keystore.shown_location if profile.keystore else "keystore"
        role = self.options.identity
        peers = "clients" if role == "server" else "servers"
        leaf_dates = self._leaves.get((key_fp, alias))
        ends = leaf_dates[2] if leaf_dates is not None else None
        never = not_before is not None and ends is not None and not_before > ends
        if not_before is not None and not_before > _dt.datetime.now(_dt.UTC) and not never:
            # (A never-valid one is said so by the store's load: not "until then".)
            self._early_warned.add(key)
            log.warning(
                "%s: the certificate (%s) is not valid before %s: %s refuse it until "
                "then (served: nothing else was loaded for it)",
                where,
                subject,
                not_before.isoformat(),
                peers,
            )
        # The chain's records as status() reads them (parsed once per store content).
        chain = self._info("chain", key_fp, alias, lambda: _chain_infos(keystore, alias))
        for index, link in not_valid_yet(chain()):
            if index and link.not_before is not None:  # the leaf's is said above
                self._early_warned.add(key)
                log.warning(
                    "%s: the CA certificate %s of the chain presented with %s is not valid "
                    "before %s: %s refuse the chain until then (served: nothing else was "
                    "loaded for it)",
                    where,
                    link.subject,
                    subject,
                    link.not_before.isoformat(),
                    peers,
                )
        leaf = keystore.key_entry(alias)[2][0]
        refused = _purpose.peers_refuse(leaf, role)
        if refused is not None:
            self._early_warned.add(key)
            log.warning(
                "%s: the certificate (%s) cannot serve as a TLS %s certificate: %s, and %s "
                "(served: nothing else was loaded for it); %s",
                where,
                subject,
                role,
                *refused,
            )
        self._warn_key_usage(where, leaf, subject)

    def _warn_anchors_out_of_date(
        self, truststore: Truststore, where: str, trust_fp: str | None
    ) -> None:
        """A first load has nothing else to serve: a truststore none of whose anchors
        is valid now (OpenSSL refuses every chain ending at one, so it verifies no
        server) is served, and said once per content."""
        key = (where, trust_fp, "anchors out of date")
        if key in self._early_warned:
            return
        refused = anchor_refusal(truststore, where)
        if refused is None:
            return
        self._early_warned.add(key)
        starts = refused[1]
        log.warning(
            "%s: none of the truststore's certificates is valid now%s: OpenSSL refuses "
            "every chain that ends at one, so no peer is verified (served: nothing else "
            "was loaded for it)",
            where,
            f" (the first becomes valid on {starts.isoformat()})" if starts else " (all expired)",
        )

    def _warn_key_usage(self, where: str, leaf: bytes, subject: str | None) -> None:
        """A certificate some peers refuse for its role and others take (a key usage
        Go and rustls do not check, anyExtendedKeyUsage alone) is installed, with a
        warning naming who refuses it. Once per certificate."""
        role = self.options.identity
        found = _purpose.usage_warning(leaf, role)
        key = (_x509.sha256_hex(leaf), role, "usage")
        if found is None or key in self._early_warned:
            return
        self._early_warned.add(key)
        say_usage_warning(found, where, subject, role)

    def _rest_unchanged(
        self, profile: SSLProfile, serving: Served, trust: tuple[object, ...]
    ) -> bool:
        """Whether everything but the keystore is what ``serving`` was built from: the
        truststore, the verification settings, and the CRL files' bytes (hashed, not
        parsed: a refused keystore waiting for its start date must not cost a CRL
        parse per profile per check)."""
        in_service = self._key_of.get(id(serving.context))
        if in_service is None or tuple(in_service[2:5]) != trust:
            return False
        then = [digest for role, _, digest in serving.inputs if role == "crl"]
        try:
            now = [self.reading.digest(self._paths.get(path, path)) for path in profile.crls]
        except OSError:
            return False  # _crls says what is wrong with the file
        return now == then

    def _crls(
        self,
        profile: SSLProfile,
        files: list[tuple[str, Path, str]],
        truststore: Truststore | None,
        trust_fp: str | None,
        *,
        trust_replaced: bool = False,
    ) -> tuple[CRLSet | None, tuple[Any, ...] | None, CRLError | None, tuple[AnchorInfo, ...]]:
        """Read and validate the profile's CRL files (each one more input file of the
        profile), once: contexts made from them later (ALPN variants) do not check
        them again, so a lookup never raises.

        With ``trust_replaced`` (a rotation brought a new truststore), a list that no
        certificate of it signed is left out rather than refused: its CA was withdrawn,
        and a withdrawal must not wait for a CRL file. The third value says which
        (``None``: none); the set may then be empty (checking stays on: see build).
        The fourth: the lists kept, as the expiry watch sees them (:func:`_crl_infos`).

        The files' contents checked against one truststore's (``trust_fp``) are
        checked once, however many profiles use them (a 1 MB list of 40,000 entries
        took 80 ms a profile: its entries' extensions, its signature, its PEM): the
        same contents again get the same checked set, whose dates are checked again
        (a list expires while the contents stay).

        Raises:
            CRLError: a file is missing, unreadable or not a CRL; a list has expired
                or (with a truststore) is not signed by one of its certificates.
            Unstable: a file changed between two reads.
        """
        if not profile.crls:
            return None, None, None, ()
        digests = []
        # With a new truststore, a list that cannot be used is left out, as one it
        # does not sign: the withdrawn CA's list deleted with it must not hold it back.
        leave = truststore is not None and trust_replaced
        unusable: list[tuple[str | None, str]] = []
        contents: list[tuple[Path, bytes, str]] = []
        for given in profile.crls:
            path = self._paths.get(given, given)
            try:
                data, digest = self.reading.read(path)
            except OSError as exc:
                if leave:
                    unusable.append((str(path), f"cannot be read: {exc.strerror}"))
                    continue
                raise unreadable_crl(
                    path, exc, MAX_INPUT_BYTES, "check the profile's crls"
                ) from None
            files.append(("crl", path, digest))
            digests.append(digest)
            contents.append((path, data, digest))
        key = (
            tuple((str(path), digest) for path, _, digest in contents),
            tuple(unusable),
            trust_fp if truststore is not None else None,
            leave,
            profile.crl_check,
        )
        checked = self._crl_checked.get(key)
        if checked is None:
            checked = self._check_crls(profile, contents, unusable, truststore, leave)
            self._crl_checked[key] = checked
            while len(self._crl_checked) > _CRL_SETS_KEPT:
                del self._crl_checked[next(iter(self._crl_checked))]
        crls, left_out, expiries, watched = checked
        for digest, next_update in expiries:
            self._crl_expiry.pop(digest, None)
            self._crl_expiry[digest] = next_update
            while len(self._crl_expiry) > _CRL_EXPIRY_KEPT:
                del self._crl_expiry[next(iter(self._crl_expiry))]
        crls.check_expiry()  # what the contents cannot say: whether they are current now
        return crls, (tuple(digests), profile.crl_check, left_out is not None), left_out, watched

    def _check_crls(
        self,
        profile: SSLProfile,
        contents: list[tuple[Path, bytes, str]],
        unusable: list[tuple[str | None, str]],
        truststore: Truststore | None,
        leave: bool,
    ) -> tuple[CRLSet, CRLError | None, tuple[tuple[str, _dt.datetime | None], ...], Any]:
        """:meth:`_crls`'s work on the files' ``contents``: the checked set, the lists
        left out (an error, or ``None``), each file's earliest nextUpdate, and the
        lists as the expiry watch sees them."""
        crls = CRLSet()
        unusable = list(unusable)
        read: list[tuple[CRLSet, bytes, str]] = []
        expiries: list[tuple[str, _dt.datetime | None]] = []
        for path, data, digest in contents:
            try:
                one = CRLSet.from_bytes(data, path=path)
            except CRLError:
                if not leave:
                    raise
                unusable.append((str(path), "not a CRL that can be read"))
                continue
            expiries.append((digest, one.next_update))
            read.append((one, data, digest))
            crls += one
        left_out: CRLError | None = None
        if truststore is not None and leave:
            crls, others = crls.signed_by(truststore.anchors_der)
            unusable += [
                (path, f"the CRL of {issuer}, signed by no certificate of the new truststore")
                for path, issuer in others
            ]
            if unusable:
                left_out = _crls_left_out(unusable, truststore, len(crls), profile.crl_check)
        if truststore is not None and crls:
            crls.check(truststore.anchors_der)  # client_context will not check again
        elif truststore is None:  # the system's anchors: client_context checks the signers
            crls.check_expiry()
        kept = {id(crl) for crl in crls}
        watched = tuple(
            info
            for one, data, digest in read
            for (crl, _), info in zip(one.lists(), _crl_infos(one, data, digest), strict=True)
            if id(crl) in kept
        )
        return crls, left_out, tuple(expiries), watched

    def _info(
        self,
        role: str,
        fingerprint: str | None,
        alias: str | None,
        parse: Callable[[], tuple[AnchorInfo, ...]],
    ) -> Callable[[], tuple[AnchorInfo, ...]]:
        """``parse``, run on first call and kept, shared by every Served of that store."""
        if fingerprint is None:
            return lambda: ()
        key = (role, fingerprint, alias)
        found = self._infos.get(key)
        if found is None:
            found = self._infos[key] = functools.cache(parse)
        return found

    def inputs_moved(self, served: Served) -> bool:
        """True if any file ``served`` was built from now hashes differently, or one of
        its CRLs has expired.

        Raises:
            Unstable: one of them is still being written.
            Interrupted: ``close()`` was called.
        """
        digest = self.reading.digest
        expiries = self._crl_expiry
        now: _dt.datetime | None = None
        for kind, path, sha256 in served.inputs:
            if kind == "keystore" and sha256 in self._rechoose_now:
                return True  # bytes that give a key another certificate now: read again
            if kind == "crl" and expiries:
                # A CRL whose nextUpdate has passed is an input that moved: the profile
                # is rebuilt, its (unchanged) list refused as expired, and the error
                # reported (status, last_error) while OpenSSL already refuses every
                # handshake.
                expiry = expiries.get(sha256)
                now = now or _dt.datetime.now(_dt.UTC)
                if expiry is not None and expiry <= now:
                    return True
            if digest(path) != sha256:
                return True
        return False

    def due(self) -> frozenset[str]:
        """The digests of the CRL files past their nextUpdate and of the keystore files
        that give a key another certificate now: what :meth:`inputs_moved` rebuilds."""
        now = _dt.datetime.now(_dt.UTC)
        return self._rechoose_now | {
            digest for digest, when in self._crl_expiry.items() if when is not None and when <= now
        }

    def crl_next_update(self, digest: str) -> _dt.datetime | None:
        """The nextUpdate of the CRL file read with ``digest``, when known (status())."""
        return self._crl_expiry.get(digest)

    def renew_at(self, files: Iterable[Files]) -> _dt.datetime | None:
        """The earliest nextUpdate of the CRL files among ``files`` (``Served.files``),
        or moment a keystore among them gives a key another certificate."""
        if not self._crl_expiry and not self._rechoose:
            return None  # no profile uses a CRL or a keystore to choose again: no walk
        dates = [
            expiry
            for each in files
            for kind, _, digest in each
            if (
                expiry := (self._crl_expiry if kind == "crl" else self._rechoose).get(digest)
                if kind in ("crl", "keystore")
                else None
            )
            is not None
        ]
        return min(dates) if dates else None

    def watched(self, profiles: Iterable[SSLProfile], default: SSLProfile | None) -> set[Path]:
        """Every store file the profiles (and the default) reference."""
        # By configuration first (profiles share their StoreConfig objects: a dict keyed
        # by id costs less than hashing a Path per profile), then their locations.
        configs: dict[int, StoreConfig] = {}
        paths: set[Path] = set()
        every = [*profiles, *([default] if default else [])]
        fallback = self.options.default_truststore
        for profile in every:
            keystore, truststore = profile.keystore, trust_for(profile, fallback)
            if keystore is not None:
                configs[id(keystore)] = keystore
            if truststore is not None:
                configs[id(truststore)] = truststore
            if profile.crls:
                paths.update(profile.crls)
        paths.update(config.location for config in configs.values())
        self._paths = {path: path for path in paths}
        return paths


_CRL_EXPIRY_KEPT = 4096
_CRL_SETS_KEPT = 256  # checked CRL sets kept (each holds its parsed lists)


_CRL_FLAGS = {"leaf": ssl.VERIFY_CRL_CHECK_LEAF, "chain": ssl.VERIFY_CRL_CHECK_CHAIN}


def _crls_left_out(
    others: list[tuple[str | None, str]], truststore: Truststore, left: int, check: str
) -> CRLError:
    """What to report when CRL files were left out beside a new truststore: ``others``
    as (file, why)."""
    named = "; ".join(f"{path or 'a CRL'} ({why})" for path, why in others)
    then = (
        "the other lists stay in use"
        if left
        else "no list is left, so CRL checking (crl_check="
        f"'{check}') refuses every handshake of this profile until a CRL of a CA the "
        "truststore holds is given"
    )
    return CRLError(
        f"{named}: left out beside the new truststore {truststore.path or ''} (its CA "
        f"withdrawn?); the new truststore is in service and {then}: remove such files "
        "from the profile's crls, or put the lists of CAs the truststore holds in their "
        "place",
        path=others[0][0],
    )


def _reported(key: MTLSError | None, trust: MTLSError | None) -> MTLSError:
    """The error to report for a rotation's refusals: the keystore's, the truststore's,
    or the keystore's saying the truststore's too (both at once, not one per fix)."""
    if key is None or trust is None:
        error = key or trust
        assert error is not None
        return error
    return together(key, trust, "truststore")
