"""httpx: transports that send each backend the identity its profile names.

::

    import httpx, mtls
    from mtls.integrations.httpx import MTLSTransport

    profiles = mtls.SSLProfileSet.from_xml("sslprofiles.xml", reload_interval=10)
    with httpx.Client(transport=MTLSTransport(profiles)) as client:
        client.get("https://backend.example.com:8243/orders")

Underneath, each distinct context gets one ``httpx.HTTPTransport(verify=ctx)``
(httpx's own transport: pooling, HTTP/2, proxies and retries are httpx's), and
URLs without a profile or default go to a plain ``httpx.HTTPTransport()`` with
httpx's normal verification and no client certificate.

What httpx does to a context it is given (httpx 0.28, httpcore 1.0):
``create_ssl_context(verify=ctx)`` returns it untouched (``cert=`` would call
``load_cert_chain`` on it, hence refused here), and httpcore calls
``ctx.set_alpn_protocols(["http/1.1"])`` (``["http/1.1", "h2"]`` with
``http2=True``) before each handshake. Nothing else is set; verify mode, host
name checking, flags and trust stay as the profile set built them.

Rotation: see :mod:`mtls.integrations` (old transports are closed once their
in-flight responses are closed; new requests never reach them).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import ipaddress
import ssl
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .._build import NotBuilt
from .._config import DEFAULT_PORTS
from .._fork import renew_attributes_after_fork
from .._log import log
from .._revocation import DIALLED_PORT, OwedCheck, pending_check
from . import _describe, _missing_extra, _note_tls_failure, _require_profile_set
from ._pools import _close_each, _ContextPools, _Entry, _subscribe_weakly

try:
    import anyio  # httpx's own dependency, for shielded closes and its worker threads
    import anyio.to_thread
    import httpx
except ImportError as _exc:
    raise _missing_extra("httpx", "httpx", _exc) from _exc

if TYPE_CHECKING:
    from .._profiles import SSLProfileSet

__all__ = ["AsyncMTLSTransport", "MTLSTransport", "async_client", "client"]

_T = TypeVar("_T")

_REFUSED = {
    "verify": "verify= is chosen per URL from the profile set; give the set a default= "
    "context for hosts without a profile",
    "cert": "cert= would load a certificate into a shared context; the profile's "
    "<KeyStore> is the client certificate",
}
# Client options that configure the client's own transport: passed to ours instead.
# Next to transport=, httpx ignores all but proxy=, which it uses to mount a proxy
# transport of its own for every URL (ours then never runs).
_TRANSPORT_OPTIONS = ("http1", "http2", "limits", "proxy", "trust_env")


def _alpn(transport_kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The ALPN list httpcore sets on every handshake: exactly its own expression
    (``["http/1.1", "h2"] if http2 else ["http/1.1"]``, whatever ``http1`` says)."""
    return ("http/1.1", "h2") if transport_kwargs.get("http2", False) else ("http/1.1",)


def _check_transport_kwargs(kwargs: dict[str, Any], transport: type[Any], owner: str) -> None:
    """Refuse what ``owner`` (our transport) does not take, and what ``transport``
    (httpx's, which gets the rest) does not."""
    for name, why in _REFUSED.items():
        if name in kwargs:
            raise TypeError(f"{owner} does not take {name}=: {why}")
    # Bad names fail here, not at the first request.
    inspect.signature(transport).bind_partial(**kwargs)
    proxy = kwargs.get("proxy")
    if proxy is not None:
        # What httpx checks when it makes a transport, which ours do on first use: a
        # proxy httpx cannot use fails here, as it fails httpx.Client(proxy=...).
        url = proxy.url if isinstance(proxy, httpx.Proxy) else httpx.Proxy(proxy).url
        if url.scheme in ("socks5", "socks5h") and importlib.util.find_spec("socksio") is None:
            raise ImportError(
                "Using SOCKS proxy, but the 'socksio' package is not installed. Make sure "
                "to install httpx using `pip install httpx[socks]`."
            )


