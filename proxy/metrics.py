"""
Prometheus metrics. Per-frame counts are plain integers in `Totals`, read by a collector
at scrape time, so the hot path never takes a lock; per-session and per-request events
use prometheus-client's own counters. Labels are fixed, low-cardinality words: never an
id, a path with ids, a key or a reason text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


@attrs.define
class Totals:
    """Frame counts the relay increments directly."""

    frames: dict[str, int] = attrs.field(factory=lambda: {"client": 0, "server": 0})
    bytes: dict[str, int] = attrs.field(factory=lambda: {"client": 0, "server": 0})
    undecodable: dict[str, int] = attrs.field(factory=lambda: {"client": 0, "server": 0})
    records_written: int = 0
    records_dropped: int = 0


class _TotalsCollector(Collector):
    def __init__(self, totals: Totals) -> None:
        self._totals = totals

    def collect(self) -> Iterator[CounterMetricFamily]:
        t = self._totals
        for name, doc, values in (
            ("earshot_frames", "WebSocket frames relayed, by direction", t.frames),
            ("earshot_frame_bytes", "WebSocket payload bytes relayed, by direction", t.bytes),
            ("earshot_undecodable_frames", "Frames that were not decodable events", t.undecodable),
        ):
            family = CounterMetricFamily(name, doc, labels=["direction"])
            for direction, value in values.items():
                family.add_metric([direction], value)
            yield family
        yield CounterMetricFamily(
            "earshot_log_records_written", "Log records written", value=t.records_written
        )
        yield CounterMetricFamily(
            "earshot_log_records_dropped", "Log records dropped", value=t.records_dropped
        )


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the event loop
        return 0.0


class Metrics:
    """The process's metrics, in a registry of its own (one per app: tests stay isolated)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.totals = Totals()
        self.registry.register(_TotalsCollector(self.totals))
        # process_resident_memory_bytes, process_open_fds, CPU seconds: what a soak test
        # and an operator watch for growth.
        ProcessCollector(registry=self.registry)
        self.tasks = Gauge(
            "earshot_asyncio_tasks", "asyncio tasks alive in this process", registry=self.registry
        )
        self.tasks.set_function(_task_count)
        self.sessions_active = Gauge(
            "earshot_sessions_active", "Open WebSocket sessions", registry=self.registry
        )
        self.sessions = Counter(
            "earshot_sessions", "WebSocket sessions accepted", ["protocol"], registry=self.registry
        )
        self.upstream_failures = Counter(
            "earshot_upstream_failures",
            "Failures to reach or keep the upstream, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.rest_requests = Counter(
            "earshot_rest_requests",
            "REST requests, by route and status class",
            ["route", "status"],
            registry=self.registry,
        )

    def written(self, n: int) -> None:
        self.totals.records_written += n

    def dropped(self, n: int) -> None:
        self.totals.records_dropped += n
