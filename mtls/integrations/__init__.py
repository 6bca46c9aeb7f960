"""HTTP client integrations: each backend gets the identity its profile names.

One module per client, each importing its library only when it is itself
imported, so ``import mtls`` never needs them::

    from mtls.integrations.httpx import MTLSTransport, AsyncMTLSTransport, client, async_client
    from mtls.integrations.requests import MTLSAdapter, session
    from mtls.integrations.aiohttp import MTLSClientSession, request_ssl

A missing library raises ImportError naming the extra to install
(``pip install "mtls-profiles[httpx]"``).

Where things are
----------------
========================  ================================================================
module                    what
========================  ================================================================
``httpx``                 ``MTLSTransport``, ``AsyncMTLSTransport``, ``client()``, ...
``requests``              ``MTLSAdapter``, ``session()``
``aiohttp``               ``MTLSClientSession``, ``request_ssl()``
``grpc``                  ``secure_channel()``, ``aio_secure_channel()``, ...
``prometheus``            ``register()``: certificate expiry, profile health and reload
                          metrics, read from ``status()`` at scrape time
``otel``                  ``instrument()``: the same numbers as OpenTelemetry
                          observable instruments
``_pools``                the per-context pools every pooling client shares, and how
                          they follow reloads (its docstring: the theory of operation)
========================  ================================================================

A URL becomes the ``(host, port)`` profiles are looked up by in one place,
:func:`mtls._config.tls_origin`, with one default-port table
(:data:`mtls._config.DEFAULT_PORTS`).
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def _missing_extra(library: str, extra: str, exc: ImportError) -> ImportError:
    """The ImportError raised when a client library is not installed."""
    error = ImportError(
        f"mtls.integrations.{extra} needs {library}, which is not installed: "
        f'pip install "mtls-profiles[{extra}]" (from a checkout: pip install -e ".[{extra}]")',
        name=library,
    )
    error.__cause__ = exc
    return error


def _describe(integration: object) -> str:
    """The ``repr`` of an integration object: its class, its profile set, its client
    identifier (never a context or a secret): ``<MTLSTransport for <SSLProfileSet ...>>``."""
    for name in ("profile_set", "_profiles"):
        profile_set = getattr(integration, name, None)
        if profile_set is not None:
            break
    client_id = getattr(integration, "client_id", getattr(integration, "_client_id", None))
    client = f" client_id={client_id!r}" if client_id is not None else ""
    target = getattr(integration, "_target", None)
    to = f" to {target!r}" if isinstance(target, str) else ""
    return f"<{type(integration).__name__}{to} for {profile_set!r}{client}>"


def _from_tls(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a failed TLS handshake (``ssl.SSLError``,
    a certificate error): through ``__cause__``, ``__context__``, and the ``reason``
    and exceptions in ``args`` that urllib3 and requests wrap it in."""
    import ssl  # noqa: PLC0415 - this package imports nothing until used

    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo and len(seen) < 16:
        found = todo.pop()
        if not isinstance(found, BaseException) or id(found) in seen:
            continue
        seen.add(id(found))
        if isinstance(found, ssl.SSLError | ssl.CertificateError):
            return True
        todo += [found.__cause__, found.__context__, getattr(found, "reason", None)]
        todo += [arg for arg in found.args if isinstance(arg, BaseException)]
    return False


def _note_tls_failure(
    exc: BaseException,
    profile_set: Any,
    origin: tuple[str, int] | None,
    client_id: str | None,
) -> None:
    """Add a note to a failed handshake's exception, as the client raises it: which
    profile (and stores) the request went with, and the command that explains the
    failure. The clients' own messages name neither (h284: "certificate verify
    failed" with three profiles in the set). Never a password: the profile as its
    messages name it, the stores by their shown locations."""
    if origin is None or not _from_tls(exc):
        return
    from .._config import format_server  # noqa: PLC0415 - as the ssl import above

    host, port = origin
    where = format_server(origin)  # an IPv6 address in brackets
    try:
        profile = profile_set.profile_for(host, port, client_id=client_id)
    except Exception:  # a wrapper's lookup: the exception goes on as it was
        return
    if profile is None:
        served = "the set's default (no profile names it)"
    else:
        stores = [
            f"{role} {store.shown_location}"
            for role, store in (("keystore", profile.keystore), ("truststore", profile.truststore))
            if store is not None
        ]
        served = f"{profile}" + (f" ({', '.join(stores)})" if stores else "")
    note = (
        f"mtls: {where} is served by {served}; mtls probe https://{where}/ "
        "with --profiles FILE (or --deployment-toml FILE) shows which side refused and why"
    )
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)


def _require_profile_set(value: object, who: str, *, materials: bool = False) -> None:
    """Raise ``TypeError`` when ``value`` cannot be a profile set (it lacks the lookups
    every integration makes), saying what to pass instead: a context, or a path, is the
    usual mistake. Anything with the lookups passes (a wrapper, a test double).
    ``materials``: the integration reads the stores' material (gRPC), which a ready
    context cannot give back: the hint names a default profile instead."""
    if hasattr(value, "context_for") and hasattr(value, "context_for_url"):
        return
    import ssl  # noqa: PLC0415 - this package imports nothing until used

    if isinstance(value, ssl.SSLContext):
        hint = (
            "; a context's key cannot be read back: for one identity for every target, "
            "mtls.SSLProfileSet([], default=mtls.SSLProfile(servers=('*',), "
            "keystore=mtls.StoreConfig(...), truststore=mtls.StoreConfig(...)))"
            if materials
            else "; for one context for every host: mtls.SSLProfileSet([], default=ctx)"
        )
    else:
        hint = "; from a WSO2 profile file: mtls.SSLProfileSet.from_xml(path)"
    raise TypeError(f"{who} takes an mtls.SSLProfileSet, not {type(value).__name__}{hint}")
