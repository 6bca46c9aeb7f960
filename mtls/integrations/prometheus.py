"""Prometheus metrics for profile sets: certificate expiry, profile health, reloads.

Needs ``prometheus_client`` (``pip install "mtls-profiles[prometheus]"``)::

    from mtls.integrations.prometheus import register

    unregister = register(profiles)          # the default registry
    # ... prometheus_client.start_http_server(9100), or your framework's /metrics

A collector reads ``profiles.status()`` at scrape time: nothing is counted on the
request path, nothing is kept between scrapes, and a scrape never reads a file or
builds a context. The metric families (see docs/health.md#metrics):

==============================================  =======  ==========================================
name                                            type     labels
==============================================  =======  ==========================================
``mtls_certificate_expiry_timestamp_seconds``   gauge    set, store, role, alias, subject, serial
``mtls_crl_next_update_timestamp_seconds``      gauge    set, store
``mtls_profile_healthy``                        gauge    set, profile, client_id
``mtls_profiles``                               gauge    set, state
``mtls_reloads_total``                          counter  set, outcome
``mtls_revocation_checks_total``                counter  set, result
``mtls_last_reload_timestamp_seconds``          gauge    set
``mtls_last_check_timestamp_seconds``           gauge    set
``mtls_set_healthy``                            gauge    set
==============================================  =======  ==========================================
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Iterable

from .._errors import shown_text
from .._fork import renew_attributes_after_fork
from .._metrics import Metric, set_metrics
from .._profiles import SSLProfileSet
from . import _missing_extra

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as _exc:
    raise _missing_extra("prometheus_client", "prometheus", _exc) from _exc

__all__ = ["ProfileSetCollector", "register"]


class ProfileSetCollector(Collector):
    """The collector :func:`register` adds to a registry: every profile set registered
    with that registry, one family per metric, told apart by the ``set`` label.

    Sets are held weakly: one that is garbage-collected or closed drops out of the
    scrape, and its name is free for the set that replaces it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # A scrape under way in another thread at a fork would hold it for good.
        renew_attributes_after_fork(self, "_lock")
        self._sets: dict[str, weakref.ref[SSLProfileSet]] = {}

    def add(self, profiles: SSLProfileSet, name: str) -> Callable[[], None]:
        """Scrape ``profiles`` as ``set=name``; returns the function that stops it.

        Raises:
            ValueError: another set, open and alive, is registered under ``name``.
            TypeError: ``profiles`` is not an :class:`mtls.SSLProfileSet`.
        """
        _check_set(profiles)
        name = shown_text(name)  # as the set label shows it: two names, one series
        with self._lock:
            known = self._sets.get(name)
            held = known() if known is not None else None
            if held is not None and held is not profiles and not held.closed:
                raise ValueError(
                    f"a profile set is already registered as set={name!r}: give this one "
                    "another name (register(profiles, name=...))"
                )
            ref = weakref.ref(profiles)
            self._sets[name] = ref

        def remove() -> None:
            with self._lock:
                if self._sets.get(name) is ref:
                    del self._sets[name]

        return remove

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """Nothing: the families are made at scrape time (registering reads no status)."""
        return ()

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        """One status per registered set, merged into one family per metric."""
        with self._lock:
            sets = [(name, ref()) for name, ref in self._sets.items()]
        merged: dict[str, Metric] = {}
        for name, profiles in sets:
            if profiles is None or profiles.closed:
                continue
            for metric in set_metrics(profiles, name):
                seen = merged.get(metric.name)
                merged[metric.name] = (
                    metric
                    if seen is None
                    else Metric(
                        seen.name, seen.kind, seen.help, seen.unit, seen.samples + metric.samples
                    )
                )
        for metric in merged.values():
            yield _family(metric)


def _check_set(profiles: object) -> None:
    """Refused at once: anything else registered failed every later scrape of the
    registry (the application's own metrics too) on its first missing attribute."""
    if not isinstance(profiles, SSLProfileSet):
        raise TypeError(
            f"register() takes an SSLProfileSet, not {type(profiles).__name__}: a "
            "RotatingServerContext reports through status() and on_health()"
        )


def _family(metric: Metric) -> GaugeMetricFamily | CounterMetricFamily:
    names = [key for key, _ in metric.samples[0][0]] if metric.samples else None
    family: GaugeMetricFamily | CounterMetricFamily
    if metric.kind == "counter":
        family = CounterMetricFamily(metric.name, metric.help, labels=names)
    else:
        family = GaugeMetricFamily(metric.name, metric.help, labels=names)
    for labels, value in metric.samples:
        family.add_metric([v for _, v in labels], value)
    return family


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, ProfileSetCollector] = (
    weakref.WeakKeyDictionary()
)
_registering = threading.Lock()
renew_attributes_after_fork(sys.modules[__name__], "_registering")


def register(
    profiles: SSLProfileSet,
    *,
    registry: CollectorRegistry | None = None,
    name: str | None = None,
) -> Callable[[], None]:
    """Expose a profile set's health to Prometheus.

    Args:
        profiles: the set.
        registry: where to register (default: ``prometheus_client.REGISTRY``). One
            collector per registry serves every set registered with it.
        name: the ``set`` label; default: the set's profile file, or ``profiles`` for
            a set made in code.

    Returns:
        A function that stops exposing the set.

    Raises:
        ValueError: another set, open and alive, is registered under the same ``name``.
        TypeError: ``profiles`` is not an :class:`mtls.SSLProfileSet`.
    """
    _check_set(profiles)
    target = registry if registry is not None else REGISTRY
    with _registering:
        collector = _collectors.get(target)
        if collector is None:
            collector = ProfileSetCollector()
            target.register(collector)
            _collectors[target] = collector
    return collector.add(profiles, name or profiles.status().path or "profiles")
