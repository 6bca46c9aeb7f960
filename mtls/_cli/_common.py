"""What every subcommand shares: exit codes, errors, passwords, output, log capture, and
loading stores and profile sets with the CLI's messages.

No subcommand module imports another: what two of them need lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import getpass
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TextIO

from .._errors import MTLSError, WrongPasswordError, displayable, safe_lines, safe_text
from .._secret import is_text
from .._types import NAMED_FORMATS, WriteFormat, hex_serial

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography import x509

    from .._config import SSLProfile, StoreConfig
    from .._profiles import SSLProfileSet
    from .._stores import Keystore, Truststore

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Environment variables for passwords (documented in docs/cli.md).
# (Names of variables, not passwords: hence the S105 exemptions.)
ENV_STORE_PASSWORD = "MTLS_STORE_PASSWORD"  # noqa: S105
ENV_KEY_PASSWORD = "MTLS_KEY_PASSWORD"  # noqa: S105
ENV_TRUSTSTORE_PASSWORD = "MTLS_TRUSTSTORE_PASSWORD"  # noqa: S105
ENV_OUT_PASSWORD = "MTLS_OUT_PASSWORD"  # noqa: S105
ENV_NEW_PASSWORD = "MTLS_NEW_PASSWORD"  # noqa: S105

#: keytool refuses store passwords shorter than this ("must be at least 6 characters").
KEYTOOL_MIN_PASSWORD = 6


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the command is, as Ctrl-C's KeyboardInterrupt is
    (see _main); a command that stops on Ctrl-C passes it on: it exits 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class CLIError(Exception):
    """A failure to report as one ``mtls: error:`` line (exit 1 unless ``code`` says)."""

    def __init__(self, message: str, *, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CLIError):
    """The command line itself is wrong or incomplete (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=EXIT_USAGE)


# --------------------------------------------------------------------------- secrets

_SECRETS: set[str] = set()
# The options whose password was typed at the prompt (a wrong one is said to be that).
_PROMPTED: set[str] = set()
# Whole command-line words that carried a password glued to its option
# (``-storepassSECRET``), and what each is shown as (``-storepass****``).
_GLUED: dict[str, str] = {}
# Every spelling of a password option: mtls's, keytool's single-dash ones
# (``-storepass``, ``-keypass``, ``-srcstorepass``, ``-destkeypass``, ``-new`` of
# -storepasswd/-keypasswd, ``-password``) and openssl's (``-pass``, ``-passin``, ...).
_PASSWORD_OPTIONS = (
    "--password",
    "--storepass",
    "--keypass",
    "--key-password",
    "--truststore-password",
    "--out-password",
    "--out-key-password",
    "--new-password",
    "-storepass",
    "-keypass",
    "-srcstorepass",
    "-deststorepass",
    "-srckeypass",
    "-destkeypass",
    "-new",
    "-password",
    "-pass",
    "-passin",
    "-passout",
)
_PASSWORD_ENVS = (
    ENV_STORE_PASSWORD,
    ENV_KEY_PASSWORD,
    ENV_TRUSTSTORE_PASSWORD,
    ENV_OUT_PASSWORD,
    ENV_NEW_PASSWORD,
)


def remember_secret(value: str | None) -> None:
    """Add a password to what :func:`scrub` hides from echoed command lines."""
    if value:
        _SECRETS.add(value)


def _password_option(word: str) -> tuple[str, str | None] | None:
    """``(option, glued value)`` when ``word`` is a password option, else None.

    A password option is any spelling above, an abbreviation of one (``--pass``,
    ``-storep``: argparse may still take or echo it), or a spelling with the value
    glued on (``-storepassSECRET``, a keytool habit) or after ``=``.
    """
    if not word.startswith("-"):
        return None
    option, sep, value = word.partition("=")
    # An abbreviation stops inside a word: --out and --truststore are options of
    # their own, not abbreviations of --out-password and --truststore-password.
    if len(option.lstrip("-")) >= 2 and any(
        s.startswith(option) and not s[len(option) :].startswith("-") for s in _PASSWORD_OPTIONS
    ):
        return option, value if sep else None
    glued = [s for s in _PASSWORD_OPTIONS if option.startswith(s)]
    if glued:
        spelling = max(glued, key=len)
        return spelling, word[len(spelling) :]
    return None


# keytool's password options that take a source modifier: -storepass:env NAME reads
# the variable, -storepass:file PATH the file's first line (keytool's getPass).
_PASSWORD_SOURCE = re.compile(
    r"^(-(?:storepass|keypass|srcstorepass|deststorepass|srckeypass|destkeypass|new)):(env|file)$"
)


_PASSWORD_LINE_MAX = 4096  # characters of a -storepass:file line (keytool's first line)


