"""What an answer to a revocation question says, and whether to believe it.

The online check (:mod:`mtls._revocation`) asks a responder or downloads a CRL; this
module reads what came back. For OCSP: the request (its CertID written as OpenSSL and
Java write it), the response's parse, its signer (the CA itself or a certificate the CA
delegated with ``OCSPSigning``), its signature and the answer for our certificate,
with the dates read from the DER as written (strict ``GeneralizedTime``). For a CRL:
signed by the certificate's issuer, no critical extension left unhandled, in scope
(not a delta, an indirect or a partial list), and the entry for a serial. For both:
whether an answer is current now (:data:`CLOCK_SKEW`, Java's), and until when a
current one stands. Pure functions: no fetching, no caching, no policy.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    ExtendedKeyUsageOID,
    SignatureAlgorithmOID,
)

from . import _dates, _der, _x509
from ._crl import (
    _crl_signed_by,
    _extension,
    _issued_by,
    _verify_signature,
    critical_entry_extension,
    pss_parameters,
)
from ._fetch import FetchError
from ._fetch import without_userinfo as _without_userinfo

#: Clock skew allowed between us and a responder or CRL issuer: Java's (the JDK's
#: ``jdk.security.certpath.ocspClockSkew`` default, and its RevocationChecker's
#: ``MAX_CLOCK_SKEW`` for CRLs), which WSO2's gateway runs with (h142: 5 minutes refused
#: answers Java takes).
CLOCK_SKEW = _dt.timedelta(minutes=15)


# The CertID hash every responder knows (RFC 6960 4.1.1; it names, it does not sign).
_CERT_ID_HASH = hashes.SHA1()  # noqa: S303


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPRequest:
    """The OCSP request for ``cert``, its CertID naming the issuer by the hash of the
    issuer certificate's own subject, as OpenSSL (``OCSP_cert_to_id``) and Java
    (``CertId``) write it and responders find their CA by it. cryptography hashes the
    issuer name as ``cert`` writes it: the same bytes, unless the CA's name is written
    otherwise there (another case or string type: :func:`_x509.same_name`), which a
    responder answered "unauthorized"."""
    asked = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, _CERT_ID_HASH).build()
    names = _x509.raw_names(issuer.public_bytes(serialization.Encoding.DER))
    if names is None:
        return asked
    digest = hashes.Hash(_CERT_ID_HASH)
    digest.update(_der.encode(_der.SEQUENCE, names[1]))
    name_hash = digest.finalize()
    if name_hash == asked.issuer_name_hash:
        return asked  # the usual certificate: its issuer written as the issuer's subject
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            name_hash, asked.issuer_key_hash, cert.serial_number, _CERT_ID_HASH
        )
        .build()
    )


def why_stale(
    this_update: _dt.datetime,
    next_update: _dt.datetime | None,
    now: _dt.datetime,
    what: str,
) -> str | None:
    """Why an answer dated ``this_update``/``next_update`` is not current now (beyond
    :data:`CLOCK_SKEW`), or None. Without nextUpdate an answer speaks for its
    thisUpdate only (RFC 6960 4.2.2.1 for OCSP; RFC 5280 5.1.2.5 makes nextUpdate a
    MUST for CRLs, and Java refuses a list without one): an old one is a replay (CRLs
    travel over plain http) or a stale cache, never today's status (h142)."""
    if this_update > now + CLOCK_SKEW:
        return f"the {what} is dated in the future (thisUpdate {this_update.isoformat()})"
    if next_update is not None and next_update < now - CLOCK_SKEW:
        if what == "CRL":
            return f"the CRL expired on {next_update.isoformat()} (nextUpdate)"
        return f"the {what} is stale (nextUpdate {next_update.isoformat()})"
    if next_update is None and this_update < now - CLOCK_SKEW:
        return f"the {what} is stale (thisUpdate {this_update.isoformat()} and no nextUpdate)"
    return None


