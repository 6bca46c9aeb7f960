"""CRL files inside contexts, and the signature checks revocation shares.

A :class:`CRLSet` is read (PEM with one or many lists, or DER), vetted against the
truststore it is used with (readable, current, signed by one of its certificates) and
handed to OpenSSL through a ``memfd`` (``load_verify_locations(cadata=...)`` takes
certificates only), which then checks it *during* the handshake. The online checks
after a handshake (OCSP, downloaded CRLs) live in :mod:`mtls._revocation` and use
this module's issuer and signature helpers.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import os
import ssl
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from . import _dates, _der, _x509
from ._errors import CRLError
from ._files import cannot_read_fix, read_input
from ._keyload import load_cafile_pem
from ._log import first_time, log
from ._types import CRLCheck, check_crl_check

#: Largest CRL read by :meth:`CRLSet.load` or downloaded: 10 MiB. Public CAs' biggest
#: CRLs are a few MiB. (A profile's CRL files are read as its stores are: 8 MiB.)
MAX_CRL_BYTES = 10 * 1024 * 1024


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def crl_this_update(crl: x509.CertificateRevocationList) -> _dt.datetime:
    """A list's thisUpdate, year 0 (which OpenSSL reads) as :data:`mtls._dates.YEAR_ZERO`."""
    return _dates.utc_time(lambda: crl.last_update_utc)


def crl_next_update(crl: x509.CertificateRevocationList) -> _dt.datetime | None:
    """A list's nextUpdate (``None``: it has none), year 0 as
    :data:`mtls._dates.YEAR_ZERO`."""
    return _dates.utc_time(lambda: crl.next_update_utc)


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    """A list's CRLNumber (RFC 5280 5.2.3: grows with each list its issuer publishes),
    or ``None``: it has none, or it cannot be read."""
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except (x509.ExtensionNotFound, ValueError, TypeError):
        return None


def later_list(one: x509.CertificateRevocationList, other: x509.CertificateRevocationList) -> bool:
    """Whether ``one`` was published after ``other`` (both of one issuer): by their
    CRLNumbers where both have one (a CA whose clock was set back still numbers its
    lists up: h253), else by thisUpdate."""
    numbers = crl_number(one), crl_number(other)
    if numbers[0] is not None and numbers[1] is not None:
        return numbers[0] > numbers[1]
    return crl_this_update(one) > crl_this_update(other)


def crl_revoked_on(entry: x509.RevokedCertificate) -> _dt.datetime:
    """When a listed certificate was revoked, year 0 as :data:`mtls._dates.YEAR_ZERO`."""
    return _dates.utc_time(lambda: entry.revocation_date_utc)


