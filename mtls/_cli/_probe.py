"""``mtls probe``: connect as the profile set would, and say what happened in words.

The connection itself is in ``_connect``, what a failure means in ``_diagnosis``;
this module chooses the context (a profile, a default, or ``--keystore`` and
``--truststore``) and prints the report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _dates, _x509
from .._config import SSLProfile, StoreConfig, normalize_host
from .._context import client_context, dials_localhost
from .._errors import MTLSError, ProfileUnavailableError
from .._profiles import SSLProfileSet
from .._stores import Keystore, Truststore
from .._wso2 import has_placeholder
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    Output,
    UsageError,
    as_word,
    expiry_text,
    load_keystore,
    load_profile_set,
    load_truststore,
    optional_key_password,
    other_chains,
    presented,
    profile_defaults,
    truststore_password,
)
from ._connect import run_probe
from ._diagnosis import (
    Failure,
    Report,
    Setup,
    Target,
    entries_issuers,
    issuers_of,
    name_text,
    parse_target,
    setup_is_gateways,
)
from ._logs import LogCollector
from ._storeio import _sniff, one_password, opening_password

# --------------------------------------------------------------------------- setup


def _status_entry(status: dict[str, Any], profile: SSLProfile) -> dict[str, Any] | None:
    for entry in status["profiles"]:
        # status() names a client as written (h287: its value matched no entry when a
        # placeholder made it, and the probe said "no client certificate").
        if entry["servers"] == list(profile.server_names) and entry["client_id"] == (
            profile.client_name
        ):
            return dict(entry)
    return None


def _chain_only() -> ssl.SSLContext:
    """The context of the second handshake that fetches a server's chain after it failed
    verification: no verification, and no client identity. A server that failed
    verification is not authenticated to (Java aborts there too): it sees no client
    certificate and no signature of ours. A TLS 1.2 server that demands a client
    certificate ends that handshake, after its chain: ``_connect.handshake_chain``
    still returns it."""
    return client_context(verify=False)


def _read_identity(setup: Setup, config: StoreConfig | None) -> None:
    """The certificate the profile presents and its alias, for the advice (best effort:
    the profile set loaded the same file, and the handshake says the rest)."""
    if config is None:
        return
    try:
        setup.client_alias, chain, others = presented(config)
    except (MTLSError, OSError):
        return
    setup.client_chain = len(chain)
    setup.client_issuers = issuers_of(chain)
    setup.other_entries = entries_issuers(others)
    _read_dates(setup, chain[0])
    with contextlib.suppress(ValueError):  # one cryptography cannot read: the DER says the rest
        setup.client_certificate = _x509.load_cert(chain[0])


def _read_dates(setup: Setup, leaf: bytes) -> None:
    """What the advice needs of our certificate's validity times."""
    setup.client_dates = _dates.unverifiable_dates(leaf)
    setup.client_dates_everywhere = _dates.java_refused_dates(leaf) is not None


def _how_matched(profile: SSLProfile, target: Target) -> str:
    """``"profile"`` when ``profile`` names the target's host and port, else ``"catch-all"``."""
    named = (normalize_host(target.host), target.port) in profile.servers
    return "profile" if named else "catch-all"


