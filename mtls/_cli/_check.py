"""``mtls check``: load every profile as the gateway would, and tabulate what it serves.

Profiles load with ``skip_failures=True``, so one bad profile does not hide the
others: each failing profile is a row with its error, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
from pathlib import Path
from typing import Any

from cryptography import x509

from .. import _x509
from .._config import SSLProfile, StoreConfig
from .._context import LOCALHOST_NAMES
from .._errors import MTLSError
from .._profiles import SSLProfileSet
from .._stores import Truststore, load_store
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXPIRY_WARNING_DAYS,
    LogCollector,
    Output,
    UsageError,
    days_left,
    display_path,
    lacks_client_auth,
    now,
)
from ._vault import render_vault, vault_report

# Library warnings that the table already shows in its own words.
_SHOWN_ELSEWHERE = ("skipped (skip_failures)", 'novalidatecert="true"')


def load_profile_set(args: argparse.Namespace, profiles_path: str | None) -> SSLProfileSet:
    """The profile set named on the command line: the XML, or what deployment.toml names.

    No reload thread is started; every profile that loads is kept and every one
    that fails is recorded (``skip_failures=True``).

    Raises:
        UsageError: neither source given.
        ProfileConfigError: the file itself is missing or wrong.
    """
    base_dir = args.base_dir
    verifier = args.hostname_verifier
    if args.deployment_toml:
        # With both, the given profile file is checked against deployment.toml's
        # settings (hostname verifier, default stores): a candidate before it ships.
        return SSLProfileSet.from_deployment_toml(
            args.deployment_toml,
            base_dir=base_dir,
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


def strip_profile_prefix(message: str, servers: list[str]) -> str:
    """The error without the ``profile host:port: `` prefix a table row already shows."""
    prefix = f"profile {', '.join(servers)}"
    if message.startswith(prefix):
        rest = message[len(prefix) :]
        if rest.startswith(": "):
            return rest[2:]
        if rest.startswith(" (client"):
            return rest.split("): ", 1)[-1]
    return message


def _file_of(entry: dict[str, Any], role: str) -> str | None:
    for item in entry.get("files") or ():
        if item["role"] == role:
            return str(item["path"])
    return None


def presented(config: StoreConfig) -> tuple[str, x509.Certificate]:
    """The alias and certificate of the key entry a keystore configuration presents.

    Raises:
        MTLSError: the store does not load, or has no such key entry.
        ValueError: the certificate cannot be parsed.
    """
    store = load_store(config, "keystore")
    alias, _, chain = store.key_entry(config.alias)
    return alias, _x509.load_cert(chain[0])


class _Stores:
    """Stores read for the table, once each: a thousand profiles often share two files."""

    def __init__(self) -> None:
        self._leaves: dict[StoreConfig, x509.Certificate] = {}
        self._trust: dict[StoreConfig, Truststore] = {}

    def client_leaf(self, config: StoreConfig) -> x509.Certificate:
        """The certificate of the key entry a profile presents."""
        if config not in self._leaves:
            self._leaves[config] = presented(config)[1]
        return self._leaves[config]

    def truststore(self, config: StoreConfig) -> Truststore:
        """A profile's truststore."""
        if config not in self._trust:
            self._trust[config] = load_store(config, "truststore")
        return self._trust[config]


def profile_defaults(profiles: SSLProfileSet) -> tuple[SSLProfile | None, StoreConfig | None]:
    """The default profile (deployment.toml's keystore and truststore), and the truststore
    that profiles without a ``<TrustStore>`` use: what the set was built with."""
    default = profiles.default
    return (default if isinstance(default, SSLProfile) else None, profiles.default_truststore)


def _hostname_mode(mode: str, profile: SSLProfile | None, verify: bool) -> str:
    if not verify:
        return "off"
    if mode == "AllowAll":
        return "AllowAll (no name check)"
    if mode == "DefaultAndLocalhost" and profile is not None:
        hosts = {s[0] for s in profile.servers if s != "*"}
        if hosts and hosts <= LOCALHOST_NAMES:
            return "DefaultAndLocalhost (not checked for localhost)"
    return mode


