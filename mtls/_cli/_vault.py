"""The secure-vault lines of ``mtls check``: which aliases resolve, never their values."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._errors import MTLSError
from .._vault import SecureVault
from ._common import Output


def vault_report(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``vault`` key of ``mtls check --json``; ``None`` when the estate has no vault.

    The vault is the one the profile set itself uses by default: the base directory's
    (or the current directory's), with ``--deployment-toml``'s ``[secrets]``.
    """
    home = args.base_dir or os.getcwd()
    try:
        vault = SecureVault.for_estate(home, deployment_toml=args.deployment_toml)
        if vault is None:
            return None
        entries = vault.check()
    except MTLSError as exc:
        return {"home": os.path.abspath(home), "error": str(exc), "aliases": []}
    return {
        "home": os.fspath(vault.home),
        "error": None,
        "aliases": [
            {
                "alias": entry.alias,
                "source": entry.source,
                "encrypted": entry.encrypted,
                "resolves": entry.error is None,
                "error": entry.error,
            }
            for entry in entries
        ],
    }


def render_vault(report: dict[str, Any] | None, out: Output) -> None:
    """One line per alias: resolves, plain text, or why not."""
    if report is None:
        return
    aliases = report["aliases"]
    out.line(
        f"{out.style('secure vault', 'bold')} ({report['home']}): "
        f"{len(aliases)} alias{'' if len(aliases) == 1 else 'es'}"
    )
    if report["error"]:
        out.line(f"  {out.style(report['error'], 'red')}")
    for item in aliases:
        if item["error"]:
            state = out.style(f"does not resolve: {item['error']}", "red")
        elif not item["encrypted"]:
            state = out.style("resolves (plain text: run ciphertool -Dconfigure)", "yellow")
        else:
            state = out.style("resolves", "green")
        out.line(f"  {item['alias']} ({item['source']}): {state}")
    out.line()
