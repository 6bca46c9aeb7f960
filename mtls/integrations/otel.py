"""OpenTelemetry metrics for profile sets: the same numbers as the Prometheus collector.

Needs ``opentelemetry-api`` (``pip install "mtls-profiles[otel]"``); the SDK and
exporter are the application's choice::

    from mtls.integrations.otel import instrument, uninstrument

    instrument(profiles)        # the global MeterProvider's meter "mtls"
    ...
    uninstrument(profiles)      # stop reporting it (a dropped set stops by itself)

Observable instruments read ``profiles.status()`` when the SDK collects: nothing is
counted on the request path. One status serves every instrument of a collection
(it is reused for at most :data:`STATUS_TTL` seconds). Instrument names are the
Prometheus names with dots (see docs/health.md#metrics); counters carry no
``_total`` (exporters add it).
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable

from .._errors import shown_text
from .._fork import renew_attributes_after_fork
from .._log import log
from .._metrics import Labels, Metric, metrics, set_metrics
from .._profiles import SSLProfileSet
from . import _missing_extra

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
except ImportError as _exc:
    raise _missing_extra("opentelemetry-api", "otel", _exc) from _exc

__all__ = ["STATUS_TTL", "instrument", "uninstrument"]

STATUS_TTL = 1.0
"""How long one ``status()`` serves the instruments of a collection, in seconds."""

# Prometheus name -> (OpenTelemetry name, unit)
_NAMES = {
    "mtls_certificate_expiry_timestamp_seconds": ("mtls.certificate.expiry_timestamp", "s"),
    "mtls_crl_next_update_timestamp_seconds": ("mtls.crl.next_update_timestamp", "s"),
    "mtls_profile_healthy": ("mtls.profile.healthy", "1"),
    "mtls_profiles": ("mtls.profiles", "{profile}"),
    "mtls_reloads": ("mtls.reloads", "{check}"),
    "mtls_revocation_checks": ("mtls.revocation.checks", "{check}"),
    "mtls_last_reload_timestamp_seconds": ("mtls.last_reload_timestamp", "s"),
    "mtls_last_check_timestamp_seconds": ("mtls.last_check_timestamp", "s"),
    "mtls_set_healthy": ("mtls.set.healthy", "1"),
}


#: Counter values by metric and attributes.
Totals = dict[str, dict[Labels, float]]


class _Series:
    """The counters reported under one set name, whichever set reports them: a set
    closed and replaced under its name (as the docs advise) made every counter fall to
    the new set's counts under the same start time, a decrease OpenTelemetry's
    exporters read as a negative delta (h276, h277, h280). A reader reports its set's
    counts on top of a base: what the name had reported when it began, or, for the set
    that reported there last coming back (instrumented again, put back after
    uninstrument or a rename), the base it had. Only one reader reports under a name at
    a time, and each begins after the one before it stopped, so nothing falls."""

    __slots__ = ("base", "last", "owner")

    def __init__(self) -> None:
        self.last: Totals = {}  # the counters as last reported under the name
        self.owner: weakref.ref[SSLProfileSet] | None = None  # the set that reported them
        self.base: Totals = {}  # the base that set reported on

    def begin(self, profiles: SSLProfileSet) -> Totals:
        """The base for ``profiles``' reader, which reports under this name from now on."""
        if self.owner is None or self.owner() is not profiles:
            self.owner = weakref.ref(profiles)
            self.base = {metric: dict(values) for metric, values in self.last.items()}
        return self.base


class _Reader:
    """One ``metrics()`` list per collection and set, shared by the instruments'
    callbacks. The set is held weakly: one that is garbage-collected reports nothing.
    Its counters are reported on the base its name's :class:`_Series` gave it."""

    def __init__(self, profiles: SSLProfileSet, name: str, series: _Series | None = None) -> None:
        self.profiles = weakref.ref(profiles)
        self._name = name
        self._lock = threading.Lock()
        # A collection under way in another thread at a fork would hold it for good.
        renew_attributes_after_fork(self, "_lock")
        self._at = -1e9
        self._metrics: dict[str, Metric] = {}
        self._series = series if series is not None else _Series()
        self._base = self._series.begin(profiles)
        self._retired = False

    def retire(self) -> None:
        """Report nothing more (a collection under way when the set is dropped would
        report after the next reader under its name began, h277), and leave the set's
        counters as they are now to its name: what it counted since the last collection
        went with it (h280)."""
        with self._lock:
            self._retired = True
            profiles = self.profiles()
            if profiles is None:
                return
            try:
                found = metrics(profiles.status(), self._name)
            except Exception:  # never fails a collection or a drop; the last reported stay
                return
            for metric in found:
                if metric.kind == "counter":
                    self._series.last[metric.name] = self._counts(metric)

    def _counts(self, metric: Metric) -> dict[Labels, float]:
        """``metric``'s counters on this reader's base."""
        base = self._base.get(metric.name, {})
        counts = {**base}
        for labels, value in metric.samples:
            counts[labels] = value + base.get(labels, 0.0)
        return counts

    def observe(self, metric: str) -> list[Observation]:
        profiles = self.profiles()
        if profiles is None:
            return []
        with self._lock:
            if self._retired:
                return []
            now = time.monotonic()
            if now - self._at > STATUS_TTL:
                found = set_metrics(profiles, self._name)
                self._metrics = {m.name: m for m in found}
                self._at = now
            current = self._metrics.get(metric)
            if current is None:
                return []  # its status() raised (said by set_metrics): the others report
            if current.kind == "counter":
                counts = self._series.last[metric] = self._counts(current)
                return [Observation(value, dict(labels)) for labels, value in counts.items()]
        if metric == _EXPIRY:
            return _stable_expiry(current)
        return [Observation(value, dict(labels)) for labels, value in current.samples]


