"""PEM: blocks, certificates and private keys in every form OpenSSL writes.

One linear pass finds the blocks (:func:`pem_blocks`); certificates come out as DER
(``TRUSTED CERTIFICATE``'s trust settings dropped), and private keys as PKCS#8 DER
(:func:`pem_key_to_pkcs8`): PKCS#8, encrypted PKCS#8 (PBES1 and PBES2), the
traditional ``RSA``/``EC``/``DSA PRIVATE KEY`` blocks, and OpenSSL's legacy
``Proc-Type``/``DEK-Info`` encryption. ``_readers`` turns a PEM file's blocks into a
store's entries (which key goes with which chain); ``_renewal`` and ``_issuing`` read
certificate replies and requests with the same functions.
"""

from __future__ import annotations

import binascii
import os
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from . import _der, _jks, _pkcs12, _x509
from ._budget import WorkBudget, WorkLimitError
from ._entries import where as _where
from ._errors import KeystoreFormatError, WrongPasswordError
from ._secret import Secret

# RFC 7468 boundaries. Labels are short; bounding them keeps every match local.
# RFC 7468 labels: printable ASCII but "-" (OpenSSL writes "X9.42 DH PARAMETERS").
_PEM_BOUNDARY = re.compile(rb"-----(BEGIN|END) ([\x21-\x2c\x2e-\x7e ]{1,64})-----")


#: The PEM labels a certificate is read from (OpenSSL's three).
PEM_CERTIFICATE_LABELS = (b"CERTIFICATE", b"TRUSTED CERTIFICATE", b"X509 CERTIFICATE")


def pem_certificate(
    label: bytes, body: bytes, number: int, where: str, path: str | os.PathLike[str] | None
) -> bytes:
    """The DER of certificate block ``number`` of a PEM file (one DER element; for a
    ``TRUSTED CERTIFICATE``, the certificate without OpenSSL's trust settings).

    Raises:
        KeystoreFormatError: not base64, or not one DER element.
    """
    try:
        der = base64_body(body)
        if label == b"TRUSTED CERTIFICATE":
            der = _trusted_certificate(der, where, path)
        _der.check_single(der, _der.SEQUENCE)
    except (binascii.Error, _der.DERError) as exc:
        raise KeystoreFormatError(
            f"{where}: certificate {number} is not valid PEM: fix the file", path=path
        ) from exc
    return der


def pem_blocks(
    data: bytes, where: str, path: str | os.PathLike[str] | None
) -> list[tuple[bytes, bytes, bytes]]:
    """(label, body, whole block) of every PEM block, in one linear pass over ``data``.

    Text between blocks is allowed (``openssl x509 -text`` writes some). A BEGIN line
    without its END line, a BEGIN inside a block, or a mangled BEGIN line means the
    file was cut short or damaged, and is refused. A boundary that does not start its
    line (after spaces or tabs, and a byte-order mark) is text, as OpenSSL reads it: a
    comment that quotes one ("Note: -----BEGIN CERTIFICATE----- below") was refused as
    a truncated block (h239). One after text with its block following is refused
    saying so (OpenSSL skips the block, keytool reads it).
    """
    blocks: list[tuple[bytes, bytes, bytes]] = []
    ends: list[int] = []  # where each block's END line starts
    opened: re.Match[bytes] | None = None
    after = 0  # where the boundary before this one starts (0: none)
    begins = 0  # BEGIN boundaries that start their line
    quoted: re.Match[bytes] | None = None  # the first after text that ends its line
    for match in _PEM_BOUNDARY.finditer(data):
        at, before = match.start(), after
        after = at
        if match.group(1) == b"BEGIN":
            if not _starts_line(data, at, before):
                if (
                    quoted is None
                    and data[match.end() : match.end() + 2].lstrip(b"\r")[:1] == b"\n"
                ):
                    quoted = match
                continue  # text that mentions a boundary
            begins += 1
            if opened is not None:
                break  # the previous block has no END line
            # The BEGIN line ends after its boundary (RFC 7468 section 2), where OpenSSL
            # and keytool also take spaces and tabs before the line break.
            eol = match.end()
            while data[eol : eol + 1] in (b" ", b"\t"):
                eol += 1
            eol += data[eol : eol + 1] == b"\r"
            if data[eol : eol + 1] == b"\n":
                opened = match
        elif opened is not None:
            if match.group(2) != opened.group(2):
                break  # an END for another label: the block was cut
            blocks.append(
                (
                    opened.group(2),
                    data[opened.end() : match.start()],
                    data[opened.start() : match.end()],
                )
            )
            ends.append(match.start())
            opened = None
    if (
        opened is not None
        # A BEGIN line mangled, or cut: one count in C when every "-----BEGIN " was a
        # boundary that starts its line.
        or (begins if data.count(b"-----BEGIN ") == begins else _begin_lines(data)) != len(blocks)
        or _orphan_end(data, ends)  # a block whose BEGIN line was mangled
    ):
        if quoted is not None and opened is None:
            # "see: -----BEGIN CERTIFICATE-----" then its body and END: OpenSSL skips
            # the block as text, keytool reads it; which one is meant is unknown.
            raise KeystoreFormatError(
                f"{where}: a -----BEGIN {quoted.group(2).decode('ascii', 'replace')}----- "
                "line has text before it on its line: OpenSSL skips that block, and "
                "keytool reads it: put the BEGIN line at the start of its line, or remove "
                "the block",
                path=path,
            )
        raise KeystoreFormatError(
            f"{where}: a PEM block has no matching END line: the file is truncated or "
            "damaged; replace it",
            path=path,
        )
    return blocks


