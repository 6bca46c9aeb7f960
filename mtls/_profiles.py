"""SSLProfileSet: profiles in, ``ssl.SSLContext`` per ``host:port`` out, kept current.

The set reads profiles (from code, WSO2's XML, or deployment.toml), builds one
context per distinct material, indexes them by ``(host, port, client_id)``, and
(with ``reload_interval``) keeps them current from a background thread. The
concurrency design is described at the top of ``_engine.py``; how snapshots are
made, in ``_snapshot.py``.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import os
import ssl
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, NoReturn, Self

from ._build import AnchorInfo, Options, Served
from ._config import (
    CATCH_ALL,
    SSLProfile,
    StoreConfig,
    check_path_text,
    check_store_config,
    format_server,
    is_ip_literal,
    normalize_host,
    parse_server,
    tls_origin,
    without_port,
)
from ._context import LOCALHOST_NAMES, dials_localhost
from ._deployment import DeploymentSettings, parsed_once, read_deployment_toml
from ._engine import Callback, Engine, check_seconds, close_finalized
from ._errors import MTLSError, ProfileConfigError, with_more
from ._files import cannot_read_fix
from ._health import (
    DEFAULT_EXPIRY_WARNINGS,
    Health,
    HealthCallback,
    HealthEvent,
    InUse,
    expiry_thresholds,
    expiry_watch,
)
from ._log import log
from ._material import TLSMaterial
from ._revocation import (
    RevocationChecker,
    RevocationPolicy,
    RevocationState,
    revocation_checker,
)
from ._secret import Secret, scrub_tracebacks
from ._snapshot import (
    Built,
    Failed,
    IndexKey,
    ProfileSource,
    ProfilesPlan,
    Snapshot,
    index_key,
    withheld_servers,
)
from ._status import (
    AnchorStatus,
    FileStatus,
    IdentityStatus,
    ProfileSetStatus,
    ProfileStatus,
    anchor,
    anchor_dates,
    identity,
    refusal,
)
from ._types import HostnameVerifier, Product, check_flag, normalize_hostname_verifier
from ._wso2 import MTLS_REFUSED, has_placeholder, parse_profiles_xml


class _FromFile:
    """The type of :data:`_FROM_FILE`: an argument left out, so the file decides."""

    def __repr__(self) -> str:
        return "<from the file>"


_FROM_FILE: Any = _FromFile()


class _Static:
    """Profiles given in code: nothing to re-read but the stores."""

    path: Path | None = None

    def __init__(self, profiles: Iterable[SSLProfile]) -> None:
        self._profiles = list(profiles)
        for profile in self._profiles:
            if not isinstance(profile, SSLProfile):
                raise TypeError(f"expected SSLProfile objects, got {type(profile).__name__}")

    def load(
        self,
        read: Callable[[Path], tuple[bytes, str]],
        early: Callable[[SSLProfile], object] | None = None,
    ) -> tuple[list[SSLProfile], str | None]:
        """The profiles given in code (there is no file to ``read``, nor any parse for
        ``early`` to overlap)."""
        del read, early
        return list(self._profiles), None

    def inputs(self) -> tuple[Path, ...]:
        """No files: profiles made in code depend on none but their stores."""
        return ()


#: The deployment.toml setting that named the profile file, while from_deployment_toml
#: loads it through from_xml (whose signature stays the public one): its messages name
#: that setting as the place to fix a wrong path.
_XML_ORIGIN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mtls_xml_origin", default=None
)

#: Set while from_deployment_toml loads the profile file through from_xml: the vault
#: (or none) was decided from the deployment.toml given, so from_xml must not look for
#: one in the home's own deployment.toml (h207: a candidate file without ``[secrets]``
#: had its aliases resolved by production's vault, and a broken production file was
#: reported for a candidate that never named it).
_VAULT_DECIDED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mtls_vault_decided", default=False
)


class _XmlFile:
    """A customSSLProfiles file, re-parsed when its content changes."""

    def __init__(
        self,
        path: Path,
        base_dir: Path,
        properties: Mapping[str, str] | None,
        secret_resolver: Callable[[str], str | Secret | None] | None,
        origin: str | None = None,
        *,
        lenient: bool = False,
    ) -> None:
        self.path: Path | None = path
        self._lenient = lenient  # skip_failures: entries without a port left out
        self._base_dir = base_dir
        self._properties = dict(properties or {})
        self._secret_resolver = secret_resolver
        # The setting that named the file (deployment.toml's file_path), for messages.
        self._origin = origin

    def inputs(self) -> tuple[Path, ...]:
        """The secret resolver's files, when it names them (``watched_files()``, as
        :class:`mtls.SecureVault` does): their change re-parses the profile file."""
        named = getattr(self._secret_resolver, "watched_files", None)
        if not callable(named):
            return ()
        try:
            return tuple(Path(os.path.abspath(p)) for p in named())
        except Exception:  # a resolver's own failure: it is reported when it resolves
            log.debug("mtls: the secret resolver's watched_files() failed", exc_info=True)
            return ()

    @scrub_tracebacks  # a reload's error must not keep the file's passwords in its frames
    def load(
        self,
        read: Callable[[Path], tuple[bytes, str]],
        early: Callable[[SSLProfile], object] | None = None,
    ) -> tuple[list[SSLProfile], str | None]:
        """Read the file with ``read`` (settled during reloads) and parse it; ``early``
        is given the first profile as soon as it is parsed."""
        assert self.path is not None
        try:
            data, digest = read(self.path)
        except OSError as exc:
            fix = cannot_read_fix(exc, self.path) or (
                f"check {self._origin or 'the path'}"
                if isinstance(exc, FileNotFoundError | IsADirectoryError)
                else "check the path and its permissions"
            )
            what = (
                "no such profile file"
                if isinstance(exc, FileNotFoundError)
                else f"cannot read the profile file ({exc.strerror})"
            )
            if isinstance(exc, FileNotFoundError) and any(
                part.startswith("~") for part in self.path.parts
            ):
                fix += (
                    " (~ is not your home directory here: neither mtls nor WSO2 expands "
                    "it; write the full path, or expand it with os.path.expanduser)"
                )
            raise ProfileConfigError(f"{self.path}: {what}: {fix}", path=self.path) from None
        profiles = parse_profiles_xml(
            data,
            path=str(self.path),
            base_dir=self._base_dir,
            properties=self._properties,
            secret_resolver=self._secret_resolver,
            early=early,
            lenient=self._lenient,
        )
        return profiles, digest


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
        >>> profiles = mtls.SSLProfileSet([], default=mtls.client_context())
        >>> profiles.context_for("example.org", 443) is not None
        True
    """

    # Defaults for an instance whose constructor failed part way: error reporters
    # repr() the locals of a traceback, and repr() and close() must work at any stage.
    _path: str | None = None
    _engine: Engine[Snapshot] | None = None
    # What its keystores' certificates are presented as ("server": gRPC's
    # server_credentials, through _presenting): what their key usages must allow.
    _identity: Literal["client", "server"] = "client"

    def __init__(
        self,
        profiles: Iterable[SSLProfile] = (),
        *,
        hostname_verifier: HostnameVerifier | str = "Strict",
        default: ssl.SSLContext | SSLProfile | None = None,
        default_truststore: StoreConfig | None = None,
        skip_failures: bool = False,
        reload_interval: float | None = None,
        settle_delay: float = 0.1,
        revocation: RevocationPolicy | RevocationChecker | None = None,
        expiry_warnings: Iterable[float | _dt.timedelta] = DEFAULT_EXPIRY_WARNINGS,
        crl_warnings: Iterable[float | _dt.timedelta] | None = None,
    ) -> None:
        """Build a set from profiles made in code.

        Args:
            profiles: the profiles; store files are read now.
            hostname_verifier: ``Strict``, ``Default``, ``DefaultAndLocalhost`` or
                ``AllowAll`` (case-insensitive), for the whole set as in WSO2.
            default: used when no profile matches: a ready context (handed out as
                it is, for every ALPN list: an HTTP/2 client sets its ALPN on it for
                every other user too), or a profile whose stores are loaded and
                reloaded like the others, its contexts built per ALPN list
                (``SSLProfile(servers=("*",))``: the system's trust, no client
                certificate). ``None``: :meth:`context_for` returns ``None`` for
                unmatched hosts.
            default_truststore: trust for profiles without a ``TrustStore``
                (``None``: the system's trust).
            skip_failures: load what loads and report the rest (WSO2's
                ``ssl.profile.skip.failures``) instead of raising.
            reload_interval: seconds between background checks; ``None``: no thread,
                call :meth:`reload` yourself.
            settle_delay: seconds between the two reads that confirm a changed file
                is complete.
            revocation: check every server's chain online after the handshake
                (OCSP, then CRL; WSO2's ``CertificateRevocationVerifier``), for every
                verifying context of the set, with one cache: a
                :class:`mtls.RevocationPolicy` or a :class:`mtls.RevocationChecker`.
            expiry_warnings: how long before its end a certificate in use (client
                certificate, its chain, trust anchors) is announced, once per
                threshold, after each reload check (see :meth:`on_health`): numbers
                are days, :class:`datetime.timedelta` is taken as it is; ``()``
                announces only expiry. With the defaults, a certificate is judged
                by those under a third of its validity, else at a sixth of it (a
                one-hour certificate: 10 minutes before its end; see
                docs/health.md); other thresholds are used as given.
            crl_warnings: how long before its ``nextUpdate`` a CRL in use is
                announced (past it, every handshake it checks is refused), as
                ``expiry_warnings``: ``()`` announces only its expiry. ``None``: one
                threshold per list, half-way from when its next list is due (its
                NextCRLPublish, as AD CS writes it, else half its validity) to its
                ``nextUpdate``, so a list replaced on schedule is not announced. For
                a CA that reissues only minutes before a list expires (EJBCA's
                default), give a shorter one, or ``()``.

        Raises:
            ProfileConfigError: duplicate ``host:port`` entries, bad options.
            KeystoreError: a store does not load (with ``skip_failures=False``).
            ValueError: ``reload_interval`` not above 0 and at most
                ``threading.TIMEOUT_MAX``, or ``settle_delay`` below 0 or above it, or
                an ``expiry_warnings`` threshold that is not positive.
        """
        self._setup(
            _Static(profiles),
            hostname_verifier=hostname_verifier,
            default=default,
            default_truststore=default_truststore,
            skip_failures=skip_failures,
            reload_interval=reload_interval,
            settle_delay=settle_delay,
            revocation=revocation,
            expiry_warnings=expiry_warnings,
            crl_warnings=crl_warnings,
        )

    # ------------------------------------------------------------------ constructors

    @classmethod
    @scrub_tracebacks  # store and vault passwords never linger in an escaping traceback
    @parsed_once  # the estate's vault reads deployment.toml on its first two loads
    def from_xml(
        cls,
        path: str | os.PathLike[str],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        hostname_verifier: HostnameVerifier | str = "Strict",
        default: ssl.SSLContext | SSLProfile | None = None,
        default_truststore: StoreConfig | None = None,
        secret_resolver: Callable[[str], str | Secret | None] | None = None,
        properties: Mapping[str, str] | None = None,
        skip_failures: bool = False,
        reload_interval: float | None = None,
        settle_delay: float = 0.1,
        revocation: RevocationPolicy | RevocationChecker | None = None,
        expiry_warnings: Iterable[float | _dt.timedelta] = DEFAULT_EXPIRY_WARNINGS,
        crl_warnings: Iterable[float | _dt.timedelta] | None = None,
    ) -> Self:
        """Load WSO2's customSSLProfiles XML (``sslprofiles.xml``).

        Args:
            path: the profile file.
            base_dir: what relative ``<Location>`` paths start from (WSO2: the product
                home, its working directory). Default: the current directory, now.
            secret_resolver: called with each ``svns:secretAlias``; returns the
                password, or ``None``/``KeyError`` for an unknown alias (an error).
                Default: :class:`mtls.wso2.SecureVault` of ``base_dir`` when its
                ``secret-conf.properties`` or deployment.toml ``[secrets]`` configures
                a vault, else none (the element text is used, as in WSO2). Asked
                when the profile file is read, and again when it changes; a resolver
                with a ``watched_files()`` method (returning paths) is asked again
                when one of those changes too (a mounted secret rotated with its
                store).
            properties: values for ``$sys{name}`` and ``${name}`` placeholders
                (``carbon.home`` defaults to ``base_dir``).
            reload_interval: seconds between checks of the XML and every store it
                names (WSO2's ``interval``, which is in milliseconds).
            hostname_verifier: as for the constructor.
            default: as for the constructor.
            default_truststore: as for the constructor.
            skip_failures: as for the constructor.
            settle_delay: as for the constructor.
            revocation: as for the constructor.
            expiry_warnings: as for the constructor.
            crl_warnings: as for the constructor.

        Raises:
            ProfileConfigError: the file is missing, hostile, malformed, or a profile is wrong.
            KeystoreError: a store does not load (with ``skip_failures=False``).
            ValueError: ``reload_interval`` or ``settle_delay`` out of range (as for
                the constructor).
        """
        text = os.fsdecode(path)  # a str, bytes or a path object, as the stores take
        check_path_text(text, setting="the profile file path")
        xml_path = Path(os.path.abspath(text))
        home = _home(base_dir)
        if secret_resolver is None and not _VAULT_DECIDED.get():
            # The estate's own secure vault, when it has one.
            from ._vault import SecureVault  # noqa: PLC0415 - its ciphers only when used

            secret_resolver = SecureVault.for_estate(home, properties=properties)
        self = cls.__new__(cls)
        self._setup(
            _XmlFile(
                xml_path,
                home,
                properties,
                secret_resolver,
                _XML_ORIGIN.get(),
                lenient=skip_failures,
            ),
            hostname_verifier=hostname_verifier,
            default=default,
            default_truststore=default_truststore,
            skip_failures=skip_failures,
            reload_interval=reload_interval,
            settle_delay=settle_delay,
            revocation=revocation,
            expiry_warnings=expiry_warnings,
            crl_warnings=crl_warnings,
        )
        if default_truststore is None:
            _warn_system_trust(xml_path, self.profiles)
        return self

    @classmethod
    @scrub_tracebacks
    @parsed_once  # the settings and the vault read deployment.toml: one parse
    def from_deployment_toml(
        cls,
        path: str | os.PathLike[str],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        hostname_verifier: HostnameVerifier | str | None = None,
        secret_resolver: Callable[[str], str | Secret | None] | None = None,
        properties: Mapping[str, str] | None = None,
        skip_failures: bool = False,
        reload_interval: float | None = _FROM_FILE,
        settle_delay: float = 0.1,
        profiles_path: str | os.PathLike[str] | None = None,
        product: Product | None = None,
        revocation: RevocationPolicy | RevocationChecker | None = _FROM_FILE,
        expiry_warnings: Iterable[float | _dt.timedelta] = DEFAULT_EXPIRY_WARNINGS,
        crl_warnings: Iterable[float | _dt.timedelta] | None = None,
    ) -> Self:
        """Load the profile file, interval, hostname verifier and default stores that a
        WSO2 ``deployment.toml`` names.

        Reads ``[transport.passthru_https.sender.ssl_profile]`` ``file_path`` (default
        ``repository/resources/security/sslprofiles.xml``) and ``interval``
        (milliseconds) and ``[transport.passthru_https.sender.parameters]``
        ``HostnameVerifier`` (API Manager), or ``[transport.http]``
        ``sender.ssl_profile.file_path`` / ``read_interval`` / ``sender.hostname_verifier``
        (Micro Integrator). The sender's default stores become the identity and trust
        used when no profile matches, and its truststore is the trust of profiles
        without a ``<TrustStore>``: API Manager's ``[keystore.tls]`` (key by key, else
        ``[keystore.primary]``) and ``[truststore]``, whose ``file_name`` is a name in
        ``repository/resources/security/``; Micro Integrator's ``[keystore.primary]``
        and ``[truststore]``, whose ``file_name`` is a path from the home; a Micro
        Integrator file without a profile file gives a set of those stores alone, for
        every host, as its sender uses them. Placeholders
        (``$env{}``, ``$sys{}``, ``${}``, ``$secret{}``, ``$ref{}``) are resolved in
        every value; see docs/wso2.md.

        Args:
            path: deployment.toml.
            base_dir: the product home that relative paths start from. Default: the
                current directory, as WSO2 resolves against its working directory.
            product: ``"apim"`` (API Manager) or ``"mi"`` (Micro Integrator), whose
                rules apply; default: detected from the file's tables.
            hostname_verifier: overrides the file's value; neither: ``Strict``.
            secret_resolver: resolves ``$secret{alias}`` and ``svns:secretAlias``.
                Default: :class:`mtls.wso2.SecureVault` of the home with this TOML's
                ``[secrets]``, when the estate configures a vault (see
                docs/secure-vault.md).
            properties: values for ``$sys{name}`` placeholders.
            reload_interval: overrides the file's interval (seconds); ``None`` turns
                the thread off. Default: the file's interval, else WSO2's 10 minutes.
            profiles_path: a profile file to use instead of the one the TOML names
                (to check a candidate file against production settings).
            revocation: overrides the file's ``cert_revocation_validation`` (API
                Manager) or ``sender.certificate_revocation_verifier_enable`` (Micro
                Integrator) settings; ``None`` turns the online check off. Default:
                the file's, off when it enables nothing (WSO2's default).
            expiry_warnings: as for the constructor.
            crl_warnings: as for the constructor.

        With ``skip_failures=True`` the default identity is covered too: when its
        stores do not load it is reported (in :attr:`failures` and ``status()``) and
        hosts no profile matches are refused until it loads.

        Raises:
            ProfileConfigError: the TOML is missing or malformed, names neither a
                profile file nor a default store, or its interval is out of range.
            KeystoreError: a store does not load (with ``skip_failures=False``).
            ValueError: a ``reload_interval`` or ``settle_delay`` argument out of range.
        """
        home = _home(base_dir)
        if secret_resolver is None:  # the estate's own secure vault, when it has one
            from ._vault import SecureVault  # noqa: PLC0415 - its ciphers only when used

            secret_resolver = SecureVault.for_estate(
                home, deployment_toml=path, properties=properties, product=product
            )
        settings = read_deployment_toml(
            os.fspath(path),
            base_dir=home,
            properties=properties,
            require_profiles=profiles_path is None,
            secret_resolver=secret_resolver,
            product=product,
        )
        chosen = profiles_path if profiles_path is not None else settings.profiles_path
        origin = settings.profiles_origin if profiles_path is None else None
        if reload_interval is _FROM_FILE:
            interval_ms = settings.interval_ms if settings.interval_ms is not None else 600_000
            reload_interval = interval_ms / 1000 if interval_ms > 0 else None
            if reload_interval is None:
                # WSO2 clamps it to its one-minute minimum; here it means no reloading.
                log.warning(
                    "%s: SSL profile interval %d ms: no reload thread (WSO2 re-reads the "
                    "profile file every minute for this value); set a positive interval, "
                    "or pass reload_interval=, to reload",
                    os.fspath(path),
                    interval_ms,
                )
            if reload_interval is not None and reload_interval > threading.TIMEOUT_MAX:
                raise ProfileConfigError(
                    f"{os.fspath(path)}: the SSL profile interval ({interval_ms} ms) is too "
                    f"long: at most {threading.TIMEOUT_MAX * 1000:.0f} ms (0 turns reloading off)",
                    path=os.fspath(path),
                    element="interval",
                )
        default = (
            SSLProfile(
                servers=(CATCH_ALL,), keystore=settings.keystore, truststore=settings.truststore
            )
            if settings.keystore or settings.truststore
            else None
        )
        # An unknown value in the file has become Default (WSO2's rule), with a warning.
        verifier = hostname_verifier or settings.hostname_verifier or "Strict"
        options: dict[str, Any] = {
            "hostname_verifier": verifier,
            "default": default,
            "default_truststore": settings.truststore,
            "skip_failures": skip_failures,
            "reload_interval": reload_interval,
            "settle_delay": settle_delay,
            "revocation": settings.revocation if revocation is _FROM_FILE else revocation,
            "expiry_warnings": expiry_warnings,
            "crl_warnings": crl_warnings,
        }
        if chosen is None:
            # Micro Integrator without dynamic SSL profiles: its sender uses the default
            # stores for every host (read_deployment_toml raised if there are none).
            assert default is not None
            log.info(
                "%s: no SSL profile file configured: every host uses the sender's default "
                "stores, as in Micro Integrator",
                os.fspath(path),
            )
            return cls((), **options)
        token = _XML_ORIGIN.set(origin)  # the setting that named the file, for messages
        decided = _VAULT_DECIDED.set(True)  # this TOML's vault, or none: not the home's
        try:
            profiles = cls.from_xml(
                chosen,
                base_dir=home,
                secret_resolver=secret_resolver,
                properties=properties,
                **options,
            )
        except ProfileConfigError as exc:
            written = _from_written_table(exc, os.fspath(path), Path(chosen), settings)
            if written is None:
                raise
            raise written from exc.__cause__
        finally:
            _VAULT_DECIDED.reset(decided)
            _XML_ORIGIN.reset(token)
        if settings.written_profiles is not None:
            _warn_unwritten(os.fspath(path), Path(chosen), settings.written_profiles, profiles)
        return profiles

    def _setup(
        self,
        source: ProfileSource,
        *,
        hostname_verifier: HostnameVerifier | str,
        default: ssl.SSLContext | SSLProfile | None,
        default_truststore: StoreConfig | None,
        skip_failures: bool,
        reload_interval: float | None,
        settle_delay: float,
        revocation: RevocationPolicy | RevocationChecker | None = None,
        expiry_warnings: Iterable[float | _dt.timedelta],
        crl_warnings: Iterable[float | _dt.timedelta] | None = None,
    ) -> None:
        mode = normalize_hostname_verifier(hostname_verifier)
        if default is not None and not isinstance(default, ssl.SSLContext | SSLProfile):
            raise TypeError("default must be an ssl.SSLContext, an SSLProfile or None")
        check_store_config(default_truststore, "default_truststore")
        check_flag("skip_failures", skip_failures)
        # Validated before any file is read: a bad interval must not kill the thread later.
        interval = (
            None
            if reload_interval is None
            else check_seconds("reload_interval", reload_interval, zero=False)
        )
        settle = check_seconds("settle_delay", settle_delay, zero=True)
        expiry = expiry_watch(expiry_warnings)
        crl_thresholds = (
            None if crl_warnings is None else expiry_thresholds(crl_warnings, "crl_warnings")
        )
        self._path = str(source.path) if source.path else None
        self._options = Options(
            mode,
            default_truststore,
            settle,
            self._path,
            revocation_checker(revocation),
            identity=self._identity,
            expiry_warning=expiry if expiry.spans else None,
        )
        self._default = default
        self._in_service: tuple[weakref.ref[Snapshot], frozenset[int]] | None = None
        plan = ProfilesPlan(source, self._options, default, skip_failures=skip_failures)
        self._crl_next_update = plan.builder.crl_next_update  # for status()
        name = f"mtls-reloader-{Path(self._path).name if self._path else hex(id(self))}"
        self._health: Health[Snapshot] = Health(
            expiry, plan.where, InUse(), crl_thresholds=crl_thresholds
        )
        self._health.identity = f"{self._identity} certificate"  # its expiry lines say so
        if self._options.revocation is not None:
            self._options.revocation._listen(self._health.count_revocation)
        # The engine (and its thread) hold no reference back to the set: a set dropped
        # without close() is freed at once, contexts included, and its thread stops.
        publish = weakref.WeakMethod(self._publish)

        def on_publish(snapshot: Snapshot) -> None:
            method = publish()
            if method is not None:
                method(snapshot)

        engine = Engine(
            plan, settle_delay=settle, interval=interval, name=name, on_publish=on_publish
        )
        self._health.start(engine.snapshot)
        # Expiry is watched by the reload thread itself, after every check; the
        # callbacks it has to call run on the engine's notification thread.
        self._health.notifier = engine.notifier
        engine.watch(self._health.watch)
        self._engine = engine
        weakref.finalize(self, close_finalized, engine)

    @classmethod
    def _presenting(cls, identity: Literal["client", "server"], *args: Any, **kwargs: Any) -> Self:
        """``SSLProfileSet(*args, **kwargs)`` whose keystores hold ``identity``
        (``"server"``: gRPC's ``server_credentials``) certificates: a replacement
        whose key usages forbid that role is refused, and expiry lines name it."""
        profiles = cls.__new__(cls)
        profiles._identity = identity
        profiles.__init__(*args, **kwargs)  # type: ignore[misc]
        return profiles

    def _publish(self, snapshot: Snapshot) -> None:
        # The lookup map, one attribute away: context_for's common case is one dict.get.
        self._fast = snapshot.fast

    @property
    def _snapshot(self) -> Snapshot:
        assert self._engine is not None
        return self._engine.snapshot

    def _contexts_in_service(self) -> tuple[int, frozenset[int]]:
        """The current generation and the ids of the contexts it hands out
        (:meth:`Snapshot.contexts_in_service`): what the client pools' sweeps ask.

        Worked out once per published snapshot, on the first sweep that asks, and
        shared by every client (each then costs its own entries). A variant made after
        that is missing, and need not be there: a client's sweep for a snapshot runs
        before any entry it makes under that snapshot, and every entry it had was
        looked up before the snapshot was published (see mtls.integrations._pools).
        """
        snapshot = self._snapshot
        cached = self._in_service
        if cached is None or cached[0]() is not snapshot:
            # The snapshot weakly: an old one (and its contexts) is never kept alive here.
            cached = (weakref.ref(snapshot), snapshot.contexts_in_service())
            self._in_service = cached  # racing sweeps make equal sets: either stays
        return snapshot.generation, cached[1]

    # ------------------------------------------------------------------ reloading

    def reload(self, *, force: bool = False) -> bool:
        """Check the profile file and every store now, and apply what changed.

        Safe from any thread, also while the background thread runs (checks are
        serialised). Never raises for bad files: a profile whose new material fails
        keeps its last good context, and the error is in :attr:`last_error` and
        :meth:`status` until a later check succeeds. After :meth:`close` it does
        nothing and returns False.

        Args:
            force: read and hash every file, whatever its ``stat`` says. A check
                reads a file only when its size, mtime, ctime or inode moved; a file
                system that shows none of them change (a FUSE mount that fixes
                mtimes) needs this, as WSO2's forced reload. Unchanged bytes still
                rebuild nothing.

        Returns:
            True if what a connection is made with changed: a context a lookup hands
            out, which hosts get which context, or a profile that now fails closed or
            recovers (then :attr:`generation` grew by one and subscribers were
            called). An edit that changes none of that (a profile's ``name=``, a store
            moved to a copy of the same bytes) is applied too, and
            :meth:`profile_for` answers the edited profile, but it returns False.

        Raises:
            KeyboardInterrupt, SystemExit: raised by a secret resolver or subscriber
                during this call (recorded first, like any other failure).
        """
        assert self._engine is not None
        return self._engine.check(force=force)

    def _revocation_state(self, profile: SSLProfile) -> RevocationState | None:
        checker = self._options.revocation
        if checker is None:
            return None
        return checker.state(server for server in profile.servers if server != CATCH_ALL)

    @property
    def revocation(self) -> RevocationChecker | None:
        """The online revocation checker every verifying context of the set runs after
        its handshake (``None``: off). Its cache is shared by all of them."""
        return self._options.revocation

    @property
    def generation(self) -> int:
        """Grows by one with each applied change (0 after the first load): each change
        to what a connection is made with (see :meth:`reload`)."""
        return self._snapshot.generation

    @property
    def last_error(self) -> MTLSError | None:
        """The first error of the last check (config, then profiles), else of a reload
        subscriber that raised on the last change; None when all is well."""
        errors = self._snapshot.errors
        if errors:
            return errors[0]
        raised = self._engine.subscriber_errors() if self._engine is not None else ()
        return raised[0] if raised else None

    @property
    def failures(self) -> tuple[tuple[SSLProfile, MTLSError], ...]:
        """Profiles that never loaded (with ``skip_failures`` or added by a reload), with why.

        A ``default`` profile that never loaded is included (its servers are ``*``).
        """
        snapshot = self._snapshot
        default = snapshot.default
        extra = ((default.profile, default.error),) if isinstance(default, Failed) else ()
        return snapshot.failures + extra

    @property
    def errors(self) -> list[MTLSError]:
        """Every error of the last check."""
        return list(self._snapshot.errors)

    @property
    def default(self) -> ssl.SSLContext | SSLProfile | None:
        """What the set was given as ``default`` (a profile, a ready context, or ``None``).

        From :meth:`from_deployment_toml`, the profile made of the sender's default
        keystore and truststore.
        """
        return self._default

    @property
    def default_truststore(self) -> StoreConfig | None:
        """The trust of profiles without a ``TrustStore`` (``None``: the system's)."""
        return self._options.default_truststore

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(old_generation, new_generation)`` after each applied change.

        Each change is delivered once, in generation order, outside any lock (a
        callback may call :meth:`reload`), one callback at a time; one that raises is
        logged and does not stop the others. A change :meth:`reload` applied is
        delivered before it returns, unless another thread is delivering an earlier
        change at that moment: that thread then delivers this one right after it.
        A change the background reloader applied is delivered on a notification
        thread of the set's own, never on the reloader's: a callback that blocks (a
        webhook without a timeout) holds back later notifications, not the checks
        that apply rotations; one still running after a minute, when more
        arrives, is named in a warning.

        Returns:
            A function that unsubscribes the callback.
        """
        assert self._engine is not None
        return self._engine.subscribe(callback)

    def unsubscribe(self, callback: Callback) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        assert self._engine is not None
        self._engine.unsubscribe(callback)

    def on_health(self, callback: HealthCallback) -> Callable[[], None]:
        """Call ``callback(event)`` with a :class:`mtls.HealthEvent` when a certificate
        in use crosses an expiry threshold (``expiry_warnings``) or expires.

        Certificates in use: every client certificate a loaded profile (or the default
        profile) presents, the chain presented with it, and the anchors of every
        truststore they verify with. Each is announced once per threshold (keyed by
        its fingerprint), tightest first when it crosses several at once, and once
        more when it expires; each event is also logged (an expired client or chain
        certificate at ERROR, the rest at WARNING). Certificates are compared with the
        clock after every reload check, on the reload thread (``reload_interval``
        sets how often), and by :meth:`reload` and :meth:`check_health`. A callback
        that raises is logged and the others still run. Events the reload thread finds
        are delivered on the set's notification thread (as :meth:`subscribe`'s
        changes are): a callback that blocks never holds back a check.

        Returns:
            A function that unsubscribes the callback.
        """
        return self._health.subscribe(callback)

    def check_health(self) -> tuple[HealthEvent, ...]:
        """Compare the certificates in use with the clock now, as the reload thread
        does after each check, without reading any file.

        For sets without a reload thread (``reload_interval=None``) that still want
        expiry announced: call it from your own scheduler. Events are logged and
        delivered to :meth:`on_health` callbacks before it returns.

        Returns:
            The events of this call (thresholds crossed since the last evaluation);
            empty when nothing new happened.
        """
        return self._health.evaluate(self._snapshot)

    def close(self) -> None:
        """Stop the reload thread. Idempotent; lookups keep working.

        Returns at once when the thread is waiting for its next check (the usual
        case), and within :data:`CLOSE_TIMEOUT` seconds when a check is running: the
        check stops at its next safe point (before each file read, profile and
        context build) and publishes nothing. A store parse already under way cannot
        be cut short (a hostile store can cost seconds of key derivation); the thread
        finishes it in the background, discards it and exits. A subscriber or health
        callback running on the notification thread is waited for, for as long
        (nothing queued behind it is delivered, and none starts after ``close()``
        returns). :meth:`reload` does nothing after ``close()``.
        """
        if self._engine is not None:
            self._engine.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (lookups still work; metrics exporters
        stop reporting the set, and its name is free for the set that replaces it)."""
        return self._engine is not None and self._engine.closed

    @property
    def reloading(self) -> bool:
        """True while the background reload thread keeps the set current (False after close)."""
        return self._engine is not None and self._engine.reloading

    def __enter__(self) -> Self:
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
        server_hostname: str | None = None,
    ) -> ssl.SSLContext | None:
        """The context for a backend, or ``None`` when nothing (not even a default) matches.

        A host that a profile names is served by that profile or not at all: when
        the profile has not loaded (``skip_failures=True``, or added by a reload
        with broken material), this raises :class:`ProfileUnavailableError` instead
        of falling through to the ``*`` profile, the default, or the HTTP client's
        own settings. So does an unmatched host when the ``default`` profile has not
        loaded. A profile that loaded once keeps its last good context.

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
                ``ssl.SSLContext`` is returned as it is. The first lookup for a list
                builds its context (about one context's cost; concurrent first
                lookups wait for that build); later ones return it, without a lock,
                until the material rotates.
            server_hostname: the name the client will verify and send as SNI, when it
                is not ``host`` (httpx's ``sni_hostname`` extension, aiohttp's
                ``server_hostname=``; the integrations pass it). The profile is still
                the one for ``host:port``; ``DefaultAndLocalhost`` skips the name check
                only when this name is a localhost name too, so dialling ``127.0.0.1``
                while verifying ``orders.internal`` checks ``orders.internal``.

        Never waits on a reload: one read of the current snapshot, and no lock once
        the context is built (the first lookup of an ``alpn`` list may wait for its
        build by another thread).

        Returns:
            The context to use (never modify it), or ``None``: no profile, no default.

        Raises:
            ProfileUnavailableError: the profile that names this backend has not
                loaded; its ``cause`` says why (also ``__cause__``).
            TypeError: ``port`` is not an ``int`` (text from ``os.environ``: it could
                never match). A number equal to an int (``8443.0``, ``True``) is looked
                up as that int, as a dict key is.
            ValueError: ``host`` has a port in it (``backend:8243``).
        """
        if server_hostname is not None and normalize_host(server_hostname) == normalize_host(host):
            server_hostname = None  # the host itself: the fast path serves it
        if alpn is None and server_hostname is None:
            # One read of one immutable mapping: the whole old set or the whole new one.
            ctx = self._fast.get((host, port) if client_id is None else (host, port, client_id))
            if ctx is not None:
                return ctx
            if host.isascii() and (lowered := host.lower()) != host:
                # "Backend.example.com": an ASCII name's normal form is its lower case
                # (13x dict.get by the slow path, h168; 2x by this one).
                fast = self._fast
                ctx = fast.get((lowered, port) if client_id is None else (lowered, port, client_id))
                if ctx is not None:
                    return ctx
        # One read of one immutable snapshot (perhaps newer than the map just read).
        snapshot = self._engine.snapshot  # type: ignore[union-attr]
        if alpn is None:
            return self._lookup(snapshot, host, port, client_id, server_hostname)[0]
        if isinstance(alpn, str | bytes):  # "h2" offered "h" and "2"
            raise TypeError('alpn is a list of names: ["h2", "http/1.1"]')
        base, served = self._lookup(snapshot, host, port, client_id, server_hostname)
        if base is None or served is None:
            return base
        return served.with_alpn(base, tuple(alpn))

    def _context_built(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None,
        alpn: Sequence[str],
        server_hostname: str | None,
    ) -> ssl.SSLContext | None:
        """:meth:`context_for` for the integrations that run on an event loop: the
        same answer, but never a context build on the caller's thread.

        Raises:
            NotBuilt: the ALPN context is not built yet: have it built on the builder
                threads (``mtls.integrations._pools.built_off_the_loop``), then ask
                again. With a big truststore a build takes a second or more, which
                would stop the loop.
        """
        if server_hostname is not None and normalize_host(server_hostname) == normalize_host(host):
            server_hostname = None
        snapshot = self._engine.snapshot  # type: ignore[union-attr]
        base, served = self._lookup(snapshot, host, port, client_id, server_hostname)
        if base is None or served is None:
            return base
        return served.with_alpn(base, tuple(alpn), build=False)

    def _lookup(
        self,
        snapshot: Snapshot,
        host: str,
        port: int,
        client_id: str | None,
        server_hostname: str | None = None,
    ) -> tuple[ssl.SSLContext | None, Served | None]:
        name = normalize_host(host)
        item = self._resolve(snapshot, name, host, port, client_id)
        if item is None or isinstance(item, ssl.SSLContext):
            return item, None
        # The localhost variant (no name check) only where both the host dialled and the
        # name verified are localhost names, as dialled: verifying another name through
        # 127.0.0.1 checks it, and so does verifying "localhost" on a remote host (WSO2
        # exempts by the host dialled), or dialling "localhost." (a DNS name: h191).
        served = item.served
        if (
            served.localhost_context is not None
            and name in LOCALHOST_NAMES  # (the usual answer, without normalising again)
            and dials_localhost(host)
            and (server_hostname is None or dials_localhost(server_hostname))
        ):
            return served.localhost_context, served
        return served.context, served

    def _resolve(
        self, snapshot: Snapshot, name: str, host: str, port: int, client_id: str | None
    ) -> Built | ssl.SSLContext | None:
        """The profile (or default) serving ``name:port``; a failed one raises."""
        item = self._match(snapshot, name, port, client_id)
        if item is None:
            default = snapshot.default
            if default is None or isinstance(default, ssl.SSLContext):
                return default
            item = default
        if isinstance(item, Failed):
            error = item.refuse(host, port)
            raise error from error.cause
        return item

    def _match(
        self, snapshot: Snapshot, host: str, port: int, client_id: str | None
    ) -> Built | Failed | None:
        index = snapshot.index
        keys: list[IndexKey] = [index_key(host, port, client_id)]
        if client_id is not None:
            keys.append((host, port))
        # WSO2 (ClientConnFactory.getSSLContext) asks the '*' profile without a client
        # only: a <client> of the '*' profile is never used (a warning says so on load).
        keys.append((CATCH_ALL, 0))
        for key in keys:
            item = index.get(key)
            if item is not None:
                return item
        given: object = port  # typed int; callers' text ports are why this runs
        if not isinstance(given, int) or (":" in host and not is_ip_literal(host)):
            _refuse_lookup(host, port)  # a miss that is a mistake: say so, never None
        return None

    def context_for_url(
        self,
        url: str,
        *,
        client_id: str | None = None,
        alpn: Sequence[str] | None = None,
        server_hostname: str | None = None,
    ) -> ssl.SSLContext | None:
        """The context for a URL's host and port (443 when an https URL has none).

        Plain ``http://`` (and ``ws://``) URLs need no TLS: ``None``.

        Args:
            url: an absolute URL (``https://host:port/...``; 443 when it has no port).
            client_id: as for :meth:`context_for`.
            alpn: as for :meth:`context_for`.
            server_hostname: as for :meth:`context_for`.

        Raises:
            ProfileUnavailableError: as for :meth:`context_for`.
            ValueError: not an absolute ``https``, ``wss``, ``http`` or ``ws`` URL (a
                relative one, one without its scheme), or no host.
        """
        origin = tls_origin(url)
        if origin is None:
            return None
        return self.context_for(
            *origin, client_id=client_id, alpn=alpn, server_hostname=server_hostname
        )

    def profile_for(
        self, host: str, port: int, *, client_id: str | None = None
    ) -> SSLProfile | None:
        """The profile that names a backend (``None``: no profile; the default may still apply).

        It may be one that has not loaded: :meth:`context_for` then raises.

        Args:
            host: the backend's host name or IP literal, as for :meth:`context_for`.
            port: the backend's port.
            client_id: WSO2's client identifier, as for :meth:`context_for`.
        """
        item = self._match(self._snapshot, normalize_host(host), port, client_id)
        return item.profile if item is not None else None

    def material_for(
        self, host: str, port: int, *, client_id: str | None = None
    ) -> TLSMaterial | None:
        """The PEM material :meth:`context_for` would use, for TLS stacks without ``ssl``.

        Same lookup as :meth:`context_for` (one snapshot read). For gRPC and others
        that take key, chain and anchors as bytes; see :class:`mtls.TLSMaterial`.

        Args:
            host: the backend's host name or IP literal, as for :meth:`context_for`.
            port: the backend's port.
            client_id: WSO2's client identifier, as for :meth:`context_for`.

        Returns:
            The material (its ``profile`` is the one that matched, or the default's),
            or ``None`` when nothing matches and there is no default.

        Raises:
            ProfileConfigError: only the default matches and it is a ready
                ``ssl.SSLContext``, whose key cannot be read back.
            ProfileUnavailableError: the profile for this backend has not loaded
                (as for :meth:`context_for`).
        """
        item = self._resolve(self._snapshot, normalize_host(host), host, port, client_id)
        if isinstance(item, ssl.SSLContext):
            raise ProfileConfigError(
                f"no profile for {host}:{port} and the set's default is a ready "
                "ssl.SSLContext, whose key cannot be read back as PEM: give default= an "
                "SSLProfile instead",
                path=self._path,
            )
        if item is None:
            return None
        return replace(item.served.material(), profile=item.profile)

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
        elif isinstance(snapshot.default, ssl.SSLContext):
            seen[id(snapshot.default)] = snapshot.default
        for item in items:
            for ctx in (item.context, item.localhost_context):
                if ctx is not None:
                    seen.setdefault(id(ctx), ctx)
        return list(seen.values())

    # ------------------------------------------------------------------ health

    def status(self) -> ProfileSetStatus:
        """The set's health, from one snapshot, for health checks and monitors.

        Made from what is loaded: it never reads a file or builds a context. Use
        ``status().to_dict()`` for JSON (keys listed in
        :meth:`ProfileSetStatus.to_dict <mtls.ProfileSetStatus.to_dict>`). Profiles
        that never loaded appear with ``loaded=False`` (so does ``default`` when it
        is a profile that never loaded). Never a secret.

        Returns:
            A frozen record; :class:`mtls.ProfileStatus` per profile.
        """
        snapshot = self._snapshot
        now = _dt.datetime.now(_dt.UTC)

        def certificate(info: AnchorInfo) -> AnchorStatus:
            return anchor(
                info.alias,
                info.subject,
                info.not_after,
                now,
                serial=info.serial,
                fingerprint=info.fingerprint,
                not_before=info.not_before,
            )

        # Profiles that share material (10,000 profiles on two stores) share its records:
        # each is made once per call, keyed by the material's identity. Frozen records.
        Made = tuple[IdentityStatus | None, tuple[AnchorStatus, ...], str | None]
        certificates: dict[int, Made] = {}
        # Whether a truststore has an anchor in date, once per truststore (its anchors'
        # records are shared: 1,000 keystores on one cacerts walk its 144 dates once).
        no_anchor: dict[int, str | None] = {}

        def anchors_refused(served: Served) -> str | None:
            key = id(served.anchors)
            if key not in no_anchor:
                trust = served.truststore
                no_anchor[key] = (
                    refusal(
                        None,
                        anchor_dates(served.anchors(), trust.anchors_der),
                        now,
                        role=self._identity,
                    )
                    if trust is not None
                    else None
                )
            return no_anchor[key]

        def material(served: Served) -> Made:
            made = certificates.get(id(served))
            if made is None:
                try:
                    chain = served.chain()
                except MTLSError:
                    chain = ()
                who = identity(
                    served.subject,
                    served.serial,
                    served.not_after,
                    now,
                    fingerprint=chain[0].fingerprint if chain else None,
                    chain=tuple(certificate(c) for c in chain[1:]),
                    not_before=served.not_before,
                    alias=chain[0].alias if chain else None,
                )
                every = served.anchors()
                made = (
                    who,
                    tuple(certificate(a) for a in every[: ProfileSetStatus.ANCHORS_SHOWN]),
                    # The certificate served, whatever its dates (status() judges
                    # dates no parser reads by its DER, h202).
                    refusal(who, None, now, role=self._identity, presented=served.presented())
                    or anchors_refused(served),
                )
                certificates[id(served)] = made
            return made

        def entry(item: Built) -> ProfileStatus:
            # The material's files as it was built from them (a path made from
            # placeholders is shown as written, never as its value: see Served.files).
            ident, anchors, refused = material(item.served)
            return ProfileStatus(
                servers=item.profile.server_names,
                client_id=item.profile.client_name,
                loaded=True,
                files=tuple(
                    FileStatus(
                        role=r,
                        path=p,
                        sha256=d,
                        next_update=self._crl_next_update(d) if r == "crl" else None,
                    )
                    for r, p, d in item.files
                ),
                identity=ident,
                anchors=anchors,
                last_good_load=item.loaded_at,
                error=item.error,
                revocation=self._revocation_state(item.profile),
                refused=refused,
                withheld=withheld_servers(item),
            )

        def failed(profile: SSLProfile, error: MTLSError) -> ProfileStatus:
            return ProfileStatus(
                servers=profile.server_names,
                client_id=profile.client_name,
                loaded=False,
                error=error,
            )

        profiles = [entry(item) for item in snapshot.built]
        profiles.extend(failed(profile, error) for profile, error in snapshot.failures)
        default = snapshot.default
        errors = (
            self._engine.reported_errors(snapshot.errors, self._path or "profiles")
            if self._engine is not None
            else tuple(snapshot.errors)
        )
        return ProfileSetStatus(
            generation=snapshot.generation,
            reloading=self.reloading,
            path=self._path,
            hostname_verifier=self._options.hostname_verifier,
            checked_at=now,
            last_reload=snapshot.changed_at,
            errors=errors,
            config_error=snapshot.config_error,
            default=(
                entry(default)
                if isinstance(default, Built)
                else failed(default.profile, default.error)
                if isinstance(default, Failed)
                else None
            ),
            profiles=tuple(profiles),
            reloads=self._health.reloads,
            revocation_checks=tuple(sorted(self._health.revocation_checks.items())),
            expiry_warnings=self._health.thresholds,
            last_check=self._engine.last_check if self._engine is not None else None,
            crl_warnings=self._health.crl_thresholds,
            closed=self.closed,
        )

    def __reduce__(self) -> tuple[object, ...]:
        """Refused, saying what to do instead (pickle's own refusal names a lambda)."""
        raise TypeError(
            "an SSLProfileSet cannot be pickled or copied (it owns a reload thread and live "
            "SSL contexts): make one in each process from the same configuration, or fork after "
            "making it (the child reloads on its own)"
        )

    def __repr__(self) -> str:
        # Safe at every stage of construction (see the class-level defaults).
        source = f" from {self._path!r}" if self._path else ""
        snapshot = self._engine.snapshot if self._engine is not None else None
        if snapshot is None:
            return f"<SSLProfileSet{source}, not loaded>"
        interval = self._engine.interval if self._engine is not None else None
        timer = f", reloading every {interval:g}s" if self.reloading and interval else ""
        count = len(snapshot.built)
        return (
            f"<SSLProfileSet {count} profile{'' if count == 1 else 's'}{source}, "
            f"generation {snapshot.generation}{timer}>"
        )


