"""
Operating the proxy: a key the proxy holds, compression offered by older clients, a path
prefix, and the Prometheus metrics (with nothing secret or high-cardinality in labels).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import WSMsgType

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