def _starts_line(data: bytes, at: int, after: int) -> bool:
    """Whether ``data[at:]`` starts a line: only spaces or tabs before it on its line
    (and a UTF-8 byte-order mark). ``after``: where the boundary before
    it starts, or 0: the search for the line break goes back no further (the same
    line as a boundary starts no line), so a file is read once, whatever its lines."""
    if at == 0 or data[at - 1] == 0x0A:  # the usual file: right after a line break
        return True
    newline = data.rfind(b"\n", after, at)
    if newline < 0 and after > 0:
        return False
    # A byte-order mark may start any line: files saved on Windows, then concatenated.
    before = data[newline + 1 : at].removeprefix(b"\xef\xbb\xbf")
    return not before.strip(b" \t\r")


def _begin_lines(data: bytes) -> int:
    """How many BEGIN lines ``data`` has (``-----BEGIN `` starting a line), counted in
    C: a walk over every ``-----BEGIN `` took 10 s for 8 MB of them on one line."""
    return len(_BEGIN_LINE.findall(data))


# A BEGIN boundary that starts its line: after a line break or at the start of the
# file, a byte-order mark, and spaces or tabs.
_BEGIN_LINE = re.compile(rb"(?:\A|\n)(?:\xef\xbb\xbf)?[ \t\r]*-----BEGIN ")


def _orphan_end(data: bytes, ends: list[int]) -> bool:
    """Whether ``data`` has an END line that ends none of its blocks (``ends``: where
    theirs start, in order): the BEGIN line of that block was mangled, or it ends
    twice. keytool refuses such a file; reading it would leave a certificate out.

    An END line is ``-----END `` at the start of a line, after spaces or tabs (a
    comment that mentions one mid-line is text). In the usual file every ``-----END ``
    is a block's own, which one count in C tells; only a file with others is searched
    for END lines, by a pattern that starts at line breaks (one that could also start
    at the beginning of the file was tried at every byte: 50 us of the 95 us a key and
    two certificates took to read).
    """
    if data.count(b"-----END ") == len(ends):
        return False
    known = set(ends)
    first = _FIRST_END_LINE.match(data)
    if first is not None and first.start(1) not in known:
        return True
    return any(match.start(1) not in known for match in _END_LINE.finditer(data))


# An END line after a line break, and one on the first line.
_END_LINE = re.compile(rb"[\r\n][ \t]*(-----END )")
_FIRST_END_LINE = re.compile(rb"[ \t]*(-----END )")


def base64_body(body: bytes) -> bytes:
    """A PEM body's bytes: whitespace dropped, then strict base64 (one C call each)."""
    return binascii.a2b_base64(body.translate(None, b" \t\n\r\x0b\x0c"), strict_mode=True)


# The header of an OpenSSL traditional encrypted key, as OpenSSL's PEM_get_EVP_CIPHER_INFO
# reads it: spaces or tabs after the colon and after the comma ("Proc-Type:4,ENCRYPTED"
# too, which was read as a key without encryption: h239).
_PROC_TYPE_ENCRYPTED = re.compile(rb"^Proc-Type:[ \t]*4,[ \t]*ENCRYPTED[ \t]*\r?$", re.MULTILINE)


def _pem_key_is_encrypted(block: bytes) -> bool:
    # PKCS#8 "ENCRYPTED PRIVATE KEY", or an OpenSSL traditional key with a Proc-Type header.
    return block.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") or (
        _PROC_TYPE_ENCRYPTED.search(block, 0, 2048) is not None
    )


