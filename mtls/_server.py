"""RotatingServerContext: one ``ssl.SSLContext`` for a server, whose identity and
client trust follow the keystore and truststore files.

How it works
------------
A server takes its ``ssl.SSLContext`` once (``asyncio.start_server(ssl=...)``,
aiohttp's ``TCPSite(ssl_context=...)``, uvicorn's ``ssl_context_factory``,
``wrap_socket``). :attr:`RotatingServerContext.context` is that object: it is never
changed after it is handed out. Its ``sni_callback`` runs for every incoming
handshake (OpenSSL calls it whether or not the client sent a name) and switches the
connection to the *current inner context* (``ssl_object.context = inner``, the way
the :mod:`ssl` documentation gives for choosing a context per connection). Inner
contexts are built by :func:`mtls.server_context` and never changed either: a
rotation builds a new one and publishes it in a new snapshot.

The snapshot is kept current by the same :class:`~mtls._engine.Engine` as a profile
set's (content fingerprints, settled reads, keep-last-good, Kubernetes ``..data``
swaps, subscribers, ``close()``); :class:`ServerPlan` is this consumer's plan. A
connection's handshake reads the snapshot reference once; connections already open
keep the context they were switched to.

What the switch carries over (OpenSSL's ``SSL_set_SSL_CTX``): the certificate and
key, and the trust anchors client certificates are verified against, come from the
inner context; settings OpenSSL copies into each connection when it is created come
from the outer context: ``verify_mode``, ``verify_flags``, ``options``,
``minimum_version``/``maximum_version``. Both are made from the same arguments, so
they agree. ALPN is chosen by the inner context's callback: ALPN protocols are given
to the constructor (``alpn_protocols``) and set on every inner context; calling
``set_alpn_protocols`` on :attr:`~RotatingServerContext.context` has no effect (see
docs/servers.md).

No session outlives a trust change: a resumed handshake skips client-certificate
verification, and the outer context (OpenSSL's session context, where tickets are
sealed and TLS 1.2 session IDs are cached) never rotates. Stateless session tickets
are off (``OP_NO_TICKET``) and the outer context's session cache is turned off
(:mod:`mtls._openssl`): the one TLS 1.3 ticket sent after a handshake is stateful, a
session ID in that cache, so it never resumes (it is sent so that clients without
``TCP_NODELAY`` do not wait for a delayed ACK). A resumed session the switch sees
anyway (the context was changed after hand-out) is refused. Where the cache cannot be
turned off (ctypes cannot reach the OpenSSL ``_ssl`` uses: another interpreter or TLS
library, Windows, a build that hides OpenSSL's symbols), no ticket is sent, and a
resumed TLS 1.2 session is refused when it began before the inner context the server
switches to now was first served.
"""

from __future__ import annotations

import datetime as _dt
import os
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from . import _dates, _purpose, _x509
from ._build import _anchor_infos, _chain_infos, _rechoose_due, not_valid_yet
from ._config import StoreConfig, _as_secret
from ._context import EXPIRY_WARNINGS, WarnExpiry, build_server_context, store_at_fault
from ._engine import (
    Callback,
    Engine,
    Outcome,
    Problem,
    _first_line,
    check_seconds,
    close_finalized,
)
from ._errors import KeystoreError, MTLSError, WrongPasswordError, together
from ._fork import renew_attributes_after_fork
from ._health import (
    DEFAULT_EXPIRY_WARNINGS,
    Health,
    HealthCallback,
    HealthEvent,
    InUseCert,
    certificate_in_use,
    expiry_watch,
)
from ._log import first_time, log
from ._openssl import session_cache_off
from ._reading import Reading, Unstable
from ._refusals import (
    anchor_refusal,
    chain_refusal,
    lost_issuer_refusal,
    purpose_refusal,
    say_usage_warning,
    self_signed_refusal,
    validity_refusal,
)
from ._secret import Secret, scrub_tracebacks
from ._status import (
    AnchorStatus,
    FileStatus,
    IdentityStatus,
    anchor,
    anchor_dates,
    identity,
    refusal,
)
from ._stores import Keystore, StoreRole, Truststore, load_store, store_open_error
from ._types import hex_serial

#: What a chained SNI callback is: ``(ssl_object, server_name, context) -> alert or None``.
SNICallback = Callable[[Any, str | None, ssl.SSLContext], int | None]


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """What a :class:`RotatingServerContext` serves, immutable; replaced whole.

    It satisfies :class:`mtls._engine.Published`.
    """

    generation: int
    context: ssl.SSLContext  # the inner context new handshakes are switched to
    files: tuple[tuple[str, str, str], ...]  # (role, path as shown, sha256)
    subject: str | None
    serial: int | None
    not_after: _dt.datetime | None
    keystore: Keystore = field(repr=False)
    truststore: Truststore = field(repr=False)
    # Another context from the same material, never one handed out (the outer context).
    make: Callable[[], ssl.SSLContext] = field(repr=False, compare=False)
    watched: tuple[Path, ...]
    loaded_at: _dt.datetime
    changed_at: _dt.datetime
    error: MTLSError | None = None
    pending: bool = False
    # When the keystore's bytes give the key another certificate (one staged in the
    # file becomes valid, the one in service expires): the engine checks then.
    renew_at: _dt.datetime | None = None

    @property
    def errors(self) -> tuple[MTLSError, ...]:
        """The last check's error, if any (the material served is the last good)."""
        return (self.error,) if self.error is not None else ()


@dataclass(frozen=True, slots=True)
class _Settings:
    """Everything that shapes an inner context, besides the files."""

    keystore: StoreConfig
    truststore: StoreConfig
    require_client_cert: bool
    minimum_version: ssl.TLSVersion
    ciphers: str | None
    alpn_protocols: tuple[str, ...] | None
    # How close to its end a build warns of the certificate (the expiry_warnings, as
    # _context.WarnExpiry takes them; None: never): the watch says the rest.
    expiry_warning: WarnExpiry = EXPIRY_WARNINGS