#: Names whose counters are kept for a set that may replace theirs (the oldest
#: forgotten past it: a program naming a set anew each time grew it for good, h277).
SERIES_NAMES = 1024


_EXPIRY = "mtls_certificate_expiry_timestamp_seconds"
_CHANGING = ("subject", "serial")  # new with every certificate a rotation brings


def _stable_expiry(metric: Metric) -> list[Observation]:
    """The expiry gauge without the attributes each rotation changes, ``position`` (in
    a store's chain, or among an alias's anchors) in their place. The SDK keeps every
    attribute set an instrument ever reported (cumulative): with ``subject`` and
    ``serial``, each rotation added one for good, and past 2,000 (one profile rotated
    hourly for 83 days) the current certificate was reported under
    ``otel.metric.overflow`` without its store or role. Prometheus keeps nothing
    between scrapes and keeps both labels.

    ``alias`` likewise, where it tells nothing apart: a store whose role has one alias
    in use (a keystore's one key, a truststore's one anchor) reports it as ``""``, for
    a rotation may bring another (``gateway-2026`` to ``gateway-2027``: h213 saw a new
    attribute set at each such rotation, overflowing in a soak). Two key aliases of one
    keystore in use keep theirs (two profiles' ``<KeyAlias>``: a stable setting)."""
    rows = []
    aliases: dict[tuple[str, ...], set[str]] = {}  # per set, store and role
    for labels, value in metric.samples:
        attributes = {k: v for k, v in labels if k not in _CHANGING}
        group = tuple(v for k, v in attributes.items() if k != "alias")
        aliases.setdefault(group, set()).add(attributes.get("alias", ""))
        rows.append((group, attributes, value))
    seen: dict[tuple[str, ...], int] = {}
    points = []
    for group, attributes, value in rows:
        if "alias" in attributes and len(aliases[group]) == 1:
            attributes["alias"] = ""
        key = tuple(attributes.values())
        position = seen.get(key, 0)
        seen[key] = position + 1
        attributes["position"] = str(position)
        points.append(Observation(value, attributes))
    return points


#: The series an OpenTelemetry SDK keeps per instrument by default (the specification's
#: cardinality limit); more are merged into one ``otel.metric.overflow`` point.
SDK_SERIES = 2000


class _Instruments:
    """The instruments of one meter provider, created once, and the sets they report
    (the SDK keeps the first callbacks of an instrument created twice and drops the
    others: a second set given instruments of its own would never be reported)."""

    def __init__(self, meter: Meter, definitions: list[Metric]) -> None:
        self.meter = meter
        self._lock = threading.Lock()
        renew_attributes_after_fork(self, "_lock")
        self._readers: dict[str, _Reader] = {}
        self._series: dict[str, _Series] = {}  # by name (see _Series)
        self._crowded: set[str] = set()  # instruments said to report past SDK_SERIES
        for metric in definitions:
            otel_name, unit = _NAMES[metric.name]

            def callback(
                options: CallbackOptions, metric_name: str = metric.name
            ) -> Iterable[Observation]:
                del options
                return self._observe(metric_name)

            make: Callable[..., object] = (
                meter.create_observable_counter
                if metric.kind == "counter"
                else meter.create_observable_gauge
            )
            make(otel_name, callbacks=[callback], unit=unit, description=metric.help)

    def _observe(self, metric: str) -> list[Observation]:
        with self._lock:
            self._drop(None)
            readers = list(self._readers.values())
        points = [point for reader in readers for point in reader.observe(metric)]
        if len(points) > SDK_SERIES and metric not in self._crowded:
            self._crowded.add(metric)  # said once per instrument
            log.warning(
                "mtls: OpenTelemetry: %s reports %d series; an OpenTelemetry SDK keeps "
                "%d per instrument unless told more, and reports the rest as one point "
                "(otel.metric.overflow, without store or profile): raise the limit with "
                "View(instrument_name=%r, aggregation_cardinality_limit=...) in your "
                "MeterProvider (Prometheus has no such limit)",
                _NAMES[metric][0],
                len(points),
                SDK_SERIES,
                _NAMES[metric][0],
            )
        return points

    def _drop(self, profiles: SSLProfileSet | None) -> bool:
        """Forget ``profiles``' reader and those of sets gone or closed; True if
        ``profiles`` had one."""
        had = False
        for name, reader in list(self._readers.items()):
            found = reader.profiles()
            if found is None or found.closed or found is profiles:
                del self._readers[name]
                had = had or (profiles is not None and found is profiles)
                reader.retire()
        return had

    def add(self, profiles: SSLProfileSet, name: str) -> None:
        name = shown_text(name)  # as the set attribute shows it: two names, one series
        with self._lock:
            self._drop(None)
            known = self._readers.get(name)
            if known is not None and known.profiles() is not profiles:
                raise ValueError(
                    f"a profile set is already instrumented as set={name!r}: give this one "
                    "another name (instrument(profiles, name=...)), or close the other"
                )
            self._drop(profiles)  # under another name before: one set, one name
            series = self._series.pop(name, None) or _Series()
            self._series[name] = series  # the most recent name last
            if len(self._series) > SERIES_NAMES:
                # The oldest name no set reports under now (h281: a name in use since
                # start-up was the first forgotten, and its counter fell at a replacement).
                idle = next((n for n in self._series if n not in self._readers), None)
                if idle is not None:
                    del self._series[idle]
            self._readers[name] = _Reader(profiles, name, series)

    def remove(self, profiles: SSLProfileSet) -> bool:
        with self._lock:
            return self._drop(profiles)


