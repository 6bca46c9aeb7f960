"""gRPC: channels and servers with the mutual TLS a profile set names, kept current.

::

    import mtls
    from mtls.integrations.grpc import secure_channel

    profiles = mtls.SSLProfileSet.from_xml("sslprofiles.xml", reload_interval=10)
    with secure_channel("orders.example.com:8443", profiles) as channel:
        stub = orders_pb2_grpc.OrdersStub(channel)   # generated stubs work unchanged

gRPC does not take an ``ssl.SSLContext``: ``grpc.ssl_channel_credentials`` takes
the key, the chain and the anchors as PEM bytes, fixed for the channel's life.
The profile set hands them out with :meth:`mtls.SSLProfileSet.material_for`
(in memory: the key never reaches a file).

Theory of operation (channels)
------------------------------
What :func:`secure_channel` returns is a ``grpc.Channel`` that owns underlying
``grpc.secure_channel`` objects, one per distinct material, through the same
lease-and-retire bookkeeping as the HTTP integrations (:mod:`mtls.integrations`).
Each call reads the profile set's generation; when it moved and the target's
material changed (its fingerprint), a new underlying channel is built from the
new material, completely, before any call sees it, and new calls go there. The
old one is *retired*: closed at once when no call runs on it, else when its
last call ends (a unary call returns, a stream finishes or is cancelled). No
grace timer: a stream that never ends keeps its channel open, as it keeps its
connection; give long streams a deadline. The sync channel also sweeps from the
profile set's subscriber callback, so an idle old channel closes right after a
reload; the aio channel sweeps on its next call or :meth:`close`, in its loop.

Trust and names (gRPC's TLS stack, BoringSSL, tested in tests/integrations/test_grpc_*.py)
----------------------------------------------------------------------------
* Every anchor is an anchor (Java semantics): gRPC accepts a chain that ends at
  an intermediate or a leaf given in ``root_certificates``, as the profile set's
  contexts do with ``VERIFY_X509_PARTIAL_CHAIN``.
* ``Strict`` and ``Default``: gRPC checks the target host against the DNS (or
  IP) SANs, a wildcard matching one label, and the CN only when the certificate
  has no SAN at all: never looser than the ``ssl`` contexts, except that for an IP
  target gRPC also takes the address written as a DNS SAN (``DNS:127.0.0.1``).
* ``DefaultAndLocalhost``: gRPC cannot skip the name check, so localhost targets
  are checked like any other (stricter than asked, never looser; logged). Pass
  ``("grpc.ssl_target_name_override", "<name in the certificate>")`` to choose
  the name checked.
* ``AllowAll`` (no name check) cannot be honoured: refused unless the channel is
  given ``grpc.ssl_target_name_override`` naming what to check.
* ``novalidatecert="true"`` without a truststore (no verification at all) is
  refused: gRPC always verifies the server's chain.
* No truststore: gRPC's own default roots (its bundled ``roots.pem``, or the file
  in ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``), not OpenSSL's system paths.
* A key BoringSSL cannot use (Ed448; P-224, brainpool or secp256k1 curves; OpenSSL
  can) is refused, naming its type: gRPC would fail every handshake.
* A profile set with a ``revocation=`` policy, or a profile with ``crls=``, is refused
  unless the caller passes ``unchecked_revocation=True``: gRPC's TLS runs in its own
  core, where no check of ours can run.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import operator
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Self

from .._config import CATCH_ALL, DEFAULT_PORTS, SSLProfile, StoreConfig
from .._context import dials_localhost
from .._errors import MTLSError, ProfileConfigError
from .._fork import renew_attributes_after_fork
from .._log import log
from .._material import TLSMaterial
from .._profiles import SSLProfileSet
from .._types import check_flag
from . import _boringssl, _describe, _missing_extra, _require_profile_set
from ._pools import _close_each, _ContextPools, _Entry, _subscribe_weakly

try:
    import grpc
    import grpc.aio
except ImportError as _exc:
    raise _missing_extra("grpcio", "grpc", _exc) from _exc

__all__ = [
    "AioRotatingChannel",
    "MTLSServerCredentials",
    "RotatingChannel",
    "aio_secure_channel",
    "secure_channel",
    "server_credentials",
]


_OVERRIDE = "grpc.ssl_target_name_override"
_AUTHORITY = "grpc.default_authority"


def _parse_target(target: str) -> tuple[str, int]:
    """``(host, port)`` of a gRPC target, as the profile set is keyed (port 443 by default).

    Raises:
        ProfileConfigError: a target without a host (``unix:``), or several addresses.
    """
    rest = target.strip()
    scheme, sep, tail = rest.partition(":")
    if sep and scheme.lower() in ("dns", "ipv4", "ipv6"):
        rest = tail
        if rest.startswith("//"):  # dns://authority/host:port
            rest = rest[2:].partition("/")[2]
        elif rest.startswith("/"):  # dns:/host:port (a URI path; gRPC reads it so)
            rest = rest[1:]
    elif sep and scheme.lower() in ("unix", "unix-abstract", "vsock"):
        raise ProfileConfigError(
            f"gRPC target {target!r} has no host name to choose a profile by (and none "
            "to check the certificate against): use host:port",
            servers=(target,),
        )
    # A host never holds a slash; "%" is percent-encoding, which gRPC decodes
    # ("dns:///%6Cocalhost:1" reaches localhost) and a profile lookup would not.
    if not rest or any(c in rest for c in ",/%"):
        raise ProfileConfigError(
            f"gRPC target {target!r}: give one host, host:port or [v6]:port",
            servers=(target,),
        )
    if rest.startswith("["):
        host, closed, after = rest[1:].partition("]")
        if not closed or (after and not after.startswith(":")):
            host = ""  # "[::1" or "[::1]x:5": refused below, never read as [::1]:443
        port_text = after[1:]
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""  # a bare name, or an IPv6 literal without brackets
    # ASCII digits only: int() also takes "1_0", " 443", "+443" and other scripts' digits.
    if not port_text:
        port = DEFAULT_PORTS["https"]
    elif port_text.isascii() and port_text.isdigit() and len(port_text) <= 5:
        port = int(port_text)
    else:
        port = 0
    if not host or not 0 < port < 65536:
        raise ProfileConfigError(
            f"gRPC target {target!r}: give one host, host:port or [v6]:port",
            servers=(target,),
        )
    return host, port


def _material_refusal(material: TLSMaterial) -> str | None:
    """Why gRPC cannot use the material's key and chain (:func:`_boringssl.judge`:
    judged once per material, by gRPC itself too)."""
    return _boringssl.judge(material).key if material.private_key is not None else None


def _same_profile(one: TLSMaterial, other: TLSMaterial) -> bool:
    """Whether two materials are one profile's, with the same keystore (its file and key
    entry), before and after a reload: only then may the older one's key stand in for
    the newer's (a profile pointed at another keystore asked for another identity)."""
    if one.profile is None or other.profile is None:
        return False

    def identity(material: TLSMaterial) -> tuple[object, ...]:
        profile = material.profile
        assert profile is not None
        store = profile.keystore
        where = (store.location, store.alias) if store is not None else None
        return (profile.server_names, profile.client_id, where)

    return identity(one) == identity(other)


