"""An mtls server refuses a client certificate whose key usage does not allow signing,
as Java's servers do and OpenSSL's purpose check does not (h259): over sockets (the
handshake explicit and implicit), over memory BIOs, through asyncio and a rotating
server; a pinned client certificate (the truststore holds it) is admitted, as Java
admits it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import threading
from pathlib import Path

import pytest

import mtls
from mtls import _purpose
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, memory_handshake, python_within, reissued, wait_for
from tests._pki import key_usage_only

from ._servers import Estate, get, make_estate, refused, stdlib_server

_JAVA_REASON = "key usage has no digitalSignature"


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="admission CA")


@pytest.fixture(scope="module")
def server(ca: CA) -> ssl.SSLContext:
    return mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())


def _client(ca: CA, *bits: str, rsa_key: bool = False) -> ssl.SSLContext:
    return mtls.client_context(
        key_usage_only(ca, ("client",), "client", *bits, rsa_key=rsa_key), ca.truststore()
    )


def _serve_one(server: ssl.SSLContext, client: ssl.SSLContext, **wrap: bool) -> dict[str, str]:
    """One connection through ``server.wrap_socket``: what the server's side saw (the
    client's bytes, or its error) and what the client read back."""
    seen: dict[str, str] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(10)
            try:
                with server.wrap_socket(conn, server_side=True, **wrap) as tls:
                    seen["server"] = tls.recv(5).decode()
                    tls.sendall(b"hello")
            except ssl.SSLError as exc:
                seen["server"] = f"refused: {exc}"
                seen["verify_code"] = str(getattr(exc, "verify_code", None))
                conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(b"ping!")
                seen["client"] = tls.recv(5).decode()
        except OSError as exc:  # the server closed or reset: it refused
            seen["client"] = f"error: {exc}"
        thread.join(10)
    return seen


@pytest.mark.parametrize("implicit", [False, True], ids=["handshake", "implicit-handshake"])
def test_a_key_agreement_only_client_certificate_is_refused(
    ca: CA, server: ssl.SSLContext, implicit: bool, caplog: pytest.LogCaptureFixture
) -> None:
    wrap = {"do_handshake_on_connect": False} if implicit else {}
    with caplog.at_level(logging.WARNING, "mtls"):
        seen = _serve_one(server, _client(ca, "key_agreement"), **wrap)
    assert seen["server"].startswith("refused: ") and _JAVA_REASON in seen["server"]
    assert seen["verify_code"] == "26"  # X509_V_ERR_INVALID_PURPOSE, as OpenSSL's own
    assert "certificate verify failed: unsupported certificate purpose (" in seen["server"]
    assert seen["client"] == "" or seen["client"].startswith("error: ")
    said = [
        r.getMessage() for r in caplog.records if "refused a client certificate" in r.getMessage()
    ]
    assert len(said) == 1 and "CN=client" in said[0] and "reissue" in said[0]


def test_its_twin_with_digital_signature_is_admitted(ca: CA, server: ssl.SSLContext) -> None:
    for bits in (("digital_signature",), ("digital_signature", "key_agreement")):
        assert _serve_one(server, _client(ca, *bits)) == {"server": "ping!", "client": "hello"}


def test_an_rsa_client_certificate_without_digital_signature_is_refused(
    ca: CA, server: ssl.SSLContext
) -> None:
    store = key_usage_only(
        ca, ("client",), "client", "key_agreement", "key_encipherment", rsa_key=True
    )
    seen = _serve_one(server, mtls.client_context(store, ca.truststore()))
    assert seen["server"].startswith("refused: ") and _JAVA_REASON in seen["server"]
    # Said where the client's keystore is loaded too (it said nothing of an RSA one).
    found = _purpose.usage_warning(store.key_entry("client")[2][0], "client")
    assert found is not None and found[1] == "Java and mtls"


def test_a_refused_client_is_said_once(ca: CA, server: ssl.SSLContext) -> None:
    client = _client(ca, "key_agreement")
    logger = logging.getLogger("mtls")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        for _ in range(3):
            assert _serve_one(server, client)["server"].startswith("refused: ")
    finally:
        logger.removeHandler(handler)
    assert sum("refused a client certificate" in r.getMessage() for r in records) == 1


