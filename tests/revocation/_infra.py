"""Real revocation infrastructure on loopback: ``openssl ocsp`` and a CRL web server."""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mtls.testing import CA

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


@contextmanager
def ocsp_responder(
    openssl: str, ca: CA, directory: Path, *, signer: CA | None = None
) -> Iterator[str]:
    """Run ``openssl ocsp`` for ``ca`` on 127.0.0.1; yields its URL.

    The index is read from ``directory / "index.txt"``: write ``ca.openssl_index()``
    there (before or after the start: openssl reloads it when it changes).
    ``signer`` signs the responses instead of the CA (a wrong signer).
    """
    signing = signer or ca
    directory.mkdir(parents=True, exist_ok=True)
    index = directory / "index.txt"
    if not index.exists():
        index.write_text(ca.openssl_index())
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
