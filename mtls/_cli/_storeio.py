"""What the store and certificate commands (``_stores``, ``_certs``) share: a file's
format, a certificate written where the user asked, and the lines they print."""

from __future__ import annotations

import argparse
import base64
import os
import re
from pathlib import Path
from typing import Any

from cryptography import x509

from .. import _x509
from .._errors import KeystoreFormatError, KeystoreNotFoundError
from .._files import looks_like_store_text, read_input
from .._readers import detect_format, is_der_element, open_error, with_fix
from ._common import (
    ENV_STORE_PASSWORD,
    CLIError,
    Output,
    UsageError,
    cert_info,
    no_such_file,
    resolve_password,
    store_password,
)
from ._logs import LogCollector


def _sniff(path: Path) -> str:
    """The store format of a file, from its bytes.

    Raises:
        KeystoreNotFoundError: no such file; KeystoreError: a file that cannot be read
            (what the library raises for them: the file named, and why).
    """
    # A file that exists is a path, whatever its name looks like (h263).
    if not os.path.lexists(path) and looks_like_store_text(os.fsdecode(path)):
        raise CLIError(
            "the store path given is PEM or base64 text, not a file's path (not shown: it "
            "may hold a private key): write the store to a file and pass its path"
        )
    try:
        data = read_input(path)
    except FileNotFoundError:
        raise KeystoreNotFoundError(no_such_file(path), path=path) from None
    except OSError as exc:  # the library's words (an EIO was "Input/output error" alone)
        raise open_error(exc, os.fspath(path)) from None
    try:
        return detect_format(data)
    except KeystoreFormatError as exc:
        raise CLIError(f"{path}: {with_fix(exc, 'check the file name')}") from exc


def ignored_key_password(out: Output) -> None:
    out.warn("PKCS12 stores have one password: the key password is ignored (keytool does the same)")


def one_password(
    fmt: str, password: str | None, key_password: str | None, out: Output
) -> str | None:
    """The key password to open a store of format ``fmt`` with: a PKCS12 store has one
    password, so another key password is ignored with a warning, as keytool ignores it
    (h272: certreq, gencert and convert tried it on every key, and blamed the first)."""
    if fmt == "PKCS12" and key_password is not None and key_password != password:
        ignored_key_password(out)
        return None
    return key_password


def opening_password(args: argparse.Namespace, path: Path, fmt: str | None = None) -> str | None:
    """The password to open the store at ``path`` (of format ``fmt``, sniffed when not
    given) with: the store password, asked for when not given, for a Java store and
    for a PEM file holding an encrypted key; for other PEM and DER files, whose keys
    are not encrypted, only one given."""
    if (fmt or _sniff(path)) not in ("PEM", "DER") or b"ENCRYPTED" in read_input(path):
        return store_password(args, path)
    return resolve_password(
        args.password, env=ENV_STORE_PASSWORD, option="--password", what="", prompt="",
        required=False,
    )  # fmt: skip