class ServerPlan:
    """How a rotating server context's snapshots are made from its two files: the
    :class:`~mtls._engine.Plan` of :class:`RotatingServerContext`.

    Thread-free: the engine calls it under its lock, one check at a time.
    """

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self.where = settings.keystore.shown_location
        self.watched = tuple(sorted({settings.keystore.location, settings.truststore.location}))
        # The last replacement that failed to build: not parsed again while it lasts.
        self._failed: _Failure | None = None

    def _read(self, reading: Reading, config: StoreConfig, role: StoreRole) -> tuple[bytes, str]:
        try:
            return reading.read(config.location)
        except OSError as exc:
            # One translation for every way a store is opened (KeystoreNotFoundError when
            # missing); not chained: the OSError may name a placeholder's value.
            raise store_open_error(config, role, exc) from None

    def build(
        self, reading: Reading, generation: int, *, old: ServerSnapshot | None = None
    ) -> ServerSnapshot:
        """A snapshot from the files as they are now (settled); ``old``: the snapshot
        in service, when this one would replace it.

        The two files are judged apart. A replacement that does not load (missing,
        unreadable, damaged, a wrong password), that OpenSSL refuses (a key that does
        not match its certificate), or that clients would refuse (an expired or
        not-yet-valid certificate; a truststore with no valid anchor) is not
        installed, and what is in service stays for that file; the other file's
        change still goes in, and the snapshot carries the refusal. So a broken or
        pre-staged keystore never holds back a trust withdrawal, nor a broken
        truststore a new identity. The certificate in service is never judged again
        (one that expires in service keeps serving, and says so in status()).

        Raises:
            MTLSError: a store does not load (the first build), or nothing of the
                replacement can go in.
            Unstable: a file is still being written.
            Interrupted: ``close()`` was called.
        """
        s = self.settings
        if old is None:
            key_bytes, key_digest = self._read(reading, s.keystore, "keystore")
            trust_bytes, trust_digest = self._read(reading, s.truststore, "truststore")
            reading.checkpoint()
            # The keystore first: when password= opens neither store, its error is the
            # one to show (the truststore's would send the user after its own password).
            keystore = load_store(s.keystore, "keystore", data=key_bytes, purpose="server")
            truststore = load_store(s.truststore, "truststore", data=trust_bytes)
            reading.checkpoint()
            return self._snapshot(generation, keystore, truststore, (key_digest, trust_digest))
        key = self._replacement(reading, s.keystore, "keystore", old.keystore, old.files[0][2])
        trust = self._replacement(
            reading, s.truststore, "truststore", old.truststore, old.files[1][2]
        )
        reading.checkpoint()
        # The files as they are now: the same bytes are not parsed again while they last.
        now = (key.digest, trust.digest)
        refusal = _first(key.refusal, trust.refusal)
        try:
            if key.store is old.keystore and trust.store is old.truststore:
                if refusal is None:  # both as in service after all: they moved meanwhile
                    raise Unstable(s.keystore.location)  # the next check looks again
                raise refusal[0]  # nothing can go in: the snapshot in service stays
            try:
                snapshot = self._built(generation, key, trust)
            except MTLSError as exc:
                # A new file that loads but OpenSSL refuses (a key that does not match
                # its certificate, no usable key entry; a certificate it will not take)
                # is judged apart too, when the other file changed as well.
                both = key.store is not old.keystore and trust.store is not old.truststore
                at_fault = store_at_fault(exc) if both else None
                if at_fault == "keystore":
                    key = _Judged(old.keystore, key.digest, old.files[0][2], (exc, None))
                elif at_fault == "truststore":
                    trust = _Judged(old.truststore, trust.digest, old.files[1][2], (exc, None))
                else:
                    raise
                refusal = _first(key.refusal, trust.refusal)
                snapshot = self._built(generation, key, trust)
        except MTLSError as exc:
            if refusal is not None and exc is not refusal[0]:
                # One file was set aside, then the other failed: both are said at once.
                exc = (
                    together(key.refusal[0], exc, "truststore")
                    if key.refusal is not None
                    else together(exc, refusal[0], "truststore")
                )
                self._failed = _Failure(now, exc, refusal[1])
                raise exc from None
            self._failed = _Failure(now, exc, refusal[1] if refusal is not None else None)
            raise
        if refusal is not None:
            # What was not refused goes in, with what is in service for the rest; the
            # refusal stays on the snapshot (and in status()) until the file changes or
            # becomes valid.
            self._failed = _Failure(now, refusal[0], refusal[1])
            return replace(snapshot, error=refusal[0])
        return snapshot

    def _built(self, generation: int, key: _Judged, trust: _Judged) -> ServerSnapshot:
        assert isinstance(key.store, Keystore)
        assert isinstance(trust.store, Truststore)
        return self._snapshot(
            generation,
            key.store,
            trust.store,
            (key.kept or key.digest or "", trust.kept or trust.digest or ""),
        )

    def _replacement(
        self,
        reading: Reading,
        config: StoreConfig,
        role: StoreRole,
        in_service: Keystore | Truststore,
        served: str,
    ) -> _Judged:
        """One file as a replacement for what is in service (digest ``served``)."""
        try:
            data, digest = self._read(reading, config, role)
        except MTLSError as exc:
            return _Judged(in_service, None, served, (exc, None))
        if digest == served and not _rechoose_due(in_service):
            return _Judged(in_service, digest, None, None)  # unchanged: never judged again
        try:
            store = load_store(config, role, data=data, purpose="server")
            if digest == served and store.fingerprint == in_service.fingerprint:
                # Read again when due, and the key's certificate is the same: what is
                # in service stays (never judged again), due at the next moment its
                # choice may change.
                in_service._rechoose_at = store._rechoose_at
                return _Judged(in_service, digest, None, None)
            refusal = (
                _refusal(store, config, in_service if isinstance(in_service, Keystore) else None)
                if isinstance(store, Keystore)
                else anchor_refusal(
                    store,
                    config.shown_location,
                    in_service if isinstance(in_service, Truststore) else None,
                )
            )
        except WrongPasswordError as exc:
            # The passwords are the ones it was made with: keytool -storepasswd on the
            # file in service cannot be followed, and "check it" did not say so (h256).
            fixed = WrongPasswordError(
                f"{exc}; a rotating server opens every new {role} with the password it was "
                "made with: write the new file under that password, or restart the "
                "server with the new one",
                path=exc.path,
                alias=exc.alias,
            )
            return _Judged(in_service, digest, served, (fixed, None))
        except MTLSError as exc:
            return _Judged(in_service, digest, served, (exc, None))
        if refusal is not None:
            return _Judged(in_service, digest, served, refusal)
        if isinstance(store, Keystore):  # judged once per content: warned once
            leaf = store.key_entry(config.alias)[2][0]
            _warn_key_usage(leaf, _leaf(leaf)[0], config.shown_location)
        return _Judged(store, digest, None, None)

    def _snapshot(
        self,
        generation: int,
        keystore: Keystore,
        truststore: Truststore,
        digests: tuple[str, str],
    ) -> ServerSnapshot:
        s = self.settings
        alias, _, chain = keystore.key_entry(s.keystore.alias)
        subject, serial, _, not_after = _leaf(chain[0])

        def make() -> ssl.SSLContext:
            ctx = build_server_context(
                keystore,
                truststore,
                require_client_cert=s.require_client_cert,
                alias=alias,
                minimum_version=s.minimum_version,
                ciphers=s.ciphers,
                warn_expiry=s.expiry_warning,  # at its widest threshold, as its watch
            )
            _finish(ctx, s.alpn_protocols)  # ours alone until published
            return ctx

        ctx = make()
        now = _dt.datetime.now(_dt.UTC)
        return ServerSnapshot(
            generation=generation,
            context=ctx,
            files=(
                ("keystore", s.keystore.shown_location, digests[0]),
                ("truststore", s.truststore.shown_location, digests[1]),
            ),
            subject=subject,
            serial=serial,
            not_after=not_after,
            keystore=keystore,
            truststore=truststore,
            make=make,
            watched=self.watched,
            renew_at=keystore._rechoose_at,
            loaded_at=now,
            changed_at=now,
        )

    # ------------------------------------------------------------------ the Plan protocol

    def first(self, reading: Reading, *, last: bool) -> ServerSnapshot:
        """The first snapshot: both stores load, or the constructor raises.

        Raises:
            Unstable: a file was caught mid-write (the engine reads again).
            MTLSError: a store does not load.
        """
        reading.settle(self.watched)  # one settle delay for both files
        snapshot = self.build(reading, 0)
        leaf = snapshot.keystore.key_entry(self.settings.keystore.alias)[2][0]
        refused = _purpose.peers_refuse(leaf, "server")
        if refused is not None:  # served: there is nothing else (a replacement is refused)
            log.warning(
                "%s: the server certificate (%s) cannot serve as a TLS server certificate: "
                "%s, and %s (served: nothing else was loaded); %s",
                self.settings.keystore.shown_location,
                snapshot.subject,
                *refused,
            )
        _warn_key_usage(leaf, snapshot.subject, self.settings.keystore.shown_location)
        # Served all the same (there is nothing else), and said: every client refuses
        # a chain with a certificate not valid yet (a CA whose clock leads).
        chain = _chain_infos(snapshot.keystore, self.settings.keystore.alias)
        for index, info in not_valid_yet(chain):
            assert info.not_before is not None
            log.warning(
                "%s: the %s (%s) is not valid before %s: clients refuse it until then "
                "(served: nothing else was loaded)",
                self.settings.keystore.shown_location,
                "server certificate" if index == 0 else "CA certificate of its chain",
                info.subject,
                info.not_before.isoformat(),
            )
        return snapshot

    def unsettled(self, exc: Unstable, attempts: int) -> MTLSError:
        """The error when every first read caught a file mid-write."""
        return KeystoreError(
            f"{exc.path}: still being written (it changed between two reads, {attempts} "
            "times): start the server once it is complete",
            path=exc.path,
        )

    def check(self, reading: Reading, old: ServerSnapshot) -> Outcome[ServerSnapshot]:
        """The next snapshot: ``old`` when neither file's content changed, else one
        built from the new bytes; on any error, ``old`` with the error (last good kept).

        Raises:
            Interrupted: ``close()`` was called.
        """
        s = self.settings
        try:
            digests = (reading.digest(s.keystore.location), reading.digest(s.truststore.location))
            if digests == (old.files[0][2], old.files[1][2]):
                chosen_again = False
                if _rechoose_due(old.keystore):
                    # The same bytes may give the key another certificate now (what is
                    # in service is kept, due again later, when they do not).
                    again = self._replacement(
                        reading, s.keystore, "keystore", old.keystore, old.files[0][2]
                    )
                    chosen_again = again.store is not old.keystore or again.refusal is not None
                if not chosen_again:
                    # Due again when its choice may next change (None: never).
                    kept = replace(
                        old, error=None, pending=False, renew_at=old.keystore._rechoose_at
                    )
                    return Outcome(kept, False)
            failed = self._failed
            if failed is not None and failed.holds(digests):
                # The same bytes failed before: say so again without paying for the parse.
                return Outcome(replace(old, error=failed.error, pending=False), False)
            new = self.build(reading, old.generation + 1, old=old)
        except Unstable:
            return Outcome(replace(old, pending=True), False)  # next check looks again
        except MTLSError as exc:
            return Outcome(replace(old, error=exc, pending=False), False)
        if new.error is not None:
            taken = [role for (role, _, now), (_, _, was) in zip(new.files, old.files, strict=True)
                     if now != was]  # fmt: skip
            log.info(
                "%s: server %s reloaded, the rest stays as in service (%s); identity: %s",
                self.where,
                " and ".join(taken),
                _first_line(str(new.error)),
                _who(new),
            )
            return Outcome(new, True)
        self._failed = None
        if new.truststore is not old.truststore:
            # Named by its own file (it was said under the keystore's path, h256).
            log.info(
                "%s: server truststore reloaded: %s trusted (were %d)%s",
                s.truststore.shown_location,
                _count(len(set(new.truststore.anchors_der)), "certificate"),
                len(set(old.truststore.anchors_der)),
                f"; identity as in service: {_who(new)}" if new.keystore is old.keystore else "",
            )
        if new.keystore is not old.keystore and _same_identity(new, old, s.keystore.alias):
            # New bytes, the same certificate (a keystore converted in place, another
            # password): "X -> X" read as a rotation that did not happen (h256).
            log.info("%s: new keystore, same server certificate %s", self.where, _who(new))
        elif new.keystore is not old.keystore:
            log.info("%s: server identity reloaded: %s -> %s", self.where, _who(old), _who(new))
        return Outcome(new, True)

    def broken(self, old: ServerSnapshot, exc: BaseException) -> ServerSnapshot:
        """``old`` kept whole after an unexpected failure, with an error saying so."""
        error = MTLSError(
            f"{self.where}: unexpected {type(exc).__name__} during a reload: the last good "
            "identity and trust stay; the next check looks again"
        )
        return replace(old, error=error, pending=True)

    def configured(self, snapshot: ServerSnapshot) -> frozenset[str]:
        """Nothing: a server's problems are about the server itself."""
        return frozenset()

    def problems(self, snapshot: ServerSnapshot) -> Mapping[Hashable, Problem]:
        """The snapshot's error, logged once (again when it changes; "resolved" only
        once the server's material loads)."""
        if snapshot.error is None:
            return {}
        return {
            "server": Problem(
                str(snapshot.error), "new connections keep the last good identity and trust"
            )
        }


