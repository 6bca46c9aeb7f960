"""Certificate helpers shared by the stores, the profile set and the CLI.

Certificates are kept as DER bytes, the form OpenSSL consumes; cryptography parses
them only when a caller asks for a :class:`~cryptography.x509.Certificate`.
Real truststores hold certificates that cryptography warns about: roots with serial
number 0 (Go Daddy, Starfield, ... in Java's cacerts and WSO2's shipped stores), or
a name attribute outside its RFC 5280 length (``C=`` not two letters, a ``CN=`` over
64 characters). Java and OpenSSL accept them, and so do we. cryptography's warnings
would name its own source lines and repeat on every access; instead each becomes one
WARNING on logger ``mtls`` per certificate (per process), and the CLI shows it as one
``mtls: warning:`` line.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import hashlib
import re
import ssl
import string
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar

from cryptography import x509
from cryptography.exceptions import InternalError, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key
from cryptography.utils import CryptographyDeprecationWarning

from . import _dates, _der
from ._errors import bounded, shown_text
from ._fork import hold_across_fork
from ._log import log

# Name attributes cryptography checks the length of (x509/name.py, _NAMEOID_LENGTH_LIMIT):
# country, common name, jurisdiction country.
_NAME_LIMITS = {"2.5.4.6": (2, 2), "2.5.4.3": (1, 64), "1.3.6.1.4.1.311.60.2.1.3": (2, 2)}
_CN_OID = _der.encode_oid("2.5.4.3")[2:]  # the content of CN's OBJECT IDENTIFIER
# Certificates already reported, so a reload every few seconds does not repeat them.
_REPORTED: set[tuple[str, str]] = set()
_REPORTED_MAX = 4096
# A filter put into the process's warning filters for one read (:func:`_quiet`): mtls's
# own threads take turns (the paths are rare: certificates _unusual() picks, DSA
# material), and a fork waits for the turn to end (a child forked inside it would keep
# the filter for good).
_WARNINGS_LOCK = threading.RLock()
hold_across_fork(sys.modules[__name__], "_WARNINGS_LOCK")
_T = TypeVar("_T")
_P = ParamSpec("_P")


# ------------------------------------------------------------------------------ DSA
# cryptography 51 deprecates DSA: each access to its public DSA names, and each DSA key
# it reads (a private key, a certificate's public key, a signature it checks), warns.
# Java stores hold DSA keys (keytool's default before JDK 7), and mtls reads them as
# Java does: a deprecation from a dependency would reach users as a warning naming
# mtls's lines on every load, and as an exception under ``-W error`` or pytest's
# ``filterwarnings = error``. The classes come from the aliases cryptography keeps for
# its own checks (older releases: the public names, which do not warn there), and the
# calls that read DSA material go through :func:`dsa_call`; nothing else pays.
DSA_OID: Final = "1.2.840.10040.4.1"  # id-dsa: a PKCS#8 key's or a certificate's algorithm
EC_OID: Final = "1.2.840.10045.2.1"  # id-ecPublicKey: likewise


class _NoDSA:
    """Stands for the DSA classes of a cryptography that has none: nothing is one."""


def _dsa_class(name: str) -> type[Any]:
    from cryptography.hazmat.primitives.asymmetric import dsa  # noqa: PLC0415

    quiet = getattr(dsa, f"_{name}", None)
    if isinstance(quiet, type):
        return quiet
    with warnings.catch_warnings():  # at import: before any thread of ours runs
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        public = getattr(dsa, name, None)
    return public if isinstance(public, type) else _NoDSA


if TYPE_CHECKING:
    # Named twice: the modules that use them see an export (mypy --strict).
    from cryptography.hazmat.primitives.asymmetric.dsa import (
        DSAPrivateKey as DSAPrivateKey,  # noqa: PLC0414
    )
    from cryptography.hazmat.primitives.asymmetric.dsa import (
        DSAPublicKey as DSAPublicKey,  # noqa: PLC0414
    )
else:
    DSAPrivateKey = _dsa_class("DSAPrivateKey")
    DSAPublicKey = _dsa_class("DSAPublicKey")


# The one filter dsa_call puts in place: cryptography's DSA deprecation, nothing else
# (another thread's warnings meanwhile show as the application's filters say).
_DSA_FILTER: Final = (
    "ignore",
    re.compile("DSA is deprecated", re.IGNORECASE),
    CryptographyDeprecationWarning,
    None,
    0,
)
_QUIET_TRIES = 3


def _filters_mutated() -> None:
    """Tell the warnings machinery its filter list changed (what filterwarnings does):
    the registries of warnings already shown are renewed against it."""
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()


# What a guarded read of a certificate silences: the warnings attributed to cryptography's
# code, or to this module's calls into it (its parser warns as its Python caller).
# Another thread's warnings meanwhile show as the application's filters say, unless
# cryptography makes them too.
_CERT_FILTER: Final = (
    "ignore",
    None,
    Warning,
    re.compile(r"(?:mtls\._x509|cryptography(?:\..*)?)\Z"),
    0,
)


def _quiet(
    entry: tuple[Any, ...], call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """``call(*args, **kwargs)`` with the warnings filter ``entry`` in force: put into
    the process's filter list in place, and taken out of that same list after.

    The list is never swapped, as ``warnings.catch_warnings`` does, which raced with
    the application's own blocks in other threads (pytest's around each test) and left
    their filters installed, or lost them; mtls's own threads take turns. When such a
    block ends during the call, its list goes with the filter, and a warning it
    silences may escape: shown once, or under ``-W error`` raised, and then the call is
    made again (it only reads)."""
    for attempt in range(1, _QUIET_TRIES + 1):
        with _WARNINGS_LOCK:
            filters: list[Any] = warnings.filters  # type: ignore[assignment]  # a list
            filters.insert(0, entry)
            _filters_mutated()
            try:
                return call(*args, **kwargs)
            except Warning as exc:  # raised: an "error" filter took it, not ours
                silenced = isinstance(exc, entry[2]) and (
                    entry[1] is None or entry[1].match(str(exc)) is not None
                )
                if attempt == _QUIET_TRIES or not silenced:
                    raise
            finally:
                for position, item in enumerate(filters):
                    if item is entry:
                        del filters[position]
                        break
                _filters_mutated()
    raise AssertionError("unreachable")  # the last try returned or raised


def dsa_call(dsa: bool, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``call(*args, **kwargs)``, a cryptography call that may read DSA material, without
    its deprecation warning (:func:`_quiet`); with ``dsa`` false, only the call (other
    material never touches the warnings state).

    Raises:
        ValueError: also for cryptography's ``InternalError``, which key material
            OpenSSL cannot set up raises (an Ed25519 OID on an Ed448 key's bytes, in a
            PEM file: it escaped ``Keystore.load`` raw, a fuzz found); else what
            ``call`` raises.
    """
    try:
        if not dsa:
            return call(*args, **kwargs)
        return _quiet(_DSA_FILTER, call, *args, **kwargs)
    except InternalError:
        raise ValueError(
            "OpenSSL cannot set up this key material (its parts do not fit its algorithm)"
        ) from None


def is_dsa(item: x509.Certificate | x509.CertificateSigningRequest) -> bool:
    """Whether a certificate (or request) is for a DSA key, told without reading the key."""
    algorithm = getattr(item, "public_key_algorithm_oid", None)  # a request's is untyped
    return algorithm is None or algorithm.dotted_string == DSA_OID


