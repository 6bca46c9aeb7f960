"""Real revocation infrastructure on loopback: ``openssl ocsp`` and a CRL web server."""

from __future__ import annotations

import datetime as _dt
import http.server
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from mtls.testing import CA, IssuedIdentity
from tests._helpers import stop_process

KEY_PASSWORD = "ocsp-test-pass"  # the responder key is written encrypted, never in clear


class CRLServer:
    """An HTTP server on 127.0.0.1 answering fixed bodies per path (GET: ``bodies``,
    POST: ``posts``), counting requests."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.posts: dict[str, bytes] = {}  # fixed answers to POST (an OCSP responder's)
        self.redirects: dict[str, str] = {}
        self.hits: dict[str, int] = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                target = owner.redirects.get(self.path)
                if target is not None:
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = owner.bodies.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = owner.posts.get(self.path)
                if body is None:
                    self.send_error(501)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@contextmanager
def ocsp_responder(
    openssl: str,
    ca: CA,
    directory: Path,
    *,
    signer: CA | None = None,
    port: int = 0,
    index: str | None = None,
    options: tuple[str, ...] = (),
) -> Iterator[str]:
    """Run ``openssl ocsp`` for ``ca`` on 127.0.0.1; yields its URL.

    The index is ``ca.openssl_index()`` when the responder starts, so issue and
    revoke first: openssl notices a changed index only at the top of its loop, before
    it waits for the next connection, so a change made while it waits is seen one
    request late. ``port`` 0 lets openssl choose (read from its ``ACCEPT`` line);
    pass :func:`free_port` to name the URL in certificates before starting it.
    ``signer`` signs the responses instead of the CA (a wrong signer); ``index``
    replaces ``ca.openssl_index()``; ``options`` go on its command line (``-rsigopt
    rsa_padding_mode:pss``: RSASSA-PSS signatures).
    """
    signing = signer or ca
    directory.mkdir(parents=True, exist_ok=True)
    # Test certificates share subjects (CN=localhost): let the index hold several.
    (directory / "index.txt.attr").write_text("unique_subject = no\n")
    index_file = directory / "index.txt"
    index_file.write_text(ca.openssl_index() if index is None else index)
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    (directory / "rsigner.pem").write_bytes(signing.cert_pem)
    (directory / "rkey.pem").write_bytes(
        signing.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    proc = subprocess.Popen(
        [
            openssl, "ocsp", "-index", str(index_file), "-port", str(port),
            "-rsigner", str(directory / "rsigner.pem"), "-rkey", str(directory / "rkey.pem"),
            "-passin", f"pass:{KEY_PASSWORD}", "-CA", str(directory / "ca.pem"),
            "-nmin", "5", "-ignore_err", *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        # "ACCEPT [::]:PORT PID=...", printed once the socket listens. (No probe
        # connection: the responder serves one connection at a time, and an empty
        # one keeps it waiting.) The line arrives, or openssl exits and it is empty.
        line = proc.stdout.readline().decode()
        found = re.search(r":(\d+) PID=", line)
        if found is None:
            raise RuntimeError(f"openssl ocsp said {line!r}")
        port = int(found.group(1))
        yield f"http://127.0.0.1:{port}/"
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        stop_process(proc, timeout=10)


def free_port() -> int:
    """A port nothing listens on (for "responder down")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PKI:
    """A CA whose certificates name a live OCSP responder and CRL distribution point.

    ``good`` is valid, ``revoked`` is revoked (keyCompromise), ``unknown`` is not in
    the responder's index (it answers "unknown") nor in the CRL.
    """

    ca: CA
    good: IssuedIdentity
    revoked: IssuedIdentity
    unknown: IssuedIdentity
    crls: CRLServer
    ocsp_url: str
    directory: Path


@contextmanager
def revocation_pki(openssl: str, directory: Path) -> Iterator[PKI]:
    """Issue the three identities, then start the responder and serve the CRL."""
    ca = CA()
    crls = CRLServer()
    try:
        port = free_port()
        ca.ocsp_url = f"http://127.0.0.1:{port}/"
        ca.crl_url = crls.url("/ca.crl")
        names = ("localhost", "127.0.0.1")
        good, revoked = ca.issue_cert(*names), ca.issue_cert(*names)
        ca.revoke(revoked, reason="keyCompromise")
        index = ca.openssl_index()
        # "unknown" is issued after the index is made: the responder has never heard of it
        unknown = ca.issue_cert(*names)
        crls.bodies["/ca.crl"] = ca.crl()
        directory.mkdir(parents=True, exist_ok=True)
        with ocsp_responder(openssl, ca, directory, port=port, index=index) as url:
            assert url == ca.ocsp_url
            yield PKI(ca, good, revoked, unknown, crls, url, directory)
    finally:
        crls.close()


def crl_without_entries(ca: CA, *extensions: x509.ExtensionType) -> bytes:
    """A current CRL of ``ca`` that revokes nothing, with ``extensions`` (critical)."""
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - _dt.timedelta(minutes=1))
        .next_update(now + _dt.timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(ca.private_key, hashes.SHA256()).public_bytes(Encoding.DER)


def idp(**kwargs: object) -> x509.IssuingDistributionPoint:
    """An IssuingDistributionPoint that restricts nothing, but for ``kwargs``."""
    values: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
    }
    values.update(kwargs)
    return x509.IssuingDistributionPoint(**values)  # type: ignore[arg-type]


def leaf_naming(
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
) -> x509.Certificate:
    """A certificate CN=backend, valid from an hour ago for a day, naming ``issuer``
    (written as the test wants it), signed by ``signer``, pointing at an OCSP
    responder and a CRL distribution point when given: what a CA's own issue_cert
    cannot make (another spelling of its name, a URL holding a password)."""
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backend")]))
        .issuer_name(issuer)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=1))
    )
    if crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if ocsp_url is not None:
        responder = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(
            x509.AuthorityInformationAccess([responder]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())