def _origin(url: httpx.URL) -> tuple[str, int] | None:
    """``(host, port)`` of an https URL, as ``SSLProfileSet.context_for_url`` reads it."""
    # httpx has parsed the URL already: tls_origin's rules on its fields, not its text.
    default = DEFAULT_PORTS.get(url.scheme)
    if default is None:
        return None  # plain http needs no TLS
    # raw_host: the IDNA (xn--) form, lower-case, IPv6 without brackets, as str(url) has it.
    # httpx keeps ":0" in the URL but dials the scheme's port (httpcore reads the port
    # with "or"): the profile looked up is the one of the port it dials.
    return url.raw_host.decode("ascii"), url.port or default


def _sni_hostname(request: httpx.Request) -> str | None:
    """The name httpx verifies and sends as SNI instead of the URL's host (the
    ``sni_hostname`` request extension), if any: it decides whether
    ``DefaultAndLocalhost`` skips the name check."""
    name = request.extensions.get("sni_hostname")
    return name if isinstance(name, str) and name else None


def _refuse_closed(closed: bool) -> None:
    if closed:
        raise RuntimeError(
            "this mtls transport is closed: make a new one (a request through a closed one "
            "made pools that nothing closed or followed)"
        )


class _LeasedStream(httpx.SyncByteStream):
    """The response body; ends the transport lease when the response is closed."""

    def __init__(self, stream: httpx.SyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class _AsyncLeasedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], Any]) -> None:
        self._stream = stream
        self._release: Callable[[], Any] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                await release()