def _trusted_certificate(der: bytes, where: str, path: str | os.PathLike[str] | None) -> bytes:
    """The certificate of OpenSSL's ``TRUSTED CERTIFICATE`` form (certificate + X509_CERT_AUX).

    The auxiliary trust and reject settings narrow what OpenSSL trusts the certificate
    for (a trust list without serverAuth means "not for servers"). We cannot apply
    them, so a block that carries either is refused rather than trusted more widely
    than OpenSSL would; a block with only an alias or key id is taken as it is.
    """
    cert = _der.read_tlv(der)
    if cert.end < len(der):
        aux = _der.read_tlv(der, cert.end).expect(_der.SEQUENCE)
        # trust SEQUENCE OF OID (untagged) and reject [0] SEQUENCE OF OID
        if any(item.tag in (_der.SEQUENCE, 0xA0) for item in aux.children()):
            raise KeystoreFormatError(
                f"{where}: a TRUSTED CERTIFICATE block carries OpenSSL trust or reject "
                "settings, which mtls cannot apply: remove them (openssl x509 -clrtrust "
                "-clrreject) or leave the certificate out",
                path=path,
            )
    return der[: cert.end]


def pem_key_to_pkcs8(
    block: bytes,
    password: Secret | None,
    path: str | os.PathLike[str] | None,
    budget: WorkBudget,
) -> bytes:
    where = _where(path)
    if block.startswith(b"-----BEGIN PRIVATE KEY-----"):
        # Already PKCS#8 and unencrypted: hand the DER through untouched (no parse).
        return _pem_body(block, where, path)
    encrypted = _pem_key_is_encrypted(block)
    if block.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"):
        encrypted_der = _pem_body(block, where, path)
        try:
            if password is not None:
                try:
                    # Decrypted as a PKCS#12 key bag is: the key's bytes as written.
                    return _pkcs12.decrypt_pkcs8(encrypted_der, password, budget)
                except _pkcs12.P12UnsupportedError:
                    pass  # a scheme cryptography may decrypt (PBES1 with MD2): below
                except _pkcs12.P12PasswordError as exc:
                    raise WrongPasswordError(
                        f"{where}: wrong password for the encrypted private key", path=path
                    ) from exc
            # cryptography runs the key derivation in OpenSSL, holding the GIL, with no
            # cap: read its parameters first and refuse what Java would (5M iterations).
            _pkcs12.check_key_encryption(encrypted_der, budget)
        except WorkLimitError as exc:
            raise KeystoreFormatError(
                f"{where}: encrypted private key refused: {exc} (see docs/security.md): "
                "re-encrypt it with fewer iterations, e.g. openssl pkcs8 -topk8 -v2 "
                "aes-256-cbc -iter 10000",
                path=path,
            ) from exc
        except _pkcs12.P12FormatError as exc:
            raise KeystoreFormatError(
                f"{where}: the encrypted private key cannot be read ({exc}): fix the file",
                path=path,
            ) from exc
    # Legacy "Proc-Type: 4,ENCRYPTED" keys derive their key with one round of MD5
    # (EVP_BytesToKey): nothing to cap. A password given for a plain key is ignored, as
    # on the PKCS#8 path above: profiles always carry a password, whatever the file.
    # Only the legacy form names its cipher in DEK-Info (PKCS#8 carries it inside).
    legacy = encrypted and not block.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    cipher, iv, body_at = _dek_cipher(block, where, path) if legacy else ("", b"", 0)
    if legacy:
        label = block[len(b"-----BEGIN ") : block.index(b"-----", len(b"-----BEGIN "))]
        body = block[body_at : block.rindex(b"-----END")]
        if cipher.upper() == "DES-CBC" and password is not None:
            plain = _legacy_des_key(body, iv, password, where, path)
            # Decrypted: the same block unencrypted, read as any traditional key is
            # (its errors, an unknown curve named, are theirs).
            return pem_key_to_pkcs8(_pem_block(label, binascii.b2a_base64(plain)), None,
                                     path, budget)  # fmt: skip
        # The headers as OpenSSL writes them, whatever the file's layout (folded lines,
        # spaces on the empty line, CR LF): cryptography reads this form only.
        # The cipher's name in capitals: OpenSSL takes any case, cryptography these.
        named = cipher.upper().encode("ascii", "replace")
        headers = b"Proc-Type: 4,ENCRYPTED\nDEK-Info: " + named
        block = _pem_block(label, headers + b"," + iv.hex().upper().encode() + b"\n\n" + body)
    try:
        # The one call that needs the plain password: revealed in the argument list,
        # never held in a local of this frame. A DSA key, or one that may be (encrypted
        # PKCS#8 with MD2, OpenSSH's), is read without cryptography's warning.
        known = block.startswith((b"-----BEGIN RSA PRIVATE", b"-----BEGIN EC PRIVATE"))
        key = _x509.dsa_call(
            not known,
            serialization.load_pem_private_key,
            block,
            password.reveal().encode("utf-8", "surrogatepass")
            if encrypted and password is not None
            else None,
            unsafe_skip_rsa_key_validation=True,
        )
    except TypeError as exc:
        raise WrongPasswordError(
            f"{where}: the private key is encrypted: pass its password", path=path
        ) from exc
    except ValueError as exc:
        if legacy and "unknown cipher" in str(exc).lower():
            raise KeystoreFormatError(
                f"{where}: the encrypted private key uses {_jks.shown(cipher)}, which this "
                "Python's cryptography cannot decrypt: re-encrypt it with AES-256-CBC "
                "(openssl pkey -in key.pem -aes-256-cbc)",
                path=path,
            ) from exc
        unknown = _UNKNOWN_PBE.search(str(exc)) if not legacy else None
        if unknown is not None:  # well-formed, sealed with a cipher cryptography lacks
            raise KeystoreFormatError(
                f"{where}: the encrypted private key is sealed with "
                f"{_pkcs12.algorithm_name(unknown.group(1))}, which this Python's "
                "cryptography cannot decrypt: export it again with AES (openssl pkcs8 "
                "-topk8 -v2 aes-256-cbc)",
                path=path,
            ) from exc
        if encrypted:
            raise WrongPasswordError(
                f"{where}: wrong password for the encrypted private key", path=path
            ) from exc
        if block.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            raise KeystoreFormatError(
                f"{where}: the private key is in OpenSSH's own format, which TLS does not "
                "read: convert it to PKCS#8 (ssh-keygen -p -m PKCS8 -f KEYFILE rewrites "
                "it in place)",
                path=path,
            ) from exc
        raise KeystoreFormatError(
            f"{where}: the private key cannot be read: fix the file", path=path
        ) from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and others for odd keys
        curve = _UNKNOWN_CURVE.search(str(exc)) if isinstance(exc, UnsupportedAlgorithm) else None
        what = (
            f"an EC key on curve {_x509.curve_name(curve.group(1))}, which "
            "this Python's cryptography does not support"
            if curve is not None
            else f"unsupported private key ({type(exc).__name__})"
        )
        raise KeystoreFormatError(
            f"{where}: {what}: use RSA, EC (P-256, P-384, P-521) or Ed25519", path=path
        ) from exc
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# cryptography's words for a PKCS#8 key sealed with a cipher (or KDF) it does not have.
_UNKNOWN_PBE = re.compile(r"Unknown key (?:encryption|derivation) algorithm: ([0-9.]+)", re.I)