@dataclass(frozen=True, slots=True)
class _Judged:
    """One file judged as a replacement: the store to serve (the new one, or the one in
    service), the file's digest now (``None``: unreadable), the digest of what is kept
    in service when the file was not taken, and why not."""

    store: Keystore | Truststore
    digest: str | None
    kept: str | None
    refusal: tuple[MTLSError, _dt.datetime | None] | None


_Refusal = tuple[MTLSError, "_dt.datetime | None"]


def _first(key: _Refusal | None, trust: _Refusal | None) -> _Refusal | None:
    """The refusal to report (the keystore's, saying the truststore's too), retried at
    the earliest time either may succeed: a broken keystore must not keep a
    truststore that becomes valid later from being installed then."""
    if key is None or trust is None:
        return key or trust
    retries = [until for _, until in (key, trust) if until is not None]
    return (together(key[0], trust[0], "truststore"), min(retries) if retries else None)


@dataclass(frozen=True, slots=True)
class _Failure:
    """A replacement that failed to build: its files' digests, the error, and from
    when the same bytes may succeed (``None``: never, they fail the same way)."""

    digests: tuple[str | None, str | None]
    error: MTLSError
    until: _dt.datetime | None

    def holds(self, digests: tuple[str | None, str | None]) -> bool:
        """The files are these bytes again, and the refusal still applies."""
        if digests != self.digests:
            return False
        return self.until is None or _dt.datetime.now(_dt.UTC) < self.until