def _channel_roots(material: TLSMaterial) -> bytes | None:
    """The anchors a channel gives gRPC (:func:`_boringssl.judge`): never empty where the
    material has a truststore. gRPC reads ``b""`` as ``None``, its default (public)
    roots (h183): then the probe's own certificate, which verifies no server."""
    roots = _boringssl.judge(material).roots
    if material.root_certificates is not None and not roots:
        return _boringssl.refuse_every_peer()
    return roots


def _roots_said(
    previous: ProfileConfigError | None, why: str | None, **details: Any
) -> ProfileConfigError | None:
    """The refusal of anchors gRPC cannot read to keep in ``last_error`` (``None``: gRPC
    reads them all), said at ERROR when it is not ``previous``'s (once per refusal)."""
    if why is None:
        return None
    if previous is None or str(previous) != why:
        log.error("mtls: %s", why)
    return ProfileConfigError(why, **details)


def _refusal(
    material: TLSMaterial, target: str, override: str | None, *, unchecked: bool = False
) -> str | None:
    """Why gRPC cannot do what the material asks (``None``: it can), never verifying less."""
    where = str(material.profile) if material.profile is not None else "the default"
    unusable = _material_refusal(material)
    if unusable is not None:
        return f"{where}: {unusable}; {target!r} is not called with a key it would refuse"
    verdict = _boringssl.judge(material)
    if material.root_certificates is not None and not verdict.roots:
        # gRPC would be given no anchor: it fails every call, or with None the
        # public CAs would be trusted in place of the truststore.
        return f"{verdict.roots_refusal(where)}; {target!r} is not called without its truststore"
    if material.profile is not None and material.profile.crls and not unchecked:
        return (
            f"{where} names CRL files, which gRPC cannot check (its TLS runs in its own "
            f"core): {target!r} would reach a revoked server; pass "
            "unchecked_revocation=True to accept that, or leave crls out of the profile"
        )
    if not material.verify:
        return (
            f'{where} has novalidatecert="true" and no TrustStore: gRPC always verifies '
            f"the server's certificate, so {target!r} cannot be reached without "
            "verification; give the profile a TrustStore"
        )
    if material.hostname_verifier == "AllowAll" and override is None:
        return (
            f"HostnameVerifier AllowAll asks for no host name check, which gRPC cannot "
            f"turn off: for {target!r} pass options=[({_OVERRIDE!r}, '<a name in the "
            "server certificate>')] to choose the name checked, or use Strict or Default"
        )
    return None


class _Underlying:
    """One ``grpc`` channel built from one material, and its multicallables."""

    __slots__ = ("callables", "channel")

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.callables: dict[tuple[Any, ...], Any] = {}

    def callable(self, key: tuple[Any, ...]) -> Any:
        found = self.callables.get(key)
        if found is None:
            kind, method, serializer, deserializer, registered = key
            # _registered_method (grpcio 1.62+) is passed on only when a stub sets it.
            extra = {"_registered_method": True} if registered else {}
            found = getattr(self.channel, kind)(method, serializer, deserializer, **extra)
            self.callables[key] = found  # a race makes two, equally good: no lock needed
        return found


