"""Shared helpers for the profile, reloader and seed-flow tests."""

from __future__ import annotations

import contextlib
import datetime as _dt
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
)

import mtls
from mtls.testing import CA, IssuedIdentity

PASSWORD = "s3cret-Pa55"  # distinctive: tests grep for it in messages and logs
# The Java peer programs (tests/java), and the JDKs' java launchers (JDK 17 on PATH, 25).
JAVA_SOURCES = Path(__file__).parent / "java"
JAVAS = [
    path
    for path in (shutil.which("java"), "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
    if path and Path(path).exists()
]


def dsa_private_key(bits: int = 2048) -> Any:
    """A new DSA key, made without cryptography's deprecation (51+) of making one: the
    tests that use it check what mtls does with DSA keys Java stores hold, and the
    suite turns warnings into errors (pytest's ``filterwarnings = error``)."""
    import warnings

    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        from cryptography.hazmat.primitives.asymmetric import dsa

        return dsa.generate_private_key(bits)


def direct_identity_available() -> bool:
    """Whether keys go into OpenSSL as DER here (mtls._openssl.use_identity): the
    OpenSSL ``ssl`` is linked to and its key-loading calls are reachable."""
    from mtls import _openssl

    library = _openssl._library()
    return library is not None and library.identity is not None


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """Connects to 127.0.0.1 but verifies and sends SNI for another name: no DNS involved."""

    def __init__(self, port: int, ctx: ssl.SSLContext, server_hostname: str) -> None:
        super().__init__("127.0.0.1", port, context=ctx, timeout=10)
        self._ctx = ctx
        self._sni = server_hostname

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._sni)


def whoami(
    ctx: ssl.SSLContext, port: int, host: str = "localhost", path: str = "/"
) -> dict[str, Any]:
    """One HTTPS GET through ``ctx``; the test server answers with the client it saw."""
    conn = _LoopbackHTTPS(port, ctx, host)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise AssertionError(f"HTTP {response.status}: {body[:200]!r}")
        return dict(json.loads(body))
    finally:
        conn.close()