def _finish(ctx: ssl.SSLContext, alpn: tuple[str, ...] | None) -> None:
    """Settings common to the outer and every inner context, made before any use."""
    # No session tickets (TLS 1.3 and 1.2): a resumed session skips client-certificate
    # verification, so a ticket issued under an earlier truststore would let its
    # holder in after that trust was withdrawn. The ticket keys live in the outer
    # context (OpenSSL's session context), which never rotates; so does its cache of
    # TLS 1.2 session IDs, turned off in RotatingServerContext.__init__.
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0
    if alpn:
        # On the inner contexts too: OpenSSL asks the *current* context's ALPN callback.
        ctx.set_alpn_protocols(list(alpn))


def _refusal(
    keystore: Keystore, config: StoreConfig, in_service: Keystore | None
) -> tuple[MTLSError, _dt.datetime | None] | None:
    """Why clients would refuse the keystore's certificate as a replacement for
    ``in_service``'s, and from when the same bytes may succeed; None when it is valid
    now."""
    _, _, chain = keystore.key_entry(config.alias)
    subject, _, not_before, not_after = _leaf(chain[0])
    where = config.shown_location
    served = in_service.key_entry(config.alias)[2] if in_service is not None else None
    pem = keystore.store_type == "PEM"  # only PEM is written a certificate at a time
    return (
        validity_refusal(subject, not_before, not_after, where, whose="server")
        or chain_refusal(chain, where, whose="server")
        or lost_issuer_refusal(chain, served if pem else None, where, whose="server")
        or self_signed_refusal(chain, served, where, whose="server")
        or purpose_refusal(chain[0], subject, where, "server", whose="server")
    )


# (keystore, SHA-256 of the certificate) warned about; a lock: two checks at once warn once
_USAGE_WARNED: set[tuple[str, str]] = set()
_USAGE_LOCK = threading.Lock()


def _warn_key_usage(leaf: bytes, subject: str | None, where: str) -> None:
    """A server certificate some clients refuse and others take (a key usage Go's and
    rustls's clients do not check, anyExtendedKeyUsage alone) is served, with a
    warning naming who refuses it: once per certificate."""
    found = _purpose.usage_warning(leaf, "server")
    if found is None:
        return
    key = (where, _x509.sha256_hex(leaf))
    with _USAGE_LOCK:
        if not first_time(_USAGE_WARNED, key):
            return
    say_usage_warning(found, where, subject, "server")


