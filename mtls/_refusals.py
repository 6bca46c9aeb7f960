"""What a replacement must pass before it goes into service.

A rotation's new keystore or truststore is judged here before a context is built from
it, for a profile set's client identities (:mod:`mtls._build`) and a rotating server's
(:mod:`mtls._server`) alike: a certificate not valid now, a chain that does not chain,
one that lost its issuer mid-write, a CA-issued identity replaced by a self-signed one,
one not meant for the role, a truststore that would verify nothing. Each check returns
why (an :class:`~mtls.MTLSError`) or ``None``; the identity or trust in service stays
while a replacement is refused. First loads are not judged (nothing is in service).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from . import _dates, _purpose, _x509
from ._crl import _issued
from ._errors import KeystoreError, by_content
from ._log import first_time, log

if TYPE_CHECKING:
    from ._stores import Truststore


def say_usage_warning(
    found: tuple[str, str, str], where: str, subject: str | None, role: str
) -> None:
    """Log what :func:`mtls._purpose.usage_warning` found for a ``role`` certificate that
    is installed all the same: why, and which peers refuse it."""
    log.warning(
        "%s: the %s certificate (%s): %s: %s %s refuse it as a TLS %s certificate "
        "(others take it); %s",
        where,
        role,
        subject,
        found[0],
        found[1],
        "clients" if role == "server" else "servers",
        role,
        found[2],
    )


def anchor_refusal(
    truststore: Truststore,
    where: str,
    in_service: Truststore | None = None,
    warned: set[tuple[str | None, ...]] | None = None,
) -> tuple[KeystoreError, _dt.datetime | None] | None:
    """Why a replacement truststore none of whose certificates is valid now is not
    installed (OpenSSL refuses every chain that ends at an anchor out of its dates,
    so it would verify nothing), and from when it may be (the soonest start date
    among anchors not valid yet; ``None`` when they have all expired). ``None`` when an
    anchor is valid now, or one cryptography cannot read (OpenSSL may use it).

    A replacement that only withdraws trust (every anchor of it is one of
    ``in_service``'s) is never held back: it is installed whatever the dates of what
    it keeps, with a warning when that leaves no peer verified (once per file and
    content when ``warned`` is given: profiles sharing it). Holding it back would
    keep trusting what was removed (a client CA withdrawn at 3 a.m. still let in). An
    empty one is left to the context, which refuses it as Java's TrustManagerFactory
    does (docs/servers.md says how to withdraw the last CA)."""
    now = _dt.datetime.now(_dt.UTC)
    starts: list[_dt.datetime] = []
    valid = not truststore.anchors_der  # an empty one: the context refuses it, in its words
    for der in truststore.anchors_der:
        try:
            cert = _x509.load_cert(der)
        except ValueError:
            valid = True
            break
        not_before, not_after = _dates.not_before(cert), _dates.not_after(cert)
        if not_before <= now <= not_after:
            valid = True
            break
        if not_before > now:
            starts.append(not_before)
    if valid:
        return None
    if in_service is not None and set(truststore.anchors_der) <= set(in_service.anchors_der):
        # Once per file and content (``warned``: a set's, whose profiles share the file).
        key = (where, _x509.sha256_hex(b"".join(truststore.anchors_der)), "withdrawal")
        if warned is not None:
            if key in warned:
                return None
            warned.add(key)
        log.warning(
            "%s: the new truststore only removes certificates, and none of those it keeps "
            "is valid now: installed, so every peer is refused until a certificate valid "
            "now is added (a withdrawal is never held back)",
            where,
        )
        return None
    until = min(starts) if starts else None
    why = (
        f"is not valid before {until}: not installed yet (the first check after that installs it)"
        if until is not None and len(starts) == len(truststore.anchors_der)
        else "has expired or is not valid yet: not installed"
    )
    error = KeystoreError(
        f"{where}: no certificate of the new truststore is valid now (each one {why}), so "
        "it would verify no peer; the previous truststore stays",
        path=where,
    )
    # Every anchor expired: the same file is refused at every check until it moves.
    return (by_content(error) if until is None else error), until


def validity_refusal(
    subject: str | None,
    not_before: _dt.datetime | None,
    not_after: _dt.datetime | None,
    where: str,
    *,
    whose: str = "",
    part: str = "",
    hint: str = "",
) -> tuple[KeystoreError, _dt.datetime | None] | None:
    """Why a replacement certificate peers would refuse is not installed (``whose``:
    ``server`` for a rotating server's; unsaid for a profile set's keystore, which
    is a client's identity or, through gRPC's ``server_credentials``, a server's;
    ``part``: which certificate of its chain, unsaid for the leaf), and from when the
    same certificate may be installed (its ``not_before`` when it is only not valid
    yet; ``None`` when it has expired). ``None`` when it is valid now."""
    role = f"{whose} " if whose else ""
    which = f"the new {role}certificate's chain: {part}" if part else f"the new {role}certificate"
    verdict = _dates.out_of_date(not_before, not_after, _dt.datetime.now(_dt.UTC))
    if verdict == "never valid":
        never = KeystoreError(
            f"{where}: {which} ({subject}) is never valid: its notBefore ({not_before}) is "
            f"after its notAfter ({not_after}){hint}: not installed, reissue it; the "
            "previous one stays",
            path=where,
        )
        return by_content(never), None
    if verdict == "expired":
        assert not_after is not None
        expired = KeystoreError(
            f"{where}: {which} ({subject}) expired on "
            f"{not_after.date()}{hint}: not installed; the previous one stays",
            path=where,
        )
        return by_content(expired), None
    if verdict == "not valid yet":
        assert not_before is not None
        early = KeystoreError(
            f"{where}: {which} ({subject}) is not valid before "
            f"{not_before}{hint}: not installed yet (the first check after that installs it); "
            "the previous one stays",
            path=where,
        )
        return early, not_before
    return None


def purpose_refusal(
    leaf_der: bytes, subject: str | None, where: str, role: str, *, whose: str = ""
) -> tuple[KeystoreError, None] | None:
    """Why a replacement certificate peers refuse as a ``role`` (``client`` or
    ``server``) certificate whatever the time is not installed
    (:func:`mtls._purpose.peers_refuse`): an extended key usage that forbids the role
    ("unsuitable certificate purpose", "unsupported certificate", Go's "bad
    certificate"; GnuTLS alone does not check it, and a rotation must not hinge on the
    backend being the lenient kind), or validity times no parser reads (a leap second:
    "format error in certificate's notAfter field"). ``None`` when neither."""
    found = _purpose.peers_refuse(leaf_der, role)
    if found is None:
        return None
    problem, who, fix = found
    named = f"the new {whose} certificate" if whose else "the new certificate"
    refused = KeystoreError(
        f"{where}: {named} ({subject}) cannot serve as a TLS {role} certificate: "
        f"{problem}, and {who}: not installed; the previous one stays ({fix})",
        path=where,
    )
    return by_content(refused), None


#: The most "warned once" keys a builder keeps before it forgets them all.
WARNED_AT_MOST = 1024

#: How long a PEM keystore whose chain leaves out an intermediate the chain in service
#: sends is held back (read again at every check, ``status()`` unhealthy, saying until
#: when) before it goes in with a warning. A file written in steps is whole within
#: seconds; one whose writer died between the leaf and the intermediate (a full disk, a
#: killed script) stays cut: 10 seconds let it in before any monitoring polled (h173),
#: and every peer that verifies through the intermediate refused the identity. A chain
#: meant that way (a cross-signed root dropped for the short chain, a leaf alone for
#: peers that trust the intermediate itself) waits this long, which costs nothing while
#: the identity in service is valid: one that expires sooner lets it in when it does.
LOST_ISSUER_GRACE = _dt.timedelta(minutes=15)
# (where, SHA-256 of the chain) -> when it was first held back (time.monotonic(): a
# wall clock stepped back would hold it back that much longer); and those let in, warned.
_LOST_ISSUER_SEEN: dict[tuple[str, str], float] = {}
_LOST_ISSUER_WARNED: set[tuple[str, str]] = set()


def lost_issuer_refusal(
    chain_der: Sequence[bytes],
    served_der: Sequence[bytes] | None,
    where: str,
    *,
    whose: str = "",
) -> tuple[KeystoreError, _dt.datetime | None] | None:
    """Why a PEM replacement whose chain stops below a certificate the chain in service
    carried, and the new leaf needs, is not installed yet: a PEM file written in steps
    (key, leaf, then the intermediate: ``vault read ... >> tls.pem``) read between two
    steps is whole at a certificate's end, and reads the same twice a settle delay
    apart; peers that verify through that intermediate would refuse every handshake.
    Held back for :data:`LOST_ISSUER_GRACE` from when it was first seen (the refusal
    says until when), then let in with a warning. (Callers ask for PEM keystores only:
    a JKS or PKCS#12 file written half-way fails its own check.)

    The issuing path is followed from the leaf by signature; ``None`` when it reaches
    a self-issued certificate, when no certificate in service issued its top (a new
    CA: nothing to compare) or only a root did (peers verify with their own copy), or
    when cryptography cannot read one."""
    if not served_der:
        return None
    found = _lost_issuer(chain_der, served_der)
    if found is None:
        # Nothing held back for this file now: a cut caught later (the same script run
        # again) is held back afresh, not let in for an old first sighting.
        for stale in [k for k in _LOST_ISSUER_SEEN if k[0] == where]:
            del _LOST_ISSUER_SEEN[stale]
        return None
    leaf, lost_cert = found
    what = f"the {whose} certificate" if whose else "the certificate"
    subject, missing = _x509.subject_text(leaf), _x509.subject_text(lost_cert)
    key = (where, _x509.sha256_hex(b"".join(chain_der)))
    now = time.monotonic()
    if len(_LOST_ISSUER_SEEN) >= 256 and key not in _LOST_ISSUER_SEEN:
        _LOST_ISSUER_SEEN.clear()
    held = _dt.timedelta(seconds=now - _LOST_ISSUER_SEEN.setdefault(key, now))
    wall = _dt.datetime.now(_dt.UTC)
    until = wall + (LOST_ISSUER_GRACE - held)
    try:
        expires: _dt.datetime | None = _x509.validity(served_der[0])[1]
    except ValueError:
        expires = None
    if expires is not None and expires < until:
        until = expires  # held only while the identity in service still works (h175)
    if held >= LOST_ISSUER_GRACE or (expires is not None and expires <= wall):
        if first_time(_LOST_ISSUER_WARNED, key, at_most=256):
            log.warning(
                "%s: %s %s goes in without %s, which the chain before it sent, %s: peers "
                "that verify through %s refuse it",
                where,
                what,
                subject,
                missing,
                f"the file having stayed so for {held.total_seconds():.0f} s"
                if held >= LOST_ISSUER_GRACE
                else "the certificate in service having expired",
                missing,
            )
        return None
    return KeystoreError(
        f"{where}: {what} {subject} arrived without {missing}, which issued its chain's "
        "last certificate and which the chain in service sends: a file written in steps "
        "caught between them (it is read again at the next check), or that certificate "
        "left out, which peers that verify through it refuse (append it after the leaf; "
        f"a chain meant so goes in at the first check after {until:%H:%M:%S} UTC, with a "
        "warning)",
        path=where,
    ), until


def self_signed_refusal(
    chain_der: Sequence[bytes],
    served_der: Sequence[bytes] | None,
    where: str,
    *,
    whose: str = "",
) -> tuple[KeystoreError, _dt.datetime | None] | None:
    """Why a replacement whose certificate is self-signed is not installed over one a
    CA issued: a Java keystore renewed in place with keytool in steps (``-delete``,
    ``-genkeypair``, ``-certreq``, and hours later ``-importcert`` of the CA's reply)
    holds a self-signed entry between the steps, which every peer trusting the CA
    refuses (h166: installed, every client failed, ``healthy`` stayed True). Held back
    until the reply is in; the certificate in service serves on, the refusal said.
    ``None`` when the certificate in service was self-issued too, or one cannot be
    read."""
    if not served_der:
        return None
    try:
        leaf, served = _x509.load_cert(chain_der[0]), _x509.load_cert(served_der[0])
        if not _x509.same_name(leaf.issuer, leaf.subject):
            return None
        if _x509.same_name(served.issuer, served.subject):
            return None  # self-signed before too: no CA's trust to lose
        _x509.verify_issued_by(leaf, leaf)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return None  # self-issued under a CA's key (its own signature fails): not this
    what = f"the new {whose} certificate" if whose else "the new certificate"
    issuer = _x509.name_text(served.issuer)
    return KeystoreError(
        f"{where}: {what} {_x509.subject_text(leaf)} is self-signed, where the one in "
        f"service was issued by {issuer}: peers that trust that "
        "CA would refuse it. A keystore renewed in place in steps (keytool -genkeypair, "
        "-certreq, then -importcert of the CA's reply) is caught before the reply: the "
        "certificate in service serves until the reply is installed. To serve a "
        "self-signed certificate instead, load it afresh (a restart)",
        path=where,
    ), None


def _lost_issuer(
    chain_der: Sequence[bytes], served_der: Sequence[bytes]
) -> tuple[x509.Certificate, x509.Certificate] | None:
    """(the leaf, the certificate it lost) when ``chain_der``'s issuing path stops below
    a certificate of ``served_der`` that issued its top and is no root; else ``None``
    (see :func:`lost_issuer_refusal`)."""
    try:
        path = issuing_path(chain_der)
        leaf = path[0][1]
        current, top = path[-1]
        if top.subject == top.issuer:
            return None
        lost = next((der for der in served_der if der != current and _issued(current, der)), None)
        if lost is None:
            return None
        lost_cert = _x509.load_cert(lost)
        if lost_cert.subject == lost_cert.issuer:
            return None  # a root sent along: peers verify with their own copy of it
    except ValueError:
        return None
    return leaf, lost_cert


def chain_refusal(
    chain_der: Sequence[bytes], where: str, *, whose: str = ""
) -> tuple[KeystoreError, _dt.datetime | None] | None:
    """Why a replacement whose chain holds an intermediate out of its dates is not
    installed: a peer that verifies through it refuses every handshake ("certificate
    has expired"). The issuing path is followed up from the leaf by signature, not by
    name (a namesake that signed nothing is not the issuer), and each certificate on
    it is judged, up to a self-issued one (a root sent along: peers verify against
    their own anchor). A certificate off the path is not judged. An expired
    cross-signed root sent for older clients is refused too: peers that trust the root
    itself pass over it, those that need it fail, so it is better removed from the
    chain (the message says so). ``None`` when the path is in date, or a certificate
    cryptography cannot read ends it (OpenSSL may take it)."""
    try:
        path = issuing_path(chain_der)
    except ValueError:
        return None
    for _, cert in path[1:]:
        if cert.subject == cert.issuer:
            return None
        refused = validity_refusal(
            _x509.subject_text(cert),
            _dates.not_before(cert),
            _dates.not_after(cert),
            where,
            whose=whose,
            part="the intermediate certificate",
            hint=(
                " (peers that verify through it refuse every handshake; one sent only "
                "for older clients, such as a cross-signed root, can be left out of the "
                "chain)"
            ),
        )
        if refused is not None:
            return refused
    return None


def issuing_path(chain_der: Sequence[bytes]) -> list[tuple[bytes, x509.Certificate]]:
    """The chain's leaf, then each certificate of the chain that issued the one before
    it, followed by signature, not by name (a namesake that signed nothing is not the
    issuer): ``(DER, certificate)`` each. The certificates of the issuer's name are
    tried within a :class:`_x509.SignatureBudget` (a chain of namesakes in the worst
    order took 11.6 s a reload): a hostile chain's path ends where the budget does.

    Raises:
        ValueError: cryptography cannot read a certificate of the chain.
    """
    path = [(chain_der[0], _x509.load_cert(chain_der[0]))]
    loaded = [(_x509.load_cert(der), der) for der in chain_der[1:]]
    # Linking passes over a key no CA has (see _x509.costly_key).
    named = _x509.by_subject(pair for pair in loaded if not _x509.costly_key(pair[0]))
    budget = _x509.SignatureBudget(len(chain_der))
    while True:
        current, cert = path[-1]
        # Those of its issuer's name not on the path yet (one taken leaves its list).
        candidates = named.get(_x509.canonical_name(cert.issuer), [])
        found = None
        for position, (candidate, der) in enumerate(candidates):
            if not budget.spend():
                return path
            if _issued(current, der):
                found = (der, candidate)
                del candidates[position]
                break
        if found is None:
            return path
        path.append(found)
