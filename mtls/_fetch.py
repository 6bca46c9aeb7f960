"""A bounded HTTP/1.0 client for revocation data: OCSP answers and CRLs.

``http://`` only (OCSP responses and CRLs are signed; ``https`` would need a
revocation check of its own), no redirects followed, no proxy, one total deadline
over name resolution, connect, request and the whole answer, and answers bounded
by the caller's limit. Every failure is a :class:`FetchError` in words.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit


class FetchError(Exception):
    """A fetch failed; the message says why, in words, and names the URL."""


#: Largest response head (status line and headers) read from a responder.
MAX_HEAD_BYTES = 16 * 1024


def fetch(url: str, body: bytes | None, limit: int, timeout: float) -> bytes:
    """GET (or POST ``body``) an ``http://`` URL; at most ``limit`` bytes, ``timeout`` in all.

    ``timeout`` is a total deadline over name resolution, connect, request and the
    whole response: before every ``recv`` the socket's timeout is set to the time
    left, so a server that drips a byte at a time is given up on at the deadline.
    HTTP/1.0 is spoken (no chunked answers, the server closes at the end).

    Raises:
        FetchError: any failure, in words.
    """
    parts = urlsplit(url)
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
    try:
        for family, kind, proto, _, address in resolve(host, port, left()):
            try:
                sock = socket.socket(family, kind, proto)
                sock.settimeout(left())
                sock.connect(address)
                break
            except OSError:
                if sock is not None:
                    sock.close()
                    sock = None
                if time.monotonic() >= deadline:
                    raise TimeoutError from None
        if sock is None:
            raise FetchError(f"{url}: cannot connect")
        sock.settimeout(left())
        sock.sendall(request)
        data = bytearray()
        while True:
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > limit + MAX_HEAD_BYTES:
                raise FetchError(f"{url}: more than the {limit} bytes allowed")
        return response_body(url, bytes(data), limit)
    except TimeoutError:
        raise FetchError(f"{url}: no answer within {timeout:g} s (the whole fetch)") from None
    except OSError as exc:
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise FetchError(f"{url}: {text}") from None
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
    worker.start()
    worker.join(wait)
    if worker.is_alive():
        raise TimeoutError
    if failed:
        raise failed[0]
    return found


def response_body(url: str, data: bytes, limit: int) -> bytes:
    """The body of a complete HTTP/1.x response, or :class:`FetchError` in words."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or len(head) > MAX_HEAD_BYTES:
        raise FetchError(f"{url}: not an HTTP response")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
        raise FetchError(f"{url}: not an HTTP response")
    code, reason = int(status[1]), status[2] if len(status) > 2 else ""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if 300 <= code < 400:
        raise FetchError(f"{url}: redirected to {headers.get('location', '?')}, not followed")
    if code != 200:
        raise FetchError(f"{url}: HTTP {code} {reason}".rstrip())
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > limit:
            raise FetchError(f"{url}: {length} bytes, more than the {limit} allowed")
        if len(body) < int(length):
            raise FetchError(f"{url}: the answer was cut short")
        body = body[: int(length)]
    if len(body) > limit:
        raise FetchError(f"{url}: more than the {limit} bytes allowed")
    return body