def _leaf(
    der: bytes,
) -> tuple[str | None, int | None, _dt.datetime | None, _dt.datetime | None]:
    try:
        cert = _x509.load_cert(der)
        return (
            _x509.subject_text(cert),
            _x509.serial_number(cert),
            _dates.not_before(cert),
            _dates.not_after(cert),
        )
    except ValueError:
        # OpenSSL may take what cryptography refuses: serve it, with what our own walk
        # of its DER reads (an expired one is refused like any other).
        subject, start, end, serial = _x509.lenient_leaf_info(der)
        return subject, serial, start, end


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _same_identity(new: ServerSnapshot, old: ServerSnapshot, alias: str | None) -> bool:
    """Whether two snapshots present the same key and chain (a keystore converted in
    place, or written under another password): not only the same name and serial, which
    a new key can share (h260)."""
    try:
        return new.keystore.key_entry(alias)[1:] == old.keystore.key_entry(alias)[1:]
    except MTLSError:
        return False


def _who(snapshot: ServerSnapshot) -> str:
    """The identity in a log line: its serial tells a renewal (same name, same
    expiry day) from the certificate it replaced (h141)."""
    expiry = snapshot.not_after.date().isoformat() if snapshot.not_after else "?"
    serial = f", serial {hex_serial(snapshot.serial)}" if snapshot.serial is not None else ""
    return f"{snapshot.subject} (until {expiry}{serial})"


