"""Fingerprints, snapshots and the reload thread.

Theory of operation
-------------------
All mutable state of a profile set is one reference, ``SSLProfileSet._snapshot``, to an
immutable :class:`Snapshot` (profiles, their contexts, the lookup index, the file
fingerprints they were built from, per-profile errors). Readers (``context_for``)
read that reference once and use what they got: they never lock, never wait on a
rebuild, and see either the whole old set or the whole new one.

Writers are serialised by ``SSLProfileSet._lock``: the background thread's periodic
check and any ``reload()`` call take it, build a new snapshot off to the side,
and publish it with one assignment. Subscribers are called after the lock is
released, on a copied list, each in its own ``try``.

A check is cheap when nothing changed: one ``os.stat`` per distinct watched file
(the profile file and every store), compared with the stat recorded when its bytes
were last used. Only files whose size, mtime, ctime or inode moved are read and
hashed; only when a hash differs is anything parsed or built. ``stat`` follows
symlinks on every check, so a Kubernetes ``..data`` swap (new inode, even with an
older mtime) is seen.

Every read of a check goes through one :class:`Reading`, and two rules make
rotations safe from writers that change files while a check runs:

* **Settled bytes only.** Every byte string handed to a parser has been settled: the
  file had not moved since an earlier check settled it; or its stat held still
  across the read and its last change (ctime) is at least ``settle_delay`` old; or a
  second read one settle delay later matched (one wait for all files of a check).
  This applies to every read, including files that were missing or unchanged when the
  check began and change during it, and to the first load. A file whose reads
  differ is *unstable*: nothing is built from it and the next check looks again.
* **Seen is what was built.** Each file gets one verdict per check, and the stat
  recorded as seen (:class:`FileReader`) is the one taken *before* the bytes that
  were built were read, written only when the check publishes. A file that changes
  at any moment after that read has a different stat at the next check.

Contexts are cached by content (store hashes, passwords, options): a profile whose
inputs did not change keeps its very same ``SSLContext``; identical material is one
context however many profiles use it. A profile whose new material fails to load or
validate keeps its last good context and reports the error; the next check retries
it. A profile with no last good at all is a :class:`Failed` entry in the index: the
hosts it names are refused (``ProfileUnavailableError``), never served by a
catch-all or default.

The thread (:class:`Timer`) survives any exception from a check, ``BaseException``
included, and reports it. ``close()`` sets the stop event: waits end at once, and a
running check raises :class:`Interrupted` at its next safe point (each file read,
profile and context build), so nothing is published or recorded as seen; a parse
already under way is not interruptible, so ``close()`` waits at most
:data:`CLOSE_TIMEOUT` for it. Problems are logged once each (:class:`Reports`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import logging
import math
import os
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _x509
from ._config import CATCH_ALL, Server, SSLProfile, StoreConfig
from ._context import LOCALHOST_NAMES, client_context
from ._errors import (
    CRLError,
    KeyEntryError,
    KeystoreError,
    MTLSError,
    ProfileConfigError,
    ProfileUnavailableError,
)
from ._files import read_input
from ._material import TLSMaterial, tls_material
from ._revocation import CRLSet, RevocationChecker
from ._stores import Keystore, Truststore

log = logging.getLogger("mtls")

_MISSING: tuple[int, ...] = (-1,)

#: The longest ``close()`` waits for a check in progress (seconds); see its docstring.
CLOSE_TIMEOUT = 1.0
IndexKey = tuple[str, int, str | None]


# --------------------------------------------------------------------------- files


def _stat_key(path: Path) -> tuple[int, ...]:
    try:
        st = os.stat(path)  # follows symlinks: a ..data swap changes the inode we see
    except OSError:
        return _MISSING
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _changed_at_ns(key: tuple[int, ...]) -> int | None:
    """The last time the file's content or inode changed (None: no such file)."""
    if key == _MISSING:
        return None
    # ctime cannot be set by user space, and moves with every write, chmod or rename;
    # an mtime set into the future (touch -d) makes the file look fresh, never old.
    return max(key[1], key[2])