class CRLSet:
    """Certificate revocation lists, parsed (PEM with one or many, or DER).

    Example:
        >>> from mtls.testing import CA
        >>> ca = CA()
        >>> crls = CRLSet.from_bytes(ca.crl())
        >>> len(crls)
        1

    A PEM file may also hold the intermediate CA certificates whose lists it
    carries: a list must be signed by a truststore certificate, or by one of these
    when it is itself issued (signature checked) by a truststore certificate or by
    another of them. They only vouch for lists; they are never trust anchors.

    Args:
        crls: the parsed lists, each with the file it came from (or ``None``).
        issuers: intermediate CA certificates that may sign lists (see above).
    """

    def __init__(
        self,
        crls: Iterable[tuple[x509.CertificateRevocationList, str | None]] = (),
        issuers: Iterable[x509.Certificate] = (),
    ) -> None:
        self._crls: tuple[tuple[x509.CertificateRevocationList, str | None], ...] = tuple(crls)
        self._issuers: tuple[x509.Certificate, ...] = tuple(issuers)
        # The anchors a successful check() vouched for these lists against: contexts
        # made later from the same set (ALPN variants) install them without checking
        # again, so a lookup never raises CRLError.
        self._checked: frozenset[bytes] | None = None
        self._pem: bytes | None = None  # made on first use: a profile set shares one set

    @classmethod
    def from_bytes(cls, data: bytes, *, path: str | os.PathLike[str] | None = None) -> CRLSet:
        """Parse one file's content: PEM (``X509 CRL`` blocks, one or many) or DER.

        Args:
            data: the bytes.
            path: where they came from, for messages.

        Returns:
            The lists in the order written.

        Raises:
            CRLError: no CRL in the bytes, a damaged one, or more than
                :data:`MAX_CRL_BYTES`.
        """
        where = os.fspath(path) if path is not None else None
        shown = where or "the CRL"
        if len(data) > MAX_CRL_BYTES:
            raise CRLError(
                f"{shown}: larger than the {MAX_CRL_BYTES // (1024 * 1024)} MiB a CRL may "
                "have (MAX_CRL_BYTES): is it the right file?",
                path=where,
            )
        issuers: list[x509.Certificate] = []
        try:
            if b"-----BEGIN" in data:
                blocks = _x509.pem_blocks(data, b"X509 CRL")
                if not blocks:
                    raise ValueError("PEM without an X509 CRL block")
                parsed = [x509.load_pem_x509_crl(block) for block in blocks]
                if b"-----BEGIN CERTIFICATE-----" in data:
                    # Read as stores read certificates: what cryptography would warn
                    # about (a serial number that is not positive) is logged (h265).
                    issuers = [
                        _x509.load_cert(ssl.PEM_cert_to_DER_cert(block.decode("ascii")))
                        for block in _x509.pem_blocks(data, b"CERTIFICATE")
                    ]
            else:
                parsed = [x509.load_der_x509_crl(data)]
            for crl in parsed:
                try:
                    crl.issuer.rfc4514_string()  # read lazily: a damaged name fails here
                except TypeError as exc:
                    # An attribute cryptography will not build (a common name as a BIT
                    # STRING): a TypeError, which escaped every caller, and made a
                    # profile set's whole reload fail, not this profile's (h265).
                    raise CRLError(
                        f"{shown}: its issuer's name cannot be read "
                        f"({_x509.parse_error_text(str(exc))}): have its CA issue it "
                        "again, or check the file",
                        path=where,
                    ) from None
        except (ValueError, x509.InvalidVersion) as exc:
            # (InvalidVersion, a version field outside v1/v2, is not a ValueError.)
            raise CRLError(
                f"{shown}: not a certificate revocation list (PEM 'X509 CRL' or DER): "
                f"{_x509.parse_error_text(str(exc))}; check the file",
                path=where,
            ) from None
        return cls(((crl, where) for crl in parsed), issuers)

    @classmethod
    def load(cls, *paths: str | os.PathLike[str]) -> CRLSet:
        """Read CRL files.

        Raises:
            CRLError: no path, or a file is missing, unreadable, or holds no usable CRL.
        """
        if not paths:
            # CRLSet.load(*glob(...)) on an empty folder: a set that checks nothing.
            raise CRLError("CRLSet.load() was given no file: name at least one CRL file")
        out: list[tuple[x509.CertificateRevocationList, str | None]] = []
        issuers: list[x509.Certificate] = []
        for path in paths:
            try:
                # Regular files only, within the limit: a FIFO must not block a load.
                data = read_input(path, MAX_CRL_BYTES)
            except OSError as exc:
                raise unreadable_crl(path, exc, MAX_CRL_BYTES, "check the path") from None
            one = cls.from_bytes(data, path=path)
            out.extend(one._crls)
            issuers.extend(one._issuers)
        return cls(out, issuers)

    def __add__(self, other: CRLSet) -> CRLSet:
        return CRLSet((*self._crls, *other._crls), (*self._issuers, *other._issuers))

    def __len__(self) -> int:
        return len(self._crls)

    def __iter__(self) -> Iterator[x509.CertificateRevocationList]:
        return iter([crl for crl, _ in self._crls])

    def lists(self) -> tuple[tuple[x509.CertificateRevocationList, str | None], ...]:
        """Each list with the file it came from (``None``: read from bytes alone)."""
        return self._crls

    def __repr__(self) -> str:
        issuers = ", ".join(crl.issuer.rfc4514_string() for crl, _ in self._crls)
        return f"CRLSet([{issuers}])"

    @property
    def next_update(self) -> _dt.datetime | None:
        """The earliest nextUpdate of the lists (when the first of them expires), or
        ``None`` when none has one."""
        dates = [end for end in (crl_next_update(crl) for crl, _ in self._crls) if end is not None]
        return min(dates) if dates else None

    def check_expiry(self, *, now: _dt.datetime | None = None) -> None:
        """Refuse a list whose nextUpdate has passed, or whose thisUpdate has not come
        yet (no clock skew: OpenSSL allows none, and refuses every handshake with it).

        Raises:
            CRLError: naming the file, the issuer and what to do.
        """
        now = now or _now()
        for crl, path in self._crls:
            this_update = crl_this_update(crl)
            if this_update > now:
                issuer = crl.issuer.rfc4514_string()
                raise CRLError(
                    f"{path or 'the CRL'}: the CRL of {issuer} is not valid until "
                    f"{this_update.isoformat()} (thisUpdate, ahead of this host's clock): "
                    "OpenSSL would refuse every handshake with it until then; check this "
                    "host's clock (or the CA's), or keep the current list until that time",
                    path=path,
                    issuer=issuer,
                )
            next_update = crl_next_update(crl)
            if next_update is not None and next_update <= now:
                issuer = crl.issuer.rfc4514_string()
                raise CRLError(
                    f"{path or 'the CRL'}: the CRL of {issuer} expired on "
                    f"{next_update.isoformat()} (nextUpdate): fetch a current one from the "
                    "CA; an expired list would let revoked certificates through (OpenSSL "
                    "refuses every handshake it is used for)",
                    path=path,
                    issuer=issuer,
                )

    def check_once(self, anchors_der: Sequence[bytes]) -> None:
        """:meth:`check`, unless it already passed against these anchors.

        Raises:
            CRLError: as :meth:`check`.
        """
        if self._checked != frozenset(anchors_der):
            self.check(anchors_der)

    @property
    def pem(self) -> bytes:
        """Every list as PEM, in order (made once: every context a set builds from
        these lists installs them)."""
        pem = self._pem
        if pem is None:
            pem = b"".join(crl.public_bytes(serialization.Encoding.PEM) for crl, _ in self._crls)
            self._pem = pem
        return pem

    def check(self, anchors_der: Sequence[bytes], *, now: _dt.datetime | None = None) -> None:
        """Refuse a list that is expired or not signed by one of ``anchors_der``.

        No clock skew is allowed here: OpenSSL refuses every handshake the moment a
        list's nextUpdate passes, so a list that has expired is refused now (and a
        profile whose list expires while loaded is rebuilt, and fails, then).

        Raises:
            CRLError: naming the file, the issuer and what to do.
        """
        explicit_now = now is not None
        now = now or _now()
        budget = self._budget()
        named = self._signers(anchors_der, budget)
        # Each list's signature verified once (a large CRL hashes megabytes): the
        # same-second rule compares lists by their signer, the loop refuses none.
        signers = [_signer_of(crl, named, budget) for crl, _ in self._crls]
        _refuse_same_second(self._crls, signers)
        # First: a list no anchor signed is refused before its dates are judged (an
        # expired one was told to be fetched again, h165) and its entries are walked
        # (a 10 MiB one of odd entry extensions took seconds to be refused).
        for (crl, path), signer in zip(self._crls, signers, strict=True):
            if signer is None and budget.spent:
                issuer = crl.issuer.rfc4514_string()
                raise CRLError(
                    f"{path or 'the CRL'}: the CRL of {issuer} was not checked: the CRL files "
                    "and truststore hold more certificates of one name than mtls tries by "
                    f"signature ({_x509.MAX_SIGNATURE_TRIES} at most, three per list and "
                    "certificate): is it the right file? Give each CA's CRL and only the "
                    "intermediates that signed them",
                    path=path,
                    issuer=issuer,
                )
            if signer is None:
                issuer = crl.issuer.rfc4514_string()
                raise CRLError(
                    f"{path or 'the CRL'}: the CRL of {issuer} is not signed by any "
                    "certificate of the truststore (nor by an intermediate in the CRL file "
                    "that one of them issued): give the CRL of a CA the truststore holds "
                    "(an intermediate that signed it may go in the CRL file); the CRL of a "
                    "CA no longer trusted is not needed: remove it",
                    path=path,
                    issuer=issuer,
                )
        self.check_expiry(now=now)
        complete: set[x509.Name] = set()  # issuers with a list OpenSSL can use for all
        partials: dict[x509.Name, tuple[str, str, str | None, str]] = {}
        for crl, path in self._crls:
            issuer = crl.issuer.rfc4514_string()
            shown = path or "the CRL"
            if _extension(crl, x509.DeltaCRLIndicator) is not None:
                # OpenSSL would take it for the complete list: a certificate revoked
                # before its base list was issued is absent from it, and would connect.
                raise CRLError(
                    f"{shown}: the CRL of {issuer} is a delta CRL (DeltaCRLIndicator), "
                    "which lists only changes since its base CRL: give the complete "
                    "(base) CRL instead",
                    path=path,
                    issuer=issuer,
                )
            refusal = extension_refusal(crl, shown, issuer, path)
            if refusal is not None:
                raise refusal
            scope = _extension(crl, x509.IssuingDistributionPoint)
            partial = _partial_scope(scope)
            if partial is None:
                complete.add(crl.issuer)
            else:
                partials.setdefault(crl.issuer, (shown, issuer, path, partial))
            if scope is not None and scope.indirect_crl:
                # OpenSSL reads an indirect list only with extended CRL support, which
                # Python's ssl cannot turn on: it would be ignored, and every handshake
                # would fail for want of a CRL.
                raise CRLError(
                    f"{shown}: the CRL of {issuer} is an indirect CRL (it lists "
                    "certificates of other CAs), which OpenSSL does not use here: give "
                    "the CRL each CA issues for its own certificates",
                    path=path,
                    issuer=issuer,
                )
        for name, (shown, issuer, path, partial) in partials.items():
            if name not in complete:
                # OpenSSL without extended CRL support (Python's) skips such a list, or
                # finds the certificate out of its scope: every handshake would fail.
                raise CRLError(
                    f"{shown}: the CRL of {issuer} covers {partial} only, which OpenSSL "
                    "does not use to check a server's certificate here: give the CA's "
                    "complete CRL (beside it, or instead)",
                    path=path,
                    issuer=issuer,
                )
        if not explicit_now:
            self._checked = frozenset(anchors_der)

    def _signers(
        self, anchors_der: Sequence[bytes], budget: _x509.SignatureBudget
    ) -> dict[Any, list[tuple[x509.Certificate, None]]]:
        """The certificates that may sign these lists, by subject
        (:func:`_x509.by_subject`): ``anchors_der``, and the intermediates of the CRL
        files that one of them (or another such) issued.

        Each intermediate is tried once against each possible issuer of its issuer's
        name (the anchors of that name, then each intermediate as it is placed), within
        ``budget``: one left unplaced signs nothing here."""
        known = _Anchors(anchors_der)
        signers = [cert for cert, _ in known.pairs]
        pending = list(self._issuers)
        placed: list[x509.Certificate] | None = None  # None: the first pass, the anchors
        while pending:
            found = [
                cert
                for cert in pending
                if any(
                    _issued_by(cert, issuer, budget)  # a candidate taken from the budget
                    for issuer in (_named_anchors(known, cert) if placed is None else placed)
                )
            ]
            if not found:
                break
            pending = [cert for cert in pending if not any(cert is f for f in found)]
            signers.extend(found)
            placed = found
        return _x509.by_subject((signer, None) for signer in signers)

    def signed_by(
        self, anchors_der: Sequence[bytes]
    ) -> tuple[CRLSet, list[tuple[str | None, str]]]:
        """These lists split by their signer: a set of those signed by one of
        ``anchors_der`` (or by an intermediate of the files one of them issued), and
        the (file, issuer) of the others. A truststore that withdrew a CA leaves that
        CA's list vouching for nothing: what is left is checked with :meth:`check`."""
        budget = self._budget()
        named = self._signers(anchors_der, budget)
        kept: list[_Listed] = []
        others: list[tuple[str | None, str]] = []
        for crl, path in self._crls:
            if _signer_of(crl, named, budget) is not None:
                kept.append((crl, path))
            else:
                others.append((path, crl.issuer.rfc4514_string()))
        return (self if not others else CRLSet(kept, self._issuers)), others

    def _budget(self) -> _x509.SignatureBudget:
        """The tries one check of these lists may make (see :class:`_x509.SignatureBudget`)."""
        return _x509.SignatureBudget(len(self._issuers) + len(self._crls))

    def _warn_ca_only(self) -> None:
        """Warn (once per set of lists) when every list covers CA certificates only
        (``onlyContainsCACerts``): the leaf check needs a list for the peer's own
        certificate, which none covers, so every handshake fails ("different CRL
        scope", or "unable to get certificate CRL")."""
        if not self._crls or not all(
            (scope := _extension(crl, x509.IssuingDistributionPoint)) is not None
            and scope.only_contains_ca_certs
            for crl, _ in self._crls
        ):
            return
        if not _first_warning(b"ca-only" + b"".join(crl.signature for crl, _ in self._crls)):
            return
        log.warning(
            "%s: every CRL given covers CA certificates only (onlyContainsCACerts), and "
            "crl_check='leaf' checks the peer's own certificate: every handshake fails "
            "('different CRL scope'): give the issuing CA's CRL for end-entity "
            "certificates beside them",
            ", ".join(sorted({path or "the CRL" for _, path in self._crls})),
        )

    def install(self, ctx: ssl.SSLContext, check: CRLCheck) -> None:
        """Load the lists into ``ctx`` (through memory) and turn CRL checking on.

        Raises:
            CRLError: OpenSSL refused a list.
        """
        check_crl_check(check)
        if check == "leaf":
            self._warn_ca_only()
        try:
            load_cafile_pem(ctx, self.pem)
        except ssl.SSLError as exc:
            raise CRLError(f"OpenSSL refused a CRL ({exc.reason or exc})") from exc
        except OSError as exc:  # no descriptor for the memory file: not the list's fault
            raise CRLError(
                f"the CRLs cannot be handed to OpenSSL ({exc.strerror or type(exc).__name__})"
                f": {cannot_read_fix(exc) or 'retry; if it persists, report it'}"
            ) from exc
        ctx.verify_flags |= (
            ssl.VERIFY_CRL_CHECK_CHAIN if check == "chain" else ssl.VERIFY_CRL_CHECK_LEAF
        )


