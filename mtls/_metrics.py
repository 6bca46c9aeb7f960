"""The numbers a profile set exposes to monitoring, made from one ``status()``.

One definition for every exporter: :mod:`mtls.integrations.prometheus` and
:mod:`mtls.integrations.otel` both turn :func:`metrics` into their own types at
collection time (nothing is counted twice, nothing is kept between scrapes, and no
file is read or context built: ``status()`` reads the current snapshot).

Names follow Prometheus conventions: base units (seconds), timestamps as Unix time,
``_total`` on counters (added by the exporter).
"""

from __future__ import annotations

import datetime as _dt
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import shown_text
from ._log import log
from ._status import ProfileSetStatus, ProfileStatus
from ._types import hex_serial

__all__ = ["Metric", "metrics", "set_metrics"]

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family and its samples.

    Attributes:
        name: the Prometheus name (counters without ``_total``).
        kind: ``gauge`` or ``counter``.
        help: one line for ``# HELP``.
        unit: the unit (``seconds``, or ``""``).
        samples: (labels, value) pairs.
    """

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    unit: str
    samples: tuple[tuple[Labels, float], ...]


# Every result an online check gives: exported from 0, so that an increase() alert
# sees the first "revoked" (a series that appears at 2 has no increase to show).
_REVOCATION_RESULTS = ("good", "revoked", "undetermined")


def _profile_label(entry: ProfileStatus, default: bool) -> str:
    return "(default)" if default else ",".join(entry.servers)


def _certificates(
    entry: ProfileStatus,
) -> Iterator[tuple[str, str, str, str | None, _dt.datetime | None, int | None]]:
    """(store, role, alias, subject, not_after, serial) of each certificate the profile
    uses; ``store`` is the file it was read from (as configured), or ``""``."""
    # A path with a byte that is not UTF-8 (a lone surrogate) failed the whole scrape.
    stores = {f.role: shown_text(f.path) for f in entry.files}
    ident = entry.identity
    if ident is not None:
        # The key entry's alias: two profiles on one keystore with two key aliases are
        # two series, whatever order the profiles are walked in.
        keystore, key = stores.get("keystore", ""), shown_text(ident.alias or "")
        yield keystore, "identity", key, ident.subject, ident.not_after, ident.serial
        for cert in ident.chain:
            yield keystore, "chain", key, cert.subject, cert.not_after, cert.serial
    truststore = stores.get("truststore", "")
    for cert in entry.anchors:
        yield (
            truststore,
            "anchor",
            shown_text(cert.alias),
            cert.subject,
            cert.not_after,
            cert.serial,
        )


def metrics(status: ProfileSetStatus, set_name: str) -> list[Metric]:
    """The profile set's metrics from one status record.

    Args:
        status: ``profiles.status()``.
        set_name: the ``set`` label (tells two sets in one process apart).

    Returns:
        ``mtls_certificate_expiry_timestamp_seconds`` (per store file and certificate:
        client certificates, their chains, the anchors expiring soonest; a store
        shared by many profiles is exported once), ``mtls_profile_healthy`` (per
        profile), ``mtls_profiles`` (by state), ``mtls_reloads`` (counter, by outcome),
        ``mtls_revocation_checks`` (counter, by result),
        ``mtls_last_reload_timestamp_seconds``, ``mtls_last_check_timestamp_seconds``
        and ``mtls_set_healthy`` (0 while the set has any error: a profile's, the
        profile file's, or a check that has not returned; or while peers refuse a
        profile's handshakes: :attr:`ProfileStatus.refused`).
    """
    base: Labels = (("set", shown_text(set_name)),)
    expiry: dict[Labels, float] = {}
    crls: dict[Labels, float] = {}
    healthy: list[tuple[Labels, float]] = []
    states = {"healthy": 0, "failing": 0, "not_loaded": 0}
    entries = [(p, False) for p in status.profiles]
    if status.default is not None:
        entries.append((status.default, True))
    # status() shares one record per material: a profile whose records and files are
    # those of one already walked adds nothing (10,000 profiles on two stores: one walk).
    walked: set[tuple[int, int, tuple[tuple[str, str], ...]]] = set()
    for entry, is_default in entries:
        who: Labels = (
            *base,
            ("profile", shown_text(_profile_label(entry, is_default))),
            ("client_id", shown_text(entry.client_id or "")),
        )
        ok = entry.healthy
        healthy.append((who, 1.0 if ok else 0.0))
        states["healthy" if ok else "failing" if entry.loaded else "not_loaded"] += 1
        files = tuple((f.role, f.path) for f in entry.files)
        shared = (id(entry.identity), id(entry.anchors), files)
        if shared in walked:
            continue
        walked.add(shared)
        for f in entry.files:
            if f.role == "crl" and f.next_update is not None:
                crls.setdefault((*base, ("store", shown_text(f.path))), f.next_update.timestamp())
        for store, role, alias, subject, not_after, serial in _certificates(entry):
            if not_after is None:
                continue
            labels: Labels = (
                *base,
                ("store", store),
                ("role", role),
                ("alias", alias),
                ("subject", subject or ""),
                ("serial", hex_serial(serial) if serial is not None else ""),
            )
            expiry.setdefault(labels, not_after.timestamp())
    return [
        Metric(
            "mtls_certificate_expiry_timestamp_seconds",
            "gauge",
            "When a certificate in use expires (Unix time), per store file: client "
            "certificates, their chains, and the trust anchors expiring soonest.",
            "seconds",
            tuple(expiry.items()),
        ),
        Metric(
            "mtls_crl_next_update_timestamp_seconds",
            "gauge",
            "When a CRL file in use must be replaced (its nextUpdate, Unix time): after "
            "it, every handshake the list checks is refused.",
            "seconds",
            tuple(crls.items()),
        ),
        Metric(
            "mtls_profile_healthy",
            "gauge",
            "1 when the profile is served from current material without error, else 0.",
            "",
            tuple(healthy),
        ),
        Metric(
            "mtls_profiles",
            "gauge",
            "Profiles by state: healthy, failing (served from its last good material), "
            "not_loaded (its hosts are refused).",
            "",
            tuple(((*base, ("state", s)), float(n)) for s, n in states.items()),
        ),
        Metric(
            "mtls_reloads",
            "counter",
            "Reload checks by outcome: changed, unchanged, failed.",
            "",
            tuple(((*base, ("outcome", k)), float(v)) for k, v in status.reloads.to_dict().items()),
        ),
        Metric(
            "mtls_revocation_checks",
            "counter",
            "Online revocation checks of server certificates by result.",
            "",
            tuple(((*base, ("result", k)), float(v)) for k, v in _revocation(status)),
        ),
        Metric(
            "mtls_last_reload_timestamp_seconds",
            "gauge",
            "When the last change was applied, or the set first loaded (Unix time).",
            "seconds",
            ((base, status.last_reload.timestamp()),),
        ),
        Metric(
            "mtls_last_check_timestamp_seconds",
            "gauge",
            "When the last reload check ended, change or not (Unix time): with a reload "
            "thread, older than a few intervals means it is stuck.",
            "seconds",
            ((base, (status.last_check or status.last_reload).timestamp()),),
        ),
        Metric(
            "mtls_set_healthy",
            "gauge",
            "1 when the set has no error (no profile's, no profile file's, no check that "
            "has not returned), else 0.",
            "",
            ((base, 1.0 if status.healthy else 0.0),),
        ),
    ]


def _revocation(status: ProfileSetStatus) -> list[tuple[str, int]]:
    """The revocation counts, every result from 0 once checking is on."""
    counts = dict(status.revocation_checks)
    if counts or any(p.revocation is not None for p in status.profiles):
        for result in _REVOCATION_RESULTS:
            counts.setdefault(result, 0)
    return sorted(counts.items())


#: The sets whose ``status()`` failed at a collection, said once until it works again
#: (held weakly: a set closed and replaced under its name is said anew, h287).
_FAILING: weakref.WeakSet[Any] = weakref.WeakSet()
_FAILING_LOCK = threading.Lock()


def set_metrics(profiles: Any, set_name: str) -> list[Metric]:
    """:func:`metrics` of one registered set (anything with ``status()``) at a
    collection, or none when its ``status()`` raises: one set must not fail a scrape
    or collection that reports the others (and the application's own metrics beside
    them). The failure is logged once per set, by its exception's type (never its
    text: it may quote a file), until the set's status works again."""
    try:
        found = metrics(profiles.status(), set_name)
    except Exception as exc:
        with _FAILING_LOCK:
            first = profiles not in _FAILING
            _FAILING.add(profiles)
        if first:
            log.warning(
                "mtls: metrics: the status of the set %s raised %s; it is left out of "
                "this and later collections until its status works again (the other "
                "sets are reported)",
                shown_text(set_name),
                type(exc).__name__,
            )
        return []
    if _FAILING and profiles in _FAILING:
        with _FAILING_LOCK:
            _FAILING.discard(profiles)
    return found
