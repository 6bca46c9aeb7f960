"""``main``: the one boundary where exceptions become exit codes and one-line messages.

(:func:`mtls.cli.main` is this function: the console script and ``python -m mtls``.)

=====  ==================================================================
code   meaning
=====  ==================================================================
0      done (``check``: every profile loads; ``probe``: the exchange works)
1      a failure: bad file, wrong password, a profile that does not load,
       a probe that fails (the reason is on stderr, one line)
2      usage: a missing or bad option, or a password that cannot be asked for
130    interrupted (Ctrl-C); 143 and 129 for SIGTERM and SIGHUP, as the shell's
=====  ==================================================================

No traceback is shown unless ``--debug`` is given, and no password is ever
printed: the library keeps passwords out of its messages, and the two places that
echo the command line (usage errors, ``--debug`` tracebacks) are scrubbed of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence

from .._errors import MTLSError, safe_text
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CLIError,
    Output,
    Stopped,
    cli_wording,
    expand_password_sources,
    jdk_cacerts,
    os_error_message,
    remember_argv_secrets,
)
from ._parser import (
    build_parser,
    cacerts_keystore,
    command,
    commands_of,
    dash_values,
    jvm_options,
    keytool_spelling,
)

__all__ = ["main"]


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _stopped_as_by_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP (a service manager, a CI timeout, a closed terminal) end the
    command as Ctrl-C does: its half-written file is removed (it was left beside the
    store, h167) and it exits 128 + the signal. Only where they would kill the process
    (their default handlers) and in the main thread: an application's own handlers,
    or a command run on another thread, are left alone."""
    installed: list[tuple[int, object]] = []
    with contextlib.suppress(ValueError):  # not the main thread
        installed.extend(
            (signum, signal.signal(signum, _stop))
            for signum in (signal.SIGTERM, signal.SIGHUP)
            if signal.getsignal(signum) is signal.SIG_DFL
        )
    try:
        yield
    finally:
        for signum, previous in installed:
            signal.signal(signum, previous)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mtls`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Args:
        argv: the arguments after the program name.

    Returns:
        0 on success, 1 on failure, 2 on usage errors, 130 when interrupted. The
        reason for a non-zero code is one ``mtls: error:`` line on stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if sys.stdout is None:  # started with descriptor 1 closed (mtls ... >&-)
        # Every command writes its result there (a request, a listing, what changed):
        # refused before anything is done, rather than failing half-way.
        if sys.stderr is not None:
            sys.stderr.write(
                "mtls: error: standard output is closed: run with it open (redirect it to "
                "a file, or to /dev/null to discard it)\n"
            )
        return EXIT_USAGE
    remember_argv_secrets(args)
    # Known before parsing, so a usage error can honour them too.
    debug = "--debug" in args
    out = Output(no_color="--no-color" in args)
    try:
        parser = build_parser()
        words, jvm = jvm_options(expand_password_sources(args))
        namespace = parser.parse_args(
            dash_values(cacerts_keystore(keytool_spelling(words), jdk_cacerts))
        )
        if jvm:
            # Not shown: a -J-D option may carry a password (javax.net.ssl.*Password).
            out.warn(
                f"{jvm} -J option{'s' if jvm > 1 else ''} ignored: they are the JVM's, "
                "and mtls runs none"
            )
        run = getattr(namespace, "run", None)
        if run is None:
            raise CLIError(
                f"choose a command: {', '.join(commands_of(parser))} (see 'mtls --help')",
                code=EXIT_USAGE,
            )
        from ._logs import captured_logs  # noqa: PLC0415 - a command runs: not for --help

        with captured_logs(debug, out) as logs, _stopped_as_by_ctrl_c():
            return int(command(run)(namespace, out, logs))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except Stopped as exc:
        out.error(f"terminated ({signal.Signals(exc.signum).name})")
        return 128 + exc.signum
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of a command that runs until stopped went away (mtls serve | head;
        # Output.write: the others finish): stop quietly, as Python's docs advise, and
        # keep the interpreter from complaining while it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except CLIError as exc:
        _report(out, debug, str(exc), exc, args, code=exc.code)
        return exc.code
    except MTLSError as exc:
        _report(out, debug, str(exc), exc, args)
        return EXIT_FAILURE
    except OSError as exc:  # FileNotFoundError and friends (ssl.SSLError is one too)
        _report(out, debug, os_error_message(exc), exc, args)
        return EXIT_FAILURE
    except Exception as exc:
        _report(
            out,
            debug,
            f"unexpected {type(exc).__name__}: {exc} (run again with --debug for the "
            "traceback, and please report it)",
            exc,
            args,
        )
        return EXIT_FAILURE


# The commands with --json (a document on failure too; exit 130 prints none).
_JSON_COMMANDS = frozenset({"list", "check", "probe"})


def _json_wanted(args: Sequence[str]) -> bool:
    """``--json`` given to a command that has it (the first word that is not an option)."""
    command = next((a for a in args if not a.startswith("-")), None)
    return "--json" in args and command in _JSON_COMMANDS


def _error_type(exc: BaseException) -> str:
    """The class a script can tell failures by: the library's own error when the CLI
    only reworded it (a wrong password is ``WrongPasswordError``, not ``CLIError``)."""
    cause = exc.__cause__
    if isinstance(exc, CLIError) and isinstance(cause, MTLSError):
        return type(cause).__name__
    return type(exc).__name__


def _report(
    out: Output,
    debug: bool,
    message: str,
    exc: BaseException,
    args: Sequence[str],
    *,
    code: int = EXIT_FAILURE,
) -> None:
    if debug:
        import traceback  # noqa: PLC0415 - only --debug shows one

        out.raw_stderr(traceback.format_exc())
    message = cli_wording(message)
    out.error(message)
    if _json_wanted(args) and not out.json_written:
        # A script reading stdout gets a document whatever failed (a file that did
        # not load, a bad option), as it does for a failed connection.
        out.json(
            {
                "ok": False,
                "error": {
                    "kind": "usage" if code == EXIT_USAGE else "error",
                    "type": _error_type(exc),
                    "message": safe_text(" ".join(message.split())),  # as on stderr
                },
            }
        )
