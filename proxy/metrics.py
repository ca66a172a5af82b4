"""
Prometheus metrics. Frame counts are not counted here: each session's `Recorder` counts
its frames already, so the collector adds the open sessions' counts to the totals of the
finished ones at scrape time, and the hot path does no extra work; per-session and
per-request events use prometheus-client's own counters. Labels are fixed,
low-cardinality words: never an id, a path with ids, a key or a reason text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

_DIRECTIONS = ("client", "server")
_COUNTED = (
    ("earshot_frames", "WebSocket frames relayed, by direction", "frames"),
    ("earshot_frame_bytes", "WebSocket payload bytes relayed, by direction", "bytes"),
    ("earshot_undecodable_frames", "Frames that were not decodable events", "undecodable"),
)


@attrs.define
class Totals:
    """Counts of finished sessions and of log records."""

    frames: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(_DIRECTIONS, 0))
    bytes: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(_DIRECTIONS, 0))
    undecodable: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(_DIRECTIONS, 0))
    records_written: int = 0
    records_dropped: int = 0


class _TotalsCollector(Collector):
    def __init__(self, totals: Totals, live: Callable[[], Iterable[Any]]) -> None:
        self._totals = totals
        self._live = live

    def collect(self) -> Iterator[CounterMetricFamily]:
        t = self._totals
        live = list(self._live())
        for name, doc, attr in _COUNTED:
            family = CounterMetricFamily(name, doc, labels=["direction"])
            for direction in _DIRECTIONS:
                open_sessions = sum(getattr(r.counts[direction], attr) for r in live)
                family.add_metric([direction], getattr(t, attr)[direction] + open_sessions)
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
        self._live: Callable[[], Iterable[Any]] = tuple
        self.registry.register(_TotalsCollector(self.totals, lambda: self._live()))
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

    def watch(self, live: Callable[[], Iterable[Any]]) -> None:
        """Where the open sessions' recorders are (each has `counts` per direction)."""
        self._live = live

    def session_ended(self, counts: Any) -> None:
        """Fold a finished session's frame counts into the totals."""
        for direction in _DIRECTIONS:
            c = counts[direction]
            self.totals.frames[direction] += c.frames
            self.totals.bytes[direction] += c.bytes
            self.totals.undecodable[direction] += c.undecodable

    def written(self, n: int) -> None:
        """Count records the writer wrote."""
        self.totals.records_written += n

    def dropped(self, n: int) -> None:
        """Count records dropped."""
        self.totals.records_dropped += n
