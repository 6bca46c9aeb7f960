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

from .. import _dates, _x509
from .._config import SSLProfile, StoreConfig, trust_for
from .._context import EXPIRY_WARNINGS, LOCALHOST_NAMES
from .._errors import KeyEntryError, MTLSError, SecureVaultError, safe_text
from .._profiles import SSLProfileSet
from .._status import ProfileSetStatus
from .._stores import SET_BY, Truststore, load_store
from .._vault import SecureVault
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    Output,
    UsageError,
    cli_wording,
    days_left,
    display_path,
    load_profile_set,
    now,
    profile_defaults,
    purpose_problem,
    span_text,
)
from ._logs import LogCollector

# Library warnings that the table already shows in its own words.
_SHOWN_ELSEWHERE = (
    "skipped (skip_failures)",
    'novalidatecert="true"',
    "not loaded: requests to its hosts are refused",  # the row's PROBLEMS say why
)


def _dates_problem(
    what: str, refusal: str, end: str | None, start: str | None
) -> tuple[str | None, bool]:
    """What a certificate's dates say now (and whether peers refuse it for them): never
    valid, expired, not valid yet or near its end; ``(None, False)`` when in date."""
    until = _dt.datetime.fromisoformat(end) if end else None
    since = _dt.datetime.fromisoformat(start) if start else None
    verdict = _dates.out_of_date(since, until, now())
    if verdict == "never valid":
        assert since is not None
        assert until is not None
        return (
            f"{what} is never valid: its notBefore ({since.date()} UTC) is after its "
            f"notAfter ({until.date()} UTC), so {refusal}; reissue it",
            True,
        )
    if verdict == "expired":
        assert until is not None
        return f"{what} expired on {until.date()} UTC: {refusal}", True
    if verdict == "not valid yet":
        return f"{what} is not valid before {start}: {refusal} until then", True
    # The library's load warning: 30 days, or what says something of a short validity
    # (a one-hour certificate is not "expiring" from its start).
    if until is not None and until - now() < EXPIRY_WARNINGS.of(since, until)[0]:
        return f"{what} expires in {span_text(until)}", False
    return None, False


def _file_of(entry: dict[str, Any], role: str) -> str | None:
    for item in entry.get("files") or ():
        if item["role"] == role:
            return str(item["path"])
    return None


