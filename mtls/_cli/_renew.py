"""Renewing a key entry's certificate: ``mtls certreq`` (keytool -certreq), and the CA's
reply installed by ``mtls import`` over a key entry's alias (keytool -importcert).

The renewal is three steps: a request from the entry's key, the CA's signature, the
reply installed with the key kept. The key is decrypted only to sign the request; a
JKS entry's reply is installed with its key left as the file protects it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import _x509
from .._errors import KeyEntryError
from .._renewal import reply_certificates
from .._stores import Keystore
from .._types import WriteFormat
from ._common import (
    EXIT_OK,
    CLIError,
    Output,
    UsageError,
    cert_info,
    expiry_text,
    load_keystore,
    optional_key_password,
    store_password,
)
from ._logs import LogCollector
from ._stores import (
    _as_stored,
    _entry_word,
    _issuer_text,
    _show_warnings,
    _sniff,
    _write_back,
    _write_export,
    parse_ext_san,
)


def cmd_certreq(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls certreq``: a PKCS#10 request signed by a key entry's key, PEM, to a file or
    standard output (``keytool -certreq``)."""
    path = Path(args.keystore)
    fmt = _sniff(path)
    password = store_password(args, path) if fmt not in ("PEM", "DER") else args.password
    store = load_keystore(path, password, optional_key_password(args), key_alias=args.alias)
    sans: list[str] | None = [s for value in args.san for s in value.split(",") if s.strip()]
    sans = (sans or []) + parse_ext_san(args.ext)
    if not sans and not args.san and not args.ext:
        sans = None  # the certificate's own names
    try:
        request = store.certificate_request(args.alias, subject=args.dname, san=sans)
    except KeyEntryError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    pem = request.public_bytes(serialization.Encoding.PEM)
    if args.file:
        target = _write_export(Path(args.file), pem)
        out.line(f"Certificate request stored in file <{target}>")
        out.line(f"  subject  {out.style(request.subject.rfc4514_string(), 'bold')}")
        try:
            asked = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = _x509.names_text(asked.value)
        except x509.ExtensionNotFound:
            names = []
        out.line(f"  SAN      {', '.join(names) if names else '(none)'}")
        out.line("  next     send it to the CA, then install its reply:")
        alias = store.key_entry(args.alias)[0]
        out.line(
            f"           mtls import --keystore {path} --alias {alias} --file REPLY [--ca CA-CERTS]"
        )
    else:
        out.stdout.write(pem.decode("ascii"))
        out.stdout.flush()
    _show_warnings(out, logs)
    return EXIT_OK


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
    alias: str = args.alias
    before = store.key_entry(alias)[2]
    issuers: list[bytes] = []
    for ca_file in args.ca:
        issuers.extend(reply_certificates(Path(ca_file))[0])
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
    now = _dt.datetime.now(_dt.UTC)
    if _x509.not_after(leaf) < now:
        out.warn("the new certificate has expired: ask the CA for a current one")
    elif _x509.not_before(leaf) > now:
        out.warn("the new certificate is not valid yet: peers refuse it until then")
    out.line(f"  SHA256   {_x509.colon_hex(cert_info(leaf)['sha256'])}")
    out.line(f"  store    {path} ({kind}, {_entry_word(count)})")
    _show_warnings(out, logs)
    return EXIT_OK