def expand_password_sources(argv: Sequence[str]) -> list[str]:
    """``argv`` with keytool's ``-storepass:env NAME`` and ``-storepass:file PATH``
    (and the other password options' forms) replaced by the option and the password
    they name, which is remembered as a secret.

    Raises:
        UsageError: the variable is not set, or the file cannot be read.
    """
    out: list[str] = []
    words = iter(argv)
    for word in words:
        match = _PASSWORD_SOURCE.match(word)
        if match is None:
            out.append(word)
            continue
        option, source = match.groups()
        name = next(words, None)
        if name is None:
            raise UsageError(f"{word} needs a {'variable name' if source == 'env' else 'file'}")
        if source == "env":
            value = os.environ.get(name)
            if value is None:
                # The name is not repeated: it may be the password itself, typed where
                # the name goes.
                raise UsageError(f"{word}: the environment variable named after it is not set")
        else:
            try:
                # The first line, as keytool reads it; bounded (/dev/zero has none). A
                # pipe is read too (-storepass:file <(vault read ...)), as keytool does.
                with open(name, encoding="utf-8") as fh:
                    line = fh.readline(_PASSWORD_LINE_MAX + 1)
            except (OSError, UnicodeDecodeError) as exc:
                why = getattr(exc, "strerror", None) or type(exc).__name__
                raise UsageError(f"{word}: cannot read the file named after it ({why})") from None
            value = line.rstrip("\r\n")
            if len(value) > _PASSWORD_LINE_MAX:
                raise UsageError(
                    f"{word}: the first line of the file is longer than {_PASSWORD_LINE_MAX:,} "
                    "characters, which no password is: is it the right file?"
                )
        remember_secret(value)
        out += [option, value]
    return out


# What an option that is none of ours may be named when its value is a password: any
# spelling with "pass", "pas", "pw" or "secret" in it (lower case, capitalised as in
# -storePass, or all capitals), and -p alone or with a value glued on that starts
# with no lower-case letter (-pS3cret; -providerpath is a name). A word too many hidden
# (--path's value) is harmless; a password echoed in "unrecognized arguments" is not.
_PASSWORDISH = re.compile(r"^-{1,2}p(?![a-z])|[pP](?:ass|as|w)|[sS]ecret|PASS|PAS|PW|SECRET")
# What may follow that stem and still be the option's name (--password-file,
# -storepasswd, --keystore-pwd, -passin); anything else is a value glued on
# (-storepaschangeit).
_NAME_GOES_ON = re.compile(r"(?:s?w(?:or)?d|d|s?phrase|in|out)?(?:[-_][A-Za-z]+)*")


def remember_argv_secrets(argv: Sequence[str]) -> None:
    """Remember the passwords on a command line and in the environment, before parsing.

    argparse echoes stray arguments in its messages ("unrecognized arguments: ...",
    "ambiguous option: ..."), so the values are known before it runs: the word after
    a password option (or an abbreviation of one), or the value glued to it.
    """
    _PROMPTED.clear()  # one command's prompts (main() may run again in one process)
    for name in _PASSWORD_ENVS:
        remember_secret(os.environ.get(name))
    for index, word in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else None
        # A word that starts with "-" is the next option, never taken as a value
        # (argparse refuses it: "expected one argument"); hidden, it hid that option.
        after = following if following is not None and not following.startswith("-") else None
        if _PASSWORD_SOURCE.match(word):
            # -storepass:env NAME: ":env" is no password glued on; the word after it
            # is a name, unless the password was typed there by mistake (hidden then,
            # unless too short to be one: a hidden "e" would garble every message).
            if after is not None:
                _remember_glued(after)
            continue
        found = _password_option(word)
        stem = _PASSWORDISH.search(word.partition("=")[0]) if word.startswith("-") else None
        if found is None and stem is not None:
            # A spelling of no tool (--passwd, --store-password), or a typo of one
            # (--pasword, --pw, -p, --keystore-pwd): still a password's option to
            # whoever typed it; its value is what follows, or what is glued on where
            # the word goes on with what no name has (-storepasS3cret, -pS3cret; the
            # value may hold "=" itself: -storepasAbC123==).
            option, sep, glued = word.partition("=")
            if not _NAME_GOES_ON.fullmatch(option[stem.end() :]):
                _GLUED[word] = f"{word[: stem.end()]}****"
                _remember_glued(word[stem.end() :])
                remember_secret(after)  # or the name went on, and the password is next
                continue
            found = (option, glued if sep else None)
        if found is None:
            continue
        option, value = found
        if value is None:
            remember_secret(after)
            continue
        if "=" in word:
            remember_secret(value)
        else:
            _remember_glued(value)
        if value:
            _GLUED[word] = f"{option}{'=' if word[len(option)] == '=' else ''}****"
        if "=" not in word:
            # "-storepasswd NEW": what looked glued may be the end of a misspelled
            # option, and the password the next word. Hiding a word too many is harmless.
            remember_secret(after)


def _remember_glued(value: str) -> None:
    """Remember a value found glued to an option's name, unless it is too short to be
    one: where the name ends is a guess, and a remembered "wd" (of -storepasswd) would
    be hidden in every message. The whole word is hidden anyway (``_GLUED``)."""
    if len(value) >= _MIN_GLUED:
        remember_secret(value)


# keytool refuses passwords under six characters; four leaves room for other tools.
_MIN_GLUED = 4


def glued_shown(word: str) -> str | None:
    """How a command-line word that carried a password glued on is shown, or None."""
    return _GLUED.get(word)


def scrub(text: str) -> str:
    """``text`` with every known password replaced by ``****``."""
    for word in sorted(_GLUED, key=len, reverse=True):
        text = text.replace(word, _GLUED[word])
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


