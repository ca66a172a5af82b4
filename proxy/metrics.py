"""
Prometheus metrics. Frame counts are not counted here: each `Session` counts
its frames already, so the collector adds the open sessions' counts to the totals of the
finished ones at scrape time, and the hot path does no extra work; per-session and
per-request events use prometheus-client's own counters. Labels are fixed,
low-cardinality words: never an id, a path with ids, a key or a reason text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import attrs
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from proxy.pricing import token_counts
from proxy.turn_records import Record, ToolRecord, TurnRecord

_DIRECTIONS = ("client", "server")
_STATUSES = frozenset(
    {"completed", "cancelled", "failed", "incomplete", "in_progress", "unfinished"}
)
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
    records_suppressed: int = 0


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
        budgets = (s.recorder.budget for s in live if s.recorder.budget is not None)
        yield CounterMetricFamily(
            "earshot_records_suppressed",
            "Records a session's budget folded into realtime.suppressed counts",
            value=t.records_suppressed + sum(b.suppressed_total for b in budgets),
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
        # 1 in each process: a scrape that adds workers up says how many it added.
        Gauge(
            "earshot_workers", "Worker processes this scrape adds up", registry=self.registry
        ).set(1)
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
        # An unexpected exception in a session or a background task: `where` is one of
        # `INTERNAL_PLACES`, never text from a request.
        self.internal_errors = Counter(
            "earshot_internal_errors",
            "Unexpected exceptions in a session or a background task; the traffic went on",
            ["where"],
            registry=self.registry,
        )
        # Restarts of crashed workers: the parent counts them (`proxy.supervisor`); in a
        # worker's own registry it stays 0, so the family is there with one process too.
        self.workers_restarted = Counter(
            "earshot_workers_restarted",
            "Worker processes that ended unexpectedly and were started again",
            registry=self.registry,
        )
        self.otel_dropped = Counter(
            "earshot_otel_spans_dropped",
            "Spans dropped: the export queue was full or the collector did not take them",
            registry=self.registry,
        )
        self.pii = Counter(
            "earshot_pii_redactions",
            "Personal data masked in kept text, by kind (card, iban, email, phone, ssn)",
            ["kind"],
            registry=self.registry,
        )
        self.rest_requests = Counter(
            "earshot_rest_requests",
            "REST requests, by route and status class",
            ["route", "status"],
            registry=self.registry,
        )

        # Turns (SPEC §6a). Labels are bounded: a model is a price-table key or `other`, a
        # status one of the API's or `other`.
        self.turn_latency = Histogram(
            "earshot_turn_latency_seconds",
            "Start mark to the first output delta forwarded, per turn",
            ["trigger"],
            buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
            registry=self.registry,
        )
        self.turns = Counter(
            "earshot_turns", "Responses ended, by status", ["status"], registry=self.registry
        )
        self.interruptions = Counter(
            "earshot_interruptions",
            "Assistant audio truncated by the client",
            registry=self.registry,
        )
        self.tokens = Counter(
            "earshot_tokens",
            "Tokens used, by model and kind",
            ["model", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "earshot_cost_usd",
            "Cost of responses in USD, by model",
            ["model"],
            registry=self.registry,
        )
        self.user_wait = Histogram(
            "earshot_user_wait_seconds",
            "A user turn's start mark to this response's first output (tool time included)",
            buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.tool_calls = Histogram(
            "earshot_tool_call_seconds",
            "A function call's arguments done to its output from the client",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )

    def turn_record(self, record: Record, model: str) -> None:
        """Count one turn, tool or interruption record; `model` is a bounded label."""
        if isinstance(record, TurnRecord):
            status = record.status
            self.turns.labels(status=status if status in _STATUSES else "other").inc()
            if record.latency_ms is not None:
                trigger = record.trigger if record.trigger in ("client", "vad") else "vad"
                self.turn_latency.labels(trigger=trigger).observe(record.latency_ms / 1000)
            if record.user_wait_ms is not None:
                self.user_wait.observe(record.user_wait_ms / 1000)
            for kind, n in token_counts(record.usage).items():
                if n:
                    self.tokens.labels(model=model, kind=kind).inc(n)
            for spent in (record.cost_usd, record.transcription_cost_usd):
                if spent is not None and spent > 0:
                    self.cost.labels(model=model).inc(spent)
        elif isinstance(record, ToolRecord):
            self.tool_calls.observe(record.duration_ms / 1000)
        else:
            self.interruptions.inc()

    def session_cost(self, spent: float, model: str) -> None:
        """Cost priced at the session's end (connection time), by model."""
        if spent > 0:
            self.cost.labels(model=model).inc(spent)

    def watch(self, live: Callable[[], Iterable[Any]]) -> None:
        """Where the open sessions are (each has `counts` per direction)."""
        self._live = live

    def session_ended(self, counts: Any, suppressed: int = 0) -> None:
        """Fold a finished session's frame counts (and the records its budget held back)
        into the totals."""
        self.totals.records_suppressed += suppressed
        for direction in _DIRECTIONS:
            c = counts[direction]
            self.totals.frames[direction] += c.frames
            self.totals.bytes[direction] += c.bytes
            self.totals.undecodable[direction] += c.undecodable

    def internal_error(self, log: Any, where: str, exc: BaseException) -> None:
        """Report an unexpected exception (SPEC §1.9): an `internal.error` record with the
        place and the exception's type (no message, no payload: either may hold a peer's
        data) and `earshot_internal_errors_total{where}`. The caller carries on."""
        place = where if where in INTERNAL_PLACES else "other"
        self.internal_errors.labels(where=place).inc()
        log.error("internal.error", where=place, error=type(exc).__name__)

    def written(self, n: int) -> None:
        """Count records the writer wrote."""
        self.totals.records_written += n

    def dropped(self, n: int) -> None:
        """Count records dropped."""
        self.totals.records_dropped += n


# Where an unexpected exception can be caught and reported (the metric's label values).
INTERNAL_PLACES: Final = frozenset(
    {
        "records.text", "turns.observe", "relay.pump", "relay.client_close",
        "heartbeat.dead", "summary_clock",
    }
)  # fmt: skip


# Families that are a moment or a limit, not an amount: the earliest (or smallest) worker's
# value stands for the whole. Every other family is a count or a current amount, and sums.
_SMALLEST = frozenset({"process_start_time_seconds", "process_max_fds"})


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge_exposition(texts: Sequence[str], *, counting_only: bool = False) -> bytes:
    """Several workers' `/metrics` texts as one: each sample (name and labels) summed
    across them — counters, histogram buckets, sums and counts, and gauges such as open
    sessions, tasks and resident memory — except the `_created` times, the start time and
    the open-files limit, where the smallest stands. `counting_only` keeps counters and
    histograms alone (what a worker that has exited still contributes)."""
    families: dict[str, Metric] = {}
    samples: dict[str, dict[tuple[str, frozenset[tuple[str, str]]], list[Any]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if counting_only and family.type not in ("counter", "histogram"):
                continue
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                samples[family.name] = {}
            smallest = family.name in _SMALLEST or family.name.endswith("_created")
            seen = samples[family.name]
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                if key not in seen:
                    seen[key] = [sample.name, sample.labels, sample.value]
                elif smallest:
                    seen[key][2] = min(seen[key][2], sample.value)
                else:
                    seen[key][2] += sample.value
    for name, family in families.items():
        for sample_name, labels, value in samples[name].values():
            family.add_sample(sample_name, labels, value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)
