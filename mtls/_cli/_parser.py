"""The argparse tree. Long options, plus keytool's single-dash spellings as aliases."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any, NoReturn

from .._types import HOSTNAME_VERIFIERS, normalize_hostname_verifier
from .._version import __version__
from ._common import UsageError, glued_shown, scrub, write_type

#: A subcommand's function as ``module:function`` of this package, imported only when
#: it runs: ``mtls --help`` and usage errors never load the stores or the profile engine.
Command = str


def command(spec: Command) -> Callable[..., int]:
    """The function a parsed command line runs (``"_stores:cmd_list"`` -> ``cmd_list``)."""
    module, _, name = spec.partition(":")
    func: Callable[..., int] = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return func


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting."""
        # argparse quotes stray arguments back ("unrecognized arguments: ..."): hide
        # any password among them (known ones by scrub; the value of an option no tool
        # has, whatever its spelling, by _stray).
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            message = prefix + _stray(message[len(prefix) :].split(" "))
        raise UsageError(scrub(f"{message} (see '{self.prog} --help')"))


def _stray(words: list[str]) -> str:
    """Unrecognized arguments as a message shows them: an unknown option by name, and
    its value, the word after it or after its ``=``, as ``****`` (a mistyped password
    option's value is the password: --pssword, --pin, --token...)."""
    shown: list[str] = []
    after_option = False
    for word in words:
        glued = glued_shown(word)
        if glued is not None:  # a password glued on: as remember_argv_secrets shows it
            shown.append(glued)
            after_option = False
        elif word.startswith("-") and len(word) > 1:
            name, sep, value = word.partition("=")
            shown.append(f"{name}=****" if sep and value else word)
            after_option = not sep
        else:
            shown.append("****" if after_option and word else word)
            after_option = False
    return " ".join(shown)


def _key_type(value: str) -> str:
    for name in ("RSA", "EC", "Ed25519"):
        if value.casefold() == name.casefold():
            return name
    if value.casefold() == "eddsa":  # keytool's name for Ed25519 keys
        return "Ed25519"
    raise argparse.ArgumentTypeError(f"must be RSA, EC or Ed25519, not {value!r}")


def _hostname_verifier(value: str) -> str:
    try:
        return normalize_hostname_verifier(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bounded(low: float, high: float, *, whole: bool, unit: str) -> Any:
    """An argparse type: a finite number from ``low`` to ``high`` (argparse names the
    option in its message, and exits 2)."""

    def parse(value: str) -> float | int:
        try:
            number: float | int = int(value) if whole else float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not low <= number <= high:  # NaN and the infinities fail this too
            # Never scientific notation (3.16224e+07): whole bounds with separators.
            span = tuple(f"{b:,}" if whole or b == int(b) else f"{b:g}" for b in (low, high))
            raise argparse.ArgumentTypeError(
                f"must be from {span[0]} to {span[1]}{' ' if unit else ''}{unit}, not {value}"
            )
        return number

    return parse


def _common_options() -> argparse.ArgumentParser:
    # Accepted after the subcommand too; SUPPRESS keeps the top-level value otherwise.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and logs"
    )
    common.add_argument(
        "--no-color", action="store_true", default=argparse.SUPPRESS, help="no ANSI colours"
    )
    return common