def public_key(
    item: x509.Certificate | x509.CertificateSigningRequest,
) -> CertificatePublicKeyTypes:
    """``item.public_key()``, without cryptography's warning for a DSA key.

    Raises:
        ValueError, UnsupportedAlgorithm: as ``public_key()``.
    """
    return dsa_call(is_dsa(item), item.public_key)


# RFC 5280 section 7.1 as OpenSSL's X509_NAME_cmp applies it (x_name.c, asn1_string_canon):
# a value of these string types (UTF8, BMP, Universal, Printable, T61, IA5, Visible) is
# compared as UTF-8, its leading and trailing white space (OpenSSL's: ASCII only)
# dropped, each inner run of it made one space, ASCII letters lower-cased.
_CANON_TYPES = frozenset({12, 30, 28, 19, 20, 22, 26})
_OPENSSL_WHITE = " \t\n\v\f\r"
_OPENSSL_SPACE = re.compile(f"[{_OPENSSL_WHITE}]+")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


_Canonical = tuple[frozenset[tuple[tuple[str, object], int]], ...]
# Canonical forms by the name's DER (never by the Name: cryptography's equality, and so
# an lru_cache keyed by it, ignores the string type); bounded, emptied when full.
_CANONICAL: dict[bytes, _Canonical] = {}


def canonical_name(name: x509.Name) -> _Canonical:
    """``name`` as OpenSSL (``X509_NAME_cmp``) and RFC 5280 section 7.1 compare it:
    each RDN a set; a string value in UTF-8 whatever its string type, without its
    leading and trailing white space, each inner run of white space one space, ASCII
    letters lower-cased (non-ASCII kept as written, as OpenSSL keeps it); other values
    (a bit string, a NumericString) as they are, with their type. An RDN is a set of
    its attributes with their counts (a repeated one is not one attribute).

    Raises:
        ValueError: a name cryptography cannot read (it parses them lazily).
    """
    der = name.public_bytes()
    found = _CANONICAL.get(der)
    if found is not None:
        return found
    rdns = []
    for rdn in name.rdns:
        values: collections.Counter[tuple[str, object]] = collections.Counter()
        for attribute in rdn:
            value: object = attribute.value
            kind = getattr(getattr(attribute, "_type", None), "value", None)
            if isinstance(value, str) and kind in _CANON_TYPES:
                value = _OPENSSL_SPACE.sub(" ", value.strip(_OPENSSL_WHITE))
                value = value.translate(_ASCII_LOWER)
            else:
                value = (kind, value)
            values[(attribute.oid.dotted_string, value)] += 1
        rdns.append(frozenset(values.items()))
    if len(_CANONICAL) >= 1024:
        _CANONICAL.clear()
    made = _CANONICAL[der] = tuple(rdns)
    return made


_Item = TypeVar("_Item")


def by_subject(
    pairs: Iterable[tuple[x509.Certificate, _Item]],
) -> dict[_Canonical, list[tuple[x509.Certificate, _Item]]]:
    """``pairs`` (a certificate and what goes with it) by their certificate's subject
    as :func:`same_name` compares names, in their order: who may have issued a
    certificate is one lookup (``canonical_name(cert.issuer)``), not a comparison
    with each. A certificate whose name cannot be read is left out (no comparison
    could match it)."""
    named: dict[_Canonical, list[tuple[x509.Certificate, _Item]]] = {}
    for pair in pairs:
        try:
            key = canonical_name(pair[0].subject)
        except ValueError:
            continue
        named.setdefault(key, []).append(pair)
    return named


#: The most signatures one piece of linking verifies (see :class:`SignatureBudget`).
MAX_SIGNATURE_TRIES = 2048


class SignatureBudget:
    """How many signatures one piece of work may verify when it links certificates (a
    store's chains, a replacement's issuing path, a CRL file's intermediates and the
    lists' signers): every candidate tried by signature is one, a pair tried once is
    remembered (each key entry of a bundle carries its own copy of the chain), and
    candidates are found by name first (one lookup), so a real file verifies about
    one per certificate.

    Among certificates of one name only a signature tells the issuer, and a file of
    namesakes in the worst order made the linking quadratic in their count, or cubic
    (185 certificates of one name: 11.6 s; 110 intermediates in a 57 KB CRL file:
    140 s). The budget grows with the work, so a bundle of entries under a renewed
    intermediate and its old namesake links each entry to its signer, and stops at
    :data:`MAX_SIGNATURE_TRIES` whatever the file: a verification may cost
    milliseconds (an RSA-16384 key, 3 ms; one with a 3,070-bit exponent, 6.5 ms, which
    linking passes over: :func:`costly_key`), and a hostile 6 MB file of such keys
    took a minute under a budget without that cap (the review h176). A file that
    needs more is linked as far as the budget went, the rest by name (:attr:`spent`
    says so).

    Args:
        items: how many certificates (and lists) the work links: the budget is three
            verifications each and 32, at most :data:`MAX_SIGNATURE_TRIES`.
    """

    __slots__ = ("_tried", "left")

    def __init__(self, items: int) -> None:
        self.left = min(3 * items + 32, MAX_SIGNATURE_TRIES)
        self._tried: dict[tuple[bytes, bytes], bool] = {}

    def spend(self) -> bool:
        """Take one verification; ``False`` once none is left (stop trying)."""
        self.left -= 1
        return self.left >= 0

    @property
    def spent(self) -> bool:
        """Whether a verification was refused: some candidate was not tried."""
        return self.left < 0

    def tried(self, child: bytes, candidate: bytes, verify: Callable[[], bool]) -> bool | None:
        """Whether ``candidate`` (DER) signed ``child`` (DER), by ``verify()``: once per
        pair (remembered), a verification of the budget each; ``None`` when none is
        left."""
        pair = (child, candidate)
        known = self._tried.get(pair)
        if known is not None:
            return known
        if not self.spend():
            return None
        found = self._tried[pair] = verify()
        return found


def same_name(one: x509.Name, other: x509.Name) -> bool:
    """Whether two names are one name as OpenSSL and Java compare them (RFC 5280
    section 7.1, :func:`canonical_name`), not only as written: a CA whose certificates
    write its name in another case, spacing or string type than its own certificate
    does is still their issuer (OpenSSL and Java verify such chains).

    Raises:
        ValueError: a name cryptography cannot read.
    """
    # Never cryptography's ``==`` alone: it ignores the string type (a NumericString
    # and a UTF8String of the same digits, which OpenSSL tells apart).
    return canonical_name(one) == canonical_name(other)


#: The longest RSA public exponent an issuer's key may have here: the CA/Browser Forum's
#: 2^256 - 1 (Go refuses more than 31 bits, BoringSSL more than 33). A longer one makes
#: each verification hundreds of times as long (3,070 bits: 6.5 ms against 0.05 ms).
MAX_RSA_EXPONENT_BITS = 256


