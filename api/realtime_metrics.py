"""Exporting the realtime runtime's own counters as Prometheus metrics.

The realtime parts keep plain ints and dicts (no Prometheus in realtime/); this
registers readers of them at scrape time, once the runtime has started and it
is known which parts this role runs. Metric names are the same in every role,
so one dashboard reads an embedded process, an ingest process and a replica.
"""

from __future__ import annotations

from api.metrics import Metrics
from realtime.runtime import Runtime


def export_runtime(metrics: Metrics, runtime: Runtime) -> None:
    """Register everything `runtime` counts; parts this role does not run are left out."""
    cache, hub, ws_hub = runtime.cache, runtime.hub, runtime.ws_hub
    metrics.count_value(
        "aitrader_ticks_processed",
        "Ticks (on a replica: followed entries) written to the PriceCache",
        lambda: runtime.ticks,
    )
    metrics.watch(metrics.cache_version, lambda: cache.version)
    metrics.watch(metrics.sse_clients, lambda: hub.clients)
    metrics.watch(metrics.ws_clients, lambda: ws_hub.clients)
    metrics.watch_labelled(metrics.bus_lag, lambda: runtime.bridge.lag_s)
    metrics.count_from(
        "aitrader_dropped_messages",
        "Messages dropped for slow clients",
        "channel",
        lambda: {"ws": ws_hub.dropped},
    )
    metrics.count_from(
        "aitrader_book_events",
        "Order book messages applied and refused, gaps and resyncs",
        "event",
        runtime.books.counters,
    )
    if (news := runtime.news) is not None:
        metrics.count_from(
            "aitrader_news",
            "Live news items by what happened to them",
            "event",
            lambda: {
                "received": news.received,
                "inserted": news.inserted,
                "unchanged": news.unchanged,
                "rejected": news.rejected,
                "write_failed": news.write_failures,
                "dropped": news.dropped,
            },
        )
    if runtime.signals is not None:
        metrics.count_from(
            "aitrader_signals",
            "Pattern signals by what happened to them",
            "event",
            runtime.signal_counters,
        )
    if (strategy := runtime.strategy) is not None:
        metrics.count_from(
            "aitrader_suggestions",
            "Suggestions by what happened to them",
            "event",
            strategy.counters_now,
        )
        metrics.count_labelled(
            "aitrader_inference",
            "Model calls per model, path and outcome (a race's wins, errors, fallbacks)",
            ("model", "path", "outcome"),
            strategy.models.stats,
        )
        metrics.watch_labelled(
            metrics.breaker_open,
            lambda: {"models": 1.0 if strategy.breaker.state == "open" else 0.0},
        )
    if (publisher := runtime.publisher) is not None:
        metrics.count_from(
            "aitrader_market_published",
            "Ingest tier: market-data messages sent to the replicas, and failed steps",
            "event",
            publisher.counters,
        )
    if (follower := runtime.follower) is not None:
        metrics.count_from(
            "aitrader_market_followed",
            "Replica: market-data messages read, entries applied, snapshots, unreadable",
            "event",
            follower.counters,
        )
        metrics.watch(metrics.stream_lag, lambda: follower.lag_s)