class _OnePassword(argparse.Action):
    """A password option, given once: ``--password a --storepass b`` (two spellings of
    one option) is refused rather than the last silently winning. The same value twice
    is taken (a script that repeats itself). The values are never shown."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest, None)
        if given is not None and given != values:
            raise UsageError(
                f"{option_string} gives a second, different {self.metavar or 'value'} for "
                f"{' / '.join(self.option_strings)}: give it once"
            )
        setattr(namespace, self.dest, values)


def _store_password_options(parser: argparse.ArgumentParser, *, key: bool = True) -> None:
    parser.add_argument(
        "--password",
        "--storepass",
        "-storepass",
        action=_OnePassword,
        dest="password",
        metavar="PASSWORD",
        help="the store password (else $MTLS_STORE_PASSWORD, else a prompt on a terminal)",
    )
    if key:
        parser.add_argument(
            "--key-password",
            "--keypass",
            "-keypass",
            action=_OnePassword,
            dest="key_password",
            metavar="PASSWORD",
            help="the key password when it differs (else $MTLS_KEY_PASSWORD, else the store "
            "password)",
        )


def _new_password_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--new-password", "-new", dest="new_password", action=_OnePassword,
        metavar="PASSWORD",
        help=f"{help_text} (else $MTLS_NEW_PASSWORD, else a prompt, asked twice)",
    )  # fmt: skip


def _keystore_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--keystore", "-keystore", dest="keystore", metavar="FILE", required=True, help=help_text
    )


def _store_type_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--store-type",
        "--storetype",
        "-storetype",
        dest="store_type",
        type=write_type,
        metavar="TYPE",
        help=help_text,
    )


def _content_type_option(parser: argparse.ArgumentParser) -> None:
    """keytool's ``-storetype`` where mtls reads a store: accepted, and the file's
    content says what it is (as Java's JKS and PKCS12 types read each other's files)."""
    parser.add_argument(
        "--store-type", "--storetype", "-storetype", dest="store_type", metavar="TYPE",
        help="accepted for keytool habits (the file's content says what it is)",
    )  # fmt: skip


def _start_date_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--start-date", "-startdate", dest="start_date", metavar="WHEN",
        help="when the certificate starts to be valid, as keytool's -startdate: -1d, "
        f"+1y+6m (from now), yyyy/mm/dd [HH:MM:SS] or HH:MM:SS, local time (default: {default})",
    )  # fmt: skip


def _sigalg_option(parser: argparse.ArgumentParser, whose: str) -> None:
    parser.add_argument(
        "--sigalg", "-sigalg", dest="sigalg", metavar="ALG",
        help=f"{whose} signature algorithm, by its Java name: SHA256withRSA, SHA384withECDSA, "
        "RSASSA-PSS, Ed25519, ... (default: keytool's for the key)",
    )  # fmt: skip


def _force_option(parser: argparse.ArgumentParser) -> None:
    """``--force`` for a command writing a certificate or request to a file: replace a
    store (or a file holding a private key) there, which it refuses otherwise."""
    parser.add_argument(
        "--force", action="store_true",
        help="replace the output file even if it is a keystore (never the one read)",
    )  # fmt: skip


def _profile_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-dir",
        metavar="HOME",
        help="where relative <Location> paths start (WSO2: the product home); default: here",
    )
    parser.add_argument(
        "--deployment-toml",
        metavar="FILE",
        help="read the profile file, hostname verifier and default stores from deployment.toml",
    )
    parser.add_argument(
        "--product",
        choices=("apim", "mi"),
        help="the WSO2 product that reads --deployment-toml: apim (API Manager) or mi "
        "(Micro Integrator), whose rules place store file names; default: detected from "
        "its tables, then from where it sits (repository/conf/ or conf/)",
    )
    parser.add_argument(
        "--hostname-verifier",
        type=_hostname_verifier,
        metavar="MODE",
        help=f"one of {', '.join(HOSTNAME_VERIFIERS)} (default: deployment.toml's, else Strict)",
    )


def _add(
    sub: Any, name: str, func: Command, help_text: str, *, aliases: tuple[str, ...] = ()
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        aliases=list(aliases),
        help=help_text,
        description=help_text,
        parents=[_common_options()],
        allow_abbrev=False,
    )
    parser.set_defaults(run=func)
    if name in _KEYTOOL_COMMANDS.values() and name not in ("import", "convert"):
        # keytool takes -noprompt with any command (import and convert give it a
        # meaning): scripts pass it everywhere, and were refused with exit 2 (h234).
        parser.add_argument("-noprompt", action="store_true", help=argparse.SUPPRESS)
    return parser


# keytool's commands, by the mtls command that does each (None: mtls has none;
# importkeystore: convert's alias that behaves as keytool, merging and PKCS12 by default).
_KEYTOOL_COMMANDS: dict[str, str | None] = {
    "genkeypair": "genkey", "genkey": "genkey", "importcert": "import", "import": "import",
    "exportcert": "export", "export": "export", "list": "list", "delete": "delete",
    "importkeystore": "importkeystore", "certreq": "certreq", "changealias": "changealias",
    "gencert": "gencert", "genseckey": None, "importpass": None, "keypasswd": "keypasswd",
    "printcert": "printcert", "printcertreq": "printcertreq", "printcrl": "printcrl",
    "storepasswd": "storepasswd",
    "showinfo": None,
}  # fmt: skip


def keytool_spelling(args: list[str]) -> list[str]:
    """``args`` with a command written as keytool writes it (``mtls -list -keystore
    a.jks``) read as the mtls command (``list``); the options already take keytool's
    spellings.

    Raises:
        UsageError: a keytool command mtls does not have (``-changealias``), saying so.
    """
    for at, word in enumerate(args):
        if word in ("--debug", "--no-color"):
            continue
        if word == "-noprompt":  # keytool takes it before the command too (h236)
            rest = [*args[:at], *args[at + 1 :]]
            spelled = keytool_spelling(rest)
            return args if spelled is rest else [*spelled, word]
        name = _keytool_name(word)
        if name not in _KEYTOOL_COMMANDS:
            if word.startswith("-"):
                # keytool takes options before its command (keytool -keystore gw.p12
                # -list, keytool -v -list): the command, found later, goes first (h240).
                later = next(
                    (
                        i
                        for i in range(at + 1, len(args))
                        if _keytool_name(args[i]) in _KEYTOOL_COMMANDS
                    ),
                    None,
                )
                if later is not None:
                    return keytool_spelling(
                        [*args[:at], args[later], *args[at:later], *args[later + 1 :]]
                    )
            return args
        command = _KEYTOOL_COMMANDS[name]
        if command is None:
            raise UsageError(
                f"mtls has no keytool {word}: use keytool for it (mtls does genkey, certreq, "
                "gencert, import, export, list, delete, convert, storepasswd, keypasswd, "
                "changealias, printcert, printcertreq and printcrl; see 'mtls --help')"
            )
        return [*args[:at], command, *args[at + 1 :]]
    return args


#: Options whose values may start with "-" (keytool's -startdate -1d): argparse would
#: read such a value as an option.
_DASH_VALUES = frozenset({"-startdate", "--start-date"})


def dash_values(args: list[str]) -> list[str]:
    """``args`` with ``-startdate -1d`` written ``-startdate=-1d``, as argparse reads it."""
    out: list[str] = []
    at = 0
    while at < len(args):
        word = args[at]
        if word in _DASH_VALUES and at + 1 < len(args) and args[at + 1].startswith("-"):
            out.append(f"{word}={args[at + 1]}")
            at += 2
            continue
        out.append(word)
        at += 1
    return out


#: The commands keytool takes -cacerts with (the JDK's own truststore as -keystore).
_CACERTS_COMMANDS = frozenset(
    {"list", "export", "exportcert", "import", "importcert", "delete", "storepasswd", "changealias"}
)


def cacerts_keystore(args: list[str], locate: Callable[[], str]) -> list[str]:
    """``args`` with keytool's ``-cacerts`` written as ``--keystore`` and the JDK's
    cacerts file (``locate()``), on the commands keytool takes it with.

    Raises:
        UsageError: ``-cacerts`` with ``-keystore`` or ``-storetype`` (keytool refuses
            them together), or with a command keytool does not take it with.
    """
    flags = [word for word in args if word in ("-cacerts", "--cacerts")]
    if not flags:
        return args
    name = next((w for w in args if w not in ("--debug", "--no-color", "-noprompt")), "")
    if name not in _CACERTS_COMMANDS:
        raise UsageError(
            "-cacerts (the JDK's cacerts file) goes with list, export, import, delete, "
            "storepasswd and changealias, as keytool takes it: give --keystore FILE"
        )
    given = {word.partition("=")[0] for word in args}
    if given & {"-keystore", "--keystore", "-storetype", "--storetype", "--store-type"}:
        raise UsageError(
            "-cacerts names the keystore (the JDK's cacerts file): give -keystore or "
            "-cacerts, not both, and no -storetype (keytool refuses them together too)"
        )
    rest = [word for word in args if word not in ("-cacerts", "--cacerts")]
    return [*rest, "--keystore", locate()]


def _keytool_name(word: str) -> str:
    """``word`` as a keytool command's name (``-list`` -> ``list``), or ``""``."""
    return word[1:].lower() if word.startswith("-") and not word.startswith("--") else ""


