"""
Traces (SPEC §4b), proven with a real receiver: a local OTLP/HTTP endpoint decodes what
earshot exports with the official `opentelemetry-proto` messages. The demo's voice
session gives a `realtime.session` root with a `realtime.turn` child carrying the GenAI
attributes; with the collector down, sessions relay byte for byte and the spans are
counted as dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import free_port, lockstep, scripted_session, sessions_ended


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Receiver:
    """An OTLP/HTTP endpoint: every span it is sent, decoded."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []

    async def traces(self, request: web.Request) -> web.Response:
        assert "application/x-protobuf" == request.headers["Content-Type"]
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            self.resources.append(
                {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "events": [
                                (e.name, {a.key: _value(a.value) for a in e.attributes})
                                for e in span.events
                            ],
                        }
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")


async def test_the_demo_session_reaches_a_real_otlp_receiver(
    aiohttp_server: Any, make_proxy: ProxyFactory, sink: MemorySink
) -> None:
    """
    The scripted voice session through a proxy with `otel.endpoint` set: the receiver
    gets one trace — `realtime.session` (provider, model, the `sess_…` id, how it
    closed) and a `realtime.turn` under it (response id, time to first chunk, usage,
    latency, cost) — and no text.
    """
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.traces)
    server = await aiohttp_server(app)
    proxy = await make_proxy(
        otel={
            "endpoint": str(server.make_url("")).rstrip("/"),
            "service_name": "voice-agent-sidecar",
        }
    )

    await scripted_session(proxy)
    await sessions_ended(proxy)
    for _ in range(100):
        if {"realtime.session", "realtime.turn"} <= {s["name"] for s in receiver.spans}:
            break
        await asyncio.sleep(0.1)

    (root,) = [s for s in receiver.spans if s["name"] == "realtime.session"]
    turns = [s for s in receiver.spans if s["name"] == "realtime.turn"]
    (turn_record,) = sink.records("realtime.turn")
    assert 1 == len(turns)
    turn = turns[0]
    assert (root["trace_id"], root["span_id"]) == (turn["trace_id"], turn["parent"])
    assert root["start"] <= turn["start"] <= turn["end"] <= root["end"]
    assert {"service.name": "voice-agent-sidecar"}.items() <= receiver.resources[0].items()
    assert {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-realtime",
        "gen_ai.conversation.id": turn_record["session"],
        "earshot.closed_by": "client",
        "earshot.close_code": 1000,
        "earshot.turns": 1,
    }.items() <= root["attributes"].items()
    attrs = turn["attributes"]
    assert turn_record["response_id"] == attrs["gen_ai.response.id"]
    assert turn_record["latency_ms"] == attrs["earshot.latency_ms"]
    assert round(turn_record["latency_ms"] / 1000, 6) == round(
        attrs["gen_ai.response.time_to_first_chunk"], 6
    )
    assert turn_record["usage"]["input_tokens"] == attrs["gen_ai.usage.input_tokens"]
    assert turn_record["usage"]["output_tokens"] == attrs["gen_ai.usage.output_tokens"]
    assert turn_record["cost_usd"] == attrs["earshot.cost_usd"]
    assert "gen_ai.usage.audio.output_tokens" in attrs
    texts = [v for s in receiver.spans for v in s["attributes"].values() if isinstance(v, str)]
    assert [] == [t for t in texts if "Acme" in t or "card" in t]  # no instructions, no words


async def test_with_the_collector_down_sessions_relay_and_spans_are_counted_as_dropped(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    `otel.endpoint` points at a port nothing listens on: the session's frames still
    arrive byte for byte, and its spans are counted in `earshot_otel_spans_dropped_total`
    and reported once (`otel.export_failed`).
    """
    proxy = await make_proxy(otel={"endpoint": f"http://127.0.0.1:{free_port()}"})
    fake.scripted = False
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)
    frames = [
        ("client", b'{"type":"response.create" , "n": 1180591620717411303424}'),
        (
            "server",
            orjson.dumps(
                {
                    "type": "response.created",
                    "response": {
                        "id": "resp_1",
                        "object": "realtime.response",
                        "status": "in_progress",
                    },
                }
            ),
        ),
        (
            "server",
            orjson.dumps(
                {
                    "type": "response.done",
                    "response": {
                        "id": "resp_1",
                        "object": "realtime.response",
                        "status": "completed",
                    },
                }
            ),
        ),
    ]
    arrived = await lockstep(ws, fake, frames)
    await ws.close()
    await sessions_ended(proxy)
    dropped = 0.0
    for _ in range(100):
        text = await (await proxy.get("/metrics")).text()
        line = [x for x in text.splitlines() if x.startswith("earshot_otel_spans_dropped_total ")]
        dropped = float(line[0].split()[1]) if line else 0.0
        if dropped >= 2:
            break
        await asyncio.sleep(0.1)

    assert [f for _, f in frames] == arrived
    assert dropped >= 2  # the turn's span and the session's
    (failed,) = sink.records("otel.export_failed")
    assert failed["count"] >= 1


def test_a_failing_collector_makes_no_record_per_batch(caplog: Any) -> None:
    """
    The SDK's exporter logs every retry and every failed batch, which earshot's route for
    library logs would turn into records: silenced, as the count and one
    `otel.export_failed` a minute say it instead.
    """
    import logging
    import time

    from proxy.traces import Tracing

    failures: list[int] = []
    tracing = Tracing(f"http://127.0.0.1:{free_port()}", log_failure=failures.append)
    caplog.set_level(logging.DEBUG)
    for n in range(2):
        span = tracing.session({"earshot.conn": f"c_{n}"}, time.monotonic())
        span.close({}, time.monotonic())
        tracing._processor.force_flush()
    tracing.shutdown()

    assert [] == [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING
    ]
    assert [1] == failures  # the second batch's failure waits for the next minute