_Listed = tuple[x509.CertificateRevocationList, str | None]


def unreadable_crl(path: str | os.PathLike[str], exc: OSError, limit: int, fix: str) -> CRLError:
    """The error for a CRL file that cannot be read: ``fix`` for what the system said,
    or, over the size ``limit``, that a CA's list is not that large (no path to check,
    no bundle to split: h165)."""
    if exc.errno == errno.EFBIG:
        return CRLError(
            f"{os.fspath(path)}: larger than {limit // (1024 * 1024)} MiB, the most a CRL "
            "file may be here: is it the right file? (a CA's list is a few MiB)",
            path=path,
        )
    fix = cannot_read_fix(exc, path) or fix  # the device, not the path (EIO), and others
    return CRLError(f"{os.fspath(path)}: cannot read the CRL ({exc.strerror}): {fix}", path=path)


def _named_anchors(known: _Anchors, cert: x509.Certificate) -> list[x509.Certificate]:
    """The anchors named as ``cert``'s issuer (none when that name cannot be read)."""
    try:
        return [anchor for anchor, _ in known.named(cert.issuer)]
    except ValueError:
        return []


def _signer_of(
    crl: x509.CertificateRevocationList,
    named: dict[Any, list[tuple[x509.Certificate, None]]],
    budget: _x509.SignatureBudget,
) -> x509.Certificate | None:
    """The certificate of ``named`` (the signers by subject, :func:`_x509.by_subject`)
    whose key signed ``crl``: those of its issuer's name, each a verification of
    ``budget`` (compared with every signer by name, 2,000 CAs' lists took 24 s)."""
    try:
        candidates = named.get(_x509.canonical_name(crl.issuer), [])
    except ValueError:
        return None
    for anchor, _ in candidates:
        if not budget.spend():
            return None
        if _crl_signed_by(crl, anchor):
            return anchor
    return None