def write_identity(identity: IssuedIdentity, path: Path, store_type: str = "JKS") -> Path:
    identity.write_keystore(path, PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    return path


def write_trust(ca: CA, path: Path, store_type: str = "JKS") -> Path:
    ca.write_truststore(path, PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    return path


def profile_xml(*profiles: str) -> str:
    return '<parameter name="customSSLProfiles">\n' + "\n".join(profiles) + "\n</parameter>\n"


def write_xml(tmp_path: Path, *profiles: str) -> Path:
    """``tmp_path/sslprofiles.xml`` holding ``profiles``."""
    path = tmp_path / "sslprofiles.xml"
    path.write_text(profile_xml(*profiles))
    return path


def profile(
    servers: str,
    keystore: Path | None = None,
    truststore: Path | None = None,
    *,
    extra: str = "",
    attrs: str = "",
    password: str = PASSWORD,
    keystore_type: str | None = None,
    truststore_type: str | None = None,
) -> str:
    """One ``<profile>``; a store's ``<Type>`` is :func:`declared_type` unless given."""
    parts = [f"<profile{(' ' + attrs) if attrs else ''}>", f"<servers>{servers}</servers>"]
    if keystore is not None:
        parts.append(
            f"<KeyStore><Location>{keystore}</Location>"
            f"<Type>{keystore_type or declared_type(keystore)}</Type>"
            f"<Password>{password}</Password><KeyPassword>{password}</KeyPassword></KeyStore>"
        )
    if truststore is not None:
        parts.append(
            f"<TrustStore><Location>{truststore}</Location>"
            f"<Type>{truststore_type or declared_type(truststore)}</Type>"
            f"<Password>{password}</Password></TrustStore>"
        )
    parts.append(extra)
    parts.append("</profile>")
    return "\n".join(parts)


def declared_type(path: Path) -> str:
    """``<Type>`` for a store file: PEM for .pem (a password on a declared JKS promises
    an integrity check a PEM file cannot give), JKS otherwise, as WSO2 files say."""
    return "PEM" if path.suffix.lower() == ".pem" else "JKS"


def python_within(
    script: str, *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -c script args`` in a fresh interpreter, its output as text, bounded by
    ``timeout`` (a generous wait for work that must end at once, not a timing: a
    quadratic or unbounded path would run far past it)."""
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)  # a poll step with a deadline, not a fixed wait
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


def stats_settled(*paths: Path) -> None:
    """Wait (a few milliseconds, bounded) until each file's last change is older than
    its clock tick: a check trusts a recorded stat only then, and reads a file again
    while a later write could still leave the same stat (``mtls._reading._racy``). A
    test that counts what a check reads calls this between writing and loading."""
    from mtls import _reading

    wait_for(
        lambda: not any(_reading._racy(_reading.stat_key(path), time.time_ns()) for path in paths),
        interval=0.005,
    )


def jks(ca: CA, cn: str, **kwargs: Any) -> bytes:
    """A JKS keystore (password :data:`PASSWORD`) for a fresh identity named ``cn``
    (``kwargs`` as :meth:`CA.issue_cert` takes them: validity, key type), as bytes."""
    return ca.issue_cert(cn, common_name=cn, **kwargs).keystore().to_bytes(PASSWORD)


@contextlib.contextmanager
def accepting(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener whose thread hands each connection to ``handle``, one at a
    time; the port. ``ssl.SSLError`` and ``OSError`` from ``handle`` are what negative
    tests cause and end only that connection; anything else is raised again when the
    block exits (a broken handler fails its test instead of stalling the next one)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # how often the loop looks at ``stop``
    stop = threading.Event()
    broken: list[BaseException] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            try:
                handle(conn)
            except (ssl.SSLError, OSError):
                conn.close()
            except Exception as exc:
                conn.close()
                broken.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()
    if broken:
        raise broken[0]


def stop_process(process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Terminate ``process`` and reap it; killed if it has not ended within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def read_head(sock: socket.socket) -> bytes | None:
    """Read from ``sock`` until an HTTP head's blank line: the bytes so far (the head and
    whatever body came with it), or None if the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


def out_of_date_copy(ca: CA, *, expired: bool = True) -> x509.Certificate:
    """``ca``'s own certificate (same key, subject and extensions) re-issued to have
    expired yesterday, or (``expired=False``) to start tomorrow: a truststore of it
    verifies nothing under OpenSSL."""
    now = _dt.datetime.now(_dt.UTC)
    start, end = (
        (now - _dt.timedelta(days=400), now - _dt.timedelta(days=1))
        if expired
        else (now + _dt.timedelta(days=1), now + _dt.timedelta(days=400))
    )
    return reissued(ca.certificate, ca, not_before=start, not_after=end)


def reissued(
    cert: x509.Certificate,
    signer: CA,
    *,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
) -> x509.Certificate:
    """``cert`` issued again by ``signer`` (its issuer): the same subject, key and
    extensions, another serial, and its dates unless given."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or cert.not_valid_before_utc)
        .not_valid_after(not_after or cert.not_valid_after_utc)
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(signer.private_key, hashes.SHA256())  # type: ignore[arg-type]


def truststore_openssl_refuses(ca: CA) -> mtls.Truststore:
    """``ca``'s truststore plus a certificate cryptography reads and OpenSSL will not
    take (its issuer name's string tag zeroed): it loads, and fails only when the
    context is built."""
    name = b"refused by OpenSSL"
    der = CA(name=name.decode()).certificate.public_bytes(Encoding.DER)
    at = der.index(b"\x0c" + bytes([len(name)]) + name)  # the issuer's, first
    trust = ca.truststore()
    trust.add("refused", x509.load_der_x509_certificate(der[:at] + b"\0" + der[at + 1 :]))
    return trust


@contextlib.contextmanager
def raising_log_handler(level: int = 0) -> Iterator[list[str]]:
    """A handler on the ``mtls`` logger whose ``emit`` raises (a log shipper that is
    down), with the logger at DEBUG: yields the messages it was given, and removes it
    after. The library's "said once per process" note is reset for the caller."""
    import logging

    import mtls._log

    seen: list[str] = []

    class Down(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())
            raise RuntimeError("log shipper down")

    logger = logging.getLogger("mtls")
    was = logger.level
    mtls._log._said.clear()
    handler = Down(level)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(was)


def memory_handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str = "server"
) -> dict[str, Any]:
    """A whole handshake in memory (``ssl.MemoryBIO``); returns the client certificate
    the server saw. Raises ssl.SSLError when either side refuses."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side, out, peer_in in (
            ("client", tls_client, c_out, s_in),
            ("server", tls_server, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            # TLS 1.3: the server's verdict on the client certificate travels after
            # the client finished; one more exchange delivers it.
            tls_client.write(b"x")
            s_in.write(c_out.read())
            assert tls_server.read(1) == b"x"
            return tls_server.getpeercert()
    raise AssertionError("handshake did not finish")


def self_signed_der(key: Any, common_name: str) -> bytes:
    """A certificate for ``key``'s public key, signed by ``key`` itself (CN=``common_name``,
    valid from an hour ago for a day), as DER."""
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def der_elements(data: bytes) -> list[bytes]:
    """The elements of the one DER SEQUENCE ``data`` is, each whole (header included):
    what tests take apart to build a damaged or re-signed structure."""
    from mtls import _der

    start, stop = _der.single_span(data, _der.SEQUENCE)
    out, pos = [], start
    for _tag, _content, end in _der.spans(data, start, stop):
        out.append(data[pos:end])
        pos = end
    return out


def redated(cert: x509.Certificate, signer: CA, not_before: str, not_after: str) -> bytes:
    """``cert`` (issued by ``signer``, an EC CA) with its validity written as given and
    signed again: ``"U:361231235960Z"`` is a UTCTime, ``"G:00000101000000Z"`` a
    GeneralizedTime, each written as is (dates that do not exist, year 0, fractions):
    what no certificate builder writes."""
    from mtls import _der

    def time(spec: str) -> bytes:
        kind, text = spec.split(":", 1)
        return _der.encode(0x17 if kind == "U" else 0x18, text.encode())

    tbs, _, _ = der_elements(cert.public_bytes(Encoding.DER))
    fields = der_elements(tbs)
    at = 4 if fields[0][0] == 0xA0 else 3  # [0] version, serial, signature, issuer, validity
    fields[at] = _der.encode(_der.SEQUENCE, time(not_before) + time(not_after))
    return signed_again(_der.encode(_der.SEQUENCE, b"".join(fields)), signer)


def signed_again(tbs: bytes, ca: CA) -> bytes:
    """``SEQUENCE { tbs, ecdsa-with-SHA256, signature }`` signed by ``ca`` (an EC CA,
    the test CA's default): a certificate, a CRL or an OCSP BasicOCSPResponse whose
    signed part a test changed."""
    from mtls import _der

    key = ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm = _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.10045.4.3.2"))
    bits = _der.encode(_der.BIT_STRING, b"\x00" + signature)
    return _der.encode(_der.SEQUENCE, tbs + algorithm + bits)


def recertified(
    ca: CA, signer: CA, *, longer: _dt.timedelta = _dt.timedelta(0)
) -> x509.Certificate:
    """Another CA certificate for ``ca``'s name and key, signed by ``signer`` (``ca``
    itself: a renewed root; an older root: a cross-signed twin), valid as ``ca``'s
    and ``longer`` more."""
    return (
        x509.CertificateBuilder()
        .subject_name(ca.certificate.subject)
        .issuer_name(signer.certificate.subject)
        .public_key(ca.certificate.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca.certificate.not_valid_before_utc)
        .not_valid_after(ca.certificate.not_valid_after_utc + longer)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )


def same_key(
    ca: CA,
    identity: IssuedIdentity,
    *,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    server_auth: bool = True,
    client_auth: bool = True,
) -> x509.Certificate:
    """Another certificate from ``ca`` for ``identity``'s key (a renewal, a reissue, or
    the certificate it replaced), valid and for the TLS roles as given."""
    request = identity.keystore().certificate_request()
    return ca.sign_request(
        request,
        not_before=not_before,
        not_after=not_after,
        server_auth=server_auth,
        client_auth=client_auth,
    )[0]


def pem_keystore(identity: IssuedIdentity, *certificates: x509.Certificate) -> bytes:
    """A PEM keystore: ``identity``'s key encrypted under PASSWORD, then
    ``certificates`` (its own, its renewals), in that order."""
    key = identity.private_key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(PASSWORD.encode())
    )
    return key + b"".join(cert.public_bytes(Encoding.PEM) for cert in certificates)