def jvm_options(args: list[str]) -> tuple[list[str], int]:
    """``args`` without keytool's ``-J`` options (the JVM's: ``-J-Duser.language=en``),
    and how many there were: keytool takes them anywhere, mtls runs no JVM."""
    kept = [word for word in args if not (word.startswith("-J") and len(word) > 2)]
    return kept, len(args) - len(kept)


def commands_of(parser: argparse.ArgumentParser) -> list[str]:
    """The commands ``parser`` takes, as ``mtls --help`` lists them (aliases, such
    as keytool's spellings, left out)."""
    for action in parser._actions:  # argparse keeps its subcommands only there
        if isinstance(action, argparse._SubParsersAction):
            return [choice.dest for choice in action._choices_actions]
    return []


def build_parser() -> Parser:
    """The ``mtls`` parser with every subcommand."""
    parser = Parser(
        prog="mtls",
        description="Mutual TLS the way Java gateways do it: keytool's store operations, "
        "WSO2 SSL profile checks, a live probe, and a demo.",
        epilog="Passwords: --password/--key-password, or MTLS_STORE_PASSWORD/MTLS_KEY_PASSWORD, "
        "or a hidden prompt on a terminal. Exit codes: 0 ok, 1 failure, 2 usage, 130 interrupted.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"mtls {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    parser.add_argument("--no-color", action="store_true", help="no ANSI colours")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    genkey = _add(
        sub,
        "genkey",
        "_stores:cmd_genkey",
        "generate a key pair and self-signed certificate (keytool -genkeypair)",
        aliases=("genkeypair",),
    )
    _keystore_option(genkey, "the keystore to create or add to")
    genkey.add_argument(
        "--alias",
        "-alias",
        default="mykey",
        help="the new entry's alias (default: mykey, as keytool)",
    )
    genkey.add_argument(
        "--dname",
        "-dname",
        metavar="DN",
        help='subject, e.g. "CN=localhost, O=Acme" (else asked for on a terminal, as keytool does)',
    )
    genkey.add_argument(
        "--key-type",
        "--keyalg",
        "-keyalg",
        dest="key_type",
        type=_key_type,
        default="RSA",
        metavar="TYPE",
        help="RSA (default), EC or Ed25519",
    )
    genkey.add_argument(
        "--key-size", "-keysize", dest="key_size", type=_bounded(1, 16384, whole=True, unit="bits"),
        help="RSA key size (default 2048); for EC, as keytool, 256, 384 or 521 names the curve",
    )  # fmt: skip
    genkey.add_argument(
        "--curve", "-groupname", dest="curve",
        help="EC curve: secp256r1 (default), secp384r1, secp521r1",
    )  # fmt: skip
    genkey.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="subject alternative name: DNS:host, IP:addr, email:x (repeat, or comma-separate)",
    )
    genkey.add_argument(
        "--ext", "-ext", dest="ext", action="append", default=[], metavar="EXT",
        help="keytool's extensions: bc:c (a CA's key pair), ku=..., eku=..., "
        "san=dns:localhost,ip:127.0.0.1 (repeat)",
    )  # fmt: skip
    genkey.add_argument(
        "--days", "--validity", "-validity", dest="days",
        type=_bounded(1, 2_900_000, whole=True, unit="days"), default=365,
        help="validity in days (default 365)",
    )  # fmt: skip
    _start_date_option(genkey, "now, less five minutes")
    _sigalg_option(genkey, "the self-signature's")
    _store_type_option(genkey, "JKS or PKCS12 for a new store (default: .jks is JKS, else PKCS12)")
    _store_password_options(genkey)

    export = _add(
        sub,
        "export",
        "_stores:cmd_export",
        "write an entry's certificate, DER unless --rfc (keytool -exportcert)",
        aliases=("exportcert",),
    )
    _keystore_option(export, "the keystore or truststore")
    export.add_argument(
        "--alias", "-alias", default="mykey", help="the entry (default: mykey, as keytool)"
    )
    # Tutorials pass -keypass to every command; an entry's certificate needs none.
    export.add_argument("-keypass", dest="ignored_keypass", help=argparse.SUPPRESS)
    export.add_argument(
        "--file", "-file", dest="file", metavar="OUT", help="the output file (default: stdout)"
    )
    export.add_argument("--rfc", "-rfc", action="store_true", help="PEM instead of DER")
    _force_option(export)
    _content_type_option(export)
    _store_password_options(export, key=False)

    certreq = _add(
        sub,
        "certreq",
        "_certs:cmd_certreq",
        "write a certificate signing request from a key entry, for its renewal (keytool -certreq)",
    )
    _content_type_option(certreq)
    _keystore_option(certreq, "the keystore holding the key")
    certreq.add_argument(
        "--alias", "-alias", help="the key entry (needed when the store has several)"
    )
    certreq.add_argument(
        "--file", "-file", dest="file", metavar="OUT",
        help="the request's file, PEM (default: stdout)",
    )  # fmt: skip
    certreq.add_argument(
        "--dname", "-dname", metavar="DN",
        help="the subject to ask for (default: the entry's certificate's subject)",
    )  # fmt: skip
    certreq.add_argument(
        "--san", action="append", default=[], metavar="NAME",
        help="subject alternative name to ask for: DNS:host, IP:addr, email:x (repeat; "
        "default: the entry's certificate's names)",
    )  # fmt: skip
    certreq.add_argument(
        "-ext", dest="ext", action="append", default=[], metavar="san=...",
        help="keytool's form: -ext san=dns:localhost,ip:127.0.0.1",
    )  # fmt: skip
    _sigalg_option(certreq, "the request's")
    _force_option(certreq)
    _store_password_options(certreq)

    gencert = _add(
        sub,
        "gencert",
        "_certs:cmd_gencert",
        "sign a certificate request with a key entry, as a CA (keytool -gencert)",
    )
    _content_type_option(gencert)
    _keystore_option(gencert, "the keystore holding the CA's key")
    gencert.add_argument(
        "--alias", "-alias", help="the CA's key entry (needed when the store has several)"
    )
    gencert.add_argument(
        "--infile", "-infile", metavar="REQUEST",
        help="the request, PEM or DER (default: standard input)",
    )  # fmt: skip
    gencert.add_argument(
        "--outfile", "-outfile", metavar="OUT",
        help="the certificate and the CA's chain (default: standard output)",
    )  # fmt: skip
    gencert.add_argument("--rfc", "-rfc", action="store_true", help="PEM instead of DER")
    _force_option(gencert)
    gencert.add_argument(
        "--validity", "--days", "-validity", dest="validity", metavar="DAYS", default=90,
        type=_bounded(1, 36_525, whole=True, unit="days"),
        help="validity in days (default 90, as keytool)",
    )  # fmt: skip
    _start_date_option(gencert, "now")
    _sigalg_option(gencert, "the certificate's")
    gencert.add_argument(
        "--dname", "-dname", metavar="DN", help="the subject (default: the request's)"
    )
    gencert.add_argument(
        "--ext", "-ext", dest="ext", action="append", default=[], metavar="EXT",
        help="keytool's extensions: bc:c, bc=ca:true,pathlen:0, ku=digitalSignature,..., "
        "eku=serverAuth,clientAuth, san=dns:host,ip:addr, honored=all (repeat; the "
        "request's SAN is kept unless san= is given)",
    )  # fmt: skip
    _store_password_options(gencert)

    printcert = _add(
        sub,
        "printcert",
        "_certs:cmd_printcert",
        "print the certificates of a file, or of a TLS server (keytool -printcert)",
    )
    printcert.add_argument(
        "--file", "-file", dest="file", metavar="FILE",
        help="PEM, DER (one or several) or PKCS#7 (default: standard input)",
    )  # fmt: skip
    printcert.add_argument(
        "--sslserver", "-sslserver", metavar="HOST[:PORT]",
        help="the chain this server sends (port 443 by default; not verified, no client "
        "certificate sent: mtls probe checks a connection)",
    )  # fmt: skip
    printcert.add_argument(
        "--timeout", type=_bounded(0.001, 86_400, whole=False, unit="seconds"), default=5.0,
        metavar="SECONDS", help="for --sslserver (default 5)",
    )  # fmt: skip
    printcert.add_argument("--rfc", "-rfc", action="store_true", help="the certificates as PEM")
    printcert.add_argument(
        "-v", dest="verbose", action="store_true", help="accepted for keytool habits"
    )
    printcert.add_argument("--json", action="store_true", help="JSON for scripts")

    for name, func, what in (
        ("printcertreq", "_certs:cmd_printcertreq",
         "print a certificate request, its signature checked (keytool -printcertreq)"),
        ("printcrl", "_certs:cmd_printcrl",
         "print a certificate revocation list; exit 1 past its next update "
         "(keytool -printcrl)"),
    ):  # fmt: skip
        printer = _add(sub, name, func, what)
        printer.add_argument(
            "--file", "-file", dest="file", metavar="FILE",
            help="PEM or DER (default: standard input)",
        )  # fmt: skip
        printer.add_argument(
            "-v", dest="verbose", action="store_true", help="accepted for keytool habits"
        )
        printer.add_argument("--json", action="store_true", help="JSON for scripts")
    printer.add_argument(  # printcrl's: the check a profile's crls= makes
        "--truststore", metavar="FILE",
        help="check the list as a profile would: signed by one of its certificates, in "
        "date, usable by OpenSSL (exit 1 when not)",
    )  # fmt: skip
    printer.add_argument(
        "--truststore-password", metavar="PASSWORD",
        help="else $MTLS_TRUSTSTORE_PASSWORD, else none (a JKS truststore opens without one)",
    )  # fmt: skip

    imp = _add(
        sub,
        "import",
        "_stores:cmd_import",
        "trust a certificate, or install a CA's reply over a key entry's certificate; "
        "creates the truststore when absent (keytool -importcert)",
        aliases=("importcert",),
    )
    imp.add_argument("--file", "-file", dest="file", required=True, metavar="CERT",
                     help="the certificate, DER or PEM; for a key entry's alias, the CA's "
                     "reply: PEM or DER certificates, or a PKCS#7 bundle (.p7b)")  # fmt: skip
    imp.add_argument(
        "--alias", "-alias", required=True,
        help="the alias to trust it under, or the key entry the reply is for",
    )  # fmt: skip
    _keystore_option(imp, "the truststore (or keystore) to add it to")
    imp.add_argument(
        "--ca", action="append", default=[], metavar="FILE",
        help="for a reply: CA certificates (PEM, DER, .p7b) that complete its chain "
        "(repeat); the store's trusted entries are used too",
    )  # fmt: skip
    imp.add_argument("--replace", action="store_true", help="overwrite an existing alias")
    imp.add_argument(
        "--noprompt", "-noprompt", "-trustcacerts", dest="noprompt", action="store_true",
        help="accepted for keytool habits; mtls never asks",
    )  # fmt: skip
    _store_type_option(imp, "JKS or PKCS12 for a new store (default: .jks is JKS, else PKCS12)")
    _store_password_options(imp)

    delete = _add(
        sub,
        "delete",
        "_stores:cmd_delete",
        "remove an entry from a JKS or PKCS12 store, other entries as they were (keytool -delete)",
    )
    _content_type_option(delete)
    delete.add_argument("--alias", "-alias", required=True, help="the entry to remove")
    _keystore_option(delete, "the keystore or truststore")
    _store_password_options(delete)

    storepasswd = _add(
        sub,
        "storepasswd",
        "_stores:cmd_storepasswd",
        "change a JKS or PKCS12 store's password (keytool -storepasswd)",
    )
    _content_type_option(storepasswd)
    _keystore_option(storepasswd, "the keystore or truststore")
    _store_password_options(storepasswd)
    _new_password_option(storepasswd, "the new store password")

    keypasswd = _add(
        sub,
        "keypasswd",
        "_stores:cmd_keypasswd",
        "change one key entry's password in a JKS store (keytool -keypasswd)",
    )
    _content_type_option(keypasswd)
    keypasswd.add_argument("--alias", "-alias", required=True, help="the key entry")
    _keystore_option(keypasswd, "the JKS keystore")
    _store_password_options(keypasswd)
    _new_password_option(keypasswd, "the new key password")

    changealias = _add(
        sub,
        "changealias",
        "_stores:cmd_changealias",
        "rename an entry of a JKS or PKCS12 store, keys untouched (keytool -changealias)",
    )
    _content_type_option(changealias)
    changealias.add_argument("--alias", "-alias", required=True, help="the entry to rename")
    changealias.add_argument(
        "--dest-alias", "--destalias", "-destalias", dest="dest_alias", required=True,
        metavar="ALIAS", help="its new alias",
    )  # fmt: skip
    _keystore_option(changealias, "the keystore or truststore")
    _store_password_options(changealias)

    lst = _add(
        sub,
        "list",
        "_stores:cmd_list",
        "list entries: kinds, subjects, issuers, SANs, expiry, SHA-256 (keytool -list -v)",
    )
    _keystore_option(lst, "the keystore or truststore (JKS, JCEKS, PKCS12, PEM, DER)")
    lst.add_argument("--alias", "-alias", help="only this entry")
    lst.add_argument(
        "-v", dest="verbose", action="store_true",
        help="accepted for keytool habits (the listing is always detailed)",
    )  # fmt: skip
    lst.add_argument(
        "--rfc", "-rfc", dest="rfc", action="store_true",
        help="each certificate in PEM too, as keytool -list -rfc prints them",
    )  # fmt: skip
    lst.add_argument("--json", action="store_true", help="JSON for scripts")
    _content_type_option(lst)
    _store_password_options(lst)

    convert = _add(
        sub,
        "convert",
        "_stores:cmd_convert",
        "convert a store to PKCS12, JKS or PEM (keytool -importkeystore)",
        aliases=("importkeystore",),
    )
    convert.add_argument(
        "--keystore", "-srckeystore", dest="keystore", metavar="FILE",
        required=True, help="the source store",
    )  # fmt: skip
    convert.add_argument(
        "--to", "-deststoretype", dest="to", type=write_type, metavar="TYPE",
        help="PKCS12, JKS or PEM (required; as importkeystore: PKCS12, keytool's default)",
    )  # fmt: skip
    convert.add_argument(
        "-srcstoretype", dest="source_type", metavar="TYPE",
        help="accepted for keytool habits (the file's content says what it is)",
    )  # fmt: skip
    convert.add_argument(
        # keytool -importkeystore: -keystore, -storepass and -keypass name the
        # destination (as -destkeystore, -deststorepass, -destkeypass do).
        "--out", "-destkeystore", "-keystore", dest="out", required=True, metavar="FILE",
        help="the new store",
    )  # fmt: skip
    convert.add_argument("--alias", "-srcalias", dest="alias", help="convert only this entry")
    convert.add_argument(
        "--dest-alias", "--destalias", "-destalias", dest="dest_alias", metavar="ALIAS",
        help="with --alias: the entry's alias in --out (keytool -importkeystore -destalias)",
    )  # fmt: skip
    existing = convert.add_mutually_exclusive_group()
    existing.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    existing.add_argument(
        "--merge", action="store_true",
        help="add the entries to --out if it exists, as keytool -importkeystore does "
        "(the default when run as importkeystore)",
    )  # fmt: skip
    convert.add_argument(
        "--overwrite-aliases", "-noprompt", dest="overwrite_aliases", action="store_true",
        help="when merging, replace entries of --out with the same alias (else refused)",
    )  # fmt: skip
    convert.add_argument(
        "--password", "--storepass", "-srcstorepass", dest="password",
        action=_OnePassword, metavar="PASSWORD",
        help="the source store password (else $MTLS_STORE_PASSWORD)",
    )  # fmt: skip
    convert.add_argument(
        "--key-password", "--keypass", "-srckeypass", dest="key_password",
        action=_OnePassword, metavar="PASSWORD",
        help="the source key password (else $MTLS_KEY_PASSWORD)",
    )  # fmt: skip
    convert.add_argument(
        "--out-key-password", "-destkeypass", "-keypass", dest="out_key_password",
        action=_OnePassword,
        metavar="PASSWORD",
        help="JKS output: the key entries' password (else the new store's password)",
    )  # fmt: skip
    convert.add_argument(
        "--out-password", "-deststorepass", "-storepass", dest="out_password",
        action=_OnePassword,
        metavar="PASSWORD",
        help='the new store\'s password (else $MTLS_OUT_PASSWORD, else the source\'s; "" '
        "writes an unencrypted PEM key)",
    )  # fmt: skip

    check = _add(
        sub,
        "check",
        "_check:cmd_check",
        "load every SSL profile and tabulate servers, stores, certificates and problems",
    )
    check.add_argument("profiles", nargs="?", metavar="PROFILES.xml", help="the profile file")
    _profile_source_options(check)
    check.add_argument("--json", action="store_true", help="JSON for scripts")
    check.add_argument(
        "--fail-within",
        type=_bounded(0, 36_500, whole=False, unit="days"),
        metavar="DAYS",
        help="exit 1 when a client certificate (its chain too) expires within DAYS "
        "(decimals allowed): a deploy or CI gate",
    )
    check.add_argument(
        "--anchors",
        action="store_true",
        help="with --fail-within: also the trust anchors of every truststore a profile uses",
    )
    check.add_argument(
        "--mtls-only",
        action="store_true",
        help="the file is read by mtls only: what WSO2 cannot load (a <Type> Java does "
        "not know, a missing <Type> or <KeyPassword>, ...) is a note, not a failure",
    )

    probe = _add(
        sub,
        "probe",
        "_probe:cmd_probe",
        "connect as the profile set would and explain what happens",
    )
    probe.add_argument("url", metavar="URL", help="https://host:port/path (port 443 by default)")
    probe.add_argument("--profiles", metavar="FILE", help="the profile file (sslprofiles.xml)")
    _profile_source_options(probe)
    probe.add_argument("--client-id", metavar="ID", help="WSO2's ssl.profile.client.identifier")
    probe.add_argument("--keystore", "-keystore", metavar="FILE",
                       help="our identity, instead of --profiles")  # fmt: skip
    probe.add_argument("--truststore", metavar="FILE", help="who we trust, instead of --profiles")
    probe.add_argument("--alias", "-alias", help="the key entry when the keystore has several")
    _store_password_options(probe)
    probe.add_argument(
        "--truststore-password", metavar="PASSWORD",
        help="else $MTLS_TRUSTSTORE_PASSWORD, else the store password, else none",
    )  # fmt: skip
    probe.add_argument(
        "--timeout", type=_bounded(0.001, 86_400, whole=False, unit="seconds"), default=5.0,
        metavar="SECONDS",
        help="for connecting, the handshake and the answer (default 5)",
    )  # fmt: skip
    probe.add_argument(
        "--require-client-auth",
        action="store_true",
        help="exit 1 unless the server asks for a client certificate, we send one and it "
        "lets us in: a gate that mutual TLS is enforced",
    )
    probe.add_argument("--json", action="store_true", help="JSON for scripts")

    serve = _add(
        sub,
        "serve",
        "_serve:cmd_serve",
        "run a test backend that demands a client certificate and prints every handshake",
    )
    _keystore_option(serve, "the backend's identity")
    serve.add_argument(
        "--alias", "-alias",
        help="the key entry to serve, when the keystore holds several",
    )  # fmt: skip
    serve.add_argument(
        "--truststore", required=True, metavar="FILE",
        help="who may connect: the client certificates or their CAs",
    )  # fmt: skip
    _store_password_options(serve)
    serve.add_argument(
        "--truststore-password", metavar="PASSWORD",
        help="else $MTLS_TRUSTSTORE_PASSWORD, else the store password",
    )  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="the address (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_bounded(0, 65535, whole=True, unit=""), default=8443,
        help="0 picks a free port (default 8443)",
    )  # fmt: skip
    serve.add_argument(
        "--no-client-cert", action="store_true",
        help="ask for a client certificate but let clients in without one",
    )  # fmt: skip
    serve.add_argument(
        "--reload-interval", type=_bounded(0, 31_622_400, whole=False, unit="seconds"),
        default=5.0, metavar="SECONDS",
        help="check the keystore and truststore for changes this often; 0: never "
        "(default 5)",
    )  # fmt: skip

    demo = _add(
        sub,
        "demo",
        "_demo:cmd_demo",
        "the seed flow end to end: stores, profile, a backend, a rotation (no JDK needed)",
    )
    demo.add_argument("--dir", metavar="DIR", help="keep the files here (default: a temp dir)")
    for name, command_parser in sub.choices.items():
        if name in _KEYTOOL_COMMANDS and "-v" not in command_parser._option_string_actions:
            # keytool takes -v (verbose) with every command: WSO2's own "keytool -import
            # -v -trustcacerts ..." was refused, and genkey read it as -validity (h240).
            command_parser.add_argument("-v", action="store_true", help=argparse.SUPPRESS)
    return parser