def _refuse_same_second(
    crls: Sequence[_Listed], signers: Sequence[x509.Certificate | None]
) -> None:
    """Refuse two different lists of one CA key and scope with the same thisUpdate.

    Of lists that score alike, OpenSSL uses the one with the latest thisUpdate; with
    the same second (``openssl ca -gencrl`` run twice), the first given: an older list
    given before the one that revokes a certificate let it through. Lists are compared
    by the key that signed them (a CA that re-keyed under its name signs with another:
    its lists are not compared), whether or not they say so in an
    AuthorityKeyIdentifier, and by the part of the CA's certificates they cover as
    OpenSSL tells them apart (:func:`_scope_class`): one that says "end-entity
    certificates only" covers a leaf as one that says nothing does."""
    seen: dict[tuple[x509.Name, object, object, _dt.datetime], _Listed] = {}
    for listed, signer in zip(crls, signers, strict=True):  # signer: _signer_of each
        crl, path = listed
        scope = _extension(crl, x509.IssuingDistributionPoint)
        key = (
            crl.issuer,
            _x509.public_key(signer).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if signer is not None
            else None,  # refused below as signed by no anchor
            _scope_class(scope),
            crl_this_update(crl),
        )
        other = seen.setdefault(key, listed)
        if other is listed or other[0].signature == crl.signature:
            continue  # the first of its kind, or the same list again
        issuer = crl.issuer.rfc4514_string()
        raise CRLError(
            f"{path or 'the CRL'}: two different CRLs of {issuer} have the same thisUpdate "
            f"({crl_this_update(crl).isoformat()}; the other is in {other[1] or 'the same set'}"
            "), so OpenSSL would use whichever comes first: keep only the current one "
            "(the higher CRL number)",
            path=path,
            issuer=issuer,
        )


