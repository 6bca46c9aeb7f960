"""``RevocationPolicy.timeout`` is a total deadline for one fetch, not a per-recv timeout."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtls import _fetch


@pytest.fixture
def dripping() -> Iterator[str]:
    """An HTTP server that answers a header line every 0.2 s for a minute (each
    recv gets data well within any per-recv timeout)."""
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.0 200 OK\r\n")
                for i in range(300):
                    if stop.wait(0.2):
                        return
                    conn.sendall(b"X-Drip: %d\r\n" % i)
                conn.sendall(b"Content-Length: 0\r\n\r\n")
            except OSError:
                return  # the client gave up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/drip.crl"
    finally:
        stop.set()
        server.close()
        thread.join(10)


def test_a_server_that_drips_is_given_up_on_at_the_deadline(dripping: str) -> None:
    with pytest.raises(_fetch.FetchError, match=r"no answer within 1 s \(the whole fetch\)"):
        _fetch.fetch(dripping, None, 1000, timeout=1.0)


def test_a_prompt_server_is_read_whole() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        body = _fetch.fetch(
            f"http://127.0.0.1:{server.getsockname()[1]}/x", None, 1000, timeout=30.0
        )
    finally:
        server.close()
        thread.join(10)
    assert body == b"hello"


@pytest.fixture
def answering() -> Iterator[tuple[list[bytes], list[str]]]:
    """A server that answers each connection with the next of ``answers`` (set by the
    test) and then keeps the connection open until the test ends, as a server that
    ignores "Connection: close" does; and its URL."""
    answers: list[bytes] = []
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{server.getsockname()[1]}/ca.crl"

    def answer(conn: socket.socket, body: bytes) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(body)
            stop.wait(60)  # open: only the answer's framing says where it ends

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn, answers.pop(0)), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield answers, [url]
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes accept() (Linux)
        server.close()
        thread.join(10)


def test_an_answer_is_read_to_its_own_end_on_a_connection_left_open(answering) -> None:
    """The fetch read until the server closed: one that keeps the connection open
    (ignoring "Connection: close") cost the whole timeout, and no answer."""
    answers, (url,) = answering
    answers += [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
        # Chunked, which some servers send a 1.0 client anyway (with a chunk extension).
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        # The twin: an answer cut short before its last chunk waits, then times out.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n",
    ]
    assert _fetch.fetch(url, None, 1000, timeout=30) == b"hello"
    assert _fetch.fetch(url, None, 1000, timeout=30) == b"hello"
    with pytest.raises(_fetch.FetchError, match="no answer within 1 s"):
        _fetch.fetch(url, None, 1000, timeout=1.0)


def test_chunked_framing_is_checked() -> None:
    good = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert _fetch.response_body("u", good, 100) == b"hello"
    for damaged in (
        good.replace(b"5\r\n", b"z\r\n"),
        good.replace(b"5\r\n", b"0x5\r\n"),  # Python's int() takes these; HTTP does not
        good.replace(b"5\r\n", b"-5\r\n"),
        good.replace(b"hello\r\n", b"hello!!"),
    ):
        with pytest.raises(_fetch.FetchError, match="chunked answer that is cut short or damaged"):
            _fetch.response_body("u", damaged, 100)


def test_a_url_that_does_not_parse_is_a_fetch_error_not_a_malformed_answer() -> None:
    with pytest.raises(_fetch.FetchError, match=r"not a URL \(Invalid IPv6 URL\)"):
        _fetch.fetch("http://[::1/x", None, 1000, timeout=5)


@pytest.mark.parametrize(
    ("head", "said"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xc2\xb2", "not a number of bytes"),  # '²'
        (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000, "not a number of bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1", "not a number of bytes"),
        (b"HTTP/1.1 \xc2\xb2\xc2\xb2\xc2\xb2 OK", "not an HTTP response"),
        (b"HTTP/1.1 " + b"2" * 5000 + b" OK", "not an HTTP response"),
    ],
)
def test_numbers_python_cannot_read_are_fetch_errors(head: bytes, said: str) -> None:
    """A status or Content-Length that str.isdigit() takes but int() refuses ('²'), or
    of thousands of digits, let a ValueError out of the fetcher, whose callers expect
    FetchError only (the checker reported "a malformed answer (invalid literal...)").
    The twin: a plain answer's body is read."""
    from mtls._fetch import FetchError, response_body

    with pytest.raises(FetchError, match=said):
        response_body("http://crl.example/ca.crl", head + b"\r\n\r\nbody", 1000)
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    assert response_body("http://crl.example/ca.crl", ok, 1000) == b"body"