# Instruments by meter provider. Before the application sets the global provider,
# OpenTelemetry hands out a proxy whose meters forward to the provider set later: the
# instruments made through it are that provider's, so the proxy's entry serves it too.
_providers: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()
_through_proxy: _Instruments | None = None
_instrumenting = threading.Lock()
renew_attributes_after_fork(sys.modules[__name__], "_instrumenting")


def _is_proxy(provider: MeterProvider) -> bool:
    return type(provider).__name__ == "_ProxyMeterProvider"


def _instruments(
    meter_provider: MeterProvider | None, profiles: SSLProfileSet | None = None
) -> _Instruments | None:
    """The provider's instruments; created (from ``profiles``' metric definitions)
    when there are none yet and ``profiles`` is given."""
    global _through_proxy  # noqa: PLW0603 - one proxy per process, as the global provider
    current = otel_metrics.get_meter_provider()
    provider = current if meter_provider is None else meter_provider
    with _instrumenting:
        if _is_proxy(provider):
            found = _through_proxy
        else:
            found = _providers.get(provider)
            if found is None and _through_proxy is not None and provider is current:
                # Made through the proxy before this provider became the global one.
                found = _providers[provider] = _through_proxy
        if found is None and profiles is not None:
            definitions = metrics(profiles.status(), "-")  # the definitions, not the values
            found = _Instruments(provider.get_meter("mtls"), definitions)
            if _is_proxy(provider):
                _through_proxy = found
            else:
                _providers[provider] = found
        return found


def instrument(
    profiles: SSLProfileSet,
    *,
    meter_provider: MeterProvider | None = None,
    name: str | None = None,
) -> Meter:
    """Report a profile set's health through observable instruments.

    The instruments are created once per meter provider, on its meter ``"mtls"``,
    and report every set instrumented with that provider, told apart by the ``set``
    attribute. Sets are held weakly: one that is garbage-collected or closed drops
    out, as one passed to :func:`uninstrument` does. Instrumenting a set again
    moves it to the new ``name`` (the same name: nothing changes).

    Args:
        profiles: the set.
        meter_provider: default: the global one (``opentelemetry.metrics``).
        name: the ``set`` attribute; default: the set's profile file, or ``profiles``
            for a set made in code.

    Returns:
        The meter (``"mtls"``) the instruments are on.

    Raises:
        TypeError: ``profiles`` is not an :class:`mtls.SSLProfileSet` (anything else
            failed every later collection of the provider, other sets' included).
        ValueError: another set, open and alive, is instrumented under the same
            ``name`` with this provider (as Prometheus' ``register()`` refuses it).
    """
    if not isinstance(profiles, SSLProfileSet):
        raise TypeError(
            f"instrument() takes an SSLProfileSet, not {type(profiles).__name__}: a "
            "RotatingServerContext reports through status() and on_health()"
        )
    instruments = _instruments(meter_provider, profiles)
    assert instruments is not None
    instruments.add(profiles, name or profiles.status().path or "profiles")
    return instruments.meter


def uninstrument(profiles: SSLProfileSet, *, meter_provider: MeterProvider | None = None) -> bool:
    """Stop reporting a set through the provider's instruments (which stay, as
    OpenTelemetry instruments cannot be removed, and report the other sets).

    Args:
        profiles: the set given to :func:`instrument`.
        meter_provider: the provider it was given (default: the global one).

    Returns:
        ``True`` if the set was being reported.
    """
    instruments = _instruments(meter_provider)
    return instruments is not None and instruments.remove(profiles)