class Interrupted(Exception):
    """``close()`` was called during a check: stop at this safe point, publish nothing."""


class Unstable(Exception):
    """A file changed between two reads of one check: it is still being written."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is still being written")
        self.path = path


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

    def moved(self, path: Path) -> bool:
        """True if the file's stat differs from the one recorded (or none is)."""
        seen = self._seen.get(path)
        return seen is None or seen[0] != _stat_key(path)

    def seen(self, path: Path) -> tuple[tuple[int, ...], str | None] | None:
        """The recorded (stat, sha256) of ``path``, if any."""
        return self._seen.get(path)

    def record(self, path: Path, key: tuple[int, ...], digest: str | None) -> None:
        self._seen[path] = (key, digest)

    def drop(self, path: Path) -> None:
        self._seen.pop(path, None)

    def forget(self, keep: Iterable[Path]) -> None:
        """Drop entries for files no longer watched."""
        wanted = set(keep)
        for path in list(self._seen):
            if path not in wanted:
                del self._seen[path]


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What one check knows of one file; each file gets exactly one per check."""

    key: tuple[int, ...]  # the stat taken before the bytes were read
    data: bytes | None = None  # None with error (unreadable) or for "unchanged" (read lazily)
    digest: str | None = None
    error: OSError | None = None
    unstable: bool = False
    unchanged: bool = False  # as recorded by an earlier check: nothing read yet


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

    def checkpoint(self) -> None:
        """A safe point: raise :class:`Interrupted` if ``close()`` was called."""
        if self._stop.is_set():
            raise Interrupted

    def _quiet(self, key: tuple[int, ...]) -> bool:
        changed = _changed_at_ns(key)
        return changed is not None and changed <= time.time_ns() - int(self._delay * 1e9)

    def settle(self, paths: Iterable[Path]) -> None:
        """Give each of ``paths`` its verdict, reading it (twice if need be)."""
        firsts: dict[Path, tuple[tuple[int, ...], bytes, str]] = {}
        for path in paths:
            if path in self._verdicts:
                continue
            self.checkpoint()
            before = _stat_key(path)
            try:
                data = read_input(path)
            except OSError as exc:
                self._verdicts[path] = _Verdict(before, error=exc)
                continue
            digest = hashlib.sha256(data).hexdigest()
            still = _stat_key(path) == before
            if still and (self._seen.seen(path) == (before, digest) or self._quiet(before)):
                self._verdicts[path] = _Verdict(before, data, digest)
            else:
                firsts[path] = (before, data, digest)
        if not firsts:
            return
        # Event.wait, not time.sleep: close() ends the wait at once.
        self._stop.wait(self._delay)
        for path, (before, _, digest) in firsts.items():
            self.checkpoint()
            try:
                again = read_input(path)
            except OSError:
                again = None  # gone between the two reads: still changing
            if again is not None and hashlib.sha256(again).hexdigest() == digest:
                self._verdicts[path] = _Verdict(before, again, digest)
            else:
                self._verdicts[path] = _Verdict(before, unstable=True)

    def _verdict(self, path: Path) -> _Verdict:
        verdict = self._verdicts.get(path)
        if verdict is None:
            seen = self._seen.seen(path)
            if seen is not None and seen[0] == _stat_key(path):
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
        verdict = self._verdict(path)
        if verdict.unstable:
            raise Unstable(path)
        return verdict.digest

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
                self._seen.record(path, verdict.key, verdict.digest)


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class Served:
    """What a profile is served with; shared by every profile built from the same material."""

    context: ssl.SSLContext
    localhost_context: ssl.SSLContext | None  # DefaultAndLocalhost: no name check for these
    files: tuple[tuple[str, str, str], ...]  # (role, path, sha256)
    subject: str | None
    not_after: _dt.datetime | None
    loaded_at: _dt.datetime
    # Builds another context from the same stores (hostname mode in, new context out):
    # how the set makes ALPN variants without ever changing a context it handed out.
    make: Callable[[str], ssl.SSLContext] = field(repr=False, compare=False)
    # The same material as PEM, for TLS stacks that take no SSLContext (gRPC): made on
    # first use (and kept), so sets nobody asks for PEM pay nothing for it.
    material: Callable[[], TLSMaterial] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Built:
    """One profile as it is being served (its last good material, and its last error)."""

    profile: SSLProfile
    served: Served
    error: MTLSError | None = None

    @property
    def context(self) -> ssl.SSLContext:
        return self.served.context

    @property
    def localhost_context(self) -> ssl.SSLContext | None:
        return self.served.localhost_context

    @property
    def files(self) -> tuple[tuple[str, str, str], ...]:
        return self.served.files

    @property
    def subject(self) -> str | None:
        return self.served.subject

    @property
    def not_after(self) -> _dt.datetime | None:
        return self.served.not_after

    @property
    def loaded_at(self) -> _dt.datetime:
        return self.served.loaded_at

    def context_for_host(self, host: str) -> ssl.SSLContext:
        """The context for ``host`` (the localhost variant where it applies)."""
        served = self.served
        if served.localhost_context is not None and host in LOCALHOST_NAMES:
            return served.localhost_context
        return served.context


@dataclass(frozen=True, slots=True)
class Failed:
    """A profile that never loaded: the hosts it names are refused, never served otherwise."""

    profile: SSLProfile
    error: MTLSError

    def refuse(self, host: str, port: int) -> ProfileUnavailableError:
        """The error ``context_for`` raises for a request this profile should have served."""
        where = f"{host}:{port}"
        error = ProfileUnavailableError(
            f"{where}: refused: the profile for it has not loaded, and no other profile "
            f"or default may serve it (that would send no client certificate): {self.error}",
            path=self.error.path,
            servers=self.profile.server_names,
            client_id=self.profile.client_id,
            cause=self.error,
        )
        error.__cause__ = self.error
        return error


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a reader needs, immutable; replaced whole on every applied change."""

    generation: int
    built: tuple[Built, ...]
    index: Mapping[IndexKey, Built | Failed]  # failed profiles too: their hosts are refused
    fast: Mapping[IndexKey, ssl.SSLContext]  # exact keys straight to their context
    default: Built | Failed | ssl.SSLContext | None
    failures: tuple[tuple[SSLProfile, MTLSError], ...]  # profiles with no last good at all
    config_error: MTLSError | None = None
    config_digest: str | None = None
    profiles: tuple[SSLProfile, ...] = ()
    watched: tuple[Path, ...] = ()
    pending: bool = False  # a file was caught mid-write: the next check must look again

    @property
    def errors(self) -> list[MTLSError]:
        """Every error the snapshot carries, config first."""
        out: list[MTLSError] = [self.config_error] if self.config_error else []
        out.extend(b.error for b in self.built if b.error is not None)
        if isinstance(self.default, Built | Failed) and self.default.error is not None:
            out.append(self.default.error)
        out.extend(err for _, err in self.failures)
        return out


