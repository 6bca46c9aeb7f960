"""WSO2's secure vault, read from a product home: a secret resolver.

What WSO2 does, and where it is written (docs/secure-vault.md has the full list):

* ``ciphertool -Dconfigure`` (wso2/cipher-tool ``CipherTool.java``, ``Utils.java``)
  replaces each ``alias = "[plain text]"`` of deployment.toml's ``[secrets]`` table
  with base64 of ``Cipher.doFinal(utf8)``, encrypting with the internal keystore's
  certificate (``[keystore.internal]``, else ``[keystore.primary]``), and writes
  ``secret-conf.properties`` (``secVault.enabled``, ``keystore.identity.*``,
  ``secretRepositories.file.location`` and, when a transformation was chosen,
  ``secretRepositories.file.algorithm``). The default transformation is Java's
  ``"RSA"``, which is ``RSA/ECB/PKCS1Padding``.
* At start-up the product copies ``[secrets]`` into ``cipher-text.properties``
  (carbon-kernel's ``cipher-text.properties.j2``) and the secure vault
  (``org.wso2.securevault`` ``FileBaseSecretRepository``) decrypts every value with
  the identity keystore's private key; ``$env{}``/``$sys{}``/``${}`` values are read
  from the environment first ("dynamic secrets").
* Carbon's crypto utilities write a *self-contained* ciphertext: base64 of the JSON
  ``{"c": base64(cipher), "t": transformation, "tp": thumbprint, "tpd": "SHA-1"}``
  (carbon-kernel ``CipherHolder``, carbon-crypto-service ``CipherMetaDataHolder``);
  the thumbprint is the upper-case hex SHA-1 of the certificate's DER.
* Symmetric mode (cipher tool 1.1.26+, ``-Dsymmetric``; ``secretRepositories.file.
  encryptionMode=symmetric``): base64 of ``{"cipherText": base64(ct||tag), "iv":
  base64(iv)}``, AES/GCM/NoPadding with a 128-bit tag, the key being the keystore's
  secret-key entry. ``SymmetricKeyInternalCryptoProvider`` (deployment.toml
  ``[encryption] key``) writes a self-contained value whose ``c`` is base64 of
  ``{"cipher": ..., "initializationVector": ...}``.

The vault reads the files again when they change (by size and modification time), so
a reloading profile set picks up re-encrypted secrets; the keystore's private key is
held in memory only, like every other key in mtls.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _x509
from ._budget import WorkLimitError
from ._deployment import _parse_toml, detect_product, resolve_security_file
from ._errors import KeystoreError, SecureVaultError
from ._files import cannot_read_fix, read_input, utf8_text
from ._fork import renew_attributes_after_fork
from ._jks import JKSFormatError, secret_key_entry, shown, shown_alias
from ._log import WSO2_CANNOT_LOAD, log
from ._pkcs12 import P12FormatError, P12PasswordError, looks_like_pkcs12, parse_pkcs12
from ._secret import Secret, reveal, scrub_tracebacks
from ._stores import Keystore
from ._types import Product
from ._wso2 import substitute

#: The environment variable the vault reads its keystore password from.
PASSWORD_ENV = "MTLS_VAULT_PASSWORD"  # noqa: S105 - a variable name
# DefaultSecretCallbackHandler's files in the product home, in the order it tries them.
_PASSWORD_FILES = ("password", "password-tmp", "password-persist")
_TOML_SOURCE = "deployment.toml [secrets]"
_DEFAULT_KEYSTORE = "wso2carbon.jks"  # API-M 4.x default.json keystore.primary.file_name
_DEFAULT_ALIAS = "wso2carbon"
_PLACEHOLDER = re.compile(r"\$(env|sys|)\{([^}]*)\}")
_PKCS1 = {"rsa", "rsa/ecb/pkcs1padding", "rsa/none/pkcs1padding"}
_OAEP_SHA1 = {
    "rsa/ecb/oaepwithsha1andmgf1padding",
    "rsa/none/oaepwithsha1andmgf1padding",
    "rsa/ecb/oaepwithsha-1andmgf1padding",
    "rsa/none/oaepwithsha-1andmgf1padding",
}
_AES_GCM = "aes/gcm/nopadding"
_THUMBPRINT_DIGESTS = {"sha-1": "sha1", "sha1": "sha1", "sha-256": "sha256", "sha256": "sha256"}
_MAX_SECRET = 64 * 1024  # a password, not a file: refuse bigger values before decoding them


@dataclass(frozen=True, slots=True)
class VaultEntry:
    """One alias as :meth:`SecureVault.check` sees it (never its value).

    Attributes:
        alias: the secret alias.
        source: where it is defined (``deployment.toml [secrets]`` or
            ``cipher-text.properties``).
        encrypted: ``False`` for a ``[plain text]`` value not yet encrypted.
        error: why it does not resolve, or ``None`` when it does.
    """

    alias: str
    source: str
    encrypted: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class _Value:
    text: str
    source: str
    path: str


@dataclass(frozen=True, slots=True)
class _Config:
    """What the estate's files say, read once per change of those files."""

    enabled: bool
    values: Mapping[str, _Value]
    algorithm: str
    symmetric: bool
    mode: str  # secretRepositories.file.encryptionMode as written ("" when not set)
    # [secrets] entries that are not strings (alias -> what they are): never values.
    not_text: Mapping[str, str]
    # Aliases two [secrets] keys give once their quotes are taken off (alias -> the
    # keys as written): which one WSO2 takes is its map's order, so neither is used.
    ambiguous: Mapping[str, tuple[str, str]]
    keystore: Path
    keystore_from: str
    keystore_type: str | None  # a hint for messages: the content decides
    key_alias: str | None
    # Secrets: never in a repr (error reporters render locals with repr()).
    toml_password: str | None = field(repr=False)
    toml_key_password: str | None = field(repr=False)
    encryption_key: str | None = field(repr=False)
    # What in secret-conf.properties keeps WSO2 from reading [secrets] and
    # cipher-text.properties (None: the cipher tool's file repository is in use).
    other_repositories: str | None = None


@dataclass(frozen=True, slots=True)
class _Keys:
    private: rsa.RSAPrivateKey | None = field(repr=False)
    alias: str
    certificate_der: bytes | None
    symmetric: bytes | None = field(repr=False)


# --------------------------------------------------------------------------- file formats


_JAVA_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def java_lines(text: str) -> list[str]:
    """``text`` split where Java's ``BufferedReader.readLine`` and ``Properties.load``
    split it: at ``\\n``, ``\\r`` and ``\\r\\n`` only (``str.splitlines`` also breaks
    at characters such as ``\\x85``, ``\\x0c`` and ``\\u2028``, which may be in a
    password). No empty last line for a file that ends with a line break."""
    lines = _JAVA_LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _unreadable(exc: OSError) -> str:
    """The fix for a vault file that cannot be read, after its reason (h282: a loop of
    symbolic links was "check its permissions"; an unreadable keystore said nothing)."""
    if isinstance(exc, IsADirectoryError):
        return "it is a directory: give the file's path"
    if exc.errno == errno.ELOOP:
        return "its symbolic links form a loop (ls -l shows where each points)"
    if exc.errno == errno.ENOTDIR:
        return "check the path (a part of it is a file, not a directory)"
    return "check its permissions"


