"""
Traces (SPEC §4b): each session and its turns, tool calls and interruptions as
OpenTelemetry spans, exported over OTLP/HTTP (protobuf) to the collector `otel.endpoint`
names — Phoenix, Langfuse, Tempo, an OpenTelemetry Collector.

Spans are made from the records earshot writes anyway (the turn, tool and interruption
records and the session's close), never per frame: `realtime.session` from `ws.open` to
`ws.close`, a child `realtime.turn` from the turn's start mark to its record, a child
`realtime.tool` from the arguments' `.done` to the output, and a span event
`realtime.interruption` on the turn it cut. Attributes carry only what the log may carry:
ids, model, counts, timings and costs, never text (unless `otel.include_text` and the
text policy keeps it).

The SDK's OTLP exporter sends the spans; the queue in front of it is this module's,
bounded (2,048 spans): the SDK's batch processor drops spans on a full queue without a
count, and a dropped span must be counted (`earshot_otel_spans_dropped_total`, and at most
one `otel.export_failed` record a minute). A slow or absent collector costs dropped
spans, never a session's time or more than the flush timeout at shutdown.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from proxy.pricing import token_counts

_QUEUE: Final = 2048  # spans waiting for export; more are dropped and counted
_BATCH: Final = 512
_DELAY: Final = 1.0  # seconds between exports when the queue is not filling
_EXPORT_TIMEOUT: Final = 5.0  # seconds one export may take
_FAILED_EVERY: Final = 60.0  # seconds between two `otel.export_failed` records
_MAX_EVENTS: Final = 16  # interruptions held for a turn not yet recorded
# OpenInference's span kind: Phoenix draws sessions, model turns and tools by it; other
# backends ignore it.
_KIND: Final = "openinference.span.kind"


class _BoundedBatch(SpanProcessor):
    """Ended spans queued (bounded) and exported in batches by one thread."""

    def __init__(
        self, exporter: SpanExporter, dropped: Callable[[int], None], failed: Callable[[int], None]
    ) -> None:
        self._exporter = exporter
        self._dropped = dropped
        self._failed = failed
        self._queue: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="earshot-otel", daemon=True)
        self._thread.start()

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            if len(self._queue) >= _QUEUE:
                full = True
            else:
                self._queue.append(span)
                full = False
        if full:
            self._dropped(1)
        elif len(self._queue) >= _BATCH:
            self._wake.set()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(_DELAY)
            self._wake.clear()
            self._export_all()

    def _export_all(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            if not batch:
                return
            try:
                result = self._exporter.export(batch)
            except Exception:  # noqa: BLE001 (an exporter's bug must not stop the thread)
                result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                self._dropped(len(batch))
                self._failed(len(batch))

    def shutdown(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(_EXPORT_TIMEOUT + 1)
        self._export_all()
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._export_all()
        return True


def _headers(spec: str) -> dict[str, str]:
    """`k=v,k=v` (the OpenTelemetry form) as headers."""
    out = {}
    for pair in spec.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


class Tracing:
    """The process's tracer; `session()` makes each session's spans."""

    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str = "earshot",
        headers: Mapping[str, str] | None = None,
        include_text: bool = False,
        dropped: Callable[[int], None] = lambda n: None,
        log_failure: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.include_text = include_text
        self._log_failure = log_failure
        # The SDK's exporter logs each retry and each failed batch; earshot counts them
        # and writes one `otel.export_failed` a minute instead (SPEC §4b: no per-batch
        # warning, which the library-log route would make a record of).
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
        self._last_failure_log = -_FAILED_EVERY
        self._failures = 0
        exporter = OTLPSpanExporter(
            endpoint=endpoint.rstrip("/") + "/v1/traces",
            headers=dict(headers or {}),
            timeout=_EXPORT_TIMEOUT,
        )
        self._processor = _BoundedBatch(exporter, dropped, self._failed)
        # `openinference.project.name`: Phoenix files traces by it (others ignore it).
        resource = Resource.create(
            {"service.name": service_name, "openinference.project.name": service_name}
        )
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(self._processor)
        self._tracer = self._provider.get_tracer("earshot")

    @classmethod
    def from_settings(
        cls,
        otel: Any,
        *,
        dropped: Callable[[int], None],
        log_failure: Callable[[int], None],
        environ: Mapping[str, str] | None = None,
    ) -> Tracing | None:
        """The tracer `otel.*` asks for, or None when `otel.endpoint` is not set."""
        if not otel.endpoint:
            return None
        env = os.environ if environ is None else environ
        headers = _headers(env.get(otel.headers_env, "")) if otel.headers_env else {}
        return cls(
            otel.endpoint,
            service_name=otel.service_name,
            headers=headers,
            include_text=otel.include_text,
            dropped=dropped,
            log_failure=log_failure,
        )

    def _failed(self, n: int) -> None:
        self._failures += n
        now = time.monotonic()
        if now - self._last_failure_log >= _FAILED_EVERY:
            self._last_failure_log = now
            count, self._failures = self._failures, 0
            self._log_failure(count)

    def session(self, attributes: Mapping[str, Any], start: float) -> SessionTrace:
        """A session's root span, started at monotonic time `start`."""
        span = self._tracer.start_span(
            "realtime.session",
            attributes=_clean({**attributes, _KIND: "CHAIN"}),
            start_time=_ns(start),
        )
        return SessionTrace(self._tracer, span)

    def shutdown(self) -> None:
        """Export what is queued (bounded by the export timeout) and stop."""
        self._provider.shutdown()