class _Rotating:
    """What the sync and aio channels share: target, options, leases, checks."""

    def __repr__(self) -> str:
        return _describe(self)

    def __init__(
        self,
        target: str,
        profile_set: SSLProfileSet,
        client_id: str | None,
        options: Sequence[tuple[str, Any]] | None,
        make: Callable[[grpc.ChannelCredentials], Any],
        *,
        unchecked_revocation: bool = False,
    ) -> None:
        check_flag("unchecked_revocation", unchecked_revocation)
        if profile_set.revocation is not None and not unchecked_revocation:
            # Never verifying less than the profile set asks, silently.
            raise ProfileConfigError(
                f"gRPC target {target!r}: the profile set checks revocation (OCSP, CRL), "
                "which gRPC cannot do: its TLS runs in gRPC's own core, where no check of "
                "ours can run, so a channel would reach a revoked server. Pass "
                "unchecked_revocation=True to accept that, or give gRPC a profile set "
                "without revocation="
            )
        self._unchecked = unchecked_revocation
        self._target = target
        self._host, self._port = _parse_target(target)
        self._options = tuple(options or ())
        given = dict(self._options)
        self._override: str | None = given.get(_OVERRIDE) or given.get(_AUTHORITY)
        self._profiles = profile_set
        self._client_id = client_id
        self._build = make
        self._memo: tuple[int, TLSMaterial | None] | None = None
        self._pools: _ContextPools[_Underlying] = _ContextPools(
            profile_set,
            client_id,
            self._make,
            lookup=self._material,
            key=operator.attrgetter("fingerprint"),
        )
        self._built: TLSMaterial | None = None
        self._checked: str | None = None  # fingerprint of the last material that passed
        # The last material whose key gRPC can use, and the refusal of a newer one.
        self._usable: TLSMaterial | None = None
        self._last_error: ProfileConfigError | None = None
        self._roots_error: ProfileConfigError | None = None  # anchors gRPC cannot read
        self._closed = False  # after close(): calls refused, as grpc.Channel refuses them
        self._unjudge = _subscribe_weakly(profile_set, self, _Rotating._judge_ahead)
        if (
            self._override is None
            and dials_localhost(self._host)
            and self._check(self._lookup_now()).hostname_verifier == "DefaultAndLocalhost"
        ):
            log.info(
                "mtls: gRPC channel to %s: DefaultAndLocalhost cannot exempt %s from the "
                "name check in gRPC; its certificate must name it (or pass %s)",
                target,
                self._host,
                _OVERRIDE,
            )

    def _lookup_now(self) -> TLSMaterial | None:
        return self._profiles.material_for(self._host, self._port, client_id=self._client_id)

    def _material(self, host: str, port: int, server_hostname: str | None) -> TLSMaterial | None:
        # One lookup per generation: a call reads one int when nothing changed.
        del host, port, server_hostname  # always this channel's target (and its override)
        profiles = self._profiles
        generation = profiles.generation
        memo = self._memo
        if memo is not None and memo[0] == generation:
            return memo[1]
        found = self._lookup_now()
        material = self._keeping_usable_key(found)
        # Kept for the generation, unless its verdict lapses (gRPC not asked about all
        # of it, or a refusal: asked again then, at the next call).
        final = found is None or _boringssl.judge(found).until is None
        if profiles.generation == generation and final:
            self._memo = (generation, material)
        return material

    def _keeping_usable_key(self, material: TLSMaterial | None) -> TLSMaterial | None:
        """``material``, or, when a rotation gave its profile a key gRPC cannot use
        (a brainpool curve, Ed448: the ``ssl`` contexts take it, BoringSSL does not),
        the same material with the last usable key and chain in place of that one: the
        new trust and checks apply, the identity in service stays (every call would
        otherwise fail), and the refusal is logged at ERROR and kept in
        :attr:`last_error` until a usable key arrives."""
        if material is None:
            self._usable, self._last_error = None, None
            return material
        verdict = _boringssl.judge(material)
        where = str(material.profile) if material.profile is not None else "the default"
        self._roots_error = _roots_said(
            self._roots_error,
            verdict.roots_refusal(f"{where}: gRPC target {self._target!r}"),
            servers=material.profile.server_names if material.profile else (),
        )
        if material.private_key is None:
            # No key (the profile dropped its <KeyStore>, or went away): nothing kept
            # from before may come back with a later key gRPC cannot use.
            self._usable, self._last_error = None, None
            return material
        unusable = verdict.key
        if unusable is None and verdict.asked:
            self._usable, self._last_error = material, None
            return material
        good = self._usable
        if unusable is None:
            # gRPC could not be asked about the new key (asked again when the verdict
            # lapses): the key in service, known good, where there is one.
            if good is None or not _same_profile(good, material):
                return material
            return self._with_key_of(good, material)
        if good is None or not _same_profile(good, material):
            return material  # nothing to keep: _check refuses it, naming why
        where = str(material.profile) if material.profile is not None else "the default"
        error = ProfileConfigError(
            f"{where}: {unusable}; gRPC target {self._target!r} keeps presenting "
            f"{good.subject or 'the previous certificate'} until a key it can use arrives",
            servers=material.profile.server_names if material.profile else (),
        )
        if self._last_error is None or str(self._last_error) != str(error):
            log.error("mtls: %s", error)
        self._last_error = error
        return self._with_key_of(good, material)

    @staticmethod
    def _with_key_of(good: TLSMaterial, material: TLSMaterial) -> TLSMaterial:
        """``material`` with ``good``'s key and chain in place of its own."""
        return dataclasses.replace(
            material,
            private_key=good.private_key,
            certificate_chain=good.certificate_chain,
            subject=good.subject,
            fingerprint=f"{material.fingerprint}+key-of:{good.fingerprint}",
        )

    def _judge_ahead(self) -> None:
        """After a reload, on the reloader's thread: what gRPC takes of the target's new
        material, judged now (a gRPC server started for a moment), so that the first
        call after a rotation, on an event loop for aio channels, finds it judged."""
        if self._closed:
            return
        try:
            material = self._lookup_now()
        except MTLSError:
            return  # the call says it
        if material is not None:
            _boringssl.judge(material)

    @property
    def last_error(self) -> ProfileConfigError | None:
        """Why the channel does not present or trust what its profile now names: the
        profile's new key is one gRPC's TLS cannot use, and the channel presents the
        previous certificate; or some anchors of its truststore are ones gRPC's TLS
        cannot read, and servers under them are refused (``None``: the channel
        presents and trusts what the profile names). Judged at the first call after a
        reload, as the channel's material is."""
        return self._last_error or self._roots_error

    def _check(self, material: TLSMaterial | None) -> TLSMaterial:
        if material is None:
            raise ProfileConfigError(
                f"no SSL profile matches gRPC target {self._host}:{self._port} and the "
                "profile set has no default: add the server to a profile, or give the set "
                "a default profile (gRPC would otherwise use its default roots and no "
                "client certificate)",
                servers=(f"{self._host}:{self._port}",),
            )
        why = _refusal(material, self._target, self._override, unchecked=self._unchecked)
        if why is not None:
            servers = material.profile.server_names if material.profile else ()
            raise ProfileConfigError(why, servers=servers)
        return material

    def _make(self, material: TLSMaterial) -> _Underlying:
        # Under the pools' lock; grpc channels connect lazily, so this is cheap.
        # A material gRPC cannot honour still gets a channel (verifying more, never
        # less), but no call ever reaches it: _lease refuses first.
        key = material.private_key
        credentials = grpc.ssl_channel_credentials(
            # The anchors gRPC reads: BoringSSL stops at the first it cannot (_check
            # refused a material none of whose anchors it reads).
            root_certificates=_channel_roots(material),
            private_key=key.reveal().encode("ascii") if key is not None else None,
            certificate_chain=material.certificate_chain,
        )
        previous, self._built = self._built, material
        who = material.subject or "no client certificate"
        if previous is None:
            log.info("mtls: gRPC channel to %s uses %s (%s)", self._target, who, material.profile)
        else:
            log.info(
                "mtls: gRPC channel to %s rotated: %s -> %s",
                self._target,
                previous.subject or "no client certificate",
                who,
            )
        return _Underlying(self._build(credentials))

    def _lease(self) -> tuple[_Entry[_Underlying], list[_Underlying]]:
        if self._closed:
            # As grpc's own channels refuse: a closed channel must not quietly build a
            # new underlying channel that nothing would ever close or rotate.
            raise self._closed_error()
        entry, closing = self._pools.acquire(self._host, self._port)
        if entry is None:  # the target's profile went away in a reload
            if closing:
                self._dispose(closing)
            self._check(None)
        assert entry is not None
        material: TLSMaterial = entry.context
        if material.fingerprint != self._checked:  # once per material, not per call
            try:
                self._check(material)
            except BaseException:
                self._release(entry, closing)
                raise
            # A verdict that lapses is judged again: checked at each call till it stands.
            if _boringssl.judge(material).until is None:
                self._checked = material.fingerprint
        return entry, closing

    def _first(self) -> None:
        """Build the first channel now: bad targets and profiles fail at creation."""
        self._check(self._lookup_now())
        entry, closing = self._lease()
        self._release(entry, closing)

    def _release(self, entry: _Entry[_Underlying], closing: list[_Underlying]) -> None:
        retired = self._pools.release(entry)
        if retired is not None:
            closing.append(retired)
        if closing:
            self._dispose(closing)

    def _closed_error(self) -> Exception:
        return ValueError("Cannot invoke RPC on closed channel!")  # grpc.Channel's words

    @abc.abstractmethod
    def _dispose(self, closing: list[_Underlying]) -> None:
        """Close retired underlying channels (sync: now; aio: in the event loop)."""

    def _dispose_after_call(self, closing: list[_Underlying]) -> None:
        """Close channels retired when a call ended, from gRPC's callback for that call."""
        self._dispose(closing)

    def _started(self, key: tuple[Any, ...], name: str, args: Any, kwargs: Any) -> Any:
        """Start a call that outlives this method (a future, a stream): its lease ends
        when the call does."""
        entry, closing = self._lease()
        try:
            call = getattr(entry.resource.callable(key), name)(*args, **kwargs)
        except BaseException:
            self._release(entry, closing)
            raise
        if closing:
            self._dispose(closing)
        ended = threading.Lock()  # a callback may run twice (add_done_callback + cancel)

        def done(_: object) -> None:
            # On gRPC's thread for this call: for a sync channel that is the channel's
            # own spin thread, and Channel.close() waits for that thread to finish, so
            # the close must happen elsewhere (_dispose_after_call).
            if ended.acquire(blocking=False):
                retired = self._pools.release(entry)
                if retired is not None:
                    self._dispose_after_call([retired])

        call.add_done_callback(done)
        return call

    def _current(self) -> _Underlying:
        entry, closing = self._lease()
        self._release(entry, closing)
        return entry.resource

    @property
    def target(self) -> str:
        """The target the channel was made for."""
        return self._target

    # The four factories of grpc.Channel and grpc.aio.Channel, for both (made by
    # _factory below): what they return runs each call on the current underlying
    # channel, under a lease.
    _wrappers: dict[str, type[Any]]


