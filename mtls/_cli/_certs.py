"""Certificates, requests and revocation lists outside a store's entries: both sides
of a renewal (certreq and the reply ``import`` installs over a key entry, and gencert,
the CA's signature) and keytool's printcert, printcertreq and printcrl.

The key is decrypted only to sign; a JKS entry's reply is installed with its key left
as the file protects it. What is printed is read by the library's own readers, so
``printcert`` takes every certificate file a store or a reply may be (PEM, DER one or
several, PKCS#7), and says what a file is when it is not that.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import _x509
from .._entries import fold
from .._errors import KeyEntryError, KeystoreFormatError
from .._files import MAX_INPUT_BYTES, read_input
from .._stores import Keystore, listed_aliases
from ._common import (
    ENV_TRUSTSTORE_PASSWORD,
    EXIT_FAILURE,
    EXIT_OK,
    CLIError,
    Output,
    UsageError,
    as_word,
    cert_info,
    certificate_lines,
    expiry_text,
    inspect_keystore,
    is_terminal,
    key_description,
    load_keystore,
    load_truststore,
    no_such_file,
    now,
    oid_name,
    optional_key_password,
    resolve_password,
    start_date,
)
from ._logs import LogCollector
from ._storeio import (
    _der_info,
    _issuer_text,
    _lenient_pem_certificates,
    _show_warnings,
    _sniff,
    _write_export,
    one_password,
    opening_password,
    parse_ext_san,
)

if TYPE_CHECKING:
    from .._crl import CRLSet

# --------------------------------------------------------------------------- renewal
# certreq, and the CA's reply installed by import over a key entry's alias: a request
# from the entry's key, the CA's signature, the reply installed with the key kept.


def _several_keys(path: Path, aliases: tuple[str, ...]) -> CLIError:
    listed = ", ".join(repr(alias) for alias in aliases)
    return CLIError(f"{path} has {len(aliases)} key entries ({listed}): choose one with --alias")


def _key_entry_alias(
    args: argparse.Namespace, path: Path, fmt: str, password: str | None
) -> str | None:
    """The key entry a command signs with: ``--alias``, or the store's only one. For
    JKS-family stores, asked before any key is decrypted (each has its own password:
    every key would be, and the first that does not open would be blamed)."""
    alias: str | None = args.alias
    if fmt in ("JKS", "JCEKS", "BKS", "UBER"):
        keys = inspect_keystore(path, password).key_aliases
        if alias is None:
            if len(keys) > 1:
                raise _several_keys(path, keys)
            alias = keys[0] if keys else None
        elif fold(alias) not in map(fold, keys):
            # Said here, among every key entry: the store is then loaded with this
            # entry's key alone, and "key aliases are: (none)" was said of it (h240).
            raise CLIError(
                f"{path} has no key entry {alias!r}; key aliases are: {listed_aliases(keys, alias)}"
            )
    return alias


def _signing_store(args: argparse.Namespace, out: Output) -> tuple[Path, str, Keystore, str | None]:
    """The keystore a command signs with (certreq, gencert), its format, and the key
    entry's alias (None: its only one)."""
    path = Path(args.keystore)
    fmt = _sniff(path)
    password = opening_password(args, path, fmt)
    alias = _key_entry_alias(args, path, fmt, password)
    key_password = one_password(fmt, password, optional_key_password(args), out)
    store = load_keystore(path, password, key_password, key_alias=alias)
    if alias is None and len(store.key_aliases) > 1:
        raise _several_keys(path, store.key_aliases)
    return path, fmt, store, alias