class SessionTrace:
    """One session's spans: made from its turn, tool, interruption and close records."""

    def __init__(self, tracer: trace.Tracer, root: trace.Span) -> None:
        self._tracer = tracer
        self._root = root
        self._context = trace.set_span_in_context(root)
        # Interruptions of turns not yet recorded: (response id, when, attributes).
        self._pending: list[tuple[str | None, int, dict[str, Any]]] = []

    def record(self, event: str, fields: Mapping[str, Any], now: float) -> None:
        """Turn one record into spans or span events (at monotonic time `now`)."""
        if event == "realtime.interruption":
            attrs = {
                "earshot.heard_ms": fields.get("heard_ms"),
                "earshot.generated_ms": fields.get("generated_ms"),
            }
            if len(self._pending) < _MAX_EVENTS:
                self._pending.append((fields.get("response_id"), _ns(now), attrs))
        elif event == "realtime.turn":
            self._turn(fields, now)
        elif event == "realtime.tool":
            duration = fields.get("duration_ms")
            start = now - (duration / 1000 if isinstance(duration, int | float) else 0.0)
            span = self._tracer.start_span(
                "realtime.tool",
                context=self._context,
                attributes=_clean(
                    {
                        _KIND: "TOOL",
                        "gen_ai.tool.name": fields.get("name"),
                        "gen_ai.tool.call.id": fields.get("call_id"),
                        "earshot.duration_ms": duration,
                    }
                ),
                start_time=_ns(start),
            )
            span.end(end_time=_ns(now))

    def _turn(self, fields: Mapping[str, Any], now: float) -> None:
        given = fields.get("usage")
        usage: dict[str, Any] = given if isinstance(given, dict) else {}
        latency = fields.get("latency_ms")
        start_ns = _wall_ns(fields.get("start_ts"))
        attrs: dict[str, Any] = {
            _KIND: "LLM",
            "gen_ai.response.id": fields.get("response_id"),
            "gen_ai.response.finish_reasons": [fields["status"]] if fields.get("status") else None,
            "gen_ai.response.time_to_first_chunk": latency / 1000
            if isinstance(latency, int | float)
            else None,
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
            "earshot.trigger": fields.get("trigger"),
            "earshot.latency_ms": latency,
            "earshot.user_wait_ms": fields.get("user_wait_ms", latency),
            "earshot.interrupted": fields.get("interrupted"),
            "earshot.heard_ms": fields.get("heard_ms"),
            "earshot.output_audio_ms": fields.get("output_audio_ms"),
            "earshot.cost_usd": fields.get("cost_usd"),
        }
        if usage:
            counts = token_counts(usage)
            for kind in ("text", "audio", "image"):
                attrs[f"gen_ai.usage.{kind}.input_tokens"] = counts.get(
                    f"input_{kind}", 0
                ) + counts.get(f"cached_input_{kind}", 0)
            for kind in ("text", "audio"):
                attrs[f"gen_ai.usage.{kind}.output_tokens"] = counts.get(f"output_{kind}", 0)
            attrs["gen_ai.usage.cache_read.input_tokens"] = sum(
                counts.get(f"cached_input_{kind}", 0) for kind in ("text", "audio", "image")
            )
        span = self._tracer.start_span(
            "realtime.turn",
            context=self._context,
            attributes=_clean(attrs),
            start_time=start_ns if start_ns is not None else _ns(now),
        )
        response_id = fields.get("response_id")
        keep: list[tuple[str | None, int, dict[str, Any]]] = []
        for rid, when, event_attrs in self._pending:
            if rid is None or rid == response_id:
                span.add_event("realtime.interruption", _clean(event_attrs), timestamp=when)
            else:
                keep.append((rid, when, event_attrs))
        self._pending = keep
        span.end(end_time=_ns(now))

    def close(self, attributes: Mapping[str, Any], now: float) -> None:
        """End the root span with the session's close."""
        for _, when, event_attrs in self._pending:
            self._root.add_event("realtime.interruption", _clean(event_attrs), timestamp=when)
        self._root.set_attributes(_clean(attributes))
        self._root.end(end_time=_ns(now))


def _ns(monotonic: float) -> int:
    """A monotonic time as wall-clock nanoseconds (what spans carry)."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


def _wall_ns(ts: object) -> int | None:
    """An RFC 3339 time from a record as nanoseconds, or None."""
    if not isinstance(ts, str):
        return None
    try:
        return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return None


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry takes: no None, numbers as numbers, lists of strings."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float | str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            out[key] = value
    return out
