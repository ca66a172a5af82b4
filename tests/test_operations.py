"""
Operating the proxy: a key the proxy holds, compression offered by older clients, a path
prefix, and the Prometheus metrics (with nothing secret or high-cardinality in labels,
and one scrape adding up several workers).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp import WSMsgType
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy.metrics import Metrics, merge_exposition
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream


@pytest.mark.parametrize("upstream_compresses", [True, False])
async def test_compression_is_what_the_upstream_agrees_to(
    proxy: Any, fake: FakeUpstream, upstream_compresses: bool
) -> None:
    """
    A client offering permessage-deflate gets it when the upstream accepts it too (as it
    would connecting directly), not otherwise; frames arrive exact both ways either way.
    """
    fake.compress = upstream_compresses
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", compress=15)
    await ws.receive(timeout=5)
    frame = b'{"type":"input_audio_buffer.append","audio":"' + b"QUFB" * 2000 + b'"}'
    reply = b'{"type":"response.output_audio.delta","delta":"' + b"QUFB" * 2000 + b'"}'

    await ws.send_frame(frame, WSMsgType.TEXT)
    received = await fake.next_frame()
    await fake.send(reply)
    returned = await ws.receive(timeout=5)

    assert (15 if upstream_compresses else 0) == ws.compress
    assert "permessage-deflate" in fake.handshakes[0]["headers"]["Sec-WebSocket-Extensions"]
    assert (frame, reply) == (received, returned.data.encode())
    await ws.close()


async def test_compression_is_not_offered_upstream_unless_the_client_offers_it(
    proxy: Any, fake: FakeUpstream
) -> None:
    """
    A client that does not offer permessage-deflate has none on either leg.
    """
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)

    assert 0 == ws.compress
    assert "Sec-WebSocket-Extensions" not in fake.handshakes[0]["headers"]
    await ws.close()


async def test_path_prefix(make_proxy: ProxyFactory, fake: FakeUpstream) -> None:
    """
    Under `listen.path_prefix`, clients use the prefix and the upstream sees the bare path.
    """
    proxy = await make_proxy(listen={"path_prefix": "/earshot"})

    ws = await proxy.ws_connect("/earshot/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)
    await ws.close()
    unprefixed = await proxy.post("/v1/realtime/client_secrets", json={})

    assert "/v1/realtime?model=gpt-realtime" == fake.handshakes[0]["path"]
    assert 404 == unprefixed.status


async def test_metrics_count_sessions_frames_and_failures(proxy: Any, fake: FakeUpstream) -> None:
    """
    /metrics counts sessions, frames by direction, undecodable frames and REST requests,
    with low-cardinality labels only.
    """
    ws = await proxy.ws_connect(
        "/v1/realtime?model=gpt-realtime&api-key=sk-proj-QUERYkey0123456789"
    )
    await ws.receive(timeout=5)
    await ws.send_str('{"type":"input_audio_buffer.clear"}')
    await ws.send_str("{not json")
    await fake.next_frame()
    await fake.next_frame()
    await proxy.post("/v1/realtime/client_secrets", json={})
    while_open = await (await proxy.get("/metrics")).text()
    await ws.close()
    await asyncio.sleep(0.05)

    text = await (await proxy.get("/metrics")).text()

    # The open session's frames are counted before it ends, and not twice after.
    assert 'earshot_frames_total{direction="client"} 2.0' in while_open
    assert "earshot_sessions_active 1.0" in while_open
    assert 'earshot_sessions_total{protocol="ga"} 1.0' in text
    assert 'earshot_frames_total{direction="client"} 2.0' in text
    assert 'earshot_frames_total{direction="server"} 1.0' in text
    assert 'earshot_undecodable_frames_total{direction="client"} 1.0' in text
    assert 'earshot_rest_requests_total{route="client_secrets",status="2xx"} 1.0' in text
    assert "earshot_sessions_active 0.0" in text
    assert "process_open_fds" in text
    assert "QUERYkey" not in text
    assert "sess_" not in text


async def test_summary_is_written_on_time_while_the_stream_is_idle(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    An open summary is written within `log.summary_interval` (plus the clock's second)
    even when no further frame and no boundary arrive.
    """
    proxy = await make_proxy(log={"summary_interval": 0.2})
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)

    await ws.send_str('{"type":"input_audio_buffer.append","audio":"AAAA"}')
    await fake.next_frame()
    await asyncio.sleep(0.6)

    (summary,) = sink.records("realtime.summary")
    assert (1, 3) == (summary["frames"], summary["bytes"])
    await ws.close()


async def test_rest_request_is_logged_before_it_is_forwarded(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    When the upstream receives a REST request, its `http.request` record is in the sink;
    the `http.exchange` record follows with the response.
    """
    seen: list[list[str]] = []
    fake.on_request = lambda: seen.append([r["event"] for r in sink.records()])

    resp = await proxy.post("/v1/realtime/client_secrets", json={"session": {"type": "realtime"}})

    assert 200 == resp.status
    assert [["http.request"]] == seen
    request, exchange = sink.records()
    assert ("http.request", "http.exchange") == (request["event"], exchange["event"])
    assert request["conn"] == exchange["conn"]
    assert request["request"] == exchange["request"]


def test_workers_metrics_add_up_counters_histograms_and_gauges() -> None:
    """
    Two workers' expositions merge into one that the Prometheus parser reads back:
    counters, histogram buckets, sums and counts, open sessions and memory are summed
    per label set; `_created`, the start time and the open-files limit keep the smallest.
    """
    texts = []
    for sessions, latency, started in ((2, 0.4, 1000.0), (3, 2.5, 900.0)):
        m = Metrics()
        m.sessions.labels(protocol="ga").inc(sessions)
        m.sessions.labels(protocol="beta").inc(1)
        m.sessions_active.set(sessions)
        m.turn_latency.labels(trigger="vad").observe(latency)
        text = generate_latest(m.registry).decode()
        texts.append(
            re.sub(
                r"^process_start_time_seconds .*$",
                f"process_start_time_seconds {started}",
                text,
                flags=re.M,
            )
        )
    merged = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(merge_exposition(texts).decode())
        for s in family.samples
    }
    created = [
        s.value
        for text in texts
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "earshot_sessions_created" and s.labels == {"protocol": "ga"}
    ]

    assert 2 == merged[("earshot_workers", ())]
    assert 5 == merged[("earshot_sessions_total", (("protocol", "ga"),))]
    assert 2 == merged[("earshot_sessions_total", (("protocol", "beta"),))]
    assert 5 == merged[("earshot_sessions_active", ())]
    bucket = "earshot_turn_latency_seconds_bucket"
    assert 1 == merged[(bucket, (("le", "0.5"), ("trigger", "vad")))]
    assert 2 == merged[(bucket, (("le", "3.0"), ("trigger", "vad")))]
    assert 2 == merged[("earshot_turn_latency_seconds_count", (("trigger", "vad"),))]
    assert pytest.approx(2.9) == merged[("earshot_turn_latency_seconds_sum", (("trigger", "vad"),))]
    assert 900.0 == merged[("process_start_time_seconds", ())]
    assert min(created) == merged[("earshot_sessions_created", (("protocol", "ga"),))]
    assert merged[("process_resident_memory_bytes", ())] > 0
