"""
The relay under faults: refused and failed handshakes, peers that vanish, frames that
are huge or too big, ping storms, a stalled upstream, and requests that try to make
earshot dial somewhere else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from operator import itemgetter
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
}


async def _open(proxy: Any) -> Any:
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", max_msg_size=0)
    await ws.receive(timeout=5)
    return ws


def _pumps() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("earshot-pump-")]


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500, 503])
async def test_refused_handshake_is_answered_with_the_upstream_status_and_body(
    proxy: Any, fake: FakeUpstream, sink: MemorySink, status: int
) -> None:
    """
    The client gets the upstream's own status and body, before any upgrade.
    """
    body = (
        b'{"error":{"message":"Incorrect API key provided: sk-abc***xyz","code":"invalid_api_key"}}'
    )
    fake.refuse = (status, body)

    resp = await proxy.get("/v1/realtime?model=gpt-realtime", headers=UPGRADE)

    assert (status, body) == (resp.status, await resp.read())
    (record,) = sink.records("ws.rejected")
    assert status == record["status"]


async def test_unreachable_upstream_is_a_502(make_proxy: ProxyFactory, sink: MemorySink) -> None:
    """
    An upstream nobody listens on answers the client 502 before the upgrade.
    """
    proxy = await make_proxy(upstream={"url": "http://127.0.0.1:9"})

    resp = await proxy.get("/v1/realtime?model=x", headers=UPGRADE)

    assert 502 == resp.status
    assert "connect_error" == sink.records("ws.rejected")[0]["kind"]


async def test_upstream_that_never_answers_is_a_504(make_proxy: ProxyFactory) -> None:
    """
    An upstream that accepts the connection but never answers the handshake gives 504.
    """
    # A socket that listens but never accepts: the TCP handshake completes in the
    # kernel's backlog, and the HTTP upgrade is never answered.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        proxy = await make_proxy(
            upstream={"url": f"http://127.0.0.1:{port}", "connect_timeout": 0.3}
        )
        resp = await proxy.get("/v1/realtime?model=x", headers=UPGRADE)
        assert 504 == resp.status
    finally:
        silent.close()


async def test_upstream_vanishing_gives_the_client_1011(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    When the upstream's connection drops without a close, the client gets 1011 promptly.
    """
    ws = await _open(proxy)

    transport = fake.sockets[-1]._req.transport
    transport.abort()
    msg = await ws.receive(timeout=5)

    assert (WSMsgType.CLOSE, 1011) == (msg.type, msg.data)
    await asyncio.sleep(0.05)
    assert "upstream" == sink.records("ws.close")[0]["closed_by"]
    assert [] == _pumps()