# cryptography's words for an EC key on a curve it lacks (its OID; _x509.curve_name
# names it).
_UNKNOWN_CURVE = re.compile(r"Curve ([0-9.]+) is not supported")
# The IV length of each cipher a legacy encrypted PEM key may name in DEK-Info (OpenSSL's
# PEM ciphers); which of them can be read is cryptography's to say.
# 64-bit block ciphers take 8-byte IVs; the rest (AES, Camellia, ARIA, SEED, SM4) 16.
_DEK_64_BIT = ("DES", "BF", "CAST", "IDEA", "RC2")
_DEK_INFO = re.compile(rb"^DEK-Info:[ \t]*([^\r\n]*)\r?$", re.MULTILINE)


def _legacy_des_key(
    body: bytes, iv: bytes, password: Secret, where: str, path: str | os.PathLike[str] | None
) -> bytes:
    """The plaintext of a ``DEK-Info: DES-CBC`` key (``openssl genrsa -des``, old Tomcat
    and Apache keys), which OpenSSL 3 reads only with its legacy provider and
    cryptography not at all, decrypted as OpenSSL's PEM_do_header does: the key is
    EVP_BytesToKey with MD5, one round, the IV's first 8 bytes as the salt,
    MD5(password || salt)[:8]. ``body``: the block's base64 lines.

    Raises:
        WrongPasswordError: the padding is wrong, or the plaintext is not one DER
            element (a wrong password passes the padding check 1 time in 256).
        KeystoreFormatError: not base64, or not whole DES blocks.
    """
    import hashlib  # noqa: PLC0415 - this old form only

    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES  # noqa: PLC0415

    try:
        data = base64_body(body)
    except binascii.Error as exc:
        raise KeystoreFormatError(f"{where}: the private key is not valid PEM", path=path) from exc
    if not data or len(data) % 8:
        raise KeystoreFormatError(
            f"{where}: the encrypted private key is not a whole number of DES blocks: the "
            "file is damaged, replace it",
            path=path,
        )
    # The one use of the plain password: revealed in the argument list, never a local.
    key = hashlib.md5(
        password.reveal().encode("utf-8", "surrogatepass") + iv[:8], usedforsecurity=False
    ).digest()[:8]
    # Single DES is 3DES with one key three times (cryptography warns on short keys).
    plain = _pkcs12.cbc_plaintext(TripleDES(key * 3), iv, data)
    if plain is not None:  # the padding fits: is it one DER element, as a key is?
        try:
            _der.check_single(plain, _der.SEQUENCE)
        except _der.DERError:
            plain = None
    if plain is None:
        raise WrongPasswordError(
            f"{where}: wrong password for the encrypted private key", path=path
        )
    return plain


