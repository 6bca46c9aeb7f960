"""OpenTelemetry metrics for profile sets: the same numbers as the Prometheus collector.

Needs ``opentelemetry-api`` (``pip install "mtls-profiles[otel]"``); the SDK and
exporter are the application's choice::

    from mtls.integrations.otel import instrument

    instrument(profiles)        # the global MeterProvider's meter "mtls"

Observable instruments read ``profiles.status()`` when the SDK collects: nothing is
counted on the request path. One status serves every instrument of a collection
(it is reused for at most :data:`STATUS_TTL` seconds). Instrument names are the
Prometheus names with dots (see docs/health.md#metrics); counters carry no
``_total`` (exporters add it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from .._metrics import Metric, metrics
from .._profiles import SSLProfileSet
from . import _missing_extra

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
except ImportError as _exc:
    raise _missing_extra("opentelemetry-api", "otel", _exc) from _exc

__all__ = ["STATUS_TTL", "instrument"]

#: How long one status serves the instruments of a collection (seconds).
STATUS_TTL = 1.0

# Prometheus name -> (OpenTelemetry name, unit)
_NAMES = {
    "mtls_certificate_expiry_timestamp_seconds": ("mtls.certificate.expiry_timestamp", "s"),
    "mtls_profile_healthy": ("mtls.profile.healthy", "1"),
    "mtls_profiles": ("mtls.profiles", "{profile}"),
    "mtls_reloads": ("mtls.reloads", "{check}"),
    "mtls_revocation_checks": ("mtls.revocation.checks", "{check}"),
    "mtls_last_reload_timestamp_seconds": ("mtls.last_reload_timestamp", "s"),
}


class _Reader:
    """One ``metrics()`` list per collection, shared by the instruments' callbacks."""

    def __init__(self, profiles: SSLProfileSet, name: str) -> None:
        self._profiles = profiles
        self._name = name
        self._lock = threading.Lock()
        self._at = -1e9
        self._metrics: dict[str, Metric] = {}

    def observe(self, metric: str) -> Iterable[Observation]:
        with self._lock:
            now = time.monotonic()
            if now - self._at > STATUS_TTL:
                found = metrics(self._profiles.status(), self._name)
                self._metrics = {m.name: m for m in found}
                self._at = now
            current = self._metrics[metric]
        return [Observation(value, dict(labels)) for labels, value in current.samples]


def instrument(
    profiles: SSLProfileSet,
    *,
    meter_provider: MeterProvider | None = None,
    name: str | None = None,
) -> Meter:
    """Create observable instruments that report a profile set's health.

    Args:
        profiles: the set.
        meter_provider: default: the global one (``opentelemetry.metrics``).
        name: the ``set`` attribute; default: the set's profile file, or ``profiles``.

    Returns:
        The meter (``"mtls"``) the instruments were created on.
    """
    provider = meter_provider or otel_metrics.get_meter_provider()
    meter = provider.get_meter("mtls")
    reader = _Reader(profiles, name or profiles.status().path or "profiles")
    for metric in metrics(profiles.status(), "-"):  # the definitions, not the values
        otel_name, unit = _NAMES[metric.name]

        def callback(
            options: CallbackOptions, metric_name: str = metric.name
        ) -> Iterable[Observation]:
            del options
            return reader.observe(metric_name)

        make: Callable[..., object] = (
            meter.create_observable_counter
            if metric.kind == "counter"
            else meter.create_observable_gauge
        )
        make(otel_name, callbacks=[callback], unit=unit, description=metric.help)
    return meter