def _factory(kind: str) -> Callable[..., Any]:
    def factory(
        self: _Rotating,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> Any:
        key = (kind, method, request_serializer, response_deserializer, _registered_method)
        return self._wrappers[kind](self, key)

    factory.__name__ = factory.__qualname__ = kind
    factory.__doc__ = (
        f"A ``{kind}`` multicallable whose calls use the identity current when each "
        "starts (a stream stays on the channel it started on)."
    )
    return factory


for _kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
    setattr(_Rotating, _kind, _factory(_kind))
del _kind


# --------------------------------------------------------------------------- sync


class _SyncMultiCallable:
    """Each invocation runs on the channel's current underlying channel, under a lease."""

    def __init__(self, owner: RotatingChannel, key: tuple[Any, ...]) -> None:
        self._owner = owner
        self._key = key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._blocking(self._key, "__call__", args, kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._blocking(self._key, "with_call", args, kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._started(self._key, "future", args, kwargs)


class _UnaryUnary(_SyncMultiCallable, grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    pass


class _UnaryStream(_SyncMultiCallable, grpc.UnaryStreamMultiCallable):  # type: ignore[misc]
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._started(self._key, "__call__", args, kwargs)


class _StreamUnary(_SyncMultiCallable, grpc.StreamUnaryMultiCallable):  # type: ignore[misc]
    pass


class _StreamStream(_SyncMultiCallable, grpc.StreamStreamMultiCallable):  # type: ignore[misc]
    __call__ = _UnaryStream.__call__


_SYNC_WRAPPERS: dict[str, type[_SyncMultiCallable]] = {
    "unary_unary": _UnaryUnary,
    "unary_stream": _UnaryStream,
    "stream_unary": _StreamUnary,
    "stream_stream": _StreamStream,
}


def _close_sync(resource: _Underlying) -> None:
    resource.channel.close()


class RotatingChannel(_Rotating, grpc.Channel):  # type: ignore[misc]
    """A ``grpc.Channel`` whose TLS identity follows the profile set; see :func:`secure_channel`."""

    _wrappers = _SYNC_WRAPPERS

    def __init__(
        self,
        target: str,
        profile_set: SSLProfileSet,
        *,
        client_id: str | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
        compression: grpc.Compression | None = None,
        unchecked_revocation: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        renew_attributes_after_fork(self, "_lock")
        self._subscriptions: list[tuple[Callable[[grpc.ChannelConnectivity], None], bool]] = []
        super().__init__(
            target,
            profile_set,
            client_id,
            options,
            lambda creds: grpc.secure_channel(target, creds, list(self._options), compression),
            unchecked_revocation=unchecked_revocation,
        )
        self._first()
        self._unsubscribe = _subscribe_weakly(profile_set, self, RotatingChannel._on_reload)

    def _make(self, material: TLSMaterial) -> _Underlying:
        underlying = super()._make(material)
        with self._lock:
            for callback, try_to_connect in self._subscriptions:
                underlying.channel.subscribe(callback, try_to_connect)
        return underlying

    def _on_reload(self) -> None:
        # On the reloader's thread: only channels without a running call close here.
        _close_each(self._pools.sweep(), _close_sync)

    def _dispose(self, closing: list[_Underlying]) -> None:
        _close_each(closing, _close_sync)

    def _dispose_after_call(self, closing: list[_Underlying]) -> None:
        # The callback runs on the retired channel's own spin thread, which close()
        # joins: closing there deadlocks (the call's last event is never delivered).
        threading.Thread(
            target=_close_each, args=(closing, _close_sync), name="mtls-grpc-close", daemon=True
        ).start()

    def _blocking(self, key: tuple[Any, ...], name: str, args: Any, kwargs: Any) -> Any:
        entry, closing = self._lease()
        try:
            return getattr(entry.resource.callable(key), name)(*args, **kwargs)
        finally:
            self._release(entry, closing)

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        """Follow connectivity: of the current underlying channel, and of each one after it."""
        with self._lock:
            self._subscriptions.append((callback, try_to_connect))
        self._current().channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        """Stop following connectivity with ``callback``."""
        with self._lock:
            # ==, not is: each access to a bound method makes a new (equal) object.
            self._subscriptions = [s for s in self._subscriptions if s[0] != callback]
        for underlying in self._pools.resources():
            with contextlib.suppress(Exception):  # a channel closing meanwhile
                underlying.channel.unsubscribe(callback)

    def close(self) -> None:
        """Close every underlying channel and stop following reloads.

        Idempotent. Calls still running are cancelled, as ``grpc.Channel.close`` does;
        new calls raise ``ValueError``, as they do on a closed ``grpc.Channel``.
        """
        self._closed = True
        self._unsubscribe()
        self._unjudge()
        _close_each(self._pools.close(), _close_sync)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def secure_channel(
    target: str,
    profile_set: SSLProfileSet,
    *,
    client_id: str | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
    compression: grpc.Compression | None = None,
    unchecked_revocation: bool = False,
) -> RotatingChannel:
    """A ``grpc.Channel`` with the mutual TLS the profile set names for ``target``.

    Like ``grpc.secure_channel(target, credentials)``, with the credentials taken
    from ``profile_set.material_for(host, port)`` (port 443 when the target has
    none) and followed across rotations: new calls use a new underlying channel
    built from the new material; running calls finish on the old one, which is
    closed when its last call ends. Generated stubs, ``grpc.intercept_channel``,
    ``subscribe`` and ``with`` work on it unchanged.

    Example:
        >>> import mtls
        >>> from mtls.integrations.grpc import secure_channel
        >>> secure_channel("backend:8443", mtls.SSLProfileSet([]))
        Traceback (most recent call last):
        ...
        mtls.ProfileConfigError: no SSL profile matches gRPC target backend:8443 ...

    Args:
        target: ``host:port``, ``host`` (port 443), ``[v6]:port`` or ``dns:///host:port``.
        profile_set: where the material comes from; it is not closed with the channel.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        options: gRPC channel options, for every underlying channel.
            ``grpc.ssl_target_name_override`` chooses the name the server
            certificate is checked against (see the module notes on AllowAll and
            DefaultAndLocalhost).
        compression: as for ``grpc.secure_channel``.
        unchecked_revocation: accept that gRPC checks no revocation when the
            profile set has a ``revocation=`` policy or the profile names
            ``crls=`` (gRPC's TLS runs in its own core, where those checks cannot);
            without it such a set or profile is refused.

    Returns:
        The channel; close it (or use ``with``) when done.

    Raises:
        ProfileConfigError: no profile and no default for the target, a target
            without a host, a profile set that checks revocation (unless
            ``unchecked_revocation``), or a profile gRPC cannot honour without
            verifying less (``novalidatecert`` without a truststore, ``AllowAll``
            without a name override, a key type gRPC's TLS library cannot use).
            Calls raise it too if a reload brings such material; a rotation of the
            same keystore to a key gRPC cannot use keeps the key in service instead
            (see ``RotatingChannel.last_error``).
        ProfileUnavailableError: the target's profile has not loaded, or refuses the
            target until its keystore gives an identity (``ProfileStatus.withheld``):
            make the channel once it is served. Calls on a channel made before raise it
            meanwhile, and are served again after the reload that ends it.
    """
    _require_profile_set(profile_set, "secure_channel", materials=True)
    return RotatingChannel(
        target,
        profile_set,
        client_id=client_id,
        options=options,
        compression=compression,
        unchecked_revocation=unchecked_revocation,
    )


# --------------------------------------------------------------------------- aio


class _AioMultiCallable:
    def __init__(self, owner: AioRotatingChannel, key: tuple[Any, ...]) -> None:
        self._owner = owner
        self._key = key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._started(self._key, "__call__", args, kwargs)


class _AioUnaryUnary(_AioMultiCallable, grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[misc]
    pass


class _AioUnaryStream(_AioMultiCallable, grpc.aio.UnaryStreamMultiCallable):  # type: ignore[misc]
    pass


class _AioStreamUnary(_AioMultiCallable, grpc.aio.StreamUnaryMultiCallable):  # type: ignore[misc]
    pass


class _AioStreamStream(_AioMultiCallable, grpc.aio.StreamStreamMultiCallable):  # type: ignore[misc]
    pass


_AIO_WRAPPERS: dict[str, type[_AioMultiCallable]] = {
    "unary_unary": _AioUnaryUnary,
    "unary_stream": _AioUnaryStream,
    "stream_unary": _AioStreamUnary,
    "stream_stream": _AioStreamStream,
}


class AioRotatingChannel(_Rotating, grpc.aio.Channel):  # type: ignore[misc]
    """A ``grpc.aio.Channel`` whose TLS identity follows the profile set.

    See :func:`aio_secure_channel`. Old underlying channels are closed in the
    event loop: when their last call ends, or on the next call after a reload.
    """

    _wrappers = _AIO_WRAPPERS

    def __init__(
        self,
        target: str,
        profile_set: SSLProfileSet,
        *,
        client_id: str | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
        compression: grpc.Compression | None = None,
        interceptors: Sequence[Any] | None = None,
        unchecked_revocation: bool = False,
    ) -> None:
        self._closing: set[asyncio.Task[None]] = set()
        self._orphans: list[_Underlying] = []
        super().__init__(
            target,
            profile_set,
            client_id,
            options,
            lambda creds: grpc.aio.secure_channel(
                target, creds, list(self._options), compression, interceptors
            ),
            unchecked_revocation=unchecked_revocation,
        )
        self._first()

    def _dispose(self, closing: list[_Underlying]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the loop (cannot happen from a call): close() does it
            self._orphans.extend(closing)
            return
        task = loop.create_task(_aclose_each(closing, None))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        """The connectivity of the current underlying channel."""
        state: grpc.ChannelConnectivity = self._current().channel.get_state(try_to_connect)
        return state

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        """Wait for the current underlying channel's state to differ from the one given."""
        await self._current().channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        """Wait until the current underlying channel is ready (connected, handshake done)."""
        await self._current().channel.channel_ready()

    async def close(self, grace: float | None = None) -> None:
        """Close every underlying channel (running calls get ``grace`` seconds). Idempotent.

        New calls then raise ``grpc.aio.UsageError``, as on a closed ``grpc.aio.Channel``.
        """
        self._closed = True
        self._unjudge()
        orphans, self._orphans = self._orphans, []
        await _aclose_each([*self._pools.close(), *orphans], grace)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _closed_error(self) -> Exception:
        error: Exception = grpc.aio.UsageError("Channel is closed.")  # grpc.aio's words
        return error

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)


async def _aclose_each(closing: list[_Underlying], grace: float | None) -> None:
    """Close every channel of ``closing``, side by side (each gets ``grace``), whatever
    cancels the caller meanwhile: the closes run in tasks of their own, which a
    cancellation of this wait spares (one channel at a time, a cancelled wait on the
    first left every later one open for good)."""

    async def close(underlying: _Underlying) -> None:
        try:
            await underlying.channel.close(grace)
        except Exception:
            log.warning("mtls: closing a retired gRPC channel failed", exc_info=True)

    closes = [asyncio.ensure_future(close(underlying)) for underlying in closing]
    if closes:
        # Held by the event loop until done: gather keeps each task, and _KEPT the gather.
        together = asyncio.gather(*closes)
        _KEPT.add(together)
        together.add_done_callback(_KEPT.discard)
        await asyncio.shield(together)


# Closes under way whose caller was cancelled (asyncio keeps only weak references).
_KEPT: set[asyncio.Future[list[None]]] = set()


def aio_secure_channel(
    target: str,
    profile_set: SSLProfileSet,
    *,
    client_id: str | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
    compression: grpc.Compression | None = None,
    interceptors: Sequence[Any] | None = None,
    unchecked_revocation: bool = False,
) -> AioRotatingChannel:
    """The ``grpc.aio`` twin of :func:`secure_channel`.

    Args:
        target: as for :func:`secure_channel`.
        profile_set: where the material comes from; it is not closed with the channel.
        client_id: WSO2's client identifier.
        options: gRPC channel options, for every underlying channel.
        compression: as for ``grpc.aio.secure_channel``.
        interceptors: ``grpc.aio`` client interceptors, for every underlying channel.
        unchecked_revocation: as for :func:`secure_channel`.

    Returns:
        The channel; ``await channel.close()`` (or ``async with``) when done.

    Raises:
        ProfileConfigError: as for :func:`secure_channel`.
        ProfileUnavailableError: as for :func:`secure_channel`.
    """
    _require_profile_set(profile_set, "aio_secure_channel", materials=True)
    return AioRotatingChannel(
        target,
        profile_set,
        client_id=client_id,
        options=options,
        compression=compression,
        interceptors=interceptors,
        unchecked_revocation=unchecked_revocation,
    )


# --------------------------------------------------------------------------- servers


class MTLSServerCredentials(grpc.ServerCredentials):  # type: ignore[misc]
    """``grpc.ServerCredentials`` that follow a keystore and a truststore on disk.

    Made by :func:`server_credentials`; pass to ``server.add_secure_port`` (one object
    serves any number of ports and servers: each port gets credentials of its own).

    A replacement keystore that gRPC's TLS library cannot use (a key type OpenSSL
    takes and BoringSSL does not, such as Ed448 or a brainpool curve) is not handed
    to gRPC: the identity in service stays, with the new truststore, and the refusal
    is logged at ERROR and kept in :attr:`last_error`.

    Attributes:
        profile_set: the one-profile set (catch-all ``*``) that loads, validates,
            watches and keeps the last good material; see :meth:`SSLProfileSet.status`.
    """

    def __repr__(self) -> str:
        return _describe(self)

    def __init__(self, profile_set: SSLProfileSet, require_client_auth: bool, where: str) -> None:
        # grpc.ServerCredentials.__init__ is not called: _credentials is made per port.
        self.profile_set = profile_set
        self._where = where
        self._require_client_auth = require_client_auth
        self._lock = threading.Lock()
        renew_attributes_after_fork(self, "_lock")
        material = self._material()
        verdict = _boringssl.judge(material)
        if verdict.key is not None:
            raise ProfileConfigError(f"gRPC server {where}: {verdict.key}", element="KeyStore")
        if material.root_certificates is not None and not verdict.roots:
            raise ProfileConfigError(
                f"{verdict.roots_refusal(f'gRPC server {where}')}; the server does not start "
                "without them",
                element="TrustStore",
            )
        self._good = material  # the newest material whose key gRPC can use
        self._announced = (material.fingerprint, material.fingerprint)
        self._last_error: ProfileConfigError | None = None
        self._roots_error: ProfileConfigError | None = None
        self._refused = ""  # the fingerprint of the material last refused
        # What the ports are to serve (each port compares its token with what it gave).
        self._serving = _Serving(material, material.fingerprint, verdict.roots, 0, verdict)
        self._judge_roots(verdict)
        self._ports: list[grpc.ServerCredentials] = []  # kept alive with the credentials
        log.info("mtls: gRPC server %s serves %s", where, material.subject)
        # Judged when a reload applies, on the reloader's thread: never on gRPC's own
        # thread, which asks the ports' fetchers before each handshake; last_error and
        # the log speak as soon as the set has taken material gRPC cannot use.
        _subscribe_weakly(profile_set, self, MTLSServerCredentials._judge_new)

    @property
    def _credentials(self) -> Any:
        """What ``add_secure_port`` reads: credentials of its own for each port.

        gRPC gives a credentials object's initial configuration to its first port
        only, and a second port asking the fetcher finds nothing new and fails to
        bind; so each port gets dynamic credentials with its own record of what it
        was last given."""
        port = _Port(self)
        dynamic = grpc.dynamic_ssl_server_credentials(
            port.initial(), port.fetch, self._require_client_auth
        )
        with self._lock:
            self._ports.append(dynamic)
        return dynamic._credentials

    @property
    def last_error(self) -> MTLSError | None:
        """Why the newest stores are not served as they are through gRPC (``None``: they
        are): a key gRPC's TLS cannot use (the previous identity serves on), anchors of
        the truststore it cannot read (clients under them are refused), or the
        profile set's own refusal of a replacement (a wrong password, a damaged file:
        :attr:`profile_set`'s ``last_error``)."""
        return self._last_error or self._roots_error or self.profile_set.last_error

    def _material(self) -> TLSMaterial:
        material = self.profile_set.material_for(CATCH_ALL, 0)
        assert material is not None  # the set's one profile is the catch-all
        return material

    def _judge_new(self) -> None:
        """After a reload, on the reloader's thread: judge the newest material
        (:func:`_boringssl.judge`), and serve it from the next handshake."""
        self._current(judge=True)

    def _current(self, *, judge: bool = False) -> _Serving:
        """What to serve now: the newest material, or (when gRPC cannot use its key) the
        last one it could, with the newest trust, whose anchors gRPC cannot read left
        out (:func:`_boringssl.judge`).

        ``judge``: judge the material here (the reloader's thread, after a reload).
        Else (gRPC's own thread, asking before a handshake) a material not judged yet
        is judged on a thread of its own, waited for up to
        :data:`_boringssl.FETCH_WAIT`: never behind a subscriber that blocks (h181),
        never on gRPC's thread (a server started from inside gRPC's callback). Not
        judged by then, its trust is served (the anchors known readable first) with
        the identity in service, until it is.
        """
        material = self._material()
        serving = self._serving
        if material.fingerprint == serving.trust and serving.verdict.current:
            return serving  # the usual handshake: nothing new
        verdict = _boringssl.judged(material)
        if verdict is None and judge:
            verdict = _boringssl.judge(material)
        elif verdict is None:  # new, or its verdict lapsed (asked again)
            verdict = _boringssl.awaited(material)
            if verdict is None:
                if material.fingerprint == serving.trust:
                    return serving  # served as before the probe; the verdict is under way
                verdict = _boringssl.unasked(material)
        if verdict is serving.verdict:
            return serving
        with self._lock:
            good = self._good
            if verdict.key is None and verdict.asked:
                self._good = good = material
                self._last_error, self._refused = None, ""
            elif verdict.key is None:
                # gRPC not asked yet: the identity in service (known good) with the new
                # trust, so that a key gRPC refuses never takes a withdrawal down with
                # it (gRPC keeps its whole previous configuration when it refuses one).
                pass
            elif material.fingerprint != self._refused:  # said once per material
                self._refused = material.fingerprint
                self._last_error = ProfileConfigError(
                    f"gRPC server {self._where}: the new keystore is not served: "
                    f"{verdict.key}; the previous identity stays, with the new truststore",
                    element="KeyStore",
                )
                log.error("mtls: %s", self._last_error)
            if verdict.asked or verdict.left_out:
                self._judge_roots(verdict)
            roots = verdict.roots
            if material.root_certificates is not None and not roots:
                roots = _boringssl.refuse_every_peer()  # never an older trust kept
            self._serving = serving = _Serving(
                good, material.fingerprint, roots, self._serving.token + 1, verdict
            )
            announced = (good.fingerprint, material.fingerprint)
            if announced != self._announced:
                self._announced = announced
                log.info("mtls: gRPC server %s now serves %s", self._where, good.subject)
        return serving

    def _judge_roots(self, verdict: _boringssl.Verdict) -> None:
        """Keep (:attr:`last_error`) and say which anchors gRPC cannot read: clients
        under them are refused."""
        self._roots_error = _roots_said(
            self._roots_error,
            verdict.roots_refusal(f"gRPC server {self._where}"),
            element="TrustStore",
        )

    def reload(self) -> bool:
        """Check the stores now (as :meth:`SSLProfileSet.reload`); the next handshake uses them.

        Returns:
            True if the material changed.
        """
        return self.profile_set.reload()

    def close(self) -> None:
        """Stop watching the stores. Idempotent; the last material stays in use."""
        self.profile_set.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Serving(NamedTuple):
    """What a server's ports are to serve."""

    identity: TLSMaterial  # the newest material whose key gRPC can use
    trust: str  # the fingerprint of the material the trust comes from
    roots: bytes | None  # its anchors as gRPC is given them
    token: int  # a new one for each change: what each port compares
    verdict: _boringssl.Verdict  # what it was made from (it may lapse: asked again)


class _Port:
    """What one listening port was last given: gRPC asks each port's fetcher apart."""

    __slots__ = ("_owner", "_served")

    def __init__(self, owner: MTLSServerCredentials) -> None:
        self._owner = owner
        self._served = -1

    def initial(self) -> Any:
        """The first configuration: :meth:`fetch` with nothing served yet."""
        self._served = -1
        return self.fetch()

    def fetch(self) -> Any:
        # gRPC calls this before every handshake: a snapshot read and a compare.
        serving = self._owner._current()
        if serving.token == self._served:
            return None
        self._served = serving.token
        return _server_configuration(serving.identity, serving.roots)


def _server_configuration(identity: TLSMaterial, roots: bytes | None) -> Any:
    key = identity.private_key
    assert key is not None  # server_credentials requires a keystore
    assert identity.certificate_chain is not None
    return grpc.ssl_server_certificate_configuration(
        [(key.reveal().encode("ascii"), identity.certificate_chain)], root_certificates=roots
    )


def server_credentials(
    keystore: StoreConfig,
    truststore: StoreConfig | None,
    *,
    require_client_auth: bool = True,
    reload_interval: float | None = 60.0,
    settle_delay: float = 0.1,
) -> MTLSServerCredentials:
    """Server credentials for ``grpc.server`` / ``grpc.aio.server`` that follow rotations.

    Built on ``grpc.dynamic_ssl_server_credentials``: before each handshake gRPC
    asks for the current material, so a rotated keystore or client truststore
    takes effect on the next connection without restarting the server.

    Loading, watching and keep-last-good are the profile set's own engine (an
    internal :class:`mtls.SSLProfileSet` with one catch-all profile): a changed
    file is read twice a settle delay apart, validated by building a context
    (key matches certificate, anchors parse), and a damaged replacement is
    refused and reported while the last good material keeps being served.

    Args:
        keystore: the server's identity (a :class:`mtls.StoreConfig`: location,
            password, type, alias).
        truststore: the anchors client certificates are verified against (Java
            semantics: every entry is an anchor). ``None`` only with
            ``require_client_auth=False``.
        require_client_auth: refuse clients without a certificate the truststore
            vouches for. ``False``: no client certificate is asked for at all, so a
            truststore is unused (gRPC's rule; a warning says so).
        reload_interval: seconds between checks of both files; ``None``: call
            :meth:`MTLSServerCredentials.reload` yourself.
        settle_delay: seconds between the two reads that confirm a changed file.

    Returns:
        The credentials; :meth:`~MTLSServerCredentials.close` them (or use ``with``)
        when the server stops, to end the watching thread.

    Raises:
        ProfileConfigError: ``require_client_auth`` without a truststore, or a key
            type gRPC's TLS library cannot use.
        KeystoreError: a store does not load now.
    """
    for role, given in (("keystore", keystore), ("truststore", truststore)):
        if given is not None and not isinstance(given, StoreConfig):
            raise TypeError(
                f"server_credentials: {role} must be an mtls.StoreConfig (location, "
                f"password, type, alias), not {type(given).__name__}: pass "
                f"mtls.StoreConfig(location={given!r}, password=...)"
                if isinstance(given, str | os.PathLike)
                else f"server_credentials: {role} must be an mtls.StoreConfig, not "
                f"{type(given).__name__}"
            )
    check_flag("require_client_auth", require_client_auth)  # "" turned client auth off
    if truststore is None and require_client_auth:
        raise ProfileConfigError(
            "server_credentials(require_client_auth=True) needs a truststore to verify "
            "client certificates with",
            element="TrustStore",
        )
    if truststore is not None and not require_client_auth:
        log.warning(
            "mtls: gRPC server %s: require_client_auth=False asks no client for a "
            "certificate (gRPC's rule), so its truststore %s is unused",
            keystore.location,
            truststore.location,
        )
    # Messages name what the caller wrote (a StoreConfig), not a profile's <Location>.
    keystore = _given(keystore, "keystore")
    truststore = _given(truststore, "truststore") if truststore is not None else None
    profile = SSLProfile(servers=(CATCH_ALL,), keystore=keystore, truststore=truststore)
    profiles = SSLProfileSet._presenting(
        "server", [profile], reload_interval=reload_interval, settle_delay=settle_delay
    )
    try:
        return MTLSServerCredentials(profiles, require_client_auth, str(keystore.location))
    except BaseException:
        profiles.close()
        raise


def _given(config: StoreConfig, role: str) -> StoreConfig:
    """``config`` saying, in messages about its location, that it is the StoreConfig
    given to :func:`server_credentials` (unless it says where it came from itself)."""
    if config.origin:
        return config
    return dataclasses.replace(
        config,
        origin=f"the {role} StoreConfig's location given to server_credentials (relative "
        "paths start from the working directory)",
    )