def _pem_block(label: bytes, body: bytes) -> bytes:
    """``body`` (base64 lines, or headers and them) as a PEM block labelled ``label``."""
    end = b"" if body.endswith(b"\n") else b"\n"
    return b"".join((b"-----BEGIN ", label, b"-----\n", body, end, b"-----END ", label, b"-----\n"))


def _headers_end(block: bytes) -> int | None:
    """Where the body of an encrypted traditional key starts: after the header lines
    (``Name: value``) that follow its BEGIN line, and the empty line that ends them
    (RFC 1421); ``None`` when a line that is no header comes before an empty one."""
    pos = block.find(b"\n") + 1
    while pos:
        end = block.find(b"\n", pos)
        if end < 0:
            return None
        raw = block[pos:end]
        line = raw.strip(b" \t\r")
        if not line:
            return end + 1
        folded = raw[:1] in (b" ", b"\t")  # RFC 1421: a header continued on this line
        if not folded and (b":" not in line or line.startswith(b"-----")):
            return None
        pos = end + 1
    return None


def _dek_cipher(
    block: bytes, where: str, path: str | os.PathLike[str] | None
) -> tuple[str, bytes, int]:
    """The cipher a legacy encrypted key names in DEK-Info, its IV, and where the key's
    body starts. A header without a well-formed IV, or headers not ended by an empty
    line, are refused as damage (every flaw was read as a wrong password)."""
    found = _DEK_INFO.search(block[:2048])
    value = found.group(1) if found else b""
    if found is not None:  # RFC 1421: a value may go on over lines that start blank
        for line in block[found.end() + 1 :].split(b"\n"):
            if line[:1] not in (b" ", b"\t") or not line.strip():
                break
            value += line.strip()
    cipher, _, iv_text = value.decode("ascii", "replace").partition(",")
    cipher = cipher.strip()
    size = 8 if cipher.upper().startswith(_DEK_64_BIT) else 16
    try:
        iv = bytes.fromhex(iv_text.strip())
    except ValueError:
        iv = b""
    if not cipher or len(iv) != size:
        raise KeystoreFormatError(
            f"{where}: the encrypted private key's DEK-Info has no valid "
            f"{'cipher and IV' if not cipher else f'{size}-byte IV for {_jks.shown(cipher)}'}: "
            "the file is damaged, replace it",
            path=path,
        )
    body_at = _headers_end(block)
    if body_at is None:
        # RFC 1421: the headers end with an empty line. Without it OpenSSL reads the
        # key's first lines as headers and fails to decrypt ("bad decrypt"), whatever
        # the password; every password looked wrong here.
        raise KeystoreFormatError(
            f"{where}: the encrypted private key's headers are not followed by an empty "
            "line (RFC 1421), which OpenSSL needs too: the file is damaged, add the line "
            "after DEK-Info or export the key again",
            path=path,
        )
    return cipher, iv, body_at


def _pem_body(block: bytes, where: str, path: str | os.PathLike[str] | None) -> bytes:
    """The DER inside one PEM block (a single DER element, or KeystoreFormatError)."""
    body = block.split(b"-----")[2]
    try:
        der = base64_body(body)
        _der.check_single(der, _der.SEQUENCE)
    except (binascii.Error, _der.DERError) as exc:
        raise KeystoreFormatError(f"{where}: the private key is not valid PEM", path=path) from exc
    return der