# Public as mtls.SSLProfileSet: reprs, tracebacks and pickles say so however it was
# imported (mtls/__init__.py loads it on first use).
SSLProfileSet.__module__ = "mtls"


def _from_written_table(
    exc: ProfileConfigError, toml: str, chosen: Path, settings: DeploymentSettings
) -> ProfileConfigError | None:
    """``exc`` saying where to fix it, when it is about servers that deployment.toml's
    ``[[keystore.ssl_profile.custom]]`` tables write into the profile file at start-up:
    a fix made in the XML alone is undone by the next start. ``None``: not those."""
    if settings.written_profiles is None or not exc.servers or exc.element != "servers":
        return None  # only a <servers> entry is the table's (a store's errors are not)
    target, tables = settings.written_profiles
    named = {item.strip().lower() for servers in tables for item in servers.split(",")}
    if chosen != target or not {s.strip().lower() for s in exc.servers} & named:
        return None
    where = (
        f". API Manager writes this entry into {chosen} from the "
        f"[[keystore.ssl_profile.custom]] tables of {toml} when it starts: fix servers "
        "there (the next start writes the XML over)"
    )
    restated = with_more(exc, where)
    assert isinstance(restated, ProfileConfigError)
    return restated


def _warn_unwritten(
    toml: str, chosen: Path, written: tuple[Path, tuple[str, ...]], profiles: SSLProfileSet
) -> None:
    """Say when deployment.toml's ``[[keystore.ssl_profile.custom]]`` tables are not in
    the profile file that API Manager writes them into at start-up (the file on disk is
    what mtls reads, as the running product does until it restarts)."""
    target, tables = written
    if chosen != target:
        return  # the sender reads another file: WSO2 does not use those tables either
    loaded = {server.lower() for item in profiles.status().profiles for server in item.servers}
    # An entry without a port is in the file, left out (skip_failures): its own warning
    # names it; here it is said where to fix it, and it is not "missing".
    portless = [
        item.strip()
        for servers in tables
        if not has_placeholder(servers)
        for item in servers.split(",")
        if item.strip() and not _has_port(item)
    ]
    if portless:
        log.warning(
            "%s: [[keystore.ssl_profile.custom]] servers %s have no port: fix servers "
            "there (API Manager writes these tables into %s when it starts, over the XML)",
            toml,
            ", ".join(map(repr, portless)),
            chosen,
            extra=MTLS_REFUSED,
        )
    missing = [
        servers
        for servers in tables
        if not has_placeholder(servers)
        and not {item.strip().lower() for item in servers.split(",") if _has_port(item)} <= loaded
    ]
    if missing:
        log.warning(
            "%s: [[keystore.ssl_profile.custom]] servers %s not in %s: API Manager writes "
            "these tables into that file when it starts, and mtls reads the file as it is; "
            "restart API Manager (or add the profiles to the file) to use them",
            toml,
            ", ".join(map(repr, missing)),
            chosen,
        )