def costly_key(issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key is RSA with an exponent over :data:`MAX_RSA_EXPONENT_BITS`:
    no CA's, and a file of them made certificate linking take a minute (h174, h176).
    Linking a file's certificates (a store's chains, a replacement's issuing path, a
    CRL file's intermediates) passes over such a candidate; every other check verifies
    it as it is (a self-signed replacement, a revocation issuer: treating "not tried"
    as "not signed" there let a self-signed identity in and a revoked certificate
    through, h177). An unreadable key is not costly (verifying it fails on its own)."""
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    try:
        key = issuer.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return isinstance(key, rsa.RSAPublicKey) and (
        key.public_numbers().e.bit_length() > MAX_RSA_EXPONENT_BITS
    )


def verify_issued_by(child: x509.Certificate, issuer: x509.Certificate) -> None:
    """``child.verify_directly_issued_by(issuer)``, without the warning for a DSA issuer,
    and with the names compared as :func:`same_name` compares them (cryptography
    compares their encodings: such a child, which OpenSSL and Java verify, was
    refused).

    Raises:
        ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm: as cryptography.
    """
    dsa = is_dsa(issuer)
    try:
        dsa_call(dsa, child.verify_directly_issued_by, issuer)
    except ValueError:
        written, named = child.issuer, issuer.subject
        if written.public_bytes() == named.public_bytes() or not same_name(written, named):
            raise
        dsa_call(dsa, _verify_signature, child, issuer)


def _verify_signature(child: x509.Certificate, issuer: x509.Certificate) -> None:
    """What ``verify_directly_issued_by`` does once the names match: ``child``'s
    signature over its to-be-signed bytes, with its algorithm, by ``issuer``'s key.

    Raises:
        InvalidSignature: not signed by that key; TypeError: a signature algorithm for
            another type of key; UnsupportedAlgorithm, ValueError: as cryptography.
    """
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa  # noqa: PLC0415

    key = issuer.public_key()
    signature, signed = child.signature, child.tbs_certificate_bytes
    parameters = child.signature_algorithm_parameters
    if isinstance(key, rsa.RSAPublicKey):
        digest = child.signature_hash_algorithm
        if digest is None or isinstance(parameters, ec.ECDSA) or parameters is None:
            raise TypeError("not an RSA signature")
        key.verify(signature, signed, parameters, digest)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(parameters, ec.ECDSA):
            raise TypeError("not an ECDSA signature")
        key.verify(signature, signed, parameters)
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        wanted = "1.3.101.112" if isinstance(key, ed25519.Ed25519PublicKey) else "1.3.101.113"
        if child.signature_algorithm_oid.dotted_string != wanted:
            raise InvalidSignature
        key.verify(signature, signed)
    elif is_dsa(issuer):
        digest = child.signature_hash_algorithm
        if digest is None:
            raise TypeError("not a DSA signature")
        dsa_key: Any = key  # named only as DSA's class would warn (see _dsa_class)
        dsa_key.verify(signature, signed, digest)
    else:
        raise UnsupportedAlgorithm(f"a {type(key).__name__} issuer key")


def pkcs8_algorithm(pkcs8_der: bytes) -> list[tuple[int, int, int]]:
    """The elements of a PKCS#8 key's AlgorithmIdentifier (its OID, then its parameters),
    as :func:`_der.spans` gives them: walked by offsets, the key's fields neither
    parsed nor copied (every context build reads the key's type: the walk that made an
    object of each field copied the private key into one, 5 us a build).

    Raises:
        DERError: not one SEQUENCE whose elements fill it, or no constructed second
            element (the AlgorithmIdentifier) whose elements fill it.
        IndexError: fewer than two elements.
    """
    fields = _der.spans(pkcs8_der, *_der.single_span(pkcs8_der, _der.SEQUENCE))
    tag, start, stop = fields[1]
    if not tag & 0x20:
        raise _der.DERError("expected a constructed element")
    return _der.spans(pkcs8_der, start, stop)


# The inner key of a PKCS#8 key, by algorithm, as Java's key factories read it:
# RSAPrivateKey (RFC 8017: nine INTEGERs, then optional other primes), ECPrivateKey
# (RFC 5915), the EdDSA and XDH keys' CurvePrivateKey (RFC 8410, by its length), DSA's
# INTEGER.
_RSA_KEY_OIDS = frozenset({"1.2.840.113549.1.1.1", "1.2.840.113549.1.1.10"})
_CURVE_KEY_BYTES = {"1.3.101.110": 32, "1.3.101.111": 56, "1.3.101.112": 32, "1.3.101.113": 57}


def pkcs8_well_formed(pkcs8_der: bytes) -> bool:
    """Whether ``pkcs8_der`` is one PrivateKeyInfo (RFC 5958: version, algorithm, key,
    optional attributes and public key) whose key is well formed for its algorithm, as
    Java's key factories parse it (an algorithm they do not know: its key unread, as
    Java keeps such a key). Walked by offsets: nothing copied, nothing parsed into
    objects. What decrypts under a cipher without an integrity check (JCEKS, most of
    PKCS#12; a wrong password passes the padding check 1 time in 256, a damaged entry
    of a store re-sealed by whoever knew its password) is judged so: Java's
    ``getKey`` refuses such bytes, and they were served (h196)."""
    try:
        fields = _der.spans(pkcs8_der, *_der.single_span(pkcs8_der, _der.SEQUENCE))
        if len(fields) < 3 or [tag for tag, _, _ in fields[:3]] != [
            _der.INTEGER,
            _der.SEQUENCE,
            _der.OCTET_STRING,
        ]:
            return False
        if pkcs8_der[fields[0][1] : fields[0][2]] not in (b"\x00", b"\x01"):
            return False
        extra = [tag for tag, _, _ in fields[3:]]
        if extra not in ([], [0xA0], [0x81], [0xA1], [0xA0, 0x81], [0xA0, 0xA1]):
            return False
        algorithm = _der.spans(pkcs8_der, fields[1][1], fields[1][2])
        if not algorithm or algorithm[0][0] != _der.OID:
            return False
        oid = _der.decode_oid(pkcs8_der[algorithm[0][1] : algorithm[0][2]])
        return _inner_key_well_formed(pkcs8_der, oid, fields[2][1], fields[2][2])
    except _der.DERError:
        return False


def _inner_key_well_formed(data: bytes, oid: str, start: int, stop: int) -> bool:
    """The PKCS#8 ``privateKey`` OCTET STRING's content, ``data[start:stop]``, for
    ``oid`` (:func:`pkcs8_well_formed`). Raises DERError for a damaged element."""
    if oid in _RSA_KEY_OIDS:
        tags = [
            tag
            for tag, _, _ in _der.spans(data, *_der.single_span(data, _der.SEQUENCE, start, stop))
        ]
        return tags[:9] == [_der.INTEGER] * 9 and tags[9:] in ([], [_der.SEQUENCE])
    if oid == EC_OID:
        parts = _der.spans(data, *_der.single_span(data, _der.SEQUENCE, start, stop))
        tags = [tag for tag, _, _ in parts]
        return (
            tags[:2] == [_der.INTEGER, _der.OCTET_STRING]
            and data[parts[0][1] : parts[0][2]] == b"\x01"
            and parts[1][2] > parts[1][1]
            and tags[2:] in ([], [0xA0], [0xA1], [0xA0, 0xA1])
        )
    size = _CURVE_KEY_BYTES.get(oid)
    if size is not None:
        content = _der.single_span(data, _der.OCTET_STRING, start, stop)
        return content[1] - content[0] == size
    if oid == DSA_OID:
        _der.single_span(data, _der.INTEGER, start, stop)
    return True


def key_algorithm(pkcs8_der: bytes) -> str | None:
    """The OID of a PKCS#8 key's AlgorithmIdentifier, read without parsing the key
    (``None`` when the bytes are not PKCS#8)."""
    try:
        tag, start, stop = pkcs8_algorithm(pkcs8_der)[0]
        if tag != _der.OID:
            return None
        return _der.decode_oid(pkcs8_der[start:stop])
    except (_der.DERError, IndexError):
        return None


def load_private_key(pkcs8_der: bytes, *, check_rsa: bool = True) -> PrivateKeyTypes:
    """cryptography's reading of an unencrypted PKCS#8 key, without its warning for a
    DSA key; ``check_rsa=False`` skips the RSA key check (a key that only gets
    re-encoded or compared: OpenSSL checks what it signs with).

    Raises:
        ValueError, TypeError, UnsupportedAlgorithm: as ``load_der_private_key``.
    """
    return dsa_call(
        key_algorithm(pkcs8_der) == DSA_OID,
        load_der_private_key,
        pkcs8_der,
        None,
        unsafe_skip_rsa_key_validation=not check_rsa,
    )


# The named curves Java's CurveDB knows (JDK 17, 25): SECG's (secp*, sect*), X9.62's
# (prime*, c2*), and the brainpool "r1" curves; a certificate on another (SM2,
# brainpool "t1", WAP, Oakley) fails to parse there: "Unknown named curve" (h189).
_JAVA_CURVE_ARCS: Final = ("1.3.132.0.", "1.2.840.10045.3.")
_JAVA_BRAINPOOL: Final = frozenset(f"1.3.36.3.3.2.8.1.1.{n}" for n in (1, 3, 5, 7, 9, 11, 13))
# id-ecPublicKey's OID as it is encoded: a certificate without it is no EC key.
_EC_OID_DER: Final = bytes.fromhex("2a8648ce3d0201")

JavaRefusedEC = Literal["explicit", "implicit", "curve", "compressed", "point"]


def ec_key_encoding(der: bytes) -> JavaRefusedEC | None:
    """How certificate ``der``'s EC public key is written, when it is written as Java
    cannot parse it: with explicit curve parameters (Java: "Only named ECParameters
    supported"; OpenSSL's verification: "Certificate public key has explicit ECC
    parameters"), with no parameters (implicitCA: "EC domain parameters must be
    encoded"), on a curve Java does not know ("Unknown named curve"), as a compressed
    point or in a form other than uncompressed ("Invalid EC key"). ``None``: a named
    curve Java knows and an uncompressed point, another key type, or what this walk
    cannot tell about (left to the readers)."""
    if _EC_OID_DER not in der:
        return None  # the common case: one search of the bytes, in C
    try:
        parts = _der.tbs_fields(der)[5].expect(_der.SEQUENCE).children()
        algorithm = parts[0].expect(_der.SEQUENCE).children()
        if _der.decode_oid(algorithm[0].expect(_der.OID).value) != EC_OID:
            return None
        point = parts[1].expect(_der.BIT_STRING).value[1:2]
        params = algorithm[1] if len(algorithm) > 1 else None
    except (ValueError, IndexError):
        return None
    if params is None or params.tag == _der.NULL:
        return "implicit"
    if params.tag == _der.SEQUENCE:
        return "explicit"
    if params.tag == _der.OID:
        curve = _der.decode_oid(params.value)
        if not curve.startswith(_JAVA_CURVE_ARCS) and curve not in _JAVA_BRAINPOOL:
            return "curve"
    if point in (b"\x02", b"\x03"):
        return "compressed"
    return None if point == b"\x04" else "point"


_JAVA_REFUSED_EC: Final[dict[str, str]] = {
    "explicit": "its EC public key has explicit curve parameters, not a named curve",
    "implicit": "its EC public key names no curve (implicitCA parameters)",
    "curve": "its EC public key is on a curve Java does not know",
    "compressed": "its EC public key is a compressed point",
    "point": "its EC public key is a point in a form Java does not read (not uncompressed)",
}


def first_java_refused(
    certificates: Iterable[tuple[str, bytes]],
) -> tuple[str, str, str] | None:
    """The first ``(alias, why, remedy)`` of ``(alias, DER)`` certificates Java cannot
    parse, or ``None``: a key it does not read (:func:`java_refused_key`) or a validity
    time (:func:`java_refused_dates`); what a store's writer refuses and its reader
    notes. ``remedy``: how the certificate must be reissued."""
    for alias, der in certificates:
        why = java_refused_key(der)
        if why is not None:
            return alias, why, "for a named curve with an uncompressed point"
        why = _dates.java_refused_dates(der)
        if why is not None:
            return alias, why, "with validity dates that exist"
    return None


def java_refused_key(der: bytes) -> str | None:
    """Why Java cannot parse certificate ``der``'s public key (:func:`ec_key_encoding`),
    in words, or ``None``. keytool's -importcert refuses such a certificate; in a JKS
    or PKCS#12 store, the whole store fails to load in Java (keytool, WSO2), not one
    entry (h188)."""
    encoding = ec_key_encoding(der)
    return None if encoding is None else _JAVA_REFUSED_EC[encoding]


@_der.bytes_cache(4096)
def raw_names(der: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``(issuer, subject, subjectPublicKeyInfo)`` of a certificate, each as the DER
    content of its SEQUENCE, read by our own walker without building objects.

    Equal bytes mean equal names (or keys); unequal bytes may still be equal once
    normalised (another string type, a compressed point), so a caller that finds no
    match by these falls back to cryptography's comparison. ``None``: a certificate
    cryptography does not read (our walker alone would take BER lengths or a bad
    version, which must not win a match the parsed comparison would never make), unless
    only a name's string stops it (:func:`only_a_name_refused`) or its validity times
    (:func:`only_dates_refused`).
    """
    try:
        try:
            validity(der)  # cryptography reads it (names compared as bytes, not read)
        except ValueError:
            if not (only_a_name_refused(der) or only_dates_refused(der)):
                return None
        fields = _der.tbs_spans(der)
        names = []
        for tag, start, stop in (fields[2], fields[4], fields[5]):
            if tag != _der.SEQUENCE:
                return None
            names.append(der[start:stop])
    except (ValueError, IndexError):  # DERError is a ValueError
        return None
    return names[0], names[1], names[2]


# Cached: the same certificates are read on every context build and reload (a leaf per
# client_context, 144 anchors per cacerts), and this walk is pure Python.
@_der.bytes_cache(4096)
def _plain(der: bytes) -> tuple[str | None] | None:
    """The pre-check of every certificate read: ``None`` when cryptography may warn
    while reading ``der`` (when unsure: ``None``); else ``(its subject's first CN, or
    None,)``, read from the DER in the same walk (its names are then plain strings, one
    per RDN, that cryptography reads as they are: a CA bundle's aliases come from their
    CNs, and cryptography builds an object per name attribute to give one)."""
    try:
        fields = _der.tbs_spans(der)
        tag, start, stop = fields[0]
        if tag != _der.INTEGER or _der.decode_int(der[start:stop]) <= 0:
            return None
        if _plain_name(der, *fields[2]) is None:
            return None
        subject = _plain_name(der, *fields[4])
        if subject is None:
            return None
        return (der[subject[0] : subject[1]].decode("utf-8") if subject else None,)
    except (_der.DERError, IndexError, ValueError):
        return None  # cryptography produces the real error, under the guard


def _unusual(der: bytes) -> bool:
    """Whether cryptography may warn while reading ``der`` (when unsure: yes)."""
    return _plain(der) is None


def _plain_name(der: bytes, tag: int, start: int, stop: int) -> tuple[int, int] | tuple[()] | None:
    """:func:`_plain` for one Name (issuer or subject) of ``der``: ``None`` for a string
    type or a length cryptography warns about, or anything other than RDNs of
    attributes made of exactly a type and a value (then the guard decides); else where
    the value of its first CN lies (``()``: it has none)."""
    header = _der.header
    if not tag & 0x20:
        return None
    cn: tuple[int, int] | tuple[()] = ()
    while start < stop:  # each RelativeDistinguishedName (a SET)
        tag, at, end = header(der, start, stop)
        if not tag & 0x20:
            return None
        # One AttributeTypeAndValue, SEQUENCE { type, value }, filling the RDN (an empty
        # or multi-valued one, rare, is read under the guard: its order and emptiness
        # are cryptography's to judge).
        tag, inner, stop_attribute = header(der, at, end)
        if not tag & 0x20 or stop_attribute != end:
            return None
        _, oid_start, oid_stop = header(der, inner, stop_attribute)
        value_tag, value_start, value_stop = header(der, oid_stop, stop_attribute)
        if value_stop != stop_attribute or not _plain_string(
            value_tag, der[value_start:value_stop]
        ):
            return None
        oid = der[oid_start:oid_stop]
        # Decoded (cached): an OID that does not decode is sent under the guard.
        limits = _NAME_LIMITS.get(_der.decode_oid(oid))
        if limits and not limits[0] <= value_stop - value_start <= limits[1]:
            return None
        if not cn and oid == _CN_OID:
            cn = (value_start, value_stop)
        start = end
    return cn


# PrintableString's characters (X.680 41.4); cryptography 50 refuses any other as it
# loads the certificate (the guard would say so in its words).
_PRINTABLE = frozenset((string.ascii_letters + string.digits + " '()+,-./:=?").encode())


def _plain_string(tag: int, value: bytes) -> bool:
    """Whether a name attribute's value is a UTF8String, PrintableString or IA5String
    that cryptography reads as it is (others, and bytes those types do not allow, are
    read under the guard: cryptography refuses some only when the name is read)."""
    if tag == 0x0C:  # UTF8String
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    if tag == 0x13:  # PrintableString
        return _PRINTABLE.issuperset(value)
    return tag == 0x16 and value.isascii()  # IA5String


_SERIAL_TEXT: Final = (
    "its serial number is not positive, which RFC 5280 disallows and a future "
    "cryptography release will refuse"
)


def _attributes(der: bytes, start: int, stop: int) -> Iterator[tuple[int, str, int, int, int]]:
    """Each attribute of the Name whose content spans ``der[start:stop]``, as ``(how
    many its RDN holds, OID, value tag, value start, value stop)``.

    Raises:
        ValueError: the Name is not RDNs of type-and-value attributes.
    """
    header = _der.header
    while start < stop:  # each RelativeDistinguishedName (a SET)
        _, at, end = header(der, start, stop)
        found = []
        while at < end:  # each AttributeTypeAndValue: SEQUENCE { type, value }
            _, inner, stop_attribute = header(der, at, end)
            _, oid_start, oid_stop = header(der, inner, stop_attribute)
            tag, value_start, value_stop = header(der, oid_stop, stop_attribute)
            found.append((_der.decode_oid(der[oid_start:oid_stop]), tag, value_start, value_stop))
            at = stop_attribute
        for oid, tag, value_start, value_stop in found:
            yield len(found), oid, tag, value_start, value_stop
        start = end


def _unusual_reasons(der: bytes) -> list[str]:
    """What cryptography warns about when it reads ``der``, found by our own walk: a
    serial number that is not positive, a name attribute outside its length."""
    reasons = []
    try:
        fields = _der.tbs_spans(der)
        tag, start, stop = fields[0]
        if tag == _der.INTEGER and _der.decode_int(der[start:stop]) <= 0:
            reasons.append(_SERIAL_TEXT)
        for _, first, last in (fields[2], fields[4]):
            for _, oid, tag, value_start, value_stop in _attributes(der, first, last):
                limits = _NAME_LIMITS.get(oid)
                length = value_stop - value_start
                if limits and tag in (0x0C, 0x13, 0x16) and not limits[0] <= length <= limits[1]:
                    said = (
                        f"Attribute's length must be >= {limits[0]} and <= {limits[1]}, "
                        f"but it was {length}"
                    )
                    reasons.append(
                        f"a name attribute is longer or shorter than RFC 5280 allows ({said})"
                    )
    except (_der.DERError, IndexError, ValueError):
        pass  # what cannot be walked is cryptography's to refuse
    return list(dict.fromkeys(reasons))


def _report(der: bytes, subject: str | None) -> None:
    """Log once per certificate (per process) what cryptography would have warned
    about while reading it (its warnings are silenced: :data:`_CERT_FILTER`). Called
    once the lock is released: a handler that blocks holds back no other thread's read
    of a certificate (a reload check's, under the engine's lock)."""
    reasons = _unusual_reasons(der)
    if not reasons:  # picked by _unusual for another cause (a string type): nothing to say
        return
    fingerprint = sha256_hex(der)
    for text in reasons:
        if (fingerprint, text) in _REPORTED:
            continue
        if len(_REPORTED) >= _REPORTED_MAX:
            _REPORTED.clear()
        _REPORTED.add((fingerprint, text))
        log.warning(
            "certificate %s (SHA-256 %s...): %s; Java and OpenSSL accept it, and so does mtls",
            subject or "(subject unreadable)",
            fingerprint[:16],
            text,
        )


# Public-key algorithms that cannot sign a TLS handshake here, by OID: their names as
# keytool writes them (-keyalg), and why. cryptography may not read them at all
# (ML-KEM-512 in cryptography 50), and names the ones it does by class.
_KEY_ALGORITHMS: dict[str, tuple[str, str]] = {
    "1.3.101.110": ("X25519", "key agreement only"),
    "1.3.101.111": ("X448", "key agreement only"),
    "1.2.840.10046.2.1": ("Diffie-Hellman", "key agreement only"),
    "1.2.840.113549.1.3.1": ("Diffie-Hellman", "key agreement only"),
    "2.16.840.1.101.3.4.4.1": ("ML-KEM-512", "key encapsulation only"),
    "2.16.840.1.101.3.4.4.2": ("ML-KEM-768", "key encapsulation only"),
    "2.16.840.1.101.3.4.4.3": ("ML-KEM-1024", "key encapsulation only"),
    "2.16.840.1.101.3.4.3.17": ("ML-DSA-44", "post-quantum signatures, which OpenSSL 3.0 lacks"),
    "2.16.840.1.101.3.4.3.18": ("ML-DSA-65", "post-quantum signatures, which OpenSSL 3.0 lacks"),
    "2.16.840.1.101.3.4.3.19": ("ML-DSA-87", "post-quantum signatures, which OpenSSL 3.0 lacks"),
    "1.2.643.2.2.19": ("GOST R 34.10-2001", ""),
    "1.2.643.7.1.1.1.1": ("GOST R 34.10-2012 (256 bits)", ""),
    "1.2.643.7.1.1.1.2": ("GOST R 34.10-2012 (512 bits)", ""),
}


def key_algorithm_name(oid: str) -> str | None:
    """keytool's name of a public-key algorithm TLS here cannot sign with
    (``ML-KEM-768``, ``X25519``), or ``None``."""
    known = _KEY_ALGORITHMS.get(oid)
    return known[0] if known else None


# The names of the EC curves keys are found on that TLS cannot use here: old ones
# cryptography lacks, and those OpenSSL loads but signs no TLS 1.3 handshake with before
# 3.2 (SEC 2, RFC 5639), by OID; messages name a curve by them.
_CURVE_NAMES = {
    "1.3.132.0.28": "secp128r1",
    "1.3.132.0.29": "secp128r2",
    "1.3.132.0.9": "secp160k1",
    "1.3.132.0.8": "secp160r1",
    "1.3.132.0.30": "secp160r2",
    "1.2.840.10045.3.1.1": "secp192r1 (P-192)",
    "1.3.132.0.31": "secp192k1",
    "1.3.132.0.33": "secp224r1 (P-224)",
    "1.3.132.0.32": "secp224k1",
    "1.3.132.0.10": "secp256k1",
    "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
    "1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
    "1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
}


def curve_name(oid: str) -> str:
    """An EC curve's name for a message (its OID when it has none here)."""
    return _CURVE_NAMES.get(oid, oid)


def key_algorithm_label(oid: str) -> str:
    """That name with why it cannot sign (``X25519 (key agreement only)``), for
    messages; ``unknown`` for an OID not in the table."""
    known = _KEY_ALGORITHMS.get(oid)
    if known is None:
        return "unknown"
    name, why = known
    return f"{name} ({why})" if why else name


def _read_names(der: bytes) -> tuple[x509.Certificate, str]:
    """``der`` read, with its names (parsed on first access and kept: parsed here, under
    the guard), and its subject as text."""
    cert = x509.load_der_x509_certificate(der)
    subject = cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()
    return cert, subject


def load_cert(der: bytes) -> x509.Certificate:
    """Parse DER into a Certificate, tolerating what RFC 5280 forbids and Java accepts.

    A certificate cryptography warns about (a serial number that is not positive, a
    name attribute outside its length) is logged once instead (see the module).

    Raises:
        ValueError: the bytes are not a certificate cryptography can read.
    """
    try:
        if not _unusual(der):
            return x509.load_der_x509_certificate(der)
        cert, subject = _quiet(_CERT_FILTER, _read_names, der)
        _report(der, subject)
    except x509.InvalidVersion as exc:  # not a ValueError: keep the one documented error
        raise ValueError(f"unsupported X.509 version ({exc})") from exc
    except TypeError as exc:  # a name attribute of a type its OID does not allow
        raise ValueError(f"a name it holds cannot be read ({exc})") from exc
    except ValueError as exc:
        raise ValueError(parse_error_text(str(exc))) from None
    return cert


_PARSE_ERROR = re.compile(r"ParseError \{ kind: (\w+)(?:.*?location: \[(.*?)\])?", re.DOTALL)


def parse_error_text(text: str) -> str:
    """cryptography's parser error (a Rust debug dump) as words: where in the
    certificate, and what."""
    match = _PARSE_ERROR.search(text)
    if match is None:
        return text
    kind, location = match[1], match[2]
    where = [part.strip(' "').rpartition("::")[2] for part in (location or "").split(",")]
    field = " > ".join(w for w in where if w)
    return f"cryptography cannot read it: {kind}" + (f" at {field}" if field else "")


def serial_number(cert: x509.Certificate | bytes) -> int:
    """The serial number of a certificate or its DER, read from the DER itself
    (cryptography warns on every read of a serial number that is not positive).

    Raises:
        ValueError: DER that is not a certificate.
    """
    der = cert if isinstance(cert, bytes) else cert.public_bytes(Encoding.DER)
    try:
        tag, start, stop = _der.tbs_spans(der)[0]
        if tag != _der.INTEGER:
            raise _der.DERError(f"expected tag 0x02, found 0x{tag:02x}")
        return _der.decode_int(der[start:stop])
    except IndexError:
        raise _der.DERError("no serial number: not a certificate") from None


def pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    """Each ``-----BEGIN {label}-----`` ... ``-----END {label}-----`` block of ``data``,
    boundaries included, from each BEGIN to the first END after it (what a lazy regex
    finds), in one pass: a regex rescans to the end for every BEGIN line without its
    END, quadratic in the size (256 KiB of BEGIN lines held the GIL for 16 s)."""
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks: list[bytes] = []
    at = data.find(begin)
    while at >= 0:
        stop = data.find(end, at + len(begin))
        if stop < 0:
            break  # no END after this BEGIN: none after any later one either
        stop += len(end)
        blocks.append(data[at:stop])
        at = data.find(begin, stop)
    return blocks


#: The ContentInfo of a PKCS#7 certificate bundle starts with SEQUENCE and the
#: signedData OID (1.2.840.113549.1.7.2), whatever the outer length's form.
_PKCS7_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")


def looks_like_pkcs7(data: bytes) -> bool:
    """Whether ``data`` starts as a DER (or BER) PKCS#7 signedData does: a ``.p7b``."""
    if data[:1] != b"\x30" or len(data) < 2:
        return False
    first = data[1]
    at = 2 if first < 0x80 else 2 + (first & 0x7F)  # 0x80 (indefinite): no length bytes
    return data[at : at + len(_PKCS7_SIGNED_DATA)] == _PKCS7_SIGNED_DATA


def pkcs7_certificates(data: bytes, *, pem: bool) -> list[bytes]:
    """The certificates of a PKCS#7 bundle (a ``.p7b``: DER, or a PEM ``PKCS7`` block), as
    DER in the bundle's order; ``[]`` when it holds none or cannot be read."""
    from cryptography.hazmat.primitives.serialization import pkcs7  # noqa: PLC0415

    load = pkcs7.load_pem_pkcs7_certificates if pem else pkcs7.load_der_pkcs7_certificates
    try:
        # OpenSSL's crl2pkcs7 (and Windows) write the certificates' SET OF unsorted, which
        # DER forbids: cryptography reads it as BER, and warns. Java and OpenSSL read it.
        # Each certificate is read again through load_cert's guard, which reports what
        # cryptography warns about once: here its warnings are only silenced.
        certs = _quiet(_CERT_FILTER, load, data)
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion):
        return []
    return [cert.public_bytes(Encoding.DER) for cert in certs]


def only_a_name_refused(der: bytes) -> bool:
    """Whether cryptography refuses ``der`` only for a name's string it cannot read (a
    Latin-1 byte in an IA5String), and OpenSSL reads the certificate. cryptography 51
    checks names when it loads a certificate, where 50 did when they were read: such a
    certificate, which OpenSSL serves and Java takes, stays usable by its bytes.

    "Only": the same certificate with those strings made plain (each unreadable byte
    an ``x``) must load. cryptography stops at its first error, and a BER length or a
    bad version after the name must still refuse the certificate, as 50 did."""
    # Read with its names (cryptography 50 refuses a name as it reads it), under the
    # guard: a serial number that is not positive warns, as ever.
    try:
        _quiet(_CERT_FILTER, _read_names, der)
    except (ValueError, TypeError, x509.InvalidVersion):
        pass
    else:
        return False  # it reads: nothing was refused
    plain = _names_made_plain(der)
    if plain is None:
        return False
    try:
        _quiet(_CERT_FILTER, _read_names, plain)
    except (ValueError, TypeError, x509.InvalidVersion):
        return False  # something besides the names
    if openssl_refusal(der) is not None:
        return False
    _report(der, lenient_leaf_info(der)[0])  # what else it has, said once, as load_cert does
    return True


#: A validity cryptography reads, put in place of one it does not to see whether
#: anything else stops it.
_PLAIN_VALIDITY: Final = _der.encode(
    _der.SEQUENCE, _der.encode(0x17, b"000101000000Z") + _der.encode(0x17, b"491231235959Z")
)


def only_dates_refused(der: bytes) -> bool:
    """Whether cryptography refuses ``der`` only for its validity times (a fraction, an
    offset, no seconds, a leap second: OpenSSL loads and serves such a certificate,
    Python's ``load_cert_chain`` takes it): the same certificate with a plain validity
    loads. A PEM keystore's key was matched to no certificate by its public key then,
    and the load failed saying the key was for another certificate (h202)."""
    try:
        _, start, stop = _der.header(der)
        _, tbs_start, tbs_stop = _der.header(der, start, stop)
        fields = _der.tbs_spans(der)
        if fields[3][0] != _der.SEQUENCE:
            return False
        validity_start, validity_stop = fields[2][2], fields[3][2]  # issuer's end: its header
        # Only the times may differ: the headers made again must be the ones written (a
        # BER length there must not pass as DER, and win a match, h202's review).
        rebuilt = (
            (start, stop, der),
            (tbs_start, tbs_stop, der[start:tbs_stop]),
            (fields[3][1], validity_stop, der[validity_start:validity_stop]),
        )
        if any(_der.encode(_der.SEQUENCE, der[a:b]) != written for a, b, written in rebuilt):
            return False
        tbs = der[tbs_start:validity_start] + _PLAIN_VALIDITY + der[validity_stop:tbs_stop]
        plain = _der.encode(_der.SEQUENCE, _der.encode(_der.SEQUENCE, tbs) + der[tbs_stop:stop])
        _quiet(_CERT_FILTER, _read_names, plain)
    except (ValueError, IndexError, TypeError, x509.InvalidVersion):
        return False
    return True


def _names_made_plain(der: bytes) -> bytes | None:
    """``der`` with each PrintableString and IA5String of its issuer and subject that
    holds a byte its type does not allow overwritten with as many ``x`` (the lengths,
    and so every other byte, unchanged); ``None`` when there is none, or one is in an
    RDN of several attributes (overwriting it may change the order DER sets them in,
    which cryptography checks), or the names cannot be walked."""
    copy = bytearray(der)
    try:
        fields = _der.tbs_spans(der)
        for _, first, last in (fields[2], fields[4]):
            for count, _, tag, value_start, value_stop in _attributes(der, first, last):
                value = der[value_start:value_stop]
                if tag in (0x13, 0x16) and not _plain_string(tag, value):
                    if count > 1:
                        return None
                    copy[value_start:value_stop] = b"x" * len(value)
    except (_der.DERError, IndexError, ValueError):
        return None
    return bytes(copy) if copy != der else None


def openssl_refusal(der: bytes) -> ssl.SSLError | None:
    """Why OpenSSL refuses ``der`` as a certificate; ``None`` when it reads it (as it
    would to serve or trust it) (a context of its own: nothing else is touched)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=der)
    except ssl.SSLError as exc:
        return exc
    return None


def der_to_pem(der: bytes) -> str:
    """PEM text of one DER certificate."""
    return ssl.DER_cert_to_PEM_cert(der)


def sha256_hex(der: bytes) -> str:
    """Lower-case hex SHA-256 of the DER bytes (keytool prints it upper-case, with colons)."""
    return hashlib.sha256(der).hexdigest()


def colon_hex(hex_digest: str) -> str:
    """A hex digest as keytool -list prints fingerprints: ``ab12...`` as ``AB:12:...``."""
    upper = hex_digest.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


def _positive_serial(der: bytes) -> bool:
    """Whether the serial number is positive, read by header alone (``False`` when the
    bytes do not say): the one thing cryptography warns about as it loads."""
    try:
        _, start, stop = _der.header(der)
        _, start, stop = _der.header(der, start, stop)
        tag, content, end = _der.header(der, start, stop)
        if tag == 0xA0:  # [0] version
            tag, content, end = _der.header(der, end, stop)
        return tag == _der.INTEGER and _der.decode_int(der[content:end]) > 0
    except _der.DERError:
        return False


def validity(der: bytes) -> tuple[_dt.datetime, _dt.datetime]:
    """``(not before, not after)`` of a certificate, timezone-aware (UTC). Its names
    are not read, so only its serial number decides whether :func:`load_cert`'s
    guard is needed (a context build reads every identity's dates).

    Raises:
        ValueError: DER that cryptography does not read as a certificate.
    """
    if _positive_serial(der):
        try:
            cert = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion):
            pass  # load_cert says why, in its words
        else:
            return _dates.not_before(cert), _dates.not_after(cert)
    cert = load_cert(der)
    return _dates.not_before(cert), _dates.not_after(cert)


#: Characters of a subject that logs, status() and metric labels show (its start and
#: end): a 1 MB CN made a 1 MB label and a 2 MB status document.
SUBJECT_SHOWN: Final = 1024


def subject_text(cert: x509.Certificate) -> str:
    """The subject as an RFC 4514 string (``CN=localhost,O=WSO2``) to show: control
    characters escaped (a line break in a CN forged a log line), at most
    :data:`SUBJECT_SHOWN` characters. Not for comparing names: use the name itself.

    An empty subject (a SPIFFE or service-mesh certificate names itself in a URI SAN
    only, RFC 5280 4.2.1.6) is shown by its alternative names, ``(no subject) SAN
    URI:spiffe://cluster.local/ns/shop/sa/orders``: every log line, ``status()`` and
    ``mtls check`` showed nothing there (h190)."""
    text = name_text(cert.subject)
    return text if text else _alternative_names_text(cert)


def _alternative_names_text(cert: x509.Certificate) -> str:
    try:
        # Read under the warnings guard (cryptography warns again of a certificate it
        # warned about), never through extension(), whose guarded read shows the
        # subject: this, again.
        extensions = _quiet(_CERT_FILTER, _extensions_of, cert)
        names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (
        x509.ExtensionNotFound,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
        ValueError,
    ):  # none, a duplicated extension, or one cryptography cannot read
        return "(no subject)"
    shown = names_text(names)
    if not shown:
        return "(no subject)"
    return bounded(shown_text(f"(no subject) SAN {', '.join(shown)}"), SUBJECT_SHOWN)


def _extensions_of(cert: x509.Certificate) -> x509.Extensions:
    return cert.extensions


def name_text(name: x509.Name) -> str:
    """Any name (an issuer's) to show, as :func:`subject_text` shows a subject."""
    return bounded(shown_text(name.rfc4514_string()), SUBJECT_SHOWN)


def common_name(cert: x509.Certificate) -> str | None:
    """The first CN of the subject, or None."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def common_name_of(der: bytes) -> str | None:
    """:func:`common_name` of a certificate's DER, as the pre-check (:func:`_plain`)
    read it when it passed the certificate.

    Raises:
        ValueError: DER that is not a certificate cryptography reads.
    """
    cert = load_cert(der)
    plain = _plain(der)
    return common_name(cert) if plain is None else plain[0]


# Attribute types as RFC 4514 names them (and cryptography's rfc4514_string), the rest
# by OID.
_NAME_KEYS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
}
_STRING_CODECS = {0x1E: "utf-16-be", 0x1C: "utf-32-be", 0x14: "latin-1"}


def _name_text(name: _der.TLV) -> str:
    """An RFC 4514 rendering of a Name, most specific RDN first, as cryptography's."""
    rdns = []
    for rdn in name.children():
        parts = []
        for attribute in rdn.children():
            oid, value = attribute.children()[:2]
            dotted = _der.decode_oid(oid.value)
            text = value.value.decode(_STRING_CODECS.get(value.tag, "utf-8"), "replace")
            # cryptography's _escape_dn_value, rule for rule (NUL as \00; a lone space is
            # escaped once, as the last character).
            escaped = "".join(
                "\\" + c if c in ',+"\\<>;' else "\\00" if c == "\0" else c for c in text
            )
            if escaped.startswith("#") or (escaped.startswith(" ") and len(escaped) > 1):
                escaped = "\\" + escaped
            if escaped.endswith(" "):
                escaped = escaped[:-1] + "\\ "
            parts.append(f"{_NAME_KEYS.get(dotted, dotted)}={escaped}")
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns))


def name_der_text(der: bytes) -> str:
    """A distinguished name's DER as RFC 4514 text (as cryptography renders names).

    Raises:
        ValueError: ``der`` is no Name.
    """
    try:
        return _name_text(_der.read_single(der, _der.SEQUENCE))
    except (IndexError, LookupError) as exc:
        raise ValueError("not a distinguished name") from exc


def name_der_key(der: bytes) -> _Canonical:
    """A distinguished name's DER in :func:`canonical_name`'s form (the same rules, on
    our own walk of the DER: cryptography reads no Name alone): equal for two names
    OpenSSL's ``X509_NAME_cmp`` and Java's ``X500Principal.equals`` take as one.

    Raises:
        ValueError: ``der`` is no Name.
    """
    try:
        rdns = []
        for rdn in _der.read_single(der, _der.SEQUENCE).children():
            values: collections.Counter[tuple[str, object]] = collections.Counter()
            for attribute in rdn.children():
                oid, value = attribute.children()[:2]
                kept: object = (value.tag, value.value)
                if value.tag in _CANON_TYPES:
                    text = value.value.decode(_STRING_CODECS.get(value.tag, "utf-8"))
                    text = _OPENSSL_SPACE.sub(" ", text.strip(_OPENSSL_WHITE))
                    kept = text.translate(_ASCII_LOWER)
                values[(_der.decode_oid(oid.value), kept)] += 1
            rdns.append(frozenset(values.items()))
    except (IndexError, LookupError, UnicodeDecodeError) as exc:
        raise ValueError("not a distinguished name") from exc
    return tuple(rdns)


def lenient_leaf_info(
    der: bytes,
) -> tuple[str | None, _dt.datetime | None, _dt.datetime | None, int | None]:
    """``(subject, not_before, not_after, serial)`` of a certificate cryptography does
    not read, from our own walk of its DER, for what OpenSSL and Java read anyway (a
    validity time without seconds, with a fraction or an offset): expiry checks and
    status() must not go blind on it. A part that cannot be read either is ``None``."""
    try:
        fields = _der.tbs_fields(der)
    except (ValueError, IndexError):
        return (None, None, None, None)
    serial: int | None = None
    subject: str | None = None
    start: _dt.datetime | None = None
    end: _dt.datetime | None = None
    with contextlib.suppress(ValueError, IndexError):
        serial = _der.decode_int(fields[0].expect(_der.INTEGER).value)
    with contextlib.suppress(ValueError, IndexError, LookupError):
        subject = _name_text(fields[4].expect(_der.SEQUENCE))
    with contextlib.suppress(ValueError, IndexError):
        validity = fields[3].expect(_der.SEQUENCE).children()
        start, end = (_dates.any_time(time) for time in validity[:2])
    return (subject, start, end, serial)


def subject_alt_names(cert: x509.Certificate) -> list[str]:
    """SANs as keytool prints them (``DNS:localhost``, ``IP:127.0.0.1``, ``email:...``)."""
    ext = extension(cert, x509.SubjectAlternativeName)
    if ext is None:
        return []  # none, or none cryptography can read (OpenSSL may take the certificate)
    return names_text(ext)


def names_text(names: Iterable[x509.GeneralName]) -> list[str]:
    """General names as keytool prints them (see :func:`subject_alt_names`)."""
    out: list[str] = []
    for name in names:
        if isinstance(name, x509.DNSName):
            out.append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            out.append(f"IP:{name.value}")
        elif isinstance(name, x509.RFC822Name):
            out.append(f"email:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(f"URI:{name.value}")
        elif isinstance(name, x509.RegisteredID):  # as keytool's -ext san=oid: takes it
            out.append(f"OID:{name.value.dotted_string}")
        elif isinstance(name, x509.DirectoryName):
            out.append(f"DirName:{name_text(name.value)}")
        else:  # otherName: its type, not its (DER) value
            other = getattr(name, "type_id", None)
            out.append(f"otherName:{other.dotted_string}" if other is not None else str(name))
    return out


def extension(cert: x509.Certificate, kind: type[Any], der: bytes | None = None) -> Any:
    """The value of ``cert``'s extension of ``kind``; ``None`` when it has none or
    cryptography cannot read its extensions (a duplicated one, a bad encoding).

    cryptography warns again on the first read of the extensions of a certificate it
    warned about (a serial number that is not positive): that read is guarded as
    :func:`load_cert` is, so the warning is one log line, never Python's own (nor an
    exception under ``-W error``). ``der``: the certificate's DER, when at hand.
    """
    der = cert.public_bytes(Encoding.DER) if der is None else der
    try:
        if not _unusual(der) and not _names_in_extensions(der):
            return _optional(cert.extensions, kind)
        subject, extensions = _quiet(_CERT_FILTER, _read_extensions, cert)
        _report(der, subject)
        return _optional(extensions, kind)
    except (ValueError, x509.DuplicateExtension):
        return None


def extensions_unreadable(cert: x509.Certificate, der: bytes) -> bool:
    """Whether cryptography refuses ``cert``'s extensions (a duplicated one, a bad
    encoding): Java refuses such a certificate in a store it reads."""
    try:  # renewal only: the guard always (no fast path)
        subject, _ = _quiet(_CERT_FILTER, _read_extensions, cert)
    except (ValueError, x509.DuplicateExtension):
        return True
    _report(der, subject)
    return False


def _read_extensions(cert: x509.Certificate) -> tuple[str, x509.Extensions]:
    """``cert``'s subject as text and its extensions (read under :data:`_CERT_FILTER`:
    cryptography warns again on the first read of the extensions of a certificate it
    warned about)."""
    return subject_text(cert), cert.extensions


# The name attributes cryptography checks the length of, as their DER is written.
_LIMITED_OIDS = tuple(_der.encode_oid(dotted) for dotted in _NAME_LIMITS)


def _names_in_extensions(der: bytes) -> bool:
    """Whether the certificate's extensions may hold a name attribute cryptography
    warns about when it reads the extensions (a directoryName in a SAN, in an
    authority key identifier, in a distribution point): one of the attribute types
    with a length limit appears in them, by bytes (when unsure: yes)."""
    try:
        fields = _der.tbs_spans(der)
    except (_der.DERError, IndexError):
        return True
    for tag, start, stop in fields[6:]:
        if tag == 0xA3:  # [3] extensions
            block = der[start:stop]
            return any(oid in block for oid in _LIMITED_OIDS)
    return False


def _optional(extensions: x509.Extensions, kind: type[Any]) -> Any:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