def _scope_class(scope: x509.IssuingDistributionPoint | None) -> tuple[object, ...]:
    """What of an IssuingDistributionPoint sets lists apart for OpenSSL's choice: the
    distribution point's name, and a scope narrower than a leaf's (CA certificates,
    some reasons, attribute certificates only). Not onlyContainsUserCerts: for a leaf
    such a list rates as one without the extension."""
    if scope is None:
        return ((), None, False, None, False)
    return (
        tuple(scope.full_name or ()),
        scope.relative_name,
        scope.only_contains_ca_certs,
        scope.only_some_reasons,
        scope.only_contains_attribute_certs,
    )


# The critical extensions OpenSSL processes in a CRL (crl_cb) and in its entries
# (crl_set_issuers); any other critical one makes it refuse the list for every check.
_OPENSSL_CRL_CRITICAL = (
    x509.IssuingDistributionPoint,
    x509.AuthorityKeyIdentifier,
    x509.DeltaCRLIndicator,
)


def extension_refusal(
    crl: x509.CertificateRevocationList, shown: str, issuer: str, path: str | None
) -> CRLError | None:
    """Why OpenSSL would not use ``crl``, whatever the truststore: an extension that
    cannot be read, or a critical one it does not process; ``None`` when neither.
    ``shown`` names the list's file in the message."""
    try:
        unknown = _openssl_refuses(crl)
    except (ValueError, x509.DuplicateExtension) as exc:
        return CRLError(
            f"{shown}: the CRL of {issuer} has an extension that cannot be read "
            f"({_x509.parse_error_text(str(exc))}): check the file",
            path=path,
            issuer=issuer,
        )
    if unknown is None:
        return None
    # OpenSSL marks the list unusable: every handshake would fail "unhandled critical
    # CRL extension", naming no file.
    return CRLError(
        f"{shown}: the CRL of {issuer} has a critical {unknown}, which OpenSSL does not "
        "process (RFC 5280 5.2: such a list must not be used), so every handshake would "
        "fail: give a CRL without it",
        path=path,
        issuer=issuer,
    )


def _openssl_refuses(crl: x509.CertificateRevocationList) -> str | None:
    """The critical extension of ``crl`` (or of an entry) that makes OpenSSL refuse the
    list, named with its OID, or ``None``.

    Raises:
        ValueError: an extension cryptography cannot read.
    """
    for ext in crl.extensions:
        if ext.critical and not isinstance(ext.value, _OPENSSL_CRL_CRITICAL):
            return f"extension {ext.oid.dotted_string}"
    unknown = critical_entry_extension(crl, _OPENSSL_ENTRY_CRITICAL)
    return None if unknown is None else f"entry extension {unknown}"