async def test_client_vanishing_gives_the_upstream_1001(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    When the client's connection drops without a close, the upstream gets 1001.
    """
    ws = await _open(proxy)

    ws._response.connection.transport.abort()
    await asyncio.wait_for(fake.closed.wait(), 5)

    assert [1001] == fake.close_codes
    await asyncio.sleep(0.05)
    assert "client" == sink.records("ws.close")[0]["closed_by"]
    assert [] == _pumps()


async def test_a_20_mb_frame_is_forwarded_exactly_both_ways(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A 20 MB audio append reaches the upstream, and a 20 MB delta the client, unchanged.
    """
    ws = await _open(proxy)
    audio = base64.b64encode(os.urandom(15 * 1024 * 1024)).decode()
    append = ('{"type":"input_audio_buffer.append","audio":"' + audio + '"}').encode()
    delta = ('{"type":"response.output_audio.delta","delta":"' + audio + '"}').encode()

    await ws.send_frame(append, WSMsgType.TEXT)
    assert append == await fake.next_frame(timeout=30)
    await fake.send(delta)
    msg = await ws.receive(timeout=30)

    assert delta == msg.data.encode()
    assert audio[:24] not in sink.text()
    await ws.close()


async def test_a_frame_over_the_limit_closes_with_1009(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A frame over `limits.max_frame_bytes` closes the client with 1009 and the upstream too.
    """
    proxy = await make_proxy(limits={"max_frame_bytes": 64 * 1024})
    ws = await _open(proxy)

    await ws.send_frame(b'{"type":"x","pad":"' + b"a" * 100_000 + b'"}', WSMsgType.TEXT)
    msg = await ws.receive(timeout=5)

    assert (WSMsgType.CLOSE, 1009) == (msg.type, msg.data)
    await asyncio.wait_for(fake.closed.wait(), 5)
    assert [1009] == fake.close_codes


async def test_a_frame_at_the_limit_passes(make_proxy: ProxyFactory, fake: FakeUpstream) -> None:
    """
    A frame of exactly `limits.max_frame_bytes` is forwarded.
    """
    proxy = await make_proxy(limits={"max_frame_bytes": 64 * 1024})
    ws = await _open(proxy)
    frame = b'{"type":"x","pad":"' + b"a" * (64 * 1024 - 21) + b'"}'
    assert 64 * 1024 == len(frame)

    await ws.send_frame(frame, WSMsgType.TEXT)

    assert frame == await fake.next_frame()
    await ws.close()


async def test_ping_storm_keeps_the_session(proxy: Any, fake: FakeUpstream) -> None:
    """
    A thousand pings get pongs and the session still relays.
    """
    ws = await _open(proxy)

    for _ in range(1000):
        await ws.ping(b"x")
    await ws.send_str('{"type":"input_audio_buffer.clear"}')

    assert b'{"type":"input_audio_buffer.clear"}' == await fake.next_frame()
    await ws.close()


async def test_a_client_that_stops_answering_pings_is_dropped_with_its_upstream(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    With `upstream.heartbeat`, a client whose pongs stop coming (a phone gone out of
    range, a NAT that forgot the flow) is dropped, and its upstream session closed.
    """
    proxy = await make_proxy(upstream={"heartbeat": 0.2})
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", autoping=False)
    await ws.receive(timeout=5)

    kinds = []
    while not ws.closed:
        kinds.append((await ws.receive(timeout=5)).type)
    await asyncio.wait_for(fake.closed.wait(), 5)
    await asyncio.sleep(0.05)

    assert [WSMsgType.PING, WSMsgType.CLOSED] == kinds
    assert [1001] == fake.close_codes
    assert ("client", 1006) == itemgetter("closed_by", "code")(sink.records("ws.close")[0])
    assert [] == _pumps()


@pytest.mark.parametrize("heartbeat", [0.2, 0])
async def test_heartbeat_pings_both_legs_unless_it_is_0(
    make_proxy: ProxyFactory, fake: FakeUpstream, heartbeat: float
) -> None:
    """
    `upstream.heartbeat` pings the client and the upstream; 0 sends no pings on either
    leg (a peer that vanishes is then noticed only when TCP gives up on it).
    """
    fake.autoping = False
    proxy = await make_proxy(upstream={"heartbeat": heartbeat})
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", autoping=False)
    await ws.receive(timeout=5)

    client_pings = 0
    with contextlib.suppress(TimeoutError):
        while (await ws.receive(timeout=0.6)).type is WSMsgType.PING:
            client_pings += 1

    assert (heartbeat > 0, heartbeat > 0) == (client_pings > 0, fake.pings > 0)
    await ws.close()


async def test_an_upstream_that_stops_answering_pings_is_dropped(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    An upstream whose pongs stop coming is dropped: the client gets 1011 "upstream
    connection lost", the record says `upstream`/1006, and it counts as a dropped upstream.
    """
    fake.autoping = False
    proxy = await make_proxy(upstream={"heartbeat": 0.2})
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)

    closing = await ws.receive(timeout=5)
    await asyncio.sleep(0.05)
    metrics = await (await proxy.get("/metrics")).text()

    assert (WSMsgType.CLOSE, 1011, "upstream connection lost") == (
        closing.type,
        closing.data,
        closing.extra,
    )
    assert fake.pings >= 1
    assert ("upstream", 1006) == itemgetter("closed_by", "code")(sink.records("ws.close")[0])
    assert 'earshot_upstream_failures_total{kind="dropped"} 1.0' in metrics
    await ws.close()


async def test_a_leg_that_carries_frames_is_not_pinged(
    make_proxy: ProxyFactory, fake: FakeUpstream
) -> None:
    """
    Pings go to quiet legs only: a client sending a frame every ~50 ms gets none over
    three heartbeat intervals (tolerance: a stall of a whole second on a busy machine
    would be needed for a false ping), while the quiet upstream leg is pinged and,
    answering, stays open.
    """
    proxy = await make_proxy(upstream={"heartbeat": 1.0})
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", autoping=False)
    await ws.receive(timeout=5)

    received = []
    loop = asyncio.get_running_loop()
    until = loop.time() + 3.0
    while loop.time() < until:
        await ws.send_str('{"type":"input_audio_buffer.clear"}')
        with contextlib.suppress(TimeoutError):
            received.append((await ws.receive(timeout=0.05)).type)

    assert [] == received
    assert fake.pings >= 1
    assert not ws.closed
    await ws.close()


async def test_stalled_upstream_back_pressures_the_client(proxy: Any, fake: FakeUpstream) -> None:
    """
    While the upstream does not read, the client cannot send without bound; once it
    reads again, every frame arrives, in order.
    """
    ws = await _open(proxy)
    fake.stall = True
    total = 600  # ~39 MB: far beyond any socket buffers
    frames = [
        f'{{"type":"input_audio_buffer.append","event_id":"{i}","audio":"{"A" * 65_000}"}}'
        for i in range(total)
    ]
    sent = 0

    async def send_all() -> None:
        nonlocal sent
        for frame in frames:
            await ws.send_str(frame)
            sent += 1

    sender = asyncio.create_task(send_all())
    await asyncio.sleep(1.0)
    stalled_at = sent
    fake.resume.set()
    received = [await fake.next_frame(timeout=30) for _ in range(total)]
    await sender

    assert stalled_at < total
    assert [f.encode() for f in frames] == received
    await ws.close()


@pytest.mark.parametrize(
    "target",
    [
        b"//evil.example/v1/realtime",
        b"/v1/realtime/../../admin",
        b"http://evil.example/v1/realtime/client_secrets",
    ],
)
async def test_request_target_cannot_choose_the_host(
    proxy: Any, fake: FakeUpstream, target: bytes
) -> None:
    """
    Odd request targets never make earshot dial a host other than the configured one.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.port)
    writer.write(
        b"POST "
        + target
        + b" HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()

    status = int(status_line.split()[1])
    assert status in (200, 400, 404)
    for request in fake.requests:
        assert "evil" not in request["path"]
    assert all("evil" not in h["host"] for h in fake.handshakes)


async def test_host_header_is_not_used_to_dial(
    proxy: Any, fake: FakeUpstream, upstream: tuple[FakeUpstream, TestServer]
) -> None:
    """
    A client's Host header never changes where earshot connects.
    """
    resp = await proxy.post(
        "/v1/realtime/client_secrets", json={}, headers={"Host": "evil.example"}
    )

    assert 200 == resp.status
    assert f"127.0.0.1:{upstream[1].port}" == fake.requests[0]["headers"]["Host"]


async def test_connect_method_is_refused(proxy: Any, fake: FakeUpstream) -> None:
    """
    CONNECT is never a tunnel.
    """
    resp = await proxy.request("CONNECT", "/v1/realtime")

    assert resp.status in (400, 404, 405)
    assert [] == fake.requests


@pytest.mark.parametrize(
    "path", ["/v2/chat/completions", "/admin", "/", "/healthzz", "/v1x/models"]
)
async def test_paths_outside_the_forward_prefixes_are_not_forwarded(
    proxy: Any, fake: FakeUpstream, path: str
) -> None:
    """
    earshot forwards the upstream's API (`/v1`, `/openai`) and nothing else.
    """
    resp = await proxy.post(path, json={})

    assert 404 == resp.status
    assert [] == fake.requests


async def test_with_realtime_prefixes_only_the_rest_of_the_api_is_not_forwarded(
    make_proxy: Any, fake: FakeUpstream
) -> None:
    """
    Narrowed to the Realtime prefixes, the proxy carries Realtime alone.
    """
    proxy = await make_proxy(upstream={"forward_prefixes": ["/v1/realtime", "/openai/realtime"]})
    resp = await proxy.post("/v1/chat/completions", json={})

    assert 404 == resp.status
    assert [] == fake.requests


async def test_draining_refuses_new_sessions(proxy: Any) -> None:
    """
    While draining, `/readyz` is 503 and new upgrades get 503.
    """
    from proxy.context import APP

    proxy.app[APP].draining = True

    assert 503 == (await proxy.get("/readyz")).status
    assert 503 == (await proxy.get("/v1/realtime?model=x", headers=UPGRADE)).status
    assert 200 == (await proxy.get("/healthz")).status


async def test_rest_body_over_the_cap_is_413(make_proxy: ProxyFactory, fake: FakeUpstream) -> None:
    """
    A REST body over `limits.max_body_bytes` is refused and not forwarded.
    """
    proxy = await make_proxy(limits={"max_body_bytes": 2048})

    resp = await proxy.post(
        "/v1/realtime/client_secrets",
        data=b"x" * 4096,
        headers={"Content-Type": "application/json"},
    )

    assert 413 == resp.status
    assert [] == fake.requests


__all__ = ["web"]