def slot(profile: SSLProfile) -> tuple[tuple[Any, ...], str | None]:
    """What identifies 'the same profile' across reloads: its servers and client."""
    return (profile.servers, profile.client_id)


def _keys(profile: SSLProfile) -> Iterator[tuple[IndexKey, Server]]:
    for server in profile.servers:
        if server == CATCH_ALL:
            yield (CATCH_ALL, 0, profile.client_id), server
        else:
            yield (server[0], server[1], profile.client_id), server


def check_unique(profiles: Iterable[SSLProfile], path: str | None) -> None:
    """Refuse the same (host, port, client) in two profiles, naming both.

    Raises:
        ProfileConfigError: a duplicate (WSO2 would silently let one win).
    """
    seen: dict[IndexKey, SSLProfile] = {}
    for profile in profiles:
        for key, server in _keys(profile):
            other = seen.get(key)
            if other is not None:
                shown = "*" if server == CATCH_ALL else f"{key[0]}:{key[1]}"
                who = f" for client {key[2]!r}" if key[2] else ""
                raise ProfileConfigError(
                    f"{path or 'profiles'}: {shown}{who} appears in two profiles "
                    f"({', '.join(other.server_names)}) and "
                    f"({', '.join(profile.server_names)}): WSO2 would silently let one "
                    "win; keep it in one profile",
                    path=path,
                    servers=(shown,),
                    element="servers",
                )
            seen[key] = profile