def _encoding_fix(path: Path | None) -> str | None:
    """The fix for a properties file Java's Properties (ISO-8859-1) reads otherwise
    than it was meant, from its first kilobyte, read once (never raises: a file that
    cannot be read gives no hint): a UTF-8 byte-order mark, which Java reads into the
    first key, or UTF-16, whose every other byte is NUL (one stray NUL is no
    encoding, h288). Windows editors save both."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return None
    if head.startswith(b"\xef\xbb\xbf"):
        return (
            f"{path} starts with a UTF-8 byte-order mark, which Java's Properties, and so "
            "WSO2, read as part of its first alias: save it without one (as ASCII, as the "
            "cipher tool writes it)"
        )
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head.count(0) * 4 >= len(head) > 0:
        return (
            f"{path} is saved as UTF-16 (it has NUL bytes), which Java's Properties, and "
            "so WSO2, read as ISO-8859-1 and find no alias in: save it as ASCII, as the "
            "cipher tool writes it"
        )
    return None


def read_properties(data: bytes) -> dict[str, str]:
    """Parse a Java ``.properties`` file (``java.util.Properties.load``, ISO-8859-1).

    Comments start with ``#`` or ``!``; keys end at an unescaped ``=``, ``:`` or
    whitespace; a trailing backslash continues the line; ``\\uXXXX`` and the usual
    escapes are decoded. The last occurrence of a key wins, as in Java.
    """
    text = data.decode("iso-8859-1")
    logical: list[str] = []
    pending = ""
    for raw in java_lines(text):
        line = raw.lstrip(" \t\f")
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:  # an odd number of backslashes continues the line
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    out: dict[str, str] = {}
    for line in logical:
        key_end = len(line)
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                key_end = i
                break
            i += 1
        rest = line[key_end:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        out[_unescape(line[:key_end])] = _unescape(rest)
    return out


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
        i += 2
    return "".join(out)


def _plain_text(value: str) -> str | None:
    """The text of a ``[plain text]`` value, as the cipher tool's
    ``Utils.getUnEncryptedValue`` reads it; ``None`` for an encrypted value."""
    if "[" not in value or "]" not in value:
        return None
    text = value[value.index("[") + 1 : value.rindex("]")]
    return text or None  # "[]" or "]x[": not a plain value (StringUtils.substring gives "")


def product_store_path(home: Path, file_name: str, product: Product = "apim") -> Path:
    """Where the product opens a deployment.toml keystore ``file_name``: the same rule
    as every other store deployment.toml names (:func:`mtls._deployment.resolve_security_file`),
    after a leading ``${carbon.home}`` / ``$sys{carbon.home}`` (how the cipher tool's
    ``Utils.resolveKeyStorePath`` and carbon.xml.j2 write the home) is replaced by it."""
    for prefix in ("${carbon.home}", "$sys{carbon.home}"):
        if file_name.startswith(prefix):
            return Path(str(home) + file_name[len(prefix) :])
    return resolve_security_file(file_name, key="file_name", home=home, product=product)


def _conf_dir(home: Path) -> Path:
    # API Manager and Identity Server keep conf/ under repository/; Micro Integrator at the top.
    return (
        home / "repository" / "conf" if (home / "repository" / "conf").is_dir() else home / "conf"
    )


def _signature(path: Path | None) -> tuple[object, ...]:
    if path is None:
        return (None,)
    try:
        st = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL in a configured path; reading says so
        return (os.fspath(path), None)
    # ctime too: a file rewritten in place keeping its size and mtime (``cp -p``, RSA
    # ciphertexts of one length) moves only its ctime, which no program can set back.
    return (os.fspath(path), st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


# The cipher tool's older releases wrapped base64 at 76 characters (WSO2's own
# CustomSSLProfileWithSecureVault test ships such values, written with "\n" escapes
# in cipher-text.properties); WSO2's decoder skips the line breaks, and so does this.
_WHITESPACE = str.maketrans("", "", " \t\r\n\f\v")


def _b64(text: str) -> bytes:
    return base64.b64decode(text.translate(_WHITESPACE), validate=True)


# --------------------------------------------------------------------------- the vault


class SecureVault:
    """WSO2's secure vault as a secret resolver: aliases in, :class:`~mtls.Secret` out.

    It reads the product home the way the product does: deployment.toml's
    ``[secrets]`` (encrypted by ``ciphertool -Dconfigure``, or ``"[plain text]"``
    before that, with a warning), ``<conf>/security/cipher-text.properties`` and
    ``secret-conf.properties`` (for ``svns:secretAlias`` in a profile file), and the
    internal keystore (``keystore.identity.*`` of ``secret-conf.properties``, else
    ``[keystore.internal]``, else ``[keystore.primary]``, else ``wso2carbon.jks``
    under ``<home>/repository/resources/security/``).

    It decrypts RSA ``RSA/ECB/PKCS1Padding`` (Java's ``"RSA"``, the cipher tool's
    default) and ``RSA/ECB/OAEPwithSHA1andMGF1Padding``, as plain base64 or as the
    self-contained JSON ciphertext (whose certificate thumbprint is checked), and
    ``AES/GCM/NoPadding`` values.

    The internal keystore's password is taken from, in order: ``keystore_password=``
    (``$env{NAME}`` and ``$sys{NAME}`` are resolved), the ``MTLS_VAULT_PASSWORD``
    environment variable, the first line of ``<home>/password``, ``password-tmp`` or
    ``password-persist`` (WSO2's ``DefaultSecretCallbackHandler`` files; read, never
    renamed or deleted), then the keystore's ``password`` in deployment.toml when it is
    not itself a ``$secret{}``. The key password is ``key_password=``, else the second
    line of that file when ``properties`` has ``key.password=true`` (WSO2's
    ``-Dkey.password=true``; without it WSO2 reads the first line for both), else the
    TOML's ``key_password``, else the keystore password.

    Pass it as ``secret_resolver=`` or let :meth:`mtls.SSLProfileSet.from_deployment_toml`
    and :meth:`~mtls.SSLProfileSet.from_xml` pick it up when the estate configures a
    vault. ``repr()`` shows the home, never a secret.

    Example:
        >>> import tempfile, pathlib
        >>> home = pathlib.Path(tempfile.mkdtemp())
        >>> (home / "repository" / "conf").mkdir(parents=True)
        >>> _ = (home / "repository" / "conf" / "deployment.toml").write_text(
        ...     '[secrets]\\nbackend = "[not-yet-encrypted]"\\n')
        >>> vault = SecureVault(home)
        >>> vault.aliases()
        ('backend',)
        >>> vault("backend")
        Secret('********')
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        deployment_toml: str | os.PathLike[str] | None = None,
        keystore_password: str | Secret | None = None,
        key_password: str | Secret | None = None,
        symmetric_key: bytes | str | Secret | None = None,
        properties: Mapping[str, str] | None = None,
        product: Product | None = None,
    ) -> None:
        """Describe the vault of the product installed at ``home``; nothing is read yet.

        Args:
            home: the product home (``<API-M_HOME>``, ``<MI_HOME>``).
            deployment_toml: the deployment.toml whose ``[secrets]`` to use. Default:
                ``<home>/repository/conf/deployment.toml`` (``<home>/conf/`` for MI).
            keystore_password: the internal keystore's password (see above).
            key_password: its private key's password, when it differs.
            symmetric_key: the AES key for symmetric values: bytes, or a hex string
                (16, 24 or 32 bytes), overriding the keystore's secret-key entry and
                ``[encryption] key``.
            properties: values for ``$sys{name}`` placeholders (Java system properties).
            product: ``"apim"`` or ``"mi"``, whose rule places a bare keystore
                ``file_name`` (as for :meth:`mtls.SSLProfileSet.from_deployment_toml`);
                default: detected from deployment.toml.
        """
        self.home: Path = Path(os.path.abspath(home))
        self._product = product
        conf = _conf_dir(self.home)
        self._toml = (
            Path(os.path.abspath(deployment_toml))
            if deployment_toml is not None
            else conf / "deployment.toml"
        )
        self._secret_conf = conf / "security" / "secret-conf.properties"
        self._properties = dict(properties or {})
        self._keystore_password = keystore_password
        self._key_password = key_password
        self._symmetric_key = symmetric_key
        self._lock = threading.Lock()
        renew_attributes_after_fork(self, "_lock")
        self._cipher_text: Path | None = None  # known once secret-conf.properties is read
        self._config: tuple[tuple[object, ...], _Config] | None = None
        self._keys: tuple[tuple[object, ...], _Keys] | None = None
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def for_estate(
        cls,
        home: str | os.PathLike[str],
        *,
        deployment_toml: str | os.PathLike[str] | None = None,
        properties: Mapping[str, str] | None = None,
        product: Product | None = None,
    ) -> SecureVault | None:
        """The vault the estate at ``home`` configures, or ``None`` when it has none.

        A vault is configured when deployment.toml has a ``[secrets]`` table or
        ``secret-conf.properties`` says ``secVault.enabled=true``, or lists
        ``secretRepositories`` without a ``secVault.enabled`` line (WSO2's default is on).

        Args:
            home: the product home (``repository/conf/...`` below it).
            deployment_toml: as for the constructor (default: the home's own).
            properties: as for the constructor.
            product: as for the constructor (default: detected from deployment.toml).

        Raises:
            ProfileConfigError: deployment.toml or secret-conf.properties is unreadable.
        """
        vault = cls(home, deployment_toml=deployment_toml, properties=properties, product=product)
        return vault if vault.configured else None

    def __repr__(self) -> str:
        return f"SecureVault(home={os.fspath(self.home)!r})"

    # -- what the estate says

    @property
    @scrub_tracebacks  # a failure holds the parsed deployment.toml in its frames
    def configured(self) -> bool:
        """Whether the estate's files configure a vault (see :meth:`for_estate`)."""
        return self._load().enabled

    @scrub_tracebacks  # a failure holds the parsed deployment.toml in its frames
    def aliases(self) -> tuple[str, ...]:
        """Every alias the vault defines, sorted."""
        config = self._load()
        return tuple(sorted({*config.values, *config.ambiguous}))

    @scrub_tracebacks  # a failure holds the parsed deployment.toml in its frames
    def watched_files(self) -> tuple[Path, ...]:
        """The files the vault's values come from: deployment.toml,
        ``secret-conf.properties``, ``cipher-text.properties`` and the internal keystore
        (those that are configured, present or not).

        A profile set whose ``secret_resolver`` has this method watches these files
        with its own: when one changes, the profile file is parsed again and every
        alias resolved anew, so a password rotated through the vault is picked up
        with the store it opens (WSO2 needs the profile file touched, or a restart).
        """
        files = [self._toml, self._secret_conf]
        try:
            config = self._load()
        except SecureVaultError:
            config = None  # damaged: what can be named is watched, the rest once it loads
        if self._cipher_text is not None:
            files.append(self._cipher_text)
        if config is not None:
            files.append(config.keystore)
        return tuple(files)

    @scrub_tracebacks  # a failed decryption leaves no password or key in any frame
    def resolve(self, alias: str) -> Secret:
        """Decrypt ``alias``.

        Returns:
            The plain value as a :class:`~mtls.Secret`.

        Raises:
            SecureVaultError: the alias is unknown, its value does not decrypt, or the
                keystore cannot be opened; the message names the alias and the file.
        """
        config = self._load()
        if config.other_repositories is not None:
            raise SecureVaultError(
                f"secure vault: secret alias {shown_alias(alias)}: {self._secret_conf} has "
                f"{shown(config.other_repositories)}, so WSO2 does not read its aliases from "
                "the cipher tool's files ([secrets], cipher-text.properties), which are what "
                "mtls reads: pass a secret_resolver= that reads them where the product does "
                "(a HashiCorp Vault, a custom provider: any callable alias -> password), or "
                "configure the file repository (secretRepositories=file, with "
                "FileBaseSecretRepositoryProvider) if the values are in the cipher tool's files",
                path=self._secret_conf,
                alias=alias,
            )
        value = config.values.get(alias)
        if alias in config.ambiguous:
            first, second = config.ambiguous[alias]
            raise SecureVaultError(
                f"secure vault: [secrets] of {self._toml} has both {shown_alias(first)} and "
                f"{shown_alias(second)}, which WSO2 reads as the one alias "
                f"{shown_alias(alias)} (its config mapper takes a quoted key's quotes off), "
                "taking whichever its map gives last: keep one of them",
                path=self._toml,
                alias=alias,
            )
        if value is None and config.not_text.get(alias) == _EMPTY:
            # It is there, empty: "no secret alias ... add it" sent users looking (h238).
            raise SecureVaultError(
                f"secure vault: secret alias {shown_alias(alias)} in [secrets] of {self._toml} "
                "is empty (WSO2 skips an empty value): write the password there in square "
                "brackets and run ciphertool, or its encrypted value",
                path=self._toml,
                alias=alias,
            )
        if value is None and alias in config.not_text:
            raise SecureVaultError(
                f"secure vault: secret alias {shown_alias(alias)} in [secrets] of {self._toml} is "
                f"{config.not_text[alias]}, not a string: write the cipher tool's value in "
                'quotes ("...")',
                path=self._toml,
                alias=alias,
            )
        if value is None:
            # Only the files that are there: naming one that is not sends users looking.
            looked = [
                f"[secrets] of {self._toml}" if self._toml.is_file() else None,
                str(self._cipher_text)
                if self._cipher_text is not None and self._cipher_text.is_file()
                else None,
            ]
            where = " or in ".join(p for p in looked if p) or (
                f"{self.home}: it has neither {self._toml.name} nor cipher-text.properties"
            )
            # (h282: "add it", where it was, in a file WSO2 reads otherwise.)
            fix = _encoding_fix(self._cipher_text) or "add it and run ciphertool, or fix the alias"
            if not self.home.is_dir():  # a typo in the home: not a missing alias
                where = f"{self.home}, which is not a directory"
                fix = "give the product home (the directory that holds conf/ and repository/)"
            raise SecureVaultError(
                f"secure vault: no secret alias {shown_alias(alias)} in {where}: {fix}",
                path=self._toml,
                alias=alias,
                unknown=True,
            )
        text = self._dynamic(alias, value)
        plain = _plain_text(text)
        if plain is not None:
            if (alias, value.path) not in self._warned:
                self._warned.add((alias, value.path))
                from_toml = value.source == _TOML_SOURCE
                log.warning(
                    "%s: secret alias %r is plain text, not encrypted: run ciphertool "
                    "-Dconfigure to encrypt it%s",
                    value.path,
                    alias,
                    # config-mapper's ReferenceResolver: "Secret references can't be
                    # plain text" (unless started with -DencryptSecrets=true).
                    " (WSO2 refuses to start with a $secret{} that names a plain-text "
                    "[secrets] value, unless started with -DencryptSecrets=true)"
                    if from_toml
                    else "",
                    extra=WSO2_CANNOT_LOAD if from_toml else None,
                )
            return Secret(plain)
        return Secret(self._decrypt(alias, value, text, config))

    __call__ = resolve

    @scrub_tracebacks
    def check(self) -> list[VaultEntry]:
        """Try every alias; report which resolve, never their values.

        Returns:
            One :class:`VaultEntry` per alias, sorted by alias.

        Raises:
            ProfileConfigError: the vault's own files are unreadable.
        """
        config = self._load()
        out = []
        for alias in sorted(config.values):
            value = config.values[alias]
            try:
                self.resolve(alias)
                error = None
            except SecureVaultError as exc:
                error = str(exc)
            encrypted = _plain_text(value.text) is None
            out.append(VaultEntry(alias, value.source, encrypted, error))
        return out

    # -- reading the files

    def _load(self) -> _Config:
        """The files' content, read again when one of them changes."""

        def signature() -> tuple[object, ...]:
            return tuple(_signature(p) for p in (self._toml, self._secret_conf, self._cipher_text))

        before = signature()
        with self._lock:
            if self._config is not None and self._config[0] == before:
                return self._config[1]
        config = self._read()  # sets self._cipher_text
        # Recorded with the stats taken before the read: a file changed while it was
        # read is read again next time (so is everything once more after the first
        # read, which is what names the cipher-text file).
        with self._lock:
            self._config = (before, config)
        return config

    def _read(self) -> _Config:
        toml = self._read_toml()
        conf = self._read_props(self._secret_conf)
        enabled_flag = _vault_enabled(conf or {})
        secrets_table = toml.get("secrets")
        values: dict[str, _Value] = {}
        # The secret repository file: secretRepositories.file.location, relative to the
        # product's working directory (the home); the cipher tool writes it that way.
        location = (conf or {}).get("secretRepositories.file.location", "").strip()
        cipher_text = (
            (self.home / location if not os.path.isabs(location) else Path(location))
            if location
            else self._secret_conf.with_name("cipher-text.properties")
        )
        self._cipher_text = cipher_text
        named = f" (secretRepositories.file.location in {self._secret_conf})" if location else ""
        for alias, text in (self._read_props(cipher_text, named) or {}).items():
            if text.strip():  # FileBaseSecretRepository skips empty values
                values[alias] = _Value(
                    text.strip(), "cipher-text.properties", os.fspath(cipher_text)
                )
        not_text: dict[str, str] = {}
        ambiguous: dict[str, tuple[str, str]] = {}
        written: dict[str, str] = {}  # alias -> the [secrets] key that gave it
        if isinstance(secrets_table, Mapping):
            # The product regenerates cipher-text.properties from [secrets] at start-up:
            # the TOML is the source of truth when both name an alias.
            for key, text in _dotted_items(secrets_table):
                if isinstance(text, Mapping):
                    # Not an alias (the TOML reader lists no tables): named as a table when
                    # asked for, never hiding a cipher-text.properties alias of its name.
                    if key not in values:
                        not_text[key] = "a table"
                    continue
                alias = _unquoted(key)
                if alias in written:
                    ambiguous[alias] = (written[alias], key)
                    values.pop(alias, None)
                    continue
                written[alias] = key
                if isinstance(text, str) and text.strip():
                    values[alias] = _Value(text.strip(), _TOML_SOURCE, os.fspath(self._toml))
                elif not isinstance(text, str):
                    not_text[alias] = _kind_of(text)
                    values.pop(alias, None)
                elif alias not in values:  # empty: skipped, as WSO2's repository skips it
                    not_text[alias] = _EMPTY
        internal = _table(toml, "keystore", "internal")
        primary = _table(toml, "keystore", "primary")
        # Key by key, as [keystore.tls] falls back to [keystore.primary] (_wso2): an
        # internal table that names only its file still takes the primary's password.
        ks_table = {**(primary or {}), **(internal or {})} or None
        table_name = (
            "[keystore.internal]" if internal and "file_name" in internal else "[keystore.primary]"
        )
        identity = (conf or {}).get("keystore.identity.location", "").strip()
        if identity:
            keystore = Path(identity) if os.path.isabs(identity) else self.home / identity
            keystore_from = f"keystore.identity.location of {self._secret_conf}"
            keystore_type = (conf or {}).get("keystore.identity.type", "").strip() or None
            key_alias = (conf or {}).get("keystore.identity.alias", "").strip() or None
        elif ks_table and isinstance(ks_table.get("file_name"), str):
            keystore = product_store_path(
                self.home,
                self._placeholder(ks_table["file_name"].strip(), f"{table_name} file_name"),
                self._product or detect_product(toml, self._toml),
            )
            keystore_from = f"{table_name} file_name of {self._toml}"
            keystore_type = _str(ks_table.get("type"))
            key_alias = _str(ks_table.get("alias"))
        else:
            # Both products' default: repository/resources/security/wso2carbon.jks.
            keystore = product_store_path(self.home, _DEFAULT_KEYSTORE, "apim")
            keystore_from = "the default internal keystore"
            keystore_type = None
            key_alias = _DEFAULT_ALIAS
        encryption = _table(toml, "encryption") or {}
        mode = (conf or {}).get("secretRepositories.file.encryptionMode", "").strip()
        return _Config(
            enabled=enabled_flag or (isinstance(secrets_table, Mapping) and bool(secrets_table)),
            values=values,
            algorithm=(conf or {}).get("secretRepositories.file.algorithm", "").strip() or "RSA",
            symmetric=mode in _SYMMETRIC_MODES,
            mode=mode,
            not_text=not_text,
            ambiguous=ambiguous,
            keystore=keystore,
            keystore_from=keystore_from,
            keystore_type=keystore_type,
            key_alias=key_alias,
            # Passwords as written, spaces and all (what WSO2's template writes out).
            toml_password=_exact((ks_table or {}).get("password")),
            toml_key_password=_exact((ks_table or {}).get("key_password")),
            encryption_key=_str(encryption.get("key")),
            other_repositories=_without_file_repository(conf or {}),
        )

    def _read_toml(self) -> dict[str, Any]:
        # The same reader as the profile settings: one set of guards (hostile depth,
        # encodings), one wording.
        return _parse_toml(self._toml, missing_ok=True)

    def _read_props(self, path: Path, named: str = "") -> dict[str, str] | None:
        """A properties file of the vault; ``named``: the setting that named it, said
        in the error (h265: a secret file that was a device named no setting)."""
        try:
            return read_properties(read_input(path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # ValueError: a NUL in a configured path
            fix = (
                cannot_read_fix(exc, path) if isinstance(exc, OSError) else None
            ) or "check the path and its permissions"
            raise SecureVaultError(
                f"secure vault: {path}{named}: cannot read "
                f"({getattr(exc, 'strerror', None) or exc}): {fix}",
                path=path,
            ) from None

    def _dynamic(self, alias: str, value: _Value) -> str:
        """A dynamic secret: ``$env{NAME}``, ``$sys{NAME}`` or ``${NAME}`` holds the value."""
        match = _PLACEHOLDER.fullmatch(value.text)
        if match is None:
            return value.text
        kind, name = match.groups()
        # WSO2's FileBaseSecretRepository: ${NAME} is the environment's, then a system
        # property's (other placeholders look at properties first).
        found = os.environ.get(name) if kind == "" else None
        if found is None:
            found = self._lookup(kind, name)
        if found is None:
            raise SecureVaultError(
                f"{value.path}: secret alias {shown_alias(alias)} is {value.text}, which is not "
                "set: set it (its value is the encrypted secret)",
                path=value.path,
                alias=alias,
            )
        return found.strip()

    # -- keys

    def _passwords(self, config: _Config) -> tuple[Secret, Secret | None, str]:
        """The keystore password, the key password (None: the same) and where they came from."""
        key_password = self._key_password
        if self._keystore_password is not None:
            text = reveal(self._keystore_password) or ""
            return (
                Secret(self._placeholder(text, "keystore_password=")),
                _secret(key_password),
                ("keystore_password="),
            )
        env = os.environ.get(PASSWORD_ENV)
        if env is not None:
            return Secret(env), _secret(key_password), f"${PASSWORD_ENV}"
        dangling: str | None = None
        for name in _PASSWORD_FILES:
            path = self.home / name
            try:
                decoded = utf8_text(read_input(path))
            except FileNotFoundError as exc:
                # Not there: the next place, as WSO2 looks (File.exists() is false for
                # a link to nothing too). Such a link (a secret mount that went away)
                # is named if no place gives the password: not "none configured".
                if dangling is None and os.path.islink(path):
                    dangling = f"{path}: {cannot_read_fix(exc, path) or exc.strerror}"
                continue
            except OSError as exc:
                fix = cannot_read_fix(exc, path) or _unreadable(exc)
                raise SecureVaultError(
                    f"{path}: cannot read the keystore password file ({exc.strerror}): {fix}",
                    path=path,
                ) from None
            if decoded is None:  # raised here, not in a handler: the bytes are passwords
                raise SecureVaultError(
                    f"{path}: the keystore password file is not UTF-8 text: save it as UTF-8",
                    path=path,
                )
            lines = java_lines(decoded)
            if lines:
                # DefaultSecretCallbackHandler reads a second line, the key's password,
                # only under -Dkey.password=true; otherwise the first is both.
                two = self._properties.get("key.password", "").strip() == "true"
                second = lines[1] if two and len(lines) > 1 and lines[1] else None
                key = _secret(key_password) or (Secret(second) if second else None)
                source = os.fspath(path)
                if not two and len(lines) > 1 and lines[1]:
                    source += (
                        " (its first line, for the key too: WSO2 reads the second line as "
                        "the key password only when started with -Dkey.password=true, "
                        "properties={'key.password': 'true'} here)"
                    )
                if lines[0].startswith("\ufeff"):
                    source += (
                        " (it starts with a UTF-8 byte order mark, which Notepad writes: Java "
                        "reads it as part of the password too; save the file without one)"
                    )
                return Secret(lines[0]), key, source
        if config.toml_password is not None and "$secret{" not in config.toml_password:
            store = self._placeholder(
                config.toml_password, f"the keystore password in {self._toml}"
            )
            toml_key = config.toml_key_password
            key = _secret(key_password) or (
                Secret(self._placeholder(toml_key, f"key_password in {self._toml}"))
                if toml_key is not None and "$secret{" not in toml_key
                else None
            )
            return Secret(store), key, os.fspath(self._toml)
        if dangling is not None:
            raise SecureVaultError(
                f"secure vault of {self.home}: the internal keystore {config.keystore} needs "
                f"its password, and its password file is a broken link: {dangling}",
                path=config.keystore,
            )
        raise SecureVaultError(
            f"secure vault of {self.home}: the internal keystore {config.keystore} needs its "
            f"password: pass SecureVault(..., keystore_password=...), set ${PASSWORD_ENV}, "
            f"write it to {self.home / 'password-persist'} as WSO2 reads it, or give the "
            "keystore's password in deployment.toml",
            path=config.keystore,
        )

    def _lookup(self, kind: str, name: str) -> str | None:
        """``$env{NAME}``: the environment; ``$sys{NAME}``, ``${NAME}``: properties, then it."""
        found = (self._properties.get(name) or None) if kind != "env" else None
        return found if found is not None else os.environ.get(name)

    def _placeholder(self, text: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            found = self._lookup(*match.groups())
            if found is None:
                # Name the placeholder only when it is the whole value: one inside
                # other text may be part of a password, which is never quoted.
                what = match.group(0) if match.group(0) == text else "a placeholder"
                raise SecureVaultError(
                    f"secure vault: {where} uses {what}, which is not set: set it",
                    path=self._toml,
                )
            return found

        return substitute(_PLACEHOLDER, replace, text)

    def _load_keys(self, config: _Config) -> _Keys:
        store_password, key_password, source = self._passwords(config)
        signature = (
            _signature(config.keystore),
            config.key_alias,
            hashlib.sha256(store_password.reveal().encode("utf-8", "surrogatepass")).digest(),
            hashlib.sha256((reveal(key_password) or "").encode("utf-8", "surrogatepass")).digest(),
            config.encryption_key is not None,
        )
        with self._lock:
            if self._keys is not None and self._keys[0] == signature:
                return self._keys[1]
        where = f"the vault's keystore {config.keystore} ({config.keystore_from})"
        try:
            data = read_input(config.keystore)
        except FileNotFoundError:
            raise SecureVaultError(
                f"{where} does not exist: relative paths start from the product home, "
                f"here {self.home}: if that is not the home, pass the home as base_dir "
                f"(--base-dir); else point {config.keystore_from.split(' of ')[0]} at the "
                "keystore the cipher tool used",
                path=config.keystore,
            ) from None
        except (OSError, ValueError) as exc:  # ValueError: a NUL in a configured path
            fix = (
                cannot_read_fix(exc, config.keystore) or _unreadable(exc)
                if isinstance(exc, OSError)
                else "check the configured path"
            )
            raise SecureVaultError(
                f"{where} cannot be read ({getattr(exc, 'strerror', None) or exc}): {fix}",
                path=config.keystore,
            ) from None
        try:
            symmetric = _secret_key(data, store_password.reveal(), config.key_alias)
        except JKSFormatError as exc:  # an iteration count past the JDK's ceiling, ...
            raise SecureVaultError(f"{where}: {exc}", path=config.keystore) from None
        private: rsa.RSAPrivateKey | None = None
        certificate_der = None
        alias = config.key_alias or ""
        try:
            store = Keystore.from_bytes(
                data,
                store_password,
                key_password=key_password,
                store_type=config.keystore_type,
                path=os.fspath(config.keystore),
            )
            if store.key_aliases:
                # The configured alias; a store with one key entry needs none.
                wanted = config.key_alias
                if len(store.key_aliases) == 1 and wanted not in store:
                    wanted = None
                alias, key_der, chain = store.key_entry(wanted)
                key = _x509.load_private_key(key_der)
                if isinstance(key, rsa.RSAPrivateKey):
                    private = key
                certificate_der = chain[0] if chain else None
        except KeystoreError as exc:
            raise SecureVaultError(
                f"{where} does not open with the password from {source}: {exc}",
                path=config.keystore,
            ) from None
        keys = _Keys(private, alias, certificate_der, symmetric)
        with self._lock:
            self._keys = (signature, keys)
        log.debug("secure vault: loaded %s (password from %s)", config.keystore, source)
        return keys

    # -- decryption

    def _decrypt(self, alias: str, value: _Value, text: str, config: _Config) -> str:
        job = _Job(alias, value.path, config)
        if config.mode not in _SYMMETRIC_MODES + _ASYMMETRIC_MODES and (
            ("mode", config.mode) not in self._warned
        ):
            # WSO2's SecretManager reads any other value as its default, RSA: so does mtls.
            self._warned.add(("mode", config.mode))
            log.warning(
                "%s: secretRepositories.file.encryptionMode=%r is not a mode WSO2 knows "
                "(%s): its secrets are read as RSA, as the server reads them",
                self._secret_conf,
                config.mode,
                ", ".join(repr(m) for m in _SYMMETRIC_MODES),
            )
        if len(text) > _MAX_SECRET:
            raise job.fail(
                f"is longer than {_MAX_SECRET} characters: not a ciphertext the cipher tool writes"
            )
        try:
            raw = _b64(text)
        except (binascii.Error, ValueError):
            raise job.fail(
                'is neither "[plain text]" nor base64 ciphertext: encrypt it with ciphertool'
            ) from None
        document = _json_object(raw)
        if document is None:  # plain base64: the transformation is secret-conf's
            if config.symmetric:
                raise job.fail("is not the symmetric cipher tool's JSON value: re-encrypt it")
            return self._rsa(job, raw, config.algorithm)
        if "c" in document:  # the self-contained ciphertext (CipherMetaDataHolder)
            transformation = str(document.get("t") or "RSA")
            try:
                inner = _b64(str(document["c"]))
            except (binascii.Error, ValueError):
                raise job.fail('is a self-contained ciphertext whose "c" is not base64') from None
            if transformation.lower() == _AES_GCM:  # SymmetricKeyInternalCryptoProvider
                nested = _json_object(inner) or {}
                return self._aes(job, nested, "cipher", "initializationVector", internal=True)
            thumbprint, digest = document.get("tp"), document.get("tpd")
            return self._rsa(
                job,
                inner,
                transformation,
                thumbprint=str(thumbprint) if thumbprint else None,
                digest_name=str(digest) if digest else None,
            )
        if "cipherText" in document and "iv" in document:  # cipher tool -Dsymmetric
            return self._aes(job, document, "cipherText", "iv", internal=False)
        raise job.fail("is JSON of a kind the secure vault does not write: re-encrypt it")

    def _rsa(
        self,
        job: _Job,
        ciphertext: bytes,
        transformation: str,
        *,
        thumbprint: str | None = None,
        digest_name: str | None = None,
    ) -> str:
        config = job.config
        kind = transformation.strip().lower()
        if kind not in _PKCS1 and kind not in _OAEP_SHA1:
            raise job.fail(
                f"uses transformation {shown(transformation)}, which mtls does not decrypt "
                "(RSA/ECB/PKCS1Padding, RSA/ECB/OAEPwithSHA1andMGF1Padding and "
                "AES/GCM/NoPadding are supported)"
            )
        keys = self._load_keys(config)
        if keys.private is None:
            raise job.fail(
                f"needs an RSA private key, and {config.keystore} has none"
                + (f" at alias {config.key_alias!r}" if config.key_alias else "")
            )
        if thumbprint is not None and keys.certificate_der is not None:
            algorithm = _THUMBPRINT_DIGESTS.get((digest_name or "SHA-1").lower())
            if algorithm is None:
                raise job.fail(
                    f"names a thumbprint digest {shown(str(digest_name))} mtls does not know"
                )
            ours = hashlib.new(algorithm, keys.certificate_der).hexdigest().upper()
            written = thumbprint.strip().upper()
            if ours != written:
                subject = x509.load_der_x509_certificate(keys.certificate_der).subject
                # A thumbprint is up to 128 hex digits (SHA-512); a longer one is the
                # file's text, shown bounded (a nested JSON value made 2,270 characters).
                written = written if len(written) <= 128 else shown(written)
                raise job.fail(
                    f"was encrypted for the certificate with {digest_name or 'SHA-1'} thumbprint "
                    f"{written}, but the vault's keystore {config.keystore} "
                    f"has {keys.alias!r} ({subject.rfc4514_string()}, thumbprint {ours}): use the "
                    "keystore the cipher tool used, or re-encrypt the secret"
                )
        plain: bytes | None
        try:
            if kind in _PKCS1:
                plain = _pkcs1_decrypt(keys.private, ciphertext)
            else:
                sha1 = hashes.SHA1()  # noqa: S303 - the transformation WSO2 encrypted with
                pad = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
                plain = keys.private.decrypt(ciphertext, pad)
        except ValueError:
            plain = None
        encoding_hint = ""
        if plain is not None:
            text = utf8_text(plain)  # no handler here: its error would hold the plaintext
            if text is not None:
                return text
            if kind not in _PKCS1:
                raise job.not_text()
            # A value made with OAEP passes PKCS#1 v1.5's check about once in 260
            # tries and yields random bytes: the likely cause is the padding, so the
            # message says what a failed check says, and names the encoding too.
            encoding_hint = (
                "; or it was encrypted from text in another encoding (encrypt the UTF-8 bytes)"
            )
        # A plain base64 value's padding is secret-conf's to say; the cipher tool
        # writes its -Dorg.wso2.CipherTransformation there (OAEP in many estates).
        other = (
            " or with another transformation (secretRepositories.file.algorithm in "
            "secret-conf.properties says which; the cipher tool's "
            "-Dorg.wso2.CipherTransformation, often RSA/ECB/OAEPwithSHA1andMGF1Padding)"
            if config.algorithm == transformation and thumbprint is None
            else ""
        )
        raise job.fail(
            f"does not decrypt with the private key {keys.alias!r} of {config.keystore} "
            f"({transformation}): the value is damaged or was encrypted for another key"
            + other
            + encoding_hint
        )

    def _aes(
        self,
        job: _Job,
        document: Mapping[str, Any],
        cipher_field: str,
        iv_field: str,
        *,
        internal: bool,
    ) -> str:
        try:
            ciphertext = _b64(str(document[cipher_field]))
            iv = _b64(str(document[iv_field]))
        except (KeyError, binascii.Error, ValueError):
            raise job.fail(
                f"is an AES-GCM value without a base64 {cipher_field!r} and {iv_field!r}"
            ) from None
        key, source = self._aes_key(job, internal=internal)
        if len(key) not in (16, 24, 32):
            raise job.fail(
                f"needs a 16, 24 or 32-byte AES key, and the key from {source} has {len(key)}"
            )
        # GCM with the 128-bit tag at the end of the ciphertext, as javax.crypto writes it.
        if not 8 <= len(iv) <= 128 or len(ciphertext) < 16:
            raise job.fail("is an AES-GCM value with a damaged IV or ciphertext")
        decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, ciphertext[-16:])).decryptor()
        try:
            plain = decryptor.update(ciphertext[:-16]) + decryptor.finalize()
        except InvalidTag:
            raise job.fail(
                f"does not decrypt with the AES key from {source} (AES/GCM/NoPadding): the "
                "value is damaged or was encrypted with another key"
            ) from None
        return job.text(plain)

    def _aes_key(self, job: _Job, *, internal: bool) -> tuple[bytes, str]:
        """The AES key: ``symmetric_key=``; for carbon's internal format ``[encryption]
        key``; for the cipher tool's symmetric format the keystore's secret-key entry."""
        config = job.config
        if self._symmetric_key is not None:
            given = self._symmetric_key
            if isinstance(given, bytes):
                return given, "symmetric_key="
            try:
                return bytes.fromhex(reveal(given) or ""), "symmetric_key="
            except ValueError:
                raise job.fail("needs symmetric_key= as bytes or hex") from None
        if internal:
            if config.encryption_key is None:
                raise job.fail(
                    f"is encrypted with [encryption] key, which {self._toml} does not set: "
                    "set it or pass symmetric_key="
                )
            # SymmetricKeyInternalCryptoProvider.determineEncodingAndEncode: hex for 48 or
            # 64 characters, else the string's own bytes.
            where = f"[encryption] key of {self._toml}"
            reference = re.fullmatch(r"\$secret\{([^}]*)\}", config.encryption_key)
            if reference is not None:  # key = "$secret{alias}": itself in the vault
                if reference.group(1) == job.alias:
                    raise job.fail(f"is {where} itself: an alias cannot decrypt itself")
                text = self.resolve(reference.group(1)).reveal()
            else:
                text = self._placeholder(config.encryption_key, where)
            if len(text) in (48, 64):
                try:
                    return bytes.fromhex(text), where
                except ValueError:
                    raise job.fail(f"needs {where} to be hex") from None
            return text.encode(), where
        if config.mode == "key.based.symmetric.encryption":
            raise job.fail(
                "is encrypted with the AES key the server reads from its key file at "
                "start-up (encryptionMode=key.based.symmetric.encryption): pass that key "
                "as symmetric_key="
            )
        keys = self._load_keys(config)
        if keys.symmetric is None:
            raise job.fail(
                f"is AES-GCM encrypted, and {config.keystore} has no secret-key entry "
                f"{config.key_alias or ''!r}: add one (keytool -genseckey) or pass symmetric_key="
            )
        return keys.symmetric, f"the secret-key entry {config.key_alias!r} of {config.keystore}"


def _secret_key(data: bytes, password: str, alias: str | None) -> bytes | None:
    """A ``keytool -genseckey`` entry of a JCEKS or PKCS#12 keystore (the cipher tool's
    symmetric mode); ``alias=None`` takes the only one; ``None`` when there is none."""
    if not looks_like_pkcs12(data):
        return secret_key_entry(data, password, alias)
    try:
        entries = parse_pkcs12(data, password, decrypt_keys=False, secret_keys=True).secret_keys
    except (P12FormatError, P12PasswordError, WorkLimitError):
        return None  # the store itself is loaded (and its errors reported) separately
    named = [e for e in entries if alias is not None and (e.alias or "").lower() == alias.lower()]
    if named:
        return named[0].pkcs8_der
    return entries[0].pkcs8_der if len(entries) == 1 and alias is None else None


def _pkcs1_decrypt(key: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes:
    """RSAES-PKCS1-v1_5 decryption (RFC 8017 section 7.2.2) that fails loudly.

    OpenSSL 3.2+ answers a bad padding with a random "implicit rejection" message
    instead of an error (a defence for servers answering many queries). Here there is
    no oracle to defend, and a random message must never pass for a password, so the
    padding is checked in full.

    Raises:
        ValueError: the ciphertext does not fit the key or its padding is wrong.
    """
    numbers = key.private_numbers()
    public = numbers.public_numbers
    size = (public.n.bit_length() + 7) // 8
    if len(ciphertext) != size:
        raise ValueError("ciphertext length does not match the key")
    c = int.from_bytes(ciphertext, "big")
    if c >= public.n:
        raise ValueError("ciphertext out of range")
    # CRT: m = c^d mod n from the two half-size exponentiations.
    m1 = pow(c, numbers.dmp1, numbers.p)
    m2 = pow(c, numbers.dmq1, numbers.q)
    m = m2 + numbers.q * ((numbers.iqmp * (m1 - m2)) % numbers.p)
    encoded = m.to_bytes(size, "big")
    separator = encoded.find(b"\x00", 2)
    if encoded[:2] != b"\x00\x02" or separator < 10:  # at least 8 bytes of non-zero padding
        raise ValueError("PKCS#1 v1.5 padding does not match")
    return encoded[separator + 1 :]


@dataclass(frozen=True, slots=True)
class _Job:
    """One alias being decrypted: what every failure message names."""

    alias: str
    path: str
    config: _Config

    def fail(self, why: str) -> SecureVaultError:
        return SecureVaultError(
            f"{self.path}: secret alias {shown_alias(self.alias)} {why}",
            path=self.path,
            alias=self.alias,
        )

    def text(self, plain: bytes) -> str:
        text = utf8_text(plain)  # no handler: its error would hold the plaintext
        if text is None:
            raise self.not_text()
        return text

    def not_text(self) -> SecureVaultError:
        return self.fail(
            "decrypts to bytes that are not UTF-8 text: it was encrypted for another "
            "key, or from text in another encoding (encrypt the UTF-8 bytes)"
        )


def _vault_enabled(conf: Mapping[str, str]) -> bool:
    """Whether secret-conf.properties turns the vault on, as WSO2's ``SecretManager.init``
    decides: ``secVault.enabled`` (Java's ``Boolean.parseBoolean``; absent or empty means
    ``true``) and, when that flag is not written, a non-empty ``secretRepositories``.

    The cipher tool writes ``secVault.enabled=true``; files written by hand or by older
    tools (Micro Integrator's own secure-vault tests) only list ``secretRepositories``.
    """
    flag = conf.get("secVault.enabled", "").strip()
    if flag:
        return flag.lower() == "true"
    return bool(conf.get("secretRepositories", "").strip(" \t,"))


def _without_file_repository(conf: Mapping[str, str]) -> str | None:
    """What in secret-conf.properties keeps WSO2 from reading the cipher tool's files,
    for messages; ``None`` when they are read.

    WSO2's ``SecretManager.init`` reads the names of ``secretRepositories`` and
    ``secretProviders`` (each trimmed as a whole and split at commas, entries not
    trimmed) into one ``java.util.HashMap``, and makes each entry's
    ``<property>.<name>.provider``: one not written stops it ("Repository provider
    cannot be null"). The ``secretRepositories`` entries are chained in the map's
    iteration order, and the first answers every plain alias (a file repository asks
    no other). The cipher tool's files (cipher-text.properties, written from
    ``[secrets]``) are ``FileBaseSecretRepositoryProvider``'s. So they are WSO2's
    source when the first entry is ``file`` with that provider, or when neither
    property is written (API Manager writes the whole file from deployment.toml, with
    ``secretRepositories=file``).
    """
    written = {prop: conf.get(prop, "").strip() for prop in _REPOSITORY_PROPERTIES}
    if not any(written.values()):
        return None
    providers: dict[str, str] = {}
    for prop in _REPOSITORY_PROPERTIES:
        for name in _java_split(written[prop]):
            providers[name] = prop  # a name in both: the later property's, as in Java
    for name, prop in providers.items():
        if not conf.get(f"{prop}.{name}.provider", "").strip():
            return (
                f"{prop}={written[prop]} and no {prop}.{name}.provider (WSO2's SecretManager "
                "stops there: 'Repository provider cannot be null')"
            )
    chained = [
        name for name in _hashmap_order(list(providers)) if providers[name] == "secretRepositories"
    ]
    if not chained:
        return f"secretProviders={written['secretProviders']} and no secretRepositories"
    if chained[0] != "file":
        said = f"secretRepositories={written['secretRepositories']}"
        return said if len(chained) == 1 else f"{said} (WSO2 asks {chained[0]} first)"
    provider = conf.get("secretRepositories.file.provider", "").strip()
    if provider.rsplit(".", 1)[-1] == "FileBaseSecretRepositoryProvider":
        return None
    return f"secretRepositories.file.provider={provider}"


_REPOSITORY_PROPERTIES = ("secretRepositories", "secretProviders")


def _java_split(text: str) -> list[str]:
    """``text.split(",")`` as Java splits: trailing empty strings dropped (an empty
    text gives none here: the property is then not read)."""
    parts = text.split(",") if text else []
    while parts and not parts[-1]:
        parts.pop()
    return parts


def _java_hash(text: str) -> int:
    """``String.hashCode()``: over UTF-16 code units, as a 32-bit int (unsigned here)."""
    units = text.encode("utf-16-be", "surrogatepass")
    value = 0
    for i in range(0, len(units), 2):
        value = (31 * value + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return value


def _hashmap_order(keys: list[str]) -> list[str]:
    """``keys`` (distinct, in insertion order) as a ``java.util.HashMap`` made with the
    default capacity iterates them: by bucket (the hash's high half folded into its low
    bits, masked by the capacity, which doubles past three quarters full), then in
    insertion order within a bucket (sorted() is stable)."""
    capacity = 16
    while len(keys) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        value = _java_hash(key)
        return (value ^ (value >> 16)) & (capacity - 1)

    return sorted(keys, key=bucket)


def _table(doc: Mapping[str, Any], *keys: str) -> Mapping[str, Any] | None:
    node: Any = doc
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) else None


def _str(value: Any) -> str | None:
    return str(value).strip() if value is not None else None


def _exact(value: Any) -> str | None:
    return str(value) if value is not None else None


_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dotted_items(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``[secrets]`` flattened as WSO2's config mapper and cipher tool read it (the
    TOML reader's ``dottedKeySet()``): nested tables are flattened, so
    ``keystore.tls.password = "[...]"`` (a dotted key, which TOML makes tables of) is
    the key ``keystore.tls.password``. A segment that is not a bare key is quoted, as
    its ``joinKeyPath`` writes it (``a."b.c"``); :func:`_unquoted` then makes the
    alias. Each table is also given, as itself, before its keys (it is not an alias).
    deployment.toml's depth guard bounds the recursion."""
    for key, value in table.items():
        part = key if _SIMPLE_KEY.fullmatch(key) else f'"{_toml_escape(key)}"'
        if isinstance(value, Mapping):
            yield prefix + part, value  # not an alias: asked for, it is named as a table
            yield from _dotted_items(value, f"{prefix}{part}.")
        else:
            yield prefix + part, value


def _unquoted(key: str) -> str:
    """The alias WSO2's config mapper makes of a flattened ``[secrets]`` key: a key
    that starts and ends with a quote loses both (``TomlParser.extractQuotedContent``,
    config-mapper since 2022), so ``"ssl.keystore.password" = ...`` is the alias
    ``ssl.keystore.password``; ``a."b.c"`` keeps its quotes."""
    return key[1:-1] if len(key) > 1 and key[0] == '"' and key[-1] == '"' else key


def _toml_escape(key: str) -> str:
    return key.replace("\\", "\\\\").replace('"', '\\"')


# What not_text says of an alias written with an empty value.
_EMPTY: Final = ""


def _kind_of(value: Any) -> str:
    """What a TOML value is, for a message that must not show it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date or time"


#: ``secretRepositories.file.encryptionMode`` values: the cipher tool's ``-Dsymmetric``
#: (AES-GCM, ``{"cipherText", "iv"}``) and the mediation vault's key-based mode (the same
#: JSON, its AES key from a key file the server reads at start-up: symmetric_key=).
_SYMMETRIC_MODES = ("symmetric", "key.based.symmetric.encryption")
_ASYMMETRIC_MODES = ("", "asymmetric")


def _secret(value: str | Secret | None) -> Secret | None:
    if value is None:
        return None
    return value if isinstance(value, Secret) else Secret(value)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    if not raw.lstrip().startswith(b"{"):
        return None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested without end
        return None
    return document if isinstance(document, dict) else None