def current_until(
    this_update: _dt.datetime,
    next_update: _dt.datetime | None,
    now: _dt.datetime,
    cache_delay: float,
) -> _dt.datetime:
    """Until when a current answer stands: its nextUpdate; for one already past it
    (within the clock skew allowed, so taken) the end of that skew: it was fetched
    again on every check (h143). Without nextUpdate, ``cache_delay`` but no longer than
    :func:`why_stale` takes it (its thisUpdate and the clock skew): a cached answer was
    used 15 minutes past that, which a fresh fetch of the same answer refused (h202).
    The cache's own bound, ``cache_delay``, applies on top."""
    if next_update is None:
        return min(now + _dt.timedelta(seconds=cache_delay), this_update + CLOCK_SKEW)
    return next_update if next_update > now else next_update + CLOCK_SKEW


# certificateIssuer (RFC 5280 5.3.3) as its OID is written: a list without these bytes
# names no other issuer, and its entries are all its issuer's.
_CERTIFICATE_ISSUER: Final = _der.encode_oid("2.5.29.29")


def listed(crl: x509.CertificateRevocationList, serial: int) -> x509.RevokedCertificate | None:
    """The entry of ``crl`` for ``serial``, a certificate of the list's own issuer. A
    negative serial (RFC 5280 4.1.2.2: users SHOULD handle one; Java and OpenSSL do)
    made cryptography's lookup raise, and the list was called malformed (h142): it is
    looked for entry by entry.

    An entry with a certificateIssuer extension, and every entry after it up to the
    next one, lists the certificates of the CA it names (RFC 5280 5.3.3): Java's CRL and
    OpenSSL's lookup match the issuer and the serial, and a certificate of another CA
    with the same serial was revoked here (h230). The CA is the extension's first name,
    as Java reads it. When that is no directory name (Java cannot read such a list), or
    an entry's extensions cannot be read, the issuer of the entries after it is not
    known: a serial found is revoked (fails closed; h236)."""
    try:
        found = crl.get_revoked_certificate_by_serial_number(serial)
    except ValueError:
        found = next((entry for entry in crl if entry.serial_number == serial), None)
    if found is None or _CERTIFICATE_ISSUER not in crl.tbs_certlist_bytes:
        return found
    own = True  # the entries before any certificateIssuer are the list issuer's
    for entry in crl:
        try:
            names = entry.extensions.get_extension_for_class(x509.CertificateIssuer).value
        except x509.ExtensionNotFound:
            pass
        except (ValueError, x509.DuplicateExtension):
            return found
        else:
            first = next(iter(names), None)
            if not isinstance(first, x509.DirectoryName):
                return found
            own = _x509.same_name(first.value, crl.issuer)
        if own and entry.serial_number == serial:
            return entry
    return None


def check_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate, url: str) -> None:
    """Refuse a downloaded list that is not a complete list signed by ``issuer``.

    Its dates are judged by the caller (:func:`why_stale`), at each use of a cached list.

    Raises:
        FetchError: a delta CRL (RFC 5280 5.2.4: it lists only changes since a
            base list, so a serial absent from it says nothing), another signer.
    """
    if _extension(crl, x509.DeltaCRLIndicator) is not None:
        raise FetchError(f"{url}: a delta CRL (DeltaCRLIndicator), not a complete list; not used")
    if not _x509.same_name(crl.issuer, issuer.subject) or not _crl_signed_by(crl, issuer):
        raise FetchError(
            f"{url}: the CRL is not signed by the issuer {issuer.subject.rfc4514_string()}"
        )


# What the CRL check processes when it is critical: the IssuingDistributionPoint (the
# list's scope), as Java's checker (DistributionPointFetcher.verifyCRL removes it alone
# from the critical extensions; any other left makes the list unusable: RFC 5280 5.2
# and 5.3). A critical CRLNumber, AuthorityKeyIdentifier, IssuerAlternativeName,
# AuthorityInformationAccess or FreshestCRL (a list whose deltas must be read with it,
# which this check never fetches) made the list an answer here and none in Java (h228).
# A DeltaCRLIndicator is refused with its own words (a delta CRL is not used).
# CertificateIssuer (a critical entry extension) is not judged here: :func:`listed`
# reads it, to find the certificate's own entry.
_CRL_EXTENSIONS_HANDLED = (x509.IssuingDistributionPoint, x509.DeltaCRLIndicator)