def build_index(
    items: Iterable[Built | Failed], path: str | None
) -> tuple[dict[IndexKey, Built | Failed], dict[IndexKey, ssl.SSLContext]]:
    """Index profiles (loaded and failed) by (host, port, client_id).

    Only loaded ones go in the fast map; a failed one's keys stay in the index so
    that its hosts are refused rather than served by a catch-all or default.

    Raises:
        ProfileConfigError: the same key in two profiles.
    """
    items = list(items)
    check_unique((item.profile for item in items), path)
    index: dict[IndexKey, Built | Failed] = {}
    fast: dict[IndexKey, ssl.SSLContext] = {}
    for item in items:
        for key, server in _keys(item.profile):
            index[key] = item
            if server != CATCH_ALL and isinstance(item, Built):
                fast[key] = item.context_for_host(key[0])
    return index, fast


# --------------------------------------------------------------------------- building


@dataclass(slots=True)
class Options:
    """Set-wide options that shape every context."""

    hostname_verifier: str
    default_truststore: StoreConfig | None
    settle_delay: float
    path: str | None  # the profile file, for messages
    revocation: RevocationChecker | None = None  # the set's online check (one cache)


@dataclass(slots=True)
class _Material:
    """Files read for one profile in one check."""

    files: list[tuple[str, str, str]] = field(default_factory=list)


