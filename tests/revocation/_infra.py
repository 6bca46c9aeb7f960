"""Real revocation infrastructure on loopback: ``openssl ocsp`` and a CRL web server."""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mtls.testing import CA, IssuedIdentity

KEY_PASSWORD = "ocsp-test-pass"  # the responder key is written encrypted, never in clear


class CRLServer:
    """An HTTP server on 127.0.0.1 answering fixed bodies per path, counting requests."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
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


def write_index(path: Path, text: str) -> None:
    """Write an ``openssl ocsp`` index so that the running responder reloads it.

    openssl compares the file's modification time in whole seconds: a rewrite in the
    same second would go unnoticed, so the new file is dated a second later than the
    last one (a file's date, not a wait).
    """
    before = path.stat().st_mtime if path.exists() else time.time()
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    later = max(before + 1, time.time())
    os.utime(tmp, (later, later))
    tmp.replace(path)  # whole: the responder never reads a half-written index


@contextmanager
def ocsp_responder(
    openssl: str, ca: CA, directory: Path, *, signer: CA | None = None
) -> Iterator[str]:
    """Run ``openssl ocsp`` for ``ca`` on 127.0.0.1; yields its URL.

    The index is read from ``directory / "index.txt"``: update it with
    :func:`write_index` (openssl reloads it when its date changes).
    ``signer`` signs the responses instead of the CA (a wrong signer).
    """
    signing = signer or ca
    directory.mkdir(parents=True, exist_ok=True)
    index = directory / "index.txt"
    # Test certificates share subjects (CN=localhost): let the index hold several.
    (directory / "index.txt.attr").write_text("unique_subject = no\n")
    if not index.exists():
        write_index(index, ca.openssl_index())
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
            openssl, "ocsp", "-index", str(index), "-port", "0",
            "-rsigner", str(directory / "rsigner.pem"), "-rkey", str(directory / "rkey.pem"),
            "-passin", f"pass:{KEY_PASSWORD}", "-CA", str(directory / "ca.pem"),
            "-nmin", "5", "-ignore_err",
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
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def free_port() -> int:
    """A port nothing listens on (for "responder down")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PKI:
    """A CA whose certificates name a live OCSP responder and CRL distribution point.

    ``good`` is valid, ``revoked`` is revoked (keyCompromise), ``unknown`` is left out
    of the responder's index (it answers "unknown") but absent from the CRL.
    """

    ca: CA
    good: IssuedIdentity
    revoked: IssuedIdentity
    unknown: IssuedIdentity
    crls: CRLServer
    ocsp_url: str
    directory: Path

    def publish(self) -> None:
        """Write the responder's index (without ``unknown``) and serve the current CRL."""
        hidden = f"{self.unknown.serial_number:X}"
        hidden = "0" * (len(hidden) % 2) + hidden
        index = "".join(
            line for line in self.ca.openssl_index().splitlines(True) if f"\t{hidden}\t" not in line
        )
        write_index(self.directory / "index.txt", index)
        self.crls.bodies["/ca.crl"] = self.ca.crl()


@contextmanager
def revocation_pki(openssl: str, directory: Path) -> Iterator[PKI]:
    """Start the responder and the CRL server for a new CA, issue the three identities."""
    ca = CA()
    crls = CRLServer()
    try:
        with ocsp_responder(openssl, ca, directory) as url:
            ca.ocsp_url = url
            ca.crl_url = crls.url("/ca.crl")
            names = ("localhost", "127.0.0.1")
            pki = PKI(
                ca=ca,
                good=ca.issue_cert(*names),
                revoked=ca.issue_cert(*names),
                unknown=ca.issue_cert(*names),
                crls=crls,
                ocsp_url=url,
                directory=directory,
            )
            ca.revoke(pki.revoked, reason="keyCompromise")
            pki.publish()
            yield pki
    finally:
        crls.close()