def test_an_answer_of_a_million_tiny_chunks_is_refused_early() -> None:
    """Each arrival re-read the whole chunked body (quadratic), and even read once a
    million 2-byte chunks cost seconds of GIL: the walk now goes on from where it
    stopped, and more than MAX_CHUNKS chunks is refused as damaged at the first part
    past them. The twin: an answer in a few chunks is read whole."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"2\r\n\r\n\r\n"
    data = bytearray(head)
    chunks = _fetch._Chunks(len(head))
    parts = 0
    while not chunks.done(data):
        data += piece * 10_000
        parts += 1
    assert parts == _fetch.MAX_CHUNKS // 10_000 + 1  # stopped just past the limit
    with pytest.raises(_fetch.FetchError, match="damaged"):
        _fetch.response_body("u", bytes(data), 10 * 1024 * 1024)
    whole = head + b"4\r\nbody\r\n3\r\n!!!\r\n0\r\n\r\n"
    chunks = _fetch._Chunks(len(head))
    assert not chunks.done(bytearray(whole[:-5])) and chunks.done(bytearray(whole))
    assert _fetch.response_body("u", whole, 100) == b"body!!!"


def test_what_a_responder_says_reaches_messages_and_logs_escaped() -> None:
    """A status line ``HTTP/1.0 500 \\x1b[31mEVIL\\x1b]0;x\\x07`` reached the
    RevocationUnknownError, its ``why`` and the soft-fail WARNING raw: anyone on the
    path wrote terminal escapes into operators' logs."""
    from mtls._revocation import CertificateStatus

    evil = b"HTTP/1.0 500 \x1b[31mEVIL\x1b]0;x\x07\r\nLocation: x\r\n\r\n"
    with pytest.raises(_fetch.FetchError) as caught:
        _fetch.response_body("http://ocsp.example/", evil, 100)
    said = str(caught.value)
    assert "\x1b" not in said and "\x07" not in said
    assert said.endswith(r"HTTP 500 \x1b[31mEVIL\x1b]0;x\x07")
    # And a certificate's names and the lines of why, whatever made them.
    status = CertificateStatus(
        subject="CN=a\x1b[2J", serial=1, issuer="CN=\u202eca", status="undetermined",
        source="OCSP http://x/\r\n", why=("x: \x9b31m",),
    )  # fmt: skip
    shown = status.describe() + repr(status.to_dict())
    for control in ("\x1b", "\u202e", "\r", "\n", "\x9b"):
        assert control not in shown
    assert status.subject == r"CN=a\x1b[2J" and status.why == (r"x: \x9b31m",)
    # The twin: plain text is left as it is.
    assert CertificateStatus(subject="CN=é", serial=1, issuer="CN=ca", status="good").subject == (
        "CN=é"
    )


def test_a_refused_connection_says_why() -> None:
    """ "cannot connect" dropped the system's reason (h165)."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(_fetch.FetchError, match=r"cannot connect \(Connection refused\)") as e:
        _fetch.fetch(f"http://127.0.0.1:{port}/ocsp", b"x", 1000, timeout=10.0)
    assert e.value.local is False  # the source's failure: not asked again for a while


@pytest.mark.parametrize(
    ("failures", "local"),
    [
        ((errno.EMFILE, errno.EMFILE), True),  # every address: no descriptor here
        ((None, errno.EMFILE), False),  # one refuses: the source's failure
        ((errno.EADDRNOTAVAIL, errno.EADDRNOTAVAIL), False),  # IPv6 on a host without it
    ],
)
def test_a_fetch_is_this_processs_shortfall_only_when_every_address_was(
    monkeypatch: pytest.MonkeyPatch, failures: tuple[int | None, ...], local: bool
) -> None:
    """A name with two addresses (h211, h215): only when every one failed for want of
    a descriptor, memory or thread here is the source not judged; one that refuses
    makes it the source's failure, as does an address that cannot be reached from
    here (EADDRNOTAVAIL: an IPv6 responder on a host without IPv6), asked again after
    retry_failed_after, not at every check. Each address's socket() fails as given
    (None: a real socket, to a closed port)."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    v4 = (socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", port))
    monkeypatch.setattr(_fetch, "resolve", lambda *_: [v4] * len(failures))
    made = socket.socket
    left = list(failures)

    def sockets(*args: object) -> socket.socket:
        failure = left.pop(0)
        if failure is not None:
            raise OSError(failure, os.strerror(failure))
        return made(*args)  # type: ignore[arg-type]

    class Sockets:  # the socket module as _fetch sees it, socket() aside (not patched
        # for the process: other tests' servers in this worker make sockets meanwhile)
        def __getattr__(self, name: str) -> object:
            return sockets if name == "socket" else getattr(socket, name)

    monkeypatch.setattr(_fetch, "socket", Sockets())
    with pytest.raises(_fetch.FetchError, match="cannot connect") as e:
        _fetch.fetch("http://responder.test/ocsp", b"x", 1000, timeout=10.0)
    assert not left  # every address was tried
    assert e.value.local is local