class Builder:
    """Builds Built entries with content-keyed caches of stores and contexts."""

    def __init__(self, reader: FileReader, options: Options, stop: threading.Event) -> None:
        self.reader = reader
        self.options = options
        self._stop = stop
        # content-keyed caches: (role, sha256, passwords, type) -> (store, fingerprint)
        self._stores: dict[tuple[Any, ...], tuple[Keystore | Truststore, str]] = {}
        self._failed: dict[tuple[Any, ...], MTLSError] = {}  # same key: same error, no re-parse
        self._leaves: dict[
            tuple[str, str | None], tuple[str | None, _dt.datetime | None, _dt.datetime | None]
        ] = {}
        self._contexts: dict[tuple[Any, ...], tuple[ssl.SSLContext, ssl.SSLContext | None]] = {}
        self._used_stores: set[tuple[Any, ...]] = set()
        self._used_contexts: set[tuple[Any, ...]] = set()
        self.reading = Reading(reader, options.settle_delay, stop)
        # One Served per material in a check: 1,000 profiles on the same stores share it.
        self._served: dict[tuple[Any, ...], Served] = {}

    def begin(self) -> Reading:
        """Start a check: stores and contexts not used by its end are dropped.

        Returns:
            The check's :class:`Reading`: every file it reads goes through it.
        """
        self._used_stores = set()
        self._used_contexts = set()
        self._served = {}
        self.reading = Reading(self.reader, self.options.settle_delay, self._stop)
        return self.reading

    def end(self) -> None:
        """Drop cache entries the new snapshot does not use."""
        for key in set(self._stores) - self._used_stores:
            del self._stores[key]
        for key in [k for k in self._failed if k[:-1] not in self._used_stores]:
            del self._failed[key]
        for key in set(self._contexts) - self._used_contexts:
            del self._contexts[key]
        live = {fp for _, fp in self._stores.values()}
        for leaf_key in [k for k in self._leaves if k[0] not in live]:
            del self._leaves[leaf_key]

    def keep(self, item: Built) -> None:
        """Mark the caches behind an entry that is carried over unchanged as used."""
        for key, (ctx, _) in self._contexts.items():
            if ctx is item.context:
                self._used_contexts.add(key)

    def _load(
        self, config: StoreConfig, keystore: bool, material: _Material
    ) -> tuple[Keystore | Truststore, str]:
        role = "keystore" if keystore else "truststore"
        try:
            data, digest = self.reading.read(config.location)
        except FileNotFoundError:
            # shown_location: never a path made from $env{} (as written instead), and
            # setting: the <Location> or deployment.toml key that named it.
            raise KeystoreError(
                f"{config.shown_location}: no such {role} file: check {config.setting}",
                path=config.shown_location,
            ) from None
        except OSError as exc:
            raise KeystoreError(
                f"{config.shown_location}: cannot read the {role} ({exc.strerror}): "
                f"check {config.setting}",
                path=config.shown_location,
            ) from None
        material.files.append((role, str(config.location), digest))
        # Everything that decides how the bytes are read is in the key (allow_unprotected
        # too: one profile's opt-out must never let another's PEM through). The path is
        # part of the failure key only so that a cached error names the right file.
        key = (
            role,
            digest,
            config.password,
            config.key_password,
            config.type,
            config.allow_unprotected,
        )
        failure_key = (*key, config.location)
        self._used_stores.add(key)
        failed = self._failed.get(failure_key)
        if failed is not None:
            # The same bytes with the same passwords failed before: say so again without
            # paying for the parse (a hostile PKCS#12 can cost seconds of KDF per try).
            raise failed.with_traceback(None)
        cached = self._stores.get(key)
        if cached is None:
            store = self._parse_store(config, keystore, data, failure_key)
            cached = (store, store.fingerprint)
            self._stores[key] = cached
        return cached

    def _parse_store(
        self, config: StoreConfig, keystore: bool, data: bytes, key: tuple[Any, ...]
    ) -> Keystore | Truststore:
        try:
            if keystore:
                return Keystore.from_bytes(
                    data,
                    config.password,
                    allow_unprotected=config.allow_unprotected,
                    key_password=config.key_password,
                    store_type=config.type,
                    _path=config.shown_location,
                )
            return Truststore.from_bytes(
                data,
                config.password,
                store_type=config.type,
                allow_unprotected=config.allow_unprotected,
                _path=config.shown_location,
            )
        except MTLSError as exc:
            self._failed[key] = exc
            raise

    def build(self, profile: SSLProfile, *, replacing: bool) -> Built:
        """Load a profile's stores and build (or reuse) its contexts.

        Raises:
            MTLSError: a store does not load, or the material fails validation.
            Unstable: a file changed between two reads; try again next check.
        """
        material = _Material()
        keystore, key_fp = (
            self._load(profile.keystore, True, material) if profile.keystore else (None, None)
        )
        trust_config = profile.truststore or self.options.default_truststore
        truststore, trust_fp = (
            self._load(trust_config, False, material) if trust_config else (None, None)
        )
        assert keystore is None or isinstance(keystore, Keystore)
        assert truststore is None or isinstance(truststore, Truststore)
        alias = profile.keystore.alias if profile.keystore else None
        subject, not_after = None, None
        if keystore is not None and key_fp is not None:
            leaf_info = self._leaves.get((key_fp, alias))
            if leaf_info is None:
                try:
                    _, _, chain = keystore.key_entry(alias)
                except KeyEntryError as exc:
                    written = profile.keystore.written_alias if profile.keystore else None
                    if written is None:
                        raise
                    # The alias came from a placeholder: name it as written, not its value.
                    raise KeyEntryError(
                        f"{profile.keystore.shown_location if profile.keystore else ''}: "
                        f"<KeyAlias>{written}</KeyAlias> names no usable key entry: check "
                        "the variable or property it names",
                        path=exc.path,
                    ) from None
                try:
                    leaf = _x509.load_cert(chain[0])
                    leaf_info = (
                        _x509.subject_text(leaf),
                        _x509.not_before(leaf),
                        _x509.not_after(leaf),
                    )
                except ValueError:
                    # OpenSSL takes it, cryptography does not (JDK 17 writes DSA
                    # certificates with trailing bytes in the signature algorithm):
                    # serve it, without the subject and expiry that status() shows.
                    leaf_info = (None, None, None)
                self._leaves[(key_fp, alias)] = leaf_info
            subject, not_before, not_after = leaf_info
            if replacing:  # every replacement is checked, cached leaf or not
                where = profile.keystore.shown_location if profile.keystore else ""
                _validate_validity(subject, not_before, not_after, where)
        # novalidatecert applies only without a truststore: a given TrustStore wins (WSO2).
        verify = not (profile.novalidatecert and profile.truststore is None)
        mode = self.options.hostname_verifier
        crls, crl_key = self._crls(profile, material)
        revocation = self.options.revocation
        ctx_key = (key_fp, alias, trust_fp, verify, mode, crl_key)
        self.reading.checkpoint()  # a safe point before building a context
        self._used_contexts.add(ctx_key)

        def make(hostname_verifier: str) -> ssl.SSLContext:
            return client_context(
                keystore,
                truststore,
                alias=alias,
                hostname_verifier=hostname_verifier,
                verify=verify,
                crls=crls,
                crl_check=profile.crl_check,
                revocation=revocation,
            )

        pair = self._contexts.get(ctx_key)
        if pair is None:
            if not verify:
                log.warning(
                    '%s: %s has novalidatecert="true" and no TrustStore: the backend\'s '
                    "certificate is NOT verified",
                    self.options.path or "profiles",
                    profile,
                )
            main = make(mode)
            local = make("AllowAll") if mode == "DefaultAndLocalhost" and verify else None
            pair = (main, local)
            self._contexts[ctx_key] = pair
        files = tuple(material.files)
        served = self._served.get((ctx_key, files))
        if served is None:
            now = _dt.datetime.now(_dt.UTC)
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
            served = Served(pair[0], pair[1], files, subject, not_after, now, make, pem)
            self._served[(ctx_key, files)] = served
        return Built(profile, served)

    def _crls(
        self, profile: SSLProfile, material: _Material
    ) -> tuple[CRLSet | None, tuple[Any, ...] | None]:
        """Read the profile's CRL files (each one more input file of the profile).

        Raises:
            CRLError: a file is missing, unreadable or not a CRL.
            Unstable: a file changed between two reads.
        """
        if not profile.crls:
            return None, None
        crls = CRLSet()
        digests = []
        for path in profile.crls:
            try:
                data, digest = self.reading.read(path)
            except OSError as exc:
                raise CRLError(
                    f"{path}: cannot read the CRL ({exc.strerror}): check the profile's crls",
                    path=path,
                ) from None
            material.files.append(("crl", str(path), digest))
            digests.append(digest)
            crls += CRLSet.from_bytes(data, path=path)
        return crls, (tuple(digests), profile.crl_check)

    def inputs_moved(self, item: Built) -> bool:
        """True if any file behind ``item`` now hashes differently.

        Raises:
            Unstable: one of them is still being written.
            Interrupted: ``close()`` was called.
        """
        reading = self.reading
        return any(reading.digest(Path(path)) != digest for _, path, digest in item.files)

    def watched(self, profiles: Iterable[SSLProfile], default: SSLProfile | None) -> set[Path]:
        """Every store file the profiles (and the default) reference."""
        paths: set[Path] = set()
        every = [*profiles, *([default] if default else [])]
        for profile in every:
            for config in (profile.keystore, profile.truststore):
                if config is not None:
                    paths.add(config.location)
            paths.update(profile.crls)
            if profile.truststore is None and self.options.default_truststore is not None:
                paths.add(self.options.default_truststore.location)
        return paths


