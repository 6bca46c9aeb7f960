"""Keystore and Truststore: every Java store format in, keytool-readable stores out.

The store classes are thin over three modules: ``_entries`` (the entry model and
alias folding), ``_readers`` (bytes to entries: detection, one reader per format) and
``_writers`` (entries to bytes). :func:`load_store` is the one way to open a store a
:class:`~mtls.StoreConfig` names, so a missing or unreadable file gives the same
error whoever opens it. Keys stay in memory as PKCS#8 DER; writes are atomic, mode
0600 for anything with a key.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal, Self, overload

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from . import _dates, _jks, _x509
from ._entries import Entries, KeyEntry, Taken, alias_for, fold, unique_alias
from ._entries import where as _where
from ._errors import KeyEntryError, KeystoreError, KeystoreFormatError, WrongPasswordError
from ._files import atomic_write, read_input
from ._fork import forks_wait
from ._keygen import (
    check_signature_algorithm,
    key_shape,
    new_private_key,
    parse_dname,
    parse_sans,
    signature_for,
    validity,
)
from ._log import log
from ._readers import (
    CERTLESS_KIND,
    Parsed,
    detect_format,
    java_unreadable_note,
    key_matches,
    open_error,
    parse,
    read_store_file,
    store_bytes,
)
from ._secret import Secret, as_secret, reveal, scrub_tracebacks
from ._types import KeyType, WriteFormat, check_flag
from ._writers import (
    FileIdentity,
    file_identity,
    keystore_bytes,
    to_der,
    truststore_bytes,
    write_format,
)

if TYPE_CHECKING:
    from ._config import StoreConfig


Password = str | Secret


# --------------------------------------------------------------------------- helpers


def _describe(der: bytes) -> str:
    try:
        return _x509.subject_text(_x509.load_cert(der))
    except ValueError:  # OpenSSL may read it: its subject, if our own walk of its DER can
        subject = _x509.lenient_leaf_info(der)[0]
        return f"<unreadable certificate: {subject}>" if subject else "<unreadable certificate>"


def check_purpose(purpose: object) -> Literal["client", "server"] | None:
    """``purpose`` as :meth:`Keystore.load` takes it.

    Raises:
        ValueError: another string (a role misspelt would choose as if none were
            given).
        TypeError: anything but a string or ``None``.
    """
    for known in (None, "client", "server"):
        if purpose == known:
            return known
    if not isinstance(purpose, str):
        raise TypeError(f'purpose must be "client", "server" or None, not {purpose!r}')
    raise ValueError(f'purpose must be "client", "server" or None, not {purpose!r}')


def _named(path: str | os.PathLike[str] | None) -> str | None:
    """How a store read from bytes is named: ``path`` as text (a ``Path`` too)."""
    return None if path is None else os.fsdecode(path)


def _cert_or_raise(der: bytes, alias: str, path: str | None) -> x509.Certificate:
    try:
        return _x509.load_cert(der)
    except ValueError as exc:
        raise KeystoreFormatError(
            f"{_where(path)}: certificate {alias!r} cannot be parsed by cryptography "
            f"({_reason(exc)}); OpenSSL and Java may still read it, and contexts use it: "
            "to inspect it, export its bytes (keytool -exportcert) and read them with "
            "openssl x509 -inform DER -text",
            path=path,
            alias=alias,
        ) from exc


def _reason(exc: ValueError) -> str:
    """cryptography's reason, first sentence, bounded (it may quote bytes)."""
    text = str(exc).split(". ")[0].strip().rstrip(".") or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _is_pem(data: bytes) -> bool:
    try:
        return detect_format(data) == "PEM"
    except KeystoreFormatError:
        return False  # _parse reports it, naming the file


def _secrets_text(entries: Entries) -> str:
    count = entries.secret_count
    return f", {count} secret key{'' if count == 1 else 's'}" if count else ""


#: How many aliases a message lists (the JDK's cacerts has about 150).
_LISTED_MAX = 12


def listed_aliases(aliases: Sequence[str], wanted: str | None = None) -> str:
    """Aliases for a message (the CLI's too), each quoted and escaped as the file has it (a leading
    space, a line break), or ``(none)``; past a dozen, those closest to ``wanted``
    first and how many more there are."""
    if len(aliases) > _LISTED_MAX:
        import difflib  # noqa: PLC0415 - a message about a big store only

        close = difflib.get_close_matches(
            fold(wanted or ""), [fold(a) for a in aliases], n=_LISTED_MAX, cutoff=0.4
        )
        first = sorted((a for a in aliases if fold(a) in close), key=lambda a: close.index(fold(a)))
        first += [a for a in aliases if a not in first][: _LISTED_MAX - len(first)]
        rest = len(aliases) - len(first)
        shown = ", ".join(map(_jks.shown, first))
        return f"{shown} and {rest:,} more (list them with mtls list)"
    return ", ".join(map(_jks.shown, aliases)) or "(none)"


#: The longest validity :meth:`Keystore.generate` gives (days): from 2026 it reaches the
#: year 9966, short of 9999, where X.509 dates end; the CLI's ``--days`` has the same bound.
MAX_DAYS = 2_900_000


