"""Fingerprints, snapshots and the reload thread.

Theory of operation
-------------------
All mutable state of a profile set is one reference, ``Engine.snapshot``, to an
immutable :class:`Snapshot` (profiles, their contexts, the lookup index, the file
fingerprints they were built from, per-profile errors). Readers (``context_for``)
read that reference once and use what they got: they never lock, never wait on a
rebuild, and see either the whole old set or the whole new one.

Writers are serialised by ``Engine._lock``: the background thread's periodic
check and any ``reload()`` call take it, build a new snapshot off to the side,
and publish it with one assignment. Subscribers are called after the lock is
released, on a copied list, each in its own ``try``.

A check is cheap when nothing changed: one ``os.stat`` per distinct watched file
(the profile file and every store), compared with the stat recorded when its
content was last hashed. Only files whose size, mtime, ctime or inode moved are
read and hashed; only when a hash differs is anything parsed or built. ``stat``
follows symlinks on every check, so a Kubernetes ``..data`` swap (new inode, even
with an older mtime) is seen.

A changed file is applied only when two reads a settle delay apart give the same
hash, so a store caught mid-write is never installed. Contexts are cached by
content (store hashes, passwords, options): a profile whose inputs did not change
keeps its very same ``SSLContext``; identical material is one context however many
profiles use it. A profile whose new material fails to load or validate keeps its
last good context and reports the error; the next check retries it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _x509
from ._config import CATCH_ALL, Server, SSLProfile, StoreConfig
from ._context import LOCALHOST_NAMES, client_context
from ._errors import KeystoreError, MTLSError, ProfileConfigError
from ._files import read_input
from ._stores import Keystore, Truststore

log = logging.getLogger("mtls")

_MISSING: tuple[int, ...] = (-1,)
IndexKey = tuple[str, int, str | None]


# --------------------------------------------------------------------------- files


def _stat_key(path: Path) -> tuple[int, ...]:
    try:
        st = os.stat(path)  # follows symlinks: a ..data swap changes the inode we see
    except OSError:
        return _MISSING
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class FileReader:
    """Content hashes of files, re-hashed only when their stat moved."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, ...], str | None]] = {}

    def moved(self, path: Path) -> bool:
        """True if the file's stat differs from when it was last hashed (or never was)."""
        cached = self._cache.get(path)
        return cached is None or cached[0] != _stat_key(path)

    def read(self, path: Path) -> tuple[bytes, str]:
        """Read the file and record its hash against the stat seen before reading.

        Raises:
            OSError: the file cannot be read.
        """
        before = _stat_key(path)
        data = read_input(path)
        digest = hashlib.sha256(data).hexdigest()
        self._cache[path] = (before, digest)
        return data, digest

    def digest(self, path: Path) -> str | None:
        """The content hash (cached while the stat does not move); None if unreadable."""
        key = _stat_key(path)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            return self.read(path)[1]
        except OSError:
            self._cache[path] = (key, None)  # remembered, so a missing file costs one stat
            return None

    def forget(self, keep: Iterable[Path]) -> None:
        """Drop cache entries for files no longer watched."""
        wanted = set(keep)
        for path in list(self._cache):
            if path not in wanted:
                del self._cache[path]


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
class Snapshot:
    """Everything a reader needs, immutable; replaced whole on every applied change."""

    generation: int
    built: tuple[Built, ...]
    index: Mapping[IndexKey, Built]
    fast: Mapping[IndexKey, ssl.SSLContext]  # exact keys straight to their context
    default: Built | ssl.SSLContext | None
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
        if isinstance(self.default, Built) and self.default.error is not None:
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
    built: Iterable[Built], path: str | None
) -> tuple[dict[IndexKey, Built], dict[IndexKey, ssl.SSLContext]]:
    """Index profiles by (host, port, client_id); duplicates are a ProfileConfigError."""
    items = list(built)
    check_unique((item.profile for item in items), path)
    index: dict[IndexKey, Built] = {}
    fast: dict[IndexKey, ssl.SSLContext] = {}
    for item in items:
        for key, server in _keys(item.profile):
            index[key] = item
            if server != CATCH_ALL:
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
        self._settled: dict[Path, tuple[bytes, str] | None] = {}
        # One Served per material in a check: 1,000 profiles on the same stores share it.
        self._served: dict[tuple[Any, ...], Served] = {}

    def begin(self) -> None:
        """Start a check: stores and contexts not used by its end are dropped."""
        self._used_stores = set()
        self._used_contexts = set()
        self._settled = {}
        self._served = {}

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

    def _read(self, path: Path) -> tuple[bytes, str]:
        # Each file is read once per check, however many profiles name it.
        return self.settled_read(path)

    def settle(self, paths: Iterable[Path]) -> None:
        """Read each changed file twice, one settle delay apart (one wait for all).

        A file whose two reads differ is still being written: :meth:`settled_read`
        raises :class:`Unstable` for it during this check, and the next check retries.
        """
        firsts: dict[Path, str] = {}
        for path in paths:
            if path in self._settled:
                continue
            try:
                firsts[path] = self.reader.read(path)[1]
            except OSError:
                continue  # missing or unreadable: the build reports it
        if not firsts:
            return
        # Interruptible: close() ends the wait at once.
        self._stop.wait(self.options.settle_delay)
        for path, first in firsts.items():
            try:
                second = self.reader.read(path)
            except OSError:
                continue
            self._settled[path] = second if second[1] == first else None

    def settled_read(self, path: Path) -> tuple[bytes, str]:
        """The bytes of ``path`` as settled in this check (or read now if it had not moved).

        Raises:
            Unstable: the file changed between the two reads of :meth:`settle`.
            OSError: the file cannot be read.
        """
        if path in self._settled:
            result = self._settled[path]
            if result is None:
                raise Unstable(path)
            return result
        result = self.reader.read(path)
        self._settled[path] = result
        return result

    def _load(
        self, config: StoreConfig, keystore: bool, material: _Material
    ) -> tuple[Keystore | Truststore, str]:
        role = "keystore" if keystore else "truststore"
        try:
            data, digest = self._read(config.location)
        except FileNotFoundError:
            raise KeystoreError(
                f"{config.location}: no such {role} file: check <Location> (relative paths "
                "start from the base directory)",
                path=config.location,
            ) from None
        except OSError as exc:
            raise KeystoreError(
                f"{config.location}: cannot read the {role} ({exc.strerror})", path=config.location
            ) from None
        material.files.append((role, str(config.location), digest))
        # The path is part of the key only so that a cached error names the right file.
        key = (role, digest, config.password, config.key_password, config.type)
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
                    _path=str(config.location),
                )
            return Truststore.from_bytes(
                data,
                config.password,
                store_type=config.type,
                allow_unprotected=config.allow_unprotected,
                _path=str(config.location),
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
                _, _, chain = keystore.key_entry(alias)
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
                where = str(profile.keystore.location) if profile.keystore else ""
                _validate_validity(subject, not_before, not_after, where)
        # novalidatecert applies only without a truststore: a given TrustStore wins (WSO2).
        verify = not (profile.novalidatecert and profile.truststore is None)
        mode = self.options.hostname_verifier
        ctx_key = (key_fp, alias, trust_fp, verify, mode)
        self._used_contexts.add(ctx_key)
        pair = self._contexts.get(ctx_key)
        if pair is None:
            if not verify:
                log.warning(
                    '%s: %s has novalidatecert="true" and no TrustStore: the backend\'s '
                    "certificate is NOT verified",
                    self.options.path or "profiles",
                    profile,
                )
            main = client_context(
                keystore, truststore, alias=alias, hostname_verifier=mode, verify=verify
            )
            local = (
                client_context(
                    keystore, truststore, alias=alias, hostname_verifier="AllowAll", verify=verify
                )
                if mode == "DefaultAndLocalhost" and verify
                else None
            )
            pair = (main, local)
            self._contexts[ctx_key] = pair
        files = tuple(material.files)
        served = self._served.get((ctx_key, files))
        if served is None:

            def make(hostname_verifier: str) -> ssl.SSLContext:
                return client_context(
                    keystore,
                    truststore,
                    alias=alias,
                    hostname_verifier=hostname_verifier,
                    verify=verify,
                )

            now = _dt.datetime.now(_dt.UTC)
            served = Served(pair[0], pair[1], files, subject, not_after, now, make)
            self._served[(ctx_key, files)] = served
        return Built(profile, served)

    def inputs_moved(self, item: Built) -> bool:
        """True if any file behind ``item`` now hashes differently (or the config changed)."""
        return any(self.reader.digest(Path(path)) != digest for _, path, digest in item.files)

    def watched(self, profiles: Iterable[SSLProfile], default: SSLProfile | None) -> set[Path]:
        """Every store file the profiles (and the default) reference."""
        paths: set[Path] = set()
        every = [*profiles, *([default] if default else [])]
        for profile in every:
            for config in (profile.keystore, profile.truststore):
                if config is not None:
                    paths.add(config.location)
            if profile.truststore is None and self.options.default_truststore is not None:
                paths.add(self.options.default_truststore.location)
        return paths


class Unstable(Exception):
    """A file changed between two reads of one check."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is still being written")
        self.path = path


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

    def notify(self, old: int, new: int) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(old, new)
            except Exception:
                log.exception("mtls: a reload subscriber raised; the others still run")


class Timer:
    """The named daemon thread that calls ``check`` every ``interval`` seconds."""

    def __init__(self, name: str, interval: float, check: Callable[[], object]) -> None:
        if interval <= 0:
            raise ValueError("reload_interval must be a positive number of seconds")
        self.interval = interval
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
            except Exception:  # a bug must not kill the thread that keeps certs fresh
                log.exception("mtls: unexpected error during a reload check")

    def close(self, timeout: float | None = None) -> None:
        self.stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