def _validate_validity(
    subject: str | None,
    not_before: _dt.datetime | None,
    not_after: _dt.datetime | None,
    where: str,
) -> None:
    now = _dt.datetime.now(_dt.UTC)
    if not_after is not None and not_after < now:
        raise KeystoreError(
            f"{where}: the new client certificate ({subject}) expired on "
            f"{not_after.date()}: not installed; the previous one stays",
            path=where,
        )
    if not_before is not None and not_before > now:
        raise KeystoreError(
            f"{where}: the new client certificate ({subject}) is not valid before "
            f"{not_before}: not installed yet; the previous one stays",
            path=where,
        )


def describe_change(old: Built | None, new: Built) -> str:
    """One log line's worth about a profile whose context changed."""

    def who(item: Built | None) -> str:
        if item is None or item.subject is None:
            return "no client certificate"
        expiry = item.not_after.date().isoformat() if item.not_after else "?"
        return f"{item.subject} (until {expiry})"

    return f"{new.profile}: {who(old)} -> {who(new)}"


Callback = Callable[[int, int], object]


class Subscribers:
    """Callbacks run after each applied change, outside any lock, each isolated."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callback] = []

    def add(self, callback: Callback) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def remove(self, callback: Callback) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def notify(self, old: int, new: int, *, swallow_all: bool = False) -> None:
        """Call every callback; one that raises is logged and the others still run.

        ``KeyboardInterrupt`` and ``SystemExit`` propagate (after the others ran)
        unless ``swallow_all``: the reload thread survives anything.
        """
        with self._lock:
            callbacks = list(self._callbacks)
        pending: BaseException | None = None
        for callback in callbacks:
            try:
                callback(old, new)
            except BaseException as exc:
                log.exception("mtls: a reload subscriber raised; the others still run")
                if not swallow_all and isinstance(exc, KeyboardInterrupt | SystemExit):
                    pending = pending or exc
        if pending is not None:
            raise pending


def check_seconds(name: str, value: object, *, zero: bool) -> float:
    """``value`` as seconds for ``Event.wait``, or a ValueError naming the range.

    Raises:
        ValueError: not a number, not finite, below the range, or above
            ``threading.TIMEOUT_MAX`` (which ``Event.wait`` refuses with OverflowError).
    """
    limit = threading.TIMEOUT_MAX
    kind = "a number of seconds from 0" if zero else "a positive number of seconds"
    why = f"{name} must be {kind} up to {limit:.0f} (threading.TIMEOUT_MAX), not {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(why)  # noqa: TRY004 - one error type for every bad interval
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        raise ValueError(why)
    if seconds > limit:
        raise ValueError(why)
    return seconds


class Timer:
    """The named daemon thread that calls ``check`` every ``interval`` seconds.

    Nothing short of interpreter shutdown ends it but :meth:`close`: ``check``
    reports its own failures, and anything that still escapes (a ``BaseException``
    such as ``asyncio.CancelledError`` from a secret resolver) is logged here and
    the thread carries on.
    """

    def __init__(self, name: str, interval: float, check: Callable[[], object]) -> None:
        self.interval = check_seconds("reload_interval", interval, zero=False)
        self.stop = threading.Event()
        self._check = check
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Event.wait, not time.sleep: close() ends the wait at once.
        while not self.stop.wait(self.interval):
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

    @property
    def current(self) -> bool:
        """True when called on the reload thread itself."""
        return self._thread is threading.current_thread()


class Reports:
    """Each distinct problem is logged once: when it appears, when it changes, and
    when it is resolved (at WARNING too, so whoever saw the warning sees its end),
    not at every check. ``status()`` shows it all the while."""

    def __init__(self) -> None:
        self._shown: dict[Hashable, str] = {}

    def update(
        self,
        current: Mapping[Hashable, tuple[str, str, BaseException | None]],
        where: str,
        *,
        log_new: bool = True,
    ) -> None:
        """``current``: problem key -> (message, what happens meanwhile, exception
        whose traceback to log with it). ``log_new=False`` records without logging
        (the first load logs its own way)."""
        if log_new:
            for key, (message, meanwhile, exc) in current.items():
                if self._shown.get(key) != message:
                    log.warning(
                        "%s%s; %s", _prefix(where, message), message, meanwhile, exc_info=exc
                    )
            for key, message in self._shown.items():
                if key not in current:
                    log.warning("%sresolved: %s", f"{where}: ", _first_line(message))
        self._shown = {key: message for key, (message, _, _) in current.items()}


def _prefix(where: str, message: str) -> str:
    return "" if message.startswith(where) else f"{where}: "


def _first_line(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."
