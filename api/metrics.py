"""Prometheus metrics of the realtime process, one registry per app.

A registry per app instead of the global default: tests build many apps in
one process, and two apps must not share (or collide on) counters.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ticks = Counter(
            "aitrader_ticks_processed", "Ticks written to the PriceCache", registry=r
        )
        self.cache_version = Gauge("aitrader_price_cache_version", "PriceCache version", registry=r)
        self.sse_clients = Gauge("aitrader_sse_clients", "Connected SSE clients", registry=r)
        self.ws_clients = Gauge("aitrader_ws_clients", "Connected WebSocket clients", registry=r)
        self.dropped = Counter(
            "aitrader_dropped_messages",
            "Messages dropped for slow clients",
            ["channel"],
            registry=r,
        )
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

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Let a gauge read its value at scrape time (no bookkeeping on the hot path)."""
        gauge.set_function(read)