def _loaded_row(
    entry: dict[str, Any],
    profile: SSLProfile | None,
    mode: str,
    stores: _Stores,
    *,
    label: str | None = None,
    default_trust: StoreConfig | None = None,
) -> dict[str, Any]:
    problems: list[str] = []
    if entry.get("error"):
        problems.append(str(entry["error"]))
    not_after = entry.get("not_after")
    left: int | None = None
    if not_after:
        when = _dt.datetime.fromisoformat(not_after)
        left = days_left(when)
        if when < now():
            problems.append(f"client certificate expired on {when.date()}")
        elif left < EXPIRY_WARNING_DAYS:
            problems.append(f"client certificate expires in {left} days")
    verify = True
    anchors: int | None = None
    if profile is not None:
        verify = not (profile.novalidatecert and profile.truststore is None)
        if not verify:
            problems.append(
                'server certificate NOT verified (novalidatecert="true", no TrustStore)'
            )
        if profile.keystore is not None:
            try:
                if lacks_client_auth(stores.client_leaf(profile.keystore)):
                    problems.append(
                        "client certificate's extended key usage lacks clientAuth: "
                        "servers will refuse it"
                    )
            except (MTLSError, ValueError) as exc:
                problems.append(str(exc))
        trust_config = profile.truststore or default_trust
        if trust_config is not None:
            try:
                trust = stores.truststore(trust_config)
                anchors = len(trust)
                expired = [a for a, c in trust.certificates.items() if _x509.not_after(c) < now()]
                if expired:
                    problems.append(
                        f"{len(expired)} of {anchors} trust anchors expired ({', '.join(expired)})"
                    )
            except MTLSError as exc:
                problems.append(str(exc))
    servers = list(entry["servers"])
    return {
        "servers": [label] if label else servers,
        "client_id": entry.get("client_id"),
        "loaded": True,
        "keystore": _file_of(entry, "keystore"),
        "truststore": _file_of(entry, "truststore"),
        "client_subject": entry.get("subject"),
        "not_after": not_after,
        "days_left": left,
        "anchors": anchors,
        "hostname": _hostname_mode(mode, profile, verify),
        "problems": [strip_profile_prefix(p, servers) for p in problems],
        "error": entry.get("error"),
    }


def _failed_row(entry: dict[str, Any]) -> dict[str, Any]:
    servers = list(entry["servers"])
    return {
        "servers": servers,
        "client_id": entry.get("client_id"),
        "loaded": False,
        "keystore": None,
        "truststore": None,
        "client_subject": None,
        "not_after": None,
        "days_left": None,
        "anchors": None,
        "hostname": None,
        "problems": [strip_profile_prefix(str(entry["error"]), servers)],
        "error": entry["error"],
    }


def check_report(profiles: SSLProfileSet, logs: LogCollector) -> dict[str, Any]:
    """The JSON document of ``mtls check --json`` (keys documented in docs/cli.md)."""
    status = profiles.status().to_dict()
    mode = str(status["hostname_verifier"])
    loaded = iter(profiles.profiles)
    stores = _Stores()
    rows: list[dict[str, Any]] = []
    default_profile, default_trust = profile_defaults(profiles)
    for entry in status["profiles"]:
        if entry["loaded"]:
            profile = next(loaded, None)
            rows.append(_loaded_row(entry, profile, mode, stores, default_trust=default_trust))
        else:
            rows.append(_failed_row(entry))
    default = status.get("default")
    default_row = (
        _loaded_row(default, default_profile, mode, stores, label="(default)")
        if isinstance(default, dict)
        else None
    )
    warnings = [m for m in logs.messages if not any(s in m for s in _SHOWN_ELSEWHERE)]
    failed = sum(1 for row in rows if not row["loaded"])
    return {
        "path": status["path"],
        "hostname_verifier": mode,
        "ok": bool(status["healthy"]) and failed == 0,
        "profiles": rows,
        "default": default_row,
        "failed": failed,
        "warnings": warnings,
    }