def test_a_header_flood_is_refused_as_a_header_not_a_body(answering) -> None:
    """Header lines past 16 KiB were refused as "more than the N bytes allowed" (the
    body's limit), after reading up to that limit (h165); the twin: a head within
    16 KiB and a body within the limit is read."""
    answers, (url,) = answering
    answers.append(b"HTTP/1.0 200 OK\r\n" + b"X-Flood: " + b"a" * 40_000 + b"\r\n\r\nbody")
    with pytest.raises(_fetch.FetchError, match="header runs past 16 KiB"):
        _fetch.fetch(url, None, 1_000_000, timeout=30.0)
    answers.append(
        b"HTTP/1.0 200 OK\r\nX-Long: " + b"a" * 15_000 + b"\r\nContent-Length: 4\r\n\r\nbody"
    )
    assert _fetch.fetch(url, None, 1_000_000, timeout=30.0) == b"body"


def test_a_password_in_a_certificates_url_is_shown_nowhere(caplog) -> None:
    """An OCSP address ``http://svc:PASSWORD@host/`` reached the soft-fail WARNING, the
    hard-fail error and status() verbatim (h165; the fetch never sent it). The twin:
    the host and path are still said."""
    import logging

    from cryptography.hazmat.primitives.serialization import Encoding

    import mtls
    from mtls.testing import CA
    from tests.revocation._infra import leaf_naming

    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    ca = CA()
    # A password holding "@": the userinfo ends at the last "@" (h169: "xyz@" shown).
    url = f"http://svc:s3cr3tP4ss@xyz@127.0.0.1:{port}/ocsp"
    cert = leaf_naming(ca.certificate.subject, ca.private_key, ocsp_url=url)  # type: ignore[arg-type]
    chain = [cert.public_bytes(Encoding.DER)], [ca.certificate.public_bytes(Encoding.DER)]
    shown = f"OCSP http://127.0.0.1:{port}/ocsp"
    with caplog.at_level(logging.DEBUG, logger="mtls"):
        soft = mtls.RevocationChecker(mtls.RevocationPolicy(mode="soft"))
        (status,) = soft.check(*chain, host="backend")
        with pytest.raises(mtls.RevocationUnknownError) as caught:
            mtls.RevocationChecker().check(*chain, host="backend")
    said = caplog.text + repr(status.to_dict()) + str(caught.value) + repr(soft.cached())
    assert "s3cr3tP4ss" not in said and "svc:" not in said and "xyz@" not in said
    assert shown in str(caught.value) and shown in caplog.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://svc:pw@h/x", "http://h/x"),
        ("http://svc:p@ss@h/x", "http://h/x"),  # to the last "@" (h169)
        (" http://svc:pw@h/x", " http://h/x"),  # leading white space, fetched all the same (h170)
        ("//svc:pw@h/x", "//h/x"),  # no scheme (h170)
        ("svc:pw@h/x", "svc:h/x"),
        ("HTTP://u:pw@[::1]:80/x", "HTTP://[::1]:80/x"),
        # The twins: an "@" after the host is the path's, query's or fragment's.
        ("http://h/a@b", "http://h/a@b"),
        ("http://h/?q=a@b", "http://h/?q=a@b"),
        ("http://h/#a@b", "http://h/#a@b"),
        ("ldap://h/cn=a@b", "ldap://h/cn=a@b"),
    ],
)
def test_userinfo_is_dropped_wherever_urlsplit_would_find_it(url: str, shown: str) -> None:
    from mtls._revocation import _without_userinfo

    assert _without_userinfo(url) == shown


_FIRST_LOOKUP_AT_THE_LIMIT = """
import encodings.idna  # (getaddrinfo imports the codec on first use)
from mtls import _fetch
from tests._fdlimit import no_descriptor_left
with no_descriptor_left():
    try:
        _fetch.fetch("http://localhost:9/ocsp", b"x", 1000, timeout=10.0)
    except _fetch.FetchError as exc:
        failed = exc
print(failed.local, failed)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_first_name_lookup_at_the_descriptor_limit_is_this_processs_shortfall() -> None:
    """glibc's first lookup in a process at its descriptor limit (its name-service
    modules not loaded yet) answers "Name or service not known" for any name,
    localhost included: read as the responder's failure, not asked again for
    retry_failed_after (h215). A lookup that fails while no file can be opened is
    this process's shortfall. (Run in a fresh interpreter: no lookup before it.)"""
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_LOOKUP_AT_THE_LIMIT],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],  # (tests._fdlimit)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True "), done.stdout