def cmd_certreq(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls certreq``: a PKCS#10 request signed by a key entry's key, PEM, to a file or
    standard output (``keytool -certreq``)."""
    path, fmt, store, alias = _signing_store(args, out)
    sans: list[str] | None = [s for value in args.san for s in value.split(",") if s.strip()]
    sans = (sans or []) + parse_ext_san(args.ext)
    if not sans and not args.san and not args.ext:
        sans = None  # the certificate's own names
    try:
        request = store.certificate_request(
            alias, subject=args.dname, san=sans, signature_algorithm=args.sigalg
        )
    except KeyEntryError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    pem = request.public_bytes(serialization.Encoding.PEM)
    if args.file:
        target = _write_export(
            Path(args.file), pem, what="certificate request", reads=(path,), force=args.force
        )
        out.line(f"Certificate request stored in file <{target}>")
        out.line(f"  subject  {out.style(request.subject.rfc4514_string(), 'bold')}")
        try:
            asked = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = _x509.names_text(asked.value)
        except x509.ExtensionNotFound:
            names = []
        out.line(f"  SAN      {', '.join(names) if names else '(none)'}")
        stored = store.key_entry(alias)[0]
        if fmt in ("JKS", "PKCS12"):
            out.line("  next     send it to the CA, then install its reply:")
            out.line(
                f"           mtls import --keystore {as_word(path)} --alias {as_word(stored)} "
                "--file REPLY "
                "[--ca CA-CERTS]"
            )
        else:  # mtls writes JKS and PKCS12 only: the reply goes into a converted copy
            out.line(
                f"  next     send it to the CA; {path} is {fmt}: convert it to PKCS12 (mtls "
                "convert) and install the reply there with mtls import"
            )
    else:
        out.write(pem.decode("ascii"))
    _show_warnings(out, logs)
    return EXIT_OK


# --------------------------------------------------------------------------- gencert


def cmd_gencert(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls gencert``: sign a certificate request with a key entry, the entry's
    certificate as issuer (``keytool -gencert``); the certificate and the issuer's
    chain (self-signed ones left out), DER unless ``--rfc``."""
    from .._issuing import parse_ext  # noqa: PLC0415 - a CA's work only
    from .._keygen import parse_dname  # noqa: PLC0415

    try:
        extensions, honored = parse_ext(args.ext)
        subject = parse_dname(args.dname) if args.dname else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    not_before = start_date(args.start_date)
    to_terminal = not args.outfile and is_terminal(out.stdout)
    if to_terminal and not args.rfc:
        raise UsageError("the certificate is DER: pass --rfc for PEM on a terminal, or --outfile")
    request: bytes | Path = (
        Path(args.infile)
        if args.infile and args.infile != "-"
        else input_bytes(None, "certificate request", option="--infile")[0]
    )
    signer, _, store, alias = _signing_store(args, out)
    try:
        chain = store.sign_request(
            request, alias, days=args.validity, subject=subject, extensions=extensions,
            honored=honored, not_before=not_before, signature_algorithm=args.sigalg,
        )  # fmt: skip
    except (KeyEntryError, KeystoreFormatError) as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:  # -sigalg for another key type, -startdate past 9999
        raise UsageError(str(exc)) from None
    encoding = serialization.Encoding.PEM if args.rfc else serialization.Encoding.DER
    issued = b"".join(cert.public_bytes(encoding) for cert in chain)
    if args.outfile:
        target = _write_export(
            Path(args.outfile), issued, what="certificate", reads=(signer,), force=args.force
        )
        info = cert_info(chain[0])
        out.line(f"Certificate issued, stored in file <{target}>")
        out.line(f"  subject  {out.style(info['subject'], 'bold')}")
        out.line(f"  issuer   {_issuer_text(chain[0])}")
        out.line(f"  valid    until {expiry_text(info['not_after'])}")
        out.line(f"  SAN      {', '.join(info['san']) if info['san'] else '(none)'}")
        out.line(f"  serial   {info['serial']}")
        extra = (
            f", then {len(chain) - 1} issuer{'s' if len(chain) > 2 else ''}" if chain[1:] else ""
        )
        out.line(f"  file     {'PEM' if args.rfc else 'DER'}: the certificate{extra}")
        out.line(
            "  next     send it back: it is installed over the key entry with mtls import "
            "--keystore KS --alias KEY --file REPLY"
        )
    else:
        out.write_bytes(issued)
    _show_warnings(out, logs)
    return EXIT_OK


# --------------------------------------------------------------------------- print


def input_bytes(name: str | None, what: str, *, option: str = "--file") -> tuple[bytes, str]:
    """The bytes of file ``name``, or of standard input when ``name`` is ``-`` or not
    given (as keytool reads them), and how to name them in messages.

    Raises:
        UsageError: no file and standard input is a terminal.
        CLIError: no such file, or more than 8 MiB on standard input.
    """
    if name is not None and name != "-":
        try:
            return read_input(Path(name)), name
        except FileNotFoundError:
            raise CLIError(no_such_file(name)) from None
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        raise UsageError(f"give the {what} with {option} FILE, or pipe it in")
    data = stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise CLIError(f"standard input: more than {MAX_INPUT_BYTES >> 20} MiB: not a {what}")
    if not data:
        raise CLIError(
            f"standard input is empty: give the {what} with {option} FILE, or pipe it in"
        )
    return data, "standard input"


def _keystore_format(data: bytes) -> str | None:
    """The keystore format of ``data`` (JKS, PKCS12, ...); ``None`` for certificates,
    PEM text, or what no store reader takes."""
    from .._readers import detect_format  # noqa: PLC0415

    try:
        fmt = detect_format(data)
    except KeystoreFormatError:
        return None
    return None if fmt in ("PEM", "DER") else fmt


def _what_else(data: bytes) -> str | None:
    """Which other printing command reads ``data`` (a request, a CRL), or that it is a
    private key (a keystore is refused before: :func:`_keystore_format`)."""
    from .._pem import PEM_CERTIFICATE_LABELS  # noqa: PLC0415
    from .._readers import _der_signed, _without_line_break, is_der_element  # noqa: PLC0415

    blocks = (f"-----BEGIN {label.decode()}-----".encode() for label in PEM_CERTIFICATE_LABELS)
    text = b"\x00" not in data and not is_der_element(data)
    if text and any(block in data for block in blocks):
        return None  # a text of certificate blocks: why they were refused is the answer
    signed = _der_signed(_without_line_break(data))
    if b"CERTIFICATE REQUEST-----" in data or signed == "request":
        return "a certificate request: print it with mtls printcertreq"
    if b"X509 CRL-----" in data or signed == "CRL":
        return "a certificate revocation list: print it with mtls printcrl"
    if b"PRIVATE KEY-----" in data and b"CERTIFICATE-----" not in data:
        return "a private key, not a certificate"
    return None


def cmd_printcert(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls printcert``: the certificates of a file (PEM, DER one or several, a PKCS#7
    bundle) or standard input, or those a TLS server sends (``--sslserver``), as
    ``keytool -printcert``."""
    from .._renewal import certificates_in  # noqa: PLC0415

    if args.sslserver:
        if args.file:
            raise UsageError("give --file or --sslserver, not both")
        ders, source = _server_chain(args.sslserver, args.timeout)
    else:
        data, source = input_bytes(args.file, "certificate")
        keystore = _keystore_format(data)
        if keystore is not None:  # before its bytes are searched for PEM text
            raise CLIError(f"{source} is a {keystore} keystore: list it with mtls list --keystore")
        try:
            ders = certificates_in(data, path=source, role="certificate")
        except KeystoreFormatError as exc:
            # What the file is instead; else what keytool also reads (a "-----BEGIN " in
            # the text before the block, old Mac line ends); else why it was refused.
            other = _what_else(data)
            if other is not None:
                raise CLIError(f"{source} is {other}") from None
            ders = _lenient_pem_certificates(data)
            if not ders:
                raise CLIError(str(exc)) from None
    if args.rfc:
        out.write_bytes(b"".join(_x509.der_to_pem(der).encode("ascii") for der in ders))
        _show_warnings(out, logs)
        return EXIT_OK
    infos = [_der_info(der) for der in ders]
    if args.json:
        out.json({"source": source, "certificates": infos, "warnings": logs.messages})
        return EXIT_OK
    for number, info in enumerate(infos, 1):
        if number > 1:
            out.line()
        out.line(out.style(f"Certificate[{number}]:", "bold"))
        certificate_lines(out, info, "  ")
    _show_warnings(out, logs)
    return EXIT_OK


def _server_chain(server: str, timeout: float) -> tuple[list[bytes], str]:
    """The certificates a TLS server sends, unverified and without a client
    certificate (as ``keytool -printcert -sslserver``), and ``host:port``.

    Raises:
        UsageError: not ``host[:port]``.
        CLIError: no connection, or the handshake failed.
    """
    import ssl  # noqa: PLC0415

    from ._connect import _connect, handshake_chain  # noqa: PLC0415
    from ._diagnosis import parse_target  # noqa: PLC0415

    if "/" in server:
        raise UsageError(f"--sslserver {server!r}: give host[:port] (443 by default)")
    if server.count(":") > 1 and not server.startswith("["):
        raise UsageError(f"--sslserver {server!r}: write an IPv6 address in brackets: [::1]:8443")
    target = parse_target(server)
    raw, failure = _connect(target, timeout)
    if raw is None:
        raise CLIError(failure.message if failure is not None else f"cannot connect to {server}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # shown, not trusted: what keytool shows too
    try:
        with context.wrap_socket(
            raw, server_hostname=target.host, do_handshake_on_connect=False
        ) as tls:
            chain = handshake_chain(tls)
    except ssl.SSLError as exc:
        raise CLIError(
            f"{target.server}: the TLS handshake failed ({exc.reason or exc}); mtls probe "
            f"https://{target.server}/ explains why"
        ) from None
    except TimeoutError:
        # Python's own text said "_ssl.c:989: The handshake operation timed out" (h285).
        raise CLIError(
            f"{target.server} accepted the connection but the TLS handshake timed out; "
            f"mtls probe https://{target.server}/ explains why"
        ) from None
    except OSError as exc:
        raise CLIError(f"{target.server}: {exc.strerror or exc}") from None
    finally:
        raw.close()
    if not chain:
        raise CLIError(f"{target.server} sent no certificate")
    return chain, target.server


def cmd_printcertreq(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls printcertreq``: a certificate request's subject, key, requested names and
    extensions, its signature checked (``keytool -printcertreq``)."""
    from .._issuing import read_request  # noqa: PLC0415

    data, source = input_bytes(args.file, "certificate request")
    try:
        request, _ = read_request(data, path=source, to_sign=False)  # printed, not signed
    except KeystoreFormatError as exc:
        raise CLIError(str(exc)) from None
    try:
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    info: dict[str, Any] = {
        "subject": request.subject.rfc4514_string(),
        "key": key_description(request),
        "signature_algorithm": oid_name(request.signature_algorithm_oid),
        "signature_valid": True,
        "san": _x509.names_text(names) if names is not None else [],
        "extensions": [oid_name(ext.oid) for ext in request.extensions],
    }
    if args.json:
        out.json({"source": source, "request": info, "warnings": logs.messages})
        return EXIT_OK
    out.line(out.style("Certificate request:", "bold"))
    out.line(f"  subject     {info['subject'] or '(empty)'}")
    out.line(f"  key         {info['key']}")
    out.line(f"  SAN         {', '.join(info['san']) if info['san'] else '(none asked for)'}")
    extensions = info["extensions"]
    out.line(f"  extensions  {', '.join(extensions) if extensions else '(none)'}")
    out.line(f"  signature   {info['signature_algorithm']}, verified with the request's key")
    _show_warnings(out, logs)
    return EXIT_OK


def cmd_printcrl(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls printcrl``: a revocation list's issuer, its validity and every revoked
    serial number with its date and reason (``keytool -printcrl``); exit 1 when it is
    past its next update, as a profile refuses it then."""
    from .._crl import CRLSet  # noqa: PLC0415
    from .._errors import CRLError  # noqa: PLC0415

    data, source = input_bytes(args.file, "certificate revocation list")
    try:
        crls = CRLSet.from_bytes(data, path=source if source != "standard input" else None)
    except CRLError as exc:
        raise CLIError(f"{source}: {exc}" if source not in str(exc) else str(exc)) from None
    lists = [_crl_info(crl) for crl in crls]
    stale = [info for info in lists if info["expired"]]
    refusal = _profile_check(args, crls) if args.truststore else _unusable(crls, source)
    if args.json:
        checked = {"truststore": args.truststore, "error": refusal}
        out.json({"source": source, "crls": lists, "checked": checked, "warnings": logs.messages})
        return EXIT_FAILURE if stale or refusal else EXIT_OK
    for number, info in enumerate(lists, 1):
        if number > 1:
            out.line()
        out.line(out.style(f"CRL[{number}]:", "bold"))
        out.line(f"  issuer       {info['issuer']}")
        out.line(f"  this update  {info['this_update'][:19].replace('T', ' ')} UTC")
        following = info["next_update"]
        if following is None:
            out.line("  next update  (none: the list never says it is stale)")
        else:
            text = expiry_text(following)
            out.line(f"  next update  {out.style(text, 'red') if info['expired'] else text}")
        if info["crl_number"] is not None:
            out.line(f"  CRL number   {info['crl_number']}")
        if info["delta_of"] is not None:
            out.line(
                f"  delta CRL    of base CRL {info['delta_of']}: only the changes since it, "
                "not every revoked certificate (a profile's crls= takes complete lists)"
            )
        out.line(f"  revoked      {len(info['revoked'])}")
        for entry in info["revoked"]:
            reason = f"  {entry['reason']}" if entry["reason"] else ""
            out.line(f"    {entry['serial']}  {entry['revoked_on'][:10]}{reason}")
    out.line()
    if not args.truststore:
        out.line("signature not checked: --truststore FILE checks the list as a profile would")
    elif refusal is None:
        out.line(
            f"checked against {args.truststore}: signed by one of its certificates, in date, "
            "usable as a profile's crls="
        )
    _show_warnings(out, logs)
    if refusal is not None:
        out.error(refusal)
        return EXIT_FAILURE
    if stale:
        # An error line, as every failure has (h270: exit 1 said only a warning).
        others = f" (and {len(stale) - 1} more of the lists)" if len(stale) > 1 else ""
        out.error(
            f"the CRL of {stale[0]['issuer']} is past its next update{others}: a profile "
            "refuses it (fetch the CA's current list)"
        )
        return EXIT_FAILURE
    return EXIT_OK


def _unusable(crls: CRLSet, source: str) -> str | None:
    """Why OpenSSL would not use one of ``crls`` whatever the truststore (the check a
    profile's ``crls=`` makes of each list): a critical extension it does not process
    (RFC 5280 5.2), which fails every handshake, or one that cannot be read."""
    from .._crl import extension_refusal  # noqa: PLC0415

    for crl, path in crls.lists():
        refusal = extension_refusal(crl, path or source, crl.issuer.rfc4514_string(), path)
        if refusal is not None:
            return str(refusal)
    return None


def _profile_check(args: argparse.Namespace, crls: CRLSet) -> str | None:
    """Why a profile with ``--truststore`` would refuse these lists (not signed by one
    of its certificates, expired, not usable by OpenSSL); ``None`` when it takes them."""
    from .._errors import CRLError  # noqa: PLC0415

    password = resolve_password(
        args.truststore_password, env=ENV_TRUSTSTORE_PASSWORD,
        option="--truststore-password", what="", prompt="", required=False,
    )  # fmt: skip
    trust = load_truststore(Path(args.truststore), password, truststore=True)
    try:
        crls.check(trust.anchors_der)
    except CRLError as exc:
        return str(exc)
    return None


def _crl_info(crl: x509.CertificateRevocationList) -> dict[str, Any]:
    """The JSON form of one CRL (the keys documented in docs/cli.md)."""
    from .._crl import _extension, crl_next_update, crl_revoked_on, crl_this_update  # noqa: PLC0415
    from .._types import hex_serial  # noqa: PLC0415

    following = crl_next_update(crl)
    number = _extension(crl, x509.CRLNumber)
    delta = _extension(crl, x509.DeltaCRLIndicator)
    revoked: list[dict[str, Any]] = []
    for entry in crl:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except (x509.ExtensionNotFound, ValueError):
            reason = None
        revoked.append(
            {
                "serial": hex_serial(entry.serial_number),
                "revoked_on": crl_revoked_on(entry).isoformat(),
                "reason": reason,
            }
        )
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "this_update": crl_this_update(crl).isoformat(),
        "next_update": following.isoformat() if following is not None else None,
        "expired": following is not None and following < now(),
        "crl_number": number.crl_number if number is not None else None,
        # A delta CRL lists changes since the base CRL of that number, not every
        # revoked certificate: a profile refuses it (OpenSSL needs the complete list).
        "delta_of": delta.crl_number if delta is not None else None,
        "revoked": revoked,
    }