def test_a_pinned_client_certificate_is_admitted_as_java_admits_it(ca: CA) -> None:
    """Java's Validator omits its end-entity checks when the truststore holds the
    client's certificate itself (the same bytes); so does an mtls server."""
    client_store = key_usage_only(ca, ("client",), "client", "key_agreement")
    leaf = client_store.certificate("client")
    pinned = mtls.Truststore()
    pinned.add("client", leaf)
    pinned.add("ca", ca.certificate)
    server = mtls.server_context(ca.issue_cert("localhost").keystore(), pinned)
    client = mtls.client_context(client_store, ca.truststore())
    assert _serve_one(server, client) == {"server": "ping!", "client": "hello"}


def test_without_a_client_certificate_nothing_is_checked(ca: CA) -> None:
    server = mtls.server_context(
        ca.issue_cert("localhost").keystore(), ca.truststore(), require_client_cert=False
    )
    bare = mtls.client_context(None, ca.truststore())
    assert _serve_one(server, bare) == {"server": "ping!", "client": "hello"}


def test_memory_bios_refuse_it_in_the_handshake(ca: CA, server: ssl.SSLContext) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match=_JAVA_REASON):
        memory_handshake(server, _client(ca, "key_agreement"), "localhost")
    seen = memory_handshake(server, _client(ca, "digital_signature"), "localhost")
    assert dict(item[0] for item in seen["subject"])["commonName"] == "client"


def test_asyncio_never_hands_the_refused_client_to_the_application(
    ca: CA, server: ssl.SSLContext
) -> None:
    handled: list[str] = []

    async def main() -> dict[str, str]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handled.append((await reader.read(5)).decode())
            writer.write(b"hello")
            await writer.drain()
            writer.close()

        listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server)
        port = listener.sockets[0].getsockname()[1]
        outcome = {}
        async with listener:
            for name, bits in (("bad", ("key_agreement",)), ("good", ("digital_signature",))):
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        "127.0.0.1", port, ssl=_client(ca, *bits), server_hostname="localhost"
                    ),
                    10,
                )
                writer.write(b"ping!")
                try:
                    outcome[name] = (await asyncio.wait_for(reader.read(5), 10)).decode()
                except (ConnectionError, ssl.SSLError) as exc:
                    outcome[name] = f"error: {type(exc).__name__}"
                writer.close()
        return outcome

    outcome = asyncio.run(main())
    assert outcome["good"] == "hello"
    assert outcome["bad"] == "" or outcome["bad"].startswith("error: ")
    assert handled == ["ping!"]  # the good client alone reached the handler


def test_a_rotating_server_refuses_it_and_follows_its_truststore(tmp_path: Path, ca: CA) -> None:
    """Through the stdlib server and a RotatingServerContext: refused, and admitted
    once the truststore pins it (the anchors are the current inner context's)."""
    estate: Estate = make_estate(tmp_path)
    client_store = key_usage_only(estate.client_ca, ("gateway",), "gateway", "key_agreement")
    client = mtls.client_context(client_store, estate.server_ca.truststore())
    with estate.server() as rotating, stdlib_server(rotating.context) as port:
        assert isinstance(refused(port, client), OSError | ssl.SSLError)
        assert get(port, estate.client(estate.client_ca))[0]["client_cn"] == "gateway"
        # Pin the certificate: the truststore now holds it beside its CA.
        pinned = mtls.Truststore()
        pinned.add("ca", estate.client_ca.certificate)
        pinned.add("gateway", client_store.certificate("client"))
        replace_atomically(estate.truststore, pinned.to_bytes(PASSWORD))
        rotating.reload()
        assert wait_for(lambda: _admitted(port, client))


def _admitted(port: int, client: ssl.SSLContext) -> bool:
    try:
        return get(port, client)[0]["client_cn"] == "gateway"
    except (OSError, ssl.SSLError):
        return False


_GEVENT = """
import mtls, mtls._admission  # imported before the patch, as in gunicorn's master
from mtls.testing import CA
from tests._pki import key_usage_only
from gevent import monkey
monkey.patch_all()
import json, socket, ssl, gevent

ca = CA()
server = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
assert type(server).__module__ == "gevent.ssl", type(server)  # made after the patch
listener = socket.create_server(("127.0.0.1", 0))
seen = {}

def serve(name):
    conn, _ = listener.accept()
    try:
        with server.wrap_socket(conn, server_side=True) as tls:
            seen[name] = tls.recv(5).decode()
            tls.sendall(b"hello")
    except ssl.SSLError as exc:
        seen[name] = "refused: " + str(exc)

for name, bits in (("bad", ("key_agreement",)), ("good", ("digital_signature",))):
    worker = gevent.spawn(serve, name)
    client = mtls.client_context(
        key_usage_only(ca, ("client",), "client", *bits), ca.truststore()
    )
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"ping!")
                tls.recv(5)
    except OSError:
        pass
    worker.join(10)
print(json.dumps(seen))
"""


