"""A small gRPC service over real mutual TLS on loopback, for the grpc integration tests.

Every method answers with the client certificate's CN as the server saw it in
``context.auth_context()``. ``Watch`` streams one message, then waits for the
test to open its gate before sending the rest: a server-streaming call that
stays open across a rotation.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from mtls import Keystore, SSLProfile, SSLProfileSet, StoreConfig
from mtls.testing import CA, IssuedIdentity, replace_atomically
from tests._helpers import PASSWORD

SERVICE = "mtls.test.Probe"
WHO = f"/{SERVICE}/Who"
WATCH = f"/{SERVICE}/Watch"
JOIN = f"/{SERVICE}/Join"
ECHO = f"/{SERVICE}/Echo"


def peer_cn(context: Any) -> bytes:
    names = context.auth_context().get("x509_common_name") or [b"(no client certificate)"]
    return bytes(names[0])


class Probe:
    """The service's handlers; ``gate`` holds ``Watch`` after its first message."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.watching = threading.Event()

    def who(self, request: bytes, context: Any) -> bytes:
        return peer_cn(context)

    def watch(self, request: bytes, context: Any) -> Iterator[bytes]:
        cn = peer_cn(context)
        yield cn
        self.watching.set()
        if not self.gate.wait(30):
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the test never opened the gate")
        for _ in range(int(request or b"1") - 1):
            yield cn

    def join(self, requests: Iterator[bytes], context: Any) -> bytes:
        return peer_cn(context) + b":" + b"".join(requests)

    def echo(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        cn = peer_cn(context)
        for request in requests:
            yield cn + b":" + request

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Who": grpc.unary_unary_rpc_method_handler(self.who),
                "Watch": grpc.unary_stream_rpc_method_handler(self.watch),
                "Join": grpc.stream_unary_rpc_method_handler(self.join),
                "Echo": grpc.stream_stream_rpc_method_handler(self.echo),
            },
        )


# The backend's worker threads: its pool starts one more whenever calls overlap, and
# keeps it, so tests counting the client's threads leave these out.
BACKEND_THREADS = "grpc-test-backend"


def client_threads() -> int:
    """The threads of this process, less the test backend's workers."""
    return sum(not t.name.startswith(BACKEND_THREADS) for t in threading.enumerate())


@contextmanager
def grpc_server(
    credentials: grpc.ServerCredentials, probe: Probe | None = None
) -> Iterator[tuple[int, Probe]]:
    """A ``grpc.server`` on 127.0.0.1 with the probe service; yields (port, probe)."""
    probe = probe or Probe()
    pool = futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix=BACKEND_THREADS)
    server = grpc.server(pool, handlers=[probe.handler()])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port, probe
    finally:
        probe.gate.set()
        server.stop(None).wait(10)


def static_credentials(identity: IssuedIdentity, client_ca: CA) -> grpc.ServerCredentials:
    """Fixed server credentials that require a client certificate from ``client_ca``."""
    return grpc.ssl_server_credentials(
        [(identity.private_key_pem, identity.chain_pem)],
        root_certificates=client_ca.cert_pem,
        require_client_auth=True,
    )


def write_keystore(path: Path, identity: IssuedIdentity) -> StoreConfig:
    identity.write_keystore(path, PASSWORD)
    return StoreConfig(location=path, password=PASSWORD)


def write_truststore(path: Path, ca: CA) -> StoreConfig:
    ca.write_truststore(path, PASSWORD)
    return StoreConfig(location=path, password=PASSWORD)


def profile_set(
    servers: str,
    keystore: StoreConfig | None,
    truststore: StoreConfig | None,
    **kwargs: Any,
) -> SSLProfileSet:
    """A set with one profile, reloaded only by explicit ``reload()`` calls."""
    kwargs.setdefault("settle_delay", 0.01)
    return SSLProfileSet(
        [SSLProfile(servers=(servers,), keystore=keystore, truststore=truststore)], **kwargs
    )


def client_set(tmp_path: Path, ca: CA, port: int, cn: str = "gen-1") -> SSLProfileSet:
    """A set whose profile for localhost:PORT holds a client certificate with CN=``cn``."""
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert(cn, common_name=cn))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    return profile_set(f"localhost:{port}", keystore, trust)


def rotate(ca: CA, tmp_path: Path, cn: str) -> None:
    """Replace the client keystore of :func:`client_set` with CN=``cn``, atomically."""
    identity = ca.issue_cert(cn, common_name=cn)
    replace_atomically(tmp_path / "client.jks", identity.keystore().to_bytes(PASSWORD))


def secp256k1_keystore(ca: CA, curve: ec.EllipticCurve | None = None) -> bytes:
    """A keystore OpenSSL loads and gRPC's BoringSSL cannot use (a secp256k1 key, or
    ``curve``'s), for localhost, issued by ``ca``."""
    key = ec.generate_private_key(curve or ec.SECP256K1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k1")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(ca.private_key, hashes.SHA256())
    )
    store = Keystore()
    pkcs8 = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    store.add_key("server", pkcs8, [cert, ca.certificate])
    return store.to_bytes(PASSWORD)


def _der_length(data: bytes, at: int) -> tuple[int, int]:
    """(where the content of the DER element at ``at`` starts, where it ends)."""
    size, start = data[at + 1], at + 2
    if size & 0x80:
        count = size & 0x7F
        size, start = int.from_bytes(data[start : start + count], "big"), start + count
    return start, start + size


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def version_1_with_extensions(
    cert: x509.Certificate, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """``cert`` as a version 1 certificate that keeps its extensions (the version field
    left out of its signed part), signed again by ``signer``: OpenSSL and cryptography
    read it, gRPC's BoringSSL does not (RFC 5280 allows extensions in v3 only)."""
    der = cert.public_bytes(Encoding.DER)
    start, _ = _der_length(der, 0)
    tbs_start, tbs_end = _der_length(der, start)
    tbs = der[tbs_start:tbs_end]
    assert tbs[0] == 0xA0  # [0] EXPLICIT version
    _, version_end = _der_length(tbs, 0)
    signed = _der(0x30, tbs[version_end:])
    algorithm_start = tbs_end
    _, algorithm_end = _der_length(der, algorithm_start)
    algorithm = der[algorithm_start:algorithm_end]
    signature = signer.sign(signed, ec.ECDSA(hashes.SHA256()))
    made = _der(0x30, signed + algorithm + _der(0x03, b"\x00" + signature))
    parsed = x509.load_der_x509_certificate(made)
    assert parsed.version == x509.Version.v1 and len(parsed.extensions) > 0
    return parsed


def unreadable_to_grpc_ca(name: str = "v1 CA with extensions") -> x509.Certificate:
    """A self-signed CA certificate gRPC's BoringSSL cannot read (OpenSSL can)."""
    ca = CA(name=name)
    key = ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return version_1_with_extensions(ca.certificate, key)