def resolve_password(
    given: str | None,
    *,
    env: str,
    option: str,
    what: str,
    prompt: str,
    required: bool = True,
    confirm: bool = False,
) -> str | None:
    """A password from the option, else the environment (set and not empty), else a
    hidden prompt on a terminal.

    Args:
        given: the option's value (``None`` when absent).
        env: the environment variable to read next.
        option: the option's name, for the message.
        what: what the password is for ("the store password"), for the message.
        prompt: the terminal prompt.
        required: raise when none is found; otherwise return ``None``.
        confirm: ask twice on a terminal (a new store), like keytool.

    Raises:
        UsageError: no password and no terminal to ask on (only when ``required``).
        CLIError: the two prompted passwords differ.
    """
    if given is not None:
        remember_secret(given)
        return given
    # An empty variable counts as unset: an unexpanded $VAR must not mean "no password"
    # (for --out-password, a private key written in clear); the option says that.
    from_env = os.environ.get(env) or None
    if from_env is not None:
        remember_secret(from_env)
        return from_env
    if not required:
        return None
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            for _ in range(3):  # a new password too short is asked again, as keytool does
                value = getpass.getpass(prompt)
                remember_secret(value)
                if not confirm or java_length(value) >= KEYTOOL_MIN_PASSWORD:
                    break
                sys.stderr.write(
                    f"The password must be at least {KEYTOOL_MIN_PASSWORD} characters\n"
                )
            if confirm and getpass.getpass("Re-enter new password: ") != value:
                raise CLIError("the two passwords do not match: try again")
        except EOFError:
            raise UsageError(f"no {what.removeprefix('the ')} entered (end of input)") from None
        _PROMPTED.add(option)
        return value
    raise UsageError(
        f"{what} is needed: pass {option} PASSWORD, set {env}, or run on a terminal to be prompted"
    )