# The entry extensions, by OID, as critical_entry_extension reads them.
CRL_REASON = "2.5.29.21"
INVALIDITY_DATE = "2.5.29.24"
_OPENSSL_ENTRY_CRITICAL = frozenset({"2.5.29.29"})  # CertificateIssuer (crl_set_issuers)
_TIMES = (0x17, 0x18)  # UTCTime, GeneralizedTime
_ENUMERATED = 0x0A


def critical_entry_extension(
    crl: x509.CertificateRevocationList, handled: frozenset[str], *, judge: bool = True
) -> str | None:
    """The OID of the first critical extension of an entry of ``crl`` that is not in
    ``handled``, or ``None`` (always, with ``judge`` false: the entries are only read,
    and refused as below when they cannot be).

    Read from the list's DER, not through cryptography, which refuses a whole entry
    over one value it cannot read: a CRLReason of 7, which RFC 5280 leaves unassigned
    and OpenSSL and Java read (Java as UNUSED). One odd entry must not make the list
    unusable for every other certificate of its CA.

    Raises:
        ValueError: the entries are not DER, an entry has an extension twice, or a
            CRLReason that is not an ENUMERATED (OpenSSL marks such a list invalid,
            Java refuses it).
    """
    try:  # cryptography's reading first: twice as fast, and the same answer when it reads
        for entry in crl:
            for ext in entry.extensions:
                if ext.critical and judge:  # rare: the OID's text is made for those only
                    oid: str = ext.oid.dotted_string
                    if oid not in handled:
                        return oid
        return None
    except (ValueError, x509.DuplicateExtension):
        pass  # an entry cryptography cannot read: the DER decides
    return _critical_entry_extension_der(crl, handled, judge)


def _critical_entry_extension_der(
    crl: x509.CertificateRevocationList, handled: frozenset[str], judge: bool
) -> str | None:
    tbs = crl.tbs_certlist_bytes
    fields = _der.spans(tbs, *_der.single_span(tbs, _der.SEQUENCE))
    # [version], signature, issuer, thisUpdate, [nextUpdate], [revokedCertificates], [0]
    at = (1 if fields and fields[0][0] == _der.INTEGER else 0) + 3
    at += at < len(fields) and fields[at][0] in _TIMES
    if at >= len(fields) or fields[at][0] != _der.SEQUENCE:
        return None  # no entries
    # One entry at a time (a list may have hundreds of thousands; the file's size is
    # bounded by MAX_CRL_BYTES): userCertificate, revocationDate, [crlEntryExtensions].
    at, end = fields[at][1], fields[at][2]
    while at < end:
        _, start, at = _der.header(tbs, at, end)
        parts = _der.spans(tbs, start, at)
        if len(parts) == 2:
            continue
        if len(parts) != 3 or parts[0][0] != _der.INTEGER or parts[2][0] != _der.SEQUENCE:
            raise _der.DERError("a CRL entry that is not (serial, date, extensions)")
        seen: set[str] = set()
        for _, ext_start, ext_stop in _der.spans(tbs, parts[2][1], parts[2][2]):
            # Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }
            items = _der.spans(tbs, ext_start, ext_stop)
            if (
                not 2 <= len(items) <= 3
                or items[0][0] != _der.OID
                or items[-1][0] != _der.OCTET_STRING
                or (len(items) == 3 and items[1][0] != _der.BOOLEAN)
            ):
                raise _der.DERError("a CRL entry extension that is not an Extension")
            oid = _der.decode_oid(tbs[items[0][1] : items[0][2]])
            if oid in seen:
                raise _der.DERError(f"a CRL entry with extension {oid} twice")
            seen.add(oid)
            if oid == CRL_REASON:  # OpenSSL decodes it (crl_set_issuers), and refuses the
                _der.check_single(tbs[items[-1][1] : items[-1][2]], _ENUMERATED)  # list if
            critical = len(items) == 3 and tbs[items[1][1] : items[1][2]] != b"\x00"
            if critical and judge and oid not in handled:  # it cannot, whatever the
                return oid  # reason's number
    return None


def _partial_scope(scope: x509.IssuingDistributionPoint | None) -> str | None:
    """What part of its issuer's certificates a list covers, when OpenSSL cannot use it
    for a TLS peer's certificate: some revocation reasons only, or attribute
    certificates only (``None``: it can; a CA-only list serves intermediates)."""
    if scope is None:
        return None
    if scope.only_some_reasons:
        return "some revocation reasons (onlySomeReasons)"
    if scope.only_contains_attribute_certs:
        return "attribute certificates (onlyContainsAttributeCerts)"
    return None


_WARNED: set[bytes] = set()  # what was warned about already (digests)


def _first_warning(digest: bytes) -> bool:
    """Whether ``digest`` was not warned about yet (then it is, from now on)."""
    return first_time(_WARNED, digest, at_most=256)


