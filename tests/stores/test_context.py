"""client_context and server_context in real handshakes over loopback.

Two servers: a Python ``ssl`` server on a thread (built with mtls.server_context)
and ``openssl s_server -Verify 1 -verify_return_error`` as a subprocess. Both
require a client certificate. Every positive case has its negative twin.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
import os
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jks
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import mtls
from mtls import _keyload
from mtls.testing import CA
from tests._helpers import accepting
from tests._keytool import KEYPASS, STOREPASS, KeytoolStores
from tests._pki import PKI, Identity, five_byte_length, indefinite_length, issue, mismatched

PASSWORD = "Marmot-Sextant-5521"  # distinctive: searched for in logs
KEY_PASSWORD = "Velvet-Axle-8830"
DEADLINE = 10.0  # seconds for any one network step; never a fixed wait

# What a refused client sees: an alert during the handshake, or (TLS 1.3, where the
# client finishes first) on its first read; sometimes the peer's close comes first.
REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError)


# --------------------------------------------------------------------------- servers


@dataclass
class Outcome:
    ok: bool
    detail: str  # peer CN on success, OpenSSL reason on failure


class PyServer:
    """A mutual-TLS server on a thread: one connection at a time, outcome per connection."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self.thread = threading.Thread(target=self._serve, name="py-tls-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            conn.settimeout(DEADLINE)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    self._converse(tls)
                    cn = next(
                        (
                            v
                            for rdn in (tls.getpeercert() or {}).get("subject", ())
                            for k, v in rdn
                            if k == "commonName"
                        ),
                        "",
                    )
                    tls.sendall(b"hello " + cn.encode())
                    self.outcomes.put(Outcome(True, cn))
            except ssl.SSLError as exc:
                self.outcomes.put(Outcome(False, exc.reason or str(exc)))
            except OSError as exc:
                self.outcomes.put(Outcome(False, type(exc).__name__))
            finally:
                conn.close()

    def _converse(self, tls: ssl.SSLSocket) -> None:
        """What happens between the handshake and the answer: read the request."""
        tls.recv(64)

    def outcome(self) -> Outcome:
        return self.outcomes.get(timeout=DEADLINE)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.thread.join(DEADLINE)


def talk(
    ctx: ssl.SSLContext, port: int, hostname: str = "localhost", request: bytes = b"hi"
) -> tuple[bytes, str]:
    """Connect, handshake, send, read the answer. Returns (answer, TLS version)."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
        with ctx.wrap_socket(raw, server_hostname=hostname) as tls:
            tls.sendall(request)
            chunks = []
            while True:
                data = tls.recv(4096)
                if not data:
                    break
                chunks.append(data)
            answer = b"".join(chunks)
            if not answer:
                raise ConnectionResetError("the server closed the connection without answering")
            return answer, tls.version() or ""


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # exited (port taken, bad option)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)  # a poll step with a deadline
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def openssl_server(openssl: str, files: dict[str, Path], *extra: str) -> Iterator[int]:
    """``openssl s_server -Verify 1 -verify_return_error -www`` on a free loopback port."""

    def command(port: int) -> list[str]:
        return [
            openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-www",
            "-cert", str(files["server_cert"]), "-key", str(files["server_key"]),
            "-CAfile", str(files["ca"]), "-Verify", "1", "-verify_return_error", *extra,
        ]  # fmt: skip

    with peer_server(command) as port:
        yield port


@contextlib.contextmanager
def peer_server(command: Callable[[int], list[str]]) -> Iterator[int]:
    """The server ``command(port)`` starts (another TLS stack: openssl s_server,
    gnutls-serv), on a free loopback port once it accepts connections; killed after."""
    for _attempt in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            command(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            if _wait_for_port(port, proc):
                yield port
                return
            err = proc.stderr.read().decode() if proc.poll() is not None and proc.stderr else ""
            if "already in use" not in err:
                raise RuntimeError(f"{command(port)[0]} did not start: {err}")
        finally:
            proc.kill()
            proc.wait(DEADLINE)
            if proc.stderr:
                proc.stderr.close()
    raise RuntimeError(f"no free port for {command(0)[0]}")


HTTP_GET = b"GET / HTTP/1.0\r\n\r\n"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server_files(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("s_server")
    cert, key = pki.server.write_pem(d, "server")
    ca = d / "ca.pem"
    ca.write_bytes(pki.root.chain_pem())
    return {"server_cert": cert, "server_key": key, "ca": ca}


@pytest.fixture
def py_server(pki: PKI) -> Iterator[PyServer]:
    ctx = mtls.server_context(pki.server.keystore("server"), pki.truststore(pki.root))
    server = PyServer(ctx)
    yield server
    server.close()


@pytest.fixture
def untrusted_server(pki: PKI) -> Iterator[PyServer]:
    """A server whose certificate chains to a CA the client does not trust."""
    ctx = mtls.server_context(pki.other_server.keystore("server"), pki.truststore(pki.root))
    server = PyServer(ctx)
    yield server
    server.close()


def _identity_from(kind: str, identity: Identity, directory: Path) -> mtls.Keystore:
    """The identity written in a store format, then read back from the file."""
    ks = identity.keystore("client")
    if kind == "PEM-files":  # key and chain in separate PEM files, concatenated by the user
        path = directory / "client.pem"
        path.write_bytes(identity.key_pem(PASSWORD) + identity.chain_pem())
        return mtls.Keystore.load(path, PASSWORD)
    path = directory / f"client.{kind.lower()}"
    if kind == "JKS":
        ks.save(path, PASSWORD, store_type="JKS", key_password=KEY_PASSWORD)
        return mtls.Keystore.load(path, PASSWORD, key_password=KEY_PASSWORD)
    ks.save(path, PASSWORD, store_type=kind)  # type: ignore[arg-type]
    return mtls.Keystore.load(path, PASSWORD)


IDENTITY_KINDS = ["JKS", "PKCS12", "PEM", "PEM-files"]


# --------------------------------------------------------------------------- Python server


@pytest.mark.parametrize("kind", IDENTITY_KINDS)
def test_client_identity_accepted_by_python_server(
    pki: PKI, py_server: PyServer, tmp_path: Path, kind: str
) -> None:
    ks = _identity_from(kind, pki.client, tmp_path)
    ctx = mtls.client_context(ks, pki.truststore(pki.root))
    answer, _ = talk(ctx, py_server.port)
    assert answer == b"hello client rsa"
    assert py_server.outcome() == Outcome(True, "client rsa")


class PostHandshakeServer(PyServer):
    """A server that asks for the client certificate only after the handshake (TLS 1.3
    post-handshake authentication, as Apache httpd does for a per-location
    ``SSLVerifyClient require``), then answers with the certificate's CN."""

    def _converse(self, tls: ssl.SSLSocket) -> None:
        assert tls.getpeercert() is None  # nothing asked for yet
        tls.recv(64)
        tls.verify_client_post_handshake()  # raises if the client did not offer it
        tls.sendall(b"certificate, please")  # carries the CertificateRequest
        tls.recv(64)  # the client's Certificate is processed (and verified) here