def java_length(text: str) -> int:
    """``text``'s length as Java counts it (``String.length``: UTF-16 code units), as
    keytool counts a password's six characters: three emoji are six (h137)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def check_new_password(password: str, where: str, what: str = "store password") -> None:
    """Refuse a new store (or key) password keytool would refuse to use.

    Raises:
        UsageError: shorter than six characters, or not text (a byte that is not
            UTF-8, which Python's command line and environment give as a lone surrogate).
    """
    if not is_text(password):
        raise UsageError(
            f"{where}: the {what} holds a byte that is not UTF-8 (a password typed on a "
            "Latin-1 terminal?): give it as UTF-8"
        )
    if java_length(password) < KEYTOOL_MIN_PASSWORD:
        raise UsageError(
            f"{where}: the {what} must be at least {KEYTOOL_MIN_PASSWORD} characters "
            "(keytool refuses shorter ones)"
        )


# --------------------------------------------------------------------------- output


def _utf8(value: Any) -> Any:
    """``value`` with every string made UTF-8 (:func:`displayable`): a path with a byte
    that is not UTF-8 was written as a lone surrogate (``"caf\\udce9.jks"``), which JSON
    readers refuse or replace; it is ``caf\\xe9.jks``, as the messages name it (h136)."""
    if isinstance(value, str):
        return displayable(value)
    if isinstance(value, dict):
        return {_utf8(k): _utf8(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_utf8(v) for v in value]
    return value


def _color_wanted(stream: TextIO, no_color: bool) -> bool:
    if no_color or os.environ.get("NO_COLOR"):  # https://no-color.org: set and not empty
        return False
    return is_terminal(stream)


def is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal (where DER, raw bytes, is not written)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Output:
    """Lines for humans on stdout (coloured only on a terminal), errors on stderr.

    Passwords never reach these lines: the library keeps them out of every message.
    The two places that echo the command line itself (argparse's usage errors and a
    ``--debug`` traceback) are scrubbed of the known passwords.
    """

    _CODES: ClassVar[dict[str, str]] = {
        "bold": "1",
        "dim": "2",
        "red": "31",
        "green": "32",
        "yellow": "33",
        "cyan": "36",
    }

    def __init__(
        self, stdout: TextIO | None = None, stderr: TextIO | None = None, *, no_color: bool = False
    ) -> None:
        """Write to ``stdout`` and ``stderr`` (the process's streams by default)."""
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        for stream in (self.stdout, self.stderr):
            # A terminal or pipe that cannot show a character (PYTHONIOENCODING=ascii, a
            # C locale) gets an escape for it, never a UnicodeEncodeError mid-output.
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                with contextlib.suppress(ValueError, TypeError, OSError):
                    reconfigure(errors="backslashreplace")
        self.color = _color_wanted(self.stdout, no_color)
        # Marks our own styles in a line (see line()): random, so no file can spell it.
        self._mark = f"\x00{os.urandom(8).hex()}"
        self.json_written = False  # a command's JSON document is out (see main())
        self.reader_gone = False  # stdout's reader closed its end (see write())
        self.stop_when_unread = False  # raise BrokenPipeError then (mtls serve)

    def style(self, text: str, *styles: str) -> str:
        """``text`` wrapped in ANSI styles when colour is on (bold, dim, red, green, ...)."""
        if not self.color or not styles:
            return text
        codes = ";".join(self._CODES[s] for s in styles)
        mark = self._mark
        return f"{mark}{codes}{mark}{text}{mark}0{mark}"

    def line(self, text: str = "") -> None:
        """Write one line to stdout.

        Everything in it but our own styles is shown as text: control characters (a
        line break, a carriage return, an escape sequence, a bidirectional override)
        that a certificate's subject, an alias or a server's answer carries are
        written escaped, so no file or server can clear the screen or add a line
        that looks like ours (a forged fingerprint).
        """
        parts = text.split(self._mark)
        shown = "".join(
            safe_text(part) if index % 2 == 0 else f"\033[{part}m"
            for index, part in enumerate(parts)
        )
        self.write(shown + "\n")

    def json(self, document: Any) -> None:
        """Write a JSON document to stdout (indented, keys in the documented order)."""
        import json  # noqa: PLC0415 - only --json output needs it

        self.write(json.dumps(_utf8(document), indent=2, default=str) + "\n")
        self.json_written = True

    def write(self, text: str) -> None:
        """Write ``text`` to stdout as it is (a PEM block, hex) and flush it.

        A reader that stops reading (``mtls list | head -1``, ``grep -q``) does not
        change what the command does or its exit code, as with keytool: the rest of
        the output is discarded (h270: exit 1 with nothing said, which failed a
        ``pipefail`` script whose grep had found its line). A command that runs until
        stopped (``mtls serve``) sets ``stop_when_unread`` and ends instead.
        """
        self._emit(lambda: self.stdout.write(text))

    def write_bytes(self, data: bytes) -> None:
        """Write ``data`` to stdout as it is (DER or PEM, as keytool writes them); on a
        text-only stream (tests), PEM as text and DER as hex."""
        self._emit(self.stdout.flush)  # what is written as text goes first
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is None:
            self.write(data.decode("ascii") if data.startswith(b"-----") else data.hex() + "\n")
        else:
            self._emit(lambda: buffer.write(data))

    def _emit(self, write: Callable[[], object]) -> None:
        """Run ``write`` and flush stdout, unless its reader has gone (see write())."""
        if self.reader_gone:
            return
        try:
            write()
            self.stdout.flush()
        except BrokenPipeError:
            self.reader_gone = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                # What is still buffered goes nowhere when it is flushed again (at exit).
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stdout.fileno())
                os.close(devnull)
            if self.stop_when_unread:
                raise

    def _plain(self, text: str) -> str:
        """``text`` without our style marks (stderr is never coloured), escaped."""
        return safe_text("".join(text.split(self._mark)[::2]))

    def warn(self, message: str) -> None:
        """``mtls: warning: MESSAGE`` on stderr (control characters escaped)."""
        self.stderr.write(f"mtls: warning: {self._plain(message)}\n")
        self.stderr.flush()

    def error(self, message: str) -> None:
        """``mtls: error: MESSAGE`` on stderr, as one line (control characters escaped)."""
        one_line = " ".join(str(message).split())
        self.stderr.write(f"mtls: error: {self._plain(one_line)}\n")
        self.stderr.flush()

    def raw_stderr(self, text: str) -> None:
        """Write ``text`` (a ``--debug`` traceback) with its line breaks, each line
        escaped, scrubbed."""
        self.stderr.write(safe_lines(scrub(text)))
        self.stderr.flush()


# --------------------------------------------------------------------------- certificates
#
# cryptography is imported inside these functions, as the library is below:
# ``mtls --help`` and usage errors load neither.


def now() -> _dt.datetime:
    """The current time, UTC."""
    return _dt.datetime.now(_dt.UTC)


def jdk_cacerts() -> str:
    """The JDK's cacerts file, as keytool's ``-cacerts`` finds it: that of the
    ``keytool`` on PATH (what ``keytool -cacerts`` would open), else of
    ``$JAVA_HOME``, else of the ``java`` on PATH (``lib/security/cacerts``, or
    ``jre/lib/security/cacerts`` in a JDK 8).

    Raises:
        CLIError: no JDK found, or none of them has the file.
    """
    import shutil  # noqa: PLC0415 - -cacerts only

    homes: list[str] = []
    for tool in ("keytool", "java"):
        found = shutil.which(tool)
        if found is not None:
            homes.append(os.path.dirname(os.path.dirname(os.path.realpath(found))))
        if tool == "keytool" and os.environ.get("JAVA_HOME"):
            homes.append(os.environ["JAVA_HOME"])
    for home in homes:
        for below in ("lib/security/cacerts", "jre/lib/security/cacerts"):
            candidate = os.path.join(home, below)
            if os.path.isfile(candidate):
                return candidate
    where = ", ".join(dict.fromkeys(homes)) or "none on PATH and no JAVA_HOME"
    raise CLIError(
        f"-cacerts: no JDK with a cacerts file found ({where}): put the JDK's bin on PATH "
        "or set JAVA_HOME, or give --keystore FILE"
    )


def start_date(text: str | None) -> _dt.datetime | None:
    """``-startdate``'s instant, as keytool reads it (``None``: not given).

    Raises:
        UsageError: not one of keytool's forms, or no such date.
    """
    if text is None:
        return None
    from .._keygen import parse_startdate  # noqa: PLC0415 - cryptography, as above

    try:
        return parse_startdate(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def days_left(when: _dt.datetime) -> int:
    """Whole days from now until ``when`` (negative once past)."""
    return (when - now()).days


def display_path(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> str:
    """``path`` relative to ``base`` (or the current directory) when inside it.

    Symlinks are not followed: a Kubernetes ``..data`` link shows as configured.
    """
    from pathlib import Path  # noqa: PLC0415 - not for --help

    target = Path(os.path.abspath(path))
    for root in (base, os.getcwd()):
        if root is None:
            continue
        try:
            return str(target.relative_to(os.path.abspath(root)))
        except ValueError:
            continue
    return str(path)


def oid_name(oid: x509.ObjectIdentifier) -> str:
    """cryptography's name of an OID (``sha256WithRSAEncryption``), else its digits."""
    name = getattr(oid, "_name", "Unknown OID")
    return oid.dotted_string if name == "Unknown OID" else str(name)


def key_description(cert: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """The public key as keytool -v describes it: ``RSA 2048``, ``EC secp256r1``, ``Ed25519``."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa  # noqa: PLC0415

    from .. import _x509  # noqa: PLC0415 - with the serializers: not for --help

    # A request has it too (cryptography 41+), though its type stubs do not say so.
    algorithm: x509.ObjectIdentifier = cert.public_key_algorithm_oid  # type: ignore[union-attr]
    oid = algorithm.dotted_string
    try:
        key = _x509.public_key(cert)
    except (UnsupportedAlgorithm, ValueError):  # ML-KEM-512 in cryptography 50, damaged keys
        return _x509.key_algorithm_name(oid) or f"unknown key algorithm ({oid})"
    if isinstance(key, rsa.RSAPublicKey):
        # An RSASSA-PSS key (keytool -keyalg RSASSA-PSS) is an RSA key bound to PSS.
        from cryptography.x509.oid import PublicKeyAlgorithmOID  # noqa: PLC0415

        pss = algorithm == PublicKeyAlgorithmOID.RSASSA_PSS
        return f"{'RSASSA-PSS' if pss else 'RSA'} {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, _x509.DSAPublicKey):
        return f"DSA {key.key_size}"
    # X25519, ML-DSA-65, ...: keytool's names, not cryptography's classes.
    return _x509.key_algorithm_name(oid) or type(key).__name__.removesuffix("PublicKey")


def purpose_problem(cert: x509.Certificate) -> tuple[str, str] | None:
    """Why servers refuse ``cert`` as a client certificate, and which servers: all
    but GnuTLS-based ones when its extended key usage lacks clientAuth (the reload
    engine refuses such a replacement), some only otherwise
    (:func:`mtls._purpose.usage_warning`); ``None`` when nothing forbids it."""
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    from .. import _purpose  # noqa: PLC0415 - with the serializers: not for --help

    der = cert.public_bytes(Encoding.DER)
    problem = _purpose.purpose_problem(der, "client")
    if problem is not None:
        return problem, "servers"
    found = _purpose.usage_warning(der, "client")
    return None if found is None else (found[0], f"{found[1]} servers")


def cert_info(cert: x509.Certificate) -> dict[str, Any]:
    """The JSON form of one certificate (the keys documented in docs/cli.md)."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    from .. import _dates, _x509  # noqa: PLC0415 - with the serializers: not for --help
    from .._crl import _extension  # noqa: PLC0415

    der = cert.public_bytes(Encoding.DER)
    expires = _dates.not_after(cert)
    constraints = _extension(cert, x509.BasicConstraints)
    return {
        "subject": _x509.subject_text(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "self_signed": cert.issuer == cert.subject,
        "ca": bool(constraints is not None and constraints.ca),
        "serial": hex_serial(_x509.serial_number(cert)),
        "not_before": _dates.not_before(cert).isoformat(),
        "not_after": expires.isoformat(),
        "days_left": days_left(expires),
        "san": _x509.subject_alt_names(cert),
        "key": key_description(cert),
        "signature": oid_name(cert.signature_algorithm_oid),
        "sha256": _x509.sha256_hex(der),
    }


def certificate_lines(out: Output, info: dict[str, Any], indent: str) -> None:
    """One certificate's lines, from :func:`cert_info` (or the ``unparsed`` form of a
    certificate cryptography cannot read), as ``mtls list`` and ``printcert`` show it."""
    from .. import _x509  # noqa: PLC0415 - not for --help

    if "unparsed" in info:
        out.line(f"{indent}(details unavailable: {info['unparsed'].split(':', 1)[0]})")
        out.line(f"{indent}SHA256   {_x509.colon_hex(info['sha256'])}")
        return
    issuer = info["issuer"] + (" (self-signed)" if info["self_signed"] else "")
    expiry = expiry_text(info["not_after"])
    if info["days_left"] < 0:
        expiry = out.style(expiry, "red")
    out.line(f"{indent}subject  {info['subject']}")
    out.line(f"{indent}issuer   {issuer}")
    starts = _dt.datetime.fromisoformat(info["not_before"])
    ends = _dt.datetime.fromisoformat(info["not_after"])
    # Not valid yet: peers refuse it as they refuse an expired one. Never valid (its
    # notBefore after its notAfter): it must be reissued, not waited for (h202).
    early = ""
    if starts > ends:
        early = out.style(" NEVER VALID (its notBefore is after its notAfter)", "red")
    elif starts > now():
        early = out.style(
            f" NOT VALID YET (from {starts:%Y-%m-%d %H:%M} UTC, in {span_text(starts)})", "red"
        )
    out.line(f"{indent}valid    {info['not_before'][:10]} to {expiry}{early}")
    out.line(f"{indent}serial   {info['serial']}")
    out.line(f"{indent}key      {info['key']}")
    if info["san"]:
        out.line(f"{indent}SAN      {', '.join(info['san'])}")
    out.line(f"{indent}SHA256   {_x509.colon_hex(info['sha256'])}")


def expiry_text(not_after: str | _dt.datetime) -> str:
    """``2027-11-28 UTC (365 days)``, ``2026-12-02 UTC (58 min)``, or ``EXPIRED on
    2025-01-01 UTC``: the day in UTC, as every date mtls shows (a certificate ending at
    01:00 UTC ends the day before west of Greenwich)."""
    when = (
        not_after if isinstance(not_after, _dt.datetime) else _dt.datetime.fromisoformat(not_after)
    )
    if when < now():
        return f"EXPIRED on {when.date()} UTC"
    return f"{when.date()} UTC ({span_text(when)})"


def span_text(when: _dt.datetime) -> str:
    """How far ``when`` is, for people: whole days as status(), `mtls check` and every
    --json document count them (a certificate made for 365 days reads 364 a second
    later: one figure everywhere); hours or minutes under a day (never "0 days");
    "... ago" once past (counted the same way, so 3 days and 5 minutes ago is 3)."""
    from .._types import span  # noqa: PLC0415 - not for --help

    delta = when - now()
    return f"{span(delta)} ago" if delta < _dt.timedelta(0) else span(delta)


# --------------------------------------------------------------------------- stores and profiles
#
# The library is imported inside these functions: ``mtls --help`` (and a usage
# error) must not pay for the store readers and the profile engine.


def write_type(name: str) -> WriteFormat:
    """A ``--store-type``/``--to`` value as the writers take it (case-insensitive).

    Raises:
        argparse.ArgumentTypeError: not JKS, PKCS12 or PEM.
    """
    norm = name.upper().replace("#", "").replace("-", "")
    if norm == "JKS":
        return "JKS"
    if norm in ("PKCS12", "P12"):
        return "PKCS12"
    if norm == "PEM":
        return "PEM"
    raise argparse.ArgumentTypeError(f"must be JKS, PKCS12 or PEM, not {name!r}")


def type_for_new_store(path: Path, explicit: WriteFormat | None) -> WriteFormat:
    """The type of a store about to be created: ``--store-type``, else by extension.

    ``.jks`` is JKS (WSO2's files); anything else without a known extension is
    PKCS12, keytool's default since JDK 9.
    """
    if explicit is not None:
        return explicit
    by_extension = NAMED_FORMATS.get(path.suffix.lower(), "PKCS12")
    return "PKCS12" if by_extension == "PEM" else by_extension


def _password_hint(
    exc: WrongPasswordError,
    *,
    destination: bool = False,
    truststore: bool = False,
    source: bool = False,
) -> str | None:
    typed = (
        "--truststore-password" if truststore else "--out-password" if destination else "--password"
    )
    if exc.alias is None and typed in _PROMPTED:  # h272: the options were named
        return "the password typed at the prompt: check it"
    if truststore:  # probe's and serve's --truststore: options of its own, then the store's
        return (
            f"the truststore password comes from --truststore-password or "
            f"{ENV_TRUSTSTORE_PASSWORD}, else --password or {ENV_STORE_PASSWORD}"
        )
    if destination:  # convert's existing --out store: its own options, not the source's
        if exc.alias is not None:
            return None  # the message already names --out-key-password
        return (
            "the destination's store password comes from --out-password (-deststorepass) "
            f"or {ENV_OUT_PASSWORD}"
        )
    # keytool's spellings too, as the destination's hint names -deststorepass.
    # (convert's source: importkeystore's -srcstorepass and -srckeypass as well)
    if exc.alias is not None:
        spelling = "-keypass, -srckeypass" if source else "-keypass"
        return f"the key password comes from --key-password ({spelling}) or {ENV_KEY_PASSWORD}"
    spelling = "-storepass, -srcstorepass" if source else "-storepass"
    return f"the store password comes from --password ({spelling}) or {ENV_STORE_PASSWORD}"


# The library's advice names Python parameters; on the command line it names what the
# command takes instead (or only what can be done there).
_CLI_WORDING = (
    (", or pass properties={...}", " in the environment"),
    (
        "pass secret_resolver= (for example mtls.wso2.SecureVault(home))",
        "give --base-dir the product home whose secure vault holds it",
    ),
    (", or allow it with allow_unprotected=True", ""),
    ("pass key_password", "pass --key-password"),
    ("check the key password given", "check --key-password"),
)


def cli_wording(text: str) -> str:
    """A library message with its Python advice put as the command line's."""
    for library, command_line in _CLI_WORDING:
        text = text.replace(library, command_line)
    return text


def no_such_file(name: str | os.PathLike[str]) -> str:
    """The message for a file that is not there, with where relative paths start."""
    return f"{name}: no such file: check the path (relative paths start from {os.getcwd()})"


def load_keystore(
    path: Path,
    password: str | None,
    key_password: str | None,
    *,
    destination: bool = False,
    key_alias: str | None = None,
    source: bool = False,
    purpose: Literal["client", "server"] | None = None,
) -> Keystore:
    """``Keystore.load`` with the option or variable that sets each password in the message
    (``destination``: the store ``convert --merge`` adds to, whose options differ;
    ``source``: the store convert reads, whose options have importkeystore's spellings).
    ``key_alias``: decrypt that key entry alone where each has its own password (JKS,
    JCEKS, BKS, UBER), as keytool -importkeystore -srcalias does. ``purpose``: as
    :meth:`mtls.Keystore.load` takes it (the probe's identity is a client's).

    Raises:
        CLIError: a wrong password (chained to the library's error).
        MTLSError: anything else the library refuses.
    """
    from .._stores import Keystore, load_key_entry  # noqa: PLC0415 - not for --help

    try:
        if key_alias is None:
            return Keystore.load(path, password, key_password=key_password, purpose=purpose)
        return load_key_entry(path, password, key_password, key_alias)
    except WrongPasswordError as exc:
        # The library names its parameter; on the command line it is an option.
        option = "--out-key-password (-destkeypass)" if destination else "--key-password"
        text = cli_wording(str(exc)).replace("pass --key-password", f"pass {option}")
        hint = _password_hint(exc, destination=destination, source=source)
        raise CLIError(f"{text} ({hint})" if hint else text) from exc


def inspect_keystore(
    path: Path, password: str | None, *, destination: bool = False, source: bool = False
) -> Keystore:
    """``Keystore.inspect`` (entries and chains, no key decrypted), with password hints
    (``destination``, ``source``: as for :func:`load_keystore`)."""
    from .._stores import Keystore  # noqa: PLC0415 - not for --help

    try:
        return Keystore.inspect(path, password)
    except WrongPasswordError as exc:
        hint = _password_hint(exc, destination=destination, source=source)
        raise CLIError(f"{exc} ({hint})") from exc


def load_truststore(path: Path, password: str | None, *, truststore: bool = False) -> Truststore:
    """``Truststore.load`` (every entry's certificate, no key decrypted), with password hints
    (``truststore``: the store is a ``--truststore``, whose password has options of its own)."""
    from .._stores import Truststore  # noqa: PLC0415 - not for --help

    try:
        return Truststore.load(path, password)
    except WrongPasswordError as exc:
        raise CLIError(f"{exc} ({_password_hint(exc, truststore=truststore)})") from exc


def password_error(exc: WrongPasswordError, truststore: str | Path | None) -> CLIError:
    """A wrong password of ``--keystore`` or ``--truststore`` (``exc.path`` says which),
    with the options that set it."""
    is_trust = (
        truststore is not None
        and exc.path is not None
        and (os.path.abspath(exc.path) == os.path.abspath(truststore))
    )
    return CLIError(f"{exc} ({_password_hint(exc, truststore=is_trust)})")


def store_password(args: argparse.Namespace, path: str | Path, *, new: bool = False) -> str:
    """``--password``, else ``MTLS_STORE_PASSWORD``, else a prompt (twice for a new store)."""
    try:
        value = resolve_password(
            args.password,
            env=ENV_STORE_PASSWORD,
            option="--password",
            what=f"the store password of {path}",
            prompt="Enter keystore password: " if not new else "Enter new keystore password: ",
            confirm=new,
        )
    except UsageError as exc:
        if new:
            raise
        # keytool asks, and an empty answer opens a store that has no password (the
        # JDK's cacerts): here that is --password ''.
        raise UsageError(
            f"{exc}; a store without a password (a PKCS#12 in the JDK's password-less "
            "format, as its cacerts) opens with --password ''"
        ) from None
    assert value is not None
    return value


def truststore_password(args: argparse.Namespace, store_password: str | None) -> str | None:
    """``--truststore-password``, else ``MTLS_TRUSTSTORE_PASSWORD``, else the store password
    (the option, ``MTLS_STORE_PASSWORD`` or the one already asked for), else ``None``: a
    truststore opens without one, as in Java."""
    for given, env, option in (
        (args.truststore_password, ENV_TRUSTSTORE_PASSWORD, "--truststore-password"),
        (args.password, ENV_STORE_PASSWORD, "--password"),
    ):
        found = resolve_password(given, env=env, option=option, what="", prompt="", required=False)
        if found is not None:
            return found
    return store_password


def new_password(args: argparse.Namespace, path: str | Path, what: str) -> str:
    """``--new-password`` (keytool's ``-new``), else ``MTLS_NEW_PASSWORD``, else a prompt
    asked twice; refused when keytool would refuse it.

    Raises:
        UsageError: none given and no terminal, or shorter than keytool allows.
        CLIError: the two prompted passwords differ.
    """
    value = resolve_password(
        args.new_password,
        env=ENV_NEW_PASSWORD,
        option="--new-password",
        what=f"the new {what} of {path}",
        prompt=f"New {what}: ",
        confirm=True,
    )
    assert value is not None
    check_new_password(value, str(path), what)
    return value


def as_word(value: object) -> str:
    """``value`` (a path, an alias) as one shell word, quoted when it needs to be, for a
    command a message gives to copy (h272: an alias with a space broke the one certreq
    printed)."""
    return shlex.quote(str(value))


def optional_key_password(args: argparse.Namespace) -> str | None:
    """``--key-password`` or ``MTLS_KEY_PASSWORD``; ``None`` means "the store password"."""
    return resolve_password(
        getattr(args, "key_password", None),
        env=ENV_KEY_PASSWORD,
        option="--key-password",
        what="the key password",
        prompt="",
        required=False,
    )


def presented(
    config: StoreConfig,
) -> tuple[str, tuple[bytes, ...], dict[str, tuple[bytes, ...]]]:
    """The alias and chain (DER, leaf first) of the key entry a keystore
    configuration presents, and the chains of the store's other key entries.

    Raises:
        MTLSError: the store does not load, or has no such key entry.
    """
    from .._stores import load_store  # noqa: PLC0415 - not for --help

    store = load_store(config, "keystore", purpose="client")
    alias, _, chain = store.key_entry(config.alias)
    return alias, tuple(chain), other_chains(store, alias)


def other_chains(store: Keystore, alias: str) -> dict[str, tuple[bytes, ...]]:
    """The chains of ``store``'s key entries but ``alias``'s (those whose key reads)."""
    found: dict[str, tuple[bytes, ...]] = {}
    for other in store.key_aliases:
        if other == alias:
            continue
        with contextlib.suppress(MTLSError):
            found[other] = tuple(store.key_entry(other)[2])
    return found


def profile_defaults(profiles: SSLProfileSet) -> tuple[SSLProfile | None, StoreConfig | None]:
    """The default profile (deployment.toml's keystore and truststore), and the truststore
    that profiles without a ``<TrustStore>`` use: what the set was built with."""
    from .._config import SSLProfile  # noqa: PLC0415 - not for --help

    default = profiles.default
    return (default if isinstance(default, SSLProfile) else None, profiles.default_truststore)


def load_profile_set(args: argparse.Namespace, profiles_path: str | None) -> SSLProfileSet:
    """The profile set named on the command line: the XML, or what deployment.toml names.

    No reload thread is started; every profile that loads is kept and every one
    that fails is recorded (``skip_failures=True``).

    Raises:
        UsageError: neither source given.
        ProfileConfigError: the file itself is missing or wrong.
    """
    from .._profiles import SSLProfileSet  # noqa: PLC0415 - not for --help

    base_dir = args.base_dir
    verifier = args.hostname_verifier
    if args.deployment_toml:
        # With both, the given profile file is checked against deployment.toml's
        # settings (hostname verifier, default stores): a candidate before it ships.
        return SSLProfileSet.from_deployment_toml(
            args.deployment_toml,
            base_dir=base_dir,
            product=args.product,
            hostname_verifier=verifier,
            skip_failures=True,
            reload_interval=None,
            profiles_path=profiles_path,
        )
    if profiles_path is None:
        raise UsageError("give the profile file (sslprofiles.xml) or --deployment-toml FILE")
    return SSLProfileSet.from_xml(
        profiles_path,
        base_dir=base_dir,
        hostname_verifier=verifier or "Strict",
        skip_failures=True,
    )


def os_error_message(exc: OSError) -> str:
    """An OS error as one line: the file or option at fault, and what to do."""
    from .._files import InputRefused, WriteRefused  # noqa: PLC0415 - only on an error

    name = exc.filename if exc.filename is not None else None
    if isinstance(exc, WriteRefused):
        return f"{name}: {exc.strerror}"
    if isinstance(exc, InputRefused) and exc.fix is not None:  # a pipe, a device, a NUL
        return f"{name}: {exc.strerror}: {exc.fix}"
    if isinstance(exc, FileNotFoundError) and name is not None:
        return no_such_file(name)
    if isinstance(exc, IsADirectoryError) and name is not None:
        return f"{name} is a directory: give a file"
    if isinstance(exc, PermissionError) and name is not None:
        return (
            f"{name}: permission denied: check the owner and mode of the file and of the "
            "directories above it"
        )
    import errno  # noqa: PLC0415 - only on an error
    import socket  # noqa: PLC0415

    if isinstance(exc, socket.gaierror):
        return (
            f"cannot resolve the host name ({exc.strerror}): give an IP address or a name DNS knows"
        )
    fixes = {
        errno.ELOOP: "a loop of symbolic links: check where the link points",
        errno.EEXIST: "exists, and is not what was expected here: give another path",
        errno.ENOTDIR: "a part of the path is not a directory: check the path",
        errno.ENAMETOOLONG: "the name is too long for the file system: give a shorter path",
        errno.EADDRINUSE: "the address is in use: pick another --port (0 picks a free one)",
        errno.EADDRNOTAVAIL: "the address is not on this machine: give one of its addresses",
        errno.EIO: "the disk or file system failed to read it: check the device and the mount",
    }
    fix = fixes.get(exc.errno or 0)
    if fix is not None:
        return f"{name}: {fix}" if name is not None else f"{exc.strerror}: {fix.split(': ', 1)[-1]}"
    reason = exc.strerror or str(exc)
    return f"{name}: {reason}" if name is not None else reason
