"""SSLProfileSet: profiles in, ``ssl.SSLContext`` per ``host:port`` out, kept current.

The set reads profiles (from code, WSO2's XML, or deployment.toml), builds one
context per distinct material, indexes them by ``(host, port, client_id)``, and
(with ``reload_interval``) keeps them current from a background thread. The
concurrency design is described at the top of ``_reloader.py``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ._config import CATCH_ALL, SSLProfile, StoreConfig, normalize_host
from ._context import normalize_hostname_verifier
from ._errors import MTLSError, ProfileConfigError
from ._material import TLSMaterial
from ._reloader import (
    Builder,
    Built,
    Callback,
    FileReader,
    IndexKey,
    Options,
    Served,
    Snapshot,
    Subscribers,
    Timer,
    Unstable,
    build_index,
    check_unique,
    describe_change,
    slot,
)
from ._secret import Secret
from ._wso2 import parse_profiles_xml, read_deployment_toml

log = logging.getLogger("mtls")

_DEFAULT_PORTS = {"https": 443, "wss": 443}
_FROM_FILE: Any = object()


class _Source(Protocol):
    """Where profiles come from: code (no file) or a profile file."""

    path: Path | None

    def load(
        self, read: Callable[[Path], tuple[bytes, str]]
    ) -> tuple[list[SSLProfile], str | None]: ...


class _Static:
    """Profiles given in code: nothing to re-read but the stores."""

    path: Path | None = None

    def __init__(self, profiles: Iterable[SSLProfile]) -> None:
        self._profiles = list(profiles)
        for profile in self._profiles:
            if not isinstance(profile, SSLProfile):
                raise TypeError(f"expected SSLProfile objects, got {type(profile).__name__}")

    def load(
        self, read: Callable[[Path], tuple[bytes, str]]
    ) -> tuple[list[SSLProfile], str | None]:
        """The profiles given in code (there is no file to ``read``)."""
        del read
        return list(self._profiles), None


class _XmlFile:
    """A customSSLProfiles file, re-parsed when its content changes."""

    def __init__(
        self,
        path: Path,
        base_dir: Path,
        properties: Mapping[str, str] | None,
        secret_resolver: Callable[[str], str | Secret | None] | None,
    ) -> None:
        self.path: Path | None = path
        self._base_dir = base_dir
        self._properties = dict(properties or {})
        self._secret_resolver = secret_resolver

    def load(
        self, read: Callable[[Path], tuple[bytes, str]]
    ) -> tuple[list[SSLProfile], str | None]:
        """Read the file with ``read`` (settled during reloads) and parse it."""
        assert self.path is not None
        try:
            data, digest = read(self.path)
        except FileNotFoundError:
            raise ProfileConfigError(
                f"{self.path}: no such profile file: check the path", path=self.path
            ) from None
        except OSError as exc:
            raise ProfileConfigError(
                f"{self.path}: cannot read the profile file ({exc.strerror})", path=self.path
            ) from None
        profiles = parse_profiles_xml(
            data,
            path=str(self.path),
            base_dir=self._base_dir,
            properties=self._properties,
            secret_resolver=self._secret_resolver,
        )
        return profiles, digest


def _with_profile(profile: SSLProfile, exc: MTLSError, path: str | None) -> MTLSError:
    """The same error, saying which profile it concerns (its servers)."""
    if isinstance(exc, ProfileConfigError) and exc.servers:
        return exc
    names = ", ".join(profile.server_names)
    who = f" (client {profile.client_id!r})" if profile.client_id else ""
    message = f"profile {names}{who}: {exc}"
    if isinstance(exc, ProfileConfigError):
        return ProfileConfigError(
            message, path=exc.path or path, servers=profile.server_names, element=exc.element
        )
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    Exception.__init__(new, message)
    new.servers = profile.server_names  # type: ignore[attr-defined]
    return new


class SSLProfileSet:
    """Profiles indexed by backend ``host:port``, each with its ready ``ssl.SSLContext``.

    Lookup order (WSO2's): the exact ``(host, port, client_id)``, then
    ``(host, port)`` without a client, then the ``*`` profile, then ``default``.
    Hosts match case-insensitively; IP literals match literally (no DNS).

    Contexts are shared by content: profiles with identical stores and options get
    the same context object. Contexts are never changed after they are handed out;
    a rotation publishes new ones (see :meth:`reload`).

    Use it as a context manager (or call :meth:`close`) when a reload thread runs.

    Example:
        >>> import mtls
        >>> ca_store = mtls.Keystore.generate("backend", "CN=backend", key_type="EC")
        >>> profiles = mtls.SSLProfileSet([], default=mtls.client_context())
        >>> profiles.context_for("example.org", 443) is not None
        True
    """

    def __init__(
        self,
        profiles: Iterable[SSLProfile] = (),
        *,
        hostname_verifier: str = "Strict",
        default: ssl.SSLContext | SSLProfile | None = None,
        default_truststore: StoreConfig | None = None,
        skip_failures: bool = False,
        reload_interval: float | None = None,
        settle_delay: float = 0.1,
    ) -> None:
        """Build a set from profiles made in code.

        Args:
            profiles: the profiles; store files are read now.
            hostname_verifier: ``Strict``, ``Default``, ``DefaultAndLocalhost`` or
                ``AllowAll`` (case-insensitive), for the whole set as in WSO2.
            default: used when no profile matches: a ready context, or a profile
                whose stores are loaded and reloaded like the others. ``None``:
                :meth:`context_for` returns ``None`` for unmatched hosts.
            default_truststore: trust for profiles without a ``TrustStore``
                (``None``: the system's trust).
            skip_failures: load what loads and report the rest (WSO2's
                ``ssl.profile.skip.failures``) instead of raising.
            reload_interval: seconds between background checks; ``None``: no thread,
                call :meth:`reload` yourself.
            settle_delay: seconds between the two reads that confirm a changed file
                is complete.

        Raises:
            ProfileConfigError: duplicate ``host:port`` entries, bad options.
            KeystoreError: a store does not load (with ``skip_failures=False``).
        """
        self._setup(
            _Static(profiles),
            hostname_verifier=hostname_verifier,
            default=default,
            default_truststore=default_truststore,
            skip_failures=skip_failures,
            reload_interval=reload_interval,
            settle_delay=settle_delay,
        )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_xml(
        cls,
        path: str | os.PathLike[str],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        hostname_verifier: str = "Strict",
        default: ssl.SSLContext | SSLProfile | None = None,
        default_truststore: StoreConfig | None = None,
        secret_resolver: Callable[[str], str | Secret | None] | None = None,
        properties: Mapping[str, str] | None = None,
        skip_failures: bool = False,
        reload_interval: float | None = None,
        settle_delay: float = 0.1,
    ) -> SSLProfileSet:
        """Load WSO2's customSSLProfiles XML (``sslprofiles.xml``).

        Args:
            path: the profile file.
            base_dir: what relative ``<Location>`` paths start from (WSO2: the product
                home, its working directory). Default: the current directory, now.
            secret_resolver: called with each ``svns:secretAlias``; returns the
                password, or ``None``/``KeyError`` for an unknown alias (an error).
            properties: values for ``$sys{name}`` and ``${name}`` placeholders.
            reload_interval: seconds between checks of the XML and every store it
                names (WSO2's ``interval``, which is in milliseconds).
            hostname_verifier: as for the constructor.
            default: as for the constructor.
            default_truststore: as for the constructor.
            skip_failures: as for the constructor.
            settle_delay: as for the constructor.

        Raises:
            ProfileConfigError: the file is missing, hostile, malformed, or a profile is wrong.
            KeystoreError: a store does not load (with ``skip_failures=False``).
        """
        xml_path = Path(os.path.abspath(path))
        home = Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))
        self = cls.__new__(cls)
        self._setup(
            _XmlFile(xml_path, home, properties, secret_resolver),
            hostname_verifier=hostname_verifier,
            default=default,
            default_truststore=default_truststore,
            skip_failures=skip_failures,
            reload_interval=reload_interval,
            settle_delay=settle_delay,
        )
        return self

    @classmethod
    def from_deployment_toml(
        cls,
        path: str | os.PathLike[str],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        hostname_verifier: str | None = None,
        secret_resolver: Callable[[str], str | Secret | None] | None = None,
        properties: Mapping[str, str] | None = None,
        skip_failures: bool = False,
        reload_interval: float | None = _FROM_FILE,
        settle_delay: float = 0.1,
        profiles_path: str | os.PathLike[str] | None = None,
    ) -> SSLProfileSet:
        """Load the profile file, interval, hostname verifier and default stores that a
        WSO2 ``deployment.toml`` names.

        Reads ``[transport.passthru_https.sender.ssl_profile]`` ``file_path`` and
        ``interval`` (milliseconds) and ``[transport.passthru_https.sender.parameters]``
        ``HostnameVerifier`` (API Manager), or ``[transport.http]``
        ``sender.ssl_profile.file_path`` / ``read_interval`` / ``sender.hostname_verifier``
        (Micro Integrator). ``[keystore.tls]`` (else ``[keystore.primary]``) and
        ``[truststore]`` become the identity and trust used when no profile matches,
        and ``[truststore]`` is the trust of profiles without a ``<TrustStore>``.

        Args:
            path: deployment.toml.
            base_dir: the product home that relative paths start from. Default: the
                current directory, as WSO2 resolves against its working directory.
            hostname_verifier: overrides the file's value; neither: ``Strict``.
            reload_interval: overrides the file's interval (seconds); ``None`` turns
                the thread off. Default: the file's interval, else WSO2's 10 minutes.
            profiles_path: a profile file to use instead of the one the TOML names
                (to check a candidate file against production settings).

        Raises:
            ProfileConfigError: the TOML is missing, malformed or names no profile file.
        """
        home = Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))
        settings = read_deployment_toml(
            os.fspath(path),
            base_dir=home,
            properties=properties,
            require_profiles=profiles_path is None,
            secret_resolver=secret_resolver,
        )
        chosen = profiles_path if profiles_path is not None else settings.profiles_path
        assert chosen is not None  # read_deployment_toml raised otherwise
        if reload_interval is _FROM_FILE:
            interval_ms = settings.interval_ms if settings.interval_ms is not None else 600_000
            reload_interval = interval_ms / 1000 if interval_ms > 0 else None
        default = (
            SSLProfile(
                servers=(CATCH_ALL,), keystore=settings.keystore, truststore=settings.truststore
            )
            if settings.keystore or settings.truststore
            else None
        )
        verifier = hostname_verifier or settings.hostname_verifier or "Strict"
        if hostname_verifier is None and settings.hostname_verifier is not None:
            try:
                normalize_hostname_verifier(settings.hostname_verifier)
            except ValueError:
                # WSO2 treats an unknown value as Default; say so instead of failing.
                log.warning(
                    "%s: unknown HostnameVerifier %r: using Default, as WSO2 does",
                    os.fspath(path),
                    settings.hostname_verifier,
                )
                verifier = "Default"
        return cls.from_xml(
            chosen,
            base_dir=home,
            hostname_verifier=verifier,
            default=default,
            default_truststore=settings.truststore,
            secret_resolver=secret_resolver,
            properties=properties,
            skip_failures=skip_failures,
            reload_interval=reload_interval,
            settle_delay=settle_delay,
        )

    def _setup(
        self,
        source: _Source,
        *,
        hostname_verifier: str,
        default: ssl.SSLContext | SSLProfile | None,
        default_truststore: StoreConfig | None,
        skip_failures: bool,
        reload_interval: float | None,
        settle_delay: float,
    ) -> None:
        mode = normalize_hostname_verifier(hostname_verifier)
        if default is not None and not isinstance(default, ssl.SSLContext | SSLProfile):
            raise TypeError("default must be an ssl.SSLContext, an SSLProfile or None")
        self._source = source
        self._path = str(source.path) if source.path else None
        self._options = Options(mode, default_truststore, settle_delay, self._path)
        self._stop = threading.Event()
        self._reader = FileReader()
        self._builder = Builder(self._reader, self._options, self._stop)
        self._lock = threading.Lock()
        self._subscribers = Subscribers()
        self._default = default
        self._closed = False
        self._pending = False
        self._variants: dict[
            tuple[int, tuple[str, ...]], tuple[ssl.SSLContext, ssl.SSLContext]
        ] = {}
        self._variant_lock = threading.Lock()
        self._snapshot = self._first_snapshot(skip_failures)
        self._fast = self._snapshot.fast
        self._timer: Timer | None = None
        if reload_interval is not None:
            name = f"mtls-reloader-{Path(self._path).name if self._path else hex(id(self))}"
            self._timer = Timer(name, float(reload_interval), self.reload)
            self._timer.start()

    # ------------------------------------------------------------------ building

    def _build_default(self, prev: Built | None) -> Built | ssl.SSLContext | None:
        if not isinstance(self._default, SSLProfile):
            return self._default
        return self._builder.build(self._default, replacing=prev is not None)

    def _first_snapshot(self, skip_failures: bool) -> Snapshot:
        self._builder.begin()
        profiles, digest = self._source.load(self._reader.read)
        built: list[Built] = []
        failures: list[tuple[SSLProfile, MTLSError]] = []
        for profile in profiles:
            try:
                built.append(self._builder.build(profile, replacing=False))
            except MTLSError as exc:
                error = _with_profile(profile, exc, self._path)
                if not skip_failures:
                    raise error from exc
                log.warning("%s: skipped (skip_failures): %s", self._path or "profiles", error)
                failures.append((profile, error))
        index, fast = build_index(built, self._path)
        default = self._build_default(None)
        self._builder.end()
        return Snapshot(
            generation=0,
            built=tuple(built),
            index=index,
            fast=fast,
            default=default,
            failures=tuple(failures),
            config_digest=digest,
            profiles=tuple(profiles),
            watched=self._watched(profiles),
        )

    def _watched(self, profiles: Iterable[SSLProfile]) -> tuple[Path, ...]:
        paths = self._builder.watched(
            profiles, self._default if isinstance(self._default, SSLProfile) else None
        )
        if self._source.path is not None:
            paths.add(self._source.path)
        return tuple(sorted(paths))

    def _check(self, old: Snapshot) -> tuple[Snapshot, bool]:
        if not (old.errors or old.pending) and not any(self._reader.moved(p) for p in old.watched):
            return old, False  # the common case: a few stats, nothing read
        builder = self._builder
        builder.begin()
        self._pending = False
        # Every file whose stat moved is read twice, one settle delay apart, before
        # anything is parsed: a file still being written is left for the next check.
        builder.settle([p for p in old.watched if self._reader.moved(p)])
        profiles: list[SSLProfile] = list(old.profiles)
        digest = old.config_digest
        config_error: MTLSError | None = None
        path = self._source.path
        if path is not None and (
            old.config_error is not None or self._reader.digest(path) != old.config_digest
        ):
            try:
                loaded, loaded_digest = self._source.load(builder.settled_read)
                check_unique(loaded, self._path)  # a duplicate refuses the file, like a typo
            except Unstable:
                self._pending = True  # still being written: the next check takes it
            except MTLSError as exc:
                # The last good profiles stay, and their stores still rotate below.
                config_error = exc
                log.warning("%s: not reloaded, keeping the last good set: %s", path, exc)
            else:
                profiles, digest = loaded, loaded_digest
                builder.settle(set(self._watched(profiles)) - set(old.watched))
        changed = False
        previous = {slot(item.profile): item for item in old.built}
        built: list[Built] = []
        failures: list[tuple[SSLProfile, MTLSError]] = []
        for profile in profiles:
            prev = previous.get(slot(profile))
            item = self._rebuild(profile, prev, failures)
            if item is None:
                continue
            if prev is None or item.context is not prev.context:
                changed = True
                if item.error is None:
                    log.info("%s: reloaded %s", path or "profiles", describe_change(prev, item))
            built.append(item)
        if {slot(b.profile) for b in built} != set(previous):
            changed = True
        index, fast = build_index(built, self._path)  # unique: checked when loaded
        default = old.default
        if isinstance(self._default, SSLProfile):
            assert isinstance(old.default, Built)
            new_default = self._rebuild(self._default, old.default, [])
            if new_default is not None:
                changed = changed or new_default.context is not old.default.context
                default = new_default
        builder.end()
        new = Snapshot(
            generation=old.generation + (1 if changed else 0),
            built=tuple(built),
            index=index,
            fast=fast,
            default=default,
            failures=tuple(failures),
            config_error=config_error,
            config_digest=digest,
            profiles=tuple(profiles),
            watched=self._watched(profiles),
            pending=self._pending,
        )
        return new, changed

    def _rebuild(
        self,
        profile: SSLProfile,
        prev: Built | None,
        failures: list[tuple[SSLProfile, MTLSError]],
    ) -> Built | None:
        builder = self._builder
        if (
            prev is not None
            and prev.error is None
            and prev.profile == profile
            and not builder.inputs_moved(prev)
        ):
            builder.keep(prev)
            return prev
        try:
            return builder.build(profile, replacing=prev is not None)
        except Unstable as exc:
            log.info("%s: %s; retrying at the next check", self._path or "profiles", exc)
            self._pending = True
            if prev is not None:
                builder.keep(prev)
            return prev
        except MTLSError as exc:
            error = _with_profile(profile, exc, self._path)
            log.warning(
                "%s: %s; %s",
                self._path or "profiles",
                error,
                "keeping its last good context" if prev is not None else "not loaded",
            )
            if prev is None:
                failures.append((profile, error))
                return None
            builder.keep(prev)
            return replace(prev, error=error)

    # ------------------------------------------------------------------ reloading

    def reload(self) -> bool:
        """Check the profile file and every store now, and apply what changed.

        Safe from any thread, also while the background thread runs (checks are
        serialised). Never raises for bad files: a profile whose new material fails
        keeps its last good context, and the error is in :attr:`last_error` and
        :meth:`status` until a later check succeeds.

        Returns:
            True if any context changed (then :attr:`generation` grew by one and
            subscribers were called).
        """
        with self._lock:
            old = self._snapshot
            try:
                new, changed = self._check(old)
            except Exception as exc:  # a bug, or a resolver that raised something odd
                # Keep the last good set, say why, and make the next check look at
                # everything again: the file reader has already seen the new stats.
                log.exception("%s: reload check failed; keeping the last good set", self._path)
                error = ProfileConfigError(
                    f"{self._path or 'profiles'}: reload failed ({type(exc).__name__}: {exc}); "
                    "keeping the last good set, retrying at the next check",
                    path=self._path,
                )
                error.__cause__ = exc
                new, changed = replace(old, config_error=error, pending=True), False
            self._snapshot = new
            self._fast = new.fast
            self._reader.forget(new.watched)  # files no profile names any more
        if changed:
            self._prune_variants()  # outside the reload lock: never waits on a build
            self._subscribers.notify(old.generation, new.generation)
        return changed

    @property
    def generation(self) -> int:
        """Grows by one with each applied change (0 after the first load)."""
        return self._snapshot.generation

    @property
    def last_error(self) -> MTLSError | None:
        """The first error of the last check (config, then profiles), or None when all is well."""
        errors = self._snapshot.errors
        return errors[0] if errors else None

    @property
    def failures(self) -> tuple[tuple[SSLProfile, MTLSError], ...]:
        """Profiles that never loaded (with ``skip_failures`` or added by a reload), with why."""
        return self._snapshot.failures

    @property
    def errors(self) -> list[MTLSError]:
        """Every error of the last check."""
        return self._snapshot.errors

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(old_generation, new_generation)`` after each applied change.

        Callbacks run on the thread that applied the change, outside any lock; one
        that raises is logged and does not stop the others.

        Returns:
            A function that unsubscribes the callback.
        """
        self._subscribers.add(callback)
        return lambda: self._subscribers.remove(callback)

    def unsubscribe(self, callback: Callback) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        self._subscribers.remove(callback)

    def close(self) -> None:
        """Stop the reload thread and wait for it. Idempotent; lookups keep working."""
        self._closed = True
        self._stop.set()
        if self._timer is not None:
            self._timer.close()

    @property
    def reloading(self) -> bool:
        """True while the background reload thread runs."""
        return self._timer is not None and self._timer.alive

    def __enter__(self) -> SSLProfileSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ lookup

    def context_for(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        alpn: Sequence[str] | None = None,
    ) -> ssl.SSLContext | None:
        """The context for a backend, or ``None`` when nothing (not even a default) matches.

        Args:
            host: the backend's host name or IP literal (case-insensitive; IPv6 with or
                without brackets). Never resolved through DNS.
            port: the backend's port (always explicit: 443 for https).
            client_id: WSO2's ``ssl.profile.client.identifier``; falls back to the
                profile without a client.
            alpn: ALPN protocols to offer (``["h2", "http/1.1"]``). The set returns a
                context of its own for each list, built from the same stores, so that
                no client ever sets ALPN on a context another client shares (HTTP
                clients do that before every handshake). A ``default`` given as a ready
                ``ssl.SSLContext`` is returned as it is.
        """
        if alpn is None:
            # One read of one immutable mapping: the whole old set or the whole new one.
            ctx = self._fast.get((host, port, client_id))
            if ctx is not None:
                return ctx
            return self._slow_context(self._snapshot, host, port, client_id)
        base, served = self._lookup(self._snapshot, host, port, client_id)
        if base is None or served is None:
            return base
        return self._with_alpn(base, served, tuple(alpn))

    def _lookup(
        self, snapshot: Snapshot, host: str, port: int, client_id: str | None
    ) -> tuple[ssl.SSLContext | None, Served | None]:
        name = normalize_host(host)
        item = self._match(snapshot, name, port, client_id)
        if item is None and isinstance(snapshot.default, Built):
            item = snapshot.default
        if item is not None:
            return item.context_for_host(name), item.served
        return snapshot.default if isinstance(snapshot.default, ssl.SSLContext) else None, None

    def _with_alpn(
        self, base: ssl.SSLContext, served: Served, alpn: tuple[str, ...]
    ) -> ssl.SSLContext:
        key = (id(base), alpn)
        hit = self._variants.get(key)
        if hit is not None:
            return hit[1]
        with self._variant_lock:
            hit = self._variants.get(key)
            if hit is None:
                local = base is served.localhost_context
                ctx = served.make("AllowAll" if local else self._options.hostname_verifier)
                ctx.set_alpn_protocols(list(alpn))  # before anyone else sees it
                hit = (base, ctx)  # holding base keeps its id from being reused
                # A reload may have retired base since the caller looked it up (and
                # pruned already): then the variant is this caller's alone, uncached.
                if any(live is base for live in self.contexts()):
                    self._variants[key] = hit
        return hit[1]

    def _prune_variants(self) -> None:
        live = {id(ctx) for ctx in self.contexts()}
        with self._variant_lock:
            for key in [k for k in self._variants if k[0] not in live]:
                del self._variants[key]

    def _match(
        self, snapshot: Snapshot, host: str, port: int, client_id: str | None
    ) -> Built | None:
        index = snapshot.index
        keys: list[IndexKey] = [(host, port, client_id)]
        if client_id is not None:
            keys.append((host, port, None))
        keys.append((CATCH_ALL, 0, client_id))
        if client_id is not None:
            keys.append((CATCH_ALL, 0, None))
        for key in keys:
            item = index.get(key)
            if item is not None:
                return item
        return None

    def _slow_context(
        self, snapshot: Snapshot, host: str, port: int, client_id: str | None
    ) -> ssl.SSLContext | None:
        name = normalize_host(host)
        item = self._match(snapshot, name, port, client_id)
        if item is not None:
            return item.context_for_host(name)
        default = snapshot.default
        if isinstance(default, Built):
            return default.context_for_host(name)
        return default

    def context_for_url(
        self, url: str, *, client_id: str | None = None, alpn: Sequence[str] | None = None
    ) -> ssl.SSLContext | None:
        """The context for a URL's host and port (443 when an https URL has none).

        Plain ``http://`` (and ``ws://``) URLs need no TLS: ``None``. ``client_id``
        and ``alpn`` are as for :meth:`context_for`.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            return None
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in URL {url!r}")
        return self.context_for(
            host, parts.port or _DEFAULT_PORTS[scheme], client_id=client_id, alpn=alpn
        )

    def profile_for(
        self, host: str, port: int, *, client_id: str | None = None
    ) -> SSLProfile | None:
        """The profile that serves a backend (``None``: no profile; the default may still apply)."""
        item = self._match(self._snapshot, normalize_host(host), port, client_id)
        return item.profile if item is not None else None

    def material_for(
        self, host: str, port: int, *, client_id: str | None = None
    ) -> TLSMaterial | None:
        """The PEM material :meth:`context_for` would use, for TLS stacks without ``ssl``.

        Same lookup as :meth:`context_for` (one snapshot read). For gRPC and others
        that take key, chain and anchors as bytes; see :class:`mtls.TLSMaterial`.

        Returns:
            The material (its ``profile`` is the one that matched, or the default's),
            or ``None`` when nothing matches and there is no default.

        Raises:
            ProfileConfigError: only the default matches and it is a ready
                ``ssl.SSLContext``, whose key cannot be read back.
        """
        snapshot = self._snapshot
        item = self._match(snapshot, normalize_host(host), port, client_id)
        if item is None and isinstance(snapshot.default, Built):
            item = snapshot.default
        if item is not None:
            return replace(item.served.material, profile=item.profile)
        if snapshot.default is not None:
            raise ProfileConfigError(
                f"no profile for {host}:{port} and the set's default is a ready "
                "ssl.SSLContext, whose key cannot be read back as PEM: give default= an "
                "SSLProfile instead",
                path=self._path,
            )
        return None

    @property
    def profiles(self) -> tuple[SSLProfile, ...]:
        """The profiles being served (those that failed with no last good are left out)."""
        return tuple(item.profile for item in self._snapshot.built)

    def __iter__(self) -> Iterator[SSLProfile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self._snapshot.built)

    def contexts(self) -> list[ssl.SSLContext]:
        """Every distinct context in use (profiles and default)."""
        snapshot = self._snapshot
        seen: dict[int, ssl.SSLContext] = {}
        items = [*snapshot.built]
        if isinstance(snapshot.default, Built):
            items.append(snapshot.default)
        elif snapshot.default is not None:
            seen[id(snapshot.default)] = snapshot.default
        for item in items:
            for ctx in (item.context, item.localhost_context):
                if ctx is not None:
                    seen.setdefault(id(ctx), ctx)
        return list(seen.values())

    # ------------------------------------------------------------------ health

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot for health checks.

        Keys: ``generation``, ``healthy`` (no errors), ``reloading``, ``path``,
        ``hostname_verifier``, ``last_error`` and ``profiles``: per profile its
        ``servers``, ``client_id``, ``files`` (role, path, sha256), client
        certificate ``subject`` and ``not_after``, ``last_good_load`` and ``error``.
        Profiles that never loaded appear with ``loaded: false``. Never a secret.
        """
        snapshot = self._snapshot

        def entry(item: Built) -> dict[str, Any]:
            return {
                "servers": list(item.profile.server_names),
                "client_id": item.profile.client_id,
                "loaded": True,
                "files": [{"role": r, "path": p, "sha256": d} for r, p, d in item.files],
                "subject": item.subject,
                "not_after": item.not_after.isoformat() if item.not_after else None,
                "last_good_load": item.loaded_at.isoformat(),
                "error": str(item.error) if item.error else None,
            }

        profiles = [entry(item) for item in snapshot.built]
        profiles.extend(
            {
                "servers": list(profile.server_names),
                "client_id": profile.client_id,
                "loaded": False,
                "files": [],
                "subject": None,
                "not_after": None,
                "last_good_load": None,
                "error": str(error),
            }
            for profile, error in snapshot.failures
        )
        errors = snapshot.errors
        return {
            "generation": snapshot.generation,
            "healthy": not errors,
            "reloading": self.reloading,
            "path": self._path,
            "hostname_verifier": self._options.hostname_verifier,
            "checked_at": _dt.datetime.now(_dt.UTC).isoformat(),
            "last_error": str(errors[0]) if errors else None,
            "config_error": str(snapshot.config_error) if snapshot.config_error else None,
            "default": entry(snapshot.default) if isinstance(snapshot.default, Built) else None,
            "profiles": profiles,
        }

    def __repr__(self) -> str:
        source = f" from {self._path!r}" if self._path else ""
        timer = (
            f", reloading every {self._timer.interval:g}s" if self.reloading and self._timer else ""
        )
        count = len(self)
        return (
            f"<SSLProfileSet {count} profile{'' if count == 1 else 's'}{source}, "
            f"generation {self.generation}{timer}>"
        )