class _Stores:
    """Stores read for the table, once each: a thousand profiles often share two files."""

    def __init__(self) -> None:
        self._leaves: dict[
            StoreConfig, tuple[bytes, x509.Certificate | ValueError, tuple[str, ...]]
        ] = {}
        self._trust: dict[StoreConfig, Truststore] = {}
        self._trust_notes: dict[StoreConfig, tuple[str, ...]] = {}
        self._dates: dict[StoreConfig, tuple[int, list[str], list[str]]] = {}
        self._purposes: dict[StoreConfig, tuple[tuple[str, str] | None, ValueError | None]] = {}
        #: What the JDK's reader refuses in the stores read, once per file and note
        #: ((location, note), in the order found): what WSO2's gateway cannot load, so
        #: the check fails on it as on the profile file's own such notes (``--mtls-only``
        #: aside).
        self.java_refusals: dict[tuple[str, str], None] = {}

    def _refusals(self, config: StoreConfig, notes: tuple[str, ...]) -> tuple[str, ...]:
        for note in notes:
            self.java_refusals.setdefault((config.shown_location, note))
        return notes

    def client_purpose(self, config: StoreConfig) -> tuple[str, str] | None:
        """:func:`purpose_problem` of the certificate a profile presents, worked out once
        per keystore (10,000 profiles on one keystore: 2.8 s of a check, h180).

        Raises:
            MTLSError: the keystore does not load; ValueError: its certificate's
                purpose cannot be read (each as often as asked).
        """
        found = self._purposes.get(config)
        if found is None:
            der, leaf, _ = self._keystore(config)
            dates = _dates.refused_dates(der)
            if dates is not None:  # a leap second: cryptography cannot read it either
                every = "every server (neither OpenSSL nor Java reads such a time)"
                found = ((dates, every), None)
            elif isinstance(leaf, ValueError):
                found = (None, leaf)
            else:
                found = (purpose_problem(leaf), None)
            self._purposes[config] = found
        if found[1] is not None:
            raise found[1]
        return found[0]

    def keystore_notes(self, config: StoreConfig) -> tuple[str, ...]:
        """What the JDK's reader would not take from a profile's keystore file."""
        return self._refusals(config, self._keystore(config)[2])

    def _keystore(
        self, config: StoreConfig
    ) -> tuple[bytes, x509.Certificate | ValueError, tuple[str, ...]]:
        """The leaf's DER, the leaf (or why cryptography cannot read it: OpenSSL may
        serve it all the same) and the store's Java notes, read once per keystore."""
        if config not in self._leaves:
            store = load_store(config, "keystore", purpose="client")
            try:
                chain = store.key_entry(config.alias)[2]
            except KeyEntryError as exc:
                if config.written_alias is None:
                    raise
                # The alias came from a placeholder ($env{}, $secret{}, a $ref{} to a
                # password): named as written, never its value, as the library does.
                raise KeyEntryError(
                    f"{config.shown_location}: the key alias {config.written_alias} names "
                    "no usable key entry: check the variable or property it names",
                    path=exc.path,
                ) from None
            leaf: x509.Certificate | ValueError
            try:
                leaf = _x509.load_cert(chain[0])
            except ValueError as exc:  # its notes are read all the same
                leaf = exc
            self._leaves[config] = chain[0], leaf, store._java_check_notes()
        return self._leaves[config]

    def truststore(self, config: StoreConfig) -> Truststore:
        """A profile's truststore."""
        if config not in self._trust:
            self._trust[config] = load_store(config, "truststore")
        return self._trust[config]

    def truststore_notes(self, config: StoreConfig) -> tuple[str, ...]:
        """What the JDK's reader would not take from a profile's truststore file, worked
        out once per truststore (a walk of its EC anchors: 10,000 rows must not each
        walk them)."""
        notes = self._trust_notes.get(config)
        if notes is None:
            notes = self._trust_notes[config] = self.truststore(config)._java_check_notes()
        return self._refusals(config, notes)

    def anchor_dates(self, config: StoreConfig) -> tuple[int, list[str], list[str]]:
        """(how many anchors a profile's truststore has, the aliases of those expired,
        those not valid yet), worked out once per truststore: every row sharing it
        read each anchor again (``Truststore.certificates`` parses them at each use),
        and 10,000 profiles on a 145-anchor truststore took 17 s (h180)."""
        dates = self._dates.get(config)
        if dates is None:
            trust = self.truststore(config)
            moment = now()
            parsed = trust.certificates.items()  # parsed once here (and warned about once)
            expired = [a for a, c in parsed if _dates.not_after(c) < moment]
            early = [a for a, c in parsed if _dates.not_before(c) > moment]
            # Its anchors, not its aliases: a key without its certificate is an alias
            # and trusts nothing (h289: counted, it hid "no anchor is in date").
            dates = self._dates[config] = (len(trust.anchors_der), expired, early)
        return dates


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
    # What peers refuse now (an identity or chain out of its dates, no anchor valid):
    # served (a first load has nothing else), but the check fails, warnings do not.
    out_of_date = False
    if entry.get("error"):
        problems.append(str(entry["error"]))
    not_after = entry.get("not_after")
    left: int | None = None
    identity = entry.get("identity") or {}
    if not_after:
        left = days_left(_dt.datetime.fromisoformat(not_after))
    dated = [("client certificate", "servers refuse it", not_after, identity.get("not_before"))]
    dated += [
        (
            f"CA certificate {link.get('subject')} of the client's chain",
            "servers refuse the chain",
            link.get("not_after"),
            link.get("not_before"),
        )
        for link in identity.get("chain") or ()
    ]
    for what, refusal, end, start in dated:
        problem, refused = _dates_problem(what, refusal, end, start)
        if problem:
            problems.append(problem)
            out_of_date = out_of_date or refused
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
                purpose = stores.client_purpose(profile.keystore)
                if purpose is not None:
                    problems.append(
                        f"client certificate: {purpose[0]}: {purpose[1]} will refuse it"
                    )
                    out_of_date = True  # refused by every Java and OpenSSL server now
                problems += [f"keystore: {n}" for n in stores.keystore_notes(profile.keystore)]
            except MTLSError as exc:
                _add_problem(problems, str(exc))
            except ValueError as exc:  # served all the same: OpenSSL reads what DER forbids
                _add_problem(problems, f"client certificate: {exc} (not checked for its purpose)")
        # As the set builds it (h288: the default's anchors were counted and judged
        # here for a novalidatecert profile, which reads none).
        trust_config = trust_for(profile, default_trust)
        if trust_config is not None:
            try:
                problems += [f"truststore: {n}" for n in stores.truststore_notes(trust_config)]
                anchors, expired, early = stores.anchor_dates(trust_config)
                none_in_date = bool(anchors) and len({*expired, *early}) == anchors
                for aliases, what in ((expired, "expired"), (early, "not valid yet")):
                    if aliases:
                        problems.append(
                            f"{len(aliases)} of {anchors} trust anchors {what} "
                            f"({', '.join(aliases)})"
                        )
                if none_in_date:
                    problems[-1] += ": no anchor is in date, it verifies no server"
                out_of_date = out_of_date or none_in_date
            except MTLSError as exc:
                _add_problem(problems, str(exc))
    servers = list(entry["servers"])
    return {
        "servers": [label] if label else servers,
        "client_id": entry.get("client_id"),
        # A default profile that does not load has a row too (its stores say why).
        "loaded": bool(entry.get("loaded", True)),
        "keystore": _file_of(entry, "keystore"),
        "truststore": _file_of(entry, "truststore"),
        "client_subject": entry.get("subject"),
        "not_after": not_after,
        "days_left": left,
        "anchors": anchors,
        "hostname": _hostname_mode(mode, profile, verify),
        "problems": problems,
        "out_of_date": out_of_date,
        "error": entry.get("error"),
    }


