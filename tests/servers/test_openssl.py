"""mtls._openssl: the server session cache, turned off through the OpenSSL the ssl
module is linked to, and verified by what a real handshake leaves behind; and the
checks that keep its pointer reads to real contexts (the key's installation is
tested in tests/stores/test_key_handoff.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

import mtls
from mtls._openssl import session_cache_off, use_identity
from tests._helpers import PASSWORD
from tests.servers._servers import Estate, closing_server, exchange, make_estate


@pytest.fixture
def estate(tmp_path: Path) -> Estate:
    return make_estate(tmp_path)


def _no_tickets(estate: Estate) -> ssl.SSLContext:
    keystore = mtls.Keystore.load(estate.keystore, PASSWORD)
    ctx = mtls.server_context(keystore, mtls.Truststore.load(estate.truststore, PASSWORD))
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


@pytest.mark.parametrize("turned_off", [False, True])
def test_a_server_context_without_its_cache(estate: Estate, turned_off: bool) -> None:
    """TLS 1.2 session IDs resume from the cache; with the cache off they do not, and
    nothing is cached. The twin (cache left on) resumes, which shows the test can fail."""
    ctx = _no_tickets(estate)
    if turned_off:
        assert session_cache_off(ctx) is True
        assert session_cache_off(ctx) is True  # again: still off, no harm
    client = estate.client()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with closing_server(ctx) as port:
        session, _ = exchange(port, client)
        assert exchange(port, client, session)[1] is not turned_off
    assert ctx.session_stats()["number"] == (0 if turned_off else 1)
    assert ctx.session_stats()["hits"] == (0 if turned_off else 1)


def test_sessions_cached_before_the_switch_do_not_resume_after_it(estate: Estate) -> None:
    """SSL_SESS_CACHE_OFF alone stops storing but still looks up what is stored: the
    mode set also turns off the lookup. The twin: before the switch, the session resumes."""
    ctx = _no_tickets(estate)
    client = estate.client()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with closing_server(ctx) as port:
        session, _ = exchange(port, client)
        assert exchange(port, client, session)[1] is True
        assert session_cache_off(ctx) is True
        assert exchange(port, client, session)[1] is False


class _Impostor:
    """Says it is an SSLContext (isinstance believes it), holds no SSL_CTX."""

    __class__ = ssl.SSLContext  # type: ignore[assignment]
    options = 0


def test_what_is_not_an_ssl_context_is_left_alone() -> None:
    """Only a real _ssl._SSLContext is read through its pointer: an object that merely
    claims the class would crash the process if it were."""
    impostor = _Impostor()
    assert isinstance(impostor, ssl.SSLContext)
    assert session_cache_off(impostor) is False  # type: ignore[arg-type]
    assert session_cache_off(object()) is False  # type: ignore[arg-type]
    _, key_der, chain = mtls.Keystore.generate("k", "CN=k", key_type="EC").key_entry()
    assert use_identity(impostor, key_der, chain) is False  # type: ignore[arg-type]
    assert use_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), key_der, []) is False
    assert use_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), key_der, chain) is True


def test_a_subclass_is_an_ssl_context() -> None:
    class Mine(ssl.SSLContext):
        __slots__ = ()

    assert session_cache_off(Mine(ssl.PROTOCOL_TLS_SERVER)) is True
    _, key_der, chain = mtls.Keystore.generate("k", "CN=k", key_type="EC").key_entry()
    assert use_identity(Mine(ssl.PROTOCOL_TLS_SERVER), key_der, chain) is True


def test_an_openssl_other_than_the_one_ssl_uses_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library found must report the version ssl was built with (the same
    structures); otherwise nothing is called, neither the session cache's switch nor
    the key's installation."""
    import mtls._openssl as module

    module._found.cache_clear()
    monkeypatch.setattr(ssl, "OPENSSL_VERSION_NUMBER", ssl.OPENSSL_VERSION_NUMBER + 1)
    identity = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    _, key_der, chain = identity.key_entry()
    try:
        assert session_cache_off(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is False
        assert module.use_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), key_der, chain) is False
    finally:
        module._found.cache_clear()
    # The twin: with the version ssl reports, both are done.
    monkeypatch.undo()
    assert session_cache_off(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is True
    assert module.use_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), key_der, chain) is True
