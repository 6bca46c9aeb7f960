"""A minimal, strict DER reader and writer for the few ASN.1 structures we walk ourselves.

We read Java key-protection envelopes and PKCS#12 containers without pulling in an
ASN.1 library at run time (pyasn1 is only pyjks's dependency, and its error
behaviour on hostile input is not ours to promise). Every malformed input raises
:class:`DERError`, which callers translate into :class:`mtls.KeystoreFormatError`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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


def spans(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int]]:
    """The elements that fill ``data[start:end]`` exactly, as :func:`header` gives them."""
    stop = len(data) if end is None else end
    items: list[tuple[int, int, int]] = []
    while start < stop:
        item = header(data, start, stop)
        items.append(item)
        start = item[2]
    return items


def read_tlv(data: bytes, pos: int = 0) -> TLV:
    """Read one element starting at ``pos``."""
    tag, start, stop = header(data, pos)
    return TLV(tag, data[start:stop], stop)


def read_all(data: bytes) -> list[TLV]:
    """Parse a concatenation of elements that must fill ``data`` exactly."""
    items: list[TLV] = []
    pos = 0
    while pos < len(data):
        item = read_tlv(data, pos)
        items.append(item)
        pos = item.end
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


# Cached: the same few algorithm identifiers are decoded in every store read.
@functools.lru_cache(maxsize=1024)
def decode_oid(value: bytes) -> str:
    """Decode the content of an OBJECT IDENTIFIER into dotted form."""
    if not value:
        raise DERError("empty object identifier")
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