def _add_problem(problems: list[str], text: str) -> None:
    """Add ``text`` unless a problem already says it (a store that did not load is the
    row's error, and reading it again for the table fails the same way)."""
    text = cli_wording(text)
    # "X; set by [keystore.tls] password ..." of a store whose "X" the row says already:
    # that problem gains where the password was set, not a second copy of "X".
    if any(text in known for known in problems):
        return
    core, joint, origin = text.partition(SET_BY)
    for index, known in enumerate(problems):
        if joint and core in known and SET_BY not in known:
            problems[index] = f"{known}{joint}{origin}"
            return
    problems.append(text)


def _failed_row(entry: dict[str, Any], error: MTLSError | None) -> dict[str, Any]:
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
        # The row names the profile: the error without it (``reason``).
        "problems": [cli_wording(error.reason if error is not None else str(entry["error"]))],
        "out_of_date": False,  # not loaded: "loaded" already fails the check
        "error": entry["error"],
    }


def expiring(
    status: ProfileSetStatus, within: _dt.timedelta, *, anchors: bool
) -> list[dict[str, Any]]:
    """What ``--fail-within`` fails for: each loaded profile's client certificate and
    chain (and with ``anchors``, its truststore's anchors) that ends within ``within``
    of the status time, expired ones included."""
    limit = status.checked_at + within
    out: list[dict[str, Any]] = []
    entries = [*status.profiles, *([status.default] if status.default is not None else [])]
    for entry in entries:
        certs: list[tuple[str, str | None, _dt.datetime | None, int | None]] = []
        if entry.identity is not None:
            ident = entry.identity
            certs.append(("identity", ident.subject, ident.not_after, ident.days_left))
            certs.extend(("chain", c.subject, c.not_after, c.days_left) for c in ident.chain)
        if anchors:  # soonest first: the ones shown are the ones that matter
            certs.extend(("anchor", a.subject, a.not_after, a.days_left) for a in entry.anchors)
        for role, subject, not_after, days in certs:
            if not_after is not None and not_after <= limit:
                out.append(
                    {
                        "servers": (
                            ["(default)"] if entry is status.default else list(entry.servers)
                        ),
                        "client_id": entry.client_id,
                        "role": role,
                        "subject": subject,
                        "not_after": not_after.isoformat(),
                        "days_left": days,
                    }
                )
    return out


