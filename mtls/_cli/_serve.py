"""``mtls serve``: the backend half of the flow, a test server that demands a client
certificate and prints every handshake, accepted or refused, with the reason."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..testing import HandshakeRecord, MTLSServer
from ._common import (
    EXIT_OK,
    Output,
    load_keystore,
    load_truststore,
    optional_key_password,
    store_password,
    truststore_password,
)
from ._logs import LogCollector


def _describe(record: HandshakeRecord) -> str:
    who = record.client_subject or "no client certificate"
    if record.accepted:
        return f"accepted {record.peer[0]}: {who} ({record.tls_version})"
    return f"refused  {record.peer[0]}: {record.reason}"


def cmd_serve(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls serve``: HTTPS on ``--host:--port`` until Ctrl-C; every GET answers JSON
    naming the client certificate that arrived."""
    password = store_password(args, args.keystore)
    keystore = load_keystore(Path(args.keystore), password, optional_key_password(args))
    truststore = load_truststore(Path(args.truststore), truststore_password(args, password))
    server = MTLSServer(
        keystore,
        client_ca=truststore,
        require_client_cert=not args.no_client_cert,
        host=args.host,
        port=args.port,
    )
    with server:
        demand = "optional" if args.no_client_cert else "required"
        out.line(f"listening on https://{args.host}:{server.port} (client certificate {demand})")
        out.line("every GET answers JSON naming the client certificate; Ctrl-C stops")
        seen = 0
        try:
            while True:
                try:
                    records = server.wait_for_handshakes(seen + 1, timeout=1.0)
                except TimeoutError:
                    continue
                for record in records[seen:]:
                    out.line(_describe(record))
                seen = len(records)
        except KeyboardInterrupt:
            out.line("stopped")
    return EXIT_OK
