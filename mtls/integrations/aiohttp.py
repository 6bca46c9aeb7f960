"""aiohttp: pick ``ssl=`` per request from a profile set.

aiohttp needs nothing special: pass the profile's context as ``ssl=``::

    async with aiohttp.ClientSession() as session:
        url = "https://backend.example.com:8243/orders"
        async with session.get(url, ssl=request_ssl(profiles, url)) as response:
            ...

:class:`MTLSClientSession` does that for every request, and refuses a redirect
to another origin that would need a different context (aiohttp reuses one
``ssl=`` for every hop, so it would send this profile's certificate to the
other host, and verify that host against this profile's trust). For the same
reason it refuses an ``https://`` proxy for a request that has a profile: aiohttp
makes the TLS session with such a proxy with the request's ``ssl=`` too. An
``http://`` proxy is fine: the backend's TLS runs end to end through ``CONNECT``.

aiohttp's connection pool is keyed by ``ConnectionKey``, which holds the ``ssl``
object: after a reload the new context means new connections, and idle
connections made with the old identity are never picked again. aiohttp has no
public way to close the connections of one key (``connector.close()`` closes
everything), so those idle connections are closed by the connector's
``keepalive_timeout`` (15 s by default; its cleanup runs that often, so up to twice
that); lower it on the connector if a backend
counts connections. aiohttp does not change a context it is given (it only
calls ``wrap_bio`` through asyncio); its own default contexts are separate
objects.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Self

from .._build import NotBuilt
from .._config import DEFAULT_PORTS, tls_origin
from .._errors import MTLSError
from .._revocation import DIALLED_PORT, OwedCheck, pending_check
from . import _describe, _missing_extra, _require_profile_set
from ._pools import MISSING, OFF_LOOP_TRIES, KeptAnswers, answers_itself, built_off_the_loop

try:
    import aiohttp
    from yarl import URL
except ImportError as _exc:
    raise _missing_extra("aiohttp", "aiohttp", _exc) from _exc

# What ClientSession.request returns, to wrap a request whose context is built off the
# loop first (a private name: an aiohttp without it builds on the loop, as before).
_REQUEST_MANAGER: Any = getattr(aiohttp.client, "_RequestContextManager", None)
# What ClientSession.ws_connect returns (awaited, or used with ``async with``).
_WS_MANAGER: Any = getattr(aiohttp.client, "_WSRequestContextManager", None)

# The checks of a websocket handshake in progress (see ws_connect), with the task making
# it: aiohttp's ws_connect takes no middlewares of its own, so the session's one
# middleware for them finds the handshake's checks here; set and reset around the
# handshake. A task started meanwhile copies the variable: the task tells them apart.
_WS_CHECKS: contextvars.ContextVar[
    tuple[asyncio.Task[Any] | None, aiohttp.ClientMiddlewareType] | None
] = contextvars.ContextVar("mtls_ws_checks", default=None)


async def _ws_checks(
    req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """The session's middleware for :meth:`MTLSClientSession.ws_connect`: the checks of
    the handshake this task is making, if any (none for anything else, a task started
    during the handshake included)."""
    found = _WS_CHECKS.get()
    if found is None or found[0] is not asyncio.current_task():
        return await handler(req)
    return await found[1](req, handler)


if TYPE_CHECKING:
    from types import TracebackType

    from aiohttp.client import _RequestContextManager

    from .._profiles import SSLProfileSet

__all__ = ["MTLSClientSession", "ProxyProfileError", "RedirectProfileError", "request_ssl"]

# ssl= and its deprecated spellings: any of them means the caller chose, unless its
# value is aiohttp's own default (ssl=True or None, verify_ssl=True or None,
# ssl_context=None, fingerprint=None), which asks for nothing but normal verification.
_SSL_ARGUMENTS = frozenset({"ssl", "verify_ssl", "ssl_context", "fingerprint"})
_UNCHOSEN: dict[str, tuple[object, ...]] = {
    "ssl": (True, None),
    "verify_ssl": (True, None),
    "ssl_context": (None,),
    "fingerprint": (None,),
}


def _chose_ssl(kwargs: dict[str, Any]) -> bool:
    """Whether ``kwargs`` choose TLS settings; drops the ones that only repeat aiohttp's
    default, so that the profile applies (and aiohttp sees no conflicting spellings)."""
    for name in _SSL_ARGUMENTS.intersection(kwargs):
        value = kwargs[name]
        if any(value is unchosen for unchosen in _UNCHOSEN[name]):
            del kwargs[name]
    return bool(_SSL_ARGUMENTS.intersection(kwargs))


def request_ssl(
    profile_set: SSLProfileSet,
    url: str | URL,
    *,
    client_id: str | None = None,
    server_hostname: str | None = None,
) -> ssl.SSLContext | bool:
    """What to pass as aiohttp's ``ssl=`` for ``url``.

    aiohttp sends every hop of a request with the same ``ssl=``: a redirect to another
    host would present this profile's certificate there, and verify that host with this
    profile's trust. Pass ``allow_redirects=False`` with it and follow a redirect with a
    new request (``request_ssl`` of the new URL), or use :class:`MTLSClientSession`,
    which refuses such a redirect.

    Args:
        profile_set: where contexts come from.
        url: the absolute request URL.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        server_hostname: the request's ``server_hostname=``, when it has one (the
            name aiohttp verifies instead of the URL's host): ``DefaultAndLocalhost``
            skips the name check only when it is a localhost name too.

    Returns:
        The profile's (or the set's default) context; ``True`` (aiohttp's normal
        verification, no client certificate) when neither matches or the URL is
        plain ``http://``.

    Raises:
        mtls.ProfileUnavailableError: the profile that names the URL's host has
            not loaded: the request must not go out without its identity.
        ValueError: not an absolute URL (in a session with a ``base_url``, pass the
            joined URL, or use :class:`MTLSClientSession`, which joins it), or no host.
    """
    origin = _origin(url) if isinstance(url, URL) else tls_origin(url)
    return _ssl_for(profile_set, origin, client_id, server_hostname)


def _origin(url: URL) -> tuple[str, int] | None:
    """:func:`~mtls._config.tls_origin` of a parsed URL, from its fields (yarl has the
    host lower-case, IDNA-encoded and IPv6 without brackets, as ``str(url)`` has it)."""
    default = DEFAULT_PORTS.get(url.scheme)
    host = url.raw_host
    if default is None or not host:
        return tls_origin(str(url))  # http:// and ws://: None; anything else: its ValueError
    return host, default if url.explicit_port is None else url.explicit_port


_HTTP1 = ("http/1.1",)

#: How many more times a session asks when a publish lands while it asks (then it uses
#: the last answer, as asked, without keeping it).
_KEEP_TRIES = 3


def _ssl_for(
    profile_set: SSLProfileSet,
    origin: tuple[str, int] | None,
    client_id: str | None,
    server_hostname: str | None = None,
    *,
    build: bool = True,
) -> ssl.SSLContext | bool:
    """:func:`request_ssl` for a URL's :func:`~mtls._config.tls_origin`.

    Raises:
        NotBuilt: ``build=False`` (on the event loop, for a set that
            :func:`~mtls.integrations._pools.answers_itself`) and the context is not
            built yet: build it on the builder threads.
    """
    if origin is None:
        return True  # plain http://: aiohttp's default, no TLS
    # A context of aiohttp's own (HTTP/1.1 only): never one an h2 client has set ALPN on.
    try:
        if build:
            ctx = profile_set.context_for(
                *origin, client_id=client_id, alpn=_HTTP1, server_hostname=server_hostname
            )
        else:
            ctx = profile_set._context_built(
                *origin, client_id=client_id, alpn=_HTTP1, server_hostname=server_hostname
            )
    except AttributeError:
        _require_profile_set(profile_set, "request_ssl")  # checked only when it fails
        raise
    return ctx if ctx is not None else True


async def _ssl_off_the_loop(
    profile_set: SSLProfileSet, origin: tuple[str, int] | None, client_id: str | None
) -> ssl.SSLContext | bool:
    """:func:`_ssl_for` on the event loop: a context not built yet is built on the
    builder threads (see :func:`~mtls.integrations._pools.built_off_the_loop`)."""
    if not answers_itself(profile_set):  # a wrapper's lookup: asked as it is
        return _ssl_for(profile_set, origin, client_id)
    for _ in range(OFF_LOOP_TRIES):
        try:
            return _ssl_for(profile_set, origin, client_id, build=False)
        except NotBuilt as missing:
            await built_off_the_loop(missing)
    return _ssl_for(profile_set, origin, client_id)


def _revocation_checked(base: type[aiohttp.ClientRequest]) -> type[aiohttp.ClientRequest]:
    """``base`` with the connection's owed revocation check run before the request.

    The event loop's thread never waits on a fetch: the check a new connection
    still owes (a cache miss: see :func:`mtls._revocation.pending_check`) runs on
    the checker's own worker threads before the first request byte; a refused
    connection is closed (by the session) and the specific
    :class:`mtls.CertificateRevokedError` / :class:`mtls.RevocationUnknownError`
    raised.
    """

    class RevocationCheckedRequest(base):  # type: ignore[valid-type,misc]
        def send(self, conn: Any) -> Any:
            # Not a coroutine of its own: with nothing owed (every request on a
            # connection checked already, and every connection of a set with no
            # revocation settings), aiohttp awaits the base class's send directly, as
            # it would without this class (a coroutine frame less: about 3% of a
            # keep-alive request).
            transport = conn.transport
            check = pending_check(
                transport.get_extra_info("ssl_object") if transport is not None else None
            )
            if check is None:
                return super().send(conn)
            return self._checked_send(conn, transport, check)

        async def _checked_send(self, conn: Any, transport: Any, check: OwedCheck) -> Any:
            try:
                await check.in_worker()
            except BaseException:
                # a refused server is not owed a TLS goodbye: drop the connection
                # now (a graceful close could outlive the caller's event loop)
                transport.abort()
                raise
            return await super().send(conn)

    return RevocationCheckedRequest


class RedirectProfileError(MTLSError, aiohttp.ClientError):
    """A redirect to another origin whose profile differs from the first request's.

    aiohttp sends every hop of a request with the same ``ssl=``: following this
    redirect would present the first backend's identity to another host. Follow
    it yourself (``allow_redirects=False``, then a new request to ``location``).

    Attributes:
        url: the first request's URL (without its userinfo).
        location: where the redirect leads (without its userinfo).
    """

    def __init__(self, message: str, *, url: str, location: str) -> None:
        super().__init__(message)
        self.url = url
        self.location = location


class ProxyProfileError(MTLSError, aiohttp.ClientError):
    """A request with a profile, through an ``https://`` proxy.

    aiohttp makes the TLS session with an ``https://`` proxy with the request's own
    ``ssl=``: the proxy would be offered the profile's client certificate and trusted
    by the profile's truststore (a proxy with its own CA fails; one from a CA the
    truststore holds sees the identity). Use an ``http://`` proxy (the backend's TLS
    runs end to end through ``CONNECT``), or httpx or requests, whose ``https://``
    proxies have trust of their own.

    Attributes:
        url: the request's URL.
        proxy: the proxy's ``host:port``.
    """

    def __init__(self, message: str, *, url: str, proxy: str) -> None:
        super().__init__(message)
        self.url = url
        self.proxy = proxy


def _redirect_refused(
    first: URL, hop: URL, chosen: ssl.SSLContext | bool, wanted: ssl.SSLContext | bool
) -> RedirectProfileError:
    """The refusal of a redirect from ``first`` (sent with ``chosen``) to ``hop`` (which
    needs ``wanted``). Never a password from the URLs' userinfo, in the message or the
    attributes; the message (which reaches logs) names the URLs without their query
    (a signed URL's credentials and signature are in it), the attributes keep it: a
    caller follows ``location``."""
    if not isinstance(chosen, ssl.SSLContext):
        why = (
            "which has a TLS profile: aiohttp would connect there without its client "
            "certificate, verifying it with aiohttp's default trust"
        )
    elif not isinstance(wanted, ssl.SSLContext):
        why = "which has no TLS profile: aiohttp would send the first backend's certificate there"
    else:
        why = (
            "which has a different TLS profile: aiohttp would send the first backend's "
            "certificate there"
        )
    shown, location = (
        url.with_user(None).with_query(None).with_fragment(None) for url in (first, hop)
    )
    return RedirectProfileError(
        f"{shown} redirected to {location}, {why}; follow it with a new request "
        "(allow_redirects=False)",
        url=str(first.with_user(None)),
        location=str(hop.with_user(None)),
    )


def _refuse_https_proxy(req: aiohttp.ClientRequest) -> None:
    """Refuse an ``https://`` proxy (``proxy=``: aiohttp ignores ``https://`` proxies
    from the environment) for a request sent with a profile's context: see
    :class:`ProxyProfileError`."""
    proxy = req.proxy
    if proxy is not None and proxy.scheme == "https":
        where = f"{proxy.host}:{proxy.port}"  # never its user or password
        url = str(req.url.with_user(None).with_query(None).with_fragment(None))
        raise ProxyProfileError(
            f"{url}: refused through the https:// proxy {where}: aiohttp would make the "
            "TLS session with the proxy with this URL's profile context (the proxy would "
            "be offered its client certificate and trusted by its truststore); use an "
            "http:// proxy (the backend's TLS runs end to end through CONNECT), or httpx "
            "or requests, whose https:// proxies have trust of their own",
            url=url,
            proxy=where,
        )


async def _dialling(port: int, request: Any) -> aiohttp.ClientResponse:
    """Await ``request`` with :data:`mtls._revocation.DIALLED_PORT` set to ``port``: a
    new connection's handshake, checked over memory BIOs, records its statuses under
    that port (asyncio runs the connection's callbacks in the context it was made in)."""
    token = DIALLED_PORT.set(port)
    try:
        response: aiohttp.ClientResponse = await request
        return response
    finally:
        DIALLED_PORT.reset(token)


class MTLSClientSession:
    """A wrapper around an ``aiohttp.ClientSession`` whose requests get ``ssl=`` from a
    profile set (it is not a ``ClientSession`` itself: its :attr:`session` is).

    Requests without an ``ssl=`` argument get :func:`request_ssl` of their URL;
    an explicit ``ssl=`` (``False`` included, or the deprecated ``verify_ssl=``,
    ``ssl_context=``, ``fingerprint=``) is used as given, with no profile. Use it like a
    session::

        async with MTLSClientSession(profiles, timeout=aiohttp.ClientTimeout(10)) as http:
            async with http.get("https://backend:8243/orders") as response:
                data = await response.json()

    Redirects within one origin are followed as usual; a redirect to another
    origin that needs a different context raises :class:`RedirectProfileError`.

    Args:
        profile_set: where contexts come from; it is not closed with the session.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        **session_kwargs: for ``aiohttp.ClientSession`` (``connector``, ``timeout``,
            ``headers``, ``base_url``, ``middlewares``, ...). A connector's ``ssl=``
            applies to URLs without a profile.

    Raises:
        RuntimeError: aiohttp older than 3.12 (no client middlewares, which the
            redirect check needs).

    Attributes:
        session: the underlying ``aiohttp.ClientSession`` (requests made on it
            directly get no profile).
    """

    def __repr__(self) -> str:
        return _describe(self)

    def __init__(
        self,
        profile_set: SSLProfileSet,
        *,
        client_id: str | None = None,
        **session_kwargs: Any,
    ) -> None:
        if not hasattr(aiohttp, "ClientMiddlewareType"):
            raise RuntimeError(
                f"MTLSClientSession needs aiohttp 3.12 or later (installed: "
                f"{aiohttp.__version__}); or pass ssl=request_ssl(profiles, url) yourself"
            )
        _require_profile_set(profile_set, "MTLSClientSession")
        self.profile_set = profile_set
        self.client_id = client_id
        # Whether contexts are built off the loop (the set's own lookup says whether one
        # is built yet; a wrapper's is asked as it is): decided once, not per request.
        self._off_loop = answers_itself(profile_set)
        # What the set answered (context, and the profile that chose it) for each
        # backend asked, kept for its current snapshot (see _chosen): a keep-alive
        # request to a backend asked already makes no lookup. Only where every lookup
        # a request makes is the set's own (asked on every use: see KeptAnswers).
        self._kept = (
            KeptAnswers(profile_set, "profile_for", "_context_built")
            if self._off_loop  # the set's own context_for: no wrapper
            else None
        )
        base_url = session_kwargs.get("base_url")
        self._base_url = URL(base_url) if base_url is not None else None
        self._middlewares: tuple[aiohttp.ClientMiddlewareType, ...] = tuple(
            session_kwargs.get("middlewares") or ()
        )
        session_kwargs["request_class"] = _revocation_checked(
            session_kwargs.get("request_class") or aiohttp.ClientRequest
        )
        # A request gives its own middlewares (the session's and its checks); the
        # session's list is what a websocket handshake runs (see ws_connect).
        session_kwargs["middlewares"] = (*self._middlewares, _ws_checks)
        self.session: aiohttp.ClientSession = aiohttp.ClientSession(**session_kwargs)

    def _target(self, url: str | URL) -> tuple[URL, tuple[str, int] | None]:
        """The absolute URL (joined to ``base_url``) and its TLS origin.

        Raises:
            aiohttp.InvalidURL: a host and no scheme.
            ValueError: as :func:`_origin` (a URL no profile can be chosen for).
        """
        target = URL(url)
        if self._base_url is not None and not target.absolute:
            target = self._base_url.join(target)
        if target.host is not None and not target.scheme:
            # "//host/path": yarl's origin() raised a bare ValueError further on.
            raise aiohttp.InvalidURL(
                url,
                "no scheme: write https:// or http://, so that the profile for the "
                "host (or none, for http) can be chosen",
            )
        return target, _origin(target)

    def request(self, method: str, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``ClientSession.request`` with ``ssl=`` chosen from the profile set.

        Args:
            method: the HTTP method.
            url: the URL (relative to ``base_url`` if the session has one).
            **kwargs: as for ``ClientSession.request``.

        Returns:
            What ``ClientSession.request`` returns: await it, or use ``async with``.

        Raises:
            RedirectProfileError: (when awaited) a cross-origin redirect needs
                another context.
            aiohttp.InvalidURL: a URL with a host and no scheme (``//host/path``).
            ProxyProfileError: (when awaited) a request with a profile would go
                through an ``https://`` proxy.
            aiohttp.ClientError: as aiohttp raises; a failed handshake is an
                ``aiohttp.ClientSSLError`` subclass.
        """
        return self._request(method, url, kwargs, OFF_LOOP_TRIES)

    def _request(
        self, method: str, url: str | URL, kwargs: dict[str, Any], tries: int
    ) -> _RequestContextManager:
        """:meth:`request`; ``tries``: how many more times a context not built yet is
        built off the loop (then, a reload having landed each time, built here)."""
        if not _chose_ssl(kwargs):
            # One origin for the context and the profile.
            target, origin = self._target(url)
            redirects = kwargs.get("allow_redirects", True)
            try:
                chosen, source = self._chosen(
                    origin,
                    kwargs.get("server_hostname"),
                    redirects=bool(redirects),
                    build=tries <= 0 or not self._off_loop or _REQUEST_MANAGER is None,
                )
            except NotBuilt as missing:
                # The first request for a material builds its context (with a big
                # truststore, a second or more): on the builder threads, not the loop.
                made: _RequestContextManager = _REQUEST_MANAGER(
                    self._after_build(method, url, kwargs, missing, tries - 1)
                )
                return made
            kwargs["ssl"] = chosen
            proxied = isinstance(chosen, ssl.SSLContext)
            if proxied or redirects:
                given = kwargs.get("middlewares")
                middlewares = tuple(given) if given is not None else self._middlewares
                guard = self._guard(target, chosen, source, proxied=proxied, redirects=redirects)
                kwargs["middlewares"] = (*middlewares, guard)
            if (
                proxied
                and origin is not None
                and _REQUEST_MANAGER is not None
                and getattr(self.profile_set, "revocation", None) is not None
            ):
                # The port its connection's revocation statuses are shown under (only
                # where the set checks revocation: a coroutine more per request).
                sent: _RequestContextManager = _REQUEST_MANAGER(
                    _dialling(origin[1], self.session.request(method, url, **kwargs))
                )
                return sent
        return self.session.request(method, url, **kwargs)

    def ws_connect(self, url: str | URL, **kwargs: Any) -> Any:
        """``ClientSession.ws_connect`` with ``ssl=`` chosen from the profile set as
        :meth:`request` chooses it: a ``wss://`` URL gets its host's profile (port 443
        when it has none), ``ws://`` none; an explicit ``ssl=`` is used as given. The
        handshake is checked as a request is: a redirect to another origin that
        needs another context raises :class:`RedirectProfileError`, a profile's
        handshake through an ``https://`` proxy :class:`ProxyProfileError`.

        Args:
            url: the URL (relative to ``base_url`` if the session has one).
            **kwargs: as for ``ClientSession.ws_connect``.

        Returns:
            What ``ClientSession.ws_connect`` returns: await it, or use ``async with``.

        Raises:
            aiohttp.InvalidURL: a URL with a host and no scheme (``//host/path``).
            mtls.ProfileUnavailableError: (when awaited) the profile that names the
                URL's host has not loaded.
            aiohttp.ClientError: as aiohttp raises (``WSServerHandshakeError`` when
                the server does not upgrade).
        """
        if _chose_ssl(kwargs):
            return self.session.ws_connect(url, **kwargs)
        target, origin = self._target(url)
        made = self._ws_connect(target, origin, kwargs)
        return made if _WS_MANAGER is None else _WS_MANAGER(made)

    async def _ws_connect(
        self, target: URL, origin: tuple[str, int] | None, kwargs: dict[str, Any]
    ) -> Any:  # aiohttp's ClientWebSocketResponse (generic in aiohttp 3.13 and later)
        """:meth:`ws_connect`, its context built off the loop when it is not yet."""
        for tries in range(OFF_LOOP_TRIES, -1, -1):
            try:
                chosen, source = self._chosen(
                    origin,
                    kwargs.get("server_hostname"),
                    redirects=True,
                    build=tries <= 0 or not self._off_loop,
                )
                break
            except NotBuilt as missing:
                await built_off_the_loop(missing)
        kwargs["ssl"] = chosen
        checks = self._guard(
            target, chosen, source, proxied=isinstance(chosen, ssl.SSLContext), redirects=True
        )
        token = _WS_CHECKS.set((asyncio.current_task(), checks))
        try:
            return await self.session.ws_connect(target, **kwargs)
        finally:
            _WS_CHECKS.reset(token)

    def _chosen(
        self,
        origin: tuple[str, int] | None,
        server_hostname: str | None,
        *,
        redirects: bool,
        build: bool,
    ) -> tuple[ssl.SSLContext | bool, object]:
        """What ``ssl=`` a request to ``origin`` gets (:func:`_ssl_for`), and the
        profile that chose it (:meth:`_profile`; asked of a set whose answers are not
        kept only when the request follows ``redirects``: the guard's).

        For a set whose lookups are its own, both are kept for its current snapshot
        (:class:`~mtls.integrations._pools.KeptAnswers`): a keep-alive request to a
        backend asked already makes no lookup, and the first request after any
        publish asks again. A wrapper's lookup (or a ``profile_for`` of its own) is
        asked every time.

        Raises:
            NotBuilt, mtls.ProfileUnavailableError: as :func:`_ssl_for` (never kept).
        """
        kept, client_id = self._kept, self.client_id
        plain = server_hostname is None or type(server_hostname) is str
        tries = _KEEP_TRIES
        while True:
            current = kept.current() if kept is not None and plain else None
            if kept is None or current is None:
                if kept is not None and kept.patched():
                    build = True  # a context_for patched since (a failure drill): it answers
                chosen = _ssl_for(self.profile_set, origin, client_id, server_hostname, build=build)
                # A wrapper need not have profile_for: asked only for the redirect guard.
                return chosen, self._profile(origin) if redirects else None
            snapshot, answers = current  # read before the set is asked (see keep)
            question = (origin, server_hostname, client_id)
            answer = answers.get(question, MISSING)
            if answer is not MISSING:
                return answer  # type: ignore[no-any-return]
            chosen = _ssl_for(self.profile_set, origin, client_id, server_hostname, build=build)
            answer = (chosen, self._profile(origin))
            if kept.keep(snapshot, answers, question, answer) or tries <= 0:
                return answer  # (after a storm of publishes: as asked, not kept)
            # A publish while asking: the context and the profile may be from two
            # snapshots (the redirect guard compares them): ask again.
            tries -= 1

    async def _after_build(
        self,
        method: str,
        url: str | URL,
        kwargs: dict[str, Any],
        missing: NotBuilt,
        tries: int,
    ) -> aiohttp.ClientResponse:
        """The request, once its context is built on the builder threads (a cancelled
        wait leaves the build to end there, kept by the set for the next request)."""
        await built_off_the_loop(missing)
        return await self._request(method, url, kwargs, tries)

    def _guard(
        self,
        first: URL,
        chosen: ssl.SSLContext | bool,
        source: object,
        *,
        proxied: bool,
        redirects: bool,
    ) -> aiohttp.ClientMiddlewareType:
        """One middleware for a request's checks: ``proxied``, refuse an ``https://``
        proxy (:func:`_refuse_https_proxy`); ``redirects``, refuse a cross-origin hop
        that needs another context than ``chosen`` (made for ``first`` by ``source``:
        its profile, or ``None``)."""
        origin = first.origin()

        async def other_origin(
            req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
        ) -> aiohttp.ClientResponse:
            wanted = await _ssl_off_the_loop(self.profile_set, _origin(req.url), self.client_id)
            if wanted is not chosen and not self._rotated_since(first, req.url, wanted, source):
                raise _redirect_refused(first, req.url, chosen, wanted)
            # This hop's connection is another port's (its revocation statuses go under
            # that port's profile: h251, they went under the first hop's).
            dialled = DIALLED_PORT.set(req.url.port)
            try:
                return await handler(req)
            finally:
                DIALLED_PORT.reset(dialled)

        # Not a coroutine of its own: a hop that passes is the handler's coroutine,
        # awaited by aiohttp as it would be without this middleware (every request
        # runs it: a coroutine frame less is about 1% of a keep-alive request).
        def guard(
            req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
        ) -> Awaitable[aiohttp.ClientResponse]:
            if proxied:
                _refuse_https_proxy(req)
            # Called for every hop; the first one, and hops within its origin, pass.
            if redirects and req.url.origin() != origin and req.is_ssl():
                return other_origin(req, handler)
            return handler(req)

        return guard

    def _rotated_since(
        self, first: URL, hop: URL, wanted: ssl.SSLContext | bool, source: object
    ) -> bool:
        """Whether the context the request began with is only an older generation of the
        hop's: the profile that made it (``source``) still serves both URLs, and they now
        share one context (its material rotated between the hops). A profile file
        reloaded between the hops so that another profile, or none, serves the hop is
        no rotation: the hop would get the first profile's identity."""
        if self._profile(_origin(hop)) != source or self._profile(_origin(first)) != source:
            return False
        return request_ssl(self.profile_set, first, client_id=self.client_id) is wanted

    def _profile(self, origin: tuple[str, int] | None) -> object:
        """What serves a URL's ``origin``: its profile, or ``None`` for the set's default."""
        if origin is None:
            return None
        return self.profile_set.profile_for(*origin, client_id=self.client_id)

    def get(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``request("GET", url, **kwargs)``."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``request("HEAD", url, **kwargs)``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``request("OPTIONS", url, **kwargs)``."""
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``request("POST", url, **kwargs)``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``request("PUT", url, **kwargs)``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``request("PATCH", url, **kwargs)``."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """``request("DELETE", url, **kwargs)``."""
        return self.request("DELETE", url, **kwargs)

    @property
    def closed(self) -> bool:
        """True once the session is closed."""
        return self.session.closed

    async def close(self) -> None:
        """Close the session and its connector (when it owns it). Idempotent."""
        await self.session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