# --------------------------------------------------------------------------- status


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerStatus:
    """A :class:`RotatingServerContext`'s health, from one snapshot.

    Attributes:
        generation: grows by one per applied change (0 after the first load).
        reloading: the background thread is running.
        require_client_cert: clients without a trusted certificate are refused.
        checked_at: when this status was made.
        last_reload: when the identity or trust served now was published.
        last_check: when the last check ended (the first load, until one has): with
            ``reloading``, a value more than a few intervals old means the reload
            thread is stuck.
        files: the keystore and truststore the served material was built from.
        identity: the server certificate presented.
        anchors: the truststore's anchors that expire soonest, soonest first (at most
            :data:`ANCHORS_SHOWN`).
        errors: the last check's error (the last good material is still served).
        refused: why clients are refused now although everything loaded: the server
            certificate out of its dates or not meant for server authentication, or
            (client certificates required) no client CA in date (``None``: none of
            these). :attr:`healthy` is false meanwhile.
        closed: :meth:`RotatingServerContext.close` was called: the context serves
            its last material, checked and rotated no more (not :attr:`healthy`).
    """

    ANCHORS_SHOWN = 3

    generation: int
    reloading: bool
    require_client_cert: bool
    checked_at: _dt.datetime
    last_reload: _dt.datetime
    files: tuple[FileStatus, ...]
    identity: IdentityStatus | None
    anchors: tuple[AnchorStatus, ...]
    errors: tuple[MTLSError, ...]
    last_check: _dt.datetime | None = None

    refused: str | None = None
    closed: bool = False

    @property
    def healthy(self) -> bool:
        """No errors, nothing clients are refused for now (:attr:`refused`), and not
        :attr:`closed` (its material is checked and rotated no more, h246)."""
        return not self.errors and self.refused is None and not self.closed

    @property
    def last_error(self) -> MTLSError | None:
        """The first of :attr:`errors` (``None`` when healthy)."""
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready. Keys: ``generation``, ``healthy``, ``reloading``,
        ``require_client_cert``, ``checked_at``, ``last_reload``, ``last_check``, ``files``,
        ``identity``, ``anchors``, ``last_error``, ``errors`` (messages), ``refused``,
        ``closed``."""
        return {
            "generation": self.generation,
            "healthy": self.healthy,
            "reloading": self.reloading,
            "require_client_cert": self.require_client_cert,
            "checked_at": self.checked_at.isoformat(),
            "last_reload": self.last_reload.isoformat(),
            "last_check": self.last_check.isoformat() if self.last_check is not None else None,
            "files": [f.to_dict() for f in self.files],
            "identity": self.identity.to_dict() if self.identity is not None else None,
            "anchors": [a.to_dict() for a in self.anchors],
            "last_error": str(self.last_error) if self.last_error is not None else None,
            "errors": [str(e) for e in self.errors],
            "refused": self.refused,
            "closed": self.closed,
        }


# --------------------------------------------------------------------------- expiry watch


class _InUse:
    """The certificates a server's snapshot uses, for its expiry watch: the one it
    presents, the chain sent with it, and the anchors that verify its clients; looked
    at again only when the material changed."""

    def __init__(self, alias: str | None) -> None:
        self._alias = alias
        self._keystore: Keystore | None = None
        self._truststore: Truststore | None = None
        self._certs: dict[str, InUseCert] = {}

    @property
    def certs(self) -> dict[str, InUseCert]:
        return self._certs

    def update(self, snapshot: ServerSnapshot) -> tuple[list[InUseCert], list[str]]:
        if snapshot.keystore is self._keystore and snapshot.truststore is self._truststore:
            return [], []
        self._keystore, self._truststore = snapshot.keystore, snapshot.truststore
        now: dict[str, InUseCert] = {}
        for index, info in enumerate(_chain_infos(snapshot.keystore, self._alias)):
            certificate_in_use(now, info, "identity" if index == 0 else "chain")
        for info in _anchor_infos(snapshot.truststore):
            certificate_in_use(now, info, "anchor")
        old, self._certs = self._certs, now
        return [c for f, c in now.items() if f not in old], [f for f in old if f not in now]

    def servers(self, cert: InUseCert, snapshot: ServerSnapshot) -> tuple[str, ...]:
        return ("this server",)

    def files(self, cert: InUseCert) -> tuple[str, ...]:
        return ()  # a server checks no CRL


# --------------------------------------------------------------------------- the public class


def _store(
    given: str | os.PathLike[str] | StoreConfig,
    password: str | Secret | None,
    key_password: str | Secret | None,
    alias: str | None,
    *,
    role: StoreRole,
) -> StoreConfig:
    if isinstance(given, StoreConfig):
        if password is not None or key_password is not None or alias is not None:
            raise ValueError(
                f"the {role} is a StoreConfig: give its password, key password and alias "
                "in the StoreConfig, not as arguments"
            )
        return given
    if not isinstance(given, str | os.PathLike):
        # os.fspath's "expected str, bytes or os.PathLike object, not NoneType" named
        # neither the argument nor what to give.
        raise TypeError(
            f"the {role} must be a path (str or os.PathLike) or a StoreConfig, not "
            f"{type(given).__name__}"
            + (
                ": a mutual-TLS server verifies its clients' certificates against a "
                "truststore: give the path of the one that holds their CA"
                if given is None and role == "truststore"
                else ""
            )
        )
    return StoreConfig(
        location=Path(os.path.abspath(given)),
        password=_as_secret(password),
        key_password=_as_secret(key_password),
        alias=alias,
        # Not a profile's <Location>: what the caller passed, from the working directory.
        origin=f"the {role} path given (relative paths start from the working directory)",
    )


class RotatingServerContext:
    """A server's ``ssl.SSLContext`` whose identity and client trust follow the files.

    Hand :attr:`context` to the server once; it never changes. Each new handshake is
    served with the current keystore and verified against the current truststore:
    when a file's content changes, the next check (every ``reload_interval``
    seconds, or :meth:`reload`) builds new material and new connections use it;
    connections already open carry on with what they started with. A replacement
    that does not load keeps the last good material, and is reported in
    :meth:`status` and the log until it is fixed.

    Trust is Java's: every certificate in the truststore is an anchor (a client's
    own self-signed certificate, an intermediate). No host names are checked.

    Use it as a context manager, or call :meth:`close`, to stop the reload thread.

    Example::

        server = mtls.RotatingServerContext(
            "backend.jks", "backend-truststore.jks", password=..., reload_interval=60
        )
        await asyncio.start_server(handler, port=8443, ssl=server.context)

    Args:
        keystore: the server's identity: a path, or a :class:`mtls.StoreConfig`.
        truststore: the anchors for client certificates: a path or a
            :class:`mtls.StoreConfig`.
        password: the keystore's password (with a path).
        key_password: the key's password, when it differs from ``password``.
        truststore_password: the truststore's password (default: ``password``).
        alias: the key entry to serve when the keystore holds several.
        require_client_cert: ``True`` refuses clients without a trusted certificate;
            ``False`` asks for one, verifies it when sent, and lets others in.
        minimum_version: the lowest TLS version accepted.
        ciphers: an OpenSSL cipher string for TLS 1.2.
        alpn_protocols: ALPN protocols to offer (``["h2", "http/1.1"]``), set on
            every context; ``set_alpn_protocols`` on :attr:`context` would not apply.
        sni_callback: your own ``sni_callback(ssl_object, server_name, context)``,
            called after the connection was switched to the current material, with
            that inner context (also ``ssl_object.context``) as its third argument (it
            may switch it again, or return an alert number to refuse).
        reload_interval: seconds between background checks; ``None``: no thread,
            call :meth:`reload` yourself.
        settle_delay: seconds between the two reads that confirm a changed file is
            complete.
        expiry_warnings: how long before its end a certificate in use (the server's,
            the chain sent with it, the client CAs) is announced, in days (a
            ``timedelta`` too), once per threshold, and once more when it has ended:
            a log line and a :class:`mtls.HealthEvent` for :meth:`on_health`, after
            every check (default 30, 7 and 1 days; ``()``: never).

    Raises:
        KeystoreNotFoundError: a store file does not exist.
        WrongPasswordError: a password is wrong.
        KeystoreFormatError: a file is not a readable store, or the truststore is empty.
        KeyEntryError: no usable key entry (or several and no ``alias``).
        ValueError: ``reload_interval`` or ``settle_delay`` out of range, or
            passwords given beside a :class:`~mtls.StoreConfig`.
        TypeError: a ``keystore`` or ``truststore`` that is neither a path nor a
            :class:`~mtls.StoreConfig` (``None`` included).
    """

    _engine: Engine[ServerSnapshot] | None = None  # repr() and close() work at every stage

    @scrub_tracebacks  # passwords never linger in an escaping traceback
    def __init__(
        self,
        keystore: str | os.PathLike[str] | StoreConfig,
        truststore: str | os.PathLike[str] | StoreConfig,
        *,
        password: str | Secret | None = None,
        key_password: str | Secret | None = None,
        truststore_password: str | Secret | None = None,
        alias: str | None = None,
        require_client_cert: bool = True,
        minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        ciphers: str | None = None,
        alpn_protocols: Sequence[str] | None = None,
        sni_callback: SNICallback | None = None,
        reload_interval: float | None = None,
        settle_delay: float = 0.1,
        expiry_warnings: Iterable[float | _dt.timedelta] = DEFAULT_EXPIRY_WARNINGS,
    ) -> None:
        interval = (
            None
            if reload_interval is None
            else check_seconds("reload_interval", reload_interval, zero=False)
        )
        settle = check_seconds("settle_delay", settle_delay, zero=True)
        expiry = expiry_watch(expiry_warnings)
        if isinstance(alpn_protocols, str):
            raise TypeError('alpn_protocols is a list of names: ["h2", "http/1.1"]')
        trust_password = truststore_password if truststore_password is not None else password
        if isinstance(truststore, StoreConfig):
            trust_password = truststore_password
        settings = _Settings(
            keystore=_store(keystore, password, key_password, alias, role="keystore"),
            truststore=_store(truststore, trust_password, None, None, role="truststore"),
            require_client_cert=require_client_cert,
            minimum_version=minimum_version,
            ciphers=ciphers,
            alpn_protocols=tuple(alpn_protocols) if alpn_protocols else None,
            expiry_warning=expiry if expiry.spans else None,
        )
        self._settings = settings
        self._chained = sni_callback
        name = f"mtls-server-{settings.keystore.location.name}"
        try:
            engine = Engine(ServerPlan(settings), settle_delay=settle, interval=interval, name=name)
        except WrongPasswordError as exc:
            if (
                truststore_password is not None
                or exc.path is None
                # Stores carry their path as shown (a placeholder as written).
                or os.fspath(exc.path)
                not in (os.fspath(settings.truststore.location), settings.truststore.shown_location)
            ):
                raise
            # The truststore was opened with the keystore's password, as documented:
            # say so, since that is what to change when the two differ.
            raise WrongPasswordError(
                f"{exc} (the truststore's password defaults to password=; pass "
                "truststore_password= when it differs)",
                path=exc.path,
            ) from exc
        self._engine = engine
        # The expiry watch, after every check (on the reload thread), as a profile set's.
        health: Health[ServerSnapshot] = Health(
            expiry, settings.keystore.shown_location, _InUse(settings.keystore.alias)
        )
        health.identity = "server certificate"
        health.anchors_where = settings.truststore.shown_location
        health.start(engine.snapshot)
        health.notifier = engine.notifier
        engine.watch(health.watch)
        self._health = health
        # The outer context: what the server takes. Made like every inner one, from the
        # first material (so the per-connection settings OpenSSL copies from it agree
        # with theirs); its only job after that is to switch each handshake.
        try:
            outer = engine.snapshot.make()
        except BaseException:
            engine.close()
            raise
        # TLS 1.2 session IDs are cached in the outer context, across every rotation:
        # turned off where OpenSSL can be reached (see mtls/_openssl.py); elsewhere
        # _switch refuses a resumed session from before the material served now.
        self._fenced = not session_cache_off(outer)
        self._refused_resumption = False
        if not self._fenced:
            # One TLS 1.3 ticket after each handshake, which can never resume: with
            # OP_NO_TICKET it is stateful, a session ID in the cache just turned off
            # (nothing stored, nothing looked up). It is sent for what it does to TCP:
            # a server that sends nothing after the client's Finished delays its ACK
            # (about 40 ms on Linux), and a client that does not set TCP_NODELAY holds
            # its first request behind that ACK (Nagle): 44 ms per new connection
            # against 2 ms, measured with the ticket and without. Where the cache
            # stays on (fenced), a ticket would resume: none is sent.
            outer.num_tickets = 1
        self._fence_lock = threading.Lock()
        self._fence = (0, 0.0)  # (generation, when _switch first served it)
        self._latest = 0.0  # the latest time any handshake passed through _switch
        renew_attributes_after_fork(self, "_fence_lock")
        if self._fenced:
            log.warning(
                "mtls: the TLS session cache of the server context for %s cannot be "
                "turned off here (%s, %s): TLS 1.2 clients that resume a session from "
                "before a reload are refused once and connect again with a full handshake",
                settings.keystore.shown_location,
                sys.implementation.name,
                ssl.OPENSSL_VERSION,
            )
        outer.sni_callback = self._switch
        self._outer = outer
        # Dropped without close(): its reload thread stops when it is collected (the
        # outer context refers to it through sni_callback, so while a server holds
        # the context it lives, and rotates).
        weakref.finalize(self, close_finalized, engine)

    def _switch(self, ssl_object: Any, server_name: str | None, ctx: ssl.SSLContext) -> int | None:
        # The hot path: the published snapshot read, the connection's resumption flag
        # read, one assignment.
        snapshot = self._engine.snapshot  # type: ignore[union-attr]
        inner = snapshot.context
        if self._fenced:
            if self._stale(ssl_object, snapshot.generation):
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        elif ssl_object.session_reused:
            # Nothing can resume here (no stateless ticket, no cache) unless the
            # context was changed after it was handed out (OP_NO_TICKET cleared):
            # a resumed session would skip the client-certificate check.
            self._refuse_resumption()
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        ssl_object.context = inner
        chained = self._chained
        # The chained callback sees the context the connection now uses (what
        # ssl_object.context says), not the outer one OpenSSL called us with.
        return None if chained is None else chained(ssl_object, server_name, inner)

    def _refuse_resumption(self) -> None:
        if not self._refused_resumption:  # once: a client may try again and again
            self._refused_resumption = True
            log.warning(
                "mtls: a resumed TLS session was refused by the server context for %s: "
                "sessions cannot resume through a RotatingServerContext unless its "
                "context was changed after it was handed out (was OP_NO_TICKET "
                "cleared?); leave the context as mtls made it",
                self._settings.keystore.shown_location,
            )

    def _stale(self, ssl_object: Any, generation: int) -> bool:
        """A resumed session that began before the material served now: its client
        certificate was verified against a truststore that may no longer hold.

        Sound without knowing session IDs: OpenSSL stamps a session (whole seconds,
        wall clock) when it reads the ClientHello, before this callback runs for that
        handshake, so every session's stamp is no later than the latest time a
        handshake passed through here. The fence of a snapshot is that latest time
        when a handshake first sees the snapshot; a session begun under an earlier one
        is stamped no later than the fence, even if the wall clock stepped back in
        between. A session begun in the fence's second is refused too: the client
        connects again with a full handshake.
        """
        now = time.time()
        with self._fence_lock:  # the fallback path only: one short lock per handshake
            latest = self._latest = max(self._latest, now)
            if generation > self._fence[0]:
                self._fence = (generation, latest)
            fence = self._fence[1]
        if not ssl_object.session_reused:
            return False
        try:
            began = ssl_object.session.time
        except (ValueError, AttributeError):
            return True
        stale = bool(began <= fence)
        if stale:
            log.info("mtls: refused a resumed TLS session from before the last reload")
        return stale

    # ------------------------------------------------------------------ the contexts

    @property
    def context(self) -> ssl.SSLContext:
        """The ``ssl.SSLContext`` to give the server, once. Never changes; do not
        change it either (its ``sni_callback`` is what switches each handshake)."""
        return self._outer

    @property
    def alpn_protocols(self) -> tuple[str, ...] | None:
        """The ALPN protocols every context offers (``None``: no ALPN)."""
        return self._settings.alpn_protocols

    @property
    def current(self) -> ssl.SSLContext:
        """The inner context new handshakes are switched to now (for a chained
        ``sni_callback`` that picks between several servers' material)."""
        return self._snapshot.context

    @property
    def _snapshot(self) -> ServerSnapshot:
        assert self._engine is not None
        return self._engine.snapshot

    # ------------------------------------------------------------------ reloading

    def reload(self, *, force: bool = False) -> bool:
        """Check both files now and apply what changed.

        Safe from any thread, also while the background thread runs. Never raises for
        bad files: the last good material stays, and the error is in :attr:`last_error`
        and :meth:`status` until a later check succeeds. After :meth:`close` it does
        nothing and returns False.

        Args:
            force: read and hash both files, whatever their ``stat`` says (as
                :meth:`mtls.SSLProfileSet.reload`).

        Returns:
            True if new material was published (:attr:`generation` grew by one).
        """
        assert self._engine is not None
        return self._engine.check(force=force)

    @property
    def generation(self) -> int:
        """Grows by one with each applied change (0 after the first load)."""
        return self._snapshot.generation

    @property
    def last_error(self) -> MTLSError | None:
        """The last check's error, else that of a subscriber that raised on the last
        change, or ``None`` when all is well."""
        error = self._snapshot.error
        raised = self._engine.subscriber_errors() if self._engine is not None else ()
        return error if error is not None or not raised else raised[0]

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(old_generation, new_generation)`` after each applied change,
        in generation order, outside any lock (as :meth:`mtls.SSLProfileSet.subscribe`).

        Returns:
            A function that unsubscribes the callback.
        """
        assert self._engine is not None
        return self._engine.subscribe(callback)

    def unsubscribe(self, callback: Callback) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        assert self._engine is not None
        self._engine.unsubscribe(callback)

    @property
    def reloading(self) -> bool:
        """True while the background reload thread runs (False after :meth:`close`)."""
        return self._engine is not None and self._engine.reloading

    def close(self) -> None:
        """Stop the reload thread. Idempotent; the context keeps serving the last
        material (a server still using it is not affected); :meth:`status` says
        ``closed``, and not healthy."""
        if self._engine is not None:
            self._engine.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (with or without a reload thread: its
        :meth:`status` is not healthy from then on)."""
        return self._engine is not None and self._engine.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ health

    def on_health(self, callback: HealthCallback) -> Callable[[], None]:
        """Call ``callback(event)`` with a :class:`mtls.HealthEvent` when a certificate
        in use (the server's, the chain sent with it, the anchors that verify clients)
        crosses an ``expiry_warnings`` threshold or expires, as
        :meth:`mtls.SSLProfileSet.on_health` does (events found by the reload thread
        are delivered on the notification thread).

        Returns:
            A function that unsubscribes the callback.
        """
        return self._health.subscribe(callback)

    def check_health(self) -> tuple[HealthEvent, ...]:
        """Compare the certificates in use with the clock now, as the reload thread
        does after each check, without reading any file (for a server without a
        reload thread: call it from your own scheduler).

        Returns:
            The events of this call; empty when nothing new happened.
        """
        return self._health.evaluate(self._snapshot)

    def status(self) -> ServerStatus:
        """The server material's health, from one snapshot; never reads a file.

        Returns:
            A frozen record (``to_dict()`` for JSON). Never a secret.
        """
        snapshot = self._snapshot
        now = _dt.datetime.now(_dt.UTC)
        infos = _anchor_infos(snapshot.truststore)
        anchors = [(a.alias, a.subject, a.not_after) for a in infos][: ServerStatus.ANCHORS_SHOWN]
        where = self._settings.keystore.shown_location
        presented = identity(snapshot.subject, snapshot.serial, snapshot.not_after, now)
        trusted = anchor_dates(infos, snapshot.truststore.anchors_der)
        return ServerStatus(
            generation=snapshot.generation,
            reloading=self.reloading,
            require_client_cert=self._settings.require_client_cert,
            checked_at=now,
            last_reload=snapshot.changed_at,
            files=tuple(FileStatus(role=r, path=p, sha256=d) for r, p, d in snapshot.files),
            identity=presented,
            anchors=tuple(anchor(a, s, n, now) for a, s, n in anchors),
            errors=(
                self._engine.reported_errors(snapshot.errors, where)
                if self._engine is not None
                else tuple(snapshot.errors)
            ),
            last_check=self._engine.last_check if self._engine is not None else None,
            closed=self.closed,
            refused=refusal(
                presented,
                trusted if self._settings.require_client_cert else None,
                now,
                role="server",
                presented=snapshot.keystore.key_entry(self._settings.keystore.alias)[2][0],
            ),
        )

    def __reduce__(self) -> tuple[object, ...]:
        """Refused, saying what to do instead (pickle's own refusal names a lambda)."""
        raise TypeError(
            "a RotatingServerContext cannot be pickled or copied (it owns a reload thread and live "
            "SSL contexts): make one in each process from the same stores, or fork after "
            "making it (the child reloads on its own)"
        )

    def __repr__(self) -> str:
        where = self._settings.keystore.shown_location if hasattr(self, "_settings") else "?"
        if self._engine is None:
            return f"<RotatingServerContext {where!r}, not loaded>"
        timer = f", reloading every {self._engine.interval:g}s" if self.reloading else ""
        return f"<RotatingServerContext {where!r}, generation {self.generation}{timer}>"


# Public as mtls.X: reprs, tracebacks and pickles say so however they were
# imported (mtls/__init__.py loads them on first use).
for _public in (RotatingServerContext, ServerStatus):
    _public.__module__ = "mtls"
del _public
