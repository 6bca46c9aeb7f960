"""requests: a transport adapter that sends each backend the identity its profile names.

::

    import mtls
    from mtls.integrations.requests import session

    profiles = mtls.SSLProfileSet.from_xml("sslprofiles.xml", reload_interval=10)
    with session(profiles) as http:
        http.get("https://backend.example.com:8243/orders")

The adapter puts the profile's context into urllib3's pool key
(``ssl_context``), so each context gets its own connection pools.

What urllib3 2.x does to a context it is handed, and how the adapter keeps the
shared one unchanged (``urllib3/connection.py::_ssl_wrap_socket_and_match_hostname``
and ``util/ssl_.py::ssl_wrap_socket``):

* ``context.verify_mode = cert_reqs`` on every connect: the pool gets
  ``cert_reqs=ctx.verify_mode``, so the same value is written back.
* ``context.check_hostname = False`` when ``assert_hostname`` is given: the pool
  gets ``assert_hostname=False`` only for contexts whose ``check_hostname`` is
  already off (WSO2's ``AllowAll``), which also stops urllib3 from checking the
  name itself behind such a context.
* ``context.load_verify_locations(ca_certs)`` when the pool has ``ca_certs``:
  requests' ``HTTPAdapter.cert_verify`` sets it to certifi's bundle on every
  ``send`` with ``verify=True``, which would add ~140 public CAs to the
  profile's trust. The adapter skips ``cert_verify`` for its own pools.
* ``context.load_cert_chain(...)`` when the pool has ``cert_file``: requests'
  per-request ``cert=`` never reaches a profile context (see below).
* ``context.set_alpn_protocols(["http/1.1"])`` before each handshake (the same
  list httpx and aiohttp use for HTTP/1.1).

Per-request options, for a URL that has a profile:

* ``verify=True`` or a CA bundle path (also ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE``, which requests turns into a path): the profile decides
  trust; the bundle is not used.
* ``verify=False`` or ``cert=...``: the caller chose TLS settings for this
  request, so requests' own handling applies: urllib3 builds a separate context
  (no verification, or the given certificate) and the profile's identity is not
  sent. The profile's context is not touched and other requests keep it.

Rotation: see :mod:`mtls.integrations` (pools of retired contexts are removed
from the pool manager and closed once no ``send`` is using them; a connection
still held by a streamed response is closed when that response is released).
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
import threading
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from .._config import tls_origin
from .._log import log
from . import _describe, _missing_extra, _note_tls_failure, _require_profile_set
from ._pools import _close_each, _ContextPools, _Entry, _subscribe_weakly

try:
    import requests
    import requests.utils
    import urllib3
    import urllib3.util.ssl_
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import HTTPConnectionPool
except ImportError as _exc:
    raise _missing_extra("requests", "requests", _exc) from _exc

if TYPE_CHECKING:
    from requests.models import PreparedRequest, Response

    from .._profiles import SSLProfileSet

__all__ = ["MTLSAdapter", "session"]


# Pool-key fields that carry TLS settings: replaced as a whole for profiled URLs.
_TLS_POOL_KEYS = (
    "ssl_context",
    "cert_reqs",
    "ca_certs",
    "ca_cert_dir",
    "ca_cert_data",
    "cert_file",
    "key_file",
    "key_password",
    "assert_hostname",
    "assert_fingerprint",
    "ssl_version",
    "ssl_minimum_version",
    "ssl_maximum_version",
)


def _urllib3_alpn() -> tuple[str, ...]:
    """The ALPN list urllib3 will set on the context (``["h2"]`` once its HTTP/2
    support is injected): asked per request, so the context already carries it."""
    return tuple(urllib3.util.ssl_.ALPN_PROTOCOLS)


def _proxy_trust(verify: str | bool) -> ssl.SSLContext:
    """A context trusting what requests would trust for ``verify`` (a bundle file or
    directory, or certifi's bundle), for an ``https://`` proxy's own TLS session.

    requests reads the bundle for every new connection; this reads it again when its
    stat changes (one ``stat`` per request through a proxy), so a CA withdrawn from
    the bundle stops being trusted, and a new one is trusted, without a restart."""
    path = verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
    try:
        st = os.stat(path)
        signature: tuple[int, ...] | None = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
    except OSError:  # reading it says why
        signature = None
    return _trust_from(path, signature)


@functools.lru_cache(maxsize=16)
def _trust_from(path: str, signature: tuple[int, ...] | None) -> ssl.SSLContext:
    # ``signature`` is the bundle's stat: a changed file is a new key, so a new read.
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


def _origin(url: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of a TLS URL, exactly as ``SSLProfileSet.context_for_url`` reads it."""
    return tls_origin(url) if url else None


class _Lease(threading.local):
    """What this thread's current ``send`` leased: read by the hooks it calls."""

    request: PreparedRequest | None = None
    entry: _Entry[ssl.SSLContext] | None = None
    verify: Any = True  # requests' verify= of that send (a bundle path, or True)


class MTLSAdapter(HTTPAdapter):
    """A requests transport adapter that picks the TLS context per URL from a profile set.

    Mount it for ``https://``: ``session.mount("https://", MTLSAdapter(profiles))``.
    URLs with a profile (or the set's default) are sent with that context; others
    get requests' normal behaviour (its CA bundle, no client certificate). A URL
    whose profile has not loaded is never sent: ``send`` raises
    :class:`mtls.ProfileUnavailableError`.

    After a reload, requests use the new contexts at once; pools of contexts no
    longer handed out are removed and closed, so keep-alive connections holding
    an old identity are never reused.

    Through an ``https://`` proxy, the TLS session with the proxy is its own (the
    backend's session runs inside it, with the profile's context): it is verified
    with ``proxy_ssl_context``, else as requests verifies it (the request's
    ``verify=`` bundle, ``REQUESTS_CA_BUNDLE``, else certifi), whatever the profile
    says of its backend (``novalidatecert`` included). The proxy never sees the
    profile's identity.

    Args:
        profile_set: where contexts come from; it is not closed with the adapter.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        proxy_ssl_context: the context for the TLS session with an ``https://``
            proxy (a proxy with a private CA: ``ssl.create_default_context(
            cafile="proxy-ca.pem")``; default: requests' trust for the request);
            not used for ``http://`` or SOCKS proxies.
        **adapter_kwargs: for ``HTTPAdapter`` (``pool_connections``,
            ``pool_maxsize``, ``max_retries``, ``pool_block``).

    Raises:
        TypeError: an argument ``HTTPAdapter`` does not take.
    """

    def __repr__(self) -> str:
        return _describe(self)

    def __init__(
        self,
        profile_set: SSLProfileSet,
        *,
        client_id: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        **adapter_kwargs: Any,
    ) -> None:
        _require_profile_set(profile_set, "MTLSAdapter")
        for name in ("verify", "cert"):
            if name in adapter_kwargs:  # HTTPAdapter's own refusal does not say why
                raise TypeError(
                    f"MTLSAdapter does not take {name}=: the profile set chooses each URL's "
                    "context and client certificate (verify=False or cert= on a request, or "
                    "on the session, sends it with requests' own TLS instead)"
                )
        # Set before HTTPAdapter.__init__, which calls init_poolmanager.
        self.profile_set = profile_set
        self.client_id = client_id
        self.proxy_ssl_context = proxy_ssl_context
        self._pools: _ContextPools[ssl.SSLContext] = _ContextPools(
            profile_set, client_id, lambda ctx: ctx, _urllib3_alpn
        )
        self._lease = _Lease()
        super().__init__(**adapter_kwargs)
        self._unsubscribe = _subscribe_weakly(profile_set, self, MTLSAdapter._on_reload)

    def __reduce__(self) -> tuple[Any, ...]:
        """Refused, as the profile set's own pickling is: requests' ``HTTPAdapter``
        pickles without its profile set, and such a copy failed on its first request
        with an ``AttributeError``."""
        raise TypeError(
            "an MTLSAdapter (and a requests.Session it is mounted on) cannot be pickled or "
            "copied: it follows a live SSLProfileSet; make the set and the session in each "
            "process"
        )

    # ------------------------------------------------------------------ hooks

    def send(  # noqa: PLR0917 - HTTPAdapter.send's signature
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        """Send the request with its URL's context (see the module notes for ``verify``
        and ``cert``).

        Raises:
            requests.exceptions.SSLError: a failed handshake (verification,
                or the backend refusing the certificate).
            requests.exceptions.RequestException: as ``HTTPAdapter.send``.
        """
        origin = _origin(request.url) if verify is not False and not cert else None
        entry: _Entry[ssl.SSLContext] | None = None
        if origin is not None:
            entry, closing = self._pools.acquire(*origin)
            try:
                self._close_pools(closing)
            except BaseException:  # Ctrl-C while closing retired pools: no lease kept
                if entry is not None:
                    retired = self._pools.release(entry)
                    if retired is not None:
                        self._close_pools([retired])
                raise
        elif verify is False or cert:
            log.debug("%s: verify=False or cert= given: requests' own TLS", request.url)
        lease = self._lease
        saved = (lease.request, lease.entry, lease.verify)
        lease.request, lease.entry, lease.verify = request, entry, verify
        try:
            return super().send(
                request,
                stream=stream,
                timeout=timeout,
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
        except requests.exceptions.SSLError as exc:
            # Only where a profile's context (or the default's) made the handshake: with
            # neither, requests' own trust did, and no profile served it (h287).
            served = origin if entry is not None else None
            _note_tls_failure(exc, self.profile_set, served, self.client_id)
            raise
        finally:
            lease.request, lease.entry, lease.verify = saved
            if entry is not None:
                retired = self._pools.release(entry)
                if retired is not None:
                    self._close_pools([retired])

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """requests' proxy manager; for a request sent with a profile's context through
        an ``https://`` proxy, one whose TLS session with the proxy has a context of its
        own: ``proxy_ssl_context``, else requests' trust for the request (its
        ``verify=`` bundle, ``REQUESTS_CA_BUNDLE``, or certifi). urllib3 would give the
        proxy the pool's ``cert_reqs``: a ``novalidatecert`` profile left it unverified.
        Requests without a profile keep requests' own proxy handling."""
        lease = self._lease
        if lease.entry is None or not proxy.lower().startswith("https:"):
            return super().proxy_manager_for(proxy, **proxy_kwargs)
        verify = lease.verify if isinstance(lease.verify, str) else True
        key = f"{proxy} (mtls profiles, trust {verify!r})"
        trust = self.proxy_ssl_context or _proxy_trust(verify)
        manager = self.proxy_manager.get(key)
        if manager is not None and manager.proxy_ssl_context is not trust:
            # The bundle changed: its connections to the proxy were verified by the old one.
            self.proxy_manager.pop(key, None)
            manager.clear()
            manager = None
        if manager is None:
            manager = self.proxy_manager[key] = urllib3.proxy_from_url(
                proxy,
                proxy_headers=self.proxy_headers(proxy),
                num_pools=self._pool_connections,
                maxsize=self._pool_maxsize,
                block=self._pool_block,
                proxy_ssl_context=trust,
                **proxy_kwargs,
            )
        return manager

    def _context_for(self, request: PreparedRequest) -> ssl.SSLContext | None:
        lease = self._lease
        if lease.request is request:
            return lease.entry.context if lease.entry is not None else None
        # Called outside send (by a subclass or a tool): the current context, unleased.
        origin = _origin(request.url)
        return self._pools.context_for(*origin) if origin is not None else None

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """requests' pool key, with the profile's context for a profiled URL.

        Returns:
            ``(host_params, pool_kwargs)``; for a profiled URL the TLS fields of
            ``pool_kwargs`` are ``ssl_context``, ``cert_reqs`` (the context's own
            verify mode) and, for contexts without host name checking,
            ``assert_hostname=False``.
        """
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        ctx = self._context_for(request) if verify is not False and not cert else None
        if ctx is None:
            return host_params, pool_kwargs
        kwargs = {k: v for k, v in pool_kwargs.items() if k not in _TLS_POOL_KEYS}
        kwargs["ssl_context"] = ctx
        # urllib3 assigns cert_reqs to ctx.verify_mode on every connect: make it a no-op.
        kwargs["cert_reqs"] = ctx.verify_mode
        if not ctx.check_hostname and ctx.verify_mode != ssl.CERT_NONE:
            # AllowAll: without this urllib3 would match the host name itself.
            kwargs["assert_hostname"] = False
        return host_params, kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """requests' per-request TLS settings, except on the pools of profile contexts.

        ``HTTPAdapter.cert_verify`` would give such a pool certifi's bundle as
        ``ca_certs``, which urllib3 loads into the context: the pool already has
        what it needs from :meth:`build_connection_pool_key_attributes`.
        """
        conn_kw = getattr(conn, "conn_kw", None)
        ctx = conn_kw.get("ssl_context") if isinstance(conn_kw, dict) else None
        lease = self._lease
        if ctx is not None and lease.entry is not None and ctx is lease.entry.context:
            return
        if ctx is not None and ctx in self._pools.contexts():
            return
        super().cert_verify(conn, url, verify, cert)

    # ------------------------------------------------------------------ retiring

    def _on_reload(self) -> None:
        self._close_pools(self._pools.sweep())

    def _close_pools(self, contexts: Iterable[ssl.SSLContext]) -> None:
        """Remove and close every pool (direct and through proxies) keyed on these contexts.

        ``HTTPConnectionPool.close`` closes the idle connections and disables the
        pool: a connection checked out by a response still being read is closed
        when that response releases it.
        """
        retired = {id(ctx) for ctx in contexts}
        if not retired:
            return
        managers = [self.poolmanager, *list(self.proxy_manager.values())]
        stale: list[HTTPConnectionPool] = []
        for manager in managers:
            pools: MutableMapping[Any, HTTPConnectionPool] = manager.pools
            # keys(): a copy taken under the container's lock (iterating it raises).
            for key in pools.keys():  # noqa: SIM118
                if id(getattr(key, "key_ssl_context", None)) not in retired:
                    continue
                pool = pools.get(key)
                # Another thread may have evicted it since keys() was read.
                with contextlib.suppress(KeyError):
                    del pools[key]
                if pool is not None:
                    stale.append(pool)
        # urllib3 2.x's container does not close the pools it drops: close them here.
        _close_each(stale, HTTPConnectionPool.close)

    def close(self) -> None:
        """Close every pool and stop following reloads. Idempotent."""
        self._unsubscribe()
        self._pools.close()
        super().close()


def session(
    profile_set: SSLProfileSet, *, client_id: str | None = None, **adapter_kwargs: Any
) -> requests.Session:
    """A ``requests.Session`` with an :class:`MTLSAdapter` mounted for ``https://``.

    Example:
        >>> import mtls
        >>> from mtls.integrations.requests import session
        >>> with session(mtls.SSLProfileSet([])) as http:
        ...     pass

    Args:
        profile_set: where contexts come from.
        client_id: WSO2's client identifier, for profiles with ``<client>`` entries.
        **adapter_kwargs: for the adapter (``pool_maxsize``, ``max_retries``,
            ``proxy_ssl_context``, ...).

    Returns:
        The session; closing it closes the adapter (not the profile set).
    """
    http = requests.Session()
    http.mount("https://", MTLSAdapter(profile_set, client_id=client_id, **adapter_kwargs))
    return http
