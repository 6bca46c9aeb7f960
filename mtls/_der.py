"""A minimal, strict DER reader and writer for the few ASN.1 structures we walk ourselves.

We read Java key-protection envelopes and PKCS#12 containers without pulling in an
ASN.1 library at run time (pyasn1 is only pyjks's dependency, and its error
behaviour on hostile input is not ours to promise). Every malformed input raises
:class:`DERError`, which callers translate into :class:`mtls.KeystoreFormatError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

# Universal tags we use.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31

_MAX_DEPTH_LENGTH_BYTES = 4  # no structure we read is larger than 4 GiB


class DERError(ValueError):
    """The bytes are not the DER structure we expected."""


@dataclass(frozen=True, slots=True)
class TLV:
    """One DER element: its tag byte, its content and where it sits in the input."""

    tag: int
    value: bytes
    end: int

    def children(self) -> list[TLV]:
        """Parse the content of a constructed element into its elements."""
        if not self.tag & 0x20:
            raise DERError("expected a constructed element")
        return read_all(self.value)

    def expect(self, tag: int) -> TLV:
        """Return self if the tag matches, else raise DERError."""
        if self.tag != tag:
            raise DERError(f"expected tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self


def header(data: bytes, pos: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """The element at ``pos`` as ``(tag, content start, content end)``, nothing copied.

    ``end`` bounds the element (its parent's end); the default is the end of ``data``.
    Walking a structure by offsets keeps private keys from being copied field by
    field into short-lived ``bytes`` objects, and costs no allocation.
    """
    limit = len(data) if end is None else end
    if pos + 2 > limit:
        raise DERError("truncated element header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tags are not used in the structures we read")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > _MAX_DEPTH_LENGTH_BYTES:
            raise DERError("indefinite or oversized length")
        if pos + count > limit:
            raise DERError("truncated length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    stop = pos + length
    if stop > limit:
        raise DERError("element runs past the end of the data")
    return tag, pos, stop


# Elements one constructed element may hold when it is read whole (spans, read_all,
# TLV.children). The structures read whole have a few fields, or a few hundred names
# or extensions; the long lists (PKCS#12 bags) are read one at a time and counted by
# their reader. Without a bound, one SEQUENCE of 3.5 million two-byte elements in a
# 7 MiB "certificate" held a load for 10 to 16 s.
MAX_ELEMENTS = 50_000


def _too_many() -> DERError:
    return DERError(f"more than {MAX_ELEMENTS:,} elements in one structure")


def spans(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int]]:
    """The elements that fill ``data[start:end]`` exactly, as :func:`header` gives them
    (at most :data:`MAX_ELEMENTS`)."""
    stop = len(data) if end is None else end
    items: list[tuple[int, int, int]] = []
    while start < stop:
        item = header(data, start, stop)
        items.append(item)
        if len(items) > MAX_ELEMENTS:
            raise _too_many()
        start = item[2]
    return items


def _elements(data: bytes, start: int, stop: int) -> Iterator[TLV]:
    """The elements that fill ``data[start:stop]``, read one at a time."""
    while start < stop:
        found, content, start = header(data, start, stop)
        yield TLV(found, data[content:start], start)


def each(data: bytes, tag: int) -> Iterator[TLV]:
    """The elements inside ``data``, exactly one element with ``tag``, read one at a time
    (a caller that stops early never parses the rest)."""
    return _elements(data, *single_span(data, tag))


def read_tlv(data: bytes, pos: int = 0) -> TLV:
    """Read one element starting at ``pos``."""
    tag, start, stop = header(data, pos)
    return TLV(tag, data[start:stop], stop)


def read_all(data: bytes) -> list[TLV]:
    """Parse a concatenation of elements that must fill ``data`` exactly (at most
    :data:`MAX_ELEMENTS`)."""
    items: list[TLV] = []
    for item in _elements(data, 0, len(data)):
        items.append(item)
        if len(items) > MAX_ELEMENTS:
            raise _too_many()
    return items


def single_span(data: bytes, tag: int, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Where the content lies, if ``data[start:end]`` is exactly one element with
    ``tag`` (``end`` defaults to the end of ``data``); nothing copied.

    Raises:
        DERError: a damaged element, bytes after it, or another tag.
    """
    limit = len(data) if end is None else end
    found, content_start, content_stop = header(data, start, limit)
    if content_stop != limit:
        raise DERError("trailing bytes after the element")
    if found != tag:
        raise DERError(f"expected tag 0x{tag:02x}, found 0x{found:02x}")
    return content_start, content_stop


def read_single(data: bytes, tag: int) -> TLV:
    """Parse ``data`` as exactly one element with the given tag."""
    start, stop = single_span(data, tag)
    return TLV(tag, data[start:stop], stop)


def check_single(data: bytes, tag: int) -> None:
    """Raise :class:`DERError` unless ``data`` is exactly one element with ``tag``
    (what :func:`read_single` checks, without copying the content)."""
    single_span(data, tag)


# Constructed forms of the universal string types BER may split into segments
# (X.690 section 8.7.3): OCTET STRING, UTF8String, PrintableString, IA5String, BMPString.
_SEGMENTED_STRINGS = frozenset({0x24, 0x2C, 0x33, 0x36, 0x3E})
MAX_BER_DEPTH = 32  # PKCS#12 nests about ten levels; BC and Windows stay well below
# Elements one rewrite may walk: a BER PKCS#12 of the 8 MiB input cap, in Bouncy Castle's
# 1,000-byte segments, has under 10,000 per layer; each costs a few microseconds.
MAX_BER_ELEMENTS = 200_000


def to_der(data: bytes, *, first_only: bool = False) -> bytes:
    """``data`` with BER's indefinite lengths and segmented strings rewritten as DER.

    Java (``DerIndefLenConverter``) and OpenSSL read BER PKCS#12 files, which some
    encoders write (Bouncy Castle's, Netscape's): an element of indefinite length
    ends with two zero bytes, and a string may be sent as a constructed run of
    segments. Only constructed elements are walked; primitive contents (a
    certificate inside an OCTET STRING) are copied as they are. DER input within
    the limits is returned unchanged, after one walk of its headers.

    ``first_only``: bytes after the first element are ignored, not refused (what Java
    and OpenSSL do after a PKCS#12 file's PFX).

    Raises:
        DERError: the bytes are not one BER element, nest deeper than
            :data:`MAX_BER_DEPTH` levels, or hold more than :data:`MAX_BER_ELEMENTS`.
    """
    walk = _Walk(data)
    try:
        if walk.is_der(0, len(data), 0):
            return data
    except DERError:
        pass  # an indefinite length: rewrite below, which also checks everything
    walk.left = MAX_BER_ELEMENTS
    tag, content, stop = walk.element(0, len(data), 0)
    if stop != len(data) and not first_only:
        raise DERError("trailing bytes after the element")
    return encode(tag, content)


class _Walk:
    """One walk of a BER element, bounded in depth and in elements visited."""

    __slots__ = ("data", "left")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.left = MAX_BER_ELEMENTS

    def _visit(self, depth: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise DERError(f"more than {MAX_BER_ELEMENTS:,} BER elements in one structure")
        if depth > MAX_BER_DEPTH:
            raise DERError(f"elements nested more than {MAX_BER_DEPTH} levels deep")

    def is_der(self, start: int, end: int, depth: int) -> bool:
        """Whether ``data[start:end]`` needs no rewriting (raises on BER lengths)."""
        while start < end:
            self._visit(depth)
            tag, content, start = header(self.data, start, end)
            if tag in _SEGMENTED_STRINGS:
                return False
            if tag & 0x20 and not self.is_der(content, start, depth + 1):
                return False
        return True

    def element(self, pos: int, limit: int, depth: int) -> tuple[int, bytes, int]:
        """The element at ``pos`` as DER ``(tag, content)``, and where it ended."""
        self._visit(depth)
        data = self.data
        if pos + 2 > limit:
            raise DERError("truncated element header")
        tag = data[pos]
        if data[pos + 1] != 0x80:
            tag, start, stop = header(data, pos, limit)
            if not tag & 0x20:
                return tag, data[start:stop], stop
            parts, at = [], start
            while at < stop:
                part = self.element(at, stop, depth + 1)
                parts.append(part)
                at = part[2]
        else:  # indefinite length: elements up to the end-of-contents octets 00 00
            if not tag & 0x20:
                raise DERError("indefinite length on a primitive element")
            parts, at = [], pos + 2
            while data[at : at + 2] != b"\0\0":
                if at >= limit:
                    raise DERError("indefinite-length element without its end")
                part = self.element(at, limit, depth + 1)
                parts.append(part)
                at = part[2]
            stop = at + 2
        if tag in _SEGMENTED_STRINGS:  # segments of the primitive type, concatenated
            primitive = tag & ~0x20
            if any(part_tag != primitive for part_tag, _, _ in parts):
                raise DERError(f"a segment of tag 0x{tag:02x} is not of tag 0x{primitive:02x}")
            return primitive, b"".join(content for _, content, _ in parts), stop
        return tag, b"".join(encode(t, content) for t, content, _ in parts), stop


_P = ParamSpec("_P")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)

#: Certificates larger than this are not remembered by the caches of certificate
#: facts (real ones are 1 to 4 KiB, one naming hundreds of hosts about 10): each cache
#: then holds at most its size times this (64 MiB for 4,096), whatever files a
#: reloader is fed (20 loads of distinct 7 MiB certificates kept 143 MiB).
CACHED_BYTES = 16 * 1024


class BytesCache(Protocol[_P, _R_co]):
    """A function remembered by :func:`bytes_cache` (``cache_clear`` and
    ``cache_info`` as lru_cache's)."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...

    def cache_clear(self) -> None: ...

    def cache_info(self) -> Any: ...


def tbs_spans(der: bytes) -> list[tuple[int, int, int]]:
    """The fields of a certificate's tbsCertificate after its version, as ``(tag,
    content start, content end)`` in ``der``: nothing copied, no objects made (the
    walks on every certificate read use these)."""
    # Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    #   serialNumber, signature, issuer, validity, subject, ... } ... }
    _, start, stop = header(der)
    _, start, stop = header(der, start, stop)
    fields = spans(der, start, stop)
    return fields[1:] if fields and fields[0][0] == 0xA0 else fields


def tbs_fields(der: bytes) -> list[TLV]:
    """:func:`tbs_spans` as elements, for the rare walks that read fields whole (a
    certificate cryptography refuses, a validity OpenSSL cannot verify)."""
    return [TLV(tag, der[start:stop], stop) for tag, start, stop in tbs_spans(der)]


def bytes_cache(
    maxsize: int, *, size: Callable[..., int] | None = None
) -> Callable[[Callable[_P, _R]], BytesCache[_P, _R]]:
    """``functools.lru_cache(maxsize)`` for a function of certificate bytes, which
    calls the function without remembering when its arguments are bigger than
    :data:`CACHED_BYTES` (``size(*args)``; by default, its one argument's length):
    the cache keeps its keys, and a cache of 4,096 is bounded only if they are."""

    def decorate(func: Callable[_P, _R]) -> BytesCache[_P, _R]:
        cached: Any = functools.lru_cache(maxsize=maxsize)(func)
        plain: Any = func
        measure = size

        def one(arg: Any) -> Any:  # one argument, its length (no *args: on every read)
            return plain(arg) if len(arg) > CACHED_BYTES else cached(arg)

        def several(*args: Any) -> Any:
            return plain(*args) if measure(*args) > CACHED_BYTES else cached(*args)  # type: ignore[misc]

        made: Any = functools.wraps(func)(one if size is None else several)
        made.cache_clear, made.cache_info = cached.cache_clear, cached.cache_info
        return made  # type: ignore[no-any-return]

    return decorate


_MAX_OID_BYTES = 255


# Cached: the same few algorithm identifiers are decoded in every store read.
@functools.lru_cache(maxsize=1024)
def decode_oid(value: bytes) -> str:
    """Decode the content of an OBJECT IDENTIFIER into dotted form."""
    if not value:
        raise DERError("empty object identifier")
    if len(value) > _MAX_OID_BYTES:
        # Real ones are a few dozen bytes; a long arc costs quadratic time to decode.
        raise DERError(f"object identifier of {len(value)} bytes (at most {_MAX_OID_BYTES})")
    arcs: list[int] = []
    acc = 0
    for byte in value:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    if value[-1] & 0x80:
        raise DERError("truncated object identifier")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def decode_int(value: bytes) -> int:
    """Decode the content of an INTEGER."""
    if not value:
        raise DERError("empty integer")
    return int.from_bytes(value, "big", signed=True)


def encode(tag: int, value: bytes) -> bytes:
    """Encode one element."""
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + value


def encode_oid(dotted: str) -> bytes:
    """Encode a dotted object identifier as a complete element."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        rest = arc >> 7
        chunk = [arc & 0x7F]
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))
