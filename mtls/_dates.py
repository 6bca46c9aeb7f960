"""Certificate validity times: read as OpenSSL and Java read them, and judged.

What a certificate's ``notBefore``/``notAfter`` say (year 0 included, which
``datetime`` cannot hold), written in any form OpenSSL or Java reads (no seconds, a
fraction, an offset), which forms each refuses (:func:`java_refused_dates`,
:func:`unverifiable_dates`), whether a certificate is in date (:func:`out_of_date`),
and when its end is worth a warning (:class:`ExpiryThresholds`). The certificate
helpers (:mod:`mtls._x509`), the revocation answers and the expiry watch share them.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeVar

from . import _der

if TYPE_CHECKING:
    from cryptography import x509

_T = TypeVar("_T")


#: Year 0, which GeneralizedTime can carry and OpenSSL and Java read, as Python's
#: earliest time: ``datetime`` cannot hold it, and cryptography raises ValueError where
#: it would make one (a certificate's, a CRL's or an OCSP answer's time). A notBefore
#: of year 0 is a start long past, a notAfter an end long past, as they are to OpenSSL;
#: read as a crash, one such anchor in a truststore stopped the expiry watch of a whole
#: set and made status() raise (h202).
YEAR_ZERO: Final = _dt.datetime.min.replace(tzinfo=_dt.UTC)


def utc_time(read: Callable[[], _T]) -> _T | _dt.datetime:
    """``read()`` (a cryptography ``*_utc`` property, read in a lambda), with year 0 as
    :data:`YEAR_ZERO`."""
    try:
        return read()
    except ValueError:  # "year 0 is out of range": the one time datetime cannot hold
        return YEAR_ZERO


def not_after(cert: x509.Certificate) -> _dt.datetime:
    """The end of validity, timezone-aware (UTC); year 0 as :data:`YEAR_ZERO`."""
    try:
        return cert.not_valid_after_utc
    except ValueError:  # year 0
        return YEAR_ZERO


def not_before(cert: x509.Certificate) -> _dt.datetime:
    """The start of validity, timezone-aware (UTC); year 0 as :data:`YEAR_ZERO`."""
    try:
        return cert.not_valid_before_utc
    except ValueError:  # year 0
        return YEAR_ZERO


Validity = Literal["never valid", "expired", "not valid yet"]


def out_of_date(
    starts: _dt.datetime | None, ends: _dt.datetime | None, now: _dt.datetime
) -> Validity | None:
    """Why a certificate's dates make peers refuse it at ``now`` (``None``: in date, or
    no dates known). Never valid first (notBefore after notAfter: "expired" would say
    "rotate" of a certificate just issued, where it must be reissued), then expired,
    then not valid yet."""
    if starts is not None and ends is not None and starts > ends:
        return "never valid"
    if ends is not None and ends < now:
        return "expired"
    if starts is not None and starts > now:
        return "not valid yet"
    return None


def telling_thresholds(
    thresholds: tuple[_dt.timedelta, ...],
    starts: _dt.datetime | None,
    ends: _dt.datetime,
) -> tuple[_dt.timedelta, ...]:
    """The expiry warnings (widest first) that say something of a certificate valid
    from ``starts`` to ``ends``: those under a third of its validity. A wider one is
    crossed before a renewal at two thirds of its life (cert-manager's default; half,
    SPIFFE's) is due, at every rotation: the default 30, 7 and 1 days warned of a
    one-hour certificate from the moment it was issued and signalled on_health each
    time (h190), and a threshold of half its validity still did before each renewal
    (h195). When none is under a third, a warning comes with a sixth of its validity
    left, when such a renewal is overdue. Unknown or inverted dates keep
    ``thresholds``.
    """
    if starts is None or not thresholds:
        return thresholds
    third = (ends - starts) / 3
    if third <= _dt.timedelta(0) or thresholds[0] < third:
        return thresholds
    return tuple(t for t in thresholds if t < third) or (third / 2,)


@dataclass(frozen=True, slots=True)
class ExpiryThresholds:
    """How close to its end a certificate in use is warned of: ``spans``, widest first.

    ``relative``: judged by each certificate's validity (:func:`telling_thresholds`),
    as the default thresholds are (however given); others a user gave are taken as
    given (they may know their renewals come early).
    """

    spans: tuple[_dt.timedelta, ...]
    relative: bool = True

    def of(self, starts: _dt.datetime | None, ends: _dt.datetime) -> tuple[_dt.timedelta, ...]:
        """The thresholds for a certificate valid from ``starts`` to ``ends``."""
        return telling_thresholds(self.spans, starts, ends) if self.relative else self.spans


# What OpenSSL and Java read in a validity field that DER (and so cryptography) does
# not allow: UTCTime without seconds or with an offset, GeneralizedTime with a fraction
# or an offset (X.680; RFC 5280 asks for seconds and Z, and old CAs did not always).
_UTC_TIME = re.compile(rb"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(Z|[+-]\d{4})")
_GENERALIZED_TIME = re.compile(
    rb"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(?:(\d\d)(?:[.,](\d{1,9}))?)?(Z|[+-]\d{4})"
)


def lenient_time(tlv: _der.TLV) -> _dt.datetime:
    """A UTCTime or GeneralizedTime in any form OpenSSL and Java read (no seconds, a
    fraction, an offset; year 0 as :data:`YEAR_ZERO`), in UTC.

    Raises:
        ValueError: another tag or form, or a date that does not exist.
    """
    if tlv.tag not in (0x17, 0x18):
        raise ValueError(f"a validity time with tag {tlv.tag:#x}")
    utc = tlv.tag == 0x17
    match = (_UTC_TIME if utc else _GENERALIZED_TIME).fullmatch(tlv.value)
    if match is None:
        raise ValueError("a validity time OpenSSL would not read either")
    if utc:
        short, month, day, hour, minute, second, zone = match.groups()
        year = int(short) + (1900 if int(short) >= 50 else 2000)  # RFC 5280 4.1.2.5.1
        fraction = None
    else:
        full, month, day, hour, minute, second, fraction, zone = match.groups()
        year = int(full)
        if year == 0:  # a leap year, as 2000 is: a date that does not exist raises
            fields = (int(month), int(day), int(hour), int(minute), int(second or 0))
            _dt.datetime(2000, *fields, tzinfo=_dt.UTC)
            return YEAR_ZERO
    try:
        when = _dt.datetime(
            year, int(month), int(day), int(hour), int(minute), int(second or 0),
            int((fraction or b"0").ljust(6, b"0")[:6]), tzinfo=_dt.UTC,
        )  # fmt: skip
        if zone != b"Z":  # hhmm east of UTC: UTC is that much earlier
            hours, minutes = int(zone[1:3]), int(zone[3:5])
            if hours > 12 or minutes > 59:  # as OpenSSL refuses them
                raise ValueError("a time zone offset out of range")
            offset = _dt.timedelta(hours=hours, minutes=minutes)
            when = when - offset if zone[:1] == b"+" else when + offset
    except OverflowError:  # 9999-12-31 with a negative offset: past datetime's range
        raise ValueError("a validity time out of range") from None
    return when


def any_time(time: _der.TLV) -> _dt.datetime | None:
    """A validity time as OpenSSL reads it (:func:`lenient_time`), else as Java does
    (:func:`java_time`: an offset past 12 hours, a fraction of 10 digits or more, 30
    February): the expiry watch and status() went blind on those (h205); an OCSP
    answer's times are read so too. ``None``: neither reads it."""
    try:
        return lenient_time(time)
    except ValueError:
        if time.tag not in (0x17, 0x18):
            return None
        return java_time(time.value, generalized=time.tag == 0x18)


def _time_shown(field: str, time: _der.TLV) -> str:
    kind = "UTCTime" if time.tag == 0x17 else "GeneralizedTime"
    return f"its {field} ({kind} {time.value.decode('ascii', 'replace')!r})"


def java_refused_dates(der: bytes) -> str | None:
    """Why Java's certificate parser refuses ``der``'s validity, in words, or ``None``:
    a time :func:`java_time` does not read (a leap second, an hour 24, a month 13, an
    offset without seconds, a lowercase ``z``, an empty fraction...). keytool says
    "Failed to parse input", and a JKS or PKCS#12 store holding it fails to load whole
    in Java (keytool, WSO2), PKCS#12 as "keystore password was incorrect". A day its
    month lacks (30 February) is the next month's to Java (OpenSSL refuses it:
    :func:`unverifiable_dates`); a fraction and an offset it reads (checked with keytool
    17 and 25 over 40 forms, h202, h204, h205)."""
    try:
        validity = _der.tbs_fields(der)[3].expect(_der.SEQUENCE).children()
    except (ValueError, IndexError):
        return None
    for field, time in zip(("notBefore", "notAfter"), validity, strict=False):
        if time.tag in (0x17, 0x18) and java_time(time.value, generalized=time.tag == 0x18) is None:
            return f"{_time_shown(field, time)} is not a time Java reads"
    return None


def java_time(value: bytes, *, generalized: bool) -> _dt.datetime | None:
    """The time Java's DER reader (``DerInputBuffer.getTime``, JDK 17 and 25) makes of a
    UTCTime or GeneralizedTime value, in UTC, or ``None`` where it throws, step for
    step: ``YYMMDDhhmm`` (four-digit year for GeneralizedTime), seconds when more than
    two characters follow, a fraction (GeneralizedTime only, ``.`` or ``,``, at least
    one digit), ranges checked (a day up to 31 in any month, rolled over as Java's
    lenient calendar does), then ``Z`` alone or ``+hhmm``/``-hhmm`` under 24 hours and
    60 minutes. Year 0 is :data:`YEAR_ZERO`."""
    try:
        text = value.decode("ascii")
        length, pos = len(text), 0

        def digits(count: int) -> int:
            nonlocal pos
            chunk = text[pos : pos + count]
            if len(chunk) != count or not chunk.isdigit() or not chunk.isascii():
                raise ValueError(chunk)
            pos += count
            return int(chunk)

        if generalized:
            year = digits(4)
            length -= 2
        else:
            year = digits(2)
            year += 2000 if year < 50 else 1900
        month, day, hour, minute = digits(2), digits(2), digits(2), digits(2)
        length -= 10
        second, micros = 0, 0
        if length > 2:
            second = digits(2)
            length -= 2
            if generalized and text[pos] in ".,":
                length -= 1
                pos += 1
                fraction = ""
                while text[pos] not in "Z+-":
                    fraction += str(digits(1))
                    length -= 1
                    if length == 0:
                        return None
                if not fraction:
                    return None
                micros = int(fraction[:3].ljust(3, "0")) * 1000  # milliseconds, as Java keeps
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
            return None
        if length not in (1, 5):
            return None
        zone = text[pos]
        pos += 1
        offset = _dt.timedelta(0)
        if zone in "+-":
            if length != 5:
                return None
            hours, minutes = digits(2), digits(2)
            if hours >= 24 or minutes >= 60:
                return None
            offset = _dt.timedelta(hours=hours, minutes=minutes) * (1 if zone == "+" else -1)
        elif zone != "Z" or length != 1:
            return None
        if year == 0:
            return YEAR_ZERO
        start = _dt.datetime(year, month, 1, tzinfo=_dt.UTC)
        return (
            start
            + _dt.timedelta(
                days=day - 1, hours=hour, minutes=minute, seconds=second, microseconds=micros
            )
            - offset
        )
    except (ValueError, IndexError, UnicodeDecodeError, OverflowError):
        return None


_STRICT_TIMES: Final = {0x17: re.compile(rb"\d{12}Z"), 0x18: re.compile(rb"\d{14}Z")}


def der_time(time: _der.TLV) -> _dt.datetime:
    """A UTCTime or GeneralizedTime in DER's own form (``YYMMDDHHMMSSZ``,
    ``YYYYMMDDHHMMSSZ``), the only one OpenSSL's verifier reads.

    Raises:
        ValueError: another tag or form, or a date that does not exist.
    """
    strict = _STRICT_TIMES.get(time.tag)
    if strict is None or strict.fullmatch(time.value) is None:
        raise ValueError("not a time in DER's form")
    return lenient_time(time)


def unverifiable_dates(der: bytes) -> str | None:
    """Why OpenSSL's verification refuses every chain through this certificate for the
    form of its dates, or ``None``. OpenSSL reads a validity time without seconds,
    with a fraction or an offset when it loads or prints a certificate, but its
    verifier takes only DER's forms (``YYMMDDHHMMSSZ``, ``YYYYMMDDHHMMSSZ``): such a
    certificate fails every handshake as an anchor, a peer's or one's own ("format
    error in certificate's notBefore field"), while Java may take it."""
    try:
        validity = _der.tbs_fields(der)[3].expect(_der.SEQUENCE).children()
    except (ValueError, IndexError):
        return None
    for field, time in zip(("notBefore", "notAfter"), validity, strict=False):
        strict = _STRICT_TIMES.get(time.tag)
        if strict is None:
            continue
        if strict.fullmatch(time.value) is None:
            return (
                f"{_time_shown(field, time)} is not in the form OpenSSL verifies "
                f"({'YYMMDDHHMMSSZ' if time.tag == 0x17 else 'YYYYMMDDHHMMSSZ'})"
            )
        try:
            lenient_time(time)  # in DER's form: only a date that does not exist raises
        except ValueError:
            # A leap second, an hour 24, 30 February: "format error in certificate's
            # notAfter field" (year 0 OpenSSL 3.0 reads and verifies).
            return f"{_time_shown(field, time)} is not a date that exists"
    return None


def refused_dates(der: bytes) -> str | None:
    """Why every TLS peer refuses certificate ``der`` for its validity, or ``None``: a
    time Java's parser does not read (:func:`java_refused_dates`: a leap second, an
    hour 24, a month 13) is no date that exists either, which OpenSSL's verifier
    refuses ("format error in certificate's notAfter field"; :func:`unverifiable_dates`
    says how it is written)."""
    if java_refused_dates(der) is None:
        return None
    return unverifiable_dates(der)