class MTLSTransport(httpx.BaseTransport):
    """An httpx transport that picks the TLS context per request from a profile set.

    Each request's context is ``profile_set.context_for(host, port)`` of its URL
    (port 443 when the https URL has none; a ``sni_hostname`` request extension is
    passed as ``server_hostname=``, the name verified). One ``httpx.HTTPTransport(verify=ctx,
    **transport_kwargs)`` serves each distinct context; URLs for which the set
    has no profile and no default (and plain ``http://`` URLs) go to
    ``httpx.HTTPTransport(**transport_kwargs)``: httpx's normal verification, no
    client certificate. A URL whose profile has not loaded is never sent: the
    request raises :class:`mtls.ProfileUnavailableError`.

    After a reload, requests use the new contexts at once; the transports of
    contexts no longer handed out are closed (right away when idle, else when
    their last response is closed), so keep-alive connections holding an old
    identity are never reused and do not linger.

    Example:
        >>> import httpx, mtls
        >>> from mtls.integrations.httpx import MTLSTransport
        >>> profiles = mtls.SSLProfileSet([])
        >>> with httpx.Client(transport=MTLSTransport(profiles)) as client:
        ...     pass

    Args:
        profile_set: where contexts come from; it is not closed with the transport.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        **transport_kwargs: for every ``httpx.HTTPTransport`` made (``http2``,
            ``limits``, ``retries``, ``proxy``, ``local_address``,
            ``socket_options``, ...). ``limits`` apply per context. Give ``proxy``
            here, never to the ``httpx.Client``: there httpx mounts a proxy
            transport of its own for every URL, and this one never runs.

    Raises:
        TypeError: ``verify=`` or ``cert=`` (the profile set decides both), or an
            argument ``httpx.HTTPTransport`` does not take.
    """

    def __repr__(self) -> str:
        return _describe(self)

    def __init__(
        self,
        profile_set: SSLProfileSet,
        *,
        client_id: str | None = None,
        **transport_kwargs: Any,
    ) -> None:
        _require_profile_set(profile_set, "MTLSTransport")
        _check_transport_kwargs(transport_kwargs, httpx.HTTPTransport, "MTLSTransport")
        self.profile_set = profile_set
        self.client_id = client_id
        self._kwargs = transport_kwargs
        self._pools: _ContextPools[httpx.HTTPTransport] = _ContextPools(
            profile_set, client_id, self._transport_for, _alpn(transport_kwargs)
        )
        self._fallback: httpx.HTTPTransport | None = None
        self._fallback_lock = threading.Lock()
        self._closed = False
        # Building the fallback (certifi's bundle) takes a while: a fork meanwhile would
        # leave the child's first request without a profile waiting forever.
        renew_attributes_after_fork(self, "_fallback_lock")
        self._unsubscribe = _subscribe_weakly(profile_set, self, MTLSTransport._on_reload)

    def _transport_for(self, ctx: ssl.SSLContext) -> httpx.HTTPTransport:
        return httpx.HTTPTransport(verify=ctx, **self._kwargs)

    def _fallback_transport(self) -> httpx.HTTPTransport:
        transport = self._fallback
        if transport is None:
            # Built on first use: it loads certifi's bundle (or SSL_CERT_FILE).
            with self._fallback_lock:
                transport = self._fallback
                if transport is None:
                    transport = self._fallback = httpx.HTTPTransport(**self._kwargs)
        return transport

    def _on_reload(self) -> None:
        # On the reloader's thread: only idle transports are closed here.
        _close_each(self._pools.sweep(), httpx.HTTPTransport.close)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send a request through the transport of its URL's context.

        Raises:
            httpx.TransportError: as ``httpx.HTTPTransport`` raises (a failed
                handshake is an ``httpx.ConnectError`` caused by ``ssl.SSLError``).
            RuntimeError: the transport is closed.
        """
        _refuse_closed(self._closed)
        origin = _origin(request.url)
        entry: _Entry[httpx.HTTPTransport] | None = None
        if origin is not None:
            entry, closing = self._pools.acquire(*origin, _sni_hostname(request))
            try:
                _close_each(closing, httpx.HTTPTransport.close)
            except BaseException:  # Ctrl-C while closing retired pools: no lease kept
                if entry is not None:
                    self._release(entry)
                raise
        if entry is None:
            return self._fallback_transport().handle_request(request)
        try:
            response = entry.resource.handle_request(request)
        except BaseException as exc:
            self._release(entry)
            _note_tls_failure(exc, self.profile_set, origin, self.client_id)
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        leased = entry
        response.stream = _LeasedStream(response.stream, lambda: self._release(leased))
        return response

    def _release(self, entry: _Entry[httpx.HTTPTransport]) -> None:
        retired = self._pools.release(entry)
        if retired is not None:
            retired.close()

    def close(self) -> None:
        """Close every transport and stop following reloads.

        Idempotent. Responses still open fail on their next read; later requests
        are refused (they made pools that nothing closed or followed).
        """
        self._closed = True
        self._unsubscribe()
        transports = self._pools.close()
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            transports.append(fallback)
        _close_each(transports, httpx.HTTPTransport.close)


class AsyncMTLSTransport(httpx.AsyncBaseTransport):
    """The asyncio/trio twin of :class:`MTLSTransport`, over ``httpx.AsyncHTTPTransport``.

    Transports of retired contexts are closed in the event loop that uses them:
    on the next request after a reload (or in :meth:`aclose`), or when the last
    response still using one is closed. The reload thread never touches them.

    Args:
        profile_set: where contexts come from; it is not closed with the transport.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        **transport_kwargs: for every ``httpx.AsyncHTTPTransport`` made; give
            ``proxy`` here, never to the ``httpx.AsyncClient`` (see
            :class:`MTLSTransport`).

    Raises:
        TypeError: ``verify=`` or ``cert=``, or an argument
            ``httpx.AsyncHTTPTransport`` does not take.
    """

    def __repr__(self) -> str:
        return _describe(self)

    def __init__(
        self,
        profile_set: SSLProfileSet,
        *,
        client_id: str | None = None,
        **transport_kwargs: Any,
    ) -> None:
        _require_profile_set(profile_set, "AsyncMTLSTransport")
        _check_transport_kwargs(transport_kwargs, httpx.AsyncHTTPTransport, "AsyncMTLSTransport")
        self.profile_set = profile_set
        self.client_id = client_id
        self._kwargs = transport_kwargs
        self._pools: _ContextPools[httpx.AsyncHTTPTransport] = _ContextPools(
            profile_set, client_id, self._transport_for, _alpn(transport_kwargs)
        )
        self._fallback: httpx.AsyncHTTPTransport | None = None
        # Retired pools closing in tasks of their own (asyncio): aclose() waits for them.
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def _transport_for(self, ctx: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
        return httpx.AsyncHTTPTransport(verify=ctx, **self._kwargs)

    async def _fallback_transport(self) -> httpx.AsyncHTTPTransport:
        if self._fallback is None:
            # httpx's default context (certifi's bundle) takes 20 to 100 ms to make:
            # on a worker thread, not on the event loop. Two first requests may both
            # make one: the first kept, the other never used (it holds no connection).
            made = await anyio.to_thread.run_sync(lambda: httpx.AsyncHTTPTransport(**self._kwargs))
            if self._fallback is None:
                self._fallback = made
        return self._fallback

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send a request through the transport of its URL's context.

        Raises:
            httpx.TransportError: as ``httpx.AsyncHTTPTransport`` raises.
            RuntimeError: the transport is closed.
        """
        _refuse_closed(self._closed)
        origin = _origin(request.url)
        entry: _Entry[httpx.AsyncHTTPTransport] | None = None
        closing: list[httpx.AsyncHTTPTransport] = []
        if origin is not None:
            # The first request for a material builds its context (with a big
            # truststore, a second or more): on the builder threads, not the loop.
            sni = _sni_hostname(request)
            try:  # the common case, a context built already: no coroutine to make
                entry, closing = self._pools.acquire(*origin, sni, build=False)
            except NotBuilt:
                entry, closing = await self._pools.acquire_async(*origin, sni)
        if entry is None:
            if closing:
                await _aclose_each(closing, self._closing)
            fallback = await self._fallback_transport()
            return await fallback.handle_async_request(request)
        try:
            # Inside the try: a cancellation while the retired pools close (or anything
            # raised before the request) still ends the lease.
            if closing:
                await _aclose_each(closing, self._closing)
            _check_after_tls(request)
            dialled = DIALLED_PORT.set(origin[1]) if origin is not None else None
            try:
                response = await entry.resource.handle_async_request(request)
            finally:
                if dialled is not None:
                    DIALLED_PORT.reset(dialled)
        except BaseException as exc:
            await self._release(entry)
            _note_tls_failure(exc, self.profile_set, origin, self.client_id)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        leased = entry
        response.stream = _AsyncLeasedStream(response.stream, lambda: self._release(leased))
        return response

    async def _release(self, entry: _Entry[httpx.AsyncHTTPTransport]) -> None:
        retired = self._pools.release(entry)
        if retired is not None:
            await _aclose_each([retired], self._closing)

    async def aclose(self) -> None:
        """Close every transport. Idempotent. Responses still open fail on their next
        read; later requests are refused."""
        self._closed = True
        transports = self._pools.close()
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            transports.append(fallback)
        try:
            if self._closing:  # closes a cancelled request left running (asyncio only)
                await asyncio.gather(*self._closing, return_exceptions=True)
        finally:
            # Taken from the pools above: a cancellation of the wait must not leave
            # them unclosed (their sockets open for good).
            await _aclose_each(transports, self._closing)