def talk_twice(ctx: ssl.SSLContext, port: int) -> bytes:
    """Send, read the server's request, send again, read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hi")
            asked = tls.recv(64)  # the client answers the certificate request in this read
            if asked != b"certificate, please":
                raise ConnectionResetError(f"the server closed the connection ({asked!r})")
            tls.sendall(b"here")
            return tls.recv(64)


@pytest.fixture
def pha_server(pki: PKI, tmp_path: Path) -> Iterator[PyServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # post-handshake authentication is TLS 1.3's
    server_chain, server_key = pki.server.write_pem(tmp_path, "pha-server")
    ctx.load_cert_chain(server_chain, server_key)
    ctx.load_verify_locations(cadata=pki.root.chain_pem().decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.post_handshake_auth = True  # the handshake itself asks for nothing
    server = PostHandshakeServer(ctx)
    yield server
    server.close()


Exchange = Callable[[ssl.SSLContext, int], bytes]


@pytest.fixture(params=["during the handshake", "after the handshake"])
def asking(
    request: pytest.FixtureRequest, pki: PKI, tmp_path: Path
) -> Iterator[tuple[PyServer, Exchange]]:
    """A server that asks for the client certificate during the handshake, or after it
    (TLS 1.3 post-handshake authentication), and the client exchange that suits it."""
    if request.param == "after the handshake":
        yield request.getfixturevalue("pha_server"), talk_twice  # closed by its fixture
        return
    server = PyServer(mtls.server_context(pki.server.keystore("server"), pki.truststore(pki.root)))
    yield server, lambda ctx, port: talk(ctx, port)[0]
    server.close()


def test_client_identity_is_sent_when_asked(pki: PKI, asking: tuple[PyServer, Exchange]) -> None:
    server, exchange = asking
    ctx = mtls.client_context(pki.client.keystore(), pki.truststore(pki.root))
    assert ctx.post_handshake_auth  # offered, as urllib3's and httpx's contexts do
    assert exchange(ctx, server.port) == b"hello client rsa"
    assert server.outcome() == Outcome(True, "client rsa")


def test_client_without_certificate_is_refused(pki: PKI, asking: tuple[PyServer, Exchange]) -> None:
    server, exchange = asking
    ctx = mtls.client_context(None, pki.truststore(pki.root))
    with pytest.raises(REFUSED):
        exchange(ctx, server.port)
    assert server.outcome() == Outcome(False, "PEER_DID_NOT_RETURN_A_CERTIFICATE")


def test_untrusted_client_certificate_is_refused(
    pki: PKI, asking: tuple[PyServer, Exchange]
) -> None:
    server, exchange = asking
    ctx = mtls.client_context(pki.other_client.keystore(), pki.truststore(pki.root))
    with pytest.raises(REFUSED):
        exchange(ctx, server.port)
    assert server.outcome() == Outcome(False, "CERTIFICATE_VERIFY_FAILED")


def test_post_handshake_request_needs_the_client_to_offer_it(
    pki: PKI, pha_server: PyServer
) -> None:
    # What a client that does not offer it gets (the JDK's, and mtls's contexts before
    # they offered it): the server cannot even ask.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki.root.chain_pem().decode())
    assert not ctx.post_handshake_auth
    with pytest.raises(REFUSED):
        talk_twice(ctx, pha_server.port)
    assert pha_server.outcome() == Outcome(False, "EXTENSION_NOT_RECEIVED")


@pytest.mark.keytool
def test_keytool_made_identity_in_a_handshake(keytool_stores: KeytoolStores) -> None:
    """keytool's CA-signed entry as the client, its CA (from the same JKS) as the server's trust."""
    path = keytool_stores.path("chain.jks")
    client = mtls.Keystore.load(path, STOREPASS, key_password=KEYPASS)
    trust = mtls.Truststore.load(path, STOREPASS)
    anchors_ca_only = mtls.Truststore()
    anchors_ca_only.add("ca", trust.certificate("ca"))
    server = PyServer(mtls.server_context(client, anchors_ca_only))
    try:
        ctx = mtls.client_context(client, anchors_ca_only)
        answer, _ = talk(ctx, server.port)
        assert answer == b"hello localhost"
        assert server.outcome().ok
        # Negative twin: without the CA as anchor, the client refuses the server.
        stranger = mtls.Truststore()
        stranger.add("x", mtls.Keystore.generate("x", "CN=x", key_type="EC").certificate("x"))
        with pytest.raises(ssl.SSLCertVerificationError):
            talk(mtls.client_context(client, stranger), server.port)
        assert not server.outcome().ok
    finally:
        server.close()


# --------------------------------------------------------------------------- openssl s_server


@pytest.mark.openssl
@pytest.mark.parametrize("kind", IDENTITY_KINDS)
def test_client_identity_accepted_by_openssl(
    openssl_bin: str, server_files: dict[str, Path], pki: PKI, tmp_path: Path, kind: str
) -> None:
    ks = _identity_from(kind, pki.client_ec if kind == "PKCS12" else pki.client, tmp_path)
    ctx = mtls.client_context(ks, pki.truststore(pki.root))
    with openssl_server(openssl_bin, server_files) as port:
        answer, _ = talk(ctx, port, request=HTTP_GET)
    assert answer.startswith(b"HTTP/1.0 200 ok")


@pytest.mark.openssl
def test_openssl_refuses_client_without_certificate(
    openssl_bin: str, server_files: dict[str, Path], pki: PKI
) -> None:
    ctx = mtls.client_context(None, pki.truststore(pki.root))
    with openssl_server(openssl_bin, server_files) as port, pytest.raises(REFUSED) as info:
        talk(ctx, port, request=HTTP_GET)
    if isinstance(info.value, ssl.SSLError):
        assert info.value.reason in (
            "TLSV13_ALERT_CERTIFICATE_REQUIRED",
            "SSLV3_ALERT_HANDSHAKE_FAILURE",
        )


@pytest.mark.openssl
def test_openssl_refuses_untrusted_client(
    openssl_bin: str, server_files: dict[str, Path], pki: PKI
) -> None:
    ctx = mtls.client_context(pki.other_client.keystore(), pki.truststore(pki.root))
    with openssl_server(openssl_bin, server_files) as port, pytest.raises(REFUSED) as info:
        talk(ctx, port, request=HTTP_GET)
    if isinstance(info.value, ssl.SSLError):
        assert info.value.reason == "TLSV1_ALERT_UNKNOWN_CA"


@pytest.mark.openssl
def test_minimum_version_refuses_a_tls11_server(
    openssl_bin: str, server_files: dict[str, Path], pki: PKI
) -> None:
    # An old server: TLS 1.1 only, at security level 0 (SHA-1 signatures).
    legacy = ("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    ks = pki.client_ec.keystore()
    with openssl_server(openssl_bin, server_files, *legacy) as port:
        # Positive twin first: a client that allows TLS 1.1 gets through, so the server
        # really speaks TLS 1.1 and the refusal below is the minimum version's doing.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # ssl deprecates TLS 1.1
            old = mtls.client_context(
                ks,
                pki.truststore(pki.root),
                minimum_version=ssl.TLSVersion.TLSv1_1,
                ciphers="DEFAULT@SECLEVEL=0",
            )
        try:
            answer, version = talk(old, port, request=HTTP_GET)
        except ssl.SSLError as exc:
            pytest.skip(f"this OpenSSL no longer negotiates TLS 1.1 ({exc.reason})")
        assert version == "TLSv1.1"
        assert answer.startswith(b"HTTP/1.0 200 ok")

        default = mtls.client_context(ks, pki.truststore(pki.root))
        assert default.minimum_version == ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError) as info:
            talk(default, port, request=HTTP_GET)
        assert info.value.reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION")


# --------------------------------------------------------------------------- server verification


def test_truststore_without_the_server_ca_fails(pki: PKI, py_server: PyServer) -> None:
    ks = pki.client.keystore()
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        talk(mtls.client_context(ks, pki.truststore(pki.other_root)), py_server.port)
    assert info.value.verify_code in (19, 20)  # self-signed in chain / no local issuer
    # Twin: with the server's CA it works.
    assert (
        talk(mtls.client_context(ks, pki.truststore(pki.root)), py_server.port)[0]
        == b"hello client rsa"
    )


@pytest.mark.parametrize("mode", ["Strict", "Default", "DefaultAndLocalhost", "strict", "DEFAULT"])
def test_name_checking_modes_refuse_a_wrong_hostname(
    pki: PKI, py_server: PyServer, mode: str
) -> None:
    ctx = mtls.client_context(
        pki.client.keystore(), pki.truststore(pki.root), hostname_verifier=mode
    )
    assert ctx.check_hostname
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        talk(ctx, py_server.port, hostname="wrong.example")
    assert info.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH
    # Twin: the right names pass (the SAN has both).
    for name in ("localhost", "127.0.0.1"):
        assert talk(ctx, py_server.port, hostname=name)[0] == b"hello client rsa"


@pytest.mark.parametrize("mode", ["AllowAll", "allowall"])
def test_allow_all_skips_the_name_but_not_the_chain(
    pki: PKI, py_server: PyServer, untrusted_server: PyServer, mode: str
) -> None:
    ctx = mtls.client_context(
        pki.client.keystore(), pki.truststore(pki.root), hostname_verifier=mode
    )
    assert not ctx.check_hostname
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert talk(ctx, py_server.port, hostname="wrong.example")[0] == b"hello client rsa"
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        talk(ctx, untrusted_server.port, hostname="wrong.example")
    assert info.value.verify_code in (19, 20)


@pytest.mark.parametrize("value", ["", "Lenient", "allow_all", "NONE"])
def test_unknown_hostname_verifier_is_refused(value: str) -> None:
    with pytest.raises(ValueError) as info:
        mtls.client_context(hostname_verifier=value)
    for accepted in ("Strict", "Default", "DefaultAndLocalhost", "AllowAll"):
        assert accepted in str(info.value)


def test_what_is_not_a_store_is_refused_saying_what_to_pass(tmp_path: Path) -> None:
    # An AttributeError from deep inside ('str' object has no attribute 'anchors_der')
    # was all a path, a CA or an identity got.
    from mtls.testing import CA

    ca = CA()
    identity = ca.issue_cert("client")
    keystore, truststore = identity.keystore(), ca.truststore()
    wrong: list[tuple[object, object, str]] = [
        (identity, truststore, "keystore must be an mtls.Keystore{} not "
         "IssuedIdentity: pass its .keystore()"),
        (keystore, ca, "truststore must be an mtls.Truststore or None, not CA: pass its "
         ".truststore()"),
        (keystore, identity, "not IssuedIdentity: pass its CA's: identity.ca.truststore()"),
        (ca, truststore, "not CA: pass an identity it issues: ca.issue_cert(name).keystore()"),
        (str(tmp_path / "client.jks"), truststore, "not str: load the file first: "
         "mtls.Keystore.load(path, password)"),
        (keystore, tmp_path / "trust.jks", "not PosixPath: load the file first: "
         "mtls.Truststore.load(path, password)"),
    ]  # fmt: skip
    for given_keystore, given_truststore, message in wrong:
        # A server always needs its keystore: "or None" only where None is taken.
        with pytest.raises(TypeError, match=re.escape(message.format(" or None,"))):
            mtls.client_context(given_keystore, given_truststore)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=re.escape(message.format(","))):
            mtls.server_context(given_keystore, given_truststore)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="server_context needs a keystore"):
        mtls.server_context(None, truststore)  # type: ignore[arg-type]
    # The twin: the right objects make contexts, and so do objects that read as stores.
    assert isinstance(mtls.client_context(keystore, truststore), ssl.SSLContext)
    proxy = types.SimpleNamespace(key_entry=keystore.key_entry, path=None, aliases=keystore.aliases)
    assert isinstance(mtls.client_context(proxy, truststore), ssl.SSLContext)  # type: ignore[arg-type]
    assert isinstance(mtls.server_context(keystore, truststore), ssl.SSLContext)


def test_a_certificate_block_openssl_refuses_is_named_by_its_alias(pki: PKI) -> None:
    """A PEM truststore's CERTIFICATE block that holds something else (here a public
    key) loads, as anchors are taken without a parse, and OpenSSL refuses it when the
    context is built: the message said "a certificate", leaving the user to bisect a
    bundle of 140. It names the entry."""
    public_der = pki.other_root.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bundle = pki.root.chain_pem() + b"-----BEGIN CERTIFICATE-----\n"
    bundle += base64.encodebytes(public_der) + b"-----END CERTIFICATE-----\n"
    trust = mtls.Truststore.from_bytes(bundle)
    (odd,) = [alias for alias in trust.aliases if alias != trust.aliases[0]]
    with pytest.raises(
        mtls.KeystoreFormatError, match=f"OpenSSL refused certificate '{odd}'"
    ) as info:
        mtls.client_context(None, trust)
    assert info.value.alias == odd
    # The twin: the same bundle with the certificate there builds.
    twin = mtls.Truststore.from_bytes(pki.root.chain_pem() + pki.other_root.chain_pem())
    assert isinstance(mtls.client_context(None, twin), ssl.SSLContext)


def _strangers(count: int) -> list[bytes]:
    """``count`` self-signed CA certificates (DER) of nobody the tests know (one key:
    only their bytes matter): the size of a big truststore."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    out = []
    for number in range(count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Stranger CA {number}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(number + 1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        out.append(cert.public_bytes(serialization.Encoding.DER))
    return out


def _strangers_pem(count: int) -> bytes:
    """The same as one PEM bundle."""
    return "".join(map(ssl.DER_cert_to_PEM_cert, _strangers(count))).encode("ascii")


# Over _keyload.GIL_FREE_ANCHOR_BYTES of DER: read by OpenSSL as a cafile in a memfd.
_BIG = 120


@pytest.mark.skipif(not _keyload.memfd_available(), reason="memfd_create is Linux only")
def test_a_big_truststore_is_read_as_a_cafile_from_memory(
    pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truststore of over 32 KiB reaches OpenSSL as a cafile in a memfd, which
    OpenSSL reads with the GIL released (``cadata`` holds it: the JDK's cacerts stopped
    every other thread of the process for 23 ms per context a reload built; the
    ``reload-stall`` benchmark measures it). Seen here by the memory files made (the
    real os.memfd_create, recorded); the twin: a small truststore makes none."""
    made: list[str] = []
    real = os.memfd_create

    def recording(name: str, flags: int = os.MFD_CLOEXEC) -> int:
        made.append(name)
        return real(name, flags)

    monkeypatch.setattr(os, "memfd_create", recording)
    big = mtls.Truststore.from_bytes(pki.root.chain_pem() + _strangers_pem(_BIG))
    assert sum(map(len, big.anchors_der)) > _keyload.GIL_FREE_ANCHOR_BYTES
    mtls.client_context(None, pki.truststore(pki.root))
    assert made == []
    ctx = mtls.client_context(None, big)
    assert made == ["mtls-anchors"]
    assert len(ctx.get_ca_certs()) == _BIG + 1


_FEW_DESCRIPTORS = """
import os, resource, sys
import mtls
trust = mtls.Truststore.load(sys.argv[1])
mtls.client_context(None, trust)  # imports done before the limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
for free in (0, 1, 2):
    hog = []
    try:
        while True:
            hog.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    for _ in range(free):
        os.close(hog.pop())
    try:
        outcome = len(mtls.client_context(None, trust).get_ca_certs())
    except Exception as exc:
        outcome = f"{type(exc).__module__}.{type(exc).__name__}"
    finally:
        for fd in hog:
            os.close(fd)
    print(free, outcome)
"""


@pytest.mark.skipif(not _keyload.memfd_available(), reason="memfd_create is Linux only")
def test_a_big_truststore_loads_in_a_process_out_of_descriptors(tmp_path: Path) -> None:
    """With no descriptor free the memory file cannot be made; with one, the memfd
    takes it and OpenSSL's own open of /proc/self/fd/N fails (a bare OSError escaped).
    Either way the anchors go as cadata, as before: every count of free descriptors
    builds the context with every anchor (in a process of its own: the limit is
    the whole process's)."""
    bundle = tmp_path / "big.pem"
    bundle.write_bytes(_strangers_pem(_BIG))
    done = subprocess.run(
        [sys.executable, "-c", _FEW_DESCRIPTORS, str(bundle)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == [f"{free} {_BIG}" for free in (0, 1, 2)], done.stdout


def test_a_big_truststore_verifies_as_a_small_one_does(pki: PKI, py_server: PyServer) -> None:
    """The anchors read through the memfd are the same anchors: the server's CA among
    120 strangers verifies it; the 120 strangers alone refuse it, and a block OpenSSL
    refuses is still named by its alias."""
    ks = pki.client.keystore()
    strangers = _strangers_pem(_BIG)
    with_ca = mtls.client_context(ks, mtls.Truststore.from_bytes(strangers + pki.root.chain_pem()))
    assert talk(with_ca, py_server.port)[0] == b"hello client rsa"
    assert len(with_ca.get_ca_certs()) == _BIG + 1
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        talk(mtls.client_context(ks, mtls.Truststore.from_bytes(strangers)), py_server.port)
    assert info.value.verify_code in (19, 20)
    public_der = pki.other_root.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    odd_block = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(public_der)
    trust = mtls.Truststore.from_bytes(strangers + odd_block + b"-----END CERTIFICATE-----\n")
    with pytest.raises(mtls.KeystoreFormatError, match="OpenSSL refused certificate '") as refused:
        mtls.client_context(None, trust)
    assert refused.value.alias == trust.aliases[-1]
    # The reason is the certificate's own, as for a small store (a bundle read as PEM
    # said only "PEM lib").
    small = mtls.Truststore.from_bytes(odd_block + b"-----END CERTIFICATE-----\n")
    with pytest.raises(mtls.KeystoreFormatError) as small_refused:
        mtls.client_context(None, small)
    reason = str(small_refused.value).split("(")[1].split(")")[0]
    assert f"({reason})" in str(refused.value) and "PEM lib" not in str(refused.value)


def _jks_truststore(path: Path, entries: list[tuple[str, bytes]]) -> mtls.Truststore:
    """A JKS truststore whose entries hold exactly these bytes (pyjks writes what it is
    given, as a damaged or hand-made store may), read back by mtls."""
    jks.KeyStore.new("jks", [jks.TrustedCertEntry.new(a, d) for a, d in entries]).save(
        str(path), PASSWORD
    )
    return mtls.Truststore.load(path, PASSWORD)


def _declared_hidden_filler(pki: PKI, size: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The declared CA and the hidden one (DER), and strangers to make the store big."""
    der = serialization.Encoding.DER
    declared, hidden = pki.root.cert.public_bytes(der), pki.other_root.cert.public_bytes(der)
    filler = [(f"stranger{n}", d) for n, d in enumerate(_strangers(_BIG if size == "big" else 0))]
    return declared, hidden, filler


def _trusts_the_declared_ca_only(
    pki: PKI,
    py_server: PyServer,
    untrusted_server: PyServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    filler: list[tuple[str, bytes]],
    field: bytes,
    kept: bytes,
) -> mtls.Keystore:
    """A JKS truststore of ``filler`` and the entry 'ca' holding ``field``: said (a
    warning), cut to ``kept``, one anchor for it; the hidden CA's server is refused and
    the declared CA's accepted. Returns the client keystore used."""
    with caplog.at_level(logging.WARNING, logger="mtls"):
        trust = _jks_truststore(tmp_path / "t.jks", [*filler, ("ca", field)])
    assert "'ca' is followed by bytes that are not part of it" in caplog.text
    assert trust.anchors_der[-1] == kept
    ks = pki.client.keystore()
    ctx = mtls.client_context(ks, trust)
    assert len(ctx.get_ca_certs()) == len(filler) + 1
    with pytest.raises(ssl.SSLCertVerificationError):
        talk(ctx, untrusted_server.port)
    assert talk(mtls.client_context(ks, trust), py_server.port)[0] == b"hello client rsa"
    return ks


@pytest.mark.parametrize("size", ["small", "big"])
def test_a_jks_entry_holding_two_certificates_trusts_the_first_as_java_does(
    pki: PKI,
    py_server: PyServer,
    untrusted_server: PyServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    size: str,
) -> None:
    """A JKS entry whose certificate field holds one CA followed by another: Java reads
    the first (CertificateFactory reads one certificate; keytool -list shows one), but
    OpenSSL given the bytes as cadata took both, so a server of the hidden CA was
    accepted, and a store of over 32 KiB (read as PEM) refused it: trust depended on the
    store's size. Now the field is cut after its first certificate, with a warning, in
    both: the declared CA's server is accepted, the hidden CA's refused."""
    declared, hidden, filler = _declared_hidden_filler(pki, size)
    ks = _trusts_the_declared_ca_only(
        pki, py_server, untrusted_server, tmp_path, caplog, filler, declared + hidden, declared
    )
    # Trailing bytes that are no certificate: cut too, so the store loads in both sizes.
    junk = _jks_truststore(tmp_path / "junk.jks", [*filler, ("ca", declared + b"\0\0junk")])
    assert junk.anchors_der[-1] == declared
    assert talk(mtls.client_context(ks, junk), py_server.port)[0] == b"hello client rsa"


@pytest.mark.parametrize("size", ["small", "big"])
def test_a_hidden_certificate_behind_a_ber_header_is_not_trusted(
    pki: PKI,
    py_server: PyServer,
    untrusted_server: PyServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    size: str,
) -> None:
    """Headers the JDK reads and a DER walk did not: an indefinite-length certificate
    with six filler bytes and a second CA behind it (OpenSSL, given it as DER cadata,
    read on to the hidden CA and trusted it), and a five-byte length (the JDK refuses the
    store; OpenSSL read it and what followed). Now the field is read as the JDK's
    readOneBlock reads it: the first is cut after its end-of-contents, the second
    refused by alias, whatever the store's size."""
    declared, hidden, filler = _declared_hidden_filler(pki, size)
    field = indefinite_length(declared) + bytes(6) + hidden
    kept = indefinite_length(declared)
    _trusts_the_declared_ca_only(
        pki, py_server, untrusted_server, tmp_path, caplog, filler, field, kept
    )
    with pytest.raises(mtls.KeystoreFormatError) as refused:
        _jks_truststore(
            tmp_path / "long.jks", [*filler, ("ca", five_byte_length(declared) + hidden)]
        )
    assert "certificate 'ca' cannot be read as the JDK reads it (a length of more than four " in (
        str(refused.value)
    )


def test_a_jks_certificate_written_as_pem_is_read_as_the_jdk_reads_it(
    pki: PKI, py_server: PyServer, untrusted_server: PyServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The JDK's CertificateFactory takes PEM text in a certificate field (keytool lists
    it): the first block is the certificate, so it is trusted, silently; a second block
    after it is ignored, as the JDK ignores it, with the warning; a block that is not
    one certificate refuses the store, by alias."""
    pem = serialization.Encoding.PEM
    declared, hidden = pki.root.cert.public_bytes(pem), pki.other_root.cert.public_bytes(pem)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        trust = _jks_truststore(tmp_path / "pem.jks", [("ca", declared)])
    assert "followed by bytes" not in caplog.text
    assert trust.anchors_der == (pki.root.cert.public_bytes(serialization.Encoding.DER),)
    ks = pki.client.keystore()
    assert talk(mtls.client_context(ks, trust), py_server.port)[0] == b"hello client rsa"
    with caplog.at_level(logging.WARNING, logger="mtls"):
        two = _jks_truststore(tmp_path / "two.jks", [("ca", declared + hidden)])
    assert "'ca' is followed by bytes that are not part of it" in caplog.text
    with pytest.raises(ssl.SSLCertVerificationError):
        talk(mtls.client_context(ks, two), untrusted_server.port)
    extra = pki.root.cert.public_bytes(serialization.Encoding.DER) + b"\0\0\0"
    broken = b"-----BEGIN CERTIFICATE-----\n%s-----END CERTIFICATE-----\n" % (
        base64.encodebytes(extra)
    )
    with pytest.raises(mtls.KeystoreFormatError, match="certificate 'ca' is not DER, nor a"):
        _jks_truststore(tmp_path / "bad.jks", [("ca", broken)])
    # Text the JDK reads leniently, and could read as another certificate than mtls
    # would (a header ended by a bare CR shifts the base64 by a line; junk after the
    # footer; another label): refused, by alias.
    for odd in (
        declared.replace(b"-----\n", b"-----\r", 1),
        declared.replace(b"CERTIFICATE-----\n", b"CERTIFICATE----- junk\n", 1),
        declared.replace(b"END CERTIFICATE-----", b"END CERTIFICATE-----junk"),
        declared.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE"),
        b"-----\n" + declared,
    ):
        with pytest.raises(mtls.KeystoreFormatError, match="nor a plain PEM certificate"):
            _jks_truststore(tmp_path / "odd.jks", [("ca", odd)])


def test_partial_chain_trusts_a_leaf_only_truststore(pki: PKI, py_server: PyServer) -> None:
    leaf_only = pki.truststore(pki.server)  # the server's own certificate, not its CA
    ctx = mtls.client_context(pki.client.keystore(), leaf_only)
    assert ctx.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    assert talk(ctx, py_server.port)[0] == b"hello client rsa"
    # Negative control: the same context without the flag refuses the chain.
    ctx.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    with pytest.raises(ssl.SSLCertVerificationError):
        talk(ctx, py_server.port)


def test_no_strict_x509_flag(pki: PKI) -> None:
    ctx = mtls.client_context(truststore=pki.truststore())
    assert not ctx.verify_flags & getattr(ssl, "VERIFY_X509_STRICT", 0x20)


def test_verify_false_connects_to_anything(pki: PKI, untrusted_server: PyServer) -> None:
    ctx = mtls.client_context(pki.client.keystore(), pki.truststore(pki.root), verify=False)
    assert ctx.verify_mode == ssl.CERT_NONE
    assert not ctx.check_hostname
    # An untrusted chain and a wrong name: connected anyway, and the exchange works.
    with socket.create_connection(("127.0.0.1", untrusted_server.port), timeout=DEADLINE) as raw:
        with ctx.wrap_socket(raw, server_hostname="wrong.example") as tls:
            assert tls.getpeercert(binary_form=True) == pki.other_server.cert.public_bytes(
                serialization.Encoding.DER
            )
            tls.sendall(b"hi")
            assert tls.recv(64) == b"hello client rsa"
    assert untrusted_server.outcome() == Outcome(True, "client rsa")
    # Twin: verification on refuses the same server.
    with pytest.raises(ssl.SSLCertVerificationError):
        talk(
            mtls.client_context(pki.client.keystore(), pki.truststore(pki.root)),
            untrusted_server.port,
        )


def test_system_trust_when_no_truststore(pki: PKI) -> None:
    ctx = mtls.client_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 10  # the system's roots
    mine = mtls.client_context(truststore=pki.truststore())
    assert mine.cert_store_stats()["x509"] == 1  # only our anchor, not the system's


# --------------------------------------------------------------------------- context properties


def test_contexts_are_plain_ssl_contexts(pki: PKI) -> None:
    client = mtls.client_context(pki.client.keystore(), pki.truststore())
    server = mtls.server_context(pki.server.keystore(), pki.truststore())
    assert type(client) is ssl.SSLContext
    assert type(server) is ssl.SSLContext
    assert client.protocol == ssl.PROTOCOL_TLS_CLIENT
    assert server.protocol == ssl.PROTOCOL_TLS_SERVER
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server.verify_mode == ssl.CERT_REQUIRED
    optional = mtls.server_context(
        pki.server.keystore(), pki.truststore(), require_client_cert=False
    )
    assert optional.verify_mode == ssl.CERT_OPTIONAL
    # Each call is a new object: nothing is shared or changed after hand-out.
    assert mtls.client_context(pki.client.keystore(), pki.truststore()) is not client


def test_ciphers_are_applied(pki: PKI) -> None:
    ctx = mtls.client_context(truststore=pki.truststore(), ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES128-GCM-SHA256"]
    # OpenSSL says "No cipher can be selected."; the message says what to write.
    with pytest.raises(
        ssl.SSLError, match=r"selects no cipher this OpenSSL has .*ECDHE\+AESGCM"
    ) as e:
        mtls.client_context(truststore=pki.truststore(), ciphers="NO-SUCH-CIPHER")
    assert "No cipher can be selected" in str(e.value)  # OpenSSL's words, still there
    # An argument's error is a ValueError too, and prints as its words, not as the
    # tuple of an SSLError made from one argument (h185).
    assert isinstance(e.value, ValueError) and not str(e.value).startswith("(")


@pytest.mark.parametrize(
    "ciphers", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]
)
def test_server_ciphers_the_key_cannot_sign_in_are_said(
    ciphers: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An EC server key given ECDHE-RSA suites alone completed no TLS 1.2 handshake
    (client: "handshake failure"; server: "no shared cipher") and nothing said why
    (h130). It is said once; TLS 1.3 clients are served all the same. Twin: ECDSA
    suites, nothing said, TLS 1.2 served."""
    ca = CA(name="ciphers CA")
    client = ca.issue_cert("client")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        ctx = mtls.server_context(
            ca.issue_cert("localhost").keystore(), ca.truststore(), ciphers=ciphers
        )
    fits = "ECDSA" in ciphers
    said = [r.getMessage() for r in caplog.records if "has no TLS 1.2 suite" in r.getMessage()]
    assert len(said) == (0 if fits else 1), said
    if not fits:
        assert "needs ECDSA suites, such as 'ECDHE-ECDSA-AES128-GCM-SHA256'" in said[0]
        assert "TLS 1.2 clients are refused" in said[0]

    def answer(raw: socket.socket) -> None:
        with ctx.wrap_socket(raw, server_side=True) as tls:
            tls.sendall(b"x")

    def handshake(port: int, version: ssl.TLSVersion) -> str:
        cctx = mtls.client_context(client.keystore(), ca.truststore())
        cctx.maximum_version = version  # a context of the test's own, never handed out
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with cctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1)
                return str(tls.version())

    with accepting(answer) as port:
        assert handshake(port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        if fits:
            assert handshake(port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
        else:
            with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|handshake failure"):
                handshake(port, ssl.TLSVersion.TLSv1_2)


def test_key_not_matching_certificate_is_a_key_entry_error(pki: PKI) -> None:
    ks = mismatched(pki.client_ec.key, [pki.client.cert], "odd")  # another certificate's key
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.client_context(ks)
    assert info.value.alias == "odd"
    assert "match" in str(info.value)


def _one_key_store(alias: str, cn: str, key: Any, signer: Any) -> mtls.Keystore:
    """A keystore with one key entry: ``key`` and a certificate for it named ``cn``,
    signed by ``signer``, valid from a day ago for a year."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(signer, hashes.SHA256())
    )
    ks = mtls.Keystore()
    ks.add_key(alias, key, [cert])
    return ks


def test_a_key_below_the_security_level_says_so(pki: PKI) -> None:
    # keytool 17 and 25 still make 1024-bit RSA keys on request, and Java accepts them;
    # OpenSSL's default level refuses them, and the message must not blame a mismatch.
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(65537, 1024)
    ks = _one_key_store("old", "old gateway", key, key)
    with pytest.raises(mtls.KeyEntryError, match="security level") as info:
        mtls.client_context(ks)
    assert "must match" not in str(info.value)
    assert info.value.alias == "old"
    # The way out the message names works; and a 2048-bit key needs none.
    assert mtls.client_context(ks, ciphers="DEFAULT:@SECLEVEL=1").protocol == (
        ssl.PROTOCOL_TLS_CLIENT
    )
    mtls.client_context(pki.client.keystore())  # RSA 2048


def test_a_key_that_cannot_sign_a_handshake_is_named_by_its_algorithm(pki: PKI) -> None:
    """A GOST key (bc-java's PKCS#12 vectors) or an X25519 one loads from its store, and
    OpenSSL refuses it with a reason about size or certificate type: the message said
    "the key must match the first certificate" or offered a lower security level, and
    neither is true or helps. Twin: an EC key of the same shape loads."""
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    signer = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(
        mtls.KeyEntryError, match=r"key algorithm, X25519 .*\(1\.3\.101\.110\)"
    ) as info:
        mtls.client_context(
            _one_key_store("odd", "odd key", x25519.X25519PrivateKey.generate(), signer)
        )
    assert "must match" not in str(info.value) and "SECLEVEL" not in str(info.value)
    assert "issue an RSA or EC key" in str(info.value)
    mtls.client_context(_one_key_store("odd", "odd key", signer, signer))


@pytest.mark.parametrize("kind", ["ML-DSA-65", "ML-KEM-768"])
def test_a_post_quantum_key_is_named_and_not_blamed_on_its_size(pki: PKI, kind: str) -> None:
    """JDK 25's keytool makes ML-DSA and ML-KEM key entries; OpenSSL 3.0 refuses them
    with EE_KEY_TOO_SMALL, and the message called the algorithm "unknown" and passed
    that reason on, which sends the user after the key's size. It names the algorithm
    and why it cannot sign, and leaves OpenSSL's reason out."""
    from cryptography.hazmat.primitives.asymmetric import ec, mldsa, mlkem

    key = (
        mldsa.MLDSA65PrivateKey.generate()
        if kind == "ML-DSA-65"
        else mlkem.MLKEM768PrivateKey.generate()
    )
    signer = ec.generate_private_key(ec.SECP256R1())
    if kind == "ML-DSA-65" and ssl.OPENSSL_VERSION_INFO >= (3, 5):
        # OpenSSL 3.5 signs TLS 1.3 with ML-DSA (h206 ran a mutual-TLS handshake with
        # such a key on 3.6): the context builds. ML-KEM signs nothing anywhere.
        mtls.client_context(_one_key_store("pq", "pq key", key, signer))
        return
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.client_context(_one_key_store("pq", "pq key", key, signer))
    message = str(info.value)
    assert f"key algorithm, {kind} (" in message and "issue an RSA or EC key" in message
    assert "unknown" not in message and "TOO_SMALL" not in message
    assert info.value.alias == "pq"


@pytest.mark.openssl
def test_a_chain_signed_with_sha1_names_the_digest_not_the_key_size(
    pki: PKI, tmp_path: Path
) -> None:
    """OpenSSL refuses a SHA-1 signature in the chain (CA_MD_TOO_WEAK); the message
    blamed key sizes under 2048 bits, which this chain does not have. (cryptography
    signs nothing with SHA-1: openssl x509 does.)"""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(pki.root.cert.public_bytes(pem))
    (tmp_path / "ca.key").write_bytes(
        pki.root.key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(pki.client_ec.cert.subject)
        .sign(pki.client_ec.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (tmp_path / "leaf.csr").write_bytes(csr.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        pki.client_ec.key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    for digest, weak in (("-sha1", True), ("-sha256", False)):
        subprocess.run(
            ["openssl", "x509", "-req", "-in", str(tmp_path / "leaf.csr"), "-CA",
             str(tmp_path / "ca.pem"), "-CAkey", str(tmp_path / "ca.key"), digest,
             "-set_serial", "7", "-days", "2", "-out", str(tmp_path / "signed.pem")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        signed = x509.load_pem_x509_certificate((tmp_path / "signed.pem").read_bytes())
        ks = mtls.Keystore()
        ks.add_key("leaf", pki.client_ec.key, [signed, pki.root.cert])  # type: ignore[arg-type]
        # The oracle: what load_cert_chain says of the chain (an OpenSSL whose security
        # level takes SHA-1 signatures, such as Debian sid's 3.6 (h206), takes it).
        floor = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            floor.load_cert_chain(tmp_path / "signed.pem", tmp_path / "leaf.key")
        except ssl.SSLError:
            refused = True
        else:
            refused = False
        assert weak or not refused, "the SHA-256 twin refused by load_cert_chain"
        if not refused:  # the twin: the same chain signed with SHA-256 builds
            mtls.client_context(ks)
            continue
        with pytest.raises(mtls.KeyEntryError, match="digest weaker") as info:
            mtls.client_context(ks)
        assert "2048 bits" not in str(info.value) and "SHA-1" in str(info.value)


def _dsa_identity(pki: PKI, name: str) -> mtls.Keystore:
    """A DSA 2048 key certified by the test root (keytool -keyalg DSA makes such keys)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from tests._helpers import dsa_private_key

    key = dsa_private_key()
    root = pki.root.ca
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
        .issuer_name(root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(root.private_key, hashes.SHA256())
    )
    ks = mtls.Keystore()
    ks.add_key(name, key, [cert])
    return ks


def test_a_dsa_client_key_is_sent_over_tls12(
    pki: PKI, py_server: PyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """TLS 1.3 has no DSA: a context offering it sent an empty Certificate, and the
    server saw no client certificate, with nothing said on our side (found with
    oscrypto's and pyjks's DSA stores). The context now offers TLS 1.2 at most."""
    ks = _dsa_identity(pki, "client dsa")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        ctx = mtls.client_context(ks, pki.truststore(pki.root))
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert "DSA key" in caplog.text and "TLS 1.2" in caplog.text
    answer, _ = talk(ctx, py_server.port)
    assert answer == b"hello client dsa"
    assert py_server.outcome() == Outcome(True, "client dsa")
    # Twins: an RSA identity keeps TLS 1.3; a DSA one that must have TLS 1.3 is refused;
    # and a server cannot serve a DSA certificate to Python's clients at all.
    assert mtls.client_context(pki.client.keystore()).maximum_version == (
        ssl.TLSVersion.MAXIMUM_SUPPORTED
    )
    with pytest.raises(mtls.KeyEntryError, match=r"DSA key, which TLS 1\.3 cannot use"):
        mtls.client_context(ks, minimum_version=ssl.TLSVersion.TLSv1_3)
    with pytest.raises(mtls.KeyEntryError, match="DSS cipher suites") as info:
        mtls.server_context(ks, pki.truststore(pki.root))
    assert info.value.alias == "client dsa"


def test_sslkeylogfile_is_honoured(
    pki: PKI, py_server: PyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    ctx = mtls.client_context(pki.client.keystore(), pki.truststore(pki.root))
    assert ctx.keylog_filename == str(keylog)
    talk(ctx, py_server.port)
    lines = keylog.read_text().splitlines()
    labels = {line.split()[0] for line in lines if line and not line.startswith("#")}
    assert labels & {"CLIENT_RANDOM", "CLIENT_TRAFFIC_SECRET_0", "CLIENT_HANDSHAKE_TRAFFIC_SECRET"}
    # Twin: without the variable nothing is logged.
    monkeypatch.delenv("SSLKEYLOGFILE")
    quiet = tmp_path / "quiet.log"
    ctx = mtls.client_context(pki.client.keystore(), pki.truststore(pki.root))
    assert ctx.keylog_filename is None
    talk(ctx, py_server.port)
    assert not quiet.exists()


def test_warning_for_a_certificate_expiring_soon(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    soon = issue("soon expiring", pki.root, days=10, started=355)  # a year's, near its end
    caplog.set_level(logging.DEBUG, logger="mtls")
    mtls.client_context(soon.keystore("soon"), pki.truststore())
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "mtls"]
    assert len(warned) == 1
    assert "expires in" in warned[0].getMessage()
    assert "'soon'" in warned[0].getMessage()
    # Once a day per certificate: a profile set builds one context per ALPN list and
    # for localhost from the same stores, each HTTP client type asking for its own,
    # and each repeated the warning. Another certificate is warned about in its turn.
    caplog.clear()
    mtls.client_context(soon.keystore("soon"), pki.truststore())
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    other = issue("soon expiring too", pki.root, days=10, started=355)
    mtls.client_context(other.keystore("soon"), pki.truststore())
    assert len([r for r in caplog.records if "expires in" in r.getMessage()]) == 1
    # Twin: a certificate valid for a year gives no warning.
    caplog.clear()
    mtls.client_context(pki.client.keystore(), pki.truststore())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_warning_for_an_expired_certificate(pki: PKI, caplog: pytest.LogCaptureFixture) -> None:
    expired = issue("expired", pki.root, days=-1)
    caplog.set_level(logging.WARNING, logger="mtls")
    mtls.client_context(expired.keystore("old"), pki.truststore())
    assert any("expired on" in r.getMessage() for r in caplog.records)


def test_warning_for_an_intermediate_expiring_soon_or_expired(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A peer that verifies through the intermediate sent with the leaf refuses every
    handshake once it expires, whatever the leaf's dates: its expiry is warned about
    like the leaf's, naming the intermediate; once a day, as the leaf's."""
    now = datetime.datetime.now(datetime.UTC)
    root = mtls.testing.CA(name="chain root")
    caplog.set_level(logging.WARNING, logger="mtls")
    for days, said in ((5, "expires in"), (-1, "expired on")):
        caplog.clear()
        intermediate = root.create_child_ca(
            name=f"short intermediate {days}",
            not_before=now - datetime.timedelta(days=365),  # a year's, near its end
            not_after=now + datetime.timedelta(days=days),
        )
        leaf = intermediate.issue_cert("client.example", common_name="long-lived client")
        mtls.client_context(leaf.keystore("client"), root.truststore())
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1, warned
        assert said in warned[0] and f"short intermediate {days}" in warned[0], warned
        assert "long-lived client" not in warned[0]  # the leaf is fine: not named as expiring
        caplog.clear()
        mtls.client_context(leaf.keystore("client"), root.truststore())
        assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    # Twin: an intermediate valid for years gives no warning.
    caplog.clear()
    good = root.create_child_ca(name="long intermediate").issue_cert("client.example")
    mtls.client_context(good.keystore("client"), root.truststore())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_logs_never_contain_secrets(
    pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    soon = issue("soon expiring", pki.root, days=5)  # also exercises the warning path
    path = tmp_path / "logged.jks"
    ks = soon.keystore("logged")
    ks.save(path, PASSWORD, key_password=KEY_PASSWORD)
    caplog.set_level(logging.DEBUG, logger="mtls")
    loaded = mtls.Keystore.load(path, PASSWORD, key_password=KEY_PASSWORD)
    mtls.client_context(loaded, mtls.Truststore.load(path, PASSWORD))
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, PASSWORD, key_password="Wrong-" + KEY_PASSWORD)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "logged" in text  # something was logged: the alias ...
    assert "soon expiring" in text  # ... and the subject
    for secret in (PASSWORD, KEY_PASSWORD, *soon.key_b64_fragments()):
        assert secret not in text


def _many_anchors(count: int) -> mtls.Truststore:
    """``count`` self-signed certificates on one key (quick to make), distinct names."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    trust = mtls.Truststore()
    for index in range(count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"anchor {index}")])
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(index + 1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        trust.add(f"a{index}", cert)
    return trust


def test_a_truststore_past_the_anchor_limit_is_refused_before_openssl_reads_it(
    pki: PKI, tmp_path: Path
) -> None:
    """OpenSSL's cost grows with the square of the anchors: 18,000 took 42 s (a
    reload holds the lock every profile shares meanwhile)."""
    from mtls._context import MAX_TRUST_ANCHORS

    big = _many_anchors(MAX_TRUST_ANCHORS + 1)
    for build in (
        lambda: mtls.client_context(None, big),
        lambda: mtls.server_context(pki.server.keystore("s"), big),
    ):
        with pytest.raises(mtls.KeystoreFormatError, match=r"holds 5,001 certificates, more than"):
            build()
    # A profile's truststore so large fails the profile, closed, with the same words.
    path = tmp_path / "big-trust.jks"
    big.save(path, PASSWORD)
    profile = mtls.SSLProfile(
        servers=["big.test:443"],
        truststore=mtls.StoreConfig(location=path, password=PASSWORD),
    )
    with pytest.raises(mtls.KeystoreFormatError, match="5,001 certificates"):
        mtls.SSLProfileSet([profile])
    # The twin: a truststore of many anchors under the limit is used.
    assert mtls.client_context(None, _many_anchors(50)).cert_store_stats()["x509"] == 50