def _has_port(item: str) -> bool:
    """Whether a ``<servers>`` entry is not refused for want of a port."""
    try:
        parse_server(item)
    except ProfileConfigError as exc:
        return not without_port(exc)  # refused for something else: not this warning's
    return True


def _home(base_dir: str | os.PathLike[str] | None) -> Path:
    """The product home relative paths start from: ``base_dir``, or the working
    directory. A file given as ``base_dir`` (the profile file, by mistake) is refused
    here: it made every path under it "not a directory", the secure vault's
    ``<file>/conf/deployment.toml`` first, a path the user never wrote."""
    if base_dir is None:
        return Path(os.getcwd())
    home = Path(os.path.abspath(base_dir))
    if home.exists() and not home.is_dir():
        raise ProfileConfigError(
            f"base_dir {os.fspath(base_dir)} is a file: give the product home (the "
            "directory that holds repository/ and conf/), or leave it out for the "
            "working directory",
            path=os.fspath(base_dir),
        )
    return home


def _refuse_lookup(host: str, port: object) -> NoReturn:
    """A lookup no profile can ever match, which would look like "no profile" (``None``):
    a port given as text (from ``os.environ``), or a host with its port in it."""
    if not isinstance(port, int):
        raise TypeError(
            f"port must be an int, not {type(port).__name__} ({port!r}): convert it with int()"
        )
    raise ValueError(
        f"host {host!r} has a ':' but is not an IPv6 address: give the host and the "
        "port apart (context_for('backend', 8243)), or a URL to context_for_url"
    )


def _warn_system_trust(path: Path, profiles: Iterable[SSLProfile]) -> None:
    """Say so when profiles of a WSO2 file trust the system's CAs: WSO2 trusts its
    JVM's default truststore there, which a WSO2 home sets to its own
    client-truststore (Carbon's ``javax.net.ssl.trustStore``), not the public CAs."""
    bare = [
        format_server(profile.servers[0])
        for profile in profiles
        if profile.truststore is None and not profile.novalidatecert
    ]
    if bare:
        log.warning(
            "%s: %d profile%s without a <TrustStore> (%s) trust%s the system's CAs, where "
            "WSO2 trusts its JVM's default truststore, in a WSO2 home "
            "repository/resources/security/client-truststore.jks: pass default_truststore=, "
            "or load from the product's deployment.toml (from_deployment_toml, mtls check "
            "--deployment-toml), which names it",
            os.fspath(path),
            len(bare),
            "s" if len(bare) > 1 else "",
            ", ".join(bare[:3]) + (", ..." if len(bare) > 3 else ""),
            "" if len(bare) > 1 else "s",
        )