def test_gevents_patched_sockets_check_it_too() -> None:
    """gevent's patched context wraps connections with its own SSLSocket class: the
    check is mixed into that one (a stdlib subclass failed every connection of
    gunicorn's gevent worker)."""
    pytest.importorskip("gevent")
    done = python_within(_GEVENT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["good"] == "ping!"
    assert seen["bad"].startswith("refused: ") and _JAVA_REASON in seen["bad"]


def test_a_refusal_leaves_a_socket_its_caller_drives_open_and_refused(
    ca: CA, server: ssl.SSLContext
) -> None:
    """A server that drives the handshake itself (tornado: do_handshake_on_connect=False,
    the socket registered in its loop) closes it on the error: closed under it by the
    check, every later connection of tornado failed (h266). The socket stays open, and
    every read or write after the refusal is refused again."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        seen: dict[str, object] = {}

        def serve() -> None:
            conn, _ = listener.accept()
            tls = server.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            try:
                tls.do_handshake()
            except ssl.SSLCertVerificationError as exc:
                seen["refused"] = str(exc)
            seen["open"] = tls.fileno() != -1
            try:
                tls.recv(5)
            except ssl.SSLCertVerificationError:
                seen["read"] = "refused"
            tls.close()

        thread = threading.Thread(target=serve)
        thread.start()
        client = _client(ca, "key_agreement")
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"ping!")
                with contextlib.suppress(OSError):
                    tls.recv(5)
        thread.join(10)
    assert _JAVA_REASON in str(seen["refused"])
    assert seen["open"] is True and seen["read"] == "refused"


@pytest.mark.parametrize("bits", [("key_agreement",), ("digital_signature",)])
def test_a_certificate_asked_for_after_the_handshake_is_checked(
    ca: CA, bits: tuple[str, ...]
) -> None:
    """TLS 1.3 post-handshake authentication (docs/servers.md): the certificate arrives
    in a read after the handshake, which the check had passed with none; the
    application read it unchecked (h266). The twin, digitalSignature, is read."""
    server = mtls.server_context(
        ca.issue_cert("localhost").keystore(), ca.truststore(), require_client_cert=False
    )
    server.post_handshake_auth = True
    client = _client(ca, *bits)
    client.post_handshake_auth = True
    seen: dict[str, str] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            conn, _ = listener.accept()
            with server.wrap_socket(conn, server_side=True) as tls:
                seen["at handshake"] = str(tls.getpeercert())
                tls.recv(5)
                tls.verify_client_post_handshake()
                tls.sendall(b"cert?")
                buffer = bytearray(5)
                try:
                    tls.recv_into(buffer)
                    seen["after"] = dict(i[0] for i in tls.getpeercert()["subject"])["commonName"]
                except ssl.SSLCertVerificationError as exc:
                    seen["after"] = f"refused: {exc}"
                    # what the refused client sent is not left in the caller's buffer
                    seen["buffer"] = bytes(buffer).hex()

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"hello")
                tls.recv(5)
                tls.sendall(b"again")
        thread.join(10)
    assert seen["at handshake"] == "None"  # nothing asked for in the handshake
    if bits == ("key_agreement",):
        assert seen["after"].startswith("refused: ") and _JAVA_REASON in seen["after"]
        assert seen["buffer"] == "00" * 5
    else:
        assert seen["after"] == "client"


def test_a_certificate_with_a_pinned_ones_subject_and_key_is_checked(ca: CA) -> None:
    """Java exempts the truststore's own bytes, not a certificate that shares their
    subject and key (h266, JDK 17 and 25): neither does an mtls server."""
    pinned_store = key_usage_only(ca, ("client",), "client", "key_agreement")
    pinned = mtls.Truststore()
    pinned.add("client", pinned_store.certificate("client"))
    pinned.add("ca", ca.certificate)
    server = mtls.server_context(ca.issue_cert("localhost").keystore(), pinned)
    # Another certificate for the same key and subject (another serial), without
    # digitalSignature: what the pinned one is but for its bytes.
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    again = reissued(pinned_store.certificate("client"), ca)
    twin = mtls.Keystore()
    key = load_der_private_key(pinned_store.key_entry("client")[1], None)
    twin.add_key("client", key, [again, ca.certificate])
    seen = _serve_one(server, mtls.client_context(twin, ca.truststore()))
    assert seen["server"].startswith("refused: ")
