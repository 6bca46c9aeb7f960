"""``mtls serve``: the backend half of the flow, a test server that demands a client
certificate and prints every handshake, accepted or refused, with the reason. Its
identity and trust follow the files (:class:`~mtls.RotatingServerContext`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

from .._errors import WrongPasswordError
from ..testing import HandshakeRecord, MTLSServer
from ._common import (
    EXIT_OK,
    CLIError,
    Output,
    Stopped,
    optional_key_password,
    os_error_message,
    password_error,
    truststore_password,
)
from ._logs import LogCollector
from ._storeio import _sniff, one_password, opening_password


def _describe(record: HandshakeRecord) -> str:
    who = record.client_subject or "no client certificate"
    if record.accepted:
        return f"accepted {record.peer[0]}: {who} ({record.tls_version})"
    # The client's alert: it gave up on us (our certificate, say); else we refused it.
    verb = "failed  " if "client sent alert" in (record.reason or "") else "refused "
    return f"{verb} {record.peer[0]}: {record.reason}"


@contextlib.contextmanager
def _listening(server: MTLSServer, args: argparse.Namespace) -> Iterator[MTLSServer]:
    """``server`` started; a host or port it cannot listen on names the options (the
    error said "cannot resolve the host name" or "Cannot assign requested address",
    naming neither)."""
    try:
        server.start()
    except OSError as exc:
        raise CLIError(f"--host {args.host} --port {args.port}: {os_error_message(exc)}") from None
    with server:
        yield server


def cmd_serve(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls serve``: HTTPS on ``--host:--port`` until Ctrl-C; every GET answers JSON
    naming the client certificate that arrived. A changed keystore or truststore is
    served from the next handshake on (checked every ``--reload-interval`` seconds)."""
    from .._server import RotatingServerContext  # noqa: PLC0415 - not for --help

    out.stop_when_unread = True  # serve | head -3 ends with its reader, quietly, exit 1
    fmt = _sniff(Path(args.keystore))
    password = opening_password(args, Path(args.keystore), fmt)
    key_password = one_password(fmt, password, optional_key_password(args), out)
    interval = args.reload_interval if args.reload_interval > 0 else None
    try:
        rotating = RotatingServerContext(
            args.keystore,
            args.truststore,
            password=password,
            key_password=key_password,
            truststore_password=truststore_password(args, password),
            alias=args.alias,
            require_client_cert=not args.no_client_cert,
            alpn_protocols=["http/1.1"],
            reload_interval=interval,
        )
    except WrongPasswordError as exc:
        raise password_error(exc, args.truststore) from exc
    except ValueError as exc:
        raise CLIError(f"--reload-interval: {exc}") from exc
    with rotating, _listening(MTLSServer(rotating, host=args.host, port=args.port), args) as server:
        stopped: Stopped | None = None  # SIGHUP: said and exit 129 once all is closed
        previous: object = None
        try:
            # kill (SIGTERM), as a script stops a background server, ends it as Ctrl-C
            # does: from before the first line, which a script may wait for and then
            # signal (a signal between the lines and the loop ended it unsaid, in CI).
            with contextlib.suppress(ValueError):  # not the main thread (a test's runner)
                previous = signal.signal(signal.SIGTERM, _interrupt)
            demand = "optional" if args.no_client_cert else "required"
            out.line(
                f"listening on https://{args.host}:{server.port} (client certificate {demand})"
            )
            out.line("every GET answers JSON naming the client certificate; Ctrl-C stops")
            checked = (
                f"the stores are checked for changes every {interval:g} s"
                if interval
                else "the stores are not checked for changes (--reload-interval 0)"
            )
            out.line(f"serving {_identity(rotating)}; {checked}")
            generation, error = rotating.generation, None
            while True:
                with contextlib.suppress(TimeoutError):
                    server.wait_for_handshakes(1, timeout=1.0)
                for record in server._take_handshakes():  # none kept: it may run for months
                    out.line(_describe(record))
                if rotating.generation != generation:
                    generation = rotating.generation
                    out.line(f"reloaded (generation {generation}): serving {_identity(rotating)}")
                if rotating.last_error is not error:
                    if rotating.last_error is not None:
                        out.line(f"reload failed, the last good stays: {rotating.last_error}")
                    elif error is not None:  # the files in service read well again
                        out.line(f"reload error cleared: serving {_identity(rotating)}")
                    error = rotating.last_error
        except KeyboardInterrupt as exc:
            out.line("stopped")
            if isinstance(exc, Stopped):
                stopped = exc  # the server closes as on Ctrl-C first (never mid-exception)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]
    if stopped is not None:
        out.error(f"terminated ({signal.Signals(stopped.signum).name})")
        return 128 + stopped.signum  # as the shell's
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _identity(rotating: object) -> str:
    from .._server import RotatingServerContext  # noqa: PLC0415

    assert isinstance(rotating, RotatingServerContext)
    found = rotating.status().identity
    if found is None or found.subject is None:
        return "the keystore's certificate"
    until = found.not_after.date().isoformat() if found.not_after else "?"
    return f"{found.subject} (until {until})"