def check_report(
    profiles: SSLProfileSet,
    logs: LogCollector,
    *,
    fail_within: float | None = None,
    anchors: bool = False,
    mtls_only: bool = False,
) -> dict[str, Any]:
    """The JSON document of ``mtls check --json`` (keys documented in docs/cli.md)."""
    records = profiles.status()
    status = records.to_dict()
    mode = str(status["hostname_verifier"])
    loaded = iter(profiles.profiles)
    stores = _Stores()
    rows: list[dict[str, Any]] = []
    default_profile, default_trust = profile_defaults(profiles)
    for record, entry in zip(records.profiles, status["profiles"], strict=True):
        if entry["loaded"]:
            profile = next(loaded, None)
            rows.append(_loaded_row(entry, profile, mode, stores, default_trust=default_trust))
        else:
            rows.append(_failed_row(entry, record.error))
    default = status.get("default")
    default_row = (
        _loaded_row(default, default_profile, mode, stores, label="(default)")
        if isinstance(default, dict)
        else None
    )
    warnings = [m for m in logs.messages if not any(s in m for s in _SHOWN_ELSEWHERE)]
    failed = sum(1 for row in rows if not row["loaded"])
    soon = (
        expiring(records, _dt.timedelta(days=fail_within), anchors=anchors)
        if fail_within is not None
        else []
    )
    loads = (
        bool(status["healthy"])
        and failed == 0
        and not soon
        and not logs.mtls_refused
        and not any(row.get("out_of_date") for row in [*rows, default_row] if row)
    )
    # The profile file's notes, then its stores' (a store the JDK refuses, whole or an
    # entry: the gateway serves without it).
    refused_stores = [f"{where}: {note}" for where, note in stores.java_refusals]
    cannot_load = [*logs.wso2_cannot_load, *refused_stores]
    return {
        "path": status["path"],
        "hostname_verifier": mode,
        "ok": loads and (mtls_only or not cannot_load),
        "loads": loads,
        "wso2_cannot_load": cannot_load,
        "stores_wso2_cannot_load": refused_stores,
        "mtls_refused": list(logs.mtls_refused),
        "profiles": rows,
        "default": default_row,
        "failed": failed,
        "warnings": warnings,
        "fail_within": (
            {"days": fail_within, "anchors": anchors, "expiring": soon}
            if fail_within is not None
            else None
        ),
        "status": status,
    }


def _cell_expiry(row: dict[str, Any]) -> str:
    if not row["not_after"]:
        return "-"
    when = _dt.datetime.fromisoformat(row["not_after"])
    return f"{when.date()} UTC ({span_text(when)})"


def _cells(row: dict[str, Any], base: str | None) -> list[str]:
    servers = _servers_text(list(row["servers"]))  # --json has them all
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


_ROLE_NAMES = {"identity": "client certificate", "chain": "chain certificate", "anchor": "anchor"}


def _servers_text(servers: list[str]) -> str:
    """A profile's servers in a line about one certificate: the first three, and how
    many more (a profile of 32 servers made each line hundreds of characters)."""
    more = f" and {len(servers) - 3} more" if len(servers) > 3 else ""
    return ", ".join(servers[:3]) + more


def _missing_under(row: dict[str, Any], start: str) -> bool:
    """Whether a store of ``row`` is missing where a relative ``<Location>`` would have
    been looked for (under ``start``): only then is ``--base-dir`` the likely fix (not
    for an absolute path, nor for one made from placeholders, shown as written)."""
    for problem in row["problems"]:
        if ": no such " not in problem:
            continue
        path = problem.partition(": no such ")[0]
        # ${carbon.home} is the base directory unless told otherwise (as WSO2 sets it).
        if path.startswith(_CARBON_HOME) or Path(path).is_relative_to(start):
            return True
    return False