def unhandled_critical(crl: x509.CertificateRevocationList) -> str | None:
    """The OID of a critical extension of ``crl`` that the check does not process, or
    ``None``. Entries' critical extensions are not judged, as in Java's checker: one
    on another certificate's entry does not make the list unusable, and a certificate
    listed is revoked whatever its entry carries (Java refuses it in both modes too:
    h229; mtls made the list no answer, which soft-fail passed). The entries are read,
    and a list with an entry that has an extension twice or a CRLReason that is not an
    ENUMERATED is refused, as Java's parser refuses it (other values of other entries
    that Java cannot decode, say a certificateIssuer that is no GeneralNames, are not
    looked at: Java refuses such a list, mtls uses it, h230).

    Raises:
        ValueError: such entries.
    """
    for ext in crl.extensions:
        if ext.critical and not isinstance(ext.value, _CRL_EXTENSIONS_HANDLED):
            return str(ext.oid.dotted_string)
    critical_entry_extension(crl, frozenset(), judge=False)
    return None


def crl_scope(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> str | None:
    """Why ``crl`` cannot speak for ``cert`` (its IssuingDistributionPoint scope,
    RFC 5280 5.2.5), or ``None`` when it covers every reason for certificates like it."""
    idp = _extension(crl, x509.IssuingDistributionPoint)
    if idp is None:
        return None
    constraints = _extension(cert, x509.BasicConstraints)
    is_ca = constraints is not None and constraints.ca
    if idp.indirect_crl:
        return "an indirect CRL (IssuingDistributionPoint indirectCRL); not used"
    if idp.only_contains_attribute_certs:
        return "a CRL of attribute certificates only; not used"
    if idp.only_contains_ca_certs and not is_ca:
        return "a CRL of CA certificates only, and this certificate is not a CA"
    if idp.only_contains_user_certs and is_ca:
        return "a CRL of end-entity certificates only, and this certificate is a CA"
    if idp.only_some_reasons is not None:
        return "a partial CRL (IssuingDistributionPoint onlySomeReasons); not used"
    if idp.full_name is not None:
        named = {
            name.value
            for point in _extension(cert, x509.CRLDistributionPoints) or ()
            for name in point.full_name or ()
            if isinstance(name, x509.UniformResourceIdentifier)
        }
        scope = {n.value for n in idp.full_name if isinstance(n, x509.UniformResourceIdentifier)}
        if not named & scope:
            return (
                "the CRL's IssuingDistributionPoint names another distribution point "
                f"({', '.join(sorted(map(_without_userinfo, scope))) or 'not a URL'}) than "
                "the certificate's"
            )
    return None


def ocsp_unsigned(
    response: ocsp.OCSPResponse,
    issuer: x509.Certificate,
    now: _dt.datetime,
    signed: bytes | None = None,
) -> str | None:
    """``None`` if the response is signed by ``issuer`` or by a responder it delegated
    to; else why not, in words (the operator's fix differs: a responder certificate that
    expired is renewed, one without the OCSP-signing usage is reissued, a foreign
    signer is a misconfigured or forged responder). ``signed``: the bytes the
    signature covers, when they are not the response's own (:func:`load_ocsp`)."""
    issuer_key_id = x509.SubjectKeyIdentifier.from_public_key(_x509.public_key(issuer)).digest
    why = "no certificate in it, nor the issuer, is the responder it names"
    for signer in [issuer, *response.certificates]:
        by_name = response.responder_name is not None and _x509.same_name(
            response.responder_name, signer.subject
        )
        key_id = x509.SubjectKeyIdentifier.from_public_key(_x509.public_key(signer)).digest
        by_key = response.responder_key_hash is not None and response.responder_key_hash == key_id
        if not (by_name or by_key):
            continue
        name = signer.subject.rfc4514_string()
        if key_id != issuer_key_id:
            # A delegated responder: issued by the issuer, for OCSP signing, valid now.
            eku = _extension(signer, x509.ExtendedKeyUsage)
            if not _issued_by(signer, issuer):
                why = f"its responder certificate {name} is not issued by that issuer"
                continue
            if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                why = f"its responder certificate {name} lacks the OCSP-signing usage"
                continue
            starts, ends = _dates.not_before(signer), _dates.not_after(signer)
            if not starts <= now <= ends:
                ended = ends < now
                when = ends if ended else starts
                why = (
                    f"its responder certificate {name} "
                    f"{'expired' if ended else 'is not valid until'} {when:%Y-%m-%d %H:%M} UTC: "
                    "the responder's certificate needs renewing"
                )
                continue
        if _verify_signature(
            _x509.public_key(signer),
            response.signature,
            response.tbs_response_bytes if signed is None else signed,
            *_ocsp_signature(response),
        ):
            return None
        why = f"its signature does not verify with the key of {name}"
    return why


def answer_times(single: Any) -> tuple[_dt.datetime, _dt.datetime | None]:
    """An OCSP answer's ``(thisUpdate, nextUpdate)``, year 0 as :data:`mtls._dates.YEAR_ZERO`."""
    return (
        _dates.utc_time(lambda: single.this_update_utc),
        _dates.utc_time(lambda: single.next_update_utc),
    )


def ocsp_single(
    response: ocsp.OCSPResponse,
    cert: x509.Certificate,
    wanted: ocsp.OCSPRequest,
    url: str,
    now: _dt.datetime,
) -> ocsp.OCSPSingleResponse:
    """The response's current answer about ``cert``. Several current ones that disagree
    (a responder's fault: it takes its key) are read to fail closed: "revoked" if one
    says so (OpenSSL takes the first answer, Java the last: one of them let a revoked
    certificate through, h198), and no answer at all for "good" beside "unknown". An
    answer out of its dates is none, whatever it says (a stale copy beside a current
    "revoked" hid it, h199).

    Raises:
        FetchError: no current answer about ``cert``, or "good" and "unknown" both.
    """
    found = [
        single
        for single in response.responses
        if single.serial_number == cert.serial_number
        and single.issuer_name_hash == wanted.issuer_name_hash
        and single.issuer_key_hash == wanted.issuer_key_hash
    ]
    if not found:
        raise FetchError(f"{url}: the response is about another certificate")
    judged = [(single, why_stale(*answer_times(single), now, "response")) for single in found]
    current = [single for single, stale in judged if stale is None]
    if not current:
        # Not an answer, "revoked" included, as Java's checker has it ("unreliable",
        # then the CRL): RFC 6960 makes the reason optional, so an old "revoked" may
        # be a hold released since, and a replay of one would refuse a good backend.
        raise FetchError(f"{url}: {judged[0][1]}")
    said = {single.certificate_status for single in current}
    if len(said) == 1:
        return current[0]
    for single in current:
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return single
    raise FetchError(
        f"{url}: the response answers both good and unknown for this certificate: no answer"
    )


_GENERALIZED_TIME: Final = 0x18


def ocsp_critical(data: bytes) -> str | None:
    """The OID of a critical extension of the OCSP response ``data`` (its
    responseExtensions, or the singleExtensions of any of its answers), or ``None``.
    Java's OCSPResponse processes none: a critical one, the nonce included, makes the
    response no answer there ("Unsupported OCSP critical extension"), and so here
    (h228, h229: mtls believed such answers). Read from the DER, every answer's, where
    cryptography gives the extensions of a one-answer response only.

    Raises:
        DERError: not a basic OCSP response.
    """
    _, _, basic = _basic_response(data)
    tbs = _der.spans(data, basic[0][1], basic[0][2])
    # version [0]?, responderID ([1] or [2]), producedAt, responses, [1] extensions?
    produced = next((i for i, item in enumerate(tbs) if item[0] == _GENERALIZED_TIME), None)
    if produced is None or produced + 1 >= len(tbs) or tbs[produced + 1][0] != _der.SEQUENCE:
        raise _der.DERError("a basic OCSP response without its responses")
    found = _critical_in(data, tbs[produced + 2 :])
    if found is not None:
        return found
    _, start, end = tbs[produced + 1]
    for _, single_start, single_end in _der.spans(data, start, end):
        # certID, certStatus ([1] when revoked), thisUpdate, [0] nextUpdate?, [1] extensions?
        single = _der.spans(data, single_start, single_end)
        this = next((i for i, item in enumerate(single) if item[0] == _GENERALIZED_TIME), None)
        if this is None:
            raise _der.DERError("an OCSP answer without its thisUpdate")
        found = _critical_in(data, single[this + 1 :])
        if found is not None:
            return found
    return None


def _critical_in(data: bytes, fields: list[tuple[int, int, int]]) -> str | None:
    """The OID of the first critical extension in the ``[1] EXPLICIT Extensions`` among
    ``fields``, or ``None``."""
    for tag, start, end in fields:
        if tag != 0xA1:
            continue
        for _, ext_start, ext_end in _der.spans(
            data, *_der.single_span(data, _der.SEQUENCE, start, end)
        ):
            # Extension: extnID, critical BOOLEAN DEFAULT FALSE, extnValue
            parts = _der.spans(data, ext_start, ext_end)
            if not parts or parts[0][0] != _der.OID:
                raise _der.DERError("an extension without its identifier")
            critical = len(parts) > 2 and parts[1][0] == _der.BOOLEAN
            if critical and data[parts[1][1] : parts[1][2]] != b"\x00":
                return _der.decode_oid(data[parts[0][1] : parts[0][2]])
    return None


def _ocsp_signature(
    response: ocsp.OCSPResponse,
) -> tuple[hashes.HashAlgorithm | None, padding.PSS | None]:
    """The hash the response is signed with and, for RSASSA-PSS, the padding its
    parameters give (cryptography reads none of an OCSP response's: a PSS-signed
    answer, which OpenSSL's responder writes with ``-rsigopt rsa_padding_mode:pss``
    and Java verifies, was refused as malformed, h198).

    Raises:
        UnsupportedAlgorithm, ValueError: a signature algorithm cryptography does not
            know, or damaged parameters (a malformed answer).
    """
    if response.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS:
        return response.signature_hash_algorithm, None
    der = response.public_bytes(serialization.Encoding.DER)
    basic = _basic_response(der)[-1]
    if len(basic) < 3 or basic[1][0] != _der.SEQUENCE:
        raise _der.DERError("a basic OCSP response without its signature algorithm")
    pss, digest = pss_parameters(der, *basic[1][1:])
    return digest, pss


_Spans = list[tuple[int, int, int]]


def _basic_response(der: bytes) -> tuple[_Spans, _Spans, _Spans]:
    """The elements (``(tag, content start, content end)``) of an OCSP response, of its
    responseBytes, and of the BasicOCSPResponse inside them, walked by offsets.

    Raises:
        DERError: another structure.
    """
    # OCSPResponse: status, [0] { SEQUENCE { responseType, OCTET STRING { Basic } } };
    # BasicOCSPResponse: tbsResponseData, signatureAlgorithm, signature, [0] certs.
    top = _der.spans(der, *_der.single_span(der, _der.SEQUENCE))
    if len(top) != 2 or top[1][0] != 0xA0:
        raise _der.DERError("an OCSP response without its response bytes")
    response_bytes = _der.spans(der, *_der.single_span(der, _der.SEQUENCE, *top[1][1:]))
    if len(response_bytes) != 2 or response_bytes[1][0] != _der.OCTET_STRING:
        raise _der.DERError("an OCSP response without its response bytes")
    basic = _der.spans(der, *_der.single_span(der, _der.SEQUENCE, *response_bytes[1][1:]))
    if not basic or basic[0][0] != _der.SEQUENCE:
        raise _der.DERError("a basic OCSP response without its tbsResponseData")
    return top, response_bytes, basic


def load_ocsp(data: bytes) -> tuple[ocsp.OCSPResponse, bytes | None]:
    """The OCSP response in ``data``, and the bytes its signature covers when they are
    not the parsed response's own (``None``).

    A GeneralizedTime with fractions of a second in its tbsResponseData (producedAt,
    thisUpdate, nextUpdate, revocationTime) is DER (X.690 11.7) that RFC 5280's profile
    forbids; cryptography refuses it, while OpenSSL and Java verify such answers (Bouncy
    Castle for .NET writes them, bc-csharp#474). It was "not an OCSP response", and in
    hard-fail a good backend was refused (h202); so was one with an offset or without
    seconds, which OpenSSL reads too (h204), and one that writes out a DEFAULT value
    (its version v1, an extension's critical FALSE: Java reads them, h230). Such a
    response is read with each time written as DER writes it (in UTC, a fraction cut:
    up to a second earlier) and those values left out, and its signature verified over
    the bytes as the responder signed them.

    Raises:
        ValueError: not an OCSP response cryptography reads, its times made DER's or not.
    """
    try:
        return ocsp.load_der_ocsp_response(data), None
    except ValueError:
        try:
            whole, signed = _times_made_der(data)
        except (ValueError, IndexError, RecursionError):  # DERError is a ValueError
            raise ValueError("not an OCSP response") from None
        if whole is None:
            raise
        return ocsp.load_der_ocsp_response(whole), signed


#: How deep a tbsResponseData is walked for times (a real one is 8 levels deep).
_TIMES_DEPTH: Final = 24


def _times_made_der(der: bytes) -> tuple[bytes | None, bytes]:
    """``der`` (an OCSP response) with its tbsResponseData's GeneralizedTimes written as
    DER writes them (:func:`_der_time`; ``None``: they are already), and that
    tbsResponseData as it was written.

    Raises:
        DERError, IndexError: not an OCSP response's structure, or nested past
            :data:`_TIMES_DEPTH`.
    """
    top, response_bytes, basic = _basic_response(der)
    # Each element's header starts where the one before it ends (or its parent's
    # content starts): the structure around the tbsResponseData is made again.
    tbs_start, basic_stop = _der.single_span(der, _der.SEQUENCE, *response_bytes[1][1:])
    tbs_end = basic[0][2]
    signed = der[tbs_start:tbs_end]
    cut = _der_times_of(der, tbs_start, tbs_end, 0)
    if cut == signed:
        return None, signed
    basic_der = _der.encode(_der.SEQUENCE, cut + der[tbs_end:basic_stop])
    octets_at = response_bytes[0][2]  # the responseType's end: the OCTET STRING's header
    inner = _der.encode(
        _der.SEQUENCE,
        der[_der.single_span(der, _der.SEQUENCE, *top[1][1:])[0] : octets_at]
        + _der.encode(_der.OCTET_STRING, basic_der),
    )
    outer = der[_der.single_span(der, _der.SEQUENCE)[0] : top[0][2]] + _der.encode(0xA0, inner)
    return _der.encode(_der.SEQUENCE, outer), signed


_STRICT_TIME: Final = re.compile(rb"\d{14}Z")


def _der_time(time: _der.TLV) -> bytes:
    """A GeneralizedTime's value as DER writes it (``YYYYMMDDHHMMSSZ``, UTC), from any
    form OpenSSL and Java read; as written when it is none of them (cryptography then
    refuses the response, as before)."""
    when = _dates.any_time(time)  # a fraction of 10 digits or more too, as OpenSSL (h205)
    if when is None:
        return time.value
    return when.strftime("%Y%m%d%H%M%SZ").encode().rjust(15, b"0")


#: A DEFAULT value written out, which DER leaves out and cryptography refuses, while
#: Java and OpenSSL read it (h230): the tbsResponseData's ``[0] EXPLICIT Version``
#: v1, and an extension's ``critical`` FALSE (the only BOOLEAN a tbsResponseData holds).
_EXPLICIT_V1: Final = b"\x02\x01\x00"
_FALSE: Final = b"\x00"


def _der_times_of(der: bytes, start: int, stop: int, depth: int) -> bytes:
    """The elements from ``start`` to ``stop``, each GeneralizedTime written as DER
    writes it (:func:`_der_time`), and DEFAULT values written out left out (the
    version v1 of the tbsResponseData, whose elements are at ``depth`` 1, and an
    extension's critical FALSE)."""
    if depth > _TIMES_DEPTH:
        raise _der.DERError("nested too deep")
    out: list[bytes] = []
    position = start
    while position < stop:
        tag, content, end = _der.header(der, position, stop)
        value = der[content:end]
        if (tag == 0xA0 and depth == 1 and value == _EXPLICIT_V1) or (
            tag == _der.BOOLEAN and value == _FALSE
        ):
            pass  # left out, as DER leaves it
        elif tag == _GENERALIZED_TIME and not _STRICT_TIME.fullmatch(value):
            out.append(_der.encode(tag, _der_time(_der.TLV(tag, value, end))))
        elif tag & 0x20:  # constructed: its elements, cut
            out.append(_der.encode(tag, _der_times_of(der, content, end, depth + 1)))
        else:
            out.append(der[position:end])
        position = end
    return b"".join(out)