def warn_intermediate_anchors(where: str, anchors_der: Sequence[bytes]) -> None:
    """Warn (once per truststore content) when ``crl_check="chain"`` meets an anchor
    that is not a root: every truststore certificate is an anchor, so the chain ends
    at that intermediate, and OpenSSL finds no issuer to verify the intermediate's own
    CRL with: every handshake through it fails "unable to get certificate CRL"."""
    if not _first_warning(hashlib.sha256(b"anchors" + b"".join(anchors_der)).digest()):
        return
    below = [
        cert.subject.rfc4514_string()
        for cert, _ in _pairs(anchors_der)
        if not _x509.same_name(cert.issuer, cert.subject)
    ]
    if below:
        log.warning(
            "%s: crl_check='chain' with %d intermediate CA certificate(s) in the truststore "
            "(%s): each is an anchor, so OpenSSL cannot check its own CRL and refuses every "
            "chain through it ('unable to get certificate CRL'): keep only the root in the "
            "truststore and put the intermediate in the CRL file",
            where,
            len(below),
            ", ".join(below[:3]) + (", ..." if len(below) > 3 else ""),
        )


# --------------------------------------------------------------------------- signatures


def _verify_signature(
    key: Any,
    signature: bytes,
    data: bytes,
    algorithm: hashes.HashAlgorithm | None,
    pss: padding.PSS | None = None,
) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key``: RSA with PKCS#1 v1.5,
    or RSASSA-PSS with ``pss`` (:func:`pss_parameters`); ECDSA, DSA, EdDSA."""
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, pss or padding.PKCS1v15(), algorithm)
        elif pss is not None:
            return False  # RSASSA-PSS names an RSA key
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, _x509.DSAPublicKey) and algorithm is not None:
            key.verify(signature, data, algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


#: The hash functions RSASSA-PSS parameters name (RFC 4055, RFC 8702), by OID.
_PSS_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": hashes.SHA1,
    "2.16.840.1.101.3.4.2.4": hashes.SHA224,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
    "2.16.840.1.101.3.4.2.5": hashes.SHA512_224,
    "2.16.840.1.101.3.4.2.6": hashes.SHA512_256,
    "2.16.840.1.101.3.4.2.7": hashes.SHA3_224,
    "2.16.840.1.101.3.4.2.8": hashes.SHA3_256,
    "2.16.840.1.101.3.4.2.9": hashes.SHA3_384,
    "2.16.840.1.101.3.4.2.10": hashes.SHA3_512,
}
_MGF1 = "1.2.840.113549.1.1.8"
_RSASSA_PSS = "1.2.840.113549.1.1.10"
#: The longest salt read: a 65,536-bit key's (a 9,216-bit key's longest is 1,118 bytes).
_MAX_PSS_SALT = 8192


def pss_parameters(data: bytes, start: int, end: int) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    """The padding and hash of an RSASSA-PSS signature, from its AlgorithmIdentifier,
    whose content (the OID, then RFC 4055's RSASSA-PSS-params; an empty SEQUENCE: every
    default, SHA-1) is ``data[start:end]``. cryptography reads them for certificates
    and CRLs, not for OCSP responses (``signature_hash_algorithm`` raises there).

    Raises:
        DERError (a ValueError): not RSASSA-PSS, or its parameters absent (RFC 4055
            3.1 requires them in a signature; OpenSSL refuses such a signature too) or
            not such parameters, a hash not listed, a mask function other than MGF1, a
            salt length out of range, or a trailer field other than 1.
    """
    algorithm = _der.spans(data, start, end)
    if len(algorithm) != 2 or _oid_at(data, algorithm[0]) != _RSASSA_PSS:
        raise _der.DERError("not an RSASSA-PSS AlgorithmIdentifier with its parameters")
    # RFC 4055's defaults (SHA-1 answers are believed whatever their padding, as Java's).
    digest: hashes.HashAlgorithm = hashes.SHA1()  # noqa: S303
    mask: hashes.HashAlgorithm = hashes.SHA1()  # noqa: S303
    salt, last = 20, -1
    tag, content, stop = algorithm[1]
    if tag != _der.SEQUENCE:
        raise _der.DERError("not RSASSA-PSS parameters")
    for field, field_start, field_stop in _der.spans(data, content, stop):
        number = field - 0xA0  # [0] hash, [1] mask function, [2] salt, [3] trailer
        if not last < number <= 3:
            raise _der.DERError("not RSASSA-PSS parameters")
        last = number
        inner, inner_start, inner_stop = _der.header(data, field_start, field_stop)
        if inner_stop != field_stop:
            raise _der.DERError("trailing bytes in RSASSA-PSS parameters")
        if number == 0:
            digest = _pss_hash(data, inner, inner_start, inner_stop)
        elif number == 1:
            mgf = _der.spans(data, inner_start, inner_stop) if inner == _der.SEQUENCE else []
            if len(mgf) != 2 or _oid_at(data, mgf[0]) != _MGF1:
                raise _der.DERError("a mask generation function other than MGF1")
            mask = _pss_hash(data, *mgf[1])
        else:
            value = -1
            if inner == _der.INTEGER:
                value = _der.decode_int(data[inner_start:inner_stop])
            if number == 2 and 0 <= value <= _MAX_PSS_SALT:
                salt = value
            elif number != 3 or value != 1:
                raise _der.DERError("a PSS salt length or trailer field out of range")
    return padding.PSS(padding.MGF1(mask), salt), digest


def _oid_at(data: bytes, span: tuple[int, int, int]) -> str:
    tag, start, stop = span
    if tag != _der.OID:
        raise _der.DERError("expected an object identifier")
    return _der.decode_oid(data[start:stop])


def _pss_hash(data: bytes, tag: int, start: int, end: int) -> hashes.HashAlgorithm:
    """The hash a HashAlgorithm AlgorithmIdentifier names (its OID, an optional NULL):
    the content in ``data[start:end]`` of an element with ``tag``."""
    algorithm = _der.spans(data, start, end) if tag == _der.SEQUENCE else []
    if (
        not algorithm
        or len(algorithm) > 2
        or (len(algorithm) == 2 and algorithm[1][0] != _der.NULL)
    ):
        raise _der.DERError("not a hash AlgorithmIdentifier")
    found = _PSS_HASHES.get(_oid_at(data, algorithm[0]))
    if found is None:
        raise _der.DERError("a PSS hash mtls does not know (it reads SHA-1, SHA-2, SHA-3)")
    return found()


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(_x509.public_key(issuer))  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return False


def _issued_by(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    budget: _x509.SignatureBudget | None = None,
) -> bool:
    """Whether ``issuer`` issued ``cert``: its name, key identifier and signature (a
    try of ``budget``, once the name matches)."""
    if not _x509.same_name(cert.issuer, issuer.subject):
        return False
    if budget is not None and (not budget.spend() or _x509.costly_key(issuer)):
        return False  # linking a CRL file's intermediates: see _x509.costly_key
    aki = _extension(cert, x509.AuthorityKeyIdentifier)
    ski = _extension(issuer, x509.SubjectKeyIdentifier)
    if (
        aki is not None
        and aki.key_identifier is not None
        and ski is not None
        and aki.key_identifier != ski.digest
    ):
        return False
    try:
        _x509.verify_issued_by(cert, issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _extension(signed: x509.Certificate | x509.CertificateRevocationList, kind: type[Any]) -> Any:
    """The value of ``signed``'s extension of ``kind`` (a certificate's or a CRL's), or
    ``None`` when it has none or cryptography cannot read it."""
    if isinstance(signed, x509.Certificate):
        return _x509.extension(signed, kind)  # its warnings logged, never raised
    try:
        return signed.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return None


class _Anchors:
    """A context's anchors, parsed once when the check is installed (held by the
    context's classes, so they die with the context: no global cache)."""

    __slots__ = ("_by_name", "ders", "digest", "pairs")

    def __init__(self, ders: Iterable[bytes]) -> None:
        kept = tuple(ders)
        self.pairs: list[tuple[x509.Certificate, bytes]] = _pairs(kept)
        self.ders: frozenset[bytes] = frozenset(kept)
        # Names the set without holding it (what outlives the context may key by it).
        self.digest: bytes = hashlib.sha256(b"".join(sorted(self.ders))).digest()
        self._by_name: dict[Any, list[tuple[x509.Certificate, bytes]]] | None = None

    def named(self, name: x509.Name) -> list[tuple[x509.Certificate, bytes]]:
        """The anchors whose subject is ``name`` as OpenSSL compares names
        (:func:`_x509.same_name`), in the truststore's order: one lookup in an index
        made on first use, not a comparison per anchor (a 5,000-anchor truststore's
        issuer search was 5,000 of them on every check).

        Raises:
            ValueError: ``name`` cannot be read (as :func:`_x509.same_name`).
        """
        by_name = self._by_name
        if by_name is None:
            # Made whole, then published: a thread racing here makes its own, equal.
            by_name = _x509.by_subject(self.pairs)
            self._by_name = by_name
        return by_name.get(_x509.canonical_name(name), [])


def _anchor_set(anchors: Sequence[bytes] | _Anchors) -> _Anchors:
    return anchors if isinstance(anchors, _Anchors) else _Anchors(tuple(anchors))


def _pairs(ders: Iterable[bytes]) -> list[tuple[x509.Certificate, bytes]]:
    """(certificate, DER) for each DER cryptography can read (OpenSSL may take more:
    such a certificate cannot be checked, nor be an issuer we verify with)."""
    pairs = []
    for der in ders:
        try:
            pairs.append((_x509.load_cert(der), der))
        except ValueError:
            continue
    return pairs


@_der.bytes_cache(4096, size=lambda cert, issuer: max(len(cert), len(issuer)))
def _issued(cert: bytes, issuer: bytes) -> bool:
    """:func:`_issued_by` on DER, remembered: a signature is verified once per pair,
    not on every handshake."""
    return _issued_by(_x509.load_cert(cert), _x509.load_cert(issuer))


CRLSet.__module__ = "mtls"  # public as mtls.CRLSet (mtls/__init__.py loads it on first use)