#: How a location made from the product home starts (shown as written).
_CARBON_HOME = ("${carbon.home}", "$sys{carbon.home}")


def render_table(report: dict[str, Any], out: Output, base: str | None) -> None:
    """The human form of a check report."""
    rows = list(report["profiles"])
    if report["default"] is not None:
        rows.append(report["default"])
    cells = [_cells(row, base) for row in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(_HEADERS[:-1])]
    count = len(report["profiles"])
    # No path: a deployment.toml without a profile file (its default stores serve all).
    source = report["path"] or "no profile file"
    out.line(
        f"{out.style(str(source), 'bold')}: {count} profile{'' if count == 1 else 's'}, "
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
    gate = report["fail_within"]
    # Soonest first, as the closing error's "first:" names them.
    for item in sorted(gate["expiring"], key=lambda item: item["not_after"]) if gate else ():
        when = _dt.datetime.fromisoformat(item["not_after"])
        shown = _servers_text(item["servers"])
        ended = when <= _dt.datetime.now(_dt.UTC)
        out.line(
            out.style("EXPIRED:" if ended else "EXPIRING:", "red", "bold") + f" {shown}: "
            f"{_ROLE_NAMES[item['role']]} {item['subject']} "
            f"{'ended' if ended else 'ends'} {when:%Y-%m-%d %H:%M} UTC ({span_text(when)})"
            + ("" if ended else f", within --fail-within {gate['days']:g} days")
        )
    failed = report["failed"]
    if failed:
        out.line(
            out.style(f"FAILED: {failed} of {count} profiles did not load", "red", "bold")
            + " (without skip_failures the library refuses the file)"
        )
        start = base or os.getcwd()
        if any(_missing_under(row, start) for row in report["profiles"]):
            out.line(
                f"relative <Location> paths start from the base directory ({start}):"
                + (
                    " is it the product home? (--base-dir)"
                    if base
                    else " set --base-dir to the product home"
                )
            )
    elif _default_failed(report):
        out.line(
            out.style("FAILED: the default profile did not load", "red", "bold")
            + " (requests no profile matches are refused until it loads)"
        )
    elif report["mtls_refused"]:
        out.line(
            out.style("FAILED: <servers> entries without a port were left out", "red", "bold")
            + " (the notes above: mtls refuses the file without skip_failures; WSO2 loads "
            "it and never matches them)"
        )
    elif not report["ok"] and not _wso2_only(report):
        out.line(out.style("FAILED: see the problems above", "red", "bold"))
    elif not report["ok"]:
        stores_only = len(report["wso2_cannot_load"]) == len(report["stores_wso2_cannot_load"])
        what = "a store this file names, or an entry of it" if stores_only else "this file"
        out.line(
            out.style(f"FAILED: WSO2 cannot load {what}", "red", "bold")
            + " (the notes above say why; mtls loads it: --mtls-only for a file only mtls reads)"
        )
    else:
        out.line(out.style(f"OK: {count} profile{'' if count == 1 else 's'} loaded", "green"))


# --------------------------------------------------------------------------- secure vault


def vault_report(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``vault`` key of ``mtls check --json``; ``None`` when the estate has no vault.

    The vault is the one the profile set itself uses by default: the base directory's
    (or the current directory's), with ``--deployment-toml``'s ``[secrets]``.
    """
    home = args.base_dir or os.getcwd()
    try:
        vault = SecureVault.for_estate(
            home, deployment_toml=args.deployment_toml, product=args.product
        )
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


def cmd_check(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls check``: exit 0 when every profile loads, 1 when any fails, 2 on usage errors."""
    base = str(Path(args.base_dir).resolve()) if args.base_dir else None
    if args.anchors and args.fail_within is None:
        raise UsageError("--anchors needs --fail-within DAYS")
    try:
        loaded = load_profile_set(args, args.profiles)
    except SecureVaultError as exc:
        # A secret alias the file names does not resolve, and the file is refused: the
        # vault's own aliases, each resolving or not, still say where to look (in the
        # --json document too, under "vault", beside the error).
        vault = vault_report(args)
        if args.json:
            message = safe_text(" ".join(cli_wording(str(exc)).split()))
            error = {"kind": "error", "type": type(exc).__name__, "message": message}
            out.json({"ok": False, "error": error, "vault": vault})
        else:
            render_vault(vault, out)
        raise
    with loaded as profiles:
        report = check_report(
            profiles,
            logs,
            fail_within=args.fail_within,
            anchors=args.anchors,
            mtls_only=args.mtls_only,
        )
    report["vault"] = vault_report(args)  # which secure-vault aliases resolve
    if args.json:
        out.json(report)
    else:
        render_vault(report["vault"], out)
        render_table(report, out, base)
    if report["ok"]:
        return EXIT_OK
    # The file the errors are about: the profile file, else deployment.toml (a Micro
    # Integrator estate may have no profile file, only the default stores).
    named = report["path"] or args.deployment_toml or "the profiles"
    gate = report["fail_within"]
    if gate and gate["expiring"] and not report["failed"]:
        soonest = min(gate["expiring"], key=lambda item: item["not_after"])
        # Certificates, not profiles: one shared by a thousand profiles is one.
        count = len({(item["subject"], item["not_after"]) for item in gate["expiring"]})
        ended = _dt.datetime.fromisoformat(soonest["not_after"]) <= _dt.datetime.now(_dt.UTC)
        within = f"within {gate['days']:g} days"
        # Not "ends within 30 days" of one that has ended (an expired anchor).
        if count == 1:
            when = "has ended" if ended else f"ends {within}"
        else:
            when = f"end {within}" + (" or have ended" if ended else "")
        out.error(
            f"{named}: {count} certificate{'' if count == 1 else 's'} {when} "
            f"(first: {_servers_text(soonest['servers'])}: {soonest['subject']} "
            f"{'ended' if ended else 'on'} {soonest['not_after'][:10]} UTC): rotate before "
            "deploying"
        )
        return EXIT_FAILURE
    # "did not load" names the first that did not load; "not healthy", the first out
    # of date (a profile that loaded with an expired certificate).
    failing = "error" if report["failed"] else "out_of_date"
    first = next((row for row in report["profiles"] if row["problems"] and row[failing]), None)
    where = f" (first: {', '.join(first['servers'])}: {first['problems'][0]})" if first else ""
    if report["failed"]:
        out.error(
            f"{named}: {report['failed']} of {len(report['profiles'])} profiles did not load{where}"
        )
    elif _default_failed(report):
        out.error(f"{named}: {report['default']['problems'][0]}")
    elif report["mtls_refused"]:
        # Where to fix it: deployment.toml's tables when they write the entry.
        refused = report["mtls_refused"]
        first = next((m for m in refused if "[[keystore.ssl_profile.custom]]" in m), refused[0])
        out.error(f"{named}: {_after_path(first)}")
    elif _wso2_only(report):
        count = len(report["wso2_cannot_load"])
        problem = report["wso2_cannot_load"][0]
        stores_only = count == len(report["stores_wso2_cannot_load"])
        # Said of another file (deployment.toml's tables, a store): named with it.
        problem = _after_path(problem) if problem.startswith(f"{named}: ") else problem
        what = "a store this file names, or an entry of it" if stores_only else "this file"
        out.error(
            f"{named}: WSO2 cannot load {what} ({count} problem"
            f"{'' if count == 1 else 's'}, first: {problem}): "
            "fix it, or pass --mtls-only if only mtls reads it"
        )
    else:
        out.error(f"{named}: not healthy{where}: see the problems above")
    return EXIT_FAILURE


def _after_path(message: str) -> str:
    """A library warning without its leading "PATH: " (the error names the file once)."""
    return message.split(": ", 1)[1] if ": " in message else message


def _wso2_only(report: dict[str, Any]) -> bool:
    """The check fails only because WSO2 could not load what mtls loads."""
    return not report["ok"] and report["loads"]


def _default_failed(report: dict[str, Any]) -> bool:
    default = report["default"]
    return default is not None and not default["loaded"]
