"""Prometheus metrics of the realtime process, one registry per app.

A registry per app instead of the global default: tests build many apps in
one process, and two apps must not share (or collide on) counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._refreshers: list[Callable[[], None]] = []
        r = self.registry
        self.cache_version = Gauge("aitrader_price_cache_version", "PriceCache version", registry=r)
        self.sse_clients = Gauge("aitrader_sse_clients", "Connected SSE clients", registry=r)
        self.ws_clients = Gauge("aitrader_ws_clients", "Connected WebSocket clients", registry=r)
        self.bus_lag = Gauge(
            "aitrader_bus_pending",
            "Bus entries delivered but not acknowledged",
            ["stream"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "aitrader_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.suggestion_latency = Histogram(
            "aitrader_suggestion_latency_seconds",
            "From a pattern signal's tick to its suggestion's publication (live signals only)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.stream_lag = Gauge(
            "aitrader_market_stream_lag_seconds",
            "Replica: now minus the publication time of the newest prices message applied",
            registry=r,
        )
        self.breaker_open = Gauge(
            "aitrader_model_breaker_open",
            "1 while the strategy engine's models are paused after repeated failures",
            ["component"],
            registry=r,
        )

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Let a gauge read its value at scrape time (no bookkeeping on the hot path)."""
        gauge.set_function(read)

    def watch_labelled(self, gauge: Gauge, read: Callable[[], Mapping[str, float]]) -> None:
        """Refresh a labelled gauge from a component's own dict at scrape time."""

        def refresh() -> None:
            for label, value in read().items():
                gauge.labels(label).set(value)

        self._refreshers.append(refresh)

    def refresh(self) -> None:
        for refresh in self._refreshers:
            refresh()

    def count_value(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A counter without labels whose value a component keeps itself."""
        self.count_labelled(name, doc, (), lambda: {(): read()})

    def count_from(
        self, name: str, doc: str, label: str, read: Callable[[], Mapping[str, float]]
    ) -> None:
        """A counter whose values a component keeps itself (plain ints), read at scrape time."""
        self.count_labelled(
            name, doc, (label,), lambda: {(key,): value for key, value in read().items()}
        )

    def count_labelled(
        self,
        name: str,
        doc: str,
        labels: tuple[str, ...],
        read: Callable[[], Mapping[Any, float]],  # label values (a tuple) -> count
    ) -> None:
        """As `count_from`, with several labels: `read` maps label values to a count."""
        self.registry.register(_ReadCounter(name, doc, labels, read))


class _ReadCounter(Collector):
    def __init__(
        self,
        name: str,
        doc: str,
        labels: tuple[str, ...],
        read: Callable[[], Mapping[Any, float]],  # label values (a tuple) -> count
    ) -> None:
        self._name, self._doc, self._labels, self._read = name, doc, labels, read

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=list(self._labels))
        for values, value in self._read().items():
            family.add_metric(list(values), value)
        yield family