def setup_from_profiles(profiles: SSLProfileSet, target: Target, client_id: str | None) -> Setup:
    """The context the profile set gives ``target``, and which profile it came from."""
    status = profiles.status().to_dict()
    source = status["path"]
    mode = str(status["hostname_verifier"])
    key = target.server
    # The library's own lookup (exact entry, then the client-less one, then '*', then
    # the default): what failed is what a request to this backend is refused for.
    try:
        context = profiles.context_for(target.host, target.port, client_id=client_id)
    except ProfileUnavailableError as exc:
        failed = profiles.profile_for(target.host, target.port, client_id=client_id)
        # The message names the profile already: its reason, without the prefix.
        error = exc.cause.reason if exc.cause is not None else "unknown error"
        matched = _how_matched(failed, target) if failed is not None else "default"
        what = {
            "profile": f"the profile for {key}",
            "catch-all": f"the catch-all ('*') profile, which serves {key},",
            "default": "the default profile",
        }[matched]
        return Setup(
            None,
            matched,
            source=source,
            profile=failed,
            hostname_verifier=mode,
            failure=Failure("profile_error", f"{what} in {source} did not load: {error}"),
        )
    profile = profiles.profile_for(target.host, target.port, client_id=client_id)
    if context is None:
        # Named, but only for client IDs (<client> entries): the fix is --client-id.
        clients = sorted(
            str(entry["client_id"])
            for entry in status["profiles"]
            if entry["client_id"] is not None and key in entry["servers"]
        )
        placeholders = any(has_placeholder(c) for c in clients)
        taken = " (an ID written as $env{...} is its variable's value)" if placeholders else ""
        fix = (
            f"profiles name it only for client IDs ({', '.join(clients)}): pass --client-id{taken}"
            if clients and client_id is None
            # h288: a wrong ID was told to add the host to <servers>, which had it.
            else f"profiles name it for other client IDs ({', '.join(clients)}): "
            f"--client-id {as_word(client_id)} is none of them{taken}"
            if clients
            else f"add {key} to a profile's <servers> (the port must match)"
        )
        return Setup(
            None,
            None,
            source=source,
            hostname_verifier=mode,
            failure=Failure(
                "no_profile",
                f"no profile for {key} in {source}, and no '*' profile or default: {fix}",
            ),
        )
    setup = Setup(context, "default", source=source, hostname_verifier=mode)
    setup.h2 = lambda: profiles.context_for(
        target.host, target.port, client_id=client_id, alpn=["h2"]
    )
    setup.revocation = profiles.revocation
    setup.anchors = _anchors_for(profiles, target, client_id)
    if profile is None:
        default = status.get("default") or {}
        setup.keystore = next(
            (f["path"] for f in default.get("files", ()) if f["role"] == "keystore"), None
        )
        setup.truststore = next(
            (f["path"] for f in default.get("files", ()) if f["role"] == "truststore"), None
        )
        setup.client_subject = default.get("subject")
        setup.client_not_after = default.get("not_after")
        default_profile, _ = profile_defaults(profiles)
        if setup.client_subject and default_profile is not None:
            _read_identity(setup, default_profile.keystore)
        setup.insecure = _chain_only
        return setup
    setup.matched = _how_matched(profile, target)
    setup.profile = profile
    entry = _status_entry(status, profile) or {}
    setup.keystore = profile.keystore.shown_location if profile.keystore else None
    truststore = next(
        (f["path"] for f in entry.get("files", ()) if f["role"] == "truststore"), None
    )
    setup.truststore = truststore
    setup.client_subject = entry.get("subject")
    setup.client_not_after = entry.get("not_after")
    if setup.client_subject:
        _read_identity(setup, profile.keystore)
    setup.verify = not (profile.novalidatecert and profile.truststore is None)
    if mode == "DefaultAndLocalhost" and dials_localhost(target.host):
        setup.hostname_verifier = "DefaultAndLocalhost (not checked for localhost)"
    setup.insecure = _chain_only
    return setup


def setup_from_options(args: argparse.Namespace, target: Target, out: Output) -> Setup:
    """A context from ``--keystore``/``--truststore`` (either may be left out)."""
    keystore = truststore = None
    password = None
    if args.keystore:
        fmt = _sniff(Path(args.keystore))
        password = opening_password(args, Path(args.keystore), fmt)
        key_password = one_password(fmt, password, optional_key_password(args), out)
        keystore = load_keystore(args.keystore, password, key_password, purpose="client")
    if args.truststore:
        trust_password = truststore_password(args, password)
        truststore = load_truststore(args.truststore, trust_password, truststore=True)
    mode = args.hostname_verifier or "Strict"
    local = mode == "DefaultAndLocalhost" and dials_localhost(target.host)
    effective = "AllowAll" if local else mode

    def made() -> ssl.SSLContext:
        return client_context(keystore, truststore, alias=args.alias, hostname_verifier=effective)

    def h2() -> ssl.SSLContext:
        fresh = made()
        fresh.set_alpn_protocols(["h2"])  # a context of its own: the probe's is left as it is
        return fresh

    context = made()

    setup = Setup(
        context,
        "options" if keystore or truststore else "system",
        anchors=truststore.anchors_der if truststore is not None else None,
        keystore=args.keystore,
        truststore=args.truststore,
        hostname_verifier=mode if effective == mode else f"{mode} (not checked for localhost)",
    )
    if keystore is not None:
        alias, _, chain = keystore.key_entry(args.alias)
        try:
            leaf = _x509.load_cert(chain[0])
        except ValueError:
            # OpenSSL sends it, cryptography does not read it (JDK 17 writes its DSA
            # certificates so): what our own walk of its DER reads, as status() does.
            subject, _, end, _ = _x509.lenient_leaf_info(chain[0])
            setup.client_subject = subject
            setup.client_not_after = end.isoformat() if end is not None else None
        else:
            setup.client_subject = _x509.subject_text(leaf)
            setup.client_not_after = _dates.not_after(leaf).isoformat()
            setup.client_certificate = leaf
        setup.client_alias = alias
        setup.client_chain = len(chain)
        setup.client_issuers = issuers_of(chain)
        setup.other_entries = entries_issuers(other_chains(keystore, alias))
        _read_dates(setup, chain[0])

    setup.h2 = h2
    setup.insecure = _chain_only
    return setup


