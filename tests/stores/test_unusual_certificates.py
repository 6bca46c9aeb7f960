"""The quick pre-checks that decide whether a certificate is read under the warnings
guard (mtls._x509._unusual; the serial number's alone for the dates): whatever they
let through must read without a warning from cryptography. A warning they missed
would reach the application's warnings filters (an error under ``-W error``, or
pytest's ``filterwarnings = error``)."""

from __future__ import annotations

import contextlib
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mtls import _der, _x509
from mtls.testing import CA

# country, common name, jurisdiction country (limits), organization (none), and the
# string types a name may hold, with a few that it may not.
_OIDS = ["2.5.4.6", "2.5.4.3", "1.3.6.1.4.1.311.60.2.1.3", "2.5.4.10"]
_TAGS = [0x0C, 0x13, 0x16, 0x12, 0x14, 0x1A, 0x1C, 0x1E, 0x03, 0x04]


def _name(attributes: list[tuple[str, int, bytes]]) -> bytes:
    rdns = b"".join(
        _der.encode(
            _der.SET, _der.encode(_der.SEQUENCE, _der.encode_oid(oid) + _der.encode(tag, value))
        )
        for oid, tag, value in attributes
    )
    return _der.encode(_der.SEQUENCE, rdns)


_TEMPLATE = CA().issue_cert("leaf.test").certificate.public_bytes(Encoding.DER)


_ATTRIBUTE = st.tuples(
    st.sampled_from(_OIDS),
    st.one_of(st.sampled_from([0x0C, 0x13]), st.sampled_from(_TAGS)),
    st.one_of(
        st.text("abcXYZ019 ", max_size=70).map(str.encode),  # what PrintableString takes
        st.text("US", min_size=1, max_size=3).map(str.encode),  # a country, or nearly
        st.binary(max_size=70),
        st.text(max_size=70).map(str.encode),
    ),
)


def _certificate(serial: int, issuer: bytes, subject: bytes) -> bytes:
    der = _TEMPLATE
    spans = _x509._tbs_spans(der)

    def whole(index: int) -> bytes:  # the field with its header, as written
        tag, start, stop = spans[index]
        return _der.encode(tag, der[start:stop])

    length = max(1, (serial.bit_length() + 8) // 8)
    fields = [
        _der.encode(0xA0, _der.encode(_der.INTEGER, b"\x02")),
        _der.encode(_der.INTEGER, serial.to_bytes(length, "big", signed=True)),
        whole(1),
        issuer,
        whole(3),
        subject,
        whole(5),
    ]
    tbs = _der.encode(_der.SEQUENCE, b"".join(fields))
    return _der.encode(_der.SEQUENCE, tbs + whole(1) + _der.encode(_der.BIT_STRING, b"\x00\x01"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    serial=st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([0, -1, 1, 2**159])),
    issuer=st.lists(_ATTRIBUTE, min_size=1, max_size=3),
    subject=st.lists(_ATTRIBUTE, max_size=3),
)
def test_what_the_pre_check_lets_through_reads_without_a_warning(
    serial: int, issuer: list[tuple[str, int, bytes]], subject: list[tuple[str, int, bytes]]
) -> None:
    der = _certificate(serial, _name(issuer), _name(subject))
    unusual = _x509._unusual.__wrapped__(der)  # type: ignore[attr-defined]
    # The dates alone (every context build reads them) are read without a warning too.
    with warnings.catch_warnings(record=True) as dated:
        warnings.simplefilter("always")
        _x509._unusual.cache_clear()
        with contextlib.suppress(ValueError):  # refused, in load_cert's words
            assert _x509.validity(der)[0] < _x509.validity(der)[1]
    assert not dated, [str(w.message) for w in dated]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cert = x509.load_der_x509_certificate(der)
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
        except (ValueError, TypeError):
            event("cryptography refuses it")
            return
    event(f"warned={bool(caught)} unusual={unusual}")
    if caught:
        assert unusual, f"{[str(w.message) for w in caught]} slipped past the pre-check"
    # And load_cert, which uses the pre-check, lets nothing through either.
    with warnings.catch_warnings(record=True) as through:
        warnings.simplefilter("always")
        _x509._unusual.cache_clear()
        _x509.load_cert(der).subject.rfc4514_string()
    assert not through, [str(w.message) for w in through]


def test_the_pre_check_tells_a_usual_certificate_from_an_unusual_one() -> None:
    usual = _TEMPLATE
    assert _x509._unusual.__wrapped__(usual) is False  # type: ignore[attr-defined]
    zero_serial = _certificate(0, _name([("2.5.4.3", 0x0C, b"ca")]), _name([]))
    long_cn = _certificate(5, _name([("2.5.4.3", 0x0C, b"x" * 65)]), _name([]))
    bmp_country = _certificate(5, _name([("2.5.4.6", 0x1E, b"\x00U\x00S")]), _name([]))
    for der in (zero_serial, long_cn, bmp_country):
        assert _x509._unusual.__wrapped__(der) is True  # type: ignore[attr-defined]