def _cell_expiry(row: dict[str, Any]) -> str:
    if not row["not_after"]:
        return "-"
    return f"{str(row['not_after'])[:10]} ({row['days_left']} d)"


def _cells(row: dict[str, Any], base: str | None) -> list[str]:
    servers = ", ".join(row["servers"])
    if row["client_id"]:
        servers += f" [client {row['client_id']}]"
    truststore = row["truststore"]
    trust_cell = display_path(truststore, base) if truststore else "-"
    if not truststore and row["loaded"]:
        trust_cell = "(none)" if row["hostname"] == "off" else "(system)"
    anchors = row["anchors"]
    return [
        servers,
        display_path(row["keystore"], base) if row["keystore"] else "-",
        trust_cell,
        row["client_subject"] or "-",
        _cell_expiry(row),
        str(anchors) if anchors is not None else "-",
        row["hostname"] or "-",
        "; ".join(row["problems"]) or "-",
    ]


_HEADERS = [
    "SERVER",
    "KEYSTORE",
    "TRUSTSTORE",
    "CLIENT CERTIFICATE",
    "EXPIRES",
    "ANCHORS",
    "HOSTNAME",
    "PROBLEMS",
]


def render_table(report: dict[str, Any], out: Output, base: str | None) -> None:
    """The human form of a check report."""
    rows = list(report["profiles"])
    if report["default"] is not None:
        rows.append(report["default"])
    cells = [_cells(row, base) for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(_HEADERS[:-1])]
    count = len(report["profiles"])
    out.line(
        f"{out.style(str(report['path']), 'bold')}: {count} profile{'' if count == 1 else 's'}, "
        f"hostname verifier {report['hostname_verifier']}" + (f", base dir {base}" if base else "")
    )
    out.line()
    out.line(
        "  ".join(out.style(h.ljust(w), "bold") for h, w in zip(_HEADERS, widths, strict=False))
        + "  "
        + out.style(_HEADERS[-1], "bold")
    )
    for row, line in zip(rows, cells, strict=True):
        padded = "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False))
        problems = line[-1]
        colour = "red" if not row["loaded"] else ("yellow" if row["problems"] else "green")
        out.line(f"{padded}  {out.style(problems, colour)}")
    out.line()
    for message in report["warnings"]:
        out.line(f"{out.style('note:', 'yellow')} {message}")
    failed = report["failed"]
    if failed:
        out.line(
            out.style(f"FAILED: {failed} of {count} profiles did not load", "red", "bold")
            + " (a gateway would refuse to start without ssl.profile.skip.failures)"
        )
        if any("no such" in p for row in report["profiles"] for p in row["problems"]):
            out.line(
                f"relative <Location> paths start from the base directory ({base or os.getcwd()}):"
                " set --base-dir to the product home"
            )
    elif not report["ok"]:
        out.line(out.style("FAILED: see the problems above", "red", "bold"))
    else:
        out.line(out.style(f"OK: {count} profile{'' if count == 1 else 's'} loaded", "green"))


def cmd_check(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls check``: exit 0 when every profile loads, 1 when any fails, 2 on usage errors."""
    base = str(Path(args.base_dir).resolve()) if args.base_dir else None
    with load_profile_set(args, args.profiles) as profiles:
        report = check_report(profiles, logs)
    report["vault"] = vault_report(args)  # which secure-vault aliases resolve
    if args.json:
        out.json(report)
    else:
        render_vault(report["vault"], out)
        render_table(report, out, base)
    if report["ok"]:
        return EXIT_OK
    first = next((row for row in report["profiles"] if row["problems"] and row["error"]), None)
    where = f" (first: {', '.join(first['servers'])}: {first['problems'][0]})" if first else ""
    out.error(
        f"{report['path']}: {report['failed']} of {len(report['profiles'])} profiles did not "
        f"load{where}"
    )
    return EXIT_FAILURE