def _anchors_for(
    profiles: SSLProfileSet, target: Target, client_id: str | None
) -> tuple[bytes, ...] | None:
    """The anchors of the truststore the set reaches ``target`` with, as DER (``None``:
    the system's trust, or a default that is a ready context)."""
    try:
        material = profiles.material_for(target.host, target.port, client_id=client_id)
    except MTLSError:
        return None
    if material is None or material.root_certificates is None:
        return None
    # The PEM bundle read back by the project's own reader, each anchor as DER.
    return Truststore.from_bytes(material.root_certificates).anchors_der


def _names(entry: dict[str, Any]) -> set[str]:
    """What a library message names a profile by: its servers and its files."""
    return {str(f["path"]) for f in entry.get("files") or ()} | _server_names(entry)


def _server_names(entry: dict[str, Any]) -> set[str]:
    """What a library message names a profile's servers by."""
    names: set[str] = set()
    for server in entry.get("servers") or ():
        names |= {"profile *", "(*)"} if server == "*" else {str(server)}
    return names


def _mentions(message: str, name: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", message) is not None


def _about_probed_profile(
    status: dict[str, Any], setup: Setup, target: Target
) -> Callable[[str], bool]:
    """A test for library messages: about the profile probed, or about no other profile.

    A message naming another profile's servers or files (an expired keystore in
    another profile, an unknown element in another profile) is not this probe's.
    """
    entries: list[dict[str, Any]] = list(status["profiles"])
    if isinstance(status.get("default"), dict):
        entries.append(status["default"])
    if setup.profile is not None:
        mine = _status_entry(status, setup.profile)
    elif setup.matched == "default":
        mine = status.get("default")
    else:  # a profile that did not load, or none
        mine = next((e for e in status["profiles"] if target.server in e["servers"]), None)
    ours = {target.server} | (_names(mine) if mine else set())
    others = [e for e in entries if e is not mine]
    theirs = set().union(*(_names(e) for e in others)) - ours
    # Servers decide before files: another profile's message about a keystore both
    # profiles share names that profile's servers, and is not this probe's.
    our_servers = {target.server} | (_server_names(mine) if mine else set())
    their_servers = set().union(*(_server_names(e) for e in others)) - our_servers

    def about_us(message: str) -> bool:
        if any(_mentions(message, n) for n in our_servers):
            return True
        if any(_mentions(message, n) for n in their_servers):
            return False
        return any(_mentions(message, n) for n in ours) or not any(
            _mentions(message, n) for n in theirs
        )

    return about_us


# --------------------------------------------------------------------------- output


def _chain_lines(report: Report, out: Output) -> None:
    if not report.chain:
        return
    if report.chain_from_unverified_handshake:
        state = out.style("NOT verified", "red") + (
            " (shown from a second handshake with verification off, only to show what the "
            "server sent)"
        )
    elif report.chain_verified:
        state = out.style("verified", "green")
    else:
        state = out.style('NOT verified (novalidatecert="true")', "yellow")
    out.line(f"  server chain  {state}")
    for index, info in enumerate(report.chain):
        out.line(f"    [{index}] {info.get('subject')}")
        if "issuer" in info:
            issuer = info["issuer"] + (" (self-signed)" if info.get("self_signed") else "")
            out.line(f"        issuer   {issuer}")
            out.line(f"        expires  {expiry_text(info['not_after'])}")
        if info.get("san"):
            out.line(f"        SAN      {', '.join(info['san'])}")
        out.line(f"        SHA256   {_x509.colon_hex(str(info['sha256']))}")


def _revocation_lines(report: Report, out: Output) -> None:
    if not report.revocation and not report.revocation_note:
        return
    enforced = report.setup.revocation
    how = (
        f"enforced, {enforced.policy.mode}-fail"
        if enforced is not None
        else "checked for this report"
        if report.revocation
        else "not checked"
    )
    out.line(f"  revocation    {how}")
    colours = {"good": "green", "revoked": "red", "undetermined": "yellow"}
    for entry in report.revocation:
        status = str(entry.get("status"))
        line = f"    {entry.get('subject')} (serial {entry.get('serial')}): "
        line += out.style(status, colours.get(status, "yellow"))
        if status == "revoked":
            from .._revocation import revoked_when  # noqa: PLC0415 - not for --help

            line += (
                f" on {revoked_when(entry.get('revoked_at'))}, reason "
                f"{entry.get('reason') or 'unspecified'}"
            )
        if entry.get("source"):
            line += f" ({entry['source']})"
        out.line(line)
        if status == "undetermined":
            for why in entry.get("why") or ():
                out.line(f"        why      {why}")
    if report.revocation_note:
        out.line(f"    {report.revocation_note}")


def render(report: Report, out: Output) -> None:
    """The human form of a probe report."""
    setup = report.setup
    out.line(f"Probing {out.style(report.target.url, 'bold')}")
    if setup.matched in ("profile", "catch-all") and setup.profile is not None:
        what = "catch-all profile *" if setup.matched == "catch-all" else "profile"
        names = ", ".join(setup.profile.server_names)
        shown = setup.profile.client_name  # as written: a placeholder's value never (h287)
        client = f" client {shown!r}" if shown else ""
        out.line(f"  matched       {what} [{names}]{client} in {setup.source}")
    elif setup.matched == "default":
        out.line(f"  matched       no profile: the default of {setup.source}")
    elif setup.matched == "system":
        out.line("  using         the system's trust store, no client certificate")
    if setup.context is not None:
        identity = setup.client_subject or "none"
        if setup.client_subject and setup.client_not_after:
            identity += f", expires {expiry_text(setup.client_not_after)}"
        cert = setup.client_certificate
        if cert is not None and _dates.not_before(cert) > _dt.datetime.now(_dt.UTC):
            identity += f", NOT VALID YET (from {_dates.not_before(cert):%Y-%m-%d %H:%M} UTC)"
        if setup.keystore:
            identity += f", from {setup.keystore}"
        out.line(f"  client cert   {identity}")
        trust = setup.truststore or ("none (verification off)" if not setup.verify else "system")
        out.line(f"  trust         {trust}")
        out.line(f"  hostname      {setup.hostname_verifier if setup.verify else 'not checked'}")
    if report.address:
        out.line(f"  connected     {report.address} port {report.target.port}")
    if report.tls_version:
        out.line(f"  TLS           {report.tls_version}, {report.cipher}")
    if report.ca_names:
        # Which CAs' certificates it asks for: the entry a Java client sends (h254).
        listed = [name_text(name) for name in report.ca_names]
        more = f" (and {len(listed) - 5} more)" if len(listed) > 5 else ""
        out.line(f"  asks for      certificates issued by {'; '.join(listed[:5])}{more}")
    _chain_lines(report, out)
    _revocation_lines(report, out)
    if report.accepted is True:
        answer = f": {report.http_status}" if report.http_status else ""
        if report.sent_certificate:
            verb = "accepted our certificate"
        elif setup.client_subject:
            verb = "let us in without asking for a certificate"  # not mutual TLS
        else:
            verb = "let us in without one"
        out.line(f"  server        {out.style(verb, 'green')}{answer}")
    elif report.accepted is False:
        out.line(f"  server        {out.style('refused us', 'red')}")
    for note in report.notes:
        out.line(f"  {out.style('note:', 'yellow')} {note}")
    if report.failure is None:
        out.line(out.style(f"OK: TLS with {report.target.server} works", "green", "bold"))
    else:
        out.line(
            out.style(f"FAILED ({report.failure.kind}): ", "red", "bold") + report.failure.message
        )


def _client_auth_not_enforced(report: Report) -> Failure | None:
    """``--require-client-auth``: the exchange worked, but was it mutual TLS? (``None``:
    the server asked for our certificate, we sent one, and it let us in.)"""
    if report.certificate_requested is not True:
        return Failure(
            "client_auth_not_enforced",
            "the server let us in without asking for a client certificate: it does not "
            "enforce mutual TLS (set the backend to require one: Java's needClientAuth, "
            "nginx's ssl_verify_client on, openssl s_server -Verify 1 -verify_return_error)",
        )
    if not report.sent_certificate:
        return Failure(
            "client_auth_not_enforced",
            "the server asked for a client certificate but let us in without one: it "
            "makes client certificates optional (Java's wantClientAuth, nginx's "
            "ssl_verify_client optional): require one",
        )
    return None


_THROWAWAY = "CN=mtls probe throwaway (self-signed: no CA issued it)"


def _lets_in_without_one(report: Report, timeout: float) -> Failure | None:
    """``--require-client-auth``, once our certificate was asked for and let in: is a
    client with no certificate let in too? A server that verifies what it is sent and
    takes nothing as well (Java's wantClientAuth, nginx's ``ssl_verify_client
    optional``, ``openssl s_server -verify 1 -verify_return_error``) refused the
    self-signed certificate, and passed the gate (h255). One more connection, with no
    certificate (``None``: refused, or answered with an HTTP error or a redirect, as
    nginx's ``ssl_verify_client on`` answers 400 after a handshake without one; an
    HTTP/2 server's connection taken as ours was fails the gate, h260)."""

    def bare() -> ssl.SSLContext:
        return client_context(verify=False)  # the server was verified already

    def h2() -> ssl.SSLContext:
        fresh = bare()
        fresh.set_alpn_protocols(["h2"])
        return fresh

    other = run_probe(report.target, Setup(bare(), "options", verify=False, h2=h2), timeout=timeout)
    status = other.http_status or ""
    code = status.split()[1][:1] if len(status.split()) > 1 else ""
    # Let in: an HTTP answer that is no error or redirect (nginx's ssl_verify_client on
    # answers 400; an error_page may redirect), or, with no status to read (an HTTP/2
    # server: gRPC), a connection it took as it took ours (h260: such a server letting
    # anyone in passed).
    # (With no status, only when ours had none either: a server that took our HTTP/1.1
    # request and answered, and closes on a client without a certificate, refused it.)
    unanswered = not code and not report.http_status and other.accepted is True
    let_in = other.failure is None and (code in ("1", "2") or unanswered)
    if not let_in:
        said = (
            f"was refused ({other.failure.kind})"
            if other.failure is not None
            else f"got through the handshake and was answered {status}"
            if status
            else "got through the handshake, and its answer could not be judged"
        )
        report.notes.append(f"a client with no certificate {said}")
        return None
    answered = f"it answered {status}" if status else "it took the connection, as ours"
    return Failure(
        "client_auth_not_enforced",
        f"the server also let in a client with no certificate ({answered}): it verifies "
        "the certificates it is sent and takes none as well (Java's wantClientAuth, "
        "nginx's ssl_verify_client optional, openssl s_server -verify where -Verify was "
        "meant): require one",
    )


def _lets_in_anyone(report: Report, timeout: float) -> Failure | None:
    """``--require-client-auth``, once our certificate was asked for and let in: would a
    certificate no CA issued be let in too? A server that asks and verifies nothing
    (nginx's ``ssl_verify_client optional_no_ca``, ``openssl s_server -verify`` without
    ``-verify_return_error``) passed the gate. One more connection, with a self-signed
    certificate made for it (``None``: refused, as it should be)."""
    throwaway = Keystore.generate("throwaway", _THROWAWAY, key_type="EC", days=1)
    context = client_context(throwaway, verify=False)  # the server was verified already

    def h2() -> ssl.SSLContext:
        # An HTTP/2-only server (gRPC) closes HTTP/1.1 unanswered, which reads as a
        # refusal: it is asked over h2 too, as our certificate was (h209: such a server
        # letting anyone in passed the gate).
        fresh = client_context(throwaway, verify=False)
        fresh.set_alpn_protocols(["h2"])
        return fresh

    # verify=False: nothing of the server is judged again (h207: a revocation report of
    # it, with no anchors, added a note contradicting the first connection's).
    other = run_probe(
        report.target,
        Setup(context, "options", client_subject=_THROWAWAY, verify=False, h2=h2),
        timeout=timeout,
    )
    if other.failure is not None and other.failure.kind == "client_cert_refused":
        report.notes.append(
            "a self-signed certificate no CA issued (made for this check) was refused, "
            "as it should be"
        )
        return None
    if other.failure is not None or not other.accepted or not other.sent_certificate:
        why = other.failure.kind if other.failure is not None else "no verdict on it"
        report.notes.append(
            "a self-signed certificate no CA issued (made for this check) could not be "
            f"judged ({why}): whether the server lets such certificates in is not known"
        )
        return None
    return Failure(
        "client_auth_not_enforced",
        "the server also let in a self-signed certificate no CA issued (made for this "
        "check): it asks for a client certificate and verifies none (nginx's "
        "ssl_verify_client optional_no_ca, openssl s_server -verify or -Verify without "
        "-verify_return_error): require one it trusts",
    )


def _stores_java_reads_otherwise(report: Report, notes: list[str]) -> None:
    """A store of the probed profile that WSO2's gateway reads otherwise (a PKCS#12
    truststore without Java's trust attribute, which Java reads as empty): the probe
    said OK where the gateway fails (h260). A failure with the gateway's files, as
    Java's other refusals; the notes come only from a profile file or deployment.toml."""
    setup = report.setup
    stores = [path for path in (setup.keystore, setup.truststore) if path]
    said = [note for note in notes if any(f": {path}: " in note for path in stores)]
    if not said:
        return
    if report.failure is None and setup_is_gateways(report):
        report.failure = Failure(
            "java_cannot_read_store",
            f"WSO2's gateway (Java) cannot use a store the probe used, which mtls reads: {said[0]}",
        )
        said = said[1:]
    report.notes.extend(said)


def cmd_probe(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls probe URL``: exit 0 when the exchange works, 1 when it fails (with the reason)."""
    target = parse_target(args.url)
    if (args.profiles or args.deployment_toml) and (args.keystore or args.truststore):
        raise UsageError("use --profiles (or --deployment-toml), or --keystore/--truststore")
    if args.alias is not None and not args.keystore:
        # Never silently ignored: the probe would present another key than meant.
        raise UsageError(
            "--alias names a key entry of --keystore: give --keystore FILE too (with "
            "--profiles, a profile's <KeyStore> names its own)"
        )
    if args.client_id is not None and not (args.profiles or args.deployment_toml):
        raise UsageError(
            "--client-id picks among the profiles of --profiles or --deployment-toml: "
            "give one of them too"
        )
    about_us: Callable[[str], bool] = lambda message: True  # noqa: E731
    if args.profiles or args.deployment_toml:
        with load_profile_set(args, args.profiles) as profiles:
            checker = profiles.revocation
            if checker is not None:
                # --timeout bounds the enforced check too: each fetch and the whole.
                # This set is the command's own (built above, never handed out).
                policy = checker.policy
                checker.policy = dataclasses.replace(
                    policy,
                    timeout=min(policy.timeout, args.timeout),
                    check_timeout=min(policy.check_timeout, args.timeout),
                )
            setup = setup_from_profiles(profiles, target, args.client_id)
            about_us = _about_probed_profile(profiles.status().to_dict(), setup, target)
    else:
        setup = setup_from_options(args, target, out)
    report = run_probe(target, setup, timeout=args.timeout)
    if args.require_client_auth and report.failure is None:
        report.failure = (
            _client_auth_not_enforced(report)
            or _lets_in_anyone(report, args.timeout)
            or _lets_in_without_one(report, args.timeout)
        )
    # The revocation section shows each certificate's status and why: the checker's
    # log line for each undetermined one said it again (61 notes for a 61-deep chain).
    shown = tuple(
        f"revocation status of {entry.get('subject')} (serial {entry.get('serial')}) "
        "could not be determined"
        for entry in report.revocation
    )
    report.notes.extend(
        m
        for m in logs.messages
        if "skipped (skip_failures)" not in m and about_us(m) and not m.startswith(shown)
    )
    _stores_java_reads_otherwise(report, logs.store_java_notes)
    if args.json:
        out.json(report.to_json())
    else:
        render(report, out)
    if report.failure is not None:
        message = report.failure.message
        out.error(message if target.server in message else f"{target.server}: {message}")
        return EXIT_FAILURE
    return EXIT_OK