async def _run_in_thread(check: OwedCheck) -> None:
    """``check`` in a worker thread, abandoned (not waited for) when cancelled: the
    checker's own threads on asyncio, anyio's under trio (which cannot wait on them)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # trio
    else:
        await check.in_worker()
        return
    try:
        await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
    except TypeError as exc:  # anyio before 4.1 spells it cancellable=
        if "abandon_on_cancel" not in str(exc):
            raise
        await anyio.to_thread.run_sync(check, cancellable=True)


def _check_after_tls(request: httpx.Request) -> None:
    """Run a connection's owed revocation check in a worker thread, before the request.

    httpcore reports each new TLS connection to the request's ``trace`` extension
    (``*.start_tls.complete``, with the stream) before it writes a byte; the check
    the event loop did not run (a cache miss: see
    :func:`mtls._revocation.pending_check`) runs there in a worker thread, so
    the loop (asyncio or trio) never waits on a fetch. A refused server's stream is
    closed and :class:`mtls.CertificateRevokedError` /
    :class:`mtls.RevocationUnknownError` raised; the user's own ``trace`` is called too.
    """
    given = request.extensions.get("trace")

    async def trace(name: str, info: dict[str, Any]) -> None:
        stream = info.get("return_value") if name.endswith("start_tls.complete") else None
        if stream is not None:
            check = pending_check(stream.get_extra_info("ssl_object"))
            if check is not None:
                try:
                    # A cancel scope (trio, anyio's move_on_after under FastAPI) ends the
                    # wait at once; the fetch goes on in its thread and its answer is
                    # cached for the next connection. Without it the scope waited for
                    # every fetch (3 s past a 0.5 s scope).
                    await _run_in_thread(check)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await stream.aclose()
                    raise
        if given is not None:
            await given(name, info)

    request.extensions = {**request.extensions, "trace": trace}


async def _aclose_each(
    transports: list[httpx.AsyncHTTPTransport], pending: set[asyncio.Task[None]]
) -> None:
    """Close ``transports``, all of them, whatever cancels the caller meanwhile: a close
    that a cancellation interrupts would leave its sockets open for good. On asyncio
    the closes run in a task kept in ``pending`` (the transport's) until it ends."""

    async def close_all() -> None:
        with anyio.CancelScope(shield=True):  # trio, and anyio's own cancel scopes
            for transport in transports:
                try:
                    await transport.aclose()
                except Exception:
                    log.warning("mtls: closing a retired connection pool failed", exc_info=True)

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio: its cancellation respects the shield
        await close_all()
        return
    # asyncio's own Task.cancel() (wait_for, asyncio.timeout, a TaskGroup) goes through
    # anyio's shield: the closes run in a task of their own, which that cancel spares.
    task = asyncio.ensure_future(close_all())
    pending.add(task)
    task.add_done_callback(pending.discard)
    await asyncio.shield(task)


def _any_https_host(pattern: object) -> bool:
    """Whether the mount ``pattern`` takes https:// URLs whatever their host
    (``"https://"``, ``"all://*"``, ``"https:"``, ``"all://*:8443"``...): a transport
    mounted there serves every backend (on that port), and no profile is used. Read
    as httpx reads it (its ``URLPattern``, not public: without it, the usual
    spellings)."""
    text = str(pattern)
    try:
        from httpx._utils import URLPattern  # noqa: PLC0415 - httpx's own reading

        parsed = URLPattern(text)
    except Exception:  # another httpx: the spellings its documentation gives
        return text.lower() in ("all://", "all://*", "https://", "https://*")
    return parsed.scheme in ("", "https") and parsed.host == ""


def _split_client_kwargs(
    client_kwargs: dict[str, Any], name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    for refused in ("transport", *_REFUSED):
        if refused in client_kwargs:
            why = _REFUSED.get(refused, "the mTLS transport is the client's transport")
            raise TypeError(f"{name}() does not take {refused}=: {why}")
    for pattern, mounted in (client_kwargs.get("mounts") or {}).items():
        if mounted is not None and _any_https_host(pattern):
            raise TypeError(
                f"{name}() does not take a transport mounted for {pattern!r}: it would serve "
                "every https:// URL, and no profile would be used; mount transports "
                "for the origins that need no profile ('https://api.example.com')"
            )
    transport_kwargs = {k: client_kwargs.pop(k) for k in _TRANSPORT_OPTIONS if k in client_kwargs}
    if "trust_env" in transport_kwargs:
        client_kwargs["trust_env"] = transport_kwargs["trust_env"]
    return transport_kwargs, client_kwargs


def _environment_proxies() -> dict[str, str | None]:
    """The proxies of ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` as
    httpx's mount patterns (``"https://"`` -> proxy URL, ``"all://*.internal"`` ->
    ``None``: no proxy), by httpx's own rules (``httpx._utils.get_environment_proxies``,
    which is not public): what ``httpx.Client()`` applies when it makes its own
    transport, and ignores once it is given one."""
    found = urllib.request.getproxies()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        url = found.get(scheme)
        if url:
            mounts[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    # curl's NO_PROXY rules, as httpx reads them: "*" turns every proxy off; a name
    # covers itself and its subdomains ("*name"), a leading dot its subdomains only.
    for entry in (item.strip() for item in found.get("no", "").split(",")):
        if entry == "*":
            return {}
        if not entry:
            continue
        if "://" in entry:
            mounts[entry] = None
        elif _is_ip(entry, ipaddress.IPv4Address) or entry.lower() == "localhost":
            mounts[f"all://{entry}"] = None
        elif _is_ip(entry, ipaddress.IPv6Address):
            mounts[f"all://[{entry}]"] = None
        else:
            mounts[f"all://*{entry}"] = None
    return mounts


def _is_ip(entry: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(entry.partition("/")[0])
    except ValueError:
        return False
    return True


def _proxy_mounts(
    transport_kwargs: dict[str, Any], make: Callable[[dict[str, Any]], _T]
) -> dict[str, _T | None]:
    """The transports httpx would mount for the environment's proxies, made by ``make``
    (one mTLS transport per proxy, so that a proxied backend still gets its profile's
    context), as ``httpx.Client()`` does with ``trust_env`` on and no ``proxy=``."""
    if not transport_kwargs.get("trust_env", True) or transport_kwargs.get("proxy") is not None:
        return {}
    return {
        pattern: None if url is None else make({**transport_kwargs, "proxy": url})
        for pattern, url in _environment_proxies().items()
    }


def client(
    profile_set: SSLProfileSet, *, client_id: str | None = None, **client_kwargs: Any
) -> httpx.Client:
    """An ``httpx.Client`` whose requests go through an :class:`MTLSTransport`.

    Example:
        >>> import mtls
        >>> from mtls.integrations.httpx import client
        >>> with client(mtls.SSLProfileSet([]), timeout=5) as http:
        ...     pass

    Args:
        profile_set: where contexts come from.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        **client_kwargs: for ``httpx.Client``. ``http1``, ``http2``, ``limits``,
            ``proxy`` and ``trust_env`` configure the transport. (Given to
            ``httpx.Client`` next to ``transport=``, httpx ignores the others, and
            routes every URL around the transport through a proxy of its own for
            ``proxy``: no profile is used at all.) ``mounts`` are httpx's: a URL a
            mount matches goes through that transport, with no profile; one for
            every ``https://`` URL (``"https://"``, ``"all://"``) is refused.

    Without ``proxy=``, and unless ``trust_env=False``, the environment's proxies
    apply as they do to ``httpx.Client()``: ``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``ALL_PROXY`` and ``NO_PROXY`` (by httpx's rules).
    Each proxy gets an :class:`MTLSTransport` of its own, so a backend reached
    through the proxy's ``CONNECT`` tunnel still gets its profile's identity and
    is verified against its truststore. (``httpx.Client(transport=MTLSTransport(
    ...))`` ignores the environment, as httpx does for any transport it is given.)

    Returns:
        The client; closing it closes the transport (not the profile set).

    Raises:
        TypeError: ``verify=``, ``cert=`` or ``transport=``, a transport mounted for
            every ``https://`` URL, or an unknown argument.
    """
    transport_kwargs, rest = _split_client_kwargs(dict(client_kwargs), "client")

    def make(kwargs: dict[str, Any]) -> MTLSTransport:
        return MTLSTransport(profile_set, client_id=client_id, **kwargs)

    mounts: dict[str, httpx.BaseTransport | None] = {
        **_proxy_mounts(transport_kwargs, make),
        **(rest.pop("mounts", None) or {}),
    }
    return httpx.Client(transport=make(transport_kwargs), mounts=mounts or None, **rest)


def async_client(
    profile_set: SSLProfileSet, *, client_id: str | None = None, **client_kwargs: Any
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests go through an :class:`AsyncMTLSTransport`.

    Args:
        profile_set: where contexts come from.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        **client_kwargs: for ``httpx.AsyncClient``; transport options, and the
            environment's proxies, as in :func:`client`.

    Returns:
        The client; closing it closes the transport (not the profile set).

    Raises:
        TypeError: ``verify=``, ``cert=`` or ``transport=``, a transport mounted for
            every ``https://`` URL, or an unknown argument.
    """
    transport_kwargs, rest = _split_client_kwargs(dict(client_kwargs), "async_client")

    def make(kwargs: dict[str, Any]) -> AsyncMTLSTransport:
        return AsyncMTLSTransport(profile_set, client_id=client_id, **kwargs)

    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        **_proxy_mounts(transport_kwargs, make),
        **(rest.pop("mounts", None) or {}),
    }
    return httpx.AsyncClient(transport=make(transport_kwargs), mounts=mounts or None, **rest)
