"""keytool's store operations: genkey, export, import (a certificate to trust, or a
CA's reply over a key entry: installed by _certs), delete, list, convert, storepasswd,
keypasswd and changealias.

Each writes stores keytool reads (the library's writers) and reads whatever keytool
writes. Where keytool would prompt, these take options or environment variables;
where keytool would silently do something surprising, they refuse and say why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from .. import _dates, _x509
from .._entries import fold
from .._errors import KeyEntryError, KeystoreFormatError, MTLSError, WrongPasswordError
from .._files import atomic_write, read_input
from .._keygen import key_shape
from .._readers import CERTLESS_KIND, detect_format, says_what_it_is
from .._stores import Keystore, Truststore, listed_aliases
from .._types import WriteFormat
from ._common import (
    ENV_OUT_PASSWORD,
    ENV_STORE_PASSWORD,
    EXIT_OK,
    CLIError,
    Output,
    UsageError,
    as_word,
    cert_info,
    certificate_lines,
    check_new_password,
    display_path,
    expiry_text,
    inspect_keystore,
    is_terminal,
    load_keystore,
    new_password,
    now,
    optional_key_password,
    remember_secret,
    resolve_password,
    start_date,
    store_password,
    type_for_new_store,
)
from ._logs import LogCollector
from ._storeio import (
    _as_stored,
    _der_info,
    _entry_word,
    _issuer_text,
    _lenient_pem_certificates,
    _show_warnings,
    _sniff,
    _write_export,
    ignored_key_password,
    one_password,
    opening_password,
    same_file,
)


def _refuse_unwritable(kind: str | None, path: Path, adding: str = "") -> None:
    if kind in ("JKS", "PKCS12"):
        return
    try:  # its entries, read without a password (no integrity check, no key decrypted)
        secrets = list(Keystore.inspect(path).secret_keys) if kind == "JCEKS" else []
    except MTLSError:
        secrets = []
    if secrets:
        # h272: the conversion advised next refused these too, where keytool succeeds.
        tool = f"keytool {adding}" if adding else "keytool"
        raise CLIError(
            f"{path} is a {kind} store holding secret keys ({', '.join(map(repr, secrets))}), "
            f"which mtls lists but cannot write: use {tool} on it"
        )
    raise CLIError(
        f"{path} is a {kind} store; mtls changes JKS and PKCS12 stores only: "
        f"convert it first (mtls convert --keystore {as_word(path)} --to JKS --out NEW.jks)"
    )


def _existing_type(store: Keystore, path: Path, explicit: WriteFormat | None) -> WriteFormat:
    kind = store.store_type
    _refuse_unwritable(kind, path)
    if explicit is not None and explicit != kind:
        raise UsageError(
            f"{path} is a {kind} store, not {explicit}: drop --store-type, or convert the "
            "store (mtls convert)"
        )
    return "JKS" if kind == "JKS" else "PKCS12"


def _open_to_add(
    path: Path,
    password: str,
    key_password: str | None,
    out: Output,
    adding: str,
    *,
    key_alias: str | None = None,
    removing: str | None = None,
) -> tuple[Keystore, str | None]:
    """An existing store that ``genkey`` or ``import`` adds to, and the key password
    to write it with.

    A JKS store's keys are not decrypted: they are written back as the file protects
    them, each under its own password, as keytool does (so keys with passwords of
    their own, even different ones, stay as they are). A PKCS#12 store has one
    password: a different key password is ignored with a warning, as keytool ignores
    it (and as for a new store). A store holding secret-key entries is refused up
    front: they are listed, never decrypted, so the store cannot be written back;
    keytool can add to it. ``key_alias``: the key entry a given key password must open
    (a JKS key is decrypted once to check it, as keytool recovers it: a wrong one was
    taken in silence, h240), when the store has it. ``removing``: the entry ``delete``
    removes, which may be one of those the store cannot be written back with.
    """
    fmt = _sniff(path)
    # Before any key is decrypted: a JCEKS store's keys, each under its own password,
    # would ask for passwords keytool never needs, only for the store to be refused.
    _refuse_unwritable(fmt, path, adding)
    key_password = one_password(fmt, password, key_password, out)
    store = (
        inspect_keystore(path, password)
        if fmt == "JKS"
        else load_keystore(path, password, key_password)
    )
    if (
        fmt == "JKS"
        and key_password is not None
        and key_alias is not None
        and key_alias in store
        and store.is_key_entry(key_alias)
    ):
        load_keystore(path, password, key_password, key_alias=key_alias)
    entries = store.secret_keys
    removed = {a for a in entries if removing is not None and fold(a) == fold(removing)}
    kept = {alias: kind for alias, kind in entries.items() if alias not in removed}
    deleting = any(entries[alias].startswith(CERTLESS_KIND) for alias in removed)
    _refuse_certless(path, kept, deleting=deleting)
    if kept:
        names = ", ".join(repr(alias) for alias in kept)
        raise CLIError(
            f"{path}: holds secret-key entries ({names}), which mtls lists but never "
            f"decrypts, so it cannot write this store back: use keytool {adding} on it, "
            "or keep the certificates in a store of their own"
        )
    return store, key_password


def _refuse_certless(
    path: Path,
    entries: Mapping[str, str],
    *,
    deleting: bool = False,
    doing: str = "write this store back",
    also: str = "",
) -> None:
    """Refuse a write that would drop key entries without a certificate (Java's key
    managers pass them by; mtls cannot write them back, and dropping them unasked
    would change the store: h263, h283), naming each and what removes it.

    Raises:
        CLIError: ``entries`` (the store's :attr:`Keystore.secret_keys`, less the
            one ``delete`` removes: ``deleting``, when that one is such a key) hold
            such a key. ``doing``: what cannot be done; ``also``: another way out.
    """
    certless = {alias: kind for alias, kind in entries.items() if kind.startswith(CERTLESS_KIND)}
    if not certless:
        return
    listed = "; ".join(f"{alias!r}: {kind}" for alias, kind in certless.items())
    several = (
        " (mtls delete removes one only when no other stays: remove the others first "
        "with keytool -delete for each keytool lists; one it does not list needs the "
        "store exported again, for example with openssl pkcs12 -export, with the keys "
        "and certificates to keep)"
        if len(certless) > 1 or deleting
        else ""
    )
    raise CLIError(
        f"{path}: mtls cannot {doing} without dropping its key entries without a "
        f"certificate, so it changes nothing: {listed}{several}{also}"
    )


def _write_back(
    store: Keystore,
    path: Path,
    password: str,
    kind: WriteFormat,
    key_password: str | None,
    *,
    passwordless: bool | None = None,
) -> int:
    """Save a store, changed, in ``kind``: as a keystore while it has a key entry, else
    as a truststore. Its number of entries.

    ``passwordless``: write the JDK's password-less PKCS#12 format (no MAC, nothing
    encrypted); by default as the store was read (keytool keeps the protection a store
    was loaded with, so Java still opens an edited cacerts without a password).
    """
    if passwordless is None:
        passwordless = store.passwordless
    try:
        if store.key_aliases:
            store.save(path, password, store_type=kind, key_password=key_password,
                       passwordless=passwordless)  # fmt: skip
            return len(store)
        if not len(store):
            # Emptied (its last entry deleted): kept, as keytool keeps it, with the
            # file's mode (a 0644 truststore stays readable); a new file is 0600, as a
            # keystore's: its MAC or digest still tests guesses at the password.
            data = store.to_bytes(password, store_type=kind, passwordless=passwordless)
            atomic_write(path, data, mode=None if os.path.exists(path) else 0o600)
            return 0
        trust = store.truststore()
        trust.save(path, password, store_type=kind, passwordless=passwordless)
        return len(trust)
    except ValueError as exc:  # a password the format cannot protect a key with
        if kind == "PKCS12" and not password and store.key_aliases:
            raise CLIError(
                f"{path}: not written: its password is empty, and mtls writes no PKCS#12 "
                "key entry under an empty password: give the store a password first "
                f"(mtls storepasswd --keystore {as_word(path)} --password '' "
                "--new-password NEW), or edit it with keytool"
            ) from exc
        raise CLIError(f"{path}: not written: {exc}") from exc


# --------------------------------------------------------------------------- genkey


# keytool -genkeypair's questions when -dname is left out, in its order and words.
_DNAME_QUESTIONS = (
    (NameOID.COMMON_NAME, "What is your first and last name?"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "What is the name of your organizational unit?"),
    (NameOID.ORGANIZATION_NAME, "What is the name of your organization?"),
    (NameOID.LOCALITY_NAME, "What is the name of your City or Locality?"),
    (NameOID.STATE_OR_PROVINCE_NAME, "What is the name of your State or Province?"),
    (NameOID.COUNTRY_NAME, "What is the two-letter country code for this unit?"),
)
_DNAME_TRIES = 3  # keytool: "Too many retries, program terminated"


def _answer(out: Output, question: str, default: str) -> str:
    out.stderr.write(f"{question}\n  [{default or 'Unknown'}]:  ")
    out.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError('no subject entered (end of input): pass --dname "CN=name, O=org"')
    return line.strip() or default


def _ask_field(out: Output, oid: x509.ObjectIdentifier, question: str, default: str) -> str:
    while True:
        value = _answer(out, question, default)
        try:
            if value:
                x509.NameAttribute(oid, value)
        except ValueError as exc:  # a country code that is not two letters
            out.stderr.write(f"  {exc}: try again\n")
            continue
        return value


def ask_dname(out: Output) -> str:
    """The subject, asked field by field on the terminal as keytool asks it.

    Fields left empty are left out (keytool writes ``Unknown``, which is no valid
    country code); after ``no`` the questions come again with the answers as defaults.

    Raises:
        UsageError: no terminal to ask on, end of input, or three refusals.
    """
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError(
            'the subject is needed: pass --dname "CN=name, OU=unit, O=org, L=city, ST=state, '
            'C=US" (or run on a terminal to be asked, as keytool does)'
        )
    values: dict[x509.ObjectIdentifier, str] = {}
    for _ in range(_DNAME_TRIES):
        for oid, question in _DNAME_QUESTIONS:
            values[oid] = _ask_field(out, oid, question, values.get(oid, ""))
        dname = ", ".join(
            x509.NameAttribute(oid, values[oid]).rfc4514_string()
            for oid, _ in _DNAME_QUESTIONS
            if values[oid]
        )
        if not dname:
            out.stderr.write("  the subject is empty: give at least a name\n")
            continue
        if _answer(out, f"Is {dname} correct?", "no").lower() in ("y", "yes"):
            return dname
    raise UsageError('too many retries: pass --dname "CN=name, O=org"')


def _genkey_extensions(values: list[str], sans: list[str]) -> list[x509.Extension[Any]]:
    """keytool's ``-ext`` values for ``-genkeypair`` (``bc:c`` for a CA's key pair,
    ``ku=...``, ``eku=...``, ``san=...``), with ``--san``'s names merged into an
    ``-ext san``."""
    from .._issuing import parse_ext  # noqa: PLC0415 - only when -ext is given
    from .._keygen import parse_sans  # noqa: PLC0415

    if not values:
        return []
    try:
        extensions, honored = parse_ext(values)
        if honored:
            raise UsageError("-ext honored=all copies a request's extensions: it is for gencert")
        for at, extension in enumerate(extensions):
            if isinstance(extension.value, x509.SubjectAlternativeName) and sans:
                merged = x509.SubjectAlternativeName([*extension.value, *parse_sans(sans)])
                extensions[at] = x509.Extension(extension.oid, extension.critical, merged)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return extensions


def cmd_genkey(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls genkey``: a key pair and self-signed certificate, like ``keytool -genkeypair``."""
    path = Path(args.keystore)
    exists = path.exists()
    password = store_password(args, path, new=not exists)
    key_password = optional_key_password(args)
    sans = [s for value in args.san for s in value.split(",") if s.strip()]
    extensions = _genkey_extensions(args.ext, sans)
    if extensions and any(isinstance(e.value, x509.SubjectAlternativeName) for e in extensions):
        sans = []  # merged into -ext san's
    if exists:
        store, key_password = _open_to_add(path, password, key_password, out, "-genkeypair")
        kind = _existing_type(store, path, args.store_type)
        if args.alias in store:
            raise CLIError(
                f"{path}: alias {args.alias!r} already exists: choose another alias "
                "(keytool refuses it too)"
            )
    else:
        check_new_password(password, str(path))
        store = Keystore()
        kind = type_for_new_store(path, args.store_type)
        if kind == "PEM":
            raise UsageError("genkey writes JKS or PKCS12 stores: use mtls convert for PEM")
    dname = args.dname if args.dname is not None else ask_dname(out)
    key_password = one_password(kind, password, key_password, out)
    if key_password is not None:
        check_new_password(key_password, str(path), "key password")
    key_type: Literal["RSA", "EC", "Ed25519"] = args.key_type
    key_size, curve = _key_shape(key_type, args.key_size, args.curve)
    try:
        store.add_generated_key(
            args.alias,
            dname,
            key_type=key_type,
            key_size=key_size,
            curve=curve,
            days=args.days,
            san=sans,
            extensions=extensions,
            not_before=start_date(args.start_date),
            signature_algorithm=args.sigalg,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    _write_back(store, path, password, kind, key_password)
    cert = store.certificate(args.alias)
    info = cert_info(cert)
    out.line(
        f"Generated {info['key']} key pair and self-signed certificate for "
        f"{out.style(info['subject'], 'bold')}"
    )
    out.line(f"  alias    {_as_stored(args.alias, kind)} (PrivateKeyEntry)")
    state = "created" if not exists else f"now {_entry_word(len(store))}"
    out.line(f"  store    {path} ({kind}, {state})")
    out.line(f"  valid    until {expiry_text(info['not_after'])}")
    if info["san"]:
        out.line(f"  SAN      {', '.join(info['san'])}")
    else:
        # keytool makes the same; Java, curl and Python verify a host by the CN then,
        # Go's crypto/tls, rustls and browsers refuse it ("legacy Common Name field").
        out.line(
            "  SAN      none: fine for a client certificate; a server's needs --san "
            "dns:HOST for Go, rustls and browsers (they ignore the CN)"
        )
    out.line(f"  SHA256   {_x509.colon_hex(info['sha256'])}")
    _show_warnings(out, logs)
    return EXIT_OK


def _key_shape(key_type: str, size: int | None, curve: str | None) -> tuple[int | None, str | None]:
    """``key_size=`` and ``curve=`` for :meth:`Keystore.add_generated_key` from
    ``-keysize``/``-groupname``, checked as :func:`mtls._keygen.key_shape` checks them
    (an EC key's size named as its curve).

    Raises:
        UsageError: an option the key type does not take, an EC size that names no
            curve, or a size and a curve that disagree.
    """
    try:
        size_, curve_ = key_shape(
            key_type, size, curve, size_option="-keysize", curve_option="-groupname",
            legacy=False,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return (None, curve_) if key_type == "EC" else (size_, None)


# --------------------------------------------------------------------------- export


def _inspected(path: Path, fmt: str, password: str | None, out: Output) -> Keystore:
    """The store's entries as keytool -list and -exportcert read them: no private key
    decrypted (no key password needed); a JKS or JCEKS given an empty password is read
    without its integrity check, with a warning, as keytool reads one given none (an
    empty password is tried first)."""
    if password == "" and fmt in ("JKS", "JCEKS"):
        try:
            return inspect_keystore(path, password)
        except CLIError:
            out.warn(
                f"{path}: no store password: its entries are read without the integrity "
                "check (as keytool does): the file may have been altered"
            )
            return inspect_keystore(path, None)
    return inspect_keystore(path, password)


def cmd_export(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls export``: an entry's certificate, DER by default, PEM with ``--rfc``."""
    if not args.file and not args.rfc and is_terminal(out.stdout):
        # keytool writes it; a certificate's bytes reach the terminal raw then (h272).
        # Said before a password is asked for (h277).
        raise UsageError("the certificate is DER: pass --rfc for PEM on a terminal, or --file")
    path = Path(args.keystore)
    fmt = _sniff(path)
    password = opening_password(args, path, fmt)
    # Every entry's certificate, and no key password needed, as keytool -exportcert
    # needs none (a secret-key entry is said to hold no certificate).
    store = _inspected(path, fmt, password, out)
    try:
        data = store.export_certificate(args.alias, "PEM" if args.rfc else "DER")
    except KeyEntryError as exc:
        raise CLIError(str(exc)) from None
    if args.file:
        target = _write_export(
            Path(args.file), data, what="certificate", reads=(path,), force=args.force
        )
        try:
            subject = _x509.subject_text(store.certificate(args.alias))
        except (ValueError, KeystoreFormatError):  # written as it is; only its name is unread
            subject = "(subject unavailable: cryptography cannot read the certificate)"
        out.line(f"Certificate stored in file <{target}>")
        out.line(f"  {subject}, {'PEM' if args.rfc else 'DER'}, {len(data)} bytes")
    else:
        out.write_bytes(data)
    _show_warnings(out, logs)
    return EXIT_OK


# --------------------------------------------------------------------------- import


def _several(path: Path, count: int) -> CLIError:
    return CLIError(
        f"{path} holds {count} certificates: import them one at a time, each under its own "
        "alias (a CA's reply is installed over its key entry's alias: --alias KEY)"
    )


def read_certificate_file(path: Path) -> bytes:
    """The one certificate in a DER or PEM file, or a PKCS#7 bundle of one, as DER
    (``keytool -importcert -file``). Certificates are decoded, not parsed here
    (cryptography warns while parsing an old root with serial number 0: cmd_import
    parses it through _x509.load_cert).

    Raises:
        FileNotFoundError: no such file.
        CLIError: not a certificate, a keystore, a private key, or several certificates.
    """
    from .._renewal import certificates_in  # noqa: PLC0415 - the reader replies share

    data = read_input(path)
    try:
        fmt: str = detect_format(data)
    except KeystoreFormatError as exc:
        if says_what_it_is(exc):  # a CRL or a certificate request
            raise CLIError(f"{path}: {exc}") from None
        fmt = "unknown"
    if fmt in ("JKS", "JCEKS", "PKCS12", "BKS", "UBER", "BCFKS"):
        raise CLIError(
            f"{path} is a {fmt} keystore, not a certificate: export the certificate first "
            f"(mtls export --keystore {as_word(path)} --alias ALIAS --file CERT)"
        )
    if fmt == "PEM" and b"PRIVATE KEY-----" in data:
        raise CLIError(
            f"{path} holds a private key: import only the certificate "
            "(mtls export --rfc writes one)"
        )
    try:
        certs = certificates_in(data, path=str(path), role="certificate")
    except KeystoreFormatError as exc:
        # What keytool also takes and the store reader does not: old Mac line ends (CR
        # alone), a "-----BEGIN " inside the text before the block.
        certs = _lenient_pem_certificates(data)
        if not certs and "no certificate found" not in str(exc):
            raise CLIError(str(exc)) from None  # a damaged block, trust settings: why
    if len(certs) > 1:
        raise _several(path, len(certs))
    if certs:
        return certs[0]
    raise CLIError(
        f"{path} is not a certificate: expected DER or PEM, as mtls export or "
        "keytool -exportcert writes"
    )


def _certificate_to_trust(path: Path) -> tuple[bytes, x509.Certificate]:
    der = read_certificate_file(path)
    try:
        return der, _x509.load_cert(der)
    except ValueError as exc:
        raise CLIError(
            f"{path}: cryptography cannot read this certificate ({exc}); OpenSSL and "
            "Java may: import it with keytool -importcert"
        ) from exc


def cmd_import(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls import``: trust a certificate (the truststore is created when absent), or
    install a CA's reply over a key entry's chain (keytool -importcert on its alias)."""
    if not args.alias:
        raise UsageError("an alias must not be empty")
    path = Path(args.keystore)
    exists = path.exists()
    if not exists and args.ca:
        # A reply for a key entry: a store that is not there holds none (a mistyped
        # path made a new store trusting the reply, and exit 0, h255).
        raise UsageError(
            f"--ca completes a reply's chain over a key entry, and {path} does not exist: "
            "check the keystore's path"
        )
    if not exists:
        der, cert = _certificate_to_trust(Path(args.file))
    password = store_password(args, path, new=not exists)
    key_password = optional_key_password(args)
    alias: str = args.alias
    if exists:
        store, key_password = _open_to_add(
            path, password, key_password, out, "-importcert", key_alias=alias
        )
        kind = _existing_type(store, path, args.store_type)
        if alias in store and store.is_key_entry(alias):
            return install_reply(
                args, out, logs, store, path=path, password=password, kind=kind,
                key_password=key_password,
            )  # fmt: skip
        if args.ca:
            raise UsageError(
                f"--ca completes a reply's chain: {alias!r} is not a key entry of {path}"
            )
        der, cert = _certificate_to_trust(Path(args.file))
        if alias in store and not args.replace:
            raise CLIError(
                f"{path}: alias {alias!r} already exists: choose another alias, or pass "
                "--replace to overwrite it"
            )
        for other in store.aliases:
            if fold(other) != fold(alias) and store.export_certificate(other, "DER") == der:
                out.warn(f"{path} already has this certificate under alias {other!r}")
        store.add_certificate(alias, der, replace=args.replace)
        state = _entry_word(_write_back(store, path, password, kind, key_password))
    else:
        check_new_password(password, str(path))
        kind = type_for_new_store(path, args.store_type)
        trust = Truststore()
        trust.add(alias, der)
        trust.save(path, password, store_type=kind)
        state = "created, 1 entry"
    info = cert_info(cert)
    out.line("Certificate was added to keystore")
    out.line(f"  alias    {_as_stored(alias, kind)} (trustedCertEntry)")
    out.line(f"  subject  {out.style(info['subject'], 'bold')}")
    out.line(f"  issuer   {_issuer_text(cert)}")
    out.line(f"  valid    until {expiry_text(info['not_after'])}")
    out.line(f"  SHA256   {_x509.colon_hex(info['sha256'])}")
    out.line(f"  store    {path} ({kind}, {state})")
    _show_warnings(out, logs)
    return EXIT_OK


# --------------------------------------------------------------------------- renewal
# The CA's reply, installed by import over a key entry's alias with the key kept (a
# JKS entry's key left as the file protects it); the request is _certs' certreq.


def install_reply(
    args: argparse.Namespace,
    out: Output,
    logs: LogCollector,
    store: Keystore,
    *,
    path: Path,
    password: str,
    kind: WriteFormat,
    key_password: str | None,
) -> int:
    """``mtls import`` over a key entry's alias: the CA's reply installed as its chain
    (keytool -importcert on a key entry), completed from ``--ca`` files and the
    store's trusted entries; the store written back only when the chain changed."""
    from .._renewal import reply_certificates  # noqa: PLC0415 - a reply only

    alias, _, before = store.key_entry(args.alias)  # the alias as the store spells it

    issuers: list[bytes] = []
    for ca_file in args.ca:
        issuers.extend(reply_certificates(Path(ca_file), role="CA certificates")[0])
    try:
        chain = store.install_reply(alias, Path(args.file), trust=issuers)
    except KeyEntryError as exc:
        raise CLIError(str(exc)) from None
    stored = store.key_entry(alias)[2]
    if stored == before:
        out.line(
            f"Certificate reply and certificate in keystore are identical: {path} is unchanged"
        )
        return EXIT_OK
    count = _write_back(store, path, password, kind, key_password)
    out.line("Certificate reply was installed in keystore")
    out.line(
        f"  alias    {_as_stored(alias, kind)} (PrivateKeyEntry, chain of {len(chain)}, "
        "key unchanged)"
    )
    for number, cert in enumerate(chain, 1):
        info = cert_info(cert)
        subject = info["subject"] if number > 1 else out.style(info["subject"], "bold")
        out.line(f"  [{number}]      {subject}")
        out.line(f"           issuer {_issuer_text(cert)}")
        out.line(f"           valid until {expiry_text(info['not_after'])}")
    leaf = chain[0]
    moment = now()
    if _dates.not_after(leaf) < moment:
        out.warn("the new certificate has expired: ask the CA for a current one")
    elif _dates.not_before(leaf) > moment:
        out.warn("the new certificate is not valid yet: peers refuse it until then")
    # keytool asks "Install reply anyway?" when the top of the chain is trusted nowhere
    # (not in the keystore, not in cacerts): the same, as a warning.
    top = chain[-1]
    vouched = {*issuers, *store.truststore().anchors_der}
    top_der = top.public_bytes(serialization.Encoding.DER)
    if top.issuer != top.subject:
        out.warn(
            f"the chain ends at {top.subject.rfc4514_string()}, whose issuer "
            f"({top.issuer.rfc4514_string()}) is in neither the reply, --ca nor {path}: "
            "peers must trust that issuer themselves"
        )
    elif len(chain) > 1 and top_der not in vouched:
        out.warn(
            f"the root {top.subject.rfc4514_string()} came with the reply alone (neither "
            f"--ca nor {path} holds it): check its fingerprint with the CA; peers must "
            "trust it themselves"
        )
    out.line(f"  SHA256   {_x509.colon_hex(cert_info(leaf)['sha256'])}")
    out.line(f"  store    {path} ({kind}, {_entry_word(count)})")
    _show_warnings(out, logs)
    return EXIT_OK


# --------------------------------------------------------------------------- list


def cmd_delete(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls delete``: remove one entry; the store keeps its type, password and the
    other entries as they were (a JKS store's keys are not decrypted: each keeps its
    own password, as keytool -delete leaves them)."""
    path = Path(args.keystore)
    password = store_password(args, path)
    store, key_password = _open_to_add(
        path, password, optional_key_password(args), out, "-delete", removing=args.alias
    )
    kind = _existing_type(store, path, None)
    alias: str = args.alias
    if alias not in store:
        raise CLIError(
            f"{path}: no entry with alias {alias!r}; aliases are: "
            f"{listed_aliases(store.aliases, alias)}"
        )
    was = store.entry_type(alias)
    alias = next(a for a in store.aliases if fold(a) == fold(alias))  # as the store spells it
    store.remove(alias)
    count = _write_back(store, path, password, kind, key_password)
    out.line(
        f"Deleted {_as_stored(alias, kind)} ({was}) from {path} ({kind}, {_entry_word(count)} left)"
    )
    _show_warnings(out, logs)
    return EXIT_OK


def cmd_storepasswd(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls storepasswd``: a store's password changed (keytool -storepasswd).

    JKS: the store's integrity password only; each key keeps its own password, as
    keytool leaves it (``mtls keypasswd`` changes one). PKCS12: one password protects
    the whole store, so the keys are re-encrypted under the new one, as keytool does.
    """
    path = Path(args.keystore)
    password = store_password(args, path)
    new = new_password(args, path, "store password")
    store, _ = _open_to_add(path, password, optional_key_password(args), out, "-storepasswd")
    kind = _existing_type(store, path, None)
    # A store in the JDK's password-less PKCS#12 format (no MAC, nothing encrypted) is
    # protected by the new password from now on: that is what was asked for.
    count = _write_back(store, path, new, kind, None, passwordless=False)
    out.line(f"Changed the store password of {path} ({kind}, {_entry_word(count)})")
    if kind == "JKS" and store.key_aliases:
        out.line(
            "  key entries keep their own passwords (JKS): change one with mtls keypasswd "
            f"--keystore {as_word(path)} --alias ALIAS"
        )
    out.line(
        "  a profile file or deployment.toml naming this store needs the new password too; "
        "a reload keeps the old identity until both match"
    )
    _show_warnings(out, logs)
    return EXIT_OK


def cmd_keypasswd(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls keypasswd``: one JKS key entry's password changed (keytool -keypasswd);
    the other keys stay as the file protects them, not decrypted."""
    path = Path(args.keystore)
    fmt = _sniff(path)
    if fmt != "JKS":
        raise CLIError(
            f"{path} is a {fmt} store: "
            + (
                "PKCS12 stores have one password, for the keys too: change it with mtls "
                f"storepasswd --keystore {as_word(path)} (keytool -keypasswd refuses PKCS12 too)"
                if fmt == "PKCS12"
                else "mtls changes key passwords in JKS stores only: use keytool -keypasswd"
            )
        )
    password = store_password(args, path)
    store = inspect_keystore(path, password)
    alias: str = args.alias
    if not store.is_key_entry(alias):
        store.certificate(alias)  # KeyEntryError naming the aliases there are
        raise CLIError(f"{path}: {alias!r} is a trusted certificate: it has no key password")
    new = new_password(args, path, "key password")
    key_password = optional_key_password(args)
    loaded = load_keystore(path, password, key_password, key_alias=alias)
    chosen, key_der, chain_der = loaded.key_entry(alias)
    store.add_key(chosen, key_der, chain_der, replace=True)
    store.save(path, password, store_type="JKS", key_password=new)
    out.line(f"Changed the key password of {_as_stored(chosen, 'JKS')} in {path}")
    out.line(
        "  a profile file naming this store needs the new <KeyPassword> too; a reload keeps "
        "the old identity until both match"
    )
    _show_warnings(out, logs)
    return EXIT_OK


def cmd_changealias(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls changealias``: an entry renamed (keytool -changealias); its key, chain and
    the other entries stay as they were (a JKS store's keys are not decrypted)."""
    path = Path(args.keystore)
    password = store_password(args, path)
    store, key_password = _open_to_add(
        path, password, optional_key_password(args), out, "-changealias", key_alias=args.alias
    )
    kind = _existing_type(store, path, None)
    old: str = args.alias
    new: str = args.dest_alias
    if not new:
        raise UsageError("--dest-alias must not be empty")
    stored = next((alias for alias in store.aliases if fold(alias) == fold(old)), None)
    if new == stored:  # keytool: "Destination alias <a> already exists" (h234, h236)
        raise CLIError(f"{path}: the destination alias {new!r} is the entry's own: give another")
    if kind == "JKS" and stored is not None and fold(new) == fold(stored):
        # A JKS file keeps its aliases lower-cased: the rename would change nothing (h272).
        raise CLIError(
            f"{path}: the destination alias {new!r} differs from {stored!r} in case only, "
            "and a JKS store keeps its aliases in lower case (as keytool does): give "
            "another alias"
        )
    store.rename(old, new)
    _write_back(store, path, password, kind, key_password)
    out.line(f"Renamed {old} to {_as_stored(new, kind)} in {path} ({kind})")
    _show_warnings(out, logs)
    return EXIT_OK


def _entries(store: Keystore, only: str | None) -> list[dict[str, Any]]:
    aliases = [only] if only is not None else list(store.aliases)
    entries: list[dict[str, Any]] = []
    for alias in aliases:
        kind = store.entry_type(alias)  # KeyEntryError names the aliases there are
        name = next((a for a in store.aliases if fold(a) == fold(alias)), alias)
        entry: dict[str, Any] = {"alias": name, "kind": kind, "chain": []}
        if name in store.secret_keys:  # a certless key is keytool's PrivateKeyEntry (h286)
            entry["note"] = store.secret_keys[name]
        else:
            entry["chain"] = [_der_info(der) for der in store._chain_der(alias)]
        entries.append(entry)
    return entries


def _password_less(path: Path) -> Keystore | None:
    """The PKCS#12 at ``path`` read without a password when it is in the JDK's
    password-less form (no integrity check, nothing encrypted: ``KeyStore.store(out,
    null)``, ``keystore.pkcs12.*=NONE``), as keytool -list reads one given none: mtls
    asked for a password it needs none of (h235). ``None``: it needs one."""
    try:
        store = Keystore.inspect(path, None)
    except MTLSError:
        return None
    return store if store.passwordless else None


def cmd_list(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls list``: every entry, like ``keytool -list -v`` but compact; ``--json`` too."""
    path = Path(args.keystore)
    fmt = _sniff(path)
    store = None
    if fmt == "PKCS12" and args.password is None and not os.environ.get(ENV_STORE_PASSWORD):
        store = _password_less(path)
    if store is None:
        try:
            password = resolve_password(
                args.password,
                env=ENV_STORE_PASSWORD,
                option="--password",
                what=f"the store password of {path}",
                prompt="Enter keystore password: ",
                required=fmt not in ("PEM", "DER"),
            )
        except UsageError as exc:
            if fmt not in ("JKS", "JCEKS"):
                raise
            raise UsageError(
                f"{exc}; or pass --password '' to list it without its integrity check, as "
                "keytool -list does without one"
            ) from None
        store = _inspected(path, fmt, password, out)
    entries = _entries(store, args.alias)
    # What mtls reads that keytool and WSO2's gateway do not (an unencrypted keyBag, a
    # PBMAC1 integrity check, ...): mtls check fails on these; a listing says them.
    java_notes = [f"{path}: {note}" for note in store._java_check_notes()]
    if args.json:
        out.json(
            {
                "path": str(path),
                "store_type": store.store_type,
                "entries": entries,
                "warnings": [*logs.messages, *java_notes],
            }
        )
        return EXIT_OK
    out.line(
        f"Keystore {out.style(str(path), 'bold')}: {store.store_type}, {_entry_word(len(store))}"
    )
    for entry in entries:
        chain = entry["chain"]
        length = f", chain of {len(chain)}" if len(chain) > 1 else ""
        out.line()
        out.line(f"{out.style(entry['alias'], 'bold')}  {entry['kind']}{length}")
        if "note" in entry:
            out.line(f"  {entry['note']}")
        for index, info in enumerate(chain):
            indent = "  "
            if len(chain) > 1:
                out.line(f"  [{index}]")
                indent = "      "
            certificate_lines(out, info, indent)
        if args.rfc and "note" not in entry:  # a secret key, a certless key: none
            for der in store._chain_der(entry["alias"]):
                out.write(_x509.der_to_pem(der))
    _show_warnings(out, logs)
    for note in java_notes:
        out.warn(note)
    return EXIT_OK


# --------------------------------------------------------------------------- convert


def cmd_convert(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls convert``: one store format to another (``keytool -importkeystore``).

    Run as ``importkeystore`` it behaves as keytool does: PKCS12 when no
    ``-deststoretype`` is given, and an existing destination gets the entries added
    (an alias it has already is refused unless ``-noprompt``) instead of being refused.
    """
    source = Path(args.keystore)
    target = Path(args.out)
    remember_secret(args.out_key_password)
    keytool = args.command == "importkeystore"
    to: WriteFormat | None = args.to
    if to is None and keytool:
        # keytool: an existing destination keeps its type; a new one is PKCS12.
        found = _sniff(target) if target.exists() and not args.force else None
        to = "JKS" if found == "JKS" else "PKCS12"
    if to is None:
        raise UsageError("convert needs --to: PKCS12, JKS or PEM")
    if args.dest_alias is not None and args.alias is None:
        # keytool: "Illegal option: -destalias" unless -srcalias names the entry.
        raise UsageError("--dest-alias renames the entry --alias picks: give --alias too")
    if args.dest_alias == "":
        raise UsageError("--dest-alias must not be empty")
    fmt = _sniff(source)
    if target.is_dir():  # before "exists: pass --force", which a directory cannot take
        raise CLIError(f"{target}: is a directory: give a file path; nothing was written")
    # keytool's own migration (its warning on a JKS store prints the command): the
    # store rewritten in place in the new format, the old file kept as NAME.old.
    migrate = keytool and target.exists() and same_file(source, target)
    if migrate and to == fmt:
        raise CLIError(
            f"{target} is the source store: give another -destkeystore, or a -deststoretype "
            "other than its own to migrate it in place; nothing was written"
        )
    merge = not migrate and target.exists() and (args.merge or (keytool and not args.force))
    if target.exists() and not (args.force or merge or migrate):
        raise CLIError(
            f"{target} exists: pass --force to overwrite it, or --merge to add the "
            "entries to it (as keytool -importkeystore does)"
        )
    if merge and to == "PEM":
        raise CLIError(f"{target} exists, and PEM output is one key entry: nothing to merge "
                       "into; pass --force to overwrite it")  # fmt: skip
    password = resolve_password(
        args.password,
        env=ENV_STORE_PASSWORD,
        option="--password",
        what=f"the store password of {source}",
        prompt="Enter source keystore password: ",
        required=fmt not in ("PEM", "DER"),
    )
    out_password = resolve_password(
        args.out_password,
        env=ENV_OUT_PASSWORD,
        option="--out-password",
        what=f"the password for {target}",
        prompt="Enter destination keystore password: ",
        required=password is None,
        confirm=not (merge or migrate),
    )
    if out_password is None:
        out_password = password
    assert out_password is not None
    if args.alias is not None:
        # Named among every entry before only that one is decrypted (a mistyped alias
        # would otherwise be told "aliases are: (none)").
        inspect_keystore(source, password, source=True).certificate(args.alias)
    try:
        key_password = one_password(fmt, password, optional_key_password(args), out)
        store = load_keystore(source, password, key_password, key_alias=args.alias, source=True)
    except CLIError as exc:
        refused = exc.__cause__
        if args.alias is None and isinstance(refused, WrongPasswordError) and refused.alias:
            # keytool asks for each key's password; mtls takes one: say how (h167).
            raise CLIError(
                f"{exc}; keys under different passwords are converted one at a time: "
                f"--alias {as_word(refused.alias)} --key-password ..., then mtls importkeystore "
                "-srcalias NEXT -srckeypass ... into the same file"
            ) from refused
        raise
    if args.alias is not None:
        store.certificate(args.alias)  # KeyEntryError naming the aliases there are
        for other in store.aliases:
            if fold(other) != fold(args.alias):
                store.remove(other)
        if args.dest_alias is not None:
            store.rename(args.alias, args.dest_alias)
    if to != "PEM" and not merge:
        check_new_password(out_password, str(target))
    if store.secret_keys:
        # Never dropped in silence (a store of secret keys alone became an empty one).
        _refuse_certless(
            source,
            store.secret_keys,
            doing="convert this store",
            also="; or convert one entry, named with --alias",  # (h288)
        )
        names = ", ".join(repr(alias) for alias in store.secret_keys)
        raise CLIError(
            f"{source}: secret-key entries {names} cannot be converted (mtls lists them "
            "but never decrypts them): pick the entries to keep with --alias, or convert "
            "with keytool -importkeystore"
        )
    moved = len(store.aliases)
    # A new store is made as keytool -importkeystore makes one: protected by
    # --out-password, not password-less as a source in the JDK's cacerts format is. A
    # merge keeps the destination's protection.
    passwordless = False
    if merge:
        store = _merged_into(target, to, store, out_password, args, out=out)
        passwordless = store.passwordless
    keys, trusted = store.key_aliases, store.trusted_aliases
    if keys and to == "PEM" and (len(keys) > 1 or trusted):
        raise CLIError(
            f"{source} has {len(keys)} key entr{'y' if len(keys) == 1 else 'ies'} and "
            f"{len(trusted)} trusted: PEM output holds one key entry and its chain: "
            "pick it with --alias, or convert to PKCS12 or JKS"
        )
    if keys and to == "JKS" and args.out_key_password is not None:
        check_new_password(args.out_key_password, str(target), "key password")
    if keys and to == "PKCS12" and args.out_key_password not in (None, out_password):
        ignored_key_password(out)  # it was ignored without a word
    backup = target.with_name(target.name + ".old")
    if migrate:  # the old store first: a failure after it leaves both files readable
        old = read_input(source)
        # A PEM key may be in the clear: the backup keeps no group access (see save()).
        pem_key = bool(keys) and detect_format(old) == "PEM"
        atomic_write(backup, old, mode=0o600 if keys else None, keep_group=not pem_key)
    if keys and to == "JKS":
        key_password = args.out_key_password or out_password
        _write_back(store, target, out_password, "JKS", key_password, passwordless=False)
    else:  # PKCS12: every entry, as keytool writes them; PEM: the one key entry
        _write_back(store, target, out_password, to, None, passwordless=passwordless)
    what = (
        f"{len(keys)} key entr{'y' if len(keys) == 1 else 'ies'}, {len(trusted)} trusted"
        if keys
        else f"{len(trusted)} trusted certificate{'' if len(trusted) == 1 else 's'}"
    )
    if migrate:
        out.line(
            f"Migrated {out.style(display_path(target), 'bold')} to {to}: {what}; the {fmt} "
            f"store is kept as {display_path(backup)}"
        )
    elif merge:
        out.line(
            f"Imported {_entry_word(moved)} from {display_path(source)} into "
            f"{out.style(display_path(target), 'bold')} ({to}): it now holds {what}"
        )
    else:
        out.line(
            f"Converted {display_path(source)} ({store.store_type}) to "
            f"{out.style(display_path(target), 'bold')} ({to}): {what}"
        )
    if to == "PEM" and keys:
        if out_password:
            out.line("  the private key is encrypted with the output password (PKCS#8)")
        else:
            out.line(out.style("  the private key is NOT encrypted: protect the file", "yellow"))
    elif out_password == password and args.out_password is None:
        out.line("  with the same password as the source")
    _show_warnings(out, logs)
    return EXIT_OK


def _merged_into(
    target: Path,
    to: WriteFormat,
    source: Keystore,
    password: str,
    args: argparse.Namespace,
    *,
    out: Output,
) -> Keystore:
    """``target``'s entries with ``source``'s added, as ``keytool -importkeystore`` adds
    them to an existing store (an alias ``target`` has already: refused, or replaced
    with ``-noprompt``).

    Raises:
        CLIError: ``target`` is another store type, does not open with the
            destination's passwords, or has an alias of ``source`` (without -noprompt).
    """
    found = _sniff(target)
    if found != to:
        option = "-deststoretype" if args.command == "importkeystore" else "--to"
        fix = (
            f"give {option} {found} to add to it"
            if found in ("JKS", "PKCS12")
            else "mtls writes JKS and PKCS12 only: add to it with keytool -importkeystore"
        )
        raise CLIError(f"{target} is a {found} store, not {to}: {fix}, or --force to replace it")
    # A JKS destination's keys are kept as the file protects them, each under its own
    # password (keytool leaves them as they are); a PKCS#12's share the store password.
    destination = (
        inspect_keystore(target, password, destination=True)
        if found == "JKS"
        else load_keystore(target, password, args.out_key_password, destination=True)
    )
    if destination.secret_keys:
        _refuse_certless(target, destination.secret_keys)
        raise CLIError(f"{target} holds secret-key entries, which mtls cannot write back: "
                       "merge with keytool -importkeystore")  # fmt: skip
    taken = {fold(alias): alias for alias in destination.aliases}
    clashes = [alias for alias in source.aliases if fold(alias) in taken]
    if clashes and not args.overwrite_aliases:
        names = ", ".join(repr(taken[fold(alias)]) for alias in clashes)
        raise CLIError(
            f"{target} already has {names}: pass -noprompt (--overwrite-aliases) to replace "
            "them with the source's, or pick other entries with --alias; nothing was written"
        )
    for alias in source.key_aliases:
        name, key, chain = source.key_entry(alias)
        if fold(name) in taken:
            destination.remove(taken[fold(name)])
        destination.add_key(name, key, chain)
    keys_before = {fold(alias) for alias in destination.key_aliases}
    for alias in source.trusted_aliases:
        if fold(alias) in taken:
            if fold(alias) in keys_before:
                # keytool -noprompt does the same, and says nothing: a private key gone.
                out.warn(
                    f"{target}: key entry {taken[fold(alias)]!r} (its private key) is "
                    f"replaced by the source's trusted certificate {alias!r}"
                )
            destination.remove(taken[fold(alias)])
        destination.add_certificate(alias, source.export_certificate(alias, "DER"))
    return destination
