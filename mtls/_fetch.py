"""A bounded HTTP/1.0 client for revocation data: OCSP answers and CRLs.

``http://`` only (OCSP responses and CRLs are signed; ``https`` would need a
revocation check of its own), no redirects followed, no proxy, one total deadline
over name resolution, connect, request and the whole answer, and answers bounded
by the caller's limit. Every failure is a :class:`FetchError` in words.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import threading
import time
from typing import Any, Final
from urllib.parse import urlsplit

from ._errors import safe_text


class FetchError(Exception):
    """A fetch failed; the message says why, in words, and names the URL.

    Its text holds what the network sent (a status line, a ``Location``), so control
    characters are escaped: a responder cannot write terminal escapes into the logs.
    """

    def __init__(self, message: str, *, local: bool = False) -> None:
        super().__init__(safe_text(message))
        #: The failure is this process's, not the source's: no file descriptor, memory
        #: or thread for the fetch (EMFILE, ENFILE, ENOBUFS, ENOMEM). The source was not
        #: judged: asking it again must wait for nothing but the next check (h211).
        self.local = local


#: errno values that say the process (or the machine) ran short, not the source. Not
#: EADDRNOTAVAIL: it is also what an IPv6 address gives on a host without IPv6, a
#: responder this machine cannot reach, to be asked once per retry_failed_after (h215).
_LOCAL_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _NoThread(OSError):
    """No thread could be started for the name lookup (a thread limit, a shutdown)."""


def _local(exc: OSError | None) -> bool:
    """Whether ``exc`` is this process's shortfall (see :attr:`FetchError.local`).
    getaddrinfo's own codes are not errno values (EAI_MEMORY is ENOMEM's number on
    macOS): only its EAI_MEMORY counts, or any of them while this process can open no
    file (glibc's first lookup at the descriptor limit, before its name-service
    modules are loaded, answers "Name or service not known" for every name, localhost
    included: h215)."""
    if isinstance(exc, socket.gaierror):
        return exc.errno == getattr(socket, "EAI_MEMORY", None) or _no_descriptor()
    return isinstance(exc, _NoThread) or (exc is not None and exc.errno in _LOCAL_ERRNOS)


def _no_descriptor() -> bool:
    """Whether this process can open no file now (at its, or the system's, limit)."""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno in _LOCAL_ERRNOS
    return False


_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: Chunks one answer may have: servers send kilobytes per chunk (a 10 MiB CRL in a few
#: thousand), and this allows 40 bytes each on average; a million 2-byte chunks is a
#: server making us spend seconds of GIL (this many cost about 0.4 s).
MAX_CHUNKS = 262_144

#: Largest response head (status line and headers) read from a responder.
MAX_HEAD_BYTES = 16 * 1024


def fetch(
    url: str, body: bytes | None, limit: int, timeout: float, *, budget: str | None = None
) -> bytes:
    """GET (or POST ``body``) an ``http://`` URL; at most ``limit`` bytes, ``timeout`` in all.

    ``timeout`` is a total deadline over name resolution, connect, request and the
    whole response: before every ``recv`` the socket's timeout is set to the time
    left, so a server that drips a byte at a time is given up on at the deadline.
    ``budget`` names what set ``timeout`` when it is not the fetch's own (a timeout
    says "no answer within {budget}"). HTTP/1.0 is spoken: the server closes at the
    end. Reading also stops at the end of an answer whose framing says where it ends
    (``Content-Length``, or a chunked answer, which some servers send a 1.0 client
    anyway), for servers that keep the connection open all the same.

    Raises:
        FetchError: any failure, in words.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": a certificate's, not the answer's fault
        raise FetchError(f"{url}: not a URL ({exc})") from None
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError(f"{url}: not fetched (only http:// URLs are)")
    deadline = time.monotonic() + timeout
    try:
        port = parts.port or 80
    except ValueError as exc:  # a bad port
        raise FetchError(f"{url}: {exc}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    head = [
        f"{'POST' if body is not None else 'GET'} {path} HTTP/1.0",
        f"Host: {host if ':' not in host else f'[{host}]'}"
        + (f":{parts.port}" if parts.port else ""),
        "Connection: close",
    ]
    if body is not None:
        head += ["Content-Type: application/ocsp-request", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(head) + "\r\n\r\n").encode("ascii", "replace") + (body or b"")

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    sock: socket.socket | None = None
    refused: OSError | None = None  # why the last address could not be connected to
    local = True  # whether every address failed for want of something here
    try:
        for family, kind, proto, _, address in resolve(host, port, left()):
            try:
                sock = socket.socket(family, kind, proto)
                sock.settimeout(left())
                sock.connect(address)
                break
            except OSError as exc:
                refused = exc
                local = local and _local(exc)
                if sock is not None:
                    sock.close()
                    sock = None
                if time.monotonic() >= deadline:
                    raise TimeoutError from None
        if sock is None:
            why = (refused and (refused.strerror or str(refused))) or "no address"
            raise FetchError(f"{url}: cannot connect ({why})", local=refused is not None and local)
        sock.settimeout(left())
        sock.sendall(request)
        data = bytearray()
        framing: tuple[str, int] | None = None  # once the head is in: see _framing
        chunks: _Chunks | None = None
        while True:
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if framing is None and len(data) > MAX_HEAD_BYTES + 4 and _headless(data):
                raise FetchError(
                    f"{url}: the answer's header runs past {MAX_HEAD_BYTES // 1024} KiB: not "
                    "a responder's answer"
                )
            if len(data) > limit + MAX_HEAD_BYTES:
                raise FetchError(f"{url}: more than the {limit} bytes allowed")
            framing = framing or _framing(data)
            if framing is not None and framing[0] == "chunked":
                chunks = chunks or _Chunks(framing[1])
                if chunks.done(data):
                    break
            elif framing is not None and _complete(data, framing):
                break  # a server that keeps the connection open despite "close"
        return response_body(url, bytes(data), limit)
    except TimeoutError:
        within = budget or f"{timeout:g} s (the whole fetch)"
        raise FetchError(f"{url}: no answer within {within}") from None
    except OSError as exc:
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise FetchError(f"{url}: {text}", local=_local(exc)) from None
    finally:
        if sock is not None:
            sock.close()


def resolve(host: str, port: int, wait: float) -> list[Any]:
    """``getaddrinfo`` bounded by ``wait`` seconds: the resolver has no timeout of
    its own, so it runs in a daemon thread the caller stops waiting for."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address: nothing to resolve
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Any] = []
    failed: list[OSError] = []

    def resolve() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    worker = threading.Thread(target=resolve, name="mtls-revocation-dns", daemon=True)
    try:
        worker.start()
    except RuntimeError as exc:  # no thread (shutdown, 3.12.0-3.12.2 after main ended)
        # A failed lookup, as the callers take one (not a bare RuntimeError, h195).
        raise _NoThread(f"no thread to resolve {host} ({exc})") from None
    worker.join(wait)
    if worker.is_alive():
        raise TimeoutError
    if failed:
        raise failed[0]
    return found


def _number(text: str | None, most: int = 18) -> int | None:
    """A header's or status line's decimal number: ASCII digits only (``str.isdigit``
    takes ``²``, which ``int`` refuses), at most ``most`` of them (thousands would be
    Python's own ValueError); else None."""
    if text is None or not 0 < len(text) <= most or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _framing(data: bytearray) -> tuple[str, int] | None:
    """How the answer in ``data`` says where it ends, once its head has arrived (else
    ``None``): ``("length", total bytes)``, ``("chunked", 0)`` or ``("close", 0)``."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
    if end < 0:
        return None  # not yet (fetch refuses a head that runs past MAX_HEAD_BYTES)
    headers = _headers(bytes(data[:end]).decode("latin-1").split("\r\n")[1:])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked", end + 4
    length = _number(headers.get("content-length"))
    if length is not None:
        return "length", end + 4 + length
    return "close", 0


def _headless(data: bytearray) -> bool:
    """Whether no end of a head (an empty line) is within the first ``MAX_HEAD_BYTES``."""
    return data.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4) < 0


def _complete(data: bytearray, framing: tuple[str, int]) -> bool:
    """Whether ``data`` holds the whole answer a ``length`` framing describes (a chunked
    one is followed by :class:`_Chunks`; ``close`` ends with the connection)."""
    kind, total = framing
    return kind == "length" and len(data) >= total


class _Chunks:
    """A chunked body (RFC 9112 7.1) walked once: each :meth:`done` goes on from where
    the last stopped (re-reading the whole body at every ``recv`` cost 1.5 s of GIL for
    10 MiB of tiny chunks), recording each chunk's span and, when the framing is
    damaged, why. The fetch loop asks whether the answer has ended; :func:`_dechunked`
    takes the content."""

    __slots__ = ("at", "damage", "spans")

    #: A chunk-size line longer than this (without its CRLF) is damage, not data.
    MAX_SIZE_LINE = 1024

    def __init__(self, body_start: int) -> None:
        self.at = body_start  # where the next chunk-size line starts
        self.spans: list[tuple[int, int]] = []  # each chunk's data, as offsets
        self.damage: str | None = None

    def done(self, data: bytes | bytearray) -> bool:
        """Whether the last chunk (and trailer) has arrived, or the framing is damaged
        (:attr:`damage` says how)."""
        while True:
            eol = data.find(b"\r\n", self.at, self.at + self.MAX_SIZE_LINE + 2)
            if eol < 0:
                if len(data) - self.at > self.MAX_SIZE_LINE:
                    return self._damaged("a chunk-size line that does not end")
                return False
            digits = bytes(data[self.at : eol]).split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(digits):
                return self._damaged("a chunk size that is not hexadecimal digits")
            size = int(digits, 16)
            start, end = eol + 2, eol + 2 + size
            if size == 0:  # then trailer lines, if any, and an empty line
                return data.startswith(b"\r\n", start) or data.find(b"\r\n\r\n", start) >= 0
            if len(data) < end + 2:
                return False
            if data[end : end + 2] != b"\r\n":
                return self._damaged("a chunk not followed by CRLF")
            self.spans.append((start, end))
            self.at = end + 2
            if len(self.spans) > MAX_CHUNKS:
                return self._damaged(f"more than {MAX_CHUNKS:,} chunks")

    def _damaged(self, why: str) -> bool:
        self.damage = why
        return True


def _headers(lines: list[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def _dechunked(body: bytes) -> bytes | None:
    """A chunked body's content, ``None`` while its last chunk has not arrived. (An
    HTTP/1.0 request must not get one; some servers send it anyway.)

    Raises:
        ValueError: not chunked framing.
    """
    chunks = _Chunks(0)
    if not chunks.done(body):
        return None
    if chunks.damage is not None:
        raise ValueError(chunks.damage)
    return b"".join(body[start:end] for start, end in chunks.spans)


# What precedes a URL's host, up to the last "@" before its path (as urlsplit reads it),
# whatever its scheme or none, after the white space and C0 controls urlsplit drops:
# everything that may hold a password, which is shown in messages (h169, h170).
_USERINFO = re.compile(r"^([\x00-\x20]*(?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://)?)[^/?#]*@")


def without_userinfo(url: str) -> str:
    """``url`` without its userinfo (``user:password@``): the fetch sends none (as
    Java's and OpenSSL's do not), and a password must not reach a log line, an error
    or ``status()`` (h165)."""
    return _USERINFO.sub(r"\1", url, count=1)


def shown_location(location: str) -> str:
    """A redirect's ``Location`` as a message may show it: without userinfo, query and
    fragment. It is the server's text, not the certificate's: a distribution point
    behind a CDN or object store redirects to a presigned URL whose query is a
    credential (``X-Amz-Signature=``), and the message reaches logs and ``status()``
    (h179)."""
    return without_userinfo(location).partition("#")[0].partition("?")[0]


def response_body(url: str, data: bytes, limit: int) -> bytes:
    """The body of a complete HTTP/1.x response, or :class:`FetchError` in words."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or len(head) > MAX_HEAD_BYTES:
        raise FetchError(f"{url}: not an HTTP response")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    code = _number(status[1], 3) if len(status) > 1 else None
    if code is None or not status[0].startswith("HTTP/1."):
        raise FetchError(f"{url}: not an HTTP response")
    reason = status[2] if len(status) > 2 else ""
    headers = _headers(lines[1:])
    if 300 <= code < 400:
        location = headers.get("location")
        shown = "?" if location is None else shown_location(location)
        raise FetchError(f"{url}: redirected to {shown}, not followed")
    if code != 200:
        raise FetchError(f"{url}: HTTP {code} {reason}".rstrip())
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            dechunked = _dechunked(body)
        except ValueError:
            dechunked = None
        if dechunked is None:
            raise FetchError(f"{url}: a chunked answer that is cut short or damaged")
        body = dechunked
    written = headers.get("content-length")
    length = _number(written)
    if written is not None and length is None and "transfer-encoding" not in headers:
        raise FetchError(f"{url}: a Content-Length that is not a number of bytes")
    if length is not None and "transfer-encoding" not in headers:
        if length > limit:
            raise FetchError(f"{url}: {length} bytes, more than the {limit} allowed")
        if len(body) < length:
            raise FetchError(f"{url}: the answer was cut short")
        body = body[:length]
    if len(body) > limit:
        raise FetchError(f"{url}: more than the {limit} bytes allowed")
    return body