class _StoreBase:
    """What Keystore and Truststore share: construction, lookup, export, removal."""

    def __init__(self) -> None:
        """An empty store: add entries, or use ``load`` to read one."""
        self._entries = Entries()
        #: The format the store was read from (``JKS``, ``PKCS12``, ...), or None if new.
        self.store_type: str | None = None
        #: The file it was read from, or None.
        self.path: str | None = None
        # The file load() read, as found then (absolute path, device, inode): what a
        # save() to the same file keeps the format of (h253: a relative path compared
        # after a chdir; a from_bytes label taken for a file read).
        self._read_from: FileIdentity | None = None
        # What mtls read from the file but the JDK's reader (keytool, WSO2's gateway)
        # does not (Parsed.java_notes): one sentence each, for mtls check.
        self._java_notes: tuple[str, ...] = ()
        # Read from a PKCS#12 in the JDK's password-less format (see passwordless).
        self._passwordless = False
        # When the file's bytes would give another certificate to a key (Parsed
        # .rechoose_at: one expires, another for the key becomes valid), or None.
        self._rechoose_at: _dt.datetime | None = None

    def _java_check_notes(self) -> tuple[str, ...]:
        """:attr:`_java_notes`, and for a store read from one of Java's formats, the
        note for a certificate Java cannot parse (its whole store refused there): what
        the command line shows (``mtls check``, ``mtls list``), worked out when asked."""
        if self.store_type not in ("JKS", "JCEKS", "PKCS12", "BKS", "UBER", "BCFKS"):
            return self._java_notes
        note = java_unreadable_note(self._entries.certificates())
        return self._java_notes if note is None else (*self._java_notes, note)

    def __copy__(self) -> Self:
        """A store of its own with the same entries (``copy.copy``): adding to it or
        removing from it leaves this one as it is. (The entries themselves, which never
        change, are shared; ``copy.deepcopy`` copies them too.)"""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._entries = self._entries.copy()
        return new

    @property
    def passwordless(self) -> bool:
        """Whether the store was read from a PKCS#12 in the JDK's password-less format:
        no MAC, certificates not encrypted (the JDK's ``cacerts`` since JDK 18, or
        keytool with ``keystore.pkcs12.certProtectionAlgorithm`` and ``macAlgorithm``
        ``NONE``). Java opens such a file without a password. ``save(...,
        passwordless=store.passwordless)`` writes it back so, as keytool keeps the
        protection a store was loaded with; by default a save protects it."""
        return self._passwordless

    def remove(self, alias: str) -> None:
        """Delete an entry (``keytool -delete``).

        Raises:
            KeyEntryError: no entry has this alias.
        """
        self._entries.remove(alias)

    def rename(self, alias: str, new_alias: str) -> None:
        """Give an entry another alias, in its place (``keytool -changealias``).

        A key entry keeps its key and chain as they are; a key read by
        :meth:`Keystore.inspect` from a JKS file stays protected as that file
        protected it. Aliases are compared case-insensitively, as in Java: a change of
        case alone is a rename (a JKS file stores aliases lower-cased).

        Raises:
            KeyEntryError: no entry has ``alias``, or another entry has ``new_alias``
                (the store is unchanged).
            ValueError: ``new_alias`` is empty.
        """
        try:
            self._entries.rename(alias, new_alias)
        except KeyEntryError as exc:
            if alias in self:
                raise KeyEntryError(
                    f"{_where(self.path)}: alias {new_alias!r} already exists: choose "
                    "another alias, or remove that entry first",
                    path=self.path,
                    alias=new_alias,
                ) from exc
            self._chain_der(alias)  # names the aliases there are
            raise

    def add_certificate(
        self, alias: str, certificate: x509.Certificate | bytes, *, replace: bool = False
    ) -> None:
        """Add a trusted-certificate entry, like ``keytool -importcert -alias ALIAS``.

        The same on both store classes: in a :class:`Truststore` the certificate
        becomes a trust anchor (``Truststore.add`` is an alias); in a
        :class:`Keystore` it is a trusted entry beside the key entries.

        Args:
            alias: the entry's alias (case-insensitive, as in Java).
            certificate: an ``x509.Certificate``, or DER or PEM bytes.
            replace: overwrite an existing alias instead of refusing it.

        Raises:
            KeyEntryError: the alias exists and ``replace`` is false (the store is
                unchanged).
            ValueError: the alias is empty, or the bytes are not a certificate.
        """
        self._entries.add_cert(alias, to_der(certificate), replace=replace)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every alias: key entries, trusted certificates, then secret keys, each in order."""
        keys = tuple(e.alias for e in self._entries.key_entries())
        secrets = tuple(alias for alias, _ in self._entries.secret_entries())
        return keys + tuple(alias for alias, _ in self._entries.cert_entries()) + secrets

    @property
    def secret_keys(self) -> Mapping[str, str]:
        """Entries TLS cannot use, as alias -> what they are.

        These are JCEKS secret-key entries (``keytool -genseckey``, ``-importpass``)
        and Bouncy Castle secret or public keys. They are listed, as ``keytool -list``
        does, and never decrypted: no context can use them, :meth:`certificate`
        raises :class:`KeyEntryError` for them, and a store holding them cannot be
        saved until they are removed.
        """
        return dict(self._entries.secret_entries())

    def entry_type(
        self, alias: str
    ) -> Literal["PrivateKeyEntry", "trustedCertEntry", "SecretKeyEntry"]:
        """keytool's name for the kind of entry ``alias`` is.

        Raises:
            KeyEntryError: no entry has this alias.
        """
        secret = self._entries.secret(alias)
        if secret is not None:
            # keytool lists a key without a certificate as a PrivateKeyEntry (chain 0).
            return "PrivateKeyEntry" if secret[1].startswith(CERTLESS_KIND) else "SecretKeyEntry"
        self._chain_der(alias)  # KeyEntryError naming the aliases there are
        return "PrivateKeyEntry" if self._entries.key(alias) is not None else "trustedCertEntry"

    def __contains__(self, alias: object) -> bool:
        return isinstance(alias, str) and (
            self._entries.chain(alias) is not None or self._entries.secret(alias) is not None
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.aliases)

    def _chain_der(self, alias: str) -> tuple[bytes, ...]:
        chain = self._entries.chain(alias)
        secret = self._entries.secret(alias)
        if secret is not None:
            raise KeyEntryError(
                f"{_where(self.path)}: {secret[0]!r} is a {secret[1]}: it holds no "
                "certificate; choose a key or certificate entry",
                path=self.path,
                alias=alias,
            )
        if chain is None:
            raise KeyEntryError(
                f"{_where(self.path)}: no entry with alias {alias!r}; "
                f"aliases are: {listed_aliases(self.aliases, alias)}",
                path=self.path,
                alias=alias,
            )
        return chain

    def is_key_entry(self, alias: str) -> bool:
        """True if ``alias`` names a private-key entry (keytool's ``PrivateKeyEntry``)."""
        return self._entries.key(alias) is not None

    def certificate(self, alias: str) -> x509.Certificate:
        """The certificate of an entry (a key entry's leaf).

        Raises:
            KeyEntryError: no entry has this alias (case-insensitive, as in Java).
        """
        return _cert_or_raise(self._chain_der(alias)[0], alias, self.path)

    def certificate_chain(self, alias: str) -> tuple[x509.Certificate, ...]:
        """The certificate chain of an entry, leaf first (one certificate for trusted entries)."""
        return tuple(_cert_or_raise(der, alias, self.path) for der in self._chain_der(alias))

    def export_certificate(self, alias: str, encoding: Literal["PEM", "DER"] = "PEM") -> bytes:
        """The entry's certificate as ``keytool -exportcert`` writes it.

        DER (the default of keytool, ``encoding="DER"`` here) is byte for byte what
        keytool exports; PEM is ``keytool -exportcert -rfc``.
        """
        der = self._chain_der(alias)[0]
        enc = encoding.upper()
        if enc == "DER":
            return der
        if enc == "PEM":
            return _x509.der_to_pem(der).encode("ascii")
        raise ValueError(f"encoding must be 'PEM' or 'DER', not {encoding!r}")


# What Keystore.generate(ca=True) gives a CA's certificate: it signs certificates and
# CRLs, and its own OCSP answers (digitalSignature).
_CA_KEY_USAGE: Final = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def _one_password(password: Password, key_password: Password | None) -> bool:
    """Whether a save has one password (no key password, or the same): what PKCS#12
    holds."""
    return key_password is None or reveal(key_password) == reveal(password)


class Keystore(_StoreBase):
    """Identities: private keys with their certificate chains, plus any trusted entries.

    Load one with :meth:`load` (or :meth:`from_bytes`); the format is detected from
    the content. Build one with :meth:`generate` (``keytool -genkeypair``) or
    :meth:`add_key`, and write it with :meth:`save` in a format keytool reads.

    Key material stays in this process's memory as PKCS#8 DER; ``repr()`` shows
    the store type, aliases and subjects, never a password or key bytes.

    Example:
        >>> ks = Keystore.generate("gateway", "CN=gateway", key_type="EC")
        >>> ks.key_aliases
        ('gateway',)
        >>> ks.certificate("gateway").subject.rfc4514_string()
        'CN=gateway'
    """

    # -- loading

    @classmethod
    @scrub_tracebacks
    def load(
        cls,
        path: str | os.PathLike[str],
        password: Password | None,
        *,
        key_password: Password | None = None,
        store_type: str | None = None,
        allow_unprotected: bool = False,
        purpose: Literal["client", "server"] | None = None,
    ) -> Self:
        """Read a keystore file (JKS, JCEKS, PKCS#12, BKS, UBER, BCFKS, PEM or DER; detected
        from the bytes).

        Args:
            path: the store file.
            password: the store password (integrity check, PKCS#12 MAC, PEM key).
                ``None`` for a PKCS#12 with a MAC is the empty password: the MAC must
                verify with it, or the store is refused.
            key_password: the key password; defaults to ``password``. Like Java's
                SunX509 key manager, every key entry must unlock with it.
            store_type: the declared type (``<Type>`` in a profile). The content
                decides the format, as in Java since JDK 9; but a type with an
                integrity check (JKS, JCEKS, PKCS12, BKS, UBER) declared together
                with a password must be met by a file that has one.
            allow_unprotected: accept a PEM, DER or MAC-less PKCS#12 file where
                ``store_type`` and ``password`` promise an integrity check (for
                estates that really keep PEM there).
            purpose: the TLS role the keys will present in, ``"client"`` or
                ``"server"``, where known. Of several certificates the file holds for
                one key (a PEM with a renewal beside the certificate it replaces, a
                PKCS#12 without localKeyIds), the one valid now that was issued last is
                taken; with a ``purpose``, of those valid now one peers accept in that
                role comes first (a renewal issued without clientAuth is passed over for
                a client, with a warning). A profile set reads its keystores as
                ``"client"``, a rotating server as ``"server"``.

        Returns:
            The loaded store. Nothing is kept open.

        Raises:
            KeystoreNotFoundError: the file does not exist (also a FileNotFoundError).
            WrongPasswordError: the store or a key password is wrong.
            KeystoreFormatError: the bytes are not a readable store, a file
                without an integrity check where one was promised, or a file over
                8 MiB (docs/security.md, "Limits").
            KeystoreError: the file cannot be read (permissions, a directory).
            ValueError: ``purpose`` is another string (``TypeError``: not a string).
        """
        store = cls._read(
            read_store_file(path),
            password,
            key_password=key_password,
            store_type=store_type,
            allow_unprotected=allow_unprotected,
            path=os.fsdecode(path),
            purpose=check_purpose(purpose),
        )
        store._read_from = file_identity(path)
        return store

    @classmethod
    @scrub_tracebacks
    def from_bytes(
        cls,
        data: bytes,
        password: Password | None,
        *,
        key_password: Password | None = None,
        store_type: str | None = None,
        allow_unprotected: bool = False,
        path: str | os.PathLike[str] | None = None,
        purpose: Literal["client", "server"] | None = None,
    ) -> Self:
        """Read a keystore from bytes in memory (a Kubernetes secret, a download).

        The same reading as :meth:`load`: the format comes from the bytes, and every
        key entry is decrypted.

        Args:
            data: the whole store (JKS, JCEKS, PKCS#12, BKS, UBER, BCFKS, PEM or DER).
            password: the store password, as for :meth:`load`.
            key_password: as for :meth:`load`.
            store_type: as for :meth:`load`.
            allow_unprotected: as for :meth:`load`.
            path: how messages and :attr:`path` name the bytes (a file or secret
                name); ``None``: messages say "the store".
            purpose: as for :meth:`load`.

        Returns:
            The loaded store.

        Raises:
            WrongPasswordError: the store or a key password is wrong.
            KeystoreFormatError: the bytes are not a readable store, or have no
                integrity check where ``store_type`` and ``password`` promise one.
        """
        return cls._read(
            data,
            password,
            key_password=key_password,
            store_type=store_type,
            allow_unprotected=allow_unprotected,
            path=_named(path),
            purpose=check_purpose(purpose),
        )

    @classmethod
    @forks_wait  # OpenSSL's locks: see mtls._fork.OPENSSL_WORK
    def _read(
        cls,
        data: bytes,
        password: Password | None,
        *,
        key_password: Password | None = None,
        store_type: str | None,
        allow_unprotected: bool,
        path: str | None,
        with_keys: bool = True,
        key_alias: str | None = None,
        purpose: Literal["client", "server"] | None = None,
    ) -> Self:
        data = store_bytes(data, "Keystore.from_bytes")
        parsed = parse(
            data,
            as_secret(password),
            as_secret(key_password),
            # PEM keys are read as they are (unencrypted ones need no password).
            with_keys=with_keys or _is_pem(data),
            path=path,
            declared=store_type,
            allow_unprotected=allow_unprotected,
            key_alias=key_alias,
            purpose=purpose,
        )
        return cls._from_parsed(parsed, path)

    @classmethod
    def _from_parsed(cls, parsed: Parsed, path: str | None) -> Self:
        """The store of what a reader returned (entries kept as the file has them)."""
        store = cls()
        store.store_type = parsed.store_type
        store.path = path
        store._java_notes = tuple(parsed.java_notes)
        store._passwordless = parsed.passwordless
        store._rechoose_at = parsed.rechoose_at
        for key in parsed.keys:
            store._entries.add_key(key, loaded=True)
        for alias, der in parsed.certs:
            store._entries.add_cert(alias, der, loaded=True)
        for alias, kind in parsed.secrets:
            store._entries.add_secret(alias, kind)
        log.debug("loaded %r", store)
        return store

    @classmethod
    @scrub_tracebacks
    def inspect(
        cls,
        path: str | os.PathLike[str],
        password: Password | None = None,
        *,
        store_type: str | None = None,
        allow_unprotected: bool = False,
    ) -> Keystore:
        """Read every entry and certificate without decrypting any private key.

        This is what ``keytool -list`` does: key entries are listed with their
        certificate chains, and no key password is needed (``password`` verifies a
        JKS store's integrity and decrypts PKCS#12 certificates; ``None`` skips the
        JKS check). The store cannot build a context: use :meth:`load` for that. A
        store read from a JKS file can be saved as JKS, with its keys as the file
        protected them (each under its own password, as keytool keeps the entries it
        adds beside); in any other format, use :meth:`load`.

        Args:
            path: the store file.
            password: the store password, or ``None`` (a JKS store's integrity check
                is then skipped; a PKCS#12 MAC must verify with the empty password).
            store_type: the declared type, as for :meth:`load`.
            allow_unprotected: as for :meth:`load`.

        Raises:
            KeystoreNotFoundError, WrongPasswordError, KeystoreFormatError: as for
                :meth:`load`.
        """
        store = cls._read(
            read_store_file(path), password, store_type=store_type, path=os.fsdecode(path),
            allow_unprotected=allow_unprotected, with_keys=False,
        )  # fmt: skip
        store._read_from = file_identity(path)
        return store

    # -- building

    @classmethod
    def generate(
        cls,
        alias: str,
        subject: str | x509.Name,
        *,
        key_type: KeyType = "RSA",
        key_size: int | None = None,
        curve: str | None = None,
        days: int = 365,
        san: Iterable[str] = (),
        ca: bool = False,
        extensions: Iterable[x509.Extension[x509.ExtensionType]] = (),
        not_before: _dt.datetime | None = None,
        signature_algorithm: str | None = None,
    ) -> Self:
        """A new keystore with one self-signed key entry, like ``keytool -genkeypair``.

        Args:
            alias: the entry's alias.
            subject: a distinguished name as keytool's ``-dname`` takes it
                (``"CN=gateway, OU=Eng, O=Acme, C=US"``) or an ``x509.Name``.
            key_type: ``"RSA"`` (``key_size`` bits), ``"EC"`` (``curve``) or ``"Ed25519"``.
            key_size: an RSA key's bits (2048 when not given); for EC, as keytool's
                ``-keysize``, the curve's size (256, 384 or 521), which must agree with
                ``curve`` when both are given.
            curve: an EC key's curve (``secp256r1``, ``secp384r1``, ``secp521r1``, or
                ``P-256``...; secp256r1 when neither it nor ``key_size`` is given).
            days: validity from now, whole days from 1 to 2,900,000 (X.509 dates end
                in the year 9999).
            san: subject alternative names: ``"DNS:name"``, ``"IP:addr"``,
                ``"email:addr"``, or a bare name or address.
            ca: make a CA's certificate (keytool's ``-ext bc:c``): basicConstraints
                CA:true and a key usage of keyCertSign, cRLSign and digitalSignature,
                both critical. A certificate without CA:true that signs others
                (:meth:`sign_request`) makes chains OpenSSL and Java peers refuse.
            extensions: cryptography ``x509.Extension`` objects, over those above (one
                per type: a basicConstraints given here replaces ``ca``'s).
            not_before: when the certificate starts to be valid (keytool's
                ``-startdate``; a naive datetime is UTC); ``days`` count from it.
                Default: five minutes ago (peers whose clocks lag still accept it).
            signature_algorithm: the self-signature's algorithm, by its Java name
                (keytool's ``-sigalg``): ``SHA256withRSA``, ``SHA384withECDSA``,
                ``RSASSA-PSS``, ``Ed25519``, ... Default: keytool's for the key
                (SHA-256 for RSA up to 3072 bits and P-256, SHA-384 above, ...).

        Raises:
            ValueError: an unknown key type, curve, a ``key_size`` or ``curve`` the key
                type does not take (or an EC size and curve that disagree), a malformed
                subject or SAN, ``days`` out of range or ending after the year 9999, or
                a ``signature_algorithm`` that is unknown, for another key type, or
                refused (MD5, SHA-1).
            TypeError: an ``extensions`` item that is not an ``x509.Extension``.
        """
        store = cls()
        store.add_generated_key(
            alias, subject, key_type=key_type, key_size=key_size, curve=curve, days=days,
            san=san, ca=ca, extensions=extensions, not_before=not_before,
            signature_algorithm=signature_algorithm,
        )  # fmt: skip
        return store

    def add_generated_key(
        self,
        alias: str,
        subject: str | x509.Name,
        *,
        key_type: KeyType = "RSA",
        key_size: int | None = None,
        curve: str | None = None,
        days: int = 365,
        san: Iterable[str] = (),
        ca: bool = False,
        extensions: Iterable[x509.Extension[x509.ExtensionType]] = (),
        not_before: _dt.datetime | None = None,
        signature_algorithm: str | None = None,
    ) -> None:
        """Add a self-signed key entry to this keystore (see :meth:`generate`).

        Raises:
            ValueError: as for :meth:`generate`.
            TypeError: as for :meth:`generate`.
        """
        check_flag("ca", ca)
        given = list(extensions)
        for extension in given:
            if not isinstance(extension, x509.Extension):
                raise TypeError(
                    "extensions takes cryptography x509.Extension objects (x509.Extension("
                    f"oid, critical, value)), not {type(extension).__name__}"
                )
        if type(days) is not int or not 1 <= days <= MAX_DAYS:  # bool and float too
            # 0 made a certificate expired at birth; beyond, a date past the year 9999.
            raise ValueError(
                f"days must be a whole number from 1 to {MAX_DAYS:,} (as the CLI's --days), "
                f"not {days!r}"
            )
        shape = key_shape(key_type, key_size, curve)
        name = parse_dname(subject)
        start, end = validity(not_before, days, early=_dt.timedelta(minutes=5))
        check_signature_algorithm(signature_algorithm, key_type, *shape)
        key = new_private_key(key_type, *shape)
        digest, rsa_padding = signature_for(signature_algorithm, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
        )
        chosen: dict[x509.ObjectIdentifier, tuple[x509.ExtensionType, bool]] = {}
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        chosen[ski.oid] = (ski, False)
        names = parse_sans(san)
        if names:
            chosen[x509.SubjectAlternativeName.oid] = (x509.SubjectAlternativeName(names), False)
        if ca:
            chosen[x509.BasicConstraints.oid] = (x509.BasicConstraints(True, None), True)
            chosen[x509.KeyUsage.oid] = (_CA_KEY_USAGE, True)
        for extension in given:
            chosen[extension.oid] = (extension.value, extension.critical)
        for value, critical in chosen.values():
            builder = builder.add_extension(value, critical)
        cert = builder.sign(key, digest, rsa_padding=rsa_padding)
        self.add_key(alias, key, [cert])

    def add_key(
        self,
        alias: str,
        private_key: rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | bytes,
        chain: Sequence[x509.Certificate | bytes],
        *,
        replace: bool = False,
    ) -> None:
        """Add a key entry: a private key (object or PKCS#8 DER) and its chain, leaf first.

        Raises:
            KeyEntryError: the alias exists and ``replace`` is false, or the key is not
                the first certificate's (no TLS peer would accept the pair).
            ValueError: the alias or the chain is empty, or the bytes are not PKCS#8.
        """
        if not chain:
            raise ValueError("a key entry needs at least its own certificate")
        if isinstance(private_key, bytes):
            if _x509.key_algorithm(private_key) is None:
                raise ValueError(
                    "private_key bytes must be a PKCS#8 PrivateKeyInfo in DER (for PEM, "
                    "load it with cryptography's load_pem_private_key and pass the key)"
                )
            key_der = private_key
        elif callable(getattr(private_key, "private_bytes", None)):
            key_der = private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            raise TypeError(
                "private_key must be a cryptography private key or PKCS#8 DER bytes, not "
                f"{type(private_key).__name__}"
            )
        given: object = chain
        if isinstance(given, x509.Certificate | bytes | bytearray | str):
            raise TypeError(
                "chain is a list of certificates, leaf first: add_key(alias, key, [leaf]) "
                "or [leaf, intermediate]"
            )
        chain_der = tuple(to_der(c) for c in chain)
        if key_matches(key_der, chain_der[0]) is False:
            raise KeyEntryError(
                f"key entry {alias!r}: the key is not the first certificate's (the chain "
                "starts with the key's own certificate): pass the certificate issued for "
                "this key",
                path=self.path,
                alias=alias,
            )
        self._entries.add_key(KeyEntry(alias, key_der, chain_der), replace=replace)

    # -- renewal

    def certificate_request(
        self,
        alias: str | None = None,
        *,
        subject: str | x509.Name | None = None,
        san: Iterable[str] | None = None,
        signature_algorithm: str | None = None,
    ) -> x509.CertificateSigningRequest:
        """A certificate signing request (PKCS#10) for a key entry, signed by its key:
        what ``keytool -certreq`` writes, to send to a CA when the certificate is due
        for renewal. The key never leaves memory.

        The request names the subject of the entry's certificate and its subject
        alternative names, so a renewal asks for the same names; ``subject`` (a
        distinguished name as :meth:`generate` takes it) and ``san`` (``DNS:host``,
        ``IP:addr``, ...; ``()`` for none) ask for others. ``signature_algorithm``:
        the request's signature, by its Java name as :meth:`generate` takes it
        (keytool's ``-sigalg``; default: keytool's for the key). Write it with
        ``csr.public_bytes(serialization.Encoding.PEM)``; install the CA's answer with
        :meth:`install_reply`.

        Raises:
            KeyEntryError: no such key entry (or several and no ``alias``); its key was
                not decrypted (a store opened with :meth:`inspect`), cannot sign, or
                would be written into the request in another form than its certificate
                holds it (an RSASSA-PSS key: make that request with keytool); its
                certificate cannot be read.
            ValueError: a malformed ``subject`` or ``san``; a ``signature_algorithm``
                that is unknown, refused (MD5, SHA-1) or for another key type.
        """
        from ._renewal import certificate_request  # noqa: PLC0415 - renewal only

        return certificate_request(
            self._key_entry(alias), subject=subject, san=san, path=self.path,
            signature_algorithm=signature_algorithm,
        )  # fmt: skip

    def install_reply(
        self,
        alias: str | None,
        reply: bytes | os.PathLike[str] | Sequence[x509.Certificate | bytes],
        *,
        trust: Truststore
        | bytes
        | os.PathLike[str]
        | Iterable[x509.Certificate | bytes]
        | None = None,
    ) -> tuple[x509.Certificate, ...]:
        """Install a CA's reply to :meth:`certificate_request` (or ``keytool
        -certreq``) as the key entry's chain; the key stays as it is. What ``keytool
        -importcert -alias KEY -file reply`` does.

        ``reply``: the file (a ``Path``) or its bytes (PEM certificates, one DER
        certificate, or a PKCS#7 bundle, PEM or DER, as ``.p7b`` files are), or the
        certificates. One of them must certify the entry's public key: the chain is
        put in order from it up, every link's signature checked, and completed from
        ``trust`` (a :class:`Truststore`, a file or bytes of certificates as the reply
        takes them, or certificates) and the certificates of this store's other
        entries (trusted ones, and key entries': an internal CA kept in the same
        store), as keytool completes it from the keystore and ``cacerts``. Call
        :meth:`save` to write the store.

        Returns:
            The entry's new chain, leaf first (the same chain when the reply is what
            the entry already holds).

        Raises:
            KeyEntryError: no such key entry; no certificate in the reply is for its
                key; a lone certificate whose issuer is found nowhere (keytool's
                "Failed to establish chain from reply"); certificates in the reply
                that are not on the chain.
            KeystoreFormatError: the reply (or ``trust``) holds no certificate, or one
                cryptography cannot read.
            TypeError: ``reply`` or ``trust`` given as a ``str`` (pass a ``Path``), or
                holding something other than certificates.
        """
        from dataclasses import replace  # noqa: PLC0415 - renewal only

        from ._renewal import reply_certificates, reply_chain  # noqa: PLC0415

        entry = self._key_entry(alias)
        certs, reply_path = reply_certificates(reply)
        trusted = [der for _, der in self._entries.cert_entries()]
        if isinstance(trust, Truststore):
            trusted += trust.anchors_der
        elif isinstance(trust, str | bytes | bytearray | memoryview | os.PathLike):
            # A file of them or its bytes (a str: refused, saying to pass a Path).
            trusted += reply_certificates(trust, role="trusted certificates")[0]
        elif trust is not None:
            trusted += reply_certificates(list(trust), role="trusted certificates")[0]
        # keytool completes a reply from every entry's certificate, a key entry's too (an
        # internal CA kept as a key entry in the same store): after those given, which
        # win over a key entry's older certificate of the same key.
        trusted += [
            other.chain_der[0]
            for other in self._entries.key_entries()
            if other.chain_der and fold(other.alias) != fold(entry.alias)
        ]
        chain = reply_chain(entry, certs, trusted, path=self.path, reply_path=reply_path)
        if chain != entry.chain_der:
            self._entries.add_key(replace(entry, chain_der=chain), replace=True)
        return tuple(_x509.load_cert(der) for der in chain)

    def sign_request(
        self,
        request: bytes | os.PathLike[str] | x509.CertificateSigningRequest,
        alias: str | None = None,
        *,
        days: int = 90,
        not_before: _dt.datetime | None = None,
        subject: str | x509.Name | None = None,
        extensions: Iterable[x509.Extension[x509.ExtensionType]] = (),
        honored: bool = False,
        signature_algorithm: str | None = None,
    ) -> tuple[x509.Certificate, ...]:
        """Sign a certificate request with a key entry, the entry's certificate as
        issuer: what ``keytool -gencert`` does, for an internal CA kept in a keystore.

        ``request`` is the file (a ``Path``), its bytes (PEM or DER, as ``keytool
        -certreq``, :meth:`certificate_request` and ``openssl req`` write it), or the
        request. The certificate is for the request's key and subject (``subject``, a
        distinguished name as :meth:`generate` takes it, says another), valid for
        ``days`` from ``not_before`` (now; keytool's ``-startdate``, a naive datetime
        is UTC), signed as ``signature_algorithm`` says (a Java name, keytool's
        ``-sigalg``, as :meth:`generate` takes it). Its extensions: the request's subject
        alternative names (keytool drops them unless ``-ext honored=all``: a
        certificate without them fails hostname checks), every requested extension
        with ``honored=True``, ``extensions`` over those, and the key identifiers
        keytool writes.

        Returns:
            The new certificate, then this entry's chain without self-signed
            certificates, as keytool writes its reply: what
            :meth:`install_reply` takes on the requester's side.

        Raises:
            KeyEntryError: no such key entry, or its key cannot sign (not decrypted,
                a key type cryptography does not read, an RSASSA-PSS key).
            KeystoreFormatError: the request cannot be read, its signature does not
                verify, or its key would be written in another form than it holds it.
            KeystoreError: the request's file cannot be read.
            ValueError: ``days`` outside 1 to 36,525 or ending after the year 9999, a
                malformed ``subject``, a ``signature_algorithm`` that is unknown,
                refused (MD5, SHA-1) or for another key type than the entry's.
        """
        from ._issuing import request_input, sign_request  # noqa: PLC0415 - a CA's work only

        data, request_path = request_input(request)
        return sign_request(
            self._key_entry(alias), data, days=days, not_before=not_before,
            subject=parse_dname(subject) if subject is not None else None,
            extensions=extensions, honored=honored, path=self.path, request_path=request_path,
            signature_algorithm=signature_algorithm,
        )  # fmt: skip

    # -- reading

    @property
    def key_aliases(self) -> tuple[str, ...]:
        """Aliases of the private-key entries."""
        return tuple(e.alias for e in self._entries.key_entries())

    @property
    def trusted_aliases(self) -> tuple[str, ...]:
        """Aliases of the trusted-certificate entries."""
        return tuple(alias for alias, _ in self._entries.cert_entries())

    def key_entry(self, alias: str | None = None) -> tuple[str, bytes, tuple[bytes, ...]]:
        """The material of one key entry: ``(alias, pkcs8_der, chain_der)``.

        With ``alias=None`` the store must hold exactly one key entry (Java's
        SunX509 key manager has no alias choice either; pass one when there are several).

        Raises:
            KeyEntryError: no key entry, several and no alias, or an unknown alias.
        """
        entry = self._key_entry(alias)
        return entry.alias, entry.key_der, entry.chain_der

    def _key_entry(self, alias: str | None) -> KeyEntry:
        """The key entry :meth:`key_entry` describes (see it for the errors)."""
        count = self._entries.key_count
        where = _where(self.path)
        if alias is None:
            if count == 1:
                return next(self._entries.key_entries())
            if not count:
                # A truststore given as a keystore, or a keystore between the steps
                # of a renewal in place (keytool -delete, then -genkeypair or
                # -importkeystore): "not a truststore" alone sent the second the
                # wrong way (h256).
                raise KeyEntryError(
                    f"{where} has no private-key entry: use a keystore made with "
                    "keytool -genkeypair (or a PEM with a key), not a truststore; if "
                    "its key entry is being replaced in place (keytool -delete, then "
                    "-genkeypair or -importkeystore), it is read again when it holds "
                    "one",
                    path=self.path,
                )
            raise KeyEntryError(
                f"{where} has {count} key entries ({listed_aliases(self.key_aliases)}): "
                "choose one with alias= (the command line's --alias; a profile's "
                "<KeyAlias>)",
                path=self.path,
            )
        entry_or_none = self._entries.key(alias)
        if entry_or_none is None:
            secret = self._entries.secret(alias)
            what = (
                f" ({secret[0]!r} is a {secret[1]})"  # a key without its certificate (h286)
                if secret is not None
                else ""
            )
            raise KeyEntryError(
                f"{where} has no key entry {alias!r}{what}; key aliases are: "
                f"{listed_aliases(self.key_aliases, alias)}",
                path=self.path,
                alias=alias,
            )
        return entry_or_none

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the key material and certificates: equal for equal content."""
        digest = hashlib.sha256(b"mtls-keystore-v1")
        for entry in self._entries.key_entries():
            digest.update(b"K" + fold(entry.alias).encode() + b"\0" + entry.key_der)
            for der in entry.chain_der:
                digest.update(b"C" + der)
        for alias, der in self._entries.cert_entries():
            digest.update(b"T" + fold(alias).encode() + b"\0" + der)
        return digest.hexdigest()

    def truststore(self) -> Truststore:
        """The anchors Java would take from this store used as a truststore."""
        trust = Truststore()
        trust.store_type = self.store_type
        trust.path = self.path
        trust._passwordless = self._passwordless
        for entry in self._entries.key_entries():
            trust._entries.add_cert(entry.alias, entry.chain_der[0], loaded=True)
        for alias, der in self._entries.cert_entries():
            trust._entries.add_cert(alias, der, loaded=True)
        return trust

    # -- writing

    @scrub_tracebacks
    def save(
        self,
        path: str | os.PathLike[str],
        password: Password,
        *,
        store_type: WriteFormat | None = None,
        key_password: Password | None = None,
        passwordless: bool = False,
    ) -> None:
        """Write the store atomically, in a format keytool reads.

        A new file gets mode 0600; a file already there keeps its owner, group and
        mode, as keytool's in-place write does, never with more than the owner's and
        the group's access (see docs/keystores.md, "Writing").

        ``JKS`` keeps every entry (key passwords may differ from the store password).
        ``PKCS12`` is what keytool writes by default since JDK 9 (PBES2/AES-256,
        keytool's HMAC-SHA256 MAC): every key entry and trusted certificate, under one
        password, as keytool does. ``PEM`` writes the one key entry (its key encrypted
        with ``password`` unless it is empty) followed by its chain.

        Args:
            path: the file to write (replaced atomically if it exists).
            password: the store password (PKCS#12 MAC and encryption, JKS integrity
                check, the PEM key's encryption; ``""`` writes a PEM key unencrypted).
            store_type: ``"JKS"``, ``"PKCS12"`` or ``"PEM"``. By default: written
                back to the file it was read from, the format read (as keytool keeps a
                store's type in place; JKS for JCEKS and the Bouncy Castle formats);
                else the format the file's name says (``.p12``/``.pfx``: PKCS12,
                ``.jks``: JKS, ``.pem``: PEM); else PKCS12 for a store read from
                PKCS#12; else JKS (JKS too where PKCS12 is not named and
                ``key_password`` differs).
            key_password: JKS only: the password protecting every key entry (default:
                ``password``). PKCS#12 has one password, as keytool writes it: a
                different one is a ``ValueError``.
            passwordless: PKCS12 only: write the JDK's password-less format (no MAC,
                certificates not encrypted; ``password`` unused), as keytool keeps a
                store it read so (:attr:`passwordless`). Key entries cannot be: a store
                with one is protected by ``password``, with a warning that Java now
                needs it to open the store.

        Raises:
            ValueError: an unknown store type, PKCS#12 with a different key password,
                or an empty password where it would protect a key (PKCS#12, a JKS key
                entry; PEM takes ``""`` for an unencrypted key). A PKCS#12 with trusted
                certificates only takes an empty password: they are written in the
                clear under a MAC keyed by it, which keytool reads with or without
                ``-storepass ""``.
            TypeError: a password that is not a str, a Secret or None (bytes: decode).
            KeyEntryError: PEM asked for with other than one key entry (or with
                trusted entries beside it); JKS or PKCS12 with a certificate whose key
                Java cannot parse (an EC key as a compressed point, with explicit or no
                curve parameters, or on a curve Java does not know): keytool and WSO2
                would refuse the whole store, so nothing is written (PEM takes it).
            OSError: the file cannot be written (a full disk, a read-only or missing
                directory, a NUL in the path): an ``OSError``, not an ``MTLSError``,
                whose message names the file and says that nothing was written (the
                store is written to a temporary file beside it, then renamed).
        """
        kind = write_format(
            store_type,
            path,
            self.store_type,
            read_from=self._read_from,
            one_password=_one_password(password, key_password),
        )
        data = self._bytes(password, kind, key_password, target=path, passwordless=passwordless)
        # An unencrypted key (PEM without a password) keeps no group access of the file
        # it replaces: a store's group reads it through its password, this file without.
        unencrypted = kind == "PEM" and not reveal(password)
        atomic_write(path, data, mode=0o600, keep_group=not (unencrypted and self.key_aliases))

    @scrub_tracebacks
    def to_bytes(
        self,
        password: Password,
        *,
        store_type: WriteFormat | None = None,
        key_password: Password | None = None,
        passwordless: bool = False,
    ) -> bytes:
        """The bytes :meth:`save` writes (arguments and errors as for :meth:`save`; by
        default PKCS12 for a store read from PKCS#12 with one password, else JKS)."""
        kind = write_format(
            store_type, None, self.store_type, one_password=_one_password(password, key_password)
        )
        return self._bytes(password, kind, key_password, target=None, passwordless=passwordless)

    def _bytes(
        self,
        password: Password,
        store_type: str,
        key_password: Password | None,
        *,
        target: str | os.PathLike[str] | None,
        passwordless: bool,
    ) -> bytes:
        check_flag("passwordless", passwordless)
        return keystore_bytes(
            self._entries,
            self.key_entry,
            path=self.path,
            password=reveal(password) or "",
            store_type=store_type,
            key_password=reveal(key_password),
            target=target,
            passwordless=bool(passwordless),
        )

    def __repr__(self) -> str:
        parts = [f"{e.alias!r} {_describe(e.chain_der[0])}" for e in self._entries.key_entries()]
        trusted = self._entries.cert_count
        source = f" from {self.path!r}" if self.path else ""
        return (
            f"<Keystore {self.store_type or 'new'}{source}: "
            f"{len(parts)} key entr{'y' if len(parts) == 1 else 'ies'} [{', '.join(parts)}]"
            f", {trusted} trusted certificate{'' if trusted == 1 else 's'}"
            f"{_secrets_text(self._entries)}>"
        )

    __str__ = __repr__


@scrub_tracebacks
def load_key_entry(
    path: str | os.PathLike[str],
    password: Password | None,
    key_password: Password | None,
    alias: str,
) -> Keystore:
    """:meth:`Keystore.load` decrypting only key entry ``alias`` where each key entry has
    its own password (JKS, JCEKS, BKS, UBER: the others are left out, as keytool
    -importkeystore -srcalias does); other formats are read whole. For the CLI's
    ``convert --alias``."""
    return Keystore._read(
        read_store_file(path),
        password,
        key_password=key_password,
        store_type=None,
        allow_unprotected=False,
        path=os.fsdecode(path),
        key_alias=alias,
    )


class Truststore(_StoreBase):
    """Trust anchors, with Java's semantics.

    Every certificate in a truststore is an anchor, including a self-signed leaf
    (the seed imports a backend's own certificate). A key entry's leaf certificate
    is an anchor too, as in Java's TrustManager, and loading never needs the key
    password. A PKCS#12 made by OpenSSL with certificates only (no keytool trust
    attribute) is taken as a list of anchors.

    Example:
        >>> ts = Truststore()
        >>> ks = Keystore.generate("backend", "CN=backend", key_type="EC")
        >>> ts.add("backend", ks.certificate("backend"))
        >>> ts.aliases
        ('backend',)
    """

    @classmethod
    @scrub_tracebacks
    def load(
        cls,
        path: str | os.PathLike[str],
        password: Password | None = None,
        *,
        store_type: str | None = None,
        allow_unprotected: bool = False,
    ) -> Self:
        """Read a truststore file (JKS, JCEKS, PKCS#12, PEM bundle or DER certificate).

        Args:
            path: the store file.
            password: verifies a JKS store's integrity and decrypts PKCS#12
                certificates. ``None`` skips the JKS integrity check, as Java does; a
                PKCS#12 MAC is never skipped (``None`` is the empty password there).
            store_type: the declared type. The content decides the format; but a
                type with an integrity check (JKS, JCEKS, PKCS12, BKS, UBER)
                declared together with a password must be met by a file that has
                one, or a replaced file would be trusted unnoticed.
            allow_unprotected: accept a PEM bundle, DER certificate or MAC-less
                PKCS#12 where ``store_type`` and ``password`` promise a check.

        Raises:
            KeystoreNotFoundError: the file does not exist.
            WrongPasswordError: the password is wrong.
            KeystoreFormatError: not a readable store, no certificates in it, or a
                file without an integrity check where one was promised.
        """
        store = cls._read(
            read_store_file(path),
            password,
            store_type=store_type,
            allow_unprotected=allow_unprotected,
            path=os.fsdecode(path),
        )
        store._read_from = file_identity(path)
        return store

    @classmethod
    @scrub_tracebacks
    def from_bytes(
        cls,
        data: bytes,
        password: Password | None = None,
        *,
        store_type: str | None = None,
        allow_unprotected: bool = False,
        path: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Read a truststore from bytes in memory (a Kubernetes secret, a CA bundle).

        The same reading as :meth:`load`: the format comes from the bytes; no key is
        decrypted.

        Args:
            data: the whole store (JKS, JCEKS, PKCS#12, PEM bundle or DER certificate).
            password: the store password, as for :meth:`load`.
            store_type: as for :meth:`load`.
            allow_unprotected: as for :meth:`load`.
            path: how messages and :attr:`path` name the bytes; ``None``: "the store".

        Returns:
            The loaded truststore.

        Raises:
            WrongPasswordError: the password is wrong.
            KeystoreFormatError: not a readable store, no certificates in it, or no
                integrity check where ``store_type`` and ``password`` promise one.
        """
        return cls._read(
            data,
            password,
            store_type=store_type,
            allow_unprotected=allow_unprotected,
            path=_named(path),
        )

    @classmethod
    @forks_wait  # OpenSSL's locks: see mtls._fork.OPENSSL_WORK
    def _read(
        cls,
        data: bytes,
        password: Password | None,
        *,
        store_type: str | None,
        allow_unprotected: bool,
        path: str | None,
    ) -> Self:
        parsed = parse(
            store_bytes(data, "Truststore.from_bytes"),
            as_secret(password),
            None,
            with_keys=False,
            path=path,
            declared=store_type,
            allow_unprotected=allow_unprotected,
        )
        return cls._from_parsed(parsed, path)

    @classmethod
    def _from_parsed(cls, parsed: Parsed, path: str | None) -> Self:
        """The anchors Java takes from what a reader returned (key-entry leaves included)."""
        store = cls()
        store.store_type = parsed.store_type
        store.path = path
        store._java_notes = tuple(parsed.java_notes)
        store._passwordless = parsed.passwordless
        taken = Taken()
        for key in parsed.keys:
            store._entries.add_cert(unique_alias(key.alias, taken), key.chain_der[0], loaded=True)
        for alias, der in parsed.certs:
            store._entries.add_cert(unique_alias(alias, taken), der, loaded=True)
        for alias, kind in parsed.secrets:
            store._entries.add_secret(unique_alias(alias, taken), kind)
        if not parsed.keys and not parsed.certs:
            # An OpenSSL "-nokeys" PKCS#12 has no keytool trust attribute: its
            # certificates are what the user means to trust, named by their
            # friendlyName as written, else by their CN.
            if parsed.loose:
                count = len(parsed.loose)
                store._java_notes += (
                    f"its {count} certificate{'s carry' if count != 1 else ' carries'} no "
                    "Java trust attribute (an openssl pkcs12 -nokeys file): mtls trusts "
                    f"{'them' if count != 1 else 'it'}, but keytool and WSO2's gateway read "
                    "it as empty (no trust anchors): import them with keytool -importcert "
                    "instead",
                )
            for name, der in parsed.loose:
                if name is None:
                    store._entries.add_cert(alias_for(der, taken, "cert"), der)
                else:  # as written, as the trusted and key entries' names are ("" too)
                    store._entries.add_cert(unique_alias(name, taken), der, loaded=True)
        if not store._entries.cert_count:
            others = store._entries.secret_count
            only = (
                f" (only {others} secret-key entr{'y' if others == 1 else 'ies'})" if others else ""
            )
            raise KeystoreFormatError(
                f"{_where(path)} holds no certificates{only}: a truststore needs at least one",
                path=path,
            )
        log.debug("loaded %r", store)
        return store

    def add(
        self, alias: str, certificate: x509.Certificate | bytes, *, replace: bool = False
    ) -> None:
        """Alias of :meth:`add_certificate`, the name both store classes share.

        Kept for code written before both classes had ``add_certificate``; it is
        not deprecated and behaves exactly the same.
        """
        self.add_certificate(alias, certificate, replace=replace)

    @property
    def certificates(self) -> Mapping[str, x509.Certificate]:
        """Alias -> certificate, for every anchor cryptography can parse.

        Certificates cryptography refuses are still anchors (OpenSSL loads them);
        they are left out of this mapping and logged.
        """
        return {alias: cert for alias, _, cert in self._parsed_anchors()}

    def _parsed_anchors(self) -> Iterator[tuple[str, bytes, x509.Certificate]]:
        """``(alias, DER, certificate)`` of :attr:`certificates`, in order, with the DER
        as stored (what status() and the expiry watch read: no re-encoding)."""
        for alias, der in self._entries.cert_entries():
            try:
                yield alias, der, _x509.load_cert(der)
            except ValueError as exc:
                dead = _dates.unverifiable_dates(der)
                if dead is not None:
                    log.warning(
                        "%s: certificate %r cannot be parsed by cryptography (%s), and %s: "
                        "OpenSSL refuses every chain through it (a format error in that "
                        "field), so it trusts nothing here; have it reissued, or remove it",
                        _where(self.path),
                        alias,
                        _reason(exc),
                        dead,
                    )
                    continue
                log.warning(
                    "%s: certificate %r cannot be parsed by cryptography (%s): it is "
                    "still a trust anchor for TLS (OpenSSL reads it), but its dates and "
                    "subject are not shown or watched",
                    _where(self.path),
                    alias,
                    _reason(exc),
                )

    @property
    def anchors_der(self) -> tuple[bytes, ...]:
        """Every anchor as DER, in order (what OpenSSL is given)."""
        return tuple(der for _, der in self._entries.cert_entries())

    def _anchor_entries(self) -> Iterator[tuple[str, bytes]]:
        """Every anchor as (alias, DER), in order: what names one OpenSSL refuses."""
        return iter(self._entries.cert_entries())

    def to_pem(self) -> bytes:
        """Every anchor as one PEM bundle (what ``cafile=`` takes)."""
        return "".join(_x509.der_to_pem(der) for der in self.anchors_der).encode("ascii")

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the anchors (aliases do not matter to trust): equal for equal content."""
        digest = hashlib.sha256(b"mtls-truststore-v1")
        for der in sorted(self.anchors_der):
            digest.update(hashlib.sha256(der).digest())
        return digest.hexdigest()

    @scrub_tracebacks
    def save(
        self,
        path: str | os.PathLike[str],
        password: Password,
        *,
        store_type: WriteFormat | None = None,
        passwordless: bool = False,
    ) -> None:
        """Write the truststore atomically, in a format keytool reads.

        PKCS#12 truststores carry Java's trusted-key-usage attribute, so keytool lists
        every certificate as ``trustedCertEntry``. The file gets the mode
        ``open(path, "w")`` would give it (0666 less the umask, applied by the kernel;
        the process umask is never changed).

        Args:
            path: the file to write (replaced atomically if it exists).
            password: the store password (JKS integrity check, PKCS#12 MAC and
                encryption). PKCS#12 takes ``""``: the certificates are written in the
                clear under a MAC keyed by the empty password (keytool reads it with or
                without ``-storepass ""``).
            store_type: ``"JKS"``, ``"PKCS12"`` or ``"PEM"`` (a CA bundle). By
                default: written back to the file it was read from, the format read;
                else the format the file's name says (``.p12``/``.pfx``: PKCS12,
                ``.jks``: JKS, ``.pem``/``.crt``/``.cer``: PEM); else PKCS12 for a
                store read from PKCS#12; else JKS.
            passwordless: PKCS12 only: the JDK's password-less format (no MAC,
                certificates not encrypted; ``password`` unused), which Java opens
                without a password, as keytool keeps a store it read so
                (:attr:`passwordless`).

        Raises:
            ValueError: an unknown store type, or no certificates (:meth:`load` refuses
                such a file: a truststore that trusts nothing fails every handshake;
                ``Keystore().save()`` writes an empty store, as keytool keeps one).
            KeyEntryError: JKS or PKCS12 with a certificate Java cannot parse, as for
                :meth:`Keystore.save` (the error's ``alias`` names the entry).
            OSError: the file cannot be written, as for :meth:`Keystore.save`.
        """
        kind = write_format(
            store_type, path, self.store_type, read_from=self._read_from, bundle=True
        )
        data = self._bytes(password, kind, target=path, passwordless=passwordless)
        atomic_write(path, data, mode=None)

    @scrub_tracebacks
    def to_bytes(
        self,
        password: Password,
        *,
        store_type: WriteFormat | None = None,
        passwordless: bool = False,
    ) -> bytes:
        """The bytes :meth:`save` writes (arguments and errors as for :meth:`save`; by
        default PKCS12 for a store read from PKCS#12, else JKS)."""
        kind = write_format(store_type, None, self.store_type)
        return self._bytes(password, kind, target=None, passwordless=passwordless)

    def _bytes(
        self,
        password: Password,
        store_type: str,
        *,
        target: str | os.PathLike[str] | None,
        passwordless: bool,
    ) -> bytes:
        check_flag("passwordless", passwordless)
        if not self._entries.cert_count:
            raise ValueError(
                "this truststore holds no certificates, and Truststore.load refuses such a "
                "file (a truststore that trusts nothing fails every handshake): add the CAs "
                "to trust first (an empty store on purpose: Keystore().save())"
            )
        return truststore_bytes(
            self._entries,
            path=self.path,
            password=reveal(password) or "",
            store_type=store_type,
            target=target,
            passwordless=bool(passwordless),
        )

    def __repr__(self) -> str:
        count = self._entries.cert_count
        source = f" from {self.path!r}" if self.path else ""
        shown = [
            f"{alias!r} {_describe(der)}"
            for alias, der in itertools.islice(self._entries.cert_entries(), 3)
        ]
        more = f", ... {count - 3} more" if count > 3 else ""
        return (
            f"<Truststore {self.store_type or 'new'}{source}: {count} "
            f"certificate{'' if count == 1 else 's'} [{', '.join(shown)}{more}]"
            f"{_secrets_text(self._entries)}>"
        )

    __str__ = __repr__


# --------------------------------------------------------------------------- from a configuration

StoreRole = Literal["keystore", "truststore"]


def store_open_error(config: StoreConfig, role: StoreRole, exc: OSError) -> KeystoreError:
    """The error for a configured store file that cannot be read (see :func:`load_store`).

    For callers that read the bytes themselves (the reload engine settles and hashes
    them first); :func:`load_store` raises the same for the same failure. A missing
    file is a :class:`KeystoreNotFoundError`; the message names the file as written
    (never a placeholder's value) and the setting to fix.
    """
    return open_error(exc, config.shown_location, role=role, setting=config.setting)


#: How a wrong-password message says which deployment.toml setting gave the password
#: (``mtls check`` merges it into the row that already names the store).
SET_BY: Final = "; set by "


@overload
def load_store(
    config: StoreConfig,
    role: Literal["keystore"],
    *,
    data: bytes | None = None,
    purpose: Literal["client", "server"] | None = None,
) -> Keystore: ...
@overload
def load_store(
    config: StoreConfig,
    role: Literal["truststore"],
    *,
    data: bytes | None = None,
    purpose: Literal["client", "server"] | None = None,
) -> Truststore: ...
@scrub_tracebacks
def load_store(
    config: StoreConfig,
    role: StoreRole,
    *,
    data: bytes | None = None,
    purpose: Literal["client", "server"] | None = None,
) -> Keystore | Truststore:
    """Open the store a :class:`~mtls.StoreConfig` names, as a profile's ``<KeyStore>`` is.

    The one loading path from a configuration: location, declared type, passwords
    and ``allow_unprotected`` are applied exactly as :meth:`Keystore.load` and
    :meth:`Truststore.load` apply their arguments, and messages name the file as
    written and the setting that named it.

    Args:
        config: where the store is and how to open it.
        role: ``"keystore"`` (every key entry decrypted) or ``"truststore"``
            (anchors only; no key password needed).
        data: the file's bytes when the caller has read them already (for example
            after checking they settled); ``None`` reads ``config.location``.
        purpose: the TLS role a keystore's key presents in (``"client"``,
            ``"server"``), where known: of several certificates a PEM keystore holds
            for one key, one peers accept in that role is chosen before a newer one
            they refuse in it (a warning says so).

    Returns:
        The :class:`Keystore` or :class:`Truststore`.

    Raises:
        KeystoreNotFoundError: the file does not exist.
        KeystoreError: it cannot be read (permissions, a directory, a device).
        WrongPasswordError, KeystoreFormatError: as for :meth:`Keystore.load`.
    """
    shown = config.shown_location
    if data is None:
        try:
            data = read_input(config.location)
        except OSError as exc:
            # A location made from a placeholder is not shown: nor is the OSError
            # that carries its value.
            cause = exc if config.written_location is None else None
            raise store_open_error(config, role, exc) from cause
    try:
        if role == "keystore":
            return Keystore._read(
                data,
                config.password,
                key_password=config.key_password,
                store_type=config.type,
                allow_unprotected=config.allow_unprotected,
                path=_named(shown),
                purpose=purpose,
            )
        return Truststore.from_bytes(
            data,
            config.password,
            store_type=config.type,
            allow_unprotected=config.allow_unprotected,
            path=shown,
        )
    except WrongPasswordError as exc:
        if config.password_origin is None:
            raise
        # deployment.toml: the file is named, and so is the setting to fix.
        raise WrongPasswordError(
            f"{exc}{SET_BY}{config.password_origin}",
            path=exc.path,
            alias=exc.alias,
        ) from exc


# Public as mtls.X: reprs, tracebacks and pickles say so however they were
# imported (mtls/__init__.py loads them on first use).
for _public in (Keystore, Truststore):
    _public.__module__ = "mtls"
del _public