def _entry_word(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def _issuer_text(cert: x509.Certificate) -> str:
    issuer = cert.issuer.rfc4514_string()
    return f"{issuer} (self-signed)" if cert.issuer == cert.subject else issuer


def _as_stored(alias: str, kind: str) -> str:
    """The alias as the file holds it: JKS stores aliases lower-cased, as Java does."""
    return alias.lower() if kind == "JKS" else alias


def _show_warnings(out: Output, logs: LogCollector) -> None:
    for message in logs.messages:
        out.warn(message)


def _der_info(der: bytes) -> dict[str, Any]:
    try:
        return cert_info(_x509.load_cert(der))
    except ValueError as exc:
        # OpenSSL may still take it (JDK 17 writes DSA certificates cryptography refuses).
        return {"sha256": _x509.sha256_hex(der), "unparsed": f"cryptography cannot read it: {exc}"}


def same_file(one: Path, other: Path) -> bool:
    """Whether two paths name one file (a link, another spelling); False if either is gone."""
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


# What a file must not be replaced by a certificate or a request unless asked (--force):
# a store, whose keys would be lost (keytool overwrites it silently).
_KEY_STORES = ("JKS", "JCEKS", "PKCS12", "BKS", "UBER", "BCFKS")


def _refuse_replacing_store(path: Path, what: str, reads: tuple[Path, ...], force: bool) -> None:
    """Refuse to write ``what`` over the store the command reads (``reads``), ever, and
    over another keystore or a PEM or DER file holding a private key unless ``force``:
    keytool writes over either, and the keys are gone. A certificate or request file
    is replaced, as keytool replaces it (an export run again)."""
    for source in reads:
        if same_file(source, path):
            raise CLIError(
                f"{path} is the store this command reads: writing the {what} there would "
                "replace the store and its keys; give another file (nothing was written)"
            )
    if force:
        return
    try:
        data = read_input(path)
    except (OSError, ValueError):
        return  # unreadable: replaced as keytool does
    try:
        found: str | None = detect_format(data)
    except (KeystoreFormatError, ValueError):
        found = "DER private key" if _der_private_key(data) else None
    if found == "PEM" and b"PRIVATE KEY" in data:
        found = "PEM file holding a private key"
    elif found in _KEY_STORES:
        found = f"{found} store"
    elif found != "DER private key":
        return  # a certificate, a request: replaced as keytool does
    raise CLIError(
        f"{path} is a {found}: writing the {what} there would replace it; pass --force "
        "to replace it, or give another file (nothing was written)"
    )


def _der_private_key(data: bytes) -> bool:
    """Whether ``data`` is a private key in DER (PKCS#8, encrypted or not, PKCS#1 or
    SEC 1), read without its password: what ``--file key.der`` must not lose."""
    if data[:1] != b"\x30":
        return False
    if _x509.key_algorithm(data) is not None:
        return True  # PKCS#8, walked by offsets
    from cryptography.hazmat.primitives.serialization import load_der_private_key  # noqa: PLC0415

    try:
        load_der_private_key(data, None)
    except TypeError:
        return True  # encrypted: a key all the same
    except Exception:
        return False
    return True


def _write_export(
    path: Path, data: bytes, *, what: str, reads: tuple[Path, ...], force: bool = False
) -> Path:
    """A certificate (or request: ``what``) to ``path``: a regular file (or a new one)
    atomically, so a full disk or a size limit leaves no partial file; a pipe, a
    terminal or a device (``/dev/stdout``, ``>(openssl x509)``) in place, as keytool
    writes it. Never over the stores the command ``reads``, nor (unless ``force``)
    over another store (:func:`_refuse_replacing_store`)."""
    import stat  # noqa: PLC0415 - not for --help

    from .._files import atomic_write, write_refused  # noqa: PLC0415

    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        regular = True  # a new file (or a dangling link: its target is made)
    else:
        if regular:
            _refuse_replacing_store(path, what, reads, force)
    if regular:
        return atomic_write(path, data, mode=None)
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:  # /dev/full, a closed pipe: said with the file's name
        raise write_refused(exc, Path(path)) from None
    return path


def parse_ext_san(values: list[str]) -> list[str]:
    """keytool's ``-ext san=dns:a,ip:b`` values as SAN strings; other extensions refused.

    Raises:
        UsageError: an extension other than SAN.
    """
    sans: list[str] = []
    for value in values:
        name, sep, rest = value.partition("=")
        name, _, flag = name.strip().lower().partition(":")
        if not sep or name not in ("san", "subjectalternativename"):
            raise UsageError(
                f"-ext {value!r}: only subject alternative names are supported "
                "(-ext san=dns:localhost,ip:127.0.0.1, or --san)"
            )
        if flag:  # keytool's san:c=... makes the extension critical
            raise UsageError(
                f"-ext {value!r}: a critical SAN is not supported (it would be written "
                f"non-critical): leave out ':{flag}'"
            )
        sans.extend(part for part in rest.split(",") if part.strip())
    return sans


_MARKERS = (
    re.compile(rb"BEGIN (?:X509 |TRUSTED )?CERTIFICATE-"),
    re.compile(rb"END (?:X509 |TRUSTED )?CERTIFICATE-"),
)


def _lenient_pem_certificates(data: bytes) -> list[bytes]:
    """The CERTIFICATE blocks of a text file wherever they are (the reading ``mtls
    import`` had before it shared the store reader's, and keytool's): old Mac line ends,
    a "-----BEGIN " inside the text before the block. Nothing when the file is binary (a
    keystore, a DER file: PEM text inside it is not the file's) or when a block does not
    decode (never a chain read with a link silently left out)."""
    if b"\x00" in data or is_der_element(data):
        return []
    blocks = _x509.pem_blocks(data, b"CERTIFICATE")
    # Every BEGIN and END line of a certificate is one of these blocks: a block cut
    # short (no END) or with a mangled BEGIN line is not skipped in silence.
    if not blocks or any(len(marker.findall(data)) != len(blocks) for marker in _MARKERS):
        return []
    certs: list[bytes] = []
    for block in blocks:
        body = block[len(b"-----BEGIN CERTIFICATE-----") : -len(b"-----END CERTIFICATE-----")]
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
            _x509.load_cert(der)
        except ValueError:  # bad base64 or DER: the file is damaged, not lenient-readable
            return []
        certs.append(der)
    return certs
